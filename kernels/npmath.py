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

__all__ = ["abs", "absolute", "cbrt", "exp", "exp2", "expm1", "fabs", "fmod", "isfinite",
           "log1p", "logaddexp", "logaddexp2", "power", "reciprocal", "remainder", "sign",
           "sqrt", "square"]
BINARY = ("fmod", "logaddexp", "logaddexp2", "power", "remainder")  # two arguments

LOGE2 = math.log(2.0)
LOG2E = 1.0 / LOGE2


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


def logaddexp2(x, y):
    """log2(2**x + 2**y) without overflow: numpy's ``npy_logaddexp2``."""
    if x == y:
        return x + 1.0
    d = x - y
    if d > 0:
        return x + math.log1p(2.0 ** -d) * LOG2E
    if d <= 0:
        return y + math.log1p(2.0 ** d) * LOG2E
    return d  # NaN


def power(x, y):
    return x ** y


def square(x):
    return x * x


def reciprocal(x):
    return 1.0 / x if x != 0 else math.copysign(math.inf, x)


def exp2(x):
    return 2.0 ** x


def cbrt(x):
    """The real cube root (negative for negative x), as ``np.cbrt``."""
    if x != x or x == 0 or not math.isfinite(x):
        return x  # NaN, +-0 and +-inf are their own cube roots
    r = math.fabs(x) ** (1.0 / 3.0)
    r = r - (r * r * r - math.fabs(x)) / (3.0 * r * r)  # one Newton step: to ~1 ulp
    return math.copysign(r, x)


def fabs(x):
    return math.fabs(x)


def fmod(x, y):
    """C's fmod (the sign of x), NaN for y = 0 or infinite x, as ``np.fmod``."""
    if y == 0 or not math.isfinite(x) or y != y:
        return math.nan
    if not math.isfinite(y):
        return x
    return math.copysign(math.fabs(x) % math.fabs(y), x)  # % of magnitudes is exact


def remainder(x, y):
    """Python's modulo (the sign of y), as ``np.remainder``: numpy's ``npy_divmod``."""
    if y == 0 or not math.isfinite(x) or y != y:
        return math.nan
    if not math.isfinite(y):  # x, or y itself where x's sign differs (numpy's divmod)
        return math.copysign(0.0, y) if x == 0 else (x if (x < 0) == (y < 0) else y)
    r = math.copysign(math.fabs(x) % math.fabs(y), x)  # fmod, exactly
    if r == 0:
        return math.copysign(0.0, y)
    if (r < 0) != (y < 0):
        r += y
    return r
