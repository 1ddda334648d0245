"""The numpy long tail (numpy/statistics.py, differences.py, polynomials.py, fft.py, ...)
at its edges: nan handling, even and odd medians,
quantile endpoints and methods, interp outside its range, the FFT against the dense DFT
matrix (JAX's conventions for complex values), einsum's repeated indices, copies, and the
casts that have no derivative.  The smooth interior is covered by the rows of
test_numpy_api.py (both modes against finite differences, second order)."""

import warnings

import numpy as np
import pytest

import dualgrad as dg

R = np.random.default_rng(5)
X = np.array([0.3, 1.7, -2.4, 0.9, 0.1])
A = R.standard_normal((3, 4))


def _raw(x):
    return np.asarray(dg.core.unbox(x))


def traced_values(f, *args):
    """f's output computed on traced arguments, as raw arrays."""
    out = dg.jvp(f, args, tuple(np.zeros_like(a) for a in args))[0]
    return out


# -- values: numpy's, to rounding -------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda x: np.median(x), lambda x: np.median(x[:4]), lambda x: np.quantile(x, [0, 1]),
    lambda x: np.percentile(x, [0.0, 12.5, 50.0, 100.0]),
    *[(lambda m: lambda x: np.quantile(x, [0.0, 0.3, 0.5, 0.62, 1.0], method=m))(m)
      for m in ("linear", "lower", "higher", "nearest", "midpoint")],
    lambda x: np.convolve(x, x[:2], "same"), lambda x: np.correlate(x[:2], x, "same"),
    lambda x: np.interp([-9.0, 0.3, 0.31, 9.0], np.sort(x), x),
    lambda x: np.linspace(x[0], x[1], 7), lambda x: np.gradient(x, edge_order=2),
])
def test_values_match_numpy(call):
    with dg.Tape() as tape:
        got = call(tape.watch(X))
    np.testing.assert_allclose(_raw(got), call(X), rtol=1e-13, atol=1e-15)


def test_linspace_is_numpy_to_the_bit():
    with dg.Tape() as tape:
        a, b = tape.watch(np.float64(0.1)), tape.watch(np.float64(2.3))
        y = np.linspace(a, b, 9)
    np.testing.assert_array_equal(_raw(y), np.linspace(0.1, 2.3, 9))
    t = np.linspace(0.0, 1.0, 9)
    np.testing.assert_allclose(dg.jacrev(lambda a: np.linspace(a, 2.3, 9))(0.1), 1 - t)
    np.testing.assert_allclose(dg.jacfwd(lambda b: np.linspace(0.1, b, 9))(2.3), t)


# -- order statistics ---------------------------------------------------------------

def test_median_odd_and_even_length():
    g = dg.grad(np.median)(X)  # odd: the middle entry
    np.testing.assert_array_equal(g, [1.0, 0, 0, 0, 0])
    g = dg.grad(np.median)(X[:4])  # even: half to each of the two middle entries
    np.testing.assert_array_equal(g, [0.5, 0, 0, 0.5])


def test_percentile_endpoints_are_min_and_max():
    np.testing.assert_array_equal(dg.grad(lambda x: np.percentile(x, 0))(X), [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(dg.grad(lambda x: np.percentile(x, 100))(X), [0, 1, 0, 0, 0])


def test_quantile_is_differentiable_in_q():
    q = 0.37  # between order statistics 1 and 2 of 5: slope (n - 1) * (x_(2) - x_(1))
    s = np.sort(X)
    got = dg.grad(lambda q: np.quantile(X, q), argnums=0)(q)
    np.testing.assert_allclose(got, 4 * (s[2] - s[1]))
    dg.check_grads(lambda q: np.percentile(A, q, axis=1), (np.array([20.0, 70.0]),))


def test_median_with_nan_is_nan_and_nanmedian_skips_it():
    x = X.copy()
    x[1] = np.nan
    assert np.isnan(traced_values(np.median, x))
    g = dg.grad(np.nanmedian)(x)
    np.testing.assert_array_equal(g, [0.5, 0, 0, 0, 0.5])  # 0.1 and 0.3, of the four left


# -- nan-skipping reductions ----------------------------------------------------------

def test_nan_entries_get_zero_derivative():
    x = np.array([[1.0, np.nan, 2.0], [np.nan, 3.0, -1.0]])
    for f in (np.nansum, np.nanmean, np.nanprod, np.nanvar, np.nanstd, np.nanmax, np.nanmin):
        g = dg.grad(lambda x: np.sum(f(x, axis=1)))(x)
        assert np.all(g[np.isnan(x)] == 0), f.__name__
        assert np.all(np.isfinite(g)), f.__name__
    np.testing.assert_array_equal(dg.grad(np.nansum)(x), np.where(np.isnan(x), 0.0, 1.0))
    np.testing.assert_array_equal(dg.grad(np.nanmax)(x), [[0, 0, 0], [0, 1, 0]])


def test_all_nan_slice_gives_nan_with_numpys_warning():
    x = np.array([[np.nan, np.nan], [1.0, 2.0]])
    with pytest.warns(RuntimeWarning, match="All-NaN"):
        out = traced_values(lambda x: np.nanmax(x, axis=1), x)
    assert np.isnan(out[0]) and out[1] == 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = dg.grad(lambda x: np.nanmax(x, axis=1)[1])(x)
    np.testing.assert_array_equal(g, [[0, 0], [0, 1]])


# -- interp -----------------------------------------------------------------------------

def test_interp_outside_the_range_is_left_and_right():
    xp, fp = np.array([0.0, 1.0, 3.0]), np.array([2.0, -1.0, 5.0])
    x = np.array([-1.0, 0.5, 2.0, 4.0])
    np.testing.assert_allclose(dg.jacfwd(lambda x: np.interp(x, xp, fp))(x),
                               np.diag([0.0, -3.0, 3.0, 0.0]))
    J = dg.jacrev(lambda fp: np.interp(x, xp, fp))(fp)
    np.testing.assert_allclose(J, [[1, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0.5], [0, 0, 1]])
    # left/right are not dispatched on (numpy's interp dispatches on x, xp, fp): traced
    # left/right need a traced x, xp or fp beside them
    J = dg.jacrev(lambda p: np.interp(x, xp, p[:3], left=p[3], right=p[4]))(
        np.array([2.0, -1.0, 5.0, 7.0, 8.0]))
    np.testing.assert_allclose(J[:, 3:], [[1, 0], [0, 0], [0, 0], [0, 1]])
    dg.check_grads(lambda xp: np.interp(x, xp, fp), (xp,))  # in the sample points too


# -- the FFT: the dense DFT matrix and JAX's conventions ----------------------------------

def _dft(n, inverse=False):
    k = np.arange(n)
    F = np.exp((2j if inverse else -2j) * np.pi * np.outer(k, k) / n)
    return F / n if inverse else F


def test_fft_jvp_and_vjp_are_the_dft_matrix_and_its_transpose():
    z = R.standard_normal(5) + 1j * R.standard_normal(5)
    t = R.standard_normal(5) + 1j * R.standard_normal(5)
    u = R.standard_normal(5) + 1j * R.standard_normal(5)
    for fn, F in ((np.fft.fft, _dft(5)), (np.fft.ifft, _dft(5, inverse=True))):
        np.testing.assert_allclose(dg.jvp(fn, (z,), (t,))[1], F @ t, rtol=1e-12)
        np.testing.assert_allclose(dg.vjp(fn, z)[1](u)[0], F.T @ u, rtol=1e-12)


def test_rfft_and_irfft_against_their_dense_matrices():
    n, m = 6, 4
    x, u = R.standard_normal(n), R.standard_normal(m) + 1j * R.standard_normal(m)
    Fr = _dft(n)[:m]  # rfft: the first n // 2 + 1 rows; a real input's cotangent is real
    np.testing.assert_allclose(dg.vjp(np.fft.rfft, x)[1](u)[0], np.real(Fr.T @ u), rtol=1e-12)
    y = R.standard_normal(m) + 1j * R.standard_normal(m)
    t = R.standard_normal(m) + 1j * R.standard_normal(m)
    g = R.standard_normal(n)
    # irfft is R-linear: columns for Re(y) and Im(y) by finite differences of numpy itself
    Jre = np.stack([np.fft.irfft(np.eye(m)[j]) for j in range(m)], 1)
    Jim = np.stack([np.fft.irfft(1j * np.eye(m)[j]) for j in range(m)], 1)
    np.testing.assert_allclose(dg.jvp(np.fft.irfft, (y,), (t,))[1],
                               Jre @ t.real + Jim @ t.imag, atol=1e-12)
    np.testing.assert_allclose(dg.vjp(np.fft.irfft, y)[1](g)[0], Jre.T @ g - 1j * (Jim.T @ g),
                               atol=1e-12)


def test_fft_keeps_single_precision():
    x = A.astype(np.float32)
    g = dg.grad(lambda x: np.sum(np.abs(np.fft.rfft2(x)) ** 2))(x)
    assert g.dtype == np.float32
    with pytest.raises(TypeError, match="rfft takes a real input"):
        dg.grad(lambda x: np.sum(np.abs(np.fft.rfft(x * 1j))))(A)


def test_parseval_gradient():
    # sum |fft(x)|^2 = n sum x^2, so the gradient is 2 n x
    g = dg.grad(lambda x: np.sum(np.abs(np.fft.fft(x)) ** 2))(X)
    np.testing.assert_allclose(g, 2 * 5 * X, rtol=1e-12)


# -- einsum ------------------------------------------------------------------------------

def test_einsum_repeated_indices_and_sublists():
    s = R.standard_normal((3, 3))
    np.testing.assert_allclose(dg.grad(lambda s: np.einsum("ii", s))(s), np.eye(3))
    J = dg.jacrev(lambda s: np.einsum("ii->i", s))(s)
    np.testing.assert_allclose(J, np.eye(3)[:, :, None] * np.eye(3)[:, None, :])
    t = R.standard_normal((3, 3, 2))
    np.testing.assert_allclose(traced_values(lambda t: np.einsum("iij->j", t), t),
                               np.einsum("iij->j", t))
    np.testing.assert_allclose(traced_values(lambda a: np.einsum(a, [0, 1], a, [0, 1], []), A),
                               np.sum(A * A))
    dg.check_grads(lambda a: np.einsum(a, [0, 1], a, [2, 1]), (A,), order=2)


# -- copies and casts --------------------------------------------------------------------

def test_copy_is_a_new_traced_value():
    def f(x):
        y, z = np.copy(x), x.copy()
        assert y is not x and z is not x and isinstance(y, dg.core.Box)
        np.testing.assert_array_equal(_raw(y), _raw(x))
        return np.sum(y * z)
    np.testing.assert_allclose(dg.grad(f)(A), 2 * A)

    def g(x):
        y = x.copy()
        y[0] = 5.0  # an in-place write to the copy leaves x alone
        assert _raw(x)[0] == 1.0
        return np.sum(y) + 10 * np.sum(x)
    np.testing.assert_allclose(dg.grad(g)(np.array([1.0, 2.0, 3.0])), [10.0, 11.0, 11.0])


def test_integer_casts_have_no_derivative():
    def f(x):
        k = x.astype(int)
        assert isinstance(k, np.ndarray) and k.dtype.kind == "i"  # raw integers, constant
        return np.sum(x * k)
    x = np.array([0.5, 1.5, 2.5])
    np.testing.assert_array_equal(dg.grad(f)(x), [0.0, 1.0, 2.0])
    def h(x):
        z = x * (1 + 1e-20j)
        assert np.iscomplex(z).dtype == bool and np.all(np.isreal(x))
        return np.sum(np.real_if_close(z))  # imaginary parts below tolerance: real
    np.testing.assert_array_equal(dg.grad(h)(x), [1.0, 1.0, 1.0])
    with pytest.raises(TypeError, match="dualgrad"):
        dg.grad(lambda x: x * np.int64(x))(1.5)  # a traced value does not become a scalar


def test_random_generator_methods_refuse_traced_parameters():
    # numpy's Generator cannot be intercepted: refuse rather than drop the derivative
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="dualgrad"):
        dg.grad(lambda m: np.sum(rng.normal(loc=m, scale=1.0, size=3)))(0.5)
    # the reparameterisation differentiates: loc + scale * standard_normal
    e = np.random.default_rng(0).standard_normal(3)
    g = dg.grad(lambda p: np.sum(p[0] + p[1] * np.random.default_rng(0).standard_normal(3)))(
        np.array([0.5, 2.0]))
    np.testing.assert_allclose(g, [3.0, e.sum()])


# -- piecewise, sinc, gradient --------------------------------------------------------------

def test_piecewise_later_conditions_win_like_numpy():
    x = np.array([-1.5, 0.5, 2.0, 3.0])
    conds = lambda x: [x > 0, x > 1]  # noqa: E731 - overlap on x > 1
    funcs = [lambda v: 10 * v, lambda v: v ** 2, -1.0]
    f = lambda x: np.piecewise(x, conds(x), funcs)  # noqa: E731
    np.testing.assert_array_equal(_raw(traced_values(f, x)), f(x))
    np.testing.assert_array_equal(dg.grad(lambda x: np.sum(f(x)))(x), [0, 10, 4, 6])


def test_sinc_at_zero_to_second_order():
    assert dg.grad(np.sinc)(0.0) == 0.0
    np.testing.assert_allclose(dg.grad(dg.grad(np.sinc))(0.0), -np.pi ** 2 / 3, rtol=1e-12)
    for x in (1e-3, 0.0099, 0.0101, 0.3):  # both sides of the Taylor switch
        d = (np.pi * x * np.cos(np.pi * x) - np.sin(np.pi * x)) / (np.pi * x ** 2)
        np.testing.assert_allclose(dg.grad(np.sinc)(x), d, rtol=1e-9)


def test_gradient_with_traced_evenly_spaced_coordinates():
    # evenly spaced values, but traced: every coordinate moves the result
    dg.check_grads(lambda h: np.gradient(X, h), (np.arange(5.0),), order=2)
    dg.check_grads(lambda h: np.gradient(X, h, edge_order=2), (np.arange(5.0),))
