"""scipy.special's ufuncs as rows (scipy is an optional dependency: only
``dualgrad.scipy.special`` imports this module, so ``import dualgrad.rules`` never needs
scipy).

Each row is registered under its scipy ufunc in ``UFUNCS``, so ``scipy.special.erf(x)`` of
a traced ``x`` reaches ``Box.__array_ufunc__`` like ``np.sin(x)``.  The local derivatives
are written with rows, so second and higher derivatives work: erf' = 2/sqrt(pi)
exp(-x^2), gammaln' = digamma, digamma' = polygamma(1, .), the inverses (erfinv, ndtri,
logit) by the inverse-function rule from their answer.

A few scipy functions take a constant first argument (an order or a shape): Bessel
``jv``/``yv``/``iv``/``kv`` (in z), ``gammainc``/``gammaincc`` (in x), ``zeta(s, q)``
(in q) and ``polygamma(n, x)`` (in x).  Their rows hold that argument as a parameter
(``jv_p(x, v=order)``); ``dualgrad.scipy.special`` routes scipy's ufuncs to them and
refuses a traced order.

dtypes: a float16 value is computed by scipy in float32 and returned as float16 (as
numpy's own float16 loops do); scipy has no long double loops for most functions, so a
longdouble value is computed in float64 and returned as longdouble.  Either way the
value, its tangent and its cotangent have the primal's dtype.
"""

import math

import numpy as np
import scipy.special as sc

from .. import rules as P  # the rows by name (dualgrad.rules is imported in full first)
from ..core.trace import Box, unbox
from .elementwise import (
    add,
    divide,
    exp,
    log,
    multiply,
    negative,
    reciprocal,
    square,
    subtract,
    where,
)

_SQRT_PI_2 = math.sqrt(math.pi) / 2.0
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_REAL = "scipy computes it for real arguments only"


def _keep_dtype(fn, like=None):
    """``fn`` (a scipy ufunc) giving its answer in the float dtype of its arguments (of
    argument ``like`` alone, when the others are constant orders)."""
    def impl(*args, **kw):
        want = np.result_type(*(args if like is None else args[like:like + 1]), 1.0)
        try:
            out = fn(*args, **kw)
        except TypeError:  # no long double loop: compute in float64
            if want.kind != "f" or want.itemsize <= 8:
                raise
            out = fn(*(np.asarray(a, np.float64) for a in args), **kw)
        return out if out.dtype == want else out.astype(want)
    impl.__name__ = fn.__name__
    return impl


def _unary(ufunc, deriv, domain="real", real_only=None, name=None):
    return P.defunary(ufunc, deriv, domain=domain, impl=_keep_dtype(ufunc), name=name,
                      real_only=real_only, dtype=P.float_result)


def _binary(ufunc, dx, dy, domain="real", real_only=None):
    return P.defbinary(ufunc, dx, dy, domain=domain, impl=_keep_dtype(ufunc),
                       real_only=real_only, dtype=P.float_result)


def _sign(x):
    """sign(x) as a constant of x's float dtype (the kink of exp(-|x|))."""
    return P.float_mask(np.sign(unbox(x)), x)


def _safe_ratio(x, y):
    """x / y, and 0 where x = y = 0 (xlogy's d/dy at the origin, where x log y is 0)."""
    both = np.logical_and(x == 0, y == 0)  # compared as values: under dg.jit, graph nodes
    if P.may_any(both):
        y = where(both, 1.0, y)
    return divide(x, y)


def _over_x(f, x):
    """f(x) / x for an odd f with f'(0) = 1/2 (i1, i1e): 1/2 at x = 0."""
    zero = unbox(x) == 0
    if P.may_any(zero):
        return where(zero, 0.5, divide(f(x), where(zero, 1.0, x)))
    return divide(f(x), x)


# ---------------------------------------------------------------------------
# error function and the normal distribution
# ---------------------------------------------------------------------------

def _gauss(x):
    return multiply(1.0 / _SQRT_PI_2, exp(negative(square(x))))  # 2/sqrt(pi) exp(-x^2)


erf = _unary(sc.erf, lambda ans, x: _gauss(x))
erfc = _unary(sc.erfc, lambda ans, x: negative(_gauss(x)))
erfcx = _unary(sc.erfcx, lambda ans, x: subtract(multiply(multiply(2.0, x), ans),
                                                 1.0 / _SQRT_PI_2))  # exp(x^2) erfc(x)
erfinv = _unary(sc.erfinv, lambda ans, x: multiply(_SQRT_PI_2, exp(square(ans))),
                domain="unit", real_only=_REAL)
erfcinv = _unary(sc.erfcinv, lambda ans, x: multiply(-_SQRT_PI_2, exp(square(ans))),
                 domain="prob", real_only=_REAL)


def _npdf(x):
    return exp(subtract(multiply(-0.5, square(x)), LOG_SQRT_2PI))


ndtr = _unary(sc.ndtr, lambda ans, x: _npdf(x))
ndtri = _unary(sc.ndtri, lambda ans, x: exp(add(multiply(0.5, square(ans)), LOG_SQRT_2PI)),
               domain="prob", real_only=_REAL)
# pdf(x) / ndtr(x) as one exponential: no underflow to 0/0 far in the left tail
log_ndtr = _unary(sc.log_ndtr, lambda ans, x: exp(subtract(
    subtract(multiply(-0.5, square(x)), ans), LOG_SQRT_2PI)))

# ---------------------------------------------------------------------------
# gamma and friends
# ---------------------------------------------------------------------------


def _polygamma_ufuncs(n, x):
    """scipy.special.polygamma's formula with ufuncs only (scipy's own begins with
    ``np.asarray(x)``, a copy to the host for a device array): the same operations in the
    same order, so the same bits."""
    if np.ndim(n) or not float(n).is_integer():
        return sc.polygamma(n, x)  # an array of orders: scipy's own
    if n == 0:
        return sc.psi(x)
    return (-1.0) ** (n + 1) * sc.gamma(n + 1.0) * sc.zeta(n + 1, x)


_polygamma = _keep_dtype(_polygamma_ufuncs, like=1)
polygamma_p = P.defprim(
    "polygamma", lambda x, n: _polygamma(n, x), real_only=_REAL, dtype=P.float_result,
    jvp=(lambda t, ans, x, n: multiply(t, polygamma_p(x, n=n + 1)),),
    vjp=(lambda g, ans, x, n: multiply(g, polygamma_p(x, n=n + 1)),),
    batch=P.batch_trailing("polygamma"))  # x has the broadcast shape: n lines up

digamma = _unary(sc.digamma, lambda ans, x: polygamma_p(x, n=1), domain="positive",
                 real_only=_REAL, name="digamma")  # scipy calls this ufunc "psi"
gammaln = _unary(sc.gammaln, lambda ans, x: digamma(x), domain="positive", real_only=_REAL)
loggamma = _unary(sc.loggamma, lambda ans, x: digamma(x), domain="positive",
                  real_only=_REAL)
gamma = _unary(sc.gamma, lambda ans, x: multiply(ans, digamma(x)), domain="positive",
               real_only=_REAL)
rgamma = _unary(sc.rgamma, lambda ans, x: negative(multiply(ans, digamma(x))),
                domain="positive", real_only=_REAL)


def _dbetaln(ans, a, b):
    return subtract(digamma(a), digamma(add(a, b)))


betaln = _binary(sc.betaln, _dbetaln, lambda ans, a, b: _dbetaln(ans, b, a), domain="positive",
                 real_only=_REAL)
beta = _binary(sc.beta, lambda ans, a, b: multiply(ans, _dbetaln(ans, a, b)),
               lambda ans, a, b: multiply(ans, _dbetaln(ans, b, a)), domain="positive",
               real_only=_REAL)

# ---------------------------------------------------------------------------
# logistic, entropy and x log y
# ---------------------------------------------------------------------------

expit = _unary(sc.expit, lambda ans, x: multiply(ans, subtract(1.0, ans)), real_only=_REAL)
logit = _unary(sc.logit, lambda ans, x: reciprocal(multiply(x, subtract(1.0, x))),
               domain="prob", real_only=_REAL)
log_expit = _unary(sc.log_expit, lambda ans, x: expit(negative(x)), real_only=_REAL)
entr = _unary(sc.entr, lambda ans, x: negative(add(log(x), 1.0)), domain="positive",
              real_only=_REAL)
xlogy = _binary(sc.xlogy, lambda ans, x, y: log(y), lambda ans, x, y: _safe_ratio(x, y),
                domain="positive")
xlog1py = _binary(sc.xlog1py, lambda ans, x, y: P.log1p(y),
                  lambda ans, x, y: _safe_ratio(x, add(y, 1.0)), domain="positive")
rel_entr = _binary(sc.rel_entr, lambda ans, x, y: add(log(divide(x, y)), 1.0),
                   lambda ans, x, y: negative(divide(x, y)), domain="positive",
                   real_only=_REAL)
kl_div = _binary(sc.kl_div, lambda ans, x, y: log(divide(x, y)),
                 lambda ans, x, y: subtract(1.0, divide(x, y)), domain="positive",
                 real_only=_REAL)

# ---------------------------------------------------------------------------
# modified Bessel functions of order 0 and 1 (the exponentially scaled ones carry
# exp(-|x|), whose kink at 0 the tests avoid: domain "nonzero")
# ---------------------------------------------------------------------------

i0 = _unary(sc.i0, lambda ans, x: i1(x), real_only=_REAL)
i1 = _unary(sc.i1, lambda ans, x: subtract(i0(x), _over_x(i1, x)), real_only=_REAL)
i0e = _unary(sc.i0e, lambda ans, x: subtract(i1e(x), multiply(_sign(x), ans)),
             domain="nonzero", real_only=_REAL)
i1e = _unary(sc.i1e, lambda ans, x: subtract(subtract(i0e(x), _over_x(i1e, x)),
                                             multiply(_sign(x), ans)),
             domain="nonzero", real_only=_REAL)

# ---------------------------------------------------------------------------
# elementary functions scipy computes itself
# ---------------------------------------------------------------------------

_DEG = math.pi / 180.0
cosm1 = _unary(sc.cosm1, lambda ans, x: negative(P.sin(x)), real_only=_REAL)
exp10 = _unary(sc.exp10, lambda ans, x: multiply(ans, math.log(10.0)), real_only=_REAL)
sindg = _unary(sc.sindg, lambda ans, x: multiply(_DEG, cosdg(x)), real_only=_REAL)
cosdg = _unary(sc.cosdg, lambda ans, x: multiply(-_DEG, sindg(x)), real_only=_REAL)
for _ufunc, _row in ((sc.expm1, P.expm1), (sc.log1p, P.log1p), (sc.exp2, P.exp2),
                     (sc.cbrt, P.cbrt)):
    P.UFUNCS[_ufunc] = _row  # the same functions as numpy's: numpy's rows

# ---------------------------------------------------------------------------
# functions of a constant order (an argument without a derivative)
# ---------------------------------------------------------------------------

def _ordered(name, ufunc, deriv, real_only=_REAL):
    """A row ``name(x, v=...)`` for ``ufunc(v, x)``, differentiable in x; scipy's ufunc
    (or function) reaches it with the order ``v`` a constant."""
    impl = _keep_dtype(ufunc, like=1)
    return P.defprim(name, lambda x, v: impl(v, x), real_only=real_only, dtype=P.float_result,
                     jvp=(lambda t, ans, x, v: multiply(t, deriv(ans, x, v)),),
                     vjp=(lambda g, ans, x, v: multiply(g, deriv(ans, x, v)),),
                     batch=P.batch_trailing(name))


jv_p = _ordered("jv", sc.jv, lambda ans, x, v: multiply(
    0.5, subtract(jv_p(x, v=v - 1), jv_p(x, v=v + 1))))
yv_p = _ordered("yv", sc.yv, lambda ans, x, v: multiply(
    0.5, subtract(yv_p(x, v=v - 1), yv_p(x, v=v + 1))))
iv_p = _ordered("iv", sc.iv, lambda ans, x, v: multiply(
    0.5, add(iv_p(x, v=v - 1), iv_p(x, v=v + 1))))
kv_p = _ordered("kv", sc.kv, lambda ans, x, v: multiply(
    -0.5, add(kv_p(x, v=v - 1), kv_p(x, v=v + 1))))


def _like(c, x):
    """A constant order as x's float dtype (a float64 order keeps a float32 x float32)."""
    if P.device_like(c) is not None:  # an order on the device stays there
        return c.astype(P.float_dtype(x))
    return np.asarray(c, P.float_dtype(x))


def _dgammainc(ans, x, a):  # x^(a-1) e^-x / Gamma(a)
    return exp(subtract(subtract(xlogy(_like(np.subtract(a, 1.0), x), x), x),
                        _like(sc.gammaln(a), x)))


gammainc_p = _ordered("gammainc", sc.gammainc, _dgammainc)
gammaincc_p = _ordered("gammaincc", sc.gammaincc,
                      lambda ans, x, a: negative(_dgammainc(ans, x, a)))
# Hurwitz zeta(s, q): d/dq = -s zeta(s + 1, q); scipy.special.zeta(s, q) calls this ufunc
hurwitz_zeta = sc._ufuncs._zeta
zeta_p = _ordered("zeta", hurwitz_zeta, lambda ans, x, s: multiply(
    _like(np.negative(s), x), zeta_p(x, v=np.add(s, 1.0))))

# ---------------------------------------------------------------------------
# incomplete gamma and beta functions and their inverses, as functions of all their
# arguments (dualgrad.scipy.stats' cdfs and ppfs): the shapes are array arguments, so
# dg.vmap and dg.jit trace them, but the derivative is in the last argument only; one in a
# shape raises when it is asked for (never a silent zero)
# ---------------------------------------------------------------------------

def _in_last(name, ufunc, deriv, shapes):
    """A row ``name(*shapes, x)`` computing ``ufunc`` (scipy's argument order), whose local
    derivative in x is ``deriv(ans, *shapes, x)``; in a shape, a TypeError naming it."""
    def refuse(i):
        def rule(*_):
            raise TypeError(
                f"dualgrad has no derivative rule for scipy.special.{ufunc.__name__} with "
                f"respect to {shapes[i]} (argument {i}), only in its last argument; pass "
                f"{shapes[i]} as a constant (dg.stop_gradient)")
        return rule
    def local(ans, *args):  # constant shapes in the result's dtype (float32 stays float32),
        dt = P.float_result(*args)  # where they live: a device array stays on the device,
        return deriv(ans, *(_constant(a, dt) for a in args))  # a number stays a number
    def _constant(a, dt):
        if isinstance(a, Box):
            return a
        if P.device_like(a) is not None:
            return a.astype(dt)
        return dt.type(a) if np.ndim(a) == 0 else np.asarray(a, dt)
    n = len(shapes)
    return P.defprim(name, _keep_dtype(ufunc), bcast=True, real_only=_REAL,
                     dtype=P.float_result, domain="prob",
                     jvp=tuple(refuse(i) for i in range(n))
                     + (lambda t, ans, *args: multiply(t, local(ans, *args)),),
                     forms=tuple(("mul", refuse(i)) for i in range(n)) + (("mul", local),))


def _log_gamma_density(x, a):  # log(x^(a-1) e^-x / Gamma(a))
    return subtract(subtract(xlogy(subtract(a, 1.0), x), x), gammaln(a))


def _log_beta_density(x, a, b):  # log(x^(a-1) (1-x)^(b-1) / B(a, b))
    return subtract(add(xlogy(subtract(a, 1.0), x), xlog1py(subtract(b, 1.0), negative(x))),
                    betaln(a, b))


def _log_t_density(x, df):  # Student's t with df degrees of freedom
    half = multiply(0.5, add(df, 1.0))
    return subtract(subtract(subtract(gammaln(half), gammaln(multiply(0.5, df))),
                             multiply(0.5, log(multiply(math.pi, df)))),
                    multiply(half, P.log1p(divide(square(x), df))))


igamma = _in_last("igamma", sc.gammainc, lambda ans, a, x: exp(_log_gamma_density(x, a)),
                  ("a",))
igammac = _in_last("igammac", sc.gammaincc,
                   lambda ans, a, x: negative(exp(_log_gamma_density(x, a))), ("a",))
gammaincinv = _in_last("gammaincinv", sc.gammaincinv,
                       lambda ans, a, y: exp(negative(_log_gamma_density(ans, a))), ("a",))
gammainccinv = _in_last("gammainccinv", sc.gammainccinv,
                        lambda ans, a, y: negative(exp(negative(_log_gamma_density(ans, a)))),
                        ("a",))
betainc = _in_last("betainc", sc.betainc,
                   lambda ans, a, b, x: exp(_log_beta_density(x, a, b)), ("a", "b"))
betaincc = _in_last("betaincc", sc.betaincc,
                    lambda ans, a, b, x: negative(exp(_log_beta_density(x, a, b))), ("a", "b"))
betaincinv = _in_last("betaincinv", sc.betaincinv,
                      lambda ans, a, b, y: exp(negative(_log_beta_density(ans, a, b))),
                      ("a", "b"))
betainccinv = _in_last("betainccinv", sc.betainccinv,
                       lambda ans, a, b, y: negative(exp(negative(_log_beta_density(ans, a, b)))),
                       ("a", "b"))
stdtr = _in_last("stdtr", sc.stdtr, lambda ans, df, t: exp(_log_t_density(t, df)), ("df",))
stdtrit = _in_last("stdtrit", sc.stdtrit,
                   lambda ans, df, p: exp(negative(_log_t_density(ans, df))), ("df",))
