"""``dg.jit``: record a function once per signature as a graph, optimise it, replay it.

    >>> import numpy as np, dualgrad as dg
    >>> f = dg.jit(lambda x: np.sin(x) * 2.0 * 2.0)
    >>> float(f(0.5)) == float(np.sin(0.5) * 4.0)
    True
    >>> f.trace_count
    1

The first call with a new *signature* (pytree structure, each array's shape and dtype, each
Python scalar's type, the static arguments' values) runs ``f`` on a ``GraphTrace``
(record.py): a trace like ``Tape`` whose boxes (``Var``) carry concrete values, so Python
control flow works while recording.  Each primitive becomes one ``Op`` of a ``Graph``
(graph.py); at the next call the passes of passes.py optimise it, fuse.py compiles its
kernels and one generated straight-line Python function replays it (``Compiled``,
compiled.py).  Later calls with that signature run the replay and never call ``f``: a
Python side effect in ``f`` (a print, appending to a list) happens only while recording,
as in JAX.

**Guards.** What Python reads from a traced value is recorded with it as a guard
(``bool()`` of a comparison, ``int()``, ``float()``, ``.item()``, ``range(n)``, a raw value
a derivative rule reads: record.py).  Replay checks every guard and on a mismatch records
again for the new pattern, caching both.  After ``retrace_limit`` (8) such retraces the
function warns once and runs eagerly from then on: a jitted function never returns a
result computed on the wrong branch.  Each guard keeps its ``record.Site`` (the user's
file:line, what was read); a failing replay stores the site of the guard that failed
(``graph.MISSED``), and the warning names the one that failed most, with advice for it.

**Composition.** ``jit(grad(f))``, ``jit(hessian(f))``... record the forward pass and the
reverse sweep together (the rules are primitives), and the optimiser sees both.  A jitted
function called on traced values (``grad(jit(f))``, ``jvp(jit(f))``, a jit inside a jit)
replays its graph one primitive at a time through the tracing machinery (``run_traced``),
so the outer transforms differentiate the graph's own primitives: its rules are derived
from the graph.  Where the graph cannot be used (no graph yet for that signature, a guard
fails, a value of an outer trace was captured) it runs ``f`` itself.

**When recording does not pay.**  A recording keeps every value until its graph is built,
and a graph is worth building only if it is replayed.  Three budgets, all counts (never a
time, which would differ from machine to machine), stop a recording early and run ``f``
eagerly from then on, with one warning naming which: ``max_ops`` operations and
``max_bytes`` bytes of values (memory; by default also 1 GiB of values averaging 256 kB
per operation, which would hold twice eager's memory), and ``max_branches`` branches taken on traced
values (``bool()`` guards: an iterative solver's ``while err > tol``, a gradient
descent's ``if f_new < f``, unrolled).  Past a thousand data-dependent branches the graph
is one path through a data-dependent loop, replayed only while every one of them goes the
same way again, and building it (passes, kernels)
costs more than the eager runs it would save: GradBench's particle and saddle evals record
a branch every 10 to 70 operations and would record millions of operations.

**Renting before buying.**  A function called with many signatures, each a few times,
pays a recording and a build per signature (GradBench's LSTM: 0.6 s and 1.3-3.7 s for a
gradient whose eager call takes 0.18 s, at four sequence lengths, each timed for about a
second).  Once recording and building one signature took ``BUILD_WAIT`` (1 s), the function
runs that signature eagerly once more, timed, and keeps ``build_cost``: the recording and
build in eager calls.  From then on a new signature runs eagerly (``f`` itself, timed)
until its calls have taken as long as its recording and build would (``build_cost`` ×
its eager call), and is recorded and built at the next call; one it predicts under
``BUILD_WAIT`` waits one eager call.  This is the ski-rental rule: the time spent on a
signature is never more than twice what the better of the two choices would have cost,
whatever the number of calls to come.  One warning says so, the first time.  While a
signature is rented, ``f``'s Python side effects happen at every call, as after any
fallback.  A build that ends with ``2 * buffers.MMAP_THRESHOLD`` (64 MiB) more resident
memory than it began with returns the heap's free memory (``buffers.give_back``): Python's
compile of a large replay allocates in proportion to the graph and frees it all.
"""


import collections
import functools
import inspect
import threading
import time
import warnings

import numpy as np

from ..backend import is_foreign_array
from ..core import buffers
from ..core.buffers import distinct, gc_paused
from ..core.trace import Box
from ..core.tree import tree_flatten, tree_map, tree_unflatten
from ..core.validate import check_not_a_dataclass
from ..numpy.objects import lift_out
from ..numpy.preallocated import call
from .compiled import Compiled, Lowered
from .fuse import MODES, mode_default
from .graph import MISS, MISSED, Const, Graph, run_traced, same
from .passes import PIPELINE, pipeline
from .record import (
    GIVE_BACK,
    MAX_BYTES,
    MAX_OPS,
    WIDE_BYTES,
    WIDE_OP,
    Concrete,
    Foreign,
    GraphTrace,
    TooLarge,
    TooLong,
    Var,
)

RETRACE_LIMIT = 8
MAX_BRANCHES = 1000  # bool() guards in one recording before it stops (module docstring)
MAX_SIGNATURES = 64  # signatures a jitted function keeps compiled (least recently used go)
# a recording and build that take this long (seconds: a wait a user notices) make a jitted
# function measure what a build costs it in eager calls, and rent before it buys (module
# docstring): a human time scale, the same on every machine, not a measured threshold
BUILD_WAIT = 1.0


# ---------------------------------------------------------------------------
# the signature of a call
# ---------------------------------------------------------------------------

def _leaf_key(x):
    while isinstance(x, Box):  # under an outer transform: the signature of the raw value
        x = x.value
    c = x.__class__
    if c is np.ndarray:
        return (x.shape, x.dtype.str)
    if c in (float, int, bool, complex):
        return c
    if isinstance(x, np.generic):
        return (c, ())
    if is_foreign_array(x):  # a device array (CuPy): traced like numpy's, its class keyed
        chunks = getattr(x, "chunks", None)  # a dask array: its chunks too (replayed lazily)
        return (c, x.shape, x.dtype.str) if chunks is None else (c, x.shape, x.dtype.str, chunks)
    return None  # not an array: a constant of the graph, its value part of the key


class Jitted:
    """``jit(f)``: call it like ``f``.  ``trace_count`` counts recordings, ``clear_cache()``
    forgets them, ``lower(*args)`` shows the graph."""

    def __init__(self, fun, static_argnums=(), static_argnames=(), fast_math=False,
                 passes=PIPELINE, retrace_limit=RETRACE_LIMIT, codegen=None, max_ops=MAX_OPS,
                 max_signatures=MAX_SIGNATURES, exclude=(), max_branches=MAX_BRANCHES,
                 max_bytes=MAX_BYTES):
        functools.update_wrapper(self, fun)
        self.codegen = mode_default() if codegen is None else codegen
        if self.codegen not in MODES:
            raise ValueError(f"dg.jit: codegen must be one of {MODES}, got {codegen!r}")
        self.fun = fun
        self.static_argnums = (static_argnums,) if isinstance(static_argnums, int) \
            else tuple(static_argnums)
        self.static_argnames = (static_argnames,) if isinstance(static_argnames, str) \
            else tuple(static_argnames)
        self.fast_math = fast_math
        self.passes, self.exclude = pipeline(passes, exclude)  # names checked now
        self.retrace_limit = retrace_limit
        self.max_ops = max_ops
        self.max_branches = max_branches
        self.max_bytes = max_bytes
        if max_signatures is not None and (
                isinstance(max_signatures, bool) or not isinstance(max_signatures, int)
                or max_signatures < 1):
            raise ValueError("dg.jit: max_signatures must be a positive int or None (no "
                             f"bound), got {max_signatures!r}")
        self.max_signatures = max_signatures
        self.trace_count = 0
        self.retraces = 0
        self.eager = False
        self._missed = {}  # id -> [record.Site, failures that retraced]
        # signature -> its Compiled graphs (one per guard pattern), least recently used first
        self._cache = collections.OrderedDict()
        self._plain = not self.static_argnums and not self.static_argnames
        # Threads: replays run concurrently; a signature being recorded is recorded once,
        # the other threads that need it wait for it (``_recording``: key -> Event).
        self._lock = threading.Lock()
        self._recording = {}
        # Renting (module docstring): what recording and building a signature cost, in
        # eager calls of it (measured once a build took BUILD_WAIT), and each new
        # signature's eager calls so far: key -> [calls, seconds]
        self.build_cost = None
        self._renting = collections.OrderedDict()
        self._rent_warned = False

    def clear_cache(self):
        with self._lock:
            self._renting.clear()
            self._cache.clear()
            self.retraces = 0
            self.eager = False
            self._missed.clear()

    @property
    def cache_size(self):
        return sum(len(v) for v in self._cache.values())

    # -- splitting a call into a key, the traced leaves and a rebuild function --------
    def _split(self, args, kwargs):
        nargs = len(args)
        static = tuple(i % nargs for i in self.static_argnums if -nargs <= i < nargs)
        skw = tuple(k for k in sorted(kwargs) if k in self.static_argnames)
        svals = []
        for i in static:
            svals.append(_static(args[i], f"static argument {i} (static_argnums)"))
        for k in skw:
            svals.append(_static(kwargs[k], f"static argument {k!r} (static_argnames)"))
        dyn = ([a for i, a in enumerate(args) if i not in static],
               {k: v for k, v in kwargs.items() if k not in skw})
        leaves, tdef = tree_flatten(dyn)
        keys = []
        for x in leaves:
            k = _leaf_key(x)
            if k is None:
                check_not_a_dataclass(x, "dg.jit: an argument")
                k = ("c", type(x), _static(x, f"argument leaf {x!r:.60}"))
            keys.append(k)
        key = (nargs, static, skw, tuple(svals), _freeze(tdef), tuple(keys))
        if not static and not skw and not kwargs and all(
                x.__class__ in (np.ndarray, float, int) for x in args):
            key = tuple(keys)  # the hot path's key (__call__)

        at = {i: args[i] for i in static}  # (only these: a closure kept with a signature's
        skw_vals = {k: kwargs[k] for k in skw}  # graph holds none of the call's arrays)

        def rebuild(new_leaves):
            pos, kw = tree_unflatten(tdef, new_leaves)
            pos = iter(pos)
            full = [at[i] if i in at else next(pos) for i in range(nargs)]
            kw.update(skw_vals)
            return full, kw
        traced = [_leaf_key(x) is not None for x in leaves]
        return key, leaves, traced, rebuild

    def __call__(self, *args, **kwargs):
        if self.eager:
            return self.fun(*args, **kwargs)
        if not kwargs and self._plain:  # the hot path: numbers and arrays only
            key = []
            for x in args:
                c = x.__class__
                if c is np.ndarray:
                    key.append((x.shape, x.dtype.str))
                elif c is float or c is int:
                    key.append(c)
                else:
                    break
            else:
                key = tuple(key)
                entries = self._cache.get(key)
                if entries:
                    for comp in entries:
                        out = comp.replay(*args)
                        if out is not MISS:
                            comp.used = True  # (_evict)
                            return comp.finish(out)
        key, leaves, traced, rebuild = self._split(args, kwargs)
        boxed = any(isinstance(x, Box) for x in leaves)
        entries = self._cache.get(key)
        if boxed:  # under an outer transform: replay through the primitives
            if entries:
                flat = [x for x, t in zip(leaves, traced) if t]
                for c in entries:
                    out = run_traced(c.graph, flat)
                    if out is not MISS:
                        return tree_unflatten(c.graph.odef, out)
            return self.fun(*args, **kwargs)
        flat = [x for x, t in zip(leaves, traced) if t]
        eager_s = None  # an eager call's seconds, where this signature was rented first
        if self.build_cost is not None and not self._cache.get(key):
            rented = self._rent(key, args, kwargs)
            if rented.__class__ is tuple:
                return rented[0]
            eager_s = rented
        tried = []  # the graphs of this signature replayed, each once (their guards failed)
        missed = None  # the guard that failed last (record.Site)
        while True:
            for c in tuple(self._cache.get(key) or ()):
                if c not in tried:
                    tried.append(c)
                    out = c.replay(*flat)
                    if out is not MISS:
                        c.used = True
                        return c.finish(out)
                    missed = getattr(MISSED, "site", None)
                    MISSED.site = None  # read once: a later miss of another kind is not it
            with self._lock:  # record it, unless another thread is recording it now
                me = threading.get_ident()
                flight = self._recording.get(key)
                if flight is None or flight[0] == me:  # free, or our own recursion
                    if any(c not in tried for c in self._cache.get(key) or ()):
                        continue  # one came in meanwhile (a list grows in place): replay it
                    if flight is None:
                        flight = self._recording[key] = (me, threading.Event())
                    else:
                        flight = None
                    break
            flight[1].wait()  # it was being recorded: try what it recorded
        try:
            if tried:
                self.retraces += 1
                if missed is not None:
                    self._missed.setdefault(id(missed), [missed, 0])[1] += 1
                if self.retraces > self.retrace_limit:
                    return self._give_up(self._retrace_reason(args, kwargs), args, kwargs)
            stop = None  # why the recording stopped, acted on after its except clause (the
            try:  # traceback holds the abandoned recording, alive beside eager's run)
                compiled, out = self._record(leaves, traced, rebuild, eager_s=eager_s)
            except (Foreign, Branchy, TooLong) as e:
                stop = e.__class__
            except TooLarge as e:
                stop = "wide" if e.wide else TooLarge
            if stop is Foreign:
                return self.fun(*args, **kwargs)
            if stop is not None:
                if stop is not Branchy:  # a large recording, freed: its memory too
                    buffers.give_back()
                return self._give_up(self._stopped(stop), args, kwargs)
            if compiled.big and not compiled.kept:  # its values were dropped: their memory
                buffers.give_back()  # goes back (the build computes them again, once)
            with self._lock:
                self._cache.setdefault(key, []).append(compiled)
                self._cache.move_to_end(key)
                self._evict()
        finally:
            if flight is not None:
                with self._lock:
                    del self._recording[key]
                flight[1].set()
        if self.fast_math:  # the rewrites may change bits: every call gives the graph's
            res = compiled.replay(*flat)
            if res is not MISS:
                return compiled.finish(res)
        return out

    def _evict(self):
        """Drop signatures past ``max_signatures``, least recently used first, as a
        second-chance clock: a replay only sets its graph's ``used`` flag (one store on the
        hot path), and here the oldest signature whose graphs were used since the last pass
        has its flags cleared and goes to the back, until the oldest one unused goes."""
        cache = self._cache
        while self.max_signatures is not None and len(cache) > self.max_signatures:
            key, entries = next(iter(cache.items()))
            if any(c.used for c in entries):
                for c in entries:
                    c.used = False
                cache.move_to_end(key)
            else:
                del cache[key]

    def _retrace_reason(self, args, kwargs):
        """Why the function stops being compiled: the guard that failed most often, where
        it was recorded and what it read, with the advice for that kind of read."""
        n = self.retraces
        if not self._missed:
            return (f"recorded {n} times because its guards (Python control flow on traced "
                    "values) keep failing")
        site = max(self._missed.values(), key=lambda sk: sk[1])[0]
        if site.name is None:
            site.name = self._input_name(site.index, args, kwargs)
        line = site.source()
        why = (f"recorded {n} times because the guard at {site} failed on new inputs"
               + (f" (line: {line})" if line else ""))
        if site.what == "bool()":
            advice = ("Python control flow on a traced comparison (if/while) took another "
                      "branch: write the choice as np.where(cond, a, b), or pass what decides "
                      "it as a static argument (static_argnums)")
        elif site.what == "an index array's values":
            advice = ("an index array's values are read by Python and guarded (an index write "
                      "with traced indices is no graph value yet); reading with it, x[np."
                      "arange(N), y], replays with no guard, and a write with labels can be "
                      "a one-hot mask: dx -= (np.arange(C) == y[:, None]) for dx[np.arange(N),"
                      " y] -= 1, ind = 1.0 * (np.arange(C) == y[:, None]) for ind[np.arange"
                      "(N), y] = 1")
        elif site.what == "its values stored into a plain array":
            advice = ("a traced value written into a plain numpy array makes that array a "
                      "constant of the graph: make the array traced where it is made, "
                      "out = np.zeros(shape, like=x), or collect the pieces in a list and "
                      "np.stack them")
        elif site.what == "a raw value a derivative rule reads":
            advice = ("a derivative rule read the value's numbers, so the graph holds for "
                      "those numbers only: pass that value as a static argument "
                      "(static_argnums) if it takes few values")
        else:
            advice = ("a Python number read from a traced value changes between calls: keep "
                      "it an array, or pass it as a static argument (static_argnums)")
        return f"{why}; {advice}"

    def _input_name(self, index, args, kwargs):
        """The name of traced input ``index`` (its parameter's, where that argument is
        one array), or None."""
        try:
            key, leaves, traced, rebuild = self._split(args, kwargs)
            pos = [i for i, t in enumerate(traced) if t]
            if index >= len(pos):
                return None  # an intermediate value
            leaf = pos[index]
            params = [p.name for p in inspect.signature(self.fun).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            nargs = len(args)
            static = {i % nargs for i in self.static_argnums if -nargs <= i < nargs}
            k = 0
            for i, a in enumerate(args):
                if i in static:
                    continue
                m = len(tree_flatten(a)[0])
                if k <= leaf < k + m:
                    name = params[i] if i < len(params) else f"argument {i}"
                    return name if m == 1 else f"a leaf of {name}"
                k += m
        except (TypeError, ValueError):
            pass
        return None

    def _stopped(self, stop):
        """Why a recording stopped (``stop``: the budget's exception class, or "wide")."""
        if stop is Branchy:
            return (f"the recording passed {self.max_branches} branches on traced values "
                    "(Python control flow over data, such as an iterative solver's loop, "
                    "unrolled: a graph that costs more to build than it saves; raise "
                    "max_branches= to record more)")
        if stop is TooLong:
            return (f"the recording passed {self.max_ops} operations (a Python loop "
                    "unrolled without end?; raise max_ops= to record more)")
        if stop == "wide":
            return (f"the recording's values passed {WIDE_BYTES} bytes at "
                    f"{WIDE_OP // 1024} kB or more per operation (a recording keeps every "
                    "value, forward and reverse, until its graph is built: about twice the "
                    "memory eager dualgrad holds); pass max_bytes= to record it anyway")
        return (f"the recording's values passed {self.max_bytes} bytes (every value is kept "
                "until the graph is built: a loop writing entry by entry into a large array "
                "records a copy of it per write); raise max_bytes= to record more")

    def _give_up(self, why, args, kwargs):
        """Warn once and run eagerly from now on."""
        warnings.warn(f"dg.jit({self.__name__}): {why}; it runs eagerly from now on",
                      RuntimeWarning, stacklevel=3)
        self.eager = True
        return self.fun(*args, **kwargs)

    def _rent(self, key, args, kwargs):
        """A new signature of a function whose builds cost ``build_cost`` eager calls:
        ``(f's result,)`` from an eager call (timed), or, once its eager calls have taken
        as long as its recording and build would (or that would take under BUILD_WAIT),
        the seconds of one eager call: record it now."""
        with self._lock:
            st = self._renting.get(key)
            if st is not None:
                e = st[1] / st[0]
                cost = self.build_cost * e  # this signature's recording and build, predicted
                if cost < BUILD_WAIT or st[1] >= cost:
                    del self._renting[key]
                    return e
            warn, self._rent_warned = not self._rent_warned, True
        if warn:
            warnings.warn(
                f"dg.jit({self.__name__}): recording and building one of its signatures "
                f"took as long as {self.build_cost:.3g} eager calls of it; a new signature "
                "runs eagerly until its calls have taken that long, then it is recorded "
                "and built (a build its calls would not repay is never made)",
                RuntimeWarning, stacklevel=4)
        t0 = time.perf_counter()
        out = self.fun(*args, **kwargs)
        dt = time.perf_counter() - t0
        with self._lock:
            st = self._renting.setdefault(key, [0, 0.0])
            st[0] += 1
            st[1] += dt
            self._renting.move_to_end(key)
            while len(self._renting) > 4 * (self.max_signatures or MAX_SIGNATURES):
                self._renting.popitem(last=False)  # signatures long gone
        return (out,)

    def _built(self, compiled, flat, eager_s, rerun):
        """After ``compiled``'s first replay: its recording and build in eager calls of it
        (``eager_s``: one's seconds where it was rented, else, for a build that took
        BUILD_WAIT before any was measured, one eager call timed now)."""
        cost = compiled.record_s + compiled.build_s
        if eager_s is None:
            if self.build_cost is not None or cost < BUILD_WAIT:
                return
            t0 = time.perf_counter()
            try:
                rerun(flat)
            except Exception:  # noqa: BLE001 - f ran while recording: then nothing learnt
                return
            eager_s = time.perf_counter() - t0
        self.build_cost = cost / max(eager_s, 1e-9)

    def _record(self, leaves, traced, rebuild, lean=True, eager_s=None):
        t0 = time.perf_counter()
        trace = _Recording(self.max_ops, self.max_branches, self.max_bytes)
        # Recording allocates a burst of objects that all stay reachable until the graph
        # is built: a cyclic-GC pass in the middle frees nothing, and with a large heap
        # (measured: the bench's process) it costs more than the recording itself.
        with gc_paused():
            try:
                new = [trace.input(x) if t else x for x, t in zip(leaves, traced)]
                args, kwargs = rebuild(new)
                out = call(self.fun, args, kwargs)
                outs, odef = tree_flatten(tree_map(lift_out, out))
                refs = []
                for o in outs:
                    if o.__class__ is Var and o._trace is trace:
                        refs.append(o.index)
                    elif o.__class__ is Concrete and o.trace is trace:
                        refs.append(o.index)
                    elif isinstance(o, Box):
                        raise Foreign()
                    else:
                        refs.append(Const(o))
                trace.finish()
                compiled = Compiled(trace.graph(refs, odef), self.fast_math, self.passes,
                                    self.codegen, lean=lean,
                                    keep_values=self.fast_math or not lean,
                                    exclude=self.exclude, big=trace.nbytes >= GIVE_BACK)
                values = distinct([o.value if o.__class__ is Var else  # one array per
                                   (o.raw if o.__class__ is Concrete else o)  # output, as
                                   for o in outs])                            # replay's
            finally:
                trace.finish()
        compiled.record_s = time.perf_counter() - t0
        template = [None if t else x for x, t in zip(leaves, traced)]  # no traced array

        def rerun(flat):  # f called eagerly on a later call's leaves
            it = iter(flat)
            a, kw = rebuild([next(it) if t else x for x, t in zip(template, traced)])
            return self.fun(*a, **kw)
        compiled.probe = functools.partial(self._built, eager_s=eager_s, rerun=rerun)
        self.trace_count += 1
        return compiled, tree_unflatten(odef, values)

    def lower(self, *args, **kwargs):
        """Record ``f`` for these arguments (without caching) and return the graphs."""
        key, leaves, traced, rebuild = self._split(args, kwargs)
        compiled, _ = self._record(leaves, traced, rebuild, lean=False)
        self.trace_count -= 1
        return Lowered(compiled)


class Branchy(Exception):
    """The recording passed ``max_branches`` bool() guards (module docstring)."""


class _Recording(GraphTrace):
    """``GraphTrace`` that counts the branches Python takes on its values and stops the
    recording (``Branchy``) past ``max_branches`` of them."""

    __slots__ = ("branches", "max_branches")

    def __init__(self, max_ops, max_branches, max_bytes=MAX_BYTES):
        super().__init__(max_ops, max_bytes)
        self.branches, self.max_branches = 0, max_branches

    def guard(self, how, box):
        if how == "bool" and self.max_branches is not None:
            n = len(self.ops)
            ans = super().guard(how, box)
            if len(self.ops) > n:  # a guard was recorded (the value was ours)
                self.branches += 1
                if self.branches > self.max_branches:
                    raise Branchy()
            return ans
        return super().guard(how, box)


def _freeze(d):
    """A treedef as a hashable key (its child lists as tuples)."""
    if d.__class__ is list:
        return tuple(_freeze(c) for c in d)
    if d.__class__ is tuple:
        return tuple(_freeze(c) for c in d)
    return d


def _static(v, what):
    try:
        hash(v)
    except TypeError:
        raise TypeError(f"dg.jit: {what} must be hashable, got an unhashable "
                        f"{type(v).__name__}: {v!r}"[:300]) from None
    return v


def jit(fun=None, static_argnums=(), static_argnames=(), fast_math=False, passes=PIPELINE,
        retrace_limit=RETRACE_LIMIT, codegen=None, max_ops=MAX_OPS,
        max_signatures=MAX_SIGNATURES, exclude=(), max_branches=MAX_BRANCHES,
        max_bytes=MAX_BYTES):
    """``fun`` compiled: recorded once per signature, optimised, replayed (module docstring).

    ``static_argnums``/``static_argnames`` name arguments passed as Python values (part of
    the signature: a new value records again; they must be hashable).  ``fast_math=True``
    also applies the rewrites that may change rounding.  ``passes`` lists the optimiser's
    passes to run (passes.PIPELINE); ``exclude`` names passes, or rewrites of the
    ``simplify`` pass (passes.REWRITES: ``"local_mul_one"``...), to leave out; an unknown
    name in either is a ValueError.  ``retrace_limit`` how many guard failures are
    recorded again before the function falls back to eager execution.  ``codegen`` chooses
    the back end (fuse.py, emit_cpu.py; on CuPy arrays emit_cuda.py's ``@cuda.jit`` kernels):
    ``"auto"`` (the default, or ``$DUALGRAD_CODEGEN``) fuses elementwise regions into
    numba kernels where they are faster on this machine,
    ``"numba"`` wherever they compile, ``"off"`` replays the graph one primitive at a time.
    ``max_ops`` bounds a recording (memory: every value is kept while it records); past it
    the function warns once and runs eagerly; so it does past ``max_branches`` (1000;
    ``None``: no bound) branches Python takes on traced values (``if``/``while`` on a
    traced comparison), a data-dependent loop unrolled (module docstring), and past
    ``max_bytes`` bytes of recorded values (a quarter of the machine's memory, at most
    4 GiB; ``None``: no bound), which a loop writing entry by entry into a large array
    reaches first: each write records a copy of the array.  With the default
    ``max_bytes``, a recording past 1 GiB of values averaging 256 kB or more per
    operation stops too (record.WIDE_BYTES: it would hold about twice eager's memory).
    ``max_signatures`` bounds how many
    signatures stay compiled (64; ``None``: no bound): a new one past it drops the least
    recently used (as a second-chance clock approximates it: ``Jitted._evict``).  A
    compiled signature holds its graph's structure, constants, guards and kernels, never
    the values recorded with it.

    A function whose recording and build of one signature took a second or more rents
    before it buys (module docstring): ``build_cost`` is that build in eager calls, and a
    new signature runs eagerly until its calls have taken as long, then is recorded
    (``trace_count`` counts recordings only).

    Threads may call a jitted function at once: replays run side by side, and a signature
    is recorded once, the other threads that need it waiting for that recording.

    >>> import dualgrad as dg
    >>> dg.jit(dg.grad(lambda x: x * x * x))(2.0)
    12.0
    """
    if fun is None:
        return functools.partial(jit, static_argnums=static_argnums,
                                 static_argnames=static_argnames, fast_math=fast_math,
                                 passes=passes, retrace_limit=retrace_limit, codegen=codegen,
                                 max_ops=max_ops, max_signatures=max_signatures,
                                 exclude=exclude, max_branches=max_branches,
                                 max_bytes=max_bytes)
    return Jitted(fun, static_argnums, static_argnames, fast_math, passes, retrace_limit,
                  codegen, max_ops, max_signatures, exclude, max_branches, max_bytes)


__all__ = ["jit", "Jitted", "GraphTrace", "Lowered", "Graph", "same"]

