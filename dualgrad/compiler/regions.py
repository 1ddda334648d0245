"""``dg.jit``'s fusion regions: which nodes of the optimised graph share one loop.

**Regions.**  A region is a set of elementwise nodes of one result shape (the rows of the
primitive table that carry a ``scalar`` form: the broadcasting ufuncs, ``where``,
comparisons, casts) together with the ``sum``/``max``/``min``/``prod`` nodes that reduce
them (``partition``).  With each region one node, the graph must stay acyclic, so a
backward loop that needs a forward reduction (``1/sum(exp(x))``) is a second region.  A
value leaves a region only if a node outside it, or the graph's output, reads it
(``wire``).  Matmuls, gathers, reshapes and everything without a scalar form are replayed
as before, between the kernels (emit_cpu.py and emit_cuda.py write them).

**Recompute or store.**  When a later region needs an elementwise value of an earlier one,
storing it costs a write and a read of the whole array; recomputing it in the later loop
costs only its own inputs' reads, if that loop does not read them already.  Cheap
arithmetic (no transcendental) is recomputed where that moves fewer arrays
(``recompute``), as PyTorch's min-cut rematerialisation and tinygrad's scheduler decide by
memory traffic.  A reverse sweep's padded cotangent (``x[1:]``'s, placed in zeros) is read
at shifted indices rather than copied (``_pad``), and where it is cheap arithmetic of an
earlier loop, recomputed there at shifted indices rather than stored (``_chain``).

**Diagonal constants.**  ``jacfwd``, ``jacrev`` and ``hessian`` seed their batched sweeps
with the identity, and slices of it (``x[1:]``'s tangents: ``eye(n)[:, 1:]``) fold into
constant arrays that a loop would read element by element.  A constant that holds one
value on one diagonal of two axes (``i_p - i_q == k``) and zeros elsewhere is written into
the loop as that comparison (``diagonal``), as XLA fuses ``iota == iota``: no memory read.
"""

import numpy as np

from .graph import Const
from .writes import small

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_DTYPES = frozenset(FLOATS + (np.dtype(bool),))
_INPUT_DTYPES = frozenset(np.dtype(c) for c in (np.float32, np.float64, np.bool_, np.int8,
                                                 np.int16, np.int32, np.int64, np.uint8))
_SCALARS = (float, int, bool, np.float64, np.float32, np.bool_, np.int64, np.int32)
REDUCTIONS = {"sum": ("0.0", "{a} += {v}"), "prod": ("1.0", "{a} *= {v}"),
              # max/min propagate NaN as numpy does: once the accumulator is NaN it stays
              "max": ("-np.inf", "if {a} == {a} and not {v} <= {a}: {a} = {v}"),
              "min": ("np.inf", "if {a} == {a} and not {v} >= {a}: {a} = {v}")}
CHEAP = frozenset(("add", "subtract", "multiply", "negative", "positive", "square",
                   "absolute", "fabs", "maximum", "minimum", "where", "less", "less_equal",
                   "greater", "greater_equal", "equal", "not_equal", "astype"))
MAX_OPS = 150  # ops per kernel: numba's compile time grows with a function's length


def is_array(v):
    """A numpy array or a GPU array (``__cuda_array_interface__``: CuPy's, which the CUDA
    target's kernels read zero-copy)."""
    return v.__class__ is np.ndarray or hasattr(v.__class__, "__cuda_array_interface__")


_FLOAT = ((), np.dtype(np.float64))


def info(v):
    """(shape, dtype) of a value a kernel can read, or None."""
    c = v.__class__
    if c is float:  # first: an unrolled scalar loop asks thousands of times
        return _FLOAT
    if c is np.ndarray or hasattr(c, "__cuda_array_interface__"):
        return (v.shape, v.dtype) if v.dtype in _INPUT_DTYPES else None
    if c is bool:
        return (), np.dtype(bool)
    if c is int:
        return ((), np.dtype(np.int64)) if -2**62 < v < 2**62 else None
    if c in _SCALARS:
        return (), v.dtype
    return None


def value_of(ops, a):
    return ops[a].ans if a.__class__ is int else a.value


def _elementwise(op, ops):
    """The result shape of a node a kernel can compute, or None."""
    if op.kind != "op" or op.prim.scalar is None or small(op, ops):
        return None
    out = info(op.ans)
    if out is None or out[1] not in _DTYPES or 0 in out[0]:
        return None
    for a in op.args:
        if a.__class__ is Const and a.value is None:
            continue
        i = info(value_of(ops, a))
        if i is None or len(i[0]) > len(out[0]):
            return None
    return out[0]


def _reduction(op, ops, region_of, regions):
    """The region a reduction node can join, or None."""
    if op.kind != "op" or op.prim.name not in REDUCTIONS or len(op.args) != 1:
        return None
    a = op.args[0]
    if a.__class__ is not int or region_of[a] < 0:
        return None
    r = regions[region_of[a]]
    if a in r.reduced or info(op.ans) is None or not is_array(ops[a].ans) \
            or ops[a].ans.dtype not in FLOATS or len(r.ops) >= MAX_OPS:
        return None
    return r


class Region:
    """Nodes fused into one loop: ``ops`` (elementwise, in order), ``reduced`` (reductions
    of them), the loop ``shape``; ``inputs``/``outputs`` are filled by ``partition``."""

    __slots__ = ("index", "shape", "ops", "reduced", "inputs", "outputs", "copied", "pads",
                 "diags", "shifted", "rolls")

    def __init__(self, index, shape):
        self.index, self.shape = index, shape
        self.ops, self.reduced, self.inputs, self.outputs, self.copied = [], [], [], [], []
        self.pads = {}  # input -> (v, starts, stops): it is v placed in zeros (``_pad``)
        self.diags = {}  # input key -> (value, zero, p, q, k): a diagonal constant
        self.shifted = {}  # padded value -> (starts, stops, chain, leaves): recomputed
        self.rolls = None  # (live nodes, their runs): roll.py's, found once

    def source(self, a):
        """What the kernel is passed for input ``a``: a padded input's unpadded array; for
        one recomputed at shifted indices, its chain's first value, unread (the padded
        copy is never made: the parameter only keeps the kernel's signature)."""
        if a in self.pads:
            return self.pads[a][0]
        return self.shifted[a][3][0] if a in self.shifted else a

    @property
    def size(self):
        return len(self.ops) + len(self.reduced)

    def __repr__(self):
        return f"<Region {self.index} shape={self.shape} ops={self.ops} reduced={self.reduced}>"


def partition(graph, scalar_cap=MAX_OPS):
    """The fusion regions of ``graph`` (each with two or more nodes), in graph order.

    A region holds at most MAX_OPS nodes, a scalar one (shape ``()``) ``scalar_cap``:
    fuse.py asks for long scalar regions where roll.py writes their repeats as loops.

    An elementwise node joins the latest region of its shape, else starts one; a reduction
    joins its argument's region.  A node alone stays numpy's, unless it is an outer product
    (``_outer``), and so does a bag of unrelated pieces of a few entries (``_bag``).
    Regions must not form a cycle once each is one node (a path from a region back into it
    through nodes outside it, perhaps through other regions).  The invariant that excludes
    one cheaply: a region reads only values that
    depend on earlier regions.  ``top[v]`` is the latest region ``v`` depends on (its own
    included), so a node joins region ``r`` only if every argument from outside ``r``
    (a reduction of ``r`` is outside its loop) has ``top < r``."""
    ops = graph.ops
    region_of = [-1] * len(ops)
    top = [-1] * len(ops)
    regions, latest = [], {}
    for i, op in enumerate(ops):
        args = [a for a in op.args if a.__class__ is int]
        shape = _elementwise(op, ops)
        target = None
        if shape is not None:
            r = latest.get(shape)
            if r is not None and len(r.ops) < (scalar_cap if not shape else MAX_OPS) and all(
                    top[b] < r.index for b in args
                    if region_of[b] != r.index or b in r.reduced):
                target = r
            else:
                target = latest[shape] = Region(len(regions), shape)
                regions.append(target)
            target.ops.append(i)
        else:
            target = _reduction(op, ops, region_of, regions)
            if target is not None:
                target.reduced.append(i)
        if target is not None:
            region_of[i] = top[i] = target.index
        else:
            top[i] = max((top[a] for a in args), default=-1)
    kept = [r for r in regions if (r.size >= 2 or _outer(ops, r)) and not _bag(ops, r)]
    wire(graph, kept)
    return kept


def _bag(ops, region):
    """Whether a region is a bag of unrelated pieces of a few entries each: eight or more
    parts that share no node, each one node and perhaps its reduction (an unrolled loop's
    slices: the naive conv's ``np.sum(x_pad[n, :, i:i+3, j:j+3] * w[f])``, 27 entries
    each).  Its kernel saves little at replay (the naive conv's jitted gradient: 7%), and
    each such region writes a kernel of its own to compile (111 regions of 36 sources:
    5.5 s of a 9.7 s build with numba's cache warm); numpy computes the pieces instead."""
    if not region.shape or int(np.prod(region.shape)) > 64:
        return False
    nodes = region.ops + region.reduced
    inside = set(nodes)
    parts = 0
    for i in nodes:
        reads = [a for a in ops[i].args if a.__class__ is int and a in inside]
        if len(reads) > 1 or (reads and ops[reads[0]].args and any(
                a.__class__ is int and a in inside for a in ops[reads[0]].args)):
            return False  # a chain of three or more, or a node joining two
        parts += not reads
    return parts >= 8


def _outer(ops, region):
    """Whether a one-node region is an outer product: two array arguments, each smaller
    than the result (``a[:, :, None] * b[:, None, :]``), where numpy's broadcasting loop
    runs its short inner axis element by element (per-example gradients: 256 x 32 x 32 in
    0.18 ms, against 0.04 ms to fill as many entries) and a kernel's loop vectorises."""
    if region.size != 1 or not region.ops:
        return False
    op = ops[region.ops[0]]
    sizes = [value_of(ops, a).size for a in op.args if is_array(value_of(ops, a))]
    return len(sizes) == 2 and max(sizes) < op.ans.size and op.ans.size >= 4096


def wire(graph, regions):
    """Fill each region's ``inputs`` (values it reads from outside: value numbers, array
    constants and lifted scalar constants, ``is_lifted``) and ``outputs`` (its values read
    outside it, or returned)."""
    ops = graph.ops
    member = {}
    for r in regions:
        for i in r.ops + r.reduced:
            member[i] = r
    needed = set(a for a in graph.outputs if a.__class__ is int)
    for r in regions:
        body = set(r.ops) | set(r.reduced) | set(r.copied)
        r.inputs, seen = [], set()
        for i in sorted(body):
            for a in ops[i].args:
                key = input_key(a)
                if key in seen or (a.__class__ is int and a in body):
                    continue
                if a.__class__ is int or is_array_const(a) or is_lifted(a):
                    seen.add(key)
                    r.inputs.append(a)
        r.pads = {a: p for a in r.inputs if a.__class__ is int
                  and (p := _pad(ops, a, r.shape)) is not None}
        r.shifted = {}
        for a, (v, starts, stops) in list(r.pads.items()):
            chain = _chain(ops, v, member.get(v))
            # a leaf this region computes itself (a value recompute copied in) exists at
            # the loop's own index only, never at the shifted ones: the padded copy stays
            if chain is not None and not any(b.__class__ is int and b in body
                                             for b in chain[-1]):
                r.shifted[a] = (starts, stops) + chain
                del r.pads[a]
        if r.shifted:  # the chains' inputs are read instead of the padded values
            for _, _, _, leaves in r.shifted.values():
                for b in leaves:
                    if input_key(b) not in seen:
                        seen.add(input_key(b))
                        r.inputs.append(b)
        needed.update(a for a in r.inputs if a.__class__ is int and a not in r.shifted)
        needed.update(v for v, _, _ in r.pads.values() if v.__class__ is int)
        r.diags = {input_key(a): d for a in r.inputs if a.__class__ is Const
                   and (d := diagonal(a.value)) is not None}
    recomputed = set(a for r in regions for a in r.shifted)
    for i, op in enumerate(ops):  # a padded copy every reader recomputes needs nothing
        if i not in member and i not in recomputed:
            needed.update(a for a in op.args if a.__class__ is int)
    needed.update(a for i in recomputed & needed for a in ops[i].args if a.__class__ is int)
    for r in regions:
        r.outputs = [i for i in r.ops + r.reduced if i in needed]


MAX_CHAIN = 12  # nodes of a padded value recomputed at shifted indices (``_chain``)


def _chain(ops, v, src):
    """``(chain, leaves)`` when value ``v`` of region ``src`` can be recomputed where a
    later loop reads it padded, at shifted indices: ``v`` and the nodes of ``src`` it
    depends on (``chain``, in order) are cheap arithmetic on floats, and what they read
    from outside (``leaves``) are arrays, array constants or scalars, none of them itself
    a padded copy.  So a Hessian's ``x[1:]`` and ``x[:-1]`` terms, each computed and
    stored by one loop and read shifted by the next, become one loop that stores only
    the result; else None."""
    if src is None or v not in src.ops or v in src.copied:
        return None
    mine = set(src.ops)
    chain, leaves, todo, seen = set(), [], [v], set()
    while todo:
        n = todo.pop()
        if n in chain:
            continue
        op = ops[n]
        if op.prim.name not in CHEAP or dtype(op.ans) not in FLOATS:
            return None
        chain.add(n)
        if len(chain) > MAX_CHAIN:
            return None
        for b in op.args:
            if b.__class__ is int and b in mine:
                todo.append(b)
            elif b.__class__ is int or is_array_const(b) or is_lifted(b):
                key = input_key(b)
                if key in seen:
                    continue
                if b.__class__ is int and (ops[b].kind == "op"
                                           and ops[b].prim.name == "scatter_add"
                                           or info(ops[b].ans) is None):
                    return None
                seen.add(key)
                leaves.append(b)
    leaves.sort(key=lambda b: b.__class__ is not int)  # a value first: ``Region.source``
    if not leaves or leaves[0].__class__ is not int:
        return None
    return sorted(chain), leaves


def dtype(v):
    i = info(v)
    return None if i is None else i[1]


def _pad(ops, b, loop):
    """``(v, starts, stops)`` when value ``b`` is ``scatter_add(v, idx, shape)`` with ``idx``
    unit-step slices (a reverse sweep's cotangent of ``x[1:]``: ``v`` placed in zeros) and
    of the loop's shape: a kernel reads ``v`` at shifted indices, 0 outside, instead of the
    padded copy."""
    op = ops[b]
    if op.kind != "op" or op.prim.name != "scatter_add" or not op.kw or len(op.args) != 1:
        return None
    idx, shape, v = op.kw.get("idx"), op.kw.get("shape"), op.args[0]
    vv = value_of(ops, v)
    if not isinstance(idx, tuple) or not all(isinstance(k, slice) for k in idx) \
            or not is_array(vv) or vv.dtype not in FLOATS \
            or tuple(shape) != loop or len(idx) > len(loop):
        return None
    starts, stops = [], []
    for k, n in enumerate(loop):
        a, e, step = (idx[k] if k < len(idx) else slice(None)).indices(n)
        if step != 1 or e < a:
            return None
        starts.append(a)
        stops.append(e)
    if tuple(e - a for a, e in zip(starts, stops)) != vv.shape:
        return None
    return v, tuple(starts), tuple(stops)


def diagonal(v):
    """``(value, zero, p, q, k, lo, hi)`` when array ``v`` holds ``value`` wherever
    ``i_p - i_q == k`` and ``lo <= i_q < hi`` (a run of one diagonal: all of it, or a
    Hessian's constant term that stops one entry short) and ``zero`` (0.0 or -0.0)
    everywhere else, every axis but ``p`` and ``q`` of length 1; else None.

    >>> diagonal(np.eye(5)[:, 1:])
    (1.0, 0.0, 0, 1, 1, 0, 4)
    >>> diagonal(-2.0 * np.eye(4)[:, None, :]), diagonal(np.ones((4, 4)))
    ((-2.0, -0.0, 0, 2, 0, 0, 4), None)
    >>> diagonal(np.diag([2.0, 2.0, 2.0, 0.0]))
    (2.0, 0.0, 0, 1, 0, 0, 3)
    """
    if v.__class__ is not np.ndarray or v.dtype not in FLOATS or v.size < 16:
        return None
    axes = [a for a, n in enumerate(v.shape) if n > 1]
    if len(axes) != 2:
        return None
    p, q = axes
    m = v.reshape(v.shape[p], v.shape[q])
    rows, cols = np.nonzero(m)  # row-major: along one diagonal, columns ascending
    if not len(rows):
        return None
    k = int(rows[0] - cols[0])
    value = m[rows[0], cols[0]]
    lo, hi = int(cols[0]), int(cols[-1]) + 1
    count = hi - lo
    if len(rows) != count or not np.isfinite(value) or not np.all(rows - cols == k) \
            or not np.all(m[rows, cols] == value):
        return None
    negative = np.count_nonzero(np.signbit(m)) - (count if np.signbit(value) else 0)
    if negative not in (0, m.size - count):  # the zeros: all 0.0 or all -0.0
        return None
    return float(value), -0.0 if negative else 0.0, p, q, k, lo, hi


def diagonal_test(diag, shape, i_p, i_q, start_p=0, start_q=0):
    """The source of ``diagonal``'s test over loop indices ``i_p`` and ``i_q`` (names)
    that read the constant (of ``shape``) at ``i_p - start_p`` and ``i_q - start_q``:
    ``i0 - i1 == 1``, and the run's bounds where it stops short of the whole diagonal."""
    _, _, p, q, k, lo, hi = diag
    test = f"{i_p} - {i_q} == {k + start_p - start_q}"
    if (lo, hi) != (max(0, -k), min(shape[q], shape[p] - k)):
        test += f" and {lo + start_q} <= {i_q} < {hi + start_q}"
    return test


def input_key(a):
    """What identifies a kernel input: a value number, a lifted scalar constant by its class
    and value (an unrolled loop's ``x * 1.0001`` a thousand times is one argument, not a
    thousand: each argument costs the call its unboxing and the compile its code), any
    other constant by its identity."""
    if a.__class__ is int:
        return a
    if is_lifted(a):
        v = a.value
        return ("lifted", v.__class__, v)
    return id(a)


def is_array_const(c):
    return is_array(c.value) and c.value.ndim > 0


#: scalar constants kernels keep as literals (``is_lifted``)
_LITERAL = frozenset((0.0, 1.0, -1.0, 2.0, 0.5))


def is_lifted(c):
    """Whether the scalar constant ``c`` is a kernel argument rather than a literal in its
    source.  A graph's numbers are often its shape's (``np.mean``'s 1/n, a loss's
    1/batch), and a literal would make one kernel source per shape, against generic
    kernels (emit_cpu.py).  Literal stay bools, ±inf and NaN, and 0, ±1, 2 and 0.5,
    which are a rule's structure (masks, ``x * 2``, ``x > 0``) far more often than data
    and where LLVM can use the value (``x * 1``, ``x * 2`` as ``x + x``); a shape whose
    1/n is one of them gets a kernel of its own, which is still right."""
    if c.__class__ is not Const:
        return False
    if c.value.__class__ is float:  # the common case, quickly
        f = c.value
        return f == f and abs(f) != np.inf and f not in _LITERAL
    i = info(c.value)
    if i is None or i[0] != () or i[1].kind not in "fiu" or is_array(c.value):
        return False
    f = float(c.value)
    return f == f and abs(f) != np.inf and f not in _LITERAL


def recompute(graph, regions):
    """Copy cheap elementwise values into the later regions that read them (module
    docstring), counting arrays moved: recomputing a value in region ``r`` saves ``r``'s
    read of it, and its producer's write if nothing else outside the producer reads it;
    it costs a read of each input of it that ``r`` does not read already."""
    ops = graph.ops
    owner = {i: r for r in regions for i in r.ops}
    readers = {}
    for i, op in enumerate(ops):
        for a in op.args:
            if a.__class__ is int:
                readers.setdefault(a, set()).add(i)
    returned = set(a for a in graph.outputs if a.__class__ is int)
    members = {r.index: set(r.ops) | set(r.reduced) for r in regions}
    changed = True
    while changed:
        changed = False
        for r in regions:
            body = set(r.ops) | set(r.reduced) | set(r.copied)
            for a in list(r.inputs):
                src = owner.get(a) if a.__class__ is int else None
                if src is None or src is r or a in body or ops[a].prim.name not in CHEAP:
                    continue  # (one in body already: copying it again changes nothing)
                new = [b for b in ops[a].args if b.__class__ is int and b not in r.inputs
                       and b not in body]
                mine = members[src.index]
                unwritten = a not in returned and all(
                    u in mine or u in body for u in readers.get(a, ()))
                if len(new) < 1 + unwritten:
                    r.copied.append(a)
                    body.add(a)
                    changed = True
        if changed:  # one rewiring per sweep over the regions
            wire(graph, regions)
    return regions
