"""Shape and data movement: ``reshape``, ``transpose``, ``broadcast_to``, ``flip``,
``concatenate``.  Each is linear, so a tangent goes through the row itself and a
cotangent through its transpose (``broadcast_to``'s is ``unbroadcast``, a sum).
"""

import weakref

import numpy as np

from .. import rules as P  # rows of later families, found when a rule runs
from ..core import buffers
from ..core.trace import IndexedRules
from .table import (
    align_tangent,
    batch_shape,
    batch_trailing,
    bfront,
    defprim,
    device_like,
    float_dtype,
    ndim_of,
    shape_of,
    unbroadcast,
)


def _batch_reshape(args, dims, shape):
    x = bfront(args[0], dims[0])
    s = shape_of(x)
    shape = s[:1] + tuple(shape)
    return (x if shape == s else reshape(x, shape=shape)), 0


def _batch_transpose(args, dims, axes):
    n = ndim_of(args[0]) - 1
    return transpose(bfront(args[0], dims[0]), axes=(0,) + tuple(a % n + 1 for a in axes)), 0


def _batch_broadcast_to(args, dims, shape):
    x = bfront(args[0], dims[0])
    s = shape_of(x)
    x = reshape(x, s[:1] + (1,) * (len(shape) - len(s) + 1) + s[1:])
    return broadcast_to(x, shape=s[:1] + tuple(shape)), 0


# ---------------------------------------------------------------------------
# shape and data movement (linear: a tangent goes through the primitive itself)
# ---------------------------------------------------------------------------

def _batched_shape(t, x, shape):
    return batch_shape(t, x) + tuple(shape)


reshape = defprim("reshape", lambda x, shape: np.reshape(x, shape),
                  jvp=(lambda t, ans, x, shape: reshape(t, _batched_shape(t, x, shape)),),
                  vjp=(lambda g, ans, x, shape: reshape(g, batch_shape(g, ans) + shape_of(x)),),
                  batch=_batch_reshape)


def _batched_axes(nb, axes):
    return tuple(range(nb)) + tuple(nb + a for a in axes)


transpose = defprim(
    "transpose", lambda x, axes: np.transpose(x, axes),
    jvp=(lambda t, ans, x, axes: transpose(t, _batched_axes(ndim_of(t) - ndim_of(x), axes)),),
    vjp=(lambda g, ans, x, axes: transpose(
        g, _batched_axes(ndim_of(g) - ndim_of(ans), tuple(np.argsort(axes)))),),
    batch=_batch_transpose)

broadcast_to = defprim(
    "broadcast_to", lambda x, shape: np.broadcast_to(x, shape),
    jvp=(lambda t, ans, x, shape: broadcast_to(
        align_tangent(t, x, ans), batch_shape(t, x) + tuple(shape)),),
    vjp=(lambda g, ans, x, shape: unbroadcast(g, shape_of(x), ndim_of(g) - ndim_of(ans)),),
    batch=_batch_broadcast_to)

flip = defprim("flip", lambda x, axis: np.flip(x, axis=axis),
               jvp=(lambda t, ans, x, axis: flip(t, axis=axis),),
               vjp=(lambda g, ans, x, axis: flip(g, axis=axis),), batch=batch_trailing("flip"))


def _concat_jvp(tangents, ans, *xs, axis):
    i = next(i for i, t in enumerate(tangents) if t is not None)
    bshape = batch_shape(tangents[i], xs[i])
    dtype = float_dtype(tangents[i])
    like = device_like(tangents[i])
    ts = [np.zeros(bshape + shape_of(x), dtype, like=like) if t is None else t
          for t, x in zip(tangents, xs)]
    return concatenate(*ts, axis=axis)


def _concat_vjp(i):
    def rule(g, ans, *xs, axis):
        starts = _starts(ans, xs, axis)
        return P.getitem(g, (Ellipsis, slice(starts[i], starts[i + 1]))
                         + (slice(None),) * (-axis - 1))
    return rule


_LAST = [(None, None)]  # (weak ref to a concatenate's result, where its parts start)


def _starts(ans, xs, axis):
    """Where each of ``xs`` starts along ``axis`` in their concatenation ``ans``: worked
    out once per result, since the sweep asks for its parts one after another (summing
    the sizes before part i each time was quadratic: np.stack of 8192 traced numbers
    took 28 s to differentiate)."""
    ref, starts = _LAST[0]
    if ref is None or ref() is not ans or len(starts) != len(xs) + 1:
        starts = np.concatenate(([0], np.cumsum([shape_of(x)[axis] for x in xs]))).tolist()
        try:
            _LAST[0] = (weakref.ref(ans), starts)
        except TypeError:  # (no weak reference to it: not kept)
            pass
    return starts


def _concatenate(*xs, axis):
    """``np.concatenate(xs, axis=axis)``; a large real floating-point result of numpy
    arrays is written into a cached buffer (core/buffers.py ``empty``): a gradient that
    pads a cotangent this way reuses the last call's memory instead of page-faulting fresh
    memory in each time (hvp of rosenbrock at n = 1e5: 360 faults per call).  The same
    values: numpy's own loop, into an array of the result's dtype.  Small ones (dg.jit's
    replay of an LSTM makes 2,000 a call) pay one sum of sizes."""
    nbytes = 0
    for x in xs:
        if x.__class__ is not np.ndarray:
            return np.concatenate(xs, axis=axis)
        nbytes += x.nbytes
    if nbytes < buffers.LARGE or not buffers.ENABLED:
        return np.concatenate(xs, axis=axis)
    return np.concatenate(xs, axis=axis, out=_concatenated(xs, axis))


def _concatenated(xs, axis):
    """A cached buffer for the concatenation of numpy arrays ``xs`` along ``axis`` where
    it is real floating point and numpy would accept it; else None (numpy allocates, or
    raises its own error)."""
    x0 = xs[0]
    if axis.__class__ is not int or not x0.ndim or not -x0.ndim <= axis < x0.ndim:
        return None
    shape = list(x0.shape)
    ax = axis % x0.ndim
    for x in xs[1:]:
        if x.ndim != x0.ndim or x.shape[:ax] != x0.shape[:ax] \
                or x.shape[ax + 1:] != x0.shape[ax + 1:]:
            return None
        shape[ax] += x.shape[ax]
    dt = np.result_type(*xs)
    return buffers.empty(tuple(shape), dt) if dt.kind == "f" else None


concatenate = defprim("concatenate", _concatenate,
                      jvp=_concat_jvp, vjp=IndexedRules(_concat_vjp),
                      batch=batch_trailing("concatenate", n=None))
