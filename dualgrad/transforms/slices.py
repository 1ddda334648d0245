"""Cotangents known slice by slice: what the reverse sweep (reverse.py) holds for an array
read or written one slice at a time, until a whole array is needed.

A loop over ``t`` that reads ``x[:, t, :]`` or writes ``h[:, t, :] = v`` (an RNN, CS231n's
LSTM) sends, through the rows' rules, a full-size array per step: getitem's VJP is a
scatter-add of the slice into zeros of x's shape, and index_set's VJP for the old ``h`` is
a copy of the cotangent with zeros at the slice.  Over T steps that is T full-size
temporaries (and T full-size adds), where the hand-written backward pass writes each
slice once.  The sweep keeps instead:

- ``Blocks``: disjoint slices along one axis (each getitem's cotangent as it came), plus
  a ``dense`` part for whatever else was added; made whole (``dense()``) by one
  ``concatenate`` with zeros in the gaps, when the entry that made x is reached;
- ``Masked``: a cotangent ``base`` with zeros over some slices along one axis (index_set's
  cotangent for the array written into); the next index_set of a disjoint slice reads its
  ``v`` part straight from ``base``, and only another row makes it whole (one ``where``).

Both are built from primitives (``concatenate``, ``reshape``, ``where``, ``add``), so a
sweep being recorded (``dg.jit(dg.grad(f))``, higher derivatives) records those instead of
T scatters and copies.  The values are the rules' own: a slice's entries are g's, the rest
zeros, and the sums that meet are the same sums.  Only a basic index of one axis is kept
this way (ints and slices of step 1, every other axis whole); anything else takes the
rules.
"""

import numpy as np

from .. import backend
from ..core.validate import dtype_of
from ..rules import add, concatenate, device_like, reshape, shape_of, where
from .forward import Dual


def span(idx, shape):
    """``(axis, start, stop, squeezed)`` for an index that selects ``start:stop`` along one
    axis of an array of ``shape`` (``squeezed``: an int index, which drops the axis) and
    every other axis whole; None for any other index.

    >>> span((slice(None), 3, slice(None)), (2, 5, 4))
    (1, 3, 4, True)
    >>> span((slice(None), slice(0, 8)), (4, 16))
    (1, 0, 8, False)
    >>> span((1, 2), (3, 3)) is None
    True
    """
    if idx.__class__ is not tuple or len(idx) > len(shape):
        return None
    found = None
    for axis, k in enumerate(idx):
        c = k.__class__
        n = shape[axis]
        if c is slice:
            if k.start is None and k.stop is None and k.step is None:
                continue
            start, stop, step = k.indices(n)
            if step != 1 or stop <= start:
                return None
            if start == 0 and stop == n:
                continue
            here = (axis, start, stop, False)
        elif c is int or (c is not bool and isinstance(k, np.integer)):
            k = int(k)
            if k < 0:
                k += n
            if not 0 <= k < n:
                return None
            here = (axis, k, k + 1, True)
        else:
            return None  # None, Ellipsis, an array, a bool
        if found is not None:
            return None  # two axes indexed
        found = here
    return found if found is not None else (0, 0, shape[0], False) if shape else None


def _disjoint(spans, start, stop):
    for a, b in spans:
        if start < b and a < stop:
            return False
    return True


class Blocks:
    """Disjoint slices of a cotangent along ``axis`` of an array of ``shape`` (after the
    sweep's batch axes) and ``dtype``, each ``(start, stop, value, squeezed)``; ``dense``:
    a whole-array cotangent added to them, or None."""

    __slots__ = ("axis", "shape", "dtype", "blocks", "dense")

    def __init__(self, axis, shape, dtype):
        self.axis, self.shape, self.dtype = axis, shape, dtype
        self.blocks = []
        self.dense = None


class Masked:
    """``base`` with zeros over ``spans`` (``(start, stop)`` pairs) along ``axis`` of an
    array of ``shape`` (after the batch axes)."""

    __slots__ = ("base", "axis", "shape", "spans")

    def __init__(self, base, axis, shape, spans):
        self.base, self.axis, self.shape, self.spans = base, axis, shape, spans


class DualSum:
    """A forward-mode cotangent (Dual) of x's shape summed into one Dual, ``acc``, that only
    the sweep holds: ``adds``, ``(idx, v)`` in their order, are what Blocks' ``dense`` part
    would be (zeros plus every whole and overlapping contribution), and ``pending`` the
    Blocks' own blocks (``(start, stop, value, squeezed)`` along ``axis``), added last;
    ``axis`` None: made from a whole cotangent, every slice is one of the adds.  ``acc``'s
    arrays are written when it is made whole (``dense``): the sums the rules' scatters,
    adds and concatenate make, without their full-size arrays, and for a 1-D x by one pass
    over the tangents (``backend.sum_slices``) instead of one per slice.  A Hessian's sweep
    (forward over reverse) meets it where a function reads overlapping slices of x
    (``x[1:] - x[:-1]``)."""

    __slots__ = ("acc", "adds", "pending", "axis", "shape", "dtype")

    def __init__(self, acc, adds, pending, axis, shape, dtype):
        self.acc, self.adds, self.pending, self.axis = acc, adds, pending, axis
        self.shape, self.dtype = shape, dtype


LAZY = frozenset((Blocks, Masked, DualSum))


def _host(v):
    """A numpy value (traced or raw): the only kind kept slice by slice (dask and device
    arrays take the rules)."""
    return device_like(v) is None


def add_block(cts, j, e, g):
    """getitem's cotangent ``g`` as a block of ``cts[j]`` (None there, or Blocks of the
    same axis with no overlap).  False when it cannot be: the caller takes the rule."""
    kw = e.kw
    if not kw or len(e.args) != 1:
        return False
    x = e.args[0]
    if x.__class__ is np.ndarray and g.__class__ is np.ndarray:  # a first-order sweep
        xs, dtype = x.shape, x.dtype
        if g.dtype != dtype:
            return False
    else:
        xs, dtype = shape_of(x), dtype_of(x)
        if not _host(g) or dtype_of(g) != dtype:
            return False
    sp = span(kw.get("idx"), xs)
    if sp is None:
        return False
    axis, start, stop, squeezed = sp
    prev = cts[j]
    if prev is None:
        prev = Blocks(axis, xs, dtype)
    elif prev.__class__ is not Blocks or prev.axis != axis or prev.shape != xs:
        return False
    else:
        for a, b, _, _ in prev.blocks:  # (_disjoint, inline: no list per call)
            if start < b and a < stop:
                return False
    prev.blocks.append((start, stop, g, squeezed))
    cts[j] = prev
    return True


def split_index_set(e, g, v_part):
    """index_set's cotangents, one per parent: ``v``'s read from g by ``v_part(base)``
    (the rule's, on Masked's base where the slice is disjoint from its zeros) and x's as
    ``Masked``.  None when the index or g does not allow it: the caller makes g whole and
    takes the rules."""
    kw = e.kw
    if not kw or len(e.args) != 2:
        return None
    xs = shape_of(e.args[0])
    sp = span(kw.get("idx"), xs)
    if sp is None:
        return None
    axis, start, stop, _ = sp
    if g.__class__ is Masked:
        if g.axis != axis or g.shape != xs or not _disjoint(g.spans, start, stop):
            return None
        base, spans = g.base, g.spans
    else:
        if not _host(g):
            return None
        base, spans = g, []
    out = []
    for argnum, _ in e.parents:
        if argnum == 1:
            out.append(v_part(base))
        else:
            out.append(Masked(base, axis, xs, spans + [(start, stop)]))
    return out


def _raw_dual(v):
    """Whether ``v`` is a forward-mode Dual of raw float arrays (its tangent of v's shape,
    or with one leading axis of directions): one the sweep may add into in place."""
    if v.__class__ is not Dual:
        return False
    a, t = v.value, v.tangent
    return a.__class__ is np.ndarray and t.__class__ is np.ndarray and a.dtype.kind == "f" \
        and t.dtype is a.dtype and t.shape[t.ndim - a.ndim:] == a.shape \
        and t.ndim - a.ndim in (0, 1)


def _fits(acc, idx, v):
    """Whether ``_add_at(acc, idx, v)`` applies: ``v`` a float array of ``acc.value[idx]``'s
    shape and dtype, or a raw Dual of acc's level with that value and acc's tangent part's
    shape (never a single element: that is the rules')."""
    part = acc.value[idx]
    if part.ndim == 0:
        return False
    if v.__class__ is np.ndarray:
        return v.shape == part.shape and v.dtype is part.dtype
    if not _raw_dual(v) or v._trace is not acc._trace or v.value.shape != part.shape \
            or v.value.dtype is not part.dtype:
        return False  # (another level's Dual: its tangent is another perturbation's)
    t = acc.tangent
    return t[(slice(None),) * (t.ndim - acc.value.ndim) + idx].shape == v.tangent.shape


def _add_at(acc, idx, v):
    """``acc[idx] += v`` into the Dual ``acc`` (its arrays only the sweep holds) where it
    ``_fits``; False (nothing added) where not."""
    if not _fits(acc, idx, v):
        return False
    part = acc.value[idx]
    if v.__class__ is np.ndarray:
        np.add(part, v, out=part)
        return True
    t = acc.tangent
    tpart = t[(slice(None),) * (t.ndim - acc.value.ndim) + idx]
    np.add(part, v.value, out=part)
    np.add(tpart, v.tangent, out=tpart)
    return True


def _at(axis, start, stop, squeezed):
    return (slice(None),) * axis + (start if squeezed else slice(start, stop),)


def _empty_like_dual(g, shape):
    """A Dual of g's level and batch axes, of x's ``shape``: arrays written by ``_settle``."""
    t = g.tangent
    return Dual._make(np.empty(shape, g.value.dtype),
                      np.empty(t.shape[:t.ndim - g.value.ndim] + shape, t.dtype), g._trace)


def _settle(acc, parts):
    """Write ``acc``: zeros, then ``acc[idx] += v`` for each ``(idx, v)`` of ``parts`` in
    order (each ``_fits``).  A 1-D x's tangents are summed by ``backend.sum_slices`` (one
    pass, a row at a time) where it runs; the same additions in the same order either way."""
    a, t = acc.value, acc.tangent
    if a.ndim == 1 and a.size:
        spans = [span(idx, a.shape) for idx, _ in parts]
        rows = t.reshape(-1, a.shape[0])
        tparts = [(sp[1], v.tangent.reshape(rows.shape[0], -1))
                  for sp, (_, v) in zip(spans, parts) if v.__class__ is not np.ndarray]
        if None not in spans and tparts and backend.sum_slices(rows, tparts):
            a.fill(0)
            for sp, (_, v) in zip(spans, parts):
                w = v if v.__class__ is np.ndarray else v.value
                part = a[sp[1]:sp[2]]
                np.add(part, w, out=part)
            return acc
    a.fill(0)
    t.fill(0)
    for idx, v in parts:
        if not _add_at(acc, idx, v):
            raise RuntimeError("dualgrad internal error: a slice's cotangent did not fit")
    return acc


def _defer(ds, idx, v):
    """``ds.acc[idx] += v``, kept in ``ds.adds`` until ``dense`` (False: it does not fit)."""
    if not _fits(ds.acc, idx, v):
        return False
    ds.adds.append((idx, v))
    return True


def add_dual_slice(cts, j, e, g):
    """getitem's cotangent ``g`` (a raw Dual) for x = cts[j]'s entry, summed in place into a
    ``DualSum`` made from Blocks (their dense part into zeros, their blocks pending) or
    from a whole cotangent, or into the one there: as a block where Blocks would keep it
    (a slice disjoint from the blocks, along their axis), else at once.  False (nothing
    changed) where it does not apply: the caller takes the rules."""
    kw = e.kw
    if not kw or len(e.args) != 1 or not _raw_dual(g):
        return False
    idx = kw.get("idx")
    xs = shape_of(e.args[0])
    if idx.__class__ is not tuple or (sp := span(idx, xs)) is None:
        return False
    dt = g.value.dtype
    prev = cts[j]
    c = prev.__class__
    if c is DualSum:
        if prev.shape != xs or prev.dtype is not dt:
            return False
        axis, start, stop, squeezed = sp
        if prev.axis == axis and all(stop <= a or b <= start for a, b, _, _ in prev.pending):
            if not _fits(prev.acc, idx, g):
                return False
            prev.pending.append((start, stop, g, squeezed))  # Blocks would keep it so
            return True
        return _defer(prev, idx, g)
    if c is Blocks:
        if prev.shape != xs or prev.dtype is not dt:
            return False
        ds = DualSum(_empty_like_dual(g, xs), [], list(prev.blocks), prev.axis, xs, dt)
        for start, stop, v, squeezed in prev.blocks:
            if not _fits(ds.acc, _at(prev.axis, start, stop, squeezed), v):
                return False  # batch axes in front (jacrev's rows), a device array...
        d = prev.dense
        if (d is not None and not _defer(ds, (), d)) or not _defer(ds, idx, g):
            return False  # (g overlaps a block, or add_block refused it: into dense)
        cts[j] = ds
        return True
    if c is np.ndarray or _raw_dual(prev):  # a whole cotangent, and g added to it
        if shape_of(prev) != xs or dtype_of(prev) is not dt:
            return False
        ds = DualSum(_empty_like_dual(g, xs), [], [], None, xs, dt)
        if not _defer(ds, (), prev) or not _defer(ds, idx, g):
            return False
        cts[j] = ds
        return True
    return False


def _dual_sum_plus(ds, c):
    """A whole cotangent ``c`` added to the DualSum ``ds`` as the rules would (into Blocks'
    dense part, before the blocks; to a whole cotangent, after all that came): in place
    where it fits, else ``ds`` as Blocks again (or whole) with the add a primitive's."""
    if ds.axis is None:
        return None  # whole: the caller adds c to it
    if _defer(ds, (), c):
        return ds
    b = Blocks(ds.axis, ds.shape, ds.dtype)
    b.blocks, b.dense = ds.pending, add(_settle(ds.acc, ds.adds), c)
    return b


def dense(c):
    """A Blocks, Masked or DualSum cotangent as one array (traced where its parts are)."""
    if c.__class__ is DualSum:
        if c.adds is None:  # made whole already
            return c.acc
        parts = c.adds + [(_at(c.axis, start, stop, squeezed), v) for start, stop, v, squeezed
                          in sorted(c.pending, key=lambda b: b[0])]
        c.adds, c.pending = None, []
        return _settle(c.acc, parts)
    if c.__class__ is Masked:
        keep = np.ones(c.shape[c.axis], bool)
        for a, b in c.spans:
            keep[a:b] = False
        keep = keep.reshape((-1,) + (1,) * (len(c.shape) - c.axis - 1))
        return where(keep, c.base, 0.0)  # broadcasts over the batch axes in front
    blocks = sorted(c.blocks, key=lambda b: b[0])
    first = blocks[0][2]
    nb = len(shape_of(first)) - len(c.shape) + blocks[0][3]
    bshape = tuple(shape_of(first)[:nb])
    axis, shape, n = c.axis, c.shape, c.shape[c.axis]
    parts, pos = [], 0

    def zeros(k):
        return np.zeros(bshape + shape[:axis] + (k,) + shape[axis + 1:], c.dtype)

    for start, stop, v, squeezed in blocks:
        if start > pos:
            parts.append(zeros(start - pos))
        if squeezed:
            s = shape_of(v)
            v = reshape(v, s[:nb + axis] + (1,) + s[nb + axis:])
        parts.append(v)
        pos = stop
    if pos < n:
        parts.append(zeros(n - pos))
    # a negative axis: tangents of the parts (a forward trace over this sweep) carry their
    # own batch axes in front
    out = parts[0] if len(parts) == 1 else concatenate(*parts, axis=axis - len(shape))
    return out if c.dense is None else add(c.dense, out)


def merge_lazy(cts, j, c, merge):
    """``cts[j] += c`` where one of them is kept slice by slice: c (made whole) goes into
    a Blocks' dense part; a Masked ``cts[j]`` is made whole first."""
    if c.__class__ in LAZY:
        c = dense(c)
    prev = cts[j]
    if prev.__class__ is Blocks:
        prev.dense = c if prev.dense is None else add(prev.dense, c)
        return
    if prev.__class__ is DualSum and (kept := _dual_sum_plus(prev, c)) is not None:
        cts[j] = kept
        return
    if prev.__class__ in LAZY:  # Masked, a whole DualSum: whole first
        cts[j] = dense(prev)
    merge(cts, j, c)
