"""Scatter-add along one axis: the VJP of a gather ``E[idx]``.

    >>> import numpy as np
    >>> out = np.zeros((1, 3, 1)); idx = np.array([0, 2, 0, -1])
    >>> index_add_rows(out, idx, np.ones((1, 4, 1)))
    -1
    >>> out.ravel().tolist()
    [2.0, 0.0, 2.0]
"""

from .diskcache import njit


@njit(cache=True)
def index_add_rows(out, index, values):
    """``out[b, index[i], :] += values[b, i, :]`` for all b, i, in ``np.add.at`` order.

    out: (B, V, D), index: (M,) integers (negative counts from the end),
    values: (B, M, D).  Every element receives its additions in the order of i,
    so the result is bitwise that of ``np.add.at``.  Returns -1, or the position
    in ``index`` of the first index out of range (``out`` is then partly written).
    """
    B, V, D = out.shape
    M = index.shape[0]
    for i in range(M):
        j = index[i]
        if j < -V or j >= V:
            return i
    for b in range(B):
        for i in range(M):
            j = index[i]
            if j < 0:
                j += V
            for c in range(D):
                out[b, j, c] += values[b, i, c]
    return -1
