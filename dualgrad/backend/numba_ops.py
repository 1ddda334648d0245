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

Importing this module imports numba (and compiles nothing: kernels are
``@njit(cache=True)``, compiled or loaded from the disk cache on first call:
``dualgrad.kernels.diskcache``).
"""


import numpy as np

from .. import kernels  # installed as dualgrad.kernels (pyproject's package-dir mapping)
from . import reference

# ---------------------------------------------------------------------------
# Elementwise: one fused loop per UNARY row, compiled on first use

_unary_kernels = {}


def unary(name, x, grad):
    """``(f(x), f'(x) if grad else None)`` for the row ``name``, in one pass."""
    kernel = _unary_kernels.get(name)
    if kernel is None:
        kernel = _unary_kernels[name] = kernels.elementwise.compile_unary(*reference.UNARY[name])
    xf = np.ascontiguousarray(x).reshape(-1)
    y = np.empty_like(xf)
    d = np.empty_like(xf) if grad else y
    kernel(xf, y, d, grad)
    return y.reshape(x.shape), (d.reshape(x.shape) if grad else None)


# ---------------------------------------------------------------------------
# Scatter-add

def index_add_rows(vals, idx, B, V, D, axis):
    """out (B, V, D) with out[b, idx[i]] += vals[b, i]: one compiled loop."""
    out = np.zeros((B, V, D), vals.dtype)
    bad = kernels.scatter.index_add_rows(out, idx.astype(np.intp, copy=False), vals)
    if bad >= 0:
        reference.index_error(idx[bad], axis, V)
    return out


# ---------------------------------------------------------------------------
# Softmax family: rows of the last non-trivial axis; None for any other axis

def on_rows(kernel, axis, *arrays):
    """``kernels.softmax.<kernel>_rows(rows..., out)`` over arrays of one shape,
    reshaped back; None when ``axis`` is not their last non-trivial axis."""
    rows = [reference.rows(a, axis) for a in arrays]
    if rows[0] is None:
        return None
    out = np.empty_like(rows[0])
    getattr(kernels.softmax, kernel + "_rows")(*rows, out)
    return out.reshape(arrays[0].shape)


def logsumexp(x, axis, keepdims):
    r = x.reshape(1, -1) if axis is None else reference.rows(x, axis)
    if r is None:
        return None
    out = np.empty(r.shape[0], x.dtype)
    kernels.softmax.logsumexp_rows(np.ascontiguousarray(r), out)
    return out.reshape(reference.reduced_shape(x.shape, axis, keepdims))


def logsumexp_vjp(g, x, ans, axis):
    """g and ans of the reduced shape; None for an axis the rows do not cover."""
    r = x.reshape(1, -1) if axis is None else reference.rows(x, axis)
    if r is None:
        return None
    out = np.empty(r.shape, x.dtype)
    kernels.softmax.logsumexp_vjp_rows(np.ascontiguousarray(g).reshape(-1),
                                       np.ascontiguousarray(r),
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
    cols = np.empty((N, C, kh, kw) + tuple(out_hw), x.dtype)
    kernels.conv.im2col(np.ascontiguousarray(x), *geo, cols)
    return cols


def col2im(cols, x_shape, geo):
    N, C = cols.shape[:2]
    gx = np.zeros((N, C) + tuple(x_shape[-2:]), cols.dtype)
    kernels.conv.col2im(cols, *geo, gx)
    return gx


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
