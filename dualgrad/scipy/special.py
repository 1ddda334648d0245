"""scipy.special on traced values: rows for its ufuncs, and its few plain functions.

    >>> import numpy as np, scipy.special as sc, dualgrad as dg
    >>> float(dg.grad(lambda x: sc.erf(x))(0.0))  # 2 / sqrt(pi)
    1.1283791670955126

scipy's special functions are ufuncs, so ``scipy.special.erf(x)`` of a traced ``x``
reaches ``Box.__array_ufunc__`` like ``np.sin(x)``; their rows are in
``rules/special.py``, which this module imports (registering each under its scipy ufunc
in ``UFUNCS``).  It is imported only when scipy is (scipy is an optional dependency).
The local derivatives are written with rows, so second and higher derivatives work.

A few scipy functions take a constant first argument (an order or a shape): Bessel
``jv``/``yv``/``iv``/``kv`` (in z), ``gammainc``/``gammaincc`` (in x), ``zeta(s, q)``
(in q) and ``polygamma(n, x)`` (in x).  Their rows hold that argument as a parameter; a
traced order raises TypeError (dualgrad has no derivative in it).  The incomplete beta
function and the inverses (``betainc``, ``betaincc``, ``betaincinv``, ``betainccinv``,
``gammaincinv``, ``gammainccinv``) and Student's t (``stdtr``, ``stdtrit``) are rows of
all their arguments: the shapes may be traced (``dg.vmap``, ``dg.jit``), and a derivative
in one raises TypeError when it is asked for.

Not ufuncs: ``scipy.special.logsumexp``, ``softmax``, ``log_softmax`` and ``polygamma``
are Python functions, and no protocol dispatches them (they are not ufuncs, and scipy
does not route them through ``__array_function__``).  Each starts with ``np.asarray(x)``
and computes on the result with numpy and scipy's array-API helpers; dualgrad does not
promise a derivative through that (``np.asarray`` of a traced value is an object array of
traced entries: see numpy/objects.py), and scipy's own versions refuse a traced value or
compute it slowly entry by entry.  This module has drop-in versions with scipy's
signatures, built from rows (no monkey-patching of scipy): ``from dualgrad.scipy.special
import logsumexp, softmax, log_softmax, polygamma, multigammaln``.  ``scipy.stats.norm.cdf``
is the same story (``np.asarray(x, dtype=float)``, then ``np.place`` into a new float
array, which refuses a traced value): ``norm`` is ``dualgrad.scipy.stats.norm``, kept here
by name.  (``dualgrad.scipy_special`` is this module's old, deprecated name.)

dtypes: as the rows say (``rules/special.py``): float16 and longdouble values are
computed in float32 and float64 and returned in the primal's dtype, with their tangents
and cotangents.
"""

import numpy as np
import scipy.special as sc

from .. import rules as P
from ..core.trace import Box, unbox
from ..numpy import nn
from ..numpy.dispatch import HANDLED
from ..rules import (
    normalize_axes,
)
from ..rules import special as R
from ..rules.special import (
    gammainc_p,
    gammaincc_p,
    hurwitz_zeta,
    iv_p,
    jv_p,
    kv_p,
    polygamma_p,
    yv_p,
    zeta_p,
)

__all__ = ["log_softmax", "logsumexp", "multigammaln", "norm",  # noqa: F822 (norm: __getattr__)
           "polygamma", "softmax"]

# ---------------------------------------------------------------------------
# functions of a constant order (an argument without a derivative)
# ---------------------------------------------------------------------------


def _constant(v, fname, what):
    if isinstance(v, Box):
        raise TypeError(f"dualgrad has no derivative rule for scipy.special.{fname} with "
                        f"respect to {what}; pass it as a constant (dg.stop_gradient)")
    return v


def _ordered(name, prim):
    """scipy's ``ufunc(v, x)`` as a call of the row ``prim(x, v=v)`` (rules/special.py),
    the order ``v`` a constant."""
    def call(v, x, **kw):
        if kw.get("out") is not None:
            raise TypeError(f"dualgrad: scipy.special.{name}(out=...) would write a traced "
                            "value in place; compute a new array instead")
        v = _constant(v, name, "its first argument (the order)")
        shape = np.broadcast_shapes(np.shape(v), P.shape_of(x))
        if P.shape_of(x) != shape:  # the row is shape-preserving in x
            x = P.broadcast_to(x, shape=shape)
        return prim(x, v=v)
    return call


for _ufunc, _prim in ((sc.jv, jv_p), (sc.yv, yv_p), (sc.iv, iv_p), (sc.kv, kv_p),
                      (sc.gammainc, gammainc_p), (sc.gammaincc, gammaincc_p),
                      (hurwitz_zeta, zeta_p)):
    HANDLED[_ufunc] = _ordered(_prim.name, _prim)  # __array_ufunc__ looks here


def _in_last(prim):
    """scipy's ``ufunc(*shapes, x)`` as the row ``prim`` (rules/special.py): the shapes may
    be traced (vmap, jit), the derivative is in x only (in a shape the row raises)."""
    def call(*args, **kw):
        if kw.get("out") is not None:
            raise TypeError(f"dualgrad: scipy.special.{prim.name}(out=...) would write a "
                            "traced value in place; compute a new array instead")
        return prim(*args)
    return call


for _ufunc, _prim in ((sc.gammaincinv, R.gammaincinv), (sc.gammainccinv, R.gammainccinv),
                      (sc.betainc, R.betainc), (sc.betaincc, R.betaincc),
                      (sc.betaincinv, R.betaincinv), (sc.betainccinv, R.betainccinv),
                      (sc.stdtr, R.stdtr), (sc.stdtrit, R.stdtrit)):
    HANDLED[_ufunc] = _in_last(_prim)


def polygamma(n, x):
    """scipy.special.polygamma(n, x), differentiable in x (n a constant integer order).

    scipy's own ``polygamma`` calls ``np.asarray(x)`` first, so traced code calls this.

    >>> import dualgrad as dg
    >>> from dualgrad.scipy.special import polygamma
    >>> round(float(dg.grad(lambda x: polygamma(0, x))(1.0)), 12)  # pi^2 / 6
    1.644934066848
    """
    n = _constant(n, "polygamma", "its order n")
    shape = np.broadcast_shapes(np.shape(n), P.shape_of(x))
    if P.shape_of(x) != shape:
        x = P.broadcast_to(x, shape=shape)
    return polygamma_p(x, n=n)


# ---------------------------------------------------------------------------
# scipy.special's plain functions, with scipy's signatures (see the module docstring)
# ---------------------------------------------------------------------------

def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """scipy.special.logsumexp on traced values: log(sum(b * exp(a))) over ``axis``.

    Differentiable in ``a`` and ``b``; ``return_sign=True`` gives (log|s|, sign(s)) for a
    sum s that may be negative, the sign a constant.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy.special import logsumexp
    >>> dg.grad(lambda a: logsumexp(a, b=np.array([1.0, 3.0])))(np.zeros(2)).tolist()
    [0.25, 0.75]
    """
    if b is None and not return_sign:
        return nn.logsumexp(a, axis=axis, keepdims=keepdims)
    shape = np.broadcast_shapes(P.shape_of(a), () if b is None else P.shape_of(b))
    ax = normalize_axes(axis, len(shape), "logsumexp: axis")
    m = np.max(np.broadcast_to(unbox(a), shape), axis=ax, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)  # a constant shift: the result does not depend on it
    e = np.exp(np.subtract(a, m))
    s = np.sum(e if b is None else np.multiply(b, e), axis=ax, keepdims=keepdims)
    if not keepdims:
        m = np.squeeze(m, axis=ax)
    if return_sign:
        return np.add(np.log(np.abs(s)), m), np.sign(unbox(s))
    return np.add(np.log(s), m)  # nan for a negative sum, as scipy's


def multigammaln(a, d):
    """scipy.special.multigammaln: the log of the multivariate gamma function of dimension
    ``d`` (an integer), differentiable in ``a``.  A plain ``a`` must exceed (d - 1) / 2, as
    scipy checks; a traced one is not read (nan there, from gammaln's poles).

    >>> import dualgrad as dg
    >>> from dualgrad.scipy.special import multigammaln
    >>> round(float(dg.grad(lambda a: multigammaln(a, 1))(3.0)), 12)  # digamma(3)
    0.922784335098
    """
    if isinstance(d, Box) or not float(d).is_integer() or d < 0:
        raise ValueError(f"multigammaln: d must be a non-negative integer, got {d!r}")
    d = int(d)
    if not isinstance(a, Box) and np.any(np.asarray(a) <= 0.5 * (d - 1)):
        raise ValueError(f"multigammaln: condition a > (d - 1) / 2 = {0.5 * (d - 1)} not met")
    shifted = np.subtract(np.expand_dims(a, -1), np.arange(d) / 2.0)
    return np.add(np.sum(sc.gammaln(shifted), axis=-1), 0.25 * d * (d - 1) * np.log(np.pi))


def _all_axes(x, axis):
    return tuple(range(P.ndim_of(x))) if axis is None else axis


def softmax(x, axis=None):
    """scipy.special.softmax on traced values (axis=None: over every element, as scipy).

    >>> import numpy as np
    >>> from dualgrad.scipy.special import softmax
    >>> softmax(np.zeros((2, 2))).tolist()
    [[0.25, 0.25], [0.25, 0.25]]
    """
    if isinstance(axis, (int, np.integer)):
        return nn.softmax(x, axis=int(axis))
    return np.exp(np.subtract(x, nn.logsumexp(x, axis=_all_axes(x, axis), keepdims=True)))


def log_softmax(x, axis=None):
    """scipy.special.log_softmax on traced values (axis=None: over every element)."""
    if isinstance(axis, (int, np.integer)):
        return nn.log_softmax(x, axis=int(axis))
    return np.subtract(x, nn.logsumexp(x, axis=_all_axes(x, axis), keepdims=True))


def __getattr__(name):
    if name == "norm":  # moved to dualgrad.scipy.stats; kept here (imported on first use)
        from .stats import norm  # optional: stats is imported when first asked for
        return norm
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
