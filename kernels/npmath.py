"""numpy's scalar functions that numba-cuda does not compile, written with ``math``.

The shared scalar math (``dualgrad.backend.reference.UNARY``'s rows, the softmax row
bodies) calls numpy functions, so numpy runs it on whole arrays and numba's CPU
target compiles it as scalar code.  numba-cuda's ufunc table lacks some of them
(``np.exp``, ``np.sqrt``, ``np.sign``, ``np.logaddexp``...); ``kernels/cuda.py``
compiles the same functions for the GPU with ``np`` bound to a namespace where these
names are the functions below (as device functions) and every other name is numpy's.
They follow numpy's definitions, special values included (``tests/test_cuda_kernels.py``
compiles them with ``njit`` and compares them with numpy), and import nothing but
``math``, so this module costs nothing to import.

    >>> logaddexp(0.0, 0.0) == math.log(2.0)
    True
    >>> sign(-3.0), sign(0.0)
    (-1.0, 0.0)
"""

import math

__all__ = ["abs", "absolute", "exp", "expm1", "isfinite", "log1p", "logaddexp", "sign", "sqrt"]

LOGE2 = math.log(2.0)


def exp(x):
    return math.exp(x)


def expm1(x):
    return math.expm1(x)


def log1p(x):
    return math.log1p(x)


def sqrt(x):
    return math.sqrt(x)


def absolute(x):
    return math.fabs(x)


abs = absolute  # noqa: A001  (np.abs is np.absolute)


def isfinite(x):
    return math.isfinite(x)


def sign(x):
    """-1, 0 or 1, and NaN for NaN, as ``np.sign``."""
    if x > 0:
        return 1.0
    if x < 0:
        return -1.0
    return x - x  # +0.0 for +-0 (numpy's sign of -0.0 is 0.0), NaN for NaN


def logaddexp(x, y):
    """log(exp(x) + exp(y)) without overflow: numpy's ``npy_logaddexp``."""
    if x == y:
        return x + LOGE2  # also inf + inf, where x - y would be NaN
    d = x - y
    if d > 0:
        return x + math.log1p(math.exp(-d))
    if d <= 0:
        return y + math.log1p(math.exp(d))
    return d  # NaN
