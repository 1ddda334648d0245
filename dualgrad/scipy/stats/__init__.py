"""``dualgrad.scipy.stats``: scipy.stats' distributions on traced values.

The same names, signatures and answers as scipy.stats (nan for invalid parameters, -inf
and 0 off the support), differentiable in x and in every parameter (``loc``, ``scale``,
the shapes, ``mean``, ``cov``), in forward and reverse mode, to second order, under
``dg.vmap`` and ``dg.jit``:

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy import stats
    >>> x = np.array([0.5, 1.5, 3.0])
    >>> loss = lambda a, scale: -np.sum(stats.gamma.logpdf(x, a, scale=scale))
    >>> [round(float(g), 6) for g in dg.grad(loss, argnums=(0, 1))(2.0, 1.0)]
    [0.457423, 1.0]
    >>> float(stats.norm(1.0, 2.0).cdf(1.0))   # frozen, as scipy's
    0.5

Continuous (continuous.py): ``norm``, ``t``, ``gamma``, ``beta``, ``expon``, ``laplace``,
``cauchy``, ``logistic``, ``lognorm``, ``chi2``, ``uniform``, ``truncnorm``, ``vonmises``,
``gennorm``, ``pareto``, ``gumbel_r``, ``gumbel_l``, ``wrapcauchy``: logpdf, pdf, logcdf,
cdf, logsf, sf, ppf, isf (vonmises: logpdf and pdf).  Discrete (discrete.py): ``poisson``,
``bernoulli``, ``binom``, ``nbinom``, ``geom``: logpmf, pmf, logcdf, cdf, logsf, sf, and
ppf, isf by scipy on plain values; ``betabinom``: logpmf, pmf.  Multivariate (multivariate.py):
``multivariate_normal`` (``allow_singular``, cov a matrix, a vector or a scalar),
``dirichlet``, ``multinomial``.

Where a cdf or a quantile goes through scipy's incomplete gamma or beta function or
Student's t cdf, dualgrad differentiates it in x (and so in loc and scale) but not in the
shape that is its first argument: ``gamma.cdf`` in ``a``, ``beta.cdf`` in ``a`` and
``b``, ``t.cdf`` in ``df``, ``chi2.cdf`` in ``df``, ``gennorm.cdf`` in ``beta``,
``nbinom.cdf`` in ``n``.  Asking for that derivative raises TypeError (never a silent
zero); the value, vmap and jit over that shape work.

May import: every layer below (``core`` to ``transforms``) and ``dualgrad.scipy.special``.
"""

from .continuous import (
    beta,
    cauchy,
    chi2,
    expon,
    gamma,
    gennorm,
    gumbel_l,
    gumbel_r,
    laplace,
    logistic,
    lognorm,
    norm,
    pareto,
    t,
    truncnorm,
    uniform,
    vonmises,
    wrapcauchy,
)
from .discrete import bernoulli, betabinom, binom, geom, nbinom, poisson
from .multivariate import dirichlet, multinomial, multivariate_normal

__all__ = ["bernoulli", "beta", "betabinom", "binom", "cauchy", "chi2", "dirichlet", "expon",
           "gamma", "gennorm", "geom", "gumbel_l", "gumbel_r", "laplace", "logistic", "lognorm",
           "multinomial", "multivariate_normal", "nbinom", "norm", "pareto", "poisson", "t",
           "truncnorm", "uniform", "vonmises", "wrapcauchy"]
