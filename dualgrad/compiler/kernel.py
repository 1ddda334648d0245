"""A generated kernel source made callable: loaded through the checked disk cache,
checked against the values the graph recorded, and timed against replaying its nodes.

Both targets (emit_cpu.py, emit_cuda.py) hand their sources here; what comes back is a
``Kernel`` (the compiled function, its source, how its outputs become the classes eager
numpy gives) or nothing: a kernel that does not compile or disagrees is never used.

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

**Check and time.**  A kernel is run once on the recorded values and compared with them
(``_agrees``: bit for bit for booleans, a few ulps otherwise); with timing, it is timed
against replaying its nodes once per source and size class (``timing``), so fuse.py can
use it only where it is faster on this machine.
"""

import functools
import hashlib
import os
import sys
import time
import types
import warnings

import numpy as np

from ..backend.tuning import cache_dir, unwritable, write_atomic
from .regions import input_key, is_array, value_of

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
    forget_annotations(fn)
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
    if c is np.ndarray:  # (a partial, not a lambda: the build cache names it, buildcache.py)
        return None if ans.ndim else functools.partial(np.asarray, dtype=ans.dtype)
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
    env = dict(zip([input_key(a) for a in region.inputs], vals))
    for i in sorted(region.ops + region.copied + region.reduced):
        op = ops[i]
        args = [env[a] if a.__class__ is int else env.get(input_key(a), a.value)
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


def _best(fn, args, budget=0.05, enough=np.inf):
    """The fastest of a few timed calls (at least 2, more while under ``budget`` s; one
    where that one took the budget, or took more than ``enough`` s: a replay of thousands
    of nodes against a kernel that took a quarter of that, where a second call could not
    change which is faster)."""
    best, spent, n = np.inf, 0.0, 0
    while (n < 2 and spent < budget) or (spent < budget and n < 20):
        t = time.perf_counter()
        fn(*args)
        dt = time.perf_counter() - t
        best, spent, n = min(best, dt), spent + dt, n + 1
        if best > enough:
            break
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


def _lean(cres):
    """A numba compile result without its type annotation (``cres`` if it has none)."""
    if getattr(cres, "type_annotation", None) is not None and hasattr(cres, "_replace"):
        return cres._replace(type_annotation=None)
    return cres


def forget_annotations(fn):
    """Make numba's dispatcher ``fn`` drop what it keeps of each compilation for
    ``inspect_types()`` only: the type annotation, which holds the function's whole typed
    IR (about 80% of the Python objects a compiled kernel keeps: a cold build of 192
    kernels kept some 480,000).  Signatures compiled already lose theirs now, later ones
    as they are added (numba's ``compile`` adds each through ``self.add_overload``).
    Calling, caching and dispatch read none of it; ``inspect_types()`` of a generated
    kernel has nothing to show.  Returns how many it dropped now."""
    overloads = getattr(fn, "overloads", None)
    if overloads is None or not hasattr(fn, "add_overload"):
        return 0
    dropped = 0
    for sig, cres in list(overloads.items()):
        lean = _lean(cres)
        if lean is not cres:
            overloads[sig] = lean
            dropped += 1
    if "add_overload" not in vars(fn):
        add = fn.add_overload
        fn.add_overload = lambda cres: add(_lean(cres))
    return dropped


def _compile(graph, region, src, vals, stacklevel=5):
    """``(fn, casts)`` for ``src``, compiled and checked against the recorded values; None
    (with a warning, pointing ``stacklevel`` frames up) where it does not compile or
    disagrees."""
    try:
        fn = load(src)
        got = fn(*vals)
    except Exception as e:  # noqa: BLE001 - numba's typing errors have many classes
        warnings.warn(f"dg.jit: a fused kernel did not compile ({type(e).__name__}: "
                      f"{str(e)[:200]}); its {region.size} nodes are replayed instead",
                      RuntimeWarning, stacklevel=stacklevel)
        return None
    casts = [_cast(graph.ops[i].ans) for i in region.outputs]
    got = [v if c is None else c(v) for v, c in zip(got, casts)]
    if not _agrees(got, [graph.ops[i].ans for i in region.outputs]):
        warnings.warn("dg.jit: a fused kernel disagreed with the recorded values; its "
                      f"{region.size} nodes are replayed instead", RuntimeWarning,
                      stacklevel=stacklevel)
        return None
    return fn, casts


def unused(region, timed):
    """The Kernel of a region nothing reads (its values are recomputed elsewhere)."""
    k = Kernel(region, None, "", [])
    k.seconds = (0.0, 0.0) if timed else None
    return k


def checked(graph, region, src, timed, clock=None):
    """The ``Kernel`` of ``src`` for ``region``, compiled and checked against the recorded
    values and, when ``timed``, with ``seconds`` = (kernel, replay) at the region's size
    class (``clock`` wraps each timed call: the CUDA target synchronises the device);
    None where it does not compile or disagrees."""
    vals = _inputs(graph, region)
    made = _compile(graph, region, src, vals, stacklevel=6)
    if made is None:
        return None
    k = Kernel(region, made[0], src, made[1])
    if timed:
        wrap = clock or (lambda fn: fn)
        plain = [value_of(graph.ops, a) for a in region.inputs]  # padded arrays as they are
        def measure():
            ks = _best(wrap(k.fn), vals)
            return ks, _best(wrap(lambda *v: _replay_region(graph, region, v)), plain,
                             enough=4 * ks)
        k.seconds = timing(src, region, measure)
    return k
