"""The Box's operators and methods, object arrays of traced values, in-place updates.

numpy's functions on traced values live in the modules beside this one, by concept
(dispatch.py says how numpy reaches them); this module attaches the operators, methods and
protocols to ``core.Box`` and holds the two sections "arrays built from traced values"
(``np.array`` / ``np.asarray`` of a traced value gives a numpy object array of its entries,
packed into one traced array by the first primitive that meets it) and "in-place updates"
(``y[i] = v`` and ``x += y`` on a traced array record ``index_set`` and rebind the box),
which say how, what it costs, and the aliasing rule.
"""

import operator
import sys

import numpy as np

from .. import rules as P
from ..core.trace import OBJECTS, Box, Trace, check_live, unbox
from .creation import copy
from .dispatch import _compare, _stage, array_function, array_ufunc, implements
from .elementwise import astype, clip
from .gather import diagonal, repeat, take, trace
from .indexing import _index, getitem
from .products import dot
from .reductions import cumprod, cumsum, max, mean, min, prod, std, sum, var
from .shapes import _size, broadcast_to, ravel, reshape, squeeze, swapaxes, transpose

_shape, _ndim = P.shape_of, P.ndim_of

# ---------------------------------------------------------------------------
# arrays built from traced values: np.array([...]) / np.asarray(...) of traced values
#
# numpy's np.array is not dispatched by __array_function__, but it asks every element for
# __array__; a traced value answers with an object array of ``Elem``s, one per entry, so
# np.array([a*x - b*x*y, c*x*y - d*y]) is a numpy object array of shape (2,).  Numpy's object
# loops then compute with the elements (every operator and method of a Box works on them,
# entry by entry), and the first primitive that meets an object array holding traced
# values (a traced argument beside it, np.sum via the Box it returns, the output of a
# transform) packs it back into one traced array with one concatenate and one gather
# (``pack``).  Its cost: one Python object per entry at np.array time and an elementwise
# loop for arithmetic done on the object array itself; nothing at all for plain arrays.
# ---------------------------------------------------------------------------

def _snapshot(b):
    """A new box with ``b``'s current value and trace (later in-place writes to ``b`` do
    not reach it: np.array copies)."""
    c = object.__new__(b.__class__)
    for cls in b.__class__.__mro__:
        for s in getattr(cls, "__slots__", ()):
            if s not in ("__weakref__", "_grad") and hasattr(b, s):
                object.__setattr__(c, s, getattr(b, s))
    hold = getattr(c._trace, "hold", None)  # a hand-made Dual keeps its trace recording
    if hold is not None:
        hold()
    return c


class Elem(Box):
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
    traced values packed; anything else as it is."""
    if x.__class__ is Elem:
        return x.value
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

    def process(self, prim, args, kw):
        new, lifted, changed = [], True, False
        for a in args:
            if a.__class__ is Elem:
                a, changed = a.value, True
            elif a.__class__ is np.ndarray and a.dtype == object:
                p = pack(a)
                if p is not a:
                    a, changed, lifted = p, True, False
            elif isinstance(a, Box):
                lifted = False
            new.append(a)
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


def _no_float_array(self):
    raise TypeError(
        "dualgrad: a traced value cannot be stored in a plain float array (np.array(..., "
        "dtype=float), np.asarray(x, float), np.float64(x), out[i] = x into an array made by "
        "np.zeros/np.empty, rng.normal(loc=x) and the other numpy.random Generator methods): "
        "its derivative would be lost. Leave out the dtype (np.array([...]) of traced values "
        "works), write into a traced array instead (y = np.zeros_like(x) with x traced, then "
        "y[i] = v), collect the pieces in a list and np.stack them, or reparameterise a "
        "random draw (loc + scale * rng.standard_normal(shape)). Use dg.stop_gradient(x) if "
        "no derivative is wanted.")


def _array(self, dtype=None, copy=None):
    """``np.array(x)`` / ``np.asarray(x)`` of a traced x: an object array of its entries."""
    if dtype is not None and np.dtype(dtype) != object:
        caller = sys._getframe(1).f_code  # only on the way to an error
        if caller.co_name in ("_mean", "_var", "_std") and "numpy" in caller.co_filename:
            fn = caller.co_name[1:]
            raise TypeError(
                f"dualgrad: np.{fn}([...]) (np.mean, np.var, np.std) of a list of traced "
                "numbers cannot carry a "
                f"derivative (numpy finishes it with np.float64(...)); write "
                f"np.{fn}(np.stack([...])) instead (a list of traced arrays works as it is)")
        if np.dtype(dtype).kind in "iub":
            raise TypeError(
                f"dualgrad: converting a traced value to {np.dtype(dtype)} (np.int64(x), "
                f"np.asarray(x, int)): integers have no derivative; x.astype({np.dtype(dtype)})"
                " gives the raw integers, or use dg.stop_gradient(x)")
        _no_float_array(self)
    check_live(self, "numpy.array")
    shape = self.shape
    src = _snapshot(self)
    out = np.empty(int(np.prod(shape, dtype=np.int64)), object)
    for i in range(out.size):
        out[i] = Elem(None, (src, i))
    return out.reshape(shape)


# ---------------------------------------------------------------------------
# in-place updates on traced arrays: y[i] = v, y[mask] = v, y[a:b] += v, x += y, x *= 2
#
# A traced array cannot be written (its value is on the tape), so ``y[idx] = v`` records
# ``index_set(y, v, idx)`` (JAX's y.at[idx].set(v)) and makes the box ``y`` stand for the
# new value: every reference to that same box sees the write, as for a numpy array.  Python
# runs ``y[idx] += v`` as ``t = y[idx]; t += v; y[idx] = t``, which is numpy's buffered
# semantics (a repeated index gets one update, the last).  Aliasing, as in JAX: a view taken
# earlier (``z = y[1:]``, ``np.array(y)``) is a value of its own and does not see later
# writes to ``y``.  A traced Python or numpy scalar is immutable, as in numpy: ``s += 1``
# rebinds the name only.
# ---------------------------------------------------------------------------

def _rebind(box, new, what):
    """Make ``box`` stand for the traced value ``new`` (an in-place write)."""
    if new.__class__ is not box.__class__:
        raise TypeError(
            f"dualgrad: {what} writes a value traced by a nested transform into an array "
            f"traced by an outer one ({type(new).__name__} into {type(box).__name__}); make "
            "the array inside the inner function (y = y + 0.0 there) or return the new value")
    leaves = getattr(box._trace, "_leaves", None)
    if leaves and box._trace.entries[box.index].prim is None \
            and any(r() is box for r in leaves):
        raise TypeError(f"dualgrad: {what} would overwrite a value watched by this Tape; "
                        "write into a copy (y = x + 0.0) instead")
    old = box._trace
    for cls in box.__class__.__mro__:
        for s in getattr(cls, "__slots__", ()):
            if s not in ("__weakref__", "_grad") and hasattr(new, s):
                object.__setattr__(box, s, getattr(new, s))
    hold, release = getattr(box._trace, "hold", None), getattr(old, "release", None)
    if hold is not None:
        hold()
    if release is not None:
        release()


def _setitem(self, key, value):
    check_live(self, "setitem")
    raw = unbox(self)
    raw = getattr(raw, "__dualgrad_raw__", raw)  # under dg.jit: the recorded value
    if raw.__class__ is not np.ndarray and P.device_like(raw) is None:
        raise TypeError(f"dualgrad: {type(raw).__name__!r} object does not support item "
                        "assignment (a traced number is immutable, as in numpy)")
    if isinstance(value, (list, tuple)) or (value.__class__ is np.ndarray
                                            and value.dtype == object):
        value = lift_out(np.array(value, dtype=object) if isinstance(value, (list, tuple))
                         else value)
    _rebind(self, P.index_set(self, value, idx=_index(key)), f"y[{key!r}] = v")


def _inplace(prim, name):
    def op(self, other):
        check_live(self, name)
        new = prim(self, other)
        raw = unbox(self)
        if raw.__class__ is not np.ndarray or new.__class__ is not self.__class__:
            return new  # an immutable number (or a value of another trace): a new value
        if _shape(new) != raw.shape:
            raise ValueError(f"non-broadcastable output operand with shape {raw.shape} "
                             f"doesn't match the broadcast shape {_shape(new)}")
        if P.float_dtype(new) != raw.dtype and raw.dtype.kind in "fc":
            new = astype(new, raw.dtype)  # x += y keeps x's dtype, as numpy's casting does
        _rebind(self, new, f"x {name} y")
        return self
    return op


@implements(np.add.at)
def _add_at(a, indices, b=None):
    """np.add.at(y, idx, v) on a traced y: unbuffered, a repeated index adds every time."""
    idx = _index(indices)
    tshape = np.empty(_shape(a), bool)[idx].shape
    v = broadcast_to(b, tshape) if _shape(b) != tshape else b
    _rebind(a, P.add(a, P.scatter_add(v, idx=idx, shape=_shape(a))), "numpy.add.at")


# ---------------------------------------------------------------------------
# the Box interface: operators and methods, shared by Dual and tape values
# ---------------------------------------------------------------------------

def _op(prim):
    def op(self, other):
        if not self._trace.active:
            check_live(self, prim.name)
        return prim(self, other)
    return op


def _pow(self, other):
    """``x ** 2`` of an array is ``square(x)`` (bitwise the same in numpy): one fused
    value-and-derivative pass where the backend has a kernel, instead of a power rule."""
    if not self._trace.active:
        check_live(self, "power")
    if other.__class__ in (int, float) and other == 2 and self.value.__class__ is np.ndarray:
        return P.square(self)  # arrays only: a Python float stays a float
    return P.power(self, other)


def _swap(prim):
    def op(self, other):
        if not self._trace.active:
            check_live(self, prim.name)
        return prim(other, self)
    return op


def _method(fn):
    def method(self, *args, **kw):
        if not self._trace.active:
            check_live(self, fn.__name__)
        return fn(self, *args, **kw)
    return method


def _unary(prim):
    def op(self):
        if not self._trace.active:
            check_live(self, prim.name)
        return prim(self)
    return op


def _shape_args(args):
    return args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


_BOX_METHODS = dict(
    __add__=_op(P.add), __radd__=_swap(P.add), __sub__=_op(P.subtract),
    __rsub__=_swap(P.subtract), __mul__=_op(P.multiply), __rmul__=_swap(P.multiply),
    __truediv__=_op(P.divide), __rtruediv__=_swap(P.divide), __pow__=_pow,
    __rpow__=_swap(P.power), __matmul__=_op(P.matmul), __rmatmul__=_swap(P.matmul),
    __mod__=_op(P.remainder), __rmod__=_swap(P.remainder),
    __neg__=_unary(P.negative), __pos__=_unary(P.positive), __abs__=_unary(P.absolute),
    __getitem__=_method(getitem), __setitem__=_setitem,
    __iadd__=_inplace(P.add, "+="), __isub__=_inplace(P.subtract, "-="),
    __imul__=_inplace(P.multiply, "*="), __itruediv__=_inplace(P.divide, "/="),
    __ipow__=_inplace(_pow, "**="), __imatmul__=_inplace(P.matmul, "@="),
    __imod__=_inplace(P.remainder, "%="),
    __array_ufunc__=array_ufunc, __array_function__=array_function, __array__=_array,
    sum=_method(sum), mean=_method(mean), var=_method(var), std=_method(std),
    prod=_method(prod), max=_method(max), min=_method(min), cumsum=_method(cumsum),
    cumprod=_method(cumprod), dot=_method(dot), clip=_method(clip), astype=_method(astype),
    trace=_method(trace), diagonal=_method(diagonal), squeeze=_method(squeeze),
    repeat=_method(repeat), ravel=_method(ravel), flatten=_method(ravel),
    swapaxes=_method(swapaxes), take=_method(take),
    conj=_unary(P.conjugate), conjugate=_unary(P.conjugate),
    reshape=_method(lambda self, *shape, **kw: reshape(self, _shape_args(shape), **kw)),
    transpose=_method(lambda self, *axes: transpose(self, _shape_args(axes) or None)),
)
for _name, _fn in _BOX_METHODS.items():
    setattr(Box, _name, _fn)


def _bool(self):
    stage = _stage(self)
    if stage is not None:
        return stage.guard("bool", self)
    return bool(unbox(self.value))


for _name, _op in dict(__lt__=operator.lt, __le__=operator.le, __gt__=operator.gt,
                       __ge__=operator.ge, __eq__=operator.eq, __ne__=operator.ne).items():
    setattr(Box, _name, _compare(_op))
Box.__hash__ = object.__hash__
Box.shape = property(lambda self: np.shape(unbox(self.value)))
Box.ndim = property(lambda self: np.ndim(unbox(self.value)))
Box.size = property(lambda self: int(np.size(unbox(self.value))))
Box.dtype = property(lambda self: np.result_type(unbox(self.value)))
Box.T = property(_method(transpose))
Box.mT = property(_method(lambda self: swapaxes(self, -1, -2)))
Box.real = property(_unary(P.real))
Box.imag = property(_unary(P.imag))
Box.__len__ = lambda self: len(unbox(self.value))
Box.__iter__ = lambda self: (self[i] for i in range(len(self)))
Box.__bool__ = _bool
for _u in P.UFUNCS:  # numpy's object loops call x.sin() for np.sin of an object array
    if _u.nin == 1 and not hasattr(Box, _u.__name__):
        setattr(Box, _u.__name__, (lambda u: lambda self: u(self))(_u))


def _no_number(what, instead):
    def refuse(self, *args):
        raise TypeError(f"dualgrad: {what} of a traced value would drop its derivative; "
                        f"{instead}, or use dg.stop_gradient(x) if no derivative is wanted")
    refuse.__name__ = what
    return refuse


Box.__float__ = _no_number(
    "float()", "keep it an array (Python's math module calls float(): use np.sin, np.exp, "
    "np.sqrt, ... instead of math.sin, math.exp, math.sqrt; storing it into a plain numpy "
    "array, out[i] = x, calls float() too: make out traced with out = np.zeros_like(x) for a "
    "traced x, or collect the pieces in a list and np.array/np.stack them)")
Box.__int__ = _no_number("int()", "integers have no derivative: keep it an array")
Box.__complex__ = _no_number("complex()", "keep it an array (x + 0j is complex and traced)")
Box.__index__ = _no_number("using it as an integer (an index, a size, range())",
                           "compute indices and sizes from plain values")
Box.__round__ = _no_number("round()", "np.round(x) rounds and keeps an array (derivative 0)")
Box.item = _no_number("x.item()", "keep x as a 0-d array")


def _guarded(how, refuse):
    """int()/float()/.item() of a value a graph records (``dg.jit``) is its number, kept
    as a guard; of a value a derivative traces it stays an error."""
    def convert(self, *args):
        t = self._trace
        if t.read is not None and t.active and not args:
            return t.guard(how, self)
        return refuse(self, *args)
    convert.__name__ = refuse.__name__
    return convert


for _name, _how in dict(__float__="float", __int__="int", __index__="index",
                        __complex__="complex", item="item").items():
    setattr(Box, _name, _guarded(_how, getattr(Box, _name)))
Box.tolist = _no_number("x.tolist()", "keep x an array (np.stack/np.concatenate build arrays)")
# formatting only reads the number: f"{loss:.4f}" inside a traced function prints its value
Box.__format__ = lambda self, spec: format(unbox(self), spec)
Box.__repr__ = lambda self: f"{type(self).__name__}({self.value!r})"
Box.copy = lambda self, order="C": copy(self)  # x.copy(), as np.copy(x)
