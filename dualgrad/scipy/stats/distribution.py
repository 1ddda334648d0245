"""The machinery every distribution shares: scipy.stats' arguments, its support and
parameter checks, and frozen distributions.

A distribution says only its standardised formulas (``_logpdf(z, *shapes)``, ``_cdf``,
``_ppf``...); the public methods here take scipy's arguments (shapes by position or by
name, then ``loc`` and ``scale``), standardise ``z = (x - loc) / scale`` and give scipy's
answers outside the support (-inf, 0, 1) and for invalid parameters (nan), as scipy does.

Everything is written with numpy functions on the (possibly traced) values, so it
differentiates in forward and reverse mode, again for second derivatives, and runs under
``dg.vmap`` and ``dg.jit``: the masks are comparisons of the values themselves, and the
formulas are evaluated at a safe point where the mask drops them (``where(inside, z,
safe)``: the double ``where`` that keeps a -inf or nan of the dropped branch out of the
derivative).

    >>> from dualgrad.scipy.stats import norm
    >>> frozen = norm(1.0, 2.0)
    >>> float(frozen.cdf(1.0)), frozen.args
    (0.5, (1.0, 2.0))
"""

import functools

import numpy as np

from ...core.trace import Box

_METHODS = ("logpdf", "pdf", "logpmf", "pmf", "logcdf", "cdf", "logsf", "sf", "ppf", "isf",
            "rvs")


def quiet(method):
    """``method`` without numpy's warnings for the formulas it drops (log of a negative
    scale, 0 * inf off the support): scipy's methods warn for none of them either."""
    @functools.wraps(method)
    def run(*args, **kwds):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            return method(*args, **kwds)
    return run


def result(v):
    """A 0-d numpy array as its scalar (scipy returns ``np.float64`` for scalars)."""
    if v.__class__ is np.ndarray and v.ndim == 0:
        return v[()]
    return v


def all_of(*conds):
    """The elementwise ``and`` of conditions (traced, arrays or Python bools)."""
    out = True
    for c in conds:
        out = c if out is True else np.logical_and(out, c)
    return out


def _is_true(c):
    return c is True or (isinstance(c, (bool, np.bool_)) and bool(c))


def _infinite(v, sign):
    return isinstance(v, (int, float)) and v == sign * np.inf


class Distribution:
    """What continuous and discrete distributions share: arguments, checks, freezing."""

    name = ""
    shapes = ()        # the names of the shape parameters, in scipy's order
    a, b = -np.inf, np.inf  # the standardised support, when it does not depend on shapes
    params = ()         # the parameters after the shapes: ("loc", "scale") or ("loc",)

    @classmethod
    def named(cls, name):
        """The distribution object the module exports (``norm = norm_gen.named("norm")``)."""
        dist = cls()
        dist.name = name
        return dist

    def __call__(self, *args, **kwds):
        """The frozen distribution: ``norm(loc, scale).logpdf(x)``."""
        self.parse("freeze", args, kwds)
        return Frozen(self, args, kwds)

    def __repr__(self):
        return f"<dualgrad.scipy.stats.{self.name}>"

    def parse(self, method, args, kwds):
        """scipy's arguments: the shapes, then the parameters, by position or name."""
        names = self.shapes + self.params
        if len(args) > len(names):
            raise TypeError(f"{self.name}.{method}() takes at most {len(names)} arguments "
                            f"after the first ({', '.join(names)}), got {len(args)}")
        vals = dict(zip(names, args))
        for k, v in kwds.items():
            if k not in names:
                raise TypeError(f"{self.name}.{method}() got an unexpected keyword argument "
                                f"{k!r} (its parameters: {', '.join(names)})")
            if k in vals:
                raise TypeError(f"{self.name}.{method}() got multiple values for {k!r}")
            vals[k] = v
        missing = [n for n in self.shapes if n not in vals]
        if missing:
            raise TypeError(f"{self.name}.{method}() is missing the shape parameter(s) "
                            f"{', '.join(map(repr, missing))}")
        shapes = tuple(vals[n] for n in self.shapes)
        return shapes, vals.get("loc", 0.0), vals.get("scale", 1.0)

    # -- what a distribution may override ------------------------------------------------

    def _argcheck(self, *s):
        """True where the shapes are valid (scipy's default: every shape > 0)."""
        return all_of(*(np.greater(v, 0) for v in s))

    def _support(self, *s):
        return self.a, self.b

    def rvs(self, *args, size=None, random_state=None, **kwds):
        """Random draws by scipy itself (constants: a sample carries no derivative)."""
        import scipy.stats  # optional: slow to import, and only a draw needs it
        return getattr(scipy.stats, self.name).rvs(*args, size=size, random_state=random_state,
                                                   **kwds)

    # -- shared steps ----------------------------------------------------------------------

    def _finish(self, out, s, scale, z):
        """nan where the parameters are invalid (or x is nan), as scipy."""
        good = all_of(self._argcheck(*s), np.greater(scale, 0) if scale is not None else True)
        if not _is_true(good):
            out = np.where(good, out, np.nan)
        return result(out)

    def _whole(self, lo, hi):
        return _infinite(lo, -1) and _infinite(hi, 1)

    def _safe(self, lo, hi):
        """A point inside the support, where a dropped formula is evaluated instead."""
        return np.maximum(lo, np.minimum(hi, self.inner))

    inner = 0.5  # the safe point, clipped to the support


class Continuous(Distribution):
    """scipy.stats.rv_continuous's methods, from ``_logpdf`` and (where they exist)
    ``_cdf``, ``_sf``, ``_logcdf``, ``_logsf``, ``_ppf``, ``_isf`` of the standardised
    variable."""

    params = ("loc", "scale")

    def _prepare(self, method, x, args, kwds):
        s, loc, scale = self.parse(method, args, kwds)
        return s, scale, np.divide(np.subtract(x, loc), scale)

    @quiet
    def logpdf(self, x, *args, **kwds):
        s, scale, z = self._prepare("logpdf", x, args, kwds)
        lo, hi = self._support(*s)
        if self._whole(lo, hi):
            out = self._logpdf(z, *s)
        else:
            inside = all_of(np.greater_equal(z, lo), np.less_equal(z, hi))
            out = np.where(inside, self._logpdf(np.where(inside, z, self._safe(lo, hi)), *s),
                           -np.inf)
            out = np.where(np.isnan(z), np.nan, out)
        return self._finish(np.subtract(out, np.log(scale)), s, scale, z)

    def pdf(self, x, *args, **kwds):
        return result(np.exp(self.logpdf(x, *args, **kwds)))

    @quiet
    def _tail(self, method, x, args, kwds, below, above):
        s, scale, z = self._prepare(method, x, args, kwds)
        fn = getattr(self, "_" + method)
        lo, hi = self._support(*s)
        if self._whole(lo, hi):
            out = fn(z, *s)
        else:
            inside = all_of(np.greater(z, lo), np.less(z, hi))
            out = np.where(inside, fn(np.where(inside, z, self._safe(lo, hi)), *s),
                           np.where(np.greater_equal(z, hi), above, below))
            out = np.where(np.isnan(z), np.nan, out)
        return self._finish(out, s, scale, z)

    def cdf(self, x, *args, **kwds):
        return self._tail("cdf", x, args, kwds, 0.0, 1.0)

    def logcdf(self, x, *args, **kwds):
        return self._tail("logcdf", x, args, kwds, -np.inf, 0.0)

    def sf(self, x, *args, **kwds):
        return self._tail("sf", x, args, kwds, 1.0, 0.0)

    def logsf(self, x, *args, **kwds):
        return self._tail("logsf", x, args, kwds, 0.0, -np.inf)

    @quiet
    def _quantile(self, method, q, args, kwds):
        s, loc, scale = self.parse(method, args, kwds)
        fn = getattr(self, "_" + method, None)
        if fn is None:
            raise TypeError(f"dualgrad.scipy.stats.{self.name}.{method} is not available "
                            "(no differentiable formula for it here); call "
                            f"scipy.stats.{self.name}.{method} on plain values")
        lo, hi = self._support(*s)
        if method == "isf":
            lo, hi = hi, lo
        inside = all_of(np.greater(q, 0), np.less(q, 1))
        out = np.where(inside, fn(np.where(inside, q, 0.5), *s),
                       np.where(np.equal(q, 0), lo, np.where(np.equal(q, 1), hi, np.nan)))
        return self._finish(np.add(loc, np.multiply(scale, out)), s, scale, q)

    def ppf(self, q, *args, **kwds):
        return self._quantile("ppf", q, args, kwds)

    def isf(self, q, *args, **kwds):
        return self._quantile("isf", q, args, kwds)

    # defaults from the other formulas
    def _logcdf(self, z, *s):
        return np.log(self._cdf(z, *s))

    def _sf(self, z, *s):
        return np.subtract(1.0, self._cdf(z, *s))

    def _logsf(self, z, *s):
        return np.log(self._sf(z, *s))

    def _cdf(self, z, *s):
        raise TypeError(f"dualgrad.scipy.stats.{self.name}.cdf is not available (no "
                        f"differentiable formula for it here); call scipy.stats.{self.name}"
                        ".cdf on plain values")


class Discrete(Distribution):
    """scipy.stats.rv_discrete's methods, from ``_logpmf`` and ``_cdf`` (and ``_sf``,
    ``_logcdf``, ``_logsf`` where better formulas exist) at integer k."""

    params = ("loc",)
    a, b = 0, np.inf
    inner = 0

    def parse(self, method, args, kwds):
        s, loc, _ = super().parse(method, args, kwds)
        return s, loc, None

    @quiet
    def logpmf(self, k, *args, **kwds):
        s, loc, _ = self.parse("logpmf", args, kwds)
        k = np.subtract(k, loc)
        lo, hi = self._support(*s)
        inside = all_of(np.greater_equal(k, lo), np.less_equal(k, hi),
                        np.equal(np.floor(k), k))
        out = np.where(inside, self._logpmf(np.where(inside, k, self._safe(lo, hi)), *s),
                       -np.inf)
        return self._finish(np.where(np.isnan(k), np.nan, out), s, None, k)

    def pmf(self, k, *args, **kwds):
        return result(np.exp(self.logpmf(k, *args, **kwds)))

    @quiet
    def _tail(self, method, k, args, kwds, below, above):
        s, loc, _ = self.parse(method, args, kwds)
        k = np.floor(np.subtract(k, loc))
        fn = getattr(self, "_" + method)
        lo, hi = self._support(*s)
        inside = all_of(np.greater_equal(k, lo), np.less(k, hi))
        out = np.where(inside, fn(np.where(inside, k, self._safe(lo, hi)), *s),
                       np.where(np.greater_equal(k, hi), above, below))
        return self._finish(np.where(np.isnan(k), np.nan, out), s, None, k)

    def cdf(self, k, *args, **kwds):
        return self._tail("cdf", k, args, kwds, 0.0, 1.0)

    def logcdf(self, k, *args, **kwds):
        return self._tail("logcdf", k, args, kwds, -np.inf, 0.0)

    def sf(self, k, *args, **kwds):
        return self._tail("sf", k, args, kwds, 1.0, 0.0)

    def logsf(self, k, *args, **kwds):
        return self._tail("logsf", k, args, kwds, 0.0, -np.inf)

    def _scipy_quantile(self, method, q, args, kwds):
        """A discrete quantile is a step function of q and the parameters: scipy's value
        for plain arguments; traced ones are refused (the derivative would be 0 almost
        everywhere, the value needs a search dualgrad does not trace)."""
        if any(isinstance(v, Box) for v in (q, *args, *kwds.values())):
            raise TypeError(f"dualgrad.scipy.stats.{self.name}.{method} of traced values: a "
                            "discrete quantile is a step function (derivative 0 almost "
                            "everywhere); compute it outside the transformed function, on "
                            "plain values")
        import scipy.stats  # optional: slow to import, and only plain quantiles need it
        return getattr(getattr(scipy.stats, self.name), method)(q, *args, **kwds)

    def ppf(self, q, *args, **kwds):
        self.parse("ppf", args, kwds)
        return self._scipy_quantile("ppf", q, args, kwds)

    def isf(self, q, *args, **kwds):
        self.parse("isf", args, kwds)
        return self._scipy_quantile("isf", q, args, kwds)

    def _logcdf(self, k, *s):
        return np.log(self._cdf(k, *s))

    def _sf(self, k, *s):
        return np.subtract(1.0, self._cdf(k, *s))

    def _logsf(self, k, *s):
        return np.log(self._sf(k, *s))


class Frozen:
    """A distribution with its parameters fixed, as ``scipy.stats.norm(loc, scale)``: each
    method takes x (or q) alone."""

    def __init__(self, dist, args, kwds):
        self.dist, self.args, self.kwds = dist, tuple(args), dict(kwds)

    def __getattr__(self, name):
        if name in ("dist", "args", "kwds") or name.startswith("__"):  # not set yet (copy, pickle)
            raise AttributeError(name)
        if name in _METHODS and hasattr(self.dist, name):
            method = getattr(self.dist, name)
            if name == "rvs":
                return lambda size=None, random_state=None: method(
                    *self.args, size=size, random_state=random_state, **self.kwds)
            return lambda x: method(x, *self.args, **self.kwds)
        raise AttributeError(f"frozen dualgrad.scipy.stats.{self.dist.name} has no "
                             f"attribute {name!r}")

    def __repr__(self):
        return f"<frozen dualgrad.scipy.stats.{self.dist.name}{self.args}>"
