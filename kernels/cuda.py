"""The ``@cuda.jit`` twins of the CPU kernels, for device arrays (CuPy, numba).

Imported only by ``dualgrad.backend.cuda`` (``import dualgrad.kernels`` never imports
numba.cuda).  Each kernel takes its inputs and preallocated outputs as device arrays --
anything with ``__cuda_array_interface__``, zero-copy; under the simulator
(``NUMBA_ENABLE_CUDASIM=1``) ``cuda.to_device`` arrays or numpy arrays -- and launches
a grid-stride loop, so any grid covers any size.  The scalar math is the CPU's:

    elementwise  compile_unary(f, df): the same two row formulas as the CPU kernel
    softmax      the ``*_row`` bodies of kernels/softmax.py, one thread per row
    conv         kernels/conv.py's ``window_max``, one thread per pooling window

compiled here with ``cuda.jit(device=True)`` (:func:`device`), with ``np`` bound to
numpy plus ``kernels/npmath.py`` for the functions numba-cuda lacks.  The data
movement is per target: im2col / col2im are one thread per output element (col2im
gathers in the CPU's (i, j) order, so both are bitwise the CPU's); scatter-adds use
atomics, or with ``deterministic=True`` one thread per column in ``np.add.at`` order.

    >>> import numpy as np
    >>> from numba import cuda
    >>> x = cuda.to_device(np.zeros(3)); y = cuda.device_array(3); d = cuda.device_array(3)
    >>> unary(compile_unary(lambda x: np.exp(x), lambda x, y: y), x, y, d, True)
    >>> d.copy_to_host().tolist()
    [1.0, 1.0, 1.0]
"""

import types

import numpy as np
from numba import config, cuda

from . import npmath
from .conv import window_max
from .softmax import (
    log_softmax_row,
    log_softmax_vjp_row,
    logsumexp_row,
    logsumexp_vjp_row,
    softmax_row,
    softmax_vjp_row,
)

SIMULATED = bool(config.ENABLE_CUDASIM)

#: Threads per block, and the most blocks a launch uses (the grid-stride loops do the
#: rest).  The simulator runs one Python thread per CUDA thread, so it gets few.
THREADS = 32 if SIMULATED else 256
MAX_BLOCKS = 2 if SIMULATED else 4096


def blocks(n):
    """The number of blocks for ``n`` work items (at least one)."""
    return max(1, min(MAX_BLOCKS, (n + THREADS - 1) // THREADS))


# ---------------------------------------------------------------------------
# The scalar math, compiled for the GPU

def _numpy_for_cuda():
    """numpy with npmath's functions in place of those numba-cuda cannot compile.  The
    simulator runs device functions as Python, where numpy itself is right (IEEE
    results on numpy scalars: ``math.exp(1000)`` would raise)."""
    if SIMULATED:
        return np
    ns = types.ModuleType("numpy_for_cuda")
    ns.__dict__.update(np.__dict__)
    for name in npmath.__all__:
        setattr(ns, name, cuda.jit(device=True)(getattr(npmath, name)))
    return ns


NP = _numpy_for_cuda()
_device = {}


def device(fn):
    """``fn`` (a plain-Python scalar function, or one under ``register_jitable``) as a
    CUDA device function: ``np`` in it means :data:`NP`, and the plain functions it
    calls are compiled the same way.

    >>> device(lambda x: np.exp(x)) is not None
    True
    """
    dev = _device.get(fn)
    if dev is None:
        env = dict(fn.__globals__, np=NP)
        for name in fn.__code__.co_names:
            v = env.get(name)
            if isinstance(v, types.FunctionType) and v is not fn:
                env[name] = device(v)
        twin = types.FunctionType(fn.__code__, env, fn.__name__, fn.__defaults__,
                                  fn.__closure__)
        dev = _device[fn] = cuda.jit(device=True)(twin)
    return dev


# ---------------------------------------------------------------------------
# Elementwise: y = f(x) and f'(x) in one pass

def compile_unary(f, df):
    """A kernel ``k(x, y, d, grad)`` over flat arrays: y[i] = f(x[i]) and, if ``grad``,
    d[i] = df(x[i], y[i]) -- kernels.elementwise.compile_unary's loop, on the GPU.
    Launch it with :func:`unary`."""
    f, df = device(f), device(df)

    @cuda.jit
    def kernel(x, y, d, grad):
        start, step = cuda.grid(1), cuda.gridsize(1)
        if grad:
            for i in range(start, x.shape[0], step):
                y[i] = f(x[i])
                d[i] = df(x[i], y[i])
        else:
            for i in range(start, x.shape[0], step):
                y[i] = f(x[i])

    return kernel


def unary(kernel, x, y, d, grad):
    """Launch a :func:`compile_unary` kernel over the flat arrays x, y, d."""
    kernel[blocks(x.shape[0]), THREADS](x, y, d, grad)


# ---------------------------------------------------------------------------
# Scatter-add: out[b, index[i], :] += values[b, i, :]

@cuda.jit
def _first_bad_index(index, V, bad):
    """bad[0] = the smallest i with index[i] outside [-V, V) (unchanged if none)."""
    for i in range(cuda.grid(1), index.shape[0], cuda.gridsize(1)):
        j = index[i]
        if j < -V or j >= V:
            cuda.atomic.min(bad, 0, i)


@cuda.jit
def _index_add_atomic(out, index, values):
    B, M, D = values.shape
    V = out.shape[1]
    for t in range(cuda.grid(1), B * M * D, cuda.gridsize(1)):
        b, rest = t // (M * D), t % (M * D)
        i, c = rest // D, rest % D
        j = index[i]
        if j < 0:
            j += V
        cuda.atomic.add(out, (b, j, c), values[b, i, c])


@cuda.jit
def _index_add_ordered(out, index, values):
    B, M, D = values.shape
    V = out.shape[1]
    for t in range(cuda.grid(1), B * D, cuda.gridsize(1)):
        b, c = t // D, t % D
        for i in range(M):  # the order of np.add.at: bitwise its result
            j = index[i]
            if j < 0:
                j += V
            out[b, j, c] += values[b, i, c]


def index_add_rows(out, index, values, deterministic=False):
    """``out[b, index[i], :] += values[b, i, :]``, as kernels.scatter.index_add_rows:
    out (B, V, D), index (M,) integers (negative counts from the end), values (B, M, D).

    Returns -1, or the first position in ``index`` out of range (then ``out`` is left
    untouched); finding it reads one integer back to the host.  Atomics make the order
    of additions to one element unspecified (a rounding-level difference);
    ``deterministic=True`` runs one thread per (b, column) in ``np.add.at``'s order.
    """
    M = index.shape[0]
    bad = cuda.to_device(np.array([M], np.int64))
    _first_bad_index[blocks(M), THREADS](index, out.shape[1], bad)
    first = int(bad.copy_to_host()[0])
    if first < M:
        return first
    B, _, D = values.shape
    if deterministic:
        _index_add_ordered[blocks(B * D), THREADS](out, index, values)
    else:
        _index_add_atomic[blocks(B * M * D), THREADS](out, index, values)
    return -1


# ---------------------------------------------------------------------------
# Softmax family over rows: one thread per row, the CPU's row bodies
#
# Enough for the rows of a classifier (K up to a few hundred, where a row fits a
# thread's cache lines); a block per row with a shared-memory reduction would serve
# long rows better.

def _rows_of(row, arity):
    """A kernel running ``row`` on every row r of its arrays: ``row(a[r], ..., out[r])``
    (``arity`` arrays including out)."""
    dev = device(row)
    if arity == 2:
        @cuda.jit
        def kernel(a, out):
            for r in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
                dev(a[r], out[r])
    else:
        @cuda.jit
        def kernel(a, b, out):
            for r in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
                dev(a[r], b[r], out[r])
    return kernel


_softmax_rows = _rows_of(softmax_row, 2)
_log_softmax_rows = _rows_of(log_softmax_row, 2)
_softmax_vjp_rows = _rows_of(softmax_vjp_row, 3)
_log_softmax_vjp_rows = _rows_of(log_softmax_vjp_row, 3)
_logsumexp_row = device(logsumexp_row)
_logsumexp_vjp_row = device(logsumexp_vjp_row)


@cuda.jit
def _logsumexp_rows(x, out):
    for r in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[r] = _logsumexp_row(x[r])


@cuda.jit
def _logsumexp_vjp_rows(g, x, ans, out):
    for r in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        _logsumexp_vjp_row(g[r], x[r], ans[r], out[r])


def softmax_rows(x, out):
    """out[r] = softmax(x[r]) for the rows of C-contiguous (M, K) arrays."""
    _softmax_rows[blocks(x.shape[0]), THREADS](x, out)


def log_softmax_rows(x, out):
    _log_softmax_rows[blocks(x.shape[0]), THREADS](x, out)


def logsumexp_rows(x, out):
    """out (M,) = logsumexp of each row of x (M, K)."""
    _logsumexp_rows[blocks(x.shape[0]), THREADS](x, out)


def softmax_vjp_rows(g, y, out):
    _softmax_vjp_rows[blocks(y.shape[0]), THREADS](g, y, out)


def log_softmax_vjp_rows(g, y, out):
    _log_softmax_vjp_rows[blocks(y.shape[0]), THREADS](g, y, out)


def logsumexp_vjp_rows(g, x, ans, out):
    """out[r] = g[r] * exp(x[r] - ans[r]); g and ans (M,)."""
    _logsumexp_vjp_rows[blocks(x.shape[0]), THREADS](g, x, ans, out)


# ---------------------------------------------------------------------------
# im2col / col2im (NCHW; geometry as kernels/conv.py)

@cuda.jit
def _im2col(x, sh, sw, ph, pw, dh, dw, cols):
    N, C, H, W = x.shape
    kH, kW, Ho, Wo = cols.shape[2], cols.shape[3], cols.shape[4], cols.shape[5]
    for t in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
        ow, rest = t % Wo, t // Wo
        oh, rest = rest % Ho, rest // Ho
        j, rest = rest % kW, rest // kW
        i, rest = rest % kH, rest // kH
        c, n = rest % C, rest // C
        ih, iw = oh * sh + i * dh - ph, ow * sw + j * dw - pw
        inside = 0 <= ih < H and 0 <= iw < W
        cols[n, c, i, j, oh, ow] = x[n, c, ih, iw] if inside else 0


@cuda.jit
def _col2im(cols, sh, sw, ph, pw, dh, dw, gx):
    N, C, H, W = gx.shape
    kH, kW, Ho, Wo = cols.shape[2], cols.shape[3], cols.shape[4], cols.shape[5]
    for t in range(cuda.grid(1), gx.size, cuda.gridsize(1)):
        iw, rest = t % W, t // W
        ih, rest = rest % H, rest // H
        c, n = rest % C, rest // C
        acc = gx[n, c, ih, iw]
        for i in range(kH):  # the CPU's order of additions: bitwise its result
            a = ih + ph - i * dh
            if a < 0 or a % sh != 0 or a // sh >= Ho:
                continue
            for j in range(kW):
                b = iw + pw - j * dw
                if b < 0 or b % sw != 0 or b // sw >= Wo:
                    continue
                acc += cols[n, c, i, j, a // sh, b // sw]
        gx[n, c, ih, iw] = acc


def im2col(x, sh, sw, ph, pw, dh, dw, cols):
    """cols[n, c, i, j, oh, ow] = x[n, c, oh*sh + i*dh - ph, ow*sw + j*dw - pw] (0 outside)."""
    _im2col[blocks(cols.size), THREADS](x, sh, sw, ph, pw, dh, dw, cols)


def col2im(cols, sh, sw, ph, pw, dh, dw, gx):
    """The adjoint of im2col, gathered per pixel of gx (zero on entry, as on the CPU)."""
    _col2im[blocks(gx.size), THREADS](cols, sh, sw, ph, pw, dh, dw, gx)


# ---------------------------------------------------------------------------
# max_pool2d forward (kernels/conv.py's window_max) and backward (atomics)

_window_max = device(window_max)


@cuda.jit
def _max_pool2d_fwd(x, kh, kw, sh, sw, ph, pw, out, arg):
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2], out.shape[3]
    for t in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        ow, rest = t % Wo, t // Wo
        oh, rest = rest % Ho, rest // Ho
        c, n = rest % C, rest // C
        h0, h1 = max(oh * sh - ph, 0), min(oh * sh - ph + kh, H)
        w0, w1 = max(ow * sw - pw, 0), min(ow * sw - pw + kw, W)
        best, bi = _window_max(x[n, c], h0, h1, w0, w1)
        out[n, c, oh, ow] = best
        arg[n, c, oh, ow] = bi


@cuda.jit
def _max_pool2d_bwd(g, arg, gx):
    B, P, Ho, Wo = g.shape
    for t in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        ow, rest = t % Wo, t // Wo
        oh, rest = rest % Ho, rest // Ho
        p, b = rest % P, rest // P
        cuda.atomic.add(gx, (b, p, arg[p, oh, ow]), g[b, p, oh, ow])


def max_pool2d_fwd(x, kh, kw, sh, sw, ph, pw, out, arg):
    """out = max over each window of real elements; arg = its index in H*W (first max or
    NaN wins), as kernels.conv.max_pool2d_fwd."""
    _max_pool2d_fwd[blocks(out.size), THREADS](x, kh, kw, sh, sw, ph, pw, out, arg)


def max_pool2d_bwd(g, arg, gx):
    """gx[b, p, arg[p, oh, ow]] += g[b, p, oh, ow]; gx (B, P, H*W) zero on entry.  Windows
    that overlap (stride < kernel) add to one pixel in an unspecified order."""
    _max_pool2d_bwd[blocks(g.size), THREADS](g, arg, gx)
