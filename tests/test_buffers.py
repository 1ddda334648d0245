"""The first-order sweep's allocator (dualgrad/buffers.py): in-place accumulation, rule
outputs written into dead buffers, cached buffers reused across calls.

Whatever it reuses, a gradient must be bitwise the gradient the plain allocator gives
(the same numpy loops run in the same order), no user array or primal value may change,
and a gradient handed out earlier must never be overwritten by a later call.  Most tests
lower ``buffers.LARGE`` to 0 so that the small arrays of the random programs take every
fast path; two run at the real threshold on large arrays.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_programs import run, step

import dualgrad as dg
from dualgrad import buffers


@pytest.fixture
def everywhere(monkeypatch):
    """Every array counts as large: the fast paths run on the tests' small arrays."""
    if not buffers.ENABLED:
        pytest.skip("reference counts are not reliable here: the buffers are off")
    monkeypatch.setattr(buffers, "LARGE", 0)


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


def test_cache_limit_and_clear():
    cache = buffers.BufferCache(limit=3 * 8000)
    a = cache.take((1000,), np.dtype(np.float64))
    assert cache.take((1000,), np.dtype(np.float64)) is not a  # a is still held here
    del a
    b = cache.take((1000,), np.dtype(np.float64))  # the first one is free again
    assert cache.hits == 1
    cache.take((2000,), np.dtype(np.float64))      # over the limit: the oldest go
    assert cache.nbytes <= cache.limit
    b[:] = 1.0  # still usable by its holder after eviction
    cache.clear()
    assert cache.nbytes == 0 and not cache.ids
