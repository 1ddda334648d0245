"""The decompositions and what is built on them (rules/linalg.py, numpy/linalg.py).

Each function: gradients by both modes against finite differences, Hessians in all four
nestings, stacked (batched) matrices, the behaviour at degenerate points that the module
docstring promises, and a cross-check against JAX (skipped when JAX is absent).  The
rows themselves are also in test_primitives.py's CASES.
"""

import numpy as np
import pytest

import dualgrad as dg

RNG = np.random.default_rng(7)
W = RNG.standard_normal((3, 3))  # fixed weights that make matrix outputs scalar


def _sym(a):
    return (a + a.T) / 2  # numpy's eigh reads one triangle; the derivative is eigh(sym(a))'s


def _spectral(w, seed=1):
    q = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(w), len(w))))[0]
    return q @ np.diag(w) @ q.T


SQ = RNG.standard_normal((3, 3)) + np.diag([3.0, 0.0, -2.0])  # distinct singular values
TALL = RNG.standard_normal((4, 3))
WIDE = RNG.standard_normal((3, 4))
SPD = _spectral([0.5, 1.5, 3.0]) + 0.0
B = RNG.standard_normal(4)

# name -> (scalar loss of one array, the point); eigen/singular vectors only through
# gauge-invariant combinations (V diag(f(w)) Vᵀ, U diag(s) Vᵀ, U Uᵀ, |V|²)
LOSSES = {
    "eigh": (lambda a: (lambda w, v: np.sum(w * [1.0, 2.0, 3.0])
                        + np.sum((v * w ** 2) @ v.T * W))(*np.linalg.eigh(_sym(a))), SPD),
    "eigh_vectors_squared": (lambda a: np.sum(np.linalg.eigh(_sym(a))[1] ** 2 * W), SPD),
    "eigvalsh": (lambda a: np.sum(np.sin(np.linalg.eigvalsh(_sym(a)))), SPD),
    "svd_reduced_tall": (lambda a: (lambda u, s, vh: np.sum((u * np.exp(s)) @ vh * TALL)
                                    )(*np.linalg.svd(a, full_matrices=False)), TALL),
    "svd_reduced_wide": (lambda a: (lambda u, s, vh: np.sum(u ** 2 * s) + np.sum(vh ** 2 * WIDE)
                                    )(*np.linalg.svd(a, full_matrices=False)), WIDE),
    "svd_full_tall": (lambda a: (lambda u: np.sum(u[:, 3:] @ u[:, 3:].T * np.arange(16.0)
                                                  .reshape(4, 4)) + np.sum(u[:, :3] ** 2))(
        np.linalg.svd(a)[0]), TALL),
    "svd_full_wide": (lambda a: (lambda vh: np.sum(vh[3:].T @ vh[3:] * np.arange(16.0)
                                                   .reshape(4, 4)))(np.linalg.svd(a)[2]), WIDE),
    "svd_compute_uv_false": (lambda a: np.sum(np.linalg.svd(a, compute_uv=False) ** 3), SQ),
    "qr_tall": (lambda a: (lambda q, r: np.sum(q * TALL) + np.sum(r ** 2 * W))(
        *np.linalg.qr(a)), TALL),
    "qr_wide": (lambda a: (lambda q, r: np.sum(q * W) + np.sum(r * WIDE))(*np.linalg.qr(a)),
                WIDE),
    "qr_complete": (lambda a: (lambda q, r: np.sum(q[:, 3:] @ q[:, 3:].T * np.arange(16.0)
                                                   .reshape(4, 4)) + np.sum(r * TALL))(
        *np.linalg.qr(a, mode="complete")), TALL),
    "qr_r": (lambda a: np.sum(np.linalg.qr(a, mode="r") ** 2 * W), SQ),
    "eig": (lambda a: (lambda w, v: np.sum(np.real(w) * [1.0, 2.0, 3.0]) + np.sum(np.imag(w) ** 2)
                       + np.sum(np.abs(v) ** 2 * W))(*np.linalg.eig(a)),
            np.array([[1.0, 2.0, 0.3], [-2.0, 1.0, 0.5], [0.2, 0.1, 3.0]])),
    "eigvals": (lambda a: np.sum(np.abs(np.linalg.eigvals(a)) ** 2), SQ),
    "lstsq": (lambda a: (lambda x, res, rank, s: np.sum(x ** 2) + np.sum(res) + np.sum(s))(
        *np.linalg.lstsq(a, B, rcond=None)), TALL),
    "pinv": (lambda a: np.sum(np.linalg.pinv(a) * WIDE), TALL),
    "matrix_power": (lambda a: np.sum(np.linalg.matrix_power(a, 5) * W), SQ / 2),
    "matrix_power_negative": (lambda a: np.sum(np.linalg.matrix_power(a, -2) * W), SQ),
    "cond": (lambda a: np.linalg.cond(a), SQ),
    "cond_fro": (lambda a: np.linalg.cond(a, "fro"), SQ),
    "multi_dot": (lambda a: np.sum(np.linalg.multi_dot([a.T, TALL, W, a.T])), TALL),
    "tensorinv": (lambda a: np.sum(np.linalg.tensorinv(a.reshape(2, 2, 4), ind=2) ** 2),
                  (np.eye(4) * 2 + RNG.standard_normal((4, 4)) * 0.3)),
    "tensorsolve": (lambda a: np.sum(np.linalg.tensorsolve(a.reshape(2, 2, 4), B.reshape(2, 2))),
                    (np.eye(4) * 2 + RNG.standard_normal((4, 4)) * 0.3)),
    "expm": (lambda a: np.sum(dg.linalg.expm(a) * W), SQ),
    "expm_squared": (lambda a: np.sum(dg.linalg.expm(4 * a) * W) / 100, SQ),
    "solve_triangular": (lambda a: np.sum(dg.linalg.solve_triangular(a, B[:3], lower=True)),
                         SQ + 4 * np.eye(3)),
    "solve_triangular_upper_T": (lambda a: np.sum(dg.linalg.solve_triangular(
        a, np.outer(B[:3], B[1:]), trans="T", unit_diagonal=True) ** 2), SQ),
    "cho_solve": (lambda a: np.sum(dg.linalg.cho_solve(dg.linalg.cho_factor(_sym(a)), B[:3])),
                  SPD),
    "cho_solve_lower": (lambda a: np.sum(dg.linalg.cho_solve(
        dg.linalg.cho_factor(_sym(a), lower=True), B[:3]) ** 2), SPD),
}
for _ord in ["nuc", 2, -2, "fro", np.inf, -np.inf, 1, -1]:
    LOSSES[f"matrix_norm_{_ord}"] = (lambda a, o=_ord: np.linalg.norm(a, o), SQ)
for _ord in [2, np.inf, -np.inf, 1, -1, 3]:
    LOSSES[f"vector_norm_{_ord}"] = (lambda a, o=_ord: np.linalg.norm(a @ B[:3], o), SQ)
if hasattr(np.linalg, "matrix_norm"):
    LOSSES["matrix_norm_fn"] = (lambda a: np.linalg.matrix_norm(a, ord="nuc")
                                + np.linalg.matrix_norm(a), SQ)
    LOSSES["vector_norm_fn"] = (lambda a: np.linalg.vector_norm(a, ord=1)
                                + np.sum(np.linalg.vector_norm(a, axis=0)), SQ)


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_matches_finite_differences_in_both_modes(name):
    f, x = LOSSES[name]
    num = np.reshape(dg.numerical_jacobian(f, (x,))[0], x.shape)
    np.testing.assert_allclose(dg.grad(f)(x), num, rtol=1e-6, atol=1e-7, err_msg="rev")
    np.testing.assert_allclose(dg.jacfwd(f)(x), num, rtol=1e-6, atol=1e-7, err_msg="fwd")


@pytest.mark.parametrize("name", LOSSES)
def test_hessian_in_all_four_nestings(name):
    f, x = LOSSES[name]
    num = dg.numerical_jacobian(dg.grad(f), (x,))[0]
    for how, h in {"fwd-over-rev": dg.jacfwd(dg.grad(f))(x),
                   "rev-over-rev": dg.jacrev(dg.grad(f))(x),
                   "fwd-over-fwd": dg.jacfwd(dg.jacfwd(f))(x),
                   "rev-over-fwd": dg.jacrev(dg.jacfwd(f))(x)}.items():
        np.testing.assert_allclose(np.reshape(h, num.shape), num, rtol=1e-5, atol=1e-6,
                                   err_msg=how)


def test_values_are_numpys():
    for a in (SQ, TALL, WIDE):
        with dg.Tape() as tape:
            x = tape.watch(a)
            u, s, vh = (dg.core.unbox(r) for r in np.linalg.svd(x))
            q, r = (dg.core.unbox(r) for r in np.linalg.qr(x))
        for got, ref in zip((u, s, vh, q, r), (*np.linalg.svd(a), *np.linalg.qr(a))):
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-15)  # full svd: to rounding
    with dg.Tape() as tape:
        w, v = (dg.core.unbox(r) for r in np.linalg.eigh(tape.watch(SPD)))
    np.testing.assert_array_equal(w, np.linalg.eigh(SPD)[0])
    np.testing.assert_array_equal(v, np.linalg.eigh(SPD)[1])


def test_eig_results_are_complex_as_in_jax():
    with dg.Tape() as tape:
        w, v = np.linalg.eig(tape.watch(SPD))  # real eigenvalues: numpy would say float64
        assert np.result_type(w) == np.complex128 and np.result_type(v) == np.complex128
    np.testing.assert_allclose(np.sort(dg.core.unbox(w).real), np.linalg.eigvalsh(SPD))


# -- stacked matrices ---------------------------------------------------------------

BATCHED = {
    "eigh": (lambda a: np.sum((lambda w, v: w[..., None, :] * v ** 2)(
        *np.linalg.eigh(a + np.swapaxes(a, -1, -2))) * W)),
    "svd": lambda a: np.sum((lambda u, s, vh: (u * s[..., None, :]) @ vh)(
        *np.linalg.svd(a)) * W + np.linalg.svd(a, compute_uv=False)[..., :1] ** 2),
    "qr": lambda a: np.sum(np.linalg.qr(a)[0] * W) + np.sum(np.linalg.qr(a)[1] ** 2),
    "eig": lambda a: np.sum(np.abs(np.linalg.eig(a)[1]) ** 2 * W)
    + np.sum(np.linalg.eigvals(a).real ** 3),
    "pinv": lambda a: np.sum(np.linalg.pinv(a) * W),
    "norm_2": lambda a: np.sum(np.linalg.norm(a, 2, axis=(-2, -1))),
    "cond": lambda a: np.sum(np.linalg.cond(a)),
    "matrix_power": lambda a: np.sum(np.linalg.matrix_power(a, 3) * W),
    "expm": lambda a: np.sum(dg.linalg.expm(a) * W),
}


@pytest.mark.parametrize("name", BATCHED)
def test_stacked_matrices_match_one_at_a_time(name):
    f = BATCHED[name]
    x = np.stack([SQ, SQ.T + np.diag([0.5, 1.0, 1.5]), _spectral([1.0, 2.0, 4.0])])
    g = dg.grad(f)(x)
    gf = dg.jacfwd(f)(x)
    for i in range(len(x)):
        gi = dg.grad(f)(x[i])
        np.testing.assert_allclose(g[i], gi, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gf[i], gi, rtol=1e-10, atol=1e-12)
    h = dg.hessian(f)(x)
    np.testing.assert_allclose(h[1, :, :, 1], dg.hessian(f)(x[1]), rtol=1e-8, atol=1e-10)
    assert np.all(h[0, :, :, 1] == 0)  # the matrices of a stack do not interact


# -- degenerate points: what the module docstring promises ----------------------------

DEGENERATE = _spectral([1.0, 1.0, 3.0])  # a double eigenvalue
WEIGHTS = np.arange(9.0).reshape(3, 3)


def _vector_loss(k):
    return lambda a: (lambda v: np.sum(np.outer(v, v) * WEIGHTS))(np.linalg.eigh(_sym(a))[1][:, k])


def test_eigenvalue_derivatives_are_finite_at_a_double_eigenvalue():
    f = lambda a: np.sum(np.linalg.eigvalsh(a) ** 2)  # = |A|_F^2: gradient 2A
    for a in (DEGENERATE, np.eye(3)):
        np.testing.assert_allclose(dg.grad(f)(a), 2 * a, atol=1e-12)
        np.testing.assert_allclose(dg.jacfwd(f)(a), 2 * a, atol=1e-12)
    tr = lambda a: np.sum(np.linalg.eigvalsh(_sym(a))[:2])  # the cluster's sum: exact
    num = dg.numerical_jacobian(tr, (DEGENERATE,))[0].reshape(3, 3)
    np.testing.assert_allclose(dg.grad(tr)(DEGENERATE), num, atol=1e-7)
    np.testing.assert_allclose(dg.jacfwd(tr)(DEGENERATE), num, atol=1e-7)


def test_an_eigenvector_outside_the_cluster_has_its_derivative():
    f = _vector_loss(2)
    num = dg.numerical_jacobian(f, (DEGENERATE,))[0].reshape(3, 3)
    np.testing.assert_allclose(dg.grad(f)(DEGENERATE), num, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dg.jacfwd(f)(DEGENERATE), num, rtol=1e-6, atol=1e-7)


def test_an_eigenvector_inside_the_cluster_has_nan_derivative():
    f = _vector_loss(0)
    assert np.all(np.isnan(dg.grad(f)(DEGENERATE)))
    assert np.all(np.isnan(dg.jacfwd(f)(DEGENERATE)))
    assert np.all(np.isfinite(dg.grad(_vector_loss(0))(_spectral([1.0, 1.1, 3.0]))))


def test_second_derivatives_at_a_degenerate_point_are_nan():
    f = lambda a: np.sum(np.linalg.eigvalsh(a) ** 2)
    assert np.isnan(dg.hessian(f)(np.eye(3))).any()
    assert np.isnan(dg.jacfwd(dg.jacfwd(f))(np.eye(3))).any()


def test_repeated_singular_values():
    q = np.linalg.qr(np.random.default_rng(3).standard_normal((3, 3)))[0]
    a = q @ np.diag([2.0, 2.0, 1.0]) @ np.linalg.qr(_spectral([1.0, -2.0, 3.0]))[0]
    nuc = lambda a: np.linalg.norm(a, "nuc")  # sum of s: gradient U Vᵀ, defined
    u, _, vh = np.linalg.svd(a)
    np.testing.assert_allclose(dg.grad(nuc)(a), u @ vh, atol=1e-12)
    np.testing.assert_allclose(dg.jacfwd(nuc)(a), u @ vh, atol=1e-12)
    f = lambda a: np.sum(np.linalg.svd(a)[0][:, 0] ** 2 * np.arange(3.0))  # inside the pair
    assert np.all(np.isnan(dg.grad(f)(a)))
    g = lambda a: np.sum(np.linalg.svd(a)[0][:, 2] ** 2 * np.arange(3.0))  # outside it
    num = dg.numerical_jacobian(g, (a,))[0].reshape(3, 3)
    np.testing.assert_allclose(dg.grad(g)(a), num, rtol=1e-6, atol=1e-7)


def test_rank_deficient_svd_of_a_tall_matrix():
    a = np.outer(np.arange(1.0, 5.0), [1.0, 2.0, 0.5])  # rank 1: two zero singular values
    s2 = lambda a: np.linalg.norm(a, 2)  # the largest singular value: u1 v1ᵀ
    u, _, vh = np.linalg.svd(a)
    np.testing.assert_allclose(dg.grad(s2)(a), np.outer(u[:, 0], vh[0]), atol=1e-12)
    f = lambda a: np.sum(np.linalg.svd(a, full_matrices=False)[0][:, 2] ** 2 * np.arange(4.0))
    assert np.all(np.isnan(dg.grad(f)(a)))


def test_errors_name_what_is_missing():
    with pytest.raises(TypeError, match="eigh of a complex"):
        dg.grad(lambda a: np.linalg.eigh(a * 1j)[0].real.sum())(SPD)
    with pytest.raises(TypeError, match="mode='raw'"):
        dg.grad(lambda a: np.linalg.qr(a, mode="raw")[0].sum())(SQ)
    with pytest.raises(ValueError, match="Invalid norm order"):
        dg.grad(lambda a: np.linalg.norm(a, 3))(SQ)


# -- JAX ---------------------------------------------------------------------------------

def _jax_losses(jnp, lax_eig):
    """The same losses, spelled once for numpy (dualgrad) and once for jax.numpy."""
    def make(xp, eig, eigvals):
        sym = lambda a: (a + a.T) / 2
        return {
            "eigh": lambda a: (lambda w, v: xp.sum(w * xp.array([1.0, 2.0, 3.0]))
                               + xp.sum((v * w ** 2) @ v.T * W))(*xp.linalg.eigh(sym(a[:3]))),
            "eigh_vectors_squared": lambda a: xp.sum(xp.linalg.eigh(sym(a[:3]))[1] ** 2 * W),
            "svd_tall": lambda a: (lambda u, s, vh: xp.sum((u * xp.exp(s)) @ vh * TALL)
                                   + xp.sum(u ** 2 * s))(*xp.linalg.svd(a, full_matrices=False)),
            "svd_wide": lambda a: (lambda u, s, vh: xp.sum(u ** 2 * s) + xp.sum(vh ** 2 * WIDE))(
                *xp.linalg.svd(a.T, full_matrices=False)),
            "svdvals": lambda a: xp.sum(xp.linalg.svd(a, compute_uv=False) ** 3),
            "qr": lambda a: (lambda q, r: xp.sum(q * TALL) + xp.sum(r ** 2 * W))(*xp.linalg.qr(a)),
            "qr_wide": lambda a: (lambda q, r: xp.sum(q * W) + xp.sum(r * WIDE))(
                *xp.linalg.qr(a.T)),
            "eig_vectors": lambda a: (lambda w, v: xp.sum(xp.real(v) * W) + xp.sum(xp.imag(v) ** 2)
                                      + xp.sum(xp.imag(w) * xp.real(w)))(*eig(a[:3])),
            "eigvals": lambda a: xp.sum(xp.abs(eigvals(a[:3])) ** 2),
            "pinv": lambda a: xp.sum(xp.linalg.pinv(a) * WIDE),
            "lstsq": lambda a: xp.sum(xp.linalg.lstsq(a, B, rcond=None)[0] ** 2),
            "matrix_power": lambda a: xp.sum(xp.linalg.matrix_power(a[:3], 5) * W),
            "cond": lambda a: xp.linalg.cond(a[:3]),
            "norm_nuc": lambda a: xp.linalg.norm(a, "nuc"),
            "norm_2": lambda a: xp.linalg.norm(a, 2),
            "norm_-2": lambda a: xp.linalg.norm(a, -2),
        }
    return make


def test_matches_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def jeig(a):
        return jax.lax.linalg.eig(a, compute_left_eigenvectors=False, enable_eigvec_derivs=True)

    make = _jax_losses(jnp, jeig)
    # jnp.linalg.eigvals' Hessian needs eigenvector derivatives: opt in, as for eig
    ours = make(np, np.linalg.eig, np.linalg.eigvals)
    theirs = make(jnp, jeig, lambda a: jeig(a)[0])
    x = TALL + 0.0
    x[:3] = SQ  # the square losses use the first three rows
    for name in ours:
        g = dg.grad(ours[name])(x)
        gj = np.asarray(jax.grad(theirs[name])(jnp.asarray(x)))
        np.testing.assert_allclose(g, gj, rtol=1e-9, atol=1e-10, err_msg=name)
        h = dg.hessian(ours[name])(x)
        hj = np.asarray(jax.hessian(theirs[name])(jnp.asarray(x)))
        np.testing.assert_allclose(h, hj, rtol=1e-7, atol=1e-8, err_msg=name)
