"""Shapes and joining: reshape, transpose, expand/squeeze, broadcast, concatenate, stack,
split, flip.

Each is one row of the table (``reshape``, ``transpose``, ``concatenate``...) after numpy's
arguments are resolved: ``-1`` in a shape, axes as negative numbers, the ``atleast_*``
and ``*stack``/``*split`` variants spelled with the basic ones.
"""

import operator

import numpy as np

from .. import rules as P
from ..core.trace import unbox
from .dispatch import _arr, _no, implements
from .indexing import getitem

_shape, _ndim = P.shape_of, P.ndim_of
_axes = P.normalize_axes


def _size(x):
    return int(np.prod(_shape(x), dtype=np.int64))


def _resolve_shape(shape, size):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple(operator.index(s) for s in shape)
    if shape.count(-1) == 1:
        known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
        shape = tuple(size // known if known and s == -1 else (0 if s == -1 else s)
                      for s in shape)
    if int(np.prod(shape, dtype=np.int64)) != size:
        raise ValueError(f"cannot reshape array of size {size} into shape {shape}")
    return shape


# ---------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------

@implements(np.reshape)
def reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    """numpy's reshape; ``order='F'`` (Fortran's index order) is a transpose, a reshape in C
    order to the reversed shape, and a transpose back."""
    shape = newshape if shape is None else shape
    shape = _resolve_shape(shape, _size(a))
    if order == "A":  # numpy: 'F' for an array that is Fortran-contiguous and not C's
        flags = getattr(np.asarray(unbox(a)), "flags", None)
        order = "F" if flags is not None and flags.f_contiguous and \
            not flags.c_contiguous else "C"
    if order == "F" and (_ndim(a) > 1 or len(shape) > 1):
        return transpose(reshape(transpose(a), shape[::-1]))
    if order not in ("C", "F"):
        raise ValueError(f"order must be one of 'C', 'F', 'A' (got {order!r})")
    return a if shape == _shape(a) else P.reshape(a, shape=shape)


@implements(np.ravel)
def ravel(a, order="C"):
    return reshape(a, (-1,), order)


@implements(np.transpose)
def transpose(a, axes=None):
    nd = _ndim(a)
    axes = tuple(range(nd))[::-1] if axes is None else tuple(a_ % nd for a_ in _axes(axes, nd))
    return P.transpose(a, axes=axes)


@implements(np.swapaxes)
def swapaxes(a, axis1, axis2):
    nd = _ndim(a)
    perm = list(range(nd))
    i, j = (x % nd for x in _axes((axis1, axis2), nd))
    perm[i], perm[j] = perm[j], perm[i]
    return P.transpose(a, axes=tuple(perm))


@implements(np.matrix_transpose)
def matrix_transpose(x, /):
    if _ndim(x) < 2:
        raise ValueError("Input array must be at least 2-dimensional")
    return swapaxes(x, -1, -2)


@implements(np.moveaxis)
def moveaxis(a, source, destination):
    nd = _ndim(a)
    src = [x % nd for x in _axes(source, nd, "source")]
    dst = [x % nd for x in _axes(destination, nd, "destination")]
    order = [n for n in range(nd) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return P.transpose(a, axes=tuple(order))


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


@implements(np.expand_dims)
def expand_dims(a, axis):
    if not isinstance(axis, (tuple, list)):
        axis = (axis,)
    nd = _ndim(a) + len(axis)
    return P.expand_dims(a, tuple(x % nd for x in _axes(axis, nd)))


@implements(np.squeeze)
def squeeze(a, axis=None):
    s = _shape(a)
    axes = [i for i, n in enumerate(s) if n == 1] if axis is None else \
        [x % len(s) for x in _axes(axis, len(s))]
    for i in axes:
        if s[i] != 1:
            raise ValueError("cannot select an axis to squeeze out which has size not "
                             "equal to one")
    return reshape(a, tuple(n for i, n in enumerate(s) if i not in axes))


@implements(np.broadcast_to)
def broadcast_to(a, shape, subok=False):
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return a if _shape(a) == shape else P.broadcast_to(a, shape=shape)


@implements(np.broadcast_arrays)
def broadcast_arrays(*args, subok=False):
    args = [_arr(a) for a in args]
    shape = np.broadcast_shapes(*[_shape(a) for a in args])
    return tuple(broadcast_to(a, shape) for a in args)


@implements(np.meshgrid)
def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    """numpy's meshgrid: each 1-D x reshaped to lie along its own axis (the first two swapped
    for indexing='xy'), then broadcast against the others unless ``sparse``."""
    if indexing not in ("xy", "ij"):
        raise ValueError("Valid values for `indexing` are 'xy' and 'ij'.")
    one = (1,) * len(xi)
    out = [reshape(_arr(x), one[:i] + (-1,) + one[i + 1:]) for i, x in enumerate(xi)]
    if indexing == "xy" and len(xi) > 1:
        out[0] = reshape(out[0], (1, -1) + one[2:])
        out[1] = reshape(out[1], (-1, 1) + one[2:])
    return tuple(out) if sparse else broadcast_arrays(*out)


@implements(np.atleast_1d)
def atleast_1d(*arys):
    r = [reshape(a, (1,)) if _ndim(a) == 0 else a for a in arys]
    return r[0] if len(r) == 1 else r


@implements(np.atleast_2d)
def atleast_2d(*arys):
    r = [reshape(a, (1,) * (2 - _ndim(a)) + _shape(a)) if _ndim(a) < 2 else a for a in arys]
    return r[0] if len(r) == 1 else r


@implements(np.atleast_3d)
def atleast_3d(*arys):
    def lift(a):
        a = _arr(a)
        nd = _ndim(a)
        if nd == 0:
            return reshape(a, (1, 1, 1))
        if nd == 1:
            return reshape(a, (1,) + _shape(a) + (1,))
        return reshape(a, _shape(a) + (1,)) if nd == 2 else a
    r = [lift(a) for a in arys]
    return r[0] if len(r) == 1 else tuple(r)


# ---------------------------------------------------------------------------
# joining and splitting
# ---------------------------------------------------------------------------

@implements(np.concatenate)
def concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    _no(dict(out=out, dtype=dtype), "concatenate", out=None, dtype=None)
    arrays = list(arrays)
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    if len(arrays) == 1:  # a new array, as numpy's (a write into it leaves arrays[0] alone)
        return P.positive(arrays[0])
    return P.concatenate(*arrays, axis=_axes(axis, _ndim(arrays[0]))[0])


@implements(np.stack)
def stack(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to stack")
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis, out=out, dtype=dtype)


@implements(np.vstack)
def vstack(tup, *, dtype=None, casting="same_kind"):
    return concatenate([atleast_2d(a) for a in tup], axis=0, dtype=dtype)


@implements(np.hstack)
def hstack(tup, *, dtype=None, casting="same_kind"):
    arrs = [atleast_1d(a) for a in tup]
    return concatenate(arrs, axis=0 if _ndim(arrs[0]) == 1 else 1, dtype=dtype)


@implements(np.column_stack)
def column_stack(tup):
    cols = [_arr(a) for a in tup]
    cols = [reshape(a, (-1, 1)) if _ndim(a) < 2 else a for a in cols]
    return concatenate(cols, axis=1)


@implements(np.dstack)
def dstack(tup):
    return concatenate([atleast_3d(a) for a in tup], axis=2)


@implements(np.append)
def append(arr, values, axis=None):
    arr, values = _arr(arr), _arr(values)
    if axis is None:
        return concatenate([ravel(arr), ravel(values)])
    return concatenate([arr, values], axis=axis)


@implements(np.split, np.array_split)
def split(ary, indices_or_sections, axis=0):
    n = _shape(ary)[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
        bounds = np.cumsum([0] + sizes)
    else:
        bounds = [0] + list(indices_or_sections) + [n]
    ax = _axes(axis, _ndim(ary))[0]
    tail = (slice(None),) * (-ax - 1)
    return [getitem(ary, (Ellipsis, slice(int(b0), int(b1))) + tail)
            for b0, b1 in zip(bounds[:-1], bounds[1:])]


def _split_on(fname, axis, least):
    def split_on(ary, indices_or_sections):
        if _ndim(ary) < least:
            raise ValueError(f"{fname} only works on arrays of {least} or more dimensions")
        ax = axis if not callable(axis) else axis(ary)
        return split(ary, indices_or_sections, ax)
    split_on.__name__ = fname
    return split_on


vsplit = implements(np.vsplit)(_split_on("vsplit", 0, 2))
hsplit = implements(np.hsplit)(_split_on("hsplit", lambda a: 1 if _ndim(a) > 1 else 0, 1))
dsplit = implements(np.dsplit)(_split_on("dsplit", 2, 3))


@implements(np.flip)
def flip(m, axis=None):
    return P.flip(m, axis=_axes(axis, _ndim(m)))


@implements(np.fliplr)
def fliplr(m):
    return flip(m, 1)


@implements(np.flipud)
def flipud(m):
    return flip(m, 0)
