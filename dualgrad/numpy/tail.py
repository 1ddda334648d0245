"""The long tail of numpy that real programs call, built from the primitive table.

``numpy_api.py`` covers the core (reductions, shapes, indexing, linear algebra); this
module adds the rest a user meets in practice: finite differences (``diff``,
``gradient``, ``trapezoid``), order statistics (``median``, ``quantile``: a sort, a
gather and linear weights), the ``nan*`` reductions (``where`` masks), statistics
(``average``, ``cov``, ``corrcoef``), array building (``append``, ``insert``,
``delete``, ``kron``, ``linspace``...), polynomials, ``convolve``, ``interp``,
``piecewise`` and the FFT.  Everything here is a composition of rows, so its
derivatives (of any order, in both modes) come from the rows' rules, and the four FFTs
at the end call the FFT rows (``rules/fft.py``: linear maps with the rules written out).

An index computed from raw values (a sort order, a ``searchsorted`` bin, a ``nan``
mask) is a constant; the values moved or weighted through it keep their derivative::

    >>> import numpy as np, dualgrad as dg
    >>> dg.grad(lambda x: np.median(x))(np.array([3.0, 1.0, 2.0]))
    array([0., 0., 1.])
"""

import builtins
import operator
import warnings

import numpy as np

from .. import rules as P
from ..core.trace import Box, unbox
from ..rules.fft import fft_, ifft_, irfft_, rfft_
from . import api
from .api import _axes, _gather, _no, _plain_index, _track, implements

_shape, _ndim = P.shape_of, P.ndim_of


def _arr(x):
    """A traced value as it is; anything else as a numpy array."""
    return x if isinstance(x, Box) else np.asarray(x)


def _along(x, ax, start=None, stop=None, step=None):
    """``x[..., start:stop:step, ...]`` on (negative) axis ``ax``."""
    return api.getitem(x, (Ellipsis, slice(start, stop, step)) + (slice(None),) * (-ax - 1))


def _on_axis(v, ax, nd):
    """A 1-D ``v`` shaped to broadcast along axis ``ax`` of an ``nd``-dim array."""
    shape = [1] * nd
    shape[ax] = -1
    return api.reshape(v, tuple(shape))


# ---------------------------------------------------------------------------
# finite differences and integrals
# ---------------------------------------------------------------------------

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
            parts.append(api.broadcast_to(v, tuple(edge)) if _ndim(v) == 0 else v)
    if parts[0] is not None or parts[1] is not None:
        a = api.concatenate([p for p in (parts[0], a, parts[1]) if p is not None], axis=ax)
    for _ in range(n):
        a = P.subtract(_along(a, ax, 1), _along(a, ax, None, -1))
    return a


@implements(np.ediff1d)
def ediff1d(ary, to_end=None, to_begin=None):
    d = diff(api.ravel(_arr(ary)))
    begin = [] if to_begin is None else [api.ravel(_arr(to_begin))]
    end = [] if to_end is None else [api.ravel(_arr(to_end))]
    return api.concatenate(begin + [d] + end) if begin or end else d


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
        out.append(api.concatenate([first, inner, last], axis=neg))
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
    return api.sum(mid, axis=ax)


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
        xp, fp = api.getitem(xp, (order,)), api.getitem(fp, (order,))
        xp = api.concatenate([P.subtract(xp[-1:], period), xp, P.add(xp[:1], period)])
        fp = api.concatenate([fp[-1:], fp, fp[:1]])
        left = right = None
    rx, rxp = np.asarray(unbox(x)), np.asarray(unbox(xp))
    n = rxp.shape[0]
    if n == 1:
        y = P.add(P.multiply(fp[0], np.ones(rx.shape)), 0.0)
    else:
        j = np.clip(np.searchsorted(rxp, rx, side="right") - 1, 0, n - 2)
        x0, f0 = api.getitem(xp, (j,)), api.getitem(fp, (j,))
        slope = P.divide(P.subtract(api.getitem(fp, (j + 1,)), f0),
                         P.subtract(api.getitem(xp, (j + 1,)), x0))
        y = P.add(P.multiply(slope, P.subtract(x, x0)), f0)
    below, above = rx < rxp[0], rx > rxp[-1]
    if np.any(below):
        y = P.where(below, fp[0] if left is None else left, y)
    if np.any(above):
        y = P.where(above, fp[-1] if right is None else right, y)
    if n == 1 and np.any(rx == rxp[0]):
        y = P.where(rx == rxp[0], fp[0], y)
    return y


# ---------------------------------------------------------------------------
# order statistics: sort, gather, linear weights
# ---------------------------------------------------------------------------

_METHODS = ("linear", "lower", "higher", "nearest", "midpoint")


def _quantile(a, q, axis, keepdims, method, skip_nan, fname):
    if method not in _METHODS:
        raise TypeError(f"dualgrad: numpy.{fname}(method={method!r}) has no derivative rule "
                        f"here; use one of {', '.join(_METHODS)}")
    rq = np.asarray(unbox(q), dtype=float)
    if rq.size and not (np.all(rq >= 0) and np.all(rq <= 1)):
        raise ValueError("Quantiles must be in the range [0, 1]")
    a = _arr(a)
    if _ndim(a) == 0:
        a = api.reshape(a, (1,))
    shape, nd = _shape(a), _ndim(a)
    axes = sorted(x % nd for x in _axes(axis, nd))
    keep = [i for i in range(nd) if i not in axes]
    kshape = tuple(shape[i] for i in keep)
    m = int(np.prod([shape[i] for i in axes], dtype=np.int64))
    if m == 0:
        return _empty_quantile(a, rq, axes, keepdims, fname)
    a2 = api.reshape(P.transpose(a, axes=tuple(keep + axes)), kshape + (m,))
    raw = np.asarray(unbox(a2))
    nan = np.isnan(raw)
    s = api.take_along_axis(a2, np.argsort(raw, axis=-1), -1)  # nans sort last
    count = np.sum(~nan, axis=-1, keepdims=True) if skip_nan else np.full(kshape + (1,), m)
    last = np.maximum(count - 1, 0)
    k = rq.size
    virtual = rq.reshape(k) * last  # (rows..., k): each row's fractional position
    if method == "lower":
        lo = np.floor(virtual)
    elif method == "higher":
        lo = np.ceil(virtual)
    elif method == "nearest":
        lo = np.around(virtual)
    else:
        lo = np.floor(virtual)
    lo = np.minimum(lo, last).astype(np.intp)
    hi = np.minimum(lo + 1, last)
    res = api.take_along_axis(s, lo, -1)
    if method in ("linear", "midpoint"):
        if method == "midpoint":
            gamma = np.where(virtual % 1 == 0, 0.0, 0.5)
        else:  # traced q: the position moves with q, so the weight does too
            qk = api.reshape(q, (k,)) if isinstance(q, Box) else rq.reshape(k)
            gamma = P.subtract(P.multiply(qk, last.astype(float)), lo.astype(float))
        step = P.subtract(api.take_along_axis(s, hi, -1), res)
        res = P.add(res, P.multiply(gamma, step))
    bad = (count == 0) if skip_nan else np.any(nan, axis=-1, keepdims=True)
    if np.any(bad):
        if skip_nan:
            warnings.warn("All-NaN slice encountered", RuntimeWarning, stacklevel=3)
        res = P.where(bad, np.nan, res)
    res = api.moveaxis(res, -1, 0)  # (k, rows...)
    out_shape = rq.shape + (tuple(1 if i in axes else n for i, n in enumerate(shape))
                            if keepdims else kshape)
    return api.reshape(res, out_shape)


def _empty_quantile(a, rq, axes, keepdims, fname):
    """A quantile over an axis of length 0: nan (numpy's median and nan-quantiles, with
    their warnings), a sum times nan so the derivative is JAX's, zeros of a's shape.
    numpy's quantile and percentile raise IndexError there; this says why instead."""
    if fname in ("quantile", "percentile"):
        raise ValueError(f"dualgrad: numpy.{fname} over an axis of length 0 has no value "
                         f"(numpy raises IndexError; nan{fname} gives nan)")
    warnings.warn("Mean of empty slice" if fname == "median" else "All-NaN slice encountered",
                  RuntimeWarning, stacklevel=4)
    base = P.multiply(api.sum(a, axis=tuple(axes), keepdims=keepdims), np.nan)
    return api.broadcast_to(base, rq.shape + _shape(base)) if rq.shape else base


def _quantile_function(fname, nan, percent):
    """np.quantile / percentile / nanquantile / nanpercentile: ``q`` in [0, 1] or in
    percent, nan entries ignored or not; all of them ``_quantile``."""
    def fn(a, q, axis=None, out=None, overwrite_input=False, method="linear",
           keepdims=False, *, weights=None, interpolation=None):
        _no(dict(out=out, weights=weights, interpolation=interpolation), fname, out=None,
            weights=None, interpolation=None)
        q = P.divide(_arr(q), 100.0) if percent else q
        return _quantile(a, q, axis, keepdims, method, nan, fname)
    fn.__name__ = fname
    return fn


quantile = implements(np.quantile)(_quantile_function("quantile", False, False))
percentile = implements(np.percentile)(_quantile_function("percentile", False, True))
nanquantile = implements(np.nanquantile)(_quantile_function("nanquantile", True, False))
nanpercentile = implements(np.nanpercentile)(_quantile_function("nanpercentile", True, True))


@implements(np.median)
def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    _no(dict(out=out), "median", out=None)
    return _quantile(a, 0.5, axis, keepdims, "linear", False, "median")


@implements(np.nanmedian)
def nanmedian(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    _no(dict(out=out), "nanmedian", out=None)
    return _quantile(a, 0.5, axis, keepdims, "linear", True, "nanmedian")


@implements(np.partition)
def partition(a, kth, axis=-1, kind="introselect", order=None):
    if axis is None:
        a, axis = api.ravel(a), -1
    return api.take_along_axis(a, np.argpartition(unbox(a), kth, axis=axis), axis)


# ---------------------------------------------------------------------------
# nan-skipping reductions: a where mask replaces nan by the operation's identity
# ---------------------------------------------------------------------------

def _nan_mask(a, fill):
    a = _arr(a)
    m = np.isnan(unbox(a))
    return (P.where(m, fill, a) if np.any(m) else a), m


def _nan_reduction(fname, reduce, fill):
    def nan_reduce(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
        _no(dict(out=out, **kw), fname, out=None, initial=np._NoValue, where=True)
        b, _ = _nan_mask(a, fill)
        r = reduce(b, axis, keepdims=keepdims)
        return r if dtype is None else api.astype(r, dtype)
    nan_reduce.__name__ = fname
    return nan_reduce


nansum = implements(np.nansum)(_nan_reduction("nansum", api.sum, 0.0))
nanprod = implements(np.nanprod)(_nan_reduction("nanprod", api.prod, 1.0))


def _nan_extreme(fname, reduce, fill):
    def nan_extreme(a, axis=None, out=None, keepdims=False, **kw):
        _no(dict(out=out, **kw), fname, out=None, initial=np._NoValue, where=True)
        b, m = _nan_mask(a, fill)
        r = reduce(b, axis, keepdims=keepdims)
        empty = np.all(m, axis=axis, keepdims=keepdims)
        if np.any(empty):
            warnings.warn("All-NaN slice encountered", RuntimeWarning, stacklevel=2)
            r = P.where(empty, np.nan, r)
        return r
    nan_extreme.__name__ = fname
    return nan_extreme


nanmax = implements(np.nanmax)(_nan_extreme("nanmax", api.max, -np.inf))
nanmin = implements(np.nanmin)(_nan_extreme("nanmin", api.min, np.inf))


@implements(np.nancumsum)
def nancumsum(a, axis=None, dtype=None, out=None):
    return api.cumsum(_nan_mask(a, 0.0)[0], axis, dtype, out)


@implements(np.nancumprod)
def nancumprod(a, axis=None, dtype=None, out=None):
    return api.cumprod(_nan_mask(a, 1.0)[0], axis, dtype, out)


@implements(np.nanmean)
def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _no(dict(out=out, **kw), "nanmean", out=None, where=True)
    b, m = _nan_mask(a, 0.0)
    count = np.sum(~m, axis=axis, keepdims=keepdims)
    with np.errstate(invalid="ignore", divide="ignore"):
        if np.any(count == 0):
            warnings.warn("Mean of empty slice", RuntimeWarning, stacklevel=2)
        return P.divide(api.sum(b, axis, dtype, keepdims=keepdims), count.astype(float))


@implements(np.nanvar)
def nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    _no(dict(out=out, **kw), "nanvar", out=None, where=True, mean=np._NoValue,
        correction=np._NoValue)
    b, m = _nan_mask(a, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = P.divide(api.sum(b, axis, keepdims=True),
                          np.sum(~m, axis=axis, keepdims=True).astype(float))
        d = P.subtract(b, centre)
        d = P.where(m, 0.0, d) if np.any(m) else d
        dof = np.sum(~m, axis=axis, keepdims=keepdims) - ddof
        if np.any(dof <= 0):
            warnings.warn("Degrees of freedom <= 0 for slice.", RuntimeWarning, stacklevel=2)
        r = P.divide(api.sum(api._abs2(d), axis, keepdims=keepdims),
                     np.maximum(dof, 0).astype(float))
        return r if dtype is None else api.astype(r, dtype)


@implements(np.nanstd)
def nanstd(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    return P.sqrt(nanvar(a, axis, dtype, out, ddof, keepdims, **kw))


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------

@implements(np.average)
def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """The weighted mean, differentiable in both ``a`` and ``weights``."""
    a = _arr(a)
    nd = _ndim(a)
    if weights is None:
        avg = api.mean(a, axis, keepdims=keepdims)
        scl = np.full(_shape(avg), float(api._size(a) // max(api._size(avg), 1)))
    else:
        w = _arr(weights)
        if _shape(w) != _shape(a):
            if axis is None:
                raise TypeError("Axis must be specified when shapes of a and weights differ.")
            axes = _axes(axis, nd)
            if _shape(w) != tuple(_shape(a)[x] for x in axes):
                raise ValueError("Shape of weights must be consistent with shape of a along "
                                 "specified axis.")
            full = [1] * nd
            for x, n in zip(axes, _shape(w)):
                full[x] = n
            w = api.reshape(w, tuple(full))
        w = api.broadcast_to(w, _shape(a)) if _shape(w) != _shape(a) else w
        scl = api.sum(w, axis, keepdims=keepdims)
        if np.any(unbox(scl) == 0.0):
            raise ZeroDivisionError("Weights sum to zero, can't be normalized")
        avg = P.divide(api.sum(P.multiply(a, w), axis, keepdims=keepdims), scl)
    return (avg, scl) if returned else avg


@implements(np.cov)
def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *,
        dtype=None):
    """numpy's algorithm line for line, on rows: differentiable in the data and in
    ``aweights`` (``fweights`` are integer counts)."""
    if ddof is not None and ddof != int(ddof):
        raise ValueError("ddof must be integer")
    X = api.atleast_2d(_arr(m))
    if not rowvar and _shape(X)[0] != 1:
        X = api.transpose(X)
    if y is not None:
        Y = api.atleast_2d(_arr(y))
        if not rowvar and _shape(Y)[0] != 1:
            Y = api.transpose(Y)
        X = api.concatenate([X, Y], axis=0)
    if ddof is None:
        ddof = 1 if not bias else 0
    w = None
    if fweights is not None:
        w = np.asarray(_plain_index(fweights, "cov", "fweights"), dtype=float)
    if aweights is not None:
        aw = _arr(aweights)
        w = aw if w is None else P.multiply(w, aw)
    avg, w_sum = average(X, axis=1, weights=w, returned=True)
    w_sum = w_sum[0] if _ndim(w_sum) else w_sum
    if w is None:
        fact = float(_shape(X)[1] - ddof)
    elif ddof == 0:
        fact = w_sum
    elif aweights is None:
        fact = P.subtract(w_sum, float(ddof))
    else:
        fact = P.subtract(w_sum, P.divide(P.multiply(float(ddof),
                                                     api.sum(P.multiply(w, aw))), w_sum))
    if np.any(unbox(fact) <= 0):
        warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=2)
        fact = 0.0
    X = P.subtract(X, api.expand_dims(avg, 1))
    XT = api.transpose(X if w is None else P.multiply(X, w))
    if P.is_complex(XT):
        XT = P.conjugate(XT)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = P.divide(P.matmul(X, XT), fact)
    c = api.squeeze(c)
    return c if dtype is None else api.astype(c, dtype)


@implements(np.corrcoef)
def corrcoef(x, y=None, rowvar=True, *, dtype=None):
    c = cov(x, y, rowvar, dtype=dtype)
    if _ndim(c) == 0:
        return P.divide(c, c)
    d = api.diagonal(c)
    sd = P.sqrt(P.real(d) if P.is_complex(d) else d)
    c = P.divide(P.divide(c, api.expand_dims(sd, 1)), api.expand_dims(sd, 0))
    if P.is_complex(c):
        return P.add(P.clip(P.real(c), -1.0, 1.0), P.multiply(P.clip(P.imag(c), -1.0, 1.0), 1j))
    return P.clip(c, -1.0, 1.0)


# ---------------------------------------------------------------------------
# building and rearranging arrays
# ---------------------------------------------------------------------------

@implements(np.copy)
def copy(a, order="K", subok=False):
    """A new traced value (``positive``): writing into the copy later leaves ``a`` alone."""
    return P.positive(a) if isinstance(a, Box) else np.copy(a, order=order)


Box.copy = lambda self, order="C": copy(self)  # x.copy(), as np.copy(x)


@implements(np.append)
def append(arr, values, axis=None):
    arr, values = _arr(arr), _arr(values)
    if axis is None:
        return api.concatenate([api.ravel(arr), api.ravel(values)])
    return api.concatenate([arr, values], axis=axis)


@implements(np.insert)
def insert(arr, obj, values, axis=None):
    """A gather from ``arr`` and ``values`` together; numpy's own insert of the positions
    decides where each entry goes (its broadcasting of ``values`` included)."""
    arr, values = _arr(arr), _arr(values)
    if isinstance(obj, Box):
        raise TypeError("dualgrad: numpy.insert's obj (the positions) cannot be traced")
    dtype = np.result_type(unbox(arr))
    if dtype.kind not in "fc":  # numpy casts the values to arr's (integer) dtype
        return np.insert(unbox(arr), obj, unbox(values), axis)
    if np.result_type(unbox(values)) != dtype:
        values = api.astype(values, dtype)
    n, k = api._size(arr), api._size(values)
    ix = np.insert(np.arange(n).reshape(_shape(arr)), obj,
                   n + np.arange(k).reshape(_shape(values)), axis)
    src = api.concatenate([api.ravel(arr), api.ravel(values)])
    return api.getitem(src, (ix,))


@implements(np.delete)
def delete(arr, obj, axis=None):
    if isinstance(obj, Box):
        raise TypeError("dualgrad: numpy.delete's obj (the positions) cannot be traced")
    return _gather(_arr(arr), lambda ix: np.delete(ix, obj, axis))


@implements(np.kron)
def kron(a, b):
    """Every product a[i] * b[j], laid out as numpy's Kronecker blocks: one broadcast
    multiply between interleaved axes, then a reshape."""
    a, b = _arr(a), _arr(b)
    nd = max(_ndim(a), _ndim(b))
    sa = (1,) * (nd - _ndim(a)) + tuple(_shape(a))
    sb = (1,) * (nd - _ndim(b)) + tuple(_shape(b))
    A = api.reshape(a, tuple(v for n in sa for v in (n, 1)))
    B = api.reshape(b, tuple(v for n in sb for v in (1, n)))
    return api.reshape(P.multiply(A, B), tuple(x * y for x, y in zip(sa, sb)))


@implements(np.cross)
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = api.moveaxis(_arr(a), axisa, -1), api.moveaxis(_arr(b), axisb, -1)
    na, nb = _shape(a)[-1], _shape(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError("incompatible dimensions for cross product\n"
                         "(dimension must be 2 or 3)")
    if na == 2 or nb == 2:
        warnings.warn("Arrays of 2-dimensional vectors are deprecated. Use arrays of "
                      "3-dimensional vectors instead. (deprecated in NumPy 2.0)",
                      DeprecationWarning, stacklevel=2)
    a0, a1, b0, b1 = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    c2 = P.subtract(P.multiply(a0, b1), P.multiply(a1, b0))
    if na == 2 and nb == 2:
        return c2
    a2 = a[..., 2] if na == 3 else 0.0
    b2 = b[..., 2] if nb == 3 else 0.0
    c0 = P.subtract(P.multiply(a1, b2), P.multiply(a2, b1))
    c1 = P.subtract(P.multiply(a2, b0), P.multiply(a0, b2))
    c = api.stack([c0, c1, c2], axis=-1)
    return api.moveaxis(c, -1, axisc)


@implements(np.linalg.outer)
def linalg_outer(x1, x2, /):
    if _ndim(x1) != 1 or _ndim(x2) != 1:
        raise ValueError("Input arrays must be one-dimensional")
    return api.outer(x1, x2)


@implements(np.matrix_transpose)
def matrix_transpose(x, /):
    if _ndim(x) < 2:
        raise ValueError("Input array must be at least 2-dimensional")
    return api.swapaxes(x, -1, -2)


@implements(np.ptp)
def ptp(a, axis=None, out=None, keepdims=False):
    _no(dict(out=out), "ptp", out=None)
    return P.subtract(api.max(a, axis, keepdims=keepdims), api.min(a, axis, keepdims=keepdims))


def _cumulative(fname, scan, initial):
    def cumulative(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
        _no(dict(out=out), fname, out=None)
        if axis is None:
            if _ndim(x) != 1:
                raise ValueError("For arrays which have more than one dimension ``axis`` "
                                 "argument is required.")
            axis = 0
        r = scan(x, axis, dtype)
        if include_initial:
            edge = list(_shape(r))
            edge[axis] = 1
            r = api.concatenate([np.full(edge, initial, np.result_type(unbox(r))), r], axis)
        return r
    cumulative.__name__ = fname
    return cumulative


if hasattr(np, "cumulative_sum"):  # NumPy >= 2.1
    implements(np.cumulative_sum)(_cumulative("cumulative_sum", api.cumsum, 0.0))
    implements(np.cumulative_prod)(_cumulative("cumulative_prod", api.cumprod, 1.0))


@implements(np.atleast_3d)
def atleast_3d(*arys):
    def lift(a):
        a = _arr(a)
        nd = _ndim(a)
        if nd == 0:
            return api.reshape(a, (1, 1, 1))
        if nd == 1:
            return api.reshape(a, (1,) + _shape(a) + (1,))
        return api.reshape(a, _shape(a) + (1,)) if nd == 2 else a
    r = [lift(a) for a in arys]
    return r[0] if len(r) == 1 else tuple(r)


@implements(np.rollaxis)
def rollaxis(a, axis, start=0):
    n = _ndim(a)
    axis = _axes(axis, n)[0] % n
    if start < 0:
        start += n
    if not 0 <= start < n + 1:
        raise np.exceptions.AxisError(f"start={start} is out of bounds for an array of "
                                      f"dimension {n}")
    if axis < start:
        start -= 1
    order = [i for i in range(n) if i != axis]
    order.insert(start, axis)
    return P.transpose(a, axes=tuple(order)) if order != list(range(n)) else a


@implements(np.column_stack)
def column_stack(tup):
    cols = [_arr(a) for a in tup]
    cols = [api.reshape(a, (-1, 1)) if _ndim(a) < 2 else a for a in cols]
    return api.concatenate(cols, axis=1)


@implements(np.dstack)
def dstack(tup):
    return api.concatenate([atleast_3d(a) for a in tup], axis=2)


def _split_on(fname, axis, least):
    def split(ary, indices_or_sections):
        if _ndim(ary) < least:
            raise ValueError(f"{fname} only works on arrays of {least} or more dimensions")
        ax = axis if not callable(axis) else axis(ary)
        return api.split(ary, indices_or_sections, ax)
    split.__name__ = fname
    return split


vsplit = implements(np.vsplit)(_split_on("vsplit", 0, 2))
hsplit = implements(np.hsplit)(_split_on("hsplit", lambda a: 1 if _ndim(a) > 1 else 0, 1))
dsplit = implements(np.dsplit)(_split_on("dsplit", 2, 3))


@implements(np.select)
def select(condlist, choicelist, default=0):
    if len(condlist) != len(choicelist):
        raise ValueError("list of cases must be same length as list of conditions")
    if len(condlist) == 0:
        raise ValueError("select with an empty condition list is not possible")
    out = _arr(default)
    for i in reversed(range(len(condlist))):  # the first true condition wins
        c = np.asarray(unbox(condlist[i]))
        if c.dtype != bool:
            raise TypeError(f"invalid entry {i} in condlist: should be boolean ndarray")
        out = P.where(c, _arr(choicelist[i]), out)
    shape = np.broadcast_shapes(*[np.shape(unbox(c)) for c in condlist],
                                *[_shape(v) for v in choicelist], _shape(default))
    return api.broadcast_to(out, shape)


@implements(np.piecewise)
def piecewise(x, condlist, funclist, *args, **kw):
    """numpy's piecewise as gathers and scatters: each piece gets x[cond] (a gather) and
    its values are scattered back; a later condition wins where two overlap, as in numpy."""
    x = _arr(x)
    rx = np.asarray(unbox(x))
    if isinstance(condlist, np.ndarray) or not isinstance(condlist, (list, tuple)) or (
            condlist and np.ndim(unbox(condlist[0])) == 0 and rx.ndim != 0):
        condlist = [condlist]
    conds = [np.broadcast_to(np.asarray(unbox(c), bool), rx.shape) for c in condlist]
    if len(funclist) == len(conds) + 1:
        conds.append(~np.any(conds, axis=0) if conds else np.ones(rx.shape, bool))
    elif len(funclist) != len(conds):
        raise ValueError(f"with {len(conds)} condition(s), either {len(conds)} or "
                         f"{len(conds) + 1} functions are expected")
    taken = np.zeros(rx.shape, bool)
    dtype = np.result_type(rx)
    out = np.zeros(rx.shape, dtype)
    flat = api.reshape(x, (-1,))
    for cond, fn in reversed(list(zip(conds, funclist))):
        mask = cond & ~taken
        taken |= cond
        if not mask.any():
            continue
        where_flat = np.flatnonzero(mask)
        if callable(fn):
            v = fn(api.reshape(api.getitem(flat, (where_flat,)), (-1,)), *args, **kw)
        else:
            v = fn
        v = _arr(v)
        if not isinstance(v, Box):
            v = np.asarray(v, dtype)
        v = api.broadcast_to(v, (where_flat.size,)) if _shape(v) != (where_flat.size,) else v
        out = P.add(out, api.reshape(P.scatter_add(v, idx=(where_flat,), shape=(rx.size,)),
                                     rx.shape))
    return out


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
    y = api.moveaxis(y, 0, axis) if axis != 0 and np.ndim(raw) > 1 else y
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
        y = api.concatenate([P.multiply(start, np.ones((1,) + _shape(y)[1:])),
                             y[1:-1], P.multiply(stop, np.ones((1,) + _shape(y)[1:]))]) \
            if num > 1 else P.multiply(start, np.ones(_shape(y)))
    if dtype is not None:
        y = api.astype(y, dtype)
    return api.moveaxis(y, 0, axis) if axis != 0 and _ndim(y) > 1 else y


@implements(np.logspace)
def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    y = P.power(_arr(base), linspace(start, stop, num, endpoint))
    if dtype is not None:
        y = api.astype(y, dtype)
    return api.moveaxis(y, 0, axis) if axis != 0 and _ndim(y) > 1 else y


@implements(np.nan_to_num)
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """Derivative 1 at finite entries, 0 where a nan or an infinity was replaced."""
    x = _arr(x)
    if P.is_complex(x):
        re, im = (nan_to_num(p, copy, nan, posinf, neginf) for p in (P.real(x), P.imag(x)))
        return P.add(re, P.multiply(im, 1j))
    rx = np.asarray(unbox(x))
    if rx.dtype.kind not in "fc":
        return x
    big = np.finfo(rx.dtype).max
    posinf = big if posinf is None else posinf
    neginf = -big if neginf is None else neginf
    for mask, v in ((np.isnan(rx), nan), (np.isposinf(rx), posinf), (np.isneginf(rx), neginf)):
        if np.any(mask):
            x = P.where(mask, api.astype(v, rx.dtype) if isinstance(v, Box) else
                        np.asarray(v, rx.dtype), x)
    return x


@implements(np.real_if_close)
def real_if_close(a, tol=100):
    if not P.is_complex(a):
        return a
    ra = np.asarray(unbox(a))
    if tol > 1:
        tol = np.finfo(ra.dtype).eps * tol
    return P.real(a) if np.all(np.absolute(ra.imag) < tol) else a


@implements(np.iscomplex)
def iscomplex(x):
    return np.iscomplex(unbox(x))  # booleans: no derivative


@implements(np.isreal)
def isreal(x):
    return np.isreal(unbox(x))


@implements(np.sinc)
def sinc(x):
    """sin(pi x) / (pi x), with its Taylor polynomial near 0, so that every derivative at
    and around 0 is exact (the quotient's rules would cancel catastrophically there)."""
    x = _arr(x)
    small = np.abs(unbox(x)) < 1e-2
    y = P.multiply(np.pi, x)
    if not np.any(small):
        return P.divide(P.sin(y), y)
    taylor = _horner(P.square(y), (1 / 362880, -1 / 5040, 1 / 120, -1 / 6, 1.0))
    ys = P.where(small, 1.0, y)
    return P.where(small, taylor, P.divide(P.sin(ys), ys))


def _horner(z, coeffs):
    r = coeffs[0]
    for c in coeffs[1:]:
        r = P.add(P.multiply(r, z), c)
    return r


# ---------------------------------------------------------------------------
# convolution and polynomials
# ---------------------------------------------------------------------------

def _full_convolution(a, v):
    """Full 1-D convolution as a matrix product: T[k, j] = v[k - j] (0 outside), c = T @ a;
    T is a gather of v with a zero fill."""
    n, m = _shape(a)[0], _shape(v)[0]
    k, j = np.arange(n + m - 1)[:, None], np.arange(n)[None, :]
    src = np.where((k - j >= 0) & (k - j < m), k - j, m)
    return P.matmul(_gather(v, lambda ix: src, fill=0.0), a)


@implements(np.convolve)
def convolve(a, v, mode="full"):
    a, v = _arr(a), _arr(v)
    if _ndim(a) != 1 or _ndim(v) != 1:
        a, v = api.ravel(a), api.ravel(v)
    n, m = _shape(a)[0], _shape(v)[0]
    if n == 0 or m == 0:
        raise ValueError("a cannot be empty" if n == 0 else "v cannot be empty")
    if m > n:
        a, v, n, m = v, a, m, n
    full = _full_convolution(a, v)
    if mode == "full":
        return full
    if mode == "same":
        return full[(m - 1) // 2:(m - 1) // 2 + n]
    if mode == "valid":
        return full[m - 1:n]
    raise ValueError(f"mode must be one of 'valid', 'same', or 'full' (got {mode!r})")


@implements(np.correlate)
def correlate(a, v, mode="valid"):
    """c[k] = sum_n a[n + k] conj(v[n]) = convolve(a, conj(v[::-1]))."""
    a, v = _arr(a), _arr(v)
    w = api.flip(v)
    if P.is_complex(w):
        w = P.conjugate(w)
    n, m = _shape(a)[0], _shape(v)[0]
    if mode == "same" and m > n and n % 2 == 0:  # numpy's window sits one later here
        return convolve(a, w, "full")[n // 2:n // 2 + m]
    return convolve(a, w, mode)


@implements(np.polyval)
def polyval(p, x):
    p, x = _arr(p), _arr(x)
    y = np.zeros(_shape(x), np.result_type(unbox(p), unbox(x), 1.0))
    for i in range(_shape(p)[0]):
        y = P.add(P.multiply(y, x), p[i])
    return y


def _pad_front(p, n):
    k = _shape(p)[0]
    return p if k == n else api.concatenate([np.zeros(n - k, P.float_dtype(p)), p])


@implements(np.polyadd)
def polyadd(a1, a2):
    a1, a2 = api.atleast_1d(_arr(a1)), api.atleast_1d(_arr(a2))
    n = builtins.max(_shape(a1)[0], _shape(a2)[0])
    return P.add(_pad_front(a1, n), _pad_front(a2, n))


@implements(np.polysub)
def polysub(a1, a2):
    a1, a2 = api.atleast_1d(_arr(a1)), api.atleast_1d(_arr(a2))
    n = builtins.max(_shape(a1)[0], _shape(a2)[0])
    return P.subtract(_pad_front(a1, n), _pad_front(a2, n))


@implements(np.polymul)
def polymul(a1, a2):
    return convolve(api.atleast_1d(_arr(a1)), api.atleast_1d(_arr(a2)))


@implements(np.polyder)
def polyder(p, m=1):
    if m < 0:
        raise ValueError("Order of derivative must be positive (see polyint)")
    p = api.atleast_1d(_arr(p))
    for _ in range(m):
        n = _shape(p)[0] - 1
        if n <= 0:
            return P.multiply(p[:1], 0.0)
        p = P.multiply(p[:-1], np.arange(n, 0, -1, dtype=float))
    return p


@implements(np.polyint)
def polyint(p, m=1, k=None):
    if m < 0:
        raise ValueError("Order of integral must be positive (see polyder)")
    k = [0.0] * m if k is None else k
    if not isinstance(k, (list, tuple)) and _ndim(k) == 0:
        k = [k] * m
    if len(k) < m:
        raise ValueError("k must be a scalar or a rank-1 array of length 1 or >m.")
    p = api.atleast_1d(_arr(p))
    for i in range(m):
        n = _shape(p)[0]
        c = k[i]
        c = api.reshape(c, (1,)) if isinstance(c, Box) else np.full(1, c, P.float_dtype(p))
        p = api.concatenate([P.divide(p, np.arange(n, 0, -1, dtype=float)), c])
    return p


@implements(np.vander)
def vander(x, N=None, increasing=False):
    x = _arr(x)
    if _ndim(x) != 1:
        raise ValueError("x must be a one-dimensional array or sequence.")
    N = _shape(x)[0] if N is None else N
    rows = _shape(x)[0]
    if N == 0:
        return np.zeros((rows, 0), P.float_dtype(x))
    # x ** k as a cumulative product of [1, x, x, ...]: exact, and no 0 ** -1 at x = 0
    cols = api.broadcast_to(api.expand_dims(x, 1), (rows, N - 1))
    v = api.cumprod(api.concatenate([np.ones((rows, 1), P.float_dtype(x)), cols], axis=1),
                    axis=1)
    return v if increasing else api.flip(v, 1)


def _fit_length(a, n, axis):
    """numpy's ``n``: truncate, or zero-pad at the end of ``axis``."""
    have = _shape(a)[axis]
    if n == have:
        return a
    if n < have:
        return _along(a, axis, 0, n)
    pad = list(_shape(a))
    pad[axis] = n - have
    return api.concatenate([a, np.zeros(pad, np.result_type(unbox(a), 1.0),
                                        like=P.device_like(a))], axis=axis)


def _fft_args(a, n, axis, norm, out, fname):
    _no(dict(out=out), fname, out=None)
    if norm not in (None, "backward", "ortho", "forward"):
        raise ValueError(f'Invalid norm value {norm}; should be "backward", "ortho" or '
                         '"forward".')
    a = _arr(a)
    ax = _axes(axis, _ndim(a))[0]
    return a, ax, (None if norm == "backward" else norm)


@implements(np.fft.fft)
def fft(a, n=None, axis=-1, norm=None, out=None):
    a, ax, norm = _fft_args(a, n, axis, norm, out, "fft.fft")
    a = _fit_length(a, _shape(a)[ax] if n is None else n, ax)
    return fft_(a, axis=ax, norm=norm)


@implements(np.fft.ifft)
def ifft(a, n=None, axis=-1, norm=None, out=None):
    a, ax, norm = _fft_args(a, n, axis, norm, out, "fft.ifft")
    a = _fit_length(a, _shape(a)[ax] if n is None else n, ax)
    return ifft_(a, axis=ax, norm=norm)


@implements(np.fft.rfft)
def rfft(a, n=None, axis=-1, norm=None, out=None):
    a, ax, norm = _fft_args(a, n, axis, norm, out, "fft.rfft")
    if P.is_complex(a):
        raise TypeError("dualgrad: numpy.fft.rfft takes a real input; use numpy.fft.fft")
    a = _fit_length(a, _shape(a)[ax] if n is None else n, ax)
    return rfft_(a, axis=ax, norm=norm)


@implements(np.fft.irfft)
def irfft(a, n=None, axis=-1, norm=None, out=None):
    a, ax, norm = _fft_args(a, n, axis, norm, out, "fft.irfft")
    n = 2 * (_shape(a)[ax] - 1) if n is None else n
    if n < 1:
        raise ValueError(f"Invalid number of FFT data points ({n}) specified.")
    a = _fit_length(a, n // 2 + 1, ax)
    return irfft_(a, n=n, axis=ax, norm=norm)


def _nd_axes(a, s, axes, default2):
    nd = _ndim(a)
    if axes is None:
        axes = (-2, -1) if default2 else (tuple(range(-len(s), 0)) if s is not None
                                          else tuple(range(-nd, 0)))
    axes = list(_axes(axes, nd))
    s = [None] * len(axes) if s is None else list(s)
    if len(s) != len(axes):
        raise ValueError("Shape and axes have different lengths.")
    return s, axes


def _fftn(one, last=None, default2=False, fname="fftn"):
    def transform(a, s=None, axes=None, norm=None, out=None):
        _no(dict(out=out), f"fft.{fname}", out=None)
        s, axes = _nd_axes(_arr(a), s, axes, default2)
        pairs = list(zip(s, axes))
        if last is not None:  # the real transform on the last axis: first for rfftn, last
            n, ax = pairs.pop()  # for irfftn
            if last is rfft:
                a = rfft(a, n, ax, norm)
            for n_i, ax_i in pairs[::-1]:
                a = one(a, n_i, ax_i, norm)
            return irfft(a, n, ax, norm) if last is irfft else a
        for n_i, ax_i in pairs[::-1]:
            a = one(a, n_i, ax_i, norm)
        return a
    transform.__name__ = fname
    return transform


fft2 = implements(np.fft.fft2)(_fftn(fft, None, True, "fft2"))
ifft2 = implements(np.fft.ifft2)(_fftn(ifft, None, True, "ifft2"))
fftn = implements(np.fft.fftn)(_fftn(fft, None, False, "fftn"))
ifftn = implements(np.fft.ifftn)(_fftn(ifft, None, False, "ifftn"))
rfft2 = implements(np.fft.rfft2)(_fftn(fft, rfft, True, "rfft2"))
irfft2 = implements(np.fft.irfft2)(_fftn(ifft, irfft, True, "irfft2"))
rfftn = implements(np.fft.rfftn)(_fftn(fft, rfft, False, "rfftn"))
irfftn = implements(np.fft.irfftn)(_fftn(ifft, irfft, False, "irfftn"))


@implements(np.fft.fftshift)
def fftshift(x, axes=None):
    x = _arr(x)
    axes = tuple(range(_ndim(x))) if axes is None else axes
    axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
    return api.roll(x, [_shape(x)[a] // 2 for a in axes], axes)


@implements(np.fft.ifftshift)
def ifftshift(x, axes=None):
    x = _arr(x)
    axes = tuple(range(_ndim(x))) if axes is None else axes
    axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
    return api.roll(x, [-(_shape(x)[a] // 2) for a in axes], axes)
