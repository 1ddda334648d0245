"""The graph ``dg.jit`` records: a Wengert list with numbered values, and its replay.

A ``Graph`` is a list of ``Op``s in execution order.  Op ``i`` defines value ``i``; its
arguments are value numbers (``int``) or ``Const``s.  Kinds: ``"input"`` (a flattened
argument leaf), ``"op"`` (a primitive), ``"call"`` (an opaque function recorded as one
node, e.g. a ``custom_vjp``: replayed by calling it, so outer transforms see its rule),
``"raw"`` (numpy applied to raw values, a derivative rule's mask: no derivative flows
through it) and ``"guard"`` (a check on a value that Python control flow read while
recording: ``bool`` for a branch, ``exact`` for a value read by ``int()``, ``float()``).

``compile_graph`` turns a graph into one straight-line Python function, generated once::

    def replay(a0, a1):
        v0 = a0
        v1 = a1
        v2 = v0 * v1
        if not v3: M.site = s3; return MISS
        return (v2,)

Each primitive's implementation is called with its parameters bound ahead of time
(``functools.partial``); the operator rows (``+``, ``*``...) are written inline.  A guard
that fails stores its ``record.Site`` (where it was recorded, what was read) in the
thread's ``MISSED.site`` and returns ``MISS``, and ``dg.jit`` records the function again
(the retrace warning names the guard that failed most).
"""

import functools
import operator
import threading

import numpy as np

from ..core.trace import unbox
from .products import diagonal_left, square_left
from .writes import NONE as NO_WRITES
from .writes import plan as in_place

MISS = object()  # what a replay returns when a guard fails
MISSED = threading.local()  # .site: this thread's last failed guard (record.Site, or None)


class Const:
    """A constant argument: a closure's array, a Python number, a rule's literal."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"Const({fmt(self.value)})"


class Op:
    """One node: ``prim`` applied to ``args`` with parameters ``kw``; ``ans`` is the value
    seen while recording (for a guard: the value it expects)."""

    __slots__ = ("kind", "prim", "args", "kw", "ans")

    def __init__(self, kind, prim, args, kw, ans):
        self.kind, self.prim, self.args, self.kw, self.ans = kind, prim, args, kw, ans

    @property
    def name(self):
        if self.kind in ("guard", "part"):
            return self.kind
        return "input" if self.prim is None else self.prim.name

    def __repr__(self):
        return f"<Op {self.kind} {self.name} {self.args}>"


def shell(v):
    """``v`` without its numbers: an array of its class, shape and dtype that repeats one
    element (a read-only, zero-stride view of a one-element copy), or ``v`` itself when it
    is not an array or holds at most one element.

    A compiled graph keeps what replay needs and no recorded intermediate: its ops' values
    become shells, which the analyses (regions, printing) read shapes and dtypes from.

    >>> s = shell(np.arange(6.0).reshape(2, 3))
    >>> s.shape, s.dtype, s.strides
    ((2, 3), dtype('float64'), (0, 0))
    """
    c = v.__class__
    if (c is not np.ndarray and not hasattr(c, "__cuda_array_interface__")) or v.size <= 1 \
            or not any(v.strides):
        return v
    return np.broadcast_to(v.reshape(-1)[:1].copy().reshape(()), v.shape)


class Graph:
    """Ops in execution order, the input values, the outputs (value numbers or Consts)
    and the output pytree structure.

    ``len(graph)`` counts operations (not inputs, not guards); ``str(graph)`` is the
    Wengert list; ``graph.count("multiply")`` counts one primitive's nodes.
    """

    __slots__ = ("ops", "inputs", "outputs", "odef")

    def __init__(self, ops, inputs, outputs, odef):
        self.ops, self.inputs, self.outputs, self.odef = ops, inputs, outputs, odef

    def __len__(self):
        return sum(1 for op in self.ops if op.kind in ("op", "call", "raw"))

    def count(self, name):
        return sum(1 for op in self.ops
                   if op.kind in ("op", "call", "raw") and op.prim.name == name)

    @property
    def guards(self):
        return sum(1 for op in self.ops if op.kind == "guard")

    def drop_values(self):
        """Replace every recorded value but the guards' by its ``shell``: what replay
        needs (the ops, their constants, the guards' expected values) stays."""
        for op in self.ops:
            if op.kind == "guard":
                continue
            ans = op.ans
            op.ans = tuple(shell(a) for a in ans) if ans.__class__ is tuple else shell(ans)

    def users(self):
        """Value number -> how many ops (and outputs) read it."""
        n = [0] * len(self.ops)
        for op in self.ops:
            for a in op.args:
                if a.__class__ is int:
                    n[a] += 1
        for a in self.outputs:
            if a.__class__ is int:
                n[a] += 1
        return n

    def labels(self):
        """Value number -> 'v-1', 'v0', 'v1', ... (inputs numbered up to 0, as print(tape))."""
        out, k_in, k_op = {}, 1 - len(self.inputs), 1
        for i, op in enumerate(self.ops):
            if op.kind == "input":
                out[i], k_in = f"v{k_in}", k_in + 1
            elif op.kind != "guard":
                out[i], k_op = f"v{k_op}", k_op + 1
        return out

    def __str__(self):
        names = self.labels()
        rows = []
        for i, op in enumerate(self.ops):
            if op.kind == "guard":
                rows.append((f"guard {describe(op, names)}", ""))
            else:
                rows.append((f"{names[i]} = {describe(op, names)}", _type(op.ans)))
        outs = ", ".join(names[a] if a.__class__ is int else fmt(a.value) for a in self.outputs)
        width = max([len(r[0]) for r in rows] + [0])
        lines = [f"{a:<{width}}  {b}".rstrip() for a, b in rows]
        lines.append(f"out = {outs}")
        return "\n".join(lines)

    __repr__ = __str__

    def as_dot(self, title=None):
        """The graph in Graphviz DOT (render: ``dot -Tpng g.dot -o g.png``)."""
        names = self.labels()
        lines = ["digraph G {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
        if title:
            lines.append(f'  label="{title}"; labelloc=t;')
        for i, op in enumerate(self.ops):
            label = "guard " + _guard_text(op) if op.kind == "guard" else (
                f"{names[i]}\\n{op.name}")
            shape = "diamond" if op.kind == "guard" else (
                "box" if op.kind == "input" else "ellipse")
            lines.append(f'  n{i} [label="{label}", shape={shape}];')
            for k, a in enumerate(op.args):
                if a.__class__ is int:
                    lines.append(f"  n{a} -> n{i};")
                else:
                    lines.append(f'  c{i}_{k} [label="{fmt(a.value)}", shape=plaintext];')
                    lines.append(f"  c{i}_{k} -> n{i};")
        for k, a in enumerate(self.outputs):
            if a.__class__ is int:
                lines.append(f'  out{k} [label="out {k}", shape=doublecircle];')
                lines.append(f"  n{a} -> out{k};")
        lines.append("}")
        return "\n".join(lines)


# -- printing -------------------------------------------------------------------------------

_SYMBOLS = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/", "power": "**",
            "matmul": "@", "less": "<", "less_equal": "<=", "greater": ">",
            "greater_equal": ">=", "equal": "==", "not_equal": "!="}


def fmt(x):
    """A short rendering of a constant: ``2.0``, ``-0.0``, ``const(3, 4)``."""
    x = unbox(x)
    if x.__class__ in (float, int, bool, complex) or np.ndim(x) == 0:
        return repr(x.item() if hasattr(x, "item") else x)
    return f"const{tuple(np.shape(x))}"


def _type(x):
    if x.__class__ is np.ndarray:
        return f"{x.dtype}{list(x.shape)}"
    return type(x).__name__


def _guard_text(op):
    return f"{op.kw['how']} == {fmt(op.ans) if op.kw['how'] != 'bool' else op.ans}"


def describe(op, names):
    if op.kind == "input":
        return "input"
    args = [names[a] if a.__class__ is int else fmt(a.value) for a in op.args]
    if op.kind == "guard":
        return f"{op.kw['how']}({args[0]}) == {fmt(op.ans) if op.kw['how'] != 'bool' else op.ans}"
    if op.kind == "part":
        return f"{args[0]}[{op.kw['k']}]"
    sym = _SYMBOLS.get(op.prim.name)
    if sym and len(args) == 2 and not op.kw:
        return f"{args[0]} {sym} {args[1]}"
    if op.prim.name == "negative":
        return f"-{args[0]}"
    extra = [f"{k}={_short(v)}" for k, v in op.kw.items()] if op.kw else []
    return f"{op.prim.name}({', '.join(args + extra)})"


def _short(v):
    if isinstance(v, np.ndarray):
        return f"array{tuple(v.shape)}"
    if isinstance(v, tuple) and any(isinstance(e, np.ndarray) for e in v):
        return "(" + ", ".join(_short(e) for e in v) + ")"
    return repr(v)


# -- exact comparison (guards) ------------------------------------------------------------

def same(a, b):
    """``a`` and ``b`` bit for bit (type, dtype, shape and bytes): -0.0 is not 0.0, and a
    NaN equals itself."""
    a, b = unbox(a), unbox(b)
    if a.__class__ is not b.__class__:
        return False
    if a.__class__ is np.ndarray:
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if a.__class__ in (int, bool):
        return a == b
    if isinstance(a, (np.ndarray, np.generic)) or not hasattr(a, "view"):
        return np.asarray(a).tobytes() == np.asarray(b).tobytes()
    # a device array (CuPy): its bytes compared where they live; the one bool comes back
    return a.dtype == b.dtype and a.shape == b.shape and bool(
        (a.reshape(-1).view(np.uint8) == b.reshape(-1).view(np.uint8)).all())


# -- replay ---------------------------------------------------------------------------------

_INLINE = {operator.add: "{} + {}", operator.sub: "{} - {}", operator.mul: "{} * {}",
           operator.truediv: "{} / {}", operator.pow: "{} ** {}", operator.matmul: "{} @ {}",
           operator.neg: "-{}", operator.pos: "+{}", operator.lt: "{} < {}",
           operator.le: "{} <= {}", operator.gt: "{} > {}", operator.ge: "{} >= {}",
           operator.eq: "{} == {}", operator.ne: "{} != {}"}
# the ufunc an operator row computes, for writing into a dead buffer with out=
_OUT_UFUNC = {operator.add: np.add, operator.sub: np.subtract, operator.mul: np.multiply,
              operator.truediv: np.true_divide, operator.neg: np.negative}
_SAFE_OUT = frozenset((np.add, np.subtract, np.multiply, np.true_divide, np.negative,
                       np.exp, np.log, np.sin, np.cos, np.tanh, np.square, np.sqrt,
                       np.log1p, np.expm1, np.reciprocal, np.absolute))


def _out_ufunc(op):
    """The ufunc that computes ``op`` elementwise into a fresh array, or None."""
    prim = op.prim
    if op.kind != "op" or op.kw or prim.ufunc is None or op.ans.__class__ is not np.ndarray:
        return None
    if prim.impl is prim.ufunc and prim.ufunc in _SAFE_OUT:
        return prim.ufunc
    u = _OUT_UFUNC.get(prim.impl)
    return u if u is prim.ufunc or (u is np.true_divide and prim.ufunc is np.true_divide) \
        else None


def _one_entry(idx, x):
    """Whether ``x[idx]`` is one entry (a number, not a view): an int per axis."""
    return len(idx) == x.ndim and all(k.__class__ is int for k in idx)


def _method(op, ops):
    """The inline form of a ``getitem``, ``reshape`` or ``transpose`` row (one parameter,
    by keyword or as a constant argument), or None: ``x[idx]`` is getitem's own
    implementation; ``np.reshape(x, s)`` is ``x.reshape(s)`` for a numpy array or scalar
    (a Python number has no method), and so is ``np.transpose``."""
    if op.kind != "op" or len(op.args) + len(op.kw or ()) != 2:
        return None
    name = op.prim.name
    if name == "getitem" and (not op.kw or "idx" in op.kw):
        return "{}[{}]"
    if name in _METHODS and (not op.kw or _METHODS[name][0] in op.kw):
        x = op.args[0]
        c = ops[x].ans.__class__ if x.__class__ is int else None
        if c is np.ndarray or (c is not None and issubclass(c, np.generic)):
            return _METHODS[name][1]
    return None


# np.reshape(x, s) and np.transpose(x, axes) as the array's methods: (parameter, form)
_METHODS = {"reshape": ("shape", "{}.reshape({})"), "transpose": ("axes", "{}.transpose({})")}


def _buffer_plan(graph, where=NO_WRITES):
    """Which op writes into which dead value's array: ``{op index: value number}``.

    A value's array is reusable once its last reader has run, if it was made fresh by an
    elementwise ufunc and every reader is one too (so no view of it is alive), it is not
    an output, and it has the writer's shape and dtype.  Reusing it saves an allocation
    (and, for large arrays, the page faults of fresh memory) and gives the same bits.
    """
    ops = graph.ops
    last = {}
    skip = where.hoisted  # moved before a write (writes.py): not where a buffer dies
    fresh = [(_out_ufunc(op) is not None and i not in where.writes and i not in skip)
             for i, op in enumerate(ops)]
    ok = list(fresh)
    for w in where.writes.values():  # a buffer written in place lives on
        ok[w[1]] = False
    for i, op in enumerate(ops):
        for a in op.args:
            if a.__class__ is int:
                last[a] = i
                if not fresh[i]:
                    ok[a] = False
    for a in graph.outputs:
        if a.__class__ is int:
            ok[a] = False
    dying = {}
    for j, i in last.items():
        if ok[j]:
            dying.setdefault(i, []).append(j)
    plan = {}
    for i, op in enumerate(ops):
        if not fresh[i]:
            continue
        for j in dying.get(i, ()):
            b = ops[j].ans
            if b.shape == op.ans.shape and b.dtype == op.ans.dtype and j not in plan.values():
                plan[i] = j
                break
    return plan


def compile_graph(graph, reuse_buffers=True, copies=()):
    """One generated Python function ``replay(*leaves)`` returning the flat outputs, or
    ``MISS`` when a guard fails.  Generated once per optimised graph.  ``copies``: output
    positions returned as copies (an input or a constant array the optimiser forwarded)."""
    ns = {"MISS": MISS, "same": same, "M": MISSED, "add": np.add, "dmm": diagonal_left}
    names = {}
    lines = []
    params = []
    where = in_place(graph) if reuse_buffers else NO_WRITES
    writes, dropped, copied = where.writes, where.dropped, where.copied
    plan = _buffer_plan(graph, where) if reuse_buffers else {}

    def ref(a, i, k):
        if a.__class__ is int:
            return names[a]
        v = a.value
        if v.__class__ in (float, int) and np.isfinite(v) and not (v == 0 and str(v)[0] == "-"):
            return repr(v)
        key = f"k{i}_{k}"
        ns[key] = v
        return key

    for i in where.order or range(len(graph.ops)):
        op = graph.ops[i]
        v = f"v{i}"
        if op.kind == "input":
            params.append(f"a{len(params)}")
            names[i] = params[-1]
            continue
        args = [ref(a, i, k) for k, a in enumerate(op.args)]
        if op.kind == "guard":
            ns[f"s{i}"] = op.kw.get("site")  # which guard failed: stored on failure only
            if op.kw["how"] == "bool":
                lines.append(f"    if {'not ' if op.ans else ''}{args[0]}: "
                             f"M.site = s{i}; return MISS")
            else:
                ns[f"e{i}"] = op.ans
                lines.append(f"    if not same({args[0]}, e{i}): M.site = s{i}; return MISS")
            continue
        names[i] = v
        if op.kind == "part":  # unpacked by its fused node's line
            continue
        if op.kind == "fused":  # one generated numba kernel (emit_cpu.py, emit_cuda.py)
            ns[f"K{i}"] = op.prim.fn
            outs = [f"v{i + 1 + k}" for k in range(len(op.ans))]
            lines.append(f"    {', '.join(outs)}, = K{i}({', '.join(args)})")
            for k, cast in enumerate(op.prim.casts):
                if cast is not None:
                    ns[f"c{i + 1 + k}"] = cast
                    lines.append(f"    {outs[k]} = c{i + 1 + k}({outs[k]})")
            continue
        if i in dropped:  # a scatter the write in place below adds itself
            continue
        if i in writes:  # writes.py: into a buffer nobody reads any more
            w = writes[i]
            x = names[w[1]]
            if w[0] == "set":
                ns[f"p{i}"] = op.kw["idx"]
                lines.append(f"    {x}[p{i}] = {args[1]}; {v} = {x}")
                continue
            s = graph.ops[w[2]]
            ns[f"p{i}"], g = s.kw["idx"], ref(s.args[0], w[2], 0)
            if _one_entry(s.kw["idx"], graph.ops[w[1]].ans):  # a number: x[i, j] += g
                lines.append(f"    {x}[p{i}] += {g}; {v} = {x}")
            else:  # a view: the sum written into it
                lines.append(f"    t{i} = {x}[p{i}]; add(t{i}, {g}, out=t{i}); {v} = {x}")
            continue
        if i in plan:
            ns[f"u{i}"] = _out_ufunc(op)
            lines.append(f"    {v} = u{i}({', '.join(args)}, out={names[plan[i]]})")
            continue
        impl = op.prim.impl
        form = _INLINE.get(impl)
        if form is not None and not op.kw and form.count("{}") == len(args):
            lines.append(f"    {v} = {form.format(*args)}")
            continue
        if square_left(op, graph.ops):  # products.py: a diagonal factor scales instead
            lines.append(f"    {v} = dmm({', '.join(args)})")
            continue
        form = _method(op, graph.ops)
        if form is not None:  # x[idx], x.reshape(shape): no call of the row's lambda
            if op.kw:
                ns[f"p{i}"] = next(iter(op.kw.values()))
                args.append(f"p{i}")
            lines.append(f"    {v} = {form.format(*args)}{'.copy()' if i in copied else ''}")
            continue
        ns[f"f{i}"] = functools.partial(impl, **op.kw) if op.kw else impl
        lines.append(f"    {v} = f{i}({', '.join(args)}){'.copy()' if i in copied else ''}")
    outs = [ref(a, "o", k) + (".copy()" if k in copies else "")
            for k, a in enumerate(graph.outputs)]
    lines.append(f"    return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
    src = f"def replay({', '.join(params)}):\n" + "\n".join(lines) + "\n"
    exec(compile(src, "<dg.jit replay>", "exec"), ns)  # noqa: S102 - our own generated code
    fn = ns["replay"]
    fn.source = src
    return fn


def run_traced(graph, leaves):
    """Replay ``graph`` on traced leaves one primitive at a time, so the transforms tracing
    them record every primitive (``grad(jit(f))``: the derivative rules come from the
    graph's own primitives).  Returns the flat outputs, or ``MISS`` when a guard fails."""
    vals = evaluate(graph, leaves)
    if vals is MISS:
        return MISS
    return [vals[a] if a.__class__ is int else a.value for a in graph.outputs]


def evaluate(graph, leaves):
    """Every value of ``graph`` on these leaves (raw or traced), one primitive at a time:
    a list indexed by value number (``None`` at guards), or ``MISS`` when a guard fails.
    On raw leaves it computes what recording computed, call for call."""
    vals = [None] * len(graph.ops)
    it = iter(leaves)

    def get(a):
        return vals[a] if a.__class__ is int else a.value

    for i, op in enumerate(graph.ops):
        if op.kind == "input":
            vals[i] = next(it)
            continue
        args = [get(a) for a in op.args]
        if op.kind == "guard":
            v = args[0]
            if op.kw["how"] == "bool":
                if bool(v) != op.ans:  # a traced bool: an outer jit records this guard too
                    MISSED.site = op.kw.get("site")
                    return MISS
            else:
                r = unbox(v)
                read = getattr(r, "read", None)  # an outer jit's concrete value: mark it read
                if not same(read() if read is not None else r, op.ans):
                    MISSED.site = op.kw.get("site")
                    return MISS
            continue
        if op.kind == "call":
            vals[i] = op.prim.impl(*args)
        elif op.kind == "raw":  # on raw values, as the rule computed it (an outer jit's
            vals[i] = op.prim.impl(*[unbox(a) for a in args])  # Concrete records it again)
        else:
            vals[i] = op.prim(*args, **op.kw) if op.kw else op.prim(*args)
    return vals
