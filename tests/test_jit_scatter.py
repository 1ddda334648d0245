"""dg.jit over writes with traced labels (issue 23 item 5).

An integer array argument of the jitted function (a batch's labels) used in the index of a
write, ``y[np.arange(N), labels] = v``, ``-= 1``, ``np.add.at(y, (rows, labels), v)``, is a
value of the graph: the ``scatter_set`` and ``scatter`` rows take it as an argument, so a
new label vector replays the same graph, with no guard and no read of the labels.  The
CS231n vectorized losses (and their hand-written gradients) are the anchor; every result
is compared with eager dualgrad and plain numpy.
"""

import numpy as np
import pytest
from cuda_helpers import SIM, needs_cuda_pkg, run_under_simulator, sim
from strict_array import StrictArray

import dualgrad as dg
from dualgrad import rules as P
from dualgrad.rules.indexing import ArgIndex

N, D, C, REG = 6, 5, 4, 0.1
RNG = np.random.default_rng(23)
W0, X0 = RNG.standard_normal((D, C)), RNG.standard_normal((N, D))


def labels(k):
    """Label vectors, one per call (several repeat a class; the first and last differ)."""
    return [np.random.default_rng(100 + i).integers(0, C, N) for i in range(k)]


# -- the CS231n losses, written as students write them ------------------------------------

def softmax_loss_vectorized(W, X, y, reg):
    num_train = X.shape[0]
    scores = X.dot(W)
    scores -= np.max(scores, axis=1, keepdims=True)
    probs = np.exp(scores) / np.sum(np.exp(scores), axis=1, keepdims=True)
    loss = -np.sum(np.log(probs[np.arange(num_train), y])) / num_train + reg * np.sum(W * W)
    dscores = probs.copy()
    dscores[np.arange(num_train), y] -= 1
    dW = X.T.dot(dscores) / num_train + 2 * reg * W
    return loss, dW


def softmax_penalised(W, X, y):
    """The loss plus the squared norm of the student's own gradient: differentiating it
    differentiates the write ``dscores[np.arange(N), y] -= 1``."""
    loss, dW = softmax_loss_vectorized(W, X, y, REG)
    return loss + np.sum(dW * dW)


def svm_loss_vectorized(W, X, y):
    num_train = X.shape[0]
    scores = X.dot(W)
    correct = scores[np.arange(num_train), y].reshape(-1, 1)
    margins = np.maximum(0, scores - correct + 1)
    margins[np.arange(num_train), y] = 0
    return np.sum(margins) / num_train + REG * np.sum(W * W)


def svm_onehot(W, X, y):
    """The one-hot form: ``ind[np.arange(N), y] = 1`` into a traced array of zeros."""
    scores = X.dot(W)
    ind = np.zeros(scores.shape, like=W)
    ind[np.arange(X.shape[0]), y] = 1
    correct = np.sum(scores * ind, axis=1, keepdims=True)
    margins = np.maximum(0, scores - correct + 1) * (1 - ind)
    return np.sum(margins) / X.shape[0] + REG * np.sum(W * W)


LOSSES = [softmax_penalised, svm_loss_vectorized, svm_onehot]


def _labels_unread(jf, *args):
    """The optimised graph; it must guard nothing on an index (np.maximum's VJP keeps its
    own guard: no tie at 0, a check of the data the labels do not trip)."""
    lo = jf.lower(*args)
    reads = [op.kw["site"].what for op in lo.before.ops if op.kind == "guard"]
    assert not [w for w in reads if "index" in w], str(lo.before)
    return str(lo.after)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("transform", [lambda f: f, dg.grad], ids=["f", "grad"])
def test_new_labels_replay_one_graph(loss, transform):
    g = transform(loss)
    jf = dg.jit(g)
    for y in labels(5):
        np.testing.assert_allclose(jf(W0, X0, y), g(W0, X0, y), rtol=1e-12, atol=1e-14)
    assert jf.trace_count == 1
    assert "scatter_set" in _labels_unread(jf, W0, X0, labels(1)[0])


def test_student_gradient_replays_and_is_right():
    """jit of the hand-written loss and gradient (plain numpy, no dg.grad): one recording
    for every label vector, and the student's gradient is the true one."""
    jf = dg.jit(softmax_loss_vectorized)
    grad = dg.grad(lambda W, X, y: softmax_loss_vectorized(W, X, y, REG)[0])
    for y in labels(5):
        loss, dW = jf(W0, X0, y, REG)
        want = softmax_loss_vectorized(W0, X0, y, REG)  # plain numpy
        np.testing.assert_allclose(loss, want[0], rtol=1e-13)
        np.testing.assert_allclose(dW, want[1], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dW, grad(W0, X0, y), rtol=1e-10, atol=1e-12)
    assert jf.trace_count == 1


# -- repeated labels: buffered writes (last wins), np.add.at (every one adds) ---------------

def add_at(W, y):
    counts = np.zeros(C, like=W)
    np.add.at(counts, y[:D], W[:, 0] ** 2)  # a repeated label adds every time
    dx = W.T * 1.0
    np.add.at(dx, (np.arange(C), y[:C]), -1.0)
    return np.sum(counts * np.arange(1.0, C + 1)) + np.sum(dx ** 3)


def buffered_add(W, y):
    dx = W * 1.0
    dx[y[:D], 0] += np.sin(W[:, 1])  # buffered: a repeated label gets one update, the last
    return np.sum(dx ** 3)


def last_write_wins(W, y):
    out = W[:, :2] * 1.0
    out[y[:D] % D, 1] = np.exp(W[:, 2])  # the entries overwritten later have no derivative
    return np.sum(out ** 2 * np.arange(1.0, D + 1)[:, None])


@pytest.mark.parametrize("fun", [add_at, buffered_add, last_write_wins],
                         ids=lambda f: f.__name__)
def test_repeated_labels(fun):
    ys = [np.array([1, 1, 3, 1, 0, 2]), np.array([2, 0, 3, 1, 2, 2]), *labels(3)]
    for tr in (dg.grad, dg.hessian):
        g = tr(fun)
        jf = dg.jit(g)
        for y in ys:
            np.testing.assert_allclose(jf(W0, y), g(W0, y), rtol=1e-12, atol=1e-12)
        assert jf.trace_count == 1
    jv = dg.jit(fun)
    for y in ys:
        assert jv(W0, y) == pytest.approx(fun(W0, y), rel=1e-13)  # plain numpy: its values
    assert jv.trace_count == 1


@pytest.mark.parametrize("fun", [add_at, buffered_add, last_write_wins],
                         ids=lambda f: f.__name__)
def test_repeated_labels_forward_mode(fun):
    g = dg.jacfwd(fun)
    jf = dg.jit(g)
    for y in (np.array([1, 1, 3, 1, 0, 2]), np.array([2, 0, 3, 1, 2, 2])):
        np.testing.assert_allclose(jf(W0, y), g(W0, y), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(jf(W0, y), dg.numerical_jacobian(
            lambda W: fun(W, y), (W0,))[0].reshape(W0.shape), rtol=1e-6, atol=1e-7)
    assert jf.trace_count == 1


def test_written_places_follow_numpy():
    """The value of a jitted write is numpy's own, repeats included."""
    def f(x, v, y):
        z = x * 1.0
        z[y, np.arange(3)] = v
        z[1:, y[:2]] -= 2.0 * v[:2]
        return z
    jf = dg.jit(f)
    x, v = RNG.standard_normal((4, 5)), RNG.standard_normal(3)
    for y in (np.array([0, 0, 3]), np.array([3, 1, 3]), np.array([2, 2, 2])):
        np.testing.assert_array_equal(jf(x, v, y), f(x, v, y))
    assert jf.trace_count == 1


# -- the rows themselves, and how a write reaches them --------------------------------------

def test_an_arg_index_sends_the_write_to_the_scatter_rows():
    x, v, y = RNG.standard_normal((3, 4)), RNG.standard_normal(3), np.array([2, 0, 2])
    k = ArgIndex.of(y)
    want = x.copy()
    want[np.arange(3), y] = v
    np.testing.assert_array_equal(P.set_at(x, v, (np.arange(3), k)), want)
    want = np.zeros((3, 4))
    np.add.at(want, (np.arange(3), y), v)
    np.testing.assert_array_equal(P.add_at(v, (np.arange(3), k), (3, 4)), want)


def test_vmap_inside_jit():
    """vmap over the data with the labels unbatched: the row's batching rule, on the
    graph's label value (a traced array's ``y[idx] = v`` under vmap is inplace.py's to
    allow; the row is called directly here)."""
    def write(x, v, y):
        return P.scatter_set(x, v, y, idx=(np.arange(N), P.Slot(0, (N,), y.dtype)))
    xs, vs = RNG.standard_normal((3, N, C)), RNG.standard_normal((N, 3))
    jf = dg.jit(dg.vmap(write, in_axes=(0, 1, None)))
    jg = dg.jit(dg.grad(lambda xs, vs, y: np.sum(dg.vmap(write, in_axes=(0, 1, None))(
        xs, vs, y) ** 3), argnums=(0, 1)))
    for y in labels(3):
        want = np.stack([write(xs[i], vs[:, i], y) for i in range(3)])
        np.testing.assert_array_equal(jf(xs, vs, y), want)
        gx, gv = jg(xs, vs, y)
        np.testing.assert_allclose(gx, np.where(want == xs, 3 * xs ** 2, 0.0), rtol=1e-14)
        np.testing.assert_allclose(gv, 3 * vs ** 2, rtol=1e-14)
    assert jf.trace_count == jg.trace_count == 1


def test_labels_stay_on_the_device():
    """On a device array that refuses host copies (tests/strict_array.py), replays with new
    labels read nothing back."""
    g = dg.grad(svm_loss_vectorized)
    jf = dg.jit(g)
    for y in labels(3):
        got = jf(StrictArray(W0), StrictArray(X0), StrictArray(y))
        assert isinstance(got, StrictArray)
        np.testing.assert_allclose(got.get(), g(W0, X0, y), rtol=1e-12, atol=1e-14)
    assert jf.trace_count == 1


# -- the CUDA target, under numba's simulator -----------------------------------------------

@needs_cuda_pkg
@pytest.mark.skipif(SIM, reason="this is the simulator process")
def test_under_the_cuda_simulator():
    run_under_simulator(__file__)


@sim
@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_sim_cuda_target_replays_new_labels(loss, monkeypatch):
    """The CUDA emitter's kernels around the scatter rows (replayed where they are)."""
    from dualgrad.backend.cuda import use_array_module
    from dualgrad.compiler import compiled
    monkeypatch.setattr(compiled, "target", lambda graph: "cuda")
    g = dg.grad(loss)
    jf = dg.jit(g, codegen="numba")
    with use_array_module(np):
        for y in labels(4):
            np.testing.assert_allclose(jf(W0, X0, y), g(W0, X0, y), rtol=1e-12, atol=1e-13)
    assert jf.trace_count == 1
    (entries,) = jf._cache.values()
    assert any(k.fn is not None for k in entries[0].kernels)


def test_labels_written_into_plain_zeros_made_in_the_function():
    """ind = np.zeros((N, C)); ind[np.arange(N), y] = 1 as written (no like=): the
    Preallocated array records the scatter_set row, so new labels replay one graph."""
    n, c = 5, 3

    def onehot(W, y):
        ind = np.zeros((n, c))
        ind[np.arange(n), y] = 1
        return (ind * W * W).sum()
    f, g = dg.jit(dg.grad(onehot)), dg.grad(onehot)
    W = np.random.default_rng(0).normal(size=(n, c))
    for i in range(5):
        y = np.array([(i + k) % c for k in range(n)])
        np.testing.assert_allclose(f(W, y), g(W, y), rtol=1e-15)
        np.testing.assert_allclose(g(W, y), 2 * W * (np.arange(c) == y[:, None]))
    assert f.trace_count == 1
