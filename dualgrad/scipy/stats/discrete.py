"""scipy.stats' discrete distributions, as their formulas at integer k.

``Discrete`` (distribution.py) adds scipy's arguments, ``loc``, the support (a pmf of 0
off the integers) and the parameter checks.  Derivatives are in the parameters (k is a
count: the cdf is a step function of it); the cdfs built on the incomplete beta function
have no derivative in a shape that enters it as one of its first arguments (``nbinom.cdf``
in n), and say so with a TypeError.

    >>> import dualgrad as dg
    >>> from dualgrad.scipy.stats import poisson
    >>> float(dg.grad(lambda mu: poisson.logpmf(3, mu))(2.0))  # k / mu - 1
    0.5
"""

import numpy as np
import scipy.special as sc

from ...rules import special as R
from .distribution import Discrete, all_of


def _is_int(v):
    return np.equal(np.floor(v), v)


def _prob(p, open_left=False):
    return all_of(np.greater(p, 0) if open_left else np.greater_equal(p, 0),
                  np.less_equal(p, 1))


class poisson_gen(Discrete):
    """The Poisson distribution of mean ``mu``: every method, differentiable in mu."""

    shapes = ("mu",)

    def _argcheck(self, mu):
        return np.greater_equal(mu, 0)

    def _logpmf(self, k, mu):
        return np.subtract(np.subtract(sc.xlogy(k, mu), sc.gammaln(np.add(k, 1.0))), mu)

    def _cdf(self, k, mu):
        return R.igammac(np.add(k, 1.0), mu)

    def _sf(self, k, mu):
        return R.igamma(np.add(k, 1.0), mu)


class bernoulli_gen(Discrete):
    """The Bernoulli distribution: every method, differentiable in p."""

    shapes = ("p",)
    b = 1

    def _argcheck(self, p):
        return _prob(p)

    def _logpmf(self, k, p):
        return np.add(sc.xlogy(k, p), sc.xlog1py(np.subtract(1.0, k), np.negative(p)))

    def _cdf(self, k, p):  # k = 0 here: 1 and above are 1 already
        return np.add(np.multiply(k, 0.0), np.subtract(1.0, p))

    def _sf(self, k, p):
        return np.add(np.multiply(k, 0.0), p)


class binom_gen(Discrete):
    """The binomial distribution of n trials: every method, differentiable in p (n is a
    count)."""

    shapes = ("n", "p")

    def _argcheck(self, n, p):
        return all_of(np.greater_equal(n, 0), _is_int(n), _prob(p))

    def _support(self, n, p):
        return 0, n

    def _logpmf(self, k, n, p):
        nk = np.subtract(n, k)
        return np.add(
            np.subtract(sc.gammaln(np.add(n, 1.0)),
                        np.add(sc.gammaln(np.add(k, 1.0)), sc.gammaln(np.add(nk, 1.0)))),
            np.add(sc.xlogy(k, p), sc.xlog1py(nk, np.negative(p))))

    def _cdf(self, k, n, p):
        return R.betainc(np.subtract(n, k), np.add(k, 1.0), np.subtract(1.0, p))

    def _sf(self, k, n, p):
        return R.betainc(np.add(k, 1.0), np.subtract(n, k), p)


class nbinom_gen(Discrete):
    """The negative binomial distribution (failures before the n-th success): logpmf,
    pmf in n and p; cdf, sf in p only."""

    shapes = ("n", "p")

    def _argcheck(self, n, p):
        return all_of(np.greater(n, 0), _prob(p, open_left=True))

    def _logpmf(self, k, n, p):
        return np.add(
            np.subtract(sc.gammaln(np.add(n, k)),
                        np.add(sc.gammaln(np.add(k, 1.0)), sc.gammaln(n))),
            np.add(sc.xlogy(n, p), sc.xlog1py(k, np.negative(p))))

    def _cdf(self, k, n, p):
        return R.betainc(n, np.add(k, 1.0), p)

    def _sf(self, k, n, p):
        return R.betaincc(n, np.add(k, 1.0), p)


class geom_gen(Discrete):
    """The geometric distribution on 1, 2, ...: every method, differentiable in p."""

    shapes = ("p",)
    a = 1

    def _argcheck(self, p):
        return _prob(p, open_left=True)

    def _logpmf(self, k, p):
        return np.add(sc.xlog1py(np.subtract(k, 1.0), np.negative(p)), np.log(p))

    def _logsf(self, k, p):
        return sc.xlog1py(k, np.negative(p))

    def _sf(self, k, p):
        return np.exp(self._logsf(k, p))

    def _cdf(self, k, p):
        return np.negative(np.expm1(self._logsf(k, p)))


class betabinom_gen(Discrete):
    """The beta-binomial distribution: logpmf, pmf in a and b (its cdf is a sum dualgrad
    has no formula for)."""

    shapes = ("n", "a", "b")

    def _argcheck(self, n, a, b):
        return all_of(np.greater_equal(n, 0), _is_int(n), np.greater(a, 0), np.greater(b, 0))

    def _support(self, n, a, b):
        return 0, n

    def _logpmf(self, k, n, a, b):
        nk = np.subtract(n, k)
        log_choose = np.negative(np.add(np.log1p(n), sc.betaln(np.add(nk, 1.0),
                                                                  np.add(k, 1.0))))
        return np.add(log_choose, np.subtract(sc.betaln(np.add(k, a), np.add(nk, b)),
                                              sc.betaln(a, b)))

    def _cdf(self, k, n, a, b):
        raise TypeError("dualgrad.scipy.stats.betabinom.cdf is not available (a sum with no "
                        "differentiable formula here); call scipy.stats.betabinom.cdf on "
                        "plain values")


poisson = poisson_gen.named("poisson")
bernoulli = bernoulli_gen.named("bernoulli")
binom = binom_gen.named("binom")
nbinom = nbinom_gen.named("nbinom")
geom = geom_gen.named("geom")
betabinom = betabinom_gen.named("betabinom")

__all__ = ["bernoulli", "betabinom", "binom", "geom", "nbinom", "poisson"]
