"""Convolution and polynomials: convolve, correlate, polyval, polyadd, polysub, polymul,
polyder, polyint, vander.

A full convolution is a matrix product with a gather of the kernel; polynomial
arithmetic is on coefficient arrays, so everything differentiates in the coefficients.
"""

import builtins

import numpy as np

from .. import rules as P
from ..core.trace import Box, unbox
from .dispatch import _arr, implements
from .gather import _gather
from .reductions import cumprod
from .shapes import atleast_1d, broadcast_to, concatenate, expand_dims, flip, ravel, reshape

_shape, _ndim = P.shape_of, P.ndim_of


def _full_convolution(a, v):
    """Full 1-D convolution as a matrix product: T[k, j] = v[k - j] (0 outside), c = T @ a;
    T is a gather of v with a zero fill."""
    n, m = _shape(a)[0], _shape(v)[0]
    k, j = np.arange(n + m - 1)[:, None], np.arange(n)[None, :]
    src = np.where((k - j >= 0) & (k - j < m), k - j, m)
    return P.matmul(_gather(v, lambda ix: src, fill=0.0), a)


@implements(np.convolve)
def convolve(a, v, mode="full"):
    a, v = _arr(a), _arr(v)
    if _ndim(a) != 1 or _ndim(v) != 1:
        a, v = ravel(a), ravel(v)
    n, m = _shape(a)[0], _shape(v)[0]
    if n == 0 or m == 0:
        raise ValueError("a cannot be empty" if n == 0 else "v cannot be empty")
    if m > n:
        a, v, n, m = v, a, m, n
    full = _full_convolution(a, v)
    if mode == "full":
        return full
    if mode == "same":
        return full[(m - 1) // 2:(m - 1) // 2 + n]
    if mode == "valid":
        return full[m - 1:n]
    raise ValueError(f"mode must be one of 'valid', 'same', or 'full' (got {mode!r})")


@implements(np.correlate)
def correlate(a, v, mode="valid"):
    """c[k] = sum_n a[n + k] conj(v[n]) = convolve(a, conj(v[::-1]))."""
    a, v = _arr(a), _arr(v)
    w = flip(v)
    if P.is_complex(w):
        w = P.conjugate(w)
    n, m = _shape(a)[0], _shape(v)[0]
    if mode == "same" and m > n and n % 2 == 0:  # numpy's window sits one later here
        return convolve(a, w, "full")[n // 2:n // 2 + m]
    return convolve(a, w, mode)


@implements(np.polyval)
def polyval(p, x):
    p, x = _arr(p), _arr(x)
    y = np.zeros(_shape(x), np.result_type(unbox(p), unbox(x), 1.0))
    for i in range(_shape(p)[0]):
        y = P.add(P.multiply(y, x), p[i])
    return y


def _pad_front(p, n):
    k = _shape(p)[0]
    return p if k == n else concatenate([np.zeros(n - k, P.float_dtype(p)), p])


@implements(np.polyadd)
def polyadd(a1, a2):
    a1, a2 = atleast_1d(_arr(a1)), atleast_1d(_arr(a2))
    n = builtins.max(_shape(a1)[0], _shape(a2)[0])
    return P.add(_pad_front(a1, n), _pad_front(a2, n))


@implements(np.polysub)
def polysub(a1, a2):
    a1, a2 = atleast_1d(_arr(a1)), atleast_1d(_arr(a2))
    n = builtins.max(_shape(a1)[0], _shape(a2)[0])
    return P.subtract(_pad_front(a1, n), _pad_front(a2, n))


@implements(np.polymul)
def polymul(a1, a2):
    return convolve(atleast_1d(_arr(a1)), atleast_1d(_arr(a2)))


@implements(np.polyder)
def polyder(p, m=1):
    if m < 0:
        raise ValueError("Order of derivative must be positive (see polyint)")
    p = atleast_1d(_arr(p))
    for _ in range(m):
        n = _shape(p)[0] - 1
        if n <= 0:
            return P.multiply(p[:1], 0.0)
        p = P.multiply(p[:-1], np.arange(n, 0, -1, dtype=float))
    return p


@implements(np.polyint)
def polyint(p, m=1, k=None):
    if m < 0:
        raise ValueError("Order of integral must be positive (see polyder)")
    k = [0.0] * m if k is None else k
    if not isinstance(k, (list, tuple)) and _ndim(k) == 0:
        k = [k] * m
    if len(k) < m:
        raise ValueError("k must be a scalar or a rank-1 array of length 1 or >m.")
    p = atleast_1d(_arr(p))
    for i in range(m):
        n = _shape(p)[0]
        c = k[i]
        c = reshape(c, (1,)) if isinstance(c, Box) else np.full(1, c, P.float_dtype(p))
        p = concatenate([P.divide(p, np.arange(n, 0, -1, dtype=float)), c])
    return p


@implements(np.vander)
def vander(x, N=None, increasing=False):
    x = _arr(x)
    if _ndim(x) != 1:
        raise ValueError("x must be a one-dimensional array or sequence.")
    N = _shape(x)[0] if N is None else N
    rows = _shape(x)[0]
    if N == 0:
        return np.zeros((rows, 0), P.float_dtype(x))
    # x ** k as a cumulative product of [1, x, x, ...]: exact, and no 0 ** -1 at x = 0
    cols = broadcast_to(expand_dims(x, 1), (rows, N - 1))
    v = cumprod(concatenate([np.ones((rows, 1), P.float_dtype(x)), cols], axis=1),
                    axis=1)
    return v if increasing else flip(v, 1)
