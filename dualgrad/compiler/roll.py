"""Loop rolling: a scalar region that repeats one block of nodes written as a ``for`` loop.

A Python loop over scalars, unrolled by the recording (the bench's ``chain``: a thousand
``x = sin(x) * 1.0001 + 0.1 * x * x``), makes a scalar region of thousands of nodes that
repeat one block (the forward step; its reverse sweep, another block, run backwards).
Written straight, each node is a line numba compiles (milliseconds each: type inference,
lowering and LLVM grow with the function); rolled, each block is compiled once::

    v0 = np.sin(a0) ...                      # the first step reads the input: straight
    q0_4 = v4                                # the value the loop carries in
    u0_4 = np.empty(999, np.float64)         # a block's values read after the loop
    for j in range(999):
        w0_0 = np.sin(q0_4)
        ...
        w0_4 = (w0_1 + w0_3)
        u0_4[j] = w0_4
        q0_4 = w0_4

**Runs.**  ``runs`` scans the region's nodes in order for a *run*: a block of ``p`` nodes
(the template) followed by ``m - 1`` copies, node ``k`` of copy ``j`` having the template
node's primitive, parameters, result dtype and constants (a lifted scalar by
``regions.input_key``, a literal by value), and each argument an affine function of ``j``:
a node of the same copy (read as the template's local), of the copy before (a carried
value, the copy before the run giving its start), the same node every copy (loop
invariant), or the ``j``-th element, forwards or backwards, of a block of an earlier run
(that run's values stored in an array ``u``: the reverse sweep reads the forward steps
backwards).  Anything else ends the run; nodes outside runs stay straight lines.  Every
node computes what it computed straight, from the same values in the same order, so the
rolled kernel's values are the straight one's bit for bit (kernel.py checks them anyway).
"""

import numpy as np

from .loops import dtype_of, live, operands
from .regions import MAX_OPS, input_key

MIN_COPIES = 3   # a run repeats its block at least this often
MIN_NODES = 24   # and covers at least this many nodes
MAX_PERIOD = 256  # the longest block looked for (an RK4 step's reverse sweep: 112)


class Run:
    """Copies ``0..m-1`` of a block of ``p`` nodes starting at position ``s``; ``how[k]``
    says, per argument of template node ``k``, how it is read (``_classify``)."""

    __slots__ = ("n", "s", "p", "m", "how", "carried", "stored")

    def __init__(self, n, s, p, m, how):
        self.n, self.s, self.p, self.m, self.how = n, s, p, m, how
        self.carried = set()  # template positions read by the next copy
        self.stored = set()   # template positions read after the run (kept in ``u`` arrays)

    def at(self, r):
        """(copy, template position) of body position ``r`` of this run, or None."""
        if self.s <= r < self.s + self.p * self.m:
            return divmod(r - self.s, self.p)
        return None


def _kw(kw):
    if not kw:
        return None
    try:
        return tuple(sorted(kw.items()))
    except TypeError:
        return repr(sorted(kw.items(), key=lambda x: x[0]))


def _const_key(a):
    k = input_key(a)
    if k.__class__ is tuple:  # a lifted scalar: one argument of the kernel
        return k
    v = a.value
    return ("lit", v.__class__, repr(v)) if not hasattr(v, "shape") or v.shape == () \
        else ("id", k)


def _shapes(ops, body, inside):
    """Per node, a number standing for what must match between copies: primitive,
    parameters, result class and dtype, and each argument's kind (a node of the region,
    an input by value number, a constant by ``_const_key``)."""
    consts, intern, out = {}, {}, []
    for i in body:
        op = ops[i]
        kinds = []
        for a in op.args:
            if a.__class__ is int:
                kinds.append(0 if a in inside else a + 1)
            else:
                k = consts.get(id(a))
                if k is None:
                    k = consts[id(a)] = (_const_key(a), a)  # (a: keeps its id unique)
                kinds.append(k[0])
        ans = op.ans
        key = (id(op.prim), _kw(op.kw), ans.__class__, getattr(ans, "dtype", None),
               tuple(kinds))
        out.append(intern.setdefault(key, len(intern)))
    return out


def runs(graph, body):
    """The runs of ``body`` (a scalar region's live nodes, in order), or [] (module
    docstring)."""
    ops = graph.ops
    pos = {i: t for t, i in enumerate(body)}
    shapes = _shapes(ops, body, pos)
    refs = [[pos[a] for a in ops[i].args if a.__class__ is int and a in pos] for i in body]
    kinds = [(ops[i].ans.__class__, getattr(ops[i].ans, "dtype", None)) for i in body]
    out, t, L = [], 0, len(body)
    while t < L:
        best, found = None, []
        for p in range(1, min(MAX_PERIOD, (L - t) // MIN_COPIES) + 1):
            if shapes[t + p] != shapes[t] or any(p % q == 0 for q in found):
                continue  # (a multiple of a period found repeats what it covers)
            got = _extent(t, p, shapes, refs, kinds, out, L)
            if got is not None:
                found.append(p)
                if best is None or got[0] * p > best[1] * best[0]:
                    best = (p, got[0], got[1])
        if best is None:
            t += 1
            continue
        p, m, how = best
        out.append(Run(len(out), t, p, m, how))
        t += p * m
    for run in out:
        for hs in run.how:
            for h in hs:
                if h[0] == "carried":
                    run.carried.add(h[1])
    return out


def _extent(s, p, shapes, refs, kinds, done, L):
    """``(m, how)`` for the longest run of period ``p`` from ``s`` (None if shorter than
    MIN_COPIES copies or MIN_NODES nodes)."""
    m = 1
    block = shapes[s:s + p]
    while s + (m + 1) * p <= L and shapes[s + m * p:s + (m + 1) * p] == block:
        m += 1
    if m < MIN_COPIES:
        return None
    got = _classify(s, p, m, refs, kinds, done)
    if got is None or got[0] < MIN_COPIES or got[0] * p < MIN_NODES:
        return None
    return got


def _classify(s, p, m, refs, kinds, done):
    """``(m', how)``: the copies ``m' <= m`` for which every argument inside the region is
    read the same way, and per template node how each one is read in copy ``j``:
    ("same", k), ("carried", k), ("fixed", r) or ("stored", run, k, j0, d): template node
    ``k`` of this copy or of the copy before, body position ``r``, or node ``k`` of copy
    ``j0 + d*j`` of an earlier run.  None where some argument is none of them.  How an
    argument is read is decided by copies 0 and 1; a later copy that breaks the pattern
    (or a read that would leave its earlier run) ends the run there."""
    how = []
    for k in range(p):
        r0 = refs[s + k]
        r1 = refs[s + p + k]
        hs = []
        for q, a0 in enumerate(r0):
            delta = r1[q] - a0
            for j in range(2, m):
                if refs[s + j * p + k][q] != a0 + j * delta:
                    m = j
                    break
            c = a0 - s
            if delta == p and 0 <= c < k:
                hs.append(("same", c))
            elif delta == p and -p <= c < 0:
                if kinds[a0] != kinds[s + c + p]:  # the value carried in must have the
                    return None                     # type the loop carries (numba's too)
                hs.append(("carried", c + p))
            elif delta == 0 and a0 < s:
                hs.append(("fixed", a0))
            elif a0 < s:
                h = _stored(a0, delta, done)
                if h is None:
                    return None
                run, j0, d = h[1], h[3], h[4]
                m = min(m, (run.m - 1 - j0) // d + 1 if d > 0 else j0 // -d + 1)
                hs.append(h)
            else:
                return None
        for q, a0 in enumerate(r0):  # one value read two ways (x * x where only one
            if any(b == a0 and hs[u] != hs[q] for u, b in enumerate(r0)):  # stays x)
                return None
        how.append(hs)
    return m, how


def _stored(a0, delta, done):
    for run in done:
        at = run.at(a0)
        if at is None:
            continue
        j0, k = at
        if delta % run.p or not delta:
            return None
        return ("stored", run, k, j0, delta // run.p)
    return None


def small(graph, region):
    """Whether the region's kernel, its runs rolled, is small enough to compile whole: at
    most MAX_OPS lines of nodes, or at most ten times that where rolling removed three
    quarters of them (RK4's 100 steps: 16,939 nodes, 731 lines rolled; cut at MAX_OPS
    they were 113 kernels of 87 different sources, 13,000 lines for numba)."""
    if region.reduced:
        return False
    body = live(graph, region)
    found = _runs_of(graph, region, body)
    size = len(body) - sum(r.p * (r.m - 1) for r in found)
    return size <= MAX_OPS or (size <= 10 * MAX_OPS and 4 * size <= len(body))


def _runs_of(graph, region, body):
    """``runs(graph, body)``, found once per region and body."""
    key = tuple(body)
    if region.rolls is None or region.rolls[0] != key:
        region.rolls = (key, runs(graph, body))
    return region.rolls[1]


def rolled(graph, region, loop, body):
    """``(lines, names)``: the region's body with its runs rolled, and the source of each
    output value; None where ``body`` has no run.  ``loop`` is the region's straight
    ``Loop`` (its input names and local numbers)."""
    ops = graph.ops
    found = _runs_of(graph, region, body)
    if not found:
        return None
    run_of = {}
    for run in found:
        for t in range(run.s, run.s + run.p * run.m):
            run_of[t] = run
    pos = {i: t for t, i in enumerate(body)}

    def fixed(r):  # the source of body position r, read after it was computed
        run = run_of.get(r)
        if run is None:
            return f"v{loop.local[body[r]]}"
        j, k = run.at(r)
        run.stored.add(k)
        return f"u{run.n}_{k}[{j}]"

    # Every read of a run's values from outside its copies marks them stored, before
    # any line is written (a run allocates its arrays before its loop).
    inits = {}
    for run in found:
        for hs in run.how:
            for h in hs:
                if h[0] == "fixed":
                    fixed(h[1])
                elif h[0] == "stored":
                    h[1].stored.add(h[2])
        inits[run.n] = {k: fixed(run.s - run.p + k) for k in sorted(run.carried)}
    outputs = set(region.outputs)
    for t, i in enumerate(body):
        if t not in run_of:
            for a in ops[i].args:
                if a.__class__ is int and a in pos:
                    fixed(pos[a])
        elif i in outputs:
            fixed(t)
    names = {i: fixed(pos[i]) for i in region.outputs}
    lines, t = [], 0
    try:
        while t < len(body):
            run = run_of.get(t)
            if run is None:
                i = body[t]
                nm = dict(loop.names)
                for a in ops[i].args:
                    if a.__class__ is int and a in pos:
                        nm[a] = fixed(pos[a])
                lines.append(f"v{loop.local[i]} = {_expr(loop, ops[i], ops, nm)}")
                t += 1
                continue
            lines += _run_lines(run, body, pos, ops, loop, inits[run.n], fixed)
            t += run.p * run.m
    except _NotRolled:
        return None
    return lines, names


def _expr(loop, op, ops, nm):
    expr = loop.target.math(op, operands(op, ops, nm))
    if dtype_of(op.ans) == np.dtype(np.float32):
        expr = f"np.float32({expr})"
    return expr


def _dtype(op):
    d = dtype_of(op.ans)
    return "np.bool_" if d == np.dtype(bool) else f"np.{d.name}"


def _index(j0, d):
    if d == 1:
        return f"{j0} + j"
    if d == -1:
        return f"{j0} - j"
    return f"{j0} + {d} * j" if d > 0 else f"{j0} - {-d} * j"


def _run_lines(run, body, pos, ops, loop, inits, fixed):
    n, p = run.n, run.p
    lines = [f"q{n}_{k} = {src}" for k, src in inits.items()]
    lines += [f"u{n}_{k} = np.empty({run.m}, {_dtype(ops[body[run.s + k]])})"
              for k in sorted(run.stored)]
    lines.append(f"for j in range({run.m}):")
    for k in range(p):
        op = ops[body[run.s + k]]
        nm = dict(loop.names)
        args = [a for a in op.args if a.__class__ is int and a in pos]
        for a, h in zip(args, run.how[k], strict=True):
            if h[0] == "same":
                src = f"w{n}_{h[1]}"
            elif h[0] == "carried":
                src = f"q{n}_{h[1]}"
            elif h[0] == "fixed":
                src = fixed(h[1])
            else:
                _, other, kk, j0, d = h
                src = f"u{other.n}_{kk}[{_index(j0, d)}]"
            if nm.setdefault(a, src) != src:  # one value read two ways at copy 0
                raise _NotRolled()
        lines.append(f"    w{n}_{k} = {_expr(loop, op, ops, nm)}")
        if k in run.stored:
            lines.append(f"    u{n}_{k}[j] = w{n}_{k}")
    lines += [f"    q{n}_{k} = w{n}_{k}" for k in sorted(run.carried)]
    return lines


class _NotRolled(Exception):
    """A template node reads one value in two ways (``_run_lines``)."""
