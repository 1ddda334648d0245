"""The first-order sweep's allocator (dualgrad/core/buffers.py): in-place accumulation, rule
outputs written into dead buffers, cached buffers reused across calls.

Whatever it reuses, a gradient must be bitwise the gradient the plain allocator gives
(the same numpy loops run in the same order), no user array or primal value may change,
and a gradient handed out earlier must never be overwritten by a later call while anyone
can still observe it (a reference, a view, a weak reference).  Most tests lower
``buffers.LARGE`` to 0 so that the small arrays of the random programs take every fast
path; those named "real threshold" run on large arrays without patching.
"""

import gc
import os
import queue
import subprocess
import sys
import weakref

import numpy as np
import pytest
from cases import run, run_threads, step
from hypothesis import given, settings
from hypothesis import strategies as st

import dualgrad as dg
from dualgrad import rules as P
from dualgrad.core import buffers
from dualgrad.transforms import reverse


@pytest.fixture(autouse=True)
def cached(monkeypatch):
    """Cached buffers for every large array: what these tests check must hold wherever
    the cache is used (which shapes use it is measured per process: test_choice_...)."""
    monkeypatch.setattr(buffers, "FORCE", True)


@pytest.fixture
def everywhere(monkeypatch):
    """Every array counts as large: the fast paths run on the tests' small arrays."""
    if not buffers.ENABLED:
        pytest.skip("reference counts are not reliable here: the buffers are off")
    monkeypatch.setattr(buffers, "LARGE", 0)
    monkeypatch.setattr(buffers, "FORCE", True)


def _plain(monkeypatch, fn, *args):
    """``fn(*args)`` with the buffers switched off: numpy allocates everything."""
    with monkeypatch.context() as m:
        m.setattr(buffers, "ENABLED", False)
        return fn(*args)


def _copies(tree):
    return [np.array(a, copy=True) for a in tree]


def test_reference_counts_are_read_right():
    if not buffers.ENABLED:
        pytest.skip("buffers off")
    a = np.ones(3)
    assert buffers.free(a, 1)          # this local only
    held = [a]
    assert not buffers.free(a, 1) and buffers.free(a, 2)
    del held
    v = a[1:]
    assert not buffers.free(a, 1) and not buffers.free(v, 1)  # a view and its base
    assert not buffers.free(np.ones(3)[::2], 0)
    del v
    w = weakref.ref(a)
    assert not buffers.free(a, 1)      # a weak reference may still look at it
    del w
    assert buffers.free(a, 1)


def test_reference_counts_of_cached_buffers():
    """A cached buffer's numpy base is its owner: a view of the array, a second array over
    the owner, or a weak reference veto writing into it."""
    if not buffers.ENABLED:
        pytest.skip("buffers off")
    cache = buffers.BufferCache(limit=1 << 20)
    a = cache.take((5,), np.dtype(np.float64))
    assert buffers.free(a, 1)
    v = a[1:]
    assert not buffers.free(a, 1) and not buffers.free(v, 1)
    del v
    twin = np.asarray(a.base)          # the same memory through the owner
    assert not buffers.free(a, 1) and not buffers.free(twin, 1)
    del twin
    w = weakref.ref(a)
    assert not buffers.free(a, 1)
    del w
    assert buffers.free(a, 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(step, min_size=1, max_size=6),
       st.lists(st.floats(-1.5, 1.5), min_size=6, max_size=6),
       st.sampled_from([np.float64, np.float32]))
def test_random_programs_same_as_plain_allocation(program, xs, dtype):
    mp = pytest.MonkeyPatch()
    try:
        if not buffers.ENABLED:
            return
        mp.setattr(buffers, "LARGE", 0)
        mp.setattr(buffers, "FORCE", True)
        x = np.reshape(np.array(xs, dtype), (2, 3))
        x0 = x.copy()
        f = lambda x: run(program, x)
        want = _plain(mp, dg.grad(f), x)
        got = dg.grad(f)(x)
        again = dg.grad(f)(x)
        np.testing.assert_array_equal(x, x0)            # the input is untouched
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)        # bitwise: the same loops
        np.testing.assert_array_equal(again, want)
        np.testing.assert_array_equal(got, want)        # not overwritten by the 2nd call
        assert again is not got
    finally:
        mp.undo()


def _program(x, y, w):
    """Shared subexpressions, a value used twice in one op, both operand orders."""
    s = np.sin(x)
    u = s * s + x * y                # x*x-like fan-out and a two-parent product
    v = np.exp(u - 1.0) / (2.0 + y * y)
    t = v + v + s                    # one value twice in one add: one cotangent, twice
    q = t ** 2 - np.tanh(-t) * w
    return np.sum(q * x) + np.sum(np.log1p(u * u))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inputs_and_primals_untouched_and_repeatable(everywhere, monkeypatch, dtype):
    r = np.random.default_rng(0)
    x, y, w = (r.standard_normal((3, 4)).astype(dtype) * 0.5 for _ in range(3))
    w = w[0]  # broadcast along the rows
    before = _copies((x, y, w))
    f = dg.grad(_program, argnums=(0, 1, 2))
    want = _plain(monkeypatch, f, x, y, w)
    first = f(x, y, w)
    keep = _copies(first)
    for a, b in zip((x, y, w), before):
        np.testing.assert_array_equal(a, b)
    for _ in range(3):
        g = f(x, y, w)
        for a, b in zip(g, want):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    for a, b in zip(first, keep):  # later calls reused no buffer still held here
        np.testing.assert_array_equal(a, b)
    for a, b in zip((x, y, w), before):
        np.testing.assert_array_equal(a, b)


def test_aux_intermediates_are_not_overwritten(everywhere):
    x = np.linspace(-1.0, 1.0, 12).reshape(3, 4)

    def f(x):
        e = np.exp(x)
        sq = e ** 2
        return np.sum(sq * 3.0), (e, sq)

    g, (e, sq) = dg.grad(f, has_aux=True)(x)
    np.testing.assert_array_equal(e, np.exp(x))
    np.testing.assert_array_equal(sq, np.exp(x) ** 2)
    np.testing.assert_allclose(g, 6.0 * np.exp(2 * x))
    g2, _ = dg.grad(f, has_aux=True)(x)
    np.testing.assert_array_equal(e, np.exp(x))  # nor by the next call
    np.testing.assert_array_equal(g, g2)


def test_value_and_grad_value_and_closure_constants(everywhere):
    c = np.linspace(0.0, 1.0, 10)
    c0 = c.copy()
    vg = dg.value_and_grad(lambda x: np.sum(np.exp(x - c) * c))
    x = np.full(10, 0.5)
    v1, g1 = vg(x)
    v2, g2 = vg(x + 1.0)
    np.testing.assert_array_equal(c, c0)
    assert v1 == pytest.approx(np.sum(np.exp(0.5 - c0) * c0))
    np.testing.assert_array_equal(g1, np.exp(0.5 - c0) * c0)
    assert not np.shares_memory(g1, g2)


def test_vjp_and_tape_sweeps_can_be_repeated(everywhere):
    x = np.linspace(0.1, 2.0, 8)
    y, pull = dg.vjp(lambda x: np.exp(x) * x + np.sin(x) ** 2, x)
    ct = np.ones(8)
    a, = pull(ct)
    b, = pull(ct)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ct, np.ones(8))
    with dg.Tape() as tape:
        xs = tape.watch(x)
        out = np.sum(np.exp(xs) * xs + xs * xs)
    g1 = tape.gradient(out, xs)
    g2 = tape.gradient(out, xs)
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_allclose(g1, np.exp(x) * (x + 1) + 2 * x)


def test_large_arrays_at_the_real_threshold(monkeypatch):
    """lse and the gather workload at sizes that use the cache without any patching."""
    if not buffers.ENABLED:
        pytest.skip("buffers off")
    r = np.random.default_rng(1)
    x = r.random(40_000)
    x0 = x.copy()

    def lse(x):
        a = dg.stop_gradient(np.max(x))
        return a + np.log(np.sum(np.exp(x - a)))

    want = _plain(monkeypatch, dg.grad(lse), x)
    results = [dg.grad(lse)(x) for _ in range(3)]
    for g in results:
        np.testing.assert_array_equal(g, want)
    assert len({id(g) for g in results}) == 3
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_allclose(want, np.exp(x) / np.sum(np.exp(x)))

    E = r.standard_normal((500, 32))
    idx = r.integers(0, 500, 4000)
    gather = dg.grad(lambda E: np.sum(E[idx] ** 2))
    want = _plain(monkeypatch, gather, E)
    ref = np.zeros_like(E)
    np.add.at(ref, idx, 2 * E[idx])
    for _ in range(3):
        np.testing.assert_array_equal(gather(E), want)
    np.testing.assert_allclose(want, ref)


# -- the cache: what it may reuse, how fast it finds it, what it keeps ---------------------

F64 = np.dtype(np.float64)


def _f(x):
    return np.sum(np.sin(x) * x + np.exp(-x * x))


def _df(x):
    return np.sin(x) + x * np.cos(x) - 2.0 * x * np.exp(-x * x)


def test_weakly_held_gradient_is_not_reused():
    """The issue's case at the real threshold: ``w = weakref.ref(g); del g`` and the next
    gradient.  Either ``w()`` is dead or it still reads its own values."""
    if not buffers.ENABLED:
        pytest.skip("buffers off")
    r = np.random.default_rng(2)
    x, x2 = r.random(200_000), r.random(200_000) + 1.0
    assert x.nbytes >= buffers.LARGE
    g = dg.grad(_f)(x)
    assert g.base.__class__ is buffers._Owner    # a cached buffer: the case at stake
    want = g.copy()
    w = weakref.ref(g)
    del g
    hits = buffers.cache.hits
    g2 = dg.grad(_f)(x2)
    assert buffers.cache.hits > hits             # the dead buffers were taken again
    assert w() is None or np.array_equal(w(), want)
    assert w() is None                           # CPython: dead at ``del g``
    np.testing.assert_allclose(g2, _df(x2), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(want, dg.grad(_f)(x))


def test_views_of_a_gradient_are_not_overwritten():
    if not buffers.ENABLED:
        pytest.skip("buffers off")
    r = np.random.default_rng(3)
    x = r.random(200_000)
    g = dg.grad(_f)(x)
    want = g.copy()
    views = [g[::2], g[1:], g.reshape(400, 500).T, g.view()]
    keep = [v.copy() for v in views]
    del g
    for k in range(3):
        dg.grad(_f)(x + k + 1.0)
    for v, c in zip(views, keep):
        np.testing.assert_array_equal(v, c)
    np.testing.assert_array_equal(views[3], want)


def test_a_dead_buffer_is_reused():
    cache = buffers.BufferCache(limit=1 << 20)
    a = cache.take((1000,), F64)
    ptr = a.ctypes.data
    b = cache.take((1000,), F64)
    assert b.ctypes.data != ptr and cache.hits == 0 and cache.misses == 2
    assert len(cache) == 0 and cache.nbytes == 0  # in use: not the cache's
    v = a[10:]
    del a
    assert len(cache) == 0                         # the view keeps it
    del v
    assert len(cache) == 1 and cache.nbytes == 8000
    c = cache.take((1000,), F64)
    assert c.ctypes.data == ptr and cache.hits == 1
    assert c.dtype == F64 and c.shape == (1000,) and c.flags.writeable
    assert c.flags.c_contiguous and c.flags.aligned
    assert cache.take((1000,), np.dtype(np.float32)).ctypes.data != ptr  # another key


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble])
@pytest.mark.parametrize("shape", [(), (0,), (3, 4), (2, 1, 5)])
def test_taken_arrays_have_the_asked_shape_and_dtype(dtype, shape):
    cache = buffers.BufferCache(limit=1 << 20)
    for _ in range(2):  # a miss, then a hit
        a = cache.take(shape, np.dtype(dtype))
        assert a.shape == shape and a.dtype == np.dtype(dtype) and a.flags.writeable
        a[...] = 1.5
        assert np.all(a == 1.5)
        del a
    assert cache.hits == 1


def test_gradients_reuse_buffers_at_the_real_threshold(monkeypatch):
    if not buffers.ENABLED:
        pytest.skip("buffers off")
    x = np.linspace(-2.0, 2.0, 100_000)
    want = _plain(monkeypatch, dg.grad(_f), x)
    dg.grad(_f)(x)
    hits = buffers.cache.hits
    g = dg.grad(_f)(x)
    assert buffers.cache.hits > hits
    np.testing.assert_array_equal(g, want)
    np.testing.assert_allclose(g, _df(x), rtol=1e-12, atol=1e-15)


def _work(fn):
    """What ``fn()`` executes: Python lines and calls of C functions (sys.settrace and
    sys.setprofile), a count that does not depend on the machine's speed."""
    n = [0, 0]

    def trace(frame, event, arg):
        if event == "line":
            n[0] += 1
        return trace

    def profile(frame, event, arg):
        if event == "c_call":
            n[1] += 1

    gc.collect()  # garbage of earlier tests (buffer owners' __del__) is not fn's work:
    was = gc.isenabled()  # a collection inside fn would run it there
    gc.disable()
    sys.settrace(trace)
    sys.setprofile(profile)
    try:
        out = fn()
    finally:
        sys.settrace(None)
        sys.setprofile(None)
        if was:
            gc.enable()
    return tuple(n), out


def test_take_does_not_scan():
    """Taking a buffer costs the same with 3 or 3,000 buffers of its shape alive (the old
    cache looked at every one of them), and with 3 or 3,000 free."""
    cache = buffers.BufferCache(limit=1 << 30)
    shape = (32,)
    work = {}
    for n in (3, 3000):
        live = [cache.take(shape, F64) for _ in range(n)]
        work["miss", n], extra = _work(lambda: cache.take(shape, F64))
        del extra
        gc.collect()
        live.clear()                               # all n + 1 free now
        assert len(cache) == n + 1
        work["hit", n], a = _work(lambda: cache.take(shape, F64))
        assert len(cache) == n
        del a
        cache.clear()
    assert work["miss", 3] == work["miss", 3000]
    assert work["hit", 3] == work["hit", 3000]


def test_cache_limit_and_clear():
    cache = buffers.BufferCache(limit=3 * 8000)
    held = [cache.take((1000,), F64) for _ in range(5)]  # in use: beyond the limit is fine
    assert cache.nbytes == 0
    held.clear()                                          # 5 freed, 3 kept
    assert len(cache) == 3 and cache.nbytes == 3 * 8000
    a = cache.take((1000,), F64)
    assert cache.hits == 1 and cache.nbytes == 2 * 8000
    big = cache.take((2000,), F64)
    del a
    assert cache.nbytes == 3 * 8000
    del big               # 16000 more: two of the least recently taken shape go
    assert cache.nbytes == cache.limit
    assert list(cache.free) == [((1000,), F64), ((2000,), F64)]
    assert len(cache.free[(1000,), F64]) == 1
    huge = cache.take((4000,), F64)
    del huge                                  # larger than the limit: not kept
    assert cache.nbytes <= cache.limit and ((4000,), F64) not in cache.free
    cache.clear()
    assert cache.nbytes == 0 and len(cache) == 0 and not cache.free
    b = cache.take((1000,), F64)
    b[:] = 1.0
    assert "0 free buffers" in repr(cache) and "misses" in repr(cache)


def test_threads_take_and_return_concurrently():
    """4 threads take buffers, fill them with their own pattern, and let them die in
    random order, some in another thread (an owner's death runs where the last reference
    goes).  No two live arrays share memory, nothing is lost or counted twice."""
    cache = buffers.BufferCache(limit=40 * 8 * 512)
    handoff = queue.Queue()
    errors = []
    n_iter, shapes = 400, [(512,), (256, 2), (128,)]

    def worker(tid):
        rng = np.random.default_rng(tid)
        mine = []
        try:
            for i in range(n_iter):
                a = cache.take(shapes[rng.integers(3)], F64)
                a[...] = tid * 10_000 + i
                mine.append((a, tid * 10_000 + i))
                if rng.random() < 0.3:
                    handoff.put(mine.pop(rng.integers(len(mine))))
                if rng.random() < 0.5 and mine:
                    b, val = mine.pop(rng.integers(len(mine)))
                    if not np.all(b == val):
                        errors.append((tid, i))
                try:
                    b, val = handoff.get_nowait()  # someone else's: dies here
                    if not np.all(b == val):
                        errors.append((tid, i, "handoff"))
                except queue.Empty:
                    pass
            for b, val in mine:
                if not np.all(b == val):
                    errors.append((tid, "end"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    run_threads(worker)
    while not handoff.empty():
        b, val = handoff.get()
        assert np.all(b == val)
        del b
    assert not errors
    assert cache.hits + cache.misses == 4 * n_iter
    assert cache.hits > 0
    cache.take((1,), F64)                  # files anything still queued
    kept = [raw for q in cache.free.values() for raw in q]
    assert cache.nbytes == sum(raw[0].nbytes for raw in kept) <= cache.limit
    assert len({raw[0].ctypes.data for raw in kept}) == len(kept)


def test_gradients_from_threads_at_the_real_threshold():
    """Threads share the module's cache: every gradient is the single-threaded one."""
    if not buffers.ENABLED:
        pytest.skip("buffers off")
    xs = [np.linspace(-1.0, 1.0, 20_000) * (k + 1) for k in range(4)]
    want = [dg.grad(_f)(x) for x in xs]
    bad = []

    def worker(k):
        for i in range(15):
            g = dg.grad(_f)(xs[(k + i) % 4])
            if not np.array_equal(g, want[(k + i) % 4]):
                bad.append((k, i))

    run_threads(worker)
    assert not bad


def test_choice_per_shape_is_measured_and_followed(monkeypatch):
    """With FORCE None each shape's first calls alternate between a cached buffer and
    numpy's allocation, timed; the faster is used from then on.  Every result along the
    way is the plain allocator's, bit for bit."""
    if not buffers.ENABLED:
        pytest.skip("buffers off")
    monkeypatch.setattr(buffers, "FORCE", None)
    monkeypatch.setattr(buffers, "_CHOICE", {})
    x = np.linspace(-2.0, 2.0, 20_000)  # 160 kB
    want = _plain(monkeypatch, dg.grad(_f), x)
    key = (x.shape, x.dtype)
    for _ in range(4 * buffers.PROBES):
        np.testing.assert_array_equal(dg.grad(_f)(x), want)
    assert buffers._CHOICE[key] in (True, False)
    # a clock on which taking a cached buffer is slow: numpy's allocation is chosen
    now = [0.0]

    def clock():
        now[0] += 1.0
        return now[0]
    real_take = buffers.cache.take

    def slow_take(*a):
        now[0] += 1000.0
        return real_take(*a)
    monkeypatch.setattr(buffers, "perf_counter", clock)
    monkeypatch.setattr(buffers.cache, "take", slow_take)
    y = np.ones(20_000)
    probe = buffers._CHOICE[key] = buffers._Probe()
    for _ in range(buffers._GIVE_UP):
        if buffers._CHOICE[key] is not probe:
            break
        np.testing.assert_array_equal(buffers._choose(key, probe, np.add, (y, y)), y + y)
    assert buffers._CHOICE[key] is False and probe.cached and probe.fresh
    assert buffers.take(*key).base is None             # numpy's own array
    assert buffers.forward(dg.core.Primitive("add", np.add, ufunc=np.add), [y, y]) is None
    assert key not in buffers.cache.free                # its free buffers were dropped
    a = real_take(*key)                                 # one taken before the choice...
    del a                                               # ...comes back: not filed
    assert key not in buffers.cache.free


def test_a_shape_being_measured_keeps_few_free_buffers(monkeypatch):
    monkeypatch.setattr(buffers, "FORCE", None)
    monkeypatch.setattr(buffers, "_CHOICE", {})
    cache = buffers.BufferCache(limit=1 << 30)
    key = ((1000,), F64)
    held = [cache.take(*key) for _ in range(6)]
    del held                                       # six come back while it is measured
    assert len(cache) == buffers.PROBE_KEEP
    buffers._CHOICE[key] = True                    # measured: cached buffers pay here
    held = [cache.take(*key) for _ in range(6)]
    del held
    assert len(cache) == 6


# -- the rows' forms in place: the same bits as their rules ----------------------------------

_DOMAINS = {"above1": (1.2, 1.8), "unit": (-0.8, 0.8), "positive": (0.2, 1.8)}
FORMS = sorted(name for name, p in P.TABLE.items() if p.forms is not None)


def _differentiable(loss, xs, i):
    """Whether the row has a derivative in argument i (the incomplete gamma and beta rows
    have none in their shapes: asking raises)."""
    try:
        dg.grad(loss, argnums=i)(*xs)
    except TypeError as e:
        if "no derivative rule" in str(e):
            return False
        raise
    return True


@pytest.mark.parametrize("name", FORMS)
def test_each_rows_forms_in_place_give_its_rules_bits(everywhere, monkeypatch, name):
    """The sweep writes a row's cotangents in place by running the row's forms
    (rules.vjp_of), the forms its VJP rules are built from: bitwise the rules' result."""
    prim = P.TABLE[name]
    n = len(prim.forms[0])
    lo, hi = _DOMAINS.get(prim.domain, (0.2, 1.8))
    rng = np.random.default_rng(7)
    xs = [rng.uniform(lo, hi, (5, 6)) for _ in range(n)]
    w = rng.standard_normal((5, 6))
    loss = lambda *a: np.sum(prim(*a) * w)  # noqa: E731
    nums = tuple(i for i in range(n) if _differentiable(loss, xs, i))
    f = dg.grad(loss, argnums=nums)
    runs = []
    in_place = reverse._in_place
    monkeypatch.setattr(reverse, "_in_place",
                        lambda *a: runs.append(r := in_place(*a)) or r)
    got = f(*xs)
    want = _plain(monkeypatch, f, *xs)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), name
    if name in ("add", "subtract", "multiply", "divide", "power", "negative", "sin", "exp"):
        assert any(r is not None for r in runs), f"{name}: the in-place path never ran"


@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
def test_conv_and_relu_gradients_reuse_buffers(monkeypatch, backend_name):
    """The backend's kernel outputs (conv's im2col columns and products, col2im, the
    select of a relu) are cached buffers at the real
    threshold: a second gradient reuses the first one's memory (a fresh process
    page-faulted on every call: 2,048 faults and 12 ms per call of the bench's conv
    gradient against 128 faults and 4.5 ms), with the same bits as numpy's allocation."""
    if not buffers.ENABLED:
        pytest.skip("buffers off")
    from dualgrad import backend
    if backend_name == "numba" and backend._kernels() is None:
        pytest.skip("numba not importable")
    for name, value in backend.ALWAYS_NUMBA.items():
        monkeypatch.setattr(backend, name, value)
    r = np.random.default_rng(0)
    x, w = r.standard_normal((4, 3, 32, 32)), r.standard_normal((8, 3, 3, 3)) / 3
    g = dg.grad(lambda x, w: np.sum(np.tanh(dg.nn.relu(dg.nn.conv2d(x, w, padding=1))) ** 2),
                argnums=(0, 1))
    with backend.use_backend(backend_name):
        want = _plain(monkeypatch, g, x, w)
        g(x, w)
        hits = buffers.cache.hits
        got = g(x, w)
    assert buffers.cache.hits > hits
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    with backend.use_backend(backend_name):  # each kernel's own output, one by one
        y = backend.conv2d(x, w, padding=1)
        outs = [y]  # the product's; numpy's col2im is numpy's own
        if backend_name == "numba":
            outs += [backend.conv2d_grad_input(y, w, x.shape, padding=1),
                     backend.where(y > 0, y, 0.0)]
    assert all(_in_cached_buffer(a) for a in outs)


def _in_cached_buffer(a):
    while a is not None:
        if a.__class__ is buffers._Owner:
            return True
        a = getattr(a, "base", None)
    return False


def test_slice_cotangents_are_zeros_in_cached_buffers():
    """A basic index's cotangent (``scatter_add``: zeros with the slice written) is a
    cached buffer at the real threshold, zero outside the slice however dirty the reused
    buffer was: np.zeros's fresh pages faulted on every call of a large hvp."""
    if not buffers.ENABLED:
        pytest.skip("buffers off")
    g = np.linspace(1.0, 2.0, 99_999)
    for _ in range(3):  # the second and third take the first one's dirty buffer again
        out = P.scatter_add(g, idx=(slice(1, None),), shape=(100_000,))
        assert _in_cached_buffer(out)
        assert out[0] == 0.0 and not np.signbit(out[0])
        np.testing.assert_array_equal(out[1:], g)
        out.fill(np.nan)  # dirty it for the next one
        del out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_concatenations_are_in_cached_buffers(dtype):
    """A large real concatenation (a cotangent padded by ``concatenate``) is a cached
    buffer, the same bits, dtype and shape as numpy's, never the memory of one still held;
    an integer or small one is numpy's own: a fresh concatenation per call of a large hvp
    page-faulted 360 times."""
    if not buffers.ENABLED:
        pytest.skip("buffers off")
    a = np.linspace(-1.0, 2.0, 99_999).astype(dtype)
    z = np.zeros(1, np.float32)  # promoted as numpy promotes it
    held = []
    for axis in (0, -1):
        for _ in range(3):
            out = P.concatenate(a, z, axis=axis)
            want = np.concatenate((a, z))
            assert _in_cached_buffer(out)
            assert out.dtype == want.dtype and out.shape == want.shape
            assert out.tobytes() == want.tobytes()
            assert all(not np.shares_memory(out, h) for h in held)
            held.append(out)
    m = P.concatenate(np.ones((300, 2)), np.ones((300, 40)), axis=1)
    assert _in_cached_buffer(m) and m.shape == (300, 42)
    assert not _in_cached_buffer(P.concatenate(np.arange(20_000), np.arange(20_000), axis=0))
    assert not _in_cached_buffer(P.concatenate(np.ones(3), np.ones(4), axis=0))
    with pytest.raises(ValueError):  # numpy's own refusal
        P.concatenate(np.ones((9000, 2)), np.ones((9000, 3)), axis=0)


_FAULTS = """
import resource, numpy as np
import dualgrad
def step():  # a gradient's temporaries: eight 1 MiB arrays at once, then all freed
    a = [np.ones(131072) for _ in range(8)]
    del a
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(dualgrad.core.buffers.MALLOC_SETTLED,
      resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(buffers._glibc() is None, reason="glibc's mallopt")
@pytest.mark.parametrize("setting", ["1", "0"])
def test_malloc_thresholds_settled_at_import(setting):
    """Importing dualgrad sets glibc's thresholds where its own adjustment ends: a step
    that makes and frees eight 1 MiB arrays reuses its heap, with no page fault per step;
    with DUALGRAD_MALLOC=0 glibc trims the 8 MiB freed at its heap's top (past twice the
    1 MiB its threshold grew to) and every step faults its 2,048 pages in again."""
    env = dict(os.environ, DUALGRAD_MALLOC=setting)
    out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    settled, faults = out[0] == "True", int(out[1])
    if setting == "1":
        assert settled and faults < 100, faults
    else:
        assert not settled and faults >= 20 * 1500, faults
