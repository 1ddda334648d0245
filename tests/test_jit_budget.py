"""dg.jit stops a recording that would not pay and runs eagerly, with one warning: past
``max_branches`` branches on traced values (an iterative loop over data, unrolled), and
past ``max_bytes`` bytes of recorded values (a loop of writes into a large array records
a copy of it per write)."""

import warnings

import numpy as np
import pytest

import dualgrad as dg


def solve(x):
    """A data-dependent loop: Newton's iteration for sqrt(x), one branch per step."""
    y = x
    while abs(y * y - x) > 1e-12 * x:
        y = 0.5 * (y + x / y)
    return y


def test_a_recording_past_max_branches_runs_eagerly_with_one_warning():
    jf = dg.jit(dg.grad(solve), max_branches=3)
    want = dg.grad(solve)(1e6)
    with pytest.warns(RuntimeWarning, match="passed 3 branches on traced values"):
        assert jf(1e6) == want
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: eager from now on, silently
        assert jf(1e6) == want
        assert jf(2.0) == dg.grad(solve)(2.0)
    assert jf.eager and jf.trace_count == 0


def test_branches_within_the_budget_are_recorded_and_replayed():
    jf = dg.jit(solve, max_branches=1000)
    assert jf(2.0) == solve(2.0) and jf(2.0) == solve(2.0)
    assert jf.trace_count == 1 and not jf.eager


def test_max_branches_none_is_no_bound():
    def f(x):
        for _ in range(50):
            if x > 0:  # a branch per step
                x = x - 0.01
        return x
    jf = dg.jit(f, max_branches=None)
    assert jf(1.0) == f(1.0) and jf(1.0) == f(1.0) and not jf.eager


def test_a_branch_on_a_plain_value_is_not_counted():
    def f(x, n):
        for i in range(n):
            if i % 2:  # Python ints: no guard
                x = x * 1.5
        return np.sum(x)
    jf = dg.jit(f, static_argnums=1, max_branches=0)
    x = np.arange(3.0)
    assert jf(x, 10) == f(x, 10) and jf(x, 10) == f(x, 10) and not jf.eager


def writes(x):
    """A loop of entry writes into a preallocated array: each write records a copy."""
    out = np.zeros((50, 50), like=x)
    for i in range(50):
        out[i, i] = np.sin(x[i])
    return np.sum(out * out)


def test_a_recording_past_max_bytes_runs_eagerly_with_one_warning():
    x = np.linspace(0.1, 1.0, 50)
    want = dg.grad(writes)(x)
    jf = dg.jit(dg.grad(writes), max_bytes=200_000)  # 50 writes of 20 kB pass it
    with pytest.warns(RuntimeWarning, match="values passed 200000 bytes"):
        np.testing.assert_array_equal(jf(x), want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(jf(x), want)
    assert jf.eager and jf.trace_count == 0
    np.testing.assert_allclose(want, 2 * np.sin(x) * np.cos(x), rtol=1e-14)


def test_values_within_max_bytes_are_recorded_and_views_count_once():
    x = np.linspace(0.1, 1.0, 50)
    jf = dg.jit(dg.grad(writes), max_bytes=10_000_000)
    for _ in range(2):
        np.testing.assert_array_equal(jf(x), dg.grad(writes)(x))
    assert jf.trace_count == 1 and not jf.eager

    def views(x):  # 200 views of one 8 MB array: its bytes counted once, not 200 times
        big = x * 1.0
        return sum(np.sum(big[i:i + 10]) for i in range(200))

    x = np.linspace(0.0, 1.0, 1_000_000)
    jv = dg.jit(views, max_bytes=40_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert jv(x) == views(x) and not jv.eager
    assert dg.jit(writes).max_bytes == dg.compiler.record.MAX_BYTES <= 4 << 30


def rk(x):
    """An explicit integrator over a long array: every value is wide (GradBench's ode)."""
    y = np.zeros_like(x)
    for _ in range(20):
        y = y + 0.01 * (x * np.concatenate((np.ones(1), y[:-1])))
    return y[-1]


def test_wide_values_past_the_default_budget_run_eagerly(monkeypatch):
    """With the default max_bytes, a recording past record.WIDE_BYTES whose values average
    record.WIDE_OP bytes or more per operation stops (twice eager's memory); lowered here
    so the test records megabytes, not a gigabyte."""
    monkeypatch.setattr(dg.compiler.record, "WIDE_BYTES", 4_000_000)
    x = np.linspace(0.0, 1.0, 50_000)  # 400 kB per value, more than WIDE_OP
    want = dg.grad(rk)(x)
    jf = dg.jit(dg.grad(rk))
    with pytest.warns(RuntimeWarning, match="kB or more per operation"):
        np.testing.assert_array_equal(jf(x), want)
    assert jf.eager and jf.trace_count == 0
    jx = dg.jit(dg.grad(rk), max_bytes=1 << 30)  # a budget the caller chose: the whole bound
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            np.testing.assert_allclose(jx(x), want, rtol=1e-13, atol=1e-300)
    assert not jx.eager and jx.trace_count == 1


def test_many_small_values_past_wide_bytes_are_recorded(monkeypatch):
    """Values below WIDE_OP on average (a write loop's copies, 20 kB each) record on past
    WIDE_BYTES: the programs a replay pays for most."""
    monkeypatch.setattr(dg.compiler.record, "WIDE_BYTES", 100_000)
    x = np.linspace(0.1, 1.0, 50)
    jf = dg.jit(dg.grad(writes))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            np.testing.assert_array_equal(jf(x), dg.grad(writes)(x))
    assert not jf.eager and jf.trace_count == 1


def test_large_recordings_give_their_memory_back(monkeypatch):
    """A recording of GIVE_BACK bytes or more, abandoned or built, returns the freed heap
    to the kernel once it is dropped (core.buffers.give_back); a small one does not."""
    from dualgrad.core import buffers
    real = buffers.give_back
    calls = []
    monkeypatch.setattr(buffers, "give_back", lambda: calls.append(1))
    x = np.linspace(0.0, 1.0, 50_000)
    jw = dg.jit(dg.grad(writes))  # ~1 MB of values: under the default GIVE_BACK
    for _ in range(3):
        jw(np.linspace(0.1, 1.0, 50))
    assert calls == [] and jw.trace_count == 1
    monkeypatch.setattr(dg.compiler.record, "WIDE_BYTES", 4_000_000)
    with pytest.warns(RuntimeWarning, match="per operation"):
        dg.jit(dg.grad(rk))(x)  # abandoned: given back before the eager run
    assert calls == [1]
    monkeypatch.setattr(dg.compiler.api, "GIVE_BACK", 1_000_000)
    jf = dg.jit(dg.grad(rk), max_bytes=1 << 30)
    for _ in range(3):  # recorded (given back), built at the first replay (again), replayed
        jf(x)
    assert calls == [1, 1, 1] and not jf.eager and jf.trace_count == 1
    real()  # the real one runs (glibc's malloc_trim, or nothing)
