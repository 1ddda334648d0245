"""The numba fast paths: the backend's operations on the CPU kernels of ``dualgrad.kernels``.

minitorch's ``FastOps`` beside ``reference`` (its ``SimpleOps``): each function has the
signature of the reference function of the same name and gives the same answer
(bitwise where the arithmetic is the same, to a few ulps where a transcendental
function is; ``tests/test_kernels.py``).  Nothing here decides whether to run:
``dualgrad.backend`` calls these only for float32/float64 arrays of one dtype at a
size the kernel was measured to win.  What is left here is moving data into the
kernels' layout (flat, C-contiguous rows, preallocated outputs) and back.  A future
``cuda_ops.py`` sits beside this module with the same functions over the kernels'
``@cuda.jit`` twins.

Threads: the elementwise maps, the softmax rows and im2col/col2im have a ``parallel=True``
twin (``prange``; each element or row is still computed by one thread in the same
order, so twins agree bitwise).  Whether a twin runs is measured, never assumed: when
the calling thread has more than one numba thread (``numba.get_num_threads()``), the
first call of at least ``PARALLEL_LADDER[0]`` elements times the serial kernel and its
twin side by side on the ladder (``PARALLEL``, a ``tuning.Table`` cached per machine
like the numba-vs-numpy rules, its rule names ending in ``@t<threads>``), and the twin
runs only at the sizes where it won.  The numba-vs-numpy rule above it
(``backend.TUNED``) is measured through these functions, so numpy is compared with the
faster of the two.  One parallel kernel runs at a time in the process (numba's
``workqueue`` threading layer aborts on concurrent launches; two Python threads
already use two cores): a call that finds another one running takes the serial kernel.
The scatter-adds and max pooling stay serial (parallel scatters race).  A busy machine
is the twins' risk: when other processes hold the cores, a parallel launch waits for its
worker threads to be scheduled (measured on a loaded 2-core EPYC: 10-20 ms for what takes
0.1 ms serial), so a twin measured on an idle machine can lose badly later on a loaded
one (as threaded BLAS and torch do).  The timings keep the load average they were taken
at; ``numba.set_num_threads(1)`` (per thread), ``NUMBA_NUM_THREADS=1`` or
``FORCE_PARALLEL = False`` keep every call serial.

Importing this module imports numba (and compiles nothing: kernels are
``@njit(cache=True)``, compiled or loaded from the disk cache on first call:
``dualgrad.kernels.diskcache``).
"""

import hashlib
import os
import threading

import numpy as np

from .. import kernels  # installed as dualgrad.kernels (pyproject's package-dir mapping)
from ..core.buffers import empty
from . import reference, tuning

# ---------------------------------------------------------------------------
# Serial or parallel: the measured choice, per numba thread count

#: Sizes (elements) the parallel twins are timed at; smaller calls run serial unmeasured.
PARALLEL_LADDER = (4096, 32768, 262144)

#: None: the measured choice.  True: the parallel twin on every call (tests; it runs with
#: one thread too).  False: serial always.
FORCE_PARALLEL = None

_launch = threading.Lock()  # held while a parallel kernel runs (one at a time)
_MISSING = object()


def parallel_rule_name(kernel, char, threads):
    """The ``PARALLEL`` table's name for ``kernel`` on dtype ``char`` with ``threads``.

    >>> parallel_rule_name("unary.tanh.grad", "d", 2)
    'unary.tanh.grad/d@t2'
    """
    return f"{kernel}/{char}@t{int(threads)}"


def use_parallel(kernel, char, n):
    """True when the parallel twin of ``kernel`` should run on ``n`` elements of dtype
    ``char`` in this thread: more than one numba thread here, and the twin measured
    faster than the serial kernel at that size with that many threads.

    >>> use_parallel("unary.exp.grad", "d", 10)   # below the ladder: serial, unmeasured
    False
    """
    force = FORCE_PARALLEL
    if force is not None:
        return force
    if n < PARALLEL_LADDER[0]:
        return False
    threads = tuning.numba_threads()
    if threads < 2:
        return False
    name = parallel_rule_name(kernel, char, threads)
    rule = PARALLEL.rules.get(name, _MISSING)
    if rule is _MISSING:
        rule = PARALLEL.rule(name)
    return tuning.applies(rule, n)


def _run(kernel, n, serial, parallel, *args):
    """``serial(*args)`` or, where it wins and no other parallel kernel is running,
    ``parallel(*args)``."""
    if use_parallel(kernel, args[0].dtype.char, n) and _launch.acquire(blocking=False):
        try:
            return parallel(*args)
        finally:
            _launch.release()
    return serial(*args)

# ---------------------------------------------------------------------------
# Elementwise: one fused loop per UNARY row, compiled on first use

_unary_kernels = {}  # (name, parallel) -> kernel


def _vector_rows():
    """The UNARY rows with a kernels/vecmath.py form, ``(f, df)`` on its functions: plain
    arithmetic, so LLVM vectorizes the fused loop (a libm call per entry does not
    vectorize: tanh with its derivative, 1e6 float64s, 16 ms against 1.7 ms).  Each is
    within 4 ulp of numpy (tests/test_vecmath.py); sin and cos beyond LIMITS are the
    reference row's."""
    from ..kernels import vecmath as v
    return {
        "sin": (lambda x: v.sin(x), lambda x, y: v.cos(x)),
        "cos": (lambda x: v.cos(x), lambda x, y: -v.sin(x)),
        "exp": (lambda x: v.exp(x), lambda x, y: y),
        "expm1": (lambda x: v.expm1(x), lambda x, y: y + 1),
        "log": (lambda x: v.log(x), lambda x, y: 1 / x),
        "log1p": (lambda x: v.log1p(x), lambda x, y: 1 / (1 + x)),
        "tanh": (lambda x: v.tanh(x), lambda x, y: 1 - y * y),
        "sigmoid": (lambda x: v.sigmoid(x), lambda x, y: y * (1 - y)),
    }, v.LIMITS


def unary_kernel(name, parallel=False):
    """The compiled map of the row ``name`` (serial, or its ``prange`` twin): the row's
    vecmath form where it has one (``_vector_rows``), else the reference row itself."""
    kernel = _unary_kernels.get((name, parallel))
    if kernel is None:
        rows, limits = _vector_rows()
        row = reference.UNARY[name]
        if name in rows:
            limit = limits[name]
            kernel = kernels.elementwise.compile_unary(
                *rows[name], parallel=parallel, exact=row if limit < float("inf") else None,
                limit=limit)
        else:
            kernel = kernels.elementwise.compile_unary(*row, parallel=parallel)
        kernel = _unary_kernels.setdefault((name, parallel), kernel)
    return kernel


def unary(name, x, grad):
    """``(f(x), f'(x) if grad else None)`` for the row ``name``, in one pass."""
    xf = np.ascontiguousarray(x).reshape(-1)
    # numpy's allocation, as the reference row's: the measured choice between the two
    # (backend.TUNED) times each with its own (cached buffers here alone skewed it: numba's
    # square won the probe at 262,144 entries and lost inside a gradient, 26 ms against 22)
    y = np.empty_like(xf)
    d = np.empty_like(xf) if grad else y
    n = xf.shape[0]
    kernel = f"unary.{name}.{'grad' if grad else 'value'}"
    if n >= PARALLEL_LADDER[0] or FORCE_PARALLEL:
        _run(kernel, n, unary_kernel(name), unary_kernel(name, True), xf, y, d, grad)
    else:
        unary_kernel(name)(xf, y, d, grad)
    return y.reshape(x.shape), (d.reshape(x.shape) if grad else None)


def where(c, x, y, dtype):
    """``np.where(c, x, y)`` by one select loop (``kernels.elementwise.select``): c a
    C-contiguous bool array, x and y C-contiguous arrays of its shape and ``dtype``, or
    one of them a scalar of ``dtype``.  Serial: the loop is as fast as memory."""
    out = empty(c.shape, dtype)
    e, flat = kernels.elementwise, out.reshape(-1)
    if x.__class__ is not np.ndarray:
        e.select_then(c.reshape(-1), x, y.reshape(-1), flat)
    elif y.__class__ is not np.ndarray:
        e.select_else(c.reshape(-1), x.reshape(-1), y, flat)
    else:
        e.select(c.reshape(-1), x.reshape(-1), y.reshape(-1), flat)
    return out


def tangent(kind, t, x, t2=None, y=None):
    """Forward mode's tangent in one loop (``kernels.elementwise``): ``kind`` "product"
    gives ``t * y + x * t2``, "square" ``t * (x * 2.0)``, "scale" ``t * x``; ``x`` and
    ``y`` 1-D of n entries, ``t`` and ``t2`` (n,) or (B, n), any strides; the result is
    t's shape, in a cached buffer where large."""
    rows = (1, t.shape[0]) if t.ndim == 1 else t.shape
    out = empty(t.shape, t.dtype)
    o = out.reshape(rows)
    if kind == "product":
        kernels.elementwise.product_tangent(t.reshape(rows), y, x, t2.reshape(rows), o)
    elif kind == "scale":
        kernels.elementwise.scaled_tangent(t.reshape(rows), x, o)
    else:
        kernels.elementwise.square_tangent(t.reshape(rows), x, o)
    return out


# ---------------------------------------------------------------------------
# Scatter-add

def index_add_rows(vals, idx, B, V, D, axis):
    """out (B, V, D) with out[b, idx[i]] += vals[b, i]: one compiled loop."""
    out = np.zeros((B, V, D), vals.dtype)
    bad = kernels.scatter.index_add_rows(out, idx.astype(np.intp, copy=False), vals)
    if bad >= 0:
        reference.index_error(idx[bad], axis, V)
    return out


def sum_slices(out, parts):
    """out = 0, then out[:, s:s + m] += v for each (s, v) in order (parts not empty): the
    kernel takes four slices a call (each count and layout is compiled once)."""
    k = kernels.scatter.sum_slices
    for i in range(0, len(parts), 4):
        k(out, tuple(parts[i:i + 4]), i == 0)


# ---------------------------------------------------------------------------
# Softmax family: rows of the last non-trivial axis; None for any other axis

def on_rows(kernel, axis, *arrays):
    """``kernels.softmax.<kernel>_rows(rows..., out)`` over arrays of one shape,
    reshaped back; None when ``axis`` is not their last non-trivial axis."""
    rows = [reference.rows(a, axis) for a in arrays]
    if rows[0] is None:
        return None
    out = np.empty_like(rows[0])
    _rows(kernel, *rows, out)
    return out.reshape(arrays[0].shape)


def _rows(kernel, *args):
    """``kernels.softmax.<kernel>_rows(*args)``, or its parallel twin where it wins and
    there are rows to split (one row runs serial)."""
    x = args[1] if kernel == "logsumexp_vjp" else args[0]
    serial = getattr(kernels.softmax, kernel + "_rows")
    if x.size < PARALLEL_LADDER[0] and not FORCE_PARALLEL \
            or x.shape[0] < 2 and FORCE_PARALLEL is None:
        return serial(*args)
    return _run("softmax." + kernel, x.size, serial,
                getattr(kernels.softmax, kernel + "_rows_parallel"), *args)


def logsumexp(x, axis, keepdims):
    r = x.reshape(1, -1) if axis is None else reference.rows(x, axis)
    if r is None:
        return None
    out = np.empty(r.shape[0], x.dtype)
    _rows("logsumexp", np.ascontiguousarray(r), out)
    return out.reshape(reference.reduced_shape(x.shape, axis, keepdims))


def logsumexp_vjp(g, x, ans, axis):
    """g and ans of the reduced shape; None for an axis the rows do not cover."""
    r = x.reshape(1, -1) if axis is None else reference.rows(x, axis)
    if r is None:
        return None
    out = np.empty(r.shape, x.dtype)
    _rows("logsumexp_vjp", np.ascontiguousarray(g).reshape(-1), np.ascontiguousarray(r),
          np.ascontiguousarray(ans).reshape(-1), out)
    return out.reshape(x.shape)


# ---------------------------------------------------------------------------
# conv2d's data movement and max_pool2d
#
# Direct numba convolutions were measured too and lost to BLAS (1.9-5.7 ms vs 1.4 ms
# on the bench workload), so numba only moves data: im2col and col2im, each where it
# beats numpy's kH*kW strided slice copies / adds on this machine (measured: col2im
# usually everywhere, im2col for small inputs).

def im2col(x, kh, kw, geo, out_hw):
    N, C = x.shape[:2]
    cols = empty((N, C, kh, kw) + tuple(out_hw), x.dtype)
    _planes("im2col", cols.size, N * C, np.ascontiguousarray(x), *geo, cols)
    return cols


def col2im(cols, x_shape, geo):
    N, C = cols.shape[:2]
    gx = empty((N, C) + tuple(x_shape[-2:]), cols.dtype)
    gx.fill(0)  # (a reused buffer: a memset, where np.zeros's fresh pages fault)
    _planes("col2im", cols.size, N * C, cols, *geo, gx)
    return gx


def _planes(kernel, n, planes, *args):
    """``kernels.conv.<kernel>(*args)`` or its parallel twin (split over the ``planes``
    image planes; one plane runs serial)."""
    serial = getattr(kernels.conv, kernel)
    if n < PARALLEL_LADDER[0] and not FORCE_PARALLEL or planes < 2 and FORCE_PARALLEL is None:
        return serial(*args)
    return _run(kernel, n, serial, getattr(kernels.conv, kernel + "_parallel"), *args)


def max_pool2d(x, geo, out_hw):
    """One window scan per output: (out, argmax), the first maximum (or NaN) winning."""
    H, W = x.shape[-2:]
    Ho, Wo = out_hw
    lead = x.shape[:-2]
    out = np.empty(lead + (Ho, Wo), x.dtype)
    arg = np.empty(lead + (Ho, Wo), np.intp)
    kernels.conv.max_pool2d_fwd(np.ascontiguousarray(x).reshape(1, -1, H, W), *geo,
                                out.reshape(1, -1, Ho, Wo), arg.reshape(1, -1, Ho, Wo))
    return out, arg


def max_pool2d_grad(g, argmax, x_shape):
    batch, B, P, HW, Ho, Wo = reference.pool_grad_layout(g, argmax, x_shape)
    gx = np.zeros((B, P, HW), g.dtype)
    kernels.conv.max_pool2d_bwd(np.ascontiguousarray(g).reshape(B, P, Ho, Wo),
                                np.ascontiguousarray(argmax, dtype=np.intp).reshape(P, Ho, Wo), gx)
    return gx.reshape(batch + x_shape)


# ---------------------------------------------------------------------------
# Measuring serial against parallel (PARALLEL keeps the rules; tuning caches them)

def _probe_parallel(name):
    """[(size, call)] over ``PARALLEL_LADDER`` for ``name`` (``parallel_rule_name``):
    ``call(parallel)`` runs the serial kernel or its twin once on a typical input of
    that size, in the calling thread (whose numba thread count the name carries)."""
    kernel, _, rest = name.partition("/")
    dt = np.dtype(rest.partition("@")[0])
    family, _, what = kernel.partition(".")
    r = np.random.default_rng(0)
    out = []
    for n in PARALLEL_LADDER:
        if family == "unary":
            row, _, mode = what.partition(".")
            x = (0.05 + np.abs(r.standard_normal(n))).astype(dt)  # inside every row's domain
            y, d = np.empty_like(x), np.empty_like(x)
            kern = (unary_kernel(row), unary_kernel(row, True))
            args = (x, y, d, mode == "grad")
        elif family == "softmax":
            x = r.standard_normal((n // 16, 16)).astype(dt)
            g = r.standard_normal(x.shape).astype(dt)
            o = np.empty_like(x)
            args = {"softmax": (x, o), "log_softmax": (x, o), "logsumexp": (x, o[:, 0].copy()),
                    "softmax_vjp": (g, x, o), "log_softmax_vjp": (g, x, o),
                    "logsumexp_vjp": (g[:, 0].copy(), x, x[:, 0].copy(), o)}[what]
            kern = (getattr(kernels.softmax, what + "_rows"),
                    getattr(kernels.softmax, what + "_rows_parallel"))
        elif family in ("im2col", "col2im"):      # 3 channels, 3x3 kernel, padding 1
            side = min(32, int(round((n / 27) ** 0.5)))
            N = max(n // (27 * side * side), 1)
            x = r.standard_normal((N, 3, side, side)).astype(dt)
            cols = r.standard_normal((N, 3, 3, 3, side, side)).astype(dt)
            geo = (1, 1, 1, 1, 1, 1)
            if family == "im2col":
                args = (x,) + geo + (cols,)
            else:
                args = (cols,) + geo + (np.zeros_like(x),)  # adds: timing only, values grow
            kern = (getattr(kernels.conv, family), getattr(kernels.conv, family + "_parallel"))
            n = cols.size
        else:
            raise ValueError(f"no parallel twin for kernel {kernel!r}")
        out.append((n, _calling(kern, args)))
    return out


def _calling(kern, args):
    def call(parallel):
        with np.errstate(all="ignore"):
            return kern[bool(parallel)](*args)
    return call


def _parallel_sources():
    """The tuning key's extra part: which table, and a hash of the kernels' sources and
    this module (a changed kernel is measured again)."""
    h = hashlib.sha256()
    for f in [__file__] + [getattr(getattr(kernels, m), "__file__", "") for m in kernels.__all__]:
        try:
            with open(f, "rb") as fh:
                h.update(fh.read())
        except OSError:
            h.update(os.fsencode(str(f)))
    return {"table": "parallel", "sources": h.hexdigest()[:16]}


#: Where each parallel twin beats its serial kernel: ``PARALLEL.rules`` maps
#: ``"<kernel>/<dtype char>@t<threads>"`` to the sizes where the twin runs (``(lo, hi)``,
#: hi None: unbounded) or None (serial always); ``PARALLEL.timings`` holds the medians.
PARALLEL = tuning.Table(_probe_parallel, key_extra=_parallel_sources,
                        labels=("serial", "parallel"))
