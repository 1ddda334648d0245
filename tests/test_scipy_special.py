"""scipy.special on traced values (dualgrad/scipy/special.py).

The rows themselves are tested from the table (test_primitives.py: finite differences,
the dot-product identity, second order, both backends).  Here: a program written with
scipy (Black-Scholes and its greeks against the closed forms), the functions scipy
writes in Python (logsumexp, softmax, polygamma, scipy.stats.norm), the errors, and a
cross-check of values, first and second derivatives against jax.scipy.special.
"""

import math

import numpy as np
import pytest

sc = pytest.importorskip("scipy.special")
stats = pytest.importorskip("scipy.stats")

import dualgrad as dg  # noqa: E402
from dualgrad.scipy import special as S  # noqa: E402

# -- Black-Scholes: a European call, greeks by differentiation vs closed forms ----------

K, T = 100.0, 0.75


def call_price(s, sigma, r):
    """The price as a user writes it: scipy.special.ndtr is what norm.cdf computes."""
    sq = sigma * np.sqrt(T)
    d1 = (np.log(s / K) + (r + 0.5 * sigma ** 2) * T) / sq
    d2 = d1 - sq
    return s * sc.ndtr(d1) - K * np.exp(-r * T) * sc.ndtr(d2)


def call_price_norm(s, sigma, r):
    """The same with dualgrad's scipy.stats.norm stand-in."""
    sq = sigma * np.sqrt(T)
    d1 = (np.log(s / K) + (r + 0.5 * sigma ** 2) * T) / sq
    return s * S.norm.cdf(d1) - K * np.exp(-r * T) * S.norm.cdf(d1 - sq)


def closed_forms(s, sigma, r):
    norm = stats.norm
    d1 = (math.log(s / K) + (r + 0.5 * sigma ** 2) * T) / (sigma * math.sqrt(T))
    d2 = d1 - sigma * math.sqrt(T)
    return dict(price=s * norm.cdf(d1) - K * math.exp(-r * T) * norm.cdf(d2),
                delta=norm.cdf(d1), vega=s * norm.pdf(d1) * math.sqrt(T),
                rho=K * T * math.exp(-r * T) * norm.cdf(d2),
                gamma=norm.pdf(d1) / (s * sigma * math.sqrt(T)),
                vanna=-norm.pdf(d1) * d2 / sigma)


@pytest.mark.parametrize("price", [call_price, call_price_norm])
@pytest.mark.parametrize("s, sigma, r", [(105.0, 0.2, 0.03), (80.0, 0.45, 0.01)])
def test_black_scholes_greeks(price, s, sigma, r):
    ref = closed_forms(s, sigma, r)
    args = (s, sigma, r)
    assert price(*args) == pytest.approx(ref["price"], rel=1e-12)
    for grads in (dg.grad(price, argnums=(0, 1, 2))(*args),
                  dg.jacfwd(price, argnums=(0, 1, 2))(*args)):
        np.testing.assert_allclose(grads, [ref["delta"], ref["vega"], ref["rho"]], rtol=1e-10)
    h = dg.hessian(price, argnums=(0, 1))(*args)
    assert h[0][0] == pytest.approx(ref["gamma"], rel=1e-10)
    assert h[0][1] == pytest.approx(ref["vanna"], rel=1e-10)
    assert h[1][0] == pytest.approx(ref["vanna"], rel=1e-10)


def test_black_scholes_on_arrays_of_strikes_in_both_modes():
    s = np.array([80.0, 100.0, 120.0])
    delta = dg.grad(lambda s: np.sum(call_price(s, 0.3, 0.02)))(s)
    gamma = np.diag(dg.hessian(lambda s: np.sum(call_price(s, 0.3, 0.02)))(s))
    for i, si in enumerate(s):
        ref = closed_forms(si, 0.3, 0.02)
        assert delta[i] == pytest.approx(ref["delta"], rel=1e-10)
        assert gamma[i] == pytest.approx(ref["gamma"], rel=1e-9)


def _refused_or_right(f, x, expected):
    """A function dualgrad has no rule for, run on a traced value: a TypeError, or the
    right derivative, and never a silently wrong one."""
    try:
        g = dg.grad(f)(x)
    except TypeError:
        return
    np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-12)


def test_scipy_stats_norm_cdf_itself_refuses_a_traced_value():
    """norm.cdf converts x with np.asarray(x, dtype=float) and fills a new float array
    with np.place: no protocol carries a derivative through that (use S.norm)."""
    _refused_or_right(lambda x: stats.norm.cdf(x), 0.5, stats.norm.pdf(0.5))


def test_norm_stand_in_matches_scipy_stats():
    x = np.array([-2.0, -0.3, 0.4, 1.7])
    q = np.array([0.02, 0.3, 0.5, 0.97])
    n = stats.norm(loc=0.5, scale=2.0)
    for name, arg in [("cdf", x), ("sf", x), ("logcdf", x), ("logsf", x), ("pdf", x),
                      ("logpdf", x), ("ppf", q), ("isf", q)]:
        np.testing.assert_allclose(getattr(S.norm, name)(arg, 0.5, 2.0), getattr(n, name)(arg),
                                   rtol=1e-13, err_msg=name)
    # d/dx cdf = pdf, d/dq ppf = 1 / pdf(ppf)
    np.testing.assert_allclose(dg.grad(lambda x: np.sum(S.norm.cdf(x, 0.5, 2.0)))(x),
                               n.pdf(x), rtol=1e-13)
    np.testing.assert_allclose(dg.grad(lambda q: np.sum(S.norm.ppf(q, 0.5, 2.0)))(q),
                               1 / n.pdf(n.ppf(q)), rtol=1e-12)
    dg.check_grads(lambda x, m, s: S.norm.logpdf(x, m, s), (x, 0.5, 2.0), order=2)


# -- the functions scipy writes in Python ---------------------------------------------

A = np.random.default_rng(7).standard_normal((3, 4))


def test_scipys_own_logsumexp_softmax_polygamma_are_never_silently_wrong():
    w = np.random.default_rng(9).standard_normal(A.shape)
    x = np.abs(A) + 0.5
    for f, ours, at in [(sc.logsumexp, S.logsumexp, A), (sc.softmax, S.softmax, A),
                        (sc.log_softmax, S.log_softmax, A),
                        (lambda x: sc.softmax(x, axis=1), lambda x: S.softmax(x, axis=1), A),
                        (lambda x: sc.polygamma(1, x), lambda x: S.polygamma(1, x), x)]:
        expected = dg.grad(lambda x, f=ours: np.sum(f(x) * w))(at)
        _refused_or_right(lambda x, f=f: np.sum(f(x) * w), at, expected)


@pytest.mark.parametrize("kw", [{}, {"axis": 1}, {"axis": (0, 1), "keepdims": True},
                                {"axis": 0, "b": np.abs(A) + 0.1},
                                {"axis": -1, "b": np.array([1.0, 0.0, 2.0, 0.5])}])
def test_logsumexp_matches_scipy(kw):
    np.testing.assert_allclose(S.logsumexp(A, **kw), sc.logsumexp(A, **kw), rtol=1e-13)
    dg.check_grads(lambda a: S.logsumexp(a, **kw), (A,), order=2)
    if "b" in kw:
        b = kw["b"]
        rest = {k: v for k, v in kw.items() if k != "b"}
        dg.check_grads(lambda b: S.logsumexp(A, b=b, **rest), (b,), order=2)


def test_logsumexp_with_signs():
    b = np.array([[1.0, -2.0, 0.5, 1.0], [-1.0, -1.0, 0.2, 0.1], [3.0, 0.0, -0.1, 0.2]])
    out, sgn = S.logsumexp(A, axis=1, b=b, return_sign=True)
    ref, ref_sgn = sc.logsumexp(A, axis=1, b=b, return_sign=True)
    np.testing.assert_allclose(out, ref, rtol=1e-13)
    np.testing.assert_array_equal(sgn, ref_sgn)
    dg.check_grads(lambda a: S.logsumexp(a, axis=1, b=b, return_sign=True)[0], (A,), order=2)


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
def test_softmax_and_log_softmax_match_scipy(axis):
    np.testing.assert_allclose(S.softmax(A, axis=axis), sc.softmax(A, axis=axis), rtol=1e-13)
    np.testing.assert_allclose(S.log_softmax(A, axis=axis), sc.log_softmax(A, axis=axis),
                               rtol=1e-13)
    dg.check_grads(lambda a: S.softmax(a, axis=axis), (A,), order=2)
    dg.check_grads(lambda a: S.log_softmax(a, axis=axis), (A,), order=2)


def test_polygamma_and_zeta():
    x = np.array([0.7, 1.5, 4.0])
    for n in (0, 1, 3):
        np.testing.assert_allclose(S.polygamma(n, x), sc.polygamma(n, x), rtol=1e-14)
        np.testing.assert_allclose(dg.grad(lambda x, n=n: np.sum(S.polygamma(n, x)))(x),
                                   sc.polygamma(n + 1, x), rtol=1e-12)
    # psi' = polygamma(1, .) = zeta(2, .), through scipy.special.zeta's own Python code
    np.testing.assert_allclose(dg.grad(lambda x: np.sum(sc.digamma(x)))(x), sc.zeta(2.0, x),
                               rtol=1e-12)
    np.testing.assert_allclose(dg.grad(lambda q: np.sum(sc.zeta(3.0, q)))(x),
                               -3.0 * sc.zeta(4.0, x), rtol=1e-12)
    assert float(dg.grad(lambda x: sc.gammaln(x))(1.0)) == pytest.approx(-np.euler_gamma)


# -- values where a formula needs care -------------------------------------------------

def test_zero_safe_points():
    # xlogy(0, y) = 0 for every y: d/dy = 0 there, even at y = 0; d/dx = log(y)
    assert dg.grad(lambda y: sc.xlogy(0.0, y))(0.0) == 0.0
    assert dg.grad(lambda x: sc.xlogy(x, 2.0))(0.0) == pytest.approx(math.log(2.0))
    assert dg.grad(lambda y: sc.xlog1py(0.0, y))(-1.0) == 0.0
    # the mixed second derivative of x log y at x = 0 is 1 / y (no mask hides it)
    h = dg.hessian(lambda x, y: sc.xlogy(x, y), argnums=(0, 1))(0.0, 2.0)
    assert h[0][1] == pytest.approx(0.5)
    # i1'(0) = 1/2, i1''(0) = 0; i1e'(0) = 1/2 from both sides
    assert dg.grad(sc.i1)(0.0) == pytest.approx(0.5)
    assert dg.grad(dg.grad(sc.i1))(0.0) == 0.0
    assert dg.grad(sc.i1e)(0.0) == pytest.approx(0.5)
    # log_ndtr far in the left tail: pdf / cdf without 0 / 0
    assert dg.grad(sc.log_ndtr)(-40.0) == pytest.approx(40.0249, rel=1e-5)


def test_scipy_functions_of_numpy_functions_use_numpys_rows():
    x = np.array([0.1, 0.5, 2.0])
    for f, d in [(sc.expm1, np.exp(x)), (sc.log1p, 1 / (1 + x)), (sc.exp2, np.log(2) * 2 ** x),
                 (sc.cbrt, x ** (-2 / 3) / 3)]:
        np.testing.assert_allclose(dg.grad(lambda x, f=f: np.sum(f(x)))(x), d, rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.longdouble])
def test_dtypes_are_kept(dtype):
    x = np.array([0.3, 0.6], dtype)
    for f in (sc.erf, sc.gammaln, sc.i0e, sc.ndtri, lambda x: sc.jv(1.0, x),
              lambda x: S.polygamma(1, x)):
        out, pull = dg.vjp(f, x)
        assert out.dtype == dtype
        assert pull(np.ones_like(x))[0].dtype == dtype
        assert dg.jvp(f, (x,), (np.ones_like(x),))[1].dtype == dtype


# -- errors ----------------------------------------------------------------------------

def test_a_scipy_ufunc_without_a_rule_names_scipy_special():
    with pytest.raises(TypeError, match=r"scipy\.special\.struve.*dg\.custom_jvp"):
        dg.grad(lambda x: sc.struve(1.0, x))(0.5)
    with pytest.raises(TypeError, match=r"scipy\.special\.ellipk"):
        dg.jvp(sc.ellipk, (0.5,), (1.0,))


def test_a_traced_order_is_refused():
    with pytest.raises(TypeError, match=r"scipy\.special\.jv with respect to its first"):
        dg.grad(lambda v: sc.jv(v, 1.5))(1.0)
    with pytest.raises(TypeError, match=r"scipy\.special\.polygamma with respect to its order"):
        dg.grad(lambda n: S.polygamma(n, 1.5))(1.0)


# -- cross-check against JAX -----------------------------------------------------------

rng = np.random.default_rng(3)
REAL = rng.standard_normal(5)
POS = rng.uniform(0.5, 3.0, 5)
PROB = rng.uniform(0.05, 0.95, 5)
UNIT = rng.uniform(-0.9, 0.9, 5)
NONZERO = np.array([-2.1, -0.7, 0.6, 1.3, 2.8])
UNARY = {"erf": REAL, "erfc": REAL, "erfcx": REAL, "erfinv": UNIT, "ndtr": REAL,
         "ndtri": PROB, "log_ndtr": REAL * 3, "gammaln": POS, "loggamma": POS,
         "digamma": POS, "gamma": POS, "expit": REAL, "logit": PROB, "entr": POS,
         "i0": REAL, "i1": REAL, "i0e": NONZERO, "i1e": NONZERO,
         "erfcinv": PROB, "log_expit": REAL, "rgamma": POS}
# the rows jax.scipy.special lacks, written with functions it has
JAX_MISSING = {"erfcinv": lambda jax, y: -jax.scipy.special.ndtri(y / 2) / np.sqrt(2.0),
               "log_expit": lambda jax, x: jax.nn.log_sigmoid(x),
               "rgamma": lambda jax, x: 1.0 / jax.scipy.special.gamma(x)}
POS2 = np.roll(POS, 2)  # never a == b: there JAX's beta has a wrong second derivative
BINARY = {"xlogy": (REAL, POS), "xlog1py": (REAL, POS), "betaln": (POS, POS2),
          "beta": (POS, POS2), "rel_entr": (POS, POS2), "kl_div": (POS, POS2)}
ORDERED = {"polygamma": (lambda n, x: S.polygamma(n, x), 2, POS),
           "gammainc": (sc.gammainc, 1.7, POS), "gammaincc": (sc.gammaincc, 1.7, POS),
           "zeta": (sc.zeta, 3.0, POS)}


def _jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


def _derivatives(grad, f, x):
    """f, f' and f'' at each entry of x, by ``grad`` of sums (f is elementwise)."""
    g = grad(lambda x: f(x).sum())
    return f(x), g(x), grad(lambda x: g(x).sum())(x)


def _compare(jax, ours, theirs, x, name):
    mine = _derivatives(dg.grad, ours, x)
    ref = _derivatives(jax.grad, theirs, jax.numpy.asarray(x))
    for what, a, b in zip(("value", "first", "second"), mine, ref):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-9, atol=1e-12,
                                   err_msg=f"{name}: {what} derivative")


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_rows_match_jax(name):
    jax = _jax()
    js = pytest.importorskip("jax.scipy.special")
    if hasattr(js, name):
        theirs = getattr(js, name)
    elif name in JAX_MISSING:
        theirs = lambda x: JAX_MISSING[name](jax, x)
    else:
        pytest.skip(f"jax.scipy.special has no {name} (erfcx, loggamma: jax>=0.10)")
    _compare(jax, getattr(sc, name), theirs, UNARY[name], name)


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("arg", [0, 1])
def test_binary_rows_match_jax(name, arg):
    jax = _jax()
    js = pytest.importorskip("jax.scipy.special")
    x, y = BINARY[name]
    if arg == 0:
        _compare(jax, lambda x: getattr(sc, name)(x, y), lambda x: getattr(js, name)(x, y), x,
                 name)
    else:
        _compare(jax, lambda y: getattr(sc, name)(x, y), lambda y: getattr(js, name)(x, y), y,
                 name)


@pytest.mark.parametrize("name", sorted(ORDERED))
def test_rows_of_a_constant_order_match_jax(name):
    jax = _jax()
    js = pytest.importorskip("jax.scipy.special")
    f, v, x = ORDERED[name]
    _compare(jax, lambda x: f(v, x), lambda x: getattr(js, name)(v, x), x, name)


def test_logsumexp_and_softmax_match_jax():
    jax = _jax()
    js = pytest.importorskip("jax.scipy.special")
    jnn = pytest.importorskip("jax.nn")
    b = np.abs(A) + 0.1
    w = np.random.default_rng(8).standard_normal(A.shape)
    for ours, theirs in [(lambda a: S.logsumexp(a, axis=1, b=b),
                          lambda a: js.logsumexp(a, axis=1, b=b)),
                         (lambda a: S.softmax(a, axis=None) * w,
                          lambda a: jnn.softmax(a, axis=(0, 1)) * w),
                         (lambda a: S.log_softmax(a, axis=0) * w,
                          lambda a: jnn.log_softmax(a, axis=0) * w)]:
        g = dg.grad(lambda a, f=ours: np.sum(f(a) ** 2))(A)
        ref = jax.grad(lambda a, f=theirs: (f(a) ** 2).sum())(A)
        np.testing.assert_allclose(g, np.asarray(ref), rtol=1e-10)


# -- multigammaln, and the deprecated module name ---------------------------------------

def test_multigammaln():
    a = np.array([2.5, 3.0, 7.2])
    for d in (1, 3, 4):
        np.testing.assert_allclose(S.multigammaln(a, d), sc.multigammaln(a, d), rtol=1e-13)
        dg.check_grads(lambda a, d=d: S.multigammaln(a, d), (a,), order=2)
    assert S.multigammaln(3.0, 3) == pytest.approx(sc.multigammaln(3.0, 3), rel=1e-14)
    with pytest.raises(ValueError, match=r"a > \(d - 1\) / 2"):
        S.multigammaln(1.0, 4)
    with pytest.raises(ValueError, match="d must be a non-negative integer"):
        S.multigammaln(3.0, 2.5)
    jax = _jax()
    js = pytest.importorskip("jax.scipy.special")
    g = dg.grad(lambda a: np.sum(S.multigammaln(a, 3) ** 2))(a)
    ref = jax.grad(lambda a: (js.multigammaln(a, 3) ** 2).sum())(a)
    np.testing.assert_allclose(g, np.asarray(ref), rtol=1e-12)


def test_scipy_special_module_name_is_deprecated():
    import importlib
    import sys
    sys.modules.pop("dualgrad.scipy_special", None)
    with pytest.warns(DeprecationWarning, match=r"dualgrad\.scipy\.special"):
        old = importlib.import_module("dualgrad.scipy_special")
    assert old.logsumexp is S.logsumexp and old.norm is S.norm
    from dualgrad.scipy import stats as st
    assert S.norm is st.norm  # moved to dualgrad.scipy.stats, kept here by name
