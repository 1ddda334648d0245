"""dualgrad.nn against naive definitions, PyTorch's semantics, and at extreme inputs.
(Derivatives of the table rows are also covered by the generated tests.)"""

import itertools

import numpy as np
import pytest

import dualgrad as dg
from dualgrad.numpy import nn

RNG = np.random.default_rng(1)


def naive_conv(x, w, b, stride, padding, dilation):
    N, C, H, W = x.shape
    Co, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    Ho = (H + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    Wo = (W + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((N, Co, Ho, Wo))
    for n, o, i, j in itertools.product(range(N), range(Co), range(Ho), range(Wo)):
        patch = xp[n, :, i * stride:i * stride + dilation * (kh - 1) + 1:dilation,
                   j * stride:j * stride + dilation * (kw - 1) + 1:dilation]
        out[n, o, i, j] = np.sum(patch * w[o]) + (0.0 if b is None else b[o])
    return out


@pytest.mark.parametrize("stride, padding, dilation", [(1, 0, 1), (1, 1, 1), (2, 1, 1),
                                                       (1, 2, 2), (3, 0, 2)])
def test_conv2d_matches_naive_and_checks_grads(stride, padding, dilation):
    x, w, b = RNG.standard_normal((2, 3, 7, 6)), RNG.standard_normal((4, 3, 3, 2)), \
        RNG.standard_normal(4)
    out = nn.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)
    np.testing.assert_allclose(out, naive_conv(x, w, b, stride, padding, dilation),
                               rtol=1e-12, atol=1e-12)
    dg.check_grads(lambda x, w, b: nn.conv2d(x, w, b, stride, padding, dilation), (x, w, b),
                   order=1)


def naive_pool(x, k, s, p):
    H, W = x.shape[-2:]
    xp = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)], constant_values=-np.inf)
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    out = np.empty(x.shape[:-2] + (Ho, Wo))
    for i, j in itertools.product(range(Ho), range(Wo)):
        out[..., i, j] = xp[..., i * s:i * s + k, j * s:j * s + k].max(axis=(-2, -1))
    return out


@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 3, 0)])
def test_max_pool2d_matches_naive_and_checks_grads(k, s, p):
    x = RNG.permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8) * 0.1  # no near-ties for FD
    np.testing.assert_array_equal(nn.max_pool2d(x, k, s, p), naive_pool(x, k, s, p))
    dg.check_grads(lambda x: nn.max_pool2d(x, k, s, p), (x,), order=2)


def test_max_pool2d_gradient_goes_to_the_first_maximum():
    x = np.zeros((1, 1, 2, 2))
    g = dg.grad(lambda x: nn.max_pool2d(x, 2).sum())(x)
    assert g[0, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_cross_entropy_is_pytorchs():
    logits = np.array([[1.0, 2.0, 3.0], [1.0, -1.0, 0.0]])
    target = np.array([2, 0])
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    per = -logp[[0, 1], target]
    assert float(nn.cross_entropy(logits, target)) == pytest.approx(per.mean(), rel=1e-14)
    assert float(nn.cross_entropy(logits, target, reduction="sum")) == pytest.approx(per.sum())
    np.testing.assert_allclose(nn.cross_entropy(logits, target, reduction="none"), per)
    onehot = np.eye(3)[target]
    assert float(nn.cross_entropy(logits, onehot)) == pytest.approx(per.mean(), rel=1e-14)
    # gradient: (softmax - onehot) / N
    g = dg.grad(nn.cross_entropy)(logits, target)
    np.testing.assert_allclose(g, (np.exp(logp) - onehot) / 2, rtol=1e-14, atol=1e-16)


def test_stable_at_extremes():
    x = np.array([1e4, -1e4, 0.0])
    assert np.all(np.isfinite(nn.softmax(x))) and nn.softmax(x)[0] == 1.0
    assert float(nn.logsumexp(x)) == 1e4
    np.testing.assert_array_equal(dg.grad(nn.logsumexp)(x), [1.0, 0.0, 0.0])
    assert float(nn.softplus(800.0)) == 800.0 and float(dg.grad(nn.softplus)(800.0)) == 1.0
    assert float(dg.grad(nn.softplus)(-800.0)) == 0.0
    assert float(nn.sigmoid(-800.0)) == 0.0 and float(dg.grad(nn.sigmoid)(800.0)) == 0.0
    row = np.array([-np.inf, 0.0, 0.0])
    np.testing.assert_array_equal(nn.softmax(row), [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(dg.grad(lambda r: nn.logsumexp(r))(row), [0.0, 0.5, 0.5])


def test_activations():
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(nn.relu(x), [0.0, 0.0, 3.0])
    np.testing.assert_allclose(nn.sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_allclose(nn.softplus(x), np.log1p(np.exp(x)), rtol=1e-15)
    dg.check_grads(lambda x: nn.sigmoid(x) * nn.softplus(x), (x,), order=2)


def test_nn_under_every_transform():
    x, w = RNG.standard_normal((1, 2, 5, 5)), RNG.standard_normal((3, 2, 3, 3))
    f = lambda w: nn.logsumexp(nn.max_pool2d(nn.relu(nn.conv2d(x, w, padding=1)), 2))
    H = dg.hessian(f)(w)
    np.testing.assert_allclose(H.reshape(54, 54), dg.jacrev(dg.grad(f))(w).reshape(54, 54),
                               atol=1e-12)
    np.testing.assert_allclose(H.reshape(54, 54), dg.jacfwd(dg.jacfwd(f))(w).reshape(54, 54),
                               atol=1e-12)
    v = RNG.standard_normal(w.shape)
    np.testing.assert_allclose(dg.hvp(f, (w,), (v,))[1], np.tensordot(H, v, 4), atol=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda: nn.conv2d(np.ones((3, 4, 4)), np.ones((1, 3, 2, 2))), "x must be"),
    (lambda: nn.conv2d(np.ones((1, 3, 4, 4)), np.ones((1, 2, 2, 2))), "same C"),
    (lambda: nn.conv2d(np.ones((1, 1, 4, 4)), np.ones((2, 1, 2, 2)), b=np.ones(3)), "b must"),
    (lambda: nn.conv2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3))), "larger"),
    (lambda: nn.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)), stride=0), "stride"),
    (lambda: nn.max_pool2d(np.ones(4), 2), "at least 2 axes"),
    (lambda: nn.softmax(np.ones((2, 3)), axis=2), "axis"),
    (lambda: nn.cross_entropy(np.ones((2, 3)), np.array([0, 3])), r"\[0, 3\)"),
    (lambda: nn.cross_entropy(np.ones((2, 3)), np.array([0, 1]), reduction="avg"),
     "reduction"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
