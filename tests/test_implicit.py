"""dg.custom_root / dg.implicit: derivatives of solvers' answers by the implicit function
theorem, against closed forms, unrolled iterations, finite differences and JAX."""

import warnings

import numpy as np
import pytest

import dualgrad as dg

RNG = np.random.default_rng(0)
A = RNG.standard_normal((7, 3))
B = RNG.standard_normal(7)
W = 0.3 * RNG.standard_normal((3, 3))
U = RNG.standard_normal(3)


def _newton_sqrt(x0, a):
    x = np.ones_like(a) if np.ndim(a) else 1.0
    for _ in range(60):
        x = x - (x * x - a) / (2 * x)
    return x


def _ridge_solve(x0, lam, data):
    a, b = data
    return np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ b)


def _ridge_closed(lam, a, b):
    return np.linalg.solve(a.T @ a + lam * np.eye(3), a.T @ b)


def _fp_solve(x0, w, u):
    x = x0
    for _ in range(200):
        x = np.tanh(w @ x + u)
    return x


def _fp_unrolled(w, u):  # the reference: differentiate every iteration
    x = np.zeros(3)
    for _ in range(200):
        x = np.tanh(w @ x + u)
    return x


# name: (F, solver, reference(*args), x0, args)
CASES = {
    "sqrt": (lambda x, a: x * x - a, _newton_sqrt, np.sqrt, 1.0, (np.array([2.0, 3.0, 0.5]),)),
    "ridge": (lambda x, lam, data: data[0].T @ (data[0] @ x - data[1]) + lam * x,
              _ridge_solve, lambda lam, data: _ridge_closed(lam, *data), np.zeros(3),
              (0.7, (A, B))),
    "fixed_point": (lambda x, w, u: x - np.tanh(w @ x + u), _fp_solve, _fp_unrolled,
                    np.zeros(3), (W, U)),
}


def _solved(name, solve="dense"):
    F, solver, ref, x0, args = CASES[name]
    solved = dg.custom_root(F, solve=solve)(solver)
    return (lambda *a: solved(x0, *a)), ref, args


@pytest.mark.parametrize("name", CASES)
def test_value(name):
    f, ref, args = _solved(name)
    np.testing.assert_allclose(f(*args), ref(*args), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("solve", ["dense", "gmres"])
@pytest.mark.parametrize("mode", [dg.jacfwd, dg.jacrev])
@pytest.mark.parametrize("name", CASES)
def test_jacobian_matches_reference(name, mode, solve):
    """Both modes, in every argument (pytrees too), against the reference differentiated
    by dualgrad (a closed form, or the unrolled iteration); both linear solves."""
    f, ref, args = _solved(name, solve)
    for i in range(len(args)):
        got = mode(f, argnums=i)(*args)
        want = dg.jacfwd(ref, argnums=i)(*args)
        for g, w in zip(dg.tree_flatten(got)[0], dg.tree_flatten(want)[0]):
            np.testing.assert_allclose(g, w, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("solve", ["dense", "gmres"])
@pytest.mark.parametrize("name", ["sqrt", "ridge"])
def test_second_order_against_finite_differences(name, solve):
    f, _, args = _solved(name, solve)
    flat = (lambda lam, a, b: f(lam, (a, b))) if name == "ridge" else f
    flat_args = (args[0], *args[1]) if name == "ridge" else args
    dg.check_grads(flat, flat_args, order=2)


def test_ridge_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    def closed(lam, a, b):
        return jnp.linalg.solve(a.T @ a + lam * jnp.eye(3), a.T @ b)
    f, _, _ = _solved("ridge")
    for i in range(3):
        got = dg.jacrev(lambda lam, a, b: f(lam, (a, b)), argnums=i)(0.7, A, B)
        np.testing.assert_allclose(got, jax.jacrev(closed, argnums=i)(0.7, A, B), rtol=1e-9)


@pytest.mark.parametrize("solve", ["dense", "gmres"])
def test_jit_replays_the_solver(solve):
    f, ref, _ = _solved("ridge", solve)
    loss = dg.jit(dg.grad(lambda lam: np.sum(f(lam, (A, B)) ** 2)))
    want = dg.grad(lambda lam: np.sum(_ridge_closed(lam, A, B) ** 2))
    for lam in (0.7, 1.3, 0.2):  # a replay with a new lambda solves again
        np.testing.assert_allclose(loss(lam), want(lam), rtol=1e-10)


def test_vmap_of_grad_and_grad_of_vmap():
    f, _, _ = _solved("sqrt")
    a = np.array([1.0, 4.0, 9.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a batching rule, no fallback loop warning
        per = dg.vmap(dg.grad(lambda s: f(s)))(a)
        tot = dg.grad(lambda v: np.sum(dg.vmap(f)(v)))(a)
    np.testing.assert_allclose(per, 0.5 / np.sqrt(a), rtol=1e-12)
    np.testing.assert_allclose(tot, 0.5 / np.sqrt(a), rtol=1e-12)


def test_start_point_has_zero_derivative():
    F, solver, _, _, args = CASES["ridge"]
    solved = dg.custom_root(F)(solver)
    g = dg.grad(lambda x0: np.sum(solved(x0, *args)))(np.ones(3))  # a traced x0: no crash
    np.testing.assert_array_equal(g, np.zeros(3))


def test_implicit_attaches_the_derivative_to_a_given_root():
    def cube_root(a):
        x = np.cbrt(dg.stop_gradient(a))
        return dg.implicit(lambda x, a: x ** 3 - a, x, a)
    a = np.array([8.0, 27.0])
    np.testing.assert_allclose(dg.jacrev(cube_root)(a), np.diag(a ** (-2 / 3) / 3), rtol=1e-12)
    np.testing.assert_allclose(dg.jacfwd(cube_root)(a), np.diag(a ** (-2 / 3) / 3), rtol=1e-12)


def test_errors_name_the_problem():
    with pytest.raises(TypeError, match="F must be a function"):
        dg.custom_root(3.0)
    with pytest.raises(ValueError, match="solve must be 'dense' or 'gmres'"):
        dg.custom_root(lambda x: x, solve="cg")
    bad = dg.custom_root(lambda x, a: np.concatenate([x, x]) - a)(lambda x0, a: x0)
    with pytest.raises(ValueError, match="as many entries as x"):
        dg.grad(lambda a: np.sum(bad(np.zeros(2), a)))(np.ones(4))
    ints = dg.custom_root(lambda x, a: x - a)(lambda x0, a: np.arange(2))
    with pytest.raises(TypeError, match="float array"):
        ints(np.zeros(2), np.ones(2))


def test_closing_over_a_traced_value_is_refused():
    """F that closes over a traced value would lose the solution's derivative in it."""
    def sol(c):
        return dg.custom_root(lambda x: x ** 2 - c)(lambda x0: np.sqrt(2.0))(1.0)
    for transform in (dg.grad, dg.jacfwd):
        with pytest.raises(TypeError, match="closes over"):
            transform(sol)(2.0)

    def sol2(c, d):  # traced args, and a closure over another traced value
        return dg.custom_root(lambda x, d: x ** 2 - c * d)(lambda x0, d: np.sqrt(2.0))(1.0, d)
    with pytest.raises(TypeError, match="closes over"):
        dg.grad(lambda c: dg.grad(lambda d: sol2(c, d))(1.0))(2.0)
