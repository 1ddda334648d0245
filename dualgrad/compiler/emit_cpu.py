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
threads may pay, times a ``prange`` version too, taken where it is faster by
``tuning.MARGIN``; its source names the calling thread's numba thread count, so it is timed
and cached per thread count.  Threaded elementwise loops compute each element as the serial
loop does (bitwise the same); a threaded full sum adds per-thread partial sums (in float64),
which changes its rounding as ``reassoc`` already does (``parallel_ok``).  A scalar
region's repeated blocks (an unrolled loop) are written as ``for`` loops (roll.py).
"""

import functools
import hashlib

import numpy as np

from ..backend.tuning import MARGIN
from . import roll
from .kernel import _best, _compile, _inputs, checked, timing, unused
from .loops import Loop, Target, dtype_of, extents, live, source_tuple


class Numba(Target):
    """The CPU's spelling of a loop (loops.py): nested ``for`` loops over every axis, the
    first a ``prange`` when ``parallel``; with ``fast``, vecmath's functions where a row
    names one (``vector``), each argument's range counted in ``bad``."""

    def __init__(self, fast=False, parallel=False):
        super().__init__()
        self.fast, self.parallel = fast, parallel

    def math(self, op, args):
        if not (self.fast and op.prim.vector):
            return super().math(op, args)
        limit = _vecmath()[1][op.prim.vector]
        check = f"bad += abs({args[0]}) >= {limit!r}"
        if limit < np.inf and check not in self.checks:
            self.checks.append(check)
        return f"vm.{op.prim.vector}({', '.join(args)})"

    def stores(self, op, d):
        return op.ans.__class__ is np.ndarray and d > 0

    def accumulator(self, n, axes, d):
        kept = [f"i{k}" for k in range(d) if k not in axes]
        if not kept:
            return f"s{n}"
        return f"r{n}[" + ", ".join(kept) + ("," if len(kept) == 1 else "") + "]"

    def declare(self, name, params, loop):
        # A sum or product accumulated in strict order is one dependent chain of adds,
        # which LLVM cannot vectorize; "reassoc" lets it keep partial sums in vector lanes
        # (the accumulation order changes, as numpy's pairwise sum changes it).  Inlined
        # vecmath code keeps its own strict flags.
        jit = _JIT
        if any(r.op.prim.name in ("sum", "prod") for r in loop.reductions):
            jit = jit[:-1] + ', fastmath={"reassoc"})'
        if self.parallel:
            jit = jit[:-1] + ", parallel=True)"
        return [jit, f"def {name}({', '.join(params)}):"]

    def outer(self, loop):
        lines, ind = [], "    "
        for k in loop.outer:
            lines.append(f"{ind}for i{k} in {'prange' if self.parallel and k == 0 else 'range'}"
                         f"(n{k}):")
            ind += "    "
        return lines, ind


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
    if parallel:  # timed, cached and chosen per thread count (kernel.timing keys by source)
        head.insert(0, f"# numba threads: {_numba_threads()}")
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
    scalar = not region.shape and not region.reduced
    loop = Loop(graph, region, Numba(fast, parallel), straight=not scalar)
    d = loop.d
    rolled = {}
    if scalar:  # an unrolled scalar loop: rolled again (roll.py)
        got = roll.rolled(graph, region, loop, live(graph, region))
        if got is None:
            loop.write(graph, region)
        else:
            loop.body, rolled = got
    shape = source_tuple([f"n{k}" for k in range(d)])
    pre = [f"n{k} = {e}" for k, e in enumerate(extents(ops, region))] + loop.pre
    pre += [f"{o} = np.empty({shape}, np.{ops[i].ans.dtype.name})"
            for i, o in loop.stored.items()]
    results = {}
    for red in loop.reductions:
        op, axes = red.op, red.axes
        kept = [f"n{k}" for k in range(d) if k not in axes]
        out = red.acc.split("[")[0]
        pre.append(f"{out} = np.full({source_tuple(kept)}, {red.init})" if kept
                   else f"{out} = {red.init}")
        if kept and op.ans.__class__ is np.ndarray and op.ans.ndim != len(kept):  # keepdims
            keep = source_tuple(["1" if k in axes else f"n{k}" for k in range(d)])
            out = f"{out}.reshape({keep})"
        if dtype_of(op.ans) == np.dtype(np.float32):
            out = f"{out}.astype(np.float32)" if kept else f"np.float32({out})"
        if not kept and op.ans.__class__ is np.ndarray and op.ans.ndim:  # keepdims
            out = f"np.full({op.ans.shape!r}, {out})"
        results[red.j] = out
    if fast:
        pre.insert(0, "bad = 0")
    outs = [results[i] if i in results else rolled[i] if i in rolled else
            loop.stored.get(i, f"v{loop.local[i]}") for i in region.outputs]
    ret = f"({', '.join(outs)},)"
    lines = loop.lines(fname, loop.params, head=pre)
    lines.append(f"    return bad, {ret}" if fast else f"    return {ret}")
    return "\n".join(lines) + "\n"


def _numba_threads():
    import numba  # optional: code generation runs numba anyway
    return numba.get_num_threads()


def _threads_may_pay(region):
    """Whether a threaded loop is worth compiling at all (the timing then decides): more
    than one numba thread in the calling thread, and some thousands of elements for each."""
    n = _numba_threads()
    return n > 1 and int(np.prod(region.shape)) >= 4096 * n


_BLAS = frozenset(("matmul", "dot", "tensordot", "einsum", "inner", "outer_product",
                   "solve", "inv", "cholesky", "eigh", "svd", "qr", "det", "slogdet"))


def _calls_blas(graph):
    """Whether the graph also runs BLAS or LAPACK: then its kernels stay serial.  Between
    its products, numba's threads and BLAS's own take turns spinning for the same cores
    (the jitted CS231n LSTM gradient, 2 numba and 2 OpenBLAS threads on 2 cores: 164 ms
    with 19 threaded kernels of 78, 5.9 ms serial), which a kernel timed alone cannot
    show."""
    return any(op.kind == "op" and op.prim.name in _BLAS for op in graph.ops)


def _concurrent_launches_ok():
    """False under numba's ``workqueue`` threading layer, which aborts the process when two
    Python threads launch parallel kernels at once (a dg.jit function may be called from
    several); tbb and omp take concurrent launches.  Valid once a parallel kernel ran."""
    import numba  # optional: code generation runs numba anyway
    try:
        return numba.threading_layer() != "workqueue"
    except ValueError:  # no parallel kernel has run yet
        return False


def build(graph, region, timed):
    """The region's ``Kernel``, compiled and checked against the recorded values (and, when
    ``timed``, with ``seconds`` = (kernel, replay), the kernel threaded where that was
    faster); None where it cannot be used."""
    if not region.outputs:
        return unused(region, timed)
    k = checked(graph, region, kernel_source(graph, region), timed)
    if k is not None and timed and parallel_ok(graph, region) and _threads_may_pay(region) \
            and not _calls_blas(graph):
        psrc = kernel_source(graph, region, parallel=True)
        key = (psrc, int(np.prod(region.shape, dtype=np.int64)).bit_length())
        if _threaded.get(key) is not False:  # lost once at this size class: not again
            vals = _inputs(graph, region)
            par = _compile(graph, region, psrc, vals)
            if par is not None and _concurrent_launches_ok():
                t = timing(psrc, region, lambda: (_best(par[0], vals), 0.0))
                # as the kernels' rules: a clear win only
                won = _threaded[key] = t[0] * MARGIN <= k.seconds[0]
                if won:
                    k.fn, k.source, k.seconds = par[0], psrc, (t[0], k.seconds[1])
    return k


#: (threaded source, size class) -> whether it beat the serial loop, as ``timing`` keys
#: its timings: a program of thousands of regions of one structure (a loop writing one
#: element per step into a large array) compiles, checks and runs the threaded loop once,
#: not once per region.
_threaded = {}
