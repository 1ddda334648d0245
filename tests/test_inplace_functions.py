"""numpy's functions that write into their first argument in place (``np.fill_diagonal``,
``np.put``..., ``np.add.at``, ``np.subtract.at``), with traced values, into an array made
by ``np.zeros`` inside a transform (a Preallocated) or with ``like=``.

``np.fill_diagonal(out, w)`` under ``dg.jit`` returned zeros, silently: the function ran on
a copy of ``out``.  Each case runs under every transform against numpy itself on plain
arrays (its value, and central differences for the gradient).
"""

import numpy as np
import pytest
from cases import central as _central

import dualgrad as dg


def _fill_diagonal(w, make):
    out = make((3, 3))
    np.fill_diagonal(out, w)
    return out


def _fill_diagonal_scalar_wrap(w, make):
    out = make((7, 3))
    np.fill_diagonal(out, w[1], wrap=True)
    return out


def _put(w, make):
    out = make(6)
    out[:] = 1.0
    np.put(out, [4, 0, 2], w * w)
    return out


def _put_clip(w, make):
    out = make(4)
    np.put(out, [1, 9], w[:2], mode="clip")
    return out


def _place(w, make):
    out = make(6)
    out[::2] = 1.0
    np.place(out, np.arange(6) % 2 == 1, np.sin(w))
    return out


def _place_where_out_is_zero(w, make):  # the mask read from out itself
    out = make(6)
    out[::2] = 1.0
    np.place(out, out == 0, np.sin(w))
    return out


def _putmask_cycles(w, make):
    out = make(5)
    np.putmask(out, np.array([True, False, True, True, True]), w)
    return out


def _copyto_where_into_a_row(w, make):
    out = make((2, 3))
    np.copyto(out[1], np.exp(w), where=np.array([True, False, True]))
    return out


def _put_along_axis(w, make):
    out = make((3, 2))
    np.put_along_axis(out, np.array([[1], [0], [1]]), w[:, None] * 2.0, axis=1)
    return out


def _add_at_repeated(w, make):  # CS231n's dW = np.zeros(...); np.add.at(dW, x, dout)
    out = make((4, 3))
    np.add.at(out, np.array([0, 2, 2, 0]), np.outer(np.array([1.0, 2.0, 3.0, 4.0]), w))
    return out


def _subtract_at(w, make):
    out = make(5)
    out[:] = 1.0
    np.subtract.at(out, np.array([1, 1, 4]), w * w)
    return out


CASES = [_add_at_repeated, _subtract_at, _fill_diagonal, _fill_diagonal_scalar_wrap, _put,
         _put_clip, _place, _place_where_out_is_zero, _putmask_cycles,
         _copyto_where_into_a_row, _put_along_axis]
W = np.array([0.3, -0.7, 1.1])
WEIGHTS = np.random.default_rng(0).standard_normal(21)
BASES = {"zeros": lambda w: (lambda shape: np.zeros(shape)),  # a Preallocated in a transform
         "like": lambda w: (lambda shape: np.zeros(shape, like=w))}  # a traced array


def _on(f, base):
    return lambda w: f(w, BASES[base](w))


def _plain(f):
    return lambda w: f(w, np.zeros)


def _loss(f):
    def loss(w):
        out = f(w)
        return np.sum(out * WEIGHTS[:out.size].reshape(out.shape) + out**2)
    return loss


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("f", CASES, ids=lambda f: f.__name__[1:])
def test_values_under_jit_and_vmap(f, base):
    g, plain = _on(f, base), _plain(f)
    want = plain(W)
    assert np.abs(want).sum() > 0  # numpy itself writes something
    j = dg.jit(g)
    np.testing.assert_allclose(j(W), want, rtol=1e-13)
    np.testing.assert_allclose(j(2 * W), plain(2 * W), rtol=1e-13)  # a replay, not a constant
    if f is _place_where_out_is_zero and base == "like":  # a mask that differs per example
        with pytest.raises(TypeError, match="dualgrad"):  # is no single mask: refused
            dg.vmap(g)(np.stack([W, -W]))
        return
    np.testing.assert_allclose(dg.vmap(g)(np.stack([W, -W])), [want, plain(-W)], rtol=1e-13)


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("f", CASES, ids=lambda f: f.__name__[1:])
def test_derivatives_under_every_transform(f, base):
    g, plain = _on(f, base), _plain(f)
    want = _central(_loss(plain), W)
    for t in (dg.grad, dg.jacfwd, dg.jacrev, lambda h: dg.jit(dg.grad(h)),
              lambda h: dg.grad(dg.jit(h))):
        np.testing.assert_allclose(t(_loss(g))(W), want, rtol=1e-6, atol=1e-8)
    size = plain(W).size
    jac = np.stack([_central(lambda w, i=i: plain(w).ravel()[i], W) for i in range(size)])
    np.testing.assert_allclose(dg.jacfwd(g)(W).reshape(jac.shape), jac, rtol=1e-6, atol=1e-8)


def test_plain_writes_stay_numpys():
    out = np.zeros((3, 3))
    np.fill_diagonal(out, [1.0, 2.0, 3.0])
    assert type(out) is np.ndarray and out.trace() == 6.0


def test_a_plain_array_from_a_library_is_refused_with_the_fix():
    plain = np.asarray(np.zeros((2, 2)))  # as a library would hand it: never a Preallocated

    def f(w):
        np.fill_diagonal(plain, w)
        return np.sum(plain)

    with pytest.raises(TypeError, match=r"like=x"):
        dg.grad(f)(np.array([1.0, 2.0]))
