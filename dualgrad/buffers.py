"""Large buffers for the tape: dualgrad allocates like a framework, not like numpy.

numpy gives every result fresh memory.  For a large array that is memory the C library
returns to the kernel when the array dies, so the next one is new pages again, each first
touch a page fault; and numpy asks for transparent huge pages on arrays of 4 MiB and
more, which a kernel configured with ``transparent_hugepage/defrag = madvise`` (a common
default) answers by compacting memory synchronously.  A reverse sweep makes many such
temporaries per gradient, so a large gradient can spend most of its time in the kernel.

Two mechanisms here, both used only for raw real floating-point arrays of at least
``LARGE`` bytes and only by dualgrad's own code:

- ``cache``: a size-keyed cache of buffers (shape, dtype) that dualgrad hands out and
  keeps a reference to.  A buffer is free again exactly when nobody else refers to it
  (``sys.getrefcount``), whoever it was handed to: a tape's intermediate, a cotangent, a
  gradient returned to the user.  Steady-state gradient calls then take the same buffers
  again and ask the kernel for nothing.  ``cache.limit`` bounds what it keeps (bytes;
  ``DUALGRAD_BUFFER_CACHE_MB``, default 1024); ``cache.clear()`` lets everything go.
  Buffers are allocated with numpy's huge-page advice switched off for that one
  allocation (``numpy._core.multiarray._set_madvise_hugepage``; numpy's setting is restored
  at once, so numpy's behaviour elsewhere is unchanged); ``DUALGRAD_HUGEPAGES=1`` keeps
  numpy's advice for them too.
- ``free(a, n)``: whether an array may be overwritten in place: it owns its memory, is
  writeable, and exactly ``n`` references to it exist besides the caller's argument (and
  the cache's).  A user's array, a primal value the tape still holds, a view's base, a
  cotangent shared by two entries: each has a reference more, so none is ever written.

``DUALGRAD_BUFFERS=0`` switches both off (the engine then allocates as numpy does); they
are off by themselves where reference counts do not say this (not CPython, or a
free-threaded build).
"""

import math
import operator
import os
import sys

import numpy as np

#: Arrays smaller than this (bytes) are left to numpy: its small-block cache and malloc's
#: heap serve them without page faults, and the bookkeeping would cost more than it saves.
LARGE = 1 << 16

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


class BufferCache:
    """Large buffers dualgrad allocated, keyed by (shape, dtype), reused once free."""

    def __init__(self, limit):
        self.limit = limit   # bytes kept at most
        self.bins = {}       # (shape, dtype) -> [arrays]; dict order: least recently used first
        self.ids = set()     # id() of every array held in a bin
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def take(self, shape, dtype):
        """A buffer of this shape and dtype that nobody else refers to (contents arbitrary)."""
        key = (shape, dtype)
        bin_ = self.bins.get(key)
        if bin_ is not None:
            for b in bin_:
                if _nrefs(b) == 2:  # the bin and this loop: free
                    self.hits += 1
                    if len(self.bins) > 1:  # most recently used last
                        del self.bins[key]
                        self.bins[key] = bin_
                    return b
        self.misses += 1
        b = fresh(shape, dtype)
        size = b.nbytes
        if self.nbytes + size > self.limit:
            self._evict(self.nbytes + size - self.limit)
        if self.nbytes + size <= self.limit:
            if bin_ is None:
                bin_ = self.bins[key] = []
            bin_.append(b)
            self.ids.add(id(b))
            self.nbytes += size
        return b

    def _evict(self, need):
        """Stop tracking buffers, least recently used first, until ``need`` bytes are gone.

        A buffer still in use simply stays with its holders."""
        for key in list(self.bins):
            bin_ = self.bins[key]
            while bin_ and need > 0:
                b = bin_.pop(0)
                self.ids.discard(id(b))
                self.nbytes -= b.nbytes
                need -= b.nbytes
            if not bin_:
                del self.bins[key]
            if need <= 0:
                return

    def clear(self):
        """Forget every buffer (those still in use stay with their holders)."""
        self.bins.clear()
        self.ids.clear()
        self.nbytes = 0

    def __repr__(self):
        return (f"<BufferCache {len(self.ids)} buffers, {self.nbytes / 2**20:.1f} of "
                f"{self.limit / 2**20:.0f} MiB, {self.hits} hits, {self.misses} misses>")


cache = BufferCache(int(float(os.environ.get("DUALGRAD_BUFFER_CACHE_MB", "1024")) * 2**20))


def free(a, n):
    """True if ndarray ``a`` may be overwritten: it owns its memory, is writeable, and
    exactly ``n`` references to it exist besides this call's argument (and the cache's)."""
    return (a.__class__ is np.ndarray and a.base is None and a.flags.writeable
            and _nrefs(a) == n + 1 + (id(a) in cache.ids))


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
    return ok and free(a, 1) and not free(a.reshape(2, 2), 0)


ENABLED = os.environ.get("DUALGRAD_BUFFERS", "1") != "0" and _reliable()


# -- forward values into cached buffers -------------------------------------------------

def large(vals):
    """Worth a look by ``forward``: buffers on, and one of the first two arguments a
    large raw array (a quick test: most calls on small values stop here)."""
    v = vals[0] if vals else None
    if v.__class__ is np.ndarray and v.nbytes >= LARGE:
        return ENABLED
    if len(vals) > 1:
        v = vals[1]
        return v.__class__ is np.ndarray and v.nbytes >= LARGE and ENABLED
    return False


_OPS = {operator.add: np.add, operator.sub: np.subtract, operator.mul: np.multiply,
        operator.truediv: np.true_divide, operator.neg: np.negative,
        operator.pos: np.positive}
def forward(prim, vals):
    """``prim(*vals)`` computed into a cached buffer, or ``None`` where numpy should
    allocate (not an elementwise real-float row, mixed dtypes, small, ...).

    Bitwise the same as ``prim.impl(*vals)``: the same numpy loop, with ``out=`` and
    ``casting="no"`` (anything numpy would promote falls back)."""
    u = prim.ufunc  # an elementwise row with one output
    if u is None or u.nout != 1 or u.signature is not None or u is np.conjugate:
        return None
    impl = prim.impl
    if impl is not u and _OPS.get(impl) is not u:
        if impl is operator.pow and u is np.power and len(vals) == 2 \
                and vals[1].__class__ in (int, float) and vals[1] == 2:
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
    try:
        return u(*vals, out=cache.take(shape, dt), casting="no")
    except TypeError:
        return None
