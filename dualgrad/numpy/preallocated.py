"""Preallocated outputs, unmodified: ``out = np.zeros(S)`` inside a transform, then
``out[i] = v`` with a traced ``v``, differentiates.

    >>> import numpy as np, dualgrad as dg
    >>> def f(x):
    ...     out = np.zeros(3)          # plain numpy, as students write it
    ...     for i in range(3):
    ...         out[i] = x[i] ** 2
    ...     return out.sum()
    >>> dg.grad(f)(np.array([1.0, 2.0, 3.0]))
    array([2., 4., 6.])

A numpy array cannot hold a traced value, and ``np.zeros`` has no argument numpy could
dispatch on, so it cannot return a traced array by itself.  While a transform runs the
user's function (``dg.grad``, ``vjp``, ``jvp``, ``jacfwd``/``jacrev``, ``hessian``,
``vmap``, ``dg.jit``'s recording, and everything built on them), and only in the thread that
runs it, ``np.zeros``, ``np.ones``, ``np.empty``, ``np.full`` and their ``*_like`` of a plain
array, called from the user's own code, return a ``Preallocated``: a float array that
behaves as the plain array would (its values, its operators, its methods, numpy's
functions, ``np.asarray``) until a traced value is written into it, from which point it is
that traced value, exactly as ``np.zeros(S, like=x)`` would have been.

How, within the constraints:

- *Nothing changes outside a transform.*  The eight numpy names are replaced only while
  some thread runs a transform (``call``, counted under a lock) and put back when the
  last one returns; a replaced name called in a thread that runs no transform is numpy's
  own function, one thread-local read later.
- *Plain numpy code costs nothing*: outside transforms numpy's functions are numpy's own
  objects.  Inside, a call from a library (numpy, scipy, the standard library, anything
  installed in site-packages, dualgrad itself) gets numpy's array, unchanged: only code
  the user wrote (scripts, notebooks, tests, a project checked out) gets a
  ``Preallocated``; a file's verdict is cached.  Integer and boolean arrays stay plain
  (index arrays and masks carry no derivative).
- *Thread-safe*: the "inside a transform" state is per thread; the replacement is
  installed and removed under a lock by the first and last transform running.
- *Equal to like=*: a traced write records the same ``index_set`` row ``like=`` records,
  from the same zeros.  Plain writes (``out[i] = 1.0``) write in place, as numpy does, so
  a view taken earlier sees them; a traced write makes ``out`` a new value that earlier
  views do not see (as with ``like=`` and JAX).
- Not covered: ``from numpy import zeros`` (bound before the transform ran: it is numpy's
  function, and a traced write into its array raises the error that names ``like=``),
  ``np.array(...)`` and ``.copy()`` of plain arrays, and hand-made ``dg.Dual`` values
  outside transforms.

A ``Preallocated`` is a box of the object trace (``objects.py``), the trace above all
others: a primitive that meets one uses its current value, whatever that is.
"""

import ast
import functools
import itertools
import linecache
import operator
import os
import site
import sys
import sysconfig
import threading
import types

import numpy as np

try:  # numba is optional: without it, nothing compiles that could see the swap
    from numba import types as numba_types
    from numba.extending import overload
except ImportError:
    numba_types = overload = None

from .. import rules as P
from ..core.buffers import gc_paused
from ..core.trace import OBJECTS, Box
from . import creation  # noqa: F401  (registers LIKE and HANDLED first)
from .box import ArrayBox
from .creation import IN_PLACE, write_in_place
from .dispatch import FUNCTION_VIEWS, HANDLED, LIKE, function_view
from .elementwise import astype
from .indexing import _index
from .inplace import WHOLE_VIEWS, Whole, part, refusal, scattered, whole, written
from .inplace import basic_key as _basic_key

_FLOAT = frozenset("fc")


def _current(x):
    """A Preallocated as the value it stands for; anything else as it is."""
    return x._v if x.__class__ is Preallocated else x


def _deep(x, copy=False):
    """``x`` with each Preallocated replaced by its value, in lists and tuples too; with
    ``copy``, a plain value as a copy (it is going on a tape beside traced values: a later
    plain write, in place as numpy's, must not change what the derivative reads)."""
    if x.__class__ is Preallocated:
        v = x._v
        return v.copy() if copy and v.__class__ is np.ndarray else v
    if x.__class__ in (list, tuple):
        return x.__class__(_deep(e, copy) for e in x)
    return x


def _on_tape(v, *others):
    """``v`` (a Preallocated's plain value) as a traced computation with ``others`` may
    keep it: a copy where one of them is traced."""
    return v.copy() if v.__class__ is np.ndarray and _traced(others) else v


def _traced(x):
    if isinstance(x, Box):
        return True
    if x.__class__ in (list, tuple):
        return any(_traced(e) for e in x)
    return x.__class__ is np.ndarray and x.dtype.kind == "O"


def _view(r):
    """A float array a plain Preallocated's method gave (a view, a new array): a
    Preallocated too, so that it stays writable and a tape copies it (objects.py)."""
    return Preallocated(r) if r.__class__ is np.ndarray and r.dtype.kind in _FLOAT else r


def _delegate(name):
    """The current value's attribute; a plain array's methods and views give
    Preallocated arrays, and a traced argument goes to ArrayBox's method."""
    boxed = getattr(ArrayBox, name, None)

    def get(self):
        v = self._v
        a = getattr(v, name)
        if not callable(a):  # .T, .mT: numpy's views of the whole array
            return self._whole(name, (), {}, a)
        if v.__class__ is not np.ndarray:
            if name in WHOLE_VIEWS:
                return lambda *args, **kw: self._whole(name, args, kw, a(*args, **kw))
            return a

        def method(*args, **kw):
            if boxed is not None and (_traced(args) or _traced(tuple(kw.values()))):
                return boxed(self, *args, **kw)
            r = a(*args, **kw)
            return self._whole(name, args, kw, r) if name in WHOLE_VIEWS else _view(r)
        return method
    return property(get)


def _dunder(name):
    return lambda self, *a: getattr(self._v, name)(*a)


def _binary(op):
    def apply(self, other):
        other = _current(other)
        return op(_on_tape(self._v, other), other)
    return apply


def _reflected(op):
    def apply(self, other):
        other = _current(other)
        return op(other, _on_tape(self._v, other))
    return apply


_PLAIN = ("all", "any", "argmax", "argmin", "argpartition", "argsort", "byteswap", "choose",
          "clip", "compress", "conj", "conjugate", "cumprod", "cumsum", "data", "diagonal",
          "dot", "dtype", "dump", "dumps", "flags", "flat", "flatten", "getfield", "imag",
          "item", "itemsize", "max", "mean", "min", "nbytes", "ndim", "nonzero",
          "partition", "prod", "ptp", "put", "ravel", "real", "repeat", "reshape", "round",
          "searchsorted", "size", "squeeze", "std", "strides", "sum", "swapaxes", "T", "mT",
          "take", "tobytes", "tofile", "tolist", "trace", "transpose", "var", "view",
          "base", "ctypes", "device", "to_device")

_OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
        "truediv": operator.truediv, "floordiv": operator.floordiv, "mod": operator.mod,
        "pow": operator.pow, "matmul": operator.matmul, "and": operator.and_,
        "or": operator.or_, "xor": operator.xor, "lshift": operator.lshift,
        "rshift": operator.rshift, "divmod": divmod}
_COMPARE = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
            "eq": operator.eq, "ne": operator.ne}
_INPLACE = {"iadd": operator.iadd, "isub": operator.isub, "imul": operator.imul,
            "itruediv": operator.itruediv, "ifloordiv": operator.ifloordiv,
            "imod": operator.imod, "ipow": operator.ipow, "imatmul": operator.imatmul,
            "iand": operator.iand, "ior": operator.ior, "ixor": operator.ixor}


def _inplace(op, name):
    def update(self, other):
        other = _current(other)
        v = self._v
        if v.__class__ is np.ndarray and not _traced(other):
            op(v, other)  # numpy's own in-place update
            return self
        new = _OPS[name[1:]](_on_tape(v, other), other)
        if _shape(new) != _shape(v):
            raise ValueError(f"non-broadcastable output operand with shape {_shape(v)} "
                             f"doesn't match the broadcast shape {_shape(new)}")
        dt = P.float_dtype(v)
        if P.float_dtype(new) != dt and dt.kind in _FLOAT:
            new = astype(new, dt)  # out += y keeps out's dtype, as numpy does
        self._v = new
        return self
    return update


_shape = P.shape_of


class Preallocated(ArrayBox):
    """A float array made by ``np.zeros``/``ones``/``empty``/``full`` (or their
    ``*_like`` of a plain array) in the user's code while a transform runs: the plain array
    until a traced value is written into it, that traced value from then on."""

    __slots__ = ("_raw", "_viewed")

    def __init__(self, array, view_of=None):
        self._raw, self._trace = array, OBJECTS[0]
        self._view_of, self._writes, self._viewed = view_of, 0, False

    @property
    def _v(self):
        """The value: a view's is read again from its base where a traced write made the
        base a new value since (numpy's view would see that write; inplace.py's views)."""
        link = self._view_of
        if link is None:
            return self._raw
        base, key = link[0], link[1]
        base._v  # noqa: B018 - a base that is a view itself is read again first
        if base._writes != link[2]:
            self._raw = _current(key.take(base) if key.__class__ is Whole else base[key])
            self._view_of = (base, key, base._writes)
            self._writes += 1  # a new value: views taken of this one read it again
        return self._raw

    @_v.setter
    def _v(self, value):  # a traced write: the box is a new value, written back to a base
        self._raw = value
        self._writes += 1
        link = self._view_of
        if link is not None:
            base, key = link[0], link[1]
            if key.__class__ is Whole:
                base[...] = key.back(value)
            else:
                base[key] = self
            self._view_of = (base, key, base._writes)

    value = property(lambda self: self._v)

    def _whole(self, name, args, kw, r):
        """``r`` = ``self.<name>(*args, **kw)`` (a transpose or reshape) as numpy's view of
        self where numpy's is one (its memory is self's), else as ``_view`` gives it."""
        v, rr = self._raw, r
        while isinstance(v, Box):
            v = v.value
        while isinstance(rr, Box):
            rr = rr.value
        if rr.__class__ is np.ndarray and v.__class__ is np.ndarray \
                and np.may_share_memory(rr, v) and rr.dtype.kind in _FLOAT:
            self._viewed = True
            key = part(self, name) if name in ("real", "imag") else whole(
                _shape(self._raw), name, args, kw)  # (a part: the other part is kept)
            return Preallocated(r, (self, key, self._writes))
        return _view(r)

    def _view(self, key, r):
        """``self[key]``'s value ``r`` as numpy's view of self (writes go back into self)."""
        if _basic_key(key) and _shape(r):
            if r.__class__ is np.ndarray or isinstance(r, ArrayBox):
                self._viewed = True
                return Preallocated(r, (self, key, self._writes))
        elif r.__class__ is np.ndarray:
            return Preallocated(r)
        return r

    # -- writes ------------------------------------------------------------------------
    def __setitem__(self, key, value):
        v, value = self._v, _current(value)
        if v.__class__ is np.ndarray and not _traced(value) and not _traced(key):
            v[key] = value  # numpy's own write, in place
            return
        if isinstance(value, (list, tuple)) or (value.__class__ is np.ndarray
                                                and value.dtype == object):
            value = OBJECTS[0].pack(np.array(value, dtype=object)
                                    if isinstance(value, (list, tuple)) else value)
        v = _on_tape(v, value, key)
        # (the Preallocated stands for the result from now on: its old value is dropped)
        self._v = written(v, value, _index(key)) if isinstance(v, Box) \
            else P.set_at(v, value, _index(key))

    locals().update({f"__{n}__": _inplace(op, n) for n, op in _INPLACE.items()})

    def fill(self, value):
        if self._v.__class__ is np.ndarray and not _traced(value):
            self._v.fill(value)
        else:
            self[...] = value

    def sort(self, axis=-1, kind=None, order=None, *, stable=None):
        self._v.sort(axis, kind, order, stable=stable)  # numpy's, or the traced value's

    def _set_shape(self, shape):
        if self._viewed and isinstance(self._v, Box):  # its views would be read again
            raise TypeError(  # from the reshaped array: refused, never a wrong number
                "dualgrad: out.shape = S on an array a view was taken of, after a traced "
                "value was written into it: write out = out.reshape(S) (numpy's views keep "
                "their memory; a view of this array is read again from it)")
        self._v.shape = shape  # numpy's, or the traced value's own rebinding

    shape = property(lambda self: self._v.shape, _set_shape)

    def __getitem__(self, key):
        """A view stays writable with traced values (``out[1:3] *= v`` reads, updates and
        writes back), and sees plain writes, as numpy's does."""
        v = self._v
        if v.__class__ is np.ndarray and not _traced(key):
            return self._view(key, v[key])
        return self._view(key, v[_current(key)])

    def __iter__(self):  # rows are views, as numpy's
        return (self[i] for i in range(len(self)))

    # -- copies stay writable --------------------------------------------------------------
    def copy(self, order="C"):
        v = self._v
        return Preallocated(v.copy(order)) if v.__class__ is np.ndarray else v.copy()

    def astype(self, dtype, *args, **kw):
        r = self._v.astype(dtype, *args, **kw)
        if r is self._v:
            return self
        return Preallocated(r) if r.__class__ is np.ndarray and r.dtype.kind in _FLOAT else r

    # -- everything else: the current value's -------------------------------------------------
    locals().update({n: _delegate(n) for n in _PLAIN})
    locals().update({f"__{n}__": _binary(op) for n, op in {**_OPS, **_COMPARE}.items()})
    locals().update({f"__r{n}__": _reflected(op) for n, op in _OPS.items()})
    locals().update({f"__{n}__": _dunder(f"__{n}__") for n in (
        "neg", "pos", "abs", "invert", "len", "contains", "bool",
        "float", "int", "index", "complex", "round", "format", "repr", "str")})
    __hash__ = object.__hash__

    def __getattr__(self, name):  # what ArrayBox does not have: the plain array's
        if name.startswith("_"):  # a slot never set (while building one): no delegation
            raise AttributeError(name)
        return getattr(object.__getattribute__(self, "_v"), name)

    def __array__(self, dtype=None, copy=None):
        v = self._v
        if v.__class__ is np.ndarray:
            if copy:
                return np.array(v, dtype=dtype, copy=True)
            return v if dtype is None else np.asarray(v, dtype=dtype)
        return v.__array__(dtype) if copy is None else v.__array__(dtype, copy=copy)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method == "at" and inputs[0] is self and ufunc in (np.add, np.subtract) \
                and len(inputs) == 3 and _traced(_deep(inputs[1:])):
            add = scattered(self._v, _deep(inputs[1]), _deep(inputs[2]))  # CS231n's
            self[...] = (self._v + add) if ufunc is np.add else (self._v - add)  # dW
            return None  # = np.zeros(...); np.add.at(dW, x, dout)
        inputs = _deep(inputs, copy=_traced(_deep(inputs)))
        out = kwargs.get("out")
        outs = out if isinstance(out, tuple) else (out,) if out is not None else ()
        if any(o.__class__ is Preallocated for o in outs):
            if not any(isinstance(a, Box) for a in inputs):  # plain: numpy writes in place
                kwargs["out"] = tuple(_current(o) for o in outs)
                getattr(ufunc, method)(*inputs, **kwargs)
                return outs[0] if len(outs) == 1 else outs
            del kwargs["out"]
            r = getattr(ufunc, method)(*inputs, **kwargs)
            for o, v in zip(outs, r if len(outs) > 1 else (r,)):
                o[...] = v
            return outs[0] if len(outs) == 1 else outs
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        out = kwargs.get("out")
        traced = _traced(_deep(args)) or _traced(_deep(tuple(kwargs.values())))
        if func in FUNCTION_VIEWS and args and args[0] is self:  # np.transpose(out): a
            return function_view(func, args, kwargs)  # view of out, as out.transpose()
        if traced and func in IN_PLACE and args and args[0].__class__ is Preallocated:
            return write_in_place(func, args[0], _deep(args[1:]), {
                k: _deep(v) for k, v in kwargs.items()})
        args = _deep(args, copy=traced)
        if out.__class__ is Preallocated and traced:
            kwargs = {k: _deep(v, copy=True) for k, v in kwargs.items() if k != "out"}
            out[...] = func(*args, **kwargs)
            return out
        r = func(*args, **{k: _deep(v, traced and k != "out") for k, v in kwargs.items()})
        return out if out is not None and r is _current(out) else r


# ---------------------------------------------------------------------------
# np.zeros & co. while a transform runs
# ---------------------------------------------------------------------------

_local = threading.local()
_lock = threading.Lock()
_running = [0]  # threads running a transform now
_ORIGINAL = {n: getattr(np, n) for n in ("zeros", "ones", "empty", "full", "zeros_like",
                                         "ones_like", "empty_like", "full_like")}
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _library_dirs():
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    dirs.update(getattr(site, "getsitepackages", lambda: [])())
    user = getattr(site, "getusersitepackages", lambda: None)()
    if user:
        dirs.add(user)
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs) + (_PACKAGE,)


_LIBRARIES = _library_dirs()
_WRAPPERS = tuple(os.path.join(_PACKAGE, *p) for p in (
    ("transforms", "derivatives.py"), ("transforms", "check.py"), ("numpy", ""),
    ("compiler", "api.py")))  # dg.jit runs the user's f itself inside an outer transform
_PASSING = {}  # dualgrad file -> whether it only passes the user's function through
_USER = {}  # file name -> whether it is the user's own code


def _users_code(filename):
    mine = _USER.get(filename)
    if mine is None:
        mine = _USER[filename] = filename.startswith("<ipython") or not (
            filename.startswith("<frozen") or os.path.realpath(
                os.path.abspath(filename)).startswith(_LIBRARIES))
    return mine


def _wrap(a, frame, fn):
    """``a`` as a Preallocated where the user's code at ``frame`` made it by calling ``fn``
    itself in a transform; else ``a``."""
    if getattr(_local, "entries", None) and a.__class__ is np.ndarray and a.dtype.kind in _FLOAT \
            and _users_code(frame.f_code.co_filename) and _calls(frame, fn) \
            and _in_function(frame):
        return Preallocated(a)
    return a


def _in_function(frame):
    """Whether ``frame`` runs in the transformed function's own calls: walking out, the
    transform's entry comes before any frame of dualgrad's that runs rules (a primitive's
    impl, a trace, a custom rule, a solver's callback on plain values: they may hand their
    arrays to numba or C, and get numpy's).  Frames of the transforms' own wrappers
    (``check_grads``'s, ``jacfwd``'s) and of numpy functions taking callables pass."""
    entry = _local.entries[-1]
    for _ in range(200):
        if frame is None:
            return False
        if frame is entry:
            return True
        name = frame.f_code.co_filename
        if name.startswith(_PACKAGE):
            passing = _PASSING.get(name)
            if passing is None:
                passing = _PASSING[name] = name.startswith(_WRAPPERS)
            if not passing:
                return False
        frame = frame.f_back
    return False


_SITES = {}  # (code, instruction) -> the callee of the call there (an ast), or False


def _calls(frame, fn):
    """Whether the call ``frame`` is making now is a call of ``fn`` itself, read from its
    source: a C function (numpy's random generators, a Cython module) calling np.empty
    from the user's line is not, and gets numpy's array: C code may read an ndarray's
    memory without asking."""
    key = (frame.f_code, frame.f_lasti)
    callee = _SITES.get(key)
    if callee is None:
        if len(_SITES) > 4096:  # code made on the fly (exec) would pile up
            _SITES.clear()
        callee = _SITES[key] = _callee(frame)
    return callee is not False and _resolve(callee, frame) is fn


def _callee(frame):
    code = frame.f_code
    positions = getattr(code, "co_positions", None)  # Python 3.11+
    if positions is None:
        return False
    pos = next(itertools.islice(positions(), frame.f_lasti // 2, None), None)
    lines = linecache.getlines(code.co_filename, frame.f_globals)
    if not pos or None in pos or pos[1] > len(lines):
        return False
    first, last, col, end = pos
    text = [ln.encode() for ln in lines[first - 1:last]]  # columns count UTF-8 bytes
    text[-1] = text[-1][:end]
    text[0] = text[0][col:]
    try:
        tree = ast.parse(b"(" + b"".join(text) + b")", mode="eval").body
    except (SyntaxError, ValueError):
        return False
    if not isinstance(tree, ast.Call):
        return False
    f = tree.func
    while isinstance(f, ast.Attribute):
        f = f.value
    return tree.func if isinstance(f, ast.Name) else False


def _resolve(expr, frame):
    """The object a name, or a module's attribute (``np.zeros``), names in ``frame``;
    nothing is evaluated and no other object's attributes are read."""
    if isinstance(expr, ast.Name):
        code, name = frame.f_code, expr.id
        if name in code.co_varnames or name in code.co_cellvars or name in code.co_freevars:
            return frame.f_locals.get(name)
        if name in frame.f_globals:
            return frame.f_globals[name]
        return getattr(frame.f_builtins, "get", lambda n: None)(name)
    base = _resolve(expr.value, frame)
    return getattr(base, expr.attr, None) if isinstance(base, types.ModuleType) else None


def _made(fn):
    @functools.wraps(fn)
    def make(*args, **kw):
        return _wrap(fn(*args, **kw), sys._getframe(1), make)
    return make


def _full(fn):
    @functools.wraps(fn)
    def full(shape, fill_value, dtype=None, *args, **kw):
        fill_value = _current(fill_value)
        if isinstance(fill_value, Box) and getattr(_local, "entries", None) and "like" not in kw:
            a = _wrap(_ORIGINAL["zeros"](shape, P.float_dtype(fill_value) if dtype is None
                                         else dtype), sys._getframe(1), full)
            if a.__class__ is not Preallocated:
                return fn(shape, fill_value, dtype, *args, **kw)  # numpy's refusal
            a[...] = fill_value
            return a
        return _wrap(fn(shape, fill_value, dtype, *args, **kw), sys._getframe(1), full)
    return full


def _full_like(fn):
    @functools.wraps(fn)
    def full_like(a, fill_value, *args, **kw):
        a, fill_value = _current(a), _current(fill_value)
        if isinstance(fill_value, Box) and getattr(_local, "entries", None) \
                and not isinstance(a, Box):
            out = _wrap(_ORIGINAL["zeros_like"](a, *args, **kw), sys._getframe(1), full_like)
            if out.__class__ is not Preallocated:
                return fn(a, fill_value, *args, **kw)  # numpy's refusal
            out[...] = fill_value
            return out
        return _wrap(fn(a, fill_value, *args, **kw), sys._getframe(1), full_like)
    return full_like


_REPLACED = {n: (_full if n == "full" else _full_like if n == "full_like" else _made)(f)
             for n, f in _ORIGINAL.items()}
for _n, _f in _REPLACED.items():  # numpy hands like= calls over as the name it finds now
    for _table in (HANDLED, LIKE):
        if _ORIGINAL[_n] in _table:
            _table[_f] = _table[_ORIGINAL[_n]]




# numba compiles what it meets when it is first called, maybe while a transform runs (a
# kernel tuned on first use, dg.jit's fused loops, the user's own @njit code in another
# thread): it reads ``np.empty`` then, and must see numpy's function in what it compiles.
def _no_dtype(t):
    return t is None or isinstance(t, (numba_types.NoneType, numba_types.Omitted))


def _numba_shape(original):
    def typer(shape, dtype=None):
        if _no_dtype(dtype):
            return lambda shape, dtype=None: original(shape)
        return lambda shape, dtype=None: original(shape, dtype)
    return typer


def _numba_full(original):
    def typer(shape, fill_value, dtype=None):
        if _no_dtype(dtype):
            return lambda shape, fill_value, dtype=None: original(shape, fill_value)
        return lambda shape, fill_value, dtype=None: original(shape, fill_value, dtype)
    return typer


if overload is not None:
    for _n, _f in _REPLACED.items():
        overload(_f)((_numba_full if _n.startswith("full") else _numba_shape)(_ORIGINAL[_n]))

_numba_ready = overload is None  # without numba: nothing to get ready


def _ready_numba():
    """numba registers its np.empty & co. when it first compiles (importing
    numba.np.arrayobj, whose ``@overload(np.empty)`` reads ``np.empty`` then): that must
    happen before the first swap, or numba would know only our functions (~0.07 s, once;
    the first compile pays it anyway)."""
    global _numba_ready
    import numba.np.arrayobj  # noqa: F401  # optional: numba's numpy, registered unswapped
    _numba_ready = True


_NUMPY = np.__dict__
_ZEROS = _REPLACED["zeros"]


def enter(frame):
    """This thread starts running a user's function under a transform, called from
    ``frame`` (``call``'s: the walk out from the user's code in ``_in_function`` ends
    there)."""
    entries = getattr(_local, "entries", None)
    if entries:  # a transform inside the user's function
        entries.append(frame)
        return
    _local.entries = [frame]
    with _lock:
        _running[0] += 1
        if _running[0] == 1:
            if not _numba_ready:
                _ready_numba()
            _NUMPY.update(_REPLACED)


def leave():
    """This thread's user's function returned (or raised)."""
    entries = _local.entries
    entries.pop()
    if not entries:
        with _lock:
            _running[0] -= 1
            if _running[0] == 0:
                if _NUMPY.get("zeros") is _ZEROS:  # (unless someone replaced it since)
                    _NUMPY.update(_ORIGINAL)


def call(f, args, kwargs):
    """``f(*args, **kwargs)`` as a transform calls the user's function: ``np.zeros`` & co.
    in it give Preallocated arrays (``enter``, ``leave``), and an error a traced value caused
    (a write into a plain array, a library function meeting it) is raised as the one that
    says the fix (``inplace.refusal``)."""
    try:
        enter(sys._getframe())
        try:
            with gc_paused():
                return f(*args, **kwargs)
        finally:
            leave()
    except (TypeError, ValueError, AttributeError, RuntimeError) as e:
        fix = refusal(e)
        if fix is None:
            raise
        raise fix from e
