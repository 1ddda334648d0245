"""numpy's functions that write into their first argument in place, with traced values,
into an array made by ``np.zeros`` inside a transform (a Preallocated).

``np.fill_diagonal(out, w)`` under ``dg.jit`` returned zeros, silently: the function ran on
a copy of ``out``.  Each case runs under every transform against numpy itself on plain
arrays (its value, and central differences for the gradient).
"""

import numpy as np
import pytest
from cases import central as _central

import dualgrad as dg


def _fill_diagonal(w):
    out = np.zeros((3, 3))
    np.fill_diagonal(out, w)
    return out


def _fill_diagonal_scalar_wrap(w):
    out = np.zeros((7, 3))
    np.fill_diagonal(out, w[1], wrap=True)
    return out


def _put(w):
    out = np.ones(6)
    np.put(out, [4, 0, 2], w * w)
    return out


def _put_clip(w):
    out = np.zeros(4)
    np.put(out, [1, 9], w[:2], mode="clip")
    return out


def _place(w):
    out = np.zeros(6)
    out[::2] = 1.0
    np.place(out, out == 0, np.sin(w))
    return out


def _putmask_cycles(w):
    out = np.zeros(5)
    np.putmask(out, np.array([True, False, True, True, True]), w)
    return out


def _copyto_where_into_a_row(w):
    out = np.zeros((2, 3))
    np.copyto(out[1], np.exp(w), where=np.array([True, False, True]))
    return out


def _put_along_axis(w):
    out = np.zeros((3, 2))
    np.put_along_axis(out, np.array([[1], [0], [1]]), w[:, None] * 2.0, axis=1)
    return out


CASES = [_fill_diagonal, _fill_diagonal_scalar_wrap, _put, _put_clip, _place,
         _putmask_cycles, _copyto_where_into_a_row, _put_along_axis]
W = np.array([0.3, -0.7, 1.1])
WEIGHTS = np.random.default_rng(0).standard_normal(21)


def _loss(f):
    def loss(w):
        out = f(w)
        return np.sum(out * WEIGHTS[:out.size].reshape(out.shape) + out**2)
    return loss


@pytest.mark.parametrize("f", CASES, ids=lambda f: f.__name__[1:])
def test_values_under_jit_and_vmap(f):
    want = f(W)
    assert np.abs(want).sum() > 0  # numpy itself writes something
    j = dg.jit(f)
    np.testing.assert_allclose(j(W), want, rtol=1e-13)
    np.testing.assert_allclose(j(2 * W), f(2 * W), rtol=1e-13)  # a replay, not a constant
    np.testing.assert_allclose(dg.vmap(f)(np.stack([W, -W])), [want, f(-W)], rtol=1e-13)


@pytest.mark.parametrize("f", CASES, ids=lambda f: f.__name__[1:])
def test_derivatives_under_every_transform(f):
    loss = _loss(f)
    want = _central(loss, W)
    for t in (dg.grad, dg.jacfwd, dg.jacrev, lambda h: dg.jit(dg.grad(h))):
        np.testing.assert_allclose(t(loss)(W), want, rtol=1e-6, atol=1e-8)
    jac = np.stack([_central(lambda w, i=i: f(w).ravel()[i], W) for i in range(f(W).size)])
    np.testing.assert_allclose(dg.jacfwd(f)(W).reshape(jac.shape), jac, rtol=1e-6, atol=1e-8)


def test_plain_writes_stay_numpys():
    out = np.zeros((3, 3))
    np.fill_diagonal(out, [1.0, 2.0, 3.0])
    assert type(out) is np.ndarray and out.trace() == 6.0
