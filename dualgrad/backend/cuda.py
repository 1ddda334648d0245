"""The backend's CUDA module: ``numba_ops``'s operations on device arrays (CuPy).

Beside ``reference`` and ``numba_ops``, with the same functions and signatures, over
the ``@cuda.jit`` kernels of ``dualgrad.kernels.cuda``; matrix products go through
CuPy (cuBLAS).  Inputs stay on the device: outputs are allocated with CuPy and the
kernels read and write them zero-copy through ``__cuda_array_interface__``; nothing
is copied to the host except the one integer an out-of-range index check reads.

The entry point for the engine is :func:`ops_for`: this module when the raw arrays of a
call live on the GPU, None when they are host arrays (then ``dualgrad.backend``
chooses between ``numba_ops`` and ``reference`` as before), and a TypeError naming
both kinds when a call mixes them.  Nothing here is imported by ``import dualgrad``;
cupy and numba.cuda are imported on first use.

    >>> ops_for(np.zeros(3)) is None
    True
"""

import contextlib
import math
import sys

import numpy as np

from . import reference

INSTALL = 'pip install "dualgrad[cuda]"'
_state = {"xp": None, "kernels": None, "unary": {}}


def array_module():
    """CuPy (imported on first use); an ImportError naming the extra to install."""
    xp = _state["xp"]
    if xp is None:
        try:
            import cupy as xp  # optional: cupy, only needed for device arrays
        except ImportError as e:
            raise ImportError(f"dualgrad's GPU path needs CuPy and numba-cuda: {INSTALL} "
                              f"(or the cu13 variant, see docs/guide/gpu.md)") from e
        _state["xp"] = xp
    return xp


@contextlib.contextmanager
def use_array_module(xp):
    """Allocate with ``xp`` instead of CuPy inside the block -- numpy under numba's CUDA
    simulator, where kernels take host arrays (tests/test_cuda_kernels.py)."""
    old, _state["xp"] = _state["xp"], xp
    try:
        yield
    finally:
        _state["xp"] = old


def _k():
    k = _state["kernels"]
    if k is None:
        from ..kernels import cuda as k  # optional: numba-cuda, imported on first use
        _state["kernels"] = k
    return k


def is_device_array(x):
    """True for a GPU array (one exposing ``__cuda_array_interface__``: CuPy, numba)."""
    return hasattr(type(x), "__cuda_array_interface__")


def ops_for(*arrays):
    """This module if the arrays live on the GPU, None if none does; a TypeError naming
    both kinds if some do and others are host arrays (scalars go anywhere).

    >>> ops_for(np.zeros(2), 1.0) is None
    True
    """
    device = host = None
    for a in arrays:
        if is_device_array(a):
            device = device or a
        elif isinstance(a, np.ndarray) and a.ndim:
            host = host if host is not None else a
    if device is None:
        return None
    if host is not None:
        raise TypeError(f"one operation mixes a device array ({type(device).__module__}."
                        f"{type(device).__name__}, shape {device.shape}) with a host "
                        f"numpy.ndarray (shape {host.shape}); move them to one device first "
                        f"with dg.device_put(x, 'cuda') or dg.device_get(x)")
    return sys.modules[__name__]


# ---------------------------------------------------------------------------
# Elementwise: one fused kernel per UNARY row, compiled on first use

def unary(name, x, grad):
    """``(f(x), f'(x) if grad else None)`` for the row ``name``, in one pass on the GPU."""
    k = _k()
    kernel = _state["unary"].get(name)
    if kernel is None:
        kernel = _state["unary"][name] = k.compile_unary(*reference.row(name))
    xp = array_module()
    xf = xp.ascontiguousarray(x).reshape(-1)
    y = xp.empty_like(xf)
    d = xp.empty_like(xf) if grad else y
    k.unary(kernel, xf, y, d, grad)
    return y.reshape(x.shape), (d.reshape(x.shape) if grad else None)


# ---------------------------------------------------------------------------
# Scatter-add

def index_add_rows(vals, idx, B, V, D, axis, deterministic=False):
    """out (B, V, D) with out[b, idx[i]] += vals[b, i] (vals (B, M, D)), by atomics, or
    in ``np.add.at`` order with ``deterministic``; an IndexError like numpy's."""
    xp = array_module()
    out = xp.zeros((B, V, D), vals.dtype)
    idx = xp.ascontiguousarray(idx.reshape(-1), dtype=np.int64)
    bad = _k().index_add_rows(out, idx, xp.ascontiguousarray(vals), deterministic)
    if bad >= 0:
        reference.index_error(int(idx[bad]), axis, V)
    return out


def index_add(shape, dtype, index, values, layout=None):
    """``reference.index_add`` on the GPU: a gather's transpose (``layout``, from
    ``reference.gather_layout``) by the row kernel, any other index by CuPy's
    ``add.at``; the (host) index arrays are uploaded, the values never leave."""
    xp = array_module()
    if layout is not None:
        nb, idx, B, V, D = layout
        vals = xp.ascontiguousarray(values.astype(dtype, copy=False)).reshape(B, idx.size, D)
        return index_add_rows(vals, xp.asarray(idx).reshape(-1), B, V, D, nb).reshape(shape)
    up = (lambda k: xp.asarray(k) if isinstance(k, np.ndarray) else k)
    index = tuple(up(k) for k in index) if isinstance(index, tuple) else up(index)
    out = xp.zeros(shape, dtype)
    xp.add.at(out, index, values)
    return out


# ---------------------------------------------------------------------------
# Softmax family: any axis, moved last so the row kernels run it

def _rows(x, axis):
    """(rows (M, K) C-contiguous, undo) with ``axis`` moved last."""
    xp = array_module()
    moved = xp.moveaxis(x, axis, -1)
    r = xp.ascontiguousarray(moved).reshape(-1, x.shape[axis])
    return r, lambda out: xp.moveaxis(out.reshape(moved.shape), -1, axis)


def on_rows(kernel, axis, *arrays):
    """``kernels.cuda.<kernel>_rows`` over arrays of one shape along ``axis``."""
    rows = [_rows(a, axis) for a in arrays]
    out = array_module().empty_like(rows[0][0])
    getattr(_k(), kernel + "_rows")(*[r for r, _ in rows], out)
    return rows[0][1](out)


def softmax(x, axis):
    return on_rows("softmax", axis, x)


def log_softmax(x, axis):
    return on_rows("log_softmax", axis, x)


def softmax_vjp(g, y, axis):
    return on_rows("softmax_vjp", axis, g, y)


def log_softmax_vjp(g, y, axis):
    return on_rows("log_softmax_vjp", axis, g, y)


def _flat_rows(x, axis):
    """x as rows (M, K) over the reduced axes (None: all), and the kept shape."""
    xp = array_module()
    axes = tuple(range(x.ndim)) if axis is None else tuple(
        int(a) % x.ndim for a in np.atleast_1d(axis))
    keep = [a for a in range(x.ndim) if a not in axes]
    moved = xp.ascontiguousarray(xp.transpose(x, keep + list(axes)))
    return moved.reshape(math.prod(x.shape[a] for a in keep), -1), keep, axes


def logsumexp(x, axis, keepdims):
    r, _, _ = _flat_rows(x, axis)
    out = array_module().empty(r.shape[0], x.dtype)
    _k().logsumexp_rows(r, out)
    return out.reshape(reference.reduced_shape(x.shape, axis, keepdims))


def logsumexp_vjp(g, x, ans, axis):
    """g and ans of the reduced shape (without keepdims)."""
    xp = array_module()
    r, keep, axes = _flat_rows(x, axis)
    out = xp.empty_like(r)
    _k().logsumexp_vjp_rows(xp.ascontiguousarray(g).reshape(-1), r,
                            xp.ascontiguousarray(ans).reshape(-1), out)
    moved = out.reshape(tuple(x.shape[a] for a in keep + list(axes)))
    return xp.transpose(moved, np.argsort(keep + list(axes)).tolist())


# ---------------------------------------------------------------------------
# conv2d's data movement, its products on cuBLAS, and max_pool2d

def im2col(x, kh, kw, geo, out_hw):
    xp = array_module()
    N, C = x.shape[:2]
    cols = xp.empty((N, C, kh, kw) + tuple(out_hw), x.dtype)
    _k().im2col(xp.ascontiguousarray(x), *geo, cols)
    return cols


def col2im(cols, x_shape, geo):
    xp = array_module()
    N, C = cols.shape[:2]
    gx = xp.zeros((N, C) + tuple(x_shape[-2:]), cols.dtype)
    _k().col2im(xp.ascontiguousarray(cols), *geo, gx)
    return gx


def matmul(a, b):
    """The GEMM: CuPy's (cuBLAS)."""
    return array_module().matmul(a, b)


def conv2d(x, w, geo, out_hw):
    """x (..., N, C, H, W), w (C_out, C, kH, kW) -> (..., N, C_out, Ho, Wo): reference's
    layout and arithmetic (out[n] = W @ cols[n]), each product one batched cuBLAS GEMM."""
    return reference.conv2d(x, w, geo, out_hw, im2col=im2col, matmul=matmul)


def conv2d_grad_input(g, w, x_shape, geo, out_hw):
    return reference.conv2d_grad_input(g, w, x_shape, geo, out_hw, col2im=col2im,
                                       matmul=matmul)


def conv2d_grad_weight(g, x, w_shape, geo, out_hw):
    return reference.conv2d_grad_weight(g, x, w_shape, geo, out_hw, im2col=im2col,
                                        matmul=matmul)


def max_pool2d(x, geo, out_hw):
    """(out, argmax) for windows ``geo``, the first maximum (or NaN) winning."""
    xp = array_module()
    H, W = x.shape[-2:]
    Ho, Wo = out_hw
    lead = x.shape[:-2]
    out = xp.empty(lead + (Ho, Wo), x.dtype)
    arg = xp.empty(lead + (Ho, Wo), np.int64)
    _k().max_pool2d_fwd(xp.ascontiguousarray(x).reshape(1, -1, H, W), *geo,
                        out.reshape(1, -1, Ho, Wo), arg.reshape(1, -1, Ho, Wo))
    return out, arg


def max_pool2d_grad(g, argmax, x_shape):
    xp = array_module()
    batch, B, P, HW, Ho, Wo = reference.pool_grad_layout(g, argmax, x_shape)
    gx = xp.zeros((B, P, HW), g.dtype)
    _k().max_pool2d_bwd(xp.ascontiguousarray(g).reshape(B, P, Ho, Wo),
                        xp.ascontiguousarray(argmax, dtype=np.int64).reshape(P, Ho, Wo), gx)
    return gx.reshape(batch + tuple(x_shape))
