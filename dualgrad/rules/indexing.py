"""Indexing: ``getitem`` (a gather, whose transpose is a scatter-add), ``scatter_add``,
``index_set`` (the functional ``x[idx] = v``), and their forms with the index arrays as
arguments, ``gather``, ``scatter`` and ``scatter_set`` (for ``dg.jit``: an index array
that is a value of the graph, a batch's labels, replays with its new values).
"""

import numpy as np

from .. import backend
from ..core import buffers
from ..core.trace import Box, raw_apply, unbox
from .elementwise import add, where
from .structure import broadcast_to, reshape, transpose
from .table import (
    arg_dtype,
    batch_shape,
    batch_size,
    bfront,
    defprim,
    device_like,
    float_dtype,
    ndim_of,
    shape_of,
    unbroadcast,
)

# -- indexing: a gather, whose transpose is a scatter-add ----------------------

BASIC_KEYS = frozenset((int, slice, type(None), type(Ellipsis)))  # never an index array


def _is_adv(k):
    """An index array: numpy's, a device array (CuPy's, whose duplicates must add up in
    the scatter just the same) or a ``Slot`` standing for one."""
    if k.__class__ in BASIC_KEYS:
        return False
    return isinstance(k, np.ndarray) or k.__class__ is Slot or backend.is_foreign_array(k)


def basic_index(idx):
    """Whether the tuple ``idx`` holds ints, slices, None and Ellipsis only (no index
    array): each position names one target element once, and ``a[idx]`` of an array with
    dimensions left is a view."""
    for k in idx:
        if k.__class__ not in BASIC_KEYS:
            return False
    return True


def _layout(idx):
    """(separated, adv_ndim): whether numpy moves the advanced-index axes to the front."""
    arrays = [k for k in idx if _is_adv(k)]
    if not arrays:
        return False, 0
    pos = [i for i, k in enumerate(idx) if _is_adv(k) or isinstance(k, (int, np.integer))]
    separated = pos[-1] - pos[0] + 1 != len(pos)
    adv_nd = max((1 if k.dtype == bool else k.ndim) for k in arrays) if arrays else 0
    if any(k.dtype == bool and k.ndim > 1 for k in arrays):
        adv_nd = 1
    return separated, adv_nd


class Slot:
    """The place of an index array in the index of a ``gather``/``scatter`` row: its
    ``k``-th array argument, with the shape and dtype the result's layout depends on.

    >>> _fill((Slot(0, (2,), np.dtype(np.int64)), 1), (np.array([0, 3]),))
    (array([0, 3]), 1)
    """

    __slots__ = ("k", "shape", "dtype")

    def __init__(self, k, shape, dtype):
        self.k, self.shape, self.dtype = k, tuple(shape), np.dtype(dtype)

    ndim = property(lambda self: len(self.shape))

    def __eq__(self, other):
        return other.__class__ is Slot and (self.k, self.shape, self.dtype) == (
            other.k, other.shape, other.dtype)

    def __hash__(self):
        return hash((self.k, self.shape, self.dtype.str))

    def __repr__(self):
        return f"<index {self.k}: {self.dtype}{list(self.shape)}>"


def _fill(idx, arrays):
    """``idx`` with each Slot replaced by its array."""
    return tuple(arrays[k.k] if k.__class__ is Slot else k for k in idx)


def _gather_batched(t, idx, nb, arrays=()):
    """t[idx] under ``nb`` leading batch axes; ``arrays``: the index arrays of idx's Slots."""
    if nb == 0:
        return gather(t, *arrays, idx=idx) if arrays else getitem(t, idx)
    full = (slice(None),) * nb + idx
    r = gather(t, *arrays, idx=full) if arrays else getitem(t, full)
    separated, adv_nd = _layout(idx)
    if separated:  # numpy put the advanced axes before the batch axes: move batch to front
        n = ndim_of(r)
        r = transpose(r, tuple(range(adv_nd, adv_nd + nb)) + tuple(range(adv_nd))
                      + tuple(range(adv_nd + nb, n)))
    return r


def _scatter_batched(v, idx, shape, nb, arrays=()):
    """The transpose of ``_gather_batched``: v added into zeros of ``shape`` at idx."""
    if nb:
        separated, adv_nd = _layout(idx)
        if separated:
            n = ndim_of(v)
            v = transpose(v, tuple(range(nb, nb + adv_nd)) + tuple(range(nb))
                          + tuple(range(nb + adv_nd, n)))
        idx = (slice(None),) * nb + idx
    return scatter(v, *arrays, idx=idx, shape=shape) if arrays else \
        scatter_add(v, idx=idx, shape=shape)


_HOST = frozenset((np.ndarray, np.float64, np.float32, np.complex128, np.complex64))


def _scatter_impl(v, idx, shape):
    if v.__class__ in _HOST and basic_index(idx):  # the common case: numpy's, one write
        # zeros in a cached buffer where large (core/buffers.py): np.zeros's fresh pages
        # fault on the write, every call (hvp's slice cotangents: 161 us for 10^5 entries)
        out = buffers.empty(tuple(shape), v.dtype)
        out.fill(0)
        out[idx] = v
        return out
    dtype = float_dtype(v) if not hasattr(v, "dtype") else v.dtype
    if not any(_is_adv(k) and k.dtype != bool for k in idx) \
            and not backend.dask.is_dask_array(device_like(v)):  # dask: chunked as v
        out = np.zeros(shape, dtype, like=device_like(v))
        out[idx] = v  # basic or boolean index: every target appears once
        return out
    return backend.index_add(shape, dtype, idx, v)  # numpy's add.at, or a numba kernel


getitem = defprim(
    "getitem", lambda x, idx: x[idx], dtype=arg_dtype(0),
    jvp=(lambda t, ans, x, idx: _gather_batched(t, idx, ndim_of(t) - ndim_of(x)),),
    vjp=(lambda g, ans, x, idx: _scatter_batched(
        g, idx, batch_shape(g, ans) + shape_of(x), ndim_of(g) - ndim_of(ans)),),
    batch=lambda args, dims, idx: (_gather_batched(bfront(args[0], dims[0]), idx, 1), 0))

scatter_add = defprim(
    "scatter_add", _scatter_impl, dtype=arg_dtype(0),
    jvp=(lambda t, ans, v, idx, shape: _scatter_batched(
        t, idx, batch_shape(t, v) + tuple(shape), ndim_of(t) - ndim_of(v)),),
    vjp=(lambda g, ans, v, idx, shape: _gather_batched(g, idx, ndim_of(g) - ndim_of(ans)),),
    batch=lambda args, dims, idx, shape: (_scatter_batched(
        bfront(args[0], dims[0]), idx, shape_of(args[0])[dims[0]:dims[0] + 1] + tuple(shape),
        1), 0))

# getitem and scatter_add with the index arrays as arguments (Slots in ``idx`` say where):
# dg.jit records an index array that is an argument of the jitted function this way, so a
# replay takes the new indices (a training loop's labels) instead of guarding the old ones
def _per_example_index(idx, arrays, dims, x_batched):
    """dg.vmap of ``x[idx]`` whose index arrays (``arrays``, batched along ``dims``) differ
    per example (a batch of labels): ``(idx', arrays', move)``, where ``x'[idx']`` (``x'``
    with the batch axis in front when ``x_batched``) holds every example's result, the
    batch axis at 0 once the advanced-index axes at 1.. are moved to ``move`` (numpy's
    place for them in one example's result), or None where the index has None, Ellipsis or
    a mask (those run once per example)."""
    if any(k is None or k is Ellipsis or (k.__class__ is Slot and k.dtype == bool)
           for k in idx):
        return None
    B = next(shape_of(a)[d] for a, d in zip(arrays, dims) if d is not None)
    per = [shape_of(a)[:d] + shape_of(a)[d + 1:] if d is not None else shape_of(a)
           for a, d in zip(arrays, dims)]
    S = np.broadcast_shapes(*per)
    new = [reshape(bfront(a, d), (B,) + (1,) * (len(S) - len(s)) + s) if d is not None
           else a for a, d, s in zip(arrays, dims, per)]
    idx = tuple(Slot(k.k, shape_of(new[k.k]), k.dtype) if k.__class__ is Slot else k
                for k in idx)
    pos = [i for i, k in enumerate(idx) if _is_adv(k) or isinstance(k, (int, np.integer))]
    separated = pos[-1] - pos[0] + 1 != len(pos)
    before = 0 if separated else sum(1 for k in idx[:pos[0]] if k.__class__ is slice)
    if x_batched:  # every example its own x: a leading index arange(B) picks it
        b = np.arange(B).reshape((B,) + (1,) * len(S))
        new.append(b)
        idx = (Slot(len(new) - 1, b.shape, b.dtype),) + idx
        return idx, new, (before, len(S))  # (B, S..., rest...) -> (B, before, S, after)
    return idx, new, (before, -1)  # (before, B, S, after): the batch axis to the front


def _placed(r, move):
    before, ns = move
    n = ndim_of(r)
    if ns < 0:  # x shared: numpy put (B, S...) after the ``before`` axes
        return r if not before else transpose(
            r, (before,) + tuple(range(before)) + tuple(range(before + 1, n)))
    if not before:
        return r
    return transpose(r, (0,) + tuple(range(1 + ns, 1 + ns + before)) + tuple(range(1, 1 + ns))
                     + tuple(range(1 + ns + before, n)))


def _unplaced(v, move):
    """The inverse of ``_placed``: an example-major value back in ``x'[idx']``'s layout."""
    before, ns = move
    n = ndim_of(v)
    if not before:
        return v
    if ns < 0:
        return transpose(v, tuple(range(1, before + 1)) + (0,) + tuple(range(before + 1, n)))
    return transpose(v, (0,) + tuple(range(1 + before, 1 + before + ns))
                     + tuple(range(1, 1 + before)) + tuple(range(1 + before + ns, n)))


def _gather_batch(args, dims, idx):
    x, arrays = args[0], args[1:]
    if all(d is None for d in dims[1:]):
        return _gather_batched(bfront(x, dims[0]), idx, 1, arrays), 0
    made = _per_example_index(idx, arrays, dims[1:], dims[0] is not None)
    if made is None:
        return NotImplemented
    idx, arrays, move = made
    x = bfront(x, dims[0]) if dims[0] is not None else x
    return _placed(gather(x, *arrays, idx=idx), move), 0


def _scatter_batch(args, dims, idx, shape):
    v, arrays = args[0], args[1:]
    if all(d is None for d in dims[1:]):
        return (_scatter_batched(bfront(v, dims[0]), idx, shape_of(v)[dims[0]:dims[0] + 1]
                                 + tuple(shape), 1, arrays), 0)
    made = _per_example_index(idx, arrays, dims[1:], True)
    if made is None:
        return NotImplemented
    idx, arrays, move = made
    B = shape_of(arrays[-1])[0]
    if dims[0] is None:  # one v for every example
        v = broadcast_to(v, (B,) + shape_of(v))
    else:
        v = bfront(v, dims[0])
    return scatter(_unplaced(v, move), *arrays, idx=idx, shape=(B,) + tuple(shape)), 0


gather = defprim(
    "gather", lambda x, *arrays, idx: x[_fill(idx, arrays)], dtype=arg_dtype(0),
    jvp=(lambda t, ans, x, *arrays, idx: _gather_batched(
        t, idx, ndim_of(t) - ndim_of(x), arrays),),
    vjp=(lambda g, ans, x, *arrays, idx: _scatter_batched(
        g, idx, batch_shape(g, ans) + shape_of(x), ndim_of(g) - ndim_of(ans), arrays),),
    batch=_gather_batch)

scatter = defprim(
    "scatter", lambda v, *arrays, idx, shape: _scatter_impl(v, _fill(idx, arrays), shape),
    dtype=arg_dtype(0),
    jvp=(lambda t, ans, v, *arrays, idx, shape: _scatter_batched(
        t, idx, batch_shape(t, v) + tuple(shape), ndim_of(t) - ndim_of(v), arrays),),
    vjp=(lambda g, ans, v, *arrays, idx, shape: _gather_batched(
        g, idx, ndim_of(g) - ndim_of(ans), arrays),),
    batch=_scatter_batch)


# ---------------------------------------------------------------------------
# functional index updates: what ``y[idx] = v`` on a traced y records (numpy_api.py)
#
# ``index_set(x, v, idx)`` is a copy of x with x[idx] = v (JAX's x.at[idx].set(v)); v
# broadcasts to x[idx]'s shape.  Where an integer index repeats a position, numpy's last
# write wins, so only that entry of v has a derivative there (``_winners``).
# ---------------------------------------------------------------------------

def _index_set_impl(x, v, idx):
    d = device_like(x)
    out = x.copy() if backend.dask.is_dask_array(d) else np.array(x, copy=True, like=d)
    out[idx] = v  # (dask's np.array takes no copy=; its copy and write are lazy)
    return out


def _index_like(idx):
    """The device an index's arrays live on (``like=`` for arrays built to match it)."""
    for k in idx:
        if _is_adv(k) and (d := device_like(k)) is not None:
            return d
    return None


def _shaped(idx):
    """idx with each Slot replaced by zeros of its shape: numpy's index arithmetic (which
    shape x[idx] has) without the index's values."""
    return tuple(np.broadcast_to(np.zeros((), k.dtype), k.shape) if k.__class__ is Slot
                 else k for k in idx)


def _target_shape(x, idx):
    return np.empty(shape_of(x), bool, like=_index_like(idx))[_shaped(idx)].shape


def _winner_mask(shape, idx):
    """Boolean mask over ``empty(shape)[idx]``: False for an entry a later one overwrites
    (numpy's buffered ``y[idx] = v``: the last write wins)."""
    like = _index_like(idx)
    tshape = np.empty(shape, bool, like=like)[idx].shape
    ids = np.arange(int(np.prod(tshape, dtype=np.int64)), like=like).reshape(tshape)
    label = np.full(shape, -1, np.intp, like=like)
    label[idx] = ids
    return label[idx] == ids


def _winners(x, idx, arrays=()):
    """Boolean mask over x[idx]: False for an entry a later one overwrites; None if none
    (where the index lives on a device, the mask is always made: no value is read back).
    With index ``arrays`` (Slots in idx: values of a dg.jit graph) the mask is always made,
    as a node of the graph (``raw_apply``), so a replay computes it from the new indices."""
    if arrays:
        shape = shape_of(x)
        raw = [unbox(a) for a in arrays]
        if any(k.__class__ is Slot and (isinstance(raw[k.k], Box)
                                        or shape_of(raw[k.k]) != k.shape) for k in idx):
            raise TypeError(  # a batch of index arrays (dg.vmap's labels): one mask per
                "dualgrad: the derivative of y[idx] = v with per-example indices under "  # ex.
                "dg.vmap is not supported yet (which write wins where indices repeat "
                "differs per example); differentiate inside a Python loop over examples, "
                "or write y = y + np.where(np.arange(n) == i, v - y, 0.0) with a scalar i")

        def winners(*a):
            return _winner_mask(shape, _fill(idx, a))
        return raw_apply(winners, *raw)
    if basic_index(idx) or not any(_is_adv(k) and k.dtype != bool for k in idx):
        return None
    win = _winner_mask(shape_of(x), idx)
    return win if _index_like(idx) is not None or not win.all() else None


def _onto_target(t, v, bshape, tshape):
    """Tangent ``t`` of v (batch axes first) broadcast to (batch) + x[idx]'s shape."""
    nv = ndim_of(v)
    if nv < len(tshape):
        t = reshape(t, bshape + (1,) * (len(tshape) - nv) + shape_of(t)[len(bshape):])
    return broadcast_to(t, bshape + tshape) if shape_of(t) != bshape + tshape else t


def _set(x, v, idx, arrays):
    """index_set, or scatter_set where idx has Slots for ``arrays``."""
    return scatter_set(x, v, *arrays, idx=idx) if arrays else index_set(x, v, idx=idx)


def _index_set_jvp(tangents, ans, x, v, *arrays, idx):
    tx, tv = tangents[:2]
    nb = ndim_of(tx) - ndim_of(x) if tx is not None else ndim_of(tv) - ndim_of(v)
    bshape = shape_of(tx if tx is not None else tv)[:nb]
    out = None if tx is None else _set(tx, 0.0, (slice(None),) * nb + idx, arrays)
    if tv is not None:
        t = _onto_target(tv, v, bshape, _target_shape(x, idx))
        win = _winners(x, idx, arrays)
        if win is not None:
            t = where(win, t, 0.0)
        s = _scatter_batched(t, idx, bshape + shape_of(x), nb, arrays)
        out = s if out is None else add(out, s)
    return out


def _index_set_vjp_x(g, ans, x, v, *arrays, idx):
    return _set(g, 0.0, (slice(None),) * (ndim_of(g) - ndim_of(ans)) + idx, arrays)


def _index_set_vjp_v(g, ans, x, v, *arrays, idx):
    nb = ndim_of(g) - ndim_of(ans)
    c = _gather_batched(g, idx, nb, arrays)
    win = _winners(x, idx, arrays)
    if win is not None:
        c = where(win, c, 0.0)
    return unbroadcast(c, shape_of(v), nb)


def _index_set_batch(args, dims, idx):
    """index_set with a batch axis: x (broadcast if unbatched) and v laid out as
    x[:, idx] wants them, then one write.  Batched index arrays (scatter_set's): not
    covered (vmap then loops)."""
    (x, v), (dx, dv), arrays = args[:2], dims[:2], args[2:]
    if any(d is not None for d in dims[2:]):
        return NotImplemented
    n = batch_size(args, dims)
    x = bfront(x, dx) if dx is not None else broadcast_to(x, shape=(n,) + shape_of(x))
    tshape = np.empty(shape_of(x)[1:], bool)[_shaped(idx)].shape
    nv = ndim_of(v) - (dv is not None)
    v = bfront(v, dv) if dv is not None else reshape(v, (1,) + shape_of(v))
    sv = shape_of(v)
    if nv < len(tshape):
        v = reshape(v, sv[:1] + (1,) * (len(tshape) - nv) + sv[1:])
    v = broadcast_to(v, shape=(n,) + tshape)
    separated, adv_nd = _layout(idx)
    if separated:  # x[:, idx] puts the advanced axes first, then the batch axis
        v = transpose(v, axes=tuple(range(1, 1 + adv_nd)) + (0,)
                      + tuple(range(1 + adv_nd, 1 + len(tshape))))
    return _set(x, v, (slice(None),) + idx, arrays), 0


index_set = defprim(
    "index_set", _index_set_impl, jvp=_index_set_jvp, dtype=arg_dtype(0),  # v cast to x's
    vjp=(_index_set_vjp_x, _index_set_vjp_v), batch=_index_set_batch)

# index_set with the index arrays as arguments (Slots in ``idx`` say where), as gather is
# getitem's: what ``y[np.arange(N), labels] = v`` records under dg.jit
scatter_set = defprim(
    "scatter_set", lambda x, v, *arrays, idx: _index_set_impl(x, v, _fill(idx, arrays)),
    jvp=_index_set_jvp, dtype=arg_dtype(0),
    vjp=(_index_set_vjp_x, _index_set_vjp_v), batch=_index_set_batch)


# ---------------------------------------------------------------------------
# index arrays that are values of a dg.jit graph, in a write's index
#
# ``y[np.arange(N), labels] = v`` and ``np.add.at(y, (rows, labels), v)`` normalise their
# index (numpy/indexing.py ``_index``) before calling ``index_set`` / ``scatter_add`` with
# it as a parameter.  A recorded integer array (an argument of the jitted function) stands
# in that index as an ``ArgIndex``: zeros of its shape and dtype, for numpy's shape
# arithmetic (which shape y[idx] has), carrying the recorded value.  ``set_at`` and
# ``add_at`` hand such a write to ``scatter_set`` / ``scatter``, with the arrays as
# arguments: the graph then takes the new labels at each replay, with no guard and no read.
# ---------------------------------------------------------------------------

class ArgIndex(np.ndarray):
    """An index array the graph being recorded holds (``box``), standing in a normalised
    index as zeros of its shape and dtype (no value is read: not even a device's).

    >>> k = ArgIndex.of(np.array([2, 0]))
    >>> k.shape, k.box
    ((2,), array([2, 0]))
    """

    @staticmethod
    def of(box):
        raw = unbox(box)  # the shape is the box's own: one example's under dg.vmap
        k = np.broadcast_to(np.zeros((), raw.dtype), shape_of(box)).view(ArgIndex)
        k.box = box
        return k


def _with_arrays(idx):
    """(idx with a Slot for each ArgIndex, the arrays they hold)."""
    arrays, out = [], []
    for k in idx:
        if k.__class__ is ArgIndex:
            out.append(Slot(len(arrays), k.shape, k.dtype))
            arrays.append(k.box)
        else:
            out.append(k)
    return tuple(out), arrays


def set_at(x, v, idx):
    """``index_set(x, v, idx=idx)`` for a normalised index (numpy/indexing.py ``_index``);
    where it holds an ``ArgIndex``, its ``scatter_set`` form with the arrays as arguments.
    The numpy layer's writes call this, not the row: rules and sweeps pay nothing."""
    if basic_index(idx):  # (the common write: no ArgIndex to look for)
        return index_set(x, v, idx=idx)
    idx, arrays = _with_arrays(idx)
    return scatter_set(x, v, *arrays, idx=idx) if arrays else index_set(x, v, idx=idx)


def add_at(v, idx, shape):
    """``scatter_add(v, idx=idx, shape=shape)``, as ``set_at`` does for ``index_set``."""
    idx, arrays = _with_arrays(idx)
    return scatter(v, *arrays, idx=idx, shape=shape) if arrays else \
        scatter_add(v, idx=idx, shape=shape)
