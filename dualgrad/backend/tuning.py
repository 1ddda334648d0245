"""Which kernel wins *on this machine*: measured crossovers, cached on disk.

The numba kernels in ``dualgrad.kernels`` win or lose against numpy depending on
the CPU: numpy dispatches at run time to SIMD loops (AVX2, AVX-512) that a scalar
numba loop may beat on one machine and lose to badly on another (float64 ``exp``
and ``tanh`` with AVX-512).  So no threshold is a constant.  For each kernel and
dtype the backend times its numpy and numba paths side by side at a few sizes (a
geometric ladder), the first time a call is large enough to matter, and
:func:`decide` turns the timings into a *rule*: the size range in which numba wins
by at least ``MARGIN`` at every measured size, or ``None`` (numpy always).

Rules are cached in a JSON file under ``$XDG_CACHE_HOME/dualgrad`` (default
``~/.cache/dualgrad``), one file per :func:`machine_key`: CPU model, the CPU
features numpy dispatches to (so ``NPY_DISABLE_CPU_FEATURES`` changes the key),
numpy, numba, llvm target and Python versions, numba's thread count (the calling
thread's ``numba.get_num_threads()`` when the table is first read: a rule measured
with two threads, where a kernel's parallel twin ran, is not reused with one) and a
hash of the kernel sources.
``DUALGRAD_TUNING`` selects the mode:

- unset, ``1`` or ``cache``: measure at first use, keep the result on disk;
- ``nocache``: measure at first use in each process, never read or write disk;
- ``0`` or ``off``: measure nothing: every kernel with a threshold takes numpy
  (the conservative choice; set the backend to ``numpy`` for the same effect).

A cache file that is corrupt (its ``digest``, the SHA-256 of the rest, disagrees),
from another key or unwritable is ignored: the rules are then measured again (and kept
in memory).  Files are written whole (a uniquely named temporary file in the same
folder, then ``os.replace``).  An unwritable cache folder -- here, for the generated
kernels or for numba's files (``dualgrad.kernels.diskcache``) -- means no disk cache,
with one warning per process (:func:`unwritable`).

    >>> decide([512, 4096, 32768], [1.0, 8.0, 64.0], [2.0, 6.0, 40.0])
    (4096, None)
    >>> decide([512, 4096], [1.0, 8.0], [2.0, 9.0]) is None
    True
"""

import hashlib
import json
import os
import platform
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

SCHEMA = 2  # 2: the file carries a digest of its content
ENV = "DUALGRAD_TUNING"
MARGIN = 1.10  # numba must be at least 10% faster than numpy at a size to take it


# ---------------------------------------------------------------------------
# The decision, from timings (pure: tested on synthetic numbers)

def decide(sizes, t_numpy, t_numba, margin=MARGIN):
    """The sizes where numba should run: ``(lo, hi)`` (``hi`` None: no upper bound) or None.

    numba *wins* at a measured size when ``t_numba * margin <= t_numpy``.  The rule is
    the longest run of consecutive winning sizes (of equal runs, the one at the larger
    sizes); it is open-ended only when it reaches the largest measured size.  Sizes
    below the smallest measured one, and between a win and the next loss, take numpy:
    numba never runs at a size where it was measured slower, nor between measurements
    that do not both favour it.

    >>> decide([1, 2, 4, 8], [5, 5, 5, 5], [1, 9, 1, 1])    # a noisy loss at 2
    (4, None)
    >>> decide([1, 2, 4, 8], [5, 5, 5, 5], [1, 1, 9, 9])    # numba wins small only
    (1, 2)
    """
    if not (len(sizes) == len(t_numpy) == len(t_numba)):
        raise ValueError("decide: sizes and both timing lists must have one length")
    wins = [b > 0 and a > 0 and b * margin <= a for a, b in zip(t_numpy, t_numba)]
    best, start = None, None
    for i, w in enumerate(wins + [False]):
        if w and start is None:
            start = i
        elif not w and start is not None:
            if best is None or i - start >= best[1] - best[0]:
                best = (start, i)
            start = None
    if best is None:
        return None
    lo, end = best
    return (sizes[lo], None if end == len(sizes) else sizes[end - 1])


def applies(rule, n):
    """True when ``rule`` (from :func:`decide`) says numba for a call of size ``n``."""
    return rule is not None and rule[0] <= n and (rule[1] is None or n <= rule[1])


# ---------------------------------------------------------------------------
# Timing

def measure(call_numpy, call_numba, min_sample=1.5e-4, rounds=(3, 5), clear=1.3):
    """Median seconds per call of two zero-argument callables, sampled interleaved.

    Each is called once first (compiles, caches).  A sample loops a call until it lasts
    ``min_sample``; rounds alternate which goes first.  After ``rounds[0]`` rounds it
    stops if the ratio is clear (beyond ``clear`` either way), else runs ``rounds[1]``.
    """
    calls = (call_numpy, call_numba)
    reps = []
    for c in calls:
        t0 = time.perf_counter()
        c()
        dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        c()  # the first call may have compiled: time a second one for the loop count
        dt = max(time.perf_counter() - t0, 1e-7)
        reps.append(max(1, min(10000, int(min_sample / dt) + 1)))
    samples = ([], [])
    for r in range(rounds[1]):
        for j in ((0, 1) if r % 2 == 0 else (1, 0)):
            c, n = calls[j], reps[j]
            t0 = time.perf_counter()
            for _ in range(n):
                c()
            samples[j].append((time.perf_counter() - t0) / n)
        if r + 1 >= rounds[0]:
            a, b = _median(samples[0]), _median(samples[1])
            if a > clear * b or b > clear * a:
                break
    return _median(samples[0]), _median(samples[1])


def _loadavg():
    """The 1-minute load average (None where unknown): kept beside each measurement,
    since a busy machine slows a parallel kernel far more than a serial one."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _median(v):
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


# ---------------------------------------------------------------------------
# The machine key and the cache file

def mode():
    """``"cache"``, ``"nocache"`` or ``"off"``, from ``DUALGRAD_TUNING``."""
    v = os.environ.get(ENV, "").strip().lower()
    if v in ("0", "off", "no", "false", "never", "none"):
        return "off"
    if v in ("nocache", "no-cache", "no_cache", "memory"):
        return "nocache"
    return "cache"


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``, else ``platform``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def numpy_cpu_features():
    """The CPU features numpy's runtime dispatch uses here, sorted (numpy >= 1.20)."""
    try:
        try:
            from numpy._core import _multiarray_umath as mu
        except ImportError:  # numpy 1.x
            from numpy.core import _multiarray_umath as mu
        return sorted(k for k, v in getattr(mu, "__cpu_features__", {}).items() if v)
    except Exception:  # noqa: BLE001  (a private attribute: never fatal)
        return []


def _numba_versions():
    try:
        import llvmlite.binding as ll
        import numba
        return numba.__version__, ll.get_host_cpu_name(), ll.get_host_cpu_features().flatten()
    except Exception:  # noqa: BLE001
        return None, None, None


def numba_threads():
    """The threads numba's parallel kernels use *in the calling thread*
    (``numba.get_num_threads()``, which ``numba.set_num_threads`` sets per thread and
    ``NUMBA_NUM_THREADS`` bounds); 1 where numba cannot be imported.

    >>> numba_threads() >= 1
    True
    """
    try:
        import numba
        return int(numba.get_num_threads())
    except Exception:  # noqa: BLE001  (no numba, or no threading layer: serial)
        return 1


def machine_key(extra=None):
    """What the measured rules depend on, as a JSON-able dict."""
    nb, host, host_features = _numba_versions()
    key = {"schema": SCHEMA, "cpu": cpu_model(), "machine": platform.machine(),
           "numpy": np.__version__, "numpy_features": numpy_cpu_features(),
           "numba": nb, "llvm_cpu": host,
           "llvm_features": hashlib.sha256(str(host_features).encode()).hexdigest()[:16],
           "python": platform.python_version(), "implementation": sys.implementation.name,
           "numba_threads": numba_threads() if nb else None}
    if extra:
        key.update(extra)
    return key


def key_digest(key):
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def cache_dir():
    """``$XDG_CACHE_HOME/dualgrad`` or ``~/.cache/dualgrad``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dualgrad")


def cache_path(key):
    return os.path.join(cache_dir(), f"tuning-{key_digest(key)}.json")


def _valid_rule(r):
    if r is None:
        return True
    return (isinstance(r, list) and len(r) == 2 and isinstance(r[0], int)
            and (r[1] is None or isinstance(r[1], int)))


def load(path, key):
    """{name: rule} from ``path`` if it holds rules for ``key``; {} for anything else."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict) or data.get("key") != key \
                or data.pop("digest", None) != _digest(data):
            return {}, {}
        rules = data.get("rules", {})
        if not isinstance(rules, dict):
            return {}, {}
        out = {str(k): (None if r is None else (r[0], r[1]))
               for k, r in rules.items() if _valid_rule(r)}
        timings = data.get("timings", {})
        return out, (timings if isinstance(timings, dict) else {})
    except (OSError, ValueError, TypeError, AttributeError, KeyError, IndexError):
        return {}, {}


def write_atomic(path, data):
    """Write bytes ``data`` to ``path`` whole: a uniquely named temporary file in the same
    folder (made if absent), then ``os.replace``, so a crash or a racing process leaves
    no half file under ``path``.  Raises OSError where the folder cannot be written."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save(path, key, rules, timings):
    """Write atomically (temp file + rename); False (and nothing raised) if it cannot."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = {"key": key, "rules": {k: (None if r is None else list(r))
                                      for k, r in sorted(rules.items())},
                "timings": timings}
        data["digest"] = _digest(data)
        write_atomic(path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))
        return True
    except OSError as e:
        unwritable(os.path.dirname(path), e)
        return False
    except (TypeError, ValueError):
        return False


def _digest(data):
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


_warned = threading.Lock()


def unwritable(path, error):
    """Warn, once per process, that dualgrad's disk caches are off: ``path`` cannot be
    written (``error``).  Called by every cache that fails to write: the tuning rules,
    the generated kernels (``compiler.kernel.load``) and numba's files."""
    if _warned.acquire(blocking=False):
        warnings.warn(f"dualgrad: cannot write its cache at {path} ({error}); kernels and "
                      "tuning are not cached on disk in this process (set XDG_CACHE_HOME "
                      "to a writable folder)", RuntimeWarning, stacklevel=3)


# ---------------------------------------------------------------------------
# The table

class Table:
    """Rules by name (``"unary.tanh.grad/d"``...), measured lazily, cached per machine.

    ``probe(name) -> [(size, call)]`` gives, for each ladder size, ``call(use_numba)``
    running the kernel's numba or numpy path once; ``key_extra()`` adds to the machine
    key (e.g. a hash of the kernel sources).  ``labels`` name the two paths in
    ``timings`` (``("serial", "parallel")`` for the table of parallel twins in
    ``numba_ops``: there ``call(True)`` runs the parallel kernel, ``call(False)`` the
    serial one).
    """

    def __init__(self, probe, key_extra=None, labels=("numpy", "numba")):
        self._probe = probe
        self._key_extra = key_extra
        self.labels = tuple(labels)
        self.rules = {}      # name -> rule; what the hot path reads
        self.timings = {}    # name -> {"sizes", "numpy", "numba", "seconds"}
        self._disk = None    # (mode, key, path) once the cache file was read
        self._new = set()    # names measured in this process
        self._lock = threading.RLock()
        self.seconds = 0.0   # total time spent measuring in this process

    def _load(self):
        if self._disk is None:
            m = mode()
            key = path = None
            rules = {}
            if m == "cache":
                try:
                    key = machine_key(self._key_extra() if self._key_extra else None)
                    path = cache_path(key)
                    rules, timings = load(path, key)
                    for k, v in timings.items():
                        self.timings.setdefault(k, v)
                except Exception:  # noqa: BLE001  (never break a call over the cache)
                    key = path = None
                    rules = {}
            self._disk = (m, key, path)
            for k, r in rules.items():
                self.rules.setdefault(k, r)
        return self._disk

    def rule(self, name):
        """The rule for ``name``: from memory, the cache file, or measured now."""
        r = self.rules.get(name, _MISSING)
        if r is not _MISSING:
            return r
        with self._lock:
            m, key, path = self._load()
            r = self.rules.get(name, _MISSING)
            if r is not _MISSING:
                return r
            if m == "off":
                self.rules[name] = None
                return None
            r = self._measure(name)
            self.rules[name] = r
            self._new.add(name)
            if m == "cache" and path is not None:
                disk, timings = load(path, key)  # merge with other processes' results
                disk.update({k: self.rules[k] for k in self._new})
                timings.update({k: self.timings[k] for k in self._new})
                save(path, key, disk, timings)
            return r

    def _measure(self, name):
        t0 = time.perf_counter()
        try:
            ladder = self._probe(name)
            sizes, tn, tb = [], [], []
            for size, call in ladder:
                a, b = measure(lambda c=call: c(False), lambda c=call: c(True))
                sizes.append(int(size))
                tn.append(a)
                tb.append(b)
            r = decide(sizes, tn, tb)
        except Exception as e:  # noqa: BLE001  (a probe that fails: numpy, and say why)
            warnings.warn(f"dualgrad.backend.tuning: measuring {name} failed ({type(e).__name__}: "
                          f"{e}); using {self.labels[0]} for it", RuntimeWarning, stacklevel=4)
            sizes, tn, tb, r = [], [], [], None
        dt = time.perf_counter() - t0
        self.seconds += dt
        self.timings[name] = {"sizes": sizes, self.labels[0]: tn, self.labels[1]: tb,
                              "rule": None if r is None else list(r), "seconds": round(dt, 4),
                              "loadavg": _loadavg()}
        return r

    def clear(self):
        """Forget everything in memory (the cache file stays)."""
        with self._lock:
            self.rules.clear()
            self.timings.clear()
            self._new.clear()
            self._disk = None
            self.seconds = 0.0


_MISSING = object()
