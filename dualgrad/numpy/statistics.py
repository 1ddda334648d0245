"""Statistics: quantile, percentile and median (and their nan-skipping forms), average,
cov, corrcoef, histogram, bincount.

Order statistics are a sort, a gather and linear weights: the sort order is a constant,
the values gathered keep their derivative::

    >>> import numpy as np, dualgrad as dg
    >>> dg.grad(lambda x: np.median(x))(np.array([3.0, 1.0, 2.0]))
    array([0., 0., 1.])

Counts are piecewise constant (derivative 0); weighted counts are a scatter-add of the
weights, and histogram's edges move with the data's range.
"""

import warnings

import numpy as np

from .. import rules as P
from ..core.trace import Box, unbox
from . import reductions
from .dispatch import _arr, _no, implements
from .elementwise import _track, astype
from .gather import diagonal, take_along_axis
from .indexing import _plain_index, getitem
from .reductions import mean
from .shapes import (
    _size,
    atleast_2d,
    broadcast_to,
    concatenate,
    expand_dims,
    moveaxis,
    ravel,
    reshape,
    squeeze,
    transpose,
)

_shape, _ndim = P.shape_of, P.ndim_of
_axes = P.normalize_axes


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
        a = reshape(a, (1,))
    shape, nd = _shape(a), _ndim(a)
    axes = sorted(x % nd for x in _axes(axis, nd))
    keep = [i for i in range(nd) if i not in axes]
    kshape = tuple(shape[i] for i in keep)
    m = int(np.prod([shape[i] for i in axes], dtype=np.int64))
    if m == 0:
        return _empty_quantile(a, rq, axes, keepdims, fname)
    a2 = reshape(P.transpose(a, axes=tuple(keep + axes)), kshape + (m,))
    P.no_lazy_form(a2, f"np.{fname}", "it sorts along the axis (dask has no lazy sort)")
    raw = unbox(a2)
    if isinstance(raw, Box) or np.shape(raw) != _shape(a2):  # dg.vmap: a batch of rows
        raise TypeError(f"dualgrad: np.{fname} under dg.vmap is not supported yet (it "
                        "sorts each example's values); compute it in a Python loop over "
                        "the examples and np.stack the results")
    raw = np.asarray(raw)
    nan = np.isnan(raw)
    s = take_along_axis(a2, np.argsort(raw, axis=-1), -1)  # nans sort last
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
    res = take_along_axis(s, lo, -1)
    if method in ("linear", "midpoint"):
        if method == "midpoint":
            gamma = np.where(virtual % 1 == 0, 0.0, 0.5)
        else:  # traced q: the position moves with q, so the weight does too
            qk = reshape(q, (k,)) if isinstance(q, Box) else rq.reshape(k)
            gamma = P.subtract(P.multiply(qk, last.astype(float)), lo.astype(float))
        step = P.subtract(take_along_axis(s, hi, -1), res)
        res = P.add(res, P.multiply(gamma, step))
    bad = (count == 0) if skip_nan else np.any(nan, axis=-1, keepdims=True)
    if np.any(bad):
        if skip_nan:
            warnings.warn("All-NaN slice encountered", RuntimeWarning, stacklevel=3)
        res = P.where(bad, np.nan, res)
    res = moveaxis(res, -1, 0)  # (k, rows...)
    out_shape = rq.shape + (tuple(1 if i in axes else n for i, n in enumerate(shape))
                            if keepdims else kshape)
    return reshape(res, out_shape)


def _empty_quantile(a, rq, axes, keepdims, fname):
    """A quantile over an axis of length 0: nan (numpy's median and nan-quantiles, with
    their warnings), a sum times nan so the derivative is JAX's, zeros of a's shape.
    numpy's quantile and percentile raise IndexError there; this says why instead."""
    if fname in ("quantile", "percentile"):
        raise ValueError(f"dualgrad: numpy.{fname} over an axis of length 0 has no value "
                         f"(numpy raises IndexError; nan{fname} gives nan)")
    warnings.warn("Mean of empty slice" if fname == "median" else "All-NaN slice encountered",
                  RuntimeWarning, stacklevel=4)
    base = P.multiply(reductions.sum(a, axis=tuple(axes), keepdims=keepdims), np.nan)
    return broadcast_to(base, rq.shape + _shape(base)) if rq.shape else base


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


# ---------------------------------------------------------------------------
# averages and correlations
# ---------------------------------------------------------------------------

@implements(np.average)
def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """The weighted mean, differentiable in both ``a`` and ``weights``."""
    a = _arr(a)
    nd = _ndim(a)
    if weights is None:
        avg = mean(a, axis, keepdims=keepdims)
        scl = np.full(_shape(avg), float(_size(a) // max(_size(avg), 1)))
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
            w = reshape(w, tuple(full))
        w = broadcast_to(w, _shape(a)) if _shape(w) != _shape(a) else w
        scl = reductions.sum(w, axis, keepdims=keepdims)
        if np.any(unbox(scl) == 0.0):
            raise ZeroDivisionError("Weights sum to zero, can't be normalized")
        avg = P.divide(reductions.sum(P.multiply(a, w), axis, keepdims=keepdims), scl)
    return (avg, scl) if returned else avg


@implements(np.cov)
def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *,
        dtype=None):
    """numpy's algorithm line for line, on rows: differentiable in the data and in
    ``aweights`` (``fweights`` are integer counts)."""
    if ddof is not None and ddof != int(ddof):
        raise ValueError("ddof must be integer")
    X = atleast_2d(_arr(m))
    if not rowvar and _shape(X)[0] != 1:
        X = transpose(X)
    if y is not None:
        Y = atleast_2d(_arr(y))
        if not rowvar and _shape(Y)[0] != 1:
            Y = transpose(Y)
        X = concatenate([X, Y], axis=0)
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
                                                     reductions.sum(P.multiply(w, aw))), w_sum))
    if np.any(unbox(fact) <= 0):
        warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=2)
        fact = 0.0
    X = P.subtract(X, expand_dims(avg, 1))
    XT = transpose(X if w is None else P.multiply(X, w))
    if P.is_complex(XT):
        XT = P.conjugate(XT)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = P.divide(P.matmul(X, XT), fact)
    c = squeeze(c)
    return c if dtype is None else astype(c, dtype)


@implements(np.corrcoef)
def corrcoef(x, y=None, rowvar=True, *, dtype=None):
    c = cov(x, y, rowvar, dtype=dtype)
    if _ndim(c) == 0:
        return P.divide(c, c)
    d = diagonal(c)
    sd = P.sqrt(P.real(d) if P.is_complex(d) else d)
    c = P.divide(P.divide(c, expand_dims(sd, 1)), expand_dims(sd, 0))
    if P.is_complex(c):
        return P.add(P.clip(P.real(c), -1.0, 1.0), P.multiply(P.clip(P.imag(c), -1.0, 1.0), 1j))
    return P.clip(c, -1.0, 1.0)


# ---------------------------------------------------------------------------
# counts: constant, but weighted counts are a scatter-add of the weights
# ---------------------------------------------------------------------------

@implements(np.bincount)
def bincount(x, weights=None, minlength=0):
    """Counts are constant; weighted counts are a scatter-add of the weights."""
    x = _plain_index(x, "bincount", "x")
    raw = np.bincount(x, weights=unbox(weights), minlength=minlength)  # numpy's checks
    if not isinstance(weights, Box):
        return raw
    return P.scatter_add(weights, idx=(x,), shape=raw.shape)


@implements(np.histogram)
def histogram(a, bins=10, range=None, density=None, weights=None):
    """Counts are piecewise constant in ``a`` (derivative 0); the bin edges move with
    ``a``'s min and max (or with ``range``); weighted counts are a scatter-add."""
    raw_a = np.asarray(unbox(a))
    rng = None if range is None else tuple(unbox(r) for r in range)
    raw_bins = unbox(bins)
    if isinstance(raw_bins, str) and isinstance(a, Box):
        raise TypeError(f"dualgrad: numpy.histogram(bins={raw_bins!r}) estimates its bins from "
                        "the traced data; its edges have no derivative rule here (pass an "
                        "integer bins with range=..., or explicit edges)")
    counts, raw_edges = np.histogram(raw_a, raw_bins, rng, density=density,
                                     weights=unbox(weights))
    if not any(isinstance(v, Box) for v in (a, bins, weights) + tuple(range or ())):
        return counts, raw_edges
    if np.ndim(raw_bins) == 1:
        edges = bins  # explicit edges: they are the output as given
    else:
        lo, hi = (range[0], range[1]) if range is not None else (
            reductions.min(ravel(a)) if isinstance(a, Box) else None,
            reductions.max(ravel(a)) if isinstance(a, Box) else None)
        t = np.linspace(0.0, 1.0, len(raw_edges))
        edges = _track(raw_edges, [(lo, 1.0 - t), (hi, t)])
    if density:
        counts = np.histogram(raw_a, raw_bins, rng, weights=unbox(weights))[0]
    if isinstance(weights, Box):
        idx = np.searchsorted(raw_edges, raw_a.ravel(), side="right") - 1
        idx[raw_a.ravel() == raw_edges[-1]] = len(raw_edges) - 2
        keep = (raw_a.ravel() >= raw_edges[0]) & (raw_a.ravel() <= raw_edges[-1])
        w = getitem(ravel(weights), (np.flatnonzero(keep),))
        counts = P.scatter_add(w, idx=(idx[keep],), shape=(len(raw_edges) - 1,))
    if density:  # numpy's n / db / n.sum(), with derivatives
        db = P.subtract(getitem(edges, slice(1, None)), getitem(edges, slice(None, -1)))
        counts = P.divide(P.divide(counts, db), reductions.sum(counts))
    return counts, edges
