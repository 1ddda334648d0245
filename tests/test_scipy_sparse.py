"""dualgrad.scipy.sparse: a sparse matrix times a traced dense array and spsolve/cg with
traced b and traced A.data, against the dense equivalents (A.toarray() through dualgrad),
finite differences (fwd and rev, second order), jit and vmap."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import dualgrad as dg
from dualgrad.scipy import sparse as S
from dualgrad.scipy.sparse import linalg as SL

RNG = np.random.default_rng(11)
_A = sp.random(5, 4, density=0.5, format="csr", random_state=3)
_SQ = (sp.random(5, 5, density=0.4, format="csr", random_state=4) + 3.0 * sp.eye(5)).tocsr()
_SPD = (_SQ @ _SQ.T + sp.eye(5)).tocsr()
X1, X2 = RNG.standard_normal(4), RNG.standard_normal((4, 3))
Y1, Y2 = RNG.standard_normal(5), RNG.standard_normal((2, 5))
B1, B2 = RNG.standard_normal(5), RNG.standard_normal((5, 2))

# the formats: scipy's sparse matrices and arrays, duplicates in a coo
FORMATS = {
    "csr": _A, "csc": _A.tocsc(), "coo": _A.tocoo(), "csr_array": sp.csr_array(_A),
    "csc_array": sp.csc_array(_A), "coo_array": sp.coo_array(_A),
    "coo-duplicates": sp.coo_matrix((np.array([1.0, 2.0, -0.5, 3.0]),
                                     (np.array([0, 4, 0, 2]), np.array([1, 3, 1, 0]))),
                                    shape=(5, 4)),
}


def _dense(A, data):
    """The same matrix as a dense traced array: A's pattern filled with ``data``."""
    M = sp.coo_matrix(A) if not isinstance(A, sp.coo_matrix) else A
    if A.format != "coo":
        r, c = S._coords(A)
    else:
        r, c = M.row, M.col
    onehot = np.zeros((len(r),) + A.shape)
    onehot[np.arange(len(r)), r, c] = 1.0
    return np.tensordot(data, onehot, axes=1)


# id: (f(A as SparseMatrix or scipy matrix, dense operand), dense twin g(D, operand), operand)
PRODUCTS = {
    "A@x": (lambda A, x: A @ x, lambda D, x: D @ x, X1),
    "A@X": (lambda A, x: A @ x, lambda D, x: D @ x, X2),
    "A.dot(x)": (lambda A, x: A.dot(x), lambda D, x: D @ x, X1),
    "y@A": (lambda A, y: S.matmul(y, A), lambda D, y: y @ D, Y1),
    "Y@A": (lambda A, y: S.matmul(y, A), lambda D, y: y @ D, Y2),
    "A.T@y": (lambda A, y: A.T @ y, lambda D, y: D.T @ y, Y1),
    "toarray": (lambda A, x: A.toarray() * x[0], lambda D, x: D * x[0], X1),
}


def _loss(f):
    return lambda *a: np.sum(np.sin(f(*a)))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", PRODUCTS)
def test_product_in_data_and_operand(fmt, case):
    A = FORMATS[fmt]
    f, g, x = PRODUCTS[case]
    d0 = A.data.astype(float)
    ours = _loss(lambda d, x: f(S.from_pattern(A, d), x))
    dense = _loss(lambda d, x: g(_dense(A, d), x))
    np.testing.assert_allclose(ours(d0, x), dense(d0, x), rtol=1e-12)
    for got, want in zip(dg.grad(ours, (0, 1))(d0, x), dg.grad(dense, (0, 1))(d0, x)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    dg.check_grads(ours, (d0, x), order=2)


@pytest.mark.parametrize("fmt", FORMATS)
def test_scipy_matrix_times_traced_array(fmt):
    A = FORMATS[fmt]
    D = A.toarray()
    for x in (X1, X2):
        np.testing.assert_allclose(S.matmul(A, x), A @ x)
        np.testing.assert_allclose(dg.jacrev(lambda x: S.matmul(A, x))(x),
                                   dg.jacrev(lambda x: D @ x)(x), atol=1e-14)
        np.testing.assert_allclose(dg.jacfwd(lambda x: S.dot(A, x))(x),
                                   dg.jacfwd(lambda x: D @ x)(x), atol=1e-14)
    np.testing.assert_allclose(dg.hessian(_loss(lambda y: S.matmul(y, A)))(Y1),
                               dg.hessian(_loss(lambda y: y @ D))(Y1), atol=1e-12)


def test_sparse_matrix_with_operators():
    M = S.csr_matrix(_A)                      # constant data: x @ M through dualgrad's matmul
    D = _A.toarray()
    for f, g in ((lambda y: y @ M, lambda y: y @ D), (lambda y: M.T @ y, lambda y: D.T @ y)):
        np.testing.assert_allclose(dg.grad(_loss(f))(Y1), dg.grad(_loss(g))(Y1), rtol=1e-12)
        np.testing.assert_allclose(dg.hessian(_loss(f))(Y1), dg.hessian(_loss(g))(Y1),
                                   atol=1e-12)
    np.testing.assert_allclose(dg.jit(dg.grad(_loss(lambda y: y @ M)))(Y1),
                               dg.grad(_loss(lambda y: y @ D))(Y1), rtol=1e-12)
    np.testing.assert_allclose(dg.vmap(lambda y: y @ M)(Y2), Y2 @ D, rtol=1e-12)
    # a plain array on the left of a traced-data matrix: numpy defers to the matrix
    got = dg.grad(lambda d: np.sum(Y1 @ S.from_pattern(_A, d)))(_A.data)
    want = dg.grad(lambda d: np.sum(Y1 @ _dense(_A, d)))(_A.data)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(TypeError, match="matmul"):  # both traced: the supported route named
        dg.grad(lambda d, y: np.sum(y @ S.from_pattern(_A, d)), (0, 1))(_A.data, Y1)


def test_constructors_match_scipy():
    A = _A
    cases = [S.csr_matrix((A.data, A.indices, A.indptr), shape=A.shape),
             S.csr_array((A.data, A.indices, A.indptr)),
             S.csc_matrix((A.tocsc().data, A.tocsc().indices, A.tocsc().indptr),
                          shape=A.shape),
             S.coo_matrix((A.tocoo().data, (A.tocoo().row, A.tocoo().col)), shape=A.shape),
             S.csr_matrix((A.tocoo().data, (A.tocoo().row, A.tocoo().col)), shape=A.shape),
             S.csr_matrix(A.toarray()), S.coo_array(A), S.csc_array(A)]
    for M in cases:
        np.testing.assert_allclose(M.toarray()[:, :A.shape[1]], A.toarray())
        np.testing.assert_allclose(M.to_scipy().toarray()[:, :A.shape[1]], A.toarray())
    full = dg.jacrev(lambda a: S.csr_matrix(a).toarray())(A.toarray())  # every entry traced
    np.testing.assert_allclose(full, np.eye(20).reshape(5, 4, 5, 4))


# -- solvers -----------------------------------------------------------------------------

SOLVES = {
    "spsolve-vector": (lambda A, b: SL.spsolve(A, b), lambda D, b: np.linalg.solve(D, b),
                       _SQ, B1),
    "spsolve-matrix": (lambda A, b: SL.spsolve(A, b), lambda D, b: np.linalg.solve(D, b),
                       _SQ, B2),
    "spsolve-csc": (lambda A, b: SL.spsolve(A, b), lambda D, b: np.linalg.solve(D, b),
                    _SQ.tocsc(), B1),
    "cg": (lambda A, b: SL.cg(A, b, rtol=1e-13, atol=0.0)[0],
           lambda D, b: np.linalg.solve(D, b), _SPD, B1),
}


@pytest.mark.parametrize("case", SOLVES)
def test_solver_values_and_derivatives(case):
    f, g, A, b = SOLVES[case]
    d0 = A.data.copy()
    ours = _loss(lambda d, b: f(S.from_pattern(A, d), b))
    dense = _loss(lambda d, b: g(_dense(A, d), b))
    x, _ = dg.vjp(lambda b: f(A, b), b)          # traced b, scipy's constant matrix
    np.testing.assert_allclose(x, f(A, b), rtol=1e-9)
    np.testing.assert_allclose(x, np.linalg.solve(A.toarray(), b), rtol=1e-9)
    for got, want in zip(dg.grad(ours, (0, 1))(d0, b), dg.grad(dense, (0, 1))(d0, b)):
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)
    tol = 1e-6 if case != "cg" else 1e-5
    dg.check_grads(ours, (d0, b), order=2 if case != "cg" else 1, atol=tol, rtol=tol)


def test_cg_info_and_second_order():
    x, info = SL.cg(S.from_pattern(_SPD), B1, rtol=1e-12)
    want, winfo = spla.cg(_SPD, B1, rtol=1e-12)
    np.testing.assert_allclose(x, want)
    assert info == winfo == 0
    (x, info), _ = dg.vjp(lambda b: SL.cg(_SPD, b, rtol=1e-12, maxiter=1), B1)
    assert info > 0                               # scipy's info, from the traced call too
    D = _SPD.toarray()
    loss = _loss(lambda b: SL.cg(_SPD, b, rtol=1e-13)[0])
    np.testing.assert_allclose(dg.hessian(loss)(B1),
                               dg.hessian(_loss(lambda b: np.linalg.solve(D, b)))(B1),
                               rtol=1e-7, atol=1e-9)


def test_forward_equals_reverse():
    d0 = _SQ.data.copy()
    f = lambda d: SL.spsolve(S.from_pattern(_SQ, d), B1)  # noqa: E731
    np.testing.assert_allclose(dg.jacfwd(f)(d0), dg.jacrev(f)(d0), rtol=1e-10, atol=1e-12)
    g = lambda d: S.from_pattern(_A, d) @ X2  # noqa: E731
    np.testing.assert_allclose(dg.jacfwd(g)(_A.data), dg.jacrev(g)(_A.data), atol=1e-14)


def test_jit():
    loss = _loss(lambda d, x, b: SL.spsolve(S.from_pattern(_SQ, d), b) * (S.from_pattern(
        _A, d[:_A.nnz]) @ x)[0])
    args = (_SQ.data.copy(), X1, B1)
    jf, jg = dg.jit(loss), dg.jit(dg.grad(loss, (0, 1, 2)))
    for scale in (1.0, 1.2):
        a = tuple(scale * v for v in args)
        np.testing.assert_allclose(jf(*a), loss(*a), rtol=1e-12)
        for got, want in zip(jg(*a), dg.grad(loss, (0, 1, 2))(*a)):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


def test_vmap():
    D = _A.toarray()
    np.testing.assert_allclose(dg.vmap(lambda x: S.matmul(_A, x))(X2.T), X2.T @ D.T)
    ds = np.stack([_A.data, 2.0 * _A.data])
    np.testing.assert_allclose(dg.vmap(lambda d: S.from_pattern(_A, d) @ X1)(ds),
                               np.stack([D @ X1, 2 * D @ X1]))
    np.testing.assert_allclose(dg.vmap(lambda d, x: S.from_pattern(_A, d) @ x)(ds, X2.T[:2]),
                               np.stack([D @ X2[:, 0], 2 * D @ X2[:, 1]]))
    bs = np.stack([B1, 2.0 * B1])
    np.testing.assert_allclose(dg.vmap(lambda b: SL.spsolve(_SQ, b))(bs),
                               np.linalg.solve(_SQ.toarray(), bs.T).T, rtol=1e-10)
    sq = np.stack([_SQ.data, 1.5 * _SQ.data])
    got = dg.vmap(lambda d: SL.spsolve(S.from_pattern(_SQ, d), B1))(sq)
    np.testing.assert_allclose(got[1], np.linalg.solve(1.5 * _SQ.toarray(), B1), rtol=1e-10)


def test_errors():
    with pytest.raises(TypeError, match="format"):
        S.from_pattern(_A.tolil())
    with pytest.raises(ValueError, match="dimension mismatch"):
        dg.grad(lambda x: np.sum(S.matmul(_A, x)))(np.ones(3))
    with pytest.raises(ValueError, match="square"):
        dg.grad(lambda b: np.sum(SL.spsolve(_A, b)))(np.ones(5))
    with pytest.raises(TypeError, match="to_scipy"):
        dg.grad(lambda d: np.sum(S.from_pattern(_A, d).to_scipy().toarray()))(_A.data)
    with pytest.raises(ValueError, match="data must have shape"):
        S.from_pattern(_A, np.ones(3))


def test_scipy_own_solver_names_the_drop_in():
    with pytest.raises(TypeError, match=r"use dualgrad\.scipy\.sparse\.spsolve"):
        dg.grad(lambda b: np.sum(spla.spsolve(_SQ.tocsc(), b)))(B1)
    assert S.spsolve is SL.spsolve and S.linalg is SL
