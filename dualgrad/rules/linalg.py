"""The matrix decompositions as rows: ``eigh``, ``svd``, ``qr``, ``eig``, ``pinv`` and the
helper row ``orth_complement``, with the helpers their rules are written with.

A decomposition has several outputs and a row has one, so each row returns its outputs
*packed* along the second-to-last axis and the numpy-facing function
(``dualgrad.numpy.linalg``) slices them out (``eigh``: row 0 holds ``w``, rows 1.. hold
``V``; ``packed_row``/``packed_rows``).  Slicing is ``getitem``, so a loss that uses only
some outputs sends exact zeros to the rest.  The rules, their sources and what they do
at degenerate points are described in ``dualgrad.numpy.linalg``'s docstring.
"""

import numpy as np

from . import table as P
from .table import (
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
    mT,
    multiply,
    negative,
    shape_of,
    solve,
    subtract,
    sum_,
    unbox,
    where,
)

_E = Ellipsis
_ALL = slice(None)


# ---------------------------------------------------------------------------
# helpers for the rules (written with primitives: they differentiate again)
# ---------------------------------------------------------------------------

def eye_like(n, like):
    return np.eye(n, dtype=float_dtype(like), like=device_like(like))


def raw_array(v):
    """v's raw numbers as an array where they live: numpy's for host values, the device
    array itself for device ones (never copied to the host)."""
    r = unbox(v)
    return r if device_like(r) is not None else np.asarray(r)


def _diag(S):
    """The diagonal of the last two axes: (..., n, n) -> (..., n)."""
    return sum_(multiply(S, eye_like(shape_of(S)[-1], S)), axis=(-1,), keepdims=False)


def _diag_embed(v):
    """(..., n) -> (..., n, n) with ``v`` on the diagonal."""
    return multiply(expand_dims(v, (-1,)), eye_like(shape_of(v)[-1], v))


def _sym(t):
    return multiply(0.5, add(t, mT(t)))


def _tril_strict(x):
    n = shape_of(x)[-1]
    return multiply(x, np.tril(np.ones((n, n), like=device_like(x)), -1).astype(float_dtype(x)))


def packed_rows(x, start, stop=None):
    return getitem(x, (_E, slice(start, stop), _ALL))


def packed_row(x, i):
    return getitem(x, (_E, i, _ALL))


def _pack(*parts):
    return concatenate(*parts, axis=-2)


def _tol(v):
    """Values closer than this count as equal: n·eps·max|v| (each matrix of a stack)."""
    r = np.abs(raw_array(v))
    n = r.shape[-1]
    eps = np.finfo(r.dtype).eps
    return n * eps * np.max(r, axis=-1, keepdims=True) if n else \
        np.zeros(r.shape[:-1] + (1,), like=device_like(r))


def _gaps(v, squared=False):
    """F_ij = 1/(v_j - v_i) (or 1/(v_j² - v_i²)) off the diagonal, 0 on it and at
    degenerate pairs, and the raw mask of the degenerate pairs."""
    vj, vi = expand_dims(v, (-2,)), expand_dims(v, (-1,))
    d = multiply(add(vj, vi), subtract(vj, vi)) if squared else subtract(vj, vi)
    r = raw_array(v)
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
    nz = raw_array(X) != 0 if nz is None else nz
    return _poison(y, deg & nz)


def _inv_small(v):
    """1/v with 0 where |v| is negligible, and that raw mask."""
    small = np.abs(raw_array(v)) <= _tol(v)
    return where(small, 0.0, divide(1.0, where(small, 1.0, v))), small


def real_only_matrix(x, name):
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
    w, V = packed_row(ans, 0), packed_rows(ans, 1)
    S = matmul(mT(V), matmul(_sym(t), V))
    F, deg = _gaps(w)
    dV = matmul(V, _pairs(F, deg, S))
    return _pack(expand_dims(_diag(S), (-2,)), dV)


def _eigh_vjp(g, ans, x, uplo):
    w, V = packed_row(ans, 0), packed_rows(ans, 1)
    gw, gV = packed_row(g, 0), packed_rows(g, 1)
    F, deg = _gaps(w)
    inner = add(_diag_embed(gw), _pairs(F, deg, matmul(mT(V), gV)))
    return _sym(matmul(V, matmul(inner, mT(V))))


EIGH = defprim("eigh", _eigh_impl, jvp=(_eigh_jvp,), vjp=(_eigh_vjp,),
               real_only="its rules assume a real symmetric matrix",
               batch=P.batch_trailing("eigh"))


# ---------------------------------------------------------------------------
# svd (reduced): packed as [U; s; V] of shape (..., m + 1 + n, k), k = min(m, n)
# ---------------------------------------------------------------------------

def _svd_impl(x):
    u, s, vh = np.linalg.svd(x, full_matrices=False)
    return np.concatenate([u, s[..., None, :], np.swapaxes(vh, -1, -2)], axis=-2)


def svd_parts(ans, x):
    m = shape_of(x)[-2]
    return packed_rows(ans, 0, m), packed_row(ans, m), packed_rows(ans, m + 1)


def _svd_jvp(t, ans, x):
    U, s, V = svd_parts(ans, x)
    m, n = shape_of(x)[-2:]
    dS = matmul(mT(U), matmul(t, V))
    si, sj = expand_dims(s, (-1,)), expand_dims(s, (-2,))
    F, deg = _gaps(s, squared=True)
    rdS = raw_array(dS)
    nz = (rdS != 0) | (np.swapaxes(rdS, -1, -2) != 0)
    dSt = mT(dS)
    dU = matmul(U, _pairs(F, deg, add(multiply(dS, sj), multiply(si, dSt)), nz))
    dV = matmul(V, _pairs(F, deg, add(multiply(si, dS), multiply(dSt, sj)), nz))
    if m != n:
        inv, small = _inv_small(s)
        if m > n:
            tV = matmul(t, V)
            perp = subtract(tV, matmul(U, matmul(mT(U), tV)))
            dU = add(dU, _cols_over(perp, inv, small))
        else:
            tU = matmul(mT(t), U)
            perp = subtract(tU, matmul(V, matmul(mT(V), tU)))
            dV = add(dV, _cols_over(perp, inv, small))
    return _pack(dU, expand_dims(_diag(dS), (-2,)), dV)


def _cols_over(y, inv, small):
    """y's columns divided by s (NaN for a non-zero column over a zero s)."""
    r = multiply(y, expand_dims(inv, (-2,)))
    if may_any(small):
        r = _poison(r, small[..., None, :] & (raw_array(y) != 0))
    return r


def _svd_vjp(g, ans, x):
    U, s, V = svd_parts(ans, x)
    gU, gs, gV = svd_parts(g, x)
    m, n = shape_of(x)[-2:]
    si, sj = expand_dims(s, (-1,)), expand_dims(s, (-2,))
    F, deg = _gaps(s, squared=True)
    Y = _pairs(F, deg, matmul(mT(U), gU))
    Z = _pairs(F, deg, matmul(mT(V), gV))
    gdS = add(add(multiply(add(Y, mT(Y)), sj), multiply(si, add(Z, mT(Z)))), _diag_embed(gs))
    gA = matmul(U, matmul(gdS, mT(V)))
    if m != n:
        inv, small = _inv_small(s)
        if m > n:
            perp = subtract(gU, matmul(U, matmul(mT(U), gU)))
            gA = add(gA, matmul(_cols_over(perp, inv, small), mT(V)))
        else:
            perp = subtract(gV, matmul(V, matmul(mT(V), gV)))
            gA = add(gA, matmul(U, mT(_cols_over(perp, inv, small))))
    return gA


SVD = defprim("svd", _svd_impl, jvp=(_svd_jvp,), vjp=(_svd_vjp,),
              real_only="its rules assume a real matrix", batch=P.batch_trailing("svd"))


# The extra columns of a full SVD's U (complete QR's Q) span the orthogonal complement of
# the first k; only that span is determined by A.  This row returns numpy's basis of it
# and differentiates it with the choice that has no rotation inside the complement:
# dU2 = -U1 dU1ᵀ U2 (so U1ᵀU2 = 0 and U2ᵀdU2 = 0 hold to first order).
ORTHC = defprim(
    "orth_complement", lambda u1, basis: basis,
    jvp=(lambda t, ans, u1, basis: negative(matmul(u1, matmul(mT(t), ans))),),
    vjp=(lambda g, ans, u1, basis: negative(matmul(ans, matmul(mT(g), u1))),),
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


def qr_parts(ans, x):
    m = shape_of(x)[-2]
    return packed_rows(ans, 0, m), mT(packed_rows(ans, m))


def _qr_jvp(t, ans, x):
    Q, R = qr_parts(ans, x)
    B = mT(solve(mT(R), mT(t)))            # dA R⁻¹
    C = matmul(mT(Q), B)
    L = _tril_strict(C)
    W = subtract(L, mT(L))                  # skew-symmetric
    dQ = add(matmul(Q, subtract(W, C)), B)
    dR = matmul(subtract(C, W), R)
    return _pack(dQ, mT(dR))


def _qr_vjp(g, ans, x):
    Q, R = qr_parts(ans, x)
    gQ, gR = qr_parts(g, x)
    QtgQ = matmul(mT(Q), gQ)
    gRRt = matmul(gR, mT(R))
    M = subtract(QtgQ, gRRt)
    K = add(_tril_strict(subtract(M, mT(M))), gRRt)
    gB = add(matmul(Q, subtract(K, QtgQ)), gQ)
    return mT(solve(R, mT(gB)))             # gB R⁻ᵀ


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
    r = np.abs(raw_array(V))
    k = np.argmax(r, axis=-2)
    rows = np.arange(r.shape[-2], like=device_like(r))[:, None]
    return (rows == k[..., None, :]).astype(float_dtype(V))  # one True per column


def _eig_jvp(t, ans, x):
    w, V = packed_row(ans, 0), packed_rows(ans, 1)
    Pm = solve(V, matmul(t, V))             # V⁻¹ dA V
    F, deg = _gaps(w)
    U = matmul(V, _pairs(F, deg, Pm))
    mask = _argmax_mask(V)
    c_re = negative(P.real(sum_(multiply(P.conjugate(V), U), axis=(-2,), keepdims=False)))
    vk = P.real(sum_(multiply(mask, V), axis=(-2,), keepdims=False))
    c_im = negative(divide(P.imag(sum_(multiply(mask, U), axis=(-2,), keepdims=False)), vk))
    c = add(c_re, multiply(c_im, P.complex_one(V, 1j)))
    dV = add(U, multiply(V, expand_dims(c, (-2,))))
    return _pack(expand_dims(_diag(Pm), (-2,)), dV)


def _eig_vjp(g, ans, x):
    w, V = packed_row(ans, 0), packed_rows(ans, 1)
    gw, gV = packed_row(g, 0), packed_rows(g, 1)
    mask = _argmax_mask(V)
    h = sum_(multiply(gV, V), axis=(-2,), keepdims=False)
    vk = P.real(sum_(multiply(mask, V), axis=(-2,), keepdims=False))
    gU = subtract(gV, multiply(P.conjugate(V), expand_dims(P.real(h), (-2,))))
    gU = subtract(gU, multiply(mask, expand_dims(
        multiply(divide(P.imag(h), vk), P.complex_one(V, 1j)), (-2,))))
    F, deg = _gaps(w)
    gP = add(_pairs(F, deg, matmul(mT(V), gU)), _diag_embed(gw))
    gA = solve(mT(V), matmul(gP, mT(V)))    # V⁻ᵀ gP Vᵀ
    return P.real_for(gA, x)


EIG = defprim("eig", _eig_impl, jvp=(_eig_jvp,), vjp=(_eig_vjp,),
              batch=P.batch_trailing("eig"))


# ---------------------------------------------------------------------------
# pinv (Golub & Pereyra: the derivative at constant rank)
# ---------------------------------------------------------------------------

def _pinv_impl(x, rtol):
    return np.linalg.pinv(x) if rtol is None else np.linalg.pinv(x, rcond=rtol)


def _pinv_jvp(t, ans, x, rtol):
    Pm, tT = ans, mT(t)
    m, n = shape_of(x)[-2:]
    left = subtract(eye_like(m, x), matmul(x, Pm))     # I - A A⁺
    right = subtract(eye_like(n, x), matmul(Pm, x))    # I - A⁺ A
    r = negative(matmul(Pm, matmul(t, Pm)))
    r = add(r, matmul(matmul(Pm, mT(Pm)), matmul(tT, left)))
    return add(r, matmul(right, matmul(tT, matmul(mT(Pm), Pm))))


def _pinv_vjp(g, ans, x, rtol):
    Pm, gT = ans, mT(g)
    m, n = shape_of(x)[-2:]
    left = subtract(eye_like(m, x), matmul(x, Pm))
    right = subtract(eye_like(n, x), matmul(Pm, x))
    r = negative(matmul(mT(Pm), matmul(g, mT(Pm))))
    r = add(r, matmul(left, matmul(gT, matmul(Pm, mT(Pm)))))
    return add(r, matmul(matmul(mT(Pm), Pm), matmul(gT, right)))


PINV = defprim("pinv", _pinv_impl, jvp=(_pinv_jvp,), vjp=(_pinv_vjp,),
               real_only="its rules assume a real matrix", batch=P.batch_trailing("pinv"))
