"""scipy.stats' multivariate distributions: ``multivariate_normal``, ``dirichlet``,
``multinomial``, with scipy's arguments and shapes (the last axis of x is the components;
dirichlet's first, as scipy's).

``multivariate_normal`` differentiates in x, ``mean`` and ``cov`` (a matrix, a vector of
variances or one variance): through the Cholesky factor when the covariance is positive
definite, and with ``allow_singular=True`` through its eigendecomposition (scipy's
pseudo-determinant and pseudo-inverse; a point off the support has logpdf -inf).  The
eigendecomposition's derivative needs distinct eigenvalues: a singular covariance with a
repeated nonzero eigenvalue (``2 * I`` padded with zeros) has none there.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy.stats import multivariate_normal
    >>> g = dg.grad(lambda m: multivariate_normal.logpdf(np.zeros(2), m, np.eye(2)))
    >>> g(np.array([1.0, -2.0])).tolist()  # -(mean - x) / 1
    [-1.0, 2.0]
"""

import math

import numpy as np
import scipy.special as sc

from ...core.trace import Box
from ...rules import shape_of
from .distribution import all_of, result

_LOG_2PI = math.log(2.0 * math.pi)


def _squeeze(out):
    return result(np.squeeze(out)) if shape_of(out) else result(out)


class multivariate_normal_gen:
    """scipy.stats.multivariate_normal: logpdf, pdf (and rvs by scipy), frozen with
    ``multivariate_normal(mean, cov)``."""

    name = "multivariate_normal"

    def __call__(self, mean=None, cov=1, allow_singular=False):
        return multivariate_normal_frozen(mean, cov, allow_singular)

    def __repr__(self):
        return "<dualgrad.scipy.stats.multivariate_normal>"

    @staticmethod
    def _parameters(mean, cov):
        if mean is not None:
            dim = int(np.prod(shape_of(mean)))
        elif len(shape_of(cov)) < 2:
            dim = int(np.prod(shape_of(cov)))
        else:
            dim = shape_of(cov)[0]
        mean = np.zeros(dim) if mean is None else np.reshape(mean, (dim,))
        cs = shape_of(cov)
        if cs not in ((), (1,), (dim,), (dim, dim)):
            raise ValueError(f"multivariate_normal: cov has shape {cs}; expected a scalar, "
                             f"({dim},) or ({dim}, {dim}) for a mean of dimension {dim}")
        return dim, mean, cov

    @staticmethod
    def _quantiles(x, dim):
        xs = shape_of(x)
        if len(xs) == 0:
            return np.reshape(x, (1,))
        if len(xs) == 1:
            return np.reshape(x, (xs[0], 1) if dim == 1 else (1, xs[0]))
        if xs[-1] != dim:
            raise ValueError(f"multivariate_normal: x has shape {xs}, whose last axis "
                             f"should be the {dim} components")
        return x

    def logpdf(self, x, mean=None, cov=1, allow_singular=False):
        """log N(x; mean, cov), with scipy's signature and output shape."""
        dim, mean, cov = self._parameters(mean, cov)
        dev = np.subtract(self._quantiles(x, dim), mean)
        _check_psd(cov, allow_singular)
        if allow_singular:
            return _squeeze(_singular(dev, cov, dim))
        if len(shape_of(cov)) < 2:  # variances: no factorisation
            var = np.multiply(np.ones(dim), cov)
            logdet = np.sum(np.log(var))
            maha = np.sum(np.divide(np.square(dev), var), axis=-1)
        else:
            L = np.linalg.cholesky(cov)
            logdet = np.multiply(2.0, np.sum(np.log(np.diagonal(L))))
            w = np.linalg.solve(L, np.swapaxes(dev, -1, -2) if len(shape_of(dev)) > 1
                                else dev)
            maha = np.sum(np.square(w), axis=0)
        return _squeeze(np.multiply(-0.5, np.add(np.add(dim * _LOG_2PI, logdet), maha)))

    def pdf(self, x, mean=None, cov=1, allow_singular=False):
        return result(np.exp(self.logpdf(x, mean, cov, allow_singular)))

    def rvs(self, mean=None, cov=1, size=1, random_state=None):
        """Draws by scipy itself (a sample carries no derivative)."""
        import scipy.stats  # optional: slow to import, and only a draw needs it
        return scipy.stats.multivariate_normal.rvs(mean, cov, size=size,
                                                   random_state=random_state)


def _check_psd(cov, allow_singular):
    """scipy's errors for a plain covariance (a traced one is not read: dg.jit would
    guard on its values)."""
    if isinstance(cov, Box):
        return
    c = np.asarray(cov, float)
    s = np.linalg.eigvalsh(c) if c.ndim == 2 else np.ravel(c)
    eps = 1e6 * np.finfo(np.float64).eps * np.max(np.abs(s))
    if np.min(s) < -eps:
        raise ValueError("multivariate_normal: the covariance must be symmetric positive "
                         "semidefinite")
    if not allow_singular and np.any(s <= eps):
        raise np.linalg.LinAlgError("multivariate_normal: with allow_singular=False the "
                                    "covariance must be positive definite")


def _singular(dev, cov, dim):
    """scipy's pseudo-determinant form: eigenvalues above eps count (eps as scipy's
    ``_eigvalsh_to_eps``); a deviation outside their span is off the support."""
    if len(shape_of(cov)) < 2:
        s, u = np.multiply(np.ones(dim), cov), np.eye(dim)
    else:
        s, u = np.linalg.eigh(cov)
    eps = np.multiply(1e6 * np.finfo(np.float64).eps, np.max(np.abs(s)))
    kept = np.greater(s, eps)
    safe = np.where(kept, s, 1.0)
    rank = np.sum(np.where(kept, 1.0, 0.0))
    log_pdet = np.sum(np.where(kept, np.log(safe), 0.0))
    c = np.matmul(dev, u)  # the deviation in the eigenbasis
    maha = np.sum(np.where(kept, np.divide(np.square(c), safe), 0.0), axis=-1)
    out = np.multiply(-0.5, np.add(np.add(np.multiply(rank, _LOG_2PI), log_pdet), maha))
    off = np.sqrt(np.sum(np.where(kept, 0.0, np.square(c)), axis=-1))
    return np.where(np.less(off, np.multiply(1e3, eps)), out, -np.inf)


class multivariate_normal_frozen:
    """``multivariate_normal(mean, cov)``: logpdf(x), pdf(x), rvs, ``mean``, ``cov``."""

    def __init__(self, mean=None, cov=1, allow_singular=False):
        dim, self.mean, cov = multivariate_normal_gen._parameters(mean, cov)
        self.dim, self.allow_singular = dim, allow_singular
        self.cov = cov if len(shape_of(cov)) == 2 else np.multiply(np.eye(dim), cov)

    def logpdf(self, x):
        return multivariate_normal.logpdf(x, self.mean, self.cov, self.allow_singular)

    def pdf(self, x):
        return multivariate_normal.pdf(x, self.mean, self.cov, self.allow_singular)

    def rvs(self, size=1, random_state=None):
        return multivariate_normal.rvs(self.mean, self.cov, size, random_state)


class dirichlet_gen:
    """scipy.stats.dirichlet: logpdf, pdf in x and ``alpha`` (x's first axis is the
    components; K - 1 of them may be given, as scipy allows).  A plain x is checked as
    scipy checks it (ValueError); a traced one is not read (dg.jit would guard on it)."""

    name = "dirichlet"

    def __call__(self, alpha):
        return _FrozenBy(self, alpha=alpha)

    def __repr__(self):
        return "<dualgrad.scipy.stats.dirichlet>"

    @staticmethod
    def _check(x, alpha):
        if not isinstance(alpha, Box) and np.any(np.asarray(alpha) <= 0):
            raise ValueError("dirichlet: all parameters in alpha must be greater than 0")
        k = shape_of(alpha)[0]
        n = shape_of(x)[0] if shape_of(x) else None
        if n == k - 1:
            x = np.concatenate([x, np.subtract(1.0, np.sum(x, axis=0, keepdims=True))])
        elif n != k:
            raise ValueError(f"dirichlet: x has {n} components on its first axis, alpha "
                             f"has {k} (x may give {k} or {k - 1})")
        if not isinstance(x, Box):
            xv = np.asarray(x, float)
            if np.min(xv) < 0 or np.max(xv) > 1:
                raise ValueError("dirichlet: each entry of x must be in [0, 1]")
            if np.any(np.abs(np.sum(xv, axis=0) - 1.0) > 10e-10):
                raise ValueError("dirichlet: the components of x must sum to 1")
        return x

    def logpdf(self, x, alpha):
        x = self._check(x, alpha)
        a = np.reshape(alpha, shape_of(alpha) + (1,) * (len(shape_of(x)) - 1))
        lnb = np.subtract(np.sum(sc.gammaln(alpha)), sc.gammaln(np.sum(alpha)))
        return _squeeze(np.subtract(np.sum(sc.xlogy(np.subtract(a, 1.0), x), axis=0), lnb))

    def pdf(self, x, alpha):
        return result(np.exp(self.logpdf(x, alpha)))


class multinomial_gen:
    """scipy.stats.multinomial: logpmf, pmf in ``p`` (x and n are counts).  As scipy, the
    last probability is taken as 1 - the sum of the others (so no derivative reaches
    p[..., -1]), and invalid p or n give nan."""

    name = "multinomial"

    def __call__(self, n, p):
        return _FrozenBy(self, n=n, p=p)

    def __repr__(self):
        return "<dualgrad.scipy.stats.multinomial>"

    def logpmf(self, x, n, p):
        head = p[..., :-1]
        last = np.subtract(1.0, np.sum(head, axis=-1, keepdims=True))
        p = np.concatenate([head, last], axis=-1)
        good = all_of(np.greater_equal(n, 0), np.equal(np.floor(n), n),
                      np.all(np.greater_equal(p, 0), axis=-1),
                      np.all(np.less_equal(p, 1), axis=-1))
        inside = all_of(np.all(np.greater_equal(x, 0), axis=-1),
                        np.all(np.equal(np.floor(x), x), axis=-1),
                        np.equal(np.sum(x, axis=-1), n))
        xs = np.where(np.expand_dims(inside, -1), x, 0.0)
        out = np.add(sc.gammaln(np.add(n, 1.0)),
                     np.sum(np.subtract(sc.xlogy(xs, p), sc.gammaln(np.add(xs, 1.0))),
                            axis=-1))
        out = np.where(inside, out, -np.inf)
        return result(np.where(good, out, np.nan))

    def pmf(self, x, n, p):
        return result(np.exp(self.logpmf(x, n, p)))


class _FrozenBy:
    """A multivariate distribution with its parameters fixed by name."""

    def __init__(self, dist, **params):
        self.dist, self.params = dist, params

    def __getattr__(self, name):
        if name in ("dist", "params") or name.startswith("__"):  # not set yet (copy, pickle)
            raise AttributeError(name)
        if name in ("logpdf", "pdf", "logpmf", "pmf") and hasattr(self.dist, name):
            method = getattr(self.dist, name)
            return lambda x: method(x, **self.params)
        raise AttributeError(f"frozen dualgrad.scipy.stats.{self.dist.name} has no "
                             f"attribute {name!r}")


multivariate_normal = multivariate_normal_gen()
dirichlet = dirichlet_gen()
multinomial = multinomial_gen()

__all__ = ["dirichlet", "multinomial", "multivariate_normal"]
