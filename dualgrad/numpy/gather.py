"""Moving entries: roll, tile, repeat, rot90, take, take_along_axis, sort, partition,
diagonal, diag, pad, insert, delete, unique, each one differentiable gather through an
index map; and the matrix parts triu, tril (a mask) and trace.

numpy's own function applied to the array of positions ``0..size-1`` says where each
output entry comes from (``_gather``); the values moved keep their derivative, and a sort
order computed from raw values is a constant.
"""

import numpy as np

from .. import rules as P
from ..core.trace import Box, raw_apply, unbox
from . import reductions
from .dispatch import _arr, _no, implements
from .elementwise import astype
from .indexing import getitem
from .shapes import _size, concatenate, ravel, reshape

_shape, _ndim = P.shape_of, P.ndim_of


def _gather(a, move, fill=None):
    """Any numpy function that only moves entries, as one differentiable gather.

    ``move`` is applied to the array of positions ``0..size-1``; the result says
    where each output entry comes from.  With ``fill``, position ``size`` is a
    constant (for padding and the zeros of ``diag``).
    """
    P.no_lazy_form(a, "numpy's entry-moving functions (take_along_axis, take, roll, pad, "
                   "...)", "their gradient is a scatter-add, and dask arrays have no np.add.at")
    n = _size(a)
    where_from = move(np.arange(n).reshape(_shape(a)))
    src = ravel(a)
    if fill is not None:  # a constant, or a traced number (pad's constant_values)
        fill = reshape(fill, (1,)) if isinstance(fill, Box) else np.full(1, fill,
                                                                        P.float_dtype(a))
        src = concatenate([src, fill])
    return getitem(src, (np.asarray(where_from),))


@implements(np.roll)
def roll(a, shift, axis=None):
    return _gather(a, lambda ix: np.roll(ix, shift, axis))


@implements(np.tile)
def tile(A, reps):
    return _gather(A, lambda ix: np.tile(ix, reps))


@implements(np.repeat)
def repeat(a, repeats, axis=None):
    return _gather(a, lambda ix: np.repeat(ix, repeats, axis))


@implements(np.rot90)
def rot90(m, k=1, axes=(0, 1)):
    return _gather(m, lambda ix: np.rot90(ix, k, axes))


def _recorded(a, indices, move):
    """``_gather`` where the indices are recorded values (under dg.jit: np.sort's
    argsort, labels): the positions are a graph node computed from them on each replay."""
    where = raw_apply(move, np.arange(_size(a)).reshape(_shape(a)), unbox(indices))
    return getitem(ravel(a), (where,))


@implements(np.take)
def take(a, indices, axis=None, out=None, mode="raise"):
    _no(dict(out=out), "take", out=None)
    if isinstance(indices, Box):
        return _recorded(a, indices, lambda ix, i: np.take(ix, i, axis, mode=mode))
    return _gather(a, lambda ix: np.take(ix, indices, axis, mode=mode))


@implements(np.take_along_axis)
def take_along_axis(arr, indices, axis=-1):
    if isinstance(indices, Box):
        return _recorded(arr, indices, lambda ix, i: np.take_along_axis(ix, i, axis))
    return _gather(arr, lambda ix: np.take_along_axis(ix, indices, axis))


@implements(np.sort)
def sort(a, axis=-1, kind=None, order=None, **kw):
    if axis is None:
        a, axis = ravel(a), -1
    P.no_lazy_form(a, "np.sort", "the order is read from the values (dask has no argsort)")
    idx = np.argsort(unbox(a), axis=axis, kind=kind)
    return take_along_axis(a, idx, axis)


@implements(np.partition)
def partition(a, kth, axis=-1, kind="introselect", order=None):
    if axis is None:
        a, axis = ravel(a), -1
    P.no_lazy_form(a, "np.partition", "the order is read from the values")
    return take_along_axis(a, np.argpartition(unbox(a), kth, axis=axis), axis)


# ---------------------------------------------------------------------------
# matrix parts
# ---------------------------------------------------------------------------

@implements(np.diagonal)
def diagonal(a, offset=0, axis1=0, axis2=1):
    return _gather(a, lambda ix: np.diagonal(ix, offset, axis1, axis2))


@implements(np.diag)
def diag(v, k=0):
    if _ndim(v) == 2:
        return diagonal(v, k)
    n = _size(v)
    return _gather(v, lambda ix: np.where(np.diag(np.ones(n, bool), k), np.diag(ix, k), n),
                   fill=0.0)


@implements(np.triu)
def triu(m, k=0):
    s = _shape(m)
    return P.multiply(m, np.triu(np.ones(s[-2:], P.float_dtype(m)), k))


@implements(np.tril)
def tril(m, k=0):
    s = _shape(m)
    return P.multiply(m, np.tril(np.ones(s[-2:], P.float_dtype(m)), k))


@implements(np.trace)
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    return reductions.sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype, out=out)


@implements(np.pad)
def pad(array, pad_width, mode="constant", **kwargs):
    if mode == "constant":
        c = kwargs.pop("constant_values", 0)
        if np.ndim(c) != 0:
            raise TypeError("dualgrad: pad(constant_values=...) must be a single number")
        n = _size(array)
        return _gather(array, lambda ix: np.pad(ix, pad_width, constant_values=n), fill=c)
    if mode in ("edge", "reflect", "symmetric", "wrap"):
        return _gather(array, lambda ix: np.pad(ix, pad_width, mode=mode, **kwargs))
    raise TypeError(f"dualgrad: no derivative rule for numpy.pad(mode={mode!r})")


@implements(np.trim_zeros)
def trim_zeros(filt, trim="fb", axis=None):
    """numpy's trim, decided from the raw values, then a slice (the kept entries keep their
    derivative; whether an entry is zero is a constant)."""
    raw = np.asarray(unbox(filt))
    trim = trim.lower()
    if trim not in {"fb", "bf", "f", "b"}:
        raise ValueError(f"unexpected character(s) in `trim`: {trim!r}")
    nd = raw.ndim
    axes = range(nd) if axis is None else [a % nd for a in P.normalize_axes(axis, nd)]
    nz = np.argwhere(raw)
    if nz.size == 0:  # all zeros: an empty slice
        start = stop = np.zeros(nd, np.intp)
    else:
        start = nz.min(0) if "f" in trim else (None,) * nd
        stop = nz.max(0) + 1 if "b" in trim else (None,) * nd
    key = tuple(slice(start[i], stop[i]) if i in axes else slice(None) for i in range(nd))
    return getitem(_arr(filt), key)


# ---------------------------------------------------------------------------
# inserting, deleting, unique values
# ---------------------------------------------------------------------------

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
        values = astype(values, dtype)
    n, k = _size(arr), _size(values)
    ix = np.insert(np.arange(n).reshape(_shape(arr)), obj,
                   n + np.arange(k).reshape(_shape(values)), axis)
    src = concatenate([ravel(arr), ravel(values)])
    return getitem(src, (ix,))


@implements(np.delete)
def delete(arr, obj, axis=None):
    if isinstance(obj, Box):
        raise TypeError("dualgrad: numpy.delete's obj (the positions) cannot be traced")
    return _gather(_arr(arr), lambda ix: np.delete(ix, obj, axis))


@implements(np.unique)
def unique(ar, return_index=False, return_inverse=False, return_counts=False, axis=None,
           **kw):
    """The unique values are a gather of the input (each from its first occurrence)."""
    raw = unbox(ar)
    res = np.unique(raw, return_index=True, return_inverse=return_inverse,
                    return_counts=return_counts, axis=axis, **kw)
    first = res[1]
    vals = getitem(ravel(ar), (first,)) if axis is None else take(ar, first, axis=axis)
    rest = ((first,) if return_index else ()) + tuple(res[2:])
    return (vals,) + rest if rest else vals
