"""Complex numbers, with JAX's conventions, or a TypeError: never a wrong number.

Conventions (checked here against finite differences on real and imaginary parts and
closed forms; they agree with jax.grad / jax.jvp / jax.vjp under x64):

- a real input's derivative is real, of the input's dtype, whatever complex values it
  passes through;
- a tangent t of z = x + iy is complex; the JVP is J t = df/dx Re(t) + df/dy Im(t);
- the VJP is the plain transpose under the pairing Re(sum(u * t)) (no conjugate):
  vjp(u)_k = Re(sum(u * df/dx_k)) - i Re(sum(u * df/dy_k)); for a real f,
  grad f = df/dx - i df/dy (the conjugate of PyTorch's);
- grad of a complex output needs holomorphic=True, and then grad(f)(z) = f'(z).
"""

import warnings

import numpy as np
import pytest

import dualgrad as dg
from dualgrad import rules as P

RNG = np.random.default_rng(7)
X = np.array([0.7, -1.3, 2.1])
Z = np.array([1 + 2j, -0.5 + 0.3j, 0.8 - 1.1j])
T = np.array([0.3 - 0.2j, 1.1 + 0.4j, -0.6 + 0.9j])
A = np.array([[1.0, 2.0 - 1j, 0.5j], [0.3, -1.0 + 0.2j, 2.0]])
B = np.array([[1.0, 0.5], [-0.3, 2.0], [0.7, 0.1]])
FD = dict(rtol=1e-7, atol=1e-9)     # finite differences (Richardson, error ~1e-11)
MODES = dict(rtol=1e-10, atol=1e-12)  # reverse vs forward vs closed form: rounding only


def fd_partials(f, z):
    """(df/dx, df/dy) of f(z) at complex z, complex-valued, shaped out.shape + z.shape."""
    out = np.asarray(f(z))
    def split(x, y):
        w = f(x + 1j * y)
        return np.stack([np.real(w), np.imag(w)])
    jx, jy = dg.numerical_jacobian(split, (np.real(z), np.imag(z)))
    shape = (2,) + out.shape + np.shape(z)
    jx, jy = jx.reshape(shape), jy.reshape(shape)
    return jx[0] + 1j * jx[1], jy[0] + 1j * jy[1]


def fd_grad(f, z):
    """JAX's gradient of a real-valued f of complex z: df/dx - i df/dy."""
    dx, dy = fd_partials(f, z)
    return np.real(dx) - 1j * np.real(dy)


def fd_jvp(f, z, t):
    dx, dy = fd_partials(f, z)
    nd = np.ndim(z)
    axes = (tuple(range(-nd, 0)), tuple(range(nd)))
    return np.tensordot(dx, np.real(t), axes) + np.tensordot(dy, np.imag(t), axes)


def fd_vjp(f, z, u):
    dx, dy = fd_partials(f, z)
    nu = np.ndim(u)
    axes = (tuple(range(nu)), tuple(range(nu)))
    return np.real(np.tensordot(u, dx, axes)) - 1j * np.real(np.tensordot(u, dy, axes))


# ---------------------------------------------------------------------------
# the examples
# ---------------------------------------------------------------------------

def test_abs_of_complex_multiple_has_a_real_gradient():
    g = dg.grad(lambda x: np.sum(np.abs(x * (1 + 1j))))(np.array([1.0, 2.0]))
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, [np.sqrt(2), np.sqrt(2)], rtol=1e-14)


def test_traced_norm_var_std_of_complex_evaluate_as_numpy():
    x, y = np.array([1.0, 2.0, -0.5]), np.array([0.5, -1.0, 1.5])
    for fn in (np.linalg.norm, np.var, np.std):
        f = lambda x, y, fn=fn: fn(x + 1j * y)  # noqa: E731
        want = fn(x + 1j * y)
        for value in (dg.vjp(f, x, y)[0], dg.jvp(f, (x, y), (x, y))[0]):
            assert np.result_type(value) == np.float64
            np.testing.assert_allclose(value, want, rtol=1e-14)
    x2, y2 = np.array([1.0, 2.0]), np.array([0.5, -1.5])  # it was sqrt(sum(z*z)) = 2.011-1.243j
    value = dg.vjp(lambda x, y: np.linalg.norm(x + 1j * y), x2, y2)[0]
    np.testing.assert_allclose(value, 2.7386127875258306, rtol=1e-14)
    gx, gy = dg.grad(lambda x, y: np.linalg.norm(x + 1j * y), argnums=(0, 1))(x, y)
    n = np.linalg.norm(x + 1j * y)
    np.testing.assert_allclose(gx, x / n, rtol=1e-14)
    np.testing.assert_allclose(gy, y / n, rtol=1e-14)


def test_grad_of_a_complex_python_scalar_output_is_a_type_error():
    with pytest.raises(TypeError, match="holomorphic=True"):
        dg.grad(lambda x: x * (1 + 0.2j))(1.0)
    with pytest.raises(TypeError, match="real-valued outputs"):
        dg.value_and_grad(lambda x: np.sum(x * 1j))(np.ones(2))
    g = dg.grad(lambda x: np.abs(x * (1 + 0.2j)))(1.0)  # a real output is fine
    np.testing.assert_allclose(g, abs(1 + 0.2j), rtol=1e-15)


# ---------------------------------------------------------------------------
# real -> complex -> real: real gradients, reverse = forward = finite differences
# ---------------------------------------------------------------------------

REAL_FNS = {
    "abs_mul": lambda x: np.sum(np.abs(x * (1 + 1j))),
    "norm": lambda x: np.linalg.norm(x + 1j * x[::-1] ** 2),
    "norm_axis": lambda x: np.sum(np.linalg.norm(np.outer(x, x) * (1 - 1j), axis=1)),
    "var": lambda x: np.var(x + 1j * np.sin(x)),
    "std": lambda x: np.std(np.exp(1j * x) * x),
    "std_ddof": lambda x: np.std(np.exp(1j * x) * x, ddof=1),
    "real_exp": lambda x: np.sum(np.real(np.exp(1j * x) * x)),
    "imag_log": lambda x: np.sum(np.imag(np.log(x + 2j))),
    "angle": lambda x: np.sum(np.angle(x + 1j * x ** 2)),
    "angle_deg": lambda x: np.sum(np.angle(x + 1j * x ** 2, deg=True)),
    "vdot": lambda x: np.real(np.vdot(x + 1j * x ** 2, A.T @ (A @ (x - 0.5j)))),
    "matmul": lambda x: np.sum(np.abs(A @ x) ** 2),
    "conj": lambda x: np.sum(np.real(np.conj(x * (2 - 1j)) * (1 + 3j) * x)),
    "sincos": lambda x: np.sum(np.abs(np.sin(x * (1 + 0.5j)) + np.cos(x * 1j) * np.tanh(x - 1j))),
    "sqrt_div": lambda x: np.sum(np.abs(np.sqrt(x + 1j) / (x - 2j))),
    "mean_sum": lambda x: np.abs(np.mean(x * (1 + 2j)) + np.sum(x ** 2 * 1j)),
    "outer": lambda x: np.sum(np.abs(np.outer(x * 1j + 1, B @ x[:2])) ** 2),
    "attributes": lambda x: np.sum((x * (1 + 2j)).real * (x * (3 - 1j)).imag
                                   + (x * 1j).conj().imag + (x * 1j).conjugate().real),
    "astype": lambda x: np.sum(x.astype(np.complex128) * (2 + 1j)).imag,
    "sign": lambda x: np.sum(np.real(np.sign(x * (1 + 2j) + 0.5j))),
    "det": lambda x: np.abs(np.linalg.det(np.outer(x, x) * 1j + np.diag(x + 2.0))),
    "inv_solve": lambda x: np.sum(np.abs(np.linalg.solve(np.eye(3) * (3 + 1j) + np.outer(x, x),
                                                         x * 1j) @ np.linalg.inv(
        np.eye(3) * 2j + np.diag(x)))),
    "einsum": lambda x: np.sum(np.abs(np.einsum("ij,j->i", A, x * (1 + 1j)))),
    "power": lambda x: np.sum(np.abs((x + 1j) ** 3 + (x - 1j) ** 0.5)),
    "getitem": lambda x: np.abs(x[0] * 1j + x[2]),
    "where": lambda x: np.sum(np.abs(np.where(x > 0, x * 1j, x + 2j))),
    "where_const": lambda x: np.sum(np.abs(np.where(x > 0, 1j, x))),
    "concatenate": lambda x: np.sum(np.abs(np.concatenate([x, Z]) * np.arange(6))),
    "power_y": lambda x: np.sum(np.abs(Z ** x)),
}


@pytest.mark.parametrize("name", sorted(REAL_FNS))
def test_real_to_complex_to_real(name):
    f = REAL_FNS[name]
    num = dg.numerical_jacobian(f, (X,))[0].reshape(X.shape)
    rev = dg.grad(f)(X)
    fwd = dg.jacfwd(f)(X)
    assert rev.dtype == np.float64 and np.result_type(fwd) == np.float64
    np.testing.assert_allclose(rev, num, **FD)
    np.testing.assert_allclose(fwd, rev, **MODES)
    v = RNG.standard_normal(3)
    _, jv = dg.jvp(f, (X,), (v,))
    np.testing.assert_allclose(jv, rev @ v, **MODES)


@pytest.mark.parametrize("name", ["abs_mul", "norm", "var", "std", "real_exp", "vdot",
                                  "matmul", "angle", "attributes"])
def test_real_to_complex_to_real_second_order(name):
    f = REAL_FNS[name]
    num = dg.numerical_jacobian(dg.grad(f), (X,))[0]
    for h in (dg.hessian(f)(X), dg.jacrev(dg.grad(f))(X), dg.jacfwd(dg.jacfwd(f))(X)):
        assert h.dtype == np.float64
        np.testing.assert_allclose(h, num, rtol=1e-6, atol=1e-7)


def test_float32_through_complex_keeps_float32():
    x = X.astype(np.float32)
    for c in (np.complex64(1 + 1j), np.complex128(1 + 1j), np.array([1 + 1j, 2j, 3.0])):
        f = lambda x, c=c: np.sum(np.abs(x * c)) + np.sum(np.imag(x * c * x))  # noqa: E731
        g = dg.grad(f)(x)
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, dg.grad(f)(X), rtol=1e-5)


def test_no_complex_warning_on_the_way_back():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dg.grad(REAL_FNS["astype"])(X)
        dg.grad(lambda x: np.sum(np.abs(x * 1j + 1) * x))(X)


# ---------------------------------------------------------------------------
# complex inputs, real outputs: JAX's gradient df/dx - i df/dy
# ---------------------------------------------------------------------------

COMPLEX_FNS = {
    "abs": lambda z: np.sum(np.abs(z)),
    "absolute_pow": lambda z: np.sum(np.absolute(z) ** 3),
    "reim": lambda z: np.sum(np.real(z) * np.imag(z) ** 2),
    "angle": lambda z: np.sum(np.angle(z)),
    "vdot": lambda z: np.real(np.vdot(z, z * (1 + 1j))),
    "vdot_imag": lambda z: np.imag(np.vdot(z * 1j + 1, z ** 2)),
    "norm": lambda z: np.linalg.norm(z),
    "norm1": lambda z: np.linalg.norm(z, ord=1),
    "norm3": lambda z: np.linalg.norm(z, ord=3),
    "var": lambda z: np.var(z),
    "std": lambda z: np.std(z),
    "abs_exp_sin": lambda z: np.sum(np.abs(np.exp(z) * np.sin(z))),
    "log_conj": lambda z: np.sum(np.real(np.log(z) * np.conj(z))),
    "matmul": lambda z: np.sum(np.abs(A @ z) ** 2),
    "methods": lambda z: np.sum(np.imag(z.conjugate() * z ** 2) + z.real * z.imag),
    "holo_mix": lambda z: np.sum(np.real(np.tan(z * 0.3) + np.arcsinh(z) + np.sqrt(z)
                                         + np.log1p(z) / np.expm1(z) + np.cosh(z))),
    "sign": lambda z: np.sum(np.imag(np.sign(z)) * np.real(z)),
    "mean": lambda z: np.abs(np.mean(z * z)),
    "cumsum": lambda z: np.sum(np.abs(np.cumsum(z * z))),
    "cumprod_prod": lambda z: np.sum(np.abs(np.cumprod(z))) + np.abs(np.prod(z)),
    "sort": lambda z: np.sum(np.abs(np.sort(z)) * np.arange(3)),
    "pad_roll": lambda z: np.sum(np.abs(np.pad(z, 2) + 1j)) + np.sum(np.abs(np.roll(z, 1) * z)),
    "tensordot": lambda z: np.abs(np.tensordot(z, z[::-1], 1) + np.inner(z, z) + np.dot(z, z)),
    "det_inv": lambda z: np.abs(np.linalg.det(np.outer(z, z) + np.eye(3)))
    + np.sum(np.abs(np.linalg.inv(np.outer(z, z.conj()) + 2 * np.eye(3)))),
    "square_recip": lambda z: np.sum(np.abs(np.square(z) + np.reciprocal(z))),
    "gather": lambda z: np.sum(np.abs(z[[0, 0, 2]]) * np.abs(np.mean(np.outer(z, z), axis=0))),
}


@pytest.mark.parametrize("name", sorted(COMPLEX_FNS))
def test_complex_input_real_output(name):
    f = COMPLEX_FNS[name]
    g = dg.grad(f)(Z)
    assert g.dtype == np.complex128
    np.testing.assert_allclose(g, fd_grad(f, Z), **FD)
    g_rev = dg.jacrev(f)(Z)
    np.testing.assert_allclose(g_rev, g, **MODES)
    _, jt = dg.jvp(f, (Z,), (T,))
    assert np.result_type(jt) == np.float64
    np.testing.assert_allclose(jt, fd_jvp(f, Z, T), **FD)
    # JVP and VJP are transposes under Re(sum(u * t)): <1, J t> = Re(sum(grad * t))
    np.testing.assert_allclose(jt, np.real(np.sum(g * T)), **MODES)


CLOSED_FORMS = {  # f, its gradient in JAX's convention
    "abs": (lambda z: np.sum(np.abs(z)), lambda z: np.conj(z) / np.abs(z)),
    "abs2": (lambda z: np.sum(np.abs(z) ** 2), lambda z: 2 * np.conj(z)),
    "real": (lambda z: np.sum(np.real(z)), lambda z: np.ones_like(z)),
    "imag": (lambda z: np.sum(np.imag(z)), lambda z: -1j * np.ones_like(z)),
    "conj": (lambda z: np.sum(np.real(np.conj(z) * (2 + 3j))), lambda z: 2 - 3j + 0 * z),
    "angle": (lambda z: np.sum(np.angle(z)), lambda z: -1j / z),
    "norm": (lambda z: np.linalg.norm(z), lambda z: np.conj(z) / np.linalg.norm(z)),
    "var": (lambda z: np.var(z), lambda z: 2 * np.conj(z - np.mean(z)) / z.size),
    "std": (lambda z: np.std(z), lambda z: np.conj(z - np.mean(z)) / (z.size * np.std(z))),
    "vdot": (lambda z: np.real(np.vdot(z, z)), lambda z: 2 * np.conj(z)),
    "exp": (lambda z: np.sum(np.real(np.exp(z))), lambda z: np.exp(z)),  # f'(z) of Re f
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_closed_forms(name):
    f, want = CLOSED_FORMS[name]
    np.testing.assert_allclose(dg.grad(f)(Z), want(Z), **MODES)


def test_abs_at_zero_has_the_zero_subgradient():
    z = np.array([0j, 1 + 1j])
    np.testing.assert_array_equal(dg.grad(lambda z: np.sum(np.abs(z)))(z)[0], 0)
    np.testing.assert_array_equal(dg.jvp(np.abs, (z,), (np.ones(2, complex),))[1][0], 0)


def test_tape_gradient_of_complex_input():
    with dg.Tape() as tape:
        z = tape.watch(Z)
        y = np.sum(np.abs(z))
    np.testing.assert_allclose(tape.gradient(y, z), np.conj(Z) / np.abs(Z), **MODES)
    with dg.Tape() as tape:
        w = tape.watch(1 + 2j, "w")
        y = np.abs(w * 2j)
    assert "1.0000+2.0000j" in str(tape)  # the evaluation trace prints complex values
    y.backward()
    np.testing.assert_allclose(w.grad, 2 * (1 - 2j) / abs(1 + 2j), **MODES)


# ---------------------------------------------------------------------------
# holomorphic functions: grad(f, holomorphic=True)(z) = f'(z)
# ---------------------------------------------------------------------------

HOLO = {
    "exp": (lambda z: np.exp(z), np.exp),
    "cube": (lambda z: z ** 3, lambda z: 3 * z ** 2),
    "sinz": (lambda z: np.sin(z) * z, lambda z: np.cos(z) * z + np.sin(z)),
    "recip": (lambda z: 1.0 / z, lambda z: -1 / z ** 2),
    "log_tanh": (lambda z: np.log(z) * np.tanh(z),
                 lambda z: np.tanh(z) / z + np.log(z) / np.cosh(z) ** 2),
    "sqrt": (np.sqrt, lambda z: 0.5 / np.sqrt(z)),
    "arctan": (np.arctan, lambda z: 1 / (1 + z * z)),
}


@pytest.mark.parametrize("name", sorted(HOLO))
def test_holomorphic_grad_is_the_complex_derivative(name):
    f, df = HOLO[name]
    g = dg.grad(lambda z: np.sum(f(z)), holomorphic=True)(Z)
    assert g.dtype == np.complex128
    np.testing.assert_allclose(g, df(Z), **MODES)
    for k in range(3):  # also for a Python complex scalar
        np.testing.assert_allclose(dg.grad(f, holomorphic=True)(complex(Z[k])), df(Z[k]),
                                   **MODES)
    np.testing.assert_allclose(dg.jacfwd(f, holomorphic=True)(Z), np.diag(df(Z)), **MODES)
    np.testing.assert_allclose(dg.jacrev(f, holomorphic=True)(Z), np.diag(df(Z)), **MODES)
    _, jt = dg.jvp(f, (Z,), (T,))  # the JVP of a holomorphic f is f'(z) t
    np.testing.assert_allclose(jt, df(Z) * T, **MODES)


def test_holomorphic_jacobians_hessian_and_value_and_grad():
    h = lambda z: np.exp(z) * z[::-1]  # noqa: E731
    want = np.diag(np.exp(Z) * Z[::-1]) + np.exp(Z)[:, None] * np.eye(3)[::-1]
    np.testing.assert_allclose(dg.jacfwd(h, holomorphic=True)(Z), want, **MODES)
    np.testing.assert_allclose(dg.jacrev(h, holomorphic=True)(Z), want, **MODES)
    f = lambda z: np.sum(z ** 3) * z[0]  # noqa: E731
    H = dg.hessian(f, holomorphic=True)(Z)
    want = np.diag(6 * Z * Z[0])
    want[0, :] += 3 * Z ** 2
    want[:, 0] += 3 * Z ** 2
    np.testing.assert_allclose(H, want, **MODES)
    v, g = dg.value_and_grad(lambda z: np.sum(z * z), holomorphic=True)(Z)
    np.testing.assert_allclose(v, np.sum(Z * Z), **MODES)
    np.testing.assert_allclose(g, 2 * Z, **MODES)


def test_matmul_of_complex_holomorphic_and_vjp():
    g = dg.grad(lambda z: np.sum(A @ z), holomorphic=True)(Z)
    np.testing.assert_allclose(g, A.sum(0), **MODES)
    M = RNG.standard_normal((3, 3)) + 1j * RNG.standard_normal((3, 3))
    u = RNG.standard_normal((2, 3)) + 1j * RNG.standard_normal((2, 3))
    f = lambda a, m: a @ m  # noqa: E731
    _, pull = dg.vjp(f, A, M)
    ca, cm = pull(u)
    np.testing.assert_allclose(ca, u @ M.T, **MODES)  # a plain transpose: no conjugate
    np.testing.assert_allclose(cm, A.T @ u, **MODES)


# ---------------------------------------------------------------------------
# C -> C: vjp and jvp against finite differences, and the dot-product identity
# ---------------------------------------------------------------------------

VEC_FNS = {
    "conj_abs": lambda z: (A @ np.conj(z)) * np.abs(z[:2]),
    "real_imag": lambda z: np.real(z[:2]) * (1j + np.imag(z[1:])),
    "exp_angle": lambda z: np.exp(z[1:]) * np.angle(z[:2]),
    "vdot_outer": lambda z: np.vdot(z, z[::-1]) * z[:2] + np.outer(z, np.conj(z))[0, 1:],
}


@pytest.mark.parametrize("name", sorted(VEC_FNS))
def test_vjp_and_jvp_of_complex_functions(name):
    f = VEC_FNS[name]
    u = np.array([0.5 + 1j, -0.7 + 0.2j])
    out, pull = dg.vjp(f, Z)
    np.testing.assert_allclose(out, f(Z), **MODES)
    ct = pull(u)[0]
    assert ct.dtype == np.complex128
    np.testing.assert_allclose(ct, fd_vjp(f, Z, u), **FD)
    _, jt = dg.jvp(f, (Z,), (T,))
    np.testing.assert_allclose(jt, fd_jvp(f, Z, T), **FD)
    np.testing.assert_allclose(np.real(np.sum(u * jt)), np.real(np.sum(ct * T)), **MODES)


def test_jacfwd_of_real_input_complex_output():
    J = dg.jacfwd(lambda x: np.exp(1j * x) * x)(X)
    np.testing.assert_allclose(J, np.diag(np.exp(1j * X) * (1 + 1j * X)), **MODES)


def test_jacrev_of_complex_input_real_output():
    f = lambda z: np.abs(z) * np.real(z)  # noqa: E731
    J = dg.jacrev(f)(Z)
    want = np.diag(np.conj(Z) / np.abs(Z) * np.real(Z) + np.abs(Z))
    np.testing.assert_allclose(J, want, **MODES)


# ---------------------------------------------------------------------------
# dtypes: complex64 stays complex64, complex128 stays complex128
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_dtypes_are_kept(dtype):
    z, t = Z.astype(dtype), T.astype(dtype)
    rdt = np.finfo(dtype).dtype
    f = lambda z: np.sum(np.abs(np.exp(z) * np.conj(z)) + np.angle(z) + np.imag(z))  # noqa
    assert dg.grad(f)(z).dtype == dtype
    assert np.result_type(dg.jvp(f, (z,), (t,))[1]) == rdt
    h = lambda z: np.exp(z) * z.conj() + np.real(z)  # noqa: E731
    out, pull = dg.vjp(h, z)
    assert out.dtype == dtype and pull(np.ones(3, dtype))[0].dtype == dtype
    assert dg.jvp(h, (z,), (t,))[1].dtype == dtype
    assert dg.grad(lambda z: np.sum(z * z), holomorphic=True)(z).dtype == dtype
    tol = 1e-5 if dtype is np.complex64 else 1e-12
    np.testing.assert_allclose(dg.grad(f)(z), dg.grad(f)(Z), rtol=tol)


def test_under_both_backends_complex_never_takes_a_real_kernel():
    z = (RNG.standard_normal(20000) + 1j * RNG.standard_normal(20000)) * 0.5
    for name in ("numba", "numpy"):
        with dg.backend.use_backend(name):
            np.testing.assert_allclose(dg.grad(lambda z: np.sum(np.abs(np.exp(z))))(z),
                                       np.abs(np.exp(z)), **MODES)
            np.testing.assert_allclose(
                dg.grad(lambda z: np.sum(np.tanh(z) + np.sin(z) * np.sqrt(z)),
                        holomorphic=True)(z),
                1 / np.cosh(z) ** 2 + np.cos(z) * np.sqrt(z) + np.sin(z) * 0.5 / np.sqrt(z),
                **MODES)
            _, jt = dg.jvp(np.abs, (z,), (np.ones_like(z),))
            np.testing.assert_allclose(jt, np.real(z) / np.abs(z), **MODES)


# ---------------------------------------------------------------------------
# refused: a TypeError naming the function, never a number
# ---------------------------------------------------------------------------

REFUSED = {
    "maximum": lambda z: np.sum(np.abs(np.maximum(z, 0.5))),
    "minimum": lambda z: np.sum(np.abs(np.minimum(z, 0.5))),
    "fmax": lambda z: np.sum(np.abs(np.fmax(z, 0.5))),
    "fmin": lambda z: np.sum(np.abs(np.fmin(z, 0.5))),
    "clip": lambda z: np.sum(np.abs(np.clip(z, 0, 1))),
    "max": lambda z: np.abs(np.max(z)),
    "min": lambda z: np.abs(np.min(z)),
    "cholesky": lambda z: np.sum(np.abs(np.linalg.cholesky(np.outer(z, np.conj(z))
                                                           + np.eye(3)))),
    "slogdet": lambda z: np.linalg.slogdet(np.outer(z, z) + np.eye(3))[1],
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unsupported_complex_paths_raise(name):
    f = REFUSED[name]
    with pytest.raises(TypeError, match=name):
        dg.grad(f)(Z)
    with pytest.raises(TypeError, match=name):
        dg.jvp(f, (Z,), (T,))
    with pytest.raises(TypeError, match=name):  # a real input through a complex value
        dg.grad(lambda x: f(x * (1 + 1j)))(X)


def test_numpy_refuses_complex_for_real_only_ufuncs():
    for fn in (np.fmod, np.arctan2, np.hypot, np.logaddexp):
        with pytest.raises(TypeError):
            dg.grad(lambda z, fn=fn: np.sum(np.abs(fn(z, 2.0))))(Z)
    for fn in (np.cbrt, np.deg2rad, np.fabs):
        with pytest.raises(TypeError):
            dg.grad(lambda z, fn=fn: np.sum(np.abs(fn(z))))(Z)


def test_a_complex_tangent_reaching_a_real_output_raises():
    bad = dg.core.Primitive("bad_abs", np.abs, jvp=(lambda t, ans, x: t,),
                            vjp=(lambda g, ans, x: g,))
    with pytest.raises(TypeError, match="bad_abs"):
        dg.jvp(bad, (Z,), (T,))


def test_holomorphic_and_dtype_rules_follow_jax():
    with pytest.raises(TypeError, match="holomorphic=True"):
        dg.grad(np.exp)(1 + 2j)
    with pytest.raises(TypeError, match="requires inputs with complex dtype"):
        dg.grad(np.exp, holomorphic=True)(1.0)
    with pytest.raises(TypeError, match="requires outputs with complex dtype"):
        dg.grad(np.abs, holomorphic=True)(1 + 2j)
    with pytest.raises(TypeError, match="jacfwd requires real-valued inputs"):
        dg.jacfwd(np.abs)(Z)
    with pytest.raises(TypeError, match="jacrev requires real-valued outputs"):
        dg.jacrev(lambda x: x * 1j)(X)
    with pytest.raises(TypeError, match="requires inputs with complex dtype"):
        dg.jacrev(np.exp, holomorphic=True)(X)
    with pytest.raises(TypeError, match="requires outputs with complex dtype"):
        dg.jacfwd(np.abs, holomorphic=True)(Z)
    with pytest.raises(TypeError, match="real tangent"):
        dg.jvp(np.sin, (1.0,), (1j,))
    with pytest.raises(TypeError, match="dtype"):
        dg.jvp(np.sin, (X,), (T,))
    with pytest.raises(TypeError, match="dtype"):
        dg.jvp(np.sin, (Z,), (X,))
    _, pull = dg.vjp(lambda x: np.sum(x), X)
    with pytest.raises(TypeError, match="real cotangent"):
        pull(1j)
    with dg.Tape() as tape:
        z = tape.watch(Z)
        y = np.sum(z * z)
    with pytest.raises(TypeError, match="complex"):
        tape.gradient(y, z)
    np.testing.assert_allclose(tape.gradient(y, z, output_gradient=1 + 0j), 2 * Z, **MODES)
    jvp_allowed = dg.jvp(np.abs, (Z,), (T,))[1]  # dg.jvp itself takes complex inputs
    np.testing.assert_allclose(jvp_allowed, np.real(np.conj(Z) * T) / np.abs(Z), **MODES)


def test_rows_on_real_inputs_are_unchanged():
    x = RNG.standard_normal((3, 4))
    for prim, want in ((P.real, x), (P.imag, np.zeros_like(x)), (P.conjugate, x)):
        np.testing.assert_array_equal(prim(x), want)
    g = dg.grad(lambda x: np.sum(np.imag(x) + np.real(x) * np.conj(x)))(x)
    np.testing.assert_allclose(g, 2 * x, **MODES)
    assert dg.grad(lambda x: np.sum(np.angle(x)))(x).dtype == np.float64  # constant: 0
    np.testing.assert_array_equal(dg.grad(lambda x: np.sum(np.angle(x)))(x), 0)


def test_finite_difference_checks_refuse_complex_rather_than_drop_it():
    for check in (dg.check_grads, dg.check_jvp, dg.check_vjp, dg.numerical_jacobian):
        with pytest.raises(TypeError, match="complex"):
            check(lambda z: np.sum(np.abs(z)), (Z,))
    with pytest.raises(TypeError, match="complex"):
        dg.check_grads(lambda x: x * 1j, (X,))
    dg.check_grads(lambda x: np.abs(x * (1 + 2j)) + np.angle(x + 1j), (X,), order=2)
