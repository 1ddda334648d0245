"""dualgrad.scipy.integrate (dualgrad/scipy/integrate.py).

Values against scipy's own functions (the same integrator runs on the same plain values, so
they agree to rounding); ODE gradients against JAX's ``jax.experimental.ode.odeint`` on a
Lotka-Volterra model (4 parameters, 100 output times) and against finite differences for
every method; forward mode against reverse mode; ``dg.jit`` against eager; ``dg.vmap``
against a loop; second derivatives against finite differences of the gradient; a
parameter fit by gradient descent.  ``quad`` against closed forms and finite differences;
the sampled-data rules against scipy and ``jax.scipy.integrate.trapezoid``.
"""

import numpy as np
import pytest

si = pytest.importorskip("scipy.integrate")

import dualgrad as dg  # noqa: E402
from dualgrad.scipy import integrate as I  # noqa: E402

TOL = dict(rtol=1e-10, atol=1e-10)  # tight solves: adjoint gradients accurate to ~1e-8
TRUE = np.array([1.5, 1.0, 3.0, 1.0])  # Lotka-Volterra a, b, c, d
Y0 = np.array([1.0, 1.0])


def lv(y, t, a, b, c, d):
    """Lotka-Volterra as an autograd user writes it (np.array of traced entries)."""
    return np.array([a * y[0] - b * y[0] * y[1], -c * y[1] + d * y[0] * y[1]])


def lv_t(t, y, a, b, c, d):  # solve_ivp's argument order
    return lv(y, t, a, b, c, d)


def relerr(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def fd_jacobian(f, x, h=1e-5):
    """Central differences of a vector function of one vector."""
    x = np.asarray(x, float)
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
    return np.stack(cols, axis=-1)


# -- the ODE solvers: one row per integrator ---------------------------------------------

def odeint_solver(y0, t, p, **kw):
    return I.odeint(lv, y0, t, args=tuple(p[i] for i in range(4)), **TOL, **kw)


def ivp_solver(method):
    def solve(y0, t, p):
        # t[0] is the start; the outputs are at t (t_eval), as odeint's
        r = I.solve_ivp(lv_t, (t[0], t[-1]), y0, method=method, t_eval=t,
                        args=tuple(p[i] for i in range(4)), **TOL)
        return np.transpose(r.y)
    return solve


def scipy_odeint(y0, t, p):
    return si.odeint(lv, y0, t, args=tuple(p), **TOL)


def scipy_ivp(method):
    def solve(y0, t, p):
        return si.solve_ivp(lv_t, (t[0], t[-1]), y0, method=method, t_eval=t, args=tuple(p),
                            **TOL).y.T
    return solve


SOLVERS = {"odeint": (odeint_solver, scipy_odeint)}
SOLVERS.update({m: (ivp_solver(m), scipy_ivp(m)) for m in ("RK45", "DOP853", "LSODA", "BDF")})
T_SHORT = np.linspace(0.0, 2.0, 8)


@pytest.mark.parametrize("name", SOLVERS)
def test_values_are_scipys(name):
    ours, theirs = SOLVERS[name]
    assert np.allclose(ours(Y0, T_SHORT, TRUE), theirs(Y0, T_SHORT, TRUE), rtol=1e-12,
                       atol=1e-14)


@pytest.mark.parametrize("name", SOLVERS)
def test_gradients_match_finite_differences(name):
    """Reverse mode (adjoint) in y0, the parameters and the times, against central
    differences of scipy's own solve."""
    ours, theirs = SOLVERS[name]
    w = np.cos(np.arange(16.0)).reshape(8, 2)  # a generic cotangent

    def loss(y0, t, p):
        return np.sum(w * ours(y0, t, p))

    g_y0, g_t, g_p = dg.grad(loss, argnums=(0, 1, 2))(Y0, T_SHORT, TRUE)
    for g, k in ((g_y0, 0), (g_t, 1), (g_p, 2)):
        args = [Y0, T_SHORT, TRUE]

        def f(x, k=k, args=args):
            a = list(args)
            a[k] = x
            return np.sum(w * theirs(*a))
        assert relerr(g, fd_jacobian(f, args[k])) < 1e-5, (name, k)


@pytest.mark.parametrize("name", SOLVERS)
def test_forward_mode_matches_reverse(name):
    """jacfwd (forward sensitivities, k directions in one solve) against jacrev (the
    adjoint, k cotangent rows in one solve), for y0, the parameters and the times."""
    ours, _ = SOLVERS[name]
    t = T_SHORT[:5]
    for k, x in enumerate((Y0, t, TRUE)):
        def f(x, k=k):
            a = [Y0, t, TRUE]
            a[k] = x
            return ours(*a)
        fwd, rev = dg.jacfwd(f)(x), dg.jacrev(f)(x)
        assert fwd.shape == rev.shape == (5, 2) + x.shape
        assert relerr(fwd, rev) < 1e-6, (name, k)


def forced(y, t, k):
    """Non-autonomous: the times' derivatives need f(y, t) at each output time."""
    return -k * y + np.sin(3.0 * t) * y[::-1]


@pytest.mark.parametrize("method", ["odeint", "RK45"])
@pytest.mark.parametrize("direction", ["forwards", "backwards"])
def test_non_autonomous_and_backwards_in_time(method, direction):
    t = np.linspace(0.0, 2.0, 6) if direction == "forwards" else np.linspace(2.0, 0.0, 6)
    w = np.cos(np.arange(12.0)).reshape(6, 2)
    y0 = np.array([1.0, 0.5])

    def solve(module, t, k):
        if method == "odeint":
            return module.odeint(forced, y0, t, args=(k,), **TOL)
        r = module.solve_ivp(lambda t, y, k: forced(y, t, k), (t[0], t[-1]), y0,
                             method=method, t_eval=t, args=(k,), **TOL)
        return np.transpose(r.y)

    g_t, g_k = dg.grad(lambda t, k: np.sum(w * solve(I, t, k)), argnums=(0, 1))(t, 0.7)
    fd_t = fd_jacobian(lambda t: np.sum(w * solve(si, t, 0.7)), t)
    fd_k = fd_jacobian(lambda k: np.sum(w * solve(si, t, k[0])), [0.7])[0]
    # (t[0]'s finite difference is noisy: the integrator's first step follows t0)
    assert relerr(g_t[1:], fd_t[1:]) < 1e-6 and abs(g_t[0] - fd_t[0]) < 1e-4
    assert relerr(g_k, fd_k) < 1e-6
    jf = dg.jacfwd(lambda t: solve(I, t, 0.7))(t)
    assert relerr(jf, dg.jacrev(lambda t: solve(I, t, 0.7))(t)) < 1e-7


def test_odeint_gradient_matches_jax():
    """The issue's check: Lotka-Volterra, 4 parameters, 100 output times; the gradient of
    a loss in the parameters, y0 and t agrees with jax.experimental.ode.odeint to 1e-6."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp  # noqa: E402
    from jax.experimental.ode import odeint as jodeint

    t = np.linspace(0.0, 10.0, 100)
    w = np.sin(np.arange(200.0)).reshape(100, 2)

    def jlv(y, t, a, b, c, d):
        return jnp.stack([a * y[0] - b * y[0] * y[1], -c * y[1] + d * y[0] * y[1]])

    def jloss(p, y0, t):
        return jnp.sum(w * jodeint(jlv, y0, t, *p, **TOL) ** 2)

    def loss(p, y0, t):
        return np.sum(w * I.odeint(lv, y0, t, args=(p[0], p[1], p[2], p[3]), **TOL) ** 2)

    want = jax.jit(jax.grad(jloss, argnums=(0, 1, 2)))(jnp.array(TRUE), jnp.array(Y0),
                                                       jnp.array(t))
    value, got = dg.value_and_grad(loss, argnums=(0, 1, 2))(TRUE, Y0, t)
    assert abs(value - float(jloss(jnp.array(TRUE), jnp.array(Y0), jnp.array(t)))) \
        < 1e-7 * abs(value)  # two integrators (LSODA, dopri5), each to 1e-10 per step
    for g, j in zip(got, want):
        assert relerr(g, np.asarray(j)) < 1e-6


def test_jit_of_gradient_is_eager():
    """dg.jit(grad): the solves are opaque nodes of the graph; the replay at new
    parameters gives the eager gradient."""
    def loss(p):
        return np.sum(odeint_solver(Y0, T_SHORT, p) ** 2)
    eager = dg.grad(loss)
    jitted = dg.jit(eager)
    for p in (TRUE, TRUE + 0.1, TRUE - 0.05):
        assert np.allclose(jitted(p), eager(p), rtol=1e-12, atol=0)
    assert np.allclose(dg.grad(dg.jit(loss))(TRUE + 0.2), eager(TRUE + 0.2), rtol=1e-12)


def test_vmap_solves_the_examples_as_one_system():
    """dg.vmap stacks the examples into one system (one solve: the integrator's error
    control spans them all, so it agrees with a loop to the solve's tolerance); batched
    output times run one solve per example."""
    ps = np.stack([TRUE + 0.05 * i for i in range(4)])

    def loss(p):
        return np.sum(odeint_solver(Y0, T_SHORT, p) ** 2)
    assert relerr(dg.vmap(loss)(ps), [loss(p) for p in ps]) < 1e-8
    assert relerr(dg.vmap(dg.grad(loss))(ps), [dg.grad(loss)(p) for p in ps]) < 1e-7
    y0s = np.stack([Y0, Y0 + 0.1])

    def solve(y0):
        return I.solve_ivp(lv_t, (0.0, 2.0), y0, t_eval=T_SHORT, args=tuple(TRUE), **TOL).y
    assert relerr(dg.vmap(solve)(y0s), [solve(y) for y in y0s]) < 1e-8
    assert relerr(dg.vmap(dg.jacfwd(solve))(y0s), [dg.jacfwd(solve)(y) for y in y0s]) < 1e-6
    ts = np.stack([T_SHORT, 1.1 * T_SHORT])
    got = dg.vmap(lambda t: odeint_solver(Y0, t, TRUE))(ts)
    assert np.allclose(got, [odeint_solver(Y0, t, TRUE) for t in ts], rtol=1e-12, atol=0)


def test_vjp_reused_with_a_cotangent_changed_in_place():
    """The adjoint is solved once per sweep for all arguments (a cache); a second pull with
    the same array, changed in place, must solve again."""
    def f(k):
        return I.odeint(lambda y, t, k: -k * y, 1.0, T_SHORT[:3], args=(k,), **TOL)
    _, pull = dg.vjp(f, 2.0)
    ct = np.zeros((3, 1))
    ct[2, 0] = 1.0
    first = pull(ct)[0]
    ct[2, 0], ct[1, 0] = 0.0, 1.0
    second = pull(ct)[0]
    t1, t2 = T_SHORT[2], T_SHORT[1]
    assert abs(first + t1 * np.exp(-2.0 * t1)) < 1e-8
    assert abs(second + t2 * np.exp(-2.0 * t2)) < 1e-8


def test_second_derivatives():
    """The rules solve augmented systems with the same primitive, so they differentiate
    again: the Hessian (forward over reverse) and reverse over reverse agree with finite
    differences of the gradient."""
    t = T_SHORT[:4]

    def loss(p):
        return np.sum(odeint_solver(Y0, t, p) ** 2)
    h_fwd = dg.hessian(loss)(TRUE)
    h_rev = dg.jacrev(dg.grad(loss))(TRUE)
    fd = fd_jacobian(dg.grad(loss), TRUE, h=1e-4)
    assert relerr(h_fwd, fd) < 1e-5 and relerr(h_rev, fd) < 1e-5
    assert relerr(h_fwd, h_fwd.T) < 1e-7


def test_fit_lotka_volterra_by_gradient_descent():
    """Data from the true parameters; gradient descent on the mean squared error from a
    perturbed start lowers the loss and moves towards the truth; Gauss-Newton steps with the
    forward-mode Jacobian of the residuals then recover the truth."""
    t = np.linspace(0.0, 3.0, 16)
    kw = dict(rtol=1e-8, atol=1e-8)
    data = si.odeint(lv, Y0, t, args=tuple(TRUE), **kw)

    def residuals(p):
        return np.reshape(I.odeint(lv, Y0, t, args=(p[0], p[1], p[2], p[3]), **kw) - data,
                          (-1,))

    def loss(p):
        return np.mean(residuals(p) ** 2)

    p = TRUE + np.array([0.15, -0.1, -0.2, 0.1])
    losses, dists = [], []
    for _ in range(6):
        value, g = dg.value_and_grad(loss)(p)
        losses.append(value)
        dists.append(np.linalg.norm(p - TRUE))
        p = p - 0.01 * g
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < losses[0] / 50 and dists[-1] < 0.8 * dists[0]
    for _ in range(3):
        p = p - np.linalg.lstsq(dg.jacfwd(residuals)(p), residuals(p), rcond=None)[0]
    assert np.allclose(p, TRUE, atol=1e-6)


# -- the rest of the signatures ----------------------------------------------------------

def test_args_as_a_pytree_with_constants():
    """args may hold pytrees (autograd's ode_net passes a list of weight tuples); integer
    and non-numeric leaves are constants."""
    def f(y, t, params, scale, label):
        (w, b), = params
        assert label == "net"
        return np.tanh(w @ y + b) * scale
    w0 = np.array([[0.3, -0.5], [0.8, 0.1]])
    b0 = np.array([0.1, -0.2])

    def loss(w, b):
        return np.sum(I.odeint(f, Y0, T_SHORT, args=([(w, b)], 2, "net"), **TOL) ** 2)
    gw, gb = dg.grad(loss, argnums=(0, 1))(w0, b0)
    ref = si.odeint(f, Y0, T_SHORT, args=([(w0, b0)], 2, "net"), **TOL)
    assert np.allclose(I.odeint(f, Y0, T_SHORT, args=([(w0, b0)], 2, "net"), **TOL), ref,
                       rtol=1e-12)
    assert relerr(gw, fd_jacobian(lambda v: loss(v.reshape(2, 2), b0), w0.ravel())
                  .reshape(2, 2)) < 1e-5
    assert relerr(gb, fd_jacobian(lambda v: loss(w0, v), b0)) < 1e-5


def test_odeint_options():
    """tfirst, full_output, a scalar y0 (output (len(t), 1), as scipy's)."""
    got = I.odeint(lv_t, Y0, T_SHORT, args=tuple(TRUE), tfirst=True, **TOL)
    assert np.allclose(got, scipy_odeint(Y0, T_SHORT, TRUE), rtol=1e-12)
    ys, info = I.odeint(lv, Y0, T_SHORT, args=tuple(TRUE), full_output=1, **TOL)
    assert info["message"] == "Integration successful." and ys.shape == (8, 2)
    decay = I.odeint(lambda y, t, k: -k * y, 2.0, T_SHORT, args=(0.5,))
    assert decay.shape == si.odeint(lambda y, t, k: -k * y, 2.0, T_SHORT, args=(0.5,)).shape
    g = dg.grad(lambda k: I.odeint(lambda y, t, k: -k * y, 2.0, T_SHORT, args=(k,),
                                   **TOL)[-1, 0])(0.5)
    assert abs(g - (-2.0 * 2.0 * np.exp(-1.0))) < 1e-8

    def jac(y, t, a, b, c, d):  # the primal solve's Jacobian (Dfun, jac), with the args
        return np.array([[a - b * y[1], -b * y[0]], [d * y[1], -c + d * y[0]]])

    def loss(p, how):
        if how == "odeint":
            ys = I.odeint(lv, Y0, T_SHORT, args=tuple(p), Dfun=jac, **TOL)
        else:
            ys = I.solve_ivp(lv_t, (0.0, 2.0), Y0, method="BDF", t_eval=T_SHORT,
                             args=tuple(p), jac=lambda t, y, *p: jac(y, t, *p), **TOL).y.T
        return np.sum(ys ** 2)
    want = dg.grad(lambda p: np.sum(odeint_solver(Y0, T_SHORT, p) ** 2))(TRUE)
    for how in ("odeint", "BDF"):
        assert relerr(dg.grad(lambda p: loss([p[i] for i in range(4)], how))(TRUE), want) < 1e-6


def test_inputs_as_users_write_them():
    """y0 as a list of traced numbers, a directional derivative by dg.jvp, tcrit (kept
    for the forward solves, dropped for the backward ones, where LSODA refuses it)."""
    t = T_SHORT[:5]

    def f(u, v):
        return np.sum(I.odeint(lv, [u, v], t, args=tuple(TRUE), **TOL))

    def g(y0):
        return np.sum(I.odeint(lv, y0, t, args=tuple(TRUE), **TOL))
    assert np.allclose(dg.grad(f, argnums=(0, 1))(1.0, 1.0), dg.grad(g)(Y0), rtol=1e-12)

    def h(a, **kw):
        return np.sum(I.odeint(lv, Y0, t, args=(a, 1.0, 3.0, 1.0), **TOL, **kw))
    want = dg.grad(h)(1.5)
    assert abs(dg.jvp(h, (1.5,), (1.0,))[1] - want) < 1e-7 * abs(want)
    tc = dict(tcrit=[t[-1]])
    assert abs(dg.grad(lambda a: h(a, **tc))(1.5) - want) < 1e-7 * abs(want)
    assert abs(dg.jvp(lambda a: h(a, **tc), (1.5,), (1.0,))[1] - want) < 1e-7 * abs(want)


def test_solve_ivp_result_and_default_times():
    """The OdeResult's fields; without t_eval the outputs are scipy's own steps."""
    r = I.solve_ivp(lv_t, (0.0, 2.0), Y0, args=tuple(TRUE), **TOL)
    ref = si.solve_ivp(lv_t, (0.0, 2.0), Y0, args=tuple(TRUE), **TOL)
    assert r.success and r.status == 0 and r.y.shape == ref.y.shape
    assert np.allclose(r.t, ref.t) and np.allclose(r.y, ref.y, rtol=1e-12)
    # the end time follows t_span: d y(tf) / d tf = f(y(tf))
    g = dg.grad(lambda tf: I.solve_ivp(lv_t, (0.0, tf), Y0, args=tuple(TRUE), **TOL).y[0, -1])
    assert abs(g(2.0) - lv(ref.y[:, -1], 2.0, *TRUE)[0]) < 1e-6
    # and the parameters: d/dk of exp(-k) through scipy's own steps
    g = dg.grad(lambda k: I.solve_ivp(lambda t, y, k: -k * y, (0.0, 1.0), [1.0], args=(k,),
                                      **TOL).y[0, -1])
    assert abs(g(2.0) + np.exp(-2.0)) < 1e-8


BAD = [
    (lambda: I.odeint(lv, np.ones((2, 2)), T_SHORT, args=tuple(TRUE)), ValueError, "y0"),
    (lambda: I.odeint(lambda y, t: np.ones(3), Y0, T_SHORT), ValueError, "func"),
    (lambda: I.odeint(lv, Y0, 1.0, args=tuple(TRUE)), ValueError, "t must"),
    (lambda: I.odeint(3.0, Y0, T_SHORT), TypeError, "callable"),
    (lambda: I.odeint(lambda y, t: -y, Y0 + 0j, T_SHORT), TypeError, "complex"),
    (lambda: I.solve_ivp(lv_t, (0, 1), Y0, method="Euler"), ValueError, "method"),
    (lambda: I.solve_ivp(lv_t, (0, 1), Y0, events=lambda t, y: y[0]), NotImplementedError,
     "events"),
    (lambda: I.quad(lambda x: x, 0, 1, weight="cos", wvar=1.0), NotImplementedError, "weight"),
    (lambda: I.quad(lambda x: np.ones(2) * x, 0, 1), ValueError, "number"),
    (lambda: dg.grad(lambda k: I.odeint(lambda y, t: -k * y, 1.0, T_SHORT)[-1, 0])(2.0),
     TypeError, "closes over"),
    (lambda: dg.grad(lambda k: I.solve_ivp(lambda t, y: -k * y, (0, 1), [1.0]).y[0, -1])(2.0),
     TypeError, "pass that value through args"),
    (lambda: dg.grad(lambda k: I.quad(lambda x: np.exp(-k * x), 0, 1)[0])(2.0), TypeError,
     "quad: func returned a traced value"),
    (lambda: I.cumulative_trapezoid(np.ones(3), initial=1.0), ValueError, "initial"),
    (lambda: I.trapezoid(np.ones(3), x=np.ones(4)), ValueError, "length of x"),
]


@pytest.mark.parametrize("call,exc,words", BAD, ids=[b[2].split(":")[0] for b in BAD])
def test_bad_arguments(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


# -- quad -----------------------------------------------------------------------------

def test_quad_closed_form():
    """F(k, a, b) = integral of exp(-k x) from a to b = (exp(-k a) - exp(-k b)) / k."""
    def F(k, a, b):
        return (np.exp(-k * a) - np.exp(-k * b)) / k

    def ours(k, a, b):
        return I.quad(lambda x, k: np.exp(-k * x), a, b, args=(k,))[0]
    args = (0.7, 0.2, 1.5)
    value, err = I.quad(lambda x, k: np.exp(-k * x), 0.2, 1.5, args=(0.7,))
    assert (value, err) == si.quad(lambda x, k: np.exp(-k * x), 0.2, 1.5, args=(0.7,))
    got = dg.grad(ours, argnums=(0, 1, 2))(*args)
    want = dg.grad(F, argnums=(0, 1, 2))(*args)
    assert np.allclose(got, want, rtol=1e-10)
    assert np.allclose([dg.jvp(ours, args, tuple(np.eye(3)[i]))[1] for i in range(3)], want,
                       rtol=1e-10)
    h = dg.hessian(lambda v: ours(v[0], v[1], v[2]))(np.array(args))
    assert np.allclose(h, dg.hessian(lambda v: F(v[0], v[1], v[2]))(np.array(args)),
                       rtol=1e-8)


def test_quad_array_parameter_transforms():
    """An array parameter: reverse (one quad per entry), forward, jit and vmap."""
    def v(p):
        return I.quad(lambda x, q: np.exp(-q[0] * x) * np.sin(q[1] * x), p[0], p[1],
                      args=(p[2:],))[0]
    p = np.array([0.1, 1.3, 0.7, 2.0])
    g = dg.grad(v)(p)
    assert relerr(g, fd_jacobian(v, p)) < 1e-7
    assert relerr(dg.jacfwd(v)(p), g) < 1e-10
    assert np.allclose(dg.jit(dg.grad(v))(p + 0.1), dg.grad(v)(p + 0.1), rtol=1e-12)
    assert np.allclose(dg.vmap(v)(np.stack([p, p + 0.1])), [v(p), v(p + 0.1)], rtol=1e-12)


# -- sampled data -------------------------------------------------------------------------

X7 = np.linspace(0.0, 1.5, 7) + 0.03 * np.sin(np.arange(7.0))  # uneven, well spaced
SAMPLED = [(name, n, how)
           for name in ("trapezoid", "simpson", "cumulative_trapezoid")
           for n in (2, 3, 4, 5, 6, 7)
           for how in ("dx=1", "dx=0.3", "x", "x 2-D, axis 0")]


def _sampled_case(n, how):
    """(y, keyword arguments) for one row of SAMPLED."""
    rng = np.random.default_rng(n)
    if how == "x 2-D, axis 0":
        y = rng.normal(size=(n, 3))
        return y, {"x": np.broadcast_to(X7[:n, None], y.shape).copy(), "axis": 0}
    y = rng.normal(size=(3, n))
    return y, {"dx=1": {}, "dx=0.3": {"dx": 0.3}, "x": {"x": X7[:n]}}[how]


@pytest.mark.parametrize("name,n,how", SAMPLED)
def test_sampled_values_and_derivatives(name, n, how):
    y, kw = _sampled_case(n, how)
    assert np.allclose(getattr(I, name)(y, **kw), getattr(si, name)(y, **kw), rtol=1e-13,
                       atol=1e-14)
    dg.check_grads(lambda y: getattr(I, name)(y, **kw), (y,), order=2)
    if "x" in kw:  # in the sample points too
        rest = {k: v for k, v in kw.items() if k != "x"}
        dg.check_grads(lambda x: getattr(I, name)(y, x=x, **rest), (kw["x"],), order=1,
                       rtol=1e-5)


def test_cumulative_trapezoid_initial():
    y = np.random.default_rng(1).normal(size=(2, 5))
    assert np.allclose(I.cumulative_trapezoid(y, x=X7[:5], initial=0),
                       si.cumulative_trapezoid(y, x=X7[:5], initial=0))


def test_trapezoid_matches_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp  # noqa: E402
    import jax.scipy.integrate as jsi  # noqa: E402
    y = np.random.default_rng(2).normal(size=(3, 6))

    def ours(y, x):
        return np.sum(np.sin(I.trapezoid(y * y, x=x)))

    def theirs(y, x):
        return jnp.sum(jnp.sin(jsi.trapezoid(y * y, x=x)))
    for a, b in zip(dg.grad(ours, argnums=(0, 1))(y, X7[:6]),
                    jax.grad(theirs, argnums=(0, 1))(y, X7[:6])):
        assert np.allclose(a, np.asarray(b), rtol=1e-12, atol=1e-14)
