"""A basic index of a traced array is a view, as numpy's: writes through it reach the base,
and it sees writes made through the base.

``out[i][j] = v``, ``row = out[i]; row[:] = v`` and ``for row in out: row *= 2`` write into
``out`` in numpy.  Before views were linked (numpy/inplace.py), dualgrad wrote into a new
value nobody read: the function's value and its gradient came out as zeros, silently.
Each case runs on three kinds of base array: ``np.zeros`` (a Preallocated while a transform
runs), ``np.zeros(S, like=w)`` and an array computed from ``w``; numpy itself, on plain
arrays, is the oracle (its value, and central differences for the gradient).
"""

import numpy as np
import pytest
from cases import central as _central

import dualgrad as dg

BASES = {
    "zeros": lambda shape, w: np.zeros(shape),
    "like": lambda shape, w: np.zeros(shape, like=w),
    "computed": lambda shape, w: np.zeros(shape) + 0.0 * w[0],
}


def _chained(w, make):  # out[i][j] = v: the commonest
    out = make((2, 3), w)
    for i in range(2):
        for j in range(3):
            out[i][j] = w[j] * (i + 1)
    return np.sum(out**2)


def _row_slice_write(w, make):
    out = make((2, 3), w)
    for i in range(2):
        row = out[i]
        row[:] = np.sin(w * (i + 1))
    return np.sum(out * np.arange(6.0).reshape(2, 3))


def _row_inplace_op(w, make):
    out = make((2, 3), w)
    out[...] = 1.0
    for row in out:  # iteration gives views
        row *= w
    return np.sum(out**3)


def _view_sees_base_write(w, make):
    out = make((3,), w)
    row = out[0:2]
    out[0] = w[0] * 2
    out[1] = w[1] * 3
    return np.sum(row * w[:2])


def _view_write_keeps_base_write(w, make):  # the view is older than a base write
    out = make((2, 3), w)
    row = out[0]
    out[0, 1] = w[1] ** 2
    row[2] = w[2] * 5
    return np.sum(out * np.arange(1.0, 7.0).reshape(2, 3))


def _view_of_view(w, make):
    out = make((2, 2, 3), w)
    plane = out[1]
    plane[0][1:] = w[1:] * w[0]
    out[1, 1] = np.cos(w)
    return np.sum(plane**2) + np.sum(out)


def _view_of_view_sees_base_writes(w, make):  # row is a view of plane, a view of out
    out = make((2, 2, 3), w)
    plane = out[1]
    row = plane[0]
    out[1, 0, 0] = w[0] * 3
    out[1][0][2] = w[2]
    return np.sum(row * w) + np.sum(plane)


def _chained_add(w, make):
    out = make((2, 3), w)
    for i in range(2):
        out[i][:] += w * (i + 2)
        out[i][0] += w[1]
    return np.sum(np.tanh(out))


def _through_transpose(w, make):  # x.T, x.reshape(S), x.ravel(): views of all of x
    out = make((3, 2), w)
    out.T[0] = w * 2
    t = out.T
    out[2, 1] = w[0] ** 2
    return np.sum(out**2) + np.sum(t * np.arange(6.0).reshape(2, 3))


def _through_reshape(w, make):
    out = make((2, 3), w)
    r = out.reshape(6)
    r[1:4] = w
    out[1, 2] = w[0]
    out.ravel()[0] += w[2]
    return np.sum(r * np.arange(6.0)) + np.sum(out**2)


def _flatten_is_a_copy(w, make):
    out = make((2, 3), w)
    f = out.flatten()
    f[0] = w[0]
    out.squeeze()[1] = w[1]
    return np.sum(out) + np.sum(f * 3.0)


def _view_kept_across_shape_set(w, make):  # numpy's view keeps its memory (a traced
    out = make((6,), w) + 0.0 * w[0]  # base: np.zeros' own refuses, test below)
    out[:3] = w
    out[3:] = w * 2.0
    v = out[:2]
    out.shape = (2, 3)
    out[0, 0] = 9.0 * w[2]
    return np.sum(v * np.array([1.0, 2.0])) + np.sum(out * 0.5)


def _through_functions(w, make):  # np.transpose(out), np.reshape(out, S): views too
    out = make((2, 3), w)
    np.transpose(out)[2, 1] = w[0] * 3.0
    np.reshape(out, 6)[1:3] = np.sin(w[1:])
    np.swapaxes(out, 0, 1)[0, 1] = w[2]
    return np.sum(out * np.arange(1.0, 7.0).reshape(2, 3))


CASES = [_through_functions, _view_kept_across_shape_set, _chained, _row_slice_write,
         _row_inplace_op, _view_sees_base_write,
         _view_write_keeps_base_write, _view_of_view, _view_of_view_sees_base_writes,
         _chained_add, _through_transpose,
         _through_reshape, _flatten_is_a_copy]

W = np.array([0.3, 0.7, 1.1])


def _plain(f):
    return lambda w: f(w, lambda shape, w: np.zeros(shape))



@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("f", CASES, ids=lambda f: f.__name__[1:])
def test_views_write_through_and_see_writes(f, base):
    make = BASES[base]
    value, g = dg.value_and_grad(lambda w: f(w, make))(W)
    np.testing.assert_allclose(value, _plain(f)(W), rtol=1e-13)
    np.testing.assert_allclose(g, _central(_plain(f), W), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("f", CASES, ids=lambda f: f.__name__[1:])
def test_views_under_other_transforms(f):
    make = BASES["zeros"]
    want = _central(_plain(f), W)
    for t in (dg.jacfwd, dg.jacrev, lambda h: dg.jit(dg.grad(h)),
              lambda h: dg.grad(dg.jit(h)), lambda h: dg.jacfwd(dg.jit(h))):
        np.testing.assert_allclose(t(lambda w: f(w, make))(W), want, rtol=1e-6, atol=1e-8)
    ws = np.stack([W, 2 * W])  # dg.jit runs f itself inside an outer transform
    if f is _view_kept_across_shape_set:  # x.shape = S under vmap: refused, with the fix
        with pytest.raises(TypeError, match=r"x = x\.reshape\(S\)"):
            dg.vmap(dg.jit(lambda w: f(w, make)))(ws)
        return
    np.testing.assert_allclose(dg.vmap(dg.jit(lambda w: f(w, make)))(ws),
                               [_plain(f)(w) for w in ws], rtol=1e-13)


def test_a_view_write_outside_the_transform_is_numpys():
    out = np.zeros((2, 3))
    out[1][2] = 4.0
    assert out[1, 2] == 4.0 and type(out) is np.ndarray


@pytest.mark.parametrize("base", ["zeros", "computed"])
@pytest.mark.parametrize("f", CASES, ids=lambda f: f.__name__[1:])
def test_views_under_hessian_and_vmap(f, base):
    h = lambda w: f(w, BASES[base])  # noqa: E731
    want = np.stack([_central(lambda w, i=i: dg.grad(h)(w)[i], W) for i in range(3)])
    np.testing.assert_allclose(dg.hessian(h)(W), want, rtol=1e-5, atol=1e-6)
    if f is _view_kept_across_shape_set:  # x.shape = S under vmap: refused (above)
        return
    ws = np.stack([W, 2 * W])
    np.testing.assert_allclose(dg.vmap(h)(ws), [_plain(f)(w) for w in ws], rtol=1e-13)
    np.testing.assert_allclose(dg.vmap(dg.grad(h))(ws), [_central(_plain(f), w) for w in ws],
                               rtol=1e-6, atol=1e-7)


def test_shape_set_after_a_view_of_a_written_preallocated_is_refused():
    def f(w):
        out = np.zeros(6)
        out[:3] = w
        v = out[:2]
        out.shape = (2, 3)
        return np.sum(v) + np.sum(out)

    with pytest.raises(TypeError, match=r"out = out\.reshape\(S\)"):
        dg.grad(f)(W)
    g = lambda w: np.sum(np.zeros(6) + w[0])  # noqa: E731  (no view: numpy's own .shape =)
    assert dg.grad(g)(W)[0] == 6.0
