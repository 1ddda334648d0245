"""dualgrad.scipy.stats, generated from one table of (distribution, parameters, points).

For every distribution and method: values against scipy.stats (inside and outside the
support, invalid parameters); first derivatives in x and every parameter against finite
differences (forward and reverse mode) and against jax.scipy.stats where JAX has the
method; second derivatives on a few; one dg.vmap and one dg.jit case per family; the
errors (a shape with no derivative raises, bad arguments are named).
"""

import numpy as np
import pytest

stats = pytest.importorskip("scipy.stats")

import dualgrad as dg  # noqa: E402
from dualgrad.scipy import stats as S  # noqa: E402

rng = np.random.default_rng(24)
REAL = np.array([-2.3, -0.4, 0.3, 1.1, 2.9])
POS = np.array([0.2, 0.7, 1.3, 2.5, 4.1])
UNIT = np.array([0.07, 0.3, 0.55, 0.8, 0.93])
Q = np.array([0.02, 0.2, 0.45, 0.7, 0.97])
CONTINUOUS_METHODS = ("logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf", "isf")
TAILS = ("cdf", "logcdf", "sf", "logsf", "ppf", "isf")

# name, shapes, loc/scale, points inside the support (x, or q for ppf/isf), points off it,
# the methods with no derivative in the shapes, the methods dualgrad has
CONTINUOUS = [
    ("norm", (), dict(loc=0.5, scale=2.0), REAL, [], (), CONTINUOUS_METHODS),
    ("t", (3.5,), dict(loc=-0.2, scale=1.5), REAL, [], TAILS, CONTINUOUS_METHODS),
    ("gamma", (2.5,), dict(loc=0.1, scale=1.5), POS + 0.1, [-1.0, 0.05], TAILS,
     CONTINUOUS_METHODS),
    ("beta", (2.5, 1.7), dict(loc=0.0, scale=1.0), UNIT, [-0.5, 1.5], TAILS,
     CONTINUOUS_METHODS),
    ("expon", (), dict(loc=0.2, scale=1.5), POS + 0.2, [-1.0, 0.1], (), CONTINUOUS_METHODS),
    ("laplace", (), dict(loc=0.5, scale=0.8), REAL, [], (), CONTINUOUS_METHODS),
    ("cauchy", (), dict(loc=-0.5, scale=1.3), REAL, [], (), CONTINUOUS_METHODS),
    ("logistic", (), dict(loc=0.3, scale=0.9), REAL, [], (), CONTINUOUS_METHODS),
    ("lognorm", (0.7,), dict(loc=0.0, scale=1.2), POS, [-1.0, 0.0], (), CONTINUOUS_METHODS),
    ("chi2", (3.3,), dict(loc=0.0, scale=1.0), POS, [-1.0], TAILS, CONTINUOUS_METHODS),
    ("uniform", (), dict(loc=-1.0, scale=3.0), REAL[1:4], [-2.0, 2.5], (),
     CONTINUOUS_METHODS),
    ("truncnorm", (-0.8, 1.9), dict(loc=0.2, scale=1.4), np.array([-0.7, 0.1, 1.0, 2.4]),
     [-2.0, 3.0], (), CONTINUOUS_METHODS),
    ("truncnorm", (0.5, 2.5), dict(loc=0.0, scale=1.0), np.array([0.6, 1.0, 2.0]),
     [0.0, 3.0], (), CONTINUOUS_METHODS),
    ("vonmises", (1.7,), dict(loc=0.2, scale=1.0), REAL[1:4], [], (), ("logpdf", "pdf")),
    ("gennorm", (1.6,), dict(loc=0.1, scale=1.3), REAL, [], TAILS, CONTINUOUS_METHODS),
    ("pareto", (2.2,), dict(loc=0.0, scale=1.0), POS + 1.1, [0.5], (), CONTINUOUS_METHODS),
    ("gumbel_r", (), dict(loc=0.3, scale=1.2), REAL, [], (), CONTINUOUS_METHODS),
    ("gumbel_l", (), dict(loc=-0.2, scale=0.8), REAL, [], (), CONTINUOUS_METHODS),
    ("wrapcauchy", (0.6,), dict(loc=0.1, scale=1.0), np.array([0.4, 1.5, 3.0, 4.5, 6.0]),
     [-0.5, 7.0], (), CONTINUOUS_METHODS),
]
DISCRETE_METHODS = ("logpmf", "pmf", "cdf", "logcdf", "sf", "logsf")
DISCRETE = [  # name, shapes, which shapes are floats (differentiable), counts, off-support
    ("poisson", (2.3,), (0,), np.array([0.0, 1.0, 3.0, 6.0]), [-1.0, 1.5]),
    ("bernoulli", (0.35,), (0,), np.array([0.0, 1.0]), [-1.0, 2.0, 0.5]),
    ("binom", (7, 0.3), (1,), np.array([0.0, 2.0, 5.0, 6.0]), [-1.0, 8.0, 2.5]),
    ("nbinom", (3.5, 0.4), (0, 1), np.array([0.0, 2.0, 5.0, 9.0]), [-1.0, 1.5]),
    ("geom", (0.3,), (0,), np.array([1.0, 2.0, 5.0]), [0.0, 2.5]),
    ("betabinom", (8.0, 2.5, 1.5), (1, 2), np.array([0.0, 3.0, 8.0]), [-1.0, 9.0, 1.5]),
]
PMF_ONLY = {"betabinom"}  # no cdf formula here


def _discrete_methods(name):
    return DISCRETE_METHODS[:2] if name in PMF_ONLY else DISCRETE_METHODS
NO_DERIVATIVE_IN = {("nbinom", m, 0) for m in DISCRETE_METHODS[2:]}


def _ids(rows):
    return [f"{r[0]}{r[1]}" for r in rows]


def _points(method, inside):
    return Q if method in ("ppf", "isf") else inside


# -- values against scipy.stats ----------------------------------------------------------

@pytest.mark.parametrize("row", CONTINUOUS, ids=_ids(CONTINUOUS))
def test_continuous_values_match_scipy(row):
    name, shapes, kw, inside, off, _, methods = row
    ref = getattr(stats, name)
    for m in methods:
        x = _points(m, inside) if m in ("ppf", "isf") else np.concatenate([inside, off])
        if m in ("ppf", "isf"):
            x = np.concatenate([x, [0.0, 1.0, -0.1, 1.1]])
        with np.errstate(all="ignore"):
            want = getattr(ref, m)(x, *shapes, **kw)
            got = getattr(getattr(S, name), m)(x, *shapes, **kw)
            frozen = getattr(getattr(S, name)(*shapes, **kw), m)(x)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-300, err_msg=f"{name}.{m}")
        np.testing.assert_array_equal(frozen, got)
        # invalid parameters: nan, as scipy
        bad = getattr(getattr(S, name), m)(x[:2], *shapes, loc=kw["loc"], scale=-1.0)
        assert np.all(np.isnan(bad)), f"{name}.{m} with scale < 0"


@pytest.mark.parametrize("row", DISCRETE, ids=_ids(DISCRETE))
def test_discrete_values_match_scipy(row):
    name, shapes, _, inside, off = row
    k = np.concatenate([inside, off])
    for m in _discrete_methods(name):
        with np.errstate(all="ignore"):
            want = getattr(getattr(stats, name), m)(k, *shapes, loc=0.0)
        got = getattr(getattr(S, name), m)(k, *shapes)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-300, err_msg=f"{name}.{m}")
        np.testing.assert_allclose(getattr(getattr(S, name)(*shapes, loc=1), m)(k + 1), got,
                                   rtol=1e-12, err_msg=f"frozen {name}.{m} with loc")


def test_discrete_quantiles_are_scipys_on_plain_values():
    q = np.array([0.1, 0.5, 0.93])
    for name, shapes, _, _, _ in DISCRETE:
        for m in ("ppf", "isf"):
            np.testing.assert_array_equal(getattr(getattr(S, name), m)(q, *shapes),
                                          getattr(getattr(stats, name), m)(q, *shapes))
    with pytest.raises(TypeError, match=r"poisson\.ppf of traced values: a discrete quantile"):
        dg.grad(lambda mu: S.poisson.ppf(0.3, mu))(2.0)


def test_no_warnings_where_scipy_has_none(recwarn):
    S.gamma.logpdf(np.array([-1.0, 0.0, 1.0]), 2.0, scale=-1.0)
    S.norm.cdf(1.0, scale=0.0)
    S.beta.ppf(np.array([-0.1, 0.0, 0.5]), 2.0, 3.0)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_invalid_shapes_give_nan_as_scipy():
    for dist, args in [("gamma", (-1.0,)), ("beta", (2.0, 0.0)), ("t", (-2.0,)),
                       ("truncnorm", (1.0, 0.5)), ("poisson", (-1.0,)), ("binom", (2.5, 0.3)),
                       ("bernoulli", (1.5,)), ("geom", (0.0,))]:
        method = "logpdf" if hasattr(getattr(stats, dist), "logpdf") else "logpmf"
        assert np.isnan(getattr(getattr(S, dist), method)(1.0, *args)), dist
        assert np.isnan(getattr(getattr(stats, dist), method)(1.0, *args)), dist


# -- derivatives against finite differences (every parameter) -----------------------------

def _continuous_fn(name, m, shapes, kw, wrt_shapes):
    def f(x, loc, scale, *s):
        s = s if wrt_shapes else shapes
        return getattr(getattr(S, name), m)(x, *s, loc=loc, scale=scale)
    return f


@pytest.mark.parametrize("row", CONTINUOUS, ids=_ids(CONTINUOUS))
def test_continuous_derivatives_match_finite_differences(row):
    name, shapes, kw, inside, _, fixed, methods = row
    for m in methods:
        wrt = m not in fixed
        f = _continuous_fn(name, m, shapes, kw, wrt)
        args = (_points(m, inside), kw["loc"], kw["scale"]) + (tuple(map(float, shapes))
                                                              if wrt else ())
        dg.check_grads(f, args, order=1, modes=("fwd", "rev"), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("row", DISCRETE, ids=_ids(DISCRETE))
def test_discrete_derivatives_match_finite_differences(row):
    name, shapes, floats, inside, _ = row
    for m in _discrete_methods(name):
        which = [i for i in floats if (name, m, i) not in NO_DERIVATIVE_IN]

        def f(*p, m=m, which=which):
            s = list(shapes)
            for i, v in zip(which, p):
                s[i] = v
            return getattr(getattr(S, name), m)(inside, *s)
        dg.check_grads(f, tuple(float(shapes[i]) for i in which),
                       order=2 if m == "logpmf" else 1, modes=("fwd", "rev"), rtol=1e-5,
                       atol=1e-7)


SECOND = [("norm", "logcdf"), ("t", "logpdf"), ("gamma", "logpdf"), ("beta", "cdf"),
          ("truncnorm", "logpdf"), ("lognorm", "ppf")]


@pytest.mark.parametrize("name, m", SECOND)
def test_second_derivatives(name, m):
    row = next(r for r in CONTINUOUS if r[0] == name)
    _, shapes, kw, inside, _, fixed, _ = row
    wrt = m not in fixed
    f = _continuous_fn(name, m, shapes, kw, wrt)
    args = (_points(m, inside)[:3], kw["loc"], kw["scale"]) + (
        tuple(map(float, shapes)) if wrt else ())
    dg.check_grads(lambda *a: np.sum(f(*a)), args, order=2, modes=("fwd", "rev"),
                   rtol=1e-4, atol=1e-6)


# -- derivatives against JAX ---------------------------------------------------------------

def _jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


JAX_ONLY = {"truncnorm(-0.8, 1.9)": ("logpdf", "logcdf"),  # JAX compiles these slowly
            "truncnorm(0.5, 2.5)": ("logsf",),
            # JAX 0.10's gumbel logpdf, pdf and ppf fail in jax.grad (a float0 from xlogy(-1, .))
            "gumbel_r()": ("cdf", "logcdf", "sf", "logsf"),
            "gumbel_l()": ("cdf", "logcdf", "sf", "logsf")}
# JAX's betaln gradient is good to ~1e-7 (ours matches finite differences)
JAX_TOL = {"betabinom": dict(rtol=1e-6, atol=1e-7)}


@pytest.mark.parametrize("row", CONTINUOUS, ids=_ids(CONTINUOUS))
def test_continuous_gradients_match_jax(row):
    jax = _jax()
    js = pytest.importorskip("jax.scipy.stats")
    name, shapes, kw, inside, _, fixed, methods = row
    theirs_dist = getattr(js, name, None)
    if theirs_dist is None:
        pytest.skip(f"jax.scipy.stats has no {name}")
    checked = 0
    for m in JAX_ONLY.get(f"{name}{shapes}", methods):
        if not hasattr(theirs_dist, m):
            continue
        wrt = m not in fixed
        n = 3 + (len(shapes) if wrt else 0)
        args = (_points(m, inside), kw["loc"], kw["scale"]) + (
            tuple(map(float, shapes)) if wrt else ())
        ours = _continuous_fn(name, m, shapes, kw, wrt)

        def theirs(x, loc, scale, *s, m=m, wrt=wrt):
            s = s if wrt else shapes
            if name not in ("vonmises", "gennorm", "wrapcauchy"):
                return getattr(theirs_dist, m)(x, *s, loc=loc, scale=scale)
            z = (x - loc) / scale  # JAX's have no loc, scale
            if m in ("logpdf", "pdf"):
                out = theirs_dist.logpdf(z, *s) - jax.numpy.log(scale)
                return out if m == "logpdf" else jax.numpy.exp(out)
            return getattr(theirs_dist, m)(z, *s)
        g = dg.grad(lambda *a: np.sum(ours(*a)), argnums=tuple(range(n)))(*args)
        ref = jax.jit(jax.grad(lambda *a: theirs(*a).sum(), argnums=tuple(range(n))))(*args)
        for i, (a, b) in enumerate(zip(g, ref)):
            np.testing.assert_allclose(a, np.asarray(b), rtol=1e-7, atol=1e-10,
                                       err_msg=f"{name}.{m}: argument {i}")
        checked += 1
    assert checked


@pytest.mark.parametrize("row", DISCRETE, ids=_ids(DISCRETE))
def test_discrete_gradients_match_jax(row):
    jax = _jax()
    js = pytest.importorskip("jax.scipy.stats")
    name, shapes, floats, inside, _ = row
    for m in ("logpmf", "pmf"):
        def ours(*p, m=m):
            s = list(shapes)
            for i, v in zip(floats, p):
                s[i] = v
            return getattr(getattr(S, name), m)(inside, *s)

        def theirs(*p, m=m):
            s = list(shapes)
            for i, v in zip(floats, p):
                s[i] = v
            return getattr(getattr(js, name), m)(inside, *s)
        p = tuple(float(shapes[i]) for i in floats)
        g = dg.grad(lambda *a: np.sum(ours(*a)), argnums=tuple(range(len(p))))(*p)
        ref = jax.grad(lambda *a: theirs(*a).sum(), argnums=tuple(range(len(p))))(*p)
        np.testing.assert_allclose(g, np.asarray(ref), err_msg=f"{name}.{m}",
                                   **JAX_TOL.get(name, dict(rtol=1e-9, atol=1e-14)))


# -- the multivariate distributions ---------------------------------------------------------

A = rng.standard_normal((3, 3))
COV = A @ A.T + np.eye(3)
MEAN = np.array([0.3, -1.0, 0.5])
XS = rng.standard_normal((4, 3))


@pytest.mark.parametrize("cov", [COV, np.array([0.5, 1.5, 2.0]), 1.7], ids=["matrix", "diag",
                                                                          "scalar"])
@pytest.mark.parametrize("allow_singular", [False, True])
def test_multivariate_normal_values_and_gradients(cov, allow_singular):
    mvn = S.multivariate_normal
    for x in (XS, XS[0]):
        want = stats.multivariate_normal.logpdf(x, MEAN, cov, allow_singular=allow_singular)
        np.testing.assert_allclose(mvn.logpdf(x, MEAN, cov, allow_singular), want, rtol=1e-10)
        np.testing.assert_allclose(mvn(MEAN, cov, allow_singular).pdf(x), np.exp(want),
                                   rtol=1e-10)
    def sym(c):  # scipy reads one triangle: differentiate in a symmetric perturbation
        return (c + np.swapaxes(c, -1, -2)) / 2 if np.ndim(c) == 2 else c
    dg.check_grads(lambda x, m, c: mvn.logpdf(x, m, sym(c), allow_singular), (XS, MEAN, cov),
                   order=1, modes=("fwd", "rev"), rtol=1e-5, atol=1e-7)


def test_multivariate_normal_gradients_match_jax_and_second_order():
    jax = _jax()
    js = pytest.importorskip("jax.scipy.stats")

    def ours(x, m, a):
        return np.sum(S.multivariate_normal.logpdf(x, m, a @ a.T + np.eye(3)))

    def theirs(x, m, a):
        return js.multivariate_normal.logpdf(x, m, a @ a.T + np.eye(3)).sum()
    g = dg.grad(ours, argnums=(0, 1, 2))(XS, MEAN, A)
    ref = jax.grad(theirs, argnums=(0, 1, 2))(XS, MEAN, A)
    for a, b in zip(g, ref):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-9)
    dg.check_grads(ours, (XS[:2], MEAN, A), order=2, modes=("fwd", "rev"), rtol=1e-4,
                   atol=1e-6)


def test_multivariate_normal_singular():
    u = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    cov = u @ np.diag([2.0, 0.5, 0.0]) @ u.T
    on = MEAN + XS[:, :2] @ u[:, :2].T  # in the span of the covariance
    x = np.concatenate([on, MEAN[None] + u[:, 2][None]])  # the last one is off it
    want = stats.multivariate_normal.logpdf(x, MEAN, cov, allow_singular=True)
    got = S.multivariate_normal.logpdf(x, MEAN, cov, allow_singular=True)
    np.testing.assert_allclose(got, want, rtol=1e-8)
    assert got[-1] == -np.inf
    with pytest.raises(np.linalg.LinAlgError):
        S.multivariate_normal.logpdf(x, MEAN, cov)
    dg.check_grads(lambda m: S.multivariate_normal.logpdf(on, m, cov, allow_singular=True),
                   (MEAN,), order=1, rtol=1e-5, atol=1e-7)


ALPHA = np.array([1.5, 2.0, 0.8])
SIMPLEX = rng.dirichlet([2.0, 2.0, 2.0], size=4).T  # (3, 4): components first


def test_dirichlet():
    jax = _jax()
    js = pytest.importorskip("jax.scipy.stats")
    for x in (SIMPLEX, SIMPLEX[:, 0], SIMPLEX[:2]):
        np.testing.assert_allclose(S.dirichlet.logpdf(x, ALPHA),
                                   stats.dirichlet.logpdf(x, ALPHA), rtol=1e-12)
    np.testing.assert_allclose(S.dirichlet(ALPHA).pdf(SIMPLEX), stats.dirichlet.pdf(SIMPLEX, ALPHA),
                               rtol=1e-12)
    g = dg.grad(lambda a, x: np.sum(S.dirichlet.logpdf(x, a)), argnums=(0, 1))(ALPHA, SIMPLEX)
    ref = jax.grad(lambda a, x: js.dirichlet.logpdf(x, a).sum(), argnums=(0, 1))(ALPHA,
                                                                               SIMPLEX)
    for a, b in zip(g, ref):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-10)
    dg.check_grads(lambda a: S.dirichlet.logpdf(SIMPLEX, a), (ALPHA,), order=2)
    with pytest.raises(ValueError, match="sum to 1"):
        S.dirichlet.logpdf(SIMPLEX * 0.9, ALPHA)
    with pytest.raises(ValueError, match="alpha"):
        S.dirichlet.logpdf(SIMPLEX, -ALPHA)


def test_multinomial():
    jax = _jax()
    js = pytest.importorskip("jax.scipy.stats")
    p = np.array([0.2, 0.5, 0.3])
    x = np.array([[1.0, 3.0, 2.0], [0.0, 6.0, 0.0], [2.0, 2.0, 1.0]])  # the last sums to 5
    np.testing.assert_allclose(S.multinomial.logpmf(x, 6, p), stats.multinomial.logpmf(x, 6, p),
                               rtol=1e-12)
    np.testing.assert_allclose(S.multinomial(6, p).pmf(x[0]), stats.multinomial.pmf(x[0], 6, p),
                               rtol=1e-12)
    assert np.isnan(S.multinomial.logpmf(x[0], -6, p))
    # as scipy, the last probability is 1 - the others: compare with JAX on the same map
    g = dg.grad(lambda h: np.sum(S.multinomial.logpmf(x[:2], 6, np.concatenate(
        [h, [0.0]]))))(p[:2])
    # (one x at a time: JAX's compares the sum over all of x's axes with n)
    ref = sum(jax.grad(lambda h, xi=xi: js.multinomial.logpmf(
        xi.astype(int), 6, jax.numpy.concatenate([h, 1.0 - h.sum(keepdims=True)])))(p[:2])
        for xi in x[:2])
    np.testing.assert_allclose(g, np.asarray(ref), rtol=1e-10)


# -- vmap and jit, one case per family ------------------------------------------------------

def test_vmap_and_jit():
    cases = [
        (lambda x, s: S.gamma.logpdf(x, s, scale=1.5), POS, 2.5),
        (lambda x, s: S.gamma.cdf(x, s), POS, 2.5),
        (lambda x, s: S.t.ppf(x, s, loc=0.3), Q, 4.0),
        (lambda k, s: S.poisson.logpmf(k, s), np.array([0.0, 2.0, 5.0]), 2.3),
        (lambda k, n: S.binom.cdf(k, n, 0.3), np.array([0.0, 2.0, 5.0]), 7.0),
        (lambda x, m: S.multivariate_normal.logpdf(x, m, COV), XS, MEAN),
    ]
    for f, x, s in cases:
        want = np.array([f(xi, s) for xi in x])
        np.testing.assert_allclose(dg.vmap(f, in_axes=(0, None))(x, s), want, rtol=1e-12)
        jf = dg.jit(f)
        np.testing.assert_allclose(jf(x, s), f(x, s), rtol=1e-12)
        np.testing.assert_allclose(jf(x[:-1], s), f(x[:-1], s), rtol=1e-12)
    # the shapes batched, and the gradients of a batch, under vmap and jit
    a = np.array([1.5, 2.5, 4.0])
    np.testing.assert_allclose(dg.vmap(lambda a: S.gamma.cdf(1.3, a))(a),
                               stats.gamma.cdf(1.3, a), rtol=1e-12)
    g = dg.vmap(dg.grad(lambda x: S.beta.logpdf(x, 2.0, 3.0)))(UNIT)
    np.testing.assert_allclose(g, dg.grad(lambda x: np.sum(S.beta.logpdf(x, 2.0, 3.0)))(UNIT),
                               rtol=1e-12)
    jg = dg.jit(dg.grad(lambda x, s: np.sum(S.t.logcdf(x, 3.0, scale=s)), argnums=(0, 1)))
    for x in (REAL, REAL * 2):
        for got, want in zip(jg(x, 1.5), dg.grad(lambda x, s: np.sum(S.t.logcdf(
                x, 3.0, scale=s)), argnums=(0, 1))(x, 1.5)):
            np.testing.assert_allclose(got, want, rtol=1e-12)


def test_jit_records_once_for_new_parameter_values():
    """The masks are comparisons of the values (graph nodes), never reads of them: new
    shapes, loc and scale replay the same recording."""
    jg = dg.jit(dg.grad(lambda a, s: np.sum(S.gamma.logpdf(POS, a, scale=s)), argnums=(0, 1)))
    for a, s in [(2.5, 1.5), (3.5, 0.7), (1.2, 2.0)]:
        want = dg.grad(lambda a, s: np.sum(S.gamma.logpdf(POS, a, scale=s)),
                       argnums=(0, 1))(a, s)
        np.testing.assert_allclose(jg(a, s), want, rtol=1e-12)
    assert jg.trace_count == 1


# -- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("f, arg", [
    (lambda a: S.gamma.cdf(1.0, a), 2.0),
    (lambda a: S.beta.sf(0.3, 2.0, a), 1.5),
    (lambda df: S.t.ppf(0.3, df), 3.0),
    (lambda df: S.chi2.logcdf(1.0, df), 3.0),
    (lambda n: S.nbinom.cdf(2.0, n, 0.4), 3.0),
], ids=["gamma.cdf", "beta.sf", "t.ppf", "chi2.logcdf", "nbinom.cdf"])
def test_a_shape_without_a_derivative_raises(f, arg):
    with pytest.raises(TypeError, match=r"no derivative rule for scipy\.special\.\w+ with "
                                        r"respect to"):
        dg.grad(f)(arg)
    with pytest.raises(TypeError, match="no derivative rule"):
        dg.jvp(f, (arg,), (1.0,))


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match=r"gamma\.logpdf\(\) is missing the shape parameter"):
        S.gamma.logpdf(1.0)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'mu'"):
        S.norm.logpdf(1.0, mu=2.0)
    with pytest.raises(TypeError, match="multiple values for 'loc'"):
        S.norm.cdf(1.0, 0.0, loc=1.0)
    with pytest.raises(TypeError, match=r"vonmises\.cdf is not available"):
        S.vonmises.cdf(0.5, 1.0)
    with pytest.raises(TypeError, match=r"betabinom\.cdf is not available"):
        S.betabinom.cdf(2.0, 5, 1.0, 2.0)
    with pytest.raises(ValueError, match="cov has shape"):
        S.multivariate_normal.logpdf(XS, MEAN, np.eye(2))
    assert S.norm.logpdf(1.0, scale=2.0) == stats.norm.logpdf(1.0, scale=2.0)
    assert S.gamma.logpdf(1.0, a=2.0) == pytest.approx(stats.gamma.logpdf(1.0, a=2.0))


def test_special_keeps_norm():
    from dualgrad.scipy import special
    assert special.norm is S.norm
