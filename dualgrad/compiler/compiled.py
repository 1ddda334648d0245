"""One recorded graph made runnable: ``Compiled`` optimises it, fuses its kernels and
generates its replay at the first replay, and ``Lowered`` shows each stage.

    recorded graph --optimise (passes.py)--> optimised graph
        --compile_regions, fuse (fuse.py)--> fused graph --compile_graph (graph.py)--> replay

The call that records a graph already has its result, so all of this waits for the
second call with the signature (as TinyJit captures on the second call).  A compiled
signature keeps what replay needs and no recorded value (``lean``), so a jitted
function's cache holds structure, constants, guards and kernels, never intermediates.
"""

import functools
import sys
import threading
import time
import warnings

import numpy as np

from ..core import buffers
from ..core.tree import LEAF_DEF, tree_unflatten
from . import buildcache
from .fuse import FusionError, compile_regions, fuse, target
from .graph import MISS, Const, compile_graph, evaluate
from .passes import optimise
from .record import _is_array


class Compiled:
    """One recorded graph; optimised and compiled to its replay function on first use.

    The call that records a graph already has its result (recording computes it), so the
    passes and the code generation wait for the first replay (as TinyJit captures on the
    second call): a function called once with a signature never pays for them."""

    __slots__ = ("raw", "fast_math", "passes", "exclude", "codegen", "_graph", "_summary",
                 "replay", "kernels", "fused", "finish", "kept", "lean", "_lock", "used",
                 "_key", "_stored", "from_cache", "_layout", "big", "record_s", "build_s",
                 "probe")

    def __init__(self, raw, fast_math, passes, codegen, lean=False, keep_values=True,
                 exclude=frozenset(), big=False):
        self.raw, self.fast_math, self.passes, self.codegen = raw, fast_math, passes, codegen
        self.exclude = exclude  # the rewrites ``simplify`` leaves out (passes.pipeline)
        self._graph = self._summary = None
        self._key = self._stored = None  # buildcache: this graph's key, a build read back
        self.from_cache = False  # whether the build was read from the build cache
        self.replay = self._first  # ``replay(*leaves)``: the flat outputs, or MISS
        odef = raw.odef  # ``finish(flat)``: the result the caller gets
        self.finish = _first_leaf if odef == LEAF_DEF else (
            tuple if odef[0] is tuple and all(c == LEAF_DEF for c in odef[2])
            else functools.partial(_unflatten, odef))
        # Memory (a jitted function's cache): ``lean`` keeps after the build only what replay
        # needs, the optimised graph's structure, constants, guards and kernels
        # (``Graph.drop_values``); ``keep_values`` False drops the recorded values at once
        # and computes them again from the first replay's own leaves, for the passes and
        # the kernels' checks, so a signature called once holds no intermediate either.
        self.kept, self.lean = keep_values, lean
        self.used = False  # replayed since the cache's last eviction pass (Jitted._evict)
        self.big = big  # its values passed record.GIVE_BACK bytes: given back when dropped
        # seconds its recording took (api.py sets it) and its build (or load) took; ``probe``
        # (api.py's, or None) is called once after the first replay, with its leaves
        self.record_s = self.build_s = 0.0
        self.probe = None
        self._lock = threading.Lock()
        # the inputs' memory layouts, which the build may read (buildcache's key): their
        # values go now (``keep_values``), and shells have none
        self._layout = tuple(_order(raw.ops[i].ans) for i in raw.inputs)
        if not keep_values:
            raw.drop_values()

    def _first(self, *leaves):
        out = self._build_and_replay(leaves)
        if self.probe is not None and out is not MISS:
            with self._lock:
                probe, self.probe = self.probe, None
            if probe is not None:  # (outside the lock: the threads waiting replay now)
                probe(self, leaves)
        return out

    def _build_and_replay(self, leaves):
        with self._lock:  # threads meeting an unbuilt graph: one builds, the rest wait
            if self.replay != self._first:
                return self.replay(*leaves)
            t0, r0 = time.perf_counter(), buffers.resident()
            raw, kept = self.raw, self.kept
            if not (self.lean and self._load()):  # else built by an earlier process
                if not kept:  # what recording computed, from these leaves, for the build
                    vals = evaluate(raw, leaves)
                    if vals is MISS:
                        return MISS
                    for op, v in zip(raw.ops, vals):
                        if op.kind != "guard":
                            op.ans = v
                    vals = None  # (the ops hold them, until the build drops them)
                    self.kept = True
                self._build()
                if self.big and self.lean:  # the values are gone: so is their memory
                    buffers.give_back()
                    r0 = None
            r1 = buffers.resident()
            if r0 is not None and r1 is not None and r1 - r0 >= 2 * buffers.MMAP_THRESHOLD:
                # a build's passes and Python's compile of its replay allocate (and free)
                # memory in proportion to the graph: 117 MB for GradBench's LSTM gradient at
                # c = 1024, which glibc's heap would keep under the eager calls that follow
                buffers.give_back()
            self.build_s = time.perf_counter() - t0
            # The build's replay gives this call's result, as every later call's (a fused
            # kernel may round apart from the primitives by an ulp: from the first replay
            # on, built here or loaded, a jitted function computes one way).
            out = self.replay(*leaves)
            if kept or out is MISS:
                return out
            return [v.copy() if _is_array(v) and not isinstance(v, np.generic) and (
                a.__class__ is Const or raw.ops[a].kind == "input") else v
                for a, v in zip(raw.outputs, out)]  # never an alias of a leaf or a Const

    def _load(self):
        """Take the build from the build cache (buildcache.py) if it holds this graph's;
        else note the key, so that ``_build_graph`` files the build under it."""
        options = (self.passes, tuple(sorted(self.exclude)), self.fast_math, self.codegen,
                   self._layout)
        with buffers.gc_paused():  # (as in ``_build``: a burst of objects that all stay)
            self._key = buildcache.key(self.raw, options)
            built = None if self._key is None else buildcache.load(self._key, self.raw)
            if built is None:
                return False
            # its replay's source and code too: GradBench's LSTM gradient at c = 4096
            # (330,000 nodes) spent 2.9 s of 4.0 in collections while generating it
            self.replay = compile_graph(built.fused, copies=built.copies)
        self._stored, self._summary, self.kernels = built, built.summary, built.kernels
        self.from_cache = True
        self.kept, self.fused, self.raw = False, None, None
        return True

    def _build(self):
        if not self.kept:  # the passes compare rewrites against the recorded values
            raise RuntimeError("dg.jit internal error: a graph built without its values")
        # As while recording (api.py): the passes and the regions allocate a burst of
        # objects that stay reachable, and a cyclic-GC pass over a large recorded graph
        # frees nothing (measured: chain's gradient, 13,000 nodes: 0.8 -> 0.5 s).
        with buffers.gc_paused():
            self._build_graph()

    def _build_graph(self):
        self._graph, self._summary = optimise(self.raw, self.passes, self.fast_math,
                                                  self.exclude)
        where = target(self._graph)
        if where == "cuda":
            from . import emit_cuda  # optional: numba-cuda, for graphs of GPU arrays
            self.kernels = compile_regions(self._graph, self.codegen, emit_cuda.build)
        else:
            self.kernels = compile_regions(self._graph, self.codegen if where else "off")
        try:
            self.fused = fuse(self._graph, self.kernels)
        except FusionError as e:  # never a wrong order: replay the graph as it is
            warnings.warn(f"{e}; replaying without fused kernels", RuntimeWarning,
                          stacklevel=3)
            self.kernels, self.fused = [], self._graph
        copies = _copies(self.raw, self._graph)
        self.replay = compile_graph(self.fused, copies=copies)
        held = None
        if self._key is not None:  # for the next process (buildcache.py)
            held = buildcache.save(self._key, self.raw, self._graph, self.fused, copies,
                                   self.kernels, self._summary)
        if self.lean:  # replay needs none of the values: they go now
            self.kept = False
            if held is not None:  # nor the optimised graph (outer transforms may ask for
                self._stored, self._graph = held, None  # it: ``graph`` decodes it then)
            else:
                self._graph.drop_values()
            self.fused = None
            self.raw = None

    @property
    def graph(self):
        """The optimised graph; before the first replay of a graph whose values were
        dropped, the graph as recorded (outer transforms replay either one primitive at a
        time: ``run_traced``)."""
        if self._graph is None:
            stored = self._stored
            if stored is not None:  # a build read back or filed: its optimised graph
                try:
                    g = stored.graph()
                except Exception as e:  # a file whole and of this version: not expected
                    raise RuntimeError("dg.jit: a build read from the build cache does not "
                                       "decode its optimised graph (DUALGRAD_BUILD_CACHE=0 "
                                       "turns the cache off)") from e
                self._graph, self._stored = g, None
                return g
            if not self.kept:
                return self.raw
            self._build()
        return self._graph

    @property
    def summary(self):
        if self._summary is None:
            self._build()
        return self._summary


def _order(v):
    """An input's memory layout: "C", "F", "CF" (both), "" (neither), None (not an array)."""
    if v.__class__ is not np.ndarray:
        return None
    return "C" * v.flags.c_contiguous + "F" * v.flags.f_contiguous


def _first_leaf(out):
    return out[0]


def _unflatten(odef, out):
    return tree_unflatten(odef, list(out))


def _copies(before, after):
    """Output positions the optimiser turned into an input or a constant array, or into a
    node an earlier output already returns (CSE of ``(2 * x, 2 * x)``, or one cotangent
    for both arguments of an add): replay copies them, so the caller never gets an alias of
    its argument, of the graph or of another output (numpy's results own their memory)."""
    out, seen = set(), set()
    for k, b in enumerate(after.outputs):
        if b.__class__ is int and after.ops[b].kind != "input":
            v = after.ops[b].ans
            if b in seen and _is_array(v) and not isinstance(v, np.generic):
                out.add(k)
            seen.add(b)
    for k, (a, b) in enumerate(zip(before.outputs, after.outputs)):
        if b.__class__ is Const:
            if _is_array(b.value) and not isinstance(b.value, np.generic):
                out.add(k)
        elif after.ops[b].kind == "input" and (a.__class__ is Const
                                               or before.ops[a].kind != "input"):
            if _is_array(after.ops[b].ans) and not isinstance(after.ops[b].ans, np.generic):
                out.add(k)
    return out


class Lowered:
    """What ``jit(f).lower(*args)`` returns: the graph ``before`` and ``after`` the passes,
    the ``summary`` of what each pass removed, the ``fused`` graph (each fusion region one
    node), the numba source of each of its ``kernels``, and the generated replay
    ``source`` that calls them."""

    def __init__(self, compiled):
        self.before, self.after = compiled.raw, compiled.graph
        self.summary = compiled.summary
        compiled.graph  # noqa: B018 - builds it
        self.source = compiled.replay.source
        self.fused = compiled.fused
        self.kernels = [k.source for k in compiled.kernels if k.fn is not None]

    def summary_text(self):
        s = self.summary
        words = {"fold": "folded", "uniform": "constants made scalar",
                 "simplify": "simplified", "layout": "reshapes collapsed",
                 "broadcast": "broadcasts dropped", "cse": "CSE'd", "dce": "dead"}
        parts = [f"{s[k]} {words[k]}" for k in s]
        return (f"{len(self.before)} ops -> {len(self.after)} ops ({', '.join(parts)}); "
                f"{self.after.guards} guard(s); {len(self.kernels)} fused kernel(s)")

    def as_dot(self):
        return self.after.as_dot()

    def __str__(self):
        return (f"before ({len(self.before)} ops):\n{self.before}\n\n"
                f"after ({len(self.after)} ops):\n{self.after}\n\n{self.summary_text()}")


buildcache.watch(sys.modules[__name__])  # (``target`` rebound: no build cache)
