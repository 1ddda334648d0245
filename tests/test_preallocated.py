"""Preallocated outputs: ``out = np.zeros(S, like=x)`` and ``np.zeros_like(x, shape=S)``
give a traced array to write into, so the loops students write (the naive CS231n conv)
differentiate; a write into a plain ``np.zeros(S)`` says that fix with its own shape; and
``grad`` takes an output with one element (HIPS autograd's and PyTorch's rule)."""

import linecache

import numpy as np
import pytest

import dualgrad as dg

# numpy's zeros bound at import (``from numpy import zeros``): inside a transform its
# arrays stay plain (test_preallocated_unmodified.py has what np.zeros gives there)
plain_zeros = np.zeros
RNG = np.random.default_rng(23)
X = RNG.standard_normal((2, 2, 5, 5))
W = RNG.standard_normal((3, 2, 3, 3))
B = RNG.standard_normal(3)


def naive_conv(x, w, b, pad=1, stride=1):
    """The CS231n conv_forward_naive, as students write it: loops writing into zeros."""
    N, C, H, Wd = x.shape
    F, _, HH, WW = w.shape
    Ho, Wo = 1 + (H + 2 * pad - HH) // stride, 1 + (Wd + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((N, F, Ho, Wo), like=x)
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    hs, ws = i * stride, j * stride
                    out[n, f, i, j] = np.sum(x_pad[n, :, hs:hs + HH, ws:ws + WW] * w[f]) + b[f]
    return out


def test_naive_conv_gradient_matches_conv2d():
    loss = lambda x, w, b: np.sum(np.tanh(naive_conv(x, w, b)))
    ref = lambda x, w, b: np.sum(np.tanh(dg.nn.conv2d(x, w, b, padding=1)))
    np.testing.assert_allclose(naive_conv(X, W, B), dg.nn.conv2d(X, W, B, padding=1),
                               rtol=1e-12, atol=1e-12)
    got = dg.grad(loss, argnums=(0, 1, 2))(X, W, B)
    want = dg.grad(ref, argnums=(0, 1, 2))(X, W, B)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)


def _written(x):
    """Rows of ``out = np.zeros((3, 4), like=x)`` written one at a time, some twice."""
    out = np.zeros((3, 4), like=x)
    out[0] = np.sin(x) * x[0]
    out[1, 2] = x[1] * x[2]
    out[1, 3] += x[3] ** 2
    out[2, :2] = x[:2] * x[2:]
    out[0, 1] = np.exp(x[1])  # overwritten: only the last write has a derivative
    return out


def _stacked(x):
    z = x[0] * 0.0
    row0 = np.stack([np.sin(x[0]) * x[0], np.exp(x[1]), np.sin(x[2]) * x[0],
                     np.sin(x[3]) * x[0]])
    row1 = np.stack([z, z, x[1] * x[2], z + x[3] ** 2])
    row2 = np.stack([x[0] * x[2], x[1] * x[3], z, z])
    return np.stack([row0, row1, row2])


XV = np.array([0.3, -1.2, 0.7, 2.1])


def test_written_equals_stacked_in_every_transform():
    np.testing.assert_allclose(_written(XV), _stacked(XV))
    t = np.array([1.0, -0.5, 0.25, 2.0])
    for f in (_written, _stacked):
        assert isinstance(dg.jvp(f, (XV,), (t,))[1], np.ndarray)
    np.testing.assert_allclose(dg.jvp(_written, (XV,), (t,))[1],
                               dg.jvp(_stacked, (XV,), (t,))[1], rtol=1e-13)
    s = lambda f: (lambda x: np.sum(np.cos(f(x))))
    np.testing.assert_allclose(dg.grad(s(_written))(XV), dg.grad(s(_stacked))(XV), rtol=1e-13)
    np.testing.assert_allclose(dg.hessian(s(_written))(XV), dg.hessian(s(_stacked))(XV),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dg.jacrev(_written)(XV), dg.jacfwd(_stacked)(XV), rtol=1e-13)


@pytest.mark.parametrize("make", [
    lambda x: np.zeros((2, 3), like=x), lambda x: np.ones((2, 3), like=x) - 1.0,
    lambda x: np.empty((2, 3), like=x) * 0.0, lambda x: np.full((2, 3), 0.0, like=x),
    lambda x: np.zeros_like(x, shape=(2, 3)), lambda x: np.ones_like(x, shape=(2, 3)) - 1,
    lambda x: np.empty_like(x, shape=(2, 3)) * 0.0,
    lambda x: np.full_like(x, 0.0, shape=(2, 3)),
], ids=["zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like",
        "full_like"])
def test_creators_give_traced_arrays_to_write_into(make):
    def f(x):
        out = make(x)
        assert out.shape == (2, 3) and out.dtype == np.float64
        out[1, 2] = x[0] * x[1]
        out[0] = x * 2.0
        return np.sum(out ** 2)
    x = np.array([1.5, -2.0, 0.5])
    want = 2 * np.array([x[0] * x[1] ** 2, x[0] ** 2 * x[1], 0.0]) + 8 * x
    np.testing.assert_allclose(dg.grad(f)(x), want)


def test_like_values_and_dtypes_follow_numpy():
    def f(x):
        got = [np.zeros(3, like=x), np.ones((2,), like=x), np.full((2, 2), 7.5, like=x),
               np.zeros((2,), dtype=np.float32, like=x), np.ones_like(x, shape=(4,)),
               np.full_like(x, 2.0, shape=(1, 2))]
        for g, w in zip(got, [np.zeros(3), np.ones(2), np.full((2, 2), 7.5),
                              np.zeros(2, np.float32), np.ones(4), np.full((1, 2), 2.0)]):
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_array_equal(dg.stop_gradient(g), w)
        ints = np.zeros(3, dtype=int, like=x)  # integers have no derivative: numpy's own
        assert ints.__class__ is np.ndarray and ints.dtype.kind == "i"
        return np.sum(np.full((2,), x[0] ** 2, like=x))  # a traced fill differentiates
    np.testing.assert_allclose(dg.grad(f)(np.array([3.0, 1.0])), [12.0, 0.0])
    assert np.zeros(2, like=np.ones(1)).__class__ is np.ndarray  # plain numpy unchanged


def test_like_under_jit():
    def f(x):
        out = np.zeros((2,), like=x)
        out[1] = np.sum(x ** 2)
        return np.sum(out * 3.0)
    x = np.array([2.0, 3.0])
    np.testing.assert_allclose(dg.jit(dg.grad(f))(x), 6 * x)
    assert dg.jit(f)(x) == 39.0


@pytest.mark.parametrize("write, shown", [
    ("out[0, 1] = x[0] * 2.0", "out[0, 1] = v"),   # a scalar write: numpy's ValueError
    ("out[1] = x * 2.0", "out[1] = v"),             # a slice write
    ("out[1, 2] += x[0]", "out[1, 2] += v"),
])
def test_plain_write_says_the_fix_with_its_shape(write, shown):
    src = f"def f(x):\n    out = zeros((4, 3))\n    {write}\n    return out.sum()\n"
    name = f"<preallocated {write}>"  # the message reads the write from the source
    linecache.cache[name] = (len(src), None, src.splitlines(True), name)
    ns = {"np": np, "zeros": plain_zeros}
    exec(compile(src, name, "exec"), ns)
    with pytest.raises(TypeError) as e:
        dg.grad(ns["f"])(np.ones(3))
    msg = str(e.value)
    assert shown in msg and "shape (4, 3)" in msg
    assert "out = np.zeros((4, 3), like=x)" in msg


def test_plain_write_message_in_source():
    def f(x):
        out = plain_zeros((4, 8, 5, 5))
        out[0, 1, 2, 3] = np.sum(x)
        return out.sum()
    with pytest.raises(TypeError, match=r"out = np\.zeros\(\(4, 8, 5, 5\), like=x\)"):
        dg.grad(f)(np.ones(3))
    with pytest.raises(TypeError, match=r"out = np\.zeros\(\(4, 8, 5, 5\), like=x\)"):
        dg.jvp(f, (np.ones(3),), (np.ones(3),))

    def g(x):
        acc = plain_zeros(3, np.float32)
        acc[:] = x
        return acc.sum()
    with pytest.raises(TypeError, match=r"acc = np\.zeros\(\(3,\), dtype=np\.float32, like=x"):
        dg.grad(g)(np.ones(3))

    def h(x):
        acc = plain_zeros(3)
        acc += x
        return acc.sum()
    with pytest.raises(TypeError, match=r"acc = np\.zeros\(\(3,\), like=x\)"):
        dg.grad(h)(np.ones(3))


def test_grad_of_a_one_element_output():
    x = np.array([2.0, 3.0])
    f = lambda x: x[:1] * x[1]                      # shape (1,)
    np.testing.assert_allclose(dg.grad(f)(x), [3.0, 2.0])
    v, g = dg.value_and_grad(lambda x: np.reshape(f(x), (1, 1)))(x)
    assert v.shape == (1, 1) and v[0, 0] == 6.0
    np.testing.assert_allclose(g, [3.0, 2.0])
    g32 = dg.grad(f)(x.astype(np.float32))
    assert g32.dtype == np.float32
    np.testing.assert_allclose(dg.grad(dg.grad(lambda t: np.sin(t)[None]))(1.0), -np.sin(1.0))
    with pytest.raises(TypeError, match=r"grad requires a scalar output, got shape \(2,\)"):
        dg.grad(lambda x: x * 1.0)(x)
    with pytest.raises(TypeError, match=r"got shape \(0,\)"):
        dg.grad(lambda x: x[:0])(x)
