"""dualgrad.scipy.signal: values against scipy.signal, derivatives against finite
differences (both modes, second order for some) and against jax.scipy.signal."""

import warnings

import numpy as np
import pytest
import scipy.signal as ss

import dualgrad as dg
from dualgrad.scipy import signal as S

RNG = np.random.default_rng(3)


def _arrays(*shapes):
    return tuple(RNG.standard_normal(s) for s in shapes)


B3, A4 = np.array([0.5, 0.2, 0.1]), np.array([2.0, -0.3, 0.1, 0.05])

# id: (name, positional arrays, keywords, jax keywords or None when JAX lacks the case)
CASES = {}
for _mode in ("full", "same", "valid"):
    for _s in (((7,), (3,)), ((3,), (6,)), ((5, 4), (2, 3)), ((3, 4, 3), (2, 2, 2))):
        _tag = "x".join("-".join(map(str, s)) for s in _s)
        for _name in ("convolve", "correlate", "fftconvolve"):
            CASES[f"{_name}-{_mode}-{_tag}"] = (_name, _s, {"mode": _mode}, {"mode": _mode})
    CASES[f"convolve-fft-{_mode}"] = ("convolve", ((6,), (4,)), {"mode": _mode,
                                                                 "method": "fft"}, None)
    for _name in ("convolve2d", "correlate2d"):
        CASES[f"{_name}-{_mode}"] = (_name, ((5, 4), (2, 3)), {"mode": _mode}, {"mode": _mode})
        CASES[f"{_name}-{_mode}-swap"] = (_name, ((2, 3), (4, 5)), {"mode": _mode}, None)
        if _mode != "valid":
            for _bd in ("fill", "wrap", "symm"):
                CASES[f"{_name}-{_mode}-{_bd}"] = (
                    _name, ((4, 5), (3, 2)),
                    {"mode": _mode, "boundary": _bd, "fillvalue": 0.5 if _bd == "fill" else 0},
                    None)
CASES["fftconvolve-axes"] = ("fftconvolve", ((3, 6), (1, 3)), {"mode": "same", "axes": 1},
                             None)
CASES["lfilter"] = ("lfilter", ((3,), (4,), (9,)), {}, None)
CASES["lfilter-axis0"] = ("lfilter", ((2,), (3,), (6, 2)), {"axis": 0}, None)
CASES["lfilter-fir"] = ("lfilter", ((4,), (1,), (8,)), {}, None)


def _inputs(name, shapes):
    arrays = list(_arrays(*shapes))
    if name == "lfilter":  # a stable filter: a[0] away from 0, the rest small
        arrays[1] = np.concatenate([[1.5], 0.2 * arrays[1][1:]])
    return tuple(arrays)


def _ours(name, kw):
    return lambda *a: getattr(S, name)(*a, **kw)


@pytest.mark.parametrize("case", CASES)
def test_value_against_scipy(case):
    name, shapes, kw, _ = CASES[case]
    args = _inputs(name, shapes)
    want = getattr(ss, name)(*args, **kw)
    got, _ = dg.vjp(_ours(name, kw), *args)  # the traced route, not scipy's own
    assert np.shape(got) == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(getattr(S, name)(*args, **kw), want)  # plain: scipy's


@pytest.mark.parametrize("case", CASES)
def test_derivatives_against_finite_differences(case):
    name, shapes, kw, _ = CASES[case]
    dg.check_grads(_ours(name, kw), _inputs(name, shapes), order=1)


@pytest.mark.parametrize("case", ["convolve-same-7x3", "convolve2d-same-wrap", "lfilter",
                                  "fftconvolve-full-5-4x2-3"])
def test_second_order(case):
    name, shapes, kw, _ = CASES[case]
    dg.check_grads(_ours(name, kw), _inputs(name, shapes), order=2)


JAX_CASES = [c for c, row in CASES.items() if row[3] is not None]


@pytest.mark.parametrize("case", JAX_CASES)
def test_against_jax(case):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.scipy.signal as js
    name, shapes, kw, jkw = CASES[case]
    args = _inputs(name, shapes)
    want, jpull = jax.vjp(lambda *a: getattr(js, name)(*a, **jkw), *args)
    got, pull = dg.vjp(_ours(name, kw), *args)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    ct = RNG.standard_normal(np.shape(want))
    for g, j in zip(pull(ct), jpull(ct)):
        np.testing.assert_allclose(g, j, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ["correlate-same-3x6", "convolve2d-full-symm", "lfilter"])
def test_forward_equals_reverse(case):
    name, shapes, kw, _ = CASES[case]
    args = _inputs(name, shapes)
    for i in range(len(args)):
        np.testing.assert_allclose(dg.jacfwd(_ours(name, kw), argnums=i)(*args),
                                   dg.jacrev(_ours(name, kw), argnums=i)(*args), rtol=1e-10,
                                   atol=1e-12)


def test_lfilter_initial_conditions():
    x, zi = _arrays((3, 10), (3, 3))
    want_y, want_zf = ss.lfilter(B3, A4, x, zi=zi)
    (y, zf), _ = dg.vjp(lambda b, a, x, zi: S.lfilter(b, a, x, zi=zi), B3, A4, x, zi)
    np.testing.assert_allclose(y, want_y, rtol=1e-12)
    np.testing.assert_allclose(zf, want_zf, rtol=1e-12)
    short, zs = _arrays((2,), (3,))  # fewer samples than delays: zi partly unused
    (y, zf), _ = dg.vjp(lambda b, a, x, zi: S.lfilter(b, a, x, zi=zi), B3, A4, short, zs)
    for g, w in zip((y, zf), ss.lfilter(B3, A4, short, zi=zs)):
        np.testing.assert_allclose(g, w, rtol=1e-12)
    dg.check_grads(lambda b, a, x, zi: S.lfilter(b, a, x, zi=zi), (B3, A4, x[0], zi[0]),
                   order=2)


def test_traced_coefficient_in_a_list():
    g = dg.grad(lambda p: S.lfilter([1.0], [1.0, -p], np.array([1.0, 0.0, 0.0]))[2])(0.5)
    assert g == pytest.approx(2 * 0.5)


def test_jit_and_vmap():
    x, k = _arrays((6,), (3,))
    loss = dg.grad(lambda k, x: np.sum(S.convolve(x, k, "same") ** 2))
    jitted = dg.jit(loss)
    for scale in (1.0, 2.0):
        np.testing.assert_allclose(jitted(k, scale * x), loss(k, scale * x), rtol=1e-12)
    f = dg.jit(lambda a, x: S.lfilter(B3, a, x))
    np.testing.assert_allclose(f(A4, x), ss.lfilter(B3, A4, x), rtol=1e-12)
    xs, ims = _arrays((4, 6), (3, 4, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # batching rules, no fallback loop
        np.testing.assert_allclose(dg.vmap(lambda x: S.lfilter(B3, A4, x))(xs),
                                   ss.lfilter(B3, A4, xs), rtol=1e-12)
        got = dg.vmap(lambda im: S.convolve2d(im, k[:2, None] * k[None, :], "same"))(ims)
    want = np.stack([ss.convolve2d(im, k[:2, None] * k[None, :], "same") for im in ims])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_bad_arguments_are_named():
    x, k = _arrays((5, 5), (2, 2))
    traced = dg.grad
    with pytest.raises(ValueError, match="boundary must be"):
        traced(lambda x: S.convolve2d(x, k, boundary="reflect").sum())(x)
    with pytest.raises(ValueError, match="mode must be one of"):
        traced(lambda x: S.convolve(x, k, mode="middle").sum())(x)
    with pytest.raises(ValueError, match="same dimensionality"):
        traced(lambda x: S.convolve(x, k[0]).sum())(x)
    with pytest.raises(ValueError, match="at least as large"):
        traced(lambda x: S.convolve(x, np.ones((6, 1)), mode="valid").sum())(x)
    with pytest.raises(ValueError, match="2-D arrays"):
        traced(lambda x: S.correlate2d(x[0], k[0]).sum())(x)
    with pytest.raises(ValueError, match="b must be a non-empty 1-D"):
        traced(lambda x: S.lfilter(np.ones((2, 2)), [1.0], x).sum())(x)
    with pytest.raises(ValueError, match="zi must have"):
        traced(lambda x: S.lfilter(B3, A4, x, zi=np.zeros((5, 2)))[0].sum())(x)
