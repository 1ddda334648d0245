"""``np.linalg`` on traced values: every function dualgrad differentiates, differentiable to
any order (also ``dg.linalg``, with the scipy.linalg equivalents at the bottom).

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> g = dg.grad(lambda A: np.linalg.eigvalsh(A)[-1])(A)   # d(largest eigenvalue)/dA
    >>> bool(np.allclose(g, np.outer(*[np.linalg.eigh(A)[1][:, -1]] * 2)))
    True

``det``, ``slogdet``, ``inv``, ``solve`` and ``cholesky`` are one row each (``multi_dot``
is ``dot``s, ``outer`` and most of ``norm`` are products and reductions).  Five rows
(``eigh``, ``svd``, ``qr``, ``eig``, ``pinv``) and one helper row
(``orth_complement``), in ``rules/linalg.py``; everything else is built from them and the
rest of the table: ``eigvalsh``, ``svdvals`` and ``svd(compute_uv=False)``, full
``svd``/complete ``qr``, wide ``qr``, ``eigvals``, ``lstsq``, ``matrix_power``, ``cond``,
``norm``'s 2/-2/'nuc', ``matrix_norm``/``vector_norm``, ``tensorsolve``/``tensorinv``, and
the scipy.linalg equivalents at the bottom.  Rules follow Giles (2008), "An extended
collection of matrix derivative results"; Townsend (2016) for the SVD; Walter/Townsend and
JAX's ``qr_jvp_rule`` for QR; JAX's ``_eig_vec_jvp`` (normalised eigenvectors) for ``eig``;
Golub & Pereyra (1973) for ``pinv``.

A decomposition has several outputs and a row has one, so each row returns its outputs
*packed* along the second-to-last axis and the numpy-facing function slices them out
(``eigh``: row 0 holds ``w``, rows 1.. hold ``V``).  Slicing is ``getitem``, so a loss that
uses only some outputs sends exact zeros to the rest.

Conventions, as JAX: ``eigh`` differentiates ``eigh((A + Aᵀ)/2)`` (numpy reads one triangle;
the two agree for symmetric A); ``eig`` always returns complex arrays, its eigenvectors
normalised as LAPACK does (unit norm, largest component real) and differentiated through
that normalisation.  Complex matrices are refused (``TypeError``) except by ``eig``.

Degenerate points.  The eigenvector (singular vector) derivative has 1/(w_j - w_i)
(1/(s_j² - s_i²), and 1/s_j for the extra columns of a non-square SVD) and is undefined
where two eigenvalues (singular values) coincide.  Eigenvalues closer than n·eps·max|w|
count as equal.  At such a pair dualgrad returns what is defined and NaN for what is not:

- eigenvalue and singular-value derivatives stay finite (``diag(Vᵀ dA V)``: exact for
  every symmetric function of a cluster's eigenvalues, e.g. ``sum(w)``, ``sum(f(w))``);
- an entry of the eigenvector derivative that couples the pair is NaN when the tangent
  (or the eigenvector cotangent) it multiplies is non-zero, and 0 when that is exactly
  zero -- so a loss of the eigenvalues alone, or of eigenvectors outside the cluster,
  has a finite gradient, and one that depends on how the cluster splits gets NaN;
- second derivatives of anything at a degenerate point involve the eigenvector
  derivative, so they are NaN (JAX gives inf/NaN in the same places).

``pinv`` and ``lstsq`` differentiate at constant rank (numpy's cutoff); ``qr`` needs full
column rank.

scipy.linalg: its functions convert arguments with ``np.asarray`` and call LAPACK, and
are not dispatched by ``__array_function__``, so a traced value cannot pass through
them.  Call ``dg.linalg.solve_triangular``, ``cho_factor``, ``cho_solve`` and ``expm``
instead (same signatures); they need no scipy.  ``dualgrad.scipy.linalg`` (with scipy) has
these same functions and the rest of scipy.linalg's (``lu``, ``solve(assume_a=)``,
``sqrtm``, ``logm``, ``eigh(eigvals_only=)``...).
"""

import math

import numpy as np

from .. import rules as P
from ..core.trace import raw_apply
from ..rules import (
    add,
    device_like,
    divide,
    float_dtype,
    getitem,
    matmul,
    mT,
    multiply,
    shape_of,
    subtract,
    unbox,
)
from ..rules.linalg import (
    EIG,
    EIGH,
    ORTHC,
    PINV,
    QR,
    SVD,
    eye_like,
    packed_row,
    packed_rows,
    qr_parts,
    raw_array,
    real_only_matrix,
    svd_parts,
)
from . import indexing, reductions
from .dispatch import implements
from .products import dot, outer
from .reductions import _abs2
from .shapes import concatenate, ravel, reshape, squeeze, swapaxes, transpose

_E = Ellipsis
_ALL = slice(None)
_shape, _ndim = P.shape_of, P.ndim_of
_axes = P.normalize_axes


def _result(name, *parts):
    """numpy's named result tuple (numpy 2), or a plain tuple (numpy 1)."""
    mod = getattr(np.linalg, "_linalg", None)
    cls = getattr(mod, name, None)
    return cls(*parts) if cls is not None else tuple(parts)



# ---------------------------------------------------------------------------
# the numpy functions
# ---------------------------------------------------------------------------

@implements(np.linalg.det)
def det(a):
    """``np.linalg.det``: d det(A) = det(A) tr(A⁻¹ dA), so the gradient is det(A) A⁻ᵀ.

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> np.round(dg.grad(np.linalg.det)(A), 12).tolist()
    [[3.0, -1.0], [-1.0, 2.0]]
    """
    return P.det(a)


@implements(np.linalg.slogdet)
def slogdet(a):
    """``np.linalg.slogdet``: (sign, log|det|); the log's gradient is A⁻ᵀ.

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> np.round(dg.grad(lambda A: np.linalg.slogdet(A)[1])(A), 12).tolist()
    [[0.6, -0.2], [-0.2, 0.4]]
    """
    if P.is_complex(a):  # the sign would be a phase e^{i theta(a)}: not a constant
        raise TypeError("dualgrad has no derivative rule for numpy.linalg.slogdet of a complex "
                        "matrix (use np.linalg.det)")
    return np.sign(np.linalg.det(unbox(a))), P.logabsdet(a)


@implements(np.linalg.inv)
def inv(a):
    """``np.linalg.inv``: d(A⁻¹) = -A⁻¹ dA A⁻¹.

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> round(float(dg.grad(lambda A: np.trace(np.linalg.inv(A)))(A)[0, 0]), 12)
    -0.4
    """
    return P.inv(a)


@implements(np.linalg.solve)
def solve(a, b):
    """``np.linalg.solve(a, b)``: differentiable in both; a's cotangent is -(a⁻ᵀ ḡ) xᵀ.

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> np.round(dg.grad(lambda b: np.sum(np.linalg.solve(A, b)))(np.ones(2)), 12).tolist()
    [0.4, 0.2]
    """
    return P.solve(a, b)


@implements(np.linalg.cholesky)
def cholesky(a, upper=False):
    """``np.linalg.cholesky`` (``upper=`` as numpy): the lower (or upper) factor L of a = L Lᵀ.

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> round(float(dg.grad(lambda A: np.linalg.cholesky(A)[0, 0])(A)[0, 0]), 12)  # d sqrt(a00)
    0.353553390593
    """
    if upper:  # numpy reads a's upper triangle: aᵀ's lower one
        return swapaxes(P.cholesky(swapaxes(a, -1, -2)), -1, -2)
    return P.cholesky(a)


@implements(np.linalg.multi_dot)
def multi_dot(arrays, *, out=None):
    """``np.linalg.multi_dot``: a chain of matrix products, in numpy's cheapest order.

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> np.round(dg.grad(lambda A: np.sum(np.linalg.multi_dot([A, A])))(A), 12).tolist()
    [[6.0, 7.0], [7.0, 8.0]]
    """
    r = arrays[0]
    for b in arrays[1:]:
        r = dot(r, b)
    return r


@implements(np.linalg.outer)
def linalg_outer(x1, x2, /):
    """``np.linalg.outer(x1, x2)``: the outer product of two vectors.

    >>> import numpy as np, dualgrad as dg
    >>> dg.grad(lambda x: np.sum(np.linalg.outer(x, x)))(np.array([1.0, 2.0])).tolist()
    [6.0, 6.0]
    """
    if _ndim(x1) != 1 or _ndim(x2) != 1:
        raise ValueError("Input arrays must be one-dimensional")
    return outer(x1, x2)


@implements(np.linalg.norm)
def norm(x, ord=None, axis=None, keepdims=False):
    """``np.linalg.norm`` (``ord``, ``axis``, ``keepdims`` as numpy); at 0 the 2-norm's
    gradient is the zero subgradient.

    >>> import numpy as np, dualgrad as dg
    >>> np.round(dg.grad(np.linalg.norm)(np.array([3.0, 4.0])), 12).tolist()
    [0.6, 0.8]
    """
    nd = _ndim(x)
    if axis is None and ord is not None:
        axis = tuple(range(nd)) if nd == 2 else (0 if nd == 1 else None)
        if axis is None:
            raise ValueError("Improper number of dimensions to norm.")
    axes = _axes(axis, nd)
    if ord is None or (len(axes) == 1 and ord == 2) or (len(axes) == 2 and ord == "fro"):
        return P.sqrt(reductions.sum(_abs2(x), axes, keepdims=keepdims))
    ax = P.absolute(x)
    if len(axes) == 1:
        if ord == np.inf:
            return reductions.max(ax, axes, keepdims=keepdims)
        if ord == -np.inf:
            return reductions.min(ax, axes, keepdims=keepdims)
        if ord == 0:
            return np.sum(unbox(x) != 0, axis=axes, keepdims=keepdims).astype(float)
        if ord == 1:
            return reductions.sum(ax, axes, keepdims=keepdims)
        return P.power(reductions.sum(P.power(ax, float(ord)), axes, keepdims=keepdims),
                       1.0 / ord)
    if ord in (1, -1, np.inf, -np.inf):
        inner_ax, outer_ax = (axes[0], axes[1]) if ord in (1, -1) else (axes[1], axes[0])
        s = reductions.sum(ax, inner_ax, keepdims=True)
        r = (reductions.max if ord > 0 else reductions.min)(s, outer_ax, keepdims=True)
        return r if keepdims else squeeze(r, axis=axes)
    if ord in (2, -2, "nuc"):  # singular values: the svd row (rules/linalg.py packs U, s, V)
        a0, a1 = (a % nd for a in axes)
        rest = [i for i in range(nd) if i not in (a0, a1)]
        xm = P.transpose(x, axes=tuple(rest + [a0, a1]))
        s = indexing.getitem(P.TABLE["svd"](xm), (Ellipsis, _shape(x)[a0], slice(None)))
        r = reductions.sum(s, -1) if ord == "nuc" else \
            (reductions.max if ord == 2 else reductions.min)(s, -1)
        return reshape(r, tuple(1 if i in (a0, a1) else n for i, n in
                                enumerate(_shape(x)))) if keepdims else r
    raise ValueError(f"Invalid norm order {ord!r} for matrices.")


# -- the decompositions and what is built on them ------------------------------------

def _square(a, name):
    s = shape_of(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise np.linalg.LinAlgError(f"Last 2 dimensions of the array must be square ({name})")


@implements(np.linalg.eigh)
def eigh(a, UPLO="L"):
    """``np.linalg.eigh``: eigenvalues and eigenvectors of a symmetric matrix (the
    derivative needs distinct eigenvalues).

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> g = dg.grad(lambda A: np.sum(np.linalg.eigh(A)[0]))(A)  # the trace's
    >>> (np.round(g, 12) + 0.0).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    _square(a, "eigh")
    real_only_matrix(a, "eigh")
    r = EIGH(a, uplo=UPLO)
    return _result("EighResult", packed_row(r, 0), packed_rows(r, 1))


@implements(np.linalg.eigvalsh)
def eigvalsh(a, UPLO="L"):
    """``np.linalg.eigvalsh``: the eigenvalues of a symmetric matrix, ascending.

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> (np.round(dg.grad(lambda A: np.sum(np.linalg.eigvalsh(A)))(A), 12) + 0.0).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    return eigh(a, UPLO)[0]


def _svd_complement(a):
    """numpy's basis of the orthogonal complement of a's reduced SVD factor (U's for
    tall a, V's for wide a): the extra columns of the full SVD."""
    m, n = a.shape[-2:]
    u, _, vh = np.linalg.svd(a, full_matrices=True)
    return u[..., :, n:] if m > n else np.swapaxes(vh[..., m:, :], -1, -2)


def _qr_complement(a):
    """The extra columns of a's complete QR (the complement of the reduced Q)."""
    return np.linalg.qr(a, mode="complete")[0][..., :, a.shape[-1]:]


@implements(np.linalg.svd)
def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """Reduced SVD from the row; a full one adds the complement (``orth_complement``).
    ``hermitian=True`` computes the general SVD (the same singular values)."""
    real_only_matrix(a, "svd")
    m, n = shape_of(a)[-2:]
    U, s, V = svd_parts(SVD(a), a)
    if not compute_uv:
        return s
    if full_matrices and m != n:
        basis = raw_apply(_svd_complement, unbox(a))  # under dg.jit: a graph node
        if m > n:
            U = concatenate([U, ORTHC(U, basis)], axis=-1)
        else:
            V = concatenate([V, ORTHC(V, basis)], axis=-1)
    return _result("SVDResult", U, s, mT(V))


def svdvals(x):
    """``np.linalg.svdvals``: the singular values, descending.

    >>> import numpy as np, dualgrad as dg
    >>> dg.grad(lambda a: np.sum(np.linalg.svdvals(a)))(np.diag([3.0, 2.0])).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    return svd(x, compute_uv=False)


if hasattr(np.linalg, "svdvals"):
    implements(np.linalg.svdvals)(svdvals)


@implements(np.linalg.qr)
def qr(a, mode="reduced"):
    """Reduced QR from the row (m >= n); wide matrices as [Q R1, Q R2] with R2 = QᵀA2;
    ``mode='complete'`` adds the complement of Q (``orth_complement``)."""
    real_only_matrix(a, "qr")
    if mode not in ("reduced", "complete", "r"):
        raise TypeError(f"dualgrad: numpy.linalg.qr(mode={mode!r}) has no derivative rule "
                        "(use mode='reduced', 'complete' or 'r')")
    m, n = shape_of(a)[-2:]
    if m < n:
        Q, R1 = qr(getitem(a, (_E, _ALL, slice(0, m))))
        R = concatenate([R1, matmul(mT(Q), getitem(a, (_E, _ALL, slice(m, None))))], -1)
    else:
        Q, R = qr_parts(QR(a), a)
        if mode == "complete" and m > n:
            Q = concatenate([Q, ORTHC(Q, raw_apply(_qr_complement, unbox(a)))], axis=-1)
            zeros = np.zeros(shape_of(R)[:-2] + (m - n, n), float_dtype(R), like=device_like(R))
            R = concatenate([R, zeros], axis=-2)
    if mode == "r":
        return R
    return _result("QRResult", Q, R)


@implements(np.linalg.eig)
def eig(a):
    """Always complex (as JAX), eigenvectors normalised as LAPACK's."""
    _square(a, "eig")
    r = EIG(a)
    return _result("EigResult", packed_row(r, 0), packed_rows(r, 1))


@implements(np.linalg.eigvals)
def eigvals(a):
    """``np.linalg.eigvals``: the eigenvalues of a general matrix (complex in general).

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 0.0], [0.0, 3.0]])
    >>> np.round(dg.grad(lambda A: np.sum(np.real(np.linalg.eigvals(A))))(A), 12).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    return eig(a)[0]


@implements(np.linalg.pinv)
def pinv(a, rcond=None, hermitian=False, *, rtol=np._NoValue):
    """``np.linalg.pinv``: the pseudo-inverse (differentiable where the rank is constant).

    >>> import numpy as np, dualgrad as dg
    >>> round(float(dg.grad(lambda a: np.linalg.pinv(a)[0, 0])(np.array([[2.0]]))[0, 0]), 12)
    -0.25
    """
    real_only_matrix(a, "pinv")
    tol = rcond if rtol is np._NoValue or rtol is None else rtol
    return PINV(a, rtol=tol)


@implements(np.linalg.lstsq)
def lstsq(a, b, rcond=None):
    """(x, residuals, rank, s) as numpy, with x = pinv(a) @ b (constant rank)."""
    raw_a = np.asarray(unbox(a))
    m, n = raw_a.shape
    _, _, rank, _ = np.linalg.lstsq(raw_a, np.asarray(unbox(b)), rcond=rcond)
    x = matmul(pinv(a, rcond=rcond if rcond is not None else max(m, n) * np.finfo(
        float_dtype(a)).eps), b)
    if rank == n and m > n:
        r = subtract(b, matmul(a, x))
        res = reductions.sum(multiply(r, r), axis=0)
        if P.ndim_of(b) == 1:
            res = reshape(res, (1,))
    else:
        res = np.empty((0,), float_dtype(a))
    return x, res, rank, svdvals(a)


@implements(np.linalg.matrix_power)
def matrix_power(a, n):
    """``np.linalg.matrix_power(a, n)``: a product of n copies (inverses for n < 0).

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> np.round(dg.grad(lambda A: np.trace(np.linalg.matrix_power(A, 2)))(A), 12).tolist()
    [[4.0, 2.0], [2.0, 6.0]]
    """
    _square(a, "matrix_power")
    n = int(n)
    if n == 0:
        s = shape_of(a)
        return np.broadcast_to(eye_like(s[-1], a), s).copy()
    if n < 0:
        a, n = P.inv(a), -n
    result, base = None, a
    while n:  # binary powering: log2(n) products
        if n & 1:
            result = base if result is None else matmul(result, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    return result


@implements(np.linalg.cond)
def cond(x, p=None):
    """``np.linalg.cond`` (``p`` as numpy): the condition number.

    >>> import numpy as np, dualgrad as dg
    >>> round(float(dg.grad(lambda d: np.linalg.cond(np.diag(d)))(np.array([1.0, 4.0]))[1]), 12)
    1.0
    """
    if p is None or p in (2, -2):
        s = svdvals(x)
        hi, lo = reductions.max(s, axis=-1), reductions.min(s, axis=-1)
        return divide(lo, hi) if p == -2 else divide(hi, lo)
    return multiply(norm(x, p, axis=(-2, -1)), norm(P.inv(x), p, axis=(-2, -1)))


def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    """``np.linalg.matrix_norm`` (``ord``, default Frobenius).

    >>> import numpy as np, dualgrad as dg
    >>> np.round(dg.grad(np.linalg.matrix_norm)(np.array([[3.0, 0.0], [0.0, 4.0]])), 12).tolist()
    [[0.6, 0.0], [0.0, 0.8]]
    """
    return norm(x, ord, axis=(-2, -1), keepdims=keepdims)


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    """``np.linalg.vector_norm`` (``ord``, ``axis``, ``keepdims``).

    >>> import numpy as np, dualgrad as dg
    >>> np.round(dg.grad(np.linalg.vector_norm)(np.array([3.0, 4.0])), 12).tolist()
    [0.6, 0.8]
    """
    if axis is None:
        r = norm(ravel(x), ord, axis=0)
        return reshape(r, (1,) * P.ndim_of(x)) if keepdims else r
    if isinstance(axis, (tuple, list)) and len(axis) > 1:  # one vector per axis group
        nd = P.ndim_of(x)
        axes = [a % nd for a in axis]
        rest = [i for i in range(nd) if i not in axes]
        moved = transpose(x, rest + axes)
        shp = [shape_of(x)[i] for i in rest]
        r = norm(reshape(moved, tuple(shp) + (-1,)), ord, axis=-1)
        if keepdims:
            r = reshape(r, tuple(1 if i in axes else shape_of(x)[i] for i in range(nd)))
        return r
    return norm(x, ord, axis=axis, keepdims=keepdims)


if hasattr(np.linalg, "matrix_norm"):
    implements(np.linalg.matrix_norm)(matrix_norm)
    implements(np.linalg.vector_norm)(vector_norm)


@implements(np.linalg.tensorinv)
def tensorinv(a, ind=2):
    """``np.linalg.tensorinv``: the inverse of a tensor read as a matrix over its first
    ``ind`` axes.

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> round(float(dg.grad(lambda A: np.sum(np.linalg.tensorinv(A, ind=1)))(A)[0, 0]), 12)
    -0.16
    """
    s = shape_of(a)
    rows = int(np.prod(s[:ind], dtype=np.int64))
    ia = P.inv(reshape(a, (rows, -1)))
    return reshape(ia, s[ind:] + s[:ind])


@implements(np.linalg.tensorsolve)
def tensorsolve(a, b, axes=None):
    """``np.linalg.tensorsolve``: solve a tensor equation, as ``solve`` on its matrix form.

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> np.round(dg.grad(lambda b: np.sum(np.linalg.tensorsolve(A, b)))(np.ones(2)), 12).tolist()
    [0.4, 0.2]
    """
    an = P.ndim_of(a)
    if axes is not None:
        order = [k for k in range(an) if k not in [x % an for x in axes]] + \
            [x % an for x in axes]
        a = transpose(a, order)
    old = shape_of(a)[-(an - P.ndim_of(b)):]
    size = int(np.prod(old, dtype=np.int64))
    x = solve(reshape(a, (-1, size)), ravel(b))
    return reshape(x, old)


# ---------------------------------------------------------------------------
# scipy.linalg equivalents (scipy converts with np.asarray: a traced value cannot pass)
# ---------------------------------------------------------------------------

def _triangle(a, lower, unit_diagonal=False):
    n = shape_of(a)[-1]
    keep = (np.tril if lower else np.triu)(np.ones((n, n), like=device_like(a)),
                                           0 if not unit_diagonal else
                                           (-1 if lower else 1)).astype(float_dtype(a))
    t = multiply(a, keep)
    return add(t, eye_like(n, a)) if unit_diagonal else t


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
                     check_finite=True):
    """scipy.linalg.solve_triangular: only ``a``'s triangle is read (and differentiated)."""
    t = _triangle(a, lower, unit_diagonal)
    if trans in (1, "T", 2, "C"):
        t = mT(t)
    return solve(t, b)


def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
    """scipy.linalg.cho_factor: (c, lower); c's other triangle is zero (scipy's is junk)."""
    if lower:
        return cholesky(a), True
    return mT(cholesky(mT(a))), False  # reads a's upper triangle, as scipy does


def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
    """``cho_solve((c, lower), b)`` (scipy's signature): solve with a Cholesky factor from
    ``cho_factor``; differentiable in c and b.

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> np.round(dg.grad(lambda b: np.sum(cho_solve(cho_factor(A), b)))(np.ones(2)), 12).tolist()
    [0.4, 0.2]
    """
    c, lower = c_and_lower
    L = _triangle(c, True) if lower else mT(_triangle(c, False))
    return solve(mT(L), solve(L, b))


_PADE13 = (64764752532480000.0, 32382376266240000.0, 7771770303897600.0,
           1187353796428800.0, 129060195264000.0, 10559470521600.0, 670442572800.0,
           33522128640.0, 1323241920.0, 40840800.0, 960960.0, 16380.0, 182.0, 1.0)
_THETA13 = 5.371920351148152


def expm(A):
    """scipy.linalg.expm: scaling and squaring with the [13/13] Padé approximant (Higham
    2005), built from matmul and solve, so every order of derivative is the approximant's
    (accurate to about machine precision).  The number of squarings is chosen from the
    raw 1-norm (the largest over a stack) and is constant for the derivative."""
    raw = raw_array(A)
    n = raw.shape[-1]
    norm1 = float(np.max(np.sum(np.abs(raw), axis=-2))) if raw.size else 0.0
    s = max(0, int(math.ceil(math.log2(norm1 / _THETA13)))) if norm1 > _THETA13 else 0
    X = multiply(A, 2.0 ** -s) if s else A
    b = _PADE13
    ident = eye_like(n, A)
    X2 = matmul(X, X)
    X4 = matmul(X2, X2)
    X6 = matmul(X4, X2)
    u = add(matmul(X6, add(add(multiply(b[13], X6), multiply(b[11], X4)), multiply(b[9], X2))),
            add(add(add(multiply(b[7], X6), multiply(b[5], X4)), multiply(b[3], X2)),
                multiply(b[1], ident)))
    U = matmul(X, u)
    V = add(matmul(X6, add(add(multiply(b[12], X6), multiply(b[10], X4)), multiply(b[8], X2))),
            add(add(add(multiply(b[6], X6), multiply(b[4], X4)), multiply(b[2], X2)),
                multiply(b[0], ident)))
    R = solve(subtract(V, U), add(V, U))
    for _ in range(s):
        R = matmul(R, R)
    return R
