"""Linear algebra rows: ``matmul``, ``inv``, ``det``, ``logabsdet``, ``solve``,
``cholesky``, and the matrix decompositions ``eigh``, ``svd``, ``qr``, ``eig``, ``pinv``
with the helper row ``orth_complement``.

A decomposition has several outputs and a row has one, so each row returns its outputs
*packed* along the second-to-last axis and the numpy-facing function
(``dualgrad.numpy.linalg``) slices them out (``eigh``: row 0 holds ``w``, rows 1.. hold
``V``; ``packed_row``/``packed_rows``).  Slicing is ``getitem``, so a loss that uses only
some outputs sends exact zeros to the rest.  The rules, their sources and what they do
at degenerate points are described in ``dualgrad.numpy.linalg``'s docstring.
"""

import numpy as np

from .. import backend
from .. import rules as P  # the rows by name (P.real): rules/__init__ binds them first
from .elementwise import add, divide, multiply, negative, subtract, where
from .indexing import getitem
from .reductions import expand_dims, sum_
from .structure import concatenate, reshape, transpose
from .table import (
    align_batched,
    batch_shape,
    batch_trailing,
    bfront,
    complex_dtype,
    defprim,
    device_like,
    float_dtype,
    may_any,
    ndim_of,
    real_dtype,
    shape_of,
    unbox,
    unbroadcast,
)

# ---------------------------------------------------------------------------
# linear algebra
# ---------------------------------------------------------------------------

def mT(x):
    """x with its last two axes swapped (numpy's ``x.mT``): a stack of matrices transposed."""
    n = ndim_of(x)
    return transpose(x, tuple(range(n - 2)) + (n - 1, n - 2))


def _as2d(x, n, side):
    """Promote a 1-D matmul operand to 2-D as numpy does: (1, m) left, (m, 1) right."""
    return x if n > 1 else expand_dims(x, (-2,) if side == 0 else (-1,))


def _lift(t, nd, bnd):
    """Insert size-1 axes after a tangent's batch axes so matmul's broadcasting lines up."""
    nb = ndim_of(t) - nd
    pad = bnd - (nd - 2)
    if nb == 0 or pad <= 0:
        return t
    s = shape_of(t)
    return reshape(t, s[:nb] + (1,) * pad + s[nb:])


def _matmul_jvp(tangents, ans, x, y):
    tx, ty = tangents
    nx, ny = ndim_of(x), ndim_of(y)
    if nx == 2 and ny == 1:  # matrix @ vector: all k directions in one matrix product
        out = None if ty is None else matmul(ty, mT(x))
        if tx is not None:
            r = matmul(tx, y)
            out = r if out is None else add(out, r)
        return out
    bnd = max(nx, ny, 2) - 2
    out = None
    if tx is not None:
        out = matmul(_lift(_as2d(tx, nx, 0), max(nx, 2), bnd), _as2d(y, ny, 1))
    if ty is not None:
        r = matmul(_as2d(x, nx, 0), _lift(_as2d(ty, ny, 1), max(ny, 2), bnd))
        out = r if out is None else add(out, r)
    t = tx if tx is not None else ty
    return reshape(out, batch_shape(t, x if tx is not None else y) + shape_of(ans))


def _matmul_vjp_x(g, ans, x, y):
    nb = ndim_of(g) - ndim_of(ans)
    nx, ny = ndim_of(x), ndim_of(y)
    if nx > 1 and ny > 1:
        return unbroadcast(matmul(g, mT(y)), shape_of(x), nb)
    x2, y2 = _as2d(x, nx, 0), _as2d(y, ny, 1)
    g2 = reshape(g, batch_shape(g, ans) + _mm_shape(x2, y2))
    c = unbroadcast(matmul(g2, mT(y2)), shape_of(x2), nb)
    return reshape(c, batch_shape(g, ans) + shape_of(x))


def _matmul_vjp_y(g, ans, x, y):
    nb = ndim_of(g) - ndim_of(ans)
    nx, ny = ndim_of(x), ndim_of(y)
    if nx == 2 and ny == 1:  # all k cotangent rows in one matrix product
        return matmul(g, x)
    if nx > 1 and ny > 1:
        return unbroadcast(matmul(mT(x), g), shape_of(y), nb)
    x2, y2 = _as2d(x, nx, 0), _as2d(y, ny, 1)
    g2 = reshape(g, batch_shape(g, ans) + _mm_shape(x2, y2))
    c = unbroadcast(matmul(mT(x2), g2), shape_of(y2), nb)
    return reshape(c, batch_shape(g, ans) + shape_of(y))


def _mm_shape(a, b):
    sa, sb = shape_of(a), shape_of(b)
    return np.broadcast_shapes(sa[:-2], sb[:-2]) + (sa[-2], sb[-1])


def _matmul_batch(args, dims):
    """matmul with a batch axis: a batched operand that is a stack of vectors or matrices
    against a plain matrix is one matrix product; the rest promote 1-D operands as numpy
    does, line up their leading axes behind the batch axis and broadcast."""
    (x, y), (dx, dy) = args, dims
    nx, ny = ndim_of(x) - (dx is not None), ndim_of(y) - (dy is not None)
    if dy is None and ny == 2:  # (B, ..., k) @ (k, m): one product over all rows
        x = bfront(x, dx)
        s = shape_of(x)
        if len(s) == 2:
            return matmul(x, y), 0
        return reshape(matmul(reshape(x, (-1, s[-1])), y), s[:-1] + shape_of(y)[-1:]), 0
    if dx is None and nx == 2 and ny == 1:  # (n, k) @ (B, k)
        return matmul(bfront(y, dy), mT(x)), 0
    px, py = dx is not None and nx == 1, dy is not None and ny == 1  # promoted to 2-D
    if px:
        x = expand_dims(bfront(x, dx), (-2,))
    if py:
        y = expand_dims(bfront(y, dy), (-1,))
    x, y = align_batched((x, y), (0 if px else dx, 0 if py else dy))
    if dx is not None and dy is not None and shape_of(x)[-1] == 1:
        r = multiply(x, y)  # a batch of outer products: no stacked matrix products
    else:
        r = matmul(x, y)
    if not (px or py):
        return r, 0
    s = shape_of(r)
    if py:
        s = s[:-1]
    if px:
        s = s[:-1] if ny == 1 else s[:-2] + s[-1:]  # a vector y left no column axis
    return reshape(r, s), 0


matmul = defprim("matmul", backend.matmul, ufunc=np.matmul, jvp=_matmul_jvp,
                 vjp=(_matmul_vjp_x, _matmul_vjp_y), batch=_matmul_batch)


def _trace_last2(a):
    n = shape_of(a)[-1]
    return sum_(multiply(a, np.eye(n, dtype=float_dtype(a), like=device_like(a))), axis=(-2, -1),
                keepdims=False)


def _solve_vec(a, b):
    """solve(a, b) for a batch of vectors b (..., n), whatever numpy thinks of its rank."""
    return getitem(solve(a, expand_dims(b, (-1,))), (Ellipsis, 0))


def _expand2(g):
    return expand_dims(g, (-2, -1))


inv = defprim("inv", np.linalg.inv,
              jvp=(lambda t, ans, x: negative(matmul(ans, matmul(t, ans))),),
              vjp=(lambda g, ans, x: negative(matmul(mT(ans), matmul(g, mT(ans)))),),
              batch=batch_trailing("inv"))
det = defprim("det", np.linalg.det,
              jvp=(lambda t, ans, x: multiply(ans, _trace_last2(solve(x, t))),),
              vjp=(lambda g, ans, x: multiply(_expand2(multiply(g, ans)), mT(inv(x))),),
              batch=batch_trailing("det"))
logabsdet = defprim("logabsdet", lambda x: np.linalg.slogdet(x)[1],
                    jvp=(lambda t, ans, x: _trace_last2(solve(x, t)),),
                    vjp=(lambda g, ans, x: multiply(_expand2(g), mT(inv(x))),),
                    real_only="its rules assume a real matrix",
                    batch=batch_trailing("logabsdet"), dtype=real_dtype)


def _solve_jvp(tangents, ans, a, b):
    """d(a⁻¹b) = a⁻¹(db − da·ans).  The tangents' leading batch axes go in front of every
    axis of ``ans`` (which may itself be batched: a cotangent under forward mode), so
    each tangent is lifted to ans's rank before the products broadcast."""
    ta, tb = tangents
    vec = ndim_of(b) == 1
    ans_m = expand_dims(ans, (-1,)) if vec else ans  # (..., M, K), K = 1 for a vector b
    rank = ndim_of(ans_m)
    rhs = None
    if ta is not None:
        rhs = negative(matmul(_lift(ta, ndim_of(a), rank - 2), ans_m))
    if tb is not None:
        tb = _lift(expand_dims(tb, (-1,)) if vec else tb, ndim_of(b) + vec, rank - 2)
        rhs = tb if rhs is None else add(rhs, tb)
    out = solve(a, rhs)
    return getitem(out, (Ellipsis, 0)) if vec else out


def _solve_vjp_a(g, ans, a, b):
    nb = ndim_of(g) - ndim_of(ans)
    gb = _solve_vjp_b(g, ans, a, b, reduce=False)
    if ndim_of(b) == 1:
        c = negative(multiply(expand_dims(gb, (-1,)), expand_dims(ans, (-2,))))
    else:
        c = negative(matmul(gb, mT(ans)))
    return unbroadcast(c, shape_of(a), nb)


def _solve_vjp_b(g, ans, a, b, reduce=True):
    nb = ndim_of(g) - ndim_of(ans)
    c = _solve_vec(mT(a), g) if ndim_of(b) == 1 else solve(mT(a), g)
    return unbroadcast(c, shape_of(b), nb) if reduce else c


def _solve_batch(args, dims):
    """solve with a batch axis: a vector right-hand side (per example) becomes an n x 1
    matrix, so numpy never mistakes the batch axis for a matrix axis."""
    (a, b), (da, db) = args, dims
    if ndim_of(b) - (db is not None) == 1:
        b = expand_dims(bfront(b, db), (-1,))
        a, b = align_batched((a, b), (da, None if db is None else 0))
        return getitem(solve(a, b), (Ellipsis, 0)), 0
    a, b = align_batched((a, b), dims)
    return solve(a, b), 0


solve = defprim("solve", np.linalg.solve, jvp=_solve_jvp, vjp=(_solve_vjp_a, _solve_vjp_b),
                batch=_solve_batch)


def _phi(x):
    """Lower triangle with the diagonal halved (the cholesky derivative's projection)."""
    n = shape_of(x)[-1]
    like = device_like(x)
    return multiply(x, (np.tril(np.ones((n, n), like=like)) - 0.5 * np.eye(n, like=like))
                    .astype(float_dtype(x)))


def _cholesky_jvp(t, L, x):
    s = multiply(0.5, add(t, mT(t)))
    return matmul(L, _phi(solve(L, mT(solve(L, s)))))


def _cholesky_vjp(g, L, x):
    p = _phi(matmul(mT(L), g))
    y = solve(mT(L), p)
    a = mT(solve(mT(L), mT(y)))
    return multiply(0.5, add(a, mT(a)))


cholesky = defprim("cholesky", np.linalg.cholesky, jvp=(_cholesky_jvp,), vjp=(_cholesky_vjp,),
                   real_only="its rules assume a real symmetric matrix",
                   batch=batch_trailing("cholesky"))


# ---------------------------------------------------------------------------
# the decompositions
# ---------------------------------------------------------------------------

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
              batch=P.batch_trailing("eig"), dtype=complex_dtype)


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
