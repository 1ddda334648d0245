"""scipy.stats' continuous distributions, as their standardised formulas.

Each class gives ``_logpdf(z, *shapes)`` and the formulas scipy has for ``_cdf``, ``_sf``,
``_logcdf``, ``_logsf``, ``_ppf``, ``_isf``; ``Continuous`` (distribution.py) adds scipy's
arguments, ``loc``/``scale``, the support and the parameter checks.  The incomplete gamma
and beta functions and Student's t cdf are rows differentiable in x only
(rules/special.py): ``gamma.cdf`` differentiates in x, ``loc`` and ``scale`` but raises
TypeError in the shape ``a``, and so on for each method the class docstring names.

    >>> import dualgrad as dg
    >>> from dualgrad.scipy.stats import gamma
    >>> round(float(dg.grad(lambda a: gamma.logpdf(2.0, a))(3.0)), 12)  # log 2 - digamma(3)
    -0.229637154539
"""

import math

import numpy as np
import scipy.special as sc

from ...rules import special as R
from .distribution import Continuous

_LOG_SQRT_2PI = R.LOG_SQRT_2PI
_LOG2 = math.log(2.0)


def _logdiff(p, q):
    """log(exp(p) - exp(q)) for p > q."""
    return np.add(p, np.log1p(np.negative(np.exp(np.subtract(q, p)))))


def _log1mexp(x):
    """log(1 - exp(-x)) for x > 0, to full precision at both ends; each branch sees only
    its own side of log 2 (so the other's -inf reaches no derivative)."""
    small = np.less(x, _LOG2)
    return np.where(small, np.log(np.negative(np.expm1(np.negative(np.where(small, x, 1.0))))),
                    np.log1p(np.negative(np.exp(np.negative(np.where(small, 1.0, x))))))


class norm_gen(Continuous):
    """The normal distribution: every method, differentiable in x, loc and scale.

    >>> import dualgrad as dg
    >>> from dualgrad.scipy.stats import norm
    >>> round(float(dg.grad(norm.cdf)(0.0)), 12)  # the density at 0
    0.398942280401
    """

    def _logpdf(self, z):
        return np.subtract(np.multiply(-0.5, np.square(z)), _LOG_SQRT_2PI)

    def _cdf(self, z):
        return sc.ndtr(z)

    def _sf(self, z):
        return sc.ndtr(np.negative(z))

    def _logcdf(self, z):
        return sc.log_ndtr(z)

    def _logsf(self, z):
        return sc.log_ndtr(np.negative(z))

    def _ppf(self, q):
        return sc.ndtri(q)

    def _isf(self, q):
        return np.negative(sc.ndtri(q))


class t_gen(Continuous):
    """Student's t with ``df`` degrees of freedom.  cdf, sf, ppf, isf: no derivative in df."""

    shapes = ("df",)

    def _logpdf(self, z, df):
        half = np.multiply(0.5, np.add(df, 1.0))
        return np.subtract(
            np.subtract(np.subtract(sc.gammaln(half), sc.gammaln(np.multiply(0.5, df))),
                        np.multiply(0.5, np.log(np.multiply(math.pi, df)))),
            np.multiply(half, np.log1p(np.divide(np.square(z), df))))

    def _cdf(self, z, df):
        return R.stdtr(df, z)

    def _sf(self, z, df):
        return R.stdtr(df, np.negative(z))

    def _ppf(self, q, df):
        return R.stdtrit(df, q)

    def _isf(self, q, df):
        return np.negative(R.stdtrit(df, q))


class gamma_gen(Continuous):
    """The gamma distribution of shape ``a``.  cdf, sf, ppf, isf: no derivative in a."""

    shapes = ("a",)
    a, b = 0.0, np.inf
    inner = 1.0

    def _logpdf(self, z, a):
        return np.subtract(np.subtract(sc.xlogy(np.subtract(a, 1.0), z), z), sc.gammaln(a))

    def _cdf(self, z, a):
        return R.igamma(a, z)

    def _sf(self, z, a):
        return R.igammac(a, z)

    def _ppf(self, q, a):
        return R.gammaincinv(a, q)

    def _isf(self, q, a):
        return R.gammainccinv(a, q)


class chi2_gen(Continuous):
    """The chi-squared distribution.  cdf, sf, ppf, isf: no derivative in df."""

    shapes = ("df",)
    a, b = 0.0, np.inf
    inner = 1.0

    def _logpdf(self, z, df):
        h = np.multiply(0.5, df)
        return np.subtract(np.subtract(sc.xlogy(np.subtract(h, 1.0), z), np.multiply(0.5, z)),
                           np.add(sc.gammaln(h), np.multiply(_LOG2, h)))

    def _cdf(self, z, df):
        return R.igamma(np.multiply(0.5, df), np.multiply(0.5, z))

    def _sf(self, z, df):
        return R.igammac(np.multiply(0.5, df), np.multiply(0.5, z))

    def _ppf(self, q, df):
        return np.multiply(2.0, R.gammaincinv(np.multiply(0.5, df), q))

    def _isf(self, q, df):
        return np.multiply(2.0, R.gammainccinv(np.multiply(0.5, df), q))


class beta_gen(Continuous):
    """The beta distribution.  cdf, sf, ppf, isf: no derivative in a or b."""

    shapes = ("a", "b")
    a, b = 0.0, 1.0

    def _logpdf(self, z, a, b):
        return np.subtract(np.add(sc.xlogy(np.subtract(a, 1.0), z),
                                  sc.xlog1py(np.subtract(b, 1.0), np.negative(z))),
                           sc.betaln(a, b))

    def _cdf(self, z, a, b):
        return R.betainc(a, b, z)

    def _sf(self, z, a, b):
        return R.betaincc(a, b, z)

    def _ppf(self, q, a, b):
        return R.betaincinv(a, b, q)

    def _isf(self, q, a, b):
        return R.betainccinv(a, b, q)


class expon_gen(Continuous):
    """The exponential distribution: every method, differentiable in x, loc and scale."""

    a, b = 0.0, np.inf
    inner = 1.0

    def _logpdf(self, z):
        return np.negative(z)

    def _cdf(self, z):
        return np.negative(np.expm1(np.negative(z)))

    def _logcdf(self, z):
        return _log1mexp(z)

    def _sf(self, z):
        return np.exp(np.negative(z))

    def _logsf(self, z):
        return np.negative(z)

    def _ppf(self, q):
        return np.negative(np.log1p(np.negative(q)))

    def _isf(self, q):
        return np.negative(np.log(q))


class laplace_gen(Continuous):
    """The Laplace distribution: every method (the density's kink at loc has derivative 0
    there, numpy's sign)."""

    def _logpdf(self, z):
        return np.subtract(np.negative(np.abs(z)), _LOG2)

    def _cdf(self, z):
        h = np.multiply(0.5, np.exp(np.negative(np.abs(z))))  # never overflows
        return np.where(np.less(z, 0), h, np.subtract(1.0, h))

    def _sf(self, z):
        return self._cdf(np.negative(z))

    def _logcdf(self, z):
        a = np.abs(z)
        return np.where(np.less(z, 0), np.subtract(np.negative(a), _LOG2),
                        np.log1p(np.multiply(-0.5, np.exp(np.negative(a)))))

    def _logsf(self, z):
        return self._logcdf(np.negative(z))

    def _ppf(self, q):
        d = np.subtract(q, 0.5)
        return np.multiply(np.negative(np.sign(d)), np.log1p(np.negative(np.abs(
            np.multiply(2.0, d)))))

    def _isf(self, q):
        return np.negative(self._ppf(q))


class cauchy_gen(Continuous):
    """The Cauchy distribution: every method."""

    def _logpdf(self, z):
        return np.subtract(np.negative(np.log1p(np.square(z))), math.log(math.pi))

    def _cdf(self, z):
        return np.add(0.5, np.divide(np.arctan(z), math.pi))

    def _sf(self, z):
        return np.subtract(0.5, np.divide(np.arctan(z), math.pi))

    def _ppf(self, q):
        return np.tan(np.multiply(math.pi, np.subtract(q, 0.5)))

    def _isf(self, q):
        return np.negative(self._ppf(q))


class logistic_gen(Continuous):
    """The logistic distribution: every method."""

    def _logpdf(self, z):
        a = np.abs(z)
        return np.subtract(np.negative(a), np.multiply(2.0, np.log1p(np.exp(np.negative(a)))))

    def _cdf(self, z):
        return sc.expit(z)

    def _sf(self, z):
        return sc.expit(np.negative(z))

    def _logcdf(self, z):
        return sc.log_expit(z)

    def _logsf(self, z):
        return sc.log_expit(np.negative(z))

    def _ppf(self, q):
        return sc.logit(q)

    def _isf(self, q):
        return np.negative(sc.logit(q))


class lognorm_gen(Continuous):
    """The log-normal distribution of shape ``s``: every method, in every parameter."""

    shapes = ("s",)
    a, b = 0.0, np.inf
    inner = 1.0

    def _logpdf(self, z, s):
        pos = np.greater(z, 0)
        lz = np.log(np.where(pos, z, 1.0))
        out = np.subtract(np.negative(np.add(np.add(np.log(s), _LOG_SQRT_2PI), lz)),
                          np.divide(np.square(lz), np.multiply(2.0, np.square(s))))
        return np.where(pos, out, -np.inf)

    def _cdf(self, z, s):
        return sc.ndtr(np.divide(np.log(z), s))

    def _sf(self, z, s):
        return sc.ndtr(np.negative(np.divide(np.log(z), s)))

    def _logcdf(self, z, s):
        return sc.log_ndtr(np.divide(np.log(z), s))

    def _logsf(self, z, s):
        return sc.log_ndtr(np.negative(np.divide(np.log(z), s)))

    def _ppf(self, q, s):
        return np.exp(np.multiply(s, sc.ndtri(q)))

    def _isf(self, q, s):
        return np.exp(np.negative(np.multiply(s, sc.ndtri(q))))


class uniform_gen(Continuous):
    """The uniform distribution on [loc, loc + scale]: every method."""

    a, b = 0.0, 1.0

    def _logpdf(self, z):
        return np.multiply(z, 0.0)

    def _cdf(self, z):
        return z

    def _sf(self, z):
        return np.subtract(1.0, z)

    def _ppf(self, q):
        return q

    def _isf(self, q):
        return np.subtract(1.0, q)


class truncnorm_gen(Continuous):
    """The normal distribution truncated to [a, b] (standardised bounds, as scipy's):
    every method, in every parameter; the tails are computed in log space on the side
    away from the mode, so far tails keep their digits."""

    shapes = ("a", "b")

    def _argcheck(self, a, b):
        return np.less(a, b)

    def _support(self, a, b):
        return a, b

    @staticmethod
    def _right(a):  # the interval lies right of 0: work with the upper tails
        return np.greater(a, 0)

    def _logmass(self, a, b):
        return np.where(self._right(a), _logdiff(sc.log_ndtr(np.negative(a)),
                                                 sc.log_ndtr(np.negative(b))),
                        _logdiff(sc.log_ndtr(b), sc.log_ndtr(a)))

    def _logpdf(self, z, a, b):
        return np.subtract(np.subtract(np.multiply(-0.5, np.square(z)), _LOG_SQRT_2PI),
                           self._logmass(a, b))

    def _logcdf(self, z, a, b):
        return np.subtract(np.where(self._right(a), _logdiff(sc.log_ndtr(np.negative(a)),
                                                              sc.log_ndtr(np.negative(z))),
                                    _logdiff(sc.log_ndtr(z), sc.log_ndtr(a))),
                           self._logmass(a, b))

    def _logsf(self, z, a, b):
        return np.subtract(np.where(self._right(a), _logdiff(sc.log_ndtr(np.negative(z)),
                                                              sc.log_ndtr(np.negative(b))),
                                    _logdiff(sc.log_ndtr(b), sc.log_ndtr(z))),
                           self._logmass(a, b))

    def _cdf(self, z, a, b):
        return np.exp(self._logcdf(z, a, b))

    def _sf(self, z, a, b):
        return np.exp(self._logsf(z, a, b))

    def _ppf(self, q, a, b):
        right = self._right(a)
        ua, ub = sc.ndtr(np.negative(a)), sc.ndtr(np.negative(b))
        la, lb = sc.ndtr(a), sc.ndtr(b)
        return np.where(right,
                        np.negative(sc.ndtri(np.subtract(ua, np.multiply(q, np.subtract(ua, ub))))),
                        sc.ndtri(np.add(la, np.multiply(q, np.subtract(lb, la)))))

    def _isf(self, q, a, b):
        return self._ppf(np.subtract(1.0, q), a, b)


class vonmises_gen(Continuous):
    """The von Mises distribution on [-pi, pi] (scaled by ``scale``): logpdf and pdf, in
    every parameter (its cdf is a series dualgrad has no row for)."""

    shapes = ("kappa",)
    a, b = -math.pi, math.pi
    inner = 0.0

    def _logpdf(self, z, kappa):
        return np.subtract(np.multiply(kappa, np.subtract(np.cos(z), 1.0)),
                           np.add(math.log(2.0 * math.pi), np.log(sc.i0e(kappa))))


class gennorm_gen(Continuous):
    """The generalised normal distribution of shape ``beta``: logpdf, pdf in every
    parameter; cdf, sf, ppf, isf: no derivative in beta."""

    shapes = ("beta",)

    def _logpdf(self, z, beta):
        return np.subtract(np.subtract(np.log(np.multiply(0.5, beta)),
                                       sc.gammaln(np.reciprocal(beta))),
                           np.power(np.abs(z), beta))

    def _cdf(self, z, beta):
        c = np.multiply(0.5, np.sign(z))
        return np.subtract(np.add(0.5, c), np.multiply(
            c, R.igammac(np.reciprocal(beta), np.power(np.abs(z), beta))))

    def _sf(self, z, beta):
        return self._cdf(np.negative(z), beta)

    def _ppf(self, q, beta):
        d = np.subtract(q, 0.5)
        r = R.gammaincinv(np.reciprocal(beta), np.abs(np.multiply(2.0, d)))
        return np.multiply(np.sign(d), np.power(r, np.reciprocal(beta)))

    def _isf(self, q, beta):
        return np.negative(self._ppf(q, beta))


class pareto_gen(Continuous):
    """The Pareto distribution of shape ``b`` on [1, inf): every method, in every
    parameter."""

    shapes = ("b",)
    a, b = 1.0, np.inf
    inner = 2.0

    def _logpdf(self, z, b):
        return np.subtract(np.log(b), np.multiply(np.add(b, 1.0), np.log(z)))

    def _logsf(self, z, b):
        return np.negative(np.multiply(b, np.log(z)))

    def _sf(self, z, b):
        return np.exp(self._logsf(z, b))

    def _cdf(self, z, b):
        return np.negative(np.expm1(self._logsf(z, b)))

    def _logcdf(self, z, b):
        return _log1mexp(np.multiply(b, np.log(z)))

    def _ppf(self, q, b):
        return np.exp(np.negative(np.divide(np.log1p(np.negative(q)), b)))

    def _isf(self, q, b):
        return np.exp(np.negative(np.divide(np.log(q), b)))


class gumbel_r_gen(Continuous):
    """The right-skewed Gumbel distribution: every method."""

    def _logpdf(self, z):
        return np.subtract(np.negative(z), np.exp(np.negative(z)))

    def _logcdf(self, z):
        return np.negative(np.exp(np.negative(z)))

    def _cdf(self, z):
        return np.exp(self._logcdf(z))

    def _sf(self, z):
        return np.negative(np.expm1(self._logcdf(z)))

    def _logsf(self, z):
        return _log1mexp(np.exp(np.negative(z)))

    def _ppf(self, q):
        return np.negative(np.log(np.negative(np.log(q))))

    def _isf(self, q):
        return np.negative(np.log(np.negative(np.log1p(np.negative(q)))))


class gumbel_l_gen(Continuous):
    """The left-skewed Gumbel distribution: every method."""

    def _logpdf(self, z):
        return np.subtract(z, np.exp(z))

    def _logsf(self, z):
        return np.negative(np.exp(z))

    def _sf(self, z):
        return np.exp(self._logsf(z))

    def _cdf(self, z):
        return np.negative(np.expm1(self._logsf(z)))

    def _logcdf(self, z):
        return _log1mexp(np.exp(z))

    def _ppf(self, q):
        return np.log(np.negative(np.log1p(np.negative(q))))

    def _isf(self, q):
        return np.log(np.negative(np.log(q)))


class wrapcauchy_gen(Continuous):
    """The wrapped Cauchy distribution on [0, 2 pi] of shape 0 < c < 1: every method, in
    every parameter (scipy's formulas; each half of the circle's branch is evaluated on
    its own half only, so tan's pole at pi reaches no derivative)."""

    shapes = ("c",)
    a, b = 0.0, 2.0 * math.pi
    inner = 1.0

    def _argcheck(self, c):
        return np.logical_and(np.greater(c, 0), np.less(c, 1))

    def _logpdf(self, z, c):
        return np.subtract(np.log(np.subtract(1.0, np.square(c))), np.log(np.multiply(
            2.0 * math.pi, np.subtract(np.add(1.0, np.square(c)),
                                       np.multiply(np.multiply(2.0, c), np.cos(z))))))

    def _cdf(self, z, c):
        cr = np.divide(np.add(1.0, c), np.subtract(1.0, c))
        low = np.less(z, math.pi)
        z1 = np.where(low, z, 1.0)
        z2 = np.where(low, 1.0, np.subtract(2.0 * math.pi, z))
        return np.where(low, np.divide(np.arctan(np.multiply(cr, np.tan(np.multiply(0.5, z1)))),
                                       math.pi),
                        np.subtract(1.0, np.divide(np.arctan(np.multiply(
                            cr, np.tan(np.multiply(0.5, z2)))), math.pi)))

    def _ppf(self, q, c):
        val = np.divide(np.subtract(1.0, c), np.add(1.0, c))
        low = np.less(q, 0.5)
        q1 = np.where(low, q, 0.25)
        q2 = np.where(low, 0.25, np.subtract(1.0, q))
        return np.where(low, np.multiply(2.0, np.arctan(np.multiply(val, np.tan(np.multiply(
                            math.pi, q1))))),
                        np.subtract(2.0 * math.pi, np.multiply(2.0, np.arctan(np.multiply(
                            val, np.tan(np.multiply(math.pi, q2)))))))

    def _isf(self, q, c):
        return self._ppf(np.subtract(1.0, q), c)


norm = norm_gen.named("norm")
t = t_gen.named("t")
gamma = gamma_gen.named("gamma")
chi2 = chi2_gen.named("chi2")
beta = beta_gen.named("beta")
expon = expon_gen.named("expon")
laplace = laplace_gen.named("laplace")
cauchy = cauchy_gen.named("cauchy")
logistic = logistic_gen.named("logistic")
lognorm = lognorm_gen.named("lognorm")
uniform = uniform_gen.named("uniform")
truncnorm = truncnorm_gen.named("truncnorm")
vonmises = vonmises_gen.named("vonmises")
gennorm = gennorm_gen.named("gennorm")
pareto = pareto_gen.named("pareto")
gumbel_r = gumbel_r_gen.named("gumbel_r")
gumbel_l = gumbel_l_gen.named("gumbel_l")
wrapcauchy = wrapcauchy_gen.named("wrapcauchy")

__all__ = ["beta", "cauchy", "chi2", "expon", "gamma", "gennorm", "gumbel_l", "gumbel_r",
           "laplace", "logistic", "lognorm", "norm", "pareto", "t", "truncnorm", "uniform",
           "vonmises", "wrapcauchy"]
