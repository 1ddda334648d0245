"""dg.jit's loop rolling (compiler/roll.py): an unrolled Python loop over scalars, recorded
as one long scalar region, is written as ``for`` loops over its repeated blocks.  Every
case is compared with eager dualgrad bit for bit: a rolled kernel computes each node as
the straight one does, from the same values in the same order."""

import warnings

import numpy as np
import pytest

import dualgrad as dg
from dualgrad.compiler import roll


def chain(x):
    for _ in range(200):
        x = np.sin(x) * 1.0001 + 0.1 * x * x
    return x


def two_states(x, y):
    for _ in range(100):
        x, y = x * 0.9 + np.cos(y) * 0.05, y - 0.01 * x * y
    return x * y


def varying(x):
    for i in range(150):  # the constant differs at every step: still right
        x = np.tanh(x) * (1.0 + i / 1000.0) + 0.01
    return x


def branchless(x):
    for _ in range(80):
        x = np.where(x > 0.3, x * 0.7, x + 0.2) + np.exp(-x) * 0.01
    return x


def float32_chain(x):
    for _ in range(120):
        x = np.sin(x) * np.float32(0.999) + np.float32(0.01) * x
    return x


def nested(x):
    for _ in range(30):
        y = x
        for _ in range(5):
            y = y * y * 0.5 + 0.25
        x = x + np.sqrt(y) * 0.01
    return x


def rk4(p):
    """Lotka-Volterra, 40 RK4 steps (the bench's rk4 takes 100): steps of ~60 nodes, their
    reverse sweep ~110, and the parameters read from an array."""
    a, b, c, e = p[0], p[1], p[2], p[3]
    x, y, h = 1.0, 1.0, 0.01

    def f(x, y):
        return a * x - b * x * y, e * x * y - c * y
    for _ in range(40):
        k1x, k1y = f(x, y)
        k2x, k2y = f(x + 0.5 * h * k1x, y + 0.5 * h * k1y)
        k3x, k3y = f(x + 0.5 * h * k2x, y + 0.5 * h * k2y)
        k4x, k4y = f(x + h * k3x, y + h * k3y)
        x = x + h / 6.0 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x)
        y = y + h / 6.0 * (k1y + 2.0 * k2y + 2.0 * k3y + k4y)
    return x + y


CASES = {"grad chain": (dg.grad(chain), (0.5,)),
         "value_and_grad chain": (dg.value_and_grad(chain), (0.3,)),
         "grad two_states": (dg.grad(two_states, argnums=(0, 1)), (0.4, 0.7)),
         "grad varying": (dg.grad(varying), (0.2,)),
         "grad branchless": (dg.grad(branchless), (0.1,)),
         "grad float32": (dg.grad(float32_chain), (np.float32(0.5),)),
         "grad nested": (dg.grad(nested), (0.3,)),
         "hessian chain": (dg.hessian(chain), (0.5,)),
         "forward chain": (chain, (0.5,)),
         "grad rk4": (dg.grad(rk4), (np.array([1.5, 1.0, 3.0, 1.0]),))}


def _flat(v):
    return [np.asarray(x) for x in (v if isinstance(v, tuple) else (v,))]


def _replays(f, args):
    jf = dg.jit(f, codegen="numba")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a kernel refused must not hide
        return [_flat(jf(*args)) for _ in range(3)][1:]  # the replays (1st: recorded)


@pytest.mark.parametrize("name", CASES)
def test_rolled_kernels_equal_straight_ones_bit_for_bit(name, monkeypatch):
    """Rolled against the same regions written straight (numba's libm may differ from
    numpy's by an ulp, as tests/test_codegen.py allows: against eager, a few ulps)."""
    f, args = CASES[name]
    rolled = _replays(f, args)
    monkeypatch.setattr(roll, "runs", lambda graph, body: [])
    straight = _replays(f, args)
    want = _flat(f(*args))
    for got, ref in zip(rolled, straight, strict=True):
        for g, r, w in zip(got, ref, want, strict=True):
            assert g.dtype == r.dtype == w.dtype and g.shape == r.shape == w.shape
            assert np.array_equal(g, r), (name, g, r)
            tol = 1e-5 if w.dtype == np.float32 else 1e-12
            assert np.allclose(g, w, rtol=tol, atol=0), (name, g, w)


def test_chain_is_one_kernel_with_two_loops():
    lo = dg.jit(dg.grad(chain), codegen="numba").lower(0.5)
    (src,) = lo.kernels
    assert src.count("for j in range(") == 2
    assert src.count("\n") < 100  # not 2,600 straight lines


def test_a_new_argument_replays_the_rolled_kernel():
    jf = dg.jit(dg.grad(two_states, argnums=(0, 1)), codegen="numba")
    for x, y in [(0.4, 0.7), (0.41, 0.69), (-0.2, 1.3)]:
        got = jf(x, y)
        want = dg.grad(two_states, argnums=(0, 1))(x, y)
        assert np.allclose(got, want, rtol=1e-12, atol=0)
    assert jf.trace_count == 1


def test_a_region_with_no_repeats_is_not_rolled():
    rng = np.random.default_rng(0)
    fns = [np.sin, np.cos, np.tanh, np.exp, np.arctan, np.sqrt]
    picks = rng.integers(0, len(fns), 300)

    def f(x):
        for i, k in enumerate(picks):
            x = fns[k](x) * 0.5 + (0.1 if i % 7 else 0.2) * x
        return x
    jf = dg.jit(dg.grad(f), codegen="numba")
    for _ in range(2):
        assert np.allclose(jf(0.3), dg.grad(f)(0.3), rtol=1e-12, atol=0)


def test_runs_of_a_periodic_body():
    lo = dg.jit(chain, codegen="numba").lower(0.5)
    graph = lo.after
    from dualgrad.compiler import loops, regions
    (r,) = regions.recompute(graph, regions.partition(graph, scalar_cap=10_000))
    found = roll.runs(graph, loops.live(graph, r))
    assert [(run.p, run.m) for run in found] == [(5, 199)]


def int_start(k):
    x = k * 3  # an int: the loop's first step reads it, every later one a float
    for _ in range(60):
        x = x * 0.5 + 1.25
    return x


def test_a_loop_entered_with_another_type_starts_rolling_a_step_later():
    jf = dg.jit(int_start, codegen="numba")
    for k in (3, 7, 3):
        assert jf(k) == int_start(k)
    assert "for j in range(" in jf.lower(3).kernels[0]


def test_rk4_is_one_kernel_with_loops():
    lo = dg.jit(dg.grad(rk4), codegen="numba").lower(np.array([1.5, 1.0, 3.0, 1.0]))
    (src,) = lo.kernels
    assert src.count("for j in range(") == 2
