"""The backend seam: the few array kernels where numpy alone is slow.

The engine calls the functions here and never numba.  Each one is a thin dispatch
between two modules with the same functions (minitorch's ``TensorOps`` with
``SimpleOps`` and ``FastOps``):

    reference    the numpy references, always present (and what the kernels are tested against)
    numba_ops    the numba fast paths on ``dualgrad.kernels`` (imported when first needed)
    tuning       the measured crossovers between the two, cached per machine

(a ``cuda_ops`` module for device arrays goes beside ``numba_ops``).  The fast path is
taken when the numba backend is active *and* the call is one the kernel wins on this
machine: float32/float64, and a size where numba was measured faster.  Those sizes
are not constants -- they depend on the CPU (numpy's AVX-512 exp beats a scalar numba
loop that wins against numpy's AVX2 one).  The first call large enough to matter
times both paths on a short ladder of sizes and keeps the result, per machine, in
``TUNED``, the one table of rules (cached on disk by ``tuning``; ``warm_up()``
measures everything at once; ``DUALGRAD_TUNING=off|nocache`` switches it off or keeps
it out of the disk cache).  Both paths give the same answer: bitwise where the
algorithm is the same (scatter-adds, im2col, pooling), to rounding where the order of
a sum or the implementation of a transcendental function differs (a few ulps:
numba's libm and numpy's SIMD loops round differently).

    >>> import numpy as np
    >>> from dualgrad import backend
    >>> with backend.use_backend("numpy"):
    ...     y, dy = backend.unary_with_grad("tanh", np.zeros(3))
    >>> dy.tolist()
    [1.0, 1.0, 1.0]

Choose with ``DUALGRAD_BACKEND=numpy|numba`` (default: numba if it imports),
``set_backend(name)`` or ``with use_backend(name):``.

The module is one idea, kept whole: every dispatched kernel beside the one table of
measured rules (``TUNED``) and the probes that fill it, which name those kernels.  The
modules it dispatches to (``reference``, ``numba_ops``, ``cuda``) hold the work.

May import: ``core`` (``buffers``: the outputs' memory), ``dualgrad.kernels`` and the
standard library.
"""

import contextlib
import glob
import hashlib
import math
import os
import threading
import time
import warnings

import numpy as np

from ..core import buffers
from . import dask, reference, tuning

# ---------------------------------------------------------------------------
# Selection

BACKENDS = ("numpy", "numba")
_state = {"name": None, "numba": None}  # numba: numba_ops once imported, False: no numba


def _numba_ops():
    """The ``numba_ops`` module, or None when numba cannot be imported."""
    ops = _state["numba"]
    if ops is None:
        try:
            import numba  # noqa: F401
        except ImportError:
            ops = False
        else:
            # Here, not at the top: numba may be missing at run time, and importing it
            # with the kernels costs ~0.3 s that ``import dualgrad`` and
            # DUALGRAD_BACKEND=numpy never pay.
            from . import numba_ops as ops  # optional: numba, imported on first use
        _state["numba"] = ops
    return ops or None


def _kernels():
    """The compiled-kernel module ``dualgrad.kernels``, or None when numba cannot be imported."""
    ops = _numba_ops()
    return None if ops is None else ops.kernels


def _check_name(name, what):
    if name not in BACKENDS:
        raise ValueError(f"{what} must be one of {BACKENDS}, got {name!r}")


def get_backend():
    """The active backend's name, ``"numpy"`` or ``"numba"``.

    >>> get_backend() in ("numpy", "numba")
    True
    """
    here = getattr(_thread, "name", None)  # use_backend's, in this thread
    if here is not None:
        return here
    if _state["name"] is None:
        name = os.environ.get("DUALGRAD_BACKEND", "").strip().lower()
        if name:
            _check_name(name, "DUALGRAD_BACKEND")
        if name != "numpy" and _numba_ops() is None:
            if name == "numba":
                warnings.warn("DUALGRAD_BACKEND=numba but numba cannot be imported; "
                              "using numpy", RuntimeWarning, stacklevel=2)
            name = "numpy"
        _state["name"] = name or "numba"
    return _state["name"]


def set_backend(name):
    """Make ``name`` (``"numpy"`` or ``"numba"``) the active backend, in every thread (a
    ``use_backend`` block in progress keeps its own).

    >>> old = get_backend(); set_backend("numpy"); get_backend()
    'numpy'
    >>> set_backend(old)
    """
    _check_name(name, "set_backend(name)")
    if name == "numba" and _numba_ops() is None:
        raise ImportError("set_backend('numba'): numba cannot be imported (pip install numba)")
    _state["name"] = name


_thread = threading.local()  # use_backend's choice, per thread (None: the process's)


@contextlib.contextmanager
def use_backend(name):
    """Run a block with another backend, restoring the previous one after.  The choice is
    this thread's: other threads keep theirs, as numpy's ``errstate`` does.

    >>> with use_backend("numpy"):
    ...     get_backend()
    'numpy'
    """
    _check_name(name, "use_backend(name)")
    if name == "numba" and _numba_ops() is None:
        raise ImportError("use_backend('numba'): numba cannot be imported (pip install numba)")
    old = getattr(_thread, "name", None)
    _thread.name = name
    try:
        yield
    finally:
        _thread.name = old


# ---------------------------------------------------------------------------
# Which module runs a call: the rule table

#: None: each call takes the kernel measured faster on this machine.  True: numba
#: wherever a kernel applies (tests, warm_up); False: numpy always.
FORCE_KERNELS = None

#: Module attributes set so that every call takes its numba kernel (for warm_up, tests):
#: ``for k, v in ALWAYS_NUMBA.items(): monkeypatch.setattr(backend, k, v)``.
ALWAYS_NUMBA = {"FORCE_KERNELS": True}

#: The ladder of sizes each kernel family is timed at (elements; see _probe).  A call
#: smaller than a family's first size takes numpy without measuring anything.
LADDERS = {
    "unary": (512, 4096, 32768, 262144),
    "index_add.1d": (512, 4096, 32768, 262144),
    "index_add.rows": (1024, 8192, 65536, 524288),
    "softmax": (256, 2048, 16384, 131072),
    "conv": (432, 1728, 6912, 27648, 110592, 442368),
    "pool": (256, 1024, 4096, 16384, 65536, 262144),
    "select": (512, 4096, 32768, 262144),
    "tangent": (512, 4096, 32768, 262144),
    "slices": (512, 4096, 32768, 262144),
}
_FAMILY = {"index_add.1d": "index_add.1d", "index_add.rows": "index_add.rows",
           "im2col": "conv", "col2im": "conv", "max_pool2d": "pool", "max_pool2d_grad": "pool",
           "where": "select"}
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


def _fast(*arrays, kernel, size):
    """``numba_ops`` if numba is active, all arrays are float32/float64 of one dtype and
    ``kernel`` wins at ``size`` on this machine (:func:`_use`); else None (the caller
    takes ``reference``)."""
    if (getattr(_thread, "name", None) or _state["name"] or get_backend()) != "numba":
        return None
    dt = arrays[0].dtype
    if dt.char not in "fd":
        return None
    for a in arrays[1:]:
        if a.dtype != dt:
            return None
    if not _use(kernel, dt.char, size):
        return None
    return _state["numba"]


# ---------------------------------------------------------------------------
# Arrays that are not numpy's: device arrays (CuPy) and other array types

def is_foreign_array(x):
    """True for an array that is not numpy's and says where its functions live
    (``__array_namespace__``, ``__cuda_array_interface__``), or a lazy dask array (a dask
    collection with a shape: ``backend/dask.py``): CuPy, dask, a test stand-in.
    Its values stay where they are: no ``np.asarray`` of it anywhere on the engine's paths."""
    c = x.__class__
    return c is not np.ndarray and not isinstance(x, (np.ndarray, np.generic)) and (
        hasattr(c, "__array_namespace__") or hasattr(c, "__cuda_array_interface__")
        or dask.is_dask_array(x))


def _elsewhere(*arrays):
    """None when the call's arrays are host values (numpy arrays pass one class test
    each: the numpy paths pay nothing more); else the module that computes where they
    live -- ``dask`` for dask arrays (lazy), ``cuda`` for GPU arrays (a TypeError naming
    both kinds when host arrays are mixed in), ``reference`` for any other array type,
    whose numpy functions reach it through NEP 13/18 and never convert it."""
    for a in arrays:
        if a.__class__ is not np.ndarray:
            break
    else:
        return None
    if dask.any_dask(*arrays):
        return dask  # lazy: each kernel as dask operations on the chunks
    from . import cuda  # optional: the CUDA module (CuPy, numba-cuda) is for device arrays
    ops = cuda.ops_for(*arrays)
    if ops is not None:
        return ops
    return reference if any(is_foreign_array(a) for a in arrays) else None


def matmul(x, y):
    """``x @ y``: numpy's (and CuPy's) operator; dask arrays through ``dask.matmul``
    (tensordot, per-chunk products and a tree sum).

    >>> matmul(np.ones((2, 3)), np.ones(3)).tolist()
    [3.0, 3.0]
    """
    if x.__class__ is np.ndarray and y.__class__ is np.ndarray:
        return x @ y
    if dask.any_dask(x, y):
        return dask.matmul(x, y)
    return x @ y


# ---------------------------------------------------------------------------
# Elementwise functions and their local derivatives (the rows: reference.UNARY)

UNARY = reference.UNARY

# When the fused numba loop beats numpy is measured per machine (_use, LADDERS): numba
# wins where numpy needs several passes or lacks a SIMD loop (sin and cos fuse into one
# sincos call, relu), numpy's SIMD exp/tanh/log beat numba's scalar libm calls where the
# CPU has wide vectors (AVX-512), and float32 SIMD loops nearly everywhere.
_UNARY_KERNEL = {(name, grad): f"unary.{name}.{'grad' if grad else 'value'}"
                 for name in UNARY for grad in (False, True)}


def _unary_ops(name, x, grad):
    if x.dtype.char in "fd":
        ops = _fast(x, kernel=_UNARY_KERNEL[name, grad], size=x.size)
        if ops is not None:
            return ops
    return reference


def unary(name, x):
    """``f(x)`` for a row of ``UNARY``.

    >>> unary("softplus", np.array([0.0, 1000.0])).tolist()
    [0.6931471805599453, 1000.0]
    """
    reference.row(name)
    ops = _elsewhere(x)
    if ops is not None:
        return ops.unary(name, x, False)[0]
    x = np.asarray(x)
    return _unary_ops(name, x, False).unary(name, x, False)[0]


def unary_with_grad(name, x):
    """``(f(x), f'(x))`` in one fused pass: the value and the local derivative.

    >>> y, dy = unary_with_grad("relu", np.array([-1.0, 0.0, 2.0]))
    >>> y.tolist(), dy.tolist()
    ([0.0, 0.0, 2.0], [0.0, 0.0, 1.0])
    """
    reference.row(name)
    ops = _elsewhere(x)
    if ops is not None:
        return ops.unary(name, x, True)
    x = np.asarray(x)
    return _unary_ops(name, x, True).unary(name, x, True)


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
    reference.row(name)
    kernel = _UNARY_KERNEL[name, True]

    def run(x):
        if x.dtype.char not in "fd":
            return None
        if x.__class__ is not np.ndarray and is_foreign_array(x):
            ops = _elsewhere(x)  # the GPU's fused kernel; another array type: the rule
            return None if ops is reference or ops is dask else ops.unary(name, x, True)
        ops = _fast(x, kernel=kernel, size=x.size)
        return None if ops is None else ops.unary(name, x, True)
    return run


# ---------------------------------------------------------------------------
# Selection: np.where's values by a select loop
#
# numpy's where branches on every entry: on a mask of mixed signs (a relu's) it runs
# about 8x slower than a copy of the same size.  The numba kernel is a select (a vector
# blend), and a select computes nothing: the values are numpy's bit for bit.

_BOOL = np.dtype(bool)


def _select_dtype(c, x, y):
    """The dtype the select kernels run ``np.where(c, x, y)`` in, or None where numpy
    should: c a C-contiguous bool array; x and y C-contiguous arrays of c's shape and one
    float dtype, or one of them a Python number that dtype holds exactly (so numpy's
    result dtype and the scalar's value are the array's)."""
    dt = None
    for v in (x, y):
        if v.__class__ is np.ndarray:
            if v.shape != c.shape or not v.flags.c_contiguous or (dt is not None
                                                                  and v.dtype != dt):
                return None
            dt = v.dtype
    if dt is None or dt.char not in "fd" or not c.flags.c_contiguous:
        return None
    for v in (x, y):
        if v.__class__ is not np.ndarray and not (
                v.__class__ in (float, int) and float(dt.type(v)) == v):  # nan, inexact: numpy
            return None
    return dt


def where(condition, x, y):
    """``np.where(condition, x, y)``: the ``where`` row's impl.  The numba backend's select
    loop where it wins on this machine (a bool condition over float arrays of its shape,
    or one Python number), numpy's where otherwise; the same values either way.

    >>> where(np.array([True, False]), np.array([1.0, 2.0]), 0.0).tolist()
    [1.0, 0.0]
    """
    c = condition
    if c.__class__ is np.ndarray and c.dtype is _BOOL and (
            c.size >= LADDERS["select"][0] or FORCE_KERNELS) \
            and (dt := _select_dtype(c, x, y)) is not None:
        ops = _fast(x if x.__class__ is np.ndarray else y, kernel="where", size=c.size)
        if ops is not None:
            return ops.where(c, dt.type(x) if x.__class__ is not np.ndarray else x,
                             dt.type(y) if y.__class__ is not np.ndarray else y, dt)
    return np.where(condition, x, y)


# ---------------------------------------------------------------------------
# Forward mode's tangents in one pass
#
# numpy computes the product rule's tangent tx * y + x * ty in three passes over the
# tangents (two products, their sum) and x ** 2's, t * (x * 2.0), in two; the numba loops
# read each operand once.  A tangent of B directions times a plain array, t * x, is one
# pass in numpy too, but a row at a time (x broadcast over B rows): one loop here.  The
# same operations, each rounded as numpy rounds it: the same bits.  Where the loop wins is
# measured per machine (LADDERS["tangent"]).

def tangent(kind, t, x, t2=None, y=None):
    """Forward mode's tangent by one numba loop where it wins on this machine, else None
    (the caller computes it with numpy): ``kind`` "product" is ``t * y + x * t2`` (the
    product rule, x and y the primals, t and t2 their tangents), "square" is
    ``t * (x * 2.0)`` (x ** 2), "scale" is ``t * x`` (x a plain array).  The caller checks
    the shapes: x and y 1-D arrays of n entries, t and t2 of shape (n,) or (B, n), all of
    one float dtype.

    >>> x, t = np.arange(3.0), np.ones((2, 3))
    >>> r = tangent("square", t, x)
    >>> r is None or r.tolist() == [[0.0, 2.0, 4.0], [0.0, 2.0, 4.0]]
    True
    """
    ops = _fast(t, x, *(() if y is None else (t2, y)), kernel="tangent." + kind, size=t.size)
    return None if ops is None else ops.tangent(kind, t, x, t2, y)


def _tangent_either(kind, t, x, t2=None, y=None):
    """``tangent``, or numpy's passes where it declines (what the tuning probe times)."""
    r = tangent(kind, t, x, t2, y)
    if r is None:
        r = t * y + x * t2 if kind == "product" else t * x if kind == "scale" \
            else t * (x * 2.0)
    return r


# Slices summed into one array (transforms/slices.py's DualSum: the sweep of a Hessian over
# x[1:] and x[:-1]): numpy adds each slice in one pass over its part of the whole array
# (strided, so a slow one); the numba loop sums a row while it is in the cache.  The same
# additions in the same order per element: the same bits.

def sum_slices(out, parts):
    """``out[...] = 0`` then ``out[:, s:s + m] += v`` for each ``(s, v)`` of ``parts`` in
    order, by one numba pass where it wins on this machine; False (out untouched) where
    not: the caller adds them with numpy.  out (R, n) C-contiguous, each v (R, m), one
    float dtype.

    >>> out, parts = np.empty((1, 3)), [(0, np.ones((1, 2))), (1, np.ones((1, 2)))]
    >>> sum_slices(out, parts) or reference.sum_slices(out, parts) is out
    True
    >>> out.tolist()
    [[1.0, 2.0, 1.0]]
    """
    ops = _fast(out, *(v for _, v in parts), kernel="slices.sum", size=out.size)
    if ops is None:
        return False
    ops.sum_slices(out, parts)
    return True


def _sum_slices_either(out, parts):
    """``sum_slices``, or numpy's adds where it declines (what the tuning probe times)."""
    if not sum_slices(out, parts):
        reference.sum_slices(out, parts)
    return out


# ---------------------------------------------------------------------------
# Scatter-add: the VJP of indexing
#
# numba's loop against numpy is measured per machine, separately for rows (D > 1:
# numba against a flat add.at) and for 1-D values (numpy's add.at has a fast loop for
# those).

def index_add(shape, dtype, index, values):
    """``out = zeros(shape, dtype); np.add.at(out, index, values); out`` -- repeated
    indices accumulate.  Any numpy index; the gather case ``(:,)*nb + (int array,)``
    takes a compiled loop (numba) or a flat 1-D ``add.at`` (numpy), bitwise equal.

    >>> index_add((3,), np.float64, np.array([0, 2, 0, -1]), np.ones(4)).tolist()
    [2.0, 0.0, 2.0]
    """
    ops = _elsewhere(values)
    if ops is not None:
        shape, dtype = tuple(shape), np.dtype(dtype)
        return ops.index_add(shape, dtype, index, values,
                             reference.gather_layout(shape, index, values))
    shape, dtype, values = tuple(shape), np.dtype(dtype), np.asarray(values)
    layout = reference.gather_layout(shape, index, values) if dtype.char in "fd" else None
    if layout is not None:
        nb, idx, B, V, D = layout
        ops = _fast(values.astype(dtype, copy=False),
                    kernel="index_add.1d" if D == 1 else "index_add.rows", size=values.size)
        if ops is not None:
            vals = reference.as_rows(values, dtype, idx, B, D)
            return ops.index_add_rows(vals, idx.reshape(-1), B, V, D, nb).reshape(shape)
    return reference.index_add(shape, dtype, index, values, layout)


# ---------------------------------------------------------------------------
# Softmax, log-softmax, logsumexp
#
# numba's row loops make one pass for the max and one for exp and the sum, against
# numpy's ~5 passes and temporaries; numpy's SIMD exp can still win on large inputs.
# Measured per machine and per function (softmax, ..., logsumexp_vjp).  numba runs
# rows of the last axis; other axes go to numpy.

def _on_rows(kernel, axis, *arrays):
    """The numba row kernel's answer for arrays of one shape, or None (take numpy)."""
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays[1:]):
        return None
    ops = _fast(*arrays, kernel="softmax." + kernel, size=arrays[0].size)
    return None if ops is None else ops.on_rows(kernel, axis, *arrays)


def _row_function(kernel, axis, *arrays):
    """``kernel`` (softmax, log_softmax or their VJPs) on the arrays' own device, by the
    numba row kernel where it is measured faster, else by the numpy reference."""
    ops = _elsewhere(*arrays)
    if ops is not None:
        return getattr(ops, kernel)(*arrays, axis)
    arrays = [np.asarray(a) for a in arrays]
    out = _on_rows(kernel, axis, *arrays)
    return getattr(reference, kernel)(*arrays, axis) if out is None else out


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x), axis)``, computed stably.

    >>> softmax(np.array([1000.0, 1000.0])).tolist()
    [0.5, 0.5]
    """
    return _row_function("softmax", axis, x)


def log_softmax(x, axis=-1):
    """``x - logsumexp(x, axis, keepdims=True)``, computed stably.

    >>> log_softmax(np.array([0.0, 0.0])).tolist() == [-np.log(2)] * 2
    True
    """
    return _row_function("log_softmax", axis, x)


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x), axis))``, computed stably; ``axis=None`` reduces everything.

    >>> bool(logsumexp(np.array([1000.0, 1000.0])) == 1000 + np.log(2))
    True
    >>> float(logsumexp(np.array([-np.inf, -np.inf])))
    -inf
    """
    ops = _elsewhere(x)
    if ops is not None:
        out = ops.logsumexp(x, axis, keepdims)
        return out[()] if out.ndim == 0 else out
    x = np.asarray(x)
    ops = _fast(x, kernel="softmax.logsumexp", size=x.size)
    out = None if ops is None else ops.logsumexp(x, axis, keepdims)
    if out is None:
        out = reference.logsumexp(x, axis, keepdims)
    return out[()] if out.ndim == 0 else out


def softmax_vjp(g, y, axis=-1):
    """Cotangent of softmax's input from ``g`` and its output ``y``: ``y * (g - <g, y>)``.

    >>> softmax_vjp(np.ones(2), np.array([0.5, 0.5])).tolist()
    [0.0, 0.0]
    """
    return _row_function("softmax_vjp", axis, g, y)


def log_softmax_vjp(g, y, axis=-1):
    """Cotangent of log_softmax's input from ``g`` and its output ``y``:
    ``g - exp(y) * sum(g)``.

    >>> log_softmax_vjp(np.array([1.0, 0.0]), np.log([0.5, 0.5])).tolist()
    [0.5, -0.5]
    """
    return _row_function("log_softmax_vjp", axis, g, y)


def logsumexp_vjp(g, x, ans, axis=None, keepdims=False):
    """Cotangent of logsumexp's input: ``g * exp(x - ans)``, g and ans re-expanded
    over the reduced axes (g may carry leading batch axes).

    >>> logsumexp_vjp(1.0, np.zeros(2), np.log(2.0)).tolist()
    [0.5, 0.5]
    """
    ops = _elsewhere(g, x, ans)
    if ops is not None:  # the GPU's row kernel takes g and ans of the reduced shape
        if ops is not reference and ops is not dask and not keepdims and \
                np.shape(g) == np.shape(ans) == reference.reduced_shape(x.shape, axis, False):
            return ops.logsumexp_vjp(g, x, ans, axis)
        return reference.logsumexp_vjp(g, x, ans, axis, keepdims)
    g, x, ans = np.asarray(g), np.asarray(x), np.asarray(ans)
    rshape = reference.reduced_shape(x.shape, axis, keepdims)
    ops = _fast(x, g, ans, kernel="softmax.logsumexp_vjp",
                size=x.size) if g.shape == ans.shape == rshape else None
    out = None if ops is None else ops.logsumexp_vjp(g, x, ans, axis)
    return reference.logsumexp_vjp(g, x, ans, axis, keepdims) if out is None else out


# ---------------------------------------------------------------------------
# conv2d (NCHW, PyTorch semantics: cross-correlation, zero padding, no groups)
#
# BLAS products around im2col / col2im (reference.conv2d...); only the data movement
# has a fast path, chosen per call here.

conv_geometry = reference.conv_geometry


def _matmul(a, b):
    """``np.matmul(a, b)`` of one float dtype into ``core.buffers.empty``'s output (the
    same product, its memory reused by the next gradient)."""
    dt = a.dtype
    if b.dtype != dt or dt.char not in "fd" or a.ndim < 2 or b.ndim < 2:
        return np.matmul(a, b)
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    return np.matmul(a, b, out=buffers.empty(shape, dt))


def _im2col(x, kh, kw, geo, out_hw):
    size = x.shape[0] * x.shape[1] * kh * kw * out_hw[0] * out_hw[1]
    return (_fast(x, kernel="im2col", size=size) or reference).im2col(x, kh, kw, geo, out_hw)


def _col2im(cols, x_shape, geo):
    return (_fast(cols, kernel="col2im", size=cols.size) or reference).col2im(cols, x_shape, geo)


def conv2d(x, w, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """2-D cross-correlation of x (N, C, H, W) with w (C_out, C, kH, kW) -> (N, C_out, Ho, Wo).

    Ho = floor((H + 2*padding - dilation*(kH - 1) - 1) / stride) + 1, as in PyTorch.
    Leading axes before N (a batch of tangents) are folded into N.

    >>> conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), padding=1)[0, 0].tolist()
    [[1.0, 2.0, 2.0, 1.0], [2.0, 4.0, 4.0, 2.0], [2.0, 4.0, 4.0, 2.0], [1.0, 2.0, 2.0, 1.0]]
    """
    ops = _elsewhere(x, w)
    if ops is not None:
        return ops.conv2d(x, w, *conv_geometry(x.shape, w.shape, stride, padding, dilation))
    x, w = np.asarray(x), np.asarray(w)
    geo, out_hw = conv_geometry(x.shape, w.shape, stride, padding, dilation)
    return reference.conv2d(x, w, geo, out_hw, im2col=_im2col, matmul=_matmul)


def conv2d_grad_input(g, w, x_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """Cotangent of conv2d's x from g (N, C_out, Ho, Wo); leading batch axes allowed.

    >>> conv2d_grad_input(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), (1, 1, 3, 3))[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    ops = _elsewhere(g, w)
    if ops is not None:
        return ops.conv2d_grad_input(
            g, w, x_shape, *conv_geometry(x_shape, w.shape, stride, padding, dilation))
    g, w = np.asarray(g), np.asarray(w)
    geo, out_hw = conv_geometry(x_shape, w.shape, stride, padding, dilation)
    return reference.conv2d_grad_input(g, w, x_shape, geo, out_hw, col2im=_col2im,
                                       matmul=_matmul)


def conv2d_grad_weight(g, x, w_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """Cotangent of conv2d's w from g (N, C_out, Ho, Wo); g may carry leading batch axes.

    >>> conv2d_grad_weight(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3)), (1, 1, 2, 2))
    array([[[[4., 4.],
             [4., 4.]]]])
    """
    ops = _elsewhere(g, x)
    if ops is not None:
        return ops.conv2d_grad_weight(
            g, x, w_shape, *conv_geometry(x.shape, w_shape, stride, padding, dilation))
    g, x = np.asarray(g), np.asarray(x)
    geo, out_hw = conv_geometry(x.shape, w_shape, stride, padding, dilation)
    return reference.conv2d_grad_weight(g, x, w_shape, geo, out_hw, im2col=_im2col,
                                        matmul=_matmul)


# ---------------------------------------------------------------------------
# max_pool2d (PyTorch semantics: -inf padding, floor mode, first max wins)
#
# numba's window scan against numpy's running max over kh*kw strided views: measured.

def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over (kernel_size) windows -> (out, argmax); argmax indexes each H*W plane.

    >>> out, arg = max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2)
    >>> out[0, 0].tolist(), arg[0, 0].tolist()
    ([[5.0, 7.0], [13.0, 15.0]], [[5, 7], [13, 15]])
    """
    ops = _elsewhere(x)
    if ops is not None:
        return ops.max_pool2d(x, *reference.pool_geometry(x.shape, kernel_size, stride, padding))
    x = np.asarray(x)
    geo, out_hw = reference.pool_geometry(x.shape, kernel_size, stride, padding)
    return (_fast(x, kernel="max_pool2d", size=x.size) or reference).max_pool2d(x, geo, out_hw)


def max_pool2d_grad(g, argmax, x_shape):
    """Cotangent of max_pool2d's x: g scattered (summed) onto the argmax positions.
    g may carry leading batch axes in front of argmax's shape.

    >>> max_pool2d_grad(np.ones((1, 1, 1, 1)), np.array([[[[3]]]]), (1, 1, 2, 2))[0, 0].tolist()
    [[0.0, 0.0], [0.0, 1.0]]
    """
    ops = _elsewhere(g, argmax)
    if ops is not None:
        return ops.max_pool2d_grad(g, argmax, tuple(x_shape))
    g, argmax, x_shape = np.asarray(g), np.asarray(argmax), tuple(x_shape)
    size = math.prod(g.shape[:g.ndim - argmax.ndim]) * math.prod(x_shape)  # as x's cotangent
    ops = _fast(g, kernel="max_pool2d_grad", size=size) or reference
    return ops.max_pool2d_grad(g, argmax, x_shape)


# ---------------------------------------------------------------------------
# Measuring the crossovers (TUNED keeps them; tuning caches them on disk)

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
        elif family == "tangent":  # one direction of an n-entry primal; "scale": √n of them
            kind = kernel.partition(".")[2]
            m = max(int(n ** 0.5), 2)
            shape = (m, n // m) if kind == "scale" else (n,)
            x, y = (r.standard_normal(shape[-1]).astype(dt) for _ in range(2))
            t, t2 = (r.standard_normal(shape).astype(dt) for _ in range(2))
            out.append((n, _forcing(_tangent_either, kind, t, x, t2, y)))
        elif family == "slices":                  # a Hessian's x[:-1], x[1:], x[:-1]
            m = max(int(n ** 0.5), 2)
            o = np.empty((n // m, m), dt)
            parts = [(s, r.standard_normal((n // m, m - 1)).astype(dt)) for s in (0, 1, 0)]
            out.append((n, _forcing(_sum_slices_either, o, parts)))
        elif family == "select":                  # a relu's mask: half the entries
            c = r.standard_normal(n) > 0
            out.append((n, _forcing(where, c, r.standard_normal(n).astype(dt), 0.0)))
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
        "index_add.1d", "index_add.rows", "im2col", "col2im", "max_pool2d", "max_pool2d_grad",
        "where", "tangent.product", "tangent.square", "tangent.scale", "slices.sum"] + [
        "softmax." + k for k in ("softmax", "log_softmax", "logsumexp", "softmax_vjp",
                                 "log_softmax_vjp", "logsumexp_vjp")]
    return [f"{k}/{np.dtype(dt).char}" for dt in dtypes for k in kernels]


def _source_hash():
    """A hash of this package's modules and the kernels' sources: a changed kernel,
    dispatch or probe is measured again."""
    h = hashlib.sha256()
    k = _kernels()
    files = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "*.py")))
    files += [getattr(getattr(k, m), "__file__", "") for m in k.__all__] if k else []
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
    if _numba_ops() is None:
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
    t0 = time.perf_counter()
    if _numba_ops() is None:
        return 0.0
    module = globals()
    saved = {k: module[k] for k in ALWAYS_NUMBA}
    try:
        module.update(ALWAYS_NUMBA)
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
                c = x > 0.5
                where(c, x, 0.0), where(c, 0.0, x), where(c, x, x)
                tangent("product", x, x[0], x, x[1]), tangent("square", x, x[0])
                tangent("product", x[0], x[0], x[1], x[1]), tangent("square", x[0], x[1])
                tangent("product", x[:, 1:], x[0, 1:], x[:, :3], x[1, 1:])  # strided: views
                tangent("square", x[:, 1:], x[0, 1:]), tangent("square", x[0, ::2], x[1, :2])
    finally:
        module.update(saved)
    calibrate(dtypes)
    return time.perf_counter() - t0
