"""Recording a function as a graph: ``GraphTrace``, the trace ``dg.jit`` runs ``f`` on.

A ``GraphTrace`` is a trace like ``Tape`` whose boxes (``Var``) carry concrete values, so
Python control flow works while recording; each primitive becomes one ``Op`` of a
``Graph`` (graph.py), computed as it is recorded.

**Guards.** What Python reads from a traced value is recorded with it: ``bool()`` of a
comparison (``if x > 0``, ``while err > tol``) records a ``bool`` guard; ``int()``,
``float()``, ``.item()`` and ``range(n)`` an ``exact`` guard, and so does any raw value
Python reads in a derivative rule (``unbox`` hands rules a ``Concrete`` value that notes
the read).  What a rule computes from raw values with numpy (``np.sign(x)`` for ``abs``,
``x == max`` for ``max``'s ties) is recorded as graph nodes instead (``raw_call``), and so
is an integer index array argument, read with (the ``gather`` row) or written with
(``y[rows, labels] = v``, ``np.add.at``: the ``scatter_set`` and ``scatter`` rows): replays
compute them anew.
A value of an outer trace met while recording (captured by a closure) raises ``Foreign``,
and a recording past ``max_ops`` ops ``TooLong``: ``dg.jit`` then runs ``f`` eagerly.

    >>> import numpy as np
    >>> from dualgrad import rules
    >>> t = GraphTrace()
    >>> x = t.input(np.arange(3.0))
    >>> y = t.process(rules.TABLE["multiply"], (x, 2.0), None)
    >>> print(t.graph([y.index], None))
    v0 = input     float64[3]
    v1 = v0 * 2.0  float64[3]
    out = v1
    >>> t.finish()  # a trace counts as recording until it finishes
"""

import functools
import linecache
import operator
import os
import sys

import numpy as np

from ..backend import is_foreign_array
from ..core.trace import Box, Primitive, Trace, kept, unbox
from ..numpy.box import SHARED_READS, ArrayBox
from .graph import Const, Graph, Op

MAX_OPS = 5_000_000  # a recording past this many ops (~3 GB) is abandoned: it runs eagerly


def _max_bytes():
    """The default bound on a recording's values: a quarter of this machine's memory, at
    most 4 GiB (a count of bytes, the same wherever the memory is the same)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        ram = 16 << 30
    return min(4 << 30, ram // 4)


#: A recording whose values (arrays that own their memory; views are their base's) pass
#: this many bytes is abandoned: it runs eagerly.  A loop writing entry by entry into a
#: preallocated array records a copy of the array per write (the CS231n naive conv loops,
#: 8,192 writes into a 64 kB array, record 1.6 GB; eager dualgrad writes in place, 36 MB).
MAX_BYTES = _max_bytes()

#: With the default ``max_bytes``, a recording is also abandoned past ``WIDE_BYTES`` of
#: values that average ``WIDE_OP`` bytes or more per operation (GradBench's ode at 10^5
#: unknowns and 100 steps: 650 kB per operation; its det at 11x11: 23 MB).  A recording
#: keeps every value, forward and reverse, until its graph is built, where eager dualgrad
#: frees each cotangent as its sweep passes it: twice eager's peak, 3.9 GB against 1.7 GB
#: for that ode.  Small values in large numbers (the naive conv's 12 kB per operation)
#: are the programs a replay pays for most, and record up to ``max_bytes``.
WIDE_BYTES = 1 << 30
WIDE_OP = 1 << 18

#: After a recording of this many bytes of values is dropped (built, or abandoned), the
#: process gives the freed memory back to the kernel (core.buffers.give_back): glibc would
#: keep it, and the process's peak would carry it into every later call.
GIVE_BACK = 1 << 28

# frames inside these packages are not the user's: a guard's site is the first frame outside
_SKIP = tuple(os.path.dirname(os.path.dirname(m.__file__)) + os.sep
              for m in (sys.modules["dualgrad.compiler"], np))


class Site:
    """Where a guard was recorded (the user's file and line: the innermost frame outside
    dualgrad and numpy) and what Python read there (``bool()``, ``int()``, an index
    array's values...); ``name`` is the argument read, where the value is one.  A label
    for the retrace warning, not part of the guard's identity (``cse`` still merges equal
    guards)."""

    __slots__ = ("file", "line", "what", "index", "name")

    def __init__(self, what, index):
        self.what, self.index, self.name = what, index, None
        self.file, self.line = "<unknown>", 0
        f = sys._getframe(2)
        while f is not None:
            fn = f.f_code.co_filename
            if not fn.startswith(_SKIP) and not fn.startswith("<frozen"):
                self.file, self.line = fn, f.f_lineno
                break
            f = f.f_back

    __eq__ = lambda self, other: other.__class__ is Site  # noqa: E731
    __hash__ = lambda self: 0  # noqa: E731

    def __lt__(self, other):
        return False

    def __str__(self):
        what = f"{self.what}: {self.name}" if self.name else self.what
        return f"{os.path.basename(self.file)}:{self.line} ({what})"

    def source(self):
        """The line of source the guard was recorded at, stripped ('' if unknown)."""
        return linecache.getline(self.file, self.line).strip()

    def __repr__(self):
        return f"Site({self})"


_WHAT = {"bool": "bool()", "int": "int()", "float": "float()", "index": "its use as an "
         "integer (an index, a size, range())", "item": ".item()", "complex": "complex()"}


def _what_read(raw):
    """What a read of raw values (a rule's ``unbox``, numpy converting a value) reads."""
    dt = getattr(raw, "dtype", None)
    if dt is not None and np.ndim(raw) > 0 and dt.kind in "iub":
        return "an index array's values"
    return "a raw value a derivative rule reads"


class TooLong(Exception):
    """The recording passed ``max_ops`` ops (an unrolled loop of unbounded length)."""


class TooLarge(Exception):
    """The recording's values passed ``max_bytes`` bytes (``wide``: or ``WIDE_BYTES`` of
    values averaging ``WIDE_OP`` bytes per operation)."""

    def __init__(self, wide=False):
        super().__init__()
        self.wide = wide


class Foreign(Exception):
    """Recording met a value traced by an outer transform (captured by a closure): the
    graph could not be replayed without it, so this call runs eagerly."""


# comparisons recorded as graph nodes (no derivative: their results are booleans)
COMPARE = {op: Primitive(name, op, bcast=True, scalar=f"({{}} {sym} {{}})".format)
           for op, name, sym in (
    (operator.lt, "less", "<"), (operator.le, "less_equal", "<="),
    (operator.gt, "greater", ">"), (operator.ge, "greater_equal", ">="),
    (operator.eq, "equal", "=="), (operator.ne, "not_equal", "!="))}


def _logical(op, swap=False):
    """``&``, ``|``, ``^`` of recorded masks (a rule's ``(_raw(y) == 0) & (_raw(x) == 0)``):
    a node too; boxes of differentiating traces have no such operators."""
    prim = Primitive(op.__name__.strip("_"), op)

    def method(self, other):
        v = self._trace.raw_call(prim, (other, self) if swap else (self, other))
        if v is NotImplemented:
            raise TypeError(f"unsupported operand type(s) for {op.__name__}: a traced value "
                            f"and {type(other).__name__}")
        return v
    return method


class Var(ArrayBox):
    """A value recorded on a graph; ``index`` is its value number.  Beside the Box's
    operators it has the logical ones, recorded as graph nodes."""

    __slots__ = ("index",)

    __and__, __rand__ = _logical(operator.and_), _logical(operator.and_, swap=True)
    __or__, __ror__ = _logical(operator.or_), _logical(operator.or_, swap=True)
    __xor__, __rxor__ = _logical(operator.xor), _logical(operator.xor, swap=True)

    def __invert__(self):
        return self._trace.raw_call(Primitive("invert", operator.invert), (self,))

    def __array__(self, dtype=None, copy=None):
        """numpy converting a recorded integer or boolean array (an index: ``plain[idx, y]
        = 1``, ``plain[mask]``), or any value to a float dtype (stored into a plain array:
        ``plain[idx] = v``): its values, as eager numpy uses them without a transform, kept
        as an exact guard; else as ArrayBox converts it (an object array of its entries).
        Only a bare ``Var`` (``dg.jit`` alone) comes here: under ``jit(grad(f))`` the
        derivative's box refuses the write as eager ``grad`` does."""
        raw, t = self.value, self._trace
        if t.active and _is_array(raw):
            if raw.dtype.kind in "iub" and (dtype is None or np.dtype(dtype).kind in "iub"):
                t.note_read(self.index, raw, "an index array's values")
                return np.array(raw, dtype) if copy or dtype is not None else np.asarray(raw)
            if dtype is not None and np.dtype(dtype).kind in "fc":
                # stored into a plain float array (plain[idx] = v): no derivative is traced
                # at this level, so the values are what eager numpy stores, guarded
                t.note_read(self.index, raw, "its values stored into a plain array")
                return np.array(raw, dtype)
        return ArrayBox.__array__(self, dtype, copy)


SHARED_READS.add(Var)  # a derivative's w[f] read again: one value, as in eager grad
_new = object.__new__


class GraphTrace(Trace):
    """A graph being recorded (``dg.jit``): ``process`` appends one ``Op`` per primitive and
    computes its value, as ``Tape.process`` does."""

    __slots__ = ("ops", "reads", "guarded", "max_ops", "sites", "kept", "max_bytes", "nbytes",
                 "wide")

    def __init__(self, max_ops=MAX_OPS, max_bytes=MAX_BYTES):
        super().__init__()
        self.max_ops = max_ops
        self.max_bytes, self.nbytes = max_bytes, 0  # bytes of the values recorded so far
        # past this many bytes, values of WIDE_OP bytes per operation stop the recording
        # too (the default budget only: a max_bytes the caller chose is the whole bound)
        self.wide = WIDE_BYTES if max_bytes is MAX_BYTES else None
        self.ops = []
        self.reads = {}     # value number -> its raw value, read by Python (exact guards)
        self.guarded = set()
        self.sites = []     # every guard's Site (api.py names the arguments among them)
        self.kept = {}      # large constants, kept once (core.trace.kept)

    def _site(self, what, index):
        s = Site(what, index)
        self.sites.append(s)
        return s

    def note_read(self, index, raw, what=None):
        """Python reads the raw values of graph value ``index``: an exact guard, with the
        site of its first read."""
        if index not in self.reads:
            self.reads[index] = (raw, self._site(what or _what_read(raw), index))

    def input(self, value):
        v = _new(Var)
        v.value, v._trace, v.index = value, self, len(self.ops)
        self.ops.append(Op("input", None, (), None, value))
        return v

    def _arg(self, a, refs, vals):
        c = a.__class__
        if c is Var and a._trace is self:
            refs.append(a.index)
            vals.append(a.value)
        elif c is Concrete and a.trace is self:  # a raw value a rule took from us: a ref
            refs.append(a.index)
            vals.append(a.raw)
        else:
            if isinstance(a, Box) or c is Concrete:
                raise Foreign()
            if c is np.ndarray:
                a = kept(a, self.kept)  # as it is now: the function may write into it later
            refs.append(Const(a))
            vals.append(a)

    def process(self, prim, args, kw):
        refs, vals = [], []
        for a in args:
            self._arg(a, refs, vals)
        ans = prim.impl(*vals, **kw) if kw else prim.impl(*vals)
        return self._push("op", prim, refs, kw or None, ans)

    def _push(self, kind, prim, refs, kw, ans):
        if len(self.ops) >= self.max_ops:
            raise TooLong()
        if ans.__class__ is np.ndarray and ans.base is None:
            self.nbytes += ans.nbytes
            if self.max_bytes is not None and self.nbytes > self.max_bytes:
                raise TooLarge()
            if self.wide is not None and self.nbytes > self.wide \
                    and self.nbytes >= WIDE_OP * len(self.ops):
                raise TooLarge(wide=True)
        v = _new(Var)
        v.value, v._trace, v.index = ans, self, len(self.ops)
        self.ops.append(Op(kind, prim, tuple(refs), kw, ans))
        return v

    def call_opaque(self, fn, args):
        """``fn(*args)`` as one node (a ``custom_vjp``): replay calls ``fn`` itself, so an
        outer ``grad`` of the jitted function meets ``fn``'s own rule."""
        refs, vals = [], []
        for a in args:
            self._arg(a, refs, vals)
        ans = fn(*vals)
        if isinstance(ans, Box):
            raise Foreign()
        return self._push("call", Primitive(getattr(fn, "__name__", "call"), fn), refs, None,
                          ans)

    # -- what Python reads from a traced value (numpy_api.py and core.unbox call these) --
    def read(self, box):
        """``unbox`` of one of our values, while recording: a ``Concrete`` that notes a
        read of the value (an exact guard) unless only its shape or dtype is looked at."""
        if not self.active:
            return unbox(box.value)
        c = _new(Concrete)
        c.raw, c.trace, c.index = box.value, self, box.index
        return c

    def raw_call(self, prim, args, kind="raw"):
        """``prim.impl(*args)`` on raw values of this graph (a derivative rule's mask,
        ``_raw(x) == 0``, ``np.sign(_raw(x))``) as a node of the graph: replays compute it
        from the new values, where reading the old ones would guard on them bit for bit
        (and, on a device, copy them to the host).  The node's value comes back as a
        ``Var``; ``NotImplemented`` where it cannot be a node (an argument nests recorded
        values, or the result is not an array): then the caller reads the values."""
        refs, vals = [], []
        for a in args:
            c = a.__class__
            if c is Concrete and a.trace is self:
                refs.append(a.index)
                vals.append(a.raw)
            elif c is Var and a._trace is self:
                refs.append(a.index)
                vals.append(a.value)
            elif c is Concrete or isinstance(a, Box) or _nests(a):
                return NotImplemented
            else:
                if c is np.ndarray:
                    a = kept(a, self.kept)  # as it is now (see _arg)
                refs.append(Const(a))
                vals.append(a)
        ans = prim.impl(*vals)
        if not _is_array(ans):
            return NotImplemented
        return self._push(kind, prim, refs, None, ans)

    def _own(self, x):
        """x with the derivative levels above our own stripped (comparisons, bool(): no
        derivative); a raw value stays raw."""
        while isinstance(x, Box) and x._trace is not self:
            if x._trace.level < self.level:
                raise Foreign()
            x = x.value
        return x

    def compare(self, op, a, b):
        return COMPARE[op](self._own(a), self._own(b))

    def guard(self, how, box):
        """``bool()`` (how="bool") or ``int()``/``float()``/``.item()`` (how="exact") of a
        traced value: the concrete answer, recorded as a guard on the value."""
        x = self._own(box)
        raw = x.value if x.__class__ is Var else x
        if how == "bool":
            ans = bool(raw)
        else:
            ans = raw
            raw = {"int": int, "float": float, "index": operator.index,
                   "item": lambda r: r.item() if hasattr(r, "item") else r,
                   "complex": complex}[how](raw)
        if x.__class__ is Var:
            kind = "bool" if how == "bool" else "exact"
            self.ops.append(Op("guard", None, (x.index,),
                               {"how": kind, "site": self._site(_WHAT[how], x.index)}, ans))
        return ans if how == "bool" else raw

    def graph(self, outputs, odef):
        """The recorded graph; every raw value Python read gets an exact guard just after
        the op that made it (replay checks it as early as possible)."""
        if not self.reads:  # nothing to insert: the ops as recorded, numbered as they are
            inputs = [i for i, op in enumerate(self.ops) if op.kind == "input"]
            return Graph(self.ops, inputs, list(outputs), odef)
        ops = []
        m = {}
        after = {}
        for i, read in self.reads.items():
            after.setdefault(i, []).append(read)
        for i, op in enumerate(self.ops):
            m[i] = len(ops)
            ops.append(Op(op.kind, op.prim, tuple(m[a] if a.__class__ is int else a
                                                  for a in op.args), op.kw, op.ans))
            if op.kind == "guard":
                m.pop(i)
            for raw, site in after.get(i, ()):
                ops.append(Op("guard", None, (m[i],), {"how": "exact", "site": site}, raw))
        inputs = [m[i] for i, op in enumerate(self.ops) if op.kind == "input"]
        outs = [m[a] if a.__class__ is int else a for a in outputs]
        return Graph(ops, inputs, outs, odef)


class Concrete:
    """The raw value of graph value ``index``, as ``unbox`` hands it to a derivative rule
    while a graph is recorded.  Its shape and dtype are free to look at; anything that
    reads the numbers (arithmetic, comparisons, a numpy function, ``bool``, conversion to
    an array) marks the value read, and the graph then guards it bit for bit: the rule's
    mask was computed from these numbers, so the graph holds only for them.  Passed back
    into a primitive it is the graph value itself, not a constant."""

    __slots__ = ("raw", "trace", "index")

    shape = property(lambda self: np.shape(self.raw))
    ndim = property(lambda self: np.ndim(self.raw))
    size = property(lambda self: np.size(self.raw))
    dtype = property(lambda self: np.result_type(self.raw))
    __dualgrad_raw__ = property(lambda self: self.raw)  # where it lives (not a read)

    def __dualgrad_record__(self, fn, args):  # core.raw_apply: fn(*args) as a node
        return self.trace.raw_call(Primitive(getattr(fn, "__name__", "raw"), fn), args)

    def read(self):
        if self.index not in self.trace.reads:
            self.trace.note_read(self.index, self.raw)
        return self.raw

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.read(), dtype)

    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        if method == "__call__" and "out" not in kw and not _nests(kw):
            fn = functools.partial(ufunc, **kw) if kw else ufunc
            v = self.trace.raw_call(Primitive(ufunc.__name__, fn), inputs)
            if v is not NotImplemented:
                return v
        inputs = [_read(x) for x in inputs]
        if "out" in kw:
            kw["out"] = tuple(_read(x) for x in kw["out"])
        return getattr(ufunc, method)(*inputs, **kw)

    def __array_function__(self, func, types, args, kwargs):
        peek = func in _SHAPE_ONLY
        if not peek and not _nests(kwargs):
            fn = functools.partial(func, **kwargs) if kwargs else func
            v = self.trace.raw_call(Primitive(func.__name__, fn), args)
            if v is not NotImplemented:
                return v
        return func(*_deep(args, peek), **_deep(kwargs, peek))

    def __getattr__(self, name):
        return getattr(self.read(), name)

    def __bool__(self):
        return bool(self.read())

    def __float__(self):
        return float(self.read())

    def __int__(self):
        return int(self.read())

    def __index__(self):
        return operator.index(self.read())

    def __complex__(self):
        return complex(self.read())

    def __len__(self):
        return len(self.raw)

    def __iter__(self):
        return iter(self.read())

    def __getitem__(self, key):
        if not _nests(key):
            v = self.trace.raw_call(Primitive("getitem", operator.getitem), (self, key))
            if v is not NotImplemented:
                return v
        return self.read()[_read(key)]

    def __format__(self, spec):
        return format(self.raw, spec)  # printing happens while recording only

    def __repr__(self):
        return f"Concrete({self.raw!r})"

    __hash__ = None


# numpy functions that look only at shapes and dtypes
_SHAPE_ONLY = frozenset((np.shape, np.ndim, np.size, np.result_type, np.zeros_like,
                         np.ones_like, np.empty_like, np.iscomplexobj, np.isrealobj,
                         np.can_cast, np.min_scalar_type))


def _is_array(x):
    return x.__class__ is np.ndarray or isinstance(x, np.generic) or is_foreign_array(x)


def _read(x):
    return x.read() if x.__class__ is Concrete else x


def _nests(x):
    """Whether a container (a key, keyword arguments) holds a recorded value."""
    c = x.__class__
    if c is Concrete or isinstance(x, Box):
        return True
    if c in (tuple, list):
        return any(_nests(v) for v in x)
    if c is dict:
        return any(_nests(v) for v in x.values())
    return False


def _deep(x, peek):
    c = x.__class__
    if c is Concrete:
        return x.raw if peek else x.read()
    if c in (tuple, list):
        return c(_deep(v, peek) for v in x)
    if c is dict:
        return {k: _deep(v, peek) for k, v in x.items()}
    return x


def _binop(op, swap=False):
    """Concrete's operator ``op``: recorded as a node (a comparison as the COMPARE row,
    which fused kernels compute), else computed from a read of the values."""
    prim = COMPARE.get(op) or Primitive(op.__name__.strip("_"), op)
    kind = "op" if op in COMPARE else "raw"

    def method(self, other):
        args = (other, self) if swap else (self, other)
        v = self.trace.raw_call(prim, args, kind)
        return op(*map(_read, args)) if v is NotImplemented else v
    return method


for _name, _fn in dict(add=operator.add, sub=operator.sub, mul=operator.mul,
                       truediv=operator.truediv, floordiv=operator.floordiv,
                       mod=operator.mod, pow=operator.pow, matmul=operator.matmul,
                       and_=operator.and_, or_=operator.or_, xor=operator.xor).items():
    _n = _name.rstrip("_")
    setattr(Concrete, f"__{_n}__", _binop(_fn))
    setattr(Concrete, f"__r{_n}__", _binop(_fn, swap=True))
for _name, _fn in dict(lt=operator.lt, le=operator.le, gt=operator.gt, ge=operator.ge,
                       eq=operator.eq, ne=operator.ne).items():
    setattr(Concrete, f"__{_name}__", _binop(_fn))
for _name, _fn in dict(neg=operator.neg, pos=operator.pos, abs=operator.abs,
                       invert=operator.invert).items():
    setattr(Concrete, f"__{_name}__", (lambda fn: lambda self: fn(self.read()))(_fn))
