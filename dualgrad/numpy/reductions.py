"""Reductions: sum, mean, var, std, max, min, prod, cumsum, cumprod, ptp, and the nan-
skipping ones (``nansum``...: a where mask replaces nan by the operation's identity).

An empty axis gives numpy's value (nan, with its warning) and JAX's derivative (zeros).
"""

import warnings

import numpy as np

from .. import rules as P
from ..core.trace import Box, unbox
from .dispatch import _arr, _no, implements
from .elementwise import astype
from .nn import logsumexp
from .shapes import concatenate, ravel

_shape, _ndim = P.shape_of, P.ndim_of
_axes = P.normalize_axes


def _masked(a, where, fname):
    """``a`` with the entries outside a plain boolean mask ``where`` replaced by 0 (a where:
    derivative 0 there, and a nan or inf outside the mask stays out, as in numpy), and the
    mask broadcast to a's shape; (a, None) for where=True."""
    if where is True:
        return a, None
    m = np.array(unbox(where))  # a copy: the derivative reads it after the function returns
    if m.dtype != bool:
        raise TypeError(f"dualgrad: numpy.{fname}(where=...) takes a boolean mask (a plain "
                        f"array of bool), got dtype {m.dtype}")
    m = np.broadcast_to(m, _shape(a))
    return P.where(m, a, 0.0), m


_ALL = [tuple(range(-nd, 0)) for nd in range(65)]  # normalize_axes(None, nd)


@implements(np.sum)
def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=np._NoValue, where=True):
    if axis is None and out is None and dtype is None and where is True \
            and initial is np._NoValue and keepdims is False and isinstance(a, Box):
        return P.sum_(a, axis=_ALL[_ndim(a)], keepdims=False)  # np.sum(x): in a loop, often
    _no(dict(out=out), "sum", out=None)
    a, _ = _masked(_arr(a), where, "sum")
    r = P.sum_(a, axis=_axes(axis, _ndim(a)), keepdims=bool(keepdims))
    if initial is not np._NoValue:
        r = P.add(r, initial)
    return r if dtype is None else astype(r, dtype)


@implements(np.mean)
def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=True):
    """The sum over ``axis`` over the count; with ``where=mask`` the masked sum over the
    count of the mask's True entries."""
    _no(dict(out=out), "mean", out=None)
    axes = _axes(axis, _ndim(a))
    a, m = _masked(_arr(a), where, "mean")
    if m is not None:
        n = np.sum(m, axis=axes, keepdims=bool(keepdims)).astype(float)
        if np.any(n == 0):
            warnings.warn("Mean of empty slice.", RuntimeWarning, stacklevel=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return P.divide(sum(a, axes, dtype, keepdims=keepdims), n)
    n = int(np.prod([_shape(a)[i] for i in axes], dtype=np.int64))
    if n == 0:  # numpy's nan with its warning; the derivative is JAX's: zeros of a's shape
        warnings.warn("Mean of empty slice.", RuntimeWarning, stacklevel=2)
        return P.multiply(sum(a, axes, dtype, keepdims=keepdims), np.nan)
    return P.divide(sum(a, axes, dtype, keepdims=keepdims), float(n))


@implements(np.var)
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    _no(dict(out=out, **kw), "var", out=None, where=True)
    axes = _axes(axis, _ndim(a))
    n = int(np.prod([_shape(a)[i] for i in axes], dtype=np.int64))
    with warnings.catch_warnings():  # n = 0: one warning, numpy's below
        warnings.simplefilter("ignore", RuntimeWarning)
        d = P.subtract(a, mean(a, axes, dtype, keepdims=True))
    ss = sum(_abs2(d), axes, keepdims=keepdims)
    if n - ddof <= 0:  # numpy: ss / 0, so nan for n = 0 and inf otherwise (no ZeroDivision)
        warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=2)
        if n == 0:  # nan, with JAX's zero tangent (ss of nothing is 0, its tangent too)
            return P.add(P.multiply(ss, 0.0), np.nan)
        return P.multiply(ss, np.inf)
    return P.divide(ss, float(n - ddof))


def _abs2(x):
    """|x|**2 as numpy's var and norm compute it: x*x, or (x * conj(x)).real if complex."""
    return P.real(P.multiply(x, P.conjugate(x))) if P.is_complex(x) else P.multiply(x, x)


@implements(np.std)
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    return P.sqrt(var(a, axis, dtype, out, ddof, keepdims, **kw))


def _reduction(prim, fname):
    def reduce(a, axis=None, out=None, keepdims=False, **kw):
        _no(dict(out=out, **kw), fname, out=None, initial=np._NoValue, where=True, dtype=None)
        return prim(a, axis=_axes(axis, _ndim(a)), keepdims=bool(keepdims))
    reduce.__name__ = fname
    return reduce


max = implements(np.max, np.amax)(_reduction(P.amax, "max"))
min = implements(np.min, np.amin)(_reduction(P.amin, "min"))
prod = implements(np.prod)(_reduction(P.prod, "prod"))


@implements(np.ptp)
def ptp(a, axis=None, out=None, keepdims=False):
    _no(dict(out=out), "ptp", out=None)
    return P.subtract(max(a, axis, keepdims=keepdims), min(a, axis, keepdims=keepdims))


def _logaddexp_reduce(base):
    def reduce(a, axis=0, dtype=None, out=None, keepdims=False, **kw):
        """np.logaddexp.reduce(x, axis) is a logsumexp (np.logaddexp2's in base 2: the
        logsumexp of x ln 2, over ln 2)."""
        _no(dict(out=out, **kw), f"{base.__name__}.reduce", out=None,
            initial=np._NoValue, where=True)
        a = _arr(a) if dtype is None else astype(_arr(a), dtype)
        if base is np.logaddexp2:
            a = P.multiply(a, np.log(2.0))
        r = logsumexp(a, axis, keepdims)
        return P.divide(r, np.log(2.0)) if base is np.logaddexp2 else r
    return reduce


implements(np.logaddexp.reduce)(_logaddexp_reduce(np.logaddexp))
implements(np.logaddexp2.reduce)(_logaddexp_reduce(np.logaddexp2))


# ---------------------------------------------------------------------------
# cumulative
# ---------------------------------------------------------------------------

def _cumulative(prim, fname):
    def cumulate(a, axis=None, dtype=None, out=None):
        _no(dict(out=out), fname, out=None)
        if axis is None:
            a, axis = ravel(a), 0
        r = prim(a, axis=_axes(axis, _ndim(a))[0])
        if r is a:  # one element along axis: still a new array, as numpy's
            r = P.positive(r)
        return r if dtype is None else astype(r, dtype)
    cumulate.__name__ = fname
    return cumulate


cumsum = implements(np.cumsum)(_cumulative(P.cumsum, "cumsum"))
cumprod = implements(np.cumprod)(_cumulative(P.cumprod, "cumprod"))


def _cumulative_array_api(fname, scan, initial):
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
            r = concatenate([np.full(edge, initial, np.result_type(unbox(r))), r], axis)
        return r
    cumulative.__name__ = fname
    return cumulative


if hasattr(np, "cumulative_sum"):  # NumPy >= 2.1
    implements(np.cumulative_sum)(_cumulative_array_api("cumulative_sum", cumsum, 0.0))
    implements(np.cumulative_prod)(_cumulative_array_api("cumulative_prod", cumprod, 1.0))


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
        return r if dtype is None else astype(r, dtype)
    nan_reduce.__name__ = fname
    return nan_reduce


nansum = implements(np.nansum)(_nan_reduction("nansum", sum, 0.0))
nanprod = implements(np.nanprod)(_nan_reduction("nanprod", prod, 1.0))


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


nanmax = implements(np.nanmax)(_nan_extreme("nanmax", max, -np.inf))
nanmin = implements(np.nanmin)(_nan_extreme("nanmin", min, np.inf))


@implements(np.nancumsum)
def nancumsum(a, axis=None, dtype=None, out=None):
    return cumsum(_nan_mask(a, 0.0)[0], axis, dtype, out)


@implements(np.nancumprod)
def nancumprod(a, axis=None, dtype=None, out=None):
    return cumprod(_nan_mask(a, 1.0)[0], axis, dtype, out)


@implements(np.nanmean)
def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _no(dict(out=out, **kw), "nanmean", out=None, where=True)
    b, m = _nan_mask(a, 0.0)
    count = np.sum(~m, axis=axis, keepdims=keepdims)
    with np.errstate(invalid="ignore", divide="ignore"):
        if np.any(count == 0):
            warnings.warn("Mean of empty slice", RuntimeWarning, stacklevel=2)
        return P.divide(sum(b, axis, dtype, keepdims=keepdims), count.astype(float))


@implements(np.nanvar)
def nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    _no(dict(out=out, **kw), "nanvar", out=None, where=True, mean=np._NoValue,
        correction=np._NoValue)
    b, m = _nan_mask(a, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = P.divide(sum(b, axis, keepdims=True),
                          np.sum(~m, axis=axis, keepdims=True).astype(float))
        d = P.subtract(b, centre)
        d = P.where(m, 0.0, d) if np.any(m) else d
        dof = np.sum(~m, axis=axis, keepdims=keepdims) - ddof
        if np.any(dof <= 0):
            warnings.warn("Degrees of freedom <= 0 for slice.", RuntimeWarning, stacklevel=2)
        r = P.divide(sum(_abs2(d), axis, keepdims=keepdims),
                     np.maximum(dof, 0).astype(float))
        return r if dtype is None else astype(r, dtype)


@implements(np.nanstd)
def nanstd(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    return P.sqrt(nanvar(a, axis, dtype, out, ddof, keepdims, **kw))
