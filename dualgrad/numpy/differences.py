"""Finite differences, integrals and interpolation: diff, ediff1d, gradient, trapezoid,
interp.

numpy's formulas, each a weighted sum of slices, so they differentiate in the samples
and in the spacings; ``interp`` finds each point's segment on raw values (a constant)
and is linear inside it.
"""

import numpy as np

from .. import rules as P
from ..core.trace import Box, unbox
from . import reductions
from .dispatch import _arr, implements
from .indexing import _along, getitem
from .shapes import broadcast_to, concatenate, ravel, reshape

_shape, _ndim = P.shape_of, P.ndim_of
_axes = P.normalize_axes


def _on_axis(v, ax, nd):
    """A 1-D ``v`` shaped to broadcast along axis ``ax`` of an ``nd``-dim array."""
    shape = [1] * nd
    shape[ax] = -1
    return reshape(v, tuple(shape))


@implements(np.diff)
def diff(a, n=1, axis=-1, prepend=np._NoValue, append=np._NoValue):
    if n == 0:
        return a
    if n < 0:
        raise ValueError(f"order must be non-negative but got {n!r}")
    a = _arr(a)
    nd = _ndim(a)
    if nd == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    ax = _axes(axis, nd)[0]
    edge = list(_shape(a))
    edge[ax] = 1
    parts = []
    for v in (prepend, append):
        if v is np._NoValue:
            parts.append(None)
        else:
            v = _arr(v)
            parts.append(broadcast_to(v, tuple(edge)) if _ndim(v) == 0 else v)
    if parts[0] is not None or parts[1] is not None:
        a = concatenate([p for p in (parts[0], a, parts[1]) if p is not None], axis=ax)
    for _ in range(n):
        a = P.subtract(_along(a, ax, 1), _along(a, ax, None, -1))
    return a


@implements(np.ediff1d)
def ediff1d(ary, to_end=None, to_begin=None):
    d = diff(ravel(_arr(ary)))
    begin = [] if to_begin is None else [ravel(_arr(to_begin))]
    end = [] if to_end is None else [ravel(_arr(to_end))]
    return concatenate(begin + [d] + end) if begin or end else d


def _spacings(f, varargs, axes):
    """np.gradient's spacing arguments: one scalar step or one 1-D difference array per
    axis.  Coordinates that are traced stay non-uniform (their derivative needs every
    entry), even where their values happen to be evenly spaced."""
    if not varargs:
        return [1.0] * len(axes)
    if len(varargs) == 1 and _ndim(varargs[0]) == 0:
        return list(varargs) * len(axes)
    if len(varargs) != len(axes):
        raise TypeError("invalid number of arguments")
    out = []
    for ax, d in zip(axes, varargs):
        d = _arr(d)
        if _ndim(d) == 0:
            out.append(d)
            continue
        if _ndim(d) != 1:
            raise ValueError("distances must be either scalars or 1d")
        if _shape(d)[0] != _shape(f)[ax]:
            raise ValueError("when 1d, distances must match the length of the "
                             "corresponding dimension")
        dx = diff(d)
        if not isinstance(dx, Box) and np.all(dx == dx[0]):
            dx = dx[0]
        out.append(dx)
    return out


@implements(np.gradient)
def gradient(f, *varargs, axis=None, edge_order=1):
    """Second-order central differences inside, first- or second-order one-sided
    differences at the edges: numpy's formulas, every one a weighted sum of slices."""
    f = _arr(f)
    nd = _ndim(f)
    axes = [a % nd for a in _axes(axis, nd)]
    if edge_order > 2:
        raise ValueError("'edge_order' greater than 2 not supported")
    out = []
    for ax, h in zip(axes, _spacings(f, varargs, axes)):
        if _shape(f)[ax] < edge_order + 1:
            raise ValueError("Shape of array too small to calculate a numerical gradient, "
                             "at least (edge_order + 1) elements are required.")
        neg = ax - nd
        s = lambda start, stop=None: _along(f, neg, start, stop)  # noqa: E731
        uniform = _ndim(h) == 0
        if uniform:
            inner = (s(2) - s(None, -2)) / (2.0 * h)
        else:
            d1, d2 = h[:-1], h[1:]
            a, b, c = -d2 / (d1 * (d1 + d2)), (d2 - d1) / (d1 * d2), d1 / (d2 * (d1 + d2))
            a, b, c = (_on_axis(w, neg, nd) for w in (a, b, c))
            inner = a * s(None, -2) + b * s(1, -1) + c * s(2)
        if edge_order == 1:
            first = (s(1, 2) - s(0, 1)) / (h if uniform else h[0])
            last = (s(-1) - s(-2, -1)) / (h if uniform else h[-1])
        else:
            if uniform:
                a, b, c = -1.5 / h, 2.0 / h, -0.5 / h
            else:
                d1, d2 = h[0], h[1]
                a, b = -(2.0 * d1 + d2) / (d1 * (d1 + d2)), (d1 + d2) / (d1 * d2)
                c = -d1 / (d2 * (d1 + d2))
            first = a * s(0, 1) + b * s(1, 2) + c * s(2, 3)
            if uniform:
                a, b, c = 0.5 / h, -2.0 / h, 1.5 / h
            else:
                d1, d2 = h[-2], h[-1]
                a, b = d2 / (d1 * (d1 + d2)), -(d2 + d1) / (d1 * d2)
                c = (2.0 * d2 + d1) / (d2 * (d1 + d2))
            last = a * s(-3, -2) + b * s(-2, -1) + c * s(-1)
        out.append(concatenate([first, inner, last], axis=neg))
    return out[0] if len(out) == 1 else tuple(out)


_TRAPEZOID = [f for f in (getattr(np, "trapezoid", None), getattr(np, "trapz", None)) if f]


@implements(*_TRAPEZOID)
def trapezoid(y, x=None, dx=1.0, axis=-1):
    y = _arr(y)
    nd = _ndim(y)
    ax = _axes(axis, nd)[0]
    if x is None:
        d = dx
    else:
        x = _arr(x)
        d = _on_axis(diff(x), ax, nd) if _ndim(x) == 1 else diff(x, axis=ax)
    mid = P.divide(P.multiply(d, P.add(_along(y, ax, 1), _along(y, ax, None, -1))), 2.0)
    return reductions.sum(mid, axis=ax)


@implements(np.interp)
def interp(x, xp, fp, left=None, right=None, period=None):
    """Piecewise-linear interpolation, differentiable in ``x``, ``xp`` and ``fp`` (and in
    ``left``/``right``).  The segment each x falls in is found on raw values; inside it,
    f = fp[j] + (x - xp[j]) * slope.  Outside [xp[0], xp[-1]] the value is ``left`` or
    ``right`` (constant in x).  At a knot the derivative in x is the right segment's
    slope (the left one's at xp[-1])."""
    x, xp, fp = _arr(x), _arr(xp), _arr(fp)
    if _ndim(xp) != 1 or _ndim(fp) != 1:
        raise ValueError("Data points must be 1-D sequences")
    if _shape(xp) != _shape(fp):
        raise ValueError("fp and xp are not of the same length.")
    if _shape(xp)[0] == 0:
        raise ValueError("array of sample points is empty")
    if period is not None:
        if isinstance(period, Box):
            raise TypeError("dualgrad: numpy.interp's period cannot be a traced value")
        if period == 0:
            raise ValueError("period must be a non-zero value")
        period = abs(period)
        x, xp = P.remainder(x, period), P.remainder(xp, period)
        order = np.argsort(unbox(xp))
        xp, fp = getitem(xp, (order,)), getitem(fp, (order,))
        xp = concatenate([P.subtract(xp[-1:], period), xp, P.add(xp[:1], period)])
        fp = concatenate([fp[-1:], fp, fp[:1]])
        left = right = None
    rx, rxp = np.asarray(unbox(x)), np.asarray(unbox(xp))
    n = rxp.shape[0]
    if n == 1:
        y = P.add(P.multiply(fp[0], np.ones(rx.shape)), 0.0)
    else:
        j = np.clip(np.searchsorted(rxp, rx, side="right") - 1, 0, n - 2)
        x0, f0 = getitem(xp, (j,)), getitem(fp, (j,))
        slope = P.divide(P.subtract(getitem(fp, (j + 1,)), f0),
                         P.subtract(getitem(xp, (j + 1,)), x0))
        y = P.add(P.multiply(slope, P.subtract(x, x0)), f0)
    below, above = rx < rxp[0], rx > rxp[-1]
    if np.any(below):
        y = P.where(below, fp[0] if left is None else left, y)
    if np.any(above):
        y = P.where(above, fp[-1] if right is None else right, y)
    if n == 1 and np.any(rx == rxp[0]):
        y = P.where(rx == rxp[0], fp[0], y)
    return y
