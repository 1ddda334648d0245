"""The reverse sweep's slice-wise cotangents (transforms/slices.py): reads ``x[:, t]`` and
writes ``h[:, t] = v`` in loops, as an RNN writes them, differentiate exactly as the rows'
rules do.  The sweep keeps getitem cotangents of disjoint slices as blocks (one
concatenate at the end) and index_set's cotangent for the array written into as a masked
base; overlapping slices, gaps, other axes and other indices take the rules.  The oracle
is central differences of the same numpy function; every transform must agree with it.
"""

import numpy as np
import pytest

import dualgrad as dg
from dualgrad.transforms.slices import span

R = np.random.default_rng(3)
X3 = R.standard_normal((3, 5, 4))
W = R.standard_normal((4, 4)) / 2
C3 = R.standard_normal((3, 5, 4))


def _rnn(x):  # reads x[:, t], writes h[:, t]: every slice once
    h = np.zeros((3, 5, 4))
    prev = np.zeros((3, 4))
    for t in range(5):
        prev = np.tanh(x[:, t, :] + prev @ W)
        h[:, t, :] = prev
    return np.sum(h * C3)


def _gates(x):  # a[:, :k] splits along the last axis, as an LSTM's gates
    a = x.reshape(15, 4) @ W
    i, f, o = a[:, :1], a[:, 1:3], a[:, 3:]
    return np.sum(np.tanh(i) * f ** 2) + np.sum(o * 3.0)


def _overlap(x):  # overlapping and repeated slices: sums
    return (np.sum(x[:2] ** 2) + np.sum(np.sin(x[1:3])) + np.sum(x[1] * x[2])
            + np.sum(x[-1] * 2.0) + np.sum(x[:, 2:4] ** 3))


def _gaps(x):  # slices with gaps between them, steps, a negative index
    return np.sum(x[:, 0] ** 2) + np.sum(np.cos(x[:, 3])) + np.sum(x[:, -1]) \
        + np.sum(x[:, ::2] * 0.5)


def _rewrite(x):  # a slice written, read back, written again (masks that overlap)
    h = np.zeros((3, 5, 4))
    h[:, 1] = x[:, 1] ** 2
    h[:, 1:3] = h[:, 0:2] + x[:, 2:4]
    h[:, 2] = h[:, 2] * 3.0
    h[0] = h[0] + x[0]          # another axis
    return np.sum(h * C3) + np.sum(h[:, 1:4] ** 2)


def _like(x):  # like= arrays, a whole-axis write, a broadcast v
    y = np.zeros((3, 5, 4), like=x)
    y[:] = x * 2.0
    y[:, 2] = x[0, 0, 0]
    y[1:] = np.sin(y[:-1])
    return np.sum(y ** 2)


CASES = [_rnn, _gates, _overlap, _gaps, _rewrite, _like]


def _central(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[k] += eps
        xm[k] -= eps
        g[k] = (f(xp) - f(xm)) / (2 * eps)
    return g


@pytest.mark.parametrize("f", CASES, ids=lambda f: f.__name__)
def test_grad_matches_central_differences(f):
    want = _central(f, X3)
    np.testing.assert_allclose(dg.grad(f)(X3), want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dg.jit(dg.grad(f))(X3), want, rtol=1e-6, atol=1e-7)
    jf = dg.jit(dg.grad(f))
    jf(X3)
    np.testing.assert_allclose(jf(X3), want, rtol=1e-6, atol=1e-7)  # the replay
    np.testing.assert_allclose(dg.vjp(f, X3)[1](1.0)[0], want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("f", CASES, ids=lambda f: f.__name__)
def test_higher_order(f):
    """Sweeps that are themselves traced: jacrev of a vector, hvp (forward over reverse)."""
    v = R.standard_normal(X3.shape)
    g = dg.grad(f)
    want = _central(lambda x: np.sum(g(x) * v), X3, 1e-5)
    got = dg.grad(lambda x: np.sum(dg.grad(f)(x) * v))(X3)  # reverse over reverse
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    hv = dg.jvp(g, (X3,), (v,))[1]  # forward over reverse: H v
    eps = 1e-5
    np.testing.assert_allclose(hv, (g(X3 + eps * v) - g(X3 - eps * v)) / (2 * eps),
                               rtol=1e-5, atol=1e-6)
    jac = dg.jacrev(lambda x: np.stack([f(x), f(2.0 * x)]))(X3)
    np.testing.assert_allclose(jac[0], dg.grad(f)(X3), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jac[1], 2.0 * dg.grad(f)(2.0 * X3), rtol=1e-12, atol=1e-12)


def test_tape_kept_adjoints_are_whole_arrays():
    """Tape.gradient keeps its adjoints: each one an array, the same on a second call."""
    with dg.Tape() as tape:
        x = tape.watch(X3)
        y = np.sum(x[:, 0] ** 2) + np.sum(x[:, 1:3])
    g1 = tape.gradient(y, x)
    g2 = tape.gradient(y, x)
    assert g1.__class__ is np.ndarray and np.array_equal(g1, g2)
    want = np.zeros_like(X3)
    want[:, 0] = 2 * X3[:, 0]
    want[:, 1:3] = 1.0
    np.testing.assert_array_equal(g1, want)


def test_float32_slices():
    x = X3.astype(np.float32)
    g = dg.grad(lambda x: np.sum(x[:, 1] * 2.0) + np.sum(x[:, 0] ** 2))(x)
    assert g.dtype == np.float32
    want = np.zeros_like(x)
    want[:, 1] = 2.0
    want[:, 0] = 2 * x[:, 0]
    np.testing.assert_allclose(g, want, rtol=1e-6)


def test_span():
    assert span((slice(None), 3, slice(None)), (2, 5, 4)) == (1, 3, 4, True)
    assert span((slice(None), slice(0, 8)), (4, 16)) == (1, 0, 8, False)
    assert span((-1,), (4, 2)) == (0, 3, 4, True)
    assert span((slice(None, None, 2),), (4,)) is None  # a step
    assert span((1, 2), (3, 3)) is None  # two axes
    assert span((None, 1), (3, 3)) is None  # a new axis
    assert span((np.array([0, 1]),), (3,)) is None  # an array
    assert span((True,), (3,)) is None  # a bool
    assert span((slice(2, 2),), (3,)) is None  # empty


def test_recorded_sweep_has_no_scatter_per_slice():
    """dg.jit(dg.grad) of the loops records one concatenate for x's cotangent and no
    scatter-add or copy per step (index_set rows are the forward's writes only)."""
    ops = [op.prim.name for op in dg.jit(dg.grad(_rnn)).lower(X3).before.ops
           if getattr(op, "prim", None) is not None]
    assert "scatter_add" not in ops
    assert ops.count("index_set") == 5 and ops.count("concatenate") == 1
    ops = [op.prim.name for op in dg.jit(dg.grad(_gates)).lower(X3).before.ops
           if getattr(op, "prim", None) is not None]
    assert "scatter_add" not in ops and ops.count("concatenate") == 1


@pytest.mark.parametrize("f", CASES, ids=lambda f: f.__name__)
def test_vmap_of_grad(f):
    """The sweep under dg.vmap (its values batched) and its jit: as a loop of grads."""
    xs = np.stack([X3, 0.5 * X3, -X3])
    want = np.stack([dg.grad(f)(x) for x in xs])
    np.testing.assert_allclose(dg.vmap(dg.grad(f))(xs), want, rtol=1e-12, atol=1e-12)
    j = dg.jit(dg.vmap(dg.grad(f)))
    j(xs)
    np.testing.assert_allclose(j(xs), want, rtol=1e-12, atol=1e-12)
