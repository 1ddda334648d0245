"""scipy.sparse.linalg on traced values: ``spsolve`` and ``cg``, differentiated by the
implicit function theorem (the solution, not the iterations).

x = A⁻¹ b, so dx = A⁻¹ (db - dA x), b̄ = A⁻ᵀ x̄ and, for each stored entry (i, j) of A,
data̅ = -b̄[i] x[j].  Each is one primitive whose rules call the same solver again
(``spsolve``: SuperLU, the transposed solves from the same kind of factorization;
``cg``: conjugate gradients, A symmetric positive definite), so they differentiate to
every order.  A is a scipy sparse matrix (constant) or a ``dualgrad.scipy.sparse``
``SparseMatrix`` (traced ``data``); ``b`` is dense, traced or not.  ``cg``'s derivative is
that of the exact solution, accurate to the solver's tolerance (its tangent and adjoint
solves use the same ``rtol``/``atol``); ``x0`` gets no derivative.

    >>> import numpy as np, scipy.sparse as sp, dualgrad as dg
    >>> from dualgrad.scipy.sparse.linalg import spsolve
    >>> A = sp.csc_matrix(np.array([[2.0, 0.0], [0.0, 4.0]]))
    >>> dg.grad(lambda b: spsolve(A, b).sum())(np.ones(2))
    array([0.5 , 0.25])
"""

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ...core.trace import Primitive, unbox
from . import SparseMatrix, _as_matrix, _shape, _traced, by_data, columns, nz_products

__all__ = ["spsolve", "cg"]


def _solver(name, solve):
    """The primitive ``p(data, b, pattern=, trans=, opts=)`` solving A x = b (Aᵀ x = b
    with ``trans``) for b of shape (..., N, K) with ``solve(pattern, data, B, trans,
    opts)`` on an (N, m) matrix, and its implicit-function rules."""
    def impl(data, b, pattern, trans, opts):
        return columns(b, lambda B: solve(pattern, np.asarray(data), B, trans, opts),
                       pattern.shape[0])

    def jvp(tangents, x, data, b, pattern, trans, opts):
        td, tb = tangents
        rhs = tb
        if td is not None:
            r = by_data(td, x, pattern, trans)
            rhs = -r if rhs is None else rhs - r
        return prim(data, rhs, pattern=pattern, trans=trans, opts=opts.plain())

    def bbar(g, data, pattern, trans, opts):
        return prim(data, g, pattern=pattern, trans=not trans, opts=opts.plain())

    def vjp_b(g, x, data, b, pattern, trans, opts):
        return bbar(g, data, pattern, trans, opts)

    def vjp_data(g, x, data, b, pattern, trans, opts):
        return -nz_products(bbar(g, data, pattern, trans, opts), x, pattern, trans)

    def batch(args, dims, pattern, trans, opts):
        (data, b), (dd, db) = args, dims
        if dd is None:
            return prim(data, np.moveaxis(b, db, 0), pattern=pattern, trans=trans,
                        opts=opts.plain()), 0
        size = _shape(data)[dd]
        outs = [prim(np.take(data, i, axis=dd), b if db is None else np.take(b, i, axis=db),
                     pattern=pattern, trans=trans, opts=opts.plain()) for i in range(size)]
        return np.stack(outs), 0

    prim = Primitive(name, impl, jvp=jvp, vjp=(vjp_data, vjp_b), batch=batch)
    return prim


class _Opts:
    """A solver's options (a constant of the graph); ``info`` is set by each plain solve."""

    __slots__ = ("kw", "x0", "callback", "info")

    def __init__(self, kw=None, x0=None, callback=None):
        self.kw, self.x0, self.callback, self.info = kw or {}, x0, callback, 0

    def plain(self):
        """The options for the tangent and adjoint solves: no start point or callback."""
        return _Opts(self.kw) if self.x0 is not None or self.callback is not None else self


def _lu_solve(pattern, data, B, trans, opts):
    # the CSR arrays of A are the CSC arrays of Aᵀ: one factorization, both solves
    At = sp.csc_matrix((data.copy(), pattern.indices.copy(), pattern.indptr.copy()),
                       shape=pattern.shape[::-1])
    lu = spla.splu(At, **opts.kw)
    return lu.solve(np.ascontiguousarray(B), trans="N" if trans else "T")


def _cg_solve(pattern, data, B, trans, opts):
    A = pattern.csr(data)  # symmetric: Aᵀ = A
    out = np.empty_like(B)
    info = 0
    for j in range(B.shape[1]):
        x0 = opts.x0 if opts.x0 is not None and B.shape[1] == 1 else None
        out[:, j], inf = spla.cg(A, B[:, j], x0=x0, callback=opts.callback, **opts.kw)
        info = info or inf
    opts.info = info
    return out


_spsolve = _solver("spsolve", _lu_solve)
_cg = _solver("cg", _cg_solve)


def _rhs(A, b, name):
    M = _as_matrix(A, name)
    if M.shape[0] != M.shape[1]:
        raise ValueError(f"{name}: A must be square, got shape {M.shape}")
    if sp.issparse(b) or isinstance(b, SparseMatrix):
        raise TypeError(f"dualgrad.scipy.sparse.linalg.{name}: a sparse b has no derivative "
                        "rule here (use a dense b)")
    nd = len(_shape(b))
    if nd not in (1, 2) or _shape(b)[0] != M.shape[0]:
        raise ValueError(f"{name}: b must have shape ({M.shape[0]},) or ({M.shape[0]}, k), "
                         f"got {_shape(b)}")
    return M, nd


def spsolve(A, b, permc_spec=None, use_umfpack=True):
    """scipy.sparse.linalg.spsolve: x with A x = b; b (N,) or (N, k) dense (an (N, 1) b
    gives (N,), as scipy); differentiable in b and in A's data.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy import sparse
    >>> A = sparse.csr_matrix(np.array([[2.0, 1.0], [0.0, 1.0]]))
    >>> dg.grad(lambda d: spsolve(sparse.from_pattern(A, d), np.ones(2))[0])(A.data)
    array([-0. , -0.5,  0.5])
    """
    if not _traced(A, b):
        return spla.spsolve(A if sp.issparse(A) else A.to_scipy(), b, permc_spec=permc_spec,
                            use_umfpack=use_umfpack)
    M, nd = _rhs(A, b, "spsolve")
    kw = {} if permc_spec is None else {"permc_spec": permc_spec}
    col = b[:, None] if nd == 1 else b
    x = _spsolve(M.csr_data, col, pattern=M.pattern, trans=False, opts=_Opts(kw))
    return x[:, 0] if nd == 1 or _shape(b)[1] == 1 else x


def cg(A, b, x0=None, *, rtol=1e-05, atol=0.0, maxiter=None, M=None, callback=None):
    """scipy.sparse.linalg.cg: (x, info) for a symmetric positive definite A; x is
    differentiable in b and A's data (the exact solution's derivative, each tangent or
    adjoint a cg solve with the same tolerances); ``x0`` is a start, with no derivative.

    >>> import numpy as np, scipy.sparse as sp, dualgrad as dg
    >>> A = sp.csr_matrix(np.array([[4.0, 1.0], [1.0, 3.0]]))
    >>> g = dg.grad(lambda b: cg(A, b, rtol=1e-12)[0][0])(np.ones(2))
    >>> bool(np.allclose(g, np.linalg.inv(A.toarray())[0]))
    True
    """
    if not _traced(A, b):
        return spla.cg(A if not isinstance(A, SparseMatrix) else A.to_scipy(), b, x0=x0,
                       rtol=rtol, atol=atol, maxiter=maxiter, M=M, callback=callback)
    Mat, nd = _rhs(A, b, "cg")
    if nd != 1:
        raise ValueError(f"cg: b must be a vector, got shape {_shape(b)}")
    opts = _Opts({"rtol": rtol, "atol": atol, "maxiter": maxiter, "M": M},
                 None if x0 is None else np.asarray(unbox(x0), dtype=float), callback)
    x = _cg(Mat.csr_data, b[:, None], pattern=Mat.pattern, trans=False, opts=opts)
    return x[:, 0], opts.info
