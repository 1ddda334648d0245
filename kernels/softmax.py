"""Softmax, log-softmax and logsumexp over the rows of a C-contiguous (M, K) array.

Stable: each row is shifted by its maximum before ``exp``, so x = 1000 is fine.
Special values follow ``scipy.special``: an all ``-inf`` row has logsumexp
``-inf``, log-softmax and softmax NaN; a ``+inf`` entry gives logsumexp ``+inf``;
NaN propagates.  Sums run left to right in float64.

Each function is written once, as the body for one row ``r`` (``*_row``): plain
Python that numba compiles here for the CPU (``register_jitable``, inlined into the
serial ``*_rows`` loops below) and ``kernels/cuda.py`` compiles for the GPU
(``cuda.jit(device=True)``, one thread per row).  Every ``*_rows`` kernel has a twin
``*_rows_parallel`` that splits the rows over numba's threads (``prange``): each row is
still computed by one thread in the same order, so the two give bitwise the same
result (``dualgrad.backend.numba_ops`` times both and takes the faster).

    >>> import numpy as np
    >>> out = np.empty((1, 2)); softmax_rows(np.array([[1000.0, 1000.0]]), out); out.tolist()
    [[0.5, 0.5]]
"""

import numpy as np
from numba import prange
from numba.extending import register_jitable

from .diskcache import njit

# ---------------------------------------------------------------------------
# One row (1-D views x = x[r], out = out[r]): the scalar math both targets compile


@register_jitable
def row_max(x):
    """max(x) with NaN propagating, as ``np.max``; -inf for an empty row."""
    m = -np.inf
    for v in x:
        if v != v:
            return np.nan
        if v > m:
            m = v
    return m


@register_jitable
def finite_or_zero(m):
    return m if np.isfinite(m) else 0.0


@register_jitable(inline="always")
def softmax_row(x, out):
    """out = exp(x - max) / sum(exp(x - max))."""
    m = row_max(x)
    s = 0.0
    for k in range(x.shape[0]):
        e = np.exp(x[k] - m)
        out[k] = e
        s += e
    for k in range(x.shape[0]):
        out[k] = out[k] / s


@register_jitable(inline="always")
def log_softmax_row(x, out):
    """out = (x - m) - log(sum(exp(x - m))), m = max or 0 if not finite."""
    m = finite_or_zero(row_max(x))
    s = 0.0
    for k in range(x.shape[0]):
        s += np.exp(x[k] - m)
    ls = np.log(s)
    for k in range(x.shape[0]):
        out[k] = (x[k] - m) - ls


@register_jitable(inline="always")
def logsumexp_row(x):
    """log(sum(exp(x - m))) + m, m = max or 0 if not finite."""
    m = finite_or_zero(row_max(x))
    s = 0.0
    for k in range(x.shape[0]):
        s += np.exp(x[k] - m)
    return np.log(s) + m


@register_jitable(inline="always")
def softmax_vjp_row(g, y, out):
    """out = y * (g - <g, y>)."""
    s = 0.0
    for k in range(y.shape[0]):
        s += g[k] * y[k]
    for k in range(y.shape[0]):
        out[k] = y[k] * (g[k] - s)


@register_jitable(inline="always")
def log_softmax_vjp_row(g, y, out):
    """out = g - exp(y) * sum(g)."""
    s = 0.0
    for k in range(y.shape[0]):
        s += g[k]
    for k in range(y.shape[0]):
        out[k] = g[k] - np.exp(y[k]) * s


@register_jitable(inline="always")
def logsumexp_vjp_row(g, x, ans, out):
    """out = g * exp(x - ans), g and ans scalars."""
    for k in range(x.shape[0]):
        out[k] = g * np.exp(x[k] - ans)


# ---------------------------------------------------------------------------
# The CPU kernels: every row in turn


@njit(cache=True)
def softmax_rows(x, out):
    for r in range(x.shape[0]):
        softmax_row(x[r], out[r])


@njit(cache=True)
def log_softmax_rows(x, out):
    for r in range(x.shape[0]):
        log_softmax_row(x[r], out[r])


@njit(cache=True)
def logsumexp_rows(x, out):
    for r in range(x.shape[0]):
        out[r] = logsumexp_row(x[r])


@njit(cache=True)
def softmax_vjp_rows(g, y, out):
    for r in range(y.shape[0]):
        softmax_vjp_row(g[r], y[r], out[r])


@njit(cache=True)
def log_softmax_vjp_rows(g, y, out):
    for r in range(y.shape[0]):
        log_softmax_vjp_row(g[r], y[r], out[r])


@njit(cache=True)
def logsumexp_vjp_rows(g, x, ans, out):
    for r in range(x.shape[0]):
        logsumexp_vjp_row(g[r], x[r], ans[r], out[r])


# ---------------------------------------------------------------------------
# The same, with the rows split over numba's threads (row sums stay serial per row)


@njit(cache=True, parallel=True)
def softmax_rows_parallel(x, out):
    for r in prange(x.shape[0]):
        softmax_row(x[r], out[r])


@njit(cache=True, parallel=True)
def log_softmax_rows_parallel(x, out):
    for r in prange(x.shape[0]):
        log_softmax_row(x[r], out[r])


@njit(cache=True, parallel=True)
def logsumexp_rows_parallel(x, out):
    for r in prange(x.shape[0]):
        out[r] = logsumexp_row(x[r])


@njit(cache=True, parallel=True)
def softmax_vjp_rows_parallel(g, y, out):
    for r in prange(y.shape[0]):
        softmax_vjp_row(g[r], y[r], out[r])


@njit(cache=True, parallel=True)
def log_softmax_vjp_rows_parallel(g, y, out):
    for r in prange(y.shape[0]):
        log_softmax_vjp_row(g[r], y[r], out[r])


@njit(cache=True, parallel=True)
def logsumexp_vjp_rows_parallel(g, x, ans, out):
    for r in prange(x.shape[0]):
        logsumexp_vjp_row(g[r], x[r], ans[r], out[r])
