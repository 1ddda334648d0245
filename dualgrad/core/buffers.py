"""Large buffers for the tape: dualgrad allocates like a framework, not like numpy.

numpy gives every result fresh memory.  For a large array that is memory the C library
returns to the kernel when the array dies, so the next one is new pages again, each first
touch a page fault; and numpy asks for transparent huge pages on arrays of 4 MiB and
more, which a kernel configured with ``transparent_hugepage/defrag = madvise`` (a common
default) answers by compacting memory synchronously.  A reverse sweep makes many such
temporaries per gradient, so a large gradient can spend most of its time in the kernel.

Two mechanisms here, both used only for raw real floating-point arrays of at least
``LARGE`` bytes and only by dualgrad's own code:

- ``cache``: free lists of raw buffers keyed by (shape, dtype).  ``cache.take`` pops one
  (O(1); a fresh one when the list is empty) and hands out an array over it whose numpy
  ``base`` is a small owner object; when the last array or view over the memory dies, the
  owner dies and puts the raw buffer back on its free list.  So the cache holds only
  buffers nobody can observe: while the array, a view of it or a weak reference to it is
  alive, its memory is not reused (a weak reference to a dead array is dead before the
  memory goes back), whoever it was handed to: a tape's intermediate, a cotangent, a
  gradient returned to the user.  Steady-state gradient calls then take the same buffers
  again and ask the kernel for nothing.  Whether that pays for a shape (a cached buffer
  costs about 2 us; numpy's fresh memory costs page faults, or nothing where malloc's heap
  serves it) is measured in the process, per (shape, dtype), by the first calls
  (``_choose``): no size threshold is assumed.  ``cache.limit`` bounds the free buffers it keeps
  (bytes; ``DUALGRAD_BUFFER_CACHE_MB``, default 1024; the least recently taken shapes go
  first); buffers in use are not counted, they belong to their holders.
  ``cache.clear()`` drops every free buffer.  Buffers are allocated with numpy's huge-page
  advice switched off for that one allocation
  (``numpy._core.multiarray._set_madvise_hugepage``; numpy's setting is restored at once,
  so numpy's behaviour elsewhere is unchanged); ``DUALGRAD_HUGEPAGES=1`` keeps numpy's
  advice for them too.
- ``free(a, n)``: whether an array may be overwritten in place: it is writeable, owns its
  memory or is a cached buffer whose owner only it holds, nobody holds a weak reference
  to it, and exactly ``n`` references to it exist besides the caller's argument.  A
  user's array, a primal value the tape still holds, a view or a view's base, a cotangent
  shared by two entries: each has a reference more, so none is ever written.

Threads: an owner can die in any thread (its ``__del__`` runs wherever the last
reference goes), so a returned buffer is queued on a lock-free deque and filed under the
cache's lock by whoever holds it next; ``take`` files the queue first.  A buffer returned
while another thread holds the lock waits in the queue until the next take or return.

``DUALGRAD_BUFFERS=0`` switches both off (the engine then allocates as numpy does); they
are off by themselves where reference counts do not say this (not CPython, or a
free-threaded build).
"""

import functools
import gc
import math
import operator
import os
import statistics
import sys
import threading
from collections import deque
from time import perf_counter
from weakref import getweakrefcount

import numpy as np

#: Arrays smaller than this (bytes) are left to numpy: its small-block cache and malloc's
#: heap serve them without page faults, and the bookkeeping would cost more than it saves.
LARGE = 1 << 16

#: None: each (shape, dtype) uses cached buffers where they measured faster here
#: (``_choose``); True: always (the tests' small arrays); False: never.
FORCE = None

HUGEPAGES = os.environ.get("DUALGRAD_HUGEPAGES", "0") == "1"
_madvise = getattr(getattr(getattr(np, "_core", None), "multiarray", None),
                   "_set_madvise_hugepage", None)


def fresh(shape, dtype):
    """``np.empty(shape, dtype)`` without numpy's huge-page advice (unless HUGEPAGES)."""
    if _madvise is None or HUGEPAGES:
        return np.empty(shape, dtype)
    prev = _madvise(False)
    try:
        return np.empty(shape, dtype)
    finally:
        if prev:
            _madvise(True)


# -- who else holds an array? --------------------------------------------------

_BASE = 0


def _nrefs(a):
    """References to ``a`` outside this function's frame."""
    return sys.getrefcount(a) - _BASE


def _probe():
    a = np.empty(1)  # held by this local only
    return _nrefs(a)


_BASE = _probe() - 1


class _Owner:
    """The numpy base of a handed-out buffer: numpy reads the memory through
    ``__array_interface__``, and the owner's death returns the raw buffer.

    ``raw`` is ``(array, its __array_interface__, (shape, dtype), nbytes)``: the array
    owns the memory and is never handed out itself.  No ``__weakref__`` slot: nothing
    can watch an owner."""

    __slots__ = ("__array_interface__", "raw", "cache")

    def __del__(self):
        self.cache._give(self.raw)


class BufferCache:
    """Free raw buffers keyed by (shape, dtype); ``take`` hands one out, its death gives
    it back."""

    def __init__(self, limit):
        self.limit = limit   # bytes of free buffers kept at most
        self.free = {}       # (shape, dtype) -> deque of raws, never empty; LRU keys first
        self.nbytes = 0      # bytes on the free lists
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._returned = deque()  # raws given back while the lock was held, not yet filed

    def take(self, shape, dtype):
        """An array of this shape and dtype nobody else can observe (contents arbitrary)."""
        key = (shape, dtype)
        lock = self._lock
        lock.acquire()
        try:
            if self._returned:
                self._file()
            free = self.free
            q = free.get(key)
            if q:
                raw = q.pop()  # the most recently returned: likeliest in the CPU cache
                self.nbytes -= raw[3]
                self.hits += 1
                if not q:
                    del free[key]
                elif len(free) > 1:  # most recently used last
                    del free[key]
                    free[key] = q
            else:
                raw = None
                self.misses += 1
        finally:
            lock.release()
        if raw is None:
            a = fresh(shape, dtype)
            raw = (a, a.__array_interface__, key, a.nbytes)
        owner = _Owner()
        owner.__array_interface__ = raw[1]
        owner.raw = raw
        owner.cache = self
        return np.asarray(owner)

    def _give(self, raw):
        """An owner died (in any thread, maybe inside ``take`` or ``_file``): file its
        buffer, or queue it when the lock is held (never wait: it may be this thread's)."""
        if declined(raw[2]):
            return  # numpy's allocation serves this shape: the memory goes back to malloc
        lock = self._lock
        if not lock.acquire(False):
            self._returned.append(raw)
            return
        try:
            self._keep(raw)
            if self.nbytes > self.limit or self._returned:
                self._file()
        finally:
            lock.release()

    def _keep(self, raw):
        """Put ``raw`` on its free list (lock held), unless its shape is still being
        measured (``_choose``) and already has ``PROBE_KEEP`` free buffers: a shape used
        for a few calls only then holds a few buffers, not all it ever had at once."""
        q = self.free.get(raw[2])
        if q is None:
            q = self.free[raw[2]] = deque()
        elif FORCE is None and len(q) >= PROBE_KEEP and _CHOICE.get(raw[2]) is not True:
            return
        q.append(raw)
        self.nbytes += raw[3]

    def _file(self):
        """File the queued buffers, then keep within the limit (least recently used keys
        first, their oldest buffers first).  Lock held."""
        returned, free = self._returned, self.free
        while returned:
            raw = returned.popleft()
            if not declined(raw[2]):
                self._keep(raw)
        while self.nbytes > self.limit:
            key = next(iter(free))
            q = free[key]
            self.nbytes -= q.popleft()[3]
            if not q:
                del free[key]

    def drop(self, key):
        """Drop the free buffers of one (shape, dtype): nothing will take them (numpy's
        allocation measured faster there), and kept they would only hold heap memory
        (pinned between malloc's other chunks, they made it fault on every gradient); the
        buffers of that shape still in use are not filed when they come back (``_give``)."""
        with self._lock:
            if self._returned:
                self._file()
            q = self.free.pop(key, None)
            if q:
                self.nbytes -= sum(raw[3] for raw in q)

    def clear(self):
        """Drop every free buffer (those in use stay with their holders)."""
        with self._lock:
            self._returned.clear()
            self.free.clear()
            self.nbytes = 0

    def __len__(self):
        """Free buffers kept."""
        return sum(map(len, list(self.free.values())))

    def __repr__(self):
        return (f"<BufferCache {len(self)} free buffers, {self.nbytes / 2**20:.1f} of "
                f"{self.limit / 2**20:.0f} MiB, {self.hits} hits, {self.misses} misses>")


def declined(key):
    """Whether (shape, dtype) ``key`` leaves allocation to numpy: ``FORCE`` False, or
    numpy's allocation measured faster for it (``_choose``; not measured yet: no)."""
    return FORCE is False or (FORCE is None and _CHOICE.get(key) is False)


def pays(a):
    """Whether saving ``a``'s shape an allocation pays: the sweep then writes cotangents
    into free buffers, else it lets numpy allocate them as eager code does."""
    return not declined((a.shape, a.dtype))


def take(shape, dtype):
    """A buffer nobody else can observe: a cached one where they pay for this shape
    (``_choose``), else a fresh numpy array (what numpy would allocate anyway)."""
    if declined((shape, dtype)):
        return np.empty(shape, dtype)
    return cache.take(shape, dtype)


def empty(shape, dtype):
    """``np.empty(shape, dtype)`` for a kernel's output: a cached buffer where buffers are
    on, the array is real floating point and ``LARGE``, and its shape was not measured to
    prefer numpy's memory (``take``), so a repeated gradient reuses the memory of the last
    one instead of page-faulting on fresh pages (the backend's conv and select outputs, a
    basic index's cotangent).

    >>> empty((2, 3), np.dtype(np.float64)).shape
    (2, 3)
    """
    if ENABLED and dtype.kind == "f" and math.prod(shape) * dtype.itemsize >= LARGE:
        return take(shape, dtype)  # (real floats only, as everywhere in this module)
    return np.empty(shape, dtype)


# -- where cached buffers pay, measured here ----------------------------------------------
# A cached buffer costs an owner object, its wrapping and its return (about 2 us); it pays
# only where numpy's fresh memory is slow, i.e. page-faults.  Whether it does depends on the
# C library (glibc's mmap and trim thresholds move as a process runs), the kernel's
# huge-page settings and what else the process holds: on an AMD EPYC a fluid simulation's
# 80-320 kB arrays came from malloc's heap with no page fault (the cache made its gradient
# 1.14-1.17x slower), while 1.28 MB arrays in another program faulted on every gradient (the
# cache made it 2.4x faster).  So no threshold is assumed: the first calls of ``forward`` for
# each (shape, dtype) alternate between a cached buffer and numpy's allocation, timing the
# ufunc with its allocation, and the faster one (medians) is used from then on.

_CHOICE = {}  # (shape, dtype) -> True (cached buffers), False (numpy's), or a _Probe
PROBES = 5    # timed calls of each kind per shape before choosing
PROBE_KEEP = 2  # free buffers a shape keeps while it is measured (BufferCache._keep)
_GIVE_UP = 8 * PROBES  # a shape whose buffers never come back (no hits): numpy's


class _Probe:
    __slots__ = ("cached", "fresh", "calls")

    def __init__(self):
        self.cached, self.fresh, self.calls = [], [], 0


def _choose(key, probe, u, vals):
    """``u(*vals)`` while shape ``key`` is being measured: alternately into a cached
    buffer (timed only when it was a reused one: a fresh one costs numpy's allocation and
    more) and as numpy allocates; the choice is made once both have ``PROBES`` times."""
    probe.calls += 1
    if probe.calls & 1:
        q = cache.free.get(key)
        hit = bool(q)
        t = perf_counter()
        out = u(*vals, out=cache.take(*key), casting="no")
        if hit:
            probe.cached.append(perf_counter() - t)
    else:
        t = perf_counter()
        out = u(*vals)
        probe.fresh.append(perf_counter() - t)
    if len(probe.cached) >= PROBES and len(probe.fresh) >= PROBES:
        _CHOICE[key] = statistics.median(probe.cached) < statistics.median(probe.fresh)
    elif probe.calls >= _GIVE_UP:
        _CHOICE[key] = False
    if _CHOICE[key] is False:
        cache.drop(key)
    return out


cache = BufferCache(int(float(os.environ.get("DUALGRAD_BUFFER_CACHE_MB", "1024")) * 2**20))


def free(a, n):
    """True if ndarray ``a`` may be overwritten: it is writeable, owns its memory (or is
    a cached buffer whose owner only ``a`` holds), has no weak reference, and exactly
    ``n`` references to it exist besides this call's argument."""
    if a.__class__ is not np.ndarray or not a.flags.writeable or _nrefs(a) != n + 1 \
            or getweakrefcount(a):
        return False
    b = a.base
    # a cached buffer: ``a`` and this local hold the owner, nobody else (np.asarray(b)
    # would make a second array over the same memory)
    return b is None or (b.__class__ is _Owner and _nrefs(b) == 2)


def _reliable():
    if sys.implementation.name != "cpython":
        return False
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        return False
    a = np.empty(4)
    held = [a]
    ok = free(a, 2) and not free(a, 1) and not free(a, 3)
    b = held[0]
    ok = ok and free(b, 3) and not free(b, 2)
    del held, b
    ok = ok and free(a, 1) and not free(a.reshape(2, 2), 0)
    c = BufferCache(0).take((4,), np.dtype(np.float64))  # a cached buffer
    ok = ok and c.base.__class__ is _Owner and free(c, 1)
    owner = c.base
    ok = ok and not free(c, 1)
    del owner
    return ok and free(c, 1) and not free(c[1:], 0)


ENABLED = os.environ.get("DUALGRAD_BUFFERS", "1") != "0" and _reliable()


# -- forward values into cached buffers -------------------------------------------------

def large(vals):
    """Worth a look by ``forward``: buffers on, and one of the first two arguments a
    large raw array (a quick test: most calls on small values stop here)."""
    v = vals[0] if vals else None
    if not (v.__class__ is np.ndarray and v.nbytes >= LARGE):
        if len(vals) < 2:
            return False
        v = vals[1]
        if not (v.__class__ is np.ndarray and v.nbytes >= LARGE):
            return False
    # a shape where numpy's allocation measured faster (``_choose``) stops here too
    return ENABLED and not declined((v.shape, v.dtype))


_OPS = {operator.add: np.add, operator.sub: np.subtract, operator.mul: np.multiply,
        operator.truediv: np.true_divide, operator.neg: np.negative,
        operator.pos: np.positive}
_ROWS = {}  # primitive -> its one-output ufunc (np.power for ``**``), or None: fixed per row


def _row_ufunc(prim):
    u = prim.ufunc  # an elementwise row with one output
    if u is None or u.nout != 1 or u.signature is not None or u is np.conjugate:
        return None
    impl = prim.impl
    if impl is u or _OPS.get(impl) is u or (impl is operator.pow and u is np.power):
        return u
    return None


def forward(prim, vals):
    """``prim(*vals)`` computed into a cached buffer, or ``None`` where numpy should
    allocate (not an elementwise real-float row, mixed dtypes, small, ...).

    Bitwise the same as ``prim.impl(*vals)``: the same numpy loop, with ``out=`` and
    ``casting="no"`` (anything numpy would promote falls back)."""
    try:
        u = _ROWS[prim]
    except KeyError:
        u = _ROWS[prim] = _row_ufunc(prim)
    if u is None:
        return None
    if u is np.power and prim.impl is operator.pow:
        if len(vals) == 2 and vals[1].__class__ in (int, float) and vals[1] == 2:
            u, vals = np.square, vals[:1]  # what ndarray.__pow__ does for ** 2
        else:
            return None
    dt = shape = None
    same = True
    for v in vals:
        c = v.__class__
        if c is np.ndarray:
            if dt is None:
                dt, shape = v.dtype, v.shape
            elif v.dtype != dt:
                return None
            elif v.shape != shape:
                same = False
        elif c is not float and c is not int:
            return None
    if dt is None or dt.kind != "f":
        return None
    if not same:
        shape = np.broadcast_shapes(*[v.shape for v in vals if v.__class__ is np.ndarray])
    if math.prod(shape) * dt.itemsize < LARGE:
        return None
    key = (shape, dt)
    if declined(key):
        return None
    if FORCE is None and _CHOICE.get(key) is not True:  # still being measured
        try:
            return _choose(key, _CHOICE.setdefault(key, _Probe()), u, vals)
        except TypeError:
            return None
    try:
        return u(*vals, out=cache.take(shape, dt), casting="no")
    except TypeError:
        return None


def _memory(a):
    """What owns ``a``'s memory: the array at the end of its chain of bases, or the owner
    object of a cached buffer (two arrays with the same one may overlap)."""
    while a.base.__class__ is np.ndarray:
        a = a.base
    return a if a.base is None else a.base


def distinct(leaves, given=()):
    """``leaves`` (a transform's results) with every numpy array that may share memory with
    an earlier one, or with an array in ``given`` (the caller's seeds: a cotangent, a
    tangent), replaced by its copy.  numpy gives each result memory of its own, and code
    that updates in place (``g *= lr``) relies on it: a sweep passes one cotangent through
    an add to both of its arguments, and an identity-like rule returns its seed itself.

    >>> import numpy as np
    >>> g = np.ones(2)
    >>> a, b = distinct([g, g])
    >>> a is g, b is g
    (True, False)
    """
    seen = None
    out = leaves
    for k, c in enumerate(leaves):
        if c.__class__ is not np.ndarray or not c.size:
            continue
        if seen is None:
            seen = {id(_memory(a)) for a in given
                    if a.__class__ is np.ndarray and a.size}
        m = id(_memory(c))
        if m in seen:
            if out is leaves:
                out = list(leaves)
            out[k] = c.copy()
        else:
            seen.add(m)
    return out


class gc_paused:
    """Python's cyclic garbage collector off while a transform records its tape and sweeps
    it (``with gc_paused(): ...``), as frameworks do: a tape is tens of thousands of live
    objects, and each full collection would walk them all for nothing (a transform's
    objects form no cycles; they are freed by reference counting when it returns).  Counted
    across threads and nesting: the collector is back, if it was on, when the last ends.
    Measured: 25-40% of a naive convolution's eager gradient (8192 entry writes)."""

    __slots__ = ()
    _lock = threading.Lock()
    _depth = [0]
    _was = [False]

    def __enter__(self):
        with self._lock:
            if self._depth[0] == 0:
                self._was[0] = gc.isenabled()
                gc.disable()
            self._depth[0] += 1

    def __exit__(self, *exc):
        with self._lock:
            self._depth[0] -= 1
            if self._depth[0] == 0 and self._was[0]:
                gc.enable()


@functools.cache
def _glibc():
    """glibc through ctypes, or None (another C library, no ctypes)."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (glibc's own: AttributeError elsewhere)
        return libc
    except (ImportError, OSError, AttributeError):
        return None


#: glibc's largest mmap threshold (``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit, 32 MiB): where
#: its own adjustment takes a process once it has freed an array that large
MMAP_THRESHOLD = 32 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)


def settle_malloc():
    """Set glibc's thresholds where its own adjustment leaves a long-running process: arrays
    up to ``MMAP_THRESHOLD`` from its heap, and freed memory kept there up to twice that
    (``mallopt``; ``DUALGRAD_MALLOC=0``, or another C library: nothing).  Returns whether
    it did.

    glibc maps each allocation above its mmap threshold (128 kB at start) afresh and unmaps
    it when freed, so every first touch of its pages faults; only when the process frees
    such a block does glibc raise the threshold to its size (and trim its heap only past
    twice that).  A fresh process differentiating arrays of a few hundred kB therefore pays
    a page fault per 4 kB on every call, until some larger array happens to be freed: on an
    AMD EPYC, a fresh process's ``jacrev`` of a 200 x 200 Jacobian took 912 us with 280
    faults per call and 400 us with none, and the bench's conv gradient 4.2 ms with 992
    against 2.3 ms.  That is the state this sets from the start.  A program that frees
    large arrays reaches it anyway; the cost is freed memory kept by the heap (up to 64 MiB
    past its top) instead of returned, which ``give_back`` returns when dualgrad knows a
    large amount was freed."""
    libc = _glibc()
    if libc is None or os.environ.get("DUALGRAD_MALLOC", "1") == "0":
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) \
        and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD))


MALLOC_SETTLED = settle_malloc()


def resident():
    """This process's resident memory in bytes (Linux's /proc/self/statm), or None."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def give_back():
    """Return the heap's free memory to the kernel (glibc's ``malloc_trim(0)``; nothing
    elsewhere).  glibc keeps freed memory of mid-sized arrays in its heap, raising the
    threshold above which it maps memory afresh as large arrays are freed: after a
    recording of gigabytes is built or abandoned (dg.jit), the process would otherwise
    hold it all (GradBench's ode: 1.79 GB resident after its build, 166 MB after this)."""
    libc = _glibc()
    if libc is not None:
        gc.collect()  # (a recording's cycles, if any, free their arrays first)
        libc.malloc_trim(0)
