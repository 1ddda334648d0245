"""dualgrad.scipy.optimize: scipy's solvers, their solutions differentiated implicitly.

Values against scipy's own functions; derivatives against closed forms (the ridge
solution (AᵀA + λI)⁻¹Aᵀb, cube roots, normal equations) differentiated by dualgrad and by
JAX, against unrolled iterations, and against finite differences."""

import warnings

import numpy as np
import pytest
import scipy.optimize as so

import dualgrad as dg
from dualgrad.scipy import optimize as dgo

RNG = np.random.default_rng(1)
A = RNG.standard_normal((12, 4))
B = RNG.standard_normal(12)
T = np.linspace(0.0, 1.0, 8)
Y = 1.5 * np.exp(-0.7 * T) + 0.01 * RNG.standard_normal(8)


def ridge_loss(x, lam, a, b):
    return 0.5 * np.sum((a @ x - b) ** 2) + 0.5 * lam * np.sum(x ** 2)


def ridge_closed(lam, a, b):
    return np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ b)


def _min(method, **kw):
    def solve(lam, a, b):
        return dgo.minimize(ridge_loss, np.zeros(4), args=(lam, a, b), method=method,
                            tol=1e-12, **kw).x
    return solve


def _lsq(lam, a, b):  # ridge as least squares: r = [A x - b; sqrt(lam) x]
    def r(x, lam, a, b):
        return np.concatenate([a @ x - b, np.sqrt(lam) * x])
    return dgo.least_squares(r, np.zeros(4), args=(lam, a, b), xtol=1e-14, ftol=1e-14,
                             gtol=1e-14).x


def _root(lam, a, b):  # the ridge normal equations as a root problem
    return dgo.root(lambda x, lam, a, b: a.T @ (a @ x - b) + lam * x, np.zeros(4),
                    args=(lam, a, b), tol=1e-13).x


def _fixed(lam, a, b):  # gradient-descent map x -> x - s grad: its fixed point is x*
    s = 1.0 / (np.linalg.norm(A, 2) ** 2 + 2.0)
    return dgo.fixed_point(lambda x, lam, a, b: x - s * (a.T @ (a @ x - b) + lam * x),
                           np.zeros(4), args=(lam, a, b), xtol=1e-14, maxiter=5000,
                           method="iteration")


def _cbrt(method, **kw):
    def solve(c):
        return dgo.root_scalar(lambda x, c: x ** 3 - c, args=(c,), method=method, xtol=1e-14,
                               **kw).root
    return solve


# name: (solver of the parameters, closed form, parameters)
RIDGE = (0.8, A, B)
CASES = {
    "minimize-BFGS": (_min(None), ridge_closed, RIDGE),
    "minimize-L-BFGS-B": (_min("L-BFGS-B"), ridge_closed, RIDGE),
    "minimize-Newton-CG": (_min("Newton-CG"), ridge_closed, RIDGE),
    "minimize-trust-exact": (_min("trust-exact"), ridge_closed, RIDGE),
    "minimize-Nelder-Mead": (lambda lam, a, b: dgo.minimize(
        ridge_loss, np.zeros(4), args=(lam, a, b), method="Nelder-Mead",
        options={"xatol": 1e-11, "fatol": 1e-14, "maxiter": 40000, "maxfev": 40000}).x,
        ridge_closed, RIDGE),
    "minimize-user-jac-hess": (_min("trust-exact", jac=dg.grad(ridge_loss),
                                    hess=dg.hessian(ridge_loss)), ridge_closed, RIDGE),
    "minimize-jac-True": (lambda lam, a, b: dgo.minimize(
        dg.value_and_grad(ridge_loss), np.zeros(4), args=(lam, a, b), jac=True,
        tol=1e-12).x, ridge_closed, RIDGE),
    "least_squares": (_lsq, ridge_closed, RIDGE),
    "least_squares-user-jac": (lambda lam, a, b: dgo.least_squares(
        lambda x, lam, a, b: np.concatenate([a @ x - b, np.sqrt(lam) * x]), np.zeros(4),
        jac=lambda x, lam, a, b: np.vstack([a, np.sqrt(lam) * np.eye(4)]), args=(lam, a, b),
        xtol=1e-14, ftol=1e-14, gtol=1e-14).x, ridge_closed, RIDGE),
    "root-lm-user-jac": (lambda lam, a, b: dgo.root(
        lambda x, lam, a, b: a.T @ (a @ x - b) + lam * x, np.zeros(4), args=(lam, a, b),
        method="lm", jac=lambda x, lam, a, b: a.T @ a + lam * np.eye(4), tol=1e-13).x,
        ridge_closed, RIDGE),
    "root-hybr": (_root, ridge_closed, RIDGE),
    "fixed_point": (_fixed, ridge_closed, RIDGE),
    "root_scalar-brentq": (_cbrt("brentq", bracket=(0.0, 5.0)), np.cbrt, (7.0,)),
    "root_scalar-newton": (_cbrt("newton", x0=1.0), np.cbrt, (7.0,)),
    "root_scalar-halley": (_cbrt("halley", x0=1.0), np.cbrt, (7.0,)),
    "root_scalar-secant": (_cbrt("secant", x0=1.0, x1=2.0), np.cbrt, (7.0,)),
}
TOL = {"minimize-Nelder-Mead": 1e-5}


@pytest.mark.parametrize("name", CASES)
def test_value(name):
    solve, closed, params = CASES[name]
    np.testing.assert_allclose(solve(*params), closed(*params), rtol=TOL.get(name, 1e-8),
                               atol=1e-10)


@pytest.mark.parametrize("mode", [dg.jacrev, dg.jacfwd])
@pytest.mark.parametrize("name", CASES)
def test_derivative_against_closed_form(name, mode):
    solve, closed, params = CASES[name]
    for i in range(len(params)):
        np.testing.assert_allclose(mode(solve, argnums=i)(*params),
                                   dg.jacfwd(closed, argnums=i)(*params),
                                   rtol=TOL.get(name, 1e-6), atol=1e-8)


def test_values_match_scipy():
    ours = dgo.minimize(ridge_loss, np.zeros(4), args=RIDGE, method="BFGS")
    theirs = so.minimize(ridge_loss, np.zeros(4), args=RIDGE, method="BFGS")
    np.testing.assert_allclose(ours.x, theirs.x, rtol=1e-5)
    assert ours.success and ours.fun == pytest.approx(theirs.fun, rel=1e-10)

    def r(p, t, y):
        return p[0] * np.exp(p[1] * t) - y
    ours = dgo.least_squares(r, np.array([1.0, -1.0]), args=(T, Y))
    theirs = so.least_squares(r, np.array([1.0, -1.0]), args=(T, Y))
    np.testing.assert_allclose(ours.x, theirs.x, rtol=1e-6)
    np.testing.assert_allclose(ours.cost, theirs.cost, rtol=1e-8)
    f = lambda x, c: np.cos(x) * c  # noqa: E731
    np.testing.assert_allclose(dgo.fixed_point(f, 0.5, args=(0.9,)),
                               so.fixed_point(f, 0.5, args=(0.9,)), rtol=1e-10)
    ours = dgo.root_scalar(lambda x: x ** 3 - 2.0, bracket=(0.0, 2.0))
    theirs = so.root_scalar(lambda x: x ** 3 - 2.0, bracket=(0.0, 2.0))
    assert ours.root == pytest.approx(theirs.root, rel=1e-12) and ours.converged


def test_ridge_derivative_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    def closed(lam, a, b):
        return jnp.linalg.solve(a.T @ a + lam * jnp.eye(4), a.T @ b)
    solve = _min("BFGS")
    for i in range(3):
        np.testing.assert_allclose(dg.jacrev(solve, argnums=i)(*RIDGE),
                                   jax.jacrev(closed, argnums=i)(*RIDGE), rtol=1e-6, atol=1e-9)


def test_nonlinear_least_squares_against_finite_differences():
    def fit(t, y):
        return dgo.least_squares(lambda p, t, y: p[0] * np.exp(p[1] * t) - y,
                                 np.array([1.0, -1.0]), args=(t, y), xtol=1e-15, ftol=1e-15,
                                 gtol=1e-15).x
    dg.check_grads(fit, (T, Y), order=1, rtol=1e-5, atol=1e-7)


def test_second_order_against_finite_differences():
    dg.check_grads(lambda lam: _min("BFGS")(lam, A, B), (0.8,), order=2, rtol=1e-5, atol=1e-7)


def test_against_unrolled_gradient_descent():
    """The implicit derivative equals the limit of differentiating the iterations."""
    s = 1.0 / (np.linalg.norm(A, 2) ** 2 + 1.0)

    def unrolled(lam):
        x = np.zeros(4)
        for _ in range(3000):
            x = x - s * (A.T @ (A @ x - B) + lam * x)
        return x
    np.testing.assert_allclose(dg.jacrev(_min("BFGS"))(0.8, A, B), dg.jacfwd(unrolled)(0.8),
                               rtol=1e-6, atol=1e-9)


def test_jit_and_vmap():
    loss = dg.grad(lambda lam: np.sum(_min("BFGS")(lam, A, B) ** 2))
    want = dg.grad(lambda lam: np.sum(ridge_closed(lam, A, B) ** 2))
    jitted = dg.jit(loss)
    for lam in (0.8, 2.0):  # the second call replays the graph: scipy solves again
        np.testing.assert_allclose(jitted(lam), want(lam), rtol=1e-6)
    lams = np.array([0.1, 1.0, 3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = dg.vmap(lambda lam: _min("BFGS")(lam, A, B))(lams)
        grads = dg.vmap(loss)(lams)
    np.testing.assert_allclose(got, np.stack([ridge_closed(v, A, B) for v in lams]), rtol=1e-7)
    np.testing.assert_allclose(grads, [want(v) for v in lams], rtol=1e-6)


def test_start_point_gets_zero_derivative():
    g = dg.grad(lambda x0: np.sum(dgo.minimize(ridge_loss, x0, args=RIDGE).x))(np.ones(4))
    np.testing.assert_array_equal(g, np.zeros(4))
    g = dg.grad(lambda x0: dgo.root_scalar(lambda x: x ** 3 - 2.0, x0=x0,
                                           method="newton").root)(1.0)
    assert g == 0.0
    for solve in (lambda x0: dgo.root(lambda x: x ** 3 - 2.0, x0).x,
                  lambda x0: dgo.fixed_point(lambda x: np.cos(x), x0),
                  lambda x0: dgo.least_squares(lambda x: x ** 2 - 2.0, x0).x):
        np.testing.assert_array_equal(dg.grad(lambda x0: np.sum(solve(x0)))(np.ones(1)),
                                      np.zeros(1))


def test_bilevel_ridge_penalty_by_gradient_descent():
    """Tune λ = exp(z) by gradient descent on a validation loss through minimize."""
    a_tr, a_va = A[:8], A[8:]
    w_true = np.array([1.0, -2.0, 0.5, 0.0])
    b_tr = a_tr @ w_true + 0.8 * RNG.standard_normal(8)
    b_va = a_va @ w_true

    def val_loss(z):
        x = dgo.minimize(ridge_loss, np.zeros(4), args=(np.exp(z), a_tr, b_tr), tol=1e-12).x
        return np.sum((a_va @ x - b_va) ** 2)

    def closed_val(z):
        return np.sum((a_va @ ridge_closed(np.exp(z), a_tr, b_tr) - b_va) ** 2)
    z, first = 0.0, val_loss(0.0)
    for _ in range(60):
        z = z - 0.05 * dg.grad(val_loss)(z)
    best = so.minimize_scalar(closed_val, bounds=(-8, 8), method="bounded",
                              options={"xatol": 1e-10}).x
    assert val_loss(z) < first
    assert closed_val(z) == pytest.approx(closed_val(best), rel=1e-3)


def test_refusals_name_the_reason():
    with pytest.raises(NotImplementedError, match="on a bound"):
        dg.grad(lambda lam: np.sum(dgo.minimize(ridge_loss, np.ones(4), args=(lam, A, B),
                                                bounds=[(0.5, 2.0)] * 4).x))(0.8)
    con = {"type": "eq", "fun": lambda x: x[0] - 0.1}
    with pytest.raises(NotImplementedError, match="constraints"):
        dg.grad(lambda lam: np.sum(dgo.minimize(ridge_loss, np.ones(4), args=(lam, A, B),
                                                constraints=[con]).x))(0.8)
    with pytest.raises(NotImplementedError, match="loss='soft_l1'"):
        dg.grad(lambda y: np.sum(dgo.least_squares(lambda p, y: p - y, np.zeros(2),
                                                   args=(y,), loss="soft_l1").x))(np.ones(2))


@pytest.mark.parametrize("solve", [
    lambda c: dgo.minimize(lambda x: np.sum((x - c) ** 2), np.zeros(1)).x,
    lambda c: dgo.root(lambda x: x - c, np.zeros(1)).x,
    lambda c: dgo.root_scalar(lambda x: x - c, bracket=(-5.0, 5.0)).root,
    lambda c: dgo.fixed_point(lambda x: 0.5 * x + c, np.zeros(1)),
    lambda c: dgo.least_squares(lambda x: x - c, np.zeros(1)).x,
])
def test_a_function_closing_over_a_traced_value_is_refused(solve):
    with pytest.raises(TypeError, match="closes over a traced value"):
        dg.grad(lambda c: np.sum(solve(c)))(2.0)
