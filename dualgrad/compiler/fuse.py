"""Fusion: which regions of the optimised graph run as kernels, and the graph with them.

``compile_regions`` finds the regions (regions.py), has the target make each one's kernel
(emit_cpu.py or emit_cuda.py, through kernel.py) and keeps those to use; ``fuse``
rewrites the graph with each kept region as one ``fused`` node, which replay calls.

**Choice.**  With ``codegen="auto"`` (the default) each kernel is compiled and run once at
the graph's first replay on the recorded values, checked against them, and timed against
replaying its nodes: a kernel is used where it is faster on this machine, never on a
threshold measured elsewhere.  ``codegen="numba"`` uses every kernel that compiles (the
tests do), ``codegen="off"`` none.  A kernel that fails to compile or disagrees with the
recorded values falls back to replay, with a warning: never a wrong kernel.

**Long scalar regions.**  An unrolled Python loop over scalars (the bench's ``chain``)
makes one scalar region of thousands of nodes.  On the CPU it is kept whole where
roll.py writes its repeated blocks as loops in at most MAX_OPS lines (``roll.small``);
else every region is cut at MAX_OPS nodes, as numba's compile time grows with a
function's length (about 4 ms a node).

**Targets.**  ``target`` says where a graph's kernels run: here for numpy inputs, as
``@cuda.jit`` kernels (emit_cuda.py, the same regions and scalar forms) for GPU arrays,
nowhere (replay) for other array types.
"""

import heapq
import os
import warnings

import numpy as np

from ..backend import is_foreign_array
from . import emit_cpu, roll
from .graph import Graph, Op
from .regions import MAX_OPS, is_array, partition, recompute, wire

MODES = ("auto", "numba", "off")
ROLLED_OPS = 100_000  # nodes of a scalar region roll.py may roll (else MAX_OPS)


def mode_default():
    m = os.environ.get("DUALGRAD_CODEGEN", "auto")
    if m not in MODES:
        raise ValueError(f"DUALGRAD_CODEGEN must be one of {MODES}, got {m!r}")
    return m


def target(graph):
    """Where ``graph``'s kernels run: ``"cuda"`` when its inputs are GPU arrays
    (emit_cuda.py), ``"cpu"`` for numpy's, None for other array types (replayed)."""
    where = "cpu"
    for op in graph.ops:
        if op.kind == "input" and op.ans.__class__ is not np.ndarray:
            if is_array(op.ans):  # numpy's or a GPU array: here, the GPU's
                return "cuda"
            if is_foreign_array(op.ans):
                where = None
    return where


def compile_regions(graph, mode="auto", build=emit_cpu.build):
    """The kernels to use for ``graph`` (regions.py: regions, recompute; above: choice);
    ``build`` makes one region's (emit_cpu's for the CPU, emit_cuda's for the GPU).

    Every region is wired as if all were used, then compiled, checked and (``auto``)
    timed; only if some are refused are the others wired again without them."""
    if mode == "off":
        return []
    regions = None
    if build is emit_cpu.build:  # a long scalar region, if each is rolled small enough
        regions = recompute(graph, partition(graph, scalar_cap=ROLLED_OPS))
        if any(not r.shape and r.size > MAX_OPS and not roll.small(graph, r)
               for r in regions):
            regions = None
    if regions is None:
        regions = recompute(graph, partition(graph))
    kernels = [_built(build, graph, r, mode == "auto") for r in regions]
    chosen = [k for k in kernels
              if k is not None and (mode == "numba" or k.seconds[0] <= k.seconds[1])]
    if len(chosen) < len(regions):
        keep = [k.region for k in chosen]
        for r in keep:
            r.copied = []
        wire(graph, keep)
        recompute(graph, keep)
        chosen = [_built(build, graph, r, False) for r in keep]
        if any(k is None for k in chosen):  # the rewiring broke one: replay is always right
            return []
    for k in chosen:
        if not k.region.outputs:
            k.fn = None  # nothing of it is needed any more
    return chosen


def _built(build, graph, region, timed):
    """``build(graph, region, timed)``, or None (the region is replayed) with a warning
    where writing the kernel itself fails: an optimisation's bug costs speed, never the
    user's call."""
    try:
        return build(graph, region, timed=timed)
    except Exception as e:  # noqa: BLE001 - any failure of code generation: replay instead
        warnings.warn(f"dg.jit: could not write a fused kernel ({type(e).__name__}: {e}); "
                      f"its {region.size} nodes are replayed instead", RuntimeWarning,
                      stacklevel=5)
        return None


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
