"""Edge input: empty arrays and infinities (issue 21).

Empty arrays: every primitive of the table, on the inputs its generated tests use with the
leading axis cut to length 0, gives numpy's value, a zero tangent and a cotangent of the
input's shape; the numpy reductions built from the rows do the same (numpy's value or
numpy's error, JAX's derivative: zeros of the input's shape).

Infinities: the stable functions (softplus, logaddexp, logaddexp2, logsumexp, sigmoid,
log_softmax) give JAX's finite derivatives at +-inf, in forward and reverse mode, to second
order, on the numba kernels and the numpy reference alike.  The expected values below are
JAX's (jax 0.10, x64), except d/dy logaddexp(inf, y), where JAX gives exp(y) and the limit
is 0.
"""

import warnings

import numpy as np
import pytest
import scipy.special as sc
from cases import ALL

import dualgrad as dg
from dualgrad.core.tree import tree_flatten
from dualgrad.scipy import special as S

inf, nan = np.inf, np.nan


@pytest.fixture(autouse=True)
def quiet():
    """numpy's own warnings for empty slices are expected here (and checked where it
    matters); a failure is a wrong value or an exception."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# ---------------------------------------------------------------------------
# empty arrays through every row of the table
# ---------------------------------------------------------------------------

# rows on matrices: only a batch axis is cut (a (0, 3) matrix is a wide one, which these
# rows do not take whatever its size)
MATRIX_ROWS = {"qr", "svd", "eigh", "eig", "cholesky", "inv", "det", "solve", "logabsdet",
               "pinv", "orth_complement"}


def _emptied(case):
    """The case's arguments with their leading axis cut to 0 (0-d ones as they are)."""
    low = 3 if case.name in MATRIX_ROWS else 1
    return tuple(np.zeros((0,) + a.shape[1:]) if a.ndim >= low else a for a in case.args)


def _leaves(x):
    return [np.asarray(dg.core.unbox(v)) for v in tree_flatten(x)[0]]


def _same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_array_equal(g, w)  # nan equals nan here


EMPTY = [c for c in ALL if any(a.ndim for a in c.args)]


@pytest.mark.parametrize("case", EMPTY, ids=repr)
def test_every_row_takes_empty_arrays(case):
    """Where numpy computes the row on empty input, dualgrad does too: the same value, a
    zero tangent (an empty sum), and a cotangent shaped like the input."""
    args = _emptied(case)
    try:
        with np.errstate(all="ignore"):
            want = _leaves(case.fn(*args))
    except (ValueError, IndexError, np.linalg.LinAlgError):
        pytest.skip("numpy refuses this row on empty input")  # nothing to follow
    if all(a.size for a in args):
        pytest.skip("no argument of this row can be emptied (matrices without a batch axis)")
    for i, a in enumerate(args):
        if a.size:  # a full argument beside an empty one has its own, nonzero, derivative
            continue

        def f(x, i=i):
            return case.fn(*args[:i], x, *args[i + 1:])
        out, tan = dg.jvp(f, (a,), (np.ones_like(a),))
        _same(_leaves(out), want)
        for t, w in zip(_leaves(tan), want):
            assert t.shape == w.shape
            assert np.all(t == 0), f"argument {i}: tangent {t} of an empty input is not zero"
        out, pull = dg.vjp(f, a)
        _same(_leaves(out), want)
        (ct,) = pull(tree_unflatten_like(out, [np.ones_like(w) for w in want]))
        assert np.shape(ct) == a.shape


def tree_unflatten_like(tree, leaves):
    return dg.tree.tree_unflatten(tree_flatten(tree)[1], leaves)


def test_enough_rows_take_empty_arrays():
    """The generated test above checks most rows, not a handful that happen to run."""
    ran = set()
    for case in EMPTY:
        try:
            with np.errstate(all="ignore"):
                case.fn(*_emptied(case))
        except (ValueError, IndexError, np.linalg.LinAlgError):
            continue
        ran.add(case.name)
    assert {"sum", "prod", "cumsum", "getitem", "concatenate", "matmul", "logsumexp",
            "softmax", "log_softmax", "exp", "logaddexp", "conv2d", "det", "solve"} <= ran
    assert len(ran) > 0.6 * len({c.name for c in EMPTY})


# ---------------------------------------------------------------------------
# empty arrays through the numpy reductions
# ---------------------------------------------------------------------------

REDUCTIONS = {
    "sum": np.sum, "mean": np.mean, "var": np.var, "std": np.std, "prod": np.prod,
    "max": np.max, "min": np.min, "ptp": np.ptp, "median": np.median,
    "nansum": np.nansum, "nanmean": np.nanmean, "nanvar": np.nanvar, "nanstd": np.nanstd,
    "nanprod": np.nanprod, "nanmedian": np.nanmedian, "nanmax": np.nanmax,
    "average": np.average, "cumsum": np.cumsum, "cumprod": np.cumprod,
    "var_ddof1": lambda x, axis=None: np.var(x, axis=axis, ddof=1),
    "norm": lambda x, axis=None: np.linalg.norm(x, axis=axis),
    "norm1": lambda x, axis=None: np.linalg.norm(x, ord=1, axis=axis) if axis is not None
    else np.linalg.norm(np.ravel(x), ord=1),
    "logsumexp": lambda x, axis=None: dg.nn.logsumexp(x, axis=axis),
    "scipy_logsumexp": lambda x, axis=None: S.logsumexp(x, axis=axis),
    "softmax": lambda x, axis=None: dg.nn.softmax(x, axis=-1 if axis is None else axis),
    "log_softmax": lambda x, axis=None: dg.nn.log_softmax(x, axis=-1 if axis is None else axis),
}


def _lse(x, axis=None, keepdims=False):  # scipy's raises IndexError on some empty shapes
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def _ax(axis):
    return -1 if axis is None else axis


REFERENCE = {"logsumexp": _lse, "scipy_logsumexp": _lse,
             "softmax": lambda x, axis=None: np.exp(x - _lse(x, _ax(axis), True)),
             "log_softmax": lambda x, axis=None: x - _lse(x, _ax(axis), True),
             # numpy's average divides size by size: ZeroDivisionError for an empty result
             "average": np.mean}
SHAPES = [((0,), None), ((0,), 0), ((0, 3), None), ((0, 3), 0), ((0, 3), 1), ((3, 0), 0),
          ((3, 0), 1), ((2, 0, 3), 1)]


@pytest.mark.parametrize("shape,axis", SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions_of_empty_arrays(name, shape, axis):
    """numpy's value (or numpy's ValueError, never a ZeroDivisionError or a reshape error
    from a derivative rule), and JAX's derivatives: zeros shaped like the input."""
    fn = REDUCTIONS[name]
    ref = REFERENCE.get(name, fn)
    x = np.zeros(shape)
    try:
        want = np.asarray(ref(x, axis=axis))
    except ValueError:  # numpy has no value here (max of nothing): nor has dualgrad
        with pytest.raises(ValueError):
            dg.grad(lambda x: np.sum(fn(x, axis=axis)))(x)
        return
    out, tan = dg.jvp(lambda x: fn(x, axis=axis), (x,), (np.ones_like(x),))
    assert np.shape(out) == want.shape
    np.testing.assert_allclose(out, want)
    assert np.shape(tan) == want.shape
    g = dg.grad(lambda x: np.sum(fn(x, axis=axis)))(x)
    assert g.shape == x.shape and g.dtype == x.dtype
    assert dg.jacrev(lambda x: fn(x, axis=axis))(x).shape == want.shape + x.shape
    assert dg.jacfwd(lambda x: fn(x, axis=axis))(x).shape == want.shape + x.shape


@pytest.mark.parametrize("fn", [np.mean, np.var, np.std, np.prod, np.median, np.average,
                                np.nanmean, np.nanprod, np.linalg.norm, dg.nn.logsumexp])
def test_issue_examples_on_zeros0(fn):
    """The issue's cases, to second order: grad and hessian of zeros(0) are empty."""
    z = np.zeros(0)
    assert dg.grad(fn)(z).shape == (0,)
    assert dg.hessian(fn)(z).shape == (0, 0)
    assert dg.value_and_grad(fn)(z)[1].shape == (0,)


def test_empty_values_and_warnings_follow_numpy():
    z = np.zeros(0)
    with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        assert np.isnan(dg.value_and_grad(np.mean)(z)[0])
    with pytest.warns(RuntimeWarning, match="Degrees of freedom"):
        assert np.isnan(dg.value_and_grad(np.var)(z)[0])
    with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        assert np.isnan(dg.value_and_grad(np.median)(z)[0])
    assert dg.value_and_grad(np.prod)(z)[0] == 1.0
    # ddof >= n: numpy's ss / 0 (inf), never a ZeroDivisionError
    v, g = dg.value_and_grad(lambda x: np.var(x, ddof=2))(np.array([1.0, 2.0]))
    assert v == np.var([1.0, 2.0], ddof=2) == inf and g.shape == (2,)


def test_quantile_of_nothing_says_why():
    """numpy's quantile raises IndexError on an empty axis; dualgrad says what is wrong."""
    with pytest.raises(ValueError, match="quantile over an axis of length 0"):
        dg.grad(lambda x: np.quantile(x, 0.5))(np.zeros(0))
    with pytest.raises(ValueError, match="percentile over an axis of length 0"):
        dg.grad(lambda x: np.sum(np.percentile(x, [10, 50], axis=0)))(np.zeros((0, 2)))
    g = dg.grad(lambda x: np.sum(np.nanquantile(x, [0.1, 0.5], axis=0)))(np.zeros((0, 2)))
    assert g.shape == (0, 2)


# ---------------------------------------------------------------------------
# infinities
# ---------------------------------------------------------------------------

# (function, x, value, first derivative, second derivative), the derivatives JAX's
STABLE = [
    ("softplus", dg.nn.softplus, inf, inf, 1.0, 0.0),
    ("softplus", dg.nn.softplus, -inf, 0.0, 0.0, 0.0),
    ("sigmoid", dg.nn.sigmoid, inf, 1.0, 0.0, 0.0),
    ("sigmoid", dg.nn.sigmoid, -inf, 0.0, 0.0, 0.0),
    ("expit", sc.expit, inf, 1.0, 0.0, 0.0),
    ("expit", sc.expit, -inf, 0.0, 0.0, 0.0),
    ("log_expit", sc.log_expit, inf, 0.0, 0.0, 0.0),
    ("log_expit", sc.log_expit, -inf, -inf, 1.0, 0.0),
    ("log1p(exp)", lambda x: np.log1p(np.exp(x)), -inf, 0.0, 0.0, 0.0),
    ("logaddexp(x, 1)", lambda x: np.logaddexp(x, 1.0), inf, inf, 1.0, 0.0),
    ("logaddexp(x, 1)", lambda x: np.logaddexp(x, 1.0), -inf, 1.0, 0.0, 0.0),
    ("logaddexp(1, x)", lambda x: np.logaddexp(1.0, x), inf, inf, 1.0, 0.0),
    ("logaddexp(x, x)", lambda x: np.logaddexp(x, x), inf, inf, 2.0, 0.0),
    ("logaddexp2(x, 1)", lambda x: np.logaddexp2(x, 1.0), inf, inf, 1.0, 0.0),
    ("logaddexp2(x, 1)", lambda x: np.logaddexp2(x, 1.0), -inf, 1.0, 0.0, 0.0),
    ("logsumexp([x, 1])", lambda x: dg.nn.logsumexp(np.stack([x, 1.0])), inf, inf, 1.0, 0.0),
    ("logsumexp([x, 1])", lambda x: dg.nn.logsumexp(np.stack([x, 1.0])), -inf, 1.0, 0.0, 0.0),
    ("scipy logsumexp([x, 1])", lambda x: S.logsumexp(np.stack([x, 1.0])), inf, inf, 1.0, 0.0),
    ("log_softmax([x, 1])[0]", lambda x: dg.nn.log_softmax(np.stack([x, 1.0]))[0], -inf,
     -inf, 1.0, 0.0),
    ("log_softmax([x, 1])[1]", lambda x: dg.nn.log_softmax(np.stack([x, 1.0]))[1], -inf,
     0.0, 0.0, 0.0),
    ("softmax([x, 1])[0]", lambda x: dg.nn.softmax(np.stack([x, 1.0]))[0], -inf, 0.0, 0.0,
     0.0),
]


@pytest.fixture(params=["numba", "numpy"])
def backend(request):
    with dg.backend.use_backend(request.param):
        yield request.param


@pytest.mark.parametrize("name,f,x,value,d1,d2", STABLE,
                         ids=[f"{s[0]}@{s[2]}" for s in STABLE])
def test_stable_functions_at_infinity(backend, name, f, x, value, d1, d2):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no inf - inf on the way either
        assert float(f(x)) == value
        assert float(dg.grad(f)(x)) == d1
        assert float(dg.jvp(f, (x,), (1.0,))[1]) == d1
        assert float(dg.grad(dg.grad(f))(x)) == d2  # reverse over reverse
        assert float(dg.jvp(dg.grad(f), (x,), (1.0,))[1]) == d2  # forward over reverse


def test_logaddexp_partials_at_infinity(backend):
    assert dg.grad(np.logaddexp, argnums=(0, 1))(inf, 1.0) == (1.0, 0.0)
    assert dg.grad(np.logaddexp, argnums=(0, 1))(1.0, inf) == (0.0, 1.0)
    assert dg.grad(np.logaddexp, argnums=(0, 1))(inf, inf) == (1.0, 1.0)  # JAX's
    assert dg.grad(np.logaddexp, argnums=(0, 1))(-inf, 2.0) == (0.0, 1.0)
    # -inf on both sides has no limit: nan, as in JAX
    assert np.isnan(dg.grad(np.logaddexp)(-inf, -inf))


def test_logsumexp_rows_at_infinity(backend):
    """Each row on its own: a +inf row puts weight 1 on its +inf entries, finite rows are
    softmax, an all -inf row nan (JAX's); the same in every mode and with keepdims."""
    x = np.array([[inf, 1.0, 2.0], [0.0, 1.0, 2.0], [inf, inf, 3.0], [-inf, -inf, -inf]])
    want = np.array([[1.0, 0.0, 0.0], sc.softmax([0.0, 1.0, 2.0]), [1.0, 1.0, 0.0],
                     [np.nan] * 3])
    for keep in (False, True):
        def f(x):
            return np.sum(dg.nn.logsumexp(x, axis=1, keepdims=keep))
        np.testing.assert_allclose(dg.grad(f)(x), want, rtol=1e-15)
        np.testing.assert_allclose(dg.jvp(f, (x,), (np.eye(4, 3),))[1],
                                   np.nansum(want * np.eye(4, 3)) + np.nan * 0, rtol=1e-15)
    h = dg.hessian(lambda v: dg.nn.logsumexp(v))(np.array([inf, 1.0]))
    np.testing.assert_array_equal(h, np.zeros((2, 2)))


def test_stable_functions_under_jit_and_vmap():
    """dg.jit's graph records the same rule (its where nodes follow new values: no retrace
    needed for a finite input after an infinite one) and dg.vmap batches it."""
    g = dg.jit(dg.grad(lambda x: np.sum(dg.nn.softplus(x))))
    np.testing.assert_array_equal(g(np.array([inf, -inf, 0.0])), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(g(np.array([1.0, -2.0, inf])),
                               [sc.expit(1.0), sc.expit(-2.0), 1.0], rtol=1e-15)
    v = dg.vmap(dg.grad(dg.nn.logsumexp))(np.array([[inf, 1.0], [0.0, 0.0]]))
    np.testing.assert_array_equal(v, [[1.0, 0.0], [0.5, 0.5]])


@pytest.mark.parametrize("name", ["softplus", "sigmoid", "tanh", "exp"])
def test_fused_kernels_agree_with_the_reference_at_infinity(name):
    """The backend's fused value-and-derivative rows (numba and numpy) give the same
    values at +-inf, and the limits JAX gives."""
    x = np.array([inf, -inf, 0.0, 800.0, -800.0])
    with dg.backend.use_backend("numpy"):
        y0, d0 = dg.backend.unary_with_grad(name, x)
    with dg.backend.use_backend("numba"):
        y1, d1 = dg.backend.unary_with_grad(name, x)
    np.testing.assert_allclose(y1, y0, rtol=1e-14)
    np.testing.assert_allclose(d1, d0, rtol=1e-14)
    limits = {"softplus": [1.0, 0.0], "sigmoid": [0.0, 0.0], "tanh": [0.0, 0.0],
              "exp": [inf, 0.0]}[name]
    assert d0[:2].tolist() == limits


@pytest.mark.parametrize("fn,want", [(np.var, 0.0), (np.mean, nan), (np.std, nan),
                                     (np.sum, 0.0)], ids=["var", "mean", "std", "sum"])
def test_tangents_over_an_empty_axis_are_jaxs(fn, want):
    """jax.jvp over axis 0 of zeros((0, 3)) (x64): var's tangent is 0 (the sum of nothing,
    its value nan), mean's and std's nan, sum's 0."""
    x = np.zeros((0, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _, tan = dg.jvp(lambda x: fn(x, axis=0), (x,), (np.ones_like(x),))
    np.testing.assert_array_equal(tan, np.full(3, want))
