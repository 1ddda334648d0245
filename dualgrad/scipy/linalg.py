"""scipy.linalg on traced values, with scipy's signatures.

Called on plain arrays, each function is scipy's own.  On traced values it is built from
dualgrad's differentiable linear algebra (``np.linalg``'s rows: ``solve``, ``inv``,
``det``, ``cholesky``, ``eigh``), or is one primitive whose rules are written with
primitives, so forward and reverse mode, every order of derivative, ``vmap`` and
``dg.jit`` go through:

- ``solve_triangular``, ``cho_factor``/``cho_solve``, ``expm``: the functions that were
  ``dg.linalg``'s (they still are: same objects, they need no scipy);
- ``solve(assume_a=...)``, ``inv``, ``det``, ``cholesky(lower=)``, ``eigh`` (with
  ``eigvals_only``, ``subset_by_index`` and a generalized ``b``): compositions of rows;
- ``lu``, ``lu_factor``, ``lu_solve``: one LU row (pivots constant, JAX's rule:
  X = L⁻¹PᵀdA U⁻¹, dL = L·tril(X, -1), dU = triu(X)·U), the rest compositions;
- ``solve_sylvester``: a row whose rules are Sylvester solves again
  (A dX + dX B = dQ - dA X - X dB), so ``sqrtm`` (X dX + dX X = dA) differentiates to any
  order;
- ``logm``: a row whose derivative is the Fréchet derivative by the block identity
  f([[A, E], [0, A]]) = [[f(A), L_f(A, E)], [0, f(A)]] (its adjoint: L_f(Aᵀ, G));
  ``expm_frechet`` is the same identity on ``expm``;
- ``block_diag``, ``toeplitz``: gathers and concatenations.

Real matrices only on the traced path (a complex result of ``sqrtm``/``logm`` is refused).

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy import linalg
    >>> A = np.array([[4.0, 1.0], [1.0, 3.0]])
    >>> g = dg.grad(lambda A: np.trace(linalg.sqrtm(A)))(A)
    >>> bool(np.allclose(g, 0.5 * np.linalg.inv(linalg.sqrtm(A))))
    True
"""

import numpy as np
import scipy.linalg as sl

from ..core.trace import Box, Primitive, unbox
from ..core.tree import tree_flatten
from ..numpy.linalg import cho_factor, cho_solve, expm, solve_triangular

__all__ = ["solve_triangular", "cho_factor", "cho_solve", "expm", "expm_frechet", "lu",
           "lu_factor", "lu_solve", "solve", "inv", "det", "cholesky", "eigh", "eigvalsh",
           "block_diag", "toeplitz", "sqrtm", "logm", "solve_sylvester"]

_SCIPY = {"solve_triangular": sl.solve_triangular, "cho_factor": sl.cho_factor,
          "cho_solve": sl.cho_solve, "expm": sl.expm}


def _traced(*xs):
    return any(isinstance(leaf, Box) for x in xs for leaf in tree_flatten(x)[0])


def _shape(x):
    return np.shape(unbox(x))


def _mT(x):
    return np.swapaxes(x, -1, -2)


def _square(a, fname):
    s = _shape(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise ValueError(f"scipy.linalg.{fname}: expected a square matrix, got shape {s}")
    return s[-1]


def _real(a, fname):
    if np.iscomplexobj(unbox(a)):
        raise TypeError(f"dualgrad.scipy.linalg.{fname}: complex matrices have no derivative "
                        "rule here (real matrices only)")


def _stacked(fn, *arrays):
    """``fn`` on each matrix of broadcast stacks (scipy's functions take one matrix)."""
    arrays = [np.asarray(a) for a in arrays]
    lead = np.broadcast_shapes(*[a.shape[:-2] for a in arrays])
    if not lead:
        return fn(*arrays)
    arrays = [np.broadcast_to(a, lead + a.shape[-2:]) for a in arrays]
    outs = [fn(*[a[i] for a in arrays]) for i in np.ndindex(*lead)]
    return np.stack(outs).reshape(lead + outs[0].shape)


def _lead_rule(prim, nargs):
    """The vmap rule of a row on trailing matrices: batch axes in front, applied again."""
    def rule(args, dims, **kw):
        size = next(_shape(a)[d] for a, d in zip(args, dims) if d is not None)
        moved = [np.moveaxis(a, d, 0) if d is not None else
                 np.broadcast_to(a, (size,) + _shape(a)) for a, d in zip(args, dims)]
        return prim(*moved, **kw), 0
    return rule


def _tri_mask(n, k, lower, like):
    return (np.tril if lower else np.triu)(np.ones((n, n)), k).astype(
        np.result_type(unbox(like), 1.0))


def _from_triangle(a, lower):
    """The symmetric matrix whose ``lower`` (or upper) triangle is a's: what scipy reads."""
    n = _shape(a)[-1]
    t = a * _tri_mask(n, 0, lower, a)
    return t + _mT(t * _tri_mask(n, -1 if lower else 1, lower, a))


# ---------------------------------------------------------------------------
# solve_sylvester: A X + X B = Q, whose rules are Sylvester solves again
# ---------------------------------------------------------------------------

def _sylvester_jvp(tangents, X, a, b, q):
    ta, tb, tq = tangents
    rhs = tq
    if ta is not None:
        rhs = -(ta @ X) if rhs is None else rhs - ta @ X
    if tb is not None:
        rhs = -(X @ tb) if rhs is None else rhs - X @ tb
    return sylvester(a, b, rhs)


def _qbar(g, a, b):
    return sylvester(_mT(a), _mT(b), g)


sylvester = Primitive(
    "solve_sylvester", lambda a, b, q: _stacked(sl.solve_sylvester, a, b, q),
    jvp=_sylvester_jvp,
    vjp=(lambda g, X, a, b, q: -(_qbar(g, a, b) @ _mT(X)),
         lambda g, X, a, b, q: -(_mT(X) @ _qbar(g, a, b)),
         lambda g, X, a, b, q: _qbar(g, a, b)))
sylvester.batch = _lead_rule(sylvester, 3)


def solve_sylvester(a, b, q):
    """scipy.linalg.solve_sylvester: X with ``a X + X b = q``, differentiable in all three
    (its rules solve Sylvester equations again, so to any order).

    >>> import numpy as np
    >>> a, b, q = np.diag([1.0, 2.0]), np.diag([3.0, 4.0]), np.ones((2, 2))
    >>> solve_sylvester(a, b, q)
    array([[0.25      , 0.2       ],
           [0.2       , 0.16666667]])
    """
    if not _traced(a, b, q):
        return sl.solve_sylvester(a, b, q)
    for name, x in (("a", a), ("b", b), ("q", q)):
        _real(x, "solve_sylvester")
        if len(_shape(x)) != 2:
            raise ValueError(f"solve_sylvester: {name} must be a matrix, got shape {_shape(x)}")
    return sylvester(a, b, q)


# ---------------------------------------------------------------------------
# sqrtm (Sylvester) and logm (Fréchet by the block identity)
# ---------------------------------------------------------------------------

def _real_result(fn, name):
    def impl(a):
        r = _stacked(fn, a)
        if np.iscomplexobj(r) and not np.iscomplexobj(a):
            if np.max(np.abs(r.imag), initial=0.0) > 1e-12 * max(1.0, np.max(np.abs(r))):
                raise TypeError(f"dualgrad.scipy.linalg.{name}: the result of this real "
                                "matrix is complex (a negative real eigenvalue); its "
                                "derivative is not supported")
            r = r.real
        return r
    return impl


_sqrtm = Primitive("sqrtm", _real_result(sl.sqrtm, "sqrtm"),
                   jvp=(lambda t, X, a: sylvester(X, X, t),),
                   vjp=(lambda g, X, a: sylvester(_mT(X), _mT(X), g),))
_sqrtm.batch = _lead_rule(_sqrtm, 1)


def _block(a, e):
    """[[a, e], [0, a]] (a broadcast to e's leading axes)."""
    a = np.broadcast_to(a, _shape(e)) if _shape(a) != _shape(e) else a
    zero = np.zeros(_shape(e), np.result_type(unbox(e), 1.0))
    return np.concatenate([np.concatenate([a, e], axis=-1),
                           np.concatenate([zero, a], axis=-1)], axis=-2)


def _frechet(fn, a, e):
    """L_f(a, e): the upper-right block of f([[a, e], [0, a]])."""
    n = _shape(a)[-1]
    return fn(_block(a, e))[..., :n, n:]


_logm = Primitive("logm", _real_result(sl.logm, "logm"),
                  jvp=(lambda t, ans, a: _frechet(_logm, a, t),),
                  vjp=(lambda g, ans, a: _frechet(_logm, _mT(a), g),))
_logm.batch = _lead_rule(_logm, 1)


def sqrtm(A, **kw):
    """scipy.linalg.sqrtm: the principal square root X (X @ X = A).  Its derivative solves
    the Sylvester equation X dX + dX X = dA (``solve_sylvester``), to any order.

    >>> import numpy as np, dualgrad as dg
    >>> float(dg.grad(lambda a: sqrtm(a * np.eye(2))[0, 0])(4.0))   # d sqrt(a) = 1/(2·2)
    0.25
    """
    if not _traced(A):
        return sl.sqrtm(A, **kw)
    _square(A, "sqrtm")
    _real(A, "sqrtm")
    return _sqrtm(A)


def logm(A, **kw):
    """scipy.linalg.logm: the principal logarithm; its derivative is the Fréchet derivative
    from the block identity (logm of a matrix twice the size), to any order.

    >>> import numpy as np, dualgrad as dg
    >>> round(float(dg.grad(lambda a: logm(a * np.eye(2))[1, 1])(2.0)), 12)
    0.5
    """
    if not _traced(A):
        return sl.logm(A, **kw)
    _square(A, "logm")
    _real(A, "logm")
    return _logm(A)


def expm_frechet(A, E, method=None, compute_expm=True, check_finite=True):
    """scipy.linalg.expm_frechet: (expm(A), L) with L the Fréchet derivative of expm at A
    in direction E, from ``expm`` of the block [[A, E], [0, A]] (differentiable in A and E).

    >>> import numpy as np
    >>> E, L = expm_frechet(np.zeros((2, 2)), np.eye(2))
    >>> L
    array([[1., 0.],
           [0., 1.]])
    """
    if not _traced(A, E):
        return sl.expm_frechet(A, E, method=method, compute_expm=compute_expm,
                               check_finite=check_finite)
    n = _square(A, "expm_frechet")
    if _shape(E) != _shape(A):
        raise ValueError(f"expm_frechet: E must have A's shape {_shape(A)}, got {_shape(E)}")
    big = expm(_block(A, E))
    L = big[..., :n, n:]
    return (big[..., :n, :n], L) if compute_expm else L


# ---------------------------------------------------------------------------
# LU: one row (P, L, U packed), pivots constant
# ---------------------------------------------------------------------------

def _perm(piv):
    """LAPACK's row interchanges as a permutation: A[perm] = L @ U."""
    perm = np.arange(len(piv))
    for i, p in enumerate(piv):
        perm[i], perm[p] = perm[p], perm[i]
    return perm


def _lu_one(a):
    n = a.shape[-1]
    lu_, piv = sl.lu_factor(a)
    eye = np.eye(n, dtype=lu_.dtype)
    p = np.zeros_like(eye)  # A = P L U: P[perm[i], i] = 1
    p[_perm(piv), np.arange(n)] = 1.0
    return np.concatenate([p, np.tril(lu_, -1) + eye, np.triu(lu_)], axis=-2)


def _lu_parts(ans, n):
    return ans[..., :n, :], ans[..., n:2 * n, :], ans[..., 2 * n:, :]


def _lu_jvp(t, ans, a):
    n = _shape(a)[-1]
    P, L, U = _lu_parts(ans, n)
    X = _mT(np.linalg.solve(_mT(U), _mT(np.linalg.solve(L, _mT(P) @ t))))  # L⁻¹Pᵀ dA U⁻¹
    dL = L @ (X * _tri_mask(n, -1, True, X))
    dU = (X * _tri_mask(n, 0, False, X)) @ U
    return np.concatenate([np.zeros(_shape(dL), np.result_type(unbox(dL))), dL, dU], axis=-2)


def _lu_vjp(g, ans, a):
    n = _shape(a)[-1]
    P, L, U = _lu_parts(ans, n)
    _, gL, gU = _lu_parts(g, n)
    Xb = (_mT(L) @ gL) * _tri_mask(n, -1, True, gL) + (gU @ _mT(U)) * _tri_mask(n, 0, False, gU)
    Y = np.linalg.solve(_mT(L), Xb)                 # L⁻ᵀ X̄
    return P @ _mT(np.linalg.solve(U, _mT(Y)))     # P L⁻ᵀ X̄ U⁻ᵀ


_lu = Primitive("lu", lambda a: _stacked(_lu_one, a), jvp=(_lu_jvp,), vjp=(_lu_vjp,))
_lu.batch = _lead_rule(_lu, 1)


def lu(a, permute_l=False, overwrite_a=False, check_finite=True, p_indices=False):
    """scipy.linalg.lu: (P, L, U) with A = P @ L @ U (``permute_l``: (P @ L, U);
    ``p_indices``: P as the row indices); L and U are differentiable (square matrices),
    the pivoting is constant.

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> dg.grad(lambda A: lu(A)[2][1, 1])(A)      # U[1, 1] = 2 - 1 * 4/3 after the swap
    array([[-1.33333333,  1.        ],
           [ 0.44444444, -0.33333333]])
    """
    if not _traced(a):
        return sl.lu(a, permute_l=permute_l, overwrite_a=overwrite_a,
                     check_finite=check_finite, p_indices=p_indices)
    n = _square(a, "lu")
    _real(a, "lu")
    P, L, U = _lu_parts(_lu(a), n)
    if permute_l:
        return P @ L, U
    if p_indices:
        return np.argmax(unbox(P), axis=-2), L, U
    return P, L, U


def lu_factor(a, overwrite_a=False, check_finite=True):
    """scipy.linalg.lu_factor: (lu, piv), L's strict lower and U's upper triangle packed in
    ``lu``; differentiable in ``lu`` (square matrices), the pivots constant.

    >>> import numpy as np, dualgrad as dg
    >>> A, b = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1.0, 1.0])
    >>> dg.grad(lambda A: lu_solve(lu_factor(A), b)[0])(A)   # d(A⁻¹b)_0 = -A⁻ᵀe₀ xᵀ
    array([[-2.,  2.],
           [ 1., -1.]])
    """
    if not _traced(a):
        return sl.lu_factor(a, overwrite_a=overwrite_a, check_finite=check_finite)
    n = _square(a, "lu_factor")
    if len(_shape(a)) != 2:
        raise ValueError(f"lu_factor: expected a matrix, got shape {_shape(a)}")
    _real(a, "lu_factor")
    raw = unbox(a)
    if isinstance(raw, Box):
        raise TypeError("dualgrad.scipy.linalg.lu_factor under dg.vmap: the pivots differ "
                        "from one example to the next; use lu (P, L, U) or solve instead")
    piv = sl.lu_factor(np.asarray(raw))[1]
    _, L, U = _lu_parts(_lu(a), n)
    return L + U - np.eye(n), piv


def lu_solve(lu_and_piv, b, trans=0, overwrite_b=False, check_finite=True):
    """scipy.linalg.lu_solve: solve A x = b (``trans`` 1 or 2: Aᵀ x = b) from
    ``lu_factor``'s (lu, piv); differentiable in ``lu``'s triangles and in ``b``."""
    lu_, piv = lu_and_piv
    if not _traced(lu_, b):
        return sl.lu_solve((lu_, piv), b, trans=trans, overwrite_b=overwrite_b,
                           check_finite=check_finite)
    n = _square(lu_, "lu_solve")
    if _shape(b)[0] != n:
        raise ValueError(f"lu_solve: b must have {n} rows (lu's size), got shape {_shape(b)}")
    perm = _perm(np.asarray(piv))
    L = lu_ * _tri_mask(n, -1, True, lu_) + np.eye(n)
    U = lu_ * _tri_mask(n, 0, False, lu_)
    if trans in (0, "N"):
        return np.linalg.solve(U, np.linalg.solve(L, b[perm]))
    if trans in (1, 2, "T", "C"):
        y = np.linalg.solve(_mT(L), np.linalg.solve(_mT(U), b))
        return y[np.argsort(perm)]
    raise ValueError(f"lu_solve: trans must be 0, 1 or 2, got {trans!r}")


# ---------------------------------------------------------------------------
# solve, inv, det, cholesky, eigh
# ---------------------------------------------------------------------------

_SYM = {"sym": "sym", "symmetric": "sym", "her": "sym", "hermitian": "sym", "pos": "pos",
        "positive definite": "pos"}


def solve(a, b, lower=False, overwrite_a=False, overwrite_b=False, check_finite=True,
          assume_a=None, transposed=False):
    """scipy.linalg.solve: x with a x = b (``transposed``: aᵀ x = b).  ``assume_a``:
    'gen' (None), 'sym'/'her'/'pos' (only the ``lower`` or upper triangle of a is read, and
    differentiated), 'diagonal', 'upper triangular', 'lower triangular', 'tridiagonal'.

    >>> import numpy as np, dualgrad as dg
    >>> a = np.array([[2.0, 9.0], [1.0, 2.0]])       # upper triangle read: [[2, 9], [9, 2]]
    >>> dg.grad(lambda b: solve(a, b, assume_a="sym")[0])(np.ones(2)).round(4)
    array([-0.026 ,  0.1169])
    """
    if not _traced(a, b):
        return sl.solve(a, b, lower=lower, overwrite_a=overwrite_a, overwrite_b=overwrite_b,
                        check_finite=check_finite, assume_a=assume_a, transposed=transposed)
    n = _square(a, "solve")
    _real(a, "solve")
    kind = "gen" if assume_a in (None, "gen", "general") else assume_a
    kind = _SYM.get(kind, kind)
    if kind in ("sym", "pos"):
        a = _from_triangle(a, lower)
    elif kind in ("upper triangular", "lower triangular"):
        return solve_triangular(a, b, trans=1 if transposed else 0,
                                lower=kind == "lower triangular")
    elif kind == "diagonal":
        a = a * np.eye(n)
    elif kind == "tridiagonal":
        a = a * (np.tri(n, n, 1) - np.tri(n, n, -2))
    elif kind != "gen":
        raise ValueError(f"solve: assume_a={assume_a!r} is not supported on traced values "
                         "(use 'gen', 'sym', 'her', 'pos', 'diagonal', 'tridiagonal', "
                         "'upper triangular' or 'lower triangular')")
    if transposed:
        a = _mT(a)
    if len(_shape(b)) == 0 or _shape(b)[0] != n:
        raise ValueError(f"solve: b must have {n} rows (a's size), got shape {_shape(b)}")
    return np.linalg.solve(a, b)


def inv(a, overwrite_a=False, check_finite=True, *, assume_a=None, lower=False):
    """scipy.linalg.inv (``assume_a`` 'sym'/'pos' reads one triangle, as scipy)."""
    if not _traced(a):
        kw = {} if assume_a is None else {"assume_a": assume_a, "lower": lower}
        return sl.inv(a, overwrite_a=overwrite_a, check_finite=check_finite, **kw)
    _square(a, "inv")
    if _SYM.get(assume_a) is not None:
        a = _from_triangle(a, lower)
    return np.linalg.inv(a)


def det(a, overwrite_a=False, check_finite=True):
    """scipy.linalg.det: ``np.linalg.det``'s row."""
    if not _traced(a):
        return sl.det(a, overwrite_a=overwrite_a, check_finite=check_finite)
    _square(a, "det")
    return np.linalg.det(a)


def cholesky(a, lower=False, overwrite_a=False, check_finite=True):
    """scipy.linalg.cholesky: upper U (Uᵀ U = a, reading a's upper triangle) unless
    ``lower``; the derivative is ``np.linalg.cholesky``'s (symmetric perturbations)."""
    if not _traced(a):
        return sl.cholesky(a, lower=lower, overwrite_a=overwrite_a, check_finite=check_finite)
    _square(a, "cholesky")
    return cho_factor(a, lower=lower)[0]


def eigh(a, b=None, *, lower=True, eigvals_only=False, overwrite_a=False, overwrite_b=False,
         type=1, check_finite=True, subset_by_index=None, subset_by_value=None, driver=None):
    """scipy.linalg.eigh: (w, v), ascending, reading a's ``lower`` (or upper) triangle;
    ``b`` (type 1, a x = λ b x) by b's Cholesky factor L: eigh(L⁻¹ a L⁻ᵀ), v = L⁻ᵀ v';
    ``subset_by_index=[lo, hi]`` slices.  Eigenvector signs are LAPACK's.

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> dg.grad(lambda A: eigh(A, eigvals_only=True)[1])(A)
    array([[0.5, 0.5],
           [0.5, 0.5]])
    """
    if not _traced(a, b):
        return sl.eigh(a, b, lower=lower, eigvals_only=eigvals_only, overwrite_a=overwrite_a,
                       overwrite_b=overwrite_b, type=type, check_finite=check_finite,
                       subset_by_index=subset_by_index, subset_by_value=subset_by_value,
                       driver=driver)
    n = _square(a, "eigh")
    _real(a, "eigh")
    if subset_by_value is not None:
        raise TypeError("dualgrad.scipy.linalg.eigh: subset_by_value has no derivative (the "
                        "number of eigenvalues in the interval jumps); use subset_by_index")
    uplo = "L" if lower else "U"
    if b is None:
        w, v = np.linalg.eigh(a, UPLO=uplo)
    else:
        if type != 1:
            raise TypeError(f"dualgrad.scipy.linalg.eigh: type={type} is not supported on "
                            "traced values (type=1: a x = λ b x)")
        _real(b, "eigh")
        if _shape(b) != (n, n):
            raise ValueError(f"eigh: b must have a's shape {(n, n)}, got {_shape(b)}")
        Lb = np.linalg.cholesky(_from_triangle(b, lower))
        C = np.linalg.solve(Lb, _mT(np.linalg.solve(Lb, _from_triangle(a, lower))))
        w, vc = np.linalg.eigh(C)
        v = np.linalg.solve(_mT(Lb), vc)
    if subset_by_index is not None:
        lo, hi = (int(i) for i in subset_by_index)
        if not 0 <= lo <= hi < n:
            raise ValueError(f"eigh: subset_by_index must be [lo, hi] with 0 <= lo <= hi < "
                             f"{n}, got {subset_by_index!r}")
        w, v = w[..., lo:hi + 1], v[..., lo:hi + 1]
    return w if eigvals_only else (w, v)


def eigvalsh(a, b=None, *, lower=True, overwrite_a=False, overwrite_b=False, type=1,
             check_finite=True, subset_by_index=None, subset_by_value=None, driver=None):
    """scipy.linalg.eigvalsh: ``eigh(..., eigvals_only=True)``."""
    return eigh(a, b, lower=lower, eigvals_only=True, overwrite_a=overwrite_a,
                overwrite_b=overwrite_b, type=type, check_finite=check_finite,
                subset_by_index=subset_by_index, subset_by_value=subset_by_value,
                driver=driver)


# ---------------------------------------------------------------------------
# block_diag, toeplitz
# ---------------------------------------------------------------------------

def block_diag(*arrs):
    """scipy.linalg.block_diag: the arrays (1-D ones as rows) on the diagonal of a matrix.

    >>> import numpy as np, dualgrad as dg
    >>> dg.grad(lambda a: block_diag(a, np.ones((1, 1))).sum())(np.ones((2, 2)))
    array([[1., 1.],
           [1., 1.]])
    """
    if not _traced(*arrs):
        return sl.block_diag(*arrs)
    mats = []
    for a in arrs:
        a = np.stack(a) if isinstance(a, (list, tuple)) else a
        nd = len(_shape(a))
        if nd > 2:
            raise ValueError(f"block_diag: arguments must be at most 2-D, got shape "
                             f"{_shape(a)}")
        mats.append(np.reshape(a, (1, -1)) if nd < 2 else a)
    dt = np.result_type(*[unbox(m) for m in mats])
    cols = sum(_shape(m)[1] for m in mats)
    rows, start = [], 0
    for m in mats:
        r, c = _shape(m)
        parts = [np.zeros((r, start), dt), m, np.zeros((r, cols - start - c), dt)]
        rows.append(np.concatenate(parts, axis=1))
        start += c
    return np.concatenate(rows, axis=0)


def toeplitz(c, r=None):
    """scipy.linalg.toeplitz: T[i, j] = c[i - j] (i >= j), r[j - i] (j > i); ``r`` defaults
    to c (conjugated).  A gather, differentiable in ``c`` and ``r``.

    >>> import numpy as np, dualgrad as dg
    >>> dg.grad(lambda c: toeplitz(c).sum())(np.array([1.0, 2.0, 3.0]))
    array([3., 4., 2.])
    """
    if not _traced(c, r):
        return sl.toeplitz(c, r)
    c = np.ravel(c)
    r = np.conj(c) if r is None else np.ravel(r)
    m, n = _shape(c)[0], _shape(r)[0]
    vals = np.concatenate([np.flip(c), r[1:]])
    idx = (m - 1) - np.arange(m)[:, None] + np.arange(n)[None, :]
    return vals[idx]
