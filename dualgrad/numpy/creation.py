"""Building arrays: ``*_like``, copy, linspace, geomspace, logspace.

Differentiable in what the array is built from (a traced fill value, the ends of a
``linspace``); ``np.zeros_like(x)`` of a traced ``x`` is traced too (derivative 0), so
that ``y = np.zeros_like(x); y[i] = v`` differentiates.
"""

import operator

import numpy as np

from .. import rules as P
from ..core.trace import Box, unbox
from .dispatch import _arr, implements
from .elementwise import _track, astype
from .shapes import broadcast_to, concatenate, moveaxis

_shape, _ndim = P.shape_of, P.ndim_of


@implements(np.full_like)
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, **kw):
    """Differentiable in the fill value (``a`` only gives the shape and dtype)."""
    shp = _shape(a) if shape is None else shape
    dt = np.dtype(np.result_type(unbox(a)) if dtype is None else dtype)
    if not isinstance(fill_value, Box) or dt.kind != "f":
        return np.full_like(unbox(a), unbox(fill_value), dtype=dt, order=order, shape=shape)
    return broadcast_to(astype(fill_value, dt), shp)


def _filled_like(fill):
    def like(a, dtype=None, order="K", subok=True, shape=None, **kw):
        dt = np.dtype(np.result_type(unbox(a)) if dtype is None else dtype)
        fn = {0.0: np.zeros_like, 1.0: np.ones_like}.get(fill, np.empty_like)
        if dt.kind not in "fc" or shape is not None:
            return fn(unbox(a), dtype=dt, order=order, shape=shape)
        # traced (derivative 0), so that y = np.zeros_like(x); y[i] = v differentiates
        r = P.index_set(a, 0.0 if fill is None else fill, idx=(Ellipsis,))
        return r if P.float_dtype(r) == dt else astype(r, dt)
    return like


zeros_like = implements(np.zeros_like)(_filled_like(0.0))
ones_like = implements(np.ones_like)(_filled_like(1.0))
empty_like = implements(np.empty_like)(_filled_like(None))


@implements(np.copyto)
def copyto(dst, src, casting="same_kind", where=True):
    raise TypeError(
        "dualgrad: numpy.copyto writes into an existing array in place, so a traced value "
        "cannot go in or out of it (np.full(shape, v) and np.full_like(plain, v) with a traced "
        "fill v call it): write np.broadcast_to(v, shape) or v * np.ones(shape) instead, or "
        "np.full_like(x, v) with a traced x")


@implements(np.copy)
def copy(a, order="K", subok=False):
    """A new traced value (``positive``): writing into the copy later leaves ``a`` alone."""
    return P.positive(a) if isinstance(a, Box) else np.copy(a, order=order)


@implements(np.linspace)
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *,
             device=None):
    """numpy's own values to the bit, carrying the derivative (1 - t) dstart + t dstop."""
    num = operator.index(num)
    rs, re_ = unbox(start), unbox(stop)
    raw, step = np.linspace(rs, re_, num, endpoint, True, dtype, 0)
    if dtype is not None and np.dtype(dtype).kind not in "fc":
        return (raw, step) if retstep else raw
    div = (num - 1) if endpoint else num
    t = np.arange(num, dtype=float) / div if div > 0 else np.zeros(num)
    if endpoint and num > 1:
        t[-1] = 1.0
    t = t.reshape((num,) + (1,) * np.ndim(np.broadcast(rs, re_)))
    y = _track(raw, [(start, 1.0 - t), (stop, t)])
    y = moveaxis(y, 0, axis) if axis != 0 and np.ndim(raw) > 1 else y
    if not retstep:
        return y
    return y, (_track(step, [(start, -1.0 / div), (stop, 1.0 / div)]) if div > 0 else step)


def _log_ramp(num, endpoint, extra_nd):
    div = (num - 1) if endpoint else num
    t = np.arange(num, dtype=float) / div if div > 0 else np.zeros(num)
    if endpoint and num > 1:
        t[-1] = 1.0
    return t.reshape((num,) + (1,) * extra_nd)


@implements(np.geomspace)
def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    """start * (stop / start) ** t: differentiable in both ends (same sign, as numpy)."""
    start, stop = _arr(start), _arr(stop)
    if np.any(unbox(start) == 0) or np.any(unbox(stop) == 0):
        raise ValueError("Geometric sequence cannot include zero")
    t = _log_ramp(operator.index(num), endpoint, np.ndim(np.broadcast(unbox(start),
                                                                       unbox(stop))))
    y = P.multiply(start, P.power(P.divide(stop, start), t))
    if endpoint and num > 0:  # numpy's exact endpoints
        y = concatenate([P.multiply(start, np.ones((1,) + _shape(y)[1:])),
                             y[1:-1], P.multiply(stop, np.ones((1,) + _shape(y)[1:]))]) \
            if num > 1 else P.multiply(start, np.ones(_shape(y)))
    if dtype is not None:
        y = astype(y, dtype)
    return moveaxis(y, 0, axis) if axis != 0 and _ndim(y) > 1 else y


@implements(np.logspace)
def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    y = P.power(_arr(base), linspace(start, stop, num, endpoint))
    if dtype is not None:
        y = astype(y, dtype)
    return moveaxis(y, 0, axis) if axis != 0 and _ndim(y) > 1 else y
