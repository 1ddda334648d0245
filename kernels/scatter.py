"""Scatter-adds: the VJP of a gather ``E[idx]`` along one axis, and slices summed into one
array (a Hessian's sweep over ``x[1:]`` and ``x[:-1]``).

    >>> import numpy as np
    >>> out = np.zeros((1, 3, 1)); idx = np.array([0, 2, 0, -1])
    >>> index_add_rows(out, idx, np.ones((1, 4, 1)))
    -1
    >>> out.ravel().tolist()
    [2.0, 0.0, 2.0]
"""

from numba import literal_unroll

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


@njit(cache=True)
def sum_slices(out, parts, fresh):
    """Row by row: ``out[r] = 0`` where ``fresh``, then ``out[r, s:s + m] += v[r]`` for each
    ``(s, v)`` of ``parts`` in their order (out (R, n), each v (R, m)).

    Each element receives the same additions in the same order as those slice adds made
    one after another with numpy (``np.add(out[:, s:s + m], v, out=...)``), so the result
    is bitwise theirs; a row is summed while it sits in the CPU cache, where numpy makes one
    pass over the whole array per slice.  ``parts`` is a tuple (unrolled when compiled:
    the backend passes a few at a time).
    """
    for r in range(out.shape[0]):
        row = out[r]
        if fresh:
            for j in range(row.shape[0]):
                row[j] = 0.0
        for p in literal_unroll(parts):
            v = p[1][r]
            m = v.shape[0]
            dst = row[p[0]:p[0] + m]
            for j in range(m):
                dst[j] += v[j]
