"""The optimiser: small passes over a ``Graph``, each one a function you can switch off.

Shaped like Theano/PyTensor's rewrites: one function per pass, a pipeline that lists them
by name, a test per pass (tests/test_jit.py, tests/test_passes.py).  Every pass keeps the
dtype, the broadcast shape and the bits of every value the graph returns, so a jitted
function equals the eager one bit for bit.  The one exception is opt-in: ``fast_math=True``
also applies the rewrites that can change rounding (``x + 0.0 -> x``, which is wrong for
``x = -0.0``; reassociating ``(x * 3) * 5 -> x * 15``, which rounds once instead of twice),
as Theano flags its unsafe rewrites.

    pass        what it removes
    fold        ops whose arguments are all constants (computed once, at compile time)
    uniform     a constant array of one repeated value (a reverse sweep's seed of ones)
                feeding an elementwise op that broadcasts anyway -> that value as a scalar
    simplify    the algebraic identities, one named rewrite each (``REWRITES``):
                x*1, x+(-0.0), x-0, x/1, x**1, x**2 -> square(x), +x, --x, and
                mul(mul(mul(T, 2), 2), 2) -> mul(T, 8) (exact constants only)
    layout      reshape(reshape(x)) -> reshape(x), transpose chains, identity reshapes;
                a reshape that adds or drops length-1 axes moved onto an elementwise
                node's arguments (``sink``)
    broadcast   broadcast_to(x) feeding an elementwise op that broadcasts anyway
    cse         a second op with the same primitive, arguments and parameters
    dce         ops no output and no guard needs

``dg.jit(f, passes=...)`` runs the passes it lists, in its order; ``exclude=`` leaves out
passes or rewrites by name, as PyTensor's ``optimizer_excluding``::

    >>> import numpy as np, dualgrad as dg
    >>> f = lambda x: np.sin(x) * 1.0
    >>> len(dg.jit(f).lower(np.ones(3)).after)
    1
    >>> len(dg.jit(f, exclude=("local_mul_one",)).lower(np.ones(3)).after)
    2
"""

import math

import numpy as np

from ..rules import TABLE
from .graph import Const, Graph, Op

PIPELINE = ("fold", "uniform", "simplify", "layout", "broadcast", "cse", "dce")


def optimise(graph, passes=PIPELINE, fast_math=False, exclude=frozenset()):
    """Run the passes in order, ``simplify`` without the rewrites ``exclude`` names;
    returns ``(graph, summary)``, where ``summary`` maps each pass to the number of ops it
    removed or rewrote."""
    summary = {}
    for name in passes:
        fn = PASSES[name]
        graph, n = fn(graph, fast_math, exclude) if name == "simplify" else fn(graph)
        summary[name] = n
    return graph, summary


def pipeline(passes=PIPELINE, exclude=()):
    """``(passes, rewrites left out)`` for ``dg.jit``'s ``passes`` (pass names, run in that
    order) and ``exclude`` (a name or names of passes or of ``simplify``'s rewrites to leave
    out); an unknown name is a ValueError that names its argument.

    >>> pipeline(exclude="cse")
    (('fold', 'uniform', 'simplify', 'layout', 'broadcast', 'dce'), frozenset())
    >>> pipeline(exclude=["local_pow_two"])[1]
    frozenset({'local_pow_two'})
    """
    passes = tuple(passes)
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    for name in passes:
        if name not in PASSES:
            also = (f" ({name!r} is a rewrite of 'simplify': leave it out with exclude=)"
                    if name in REWRITES else "")
            raise ValueError(f"dg.jit: passes= names no pass {name!r}{also}; the passes are "
                             f"{', '.join(PASSES)}")
    for name in exclude:
        if name not in PASSES and name not in REWRITES:
            raise ValueError(f"dg.jit: exclude= names no pass or rewrite {name!r}; the passes "
                             f"are {', '.join(PASSES)}, the rewrites {', '.join(REWRITES)}")
    return (tuple(p for p in passes if p not in exclude),
            frozenset(n for n in exclude if n in REWRITES))


# -- rebuilding: passes map old value numbers to new references ---------------------------

def _remap(args, m):
    return tuple(m[a] if a.__class__ is int else a for a in args)


def _value(ops, a):
    return ops[a].ans if a.__class__ is int else a.value


def _keeps(x, ans):
    """``x`` can stand for ``ans``: same type and, for arrays, the same dtype and shape."""
    if x.__class__ is not ans.__class__:
        return False
    if x.__class__ is np.ndarray:
        return x.dtype == ans.dtype and x.shape == ans.shape
    return not hasattr(ans, "dtype") or x.dtype == ans.dtype


def _rewrite(graph, rule):
    """A forward scan: ``rule(ops, op)`` returns None (keep ``op``), a reference (the op's
    value is that one) or a replacement ``Op``.  Ops keep their positions (a replaced op
    stays, unread, for ``dce``), so only the arguments of replaced values are remapped.
    Returns (graph, rewrites)."""
    ops, sub, n = list(graph.ops), {}, 0
    for i, op in enumerate(ops):
        if sub:
            args = op.args
            for a in args:
                if a.__class__ is int and a in sub:
                    op = ops[i] = Op(op.kind, op.prim, tuple(
                        sub.get(b, b) if b.__class__ is int else b for b in args), op.kw,
                        op.ans)
                    break
        if op.kind != "op":
            continue
        r = rule(ops, op, i)
        while isinstance(r, Op):  # a replacement may simplify again: mul(mul(T,2),4)
            n += 1
            op = ops[i] = r
            r = rule(ops, r, i)
        if r is not None:
            n += 1
            sub[i] = r
    outs = [sub.get(a, a) if a.__class__ is int else a for a in graph.outputs]
    return Graph(ops, graph.inputs, outs, graph.odef), n


# -- dead-code elimination ------------------------------------------------------------------

def _live(graph):
    """For each op, whether an output or a guard needs it (inputs always do)."""
    ops = graph.ops
    live = [op.kind in ("input", "guard") for op in ops]
    for a in graph.outputs:
        if a.__class__ is int:
            live[a] = True
    for i in range(len(ops) - 1, -1, -1):
        if live[i]:
            for a in ops[i].args:
                if a.__class__ is int:
                    live[a] = True
    return live


def dce(graph):
    """Drop the ops that no output and no guard needs (inputs always stay)."""
    ops = graph.ops
    live = _live(graph)
    m, new = {}, []
    for i, op in enumerate(ops):
        if live[i]:
            m[i] = len(new)
            new.append(Op(op.kind, op.prim, _remap(op.args, m), op.kw, op.ans))
    dead = sum(1 for i, op in enumerate(ops) if not live[i])  # incl. ops passes replaced
    return Graph(new, [m[i] for i in graph.inputs], list(_remap(graph.outputs, m)),
                 graph.odef), dead


# -- common-subexpression elimination -------------------------------------------------------

def _const_key(v):
    c = v.__class__
    if c is float:
        return ("f", v.hex())  # -0.0 and 0.0 differ; every NaN is one key
    if c in (int, bool, complex, str):
        return (c.__name__, v)
    return ("id", id(v))


def _kw_key(kw):
    if not kw:
        return ()
    try:
        items = tuple(sorted(kw.items()))
        hash(items)
        return items
    except TypeError:
        return tuple((k, _hashable(v)) for k, v in sorted(kw.items()))


def _hashable(v):
    try:
        hash(v)
        return v
    except TypeError:
        if isinstance(v, tuple):
            return tuple(_hashable(e) for e in v)
        return ("id", id(v))


def cse(graph):
    """Merge ops with the same primitive, arguments and parameters: ``sin(x) + sin(x)``
    keeps one ``sin``, and the reverse sweep shares the forward pass's ``cos(x)``."""
    seen = {}

    def rule(ops, op, i):
        key = (op.prim, tuple(a if a.__class__ is int else _const_key(a.value)
                              for a in op.args), _kw_key(op.kw))
        j = seen.get(key)
        if j is not None:
            return j
        seen[key] = i
        return None
    return _rewrite(graph, rule)


# -- constant folding -------------------------------------------------------------------------

def fold(graph):
    """Compute, once, the ops whose arguments are all constants."""
    def rule(ops, op, i=None):
        if op.args and all(a.__class__ is Const for a in op.args):
            vals = [a.value for a in op.args]
            impl = op.prim.impl
            return Const(impl(*vals, **op.kw) if op.kw else impl(*vals))
        return None
    return _rewrite(graph, rule)


# -- algebraic simplification -----------------------------------------------------------------

def _scalar(a):
    """The Python number a constant argument holds, or None."""
    if a.__class__ is not Const:
        return None
    v = a.value
    return v if v.__class__ in (float, int) else None


def _is(a, target, sign=None):
    v = _scalar(a)
    if v is None and a.__class__ is Const and isinstance(a.value, np.floating):
        v = float(a.value)  # a uniform array made scalar (the caller checks the dtype)
    if v is None and sign is None and a.__class__ is Const \
            and a.value.__class__ is np.ndarray and a.value.size <= 1 << 16:
        return bool(np.all(a.value == target))  # a constant array of ones (a sum's seed)
    if v is None or v != target:
        return False
    return sign is None or math.copysign(1.0, v) == sign


def _pow2(c):
    """c = +-2**k with k >= 0: scaling by it never rounds (overflow is inf either way)."""
    if c.__class__ is int:
        return c != 0 and abs(c) & (abs(c) - 1) == 0
    if not math.isfinite(c) or c == 0:
        return False
    m, _ = math.frexp(abs(c))
    return m == 0.5 and abs(c) >= 1.0


def _integer(x):
    d = getattr(x, "dtype", None)
    return (x.__class__ is int) or (d is not None and d.kind in "iu")


def _other(op, k):
    return op.args[1 - k]


def _chain(ops, op, fast_math):
    """(y op c1) op c2 -> y op (c1 op c2), for multiply and add, when exact: integer
    arithmetic (wraps the same either way), or for a multiply constants that are +-2**k with
    |c| >= 1 (scaling by them never rounds); any constants with ``fast_math``."""
    name = op.prim.name
    for k in (0, 1):
        c2 = _scalar(op.args[k])
        inner = _other(op, k)
        if c2 is None or inner.__class__ is not int or ops[inner].kind != "op" \
                or ops[inner].prim is not op.prim or ops[inner].kw:
            continue
        iop = ops[inner]
        for j in (0, 1):
            c1 = _scalar(iop.args[j])
            y = _other(iop, j)
            if c1 is None or y.__class__ is not int:
                continue
            yv = ops[y].ans
            c = c1 * c2 if name == "multiply" else c1 + c2
            exact = _integer(yv) and c1.__class__ is int and c2.__class__ is int
            if name == "multiply" and not exact:
                exact = _pow2(c1) and _pow2(c2)
            if not (exact or fast_math) or (c.__class__ is float and not math.isfinite(c)):
                continue
            test = op.prim.impl(yv, c)
            if not _keeps(test, op.ans):
                continue
            return Op("op", op.prim, (y, Const(c)), op.kw, op.ans)
    return None


def _keep(ops, x, op):
    """``x``, if it can stand for ``op``'s value (``_keeps``), else None."""
    return x if _keeps(_value(ops, x), op.ans) else None


#: name -> (the primitives it rewrites, the rewrite), in the order ``simplify`` tries them
REWRITES = {}


def rewrite(*prims):
    """Register the function as a named rewrite of the nodes of ``prims``: called as
    ``fn(ops, op, fast_math)``, it returns None (no change), a reference that stands for
    the node's value, or a replacement ``Op``.  Its name is what ``exclude=`` takes."""
    def register(fn):
        REWRITES[fn.__name__] = (prims, fn)
        return fn
    return register


@rewrite("multiply")
def local_mul_one(ops, op, fast_math):
    """x * 1 -> x, 1 * x -> x."""
    if op.kw:
        return None
    for k in (0, 1):
        if _is(op.args[k], 1):
            r = _keep(ops, _other(op, k), op)
            if r is not None:
                return r
    return None


@rewrite("multiply")
def local_mul_chain(ops, op, fast_math):
    """(y * c1) * c2 -> y * (c1 * c2) where exact: mul(mul(mul(T, 2), 2), 2) -> mul(T, 8)."""
    return None if op.kw else _chain(ops, op, fast_math)


@rewrite("add")
def local_add_zero(ops, op, fast_math):
    """x + (-0.0) -> x, 0 + x -> x for integers; x + 0.0 -> x only with ``fast_math``
    (-0.0 + 0.0 is 0.0)."""
    if op.kw:
        return None
    for k in (0, 1):
        x = _other(op, k)
        if _is(op.args[k], 0) and (_is(op.args[k], 0, -1.0) or _integer(_value(ops, x))
                                   or fast_math):
            r = _keep(ops, x, op)  # x + (-0.0) == x for every x; x + 0.0 is not
            if r is not None:
                return r
    return None


@rewrite("add")
def local_add_chain(ops, op, fast_math):
    """(y + c1) + c2 -> y + (c1 + c2) for integers (which wrap the same either way), any
    constants with ``fast_math``."""
    return None if op.kw else _chain(ops, op, fast_math)


@rewrite("subtract")
def local_sub_zero(ops, op, fast_math):
    """x - 0.0 -> x (x - 0.0 == x + (-0.0) == x for every x); x - (-0.0) only for integers
    or with ``fast_math``."""
    a = op.args
    if not op.kw and _is(a[1], 0) and (_is(a[1], 0, 1.0) or _integer(_value(ops, a[0]))
                                       or fast_math):
        return _keep(ops, a[0], op)
    return None


@rewrite("divide")
def local_div_one(ops, op, fast_math):
    """x / 1 -> x."""
    return _keep(ops, op.args[0], op) if not op.kw and _is(op.args[1], 1) else None


@rewrite("power")
def local_pow_one(ops, op, fast_math):
    """x ** 1 -> x."""
    return _keep(ops, op.args[0], op) if not op.kw and _is(op.args[1], 1) else None


@rewrite("power")
def local_pow_two(ops, op, fast_math):
    """x ** 2 -> square(x) for an array x (numpy's own fast path for x**2, bit for bit)."""
    x = op.args[0]
    if not op.kw and _is(op.args[1], 2) and x.__class__ is int \
            and ops[x].ans.__class__ is np.ndarray and _keeps(np.square(ops[x].ans), op.ans):
        return Op("op", TABLE["square"], (x,), None, op.ans)
    return None


@rewrite("positive")
def local_positive(ops, op, fast_math):
    """+x -> x."""
    return _keep(ops, op.args[0], op) if op.args[0].__class__ is int else None


@rewrite("negative")
def local_neg_neg(ops, op, fast_math):
    """-(-x) -> x."""
    x = op.args[0]
    if x.__class__ is int and ops[x].kind == "op" and ops[x].prim is op.prim:
        return _keep(ops, ops[x].args[0], op)
    return None


def simplify(graph, fast_math=False, exclude=frozenset()):
    """The algebraic rewrites (``REWRITES``) but those ``exclude`` names: for each node, its
    primitive's rewrites in table order, the first that applies wins (and the node it
    gives is simplified again).  A rewrite happens only if the value it keeps has the
    op's type, dtype and shape."""
    by_prim = {}
    for name, (prims, fn) in REWRITES.items():
        if name not in exclude:
            for p in prims:
                by_prim.setdefault(p, []).append(fn)

    def rule(ops, op, i=None):
        for fn in by_prim.get(op.prim.name, ()):
            r = fn(ops, op, fast_math)
            if r is not None:
                return r
        return None
    return _rewrite(graph, rule)


# -- reshape/transpose chains -----------------------------------------------------------------

def _perm(axes, nd):
    return tuple(range(nd))[::-1] if axes is None else tuple(int(a) % nd for a in axes)


def layout(graph):
    """reshape(reshape(x, s1), s2) -> reshape(x, s2); transpose(transpose(x, p), q) ->
    transpose(x, p[q]); a reshape to x's own shape or an identity transpose -> x."""
    def rule(ops, op, i=None):
        name, x = op.prim.name, op.args[0]
        if name not in ("reshape", "transpose") or x.__class__ is not int or len(op.args) != 1 \
                or not op.kw:
            return None
        xv = ops[x].ans
        if xv.__class__ is not np.ndarray or op.ans.__class__ is not np.ndarray:
            return None
        inner = ops[x]
        if name == "reshape":
            if tuple(op.kw["shape"]) == xv.shape:
                return x
            if inner.kind == "op" and inner.prim is op.prim and inner.kw:
                return Op("op", op.prim, (inner.args[0],), op.kw, op.ans)
            return None
        nd = xv.ndim
        p = _perm(op.kw["axes"], nd)
        if p == tuple(range(nd)):
            return x
        if inner.kind == "op" and inner.prim is op.prim and inner.kw and len(inner.args) == 1:
            q = _perm(inner.kw["axes"], nd)
            return Op("op", op.prim, (inner.args[0],), {"axes": tuple(q[i] for i in p)},
                      op.ans)
        return None
    graph, n = _rewrite(graph, rule)
    graph, k = sink(graph)
    return graph, n + k


def _unit_shape(shape, src, dst):
    """The shape an argument of ``shape`` (broadcast against ``src``) takes when ``src`` is
    reshaped to ``dst``, which differs from it only by length-1 axes."""
    padded = (1,) * (len(src) - len(shape)) + tuple(shape)
    big = iter([n for n, m in zip(padded, src) if m != 1])
    return tuple(next(big) if m != 1 else 1 for m in dst)


def _sinks(ops, x, shape, readers):
    """Whether ``reshape(x, shape)`` can move onto the arguments of ``x``: ``x`` an
    elementwise node only that reshape reads, ``shape`` its shape give or take length-1
    axes."""
    op = ops[x]
    if op.kind != "op" or op.prim.scalar is None or op.ans.__class__ is not np.ndarray \
            or readers.get(x, 0) != 1 or any(np.ndim(_value(ops, a)) > op.ans.ndim
                                             for a in op.args) \
            or not any(_value(ops, a).__class__ is np.ndarray for a in op.args):
        return False  # (of numbers only, e(a, b) has no array to carry the new shape)
    return [n for n in op.ans.shape if n != 1] == [n for n in shape if n != 1]


def sink(graph):
    """reshape(e(a, b), s) -> e(reshape(a, s_a), reshape(b, s_b)) where ``e`` is
    elementwise, read only by the reshape, and ``s`` adds or drops length-1 axes: a
    reverse sweep's ``reshape(g * 2.0, (n, 1, m))`` then fuses with what reads it (one
    loop shape), and the reshapes land on inputs and constants, where they are views.
    Elementwise values are the same numbers in either shape, bit for bit."""
    ops, live = graph.ops, _live(graph)
    readers = {}
    for op, needed in zip(ops, live):
        for a in op.args if needed else ():
            if a.__class__ is int:
                readers[a] = readers.get(a, 0) + 1
    for a in graph.outputs:
        if a.__class__ is int:
            readers[a] = readers.get(a, 0) + 2
    new, m, n = [], {}, 0

    def moved(x, shape, prim):  # reshape(x, shape) in the new graph, sunk where it can be
        nonlocal n
        op = ops[x]
        if not _sinks(ops, x, shape, readers):
            ans = op.ans.reshape(shape) if op.ans.__class__ is np.ndarray else op.ans
            new.append(Op("op", prim, (m[x],), {"shape": shape}, ans))
            return len(new) - 1
        args, shapes, kept = [], [], []
        for a in op.args:
            v = _value(ops, a)
            if v.__class__ is not np.ndarray:
                args.append(m[a] if a.__class__ is int else a)
                shapes.append(())
                continue
            want = _unit_shape(v.shape, op.ans.shape, shape)
            lead = len(want) - v.ndim
            if lead >= 0 and want[lead:] == v.shape and all(k == 1 for k in want[:lead]):
                kept.append((len(args), a, want))  # broadcasts as it is, if another has
                args.append(m[a] if a.__class__ is int else a)  # the leading axes
                shapes.append(v.shape)
            else:
                args.append(moved(a, want, prim) if a.__class__ is int else
                            Const(v.reshape(want)))
                shapes.append(want)
        for k, a, want in kept:
            if np.broadcast_shapes(*shapes) == tuple(shape):
                break
            args[k] = moved(a, want, prim) if a.__class__ is int else Const(
                _value(ops, a).reshape(want))  # the result's shape needs this one's axes
            shapes[k] = want
        n += 1
        new.append(Op("op", op.prim, tuple(args), op.kw, op.ans.reshape(shape)))
        return len(new) - 1

    for i, op in enumerate(ops):
        x = op.args[0] if op.args else None
        if op.kind == "op" and op.prim.name == "reshape" and x.__class__ is int \
                and op.ans.__class__ is np.ndarray and _sinks(ops, x, op.ans.shape, readers):
            m[i] = moved(x, op.ans.shape, op.prim)
            continue
        new.append(Op(op.kind, op.prim, _remap(op.args, m), op.kw, op.ans))
        m[i] = len(new) - 1
    if not n:
        return graph, 0
    return Graph(new, [m[i] for i in graph.inputs], [m[a] if a.__class__ is int else a
                                                      for a in graph.outputs], graph.odef), n


# -- broadcasts only where a consumer needs them ----------------------------------------------

def broadcast(graph):
    """An elementwise op that broadcasts reads ``broadcast_to(x, s)``'s source ``x`` itself
    when its result has shape ``s`` anyway (the broadcast node then dies in ``dce``)."""
    def rule(ops, op, i=None):
        if not op.prim.bcast or op.ans.__class__ is not np.ndarray:
            return None
        args, changed = list(op.args), False
        for k, a in enumerate(args):
            if a.__class__ is int and ops[a].kind == "op" and ops[a].prim.name == "broadcast_to":
                src = ops[a].args[0]
                sv = _value(ops, src)
                if sv.__class__ is np.ndarray and ops[a].ans.shape == op.ans.shape:
                    trial = args[:k] + [src] + args[k + 1:]
                    shapes = [np.shape(_value(ops, b)) for b in trial]
                    if np.broadcast_shapes(*shapes) == op.ans.shape:
                        args, changed = trial, True
        return Op("op", op.prim, tuple(args), op.kw, op.ans) if changed else None

    return _rewrite(graph, lambda ops, op, i: _once(rule, ops, op))


def _uniform_value(a):
    """The one value every element of array ``a`` holds, bit for bit, as a numpy scalar of
    its dtype (which promotes as the array does); None if there is none."""
    if a.__class__ is not np.ndarray or a.ndim == 0 or a.size == 0 \
            or a.dtype.kind not in "biuf":
        return None
    first = a.reshape(-1)[0]
    if not np.all(a == first) or (a.dtype.kind == "f" and not np.all(
            np.signbit(a) == np.signbit(first))):
        return None
    return a.dtype.type(first)


def uniform(graph):
    """An elementwise op reads a uniform constant array as a scalar when the result has
    the same shape without it (``simplify`` then drops a ``* 1``)."""
    def rule(ops, op, i=None):
        if not op.prim.bcast or op.ans.__class__ is not np.ndarray:
            return None
        args, changed = list(op.args), False
        for k, a in enumerate(args):
            v = _uniform_value(a.value) if a.__class__ is Const else None
            if v is not None:
                shapes = [np.shape(_value(ops, b)) for j, b in enumerate(args) if j != k]
                if np.broadcast_shapes(*shapes) == op.ans.shape:
                    args[k], changed = Const(v), True
        return Op("op", op.prim, tuple(args), op.kw, op.ans) if changed else None

    return _rewrite(graph, lambda ops, op, i: _once(rule, ops, op))


def _once(rule, ops, op):
    """One rewrite per op: the rewritten op is final."""
    if getattr(op, "_done", False):
        return None
    r = rule(ops, op)
    return None if r is None else _Final(r)


class _Final(Op):
    __slots__ = ("_done",)

    def __init__(self, op):
        super().__init__(op.kind, op.prim, op.args, op.kw, op.ans)
        self._done = True


PASSES = {"fold": fold, "uniform": uniform, "simplify": simplify, "layout": layout,
          "broadcast": broadcast, "cse": cse, "dce": dce}
