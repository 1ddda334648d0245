"""A basic index read again is one traced value (numpy/box.py ``_basic_item``), the sweep's
``np.sum(a * b)`` step (transforms/steps.py ``sum_of_product``) and the tape's tuples
untracked by the cyclic GC: each gives what it replaces, bit for bit."""

import gc

import numpy as np
import pytest
from cases import central

import dualgrad as dg
from dualgrad.transforms import reverse
from dualgrad.transforms.reverse import Tape

# -- w[f] read again -------------------------------------------------------------------


def test_a_read_again_is_one_value_on_the_tape():
    """``w[f]`` in a loop records one getitem: the same box until w is written."""
    w = np.arange(6.0).reshape(2, 3)
    with Tape() as t:
        x = t.watch(w)
        n = len(t.entries)
        a, b = x[1], x[1]
        c = x[0, 2]
        d = x[0, 2]
        assert len(t.entries) == n + 2
        e, f = x[1:], x[1]  # another key, another read
    assert a is b and c is d
    assert e is not f and f is not a  # (x[1] after x[1:]: the last read is kept)


def test_reads_after_a_write_see_it():
    def f(x):
        y = x * 1.0
        a = y[0]
        y[0] = x[1] * 3.0
        b = y[0]
        assert a is not b
        return np.sum(a * 2.0) + np.sum(b * b)

    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    g = dg.grad(f)(x)
    fd = central(lambda v: f(v.reshape(x.shape)), x.ravel()).reshape(x.shape)
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-6)
    # a is numpy's view of y[0]: it sees the write too (f = sum(6 x1) + sum(9 x1 ** 2))
    np.testing.assert_allclose(g, [[0.0, 0.0], [60.0, -12.0]])


def test_a_write_through_one_read_is_seen_by_the_other():
    """numpy: ``a = y[0]; b = y[0]; a[1] = 7`` changes y and b too."""
    def f(x):
        y = x * 1.0
        a, b = y[0], y[0]
        a[1] = x[1, 0] * 7.0
        return y, b

    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    want_y, want_b = f(x)  # plain numpy
    assert want_b[1] == 21.0
    y, b = dg.jvp(f, (x,), (np.ones_like(x),))[0]
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(b, want_b)
    g = dg.grad(lambda x: np.sum(f(x)[1] * np.array([1.0, 5.0])))(x)
    np.testing.assert_array_equal(g, [[1.0, 0.0], [35.0, 0.0]])


def test_a_number_read_again_stays_immutable():
    """``s = x[0]; s += 1`` rebinds s only (a numpy scalar): the next x[0] is x's."""
    def f(x):
        s = x[0]
        s += 1.0
        t = x[0]
        return s * t

    x = np.array([2.0, 5.0])
    assert f(x) == 6.0
    np.testing.assert_array_equal(dg.grad(f)(x), [5.0, 0.0])


def test_naive_loop_gradient_matches_the_unshared_one():
    """The CS231n loop reading w[f] and b[f] per output entry: the same gradient as reading
    them once (rounding: the shared value's cotangent is summed before it reaches w)."""
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 5)), rng.standard_normal((3, 5)), rng.standard_normal(3)

    def loops(x, w, b, hoist):
        out = np.zeros((2, 3), like=x)
        for n in range(2):
            for f in range(3):
                wf, bf = (w[f], b[f]) if hoist else (None, None)
                out[n, f] = np.sum(x[n] * (wf if hoist else w[f])) + (bf if hoist else b[f])
        return np.sum(out ** 2)

    got = dg.grad(loops, argnums=(0, 1, 2))(x, w, b, False)
    want = dg.grad(loops, argnums=(0, 1, 2))(x, w, b, True)
    for a, c in zip(got, want):
        np.testing.assert_array_equal(a, c)


# -- np.sum(a * b) in one step of the sweep ------------------------------------------------

PRODUCTS = {
    "vdot": lambda x, y: np.sum(x * y),
    "square": lambda x, y: np.sum(x * x) + np.sum(y),
    "read_twice": lambda x, y: (lambda p: np.sum(p) + np.sum(np.sin(p)))(x * y),
    "later_reader": lambda x, y: (lambda p: np.sum(p) * np.sum(p * 2.0))(x * y),
    "broadcast": lambda x, y: np.sum(x[:, :1] * y[:1, :]),
    "scalar": lambda x, y: np.sum(x * 3.0) + np.sum(2.0 * y),
    "keepdims": lambda x, y: np.sum(np.sum(x * y, keepdims=True) * y),
    "axis": lambda x, y: np.sum(np.sum(x * y, axis=0) ** 2),
    "loop": lambda x, y: sum(np.sum(x[i] * y[i]) * i for i in range(3)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
@pytest.mark.parametrize("name", sorted(PRODUCTS))
def test_sum_of_product_step_is_the_two_steps(name, dtype, monkeypatch):
    f = PRODUCTS[name]
    rng = np.random.default_rng(1)
    x, y = (rng.standard_normal((3, 4)).astype(dtype) for _ in range(2))
    if np.dtype(dtype).kind == "c":
        x, y = x + 0.5j * x[::-1], y - 0.25j
    loss = (lambda x, y: np.real(f(x, y))) if np.dtype(dtype).kind == "c" else f
    got = dg.grad(loss, argnums=(0, 1))(x, y)
    calls = []
    monkeypatch.setattr(reverse, "sum_of_product", lambda *a: calls.append(1) and False)
    want = dg.grad(loss, argnums=(0, 1))(x, y)
    for a, c in zip(got, want):
        assert a.dtype == c.dtype == x.dtype
        np.testing.assert_array_equal(a, c)
    if name in ("vdot", "square", "loop") and np.dtype(dtype).kind == "f":
        assert calls  # (the step was asked: the bitwise check above compares two paths)


WRITES = {
    "entries": lambda x, y: np.sum(_written(x, y, lambda v: v) ** 2),
    "entries_read_back": lambda x, y: (lambda o: np.sum(o * o[0, 0]))(_written(x, y, np.sin)),
    "entry_twice": lambda x, y: np.sum(_written(_written(x, y, np.cos), y, np.exp) * y),
}


def _written(x, y, h):
    """A loop writing one element at a time into np.zeros (the naive conv's writes)."""
    out = np.zeros(x.shape, like=x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = h(np.sum(x[i, j:] * y[i, j:]) + x[i, j])
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(WRITES))
@pytest.mark.parametrize("step", ["entry_into", "sum_of_product"])
def test_element_write_steps_are_the_general_ones(step, name, dtype, monkeypatch):
    """``out[i, j] = v`` swept by ``entry_into`` (and the sums in the loop by
    ``sum_of_product``) gives what the general steps give, bit for bit."""
    f = WRITES[name]
    rng = np.random.default_rng(2)
    x, y = (rng.standard_normal((3, 4)).astype(dtype) for _ in range(2))
    got = dg.grad(f, argnums=(0, 1))(x, y)
    monkeypatch.setattr(reverse, step, lambda *a: False)
    want = dg.grad(f, argnums=(0, 1))(x, y)
    for a, c in zip(got, want):
        assert a.dtype == c.dtype == x.dtype
        np.testing.assert_array_equal(a, c)
    if dtype == np.float64:
        fd = central(lambda v: f(v.reshape(x.shape), y), x.ravel()).reshape(x.shape)
        np.testing.assert_allclose(got[0], fd, rtol=1e-6, atol=1e-6)


def test_sum_of_product_gradient_is_right():
    x = np.array([1.0, -2.0, 3.0])
    y = np.array([0.5, 4.0, -1.0])
    gx, gy = dg.grad(lambda x, y: np.sum(x * y), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, y)
    np.testing.assert_array_equal(gy, x)


# -- the tape's values: untracked by the cyclic GC ----------------------------------------

def test_recorded_arguments_leave_the_gc():
    """A tape of raw values: its entries' argument and parent tuples hold no object the GC
    tracks, so a collection stops tracking them (a full collection walks what it tracks:
    a long loop's tape would be walked again and again)."""
    with Tape() as t:
        x = t.watch(np.ones(3))
        y = np.sum(np.sin(x) * x) + x[0]
    gc.collect()
    gc.collect()  # (an outer tuple is untracked once its inner ones are)
    entries = [e for e in t.entries if e.prim is not None]
    assert entries and y is not None
    for e in entries:
        assert not gc.is_tracked(e.args) and not gc.is_tracked(e.parents)
