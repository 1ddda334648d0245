"""``dg.jit``'s CPU target: a fusion region written as one ``@njit`` loop.

Replaying a graph one numpy call per primitive makes one pass over memory per primitive.
A fusion region (regions.py: elementwise nodes of one shape and the reductions that
consume them) written as one loop costs one pass::

    v1 = tanh(v0); v2 = sin(v0); v3 = v1 * v2; v4 = sum(v3)      # four passes, three temporaries

becomes (``jit(f).lower(x).kernels[0]``)::

    @njit(cache=True, error_model="numpy")
    def kernel(a0):
        n0 = a0.shape[0]
        s0 = 0.0
        for i0 in range(n0):
            x0 = a0[i0]
            v1 = np.tanh(x0)
            v2 = np.sin(x0)
            v3 = (v1 * v2)
            s0 += v3
        return (s0,)

**Generic over shape.**  A source names no length: loop extents are read from the inputs'
shapes and outputs are allocated from them (``extents``), so every shape of one structure
(the nodes, dtypes, rank, and which input axes broadcast) shares one source, one file and
one compiled kernel, as numba's code is shared over array sizes.  Broadcasting is written
into the source (``a1[0, i1]`` for a row read down the rows), so a different pattern of
size-1 axes is a different kernel.  Scalar constants are arguments too (``np.mean``'s 1/n
differs with every length; regions.is_lifted), except 0, ±1, 2, 0.5 and the
non-finite, which stay literals.  What stays in a source and can vary with shape: a padded
read's offsets where a slice does not cut a fixed count from an end (``pad_load``), and a
loop axis no input spans (none known).

**Code.**  The scalar math is the table's: each row's ``scalar`` form writes its expression.
Constants are typed with the node's dtype (``np.float32(0.5)``: a Python float in a float32
loop would silently make float64 code), and every float32 node is rounded to float32, so
float32 stays float32.  Sums accumulate in float64 sequentially (eager numpy sums pairwise),
so a fused sum differs from eager by rounding only.  ``NUMBA_DISABLE_JIT=1`` runs the same
source as Python.  ``build`` hands the source to kernel.py (load, check, time) and, where
threads may pay, times a ``prange`` version too.
"""

import functools
import hashlib

import numpy as np

from .kernel import Kernel, _best, _compile, _inputs, _replay_region, timing, unused
from .regions import FLOATS, REDUCTIONS, info, is_array, is_array_const, value_of

# -- kernel source --------------------------------------------------------------------

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


def _dtype_of(v):
    i = info(v)
    return None if i is None else i[1]


def _const_dtype(op, ops):
    """The dtype a scalar constant argument of ``op`` takes (numpy's weak scalars)."""
    ans = _dtype_of(op.ans)
    if ans in FLOATS:
        return ans
    for a in op.args:  # a comparison: the other operand's float dtype
        if a.__class__ is int:
            d = _dtype_of(ops[a].ans)
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
        elif id(a) in names:  # a lifted scalar (jit_regions.is_lifted), typed for the loop
            args.append(f"np.{cd.name}({names[id(a)]})")
        else:
            v = a.value
            args.append(_literal(v.item() if hasattr(v, "item") else v, cd))
    return args


def pad_load(k, p, v, pad, loop):
    """``x{k} = ...``: input ``p`` is the unpadded ``v`` of a padded value (``pad`` is
    region.pads' entry), read at shifted indices and 0 outside them.

    The offsets are in the source (not arguments): the zeros before (``lo``) and after
    (``tail``) the data along each axis, the upper bound written from the extent ``n{q}``.
    So ``x[1:]``'s and ``x[:-1]``'s cotangents, which pad one element at one end whatever
    the length, give one source for every length; a slice such as ``x[2:5]`` (a tail that
    grows with the length) gives one source per length, which is correct, only not shared."""
    _, starts, stops = pad
    inside = []
    for q, (lo, hi) in enumerate(zip(starts, stops)):
        tail = loop[q] - hi
        upper = f" < n{q} - {tail}" if tail else ""
        if lo and upper:
            inside.append(f"{lo} <= i{q}{upper}")
        elif lo or upper:
            inside.append(f"{lo} <= i{q}" if lo else f"i{q}{upper}")
    inside = " and ".join(inside)
    at = ", ".join(f"i{q} - {lo}" if lo else f"i{q}" for q, lo in enumerate(starts))
    zero = _literal(0.0, v.dtype)
    return f"x{k} = {p}[{at}] if {inside} else {zero}" if inside else f"x{k} = {p}[{at}]"


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
    for j, a in enumerate(region.inputs):
        v = value_of(ops, a)
        if (a.__class__ is int and a in region.pads) or not is_array(v) or not d:
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


def _tuple(items):
    """``(a, b)`` / ``(a,)`` / ``()`` as source."""
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _live(graph, region):
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


def kernel_source(graph, region, parallel=False):
    """The numba source of one region's kernel, ``def kernel(a0, a1, ...)``.

    Where a row names a vectorizable scalar function (``vector``: kernels/vecmath.py) the
    loop is written twice: ``fast`` with those functions, counting arguments outside their
    range (``vm.LIMITS``), and ``exact`` with the row's ``scalar`` form, which ``kernel``
    runs instead when any argument was out of range.  ``parallel``: the outer loop is a
    ``prange`` (``parallel_ok`` says where that is race-free)."""
    fast = _function(graph, region, "fast", True, parallel)
    head = ["import numpy as np", "from numba import njit" + (", prange" if parallel else ""),
            ""]
    if fast is None:
        return "\n".join(head + ["", _function(graph, region, "kernel", False, parallel)])
    params = ", ".join(f"a{k}" for k in range(len(region.inputs)))
    head[-1:] = ["from dualgrad.kernels import vecmath as vm", f"# vecmath {_vecmath()[0]}", ""]
    return "\n".join(head + ["", _function(graph, region, "exact", False, parallel), "", fast,
                             "",
                             _JIT, f"def kernel({params}):", f"    bad, out = fast({params})",
                             "    if bad:", f"        return exact({params})",
                             "    return out", ""])


_JIT = '@njit(cache=True, error_model="numpy")'


@functools.cache
def _vecmath():
    """vecmath's source digest (cached kernels follow its changes) and its LIMITS."""
    from ..kernels import vecmath as vm  # optional: code generation needs numba anyway
    with open(vm.__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12], vm.LIMITS


def parallel_ok(graph, region):
    """Whether the region's outer loop can run in threads: every reduction is a full sum
    or product (numba's prange reduces those per thread) or keeps axis 0."""
    if not region.shape:
        return False
    for j in region.reduced:
        op = graph.ops[j]
        axes = set(a % len(region.shape) for a in op.kw["axis"])
        full = len(axes) == len(region.shape)
        if (full and op.prim.name not in ("sum", "prod")) or (not full and 0 in axes):
            return False
    return True


def _function(graph, region, fname, fast, parallel=False):
    """One loop over the region as ``def fname(a0, ...)``; for ``fast``, None when no row
    of the region has a vectorizable form."""
    ops = graph.ops
    if fast and (not region.shape  # scalar code is not vectorized: libm is as fast
                 or not any(ops[i].prim.vector for i in region.ops + region.copied)):
        return None
    checks = []
    # locals are numbered within the region, so one region repeated by an unrolled loop
    # (an LSTM's steps, RK4's stages) gives one source, compiled once (``load``)
    local = {i: n for n, i in enumerate(sorted(region.ops + region.copied + region.reduced))}
    loop = region.shape
    d = len(loop)
    names, loads, body = {}, [], []
    pre = [f"n{k} = {e}" for k, e in enumerate(extents(ops, region))]
    shape = _tuple([f"n{k}" for k in range(d)])
    params = []
    for k, a in enumerate(region.inputs):
        p = f"a{k}"
        params.append(p)
        v = value_of(ops, a)
        if a.__class__ is int and a in region.pads:  # v placed in zeros: a shifted read
            loads.append(pad_load(k, p, v, region.pads[a], loop))
            names[a] = f"x{k}"
        elif v.__class__ is not np.ndarray:
            names[a if a.__class__ is int else id(a)] = p
        elif v.ndim == 0 or d == 0:
            pre.append(f"x{k} = {p}[()]")
            names[a if a.__class__ is int else id(a)] = f"x{k}"
        else:
            loads.append(f"x{k} = {p}{_index(v.shape, loop)}")
            names[a if a.__class__ is int else id(a)] = f"x{k}"
    idx = _index(loop, loop)
    for i in _live(graph, region):
        op = ops[i]
        args = operands(op, ops, names)
        if fast and op.prim.vector:
            expr = f"vm.{op.prim.vector}({', '.join(args)})"
            limit = _vecmath()[1][op.prim.vector]
            check = f"bad += abs({args[0]}) >= {limit!r}"
            if limit < np.inf and check not in checks:
                checks.append(check)
        else:
            expr = op.prim.scalar(*args, **(op.kw or {}))
        if _dtype_of(op.ans) == np.dtype(np.float32):
            expr = f"np.float32({expr})"
        names[i] = f"v{local[i]}"
        body.append(f"v{local[i]} = {expr}")
        if i in region.outputs:
            if op.ans.__class__ is np.ndarray and d:
                pre.append(f"o{local[i]} = np.empty({shape}, np.{op.ans.dtype.name})")
                body.append(f"o{local[i]}{idx} = v{local[i]}")
    results = {}
    for j in region.reduced:
        op = ops[j]
        init, step = REDUCTIONS[op.prim.name]
        axes = sorted(set(a % d for a in op.kw["axis"])) if d else []
        kept = [f"n{k}" for k in range(d) if k not in axes]
        src = names[op.args[0]]
        if kept:
            acc = f"r{local[j]}[" + ", ".join(f"i{k}" for k in range(d) if k not in axes) + \
                  ("," if len(kept) == 1 else "") + "]"
            pre.append(f"r{local[j]} = np.full({_tuple(kept)}, {init})")
        else:
            acc = f"s{local[j]}"
            pre.append(f"s{local[j]} = {init}")
        body.extend(step.format(a=acc, v=src).replace(": ", ":\n    ").split("\n"))
        dt = _dtype_of(op.ans)
        out = acc.split("[")[0]
        if kept and op.ans.__class__ is np.ndarray and op.ans.ndim != len(kept):  # keepdims
            out = f"{out}.reshape({_tuple(['1' if k in axes else f'n{k}' for k in range(d)])})"
        if dt == np.dtype(np.float32):
            out = f"{out}.astype(np.float32)" if kept else f"np.float32({out})"
        if not kept and op.ans.__class__ is np.ndarray and op.ans.ndim:  # keepdims
            out = f"np.full({op.ans.shape!r}, {out})"
        results[j] = out
    if fast:
        pre.insert(0, "bad = 0")
    # A sum or product accumulated in strict order is one dependent chain of adds, which
    # LLVM cannot vectorize; "reassoc" lets it keep partial sums in vector lanes (the
    # accumulation order changes, as numpy's pairwise sum changes it).  Inlined vecmath
    # code keeps its own strict flags.
    sums = any(ops[j].prim.name in ("sum", "prod") for j in region.reduced)
    jit = _JIT[:-1] + ', fastmath={"reassoc"})' if sums else _JIT
    if parallel:
        jit = jit[:-1] + ", parallel=True)"
    lines = [jit, f"def {fname}({', '.join(params)}):"]
    lines += ["    " + s for s in pre]
    ind = "    "
    for k in range(d):
        lines.append(f"{ind}for i{k} in {'prange' if parallel and k == 0 else 'range'}"
                     f"(n{k}):")
        ind += "    "
    lines += [ind + s for s in loads + body + checks]
    outs = [results[i] if i in results else (f"o{local[i]}" if ops[i].ans.__class__ is np.ndarray
                                             and d else f"v{local[i]}") for i in region.outputs]
    ret = f"({', '.join(outs)},)"
    lines.append(f"    return bad, {ret}" if fast else f"    return {ret}")
    return "\n".join(lines) + "\n"


def _threads_may_pay(region):
    """Whether a threaded loop is worth compiling at all (the timing then decides): more
    than one numba thread, and some thousands of elements for each."""
    import numba  # optional: code generation runs numba anyway
    n = numba.get_num_threads()
    return n > 1 and int(np.prod(region.shape)) >= 4096 * n

def build(graph, region, timed):
    """The region's ``Kernel``, compiled and checked against the recorded values (and, when
    ``timed``, with ``seconds`` = (kernel, replay), the kernel threaded where that was
    faster); None where it cannot be used."""
    if not region.outputs:
        return unused(region, timed)
    src = kernel_source(graph, region)
    vals = _inputs(graph, region)
    made = _compile(graph, region, src, vals)
    if made is None:
        return None
    k = Kernel(region, made[0], src, made[1])
    if timed:
        plain = [value_of(graph.ops, a) for a in region.inputs]  # padded arrays as they are
        k.seconds = timing(src, region, lambda: (_best(k.fn, vals), _best(
            lambda *v: _replay_region(graph, region, v), plain)))
        if parallel_ok(graph, region) and _threads_may_pay(region):
            psrc = kernel_source(graph, region, parallel=True)
            par = _compile(graph, region, psrc, vals)
            if par is not None:
                t = timing(psrc, region, lambda: (_best(par[0], vals), 0.0))
                if t[0] < k.seconds[0]:
                    k.fn, k.source, k.seconds = par[0], psrc, (t[0], k.seconds[1])
    return k

