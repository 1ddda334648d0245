"""A matrix product whose left factor is diagonal, replayed as a row scaling.

``jacrev`` seeds its batched reverse sweep with the identity: the cotangent reaching
``tanh(A @ x)``'s product is ``eye(n) * (1 - tanh(A @ x) ** 2)``, a diagonal matrix, and
the product with ``A`` costs n³ multiplications where ``d[:, None] * A`` costs n².  The
graph cannot know the matrix is diagonal (it is a kernel's output, computed at replay),
so ``diagonal_left`` looks: two entries first, which rule out a dense matrix at once, then
the whole off-diagonal.

The scaling is used only where it gives the product's bits.  Every off-diagonal term of
``(D @ B)[i, j]`` is ``±0 * B[k, j]``: where each ``d[i] * B[i, j]`` is finite and nonzero,
every ``B[k, j]`` is finite, those terms are zeros, and a sum (fused or not, in any order)
of one nonzero product and zeros is that product.  Otherwise (a zero on the diagonal, an
infinity, a NaN, whose sums BLAS forms from ``0 * inf``, and the sign of a zero, which
depends on every term) the product is computed as it is.
"""

import numpy as np

_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


def square_left(op, ops):
    """Whether ``op`` is a product of a square matrix (recorded as a float array) with a
    matrix: where replay asks ``diagonal_left``."""
    if op.kind != "op" or op.prim.name != "matmul" or op.kw or len(op.args) != 2:
        return False
    a, b = (ops[x].ans if x.__class__ is int else x.value for x in op.args)
    return a.__class__ is np.ndarray and b.__class__ is np.ndarray and a.ndim == 2 \
        and b.ndim == 2 and a.shape[0] == a.shape[1] == b.shape[0] >= 2 \
        and a.dtype == b.dtype and a.dtype in _FLOATS


def diagonal_left(D, B):
    """``D @ B``, as ``diag(D)[:, None] * B`` where ``D`` is diagonal and that is exact.

    >>> D, B = np.diag([2.0, 3.0]), np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> diagonal_left(D, B)
    array([[ 2.,  4.],
           [ 9., 12.]])
    """
    if D.__class__ is not np.ndarray or B.__class__ is not np.ndarray or D.ndim != 2 \
            or B.ndim != 2 or D.shape[0] != D.shape[1] or D.shape[1] != B.shape[0] \
            or D.shape[0] < 2 or D[0, 1] != 0 or D[1, 0] != 0 or D.dtype != B.dtype \
            or D.dtype not in _FLOATS:
        return D @ B
    d = D.diagonal()
    if np.count_nonzero(D) != np.count_nonzero(d):  # a nonzero (or NaN) off the diagonal
        return D @ B
    out = d[:, None] * B
    if not (np.isfinite(out).all() and out.all()):
        return D @ B
    return out
