"""Building arrays: ``*_like``, ``zeros(like=)``, copy, linspace, geomspace, logspace.

Differentiable in what the array is built from (a traced fill value, the ends of a
``linspace``).  An array to write into is traced too (derivative 0), so that
``out = np.zeros((N, F), like=x); out[n, f] = v`` differentiates: ``np.zeros/ones/empty/
full(shape, like=x)`` (numpy hands a ``like=`` call to ``x.__array_function__``) and
``np.zeros_like(x)``, ``np.zeros_like(x, shape=S)`` and the other ``*_like`` of a traced
float ``x``.  ``empty`` is ``zeros``: a traced value has no uninitialised memory.
"""

import operator

import numpy as np

from .. import rules as P
from ..core.trace import OBJECTS, Box, unbox
from .dispatch import LIKE, _arr, implements
from .elementwise import _track, astype
from .reductions import sum as _sum
from .shapes import broadcast_to, concatenate, moveaxis

_shape, _ndim = P.shape_of, P.ndim_of


def _as_shape(shape):
    return (operator.index(shape),) if not isinstance(shape, (tuple, list)) \
        else tuple(operator.index(n) for n in shape)


def _traced_full(like, shape, dt, fill):
    """``np.full(shape, fill, dt)`` as a value traced where ``like`` is (derivative 0 but
    through a traced ``fill``), so that writing a traced value into it differentiates."""
    if shape == _shape(like) and not isinstance(fill, Box):
        r = P.index_set(like, fill, idx=(Ellipsis,))  # one row where the shape is like's
        return r if P.float_dtype(r) == dt else astype(r, dt)
    if not isinstance(fill, Box):  # a traced 0-d zero plus the fill
        fill = P.add(_sum(P.index_set(like, 0.0, idx=(Ellipsis,))), fill)
    return broadcast_to(astype(fill, dt), shape)


@implements(np.full_like)
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, **kw):
    """Differentiable in the fill value; of a traced float ``a``, traced (a plain fill)."""
    shp = _shape(a) if shape is None else _as_shape(shape)
    dt = np.dtype(np.result_type(unbox(a)) if dtype is None else dtype)
    if dt.kind not in "fc" or not (isinstance(a, Box) or isinstance(fill_value, Box)) \
            or (isinstance(a, Box) and P.float_dtype(a).kind not in "fc"
                and not isinstance(fill_value, Box)):
        return np.full_like(unbox(a), unbox(fill_value), dtype=dt, order=order, shape=shape)
    if not isinstance(a, Box):
        return broadcast_to(astype(fill_value, dt), shp)
    return _traced_full(a, shp, dt, fill_value)


def _filled_like(fill):
    def like(a, dtype=None, order="K", subok=True, shape=None, **kw):
        dt = np.dtype(np.result_type(unbox(a)) if dtype is None else dtype)
        fn = {0.0: np.zeros_like, 1.0: np.ones_like}.get(fill, np.empty_like)
        if dt.kind not in "fc" or not isinstance(a, Box):
            return fn(unbox(a), dtype=dt, order=order, shape=shape)
        # traced (derivative 0), so that y = np.zeros_like(x); y[i] = v differentiates
        return _traced_full(a, _shape(a) if shape is None else _as_shape(shape), dt,
                            0.0 if fill is None else fill)
    return like


zeros_like = implements(np.zeros_like)(_filled_like(0.0))
ones_like = implements(np.ones_like)(_filled_like(1.0))
empty_like = implements(np.empty_like)(_filled_like(None))


def _like(fn, fill=None):
    """``np.zeros(shape, like=x)`` and its kin (numpy hands the call, without ``like``, to
    x's ``__array_function__``): of a traced x, a traced array of numpy's dtype (float64
    unless ``dtype=``) to write into; an integer or bool one is numpy's own."""
    def make(like, shape, *args, dtype=None, order="C", device=None, **kw):
        fill_value = args[0] if fill is None else fill
        dtype = args[1] if fill is None and len(args) > 1 else dtype
        dt = np.dtype(np.result_type(unbox(fill_value), 1.0) if dtype is None and fill is None
                      else float if dtype is None else dtype)
        if dt.kind not in "fc":
            return fn(_as_shape(shape), unbox(fill_value), dtype=dt) if fill is None \
                else fn(_as_shape(shape), dtype=dt)
        return _traced_full(like, _as_shape(shape), dt, fill_value)
    return make


LIKE.update({np.zeros: _like(np.zeros, 0.0), np.ones: _like(np.ones, 1.0),
             np.empty: _like(np.empty, 0.0), np.full: _like(np.full)})


#: numpy functions that write into their first argument in place
IN_PLACE = (np.fill_diagonal, np.put, np.place, np.putmask, np.copyto, np.put_along_axis)
_NOT_NONE = np.frompyfunc(lambda e: e is not None, 1, 1)


def _objects(a):
    """``a`` as numpy's functions may write it into an object array: a traced value as an
    object array of its entries (``ArrayBox.__array__``), lists of them too; a traced mask
    or index as its values."""
    if isinstance(a, Box) and np.dtype(a.dtype).kind in "biu":  # a mask or an index: its
        return np.asarray(a, dtype=a.dtype)  # values (dg.jit guards them), no derivative
    traced = isinstance(a, Box) or (isinstance(a, (list, tuple)) and any(
        isinstance(e, Box) for e in a))
    return np.array(a, dtype=object) if traced else a


def write_in_place(func, target, args, kwargs):
    """``func(target, *args, **kwargs)`` (``np.fill_diagonal(out, w)``, ``np.put``...)
    where traced values go into ``target``, a traced array or a Preallocated: numpy's own
    function writes them into an object array of ``target``'s shape, which says where
    they go, and ``target[where] = values`` writes them as any index write does.

        >>> import dualgrad as dg
        >>> def f(w):
        ...     out = np.zeros((2, 2), like=w)
        ...     np.fill_diagonal(out, w)
        ...     return np.sum(out * np.array([[1.0, 2.0], [3.0, 4.0]]))
        >>> dg.grad(f)(np.array([1.0, 1.0]))
        array([1., 4.])
    """
    marks = np.full(_shape(target), None, dtype=object)
    func(marks, *[_objects(a) for a in args], **{k: _objects(v) for k, v in kwargs.items()})
    hit = _NOT_NONE(marks).astype(bool)
    if hit.any():
        target[hit] = OBJECTS[0].pack(marks[hit])


def _in_place(func):
    def impl(dst, *args, **kwargs):
        if isinstance(dst, Box):
            return write_in_place(func, dst, args, kwargs)
        name = func.__name__
        if func is np.copyto:
            raise TypeError(
                "dualgrad: numpy.copyto writes into an existing array in place, so a traced "
                "value cannot go into a plain one (np.full(shape, v) and np.full_like(plain, "
                "v) with a traced fill v call it): write np.broadcast_to(v, shape) or "
                "v * np.ones(shape) instead, or np.full_like(x, v) with a traced x")
        raise TypeError(
            f"dualgrad: numpy.{name} writes a traced value into a plain numpy array of "
            f"shape {np.shape(dst)}, which cannot hold its derivative; make that array "
            f"traced where it is made: out = np.zeros({np.shape(dst)!r}, like=x), x any "
            f"traced value")
    impl.__name__ = func.__name__
    return impl


for _f in IN_PLACE:
    implements(_f)(_in_place(_f))


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
