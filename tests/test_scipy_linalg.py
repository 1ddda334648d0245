"""dualgrad.scipy.linalg: values against scipy.linalg (the traced path against scipy's own
function on the same input), derivatives against finite differences (forward and reverse,
second order) and against jax.scipy.linalg where JAX has the function; jit and vmap."""

import numpy as np
import pytest
import scipy.linalg as sl

import dualgrad as dg
from dualgrad.scipy import linalg as L

RNG = np.random.default_rng(7)
N = 4
A = RNG.standard_normal((N, N)) + 3.0 * np.eye(N)     # well conditioned, general
_B = RNG.standard_normal((N, N))
S = _B @ _B.T + N * np.eye(N)                          # symmetric positive definite
S2 = np.diag(np.arange(1.0, N + 1)) + 0.1 * (_B + _B.T)  # SPD, eigenvalues spread
S3 = S2[:2, :2]                  # logm: scipy's logm is slow, and order 2 takes 8 x 8 blocks
B = RNG.standard_normal(N)
BM = RNG.standard_normal((N, 2))
C3, R4 = RNG.standard_normal(3), RNG.standard_normal(4)
E = RNG.standard_normal((N, N))
Q = RNG.standard_normal((N, 3))
AQ, BQ = A, RNG.standard_normal((3, 3)) + 4.0 * np.eye(3)


def _sym(a):
    """(a + aᵀ)/2: cholesky and eigh differentiate the symmetric part (JAX's convention),
    while finite differences move single entries of the triangle they read."""
    return 0.5 * (a + a.T)


# id: (function of arrays -- scipy's on plain arrays, ours on traced ones --, its arrays,
#      jax's function or None, second order tested)
def _cases():
    c = {
        "lu-L-U": (lambda a: L.lu(a)[1:], (A,), lambda J, a: J.lu(a)[1:], True),
        "lu-permute_l": (lambda a: L.lu(a, permute_l=True), (A,), None, True),
        "lu_factor": (lambda a: L.lu_factor(a)[0], (A,), lambda J, a: J.lu_factor(a)[0], True),
        "lu_solve": (lambda a, b: L.lu_solve(L.lu_factor(a), b), (A, B),
                     lambda J, a, b: J.lu_solve(J.lu_factor(a), b), True),
        "lu_solve-trans": (lambda a, b: L.lu_solve(L.lu_factor(a), b, trans=1), (A, BM),
                           lambda J, a, b: J.lu_solve(J.lu_factor(a), b, trans=1), True),
        "solve-gen": (lambda a, b: L.solve(a, b), (A, BM), lambda J, a, b: J.solve(a, b), True),
        "solve-transposed": (lambda a, b: L.solve(a, b, transposed=True), (A, B), None, False),
        "solve-sym": (lambda a, b: L.solve(a, b, assume_a="sym"), (A, B), None, True),
        "solve-sym-lower": (lambda a, b: L.solve(a, b, assume_a="sym", lower=True), (A, B),
                            None, False),
        "solve-pos": (lambda a, b: L.solve(a, b, assume_a="pos"), (S, BM), None, True),
        "solve-her": (lambda a, b: L.solve(a, b, assume_a="her"), (S, B), None, False),
        "solve-lower-triangular": (lambda a, b: L.solve(a, b, assume_a="lower triangular"),
                                   (A, B), None, False),
        "solve-diagonal": (lambda a, b: L.solve(a, b, assume_a="diagonal"), (A, B), None,
                           False),
        "solve-tridiagonal": (lambda a, b: L.solve(a, b, assume_a="tridiagonal"), (A, B),
                              None, False),
        "inv": (lambda a: L.inv(a), (A,), lambda J, a: J.inv(a), True),
        "inv-pos": (lambda a: L.inv(a, assume_a="pos"), (S,), None, False),
        "det": (lambda a: L.det(a), (A,), lambda J, a: J.det(a), True),
        "cholesky-upper": (lambda a: L.cholesky(_sym(a)), (S,),
                           lambda J, a: J.cholesky(_sym(a)), True),
        "cholesky-lower": (lambda a: L.cholesky(_sym(a), lower=True), (S,),
                           lambda J, a: J.cholesky(_sym(a), lower=True), False),
        "cho_solve": (lambda a, b: L.cho_solve(L.cho_factor(_sym(a)), b), (S, B),
                      lambda J, a, b: J.cho_solve(J.cho_factor(_sym(a)), b), True),
        "solve_triangular": (lambda a, b: L.solve_triangular(a, b, lower=True), (A, BM),
                             lambda J, a, b: J.solve_triangular(a, b, lower=True), True),
        "solve_triangular-trans-unit": (
            lambda a, b: L.solve_triangular(a, b, trans=1, unit_diagonal=True), (A, B),
            lambda J, a, b: J.solve_triangular(a, b, trans=1, unit_diagonal=True), False),
        "eigh-values": (lambda a: L.eigh(_sym(a), eigvals_only=True), (S2,),
                        lambda J, a: J.eigh(_sym(a), eigvals_only=True), True),
        "eigh-vectors": (lambda a: L.eigh(_sym(a))[1] ** 2, (S2,),
                         lambda J, a: J.eigh(_sym(a))[1] ** 2,
                         False),
        "eigh-subset": (lambda a: L.eigh(_sym(a), subset_by_index=[1, 2])[0], (S2,), None, False),
        "eigh-generalized": (lambda a, b: L.eigh(a, b, eigvals_only=True), (S2, S), None, True),
        "eigvalsh": (lambda a: L.eigvalsh(_sym(a)), (S2,), None, False),
        "block_diag": (lambda a, b, c: L.block_diag(a, b, c), (A, B, Q),
                       lambda J, a, b, c: J.block_diag(a, b, c), True),
        "toeplitz": (lambda c: L.toeplitz(c), (C3,), lambda J, c: J.toeplitz(c), True),
        "toeplitz-r": (lambda c, r: L.toeplitz(c, r), (C3, R4), lambda J, c, r: J.toeplitz(c, r),
                       True),
        "expm": (lambda a: L.expm(0.3 * a), (A,), lambda J, a: J.expm(0.3 * a), True),
        "expm_frechet": (lambda a, e: L.expm_frechet(0.3 * a, e), (A[:2, :2], E[:2, :2]),
                         lambda J, a, e: J.expm_frechet(0.3 * a, e), False),
        "sqrtm": (lambda a: L.sqrtm(a), (S,), None, True),
        "logm": (lambda a: L.logm(a), (S3,), None, False),  # order 2: test_logm_hvp
        "solve_sylvester": (lambda a, b, q: L.solve_sylvester(a, b, q), (AQ, BQ, Q),
                            None, True),  # JAX: no derivative of schur
    }
    return c


CASES = _cases()


def _flat(out):
    if isinstance(out, tuple):
        return np.concatenate([np.ravel(np.asarray(dg.stop_gradient(o))) for o in out])
    return np.ravel(np.asarray(dg.stop_gradient(out)))


def _scalar(f):
    """A scalar loss of every output, with fixed random weights."""
    def loss(*args):
        out = f(*args)
        parts = out if isinstance(out, tuple) else (out,)
        total = 0.0
        for k, p in enumerate(parts):
            w = np.cos(np.arange(np.size(np.asarray(dg.stop_gradient(p)))) + k).reshape(
                np.shape(dg.stop_gradient(p)))
            total = total + np.sum(w * np.sin(p))
        return total
    return loss


@pytest.mark.parametrize("case", CASES)
def test_traced_value_against_scipy(case):
    f, args, _, _ = CASES[case]
    want = f(*args)                       # plain arrays: scipy's own function
    got, _ = dg.vjp(f, *args)             # traced: dualgrad's
    np.testing.assert_allclose(_flat(got), _flat(want), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("case", CASES)
def test_gradients_against_finite_differences(case):
    f, args, _, second = CASES[case]
    dg.check_grads(_scalar(f), args, order=2 if second else 1)


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][2] is not None])
def test_against_jax(case):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax.scipy.linalg as J
    f, args, jf, _ = CASES[case]
    ours = _scalar(f)

    def theirs(*a):
        out = jf(J, *a)
        parts = out if isinstance(out, tuple) else (out,)
        total = 0.0
        for k, p in enumerate(parts):
            w = np.cos(np.arange(p.size) + k).reshape(p.shape)
            total = total + jnp.sum(w * jnp.sin(p))
        return total
    argnums = tuple(range(len(args)))
    want = jax.jit(jax.grad(theirs, argnums=argnums))(*args)
    got = dg.grad(ours, argnums=argnums)(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-7, atol=1e-9)


def test_forward_equals_reverse():
    for case in ("lu-L-U", "sqrtm", "logm", "solve-sym", "eigh-generalized"):
        f, args, _, _ = CASES[case]
        g = lambda a: f(a, *args[1:])  # noqa: E731  (the first argument only)
        np.testing.assert_allclose(dg.jacfwd(g)(args[0]), dg.jacrev(g)(args[0]),
                                   rtol=1e-8, atol=1e-10, err_msg=case)


@pytest.mark.parametrize("case", ["lu_solve", "sqrtm", "logm", "solve-pos", "toeplitz-r",
                                  "block_diag", "eigh-values", "solve_sylvester"])
def test_jit(case):
    f, args, _, _ = CASES[case]
    loss = _scalar(f)
    jf, jg = dg.jit(loss), dg.jit(dg.grad(loss, argnums=tuple(range(len(args)))))
    for scale in (1.0, 1.1):
        a = tuple(scale * x for x in args)
        np.testing.assert_allclose(jf(*a), loss(*a), rtol=1e-10)
        for g, w in zip(jg(*a), dg.grad(loss, argnums=tuple(range(len(args))))(*a)):
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", ["lu-L-U", "lu-permute_l", "solve-gen", "sqrtm", "logm",
                                  "solve-sym", "det", "eigh-values", "solve_sylvester", "toeplitz"])
def test_vmap(case):
    f, args, _, _ = CASES[case]
    stacks = tuple(np.stack([x, 1.05 * x]) for x in args)
    got = dg.vmap(f)(*stacks)
    for i in range(2):
        want = f(*(s[i] for s in stacks))
        gi = tuple(g[i] for g in got) if isinstance(got, tuple) else got[i]
        np.testing.assert_allclose(_flat(gi), _flat(want), rtol=1e-9, atol=1e-10)
    # and the gradient of a batched loss
    loss = _scalar(f)
    g = dg.grad(lambda *s: np.sum(dg.vmap(loss)(*s)))(*stacks)
    np.testing.assert_allclose(g[1], dg.grad(loss)(*(s[1] for s in stacks)), rtol=1e-8,
                               atol=1e-10)


def test_logm_hvp():
    """Second order of logm (scipy's logm is slow: one direction, not check_grads')."""
    loss = _scalar(CASES["logm"][0])
    v = RNG.standard_normal(S3.shape)
    _, hv = dg.hvp(loss, (S3,), (v,))
    h = 1e-4
    g = dg.grad(loss)
    fd = (g(S3 + h * v) - g(S3 - h * v)) / (2 * h)
    np.testing.assert_allclose(hv, fd, rtol=1e-5, atol=1e-7)


def test_old_names_are_the_same_functions():
    for name in ("solve_triangular", "cho_factor", "cho_solve", "expm"):
        assert getattr(L, name) is getattr(dg.linalg, name)


def test_lu_pieces_and_p_indices():
    P, Lm, U = dg.vjp(lambda a: L.lu(a), A)[0]
    np.testing.assert_allclose(P @ Lm @ U, A, atol=1e-12)
    p, _, _ = dg.vjp(lambda a: L.lu(a, p_indices=True), A)[0]
    np.testing.assert_array_equal(p, sl.lu(A, p_indices=True)[0])


def test_errors():
    with pytest.raises(TypeError, match="subset_by_value"):
        dg.grad(lambda a: L.eigh(a, subset_by_value=(0, 2))[0].sum())(S)
    with pytest.raises(TypeError, match="vmap"):
        dg.vmap(lambda a: L.lu_factor(a)[0])(np.stack([A, A]))
    with pytest.raises(ValueError, match="assume_a"):
        dg.grad(lambda a: L.solve(a, B, assume_a="banded").sum())(A)
    with pytest.raises(ValueError, match="square"):
        dg.grad(lambda a: L.sqrtm(a).sum())(np.ones((2, 3)))
    with pytest.raises(TypeError, match="complex"):   # a negative eigenvalue: complex logm
        dg.grad(lambda a: L.logm(a).sum())(-np.eye(2) + 0.1 * np.ones((2, 2)))
