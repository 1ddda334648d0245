"""``dg.jit``'s CUDA target: each fusion region of a graph whose inputs live on the GPU
becomes one ``@cuda.jit`` kernel.

The regions are regions.py's and the loop is loops.py's: the same reads, scalar forms,
stores and reduction steps as the CPU's, compiled with ``np`` bound to ``kernels.cuda.NP``
(numpy, with ``kernels/npmath.py`` for what numba-cuda lacks).  What differs is how the
loop is laid over threads (``Cuda``, the target's spelling) and what surrounds it:

* **Elementwise**: a grid-stride loop over the region's index space, one element per
  thread per step, broadcast operands read at index 0 along their length-1 axes.
* **Full reductions** (``sum(x)``): each thread accumulates in float64 over its
  elements, the block combines its threads' partials in shared memory (a tree), and
  block 0..B-1 write one partial each; the second pass is the array module's reduction
  of the B partials (cuBLAS-free, one small call).  The partials' order is fixed by
  the launch, so results are deterministic.
* **Reductions over some axes** (``sum(x, axis=0)``): the grid strides over the kept
  indices and each thread loops over the reduced ones, so every output has one thread
  and one sequential float64 accumulator (deterministic; no atomics).  The region's
  reductions must then all reduce the same axes; a region that mixes two axis sets is
  replayed instead.

The generated module holds the kernel (``_k``) and a launcher ``kernel(a0, a1, ...)`` that
reads the loop extents from the inputs' shapes (``loops.extents``), picks the block
count from them, allocates the outputs where the inputs live (CuPy; numpy under numba's
simulator, as ``backend.cuda.use_array_module`` sets), launches with the extents as
arguments, and returns the outputs as eager CuPy would (dtypes, shapes, 0-d arrays for
full reductions).  So, as on the CPU, a source names no length: every shape of one
structure (nodes, dtypes, rank, broadcast axes) shares one kernel; only ``THREADS`` and
``MAX_BLOCKS`` are written in, constants of the process.  The source is cached as the CPU
kernels' are (``kernel.load``: a file named by its hash, used only if it holds
exactly the source), and ``cache=True`` lets numba-cuda keep the compiled kernel in
dualgrad's checked cache (``dualgrad.kernels.diskcache``).  ``build`` compiles it,
checks it against the recorded values (copied to the host once, explicitly) and with
``timed`` times it against replaying its nodes, synchronising the device around every
clock read.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.compiler import emit_cuda
    >>> emit_cuda.THREADS in (32, 256)
    True
"""

import os

import numpy as np

from .kernel import checked, unused
from .loops import Loop, Target, dtype_of, extents, source_tuple
from .regions import is_array

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
THREADS = 32 if SIMULATED else 256  # a power of two: the block reduction halves it
MAX_BLOCKS = 2 if SIMULATED else 1024

#: how a block combines two partials (NaN-propagating max/min, as numpy's)
_COMBINE = {"sum": "{a} + {b}", "prod": "{a} * {b}",
            "max": "{a} if ({a} != {a} or {a} >= {b}) else {b}",
            "min": "{a} if ({a} != {a} or {a} <= {b}) else {b}"}
#: the second pass over the block partials (the array module's reductions propagate NaN)
_FINISH = {"sum": "sum", "prod": "prod", "max": "max", "min": "min"}


class Cuda(Target):
    """The GPU's spelling of a loop (loops.py): a grid-stride loop over the kept axes'
    flat index ``t``, one thread per index per step, with the reduced axes looped inside;
    outputs are arrays the launcher allocates, 0-d values read and written at ``[0]``."""

    def once(self, p):
        return f"{p}[0]"

    def array(self, v):
        return is_array(v)

    def contiguous(self, p):  # a GPU thread reads any strides: no copy
        return None

    def stores(self, op, d):
        return True

    def accumulator(self, n, axes, d):
        return f"q{n}" if len(axes) < d else f"s{n}"

    def declare(self, name, params, loop):
        return ["@cuda.jit(cache=True)", f"def {name}({', '.join(params)}):"]

    def outer(self, loop):
        n = " * ".join(f"n{k}" for k in loop.outer) or "1"
        lines = [f"    for t in range(cuda.grid(1), {n}, cuda.gridsize(1)):"]
        ind, rest = "        ", "t"
        for k in reversed(loop.outer):  # the kept multi-index of t, last axis fastest
            lines.append(f"{ind}i{k} = {rest} % n{k}")
            if k != loop.outer[0]:
                lines.append(f"{ind}u{k} = {rest} // n{k}")
                rest = f"u{k}"
        return lines, ind


def _axes(graph, region):
    """The axes the region's partial reductions reduce (one common set), () when it has
    none; None when two reductions reduce different axes (no one thread mapping)."""
    d = len(region.shape)
    found = None
    for j in region.reduced:
        axes = tuple(sorted(set(a % d for a in graph.ops[j].kw["axis"]))) if d else ()
        if len(axes) == d:
            continue  # a full reduction: any mapping serves it
        if found is not None and axes != found:
            return None
        found = axes
    return found or ()


def kernel_source(graph, region):
    """The source of one region's CUDA kernel and launcher, or None where the region
    cannot be one kernel (reductions over different axes)."""
    inner = _axes(graph, region)
    if inner is None:
        return None
    ops = graph.ops
    loop = Loop(graph, region, Cuda(), inner)
    d, outer, params = loop.d, loop.outer, loop.params
    ext = [f"n{k}" for k in range(d)]  # the extents: launcher locals, kernel arguments
    n_outer = " * ".join(ext[k] for k in outer) or "1"
    launch_pre = []
    for p, how in zip(params, loop.reads):
        if how == "once":
            launch_pre.append(f"{p} = {p}.reshape(1)")
        elif how in ("each", "pad") and SIMULATED:  # the simulator copies only contiguous
            launch_pre.append(f"{p} = xp.ascontiguousarray({p})")  # host arrays (a GPU
            # reads any strides)
    outs, allocs, finish = [], [], {}
    for i, o in loop.stored.items():
        ans = ops[i].ans
        outs.append(o)
        if is_array(ans):
            allocs.append(f"{o} = xp.empty({source_tuple(ext) if d else '(1,)'}, "
                          f"np.{ans.dtype.name})")
            finish[i] = o if d else f"{o}.reshape(())"
        else:  # a scalar region's Python-number output
            allocs.append(f"{o} = xp.empty((1,), np.{np.dtype(dtype_of(ans)).name})")
            finish[i] = f"{o}[0]"
    pre, shared, tail, start, end = list(loop.pre), [], [], [], []
    for red in loop.reductions:
        op, n, acc, name = red.op, red.n, red.acc, red.op.prim.name
        dt = np.dtype(dtype_of(op.ans))
        if len(red.axes) < d:  # over the inner axes, one thread per kept index
            start.append(f"{acc} = {red.init}")
            at = "[" + ", ".join(f"i{k}" for k in outer) + ("," if len(outer) == 1 else "") + "]"
            end.append(f"r{n}{at} = {acc}")
            outs.append(f"r{n}")
            allocs.append(f"r{n} = xp.empty({source_tuple([ext[k] for k in outer])}, "
                          f"np.{dt.name})")
            keep = source_tuple(["1" if k in red.axes else ext[k] for k in range(d)])
            finish[red.j] = f"r{n}.reshape({keep})" if op.ans.ndim != len(outer) else f"r{n}"
        else:  # over everything: per-thread partial, block tree, one partial per block
            pre.append(f"{acc} = {red.init}")
            shared.append(f"h{n} = cuda.shared.array({THREADS}, float64)")
            comb = _COMBINE[name].format(a=f"h{n}[tid]", b=f"h{n}[tid + half]")
            tail.append((f"h{n}[tid] = {acc}", f"h{n}[tid] = {comb}",
                         f"p{n}[cuda.blockIdx.x] = h{n}[0]"))
            outs.append(f"p{n}")
            allocs.append(f"p{n} = xp.empty(nb, np.float64)")
            shape = op.ans.shape if is_array(op.ans) else ()
            finish[red.j] = f"p{n}.{_FINISH[name]}().astype(np.{dt.name}).reshape({shape!r})"
    # -- the kernel: the loop, then each block's tree over its threads' partials
    tree = []
    if tail:
        tree.append("    tid = cuda.threadIdx.x")
        tree += ["    " + t[0] for t in tail]
        tree += ["    cuda.syncthreads()", f"    half = {THREADS // 2}", "    while half > 0:",
                 "        if tid < half:"]
        tree += ["            " + t[1] for t in tail]
        tree += ["        cuda.syncthreads()", "        half //= 2", "    if tid == 0:"]
        tree += ["        " + t[2] for t in tail]
    lines = loop.lines("_k", params + outs + ext, head=shared + pre, start=start, end=end,
                       tail=tree)
    # -- the launcher
    launcher = [f"def kernel({', '.join(params)}):", "    xp = array_module()"]
    launcher += ["    " + s for s in launch_pre]
    launcher += [f"    {n} = {e}" for n, e in zip(ext, extents(ops, region))]
    launcher.append(f"    nb = max(1, min({MAX_BLOCKS}, ({n_outer} + {THREADS - 1}) // {THREADS}))")
    launcher += ["    " + s for s in allocs]
    launcher.append(f"    _k[nb, {THREADS}]({', '.join(params + outs + ext)})")
    launcher.append(f"    return ({', '.join(finish[i] for i in region.outputs)},)")
    head = ["from numba import cuda, float64", "",
            "from dualgrad.backend.cuda import array_module",
            "from dualgrad.kernels.cuda import NP as np", "", ""]
    return "\n".join(head + lines) + "\n\n\n" + "\n".join(launcher) + "\n"


def synchronize():
    """Wait for the device (CuPy's current one); nothing under the simulator."""
    from ..backend.cuda import array_module  # optional: only the CUDA target needs it
    xp = array_module()
    if xp is not np:
        xp.cuda.Device().synchronize()


def _synced(fn):
    def run(*args):
        out = fn(*args)
        synchronize()
        return out
    return run


def build(graph, region, timed):
    """The region's ``Kernel`` on the GPU, compiled, checked against the recorded values
    (kernel.checked, on host copies) and (``timed``) timed against replaying its nodes,
    the device synchronised around every clock read; None where it cannot be used."""
    if not region.outputs:
        return unused(region, timed)
    src = kernel_source(graph, region)
    if src is None:
        return None
    return checked(graph, region, src, timed, clock=_synced)
