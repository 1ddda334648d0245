"""``dg.jit``: record a function once per signature as a graph, optimise it, replay it.

    >>> import numpy as np, dualgrad as dg
    >>> f = dg.jit(lambda x: np.sin(x) * 2.0 * 2.0)
    >>> float(f(0.5)) == float(np.sin(0.5) * 4.0)
    True
    >>> f.trace_count
    1

The first call with a new *signature* (pytree structure, each array's shape and dtype, each
Python scalar's type, the static arguments' values) runs ``f`` on a ``GraphTrace``: a trace
like ``Tape`` whose boxes (``Var``) carry concrete values, so Python control flow works
while recording.  Each primitive becomes one ``Op`` of a ``Graph`` (jit_graph.py); the
passes of jit_passes.py optimise it, and one generated straight-line Python function
replays it.  Later calls with that signature run the replay and never call ``f``: a Python
side effect in ``f`` (a print, appending to a list) happens only while recording, as in JAX.

**Guards.** What Python reads from a traced value is recorded with it: ``bool()`` of a
comparison (``if x > 0``, ``while err > tol``) records a ``bool`` guard; ``int()``,
``float()``, ``.item()`` and ``range(n)`` an ``exact`` guard, and so does any raw value
Python reads in a derivative rule (``unbox`` hands rules a ``Concrete`` value that notes
the read).  What a rule computes from raw values with numpy (``np.sign(x)`` for ``abs``,
``x == max`` for ``max``'s ties) is recorded as graph nodes instead (``raw_call``), and so
is an integer index array argument (the ``gather`` row): replays compute them anew.
Replay checks every guard and on a mismatch records again for the new pattern, caching
both.  After
``retrace_limit`` (8) such retraces the function warns once and runs eagerly from then on:
a jitted function never returns a result computed on the wrong branch.

**Composition.** ``jit(grad(f))``, ``jit(hessian(f))``... record the forward pass and the
reverse sweep together (the rules are primitives), and the optimiser sees both.  A jitted
function called on traced values (``grad(jit(f))``, ``jvp(jit(f))``, a jit inside a jit)
replays its graph one primitive at a time through the tracing machinery (``run_traced``),
so the outer transforms differentiate the graph's own primitives: its rules are derived
from the graph.  Where the graph cannot be used (no graph yet for that signature, a guard
fails, a value of an outer trace was captured) it runs ``f`` itself.
"""

import collections
import functools
import gc
import operator
import threading
import warnings

import numpy as np

from ..backend import is_foreign_array
from ..core.trace import Box, Primitive, Trace, unbox
from ..core.tree import tree_flatten, tree_unflatten
from ..core.validate import check_not_a_dataclass
from ..numpy.box import ArrayBox
from .fuse import MODES, FusionError, compile_regions, fuse, mode_default, target
from .graph import MISS, Const, Graph, Op, compile_graph, evaluate, run_traced, same
from .passes import PIPELINE, optimise

RETRACE_LIMIT = 8
MAX_OPS = 5_000_000  # a recording past this many ops (~3 GB) is abandoned: it runs eagerly
MAX_SIGNATURES = 64  # signatures a jitted function keeps compiled (least recently used go)
_LEAF_DEF = tree_flatten(0.0)[1]


class TooLong(Exception):
    """The recording passed ``max_ops`` ops (an unrolled loop of unbounded length)."""


class Foreign(Exception):
    """Recording met a value traced by an outer transform (captured by a closure): the
    graph could not be replayed without it, so this call runs eagerly."""


# comparisons recorded as graph nodes (no derivative: their results are booleans)
COMPARE = {op: Primitive(name, op, bcast=True, scalar=f"({{}} {sym} {{}})".format)
           for op, name, sym in (
    (operator.lt, "less", "<"), (operator.le, "less_equal", "<="),
    (operator.gt, "greater", ">"), (operator.ge, "greater_equal", ">="),
    (operator.eq, "equal", "=="), (operator.ne, "not_equal", "!="))}


class Var(ArrayBox):
    """A value recorded on a graph; ``index`` is its value number."""

    __slots__ = ("index",)


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


for _n, _fn in dict(and_=operator.and_, or_=operator.or_, xor=operator.xor).items():
    setattr(Var, f"__{_n.strip('_')}__", _logical(_fn))
    setattr(Var, f"__r{_n.strip('_')}__", _logical(_fn, swap=True))
Var.__invert__ = lambda self: self._trace.raw_call(Primitive("invert", operator.invert), (self,))


_new = object.__new__


class GraphTrace(Trace):
    """A graph being recorded (``dg.jit``): ``process`` appends one ``Op`` per primitive and
    computes its value, as ``Tape.process`` does."""

    __slots__ = ("ops", "reads", "guarded", "max_ops")

    def __init__(self, max_ops=MAX_OPS):
        super().__init__()
        self.max_ops = max_ops
        self.ops = []
        self.reads = {}     # value number -> its raw value, read by Python (exact guards)
        self.guarded = set()

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
            self.ops.append(Op("guard", None, (x.index,), {"how": kind}, ans))
        return ans if how == "bool" else raw

    def graph(self, outputs, odef):
        """The recorded graph; every raw value Python read gets an exact guard just after
        the op that made it (replay checks it as early as possible)."""
        ops = []
        m = {}
        after = {}
        for i, raw in self.reads.items():
            after.setdefault(i, []).append(raw)
        for i, op in enumerate(self.ops):
            m[i] = len(ops)
            ops.append(Op(op.kind, op.prim, tuple(m[a] if a.__class__ is int else a
                                                  for a in op.args), op.kw, op.ans))
            if op.kind == "guard":
                m.pop(i)
            for raw in after.get(i, ()):
                ops.append(Op("guard", None, (m[i],), {"how": "exact"}, raw))
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
        self.trace.reads[self.index] = self.raw
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


# ---------------------------------------------------------------------------
# the signature of a call
# ---------------------------------------------------------------------------

def _leaf_key(x):
    while isinstance(x, Box):  # under an outer transform: the signature of the raw value
        x = x.value
    c = x.__class__
    if c is np.ndarray:
        return (x.shape, x.dtype.str)
    if c in (float, int, bool, complex):
        return c
    if isinstance(x, np.generic):
        return (c, ())
    if is_foreign_array(x):  # a device array (CuPy): traced like numpy's, its class keyed
        return (c, x.shape, x.dtype.str)
    return None  # not an array: a constant of the graph, its value part of the key


class Compiled:
    """One recorded graph; optimised and compiled to its replay function on first use.

    The call that records a graph already has its result (recording computes it), so the
    passes and the code generation wait for the first replay (as TinyJit captures on the
    second call): a function called once with a signature never pays for them."""

    __slots__ = ("raw", "fast_math", "passes", "codegen", "_graph", "_summary", "replay",
                 "kernels", "fused", "finish", "kept", "lean", "_lock", "used")

    def __init__(self, raw, fast_math, passes, codegen, lean=False, keep_values=True):
        self.raw, self.fast_math, self.passes, self.codegen = raw, fast_math, passes, codegen
        self._graph = None
        self.replay = self._first  # ``replay(*leaves)``: the flat outputs, or MISS
        odef = raw.odef  # ``finish(flat)``: the result the caller gets
        self.finish = _first_leaf if odef == _LEAF_DEF else (
            tuple if odef[0] is tuple and all(c == _LEAF_DEF for c in odef[2])
            else functools.partial(_unflatten, odef))
        # Memory (a jitted function's cache): ``lean`` keeps after the build only what replay
        # needs, the optimised graph's structure, constants, guards and kernels
        # (``Graph.drop_values``); ``keep_values`` False drops the recorded values at once
        # and computes them again from the first replay's own leaves, for the passes and
        # the kernels' checks, so a signature called once holds no intermediate either.
        self.kept, self.lean = keep_values, lean
        self.used = False  # replayed since the cache's last eviction pass (Jitted._evict)
        self._lock = threading.Lock()
        if not keep_values:
            raw.drop_values()

    def _first(self, *leaves):
        with self._lock:  # threads meeting an unbuilt graph: one builds, the rest wait
            if self.replay != self._first:
                return self.replay(*leaves)
            if self.kept:
                self._build()
                return self.replay(*leaves)
            vals = evaluate(self.raw, leaves)  # what recording computed, from these leaves
            if vals is MISS:
                return MISS
            outs = []
            for a in self.raw.outputs:  # never an alias of a leaf or a Const
                v = vals[a] if a.__class__ is int else a.value
                if _is_array(v) and not isinstance(v, np.generic) and (
                        a.__class__ is Const or self.raw.ops[a].kind == "input"):
                    v = v.copy()
                outs.append(v)
            for op, v in zip(self.raw.ops, vals):
                if op.kind != "guard":
                    op.ans = v
            self.kept = True
            self._build()
            return outs

    def _build(self):
        if not self.kept:  # the passes compare rewrites against the recorded values
            raise RuntimeError("dg.jit internal error: a graph built without its values")
        self._graph, self._summary = optimise(self.raw, self.passes, self.fast_math)
        where = target(self._graph)
        if where == "cuda":
            from . import emit_cuda as jit_cuda  # optional: numba-cuda, for graphs of GPU arrays
            self.kernels = compile_regions(self._graph, self.codegen, jit_cuda.build)
        else:
            self.kernels = compile_regions(self._graph, self.codegen if where else "off")
        try:
            self.fused = fuse(self._graph, self.kernels)
        except FusionError as e:  # never a wrong order: replay the graph as it is
            warnings.warn(f"{e}; replaying without fused kernels", RuntimeWarning,
                          stacklevel=3)
            self.kernels, self.fused = [], self._graph
        self.replay = compile_graph(self.fused, copies=_copies(self.raw, self._graph))
        if self.lean:  # replay needs none of the values: they go now
            self.kept = False
            self._graph.drop_values()
            self.fused = None
            self.raw = None

    @property
    def graph(self):
        """The optimised graph; before the first replay of a graph whose values were
        dropped, the graph as recorded (outer transforms replay either one primitive at a
        time: ``run_traced``)."""
        if self._graph is None:
            if not self.kept:
                return self.raw
            self._build()
        return self._graph

    @property
    def summary(self):
        if self._graph is None:
            self._build()
        return self._summary



def _first_leaf(out):
    return out[0]


def _unflatten(odef, out):
    return tree_unflatten(odef, list(out))


def _copies(before, after):
    """Output positions the optimiser turned into an input or a constant array: replay
    copies them, so the caller never gets an alias of its argument or of the graph."""
    out = set()
    for k, (a, b) in enumerate(zip(before.outputs, after.outputs)):
        if b.__class__ is Const:
            if _is_array(b.value) and not isinstance(b.value, np.generic):
                out.add(k)
        elif after.ops[b].kind == "input" and (a.__class__ is Const
                                               or before.ops[a].kind != "input"):
            if _is_array(after.ops[b].ans) and not isinstance(after.ops[b].ans, np.generic):
                out.add(k)
    return out


class Lowered:
    """What ``jit(f).lower(*args)`` returns: the graph ``before`` and ``after`` the passes,
    the ``summary`` of what each pass removed, the ``fused`` graph (each fusion region one
    node), the numba source of each of its ``kernels``, and the generated replay
    ``source`` that calls them."""

    def __init__(self, compiled):
        self.before, self.after = compiled.raw, compiled.graph
        self.summary = compiled.summary
        compiled.graph  # noqa: B018 - builds it
        self.source = compiled.replay.source
        self.fused = compiled.fused
        self.kernels = [k.source for k in compiled.kernels if k.fn is not None]

    def summary_text(self):
        s = self.summary
        words = {"fold": "folded", "uniform": "constants made scalar",
                 "simplify": "simplified", "layout": "reshapes collapsed",
                 "broadcast": "broadcasts dropped", "cse": "CSE'd", "dce": "dead"}
        parts = [f"{s[k]} {words[k]}" for k in s]
        return (f"{len(self.before)} ops -> {len(self.after)} ops ({', '.join(parts)}); "
                f"{self.after.guards} guard(s); {len(self.kernels)} fused kernel(s)")

    def as_dot(self):
        return self.after.as_dot()

    def __str__(self):
        return (f"before ({len(self.before)} ops):\n{self.before}\n\n"
                f"after ({len(self.after)} ops):\n{self.after}\n\n{self.summary_text()}")


class Jitted:
    """``jit(f)``: call it like ``f``.  ``trace_count`` counts recordings, ``clear_cache()``
    forgets them, ``lower(*args)`` shows the graph."""

    def __init__(self, fun, static_argnums=(), static_argnames=(), fast_math=False,
                 passes=PIPELINE, retrace_limit=RETRACE_LIMIT, codegen=None, max_ops=MAX_OPS,
                 max_signatures=MAX_SIGNATURES):
        functools.update_wrapper(self, fun)
        self.codegen = mode_default() if codegen is None else codegen
        if self.codegen not in MODES:
            raise ValueError(f"dg.jit: codegen must be one of {MODES}, got {codegen!r}")
        self.fun = fun
        self.static_argnums = (static_argnums,) if isinstance(static_argnums, int) \
            else tuple(static_argnums)
        self.static_argnames = (static_argnames,) if isinstance(static_argnames, str) \
            else tuple(static_argnames)
        self.fast_math = fast_math
        self.passes = tuple(passes)
        self.retrace_limit = retrace_limit
        self.max_ops = max_ops
        if max_signatures is not None and (
                isinstance(max_signatures, bool) or not isinstance(max_signatures, int)
                or max_signatures < 1):
            raise ValueError("dg.jit: max_signatures must be a positive int or None (no "
                             f"bound), got {max_signatures!r}")
        self.max_signatures = max_signatures
        self.trace_count = 0
        self.retraces = 0
        self.eager = False
        # signature -> its Compiled graphs (one per guard pattern), least recently used first
        self._cache = collections.OrderedDict()
        self._plain = not self.static_argnums and not self.static_argnames
        # Threads: replays run concurrently; a signature being recorded is recorded once,
        # the other threads that need it wait for it (``_recording``: key -> Event).
        self._lock = threading.Lock()
        self._recording = {}

    def clear_cache(self):
        with self._lock:
            self._cache.clear()
            self.retraces = 0
            self.eager = False

    @property
    def cache_size(self):
        return sum(len(v) for v in self._cache.values())

    # -- splitting a call into a key, the traced leaves and a rebuild function --------
    def _split(self, args, kwargs):
        nargs = len(args)
        static = tuple(i % nargs for i in self.static_argnums if -nargs <= i < nargs)
        skw = tuple(k for k in sorted(kwargs) if k in self.static_argnames)
        svals = []
        for i in static:
            svals.append(_static(args[i], f"static argument {i} (static_argnums)"))
        for k in skw:
            svals.append(_static(kwargs[k], f"static argument {k!r} (static_argnames)"))
        dyn = ([a for i, a in enumerate(args) if i not in static],
               {k: v for k, v in kwargs.items() if k not in skw})
        leaves, tdef = tree_flatten(dyn)
        keys = []
        for x in leaves:
            k = _leaf_key(x)
            if k is None:
                check_not_a_dataclass(x, "dg.jit: an argument")
                k = ("c", type(x), _static(x, f"argument leaf {x!r:.60}"))
            keys.append(k)
        key = (nargs, static, skw, tuple(svals), _freeze(tdef), tuple(keys))
        if not static and not skw and not kwargs and all(
                x.__class__ in (np.ndarray, float, int) for x in args):
            key = tuple(keys)  # the hot path's key (__call__)

        def rebuild(new_leaves):
            pos, kw = tree_unflatten(tdef, new_leaves)
            pos = iter(pos)
            full = [args[i] if i in static else next(pos) for i in range(nargs)]
            kw.update({k: kwargs[k] for k in skw})
            return full, kw
        traced = [_leaf_key(x) is not None for x in leaves]
        return key, leaves, traced, rebuild

    def __call__(self, *args, **kwargs):
        if self.eager:
            return self.fun(*args, **kwargs)
        if not kwargs and self._plain:  # the hot path: numbers and arrays only
            key = []
            for x in args:
                c = x.__class__
                if c is np.ndarray:
                    key.append((x.shape, x.dtype.str))
                elif c is float or c is int:
                    key.append(c)
                else:
                    break
            else:
                key = tuple(key)
                entries = self._cache.get(key)
                if entries:
                    for comp in entries:
                        out = comp.replay(*args)
                        if out is not MISS:
                            comp.used = True  # (_evict)
                            return comp.finish(out)
        key, leaves, traced, rebuild = self._split(args, kwargs)
        boxed = any(isinstance(x, Box) for x in leaves)
        entries = self._cache.get(key)
        if boxed:  # under an outer transform: replay through the primitives
            if entries:
                flat = [x for x, t in zip(leaves, traced) if t]
                for c in entries:
                    out = run_traced(c.graph, flat)
                    if out is not MISS:
                        return tree_unflatten(c.graph.odef, out)
            return self.fun(*args, **kwargs)
        flat = [x for x, t in zip(leaves, traced) if t]
        tried = []  # the graphs of this signature replayed, each once (their guards failed)
        while True:
            for c in tuple(self._cache.get(key) or ()):
                if c not in tried:
                    tried.append(c)
                    out = c.replay(*flat)
                    if out is not MISS:
                        c.used = True
                        return c.finish(out)
            with self._lock:  # record it, unless another thread is recording it now
                me = threading.get_ident()
                flight = self._recording.get(key)
                if flight is None or flight[0] == me:  # free, or our own recursion
                    if any(c not in tried for c in self._cache.get(key) or ()):
                        continue  # one came in meanwhile (a list grows in place): replay it
                    if flight is None:
                        flight = self._recording[key] = (me, threading.Event())
                    else:
                        flight = None
                    break
            flight[1].wait()  # it was being recorded: try what it recorded
        try:
            if tried:
                self.retraces += 1
                if self.retraces > self.retrace_limit:
                    return self._give_up(f"recorded {self.retraces} times because its guards "
                                         "(Python control flow on traced values) keep "
                                         "failing", args, kwargs)
            try:
                compiled, out = self._record(leaves, traced, rebuild)
            except Foreign:
                return self.fun(*args, **kwargs)
            except TooLong:
                return self._give_up(f"the recording passed {self.max_ops} operations (a "
                                     "Python loop unrolled without end?; raise max_ops= to "
                                     "record more)", args, kwargs)
            with self._lock:
                self._cache.setdefault(key, []).append(compiled)
                self._cache.move_to_end(key)
                self._evict()
        finally:
            if flight is not None:
                with self._lock:
                    del self._recording[key]
                flight[1].set()
        if self.fast_math:  # the rewrites may change bits: every call gives the graph's
            res = compiled.replay(*flat)
            if res is not MISS:
                return compiled.finish(res)
        return out

    def _evict(self):
        """Drop signatures past ``max_signatures``, least recently used first, as a
        second-chance clock: a replay only sets its graph's ``used`` flag (one store on the
        hot path), and here the oldest signature whose graphs were used since the last pass
        has its flags cleared and goes to the back, until the oldest one unused goes."""
        cache = self._cache
        while self.max_signatures is not None and len(cache) > self.max_signatures:
            key, entries = next(iter(cache.items()))
            if any(c.used for c in entries):
                for c in entries:
                    c.used = False
                cache.move_to_end(key)
            else:
                del cache[key]

    def _give_up(self, why, args, kwargs):
        """Warn once and run eagerly from now on."""
        warnings.warn(f"dg.jit({self.__name__}): {why}; it runs eagerly from now on",
                      RuntimeWarning, stacklevel=3)
        self.eager = True
        return self.fun(*args, **kwargs)

    def _record(self, leaves, traced, rebuild, lean=True):
        trace = GraphTrace(self.max_ops)
        # Recording allocates a burst of objects that all stay reachable until the graph
        # is built: a cyclic-GC pass in the middle frees nothing, and with a large heap
        # (measured: the bench's process) it costs more than the recording itself.
        collect = gc.isenabled()
        gc.disable()
        try:
            new = [trace.input(x) if t else x for x, t in zip(leaves, traced)]
            args, kwargs = rebuild(new)
            out = self.fun(*args, **kwargs)
            outs, odef = tree_flatten(out)
            refs = []
            for o in outs:
                if o.__class__ is Var and o._trace is trace:
                    refs.append(o.index)
                elif o.__class__ is Concrete and o.trace is trace:
                    refs.append(o.index)
                elif isinstance(o, Box):
                    raise Foreign()
                else:
                    refs.append(Const(o))
            trace.finish()
            compiled = Compiled(trace.graph(refs, odef), self.fast_math, self.passes,
                                self.codegen, lean=lean, keep_values=self.fast_math or not lean)
            values = [o.value if o.__class__ is Var else
                      (o.raw if o.__class__ is Concrete else o) for o in outs]
        finally:
            trace.finish()
            if collect:
                gc.enable()
        self.trace_count += 1
        return compiled, tree_unflatten(odef, values)

    def lower(self, *args, **kwargs):
        """Record ``f`` for these arguments (without caching) and return the graphs."""
        key, leaves, traced, rebuild = self._split(args, kwargs)
        compiled, _ = self._record(leaves, traced, rebuild, lean=False)
        self.trace_count -= 1
        return Lowered(compiled)


def _freeze(d):
    """A treedef as a hashable key (its child lists as tuples)."""
    if d.__class__ is list:
        return tuple(_freeze(c) for c in d)
    if d.__class__ is tuple:
        return tuple(_freeze(c) for c in d)
    return d


def _static(v, what):
    try:
        hash(v)
    except TypeError:
        raise TypeError(f"dg.jit: {what} must be hashable, got an unhashable "
                        f"{type(v).__name__}: {v!r}"[:300]) from None
    return v


def jit(fun=None, static_argnums=(), static_argnames=(), fast_math=False, passes=PIPELINE,
        retrace_limit=RETRACE_LIMIT, codegen=None, max_ops=MAX_OPS,
        max_signatures=MAX_SIGNATURES):
    """``fun`` compiled: recorded once per signature, optimised, replayed (module docstring).

    ``static_argnums``/``static_argnames`` name arguments passed as Python values (part of
    the signature: a new value records again; they must be hashable).  ``fast_math=True``
    also applies the rewrites that may change rounding.  ``passes`` lists the optimiser's
    passes to run (jit_passes.PIPELINE); ``retrace_limit`` how many guard failures are
    recorded again before the function falls back to eager execution.  ``codegen`` chooses
    the back end (jit_codegen.py; on CuPy arrays jit_cuda.py's ``@cuda.jit`` kernels):
    ``"auto"`` (the default, or ``$DUALGRAD_CODEGEN``) fuses elementwise regions into
    numba kernels where they are faster on this machine,
    ``"numba"`` wherever they compile, ``"off"`` replays the graph one primitive at a time.
    ``max_ops`` bounds a recording (memory: every value is kept while it records); past it
    the function warns once and runs eagerly.  ``max_signatures`` bounds how many
    signatures stay compiled (64; ``None``: no bound): a new one past it drops the least
    recently used (as a second-chance clock approximates it: ``Jitted._evict``).  A
    compiled signature holds its graph's structure, constants, guards and kernels, never
    the values recorded with it.

    Threads may call a jitted function at once: replays run side by side, and a signature
    is recorded once, the other threads that need it waiting for that recording.

    >>> import dualgrad as dg
    >>> dg.jit(dg.grad(lambda x: x * x * x))(2.0)
    12.0
    """
    if fun is None:
        return functools.partial(jit, static_argnums=static_argnums,
                                 static_argnames=static_argnames, fast_math=fast_math,
                                 passes=passes, retrace_limit=retrace_limit, codegen=codegen,
                                 max_ops=max_ops, max_signatures=max_signatures)
    return Jitted(fun, static_argnums, static_argnames, fast_math, passes, retrace_limit,
                  codegen, max_ops, max_signatures)


__all__ = ["jit", "Jitted", "GraphTrace", "Lowered", "Graph", "same"]
