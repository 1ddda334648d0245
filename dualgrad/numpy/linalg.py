"""Matrix decompositions and the linear algebra built on them, differentiable to any order.

    >>> import numpy as np, dualgrad as dg
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> g = dg.grad(lambda A: np.linalg.eigvalsh(A)[-1])(A)   # d(largest eigenvalue)/dA
    >>> bool(np.allclose(g, np.outer(*[np.linalg.eigh(A)[1][:, -1]] * 2)))
    True

Five rows (``eigh``, ``svd``, ``qr``, ``eig``, ``pinv``) and one helper row
(``orth_complement``); everything else is built from them and from ``primitives.py``:
``eigvalsh``, ``svdvals`` and ``svd(compute_uv=False)``, full ``svd``/complete ``qr``,
wide ``qr``, ``eigvals``, ``lstsq``, ``matrix_power``, ``cond``, ``norm``'s 2/-2/'nuc',
``matrix_norm``/``vector_norm``, ``tensorsolve``/``tensorinv``, and the scipy.linalg
equivalents at the bottom.  Rules follow Giles (2008), "An extended collection of matrix
derivative results"; Townsend (2016) for the SVD; Walter/Townsend and JAX's
``qr_jvp_rule`` for QR; JAX's ``_eig_vec_jvp`` (normalised eigenvectors) for ``eig``;
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
instead (same signatures); they need no scipy.
"""

import math

import numpy as np

from ..core.trace import raw_apply
from ..rules import table as P
from ..rules.table import (
    _T,
    add,
    concatenate,
    defprim,
    device_like,
    divide,
    expand_dims,
    float_dtype,
    getitem,
    matmul,
    may_any,
    multiply,
    negative,
    shape_of,
    solve,
    subtract,
    sum_,
    unbox,
    where,
)
from . import api as N
from .api import implements

_E = Ellipsis
_ALL = slice(None)


def _result(name, *parts):
    """numpy's named result tuple (numpy 2), or a plain tuple (numpy 1)."""
    mod = getattr(np.linalg, "_linalg", None)
    cls = getattr(mod, name, None)
    return cls(*parts) if cls is not None else tuple(parts)


# ---------------------------------------------------------------------------
# helpers for the rules (written with primitives: they differentiate again)
# ---------------------------------------------------------------------------

def _eye(n, like):
    return np.eye(n, dtype=float_dtype(like), like=device_like(like))


def _raw_array(v):
    """v's raw numbers as an array where they live: numpy's for host values, the device
    array itself for device ones (never copied to the host)."""
    r = unbox(v)
    return r if device_like(r) is not None else np.asarray(r)


def _diag(S):
    """The diagonal of the last two axes: (..., n, n) -> (..., n)."""
    return sum_(multiply(S, _eye(shape_of(S)[-1], S)), axis=(-1,), keepdims=False)


def _diag_embed(v):
    """(..., n) -> (..., n, n) with ``v`` on the diagonal."""
    return multiply(expand_dims(v, (-1,)), _eye(shape_of(v)[-1], v))


def _sym(t):
    return multiply(0.5, add(t, _T(t)))


def _tril_strict(x):
    n = shape_of(x)[-1]
    return multiply(x, np.tril(np.ones((n, n), like=device_like(x)), -1).astype(float_dtype(x)))


def _rows(x, start, stop=None):
    return getitem(x, (_E, slice(start, stop), _ALL))


def _row(x, i):
    return getitem(x, (_E, i, _ALL))


def _pack(*parts):
    return concatenate(*parts, axis=-2)


def _tol(v):
    """Values closer than this count as equal: n·eps·max|v| (each matrix of a stack)."""
    r = np.abs(_raw_array(v))
    n = r.shape[-1]
    eps = np.finfo(r.dtype).eps
    return n * eps * np.max(r, axis=-1, keepdims=True) if n else \
        np.zeros(r.shape[:-1] + (1,), like=device_like(r))


def _gaps(v, squared=False):
    """F_ij = 1/(v_j - v_i) (or 1/(v_j² - v_i²)) off the diagonal, 0 on it and at
    degenerate pairs, and the raw mask of the degenerate pairs."""
    vj, vi = expand_dims(v, (-2,)), expand_dims(v, (-1,))
    d = multiply(add(vj, vi), subtract(vj, vi)) if squared else subtract(vj, vi)
    r = _raw_array(v)
    n = r.shape[-1]
    near = np.abs(r[..., None, :] - r[..., :, None]) <= _tol(v)[..., None]
    eye = np.eye(n, dtype=bool, like=device_like(r))
    deg = near & ~eye
    off = deg | eye
    return where(off, 0.0, divide(1.0, where(off, 1.0, d))), deg


def _poison(y, bad):
    """``y`` with NaN where the raw mask ``bad`` is set: an undefined derivative."""
    bad = np.broadcast_to(bad, shape_of(y))
    if not may_any(bad):
        return y
    return add(y, np.where(bad, np.nan, 0.0).astype(float_dtype(y)))


def _pairs(F, deg, X, nz=None):
    """F ∘ X, NaN where a degenerate pair meets a non-zero entry of X (or of ``nz``)."""
    y = multiply(F, X)
    if not may_any(deg):
        return y
    nz = _raw_array(X) != 0 if nz is None else nz
    return _poison(y, deg & nz)


def _inv_small(v):
    """1/v with 0 where |v| is negligible, and that raw mask."""
    small = np.abs(_raw_array(v)) <= _tol(v)
    return where(small, 0.0, divide(1.0, where(small, 1.0, v))), small


def _real_only_matrix(x, name):
    if P.is_complex(x):
        raise TypeError(f"dualgrad has no derivative rule for numpy.linalg.{name} of a "
                        "complex matrix (real matrices only; eig handles complex results)")


# ---------------------------------------------------------------------------
# eigh: symmetric eigendecomposition, packed as [w; V] of shape (..., n + 1, n)
# ---------------------------------------------------------------------------

def _eigh_impl(x, uplo):
    w, v = np.linalg.eigh(x, UPLO=uplo)
    return np.concatenate([w[..., None, :], v], axis=-2)


def _eigh_jvp(t, ans, x, uplo):
    w, V = _row(ans, 0), _rows(ans, 1)
    S = matmul(_T(V), matmul(_sym(t), V))
    F, deg = _gaps(w)
    dV = matmul(V, _pairs(F, deg, S))
    return _pack(expand_dims(_diag(S), (-2,)), dV)


def _eigh_vjp(g, ans, x, uplo):
    w, V = _row(ans, 0), _rows(ans, 1)
    gw, gV = _row(g, 0), _rows(g, 1)
    F, deg = _gaps(w)
    inner = add(_diag_embed(gw), _pairs(F, deg, matmul(_T(V), gV)))
    return _sym(matmul(V, matmul(inner, _T(V))))


EIGH = defprim("eigh", _eigh_impl, jvp=(_eigh_jvp,), vjp=(_eigh_vjp,),
               real_only="its rules assume a real symmetric matrix",
               batch=P.batch_trailing("eigh"))


# ---------------------------------------------------------------------------
# svd (reduced): packed as [U; s; V] of shape (..., m + 1 + n, k), k = min(m, n)
# ---------------------------------------------------------------------------

def _svd_impl(x):
    u, s, vh = np.linalg.svd(x, full_matrices=False)
    return np.concatenate([u, s[..., None, :], np.swapaxes(vh, -1, -2)], axis=-2)


def _svd_parts(ans, x):
    m = shape_of(x)[-2]
    return _rows(ans, 0, m), _row(ans, m), _rows(ans, m + 1)


def _svd_jvp(t, ans, x):
    U, s, V = _svd_parts(ans, x)
    m, n = shape_of(x)[-2:]
    dS = matmul(_T(U), matmul(t, V))
    si, sj = expand_dims(s, (-1,)), expand_dims(s, (-2,))
    F, deg = _gaps(s, squared=True)
    rdS = _raw_array(dS)
    nz = (rdS != 0) | (np.swapaxes(rdS, -1, -2) != 0)
    dSt = _T(dS)
    dU = matmul(U, _pairs(F, deg, add(multiply(dS, sj), multiply(si, dSt)), nz))
    dV = matmul(V, _pairs(F, deg, add(multiply(si, dS), multiply(dSt, sj)), nz))
    if m != n:
        inv, small = _inv_small(s)
        if m > n:
            tV = matmul(t, V)
            perp = subtract(tV, matmul(U, matmul(_T(U), tV)))
            dU = add(dU, _cols_over(perp, inv, small))
        else:
            tU = matmul(_T(t), U)
            perp = subtract(tU, matmul(V, matmul(_T(V), tU)))
            dV = add(dV, _cols_over(perp, inv, small))
    return _pack(dU, expand_dims(_diag(dS), (-2,)), dV)


def _cols_over(y, inv, small):
    """y's columns divided by s (NaN for a non-zero column over a zero s)."""
    r = multiply(y, expand_dims(inv, (-2,)))
    if may_any(small):
        r = _poison(r, small[..., None, :] & (_raw_array(y) != 0))
    return r


def _svd_vjp(g, ans, x):
    U, s, V = _svd_parts(ans, x)
    gU, gs, gV = _svd_parts(g, x)
    m, n = shape_of(x)[-2:]
    si, sj = expand_dims(s, (-1,)), expand_dims(s, (-2,))
    F, deg = _gaps(s, squared=True)
    Y = _pairs(F, deg, matmul(_T(U), gU))
    Z = _pairs(F, deg, matmul(_T(V), gV))
    gdS = add(add(multiply(add(Y, _T(Y)), sj), multiply(si, add(Z, _T(Z)))), _diag_embed(gs))
    gA = matmul(U, matmul(gdS, _T(V)))
    if m != n:
        inv, small = _inv_small(s)
        if m > n:
            perp = subtract(gU, matmul(U, matmul(_T(U), gU)))
            gA = add(gA, matmul(_cols_over(perp, inv, small), _T(V)))
        else:
            perp = subtract(gV, matmul(V, matmul(_T(V), gV)))
            gA = add(gA, matmul(U, _T(_cols_over(perp, inv, small))))
    return gA


SVD = defprim("svd", _svd_impl, jvp=(_svd_jvp,), vjp=(_svd_vjp,),
              real_only="its rules assume a real matrix", batch=P.batch_trailing("svd"))


# The extra columns of a full SVD's U (complete QR's Q) span the orthogonal complement of
# the first k; only that span is determined by A.  This row returns numpy's basis of it
# and differentiates it with the choice that has no rotation inside the complement:
# dU2 = -U1 dU1ᵀ U2 (so U1ᵀU2 = 0 and U2ᵀdU2 = 0 hold to first order).
ORTHC = defprim(
    "orth_complement", lambda u1, basis: basis,
    jvp=(lambda t, ans, u1, basis: negative(matmul(u1, matmul(_T(t), ans))),),
    vjp=(lambda g, ans, u1, basis: negative(matmul(ans, matmul(_T(g), u1))),),
    real_only="its rules assume real orthonormal columns",
    batch=lambda args, dims, basis=None: (ORTHC(*P.batch_all(
        list(args) + [basis] * (basis is not None), list(dims) + [None] * (basis is not None))),
        0))


# ---------------------------------------------------------------------------
# qr (reduced, m >= n): packed as [Q; Rᵀ] of shape (..., m + n, n)
# ---------------------------------------------------------------------------

def _qr_impl(x):
    q, r = np.linalg.qr(x)
    return np.concatenate([q, np.swapaxes(r, -1, -2)], axis=-2)


def _qr_parts(ans, x):
    m = shape_of(x)[-2]
    return _rows(ans, 0, m), _T(_rows(ans, m))


def _qr_jvp(t, ans, x):
    Q, R = _qr_parts(ans, x)
    B = _T(solve(_T(R), _T(t)))            # dA R⁻¹
    C = matmul(_T(Q), B)
    L = _tril_strict(C)
    W = subtract(L, _T(L))                  # skew-symmetric
    dQ = add(matmul(Q, subtract(W, C)), B)
    dR = matmul(subtract(C, W), R)
    return _pack(dQ, _T(dR))


def _qr_vjp(g, ans, x):
    Q, R = _qr_parts(ans, x)
    gQ, gR = _qr_parts(g, x)
    QtgQ = matmul(_T(Q), gQ)
    gRRt = matmul(gR, _T(R))
    M = subtract(QtgQ, gRRt)
    K = add(_tril_strict(subtract(M, _T(M))), gRRt)
    gB = add(matmul(Q, subtract(K, QtgQ)), gQ)
    return _T(solve(R, _T(gB)))             # gB R⁻ᵀ


QR = defprim("qr", _qr_impl, jvp=(_qr_jvp,), vjp=(_qr_vjp,),
             real_only="its rules assume a real matrix", batch=P.batch_trailing("qr"))


# ---------------------------------------------------------------------------
# eig (general, complex results as JAX): packed as [w; V] of shape (..., n + 1, n)
# ---------------------------------------------------------------------------

def _eig_impl(x):
    w, v = np.linalg.eig(x)
    ct = np.result_type(x.dtype, np.complex64)
    return np.concatenate([w[..., None, :], v], axis=-2).astype(ct, copy=False)


def _argmax_mask(V):
    """0/1 mask of each column's largest-magnitude entry (LAPACK makes it real)."""
    r = np.abs(_raw_array(V))
    k = np.argmax(r, axis=-2)
    rows = np.arange(r.shape[-2], like=device_like(r))[:, None]
    return (rows == k[..., None, :]).astype(float_dtype(V))  # one True per column


def _eig_jvp(t, ans, x):
    w, V = _row(ans, 0), _rows(ans, 1)
    Pm = solve(V, matmul(t, V))             # V⁻¹ dA V
    F, deg = _gaps(w)
    U = matmul(V, _pairs(F, deg, Pm))
    mask = _argmax_mask(V)
    c_re = negative(P.real(sum_(multiply(P.conjugate(V), U), axis=(-2,), keepdims=False)))
    vk = P.real(sum_(multiply(mask, V), axis=(-2,), keepdims=False))
    c_im = negative(divide(P.imag(sum_(multiply(mask, U), axis=(-2,), keepdims=False)), vk))
    c = add(c_re, multiply(c_im, P._complex_one(V, 1j)))
    dV = add(U, multiply(V, expand_dims(c, (-2,))))
    return _pack(expand_dims(_diag(Pm), (-2,)), dV)


def _eig_vjp(g, ans, x):
    w, V = _row(ans, 0), _rows(ans, 1)
    gw, gV = _row(g, 0), _rows(g, 1)
    mask = _argmax_mask(V)
    h = sum_(multiply(gV, V), axis=(-2,), keepdims=False)
    vk = P.real(sum_(multiply(mask, V), axis=(-2,), keepdims=False))
    gU = subtract(gV, multiply(P.conjugate(V), expand_dims(P.real(h), (-2,))))
    gU = subtract(gU, multiply(mask, expand_dims(
        multiply(divide(P.imag(h), vk), P._complex_one(V, 1j)), (-2,))))
    F, deg = _gaps(w)
    gP = add(_pairs(F, deg, matmul(_T(V), gU)), _diag_embed(gw))
    gA = solve(_T(V), matmul(gP, _T(V)))    # V⁻ᵀ gP Vᵀ
    return P._real_for(gA, x)


EIG = defprim("eig", _eig_impl, jvp=(_eig_jvp,), vjp=(_eig_vjp,),
              batch=P.batch_trailing("eig"))


# ---------------------------------------------------------------------------
# pinv (Golub & Pereyra: the derivative at constant rank)
# ---------------------------------------------------------------------------

def _pinv_impl(x, rtol):
    return np.linalg.pinv(x) if rtol is None else np.linalg.pinv(x, rcond=rtol)


def _pinv_jvp(t, ans, x, rtol):
    Pm, tT = ans, _T(t)
    m, n = shape_of(x)[-2:]
    left = subtract(_eye(m, x), matmul(x, Pm))     # I - A A⁺
    right = subtract(_eye(n, x), matmul(Pm, x))    # I - A⁺ A
    r = negative(matmul(Pm, matmul(t, Pm)))
    r = add(r, matmul(matmul(Pm, _T(Pm)), matmul(tT, left)))
    return add(r, matmul(right, matmul(tT, matmul(_T(Pm), Pm))))


def _pinv_vjp(g, ans, x, rtol):
    Pm, gT = ans, _T(g)
    m, n = shape_of(x)[-2:]
    left = subtract(_eye(m, x), matmul(x, Pm))
    right = subtract(_eye(n, x), matmul(Pm, x))
    r = negative(matmul(_T(Pm), matmul(g, _T(Pm))))
    r = add(r, matmul(left, matmul(gT, matmul(Pm, _T(Pm)))))
    return add(r, matmul(matmul(_T(Pm), Pm), matmul(gT, right)))


PINV = defprim("pinv", _pinv_impl, jvp=(_pinv_jvp,), vjp=(_pinv_vjp,),
               real_only="its rules assume a real matrix", batch=P.batch_trailing("pinv"))


# ---------------------------------------------------------------------------
# the numpy functions
# ---------------------------------------------------------------------------

def _square(a, name):
    s = shape_of(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise np.linalg.LinAlgError(f"Last 2 dimensions of the array must be square ({name})")


@implements(np.linalg.eigh)
def eigh(a, UPLO="L"):
    _square(a, "eigh")
    _real_only_matrix(a, "eigh")
    r = EIGH(a, uplo=UPLO)
    return _result("EighResult", _row(r, 0), _rows(r, 1))


@implements(np.linalg.eigvalsh)
def eigvalsh(a, UPLO="L"):
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
    _real_only_matrix(a, "svd")
    m, n = shape_of(a)[-2:]
    U, s, V = _svd_parts(SVD(a), a)
    if not compute_uv:
        return s
    if full_matrices and m != n:
        basis = raw_apply(_svd_complement, unbox(a))  # under dg.jit: a graph node
        if m > n:
            U = N.concatenate([U, ORTHC(U, basis)], axis=-1)
        else:
            V = N.concatenate([V, ORTHC(V, basis)], axis=-1)
    return _result("SVDResult", U, s, _T(V))


def svdvals(x):
    return svd(x, compute_uv=False)


if hasattr(np.linalg, "svdvals"):
    implements(np.linalg.svdvals)(svdvals)


@implements(np.linalg.qr)
def qr(a, mode="reduced"):
    """Reduced QR from the row (m >= n); wide matrices as [Q R1, Q R2] with R2 = QᵀA2;
    ``mode='complete'`` adds the complement of Q (``orth_complement``)."""
    _real_only_matrix(a, "qr")
    if mode not in ("reduced", "complete", "r"):
        raise TypeError(f"dualgrad: numpy.linalg.qr(mode={mode!r}) has no derivative rule "
                        "(use mode='reduced', 'complete' or 'r')")
    m, n = shape_of(a)[-2:]
    if m < n:
        Q, R1 = qr(getitem(a, (_E, _ALL, slice(0, m))))
        R = N.concatenate([R1, matmul(_T(Q), getitem(a, (_E, _ALL, slice(m, None))))], -1)
    else:
        Q, R = _qr_parts(QR(a), a)
        if mode == "complete" and m > n:
            Q = N.concatenate([Q, ORTHC(Q, raw_apply(_qr_complement, unbox(a)))], axis=-1)
            zeros = np.zeros(shape_of(R)[:-2] + (m - n, n), float_dtype(R), like=device_like(R))
            R = N.concatenate([R, zeros], axis=-2)
    if mode == "r":
        return R
    return _result("QRResult", Q, R)


@implements(np.linalg.eig)
def eig(a):
    """Always complex (as JAX), eigenvectors normalised as LAPACK's."""
    _square(a, "eig")
    r = EIG(a)
    return _result("EigResult", _row(r, 0), _rows(r, 1))


@implements(np.linalg.eigvals)
def eigvals(a):
    return eig(a)[0]


@implements(np.linalg.pinv)
def pinv(a, rcond=None, hermitian=False, *, rtol=np._NoValue):
    _real_only_matrix(a, "pinv")
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
        res = N.sum(multiply(r, r), axis=0)
        if P.ndim_of(b) == 1:
            res = N.reshape(res, (1,))
    else:
        res = np.empty((0,), float_dtype(a))
    return x, res, rank, svdvals(a)


@implements(np.linalg.matrix_power)
def matrix_power(a, n):
    _square(a, "matrix_power")
    n = int(n)
    if n == 0:
        s = shape_of(a)
        return np.broadcast_to(_eye(s[-1], a), s).copy()
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
    if p is None or p in (2, -2):
        s = svdvals(x)
        hi, lo = N.max(s, axis=-1), N.min(s, axis=-1)
        return divide(lo, hi) if p == -2 else divide(hi, lo)
    return multiply(N.norm(x, p, axis=(-2, -1)), N.norm(P.inv(x), p, axis=(-2, -1)))


def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    return N.norm(x, ord, axis=(-2, -1), keepdims=keepdims)


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    if axis is None:
        r = N.norm(N.ravel(x), ord, axis=0)
        return N.reshape(r, (1,) * P.ndim_of(x)) if keepdims else r
    if isinstance(axis, (tuple, list)) and len(axis) > 1:  # one vector per axis group
        nd = P.ndim_of(x)
        axes = [a % nd for a in axis]
        rest = [i for i in range(nd) if i not in axes]
        moved = N.transpose(x, rest + axes)
        shp = [shape_of(x)[i] for i in rest]
        r = N.norm(N.reshape(moved, tuple(shp) + (-1,)), ord, axis=-1)
        if keepdims:
            r = N.reshape(r, tuple(1 if i in axes else shape_of(x)[i] for i in range(nd)))
        return r
    return N.norm(x, ord, axis=axis, keepdims=keepdims)


if hasattr(np.linalg, "matrix_norm"):
    implements(np.linalg.matrix_norm)(matrix_norm)
    implements(np.linalg.vector_norm)(vector_norm)


@implements(np.linalg.tensorinv)
def tensorinv(a, ind=2):
    s = shape_of(a)
    rows = int(np.prod(s[:ind], dtype=np.int64))
    ia = P.inv(N.reshape(a, (rows, -1)))
    return N.reshape(ia, s[ind:] + s[:ind])


@implements(np.linalg.tensorsolve)
def tensorsolve(a, b, axes=None):
    an = P.ndim_of(a)
    if axes is not None:
        order = [k for k in range(an) if k not in [x % an for x in axes]] + \
            [x % an for x in axes]
        a = N.transpose(a, order)
    old = shape_of(a)[-(an - P.ndim_of(b)):]
    size = int(np.prod(old, dtype=np.int64))
    x = solve(N.reshape(a, (-1, size)), N.ravel(b))
    return N.reshape(x, old)


# ---------------------------------------------------------------------------
# scipy.linalg equivalents (scipy converts with np.asarray: a traced value cannot pass)
# ---------------------------------------------------------------------------

def _triangle(a, lower, unit_diagonal=False):
    n = shape_of(a)[-1]
    keep = (np.tril if lower else np.triu)(np.ones((n, n), like=device_like(a)),
                                           0 if not unit_diagonal else
                                           (-1 if lower else 1)).astype(float_dtype(a))
    t = multiply(a, keep)
    return add(t, _eye(n, a)) if unit_diagonal else t


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
                     check_finite=True):
    """scipy.linalg.solve_triangular: only ``a``'s triangle is read (and differentiated)."""
    t = _triangle(a, lower, unit_diagonal)
    if trans in (1, "T", 2, "C"):
        t = _T(t)
    return solve(t, b)


def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
    """scipy.linalg.cho_factor: (c, lower); c's other triangle is zero (scipy's is junk)."""
    if lower:
        return N.cholesky(a), True
    return _T(N.cholesky(_T(a))), False  # reads a's upper triangle, as scipy does


def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
    c, lower = c_and_lower
    L = _triangle(c, True) if lower else _T(_triangle(c, False))
    return solve(_T(L), solve(L, b))


_PADE13 = (64764752532480000.0, 32382376266240000.0, 7771770303897600.0,
           1187353796428800.0, 129060195264000.0, 10559470521600.0, 670442572800.0,
           33522128640.0, 1323241920.0, 40840800.0, 960960.0, 16380.0, 182.0, 1.0)
_THETA13 = 5.371920351148152


def expm(A):
    """scipy.linalg.expm: scaling and squaring with the [13/13] Padé approximant (Higham
    2005), built from matmul and solve, so every order of derivative is the approximant's
    (accurate to about machine precision).  The number of squarings is chosen from the
    raw 1-norm (the largest over a stack) and is constant for the derivative."""
    raw = _raw_array(A)
    n = raw.shape[-1]
    norm1 = float(np.max(np.sum(np.abs(raw), axis=-2))) if raw.size else 0.0
    s = max(0, int(math.ceil(math.log2(norm1 / _THETA13)))) if norm1 > _THETA13 else 0
    X = multiply(A, 2.0 ** -s) if s else A
    b = _PADE13
    ident = _eye(n, A)
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
