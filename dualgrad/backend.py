"""The backend seam: the few array kernels where numpy alone is slow.

The engine calls these functions and never numba.  Each has a numpy reference
implementation, always present, and a numba fast path (``dualgrad.kernels``)
taken when the numba backend is active *and* the call is one the kernel wins
on this machine: float32/float64, and a size where numba was measured faster.
Those sizes are not constants -- they depend on the CPU (numpy's AVX-512 exp
beats a scalar numba loop that wins against numpy's AVX2 one).  The first call
large enough to matter times both paths on a short ladder of sizes and keeps
the result, per machine, in a cache file (``dualgrad.tuning``; ``warm_up()``
measures everything at once; ``DUALGRAD_TUNING=off|nocache`` switches it off
or keeps it out of the disk cache).  Both paths give the same answer: bitwise
where the algorithm is the same (scatter-adds, im2col, pooling), to rounding
where the order of a sum or the implementation of a transcendental function
differs (a few ulps: numba's libm and numpy's SIMD loops round differently).

    >>> import numpy as np
    >>> from dualgrad import backend
    >>> with backend.use_backend("numpy"):
    ...     y, dy = backend.unary_with_grad("tanh", np.zeros(3))
    >>> dy.tolist()
    [1.0, 1.0, 1.0]

Choose with ``DUALGRAD_BACKEND=numpy|numba`` (default: numba if it imports),
``set_backend(name)`` or ``with use_backend(name):``.
"""

import contextlib
import importlib
import importlib.util
import math
import os
import sys
import warnings

import numpy as np

from . import tuning

# ---------------------------------------------------------------------------
# Selection

BACKENDS = ("numpy", "numba")
_state = {"name": None, "kernels": None}


def _kernels():
    """The compiled-kernel module, or None when numba cannot be imported."""
    if _state["kernels"] is None:
        try:
            import numba  # noqa: F401
        except ImportError:
            _state["kernels"] = False
            return None
        try:
            mod = importlib.import_module("dualgrad.kernels")
        except ModuleNotFoundError:  # a source checkout: kernels/ sits beside dualgrad/
            here = os.path.join(os.path.dirname(os.path.dirname(__file__)), "kernels")
            spec = importlib.util.spec_from_file_location(
                "dualgrad.kernels", os.path.join(here, "__init__.py"),
                submodule_search_locations=[here])
            mod = importlib.util.module_from_spec(spec)
            sys.modules["dualgrad.kernels"] = mod
            spec.loader.exec_module(mod)
        _state["kernels"] = mod
    return _state["kernels"] or None


def _check_name(name, what):
    if name not in BACKENDS:
        raise ValueError(f"{what} must be one of {BACKENDS}, got {name!r}")


def get_backend():
    """The active backend's name, ``"numpy"`` or ``"numba"``.

    >>> get_backend() in ("numpy", "numba")
    True
    """
    if _state["name"] is None:
        name = os.environ.get("DUALGRAD_BACKEND", "").strip().lower()
        if name:
            _check_name(name, "DUALGRAD_BACKEND")
        if name != "numpy" and _kernels() is None:
            if name == "numba":
                warnings.warn("DUALGRAD_BACKEND=numba but numba cannot be imported; "
                              "using numpy", RuntimeWarning, stacklevel=2)
            name = "numpy"
        _state["name"] = name or "numba"
    return _state["name"]


def set_backend(name):
    """Make ``name`` (``"numpy"`` or ``"numba"``) the active backend.

    >>> old = get_backend(); set_backend("numpy"); get_backend()
    'numpy'
    >>> set_backend(old)
    """
    _check_name(name, "set_backend(name)")
    if name == "numba" and _kernels() is None:
        raise ImportError("set_backend('numba'): numba cannot be imported (pip install numba)")
    _state["name"] = name


@contextlib.contextmanager
def use_backend(name):
    """Run a block with another backend, restoring the previous one after.

    >>> with use_backend("numpy"):
    ...     get_backend()
    'numpy'
    """
    old = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        _state["name"] = old


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _fast(*arrays, kernel, size):
    """The kernel module if numba is active, all arrays are float32/float64 of one
    dtype and ``kernel`` wins at ``size`` on this machine (:func:`_use`); else None."""
    if (_state["name"] or get_backend()) != "numba":
        return None
    dt = arrays[0].dtype
    if dt.char not in "fd":
        return None
    for a in arrays[1:]:
        if a.dtype != dt:
            return None
    if not _use(kernel, dt.char, size):
        return None
    return _state["kernels"]


#: None: each call takes the kernel measured faster on this machine.  True: numba
#: wherever a kernel applies (tests, warm_up); False: numpy always.
FORCE_KERNELS = None

#: The ladder of sizes each kernel family is timed at (elements; see _probe).  A call
#: smaller than a family's first size takes numpy without measuring anything.
LADDERS = {
    "unary": (512, 4096, 32768, 262144),
    "index_add.1d": (512, 4096, 32768, 262144),
    "index_add.rows": (1024, 8192, 65536, 524288),
    "softmax": (256, 2048, 16384, 131072),
    "conv": (432, 1728, 6912, 27648, 110592, 442368),
    "pool": (256, 1024, 4096, 16384, 65536, 262144),
}
_FAMILY = {"index_add.1d": "index_add.1d", "index_add.rows": "index_add.rows",
           "im2col": "conv", "col2im": "conv", "max_pool2d": "pool", "max_pool2d_grad": "pool"}
_MISSING = object()


def _use(kernel, char, n):
    """True when numba should run ``kernel`` on a call of ``n`` elements of dtype ``char``."""
    force = FORCE_KERNELS
    if force is not None:
        return force
    name = kernel + "/" + char
    rule = TUNED.rules.get(name, _MISSING)
    if rule is _MISSING:
        if n < LADDERS[_family(kernel)][0]:
            return False
        rule = TUNED.rule(name)
    return rule is not None and rule[0] <= n and (rule[1] is None or n <= rule[1])


def _family(kernel):
    return _FAMILY.get(kernel) or kernel.partition(".")[0]


# ---------------------------------------------------------------------------
# Elementwise functions and their local derivatives
#
# One row per function: f(x), and f'(x) given y = f(x).  Written with numpy
# functions, so the numpy path runs a row on whole arrays and numba compiles the
# very same row as scalar code into one fused loop (kernels/elementwise.py).

UNARY = {
    "sin":        (lambda x: np.sin(x),             lambda x, y: np.cos(x)),
    "cos":        (lambda x: np.cos(x),             lambda x, y: -np.sin(x)),
    "tan":        (lambda x: np.tan(x),             lambda x, y: 1 + y * y),
    "exp":        (lambda x: np.exp(x),             lambda x, y: y),
    "expm1":      (lambda x: np.expm1(x),           lambda x, y: y + 1),
    "log":        (lambda x: np.log(x),             lambda x, y: 1 / x),
    "log1p":      (lambda x: np.log1p(x),           lambda x, y: 1 / (1 + x)),
    "tanh":       (lambda x: np.tanh(x),            lambda x, y: 1 - y * y),
    "sigmoid":    (lambda x: 1 / (1 + np.exp(-x)),  lambda x, y: y * (1 - y)),
    "sqrt":       (lambda x: np.sqrt(x),            lambda x, y: (y != 0) * 0.5 / (y + (y == 0))),
    "square":     (lambda x: x * x,                 lambda x, y: 2 * x),
    "reciprocal": (lambda x: 1 / x,                 lambda x, y: -(y * y)),
    "negative":   (lambda x: -x,                    lambda x, y: -1),
    "abs":        (lambda x: np.abs(x),             lambda x, y: np.sign(x)),
    "arctan":     (lambda x: np.arctan(x),          lambda x, y: 1 / (1 + x * x)),
    "sinh":       (lambda x: np.sinh(x),            lambda x, y: np.cosh(x)),
    "cosh":       (lambda x: np.cosh(x),            lambda x, y: np.sinh(x)),
    "softplus":   (lambda x: np.logaddexp(0, x),    lambda x, y: 1 / (1 + np.exp(-x))),
    "relu":       (lambda x: np.maximum(x, 0),      lambda x, y: (x > 0) * 1),
}

# sqrt' at 0 is a zero subgradient (as PyTorch's norm gives), not inf: (y != 0) * 0.5 /
# (y + (y == 0)) is 0.5 / y elsewhere, and is plain arithmetic on bools, so numpy runs it
# on arrays and numba on scalars (np.where is array-only; 0.5 / y * (y != 0) is inf * 0).
#
# When the fused numba loop beats numpy is measured per machine (_use, LADDERS): numba
# wins where numpy needs several passes or lacks a SIMD loop (sin and cos fuse into one
# sincos call, relu), numpy's SIMD exp/tanh/log beat numba's scalar libm calls where the
# CPU has wide vectors (AVX-512), and float32 SIMD loops nearly everywhere.
_UNARY_KERNEL = {(name, grad): f"unary.{name}.{'grad' if grad else 'value'}"
                 for name in UNARY for grad in (False, True)}
_OVERFLOW_OK = frozenset({"sigmoid", "softplus"})  # exp(-x) -> inf is the right limit there
_unary_kernels = {}


def _row(name):
    try:
        return UNARY[name]
    except KeyError:
        raise ValueError(f"unary name must be one of {sorted(UNARY)}, got {name!r}") from None


def _like(a, y):
    """``a`` as an array of y's dtype and shape (derivative rows may give a constant)."""
    a = np.asarray(a, dtype=y.dtype)
    return a if a.shape == y.shape else np.full(y.shape, a, dtype=y.dtype)


def _numpy_unary(name, x, grad):
    f, df = _row(name)
    quiet = np.errstate(over="ignore") if name in _OVERFLOW_OK else contextlib.nullcontext()
    with quiet:
        y = np.asarray(f(x))
        return y, (_like(df(x, y), y) if grad else None)


def _numba_unary(k, name, x, grad):
    kernel = _unary_kernels.get(name)
    if kernel is None:
        kernel = _unary_kernels[name] = k.elementwise.compile_unary(*UNARY[name])
    xf = np.ascontiguousarray(x).reshape(-1)
    y = np.empty_like(xf)
    d = np.empty_like(xf) if grad else y
    kernel(xf, y, d, grad)
    return y.reshape(x.shape), (d.reshape(x.shape) if grad else None)


def _unary_fast(name, x, grad):
    """The kernel module if the numba loop should run this call, else None."""
    if x.dtype.char not in "fd":
        return None
    return _fast(x, kernel=_UNARY_KERNEL[name, grad], size=x.size)


def unary(name, x):
    """``f(x)`` for a row of ``UNARY``.

    >>> unary("softplus", np.array([0.0, 1000.0])).tolist()
    [0.6931471805599453, 1000.0]
    """
    _row(name)
    x = np.asarray(x)
    k = _unary_fast(name, x, False)
    if k is None:
        return _numpy_unary(name, x, False)[0]
    return _numba_unary(k, name, x, False)[0]


def unary_with_grad(name, x):
    """``(f(x), f'(x))`` in one fused pass: the value and the local derivative.

    >>> y, dy = unary_with_grad("relu", np.array([-1.0, 0.0, 2.0]))
    >>> y.tolist(), dy.tolist()
    ([0.0, 0.0, 2.0], [0.0, 0.0, 1.0])
    """
    _row(name)
    x = np.asarray(x)
    k = _unary_fast(name, x, True)
    if k is None:
        return _numpy_unary(name, x, True)
    return _numba_unary(k, name, x, True)


def unary_jvp(name, x, t):
    """``(f(x), t * f'(x))``; ``t`` may carry leading batch axes: ``(k,) + x.shape``.
    The value and derivative come from the fused pass, then one broadcast multiply.

    >>> y, ty = unary_jvp("exp", np.zeros(2), np.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> ty.tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    """
    y, d = unary_with_grad(name, x)
    return y, np.multiply(t, d)


def fused_unary(name):
    """For the engine: ``run(x) -> (f(x), f'(x))`` from the fused numba loop, or ``None``
    when numpy is as fast for this call (then the engine applies the primitive and its
    rule as usual).  The tape keeps f'(x), so the reverse step is one multiply.

    >>> run = fused_unary("tanh")
    >>> run(np.array([1, 2])) is None  # integers: never fused
    True
    """
    _row(name)

    def run(x):
        if x.dtype.char not in "fd":
            return None
        k = _unary_fast(name, x, True)
        return None if k is None else _numba_unary(k, name, x, True)
    return run


# ---------------------------------------------------------------------------
# Scatter-add: the VJP of indexing

# numba's loop against numpy is measured per machine, separately for rows (D > 1:
# numba against a flat add.at) and for 1-D values (numpy's add.at has a fast loop for
# those).  Without numba, one flat 1-D add.at (index i*D + j) beats add.at on rows once
# the work pays for building the flat index (numpy against numpy: a constant).
INDEX_ADD_FLAT_MIN = 4096


def _gather_layout(shape, index, values):
    """(nb, idx) when ``index`` is ``(:,)*nb + (int array,) + (:,)*...`` and values
    has exactly the shape ``out[index]`` has; None for any other index."""
    if isinstance(index, np.ndarray):
        nb, idx, rest = 0, index, ()
    else:
        index = index if isinstance(index, tuple) else (index,)
        nb = 0
        while nb < len(index) and _is_full(index[nb]):
            nb += 1
        if nb == len(index):
            return None
        idx, rest = index[nb], index[nb + 1:]
        if rest and rest[-1] is Ellipsis:
            rest = rest[:-1]
        if not (isinstance(idx, np.ndarray) and all(_is_full(r) for r in rest)):
            return None
    if idx.dtype.kind not in "iu" or nb >= len(shape):
        return None
    if values.shape != shape[:nb] + idx.shape + shape[nb + 1:]:
        return None
    return nb, idx


def _is_full(k):
    return isinstance(k, slice) and k.start is None and k.stop is None and k.step is None


def index_add(shape, dtype, index, values):
    """``out = zeros(shape, dtype); np.add.at(out, index, values); out`` -- repeated
    indices accumulate.  Any numpy index; the gather case ``(:,)*nb + (int array,)``
    takes a compiled loop (numba) or a flat 1-D ``add.at`` (numpy), bitwise equal.

    >>> index_add((3,), np.float64, np.array([0, 2, 0, -1]), np.ones(4)).tolist()
    [2.0, 0.0, 2.0]
    """
    shape, dtype, values = tuple(shape), np.dtype(dtype), np.asarray(values)
    layout = _gather_layout(shape, index, values) if dtype.char in "fd" else None
    if layout is not None:
        nb, idx = layout
        B, V, D = math.prod(shape[:nb]), shape[nb], math.prod(shape[nb + 1:])
        rows = B * idx.size
        k = _fast(values.astype(dtype, copy=False),
                  kernel="index_add.1d" if D == 1 else "index_add.rows", size=rows * D)
        if k is not None or (rows * D >= INDEX_ADD_FLAT_MIN and (D > 1 or B > 1)):
            idx = idx.reshape(-1)
            vals = np.ascontiguousarray(values, dtype=dtype).reshape(B, idx.shape[0], D)
            return _index_add_rows(k, vals, idx, B, V, D, nb).reshape(shape)
    out = np.zeros(shape, dtype)
    np.add.at(out, index, values)
    return out


def _index_add_rows(k, vals, idx, B, V, D, axis):
    """out (B, V, D) with out[b, idx[i]] += vals[b, i]: numba's loop or a flat add.at."""
    if k is not None:
        out = np.zeros((B, V, D), vals.dtype)
        bad = k.scatter.index_add_rows(out, idx.astype(np.intp, copy=False), vals)
        if bad >= 0:
            _index_error(idx[bad], axis, V)
        return out
    lo, hi = (idx.min(), idx.max()) if idx.size else (0, -1)
    if lo < -V or hi >= V:
        _index_error(lo if lo < -V else hi, axis, V)
    rows = np.where(idx < 0, idx + V, idx) if lo < 0 else idx
    flat = (np.arange(B)[:, None, None] * V + rows[:, None]) * D + np.arange(D)
    out = np.zeros(B * V * D, vals.dtype)
    np.add.at(out, flat.reshape(-1), vals.reshape(-1))
    return out


def _index_error(i, axis, size):
    raise IndexError(f"index {int(i)} is out of bounds for axis {axis} with size {size}")


# ---------------------------------------------------------------------------
# Softmax, log-softmax, logsumexp
#
# Stable (shift by the max) with scipy.special's special values: all -inf ->
# logsumexp -inf, softmax and log_softmax NaN; +inf -> logsumexp +inf; NaN
# propagates.  numba runs rows of the last axis; other axes go to numpy.

# numba's row loops make one pass for the max and one for exp and the sum, against
# numpy's ~5 passes and temporaries; numpy's SIMD exp can still win on large inputs.
# Measured per machine and per function (softmax, ..., logsumexp_vjp).

def _fast_rows(kernel, *arrays):
    return _fast(*arrays, kernel="softmax." + kernel, size=arrays[0].size)


def _neg_axis(axis, ndim):
    return axis - ndim if axis >= 0 else axis


def _rows(x, axis):
    """x as C-contiguous rows (M, K) when ``axis`` is its last non-trivial axis."""
    if not isinstance(axis, (int, np.integer)) or x.ndim == 0:
        return None
    axis = _neg_axis(axis, x.ndim)
    if any(n != 1 for n in x.shape[x.ndim + axis + 1:]):
        return None
    K = x.shape[axis]
    return np.ascontiguousarray(x).reshape(x.size // K if K else math.prod(x.shape[:axis]), K)


def _on_rows(kernel, axis, *arrays):
    """``kernels.softmax.<kernel>(rows..., out)`` over arrays of one shape, reshaped back,
    when the numba kernel applies to this call (``axis`` is their last non-trivial axis);
    ``None`` when the caller should take numpy."""
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays[1:]):
        return None
    k = _fast_rows(kernel[:-len("_rows")], *arrays)
    rows = [_rows(a, axis) for a in arrays] if k is not None else [None]
    if rows[0] is None:
        return None
    out = np.empty_like(rows[0])
    getattr(k.softmax, kernel)(*rows, out)
    return out.reshape(shape)


def _shift(x, axis):
    """The row max with non-finite maxima set to 0 (scipy's logsumexp shift)."""
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    m[~np.isfinite(m)] = 0
    return m


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x), axis)``, computed stably.

    >>> softmax(np.array([1000.0, 1000.0])).tolist()
    [0.5, 0.5]
    """
    x = np.asarray(x)
    out = _on_rows("softmax_rows", axis, x)
    if out is not None:
        return out
    e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """``x - logsumexp(x, axis, keepdims=True)``, computed stably.

    >>> log_softmax(np.array([0.0, 0.0])).tolist() == [-np.log(2)] * 2
    True
    """
    x = np.asarray(x)
    out = _on_rows("log_softmax_rows", axis, x)
    if out is not None:
        return out
    tmp = x - _shift(x, axis)
    with np.errstate(divide="ignore"):
        return tmp - np.log(np.sum(np.exp(tmp), axis=axis, keepdims=True))


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x), axis))``, computed stably; ``axis=None`` reduces everything.

    >>> bool(logsumexp(np.array([1000.0, 1000.0])) == 1000 + np.log(2))
    True
    >>> float(logsumexp(np.array([-np.inf, -np.inf])))
    -inf
    """
    x = np.asarray(x)
    k = _fast_rows("logsumexp", x)
    r = None
    if k is not None:
        r = x.reshape(1, -1) if axis is None else _rows(x, axis)
    if r is not None:
        out = np.empty(r.shape[0], x.dtype)
        k.softmax.logsumexp_rows(np.ascontiguousarray(r), out)
        out = out.reshape(_reduced_shape(x.shape, axis, keepdims))
    else:
        m = _shift(x, axis)
        with np.errstate(divide="ignore"):
            out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
        if not keepdims:
            out = out.reshape(_reduced_shape(x.shape, axis, False))
    return out[()] if out.ndim == 0 else out


def _reduced_shape(shape, axis, keepdims):
    axes = range(len(shape)) if axis is None else np.atleast_1d(axis) % max(len(shape), 1)
    axes = set(int(a) for a in axes)
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def softmax_vjp(g, y, axis=-1):
    """Cotangent of softmax's input from ``g`` and its output ``y``: ``y * (g - <g, y>)``.

    >>> softmax_vjp(np.ones(2), np.array([0.5, 0.5])).tolist()
    [0.0, 0.0]
    """
    g, y = np.asarray(g), np.asarray(y)
    out = _on_rows("softmax_vjp_rows", axis, g, y)
    if out is not None:
        return out
    axis = _neg_axis(axis, y.ndim)
    return y * (g - np.sum(g * y, axis=axis, keepdims=True))


def log_softmax_vjp(g, y, axis=-1):
    """Cotangent of log_softmax's input from ``g`` and its output ``y``:
    ``g - exp(y) * sum(g)``.

    >>> log_softmax_vjp(np.array([1.0, 0.0]), np.log([0.5, 0.5])).tolist()
    [0.5, -0.5]
    """
    g, y = np.asarray(g), np.asarray(y)
    out = _on_rows("log_softmax_vjp_rows", axis, g, y)
    if out is not None:
        return out
    axis = _neg_axis(axis, y.ndim)
    return g - np.exp(y) * np.sum(g, axis=axis, keepdims=True)


def logsumexp_vjp(g, x, ans, axis=None, keepdims=False):
    """Cotangent of logsumexp's input: ``g * exp(x - ans)``, g and ans re-expanded
    over the reduced axes (g may carry leading batch axes).

    >>> logsumexp_vjp(1.0, np.zeros(2), np.log(2.0)).tolist()
    [0.5, 0.5]
    """
    g, x, ans = np.asarray(g), np.asarray(x), np.asarray(ans)
    rshape = _reduced_shape(x.shape, axis, keepdims)
    k = _fast_rows("logsumexp_vjp", x, g, ans) if g.shape == ans.shape == rshape else None
    r = (x.reshape(1, -1) if axis is None else _rows(x, axis)) if k is not None else None
    if r is not None:
        out = np.empty(r.shape, x.dtype)
        k.softmax.logsumexp_vjp_rows(np.ascontiguousarray(g).reshape(-1), np.ascontiguousarray(r),
                                     np.ascontiguousarray(ans).reshape(-1), out)
        return out.reshape(x.shape)
    if not keepdims:
        axes = range(x.ndim) if axis is None else np.atleast_1d(axis)
        axes = tuple(sorted(_neg_axis(int(a) % max(x.ndim, 1), x.ndim) for a in axes))
        g, ans = np.expand_dims(g, axes), np.expand_dims(ans, axes)
    return g * np.exp(x - ans)


# ---------------------------------------------------------------------------
# conv2d (NCHW, PyTorch semantics: cross-correlation, zero padding, no groups)
#
# All three passes are BLAS matrix products around im2col / col2im, laid out so no
# operand is copied (K = C*kH*kW, P = Ho*Wo):
#   forward      out[n]   = W (C_out, K) @ cols[n] (K, P)
#   grad_input   gcolsT[n] = g[n].T (P, C_out) @ W (C_out, K), then col2im
#   grad_weight  gW        = sum_n g[n] @ cols[n].T
# (grad_input as W.T @ g[n] was 2.5x slower in OpenBLAS for this thin shape.)
# Direct numba convolutions were measured too and lost to BLAS (1.9-5.7 ms vs
# 1.4 ms on the bench workload), so numba only moves data: im2col and col2im, each
# where it beats numpy's kH*kW strided slice copies / adds on this machine (measured:
# col2im usually everywhere, im2col for small inputs).


def _pair(v, what):
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    try:
        a, b = v
        if int(a) == a and int(b) == b:
            return int(a), int(b)
    except (TypeError, ValueError):
        pass
    raise ValueError(f"{what} must be an int or a pair of ints, got {v!r}")


def _conv_geometry(x_shape, w_shape, stride, padding, dilation):
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    if min(sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"conv2d: stride and dilation must be >= 1 and padding >= 0, got "
                         f"stride={stride}, padding={padding}, dilation={dilation}")
    if len(x_shape) < 4 or len(w_shape) != 4 or x_shape[-3] != w_shape[1]:
        raise ValueError(f"conv2d: x must be (N, C, H, W) and w (C_out, C, kH, kW) with the same "
                         f"C, got x {tuple(x_shape)} and w {tuple(w_shape)}")
    H, W = x_shape[-2:]
    kH, kW = w_shape[2:]
    Ho = (H + 2 * ph - dh * (kH - 1) - 1) // sh + 1
    Wo = (W + 2 * pw - dw * (kW - 1) - 1) // sw + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"conv2d: kernel {tuple(w_shape[2:])} (dilation {(dh, dw)}) is larger "
                         f"than the padded input {(H + 2 * ph, W + 2 * pw)}")
    return (sh, sw, ph, pw, dh, dw), (Ho, Wo)


def _im2col(x, kh, kw, geo, out_hw):
    """(N, C, H, W) -> cols (N, C, kh, kw, Ho, Wo): every window, zero padded."""
    sh, sw, ph, pw, dh, dw = geo
    (N, C, H, W), (Ho, Wo) = x.shape, out_hw
    cols = np.empty((N, C, kh, kw, Ho, Wo), x.dtype)
    k = _fast(x, kernel="im2col", size=cols.size)
    if k is not None:
        k.conv.im2col(np.ascontiguousarray(x), sh, sw, ph, pw, dh, dw, cols)
        return cols
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), x.dtype)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh,
                                  j * dw:j * dw + sw * (Wo - 1) + 1:sw]
    return cols


def _col2im(cols, x_shape, geo):
    """The adjoint of _im2col: sum every window back onto (N, C, H, W)."""
    sh, sw, ph, pw, dh, dw = geo
    N, C, kh, kw, Ho, Wo = cols.shape
    H, W = x_shape[-2:]
    k = _fast(cols, kernel="col2im", size=cols.size)
    if k is not None:
        gx = np.zeros((N, C, H, W), cols.dtype)
        k.conv.col2im(cols, sh, sw, ph, pw, dh, dw, gx)
        return gx
    gxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), cols.dtype)
    for i in range(kh):
        for j in range(kw):
            gxp[:, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh,
                j * dw:j * dw + sw * (Wo - 1) + 1:sw] += cols[:, :, i, j]
    return np.ascontiguousarray(gxp[:, :, ph:ph + H, pw:pw + W])


def conv2d(x, w, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """2-D cross-correlation of x (N, C, H, W) with w (C_out, C, kH, kW) -> (N, C_out, Ho, Wo).

    Ho = floor((H + 2*padding - dilation*(kH - 1) - 1) / stride) + 1, as in PyTorch.
    Leading axes before N (a batch of tangents) are folded into N.

    >>> conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), padding=1)[0, 0].tolist()
    [[1.0, 2.0, 2.0, 1.0], [2.0, 4.0, 4.0, 2.0], [2.0, 4.0, 4.0, 2.0], [1.0, 2.0, 2.0, 1.0]]
    """
    x, w = np.asarray(x), np.asarray(w)
    geo, (Ho, Wo) = _conv_geometry(x.shape, w.shape, stride, padding, dilation)
    lead = x.shape[:-3]
    Co, C, kh, kw = w.shape
    cols = _im2col(x.reshape((-1,) + x.shape[-3:]), kh, kw, geo, (Ho, Wo))
    out = np.matmul(w.reshape(Co, C * kh * kw), cols.reshape(len(cols), C * kh * kw, Ho * Wo))
    return out.reshape(lead + (Co, Ho, Wo))


def conv2d_grad_input(g, w, x_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """Cotangent of conv2d's x from g (N, C_out, Ho, Wo); leading batch axes allowed.

    >>> conv2d_grad_input(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), (1, 1, 3, 3))[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    g, w = np.asarray(g), np.asarray(w)
    geo, (Ho, Wo) = _conv_geometry(x_shape, w.shape, stride, padding, dilation)
    Co, C, kh, kw = w.shape
    lead = g.shape[:-3]
    g3 = g.reshape(-1, Co, Ho * Wo)
    gcols = np.matmul(g3.transpose(0, 2, 1), w.reshape(Co, C * kh * kw))  # (N, P, K)
    gcols = gcols.reshape(len(g3), Ho, Wo, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    return _col2im(gcols, x_shape, geo).reshape(lead + tuple(x_shape[-3:]))


def conv2d_grad_weight(g, x, w_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """Cotangent of conv2d's w from g (N, C_out, Ho, Wo); g may carry leading batch axes.

    >>> conv2d_grad_weight(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3)), (1, 1, 2, 2))
    array([[[[4., 4.],
             [4., 4.]]]])
    """
    g, x = np.asarray(g), np.asarray(x)
    geo, (Ho, Wo) = _conv_geometry(x.shape, w_shape, stride, padding, dilation)
    Co, C, kh, kw = w_shape
    N = x.shape[0]
    cols = _im2col(x, kh, kw, geo, (Ho, Wo)).reshape(N, C * kh * kw, Ho * Wo)
    lead = g.shape[:-4]
    g4 = g.reshape((math.prod(lead), N, Co, Ho * Wo))
    gw = np.matmul(g4, cols.transpose(0, 2, 1)).sum(axis=1)
    return gw.reshape(lead + tuple(w_shape))


# ---------------------------------------------------------------------------
# max_pool2d (PyTorch semantics: -inf padding, floor mode, first max wins)

# numba's window scan against numpy's running max over kh*kw strided views: measured.


def _pool_geometry(x_shape, kernel_size, stride, padding):
    (kh, kw), (ph, pw) = _pair(kernel_size, "kernel_size"), _pair(padding, "padding")
    sh, sw = _pair(kernel_size if stride is None else stride, "stride")
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0 or 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"max_pool2d: need kernel_size, stride >= 1 and 0 <= padding <= "
                         f"kernel_size / 2, got kernel_size={kernel_size}, stride={stride}, "
                         f"padding={padding}")
    if len(x_shape) < 2:
        raise ValueError(f"max_pool2d: x must have at least 2 axes (..., H, W), got {x_shape}")
    H, W = x_shape[-2:]
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"max_pool2d: kernel {(kh, kw)} larger than padded input "
                         f"{(H + 2 * ph, W + 2 * pw)}")
    return (kh, kw, sh, sw, ph, pw), (Ho, Wo)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over (kernel_size) windows -> (out, argmax); argmax indexes each H*W plane.

    >>> out, arg = max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2)
    >>> out[0, 0].tolist(), arg[0, 0].tolist()
    ([[5.0, 7.0], [13.0, 15.0]], [[5, 7], [13, 15]])
    """
    x = np.asarray(x)
    geo, (Ho, Wo) = _pool_geometry(x.shape, kernel_size, stride, padding)
    kh, kw, sh, sw, ph, pw = geo
    H, W = x.shape[-2:]
    lead = x.shape[:-2]
    k = _fast(x, kernel="max_pool2d", size=x.size)
    if k is not None:
        out = np.empty(lead + (Ho, Wo), x.dtype)
        arg = np.empty(lead + (Ho, Wo), np.intp)
        k.conv.max_pool2d_fwd(np.ascontiguousarray(x).reshape(1, -1, H, W), kh, kw, sh, sw, ph, pw,
                              out.reshape(1, -1, Ho, Wo), arg.reshape(1, -1, Ho, Wo))
        return out, arg
    # numpy: one vectorised pass per window offset (i, j), keeping the running max
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp = np.full(lead + (H + 2 * ph, W + 2 * pw), low, x.dtype)
    xp[..., ph:ph + H, pw:pw + W] = x
    h0 = (np.arange(Ho) * sh - ph)[:, None]
    w0 = (np.arange(Wo) * sw - pw)[None, :]
    out = np.full(lead + (Ho, Wo), low, x.dtype)
    arg = np.broadcast_to(np.maximum(h0, 0) * W + np.maximum(w0, 0), out.shape).copy()
    for i in range(kh):
        for j in range(kw):
            v = xp[..., i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw]
            take = v > out                    # strict: the first maximum stays
            if x.dtype.kind == "f":           # the first NaN wins and stays
                take |= np.isnan(v) & ~np.isnan(out)
            out = np.where(take, v, out)
            arg = np.where(take, (h0 + i) * W + w0 + j, arg)
    return out, arg.astype(np.intp, copy=False)


def max_pool2d_grad(g, argmax, x_shape):
    """Cotangent of max_pool2d's x: g scattered (summed) onto the argmax positions.
    g may carry leading batch axes in front of argmax's shape.

    >>> max_pool2d_grad(np.ones((1, 1, 1, 1)), np.array([[[[3]]]]), (1, 1, 2, 2))[0, 0].tolist()
    [[0.0, 0.0], [0.0, 1.0]]
    """
    g, argmax = np.asarray(g), np.asarray(argmax)
    x_shape = tuple(x_shape)
    HW = x_shape[-2] * x_shape[-1]
    P = math.prod(x_shape[:-2])
    batch = g.shape[:g.ndim - argmax.ndim]
    B = math.prod(batch)
    Ho, Wo = argmax.shape[-2:]
    k = _fast(g, kernel="max_pool2d_grad", size=B * P * HW)  # sized as the cotangent of x
    if k is not None:
        gx = np.zeros((B, P, HW), g.dtype)
        k.conv.max_pool2d_bwd(np.ascontiguousarray(g).reshape(B, P, Ho, Wo),
                              np.ascontiguousarray(argmax, dtype=np.intp).reshape(P, Ho, Wo), gx)
        return gx.reshape(batch + x_shape)
    flat = (np.arange(B * P) * HW).reshape(B, P, 1) + argmax.reshape(1, P, Ho * Wo)
    gx = np.zeros(B * P * HW, g.dtype)
    np.add.at(gx, flat.reshape(-1), g.reshape(-1))
    return gx.reshape(batch + x_shape)


# ---------------------------------------------------------------------------
# Ahead-of-time compilation

#: Module attributes set so that every call takes its numba kernel (for warm_up, tests):
#: ``for k, v in ALWAYS_NUMBA.items(): monkeypatch.setattr(backend, k, v)``.
ALWAYS_NUMBA = {"FORCE_KERNELS": True}


# ---------------------------------------------------------------------------
# Measuring the crossovers (dualgrad.tuning keeps and caches them)

def _probe(name):
    """[(size, call)] over the ladder of ``name`` (``"<kernel>/<dtype char>"``):
    ``call(use_numba)`` runs the kernel's public entry point once on a typical input
    of that size, with the choice forced, under the backend that is active (numba)."""
    global FORCE_KERNELS
    old, FORCE_KERNELS = FORCE_KERNELS, False  # inputs are made with numpy: no recursion
    try:
        return _probe_inputs(name)
    finally:
        FORCE_KERNELS = old


def _probe_inputs(name):
    kernel, _, char = name.rpartition("/")
    dt = np.dtype(char)
    family = _family(kernel)
    r = np.random.default_rng(0)
    out = []
    for n in LADDERS[family]:
        if family == "unary":
            _, uname, mode = kernel.split(".")
            x = (0.05 + np.abs(r.standard_normal(n))).astype(dt)  # inside every row's domain
            fn = unary_with_grad if mode == "grad" else unary
            out.append((n, _forcing(fn, uname, x)))
        elif family == "index_add.1d":
            V = max(n // 8, 1)
            out.append((n, _forcing(index_add, (V,), dt, r.integers(0, V, n),
                                    r.standard_normal(n).astype(dt))))
        elif family == "index_add.rows":
            D = 32
            M = n // D
            V = max(M // 8, 1)
            out.append((n, _forcing(index_add, (V, D), dt, r.integers(0, V, M),
                                    r.standard_normal((M, D)).astype(dt))))
        elif family == "softmax":
            x = r.standard_normal((n // 16, 16)).astype(dt)
            g = r.standard_normal(x.shape).astype(dt)
            fn = kernel.partition(".")[2]
            args = {"softmax": (softmax, x, -1), "log_softmax": (log_softmax, x, -1),
                    "logsumexp": (logsumexp, x, -1),
                    "softmax_vjp": (softmax_vjp, g, softmax(x, -1), -1),
                    "log_softmax_vjp": (log_softmax_vjp, g, log_softmax(x, -1), -1),
                    "logsumexp_vjp": (logsumexp_vjp, g[:, 0], x, logsumexp(x, -1), -1)}[fn]
            out.append((n, _forcing(*args)))
        elif family == "conv":                    # 3 channels, 3x3 kernel, padding 1
            side = min(32, int(round((n / 27) ** 0.5)))
            N = n // (27 * side * side)
            x = r.standard_normal((N, 3, side, side)).astype(dt)
            geo, hw = (1, 1, 1, 1, 1, 1), (side, side)
            if kernel == "im2col":
                out.append((n, _forcing(_im2col, x, 3, 3, geo, hw)))
            else:
                cols = r.standard_normal((N, 3, 3, 3, side, side)).astype(dt)
                out.append((n, _forcing(_col2im, cols, x.shape, geo)))
        elif family == "pool":                    # 2x2 windows, stride 2
            C = 4 if n <= 1024 else 16
            side = int(round((n / C) ** 0.5))
            N = max(n // (C * side * side), 1)
            if side > 32:
                side, N = 32, n // (C * 1024)
            x = r.standard_normal((N, C, side, side)).astype(dt)
            if kernel == "max_pool2d":
                out.append((n, _forcing(max_pool2d, x, 2)))
            else:
                o, arg = max_pool2d(x, 2)
                out.append((n, _forcing(max_pool2d_grad, o, arg, x.shape)))
        else:
            raise ValueError(f"no probe for kernel {kernel!r}")
    return out


def _forcing(fn, *args):
    def call(use_numba):
        global FORCE_KERNELS
        old, FORCE_KERNELS = FORCE_KERNELS, bool(use_numba)
        try:
            with np.errstate(all="ignore"):
                return fn(*args)
        finally:
            FORCE_KERNELS = old
    return call


def kernel_names(dtypes=(np.float64,)):
    """Every measured kernel, as ``"<kernel>/<dtype char>"`` (the tuning table's names)."""
    kernels = sorted(_UNARY_KERNEL.values()) + [
        "index_add.1d", "index_add.rows", "im2col", "col2im", "max_pool2d", "max_pool2d_grad"] + [
        "softmax." + k for k in ("softmax", "log_softmax", "logsumexp", "softmax_vjp",
                                 "log_softmax_vjp", "logsumexp_vjp")]
    return [f"{k}/{np.dtype(dt).char}" for dt in dtypes for k in kernels]


def _source_hash():
    """A hash of this file and the kernels' sources: a changed kernel is measured again."""
    import hashlib
    h = hashlib.sha256()
    k = _kernels()
    files = [__file__] + ([getattr(getattr(k, m), "__file__", "") for m in k.__all__] if k else [])
    for f in files:
        try:
            with open(f, "rb") as fh:
                h.update(fh.read())
        except OSError:
            h.update(str(f).encode())
    return {"sources": h.hexdigest()[:16]}


#: The measured rules of this process: ``TUNED.rules`` maps each kernel name to the
#: sizes where numba runs (``(lo, hi)``, hi None: unbounded) or None (numpy always);
#: ``TUNED.timings`` holds the medians they came from.
TUNED = tuning.Table(_probe, key_extra=_source_hash)


def calibrate(dtypes=(np.float64,)):
    """Measure (or load from the cache file) the rule of every kernel for ``dtypes`` now.
    Returns {name: rule}.  A no-op without numba or with ``DUALGRAD_TUNING=off``.

    >>> rules = calibrate()
    >>> all(r is None or r[0] >= 1 for r in rules.values())
    True
    """
    if _kernels() is None:
        return {}
    with use_backend("numba"):
        return {name: TUNED.rule(name) for name in kernel_names(dtypes)}


def warm_up(dtypes=(np.float64,)):
    """Compile (or load from numba's on-disk cache) every kernel for ``dtypes`` now, and
    measure (or load) which of numba and numpy wins each one on this machine
    (:func:`calibrate`), so that no later call pays for either -- e.g. before timing.
    A no-op without numba.  Returns the seconds it took.

    >>> warm_up() >= 0.0
    True
    """
    import time
    t0 = time.perf_counter()
    if _kernels() is None:
        return 0.0
    module = sys.modules[__name__]
    saved = {k: getattr(module, k) for k in ALWAYS_NUMBA}
    try:
        for k, v in ALWAYS_NUMBA.items():
            setattr(module, k, v)
        with use_backend("numba"):
            for dt in dtypes:
                x = np.linspace(0.1, 0.9, 8, dtype=dt).reshape(2, 4)
                for name in UNARY:
                    unary_with_grad(name, x)
                    unary(name, x)
                index_add((3, 4), dt, (np.array([0, 2, 0]),), x[[0, 1, 0]])
                index_add((5,), dt, (np.array([0, 2, 0]),), x[0, :3])
                y = softmax(x, -1)
                softmax_vjp(x, y, -1)
                log_softmax_vjp(x, log_softmax(x, -1), -1)
                logsumexp_vjp(np.ones(2, dt), x, logsumexp(x, -1), -1)
                img, w = x.reshape(1, 1, 2, 4), np.ones((1, 1, 2, 2), dt)
                g = conv2d(img, w, padding=(1, 1))
                conv2d_grad_input(g, w, img.shape, padding=(1, 1))
                conv2d_grad_weight(g, img, w.shape, padding=(1, 1))
                out, arg = max_pool2d(img, 2)
                max_pool2d_grad(out, arg, img.shape)
    finally:
        for k, v in saved.items():
            setattr(module, k, v)
    calibrate(dtypes)
    return time.perf_counter() - t0
