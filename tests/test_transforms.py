"""The transforms, the tape API, nesting, custom rules and the errors of DESIGN.md §5."""

import gc
import math
import weakref

import numpy as np
import pytest

import dualgrad as dg


def baydin(x1, x2):
    return np.log(x1) + x1 * x2 - np.sin(x2)


DX2 = 2 - math.cos(5.0)  # 1.7163378145367738


# ---------------------------------------------------------------------------
# reference values (DESIGN.md §6)
# ---------------------------------------------------------------------------

def test_baydin_reverse():
    g1, g2 = dg.grad(baydin, argnums=(0, 1))(2.0, 5.0)
    assert g1 == pytest.approx(5.5, abs=1e-15) and g2 == pytest.approx(DX2, abs=1e-15)
    value, g = dg.value_and_grad(baydin)(2.0, 5.0)
    assert value == pytest.approx(11.652071455223084) and g == pytest.approx(5.5)


def test_baydin_forward():
    y = baydin(dg.Dual(2.0, 1.0), dg.Dual(5.0, 0.0))
    assert y.primal == pytest.approx(11.652071455223084) and y.tangent == pytest.approx(5.5)
    out, t = dg.jvp(baydin, (2.0, 5.0), (1.0, 0.0))
    assert t == pytest.approx(5.5)
    j1, j2 = dg.jacfwd(baydin, argnums=(0, 1))(2.0, 5.0)
    assert j1 == pytest.approx(5.5) and j2 == pytest.approx(DX2)


def test_baydin_tape_and_trace_table():
    with dg.Tape() as tape:
        x1, x2 = tape.watch(2.0, "x1"), tape.watch(5.0, "x2")
        y = baydin(x1, x2)
    g1, g2 = tape.gradient(y, [x1, x2])
    assert (g1, g2) == (pytest.approx(5.5), pytest.approx(DX2))
    y.backward()
    assert x1.grad == pytest.approx(5.5) and x2.grad == pytest.approx(DX2)
    table = str(tape)
    assert "v-1 = x1" in table and "ln v-1" in table and "11.6521" in table
    assert "adj(v-1) = 5.5000" in table and "adj(v0) = 1.7163" in table


@pytest.mark.parametrize("outer, inner", [("fwd", "fwd"), ("rev", "rev"), ("fwd", "rev"),
                                          ("rev", "fwd")])
def test_no_perturbation_confusion(outer, inner):
    def d(mode):
        if mode == "rev":
            return dg.grad
        return lambda f: (lambda x: dg.jvp(f, (x,), (1.0,))[1])
    answer = d(outer)(lambda x: x * d(inner)(lambda y: x + y)(1.0))(1.0)
    assert answer == 1.0


def test_third_derivatives_and_mixed_nesting():
    assert dg.grad(dg.grad(dg.grad(np.sin)))(0.7) == pytest.approx(-math.cos(0.7))
    d3 = dg.jacfwd(dg.grad(dg.jacfwd(np.sin)))(0.7)
    assert d3 == pytest.approx(-math.cos(0.7))


# ---------------------------------------------------------------------------
# transforms: argnums, has_aux, pytrees, jacobians
# ---------------------------------------------------------------------------

def test_pytrees_and_has_aux():
    params = {"w": np.array([1.0, 2.0]), "b": (0.5, [np.array(3.0)])}

    def loss(p, x):
        y = np.sum(p["w"] * x) + p["b"][0] * p["b"][1][0]
        return y ** 2, {"y": y}
    (g, aux) = dg.grad(loss, has_aux=True)(params, np.array([1.0, -1.0]))
    y = -1.0 + 1.5
    assert aux["y"] == pytest.approx(y)
    np.testing.assert_allclose(g["w"], 2 * y * np.array([1.0, -1.0]))
    assert g["b"][0] == pytest.approx(2 * y * 3.0)
    np.testing.assert_allclose(g["b"][1][0], 2 * y * 0.5)
    (v, aux2), g2 = dg.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params,
                                                                            np.ones(2))
    assert isinstance(g2, tuple) and len(g2) == 2


def test_vjp_and_jacobians_agree():
    A = np.random.default_rng(0).standard_normal((5, 3))

    def f(x):
        return np.tanh(A @ x) + x[0] ** 3
    x = np.array([0.3, -0.2, 0.9])
    jr, jf = dg.jacrev(f)(x), dg.jacfwd(f)(x)
    assert jr.shape == (5, 3)
    np.testing.assert_allclose(jr, jf, rtol=1e-12)
    np.testing.assert_allclose(jf, dg.jacfwd(f, chunk_size=2)(x), rtol=1e-12)
    num, = dg.numerical_jacobian(f, (x,))
    np.testing.assert_allclose(jr, num, rtol=1e-8)
    out, pull = dg.vjp(f, x)
    u = np.arange(5.0)
    np.testing.assert_allclose(pull(u)[0], u @ jr)


def test_jacobian_shapes_follow_jax():
    f = lambda x, y: {"a": x[:, None] * y, "b": np.sum(x)}
    x, y = np.ones(3), np.ones((2,))
    for jac in (dg.jacrev, dg.jacfwd):
        j = jac(f, argnums=(0, 1))(x, y)
        assert j["a"][0].shape == (3, 2, 3) and j["a"][1].shape == (3, 2, 2)
        assert j["b"][0].shape == (3,) and j["b"][1].shape == (2,)


def test_hessian_and_hvp():
    def rosen(x):
        return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    x = np.random.default_rng(3).uniform(-1, 1, 6)
    H = dg.hessian(rosen)(x)
    num, = dg.numerical_jacobian(dg.grad(rosen), (x,))
    np.testing.assert_allclose(H, num, rtol=1e-7, atol=1e-7)
    v = np.arange(6.0)
    g, hv = dg.hvp(rosen, (x,), (v,))
    np.testing.assert_allclose(hv, H @ v, rtol=1e-12)
    np.testing.assert_allclose(g, dg.grad(rosen)(x))
    np.testing.assert_allclose(dg.jacrev(dg.grad(rosen))(x), H, rtol=1e-12)


def test_linearize_replays_the_tape():
    calls = []

    def f(x):
        calls.append(1)
        return np.sin(x) * x
    x = np.array([0.5, 1.0])
    y, f_jvp = dg.linearize(f, x)
    t1, t2 = f_jvp(np.ones(2)), f_jvp(np.array([2.0, 0.0]))
    assert len(calls) == 1
    np.testing.assert_allclose(t1, np.cos(x) * x + np.sin(x))
    np.testing.assert_allclose(t2, [2 * (np.cos(0.5) * 0.5 + np.sin(0.5)), 0.0])


def test_batched_dual_tangents():
    x = dg.Dual(np.array([1.0, 2.0]), np.eye(2))
    y = np.sum(x ** 2) + x[0] * x[1]
    np.testing.assert_allclose(y.tangent, [2 + 2, 4 + 1])


def test_independent_input_gives_zero_gradient():
    assert dg.grad(lambda x, y: x * 2.0, argnums=1)(1.0, 3.0) == 0.0
    np.testing.assert_array_equal(dg.jacrev(lambda x: np.ones(2))(np.ones(3)), np.zeros((2, 3)))


# ---------------------------------------------------------------------------
# custom rules and stop_gradient
# ---------------------------------------------------------------------------

def test_custom_jvp_gives_a_stable_gradient(softplus):
    naive = lambda x: np.log(1 + np.exp(x))
    with np.errstate(over="ignore", invalid="ignore"):
        assert not np.isfinite(dg.grad(naive)(1000.0))
    assert dg.grad(softplus)(1000.0) == 1.0
    assert dg.jvp(softplus, (1000.0,), (2.0,))[1] == 2.0
    xs = np.array([-3.0, 0.0, 2.0])
    np.testing.assert_allclose(dg.jacrev(softplus)(xs), dg.jacfwd(softplus)(xs))
    dg.check_grads(softplus, (xs,), order=2)


def test_custom_vjp(clip_grad):
    g = dg.grad(lambda x: np.sum(clip_grad(x) * 10.0))(np.ones(3))
    np.testing.assert_array_equal(g, np.ones(3))
    with pytest.raises(TypeError, match="custom_vjp"):
        dg.jvp(clip_grad, (1.0,), (1.0,))


def test_stop_gradient():
    assert dg.grad(lambda x: x * dg.stop_gradient(x))(3.0) == 3.0
    assert dg.jvp(lambda x: x * dg.stop_gradient(x), (3.0,), (1.0,))[1] == 3.0


# ---------------------------------------------------------------------------
# the tape: memory and scale
# ---------------------------------------------------------------------------

def test_tape_is_freed_when_transform_returns():
    refs = []

    class Probe(np.ndarray):
        pass

    def f(x):
        y = np.sin(x) * 2.0
        refs.append(weakref.ref(y))
        r = y.value.view(Probe)
        refs.append(weakref.ref(r))
        return np.sum(y)
    dg.grad(f)(np.ones(1000))
    gc.collect()
    assert all(r() is None for r in refs)


def test_no_reference_cycles_hold_arrays():
    gc.collect()
    gc.disable()
    try:
        probe = []

        def f(x):
            y = np.tanh(x)
            probe.append(weakref.ref(y))
            return np.sum(y * y)
        dg.grad(f)(np.ones(10))
        assert probe[0]() is None  # freed by reference counting alone, gc disabled
    finally:
        gc.enable()


def test_million_entry_tape_sweeps_without_recursion():
    def f(x):
        for _ in range(1_000_000):
            x = x * 1.0000001
        return x
    g = dg.grad(f)(1.0)
    assert g == pytest.approx(1.0000001 ** 1_000_000)


# ---------------------------------------------------------------------------
# errors (DESIGN.md §5)
# ---------------------------------------------------------------------------

def test_grad_of_non_scalar_output():
    with pytest.raises(TypeError, match="scalar output.*jacrev"):
        dg.grad(lambda x: x * 2)(np.ones(3))


def test_integer_input_to_grad():
    with pytest.raises(TypeError, match="argument 0 has dtype int"):
        dg.grad(lambda x: x * 2.0)(3)


def test_argnums_out_of_range():
    with pytest.raises(ValueError, match="argnums=2 is out of range"):
        dg.grad(lambda x, y: x * y, argnums=2)(1.0, 2.0)


def test_cotangent_of_wrong_shape():
    _, pull = dg.vjp(lambda x: x * 2, np.ones(3))
    with pytest.raises(ValueError, match=r"cotangent 0 has shape \(2,\).*\(3,\)"):
        pull(np.ones(2))


def test_leaked_tracer():
    leaked = []
    dg.grad(lambda x: leaked.append(x) or x * 2)(1.0)
    with pytest.raises(RuntimeError, match="leaked tracer"):
        np.sin(leaked[0])
    with pytest.raises(RuntimeError, match="leaked tracer"):
        dg.grad(lambda y: y * leaked[0])(1.0)


def test_numpy_function_without_rule():
    with pytest.raises(TypeError, match="numpy.fft.hfft"):
        dg.grad(lambda x: np.fft.hfft(x).sum())(np.ones(4))


def test_tangent_errors():
    f = lambda x: x * 2
    with pytest.raises(ValueError, match=r"tangents\[0\] has shape \(2,\).*\(3,\)"):
        dg.jvp(f, (np.ones(3),), (np.ones(2),))
    with pytest.raises(TypeError, match="dtype float32.*float64"):
        dg.jvp(f, (np.ones(3),), (np.ones(3, np.float32),))
    with pytest.raises(TypeError, match="input of dtype int"):
        dg.jvp(f, (np.arange(3),), (np.ones(3),))
    with pytest.raises(TypeError, match="different tree structure"):
        dg.jvp(lambda p: p[0], ((1.0, 2.0),), ([1.0, 2.0],))
    with pytest.raises(TypeError, match="must be tuples"):
        dg.jvp(f, np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        dg.Dual(np.ones(3), np.ones(4))


def test_custom_vjp_pullback_sees_a_cotangent_changed_in_place():
    """bwd's answer is reused across one sweep's arguments, never across two pullback calls
    whose cotangent is the same array with new values (it returned the first answer)."""
    @dg.custom_vjp
    def f(x, y):
        return x * y
    f.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (g * res[1], g * res[0]))
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    _, pull = dg.vjp(f, x, y)
    ct = np.ones(2)
    np.testing.assert_array_equal(pull(ct), (y, x))
    ct[:] = [5.0, -1.0]
    np.testing.assert_array_equal(pull(ct), (ct * y, ct * x))
    ct[0] = np.nan  # equal to itself for this purpose: still recomputed once
    np.testing.assert_array_equal(pull(ct)[0], ct * y)


def test_check_grads_of_a_large_input_is_right_about_right_and_wrong_derivatives():
    """Over 400 entries check_grads compares along random directions: the step is scaled
    to the direction's norm (an unscaled step on a 500-vector reported tanh(X @ w)'s exact
    derivative wrong by 0.25%), and a derivative wrong by 1% is still caught."""
    X = np.random.default_rng(0).standard_normal((300, 500))
    w = np.ones(500) / 500
    dg.check_grads(lambda w: np.sum(np.tanh(X @ w)), (w,), order=1)

    @dg.custom_jvp
    def off(w):
        return np.sum(np.tanh(X @ w))

    @off.defjvp
    def _(primals, tangents):
        (w,), (t,) = primals, tangents
        z = np.tanh(X @ w)
        return np.sum(z), 1.01 * np.sum((1 - z**2) * (X @ t))

    with pytest.raises(AssertionError, match="forward-mode derivative"):
        dg.check_grads(off, (w,), order=1, modes=("fwd",))


def test_concatenate_and_stack_of_many_parts_split_their_cotangent_right():
    """concatenate's VJP finds where each part starts once per result (rules/structure.py
    _starts): parts of unequal sizes on axis 1, two concatenations sharing parts, and a
    stack of 500 traced numbers (the list-collect idiom) against closed forms."""
    x = np.arange(1.0, 7.0).reshape(2, 3)

    def f(x):
        a = np.concatenate([x[:, :1] * 2, x, x[:, 1:] ** 2], axis=1)
        b = np.concatenate([x[:, 2:], a[:, :2]], axis=1)
        return np.sum(a**2) + np.sum(b * 3)
    # sum(a**2) = 5 x0^2 + x1^2 + x2^2 + x1^4 + x2^4 and sum(3 b) = 3 x2 + 9 x0, per row
    c0, c1, c2 = x.T
    want = np.stack([10 * c0 + 9, 2 * c1 + 4 * c1**3, 2 * c2 + 4 * c2**3 + 3], axis=1)
    np.testing.assert_allclose(dg.grad(f)(x), want)
    np.testing.assert_allclose(dg.jacrev(f)(x), want)

    def g(w):
        return np.sum(np.stack([w[i % 3] * i for i in range(500)]) ** 2)
    want = [sum(2.0 * i * i for i in range(k, 500, 3)) for k in range(3)]
    np.testing.assert_allclose(dg.grad(g)(np.ones(3)), want)
