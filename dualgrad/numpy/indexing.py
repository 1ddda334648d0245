"""Indexing traced arrays: ``x[i]``, ``x[mask]``, ``x[:, idx]``.

numpy's index is normalised into a tuple of ints, slices, ``None``, ``Ellipsis`` and
integer or boolean arrays, and ``getitem`` applies the ``getitem`` row with it.  Under
``dg.jit``, an integer array that is an argument of the jitted function (a batch's
labels) is a value of the graph: a read with it is the ``gather`` row, and a write with it
(``y[np.arange(N), labels] = v``, ``-=``, ``np.add.at``) the ``scatter_set`` or
``scatter`` row (``_index`` leaves it in the index as an ``ArgIndex``), so a replay takes
new labels with no guard.  An index is never differentiated: a traced index is an error.
"""

import numpy as np

from .. import rules as P
from ..core.trace import Box, unbox
from ..rules.indexing import ArgIndex


def _jit_index(k):
    """An integer or boolean array that only dg.jit records (an argument of the jitted
    function used as an index): its value, which the graph then guards, so new indices
    record again; None for anything else."""
    c = unbox(k)
    read = getattr(c, "read", None)
    if read is None or c.__class__ is np.ndarray:
        return None
    v = read()
    return v if np.result_type(v).kind in "biu" else None


_BASIC = frozenset((int, slice, type(None), type(Ellipsis)))


def _index(idx):
    """numpy's index as a tuple of ints, slices, None, Ellipsis and arrays; an integer
    array only dg.jit records stays a graph value (an ``ArgIndex``, which ``index_set``
    and ``scatter_add`` take as an argument of their ``scatter_set``/``scatter`` form)."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    for k in idx:  # the common index, ints and slices: as it is
        if k.__class__ not in _BASIC:
            break
    else:
        return idx
    out = []
    for k in idx:
        if isinstance(k, Box):
            if _value_index(k):  # dg.jit's labels, dg.vmap's per-example ones
                out.append(ArgIndex.of(k))
                continue
            v = _jit_index(k)
            if v is None:
                raise TypeError("dualgrad: an index cannot be a traced (differentiated) "
                                "value")
            k = v
        if isinstance(k, (list, np.ndarray)):
            # a copy of a writable index array: the derivative reads it later, and the
            # function may write into it before then (idx[0] = 2)
            k = k.copy() if k.__class__ is np.ndarray and k.flags.writeable else np.asarray(k)
            if k.dtype != bool and not np.issubdtype(k.dtype, np.integer):
                if k.size:
                    raise IndexError("arrays used as indices must be of integer or boolean "
                                     "type")
                k = k.astype(np.intp)
        out.append(k)
    return tuple(out)


def getitem(a, idx):
    parts = idx if idx.__class__ is tuple else (idx,)
    for k in parts:  # the common index, ints and slices (x[:, t], a[:, :H]): as it is
        if k.__class__ not in _BASIC:
            break
    else:
        return P.getitem(a, idx=parts)
    parts = idx if isinstance(idx, tuple) else (idx,)
    for k in parts:  # a dask index array: a boolean mask's chunks are unknown, no add.at
        P.no_lazy_form(k, "x[dask index array]", "a boolean mask gives unknown chunk sizes "
                       "and an integer index's gradient is a scatter-add (no np.add.at)")
    arrays = [k for k in parts if _value_index(k)]
    if arrays:  # dg.jit: index arrays the graph takes as values (``P.gather``); dg.vmap:
        slots = iter(range(len(arrays)))  # per-example labels (s[y] of a batched y)
        parts = tuple(P.Slot(next(slots), k.shape, k.dtype) if _value_index(k) else k
                      for k in parts)
        return P.gather(a, *arrays, idx=_index(parts))
    return P.getitem(a, idx=_index(idx))


def _value_index(k):
    """An integer index ``gather`` takes as a value: dg.jit's recorded arguments, and a
    traced integer array of any other trace (dg.vmap's per-example labels), which carries
    no derivative."""
    return _recorded_integers(k) or (isinstance(k, Box) and unbox(k).__class__ is not
                                     np.ndarray and np.dtype(k.dtype).kind in "iu"
                                     and getattr(unbox(k), "read", None) is None)


def _recorded_integers(k):
    """An integer array only dg.jit records (an argument of the jitted function): a graph
    value, where reading it would guard its numbers."""
    if not isinstance(k, Box):
        return False
    c = unbox(k)
    return getattr(c, "read", None) is not None and c.__class__ is not np.ndarray \
        and c.dtype.kind in "iu" and c.ndim > 0


def _along(x, ax, start=None, stop=None, step=None):
    """``x[..., start:stop:step, ...]`` on (negative) axis ``ax``."""
    return getitem(x, (Ellipsis, slice(start, stop, step)) + (slice(None),) * (-ax - 1))


# ---------------------------------------------------------------------------
# an index computed from raw values: integers, never traced
# ---------------------------------------------------------------------------

def _plain_index(x, fname, arg):
    if isinstance(x, Box) and (v := _jit_index(x)) is not None:
        x = v
    if isinstance(x, Box):
        raise TypeError(f"dualgrad: numpy.{fname}'s {arg} must be integers; an integer "
                        "array has no derivative, so it cannot be a traced value")
    return np.asarray(x)
