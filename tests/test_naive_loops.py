"""Naive loops writing into ``np.zeros(S, like=x)`` (issue 23, item 6): a vanilla RNN as
students and Google tangent's ``rnn`` write it, ``h[t + 1] = ...``, against the same RNN
vectorised by time (a Python list and np.stack), and the naive max-pool forward against
``dg.nn.max_pool2d``: equal values and gradients, eager and under ``dg.jit``."""

import numpy as np
import pytest

import dualgrad as dg

T, N, D, H = 5, 3, 4, 6
RNG = np.random.default_rng(2023)


def _params(rng, T=T, N=N, D=D, H=H):
    return (0.5 * rng.standard_normal((D, H)), 0.5 * rng.standard_normal((H, H)),
            0.1 * rng.standard_normal(H), rng.standard_normal((T, N, D)))


def rnn_naive(Wx, Wh, b, x):
    """The loop as written: a preallocated hidden-state array, one row written per step."""
    T, N, _ = x.shape
    H = Wh.shape[0]
    h = np.zeros((T + 1, N, H), like=x)
    for t in range(T):
        h[t + 1] = np.tanh(x[t] @ Wx + h[t] @ Wh + b)
    return h


def rnn_stacked(Wx, Wh, b, x):
    """The same RNN with the states collected in a list and stacked."""
    T, N, _ = x.shape
    hs = [np.zeros((N, Wh.shape[0]))]
    for t in range(T):
        hs.append(np.tanh(x[t] @ Wx + hs[-1] @ Wh + b))
    return np.stack(hs)


def _loss(rnn):
    return lambda Wx, Wh, b, x: np.sum(rnn(Wx, Wh, b, x)[1:] ** 2) + np.sum(np.sin(
        rnn(Wx, Wh, b, x)[-1]))


ARGS = (0, 1, 2, 3)


def _close(got, want, rtol=1e-12):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-14)


def test_rnn_naive_values_and_gradients_match_stacked():
    p = _params(RNG)
    np.testing.assert_allclose(rnn_naive(*p), rnn_stacked(*p), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(_loss(rnn_naive)(*p), _loss(rnn_stacked)(*p), rtol=1e-12)
    got = dg.grad(_loss(rnn_naive), argnums=ARGS)(*p)
    want = dg.grad(_loss(rnn_stacked), argnums=ARGS)(*p)
    assert all(isinstance(g, np.ndarray) and g.shape == a.shape for g, a in zip(got, p))
    _close(got, want)


def test_rnn_naive_jit_grad_records_once_and_replays():
    jg = dg.jit(dg.grad(_loss(rnn_naive), argnums=ARGS))
    ref = dg.grad(_loss(rnn_stacked), argnums=ARGS)
    rng = np.random.default_rng(7)
    for _ in range(3):  # new inputs of the same shape: one recording, then replays
        p = _params(rng)
        _close(jg(*p), ref(*p))
    assert jg.trace_count == 1


def _packed(rnn, shapes):
    """rnn of one flat vector of all four arguments: every argument is traced in each
    derivative check_grads takes (it differentiates one argument at a time)."""
    sizes = np.cumsum([int(np.prod(s)) for s in shapes])[:-1]
    return lambda theta: rnn(*(a.reshape(s) for a, s in zip(np.split(theta, sizes), shapes)))


def test_rnn_naive_second_order_check_grads():
    p = _params(np.random.default_rng(3), T=3, N=2, D=3, H=4)
    theta = np.concatenate([a.ravel() for a in p])
    shapes = [a.shape for a in p]
    dg.check_grads(_packed(_loss(rnn_naive), shapes), (theta,), order=2)
    dg.check_grads(_packed(rnn_naive, shapes), (theta,), order=2)
    np.testing.assert_allclose(dg.hessian(_packed(_loss(rnn_naive), shapes))(theta),
                               dg.hessian(_packed(_loss(rnn_stacked), shapes))(theta),
                               rtol=1e-12, atol=1e-13)


def test_rnn_naive_gradient_wrt_weights_only():
    p = _params(np.random.default_rng(3), T=3, N=2, D=3, H=4)
    for a in (0, 1, 2):
        _close([dg.grad(_loss(rnn_naive), argnums=a)(*p)],
               [dg.grad(_loss(rnn_stacked), argnums=a)(*p)])
    dg.check_grads(_loss(rnn_naive), p, order=2)


def maxpool_naive(x, k=2, s=2):
    """CS231n's max_pool_forward_naive: loops writing each window's maximum into zeros."""
    Nb, C, Hh, Ww = x.shape
    Ho, Wo = 1 + (Hh - k) // s, 1 + (Ww - k) // s
    out = np.zeros((Nb, C, Ho, Wo), like=x)
    for n in range(Nb):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    out[n, c, i, j] = np.max(x[n, c, i * s:i * s + k, j * s:j * s + k])
    return out


def test_maxpool_naive_matches_max_pool2d():
    x = np.random.default_rng(11).permutation(32).reshape(1, 2, 4, 4) / 7.0 - 2.0  # distinct
    np.testing.assert_array_equal(maxpool_naive(x), dg.nn.max_pool2d(x, 2))
    w = np.random.default_rng(12).standard_normal((1, 2, 2, 2))
    naive = lambda x: np.sum(w * np.sin(maxpool_naive(x)))
    ref = lambda x: np.sum(w * np.sin(dg.nn.max_pool2d(x, 2)))
    np.testing.assert_allclose(naive(x), ref(x), rtol=1e-15)
    g = dg.grad(naive)(x)
    np.testing.assert_allclose(g, dg.grad(ref)(x), rtol=1e-15, atol=0)
    assert np.count_nonzero(g) == 8  # one maximum per window
    jg = dg.jit(dg.grad(naive))
    for seed in (13, 14):
        x2 = np.random.default_rng(seed).permutation(32).reshape(1, 2, 4, 4) / 5.0
        np.testing.assert_allclose(jg(x2), dg.grad(ref)(x2), rtol=1e-15, atol=0)
    assert jg.trace_count == 1


def test_generic_refusals_advise_zeros_like_form_that_works():
    """The generic refusals (a traced value into a float array, float()) advise
    np.zeros(shape, like=x), which has the output's shape, not np.zeros_like(x)."""
    for program in (lambda x: np.sum(np.array([x[0], x[1]], dtype=float)),
                    lambda x: float(x[0]) * x[1]):
        with pytest.raises(TypeError) as info:
            dg.grad(program)(np.array([0.5, 2.0]))
        assert "np.zeros(shape, like=x)" in str(info.value), info.value
        assert "zeros_like" not in str(info.value), info.value
