"""Softmax, log-softmax and logsumexp over the rows of a C-contiguous (M, K) array.

Stable: each row is shifted by its maximum before ``exp``, so x = 1000 is fine.
Special values follow ``scipy.special``: an all ``-inf`` row has logsumexp
``-inf``, log-softmax and softmax NaN; a ``+inf`` entry gives logsumexp ``+inf``;
NaN propagates.  Sums run left to right in float64.

    >>> import numpy as np
    >>> out = np.empty((1, 2)); softmax_rows(np.array([[1000.0, 1000.0]]), out); out.tolist()
    [[0.5, 0.5]]
"""

import numpy as np
from numba import njit


@njit(cache=True)
def _rowmax(row):
    """max(row) with NaN propagating, as ``np.max``; -inf for an empty row."""
    m = -np.inf
    for v in row:
        if v != v:
            return np.nan
        if v > m:
            m = v
    return m


@njit(cache=True)
def _finite_or_zero(m):
    return m if np.isfinite(m) else 0.0


@njit(cache=True)
def softmax_rows(x, out):
    """out[r] = exp(x[r] - max) / sum(exp(x[r] - max))."""
    for r in range(x.shape[0]):
        m = _rowmax(x[r])
        s = 0.0
        for k in range(x.shape[1]):
            e = np.exp(x[r, k] - m)
            out[r, k] = e
            s += e
        for k in range(x.shape[1]):
            out[r, k] = out[r, k] / s


@njit(cache=True)
def log_softmax_rows(x, out):
    """out[r] = (x[r] - m) - log(sum(exp(x[r] - m))), m = max or 0 if not finite."""
    for r in range(x.shape[0]):
        m = _finite_or_zero(_rowmax(x[r]))
        s = 0.0
        for k in range(x.shape[1]):
            s += np.exp(x[r, k] - m)
        ls = np.log(s)
        for k in range(x.shape[1]):
            out[r, k] = (x[r, k] - m) - ls


@njit(cache=True)
def logsumexp_rows(x, out):
    """out[r] = log(sum(exp(x[r] - m))) + m, m = max or 0 if not finite."""
    for r in range(x.shape[0]):
        m = _finite_or_zero(_rowmax(x[r]))
        s = 0.0
        for k in range(x.shape[1]):
            s += np.exp(x[r, k] - m)
        out[r] = np.log(s) + m


@njit(cache=True)
def softmax_vjp_rows(g, y, out):
    """out[r] = y[r] * (g[r] - <g[r], y[r]>)."""
    for r in range(y.shape[0]):
        s = 0.0
        for k in range(y.shape[1]):
            s += g[r, k] * y[r, k]
        for k in range(y.shape[1]):
            out[r, k] = y[r, k] * (g[r, k] - s)


@njit(cache=True)
def log_softmax_vjp_rows(g, y, out):
    """out[r] = g[r] - exp(y[r]) * sum(g[r])."""
    for r in range(y.shape[0]):
        s = 0.0
        for k in range(y.shape[1]):
            s += g[r, k]
        for k in range(y.shape[1]):
            out[r, k] = g[r, k] - np.exp(y[r, k]) * s


@njit(cache=True)
def logsumexp_vjp_rows(g, x, ans, out):
    """out[r] = g[r] * exp(x[r] - ans[r])."""
    for r in range(x.shape[0]):
        for k in range(x.shape[1]):
            out[r, k] = g[r] * np.exp(x[r, k] - ans[r])
