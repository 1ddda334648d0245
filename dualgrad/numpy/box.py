"""ArrayBox: a traced value that behaves like a numpy array.

``core.Box`` is the bare mechanism (a value one level down and the trace it belongs to);
``ArrayBox`` adds what makes plain numpy code run on it: the arithmetic operators (each
one row of the table), indexing and in-place updates, comparisons, ``len``/``iter``/
``bool``, ``.shape``/``.ndim``/``.dtype``/``.T``, the common methods (``.sum()``,
``.reshape()``...), and the NEP 13/18 protocols that send ``np.sin(x)`` and ``np.sum(x)``
to dualgrad (dispatch.py).  Every traced value is one: ``Dual`` (forward mode), ``Node``
(reverse mode), ``Var`` (``dg.jit``), ``BatchBox`` (``dg.vmap``) and ``Elem`` (an entry of
an object array, objects.py) derive from it.

A conversion that would drop the derivative (``float(x)``, ``int(x)``, ``x.item()``) is a
``TypeError`` that says what to write instead; under ``dg.jit`` it is the number, kept as
a guard.
"""

import operator
import sys

import numpy as np

from .. import rules as P
from ..core.trace import OBJECTS, Box, check_live, unbox
from . import creation, elementwise, gather, products, reductions, shapes
from .dispatch import _compare, _stage, array_function, array_ufunc
from .indexing import getitem
from .inplace import (
    _inplace,
    _link,
    _rebind,
    _setitem,
    fresh,
    keep_views,
    link_view,
    link_whole,
    part,
    whole,
)

# The operand classes for which ``prim(self, other)`` can only go to self's trace (what
# Primitive.__call__ would find, looked up here without its scan): a number, or a box of
# the same class on the same trace.  Anything else (a box of another level, an array that
# may hold traced objects, a list) goes through the primitive.
_NUMBERS = frozenset((float, int, np.float64))


def _op(prim, swap=False):
    """``x op other`` (``other op x`` with ``swap``: the reflected operator) as ``prim``."""
    def op(self, other):
        t = self._trace
        if not t.active:
            check_live(self, prim.name)
        c = other.__class__
        if c in _NUMBERS or (c is self.__class__ and other._trace is t):
            return t.process(prim, (other, self) if swap else (self, other), {})
        if c in (list, tuple):  # x @ [1.0, 2.0]: an array, as numpy reads it
            other = np.asarray(other)
        return prim(other, self) if swap else prim(self, other)
    return op


def _swap(prim):
    return _op(prim, swap=True)


def _method(fn):
    def method(self, *args, **kw):
        if not self._trace.active:
            check_live(self, fn.__name__)
        return fn(self, *args, **kw)
    return method


def _numpy(name, swap=False):
    """``x.name(*args)`` as ``np.name(x, *args)`` (``np.name(other, x)`` swapped), through
    dispatch.py as numpy's own methods call their functions; ``divmod`` is ``(x // y,
    x % y)``, the same numbers numpy's divmod gives."""
    fn = getattr(np, name) if name != "divmod" else (
        lambda a, b: (np.floor_divide(a, b), np.remainder(a, b)))

    def method(self, *args, **kw):
        return fn(args[0], self, *args[1:], **kw) if swap else fn(self, *args, **kw)
    method.__name__ = name
    return method


def _unary(prim):
    def op(self):
        if not self._trace.active:
            check_live(self, prim.name)
        return prim(self)
    return op


def _whole_view(x, name, fn, args=(), kw=None):
    """``fn(x)`` (= ``x.<name>(*args, **kw)``, a transpose or reshape of all of x) as
    numpy's view of x: a write into it is a write into x (inplace.py's views)."""
    fresh(x)
    return link_whole(x, whole(P.shape_of(x), name, args, kw or {}), fn(x))


def _part(x, name):
    """``x.real`` / ``x.imag`` as numpy's views: a write into one is a write into x."""
    fresh(x)
    key = part(x, name)
    return link_whole(x, key, key.take(x))


_BASIC_KEYS = P.BASIC_KEYS  # (a module global: read on every index)


def _basic_view(base, key, view):
    """``link_view(base, key, view)`` for a key of ints, slices, None and Ellipsis (a
    basic key): a view with a shape is linked, a number is not."""
    v = view.value
    if (v.shape if v.__class__ is np.ndarray else P.shape_of(view)):
        _link(base, key, view)
    return view


SHARED_READS = {np.ndarray}  # (compiler/record.py adds its Var)


def _basic_item(base, key, idx):
    """``base[key]`` for a basic key (``idx``: the key as a tuple).  The same key read
    again with no write into ``base`` between (``w[f]`` in a loop over the entries of
    ``out``) gives the box it gave: one value on the tape and one cotangent summed in the
    sweep, not a gather and a scatter per read.  numpy's ``w[f]`` twice is two views of
    the same memory, which see each other's writes; these do too (a write through
    either is a write into ``base``, which counts it in ``_writes``).  Where the value is
    a numpy array or a value dg.jit records (``SHARED_READS``: so ``jit(grad(f))``'s graph
    is eager ``grad(f)``'s, bit for bit); not for higher orders, whose graphs' fused
    kernels recompute each read's padded cotangent as the reads were written."""
    if base.value.__class__ not in SHARED_READS:
        return _basic_view(base, key, P.getitem(base, idx=idx))
    last = getattr(base, "_item", None)
    writes = getattr(base, "_writes", 0)
    if last is not None and last[1] == writes and last[0] == key:
        return last[2]
    view = _basic_view(base, key, P.getitem(base, idx=idx))
    base._item = (key, writes, view)
    return view


def _shape_args(args):
    return args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def _no_number(what, instead):
    def refuse(self, *args):
        raise TypeError(f"dualgrad: {what} of a traced value would drop its derivative; "
                        f"{instead}, or use dg.stop_gradient(x) if no derivative is wanted")
    refuse.__name__ = what
    return refuse


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


def _copied(x, r):
    """``r``, computed from ``x`` by a function that returns ``x`` itself where nothing
    changes (a 1-D ravel), as a copy of its own (x.flatten() copies, as numpy's)."""
    return creation.copy(r) if r is x else r


def _primal(x):
    """The raw array under every level (under ``dg.jit``: the recorded value)."""
    raw = unbox(x)
    raw = getattr(raw, "__dualgrad_raw__", raw)
    return raw if hasattr(raw, "strides") else np.asarray(raw)


def _writable(self, what, instead):
    """The raw array of a traced array that an in-place method may rebind; a traced number is
    immutable, as in numpy (a Python float has no .fill or .sort)."""
    check_live(self, what)
    raw = unbox(self)
    raw = getattr(raw, "__dualgrad_raw__", raw)
    if isinstance(raw, Box):  # under dg.vmap: a batch, which is not rebound in place
        raise TypeError(f"dualgrad: x.{what} in place is not supported under dg.vmap; "
                        f"write {instead} instead")
    if raw.__class__ is not np.ndarray and P.device_like(raw) is None:
        raise AttributeError(f"{type(raw).__name__!r} object has no attribute {what!r} (a "
                             "traced number is immutable, as in numpy)")
    return raw


def _raw_shape(self):
    """``x.shape``: the raw value's (numpy's np.shape, without its call for an array)."""
    raw = unbox(self.value)
    return raw.shape if raw.__class__ is np.ndarray else np.shape(raw)


def _raw_ndim(self):
    raw = unbox(self.value)
    return raw.ndim if raw.__class__ is np.ndarray else np.ndim(raw)


def _set_shape(self, shape):
    """``x.shape = S``: x now stands for reshape(x, S) (a rebinding, as ``x += y``)."""
    _writable(self, "shape", "x = x.reshape(S)")
    new = shapes.reshape(self, shape)
    if new is not self:
        keep_views(self, P.shape_of(new))
        _rebind(self, new, "x.shape = S")


def _no_float_array(self):
    raise TypeError(
        "dualgrad: a traced value cannot be stored in a plain float array (np.array(..., "
        "dtype=float), np.asarray(x, float), np.float64(x), out[i] = x into an array made by "
        "np.zeros/np.empty, rng.normal(loc=x) and the other numpy.random Generator methods): "
        "its derivative would be lost. Leave out the dtype (np.array([...]) of traced values "
        "works), write into a traced array instead (make it with y = np.zeros(shape, like=x), "
        "shape the array's own and x any traced value, then y[i] = v), collect the pieces "
        "in a list and np.stack them, or reparameterise a "
        "random draw (loc + scale * rng.standard_normal(shape)). Use dg.stop_gradient(x) if "
        "no derivative is wanted.")


def _ufunc_methods(taken):
    """``x.sin()`` for each unary numpy ufunc with a row (numpy's object loops call it for
    ``np.sin`` of an object array of traced values), but for names in ``taken``."""
    return {u.__name__: (lambda u: lambda self: u(self))(u) for u in P.UFUNCS
            if u.nin == 1 and getattr(np, u.__name__, None) is u and u.__name__ not in taken}


class ArrayBox(Box):
    """A traced value with numpy's operators, methods and protocols (the base of every
    traced value: Dual, Node, Var, BatchBox, Elem)."""

    # a view's base (``out[i]`` of a traced out), how many writes rebound this box, and
    # weak references to the views taken of it: inplace.py's views; unset on most boxes.
    # ``_item``: the last basic index read, (key, writes, box): ``w[f]`` read again in a
    # loop is the same traced value, one entry on the tape (unset until the first read)
    __slots__ = ("_view_of", "_writes", "_views", "_item", "__weakref__")

    def __hash__(self):  # as numpy's: a number by its value (d.get(y[0])), an array not at all
        if self.ndim:
            raise TypeError("unhashable type: a traced array (numpy arrays are unhashable)")
        stage = _stage(self)  # under dg.jit the value read is a guard, as bool()'s
        return hash(stage.guard("item", self) if stage is not None else _primal(self)[()])

    # -- arithmetic: each operator is one row ----------------------------------------------
    __add__, __radd__ = _op(P.add), _swap(P.add)
    __sub__, __rsub__ = _op(P.subtract), _swap(P.subtract)
    __mul__, __rmul__ = _op(P.multiply), _swap(P.multiply)
    __truediv__, __rtruediv__ = _op(P.divide), _swap(P.divide)
    __matmul__, __rmatmul__ = _op(P.matmul), _swap(P.matmul)
    __mod__, __rmod__ = _op(P.remainder), _swap(P.remainder)
    __rpow__ = _swap(P.power)
    __neg__, __pos__, __abs__ = _unary(P.negative), _unary(P.positive), _unary(P.absolute)

    def __pow__(self, other):
        """``x ** 2`` of an array is ``square(x)`` (bitwise the same in numpy): one fused
        value-and-derivative pass where the backend has a kernel, instead of a power rule."""
        if not self._trace.active:
            check_live(self, "power")
        if other.__class__ in (int, float) and other == 2 \
                and self.value.__class__ is np.ndarray:
            return P.square(self)  # arrays only: a Python float stays a float
        return P.power(self, other)

    # -- in place: the box stands for the new value (inplace.py) ---------------------------
    __iadd__, __isub__ = _inplace(P.add, "+="), _inplace(P.subtract, "-=")
    __imul__, __itruediv__ = _inplace(P.multiply, "*="), _inplace(P.divide, "/=")
    __ipow__, __imatmul__ = _inplace(__pow__, "**="), _inplace(P.matmul, "@=")
    __imod__ = _inplace(P.remainder, "%=")

    # -- comparisons and bool(): no derivative; under dg.jit recorded (dispatch.py) --------
    __lt__, __le__ = _compare(operator.lt), _compare(operator.le)
    __gt__, __ge__ = _compare(operator.gt), _compare(operator.ge)
    __eq__, __ne__ = _compare(operator.eq), _compare(operator.ne)

    def __bool__(self):
        stage = _stage(self)
        if stage is not None:
            return stage.guard("bool", self)
        return bool(unbox(self.value))

    # -- indexing and iteration --------------------------------------------------------------
    def __getitem__(self, key):
        if not self._trace.active:
            check_live(self, "getitem")
        fresh(self)
        kc = key.__class__
        if kc is tuple:  # ints, slices, None and Ellipsis (x[n, :, i:i + 3]): the row, as
            for k in key:  # indexing.getitem applies it, and numpy's view (link_view)
                if k.__class__ not in _BASIC_KEYS:
                    return link_view(self, key, getitem(self, key))
            return _basic_item(self, key, key)
        if kc in _BASIC_KEYS:
            return _basic_item(self, key, (key,))
        return link_view(self, key, getitem(self, key))

    __setitem__ = _setitem

    def __len__(self):
        return len(unbox(self.value))

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # -- numpy's protocols ---------------------------------------------------------------------
    __array_ufunc__ = array_ufunc
    __array_function__ = array_function

    def __dask_graph__(self):  # dask.delayed / da.from_delayed of one: the same error
        return self.__dask_tokenize__()

    def __dask_tokenize__(self):  # dask wrapping a traced value (X.dot(w)): no silent zero
        raise TypeError(
            "dualgrad: a traced value was passed to dask's own API (X.dot(w), da.tensordot, "
            "da.from_array, dask.delayed), which wraps it as a constant and would give a zero "
            "gradient; write X @ w or np.dot(X, w) (numpy's functions, which dualgrad traces)")

    def __array__(self, dtype=None, copy=None):
        """``np.array(x)`` / ``np.asarray(x)`` of a traced x: an object array of its entries
        (objects.py), which the first primitive that meets it packs into one traced array."""
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
                    f"np.asarray(x, int)): integers have no derivative; x.astype("
                    f"{np.dtype(dtype)}) gives the raw integers, or use dg.stop_gradient(x)")
            _no_float_array(self)
        check_live(self, "numpy.array")
        return OBJECTS[0].elements(self)

    # -- attributes --------------------------------------------------------------------------
    shape = property(_raw_shape, _set_shape)
    ndim = property(_raw_ndim)
    size = property(lambda self: int(np.size(unbox(self.value))))
    dtype = property(lambda self: np.result_type(unbox(self.value)))
    T = property(lambda self: _whole_view(self, "T", lambda x: shapes.transpose(x, None)))
    mT = property(lambda self: _whole_view(self, "mT",
                                           lambda x: shapes.swapaxes(x, -1, -2)))
    real = property(lambda self: _part(self, "real"))
    itemsize = property(lambda self: _primal(self).itemsize)  # the primal's: no derivative
    nbytes = property(lambda self: _primal(self).nbytes)
    strides = property(lambda self: _primal(self).strides)
    imag = property(lambda self: _part(self, "imag"))

    # -- methods: the numpy functions of the same names ----------------------------------------
    sum, mean = _method(reductions.sum), _method(reductions.mean)
    var, std = _method(reductions.var), _method(reductions.std)
    prod, max, min = _method(reductions.prod), _method(reductions.max), _method(reductions.min)
    cumsum, cumprod = _method(reductions.cumsum), _method(reductions.cumprod)
    dot = _method(products.dot)
    clip, astype = _method(elementwise.clip), _method(elementwise.astype)
    trace, diagonal = _method(gather.trace), _method(gather.diagonal)
    repeat, take = _method(gather.repeat), _method(gather.take)
    squeeze = _method(lambda self, *a, **kw: _whole_view(
        self, "squeeze", lambda x: shapes.squeeze(x, *a, **kw), a, kw))
    swapaxes = _method(lambda self, *a: _whole_view(
        self, "swapaxes", lambda x: shapes.swapaxes(x, *a), a))
    ravel = _method(lambda self, *a, **kw: _whole_view(
        self, "ravel", lambda x: shapes.ravel(x, *a, **kw), a, kw))
    flatten = _method(lambda self, order="C": _copied(self, shapes.ravel(self, order)))
    conj = conjugate = _unary(P.conjugate)
    reshape = _method(lambda self, *shape, **kw: _whole_view(
        self, "reshape", lambda x: shapes.reshape(x, _shape_args(shape), **kw), shape, kw))
    transpose = _method(lambda self, *axes: _whole_view(
        self, "transpose", lambda x: shapes.transpose(x, _shape_args(axes) or None),
        (_shape_args(axes),)))

    # numpy functions that dispatch.py computes (no derivative, or a rule of their own)
    argmax = _method(_numpy("argmax"))
    argmin, argsort = _method(_numpy("argmin")), _method(_numpy("argsort"))
    nonzero, round = _method(_numpy("nonzero")), _method(_numpy("round"))
    all, any = _method(_numpy("all")), _method(_numpy("any"))
    __floordiv__ = _method(_numpy("floor_divide"))
    __rfloordiv__ = _method(_numpy("floor_divide", swap=True))
    __divmod__ = _method(_numpy("divmod"))
    __rdivmod__ = _method(_numpy("divmod", swap=True))

    def fill(self, value):
        """x.fill(v): x now stands for an array of v's (derivative 0 w.r.t. the old x;
        a traced v keeps its own)."""
        raw = _writable(self, "fill", "x = np.full_like(x, v)")
        if isinstance(value, Box):
            if P.ndim_of(value) != 0:
                raise ValueError("setting an array element with a sequence.")
            value = shapes.broadcast_to(
                value if P.float_dtype(value) == raw.dtype else elementwise.astype(
                    value, raw.dtype), raw.shape)
        else:
            value = np.full(raw.shape, value, raw.dtype)
        _rebind(self, P.where(np.ones(raw.shape, bool), value, self), "x.fill(v)")

    def sort(self, axis=-1, kind=None, order=None, *, stable=None):
        """x.sort(): x now stands for np.sort(x) (a rebinding, as ``x += y``)."""
        _writable(self, "sort", "x = np.sort(x)")
        if order is not None:
            raise TypeError("dualgrad: x.sort(order=...) sorts structured arrays, which "
                            "carry no derivative")
        if axis is None:
            raise TypeError("dualgrad: x.sort(axis=None) is not numpy's: use "
                            "x = np.sort(x, axis=None)")
        new = gather.sort(self, axis, "stable" if stable else kind)
        _rebind(self, new, "x.sort()")

    def copy(self, order="C"):
        """x.copy(), as np.copy(x)."""
        return creation.copy(self)

    def __deepcopy__(self, memo):  # a copy of the value on the same traces (copying the
        return creation.copy(self)  # trace itself made a constant: a silent zero derivative)

    # -- conversions that would drop the derivative: refused (under dg.jit: guarded) ----------
    __float__ = _guarded("float", _no_number(
        "float()", "keep it an array (Python's math module calls float(): use np.sin, np.exp, "
        "np.sqrt, ... instead of math.sin, math.exp, math.sqrt; storing it into a plain numpy "
        "array, out[i] = x, calls float() too: make out traced where it is made, with out = "
        "np.zeros(shape, like=x) for its shape and a traced x, or collect the pieces in a "
        "list and np.array/np.stack them)"))
    __int__ = _guarded("int", _no_number(
        "int()", "integers have no derivative: keep it an array"))
    __complex__ = _guarded("complex", _no_number(
        "complex()", "keep it an array (x + 0j is complex and traced)"))
    __index__ = _guarded("index", _no_number(
        "using it as an integer (an index, a size, range())",
        "compute indices and sizes from plain values"))
    item = _guarded("item", _no_number("x.item()", "keep x as a 0-d array"))
    __round__ = _no_number("round()", "np.round(x) rounds and keeps an array (derivative 0)")
    tolist = _no_number("x.tolist()", "keep x an array (np.stack/np.concatenate build arrays)")

    def __format__(self, spec):
        """Formatting only reads the number: f"{loss:.4f}" inside a traced function prints
        its value."""
        return format(unbox(self), spec)

    def __repr__(self):
        return f"{type(self).__name__}({self.value!r})"

    # numpy's object loops call x.sin() for np.sin of an object array of traced values
    locals().update(_ufunc_methods(taken=locals()))
