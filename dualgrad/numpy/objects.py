"""Arrays built from traced values: ``np.array([...])`` / ``np.asarray(...)`` of traced
values.

numpy's np.array is not dispatched by __array_function__, but it asks every element for
__array__; a traced value answers with an object array of ``Elem``s, one per entry, so
np.array([a*x - b*x*y, c*x*y - d*y]) is a numpy object array of shape (2,).  Numpy's object
loops then compute with the elements (every operator and method of an ArrayBox works on
them, entry by entry), and the first primitive that meets an object array holding traced
values (a traced argument beside it, np.sum via the box it returns, the output of a
transform) packs it back into one traced array with one concatenate and one gather
(``pack``).  Its cost: one Python object per entry at np.array time and an elementwise
loop for arithmetic done on the object array itself; nothing at all for plain arrays.

The object trace (``_ObjectTrace``) is the one ``core`` knows as ``OBJECTS[0]``: core's
``top_trace`` sends it a primitive's object-array arguments, and box.py and inplace.py
reach it there (``OBJECTS[0].elements(x)``, ``OBJECTS[0].pack(a)``), below this module.
"""

import numpy as np

from .. import rules as P
from ..core.trace import OBJECTS, Box, Trace
from .box import ArrayBox, _no_float_array
from .shapes import _size, reshape

_shape, _ndim = P.shape_of, P.ndim_of


def _snapshot(b):
    """A new box with ``b``'s current value and trace (later in-place writes to ``b`` do
    not reach it: np.array copies)."""
    c = object.__new__(b.__class__)
    for cls in b.__class__.__mro__:
        for s in getattr(cls, "__slots__", ()):
            if s not in ("__weakref__", "_grad", "_view_of", "_writes", "_item") \
                    and hasattr(b, s):
                object.__setattr__(c, s, getattr(b, s))
    hold = getattr(c._trace, "hold", None)  # a hand-made Dual keeps its trace recording
    if hold is not None:
        hold()
    return c


class Elem(ArrayBox):
    """One entry of a numpy object array made from traced values (``np.array([x, y])``).

    ``origin`` is (source, flat index) into a snapshot of the traced array it came from;
    its ``value`` (that entry, traced) is computed the first time it is used, so packing the
    array back needs no per-entry work.  Every operation whose traced arguments are all
    elements gives an element again, whose dtype is ``object`` like its array's, so numpy's
    own code for object arrays (np.mean, np.var of a list...) runs unchanged."""

    __slots__ = ("_v", "origin")

    def __init__(self, value=None, origin=None):
        self._v, self.origin, self._trace = value, origin, _OBJECTS

    @property
    def value(self):
        if self._v is None:
            src, i = self.origin
            self._v = src if _ndim(src) == 0 else P.getitem(
                src, idx=tuple(int(k) for k in np.unravel_index(i, _shape(src))))
        return self._v

    @value.setter
    def value(self, v):
        self._v, self.origin = v, None

    shape, ndim, size = (), 0, 1
    dtype = np.dtype(object)

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != object:
            _no_float_array(self)
        a = np.empty((), object)
        a[()] = self
        return a


def _has_boxes(a):
    return any(isinstance(e, Box) for e in a.flat)


def pack(a):
    """An object array holding traced values as one traced array: ``a`` itself if it
    holds none."""
    srcs, ids, pos, consts = [], {}, [], []
    for e in a.flat:
        if e.__class__ is Elem and e._v is None:
            src, i = e.origin
        elif isinstance(e, Box):
            src, i = (e.value if e.__class__ is Elem else e), 0
            if _ndim(src) != 0:
                raise TypeError("dualgrad: an object array holds a traced array of shape "
                                f"{_shape(src)} as one entry; use np.stack to build it")
        else:
            consts.append(e)
            pos.append(-len(consts))
            continue
        k = ids.get(id(src))
        if k is None:
            k = ids[id(src)] = len(srcs)
            srcs.append(src)
        pos.append((k, i))
    if not srcs:
        return a
    offsets = np.cumsum([0] + [_size(s) for s in srcs])
    total = int(offsets[-1])
    where = np.array([total - 1 - p if p.__class__ is int else offsets[p[0]] + p[1]
                      for p in pos], dtype=np.intp).reshape(a.shape)
    parts = [reshape(s, (-1,)) for s in srcs]
    if consts:
        parts.append(np.array(consts))
    flat = parts[0] if len(parts) == 1 else P.concatenate(*parts, axis=-1)
    if where.size == total + len(consts) and np.array_equal(where.ravel(), np.arange(where.size)):
        return reshape(flat, a.shape)  # entries in order: no gather
    return P.getitem(flat, idx=(where,))


def lift_out(x):
    """A transform's output as a traced value: an element unwrapped, an object array of
    traced values packed, a Preallocated array as what it stands for; anything else as it
    is."""
    if x.__class__ is Elem:
        return x.value
    if isinstance(x, Box) and x._trace is _OBJECTS:  # a Preallocated: its current value
        return lift_out(x.value)
    if x.__class__ is np.ndarray and x.dtype == object and _has_boxes(x):
        return pack(x)
    return x


class _ObjectTrace(Trace):
    """The trace above all others: it packs object arrays and unwraps elements among a
    primitive's arguments, applies the primitive, and wraps the result as an element when
    every traced argument was one.  It never counts as recording (``tracing()``)."""

    __slots__ = ()

    def __init__(self):
        self.level, self.active = np.inf, True

    @staticmethod
    def pack(a):
        """``np.array([x, y])`` of traced values as one traced array (``pack``)."""
        return pack(a)

    @staticmethod
    def elements(box):
        """``np.array(x)`` of a traced x (``ArrayBox.__array__``): an object array of
        its entries, each an ``Elem`` of one snapshot of x."""
        shape = box.shape
        src = _snapshot(box)
        out = np.empty(int(np.prod(shape, dtype=np.int64)), object)
        for i in range(out.size):
            out[i] = Elem(None, (src, i))
        return out.reshape(shape)

    def process(self, prim, args, kw):
        new, lifted, changed, plain = [], True, False, None
        for a in args:
            if a.__class__ is Elem:
                a, changed = a.value, True
            elif a.__class__ is np.ndarray and a.dtype == object:
                p = pack(a)
                if p is not a:
                    a, changed, lifted = p, True, False
            elif isinstance(a, Box):
                if a._trace is self:  # a Preallocated (preallocated.py): its current value
                    a, changed = a.value, True
                    if a.__class__ is np.ndarray:
                        plain = (plain or []) + [len(new)]
                lifted = False
            new.append(a)
        if plain and any(isinstance(a, Box) for a in new):
            # a Preallocated's plain array goes on a tape: the tape gets a copy, so that a
            # later plain write (numpy's, in place) cannot change what its derivative reads
            for i in plain:
                new[i] = new[i].copy()
        if not changed:  # object arrays of plain Python objects: numpy's own business
            top = None
            for a in new:
                if isinstance(a, Box) and (top is None or a._trace.level > top.level):
                    top = a._trace
            if top is None:
                return prim.impl(*new, **kw)
            if not top.active:
                top.leaked(prim)
            return top.process(prim, new, kw)
        r = prim(*new, **kw)
        return Elem(r) if lifted and isinstance(r, Box) and _ndim(r) == 0 else r


_OBJECTS = _ObjectTrace()
OBJECTS[0] = _OBJECTS
