"""scipy.sparse on traced values: a sparse matrix times a traced dense array, and
sparse matrices whose stored entries (``data``) are traced, for a fixed sparsity pattern.

scipy's own sparse matrices cannot see traced values: ``A @ x`` with a traced ``x``
converts ``x`` with ``np.asarray`` (an object array) and fails inside scipy's C loop
("unsupported data types in input").  The supported routes:

- ``matmul(A, x)`` / ``dot(A, x)`` (and ``matmul(x, A)``) for any scipy sparse matrix or
  array (csr, csc, coo; ``*_matrix`` and ``*_array``) and a dense ``x``, traced or not;
- this module's constructors, with scipy's signatures: ``csr_matrix((data, indices,
  indptr), shape=...)``, ``csc_matrix(...)``, ``coo_matrix((data, (row, col)), shape=...)``
  and the ``*_array`` names, or ``from_pattern(A, data)`` (A's pattern, new ``data`` in
  A's order).  They return a ``SparseMatrix``, whose ``data`` may be traced, with ``@``
  on either side, ``.dot``, ``.T``, ``.toarray()``, and which ``sparse.linalg.spsolve``
  and ``sparse.linalg.cg`` take.  ``x @ A`` with a traced ``x`` goes through dualgrad's
  own matmul (constant ``A`` only; with a traced ``A.data`` write ``matmul(x, A)``).

Everything is one primitive, CSR times a stack of dense matrices, ``spmm(data, x)``,
linear in each argument: its JVP is ``spmm`` again (and, in ``data``, a gather of x times
the tangent summed per row), its VJP in x is ``spmm`` with the transposed pattern and in
``data`` the per-nonzero products Σ ḡ[row]·x[col]; all written with primitives, so every
order, ``vmap`` and ``dg.jit`` go through.

    >>> import numpy as np, scipy.sparse as sp, dualgrad as dg
    >>> from dualgrad.scipy import sparse
    >>> A = sp.csr_matrix(np.array([[2.0, 0.0], [1.0, 3.0]]))
    >>> dg.grad(lambda x: sparse.matmul(A, x).sum())(np.ones(2))
    array([3., 3.])
    >>> dg.grad(lambda d: (sparse.from_pattern(A, d) @ np.ones(2)).sum())(A.data)
    array([1., 1., 1.])
"""

import sys
import weakref

import numpy as np
import scipy.sparse as sp

from ...core.trace import Box, Primitive, unbox
from ...core.tree import tree_flatten

__all__ = ["SparseMatrix", "matmul", "dot", "from_pattern", "csr_matrix", "csr_array",
           "csc_matrix", "csc_array", "coo_matrix", "coo_array", "issparse", "spmm"]


def _traced(*xs):
    """Is any leaf of ``xs`` traced (a SparseMatrix: its data)?"""
    return any(isinstance(leaf.data if isinstance(leaf, SparseMatrix) else leaf, Box)
               for x in xs for leaf in tree_flatten(x)[0])


def _shape(x):
    return np.shape(unbox(x))


def _fdtype(x):
    return np.result_type(unbox(x), 1.0)


# ---------------------------------------------------------------------------
# the pattern: CSR indices of a fixed set of stored entries (duplicates allowed)
# ---------------------------------------------------------------------------

class Pattern:
    """A CSR sparsity pattern (``shape``, ``indices``, ``indptr``), with each stored entry's
    row, and, made on first use, the transposed pattern with the permutation ``tperm``
    that puts the entries in its order.  Hashes by identity (a constant of the graph)."""

    __slots__ = ("shape", "indices", "indptr", "rows", "_t", "_rowsum", "__weakref__")

    def __init__(self, shape, indices, indptr):
        self.shape = (int(shape[0]), int(shape[1]))
        self.indices = np.asarray(indices, dtype=np.intp)
        self.indptr = np.asarray(indptr, dtype=np.intp)
        if self.indptr.shape != (self.shape[0] + 1,) or self.indptr[-1] != len(self.indices):
            raise ValueError(f"sparse pattern: indptr must have {self.shape[0] + 1} entries "
                             f"ending at nnz={len(self.indices)}")
        if len(self.indices) and (self.indices.min() < 0 or
                                  self.indices.max() >= self.shape[1]):
            raise ValueError(f"sparse pattern: column indices must lie in [0, {self.shape[1]})")
        self.rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        self._t = self._rowsum = None

    @property
    def nnz(self):
        return len(self.indices)

    @classmethod
    def from_coords(cls, rows, cols, shape):
        """The pattern of entries at (rows, cols), in CSR order; and the permutation that
        takes data in the given order to CSR order (None when it is the identity)."""
        rows, cols = np.asarray(rows, np.intp), np.asarray(cols, np.intp)
        order = np.lexsort((cols, rows))
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=shape[0]))])
        perm = None if np.array_equal(order, np.arange(len(order))) else order
        return cls(shape, cols[order], indptr), perm

    @property
    def T(self):
        """(transposed pattern, tperm): data_T = data[tperm]."""
        if self._t is None:  # rows ascend: a stable sort by column is the transpose's order
            tperm = np.argsort(self.indices, kind="stable")
            indptr = np.concatenate([[0], np.cumsum(np.bincount(self.indices,
                                                                minlength=self.shape[1]))])
            self._t = (Pattern(self.shape[::-1], self.rows[tperm], indptr), tperm)
        return self._t

    @property
    def rowsum(self):
        """The (M, nnz) pattern summing the stored entries of each row (data all ones)."""
        if self._rowsum is None:
            self._rowsum = Pattern((self.shape[0], self.nnz), np.arange(self.nnz),
                                   self.indptr)
        return self._rowsum

    def csr(self, data):
        return sp.csr_matrix((np.asarray(data), self.indices, self.indptr), shape=self.shape)


def columns(x, fn, rows_out):
    """``fn`` on x (..., N, K) as one (N, ...·K) matrix; the result back as (..., R, K)."""
    x = np.asarray(x)
    lead, (n, k) = x.shape[:-2], x.shape[-2:]
    X = np.moveaxis(x, -2, 0).reshape(n, -1)
    Y = np.asarray(fn(X))
    return np.moveaxis(Y.reshape((rows_out,) + lead + (k,)), 0, -2)


# ---------------------------------------------------------------------------
# spmm: the primitive
# ---------------------------------------------------------------------------

def by_data(d, x, pattern, trans=False):
    """A(d) @ x (trans: A(d)ᵀ @ x) for data ``d`` with leading axes (tangents, a batch),
    as gathers and a per-row sum, so it is linear in d and x and differentiates again."""
    if trans:
        t, tperm = pattern.T
        return by_data(np.take(d, tperm, axis=-1), x, t)
    xs = _shape(x)
    xg = np.take(x, pattern.indices, axis=-2)                     # (xl..., nnz, K)
    ds = _shape(d)
    dr = np.reshape(d, ds[:-1] + (1,) * (len(xs) - 2) + (ds[-1], 1))
    ones = np.ones(pattern.nnz, _fdtype(x))
    return spmm(ones, dr * xg, pattern=pattern.rowsum)


def nz_products(u, v, pattern, trans=False):
    """Σ u[row]·v[col] per stored entry (trans: u[col]·v[row]), summed over K and over
    v's leading axes; u may have extra leading axes (cotangents)."""
    ui, vi = (pattern.indices, pattern.rows) if trans else (pattern.rows, pattern.indices)
    p = np.take(u, ui, axis=-2) * np.take(v, vi, axis=-2)
    nl = len(_shape(v)) - 2
    return np.sum(p, axis=(-1,) + tuple(range(-2 - nl, -2)))


def _spmm_jvp(tangents, ans, data, x, pattern):
    td, tx = tangents
    out = None if tx is None else spmm(data, tx, pattern=pattern)
    if td is not None:
        r = by_data(td, x, pattern)
        out = r if out is None else out + r
    return out


def _spmm_vjp_x(g, ans, data, x, pattern):
    t, tperm = pattern.T
    return spmm(np.take(data, tperm), g, pattern=t)


def _spmm_vjp_data(g, ans, data, x, pattern):
    return nz_products(g, x, pattern)


def _spmm_batch(args, dims, pattern):
    (data, x), (dd, dx) = args, dims
    if dd is None:
        return spmm(data, np.moveaxis(x, dx, 0), pattern=pattern), 0
    d = np.moveaxis(data, dd, 0)
    if dx is None:
        return by_data(d, x, pattern), 0
    xm = np.moveaxis(x, dx, 0)                                    # (B, xl..., N, K)
    xg = np.take(xm, pattern.indices, axis=-2)
    nl = len(_shape(xm)) - 3
    dr = np.reshape(d, (_shape(d)[0],) + (1,) * nl + (pattern.nnz, 1))
    return spmm(np.ones(pattern.nnz, _fdtype(xm)), dr * xg, pattern=pattern.rowsum), 0


# spmm(data, x, pattern=p): the CSR matrix (p, data) times x of shape (..., N, K)
spmm = Primitive("sparse_matmul",
                 lambda data, x, pattern: columns(x, pattern.csr(data).__matmul__,
                                                  pattern.shape[0]),
                 jvp=_spmm_jvp, vjp=(_spmm_vjp_data, _spmm_vjp_x), batch=_spmm_batch)


# ---------------------------------------------------------------------------
# SparseMatrix: a pattern and (possibly traced) data
# ---------------------------------------------------------------------------

class SparseMatrix:
    """A sparse matrix with a fixed pattern and ``data`` that may be traced.  ``data`` is
    in the order it was given (``from_pattern``'s A's order, the constructor's); ``A @ x``,
    ``x @ A``, ``A.dot(x)``, ``A.T``, ``A.toarray()``, ``-A``, ``c * A``.

    >>> import numpy as np
    >>> A = csr_matrix((np.array([1.0, 2.0]), np.array([1, 0]), np.array([0, 1, 2])),
    ...                shape=(2, 2))
    >>> A.toarray()
    array([[0., 1.],
           [2., 0.]])
    """

    __array_ufunc__ = None      # numpy's operators defer to ours (x @ A with a plain x)
    __array_priority__ = 20.0
    ndim = 2

    def __init__(self, data, pattern, perm=None, format="csr"):
        if _shape(data) != (pattern.nnz,):
            raise ValueError(f"SparseMatrix: data must have shape ({pattern.nnz},) (one "
                             f"value per stored entry), got {_shape(data)}")
        self.data, self.pattern, self._perm, self.format = data, pattern, perm, format

    shape = property(lambda self: self.pattern.shape)
    nnz = property(lambda self: self.pattern.nnz)
    dtype = property(lambda self: _fdtype(self.data))

    @property
    def csr_data(self):
        """data in the pattern's (CSR) order."""
        return self.data if self._perm is None else np.take(self.data, self._perm)

    def __repr__(self):
        kind = "traced " if _traced(self.data) else ""
        return f"<{self.shape[0]}x{self.shape[1]} SparseMatrix with {self.nnz} {kind}entries>"

    def _matvec(self, x):
        nd = len(_shape(x))
        if nd == 0:
            raise ValueError("matmul: a sparse matrix times a scalar: use '*'")
        if _shape(x)[-1 if nd == 1 else -2] != self.shape[1]:
            raise ValueError(f"matmul: dimension mismatch, sparse {self.shape} @ dense "
                             f"{_shape(x)}")
        if nd == 1:
            return spmm(self.csr_data, x[:, None], pattern=self.pattern)[..., 0]
        return spmm(self.csr_data, x, pattern=self.pattern)

    def _rmatvec(self, x):
        return _swap_last(self.T._matvec(_swap_last(x)))

    def __matmul__(self, other):
        if isinstance(other, SparseMatrix) or sp.issparse(other):
            return NotImplemented
        return self._matvec(other)

    def __rmatmul__(self, other):
        if _traced(self.data) and _from_dualgrad():
            raise TypeError("x @ A with a traced x and a SparseMatrix A whose data is traced: "
                            "write dualgrad.scipy.sparse.matmul(x, A) (or (A.T @ x.T).T)")
        return self._rmatvec(other)

    dot = _matvec

    def transpose(self, axes=None):
        if axes is not None and tuple(axes) != (1, 0):
            raise ValueError(f"SparseMatrix.transpose: axes must be (1, 0), got {axes!r}")
        t, tperm = self.pattern.T
        return SparseMatrix(np.take(self.csr_data, tperm), t)

    T = property(transpose)

    def toarray(self):
        return self._matvec(np.eye(self.shape[1], dtype=_fdtype(self.data)))

    todense = toarray

    def __neg__(self):
        return SparseMatrix(-self.data, self.pattern, self._perm, self.format)

    def __mul__(self, c):
        if np.ndim(unbox(c)) != 0:
            raise TypeError("SparseMatrix * c: c must be a scalar (use @ for products)")
        return SparseMatrix(self.data * c, self.pattern, self._perm, self.format)

    __rmul__ = __mul__

    def to_scipy(self):
        """scipy's csr_matrix of the values (plain data only: scipy's matrix cannot carry
        a derivative)."""
        if _traced(self.data):
            raise TypeError("SparseMatrix.to_scipy: the data is traced and scipy's matrix "
                            "would drop its derivative (use dg.stop_gradient(A.data) first "
                            "if none is wanted)")
        return self.pattern.csr(self.csr_data)


def _swap_last(x):
    return x if len(_shape(x)) < 2 else np.swapaxes(x, -1, -2)


def _from_dualgrad():
    """True when ``__rmatmul__`` is reached from inside dualgrad (a primitive's raw
    implementation applying ``x @ A`` to x's unboxed value): A's traced data would then
    escape the trace that recorded x."""
    f = sys._getframe(2)
    name = f.f_globals.get("__name__", "")
    return name.startswith("dualgrad.") and not name.startswith(__name__)


def issparse(x):
    """scipy.sparse.issparse, also True for a SparseMatrix."""
    return isinstance(x, SparseMatrix) or sp.issparse(x)


def _coords(A):
    fmt = A.format
    M, N = A.shape
    if fmt == "csr":
        return np.repeat(np.arange(M), np.diff(A.indptr)), A.indices
    if fmt == "csc":
        return A.indices, np.repeat(np.arange(N), np.diff(A.indptr))
    if fmt == "coo":
        return A.row, A.col
    raise TypeError(f"dualgrad.scipy.sparse: format {fmt!r} is not supported (csr, csc, "
                    "coo: convert with A.tocsr())")


def from_pattern(A, data=None):
    """A SparseMatrix with scipy sparse matrix A's pattern and ``data`` (A.data's order and
    shape; default A.data itself, a constant).

    >>> import numpy as np, scipy.sparse as sp, dualgrad as dg
    >>> A = sp.csc_matrix(np.array([[1.0, 0.0], [2.0, 3.0]]))
    >>> dg.grad(lambda d: from_pattern(A, d).toarray()[1, 0])(A.data)
    array([0., 1., 0.])
    """
    if isinstance(A, SparseMatrix):
        return A if data is None else SparseMatrix(data, A.pattern, A._perm, A.format)
    if not sp.issparse(A):
        raise TypeError(f"from_pattern: A must be a scipy sparse matrix, got "
                        f"{type(A).__name__}")
    if A.ndim != 2:
        raise ValueError(f"from_pattern: A must be 2-D, got shape {A.shape}")
    pattern, perm = _pattern_of(A)
    return SparseMatrix(A.data if data is None else data, pattern, perm, A.format)


_PATTERNS = {}  # id(A) -> (weakref to A, its index arrays, (pattern, perm)): a few recent


def _pattern_of(A):
    """A's pattern, remembered while A and its index arrays stay the same objects (a loss
    called again with the same matrix does not sort its indices again)."""
    if A.format not in ("csr", "csc", "coo"):
        _coords(A)  # raises, naming the formats
    arrays = (A.row, A.col) if A.format == "coo" else (A.indices, A.indptr)
    hit = _PATTERNS.get(id(A))
    if hit is not None and hit[0]() is A and all(a is b for a, b in zip(hit[1], arrays)) \
            and hit[2][0].shape == A.shape:
        return hit[2]
    if A.format == "csr":
        found = Pattern(A.shape, A.indices, A.indptr), None
    else:
        found = Pattern.from_coords(*_coords(A), A.shape)
    try:
        ref = weakref.ref(A)
    except TypeError:
        return found
    if len(_PATTERNS) >= 32:
        _PATTERNS.pop(next(iter(_PATTERNS)))
    _PATTERNS[id(A)] = (ref, arrays, found)
    return found


def _as_matrix(A, name):
    if isinstance(A, SparseMatrix):
        return A
    if sp.issparse(A):
        return from_pattern(A)
    raise TypeError(f"{name}: expected a sparse matrix (scipy.sparse or "
                    f"dualgrad.scipy.sparse), got {type(A).__name__}")


def matmul(a, b):
    """a @ b with one sparse operand (scipy's or a SparseMatrix) and one dense one, traced
    or not.  The supported route for scipy's own sparse matrices.

    >>> import numpy as np, scipy.sparse as sp
    >>> A = sp.coo_matrix(np.array([[0.0, 1.0], [2.0, 0.0]]))
    >>> matmul(np.array([1.0, 1.0]), A)
    array([2., 1.])
    """
    if issparse(a) and not issparse(b):
        return _as_matrix(a, "matmul")._matvec(b)
    if issparse(b) and not issparse(a):
        return _as_matrix(b, "matmul")._rmatvec(a)
    raise TypeError("dualgrad.scipy.sparse.matmul: exactly one operand must be sparse "
                    f"(got {type(a).__name__} and {type(b).__name__})")


dot = matmul


# ---------------------------------------------------------------------------
# constructors with scipy's signatures
# ---------------------------------------------------------------------------

def _dense(arg, fmt):
    """A dense matrix: scipy's nonzeros when plain; every entry when traced."""
    if not _traced(arg):
        return from_pattern(getattr(sp, fmt + "_matrix")(np.asarray(arg, dtype=float)))
    s = _shape(arg)
    if len(s) != 2:
        raise ValueError(f"{fmt}_matrix: a dense argument must be 2-D, got shape {s}")
    r, c = np.divmod(np.arange(s[0] * s[1]), s[1])
    pattern, perm = Pattern.from_coords(r, c, s)
    return SparseMatrix(np.ravel(arg), pattern, perm, fmt)


def _compressed(fmt):
    def make(arg1, shape=None, dtype=None, copy=False):
        if sp.issparse(arg1) or isinstance(arg1, SparseMatrix):
            return from_pattern(arg1.asformat(fmt) if sp.issparse(arg1) else arg1)
        if not isinstance(arg1, tuple):
            return _dense(arg1, fmt)
        if len(arg1) == 2:
            return _coo(arg1, shape, fmt)
        data, indices, indptr = arg1
        indices, indptr = np.asarray(indices), np.asarray(indptr)
        if shape is None:
            major = len(indptr) - 1
            minor = int(indices.max()) + 1 if len(indices) else 0
            shape = (major, minor) if fmt == "csr" else (minor, major)
        if fmt == "csr":
            pattern, perm = Pattern(shape, indices, indptr), None
        else:
            major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            pattern, perm = Pattern.from_coords(indices, major, shape)
        return SparseMatrix(_data(data, dtype), pattern, perm, fmt)
    make.__name__ = make.__qualname__ = f"{fmt}_matrix"
    make.__doc__ = (f"scipy.sparse.{fmt}_matrix's signature ((data, indices, indptr), "
                    "(data, (row, col)), a sparse or dense matrix); returns a SparseMatrix "
                    "whose data may be traced.")
    return make


def _data(data, dtype):
    if isinstance(data, Box):
        return data
    return np.asarray(data, dtype=dtype or np.result_type(np.asarray(data), 1.0))


def _coo(arg1, shape, fmt):
    data, (row, col) = arg1
    row, col = np.asarray(row), np.asarray(col)
    if shape is None:
        shape = (int(row.max()) + 1, int(col.max()) + 1)
    pattern, perm = Pattern.from_coords(row, col, shape)
    return SparseMatrix(_data(data, None), pattern, perm, fmt)


def _coo_make(arg1, shape=None, dtype=None, copy=False):
    if isinstance(arg1, tuple) and len(arg1) == 2 and isinstance(arg1[1], tuple):
        return _coo(arg1, shape, "coo")
    if sp.issparse(arg1):
        return from_pattern(arg1.tocoo())
    if isinstance(arg1, SparseMatrix):
        return arg1
    return _dense(arg1, "coo")


csr_matrix = csr_array = _compressed("csr")
csc_matrix = csc_array = _compressed("csc")
coo_matrix = coo_array = _coo_make
coo_matrix.__doc__ = ("scipy.sparse.coo_matrix's signature ((data, (row, col)), a sparse or "
                      "dense matrix); returns a SparseMatrix whose data may be traced.")


from . import linalg as linalg  # noqa: E402  (scipy.sparse.linalg's place; imports the above)
from .linalg import cg, spsolve  # noqa: E402,F401  (also here: where a refusal inside scipy's
#   spsolve/cg looks for the drop-in, dualgrad.scipy.errors: "scipy.sparse.<name>")
