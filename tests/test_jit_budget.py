"""dg.jit stops a recording that would not pay and runs eagerly, with one warning: past
``max_branches`` branches on traced values (an iterative loop over data, unrolled)."""

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
