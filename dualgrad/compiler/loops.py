"""One fusion region as one loop: the builder both kernel emitters use.

On every target a region's kernel does the same: it reads each input at the loop's
indices (a broadcast axis at 0, a reverse sweep's padded cotangent at shifted indices with
0 outside, a 0-d value once before the loop), computes each live node from its row's
``scalar`` form, stores the values read outside the region and steps the reductions.
``Loop`` writes those lines once.  Where the targets differ is spelling, and a
``Target`` says it:

    Target.        CPU (emit_cpu.Numba)                   CUDA (emit_cuda.Cuda)
    array(v)       a numpy array                          also a device array
    once(p)        x0 = np.asarray(a0)[()] (a 0-d array     x0 = a0[0] (its launcher reshapes)
                   or a number: replays pass either)
    math(op, a)    the row's scalar form; in a ``fast``   the row's scalar form (``np`` is
                   loop vecmath's ``vm.exp``...            kernels.cuda.NP: numba-cuda's math)
    stores(op, d)  arrays, when there is a loop           every output (a scalar at [0])
    accumulator    a kept axis: an array ``r[i0,]``;       a kept axis: a local ``q`` per
                   everything: a local ``s``              thread; everything: a local ``s``
    declare        @njit(cache=True, ...)                 @cuda.jit(cache=True)
                   def kernel(a0, ...):                   def _k(a0, ..., o0, ..., n0, ...):
    outer          for i0 in range(n0):  (or prange)      for t in range(cuda.grid(1), n,
                       for i1 in range(n1):                             cuda.gridsize(1)):
                                                              i1 = t % n1 ...
    (inner axes)   none                                   the reduced axes, looped per thread

``Loop.lines`` lays the kernel out: the declaration, the target's lines before the loop,
the outer loop, per outer index the accumulators' start, the inner loops, the reads and
the body, the accumulators' stores, and the target's lines after.  What surrounds the
loop stays the target's own: the CPU's allocations, range checks and result tuple
(emit_cpu.py), the CUDA block tree and launcher (emit_cuda.py).

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.compiler import emit_cpu, regions
    >>> g = dg.jit(lambda x: np.sum(np.sin(x) * x)).lower(np.ones(3)).after
    >>> (r,) = regions.partition(g)
    >>> loop = Loop(g, r, emit_cpu.Numba())
    >>> loop.loads, loop.body
    (['x0 = a0[i0,]'], ['v0 = np.sin(x0)', 'v1 = (v0 * x0)', 's2 += v1'])
"""

import re

import numpy as np

from .regions import (
    FLOATS,
    REDUCTIONS,
    diagonal_test,
    input_key,
    is_array,
    is_array_const,
    value_of,
)
from .regions import dtype as dtype_of


class Target:
    """How a target spells a loop (the table in the module docstring); the defaults are
    numpy's."""

    def once(self, p):
        """How a 0-d input ``p`` is read before the loop: a replay may pass a 0-d array or
        the number itself (a Python float argument), and numba types each."""
        return f"np.asarray({p})[()]"

    def __init__(self):
        self.checks = []  # lines the body ends with (the CPU's fast loop: range checks)

    def array(self, v):
        """Whether ``v`` is read as an array (else passed as a scalar argument)."""
        return v.__class__ is np.ndarray

    def contiguous(self, p):
        """The line that makes input ``p`` contiguous before the loop, or None: numba
        vectorizes a loop only over arrays it knows are (a column slice ``a[:, :H]`` of an
        LSTM's gates read in place ran 15x slower than a copy and a vector loop)."""
        return f"np.ascontiguousarray({p})"

    def math(self, op, args):
        """The expression of node ``op`` on the sources ``args``."""
        return op.prim.scalar(*args, **(op.kw or {}))

    def stores(self, op, d):
        """Whether output ``op`` is stored into an array ``o{n}`` (else returned as is)."""
        raise NotImplementedError

    def accumulator(self, n, axes, d):
        """The accumulator of reduction ``n`` over ``axes`` of a ``d``-axis loop."""
        raise NotImplementedError

    def declare(self, name, params, loop):
        """The decorator and ``def`` lines."""
        raise NotImplementedError

    def outer(self, loop):
        """``(lines, indent)``: the lines that open the loop over ``loop.outer`` and the
        indentation inside it."""
        raise NotImplementedError


class Reduction:
    """A reduction of the loop: node ``j`` (``op``, local number ``n``) over ``axes``,
    stepping ``acc`` from ``init``."""

    __slots__ = ("j", "op", "n", "axes", "acc", "init")

    def __init__(self, j, op, n, axes, acc, init):
        self.j, self.op, self.n, self.axes, self.acc, self.init = j, op, n, axes, acc, init


class Loop:
    """One region's loop for ``target``: ``inner`` are the axes looped inside each index of
    the others (``outer``).

    ``params`` the kernel's inputs ``a0, a1, ...``; ``reads[k]`` how input ``k`` is read
    (``"each"`` at the loop's indices, ``"pad"`` at shifted ones, ``"diag"`` not at all: a
    comparison of indices, ``"once"`` before the
    loop, ``"value"`` a scalar argument used as is); ``pre`` the reads before the loop;
    ``loads`` and ``body`` the lines per index; ``stored`` output -> its array's name;
    ``reductions``; ``local`` value number -> the number its locals carry.  Locals are
    numbered within the region, so one region repeated by an unrolled loop (an LSTM's
    steps, RK4's stages) gives one source, compiled once (kernel.load)."""

    def __init__(self, graph, region, target, inner=(), straight=True):
        ops = graph.ops
        loop = self.shape = region.shape
        d = self.d = len(loop)
        self.target, self.inner = target, tuple(inner)
        self.outer = [k for k in range(d) if k not in self.inner]
        self.local = {i: n for n, i in enumerate(
            sorted(region.ops + region.copied + region.reduced))}
        self.params = [f"a{k}" for k in range(len(region.inputs))]
        names, self.reads, self.pre, self.loads, self.body = {}, [], [], [], []
        self.interior = []  # the loads where every padded input has data (``peel``)
        shifted_only = _shifted_only(ops, region)
        for k, a in enumerate(region.inputs):
            p, v = self.params[k], value_of(ops, a)
            key = input_key(a)
            if key in shifted_only or key in region.shifted:  # recomputed, below
                self.reads.append("shifted")
                continue
            if a.__class__ is int and a in region.pads:  # v placed in zeros: a shifted read
                self.reads.append("pad")
                self.loads.append(pad_load(k, p, v, region.pads[a], loop))
                self.interior.append(pad_load(k, p, v, region.pads[a], loop, True))
            elif key in region.diags and d:  # a diagonal constant: a comparison, no read
                self.reads.append("diag")
                self.loads.append(diag_load(k, v, region.diags[key], d))
                self.interior.append(self.loads[-1])
            elif not target.array(v):
                self.reads.append("value")
                names[key] = p
                continue
            elif v.ndim == 0 or d == 0:
                self.reads.append("once")
                self.pre.append(f"x{k} = {target.once(p)}")
            else:
                self.reads.append("each")
                self.loads.append(f"x{k} = {p}{_index(v.shape, loop)}")
                self.interior.append(self.loads[-1])
            names[key] = f"x{k}"
        for j, (a, how) in enumerate(region.shifted.items()):
            self.loads.extend(shifted_load(j, ops, region, how, loop, target))
            self.interior.extend(shifted_load(j, ops, region, how, loop, target, True))
            names[a] = f"y{j}"
        self.peel = _peel(region, d) if not self.inner else None
        strided = []  # inputs copied once to contiguous arrays, then read in vector loops
        for k, a in enumerate(region.inputs):
            v = value_of(ops, region.source(a))
            if self.reads[k] in ("each", "pad", "shifted") and v.__class__ is np.ndarray \
                    and v.ndim > 1 and not v.flags.c_contiguous and d:
                line = target.contiguous(self.params[k])  # a new name: numba types it C
                if line is not None:
                    self.pre.append(f"{self.params[k]}c = {line}")
                    strided.append(self.params[k])
        if strided:  # one pass over the reads (a rolled region has thousands)
            read = re.compile(rf"\b({'|'.join(strided)})\[")
            self.loads = [read.sub(r"\1c[", s) for s in self.loads]
            self.interior = [read.sub(r"\1c[", s) for s in self.interior]
        self.names = dict(names)  # the inputs' sources (roll.py writes its own body)
        self.stored, self.reductions = {}, []
        if straight:  # else the caller writes the body (``write``, or roll.py's)
            self.write(graph, region)

    def write(self, graph, region):
        """The body: one line per live node, the outputs' stores, the reductions' steps."""
        ops, loop, d, local, target = graph.ops, self.shape, self.d, self.local, self.target
        names = dict(self.names)
        at = _index(loop, loop) if d else "[0]"
        self.stored = {}
        for i in live(graph, region):
            op = ops[i]
            expr = target.math(op, operands(op, ops, names))
            if dtype_of(op.ans) == np.dtype(np.float32):
                expr = f"np.float32({expr})"
            v = names[i] = f"v{local[i]}"
            self.body.append(f"{v} = {expr}")
            if i in region.outputs and target.stores(op, d):
                o = self.stored[i] = f"o{local[i]}"
                self.body.append(f"{o}{at} = {v}")
        self.reductions = []
        for j in region.reduced:
            op = ops[j]
            init, step = REDUCTIONS[op.prim.name]
            axes = sorted(set(a % d for a in op.kw["axis"])) if d else []
            acc = target.accumulator(local[j], axes, d)
            self.body.extend(step.format(a=acc, v=names[op.args[0]])
                             .replace(": ", ":\n    ").split("\n"))
            self.reductions.append(Reduction(j, op, local[j], axes, acc, init))

    def lines(self, name, params, head=(), start=(), end=(), tail=()):
        """The kernel ``def name(*params)``: ``head`` before the loop, ``start``/``end``
        before and after the inner loops at each outer index, ``tail`` after the loop."""
        target = self.target
        lines = target.declare(name, params, self) + ["    " + s for s in head]
        opened, ind = target.outer(self)
        q = self.d - 1
        last = f"for i{q} in range(n{q}):"
        if self.peel is not None and not start and not end and opened \
                and opened[-1].strip() == last:  # the padded edges, then the interior
            lo, hi = self.peel
            outer = opened[-1][:-len(last)]
            edge = [ind + s for s in self.loads + self.body + target.checks]
            lines += opened[:-1]
            lines.append(f"{outer}for i{q} in range(min({lo}, n{q})):")
            lines += edge
            lines.append(f"{outer}for i{q} in range({lo}, n{q} - {hi}):")
            lines += [ind + s for s in self.interior + self.body + target.checks]
            lines.append(f"{outer}for i{q} in range(max({lo}, n{q} - {hi}), n{q}):")
            return lines + edge + list(tail)
        lines += opened + [ind + s for s in start]
        deep = ind
        for k in self.inner:
            lines.append(f"{deep}for i{k} in range(n{k}):")
            deep += "    "
        lines += [deep + s for s in self.loads + self.body + target.checks]
        return lines + [ind + s for s in end] + list(tail)


# -- the pieces of source ---------------------------------------------------------------

def _literal(v, dtype):
    """A scalar constant as source, typed ``dtype`` (a float32 loop stays float32)."""
    if v is None:
        return "None"
    if isinstance(v, (bool, np.bool_)) and dtype == np.dtype(bool):
        return repr(bool(v))
    f = float(v)
    text = "np.inf" if f == np.inf else "-np.inf" if f == -np.inf else (
        "np.nan" if f != f else repr(f))
    if dtype == np.dtype(np.float32):
        return f"np.float32({text})"
    return text


def _const_dtype(op, ops):
    """The dtype a scalar constant argument of ``op`` takes (numpy's weak scalars)."""
    ans = dtype_of(op.ans)
    if ans in FLOATS:
        return ans
    for a in op.args:  # a comparison: the other operand's float dtype
        if a.__class__ is int:
            d = dtype_of(ops[a].ans)
            if d in FLOATS:
                return d
    return np.dtype(np.float64)


def _index(shape, loop):
    """How a value of ``shape`` is indexed inside loops over ``loop`` (broadcasting)."""
    if not shape:
        return "[()]"
    off = len(loop) - len(shape)
    parts = ["0" if n == 1 and loop[off + k] != 1 else f"i{off + k}"
             for k, n in enumerate(shape)]
    return "[" + ", ".join(parts) + ("," if len(parts) == 1 else "") + "]"


def operands(op, ops, names):
    """The source of each argument of ``op`` in a kernel: a local's name (``names``, keyed by
    value number or by an array constant's id), a lifted scalar's parameter cast to the
    loop's type, or a literal typed for the loop."""
    cd = _const_dtype(op, ops)
    args = []
    for a in op.args:
        if a.__class__ is int:
            args.append(names[a])
        elif is_array_const(a):
            args.append(names[id(a)])
        elif input_key(a) in names:  # a lifted scalar (regions.is_lifted), typed for the loop
            args.append(f"np.{cd.name}({names[input_key(a)]})")
        else:
            v = a.value
            args.append(_literal(v.item() if hasattr(v, "item") else v, cd))
    return args


def pad_load(k, p, v, pad, loop, interior=False):
    """``x{k} = ...``: input ``p`` is the unpadded ``v`` of a padded value (``pad`` is
    region.pads' entry), read at shifted indices and 0 outside them.

    The offsets are in the source (not arguments): the zeros before (``lo``) and after
    (``tail``) the data along each axis, the upper bound written from the extent ``n{q}``.
    So ``x[1:]``'s and ``x[:-1]``'s cotangents, which pad one element at one end whatever
    the length, give one source for every length; a slice such as ``x[2:5]`` (a tail that
    grows with the length) gives one source per length, which is correct, only not shared.
    ``interior``: the loop runs only where every padded input has data (``Loop.peel``),
    so the read needs no test."""
    _, starts, stops = pad
    inside = "" if interior else _inside(starts, stops, loop)
    at = ", ".join(f"i{q} - {lo}" if lo else f"i{q}" for q, lo in enumerate(starts))
    zero = _literal(0.0, v.dtype)
    return f"x{k} = {p}[{at}] if {inside} else {zero}" if inside else f"x{k} = {p}[{at}]"


def _peel(region, d):
    """``(lo, hi)`` when every padded input (``pads``, ``shifted``) lacks data only along the
    last axis: the first ``lo`` and last ``hi`` indices there; the loop then runs them
    apart (``Loop.lines``: the edges with the tests, the interior without, so LLVM can
    vectorize it).  None when there is nothing to peel or an earlier axis is padded."""
    pads = [(st, sp) for _, st, sp in region.pads.values()] + [
        (st, sp) for st, sp, _, _ in region.shifted.values()]
    if not pads or not d or region.reduced:
        return None
    loop = region.shape
    lo = hi = 0
    for starts, stops in pads:
        if any(starts[q] or stops[q] != loop[q] for q in range(d - 1)):
            return None
        lo, hi = max(lo, starts[-1]), max(hi, loop[-1] - stops[-1])
    return (lo, hi) if lo or hi else None


def _shifted_only(ops, region):
    """The input keys only the recomputed padded values read (``region.shifted``)."""
    if not region.shifted:
        return frozenset()
    body = set(region.ops) | set(region.copied)
    direct = set(input_key(a) for i in body for a in ops[i].args)
    direct.update(input_key(ops[j].args[0]) for j in region.reduced)
    return frozenset(input_key(b) for _, _, _, leaves in region.shifted.values()
                     for b in leaves) - direct - set(region.shifted)


def _inside(starts, stops, loop):
    """The condition that loop index ``(i0, i1, ...)`` is inside a padded value's data."""
    inside = []
    for q, (lo, hi) in enumerate(zip(starts, stops)):
        tail = loop[q] - hi
        upper = f" < n{q} - {tail}" if tail else ""
        if lo and upper:
            inside.append(f"{lo} <= i{q}{upper}")
        elif lo or upper:
            inside.append(f"{lo} <= i{q}" if lo else f"i{q}{upper}")
    return " and ".join(inside)


def shifted_load(j, ops, region, how, loop, target, interior=False):
    """The lines that give ``y{j}``: a padded value recomputed at shifted indices from its
    chain (regions._chain), 0 outside its data::

        if i2 < n2 - 1:
            t0_0 = a3[i0, 0, i2]
            t0_1 = (t0_0 * 2.0)
            y0 = t0_1
        else:
            y0 = 0.0
    """
    starts, stops, chain, leaves = how
    d = len(loop)
    names, lines = {}, []
    where = {input_key(c): n for n, c in enumerate(region.inputs)}
    for b in leaves:
        key = input_key(b)
        p, v = f"a{where[key]}", value_of(ops, b)
        if not target.array(v):
            names[key] = p
            continue
        name = names[key] = f"t{j}_a{where[key]}"
        if key in region.diags:
            value, zero, pa, qa = region.diags[key][:4]
            lead = d - v.ndim
            test = diagonal_test(region.diags[key], v.shape, f"i{lead + pa}", f"i{lead + qa}",
                                 starts[lead + pa], starts[lead + qa])
            lines.append(f"{name} = {_literal(value, v.dtype)} if {test} "
                         f"else {_literal(zero, v.dtype)}")
        elif v.ndim == 0:
            lines.append(f"{name} = {target.once(p)}")
        else:
            lead = d - v.ndim
            at = ["0" if n == 1 and loop[lead + q] != 1 else
                  (f"i{lead + q} - {starts[lead + q]}" if starts[lead + q] else f"i{lead + q}")
                  for q, n in enumerate(v.shape)]
            lines.append(f"{name} = {p}[{', '.join(at)}{',' if len(at) == 1 else ''}]")
    for i in chain:
        op = ops[i]
        expr = target.math(op, operands(op, ops, names))
        if dtype_of(op.ans) == np.dtype(np.float32):
            expr = f"np.float32({expr})"
        names[i] = f"t{j}_{i}"
        lines.append(f"{names[i]} = {expr}")
    v = value_of(ops, chain[-1])
    inside = "" if interior else _inside(starts, stops, loop)
    if not inside:
        return lines + [f"y{j} = {names[chain[-1]]}"]
    return ([f"if {inside}:"] + ["    " + s for s in lines] + [f"    y{j} = {names[chain[-1]]}",
            "else:", f"    y{j} = {_literal(0.0, v.dtype)}"])


def diag_load(k, v, diag, d):
    """``x{k} = ...``: a diagonal constant (regions.diagonal) as a comparison of two loop
    indices: ``x0 = 1.0 if i0 - i1 == 1 else 0.0`` for ``eye(n)[:, 1:]``."""
    value, zero, p, q = diag[:4]
    lead = d - v.ndim
    test = diagonal_test(diag, v.shape, f"i{lead + p}", f"i{lead + q}")
    return f"x{k} = {_literal(value, v.dtype)} if {test} else {_literal(zero, v.dtype)}"


def extents(ops, region):
    """The source of each loop extent ``n0, n1, ...``, read from the inputs' shapes, so the
    kernel is generic over shape as numba's compiled code is over array size: what a
    source fixes is the structure (the nodes, dtypes, rank, and which input axes are
    broadcast: ``_index`` writes ``0`` for those, ``i{k}`` for the rest), never a length.

    Axis ``k``'s extent is the first input that spans it (an axis indexed ``i{k}`` has the
    loop's length there), else a padded input's length plus its zeros; an axis no input
    spans (none known: a region's result shape comes from its inputs) keeps its length in
    the source."""
    loop = region.shape
    d = len(loop)
    got = [None] * d
    shifted_only = _shifted_only(ops, region)
    for j, a in enumerate(region.inputs):
        v = value_of(ops, a)
        if (a.__class__ is int and a in region.pads) or not is_array(v) or not d \
                or input_key(a) in shifted_only or input_key(a) in region.shifted:
            continue
        off = d - v.ndim
        for q, n in enumerate(v.shape):
            if n == loop[off + q] and got[off + q] is None:
                got[off + q] = f"a{j}.shape[{q}]"
    for j, a in enumerate(region.inputs):
        if a.__class__ is int and a in region.pads:
            _, starts, stops = region.pads[a]
            for q in range(d):
                extra = loop[q] - (stops[q] - starts[q])
                if got[q] is None:
                    got[q] = f"a{j}.shape[{q}] + {extra}" if extra else f"a{j}.shape[{q}]"
    return [g if g is not None else repr(n) for g, n in zip(got, loop)]


def source_tuple(items):
    """``(a, b)`` / ``(a,)`` / ``()`` as source."""
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def live(graph, region):
    """The body nodes whose values the region's outputs and reductions need."""
    ops = graph.ops
    body = sorted(region.ops + region.copied)
    inside = set(body)
    live = set(i for i in region.outputs if i in inside)
    live.update(ops[j].args[0] for j in region.reduced)
    for i in reversed(body):
        if i in live:
            live.update(a for a in ops[i].args if a.__class__ is int and a in inside)
    return [i for i in body if i in live]


