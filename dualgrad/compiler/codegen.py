"""``dg.jit``'s back end: fusion regions of the optimised graph compiled to numba kernels.

Replaying a graph one numpy call per primitive makes one pass over memory per primitive.
This module finds *fusion regions* and writes each as one ``@njit`` loop, so a chain of
elementwise operations and the reductions that consume it cost one pass::

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
differs with every length; jit_regions.is_lifted), except 0, ±1, 2, 0.5 and the
non-finite, which stay literals.  What stays in a source and can vary with shape: a padded
read's offsets where a slice does not cut a fixed count from an end (``pad_load``), and a
loop axis no input spans (none known).

**Regions** (jit_regions.py): maximal sets of elementwise nodes of one shape with the
reductions that consume them, cycle-free, with cheap values recomputed rather than stored.

**Code.**  The scalar math is the table's: each row's ``scalar`` form writes its expression.
Constants are typed with the node's dtype (``np.float32(0.5)``: a Python float in a float32
loop would silently make float64 code), and every float32 node is rounded to float32, so
float32 stays float32.  Sums accumulate in float64 sequentially (eager numpy sums pairwise),
so a fused sum differs from eager by rounding only.  ``NUMBA_DISABLE_JIT=1`` runs the same
source as Python.

**Disk cache.**  The source is filed under ``$XDG_CACHE_HOME/dualgrad/kernels`` (default
``~/.cache``) by its hash, and numba's machine code for it under ``dualgrad/numba`` (or the
user's ``NUMBA_CACHE_DIR``), so a second process loads the machine code instead of
compiling.  No cache file can change a result: the file is used only if it holds exactly
the source (else it is rewritten), the code compiled is always the source itself, numba's
entries are stamped with the SHA-256 of that source and sealed with their own
(``dualgrad.kernels.diskcache``: a damaged entry is compiled again), and every file is
written whole (temporary file, then ``os.replace``).  An unwritable folder means no disk
cache, with one warning.  ``tests/test_cache_integrity.py`` truncates, randomises and
flips each kind of file, edits the source, races four processes on one empty folder, and
checks the next process's values.

**Choice.**  With ``codegen="auto"`` (the default) each kernel is compiled and run once at
the graph's first replay on the recorded values, checked against them, and timed against
replaying its nodes: a kernel is used where it is faster on this machine, never on a
threshold measured elsewhere.  ``codegen="numba"`` uses every kernel that compiles (the
tests do), ``codegen="off"`` none.  A kernel that fails to compile or disagrees with the
recorded values falls back to replay, with a warning: never a wrong kernel.

**Targets.**  ``target`` says where a graph's kernels run: here for numpy inputs, as
``@cuda.jit`` kernels (jit_cuda.py, the same regions and scalar forms) for GPU arrays,
nowhere (replay) for other array types.
"""

import functools
import hashlib
import heapq
import os
import sys
import time
import types
import warnings

import numpy as np

from ..backend import is_foreign_array
from ..backend.tuning import cache_dir, unwritable, write_atomic
from .graph import Graph, Op
from .regions import (
    FLOATS,
    REDUCTIONS,
    info,
    is_array,
    is_array_const,
    partition,
    recompute,
    value_of,
    wire,
)

MODES = ("auto", "numba", "off")


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


# -- compiling, checking, choosing ------------------------------------------------------

_LOADED = {}  # source digest -> compiled kernel: one per structure (sources name no length)
_TIMED = {}  # (source, size class) -> (kernel seconds, replay seconds): ``timing``


def _kernel_dir():
    return os.path.join(cache_dir(), "kernels")


def load(src):
    """The ``kernel`` of ``src``, from a file under the cache directory named by the
    source's hash, so that numba's cache finds its machine code in a later process.

    The file is used only if it holds exactly ``src`` (else it is rewritten whole); the
    code run is always ``src``, never what the file says.  numba's cache is dualgrad's
    checked one (``dualgrad.kernels.diskcache``): stamped with the file's SHA-256, every
    file sealed with its own.  No writable folder: compiled in memory, not cached."""
    digest = hashlib.sha256(src.encode()).hexdigest()[:24]
    fn = _LOADED.get(digest)
    if fn is not None:
        return fn
    name = f"dualgrad_kernel_{digest}"
    path = _filed(src, name)
    code = src.replace("cache=True", "cache=False")  # numba's own cache: never
    if path is None:
        ns = {}
        exec(compile(code, f"<{name}>", "exec"), ns)  # noqa: S102
        fn = ns["kernel"]
    else:
        from ..kernels.diskcache import attach  # optional: code generation needs numba
        module = types.ModuleType(name)
        module.__file__ = path
        sys.modules[name] = module  # numba's cache looks the module up by name
        exec(compile(code, path, "exec"), module.__dict__)  # noqa: S102
        if "cache=True" in src:
            for v in list(vars(module).values()):
                if getattr(getattr(v, "py_func", None), "__module__", None) == name:
                    attach(v)
        fn = module.kernel
    _LOADED[digest] = fn
    return fn


def _filed(src, name):
    """The path of ``name.py`` in the kernel folder, holding exactly ``src``: compared if
    it is there, else written whole (a uniquely named temporary file in the same folder,
    then ``os.replace``: a crash or a racing process leaves no half file).  None (and
    one warning per process) when the folder cannot be written."""
    data = src.encode()
    try:
        folder = _kernel_dir()
        path = os.path.join(folder, name + ".py")
        try:
            with open(path, "rb") as f:
                if f.read() == data:
                    return path
        except OSError:
            pass  # absent or unreadable: write it
        write_atomic(path, data)
        return path
    except OSError as e:
        unwritable(_kernel_dir(), e)
        return None


class Kernel:
    """A compiled region: ``fn`` (the numba dispatcher), its ``source``, and how each
    output is turned into the type eager numpy returns (``casts``)."""

    __slots__ = ("region", "fn", "source", "casts", "seconds")

    def __init__(self, region, fn, source, casts):
        self.region, self.fn, self.source, self.casts = region, fn, source, casts
        self.seconds = None

    @property
    def name(self):
        return f"kernel{self.region.index}"


def _cast(ans):
    """The function that gives a kernel's output the class eager computation gave it
    (nothing for a device array: the CUDA launcher returns CuPy's own classes)."""
    c = ans.__class__
    if c is np.ndarray:
        return None if ans.ndim else (lambda v, dt=ans.dtype: np.asarray(v, dt))
    if c in (float, bool, int) or is_array(ans):
        return None
    return c  # np.float64, np.float32, np.bool_...


def _host(v):
    """A host copy of a device value (explicit: ``.get()``), to check a kernel once."""
    return v.get() if is_array(v) and v.__class__ is not np.ndarray else v


def _inputs(graph, region):
    """The recorded values a region's kernel is called with."""
    return [value_of(graph.ops, region.source(a)) for a in region.inputs]


def _replay_region(graph, region, vals):
    ops = graph.ops
    env = dict(zip([a if a.__class__ is int else id(a) for a in region.inputs], vals))
    for i in sorted(region.ops + region.copied + region.reduced):
        op = ops[i]
        args = [env[a] if a.__class__ is int else (env[id(a)] if id(a) in env else a.value)
                for a in op.args]
        env[i] = op.prim.impl(*args, **op.kw) if op.kw else op.prim.impl(*args)
    return [env[i] for i in region.outputs]


def _agrees(got, want):
    for g, w in zip(got, want):
        g, w = np.asarray(_host(g)), np.asarray(_host(w))
        if g.shape != w.shape or g.dtype != w.dtype:
            return False
        if w.dtype.kind == "b":
            if not np.array_equal(g, w):
                return False
            continue
        tol = 1e-9 if w.dtype == np.float64 else 2e-4
        finite = np.abs(w[np.isfinite(w)])
        scale = finite.max() if finite.size else 0.0
        if not np.allclose(g, w, rtol=tol, atol=tol * scale, equal_nan=True):
            return False
    return True


def _best(fn, args, budget=0.05):
    """The fastest of a few timed calls (at least 2, more while under ``budget`` s)."""
    best, spent, n = np.inf, 0.0, 0
    while n < 2 or (spent < budget and n < 20):
        t = time.perf_counter()
        fn(*args)
        dt = time.perf_counter() - t
        best, spent, n = min(best, dt), spent + dt, n + 1
    return best


def timing(src, region, measure):
    """``(kernel s, replay s)`` for ``src`` at the region's size, ``measure()``-d once per
    source and power-of-two size class (the element count's bit length).

    One source serves every shape of its structure (``load`` compiles it once; numba then
    specialises by rank, dtype and layout, never by length), but whether it beats replay
    depends on the size: at tens of elements both are call overhead (one dispatch against
    one numpy call per node), at millions memory traffic (one pass against one per node).
    So a timing decides for shapes within a factor of two of the timed one (an unrolled
    loop's regions, or a batch that varies a little, are timed once) and a very different
    size is timed anew: 200 shapes from 10 to 30,000 elements are timed in at most 12
    classes.  Timing every shape would cost up to 0.1 s (``_best``'s budget, twice) per
    region per shape."""
    key = (src, int(np.prod(region.shape, dtype=np.int64)).bit_length())
    t = _TIMED.get(key)
    if t is None:
        t = _TIMED[key] = measure()
    return t


def _compile(graph, region, src, vals):
    """``(fn, casts)`` for ``src``, compiled and checked against the recorded values; None
    (with a warning) where it does not compile or disagrees."""
    try:
        fn = load(src)
        got = fn(*vals)
    except Exception as e:  # noqa: BLE001 - numba's typing errors have many classes
        warnings.warn(f"dg.jit: a fused kernel did not compile ({type(e).__name__}: "
                      f"{str(e)[:200]}); its {region.size} nodes are replayed instead",
                      RuntimeWarning, stacklevel=5)
        return None
    casts = [_cast(graph.ops[i].ans) for i in region.outputs]
    got = [v if c is None else c(v) for v, c in zip(got, casts)]
    if not _agrees(got, [graph.ops[i].ans for i in region.outputs]):
        warnings.warn("dg.jit: a fused kernel disagreed with the recorded values; its "
                      f"{region.size} nodes are replayed instead", RuntimeWarning, stacklevel=5)
        return None
    return fn, casts


def _threads_may_pay(region):
    """Whether a threaded loop is worth compiling at all (the timing then decides): more
    than one numba thread, and some thousands of elements for each."""
    import numba  # optional: code generation runs numba anyway
    n = numba.get_num_threads()
    return n > 1 and int(np.prod(region.shape)) >= 4096 * n


def unused(region, timed):
    """The Kernel of a region nothing reads (its values are recomputed elsewhere)."""
    k = Kernel(region, None, "", [])
    k.seconds = (0.0, 0.0) if timed else None
    return k


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


def mode_default():
    m = os.environ.get("DUALGRAD_CODEGEN", "auto")
    if m not in MODES:
        raise ValueError(f"DUALGRAD_CODEGEN must be one of {MODES}, got {m!r}")
    return m


def target(graph):
    """Where ``graph``'s kernels run: ``"cuda"`` when its inputs are GPU arrays
    (jit_cuda.py), ``"cpu"`` for numpy's, None for other array types (replayed)."""
    where = "cpu"
    for op in graph.ops:
        if op.kind == "input" and op.ans.__class__ is not np.ndarray:
            if is_array(op.ans):  # numpy's or a GPU array: here, the GPU's
                return "cuda"
            if is_foreign_array(op.ans):
                where = None
    return where


def compile_regions(graph, mode="auto", build=build):
    """The kernels to use for ``graph`` (module docstring: regions, recompute, choice);
    ``build`` makes one region's (this module's for the CPU, jit_cuda's for the GPU).

    Every region is wired as if all were used, then compiled, checked and (``auto``)
    timed; only if some are refused are the others wired again without them."""
    if mode == "off":
        return []
    regions = recompute(graph, partition(graph))
    kernels = [build(graph, r, timed=(mode == "auto")) for r in regions]
    chosen = [k for k in kernels
              if k is not None and (mode == "numba" or k.seconds[0] <= k.seconds[1])]
    if len(chosen) < len(regions):
        keep = [k.region for k in chosen]
        for r in keep:
            r.copied = []
        wire(graph, keep)
        recompute(graph, keep)
        chosen = [build(graph, r, timed=False) for r in keep]
        if any(k is None for k in chosen):  # the rewiring broke one: replay is always right
            return []
    for k in chosen:
        if not k.region.outputs:
            k.fn = None  # nothing of it is needed any more
    return chosen


# -- the graph with kernels ------------------------------------------------------------

class FusionError(Exception):
    """The regions cannot be ordered (a bug in ``partition``): the graph is replayed."""


def fuse(graph, kernels):
    """``graph`` with each kernel's region replaced by one ``fused`` node (its ``prim`` the
    Kernel, its ``ans`` the tuple of outputs) followed by a ``part`` node per output."""
    if not kernels:
        return graph
    ops = graph.ops
    member = {}
    for k in kernels:
        for i in k.region.ops + k.region.reduced:
            member[i] = k
    producer = {i: (("k", member[i].region.index) if i in member else ("o", i))
                for i in range(len(ops))}
    live = set(a for a in graph.outputs if a.__class__ is int)  # a padded copy no kernel
    for k in kernels:  # reads any more (``_pad``) is dropped with what only it read
        live.update(k.region.source(a) for a in k.region.inputs if a.__class__ is int)
    for i in range(len(ops) - 1, -1, -1):
        if i not in member and (i in live or ops[i].kind in ("input", "guard", "call")):
            live.add(i)
            live.update(a for a in ops[i].args if a.__class__ is int)
    nodes = {("o", i): i for i in range(len(ops)) if i not in member and i in live}
    for k in kernels:
        nodes[("k", k.region.index)] = min(k.region.ops + k.region.reduced)
    kmap = {k.region.index: k for k in kernels}
    outside = set(a for a in graph.outputs if a.__class__ is int)  # values not only read
    for i in live:  # by kernels keep the class eager gave them (casts); others need not
        if i not in member:
            outside.update(a for a in ops[i].args if a.__class__ is int)
    for k in kernels:
        k.casts = [c if i in outside else None for c, i in zip(k.casts, k.region.outputs)]
    need = {}
    for n in nodes:
        if n[0] == "o":
            args = [a for a in ops[n[1]].args if a.__class__ is int]
        else:
            r = kmap[n[1]].region
            args = [r.source(a) for a in r.inputs if a.__class__ is int]
        need[n] = set(producer[a] for a in args) - {n}
    users = {n: [] for n in nodes}
    for n, ds in need.items():
        for m in ds:
            users[m].append(n)
    waiting = {n: len(ds) for n, ds in need.items()}
    ready = [(nodes[n], n) for n in nodes if not waiting[n]]
    heapq.heapify(ready)
    new, m = [], {}

    def ref(a):
        return m[a] if a.__class__ is int else a

    while ready:
        _, n = heapq.heappop(ready)
        if n[0] == "o":
            op = ops[n[1]]
            m[n[1]] = len(new)
            new.append(Op(op.kind, op.prim, tuple(ref(a) for a in op.args), op.kw, op.ans))
        elif kmap[n[1]].fn is not None:
            k = kmap[n[1]]
            f = len(new)
            new.append(Op("fused", k, tuple(ref(k.region.source(a)) for a in k.region.inputs),
                          None,
                          tuple(ops[i].ans for i in k.region.outputs)))
            for j, i in enumerate(k.region.outputs):
                m[i] = len(new)
                new.append(Op("part", None, (f,), {"k": j}, ops[i].ans))
        for u in users[n]:
            waiting[u] -= 1
            if not waiting[u]:
                heapq.heappush(ready, (nodes[u], u))
    if len(m) < sum(1 for n in nodes if n[0] == "o") + sum(
            len(k.region.outputs) for k in kernels):
        raise FusionError("dg.jit: the fusion regions form a cycle")  # a bug: replay instead
    return Graph(new, [m[i] for i in graph.inputs], [ref(a) for a in graph.outputs],
                 graph.odef)
