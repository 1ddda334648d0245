"""``dg.jit``'s CUDA target: each fusion region of a graph whose inputs live on the GPU
becomes one ``@cuda.jit`` kernel.

The regions are jit_regions.py's, the scalar math the table's ``scalar`` forms (as the
CPU target writes them), compiled with ``np`` bound to ``kernels.cuda.NP`` (numpy, with
``kernels/npmath.py`` for what numba-cuda lacks).  Only the loop differs:

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
reads the loop extents from the inputs' shapes (``jit_codegen.extents``), picks the block
count from them, allocates the outputs where the inputs live (CuPy; numpy under numba's
simulator, as ``backend.cuda.use_array_module`` sets), launches with the extents as
arguments, and returns the outputs as eager CuPy would (dtypes, shapes, 0-d arrays for
full reductions).  So, as on the CPU, a source names no length: every shape of one
structure (nodes, dtypes, rank, broadcast axes) shares one kernel; only ``THREADS`` and
``MAX_BLOCKS`` are written in, constants of the process.  The source is cached as the CPU
kernels' are (``jit_codegen.load``: a file named by its hash, used only if it holds
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

from .emit_cpu import _dtype_of, _index, _live, _tuple, extents, operands, pad_load
from .kernel import Kernel, _best, _compile, _replay_region, timing, unused
from .regions import REDUCTIONS, is_array, value_of

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
THREADS = 32 if SIMULATED else 256  # a power of two: the block reduction halves it
MAX_BLOCKS = 2 if SIMULATED else 1024

#: how a block combines two partials (NaN-propagating max/min, as numpy's)
_COMBINE = {"sum": "{a} + {b}", "prod": "{a} * {b}",
            "max": "{a} if ({a} != {a} or {a} >= {b}) else {b}",
            "min": "{a} if ({a} != {a} or {a} <= {b}) else {b}"}
#: the second pass over the block partials (the array module's reductions propagate NaN)
_FINISH = {"sum": "sum", "prod": "prod", "max": "max", "min": "min"}


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
    loop = region.shape
    d = len(loop)
    outer = [k for k in range(d) if k not in inner]
    ext = [f"n{k}" for k in range(d)]  # the extents: launcher locals, kernel arguments
    n_outer = " * ".join(ext[k] for k in outer) or "1"
    local = {i: n for n, i in enumerate(sorted(region.ops + region.copied + region.reduced))}
    names, params, pre, loads, body, launch_pre = {}, [], [], [], [], []
    for k, a in enumerate(region.inputs):
        p = f"a{k}"
        params.append(p)
        v = value_of(ops, a)
        key = a if a.__class__ is int else id(a)
        if a.__class__ is int and a in region.pads:  # v placed in zeros: a shifted read
            loads.append(pad_load(k, p, v, region.pads[a], loop))
            names[key] = f"x{k}"
            if SIMULATED:
                launch_pre.append(f"{p} = xp.ascontiguousarray({p})")
        elif not is_array(v):
            names[key] = p
        elif v.ndim == 0 or d == 0:
            launch_pre.append(f"{p} = {p}.reshape(1)")
            pre.append(f"x{k} = {p}[0]")
            names[key] = f"x{k}"
        else:
            loads.append(f"x{k} = {p}{_index(v.shape, loop)}")
            names[key] = f"x{k}"
            if SIMULATED:  # the simulator copies only contiguous host arrays (a GPU reads
                launch_pre.append(f"{p} = xp.ascontiguousarray({p})")  # any strides)
    full_idx = _index(loop, loop) if d else "[0]"
    outs, allocs, finish = [], [], {}
    for i in _live(graph, region):
        op = ops[i]
        expr = op.prim.scalar(*operands(op, ops, names), **(op.kw or {}))
        if _dtype_of(op.ans) == np.dtype(np.float32):
            expr = f"np.float32({expr})"
        names[i] = f"v{local[i]}"
        body.append(f"v{local[i]} = {expr}")
        if i in region.outputs and is_array(op.ans):
            outs.append(f"o{local[i]}")
            allocs.append(f"o{local[i]} = xp.empty({_tuple(ext) if d else '(1,)'}, "
                          f"np.{op.ans.dtype.name})")
            body.append(f"o{local[i]}{full_idx} = v{local[i]}")
            finish[i] = f"o{local[i]}" if d else f"o{local[i]}.reshape(())"
        elif i in region.outputs:  # a scalar region's Python-number output
            outs.append(f"o{local[i]}")
            allocs.append(f"o{local[i]} = xp.empty((1,), np.{np.dtype(_dtype_of(op.ans)).name})")
            body.append(f"o{local[i]}[0] = v{local[i]}")
            finish[i] = f"o{local[i]}[0]"
    shared, tail, before_inner, after_inner = [], [], [], []
    for j in region.reduced:
        op = ops[j]
        name = op.prim.name
        init, step = REDUCTIONS[name]
        axes = tuple(sorted(set(a % d for a in op.kw["axis"]))) if d else ()
        src = names[op.args[0]]
        dt = np.dtype(_dtype_of(op.ans))
        if len(axes) < d:  # over the inner axes, one thread per kept index
            acc = f"q{local[j]}"
            before_inner.append(f"{acc} = {init}")
            at = "[" + ", ".join(f"i{k}" for k in outer) + ("," if len(outer) == 1 else "") + "]"
            after_inner.append(f"r{local[j]}{at} = {acc}")
            outs.append(f"r{local[j]}")
            allocs.append(f"r{local[j]} = xp.empty({_tuple([ext[k] for k in outer])}, "
                          f"np.{dt.name})")
            keep = _tuple(["1" if k in axes else ext[k] for k in range(d)])  # keepdims
            finish[j] = f"r{local[j]}.reshape({keep})" if op.ans.ndim != len(outer) \
                else f"r{local[j]}"
        else:  # over everything: per-thread partial, block tree, one partial per block
            acc = f"s{local[j]}"
            pre.append(f"{acc} = {init}")
            shared.append(f"h{local[j]} = cuda.shared.array({THREADS}, float64)")
            comb = _COMBINE[name].format(a=f"h{local[j]}[tid]", b=f"h{local[j]}[tid + half]")
            tail.append((f"h{local[j]}[tid] = {acc}", f"h{local[j]}[tid] = {comb}",
                         f"p{local[j]}[cuda.blockIdx.x] = h{local[j]}[0]"))
            outs.append(f"p{local[j]}")
            allocs.append(f"p{local[j]} = xp.empty(nb, np.float64)")
            shape = op.ans.shape if is_array(op.ans) else ()
            finish[j] = (f"p{local[j]}.{_FINISH[name]}().astype(np.{dt.name})"
                         f".reshape({shape!r})")
        body.extend(step.format(a=acc, v=src).replace(": ", ":\n    ").split("\n"))
    # -- the kernel
    lines = ["@cuda.jit(cache=True)", f"def _k({', '.join(params + outs + ext)}):"]
    lines += ["    " + s for s in shared + pre]
    lines.append(f"    for t in range(cuda.grid(1), {n_outer}, cuda.gridsize(1)):")
    ind = "        "
    rest = "t"
    for k in reversed(outer):  # the kept multi-index of t, last axis fastest
        lines.append(f"{ind}i{k} = {rest} % n{k}")
        if k != outer[0]:
            lines.append(f"{ind}u{k} = {rest} // n{k}")
            rest = f"u{k}"
    lines += [ind + s for s in before_inner]
    for k in inner:
        lines.append(f"{ind}for i{k} in range(n{k}):")
        ind += "    "
    lines += [ind + s for s in loads + body]
    lines += ["        " + s for s in after_inner]
    if tail:
        lines.append("    tid = cuda.threadIdx.x")
        lines += ["    " + t[0] for t in tail]
        lines += ["    cuda.syncthreads()", f"    half = {THREADS // 2}", "    while half > 0:",
                  "        if tid < half:"]
        lines += ["            " + t[1] for t in tail]
        lines += ["        cuda.syncthreads()", "        half //= 2", "    if tid == 0:"]
        lines += ["        " + t[2] for t in tail]
    # -- the launcher
    ins = ", ".join(params)
    launcher = [f"def kernel({ins}):", "    xp = array_module()"]
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
    (jit_codegen's ``_compile``, on host copies) and (``timed``) timed against replaying
    its nodes; None where it cannot be used."""
    if not region.outputs:
        return unused(region, timed)
    src = kernel_source(graph, region)
    if src is None:
        return None
    vals = [value_of(graph.ops, region.source(a)) for a in region.inputs]
    made = _compile(graph, region, src, vals)
    if made is None:
        return None
    k = Kernel(region, made[0], src, made[1])
    if timed:  # once per source and size class, as the CPU's (jit_codegen.timing)
        plain = [value_of(graph.ops, a) for a in region.inputs]
        k.seconds = timing(src, region, lambda: (
            _best(_synced(k.fn), vals),
            _best(_synced(lambda *v: _replay_region(graph, region, v)), plain)))
    return k
