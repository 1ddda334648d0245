"""Derivatives that were once silently wrong or degraded: each example stays right.

Found by running ordinary numpy programs and a peer library's test suite against
dualgrad: float64 derivatives that came back float32, derivatives dropped by
functions let through without a rule, wrong einsum and power rules, Hessians through
linear algebra, and a hand-made ``Dual`` that switched off the untraced fast paths.
"""

import gc

import numpy as np
import pytest

import dualgrad as dg
from dualgrad.core.trace import tracing

# -- float64 stays float64 ------------------------------------------------------

PRECISION = {
    "last entry / 3": (lambda x: x[-1] / 3, np.array([1.0, 2.0, 3.0]), [0, 0, 1 / 3]),
    "matrix entry / 3": (lambda M: M[0, 1] / 3, np.ones((2, 2)), [[0, 1 / 3], [0, 0]]),
    "linear combination": (lambda p: 2.5 * p[0] - p[1] / 7, np.ones(2), [2.5, -1 / 7]),
}


@pytest.mark.parametrize("name", PRECISION)
def test_float64_derivatives_stay_float64(name):
    f, x, expected = PRECISION[name]
    g = dg.grad(f)(x)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, expected, rtol=1e-15)
    jf = dg.jacfwd(f)(x)
    assert jf.dtype == np.float64
    np.testing.assert_allclose(jf, expected, rtol=1e-15)


def test_dict_leaves_and_abs_of_a_python_float_stay_float64():
    g = dg.grad(lambda d: d["a"][0] / 3 + abs(d["b"]))({"a": np.ones(2), "b": -2.0})
    assert g["a"].dtype == np.float64 and np.result_type(g["b"]) == np.float64
    assert g["a"][0] == 1 / 3 and g["b"] == -1.0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble])
def test_gather_abs_and_mask_rules_keep_the_dtype(dtype):
    x = np.array([1.0, -2.0, 3.0], dtype)
    f = lambda x: np.sum(abs(x) * x[::-1]) + np.max(x) + x[[0, 0]].sum() / 3
    assert dg.grad(f)(x).dtype == dtype
    assert dg.jacfwd(f)(x).dtype == dtype
    assert dg.hessian(f)(x).dtype == dtype


# -- no silently dropped derivative -----------------------------------------------

def test_bincount_and_histogram_weights_have_derivatives():
    idx = np.array([0, 2, 2, 3])
    w = np.array([1.0, 2.0, 3.0, 4.0])
    g = dg.grad(lambda w: np.sum(np.bincount(idx, weights=w) * np.arange(4.0)))(w)
    np.testing.assert_array_equal(g, [0.0, 2.0, 2.0, 3.0])
    a = np.array([0.1, 0.5, 0.7, 0.9, 0.3])  # bins [0.1, 0.367), [0.367, 0.633), [0.633, 0.9]
    g = dg.grad(lambda w: np.sum(np.histogram(a, bins=3, weights=w)[0] * np.arange(3.0)))(a)
    np.testing.assert_array_equal(g, [0.0, 1.0, 2.0, 2.0, 0.0])


def test_histogram_gives_numpys_values_bit_for_bit():
    a = np.random.default_rng(0).standard_normal(50)
    for kw in (dict(bins=7), dict(bins=5, density=True, weights=a ** 2)):
        ref = np.histogram(a, **kw)
        with dg.Tape() as tape:
            x = tape.watch(a)
            kw = {k: (x ** 2 if k == "weights" else v) for k, v in kw.items()}
            counts, edges = np.histogram(x, **kw)
            got = (dg.core.unbox(counts), dg.core.unbox(edges))
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])


def test_full_like_is_differentiable_in_the_fill_value():
    x = np.array([0.4, 1.0, 2.0])
    g = dg.grad(lambda x: np.sum(np.full_like(x, x[0]) * x))(x)
    np.testing.assert_allclose(g, [0.4 + np.sum(x), 0.4, 0.4])
    # np.full_like(plain, v): inside a transform, a Preallocated array (numpy/preallocated.py)
    assert dg.grad(lambda v: np.sum(np.full_like(np.ones(3), v) * v))(1.5) == 9.0
    # np.full(3, v) without a dtype: numpy's np.asarray(v) is an object array of v (see
    # numpy/objects.py, "arrays built from traced values"), so it differentiates
    assert dg.grad(lambda v: np.sum(np.full(3, v) * v))(1.5) == 9.0


# -- rules that were wrong ---------------------------------------------------------

def test_einsum_with_a_trailing_ellipsis():
    a = np.array([1.0, 2.0, 3.0])
    b = np.arange(1.0, 10.0).reshape(3, 3)
    f = lambda a: np.sum(np.einsum("i...,i...->i...", a, b))
    np.testing.assert_allclose(dg.grad(f)(a), [6.0, 15.0, 24.0])
    b2 = np.arange(1.0, 7.0).reshape(2, 3)
    g = dg.grad(lambda a: np.sum(np.einsum("i...,i...->i...", a, b2)))(np.array([1.0, 2.0]))
    np.testing.assert_allclose(g, [6.0, 15.0])


@pytest.mark.parametrize("x", [0.0, np.float64(0.0), np.zeros(3)])
def test_a_zero_power_is_constant(x):
    f = (lambda x: np.power(x, 0.0)) if np.ndim(x) == 0 else (lambda x: np.sum(x ** 0))
    g = dg.grad(f)(x)
    assert np.all(g == 0) and not np.any(np.isnan(g))
    assert dg.grad(dg.grad(lambda x: x ** 1.0))(0.0) == 0.0
    assert dg.jacfwd(lambda x: x ** np.array([0.0, 1.0, 2.0]))(np.zeros(3))[1, 1] == 1.0


def test_std_and_var_of_one_element_have_zero_derivative():
    for f in (np.std, np.var):
        for mode in (dg.grad, lambda f: lambda x: dg.jacfwd(f)(x)):
            np.testing.assert_array_equal(mode(f)(np.array([2.0])), [0.0])


def test_zero_subgradient_of_norm_and_sqrt_at_zero():
    np.testing.assert_array_equal(dg.grad(np.linalg.norm)(np.zeros(3)), np.zeros(3))
    np.testing.assert_array_equal(dg.jacfwd(np.linalg.norm)(np.zeros(3)), np.zeros(3))
    x = np.arange(6.0).reshape(3, 2)

    def pairwise(x):
        return np.sum(np.sqrt(np.sum((x[:, None] - x[None]) ** 2, axis=-1)))

    g = dg.grad(pairwise)(x)
    assert not np.any(np.isnan(g))
    d = 2 * np.sqrt(2)  # the three points lie on one line, spaced 2*sqrt(2) apart
    # each outer point: four unit vectors (-1, -1)/sqrt(2) (two pairs, both orders)
    np.testing.assert_allclose(g, 2 * np.sqrt(2) * np.array([[-1, -1], [0, 0], [1, 1]]))
    assert np.isclose(pairwise(x), 2 * (d + d + 2 * d))


# -- Hessians through linear algebra ------------------------------------------------

LINALG = {
    "solve": lambda x: np.sum(np.linalg.solve(2 * np.eye(3) + np.outer(x, x), x)),
    "solve_matrix": lambda x: np.sum(np.linalg.solve(2 * np.eye(3) + np.outer(x, x),
                                                     np.outer(x, x[::-1]))),
    "cholesky": lambda x: np.sum(np.linalg.cholesky(2 * np.eye(3) + np.outer(x, x))
                                 * np.arange(9.0).reshape(3, 3)),
    "inv": lambda x: np.sum(np.linalg.inv(2 * np.eye(3) + np.outer(x, x)) * x),
    "slogdet": lambda x: np.linalg.slogdet(2 * np.eye(3) + np.outer(x, x))[1],
    "det": lambda x: np.linalg.det(2 * np.eye(3) + np.outer(x, np.sin(x))),
}


@pytest.mark.parametrize("name", LINALG)
def test_hessian_through_linear_algebra_in_all_four_nestings(name):
    f = LINALG[name]
    x = np.array([1.0, 2.0, 3.0])
    num = dg.numerical_jacobian(dg.grad(f), (x,))[0]
    for how, h in {"hessian": dg.hessian(f)(x),
                   "fwd-over-rev": dg.jacfwd(dg.grad(f))(x),
                   "rev-over-rev": dg.jacrev(dg.grad(f))(x),
                   "fwd-over-fwd": dg.jacfwd(dg.jacfwd(f))(x),
                   "rev-over-fwd": dg.jacrev(dg.jacfwd(f))(x)}.items():
        np.testing.assert_allclose(h, num, rtol=1e-6, atol=1e-8, err_msg=how)


# -- a hand-made Dual does not leave tracing on --------------------------------------

def test_tracing_is_off_again_once_hand_made_duals_are_gone():
    assert not tracing()
    d = dg.Dual(2.0, 1.0)
    y = np.log(d) * d
    assert tracing()
    assert y.tangent == pytest.approx(np.log(2.0) + 1.0)
    del d
    assert tracing()  # y still is a Dual of the same perturbation
    del y
    gc.collect()
    assert not tracing()
    assert dg.grad(lambda x: x * x)(3.0) == 6.0
