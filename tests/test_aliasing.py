"""A plain array written into after a traced computation used it changes no derivative.

Each case builds a plain array inside the function (not with ``np.zeros`` & co., which
are ``Preallocated``: see test_preallocated_unmodified.py), uses it beside the traced
argument, then writes into it.  numpy's own values are right, so the oracle is central
differences of the same function run on plain arrays; every transform must agree with it.
Before the tape copied such arrays, grad, jacrev, vjp and jit(grad) read the written
values (``a = np.array([1., 2, 3]); y = (w * a).sum(); a[0] = 5`` gave d/dw0 = 5).
"""

import numpy as np
import pytest
from cases import central as _central

import dualgrad as dg


def _sum_twice(w):  # the array is used, written, and used again
    a = np.array([1.0, 2, 3])
    y = (w * a).sum()
    a[0] = 5
    return y + (w * a).sum()


def _iadd(w):
    a = np.array([1.0, 2, 3])
    y = np.sin(w * a).sum()
    a += 1
    return y


def _matmul_then_zero(w):
    A = np.arange(9.0).reshape(3, 3)
    y = np.sin(A @ w).sum()
    A[:] = 0
    return y


def _eye_entry(w):
    A = np.eye(3)
    y = (np.tanh(A @ w) * A.diagonal()).sum()
    A[1, 1] = 7
    return y


def _view_of_base(w):
    A = np.arange(9.0).reshape(3, 3)
    y = np.sin(A[0] * w).sum()
    A[0, 0] = 9
    return y


def _sorted_after(w):
    a = np.array([3.0, 1, 2])
    y = np.sin(a * w).sum()
    a.sort()
    return y


def _filled_after(w):
    a = np.array([3.0, 1, 2])
    y = np.sin(w / a).sum()
    a.fill(7)
    return y


def _copyto_after(w):
    a = np.array([0.5, 1, 2])
    y = np.sin(np.maximum(w, a)).sum()
    np.copyto(a, 0.0)
    return y


def _einsum(w):
    a = np.array([3.0, 1, 2])
    y = np.einsum("i,i->", a, w) ** 2
    a *= 3
    return y


def _index_array(w):
    idx = np.array([0, 1])
    y = (w[idx] ** 2).sum()
    idx[0] = 2
    return y + (w[idx] ** 2).sum()


def _index_tuple(w):
    W = w.reshape(1, 3)
    r, c = np.array([0]), np.array([1])
    y = (W[r, c] ** 2).sum()
    c[0] = 2
    return y


def _bool_mask(w):
    m = np.array([True, False, True])
    y = (w[m] ** 2).sum()
    m[1] = True
    return y


def _where_mask(w):
    m = np.array([True, False, True])
    y = np.where(m, w**2, w).sum()
    m[:] = False
    return y


def _sum_where(w):
    m = np.array([True, False, True])
    y = np.sum(w**2, where=m)
    m[:] = True
    return y


def _select(w):
    c = np.array([True, False, True])
    y = np.select([c], [w**2], default=w**3).sum()
    c[:] = False
    return y


def _take(w):
    i = np.array([0, 2])
    y = (np.take(w, i) ** 2).sum()
    i[0] = 1
    return y


def _interp(w):
    xp, fp = np.array([0.0, 1, 2]), np.array([0.0, 1, 4])
    y = np.interp(w, xp, fp).sum()
    xp[1] = 0.5
    return y


def _solve(w):
    A = np.array([[2.0, 1, 0], [1, 3, 1], [0, 1, 4]])
    y = np.linalg.solve(A, w).sum() ** 2
    A[:] = np.eye(3)
    return y


def _reused_buffer(w):  # one scratch array, refilled in a loop
    buf = np.array([1.0, 2, 3])
    t = 0.0
    for i in range(3):
        buf[:] = i + 1.0
        t = t + np.sin(w * buf).sum()
    return t


def _read_between_writes(w):  # np.zeros: a Preallocated; writes in place until read
    out = np.zeros(3)
    out[0] = w[0] * 2
    out[1] = w[1] * 3
    y = np.sin(out)  # sin's derivative reads these values: the next write copies
    out[2] = w[2] ** 2
    out[0] = w[1]
    return (y * out).sum()


def _view_between_writes(w):  # like=: a traced array from the start
    out = np.zeros(3, like=w)
    out[0] = w[0] * 2
    out[1] = w[1] * 3
    y = np.sin(out[0:2])  # sin's derivative reads a view of out's array
    out[0] = w[2] ** 2
    out[1] = 7.0
    return (y * out[:2]).sum() + out[2]


def _loop_then_reads(w):  # the naive-loop shape: many writes, then every entry read
    out = np.zeros((2, 3))
    for i in range(2):
        for j in range(3):
            out[i, j] = np.tanh(w[j] * (i + 1))
    out[1] += out[0] * w
    return np.sum(np.cos(out) * out)


def _shift_into_itself(w):  # the value written is a view of the array written into
    y = np.zeros(5)
    y[:3] = w
    y[1:] = y[:-1] * 2
    y[2:4] = y[1:3] + w[:2]
    y[...] = y[::-1]
    y[[0, 0, 1]] = w  # a repeated index: the last write wins
    return np.sum(y**2 * np.arange(1.0, 6))


def _transpose_write_of_rows(w):
    y = np.zeros((3, 3))
    y[0] = w
    y[1:] = y[:-1] + 1.0
    y.T[0] = y[2]
    return np.sum(y * np.arange(9.0).reshape(3, 3))


CASES = [_sum_twice, _iadd, _matmul_then_zero, _eye_entry, _view_of_base, _sorted_after,
         _filled_after, _copyto_after, _einsum, _index_array, _index_tuple, _bool_mask,
         _where_mask, _sum_where, _select, _take, _interp, _solve, _reused_buffer,
         _read_between_writes, _view_between_writes, _loop_then_reads, _shift_into_itself,
         _transpose_write_of_rows]

TRANSFORMS = {
    "grad": dg.grad,
    "jacrev": dg.jacrev,
    "jacfwd": dg.jacfwd,
    "vjp": lambda f: lambda w: dg.vjp(f, w)[1](1.0)[0],
    "value_and_grad": lambda f: lambda w: dg.value_and_grad(f)(w)[1],
    "jit(grad)": lambda f: dg.jit(dg.grad(f)),
}

W = np.array([0.3, 0.7, 1.1])



@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("f", CASES, ids=lambda f: f.__name__[1:])
def test_write_after_use_changes_no_derivative(f, transform):
    g = TRANSFORMS[transform](f)
    want = _central(f, W)
    np.testing.assert_allclose(g(W), want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(g(W), want, rtol=1e-6, atol=1e-7)  # jit: the replay


@pytest.mark.parametrize("f", [_sum_twice, _eye_entry, _index_array],
                         ids=lambda f: f.__name__[1:])
def test_hessian_after_a_write(f):
    h = dg.hessian(f)(W)
    want = np.stack([_central(lambda w, i=i: dg.grad(f)(w)[i], W) for i in range(3)])
    np.testing.assert_allclose(h, want, rtol=1e-5, atol=1e-6)


def test_pullback_called_after_the_array_changed():
    a = np.array([1.0, 2, 3])
    _, pullback = dg.vjp(lambda w: np.sin(w * a).sum(), np.full(3, 0.5))
    a[:] = 0
    (g,) = pullback(1.0)
    np.testing.assert_allclose(g, np.cos(0.5 * np.array([1.0, 2, 3])) * [1, 2, 3])


def test_tape_watch_keeps_the_value_it_was_given():
    x0 = np.array([0.5, 1.0, 1.5])
    with dg.Tape() as tape:
        x = tape.watch(x0)
        y = (x * x).sum()
    x0[:] = 9.0
    np.testing.assert_allclose(tape.gradient(y, x), [1.0, 2.0, 3.0])


def test_jit_constant_is_the_value_at_its_use():
    def f(w):
        a = np.array([1.0, 2, 3])
        y = w * a
        a[:] = -1.0
        return y + a

    jf = dg.jit(f)
    for _ in range(3):  # recording, then replays
        np.testing.assert_allclose(jf(np.ones(3)), [0.0, 1.0, 2.0])


def test_a_loop_of_writes_goes_in_place():
    """out[i, j] = v in a loop writes into one array (Tape._set_in_place), not a copy per
    write: the count of references that allows it is the one the tape sees."""
    from dualgrad.transforms import reverse

    seen = []
    orig = reverse.Tape._set_in_place

    def spy(self, *a):
        r = orig(self, *a)
        seen.append(r is not None)
        return r

    def f(w):
        out = np.zeros((4, 5))
        for i in range(4):
            for j in range(5):
                out[i, j] = w[j] * i
        return np.sum(out * out)

    reverse.Tape._set_in_place = spy
    try:
        g = dg.grad(f)(W[:1].repeat(5))
    finally:
        reverse.Tape._set_in_place = orig
    np.testing.assert_allclose(g, np.full(5, 2 * 0.3 * (1 + 4 + 9)))
    assert sum(seen) >= len(seen) - 2, seen  # the first write (of np.zeros) copies


BIG = np.random.default_rng(0).standard_normal((400, 400))  # 1.28 MB: over FREEZE_BYTES


def test_a_large_array_is_read_only_while_a_transform_needs_it_not_copied():
    """A large array the user owns is not copied per call (a data matrix): it is
    read-only until the transform is done, so writing into it after use is an error
    naming the fix, never a wrong number; it is writable again afterwards, for every
    transform, and a vjp (whose pullback outlives the call) keeps a copy instead."""
    from dualgrad.core.trace import FREEZE_BYTES

    X = BIG.copy()
    assert X.nbytes >= FREEZE_BYTES
    seen = []

    def f(w):
        y = np.sum(np.tanh(X @ w))
        seen.append(X.flags.writeable)
        return y

    w = np.linspace(-1, 1, 400) / 400
    want = X.T @ (1 - np.tanh(X @ w) ** 2)
    for t in (dg.grad, lambda f: lambda w: dg.value_and_grad(f)(w)[1], dg.jacrev,
              lambda f: dg.jit(dg.grad(f))):
        np.testing.assert_allclose(t(f)(w), want, rtol=1e-12)
        assert X.flags.writeable
    assert seen[0] is False  # held read-only, not copied, while recording
    dg.hessian(f)(w[:1].repeat(400))
    assert X.flags.writeable

    def writes_after_use(w):
        y = np.sum(np.tanh(X @ w))
        X[0, 0] = 5.0
        return y

    with pytest.raises(ValueError, match=r"read-only until the derivative is computed.*"
                                         r"a = a\.copy\(\)"):
        dg.grad(writes_after_use)(w)
    assert X.flags.writeable and X[0, 0] == BIG[0, 0]

    y, pullback = dg.vjp(f, w)
    assert X.flags.writeable
    X[:] = 0.0  # the pullback kept its own copy
    np.testing.assert_allclose(pullback(1.0)[0], want, rtol=1e-12)

    X[:] = BIG
    y, linear = dg.linearize(f, w)  # a linear map outlives the call too: a copy, never
    assert X.flags.writeable  # the user's array left read-only (found by the red team)
    X[:] = 0.0
    np.testing.assert_allclose(linear(np.ones(400)), np.sum(want), rtol=1e-12)


# -- an array made like a written one leaves it alone (found by tests/test_reads_shared) ---
# ``np.zeros(S, like=o)`` records ``index_set(o, 0.0, idx=...)``: a value of its own.  When
# o was the last write of a loop, nothing but the box o held its array, and the tape wrote
# the zeros into it (o read as zeros afterwards: a wrong value and derivative, silently).

MADE_LIKE = {
    "zeros(like=)": lambda o: np.zeros(o.shape, like=o),
    "ones(like=)": lambda o: np.ones(o.shape, like=o),
    "full(like=)": lambda o: np.full(o.shape, 2.0, like=o),
    "zeros_like": np.zeros_like,
    "ones_like": np.ones_like,
    "full_like": lambda o: np.full_like(o, 3.0),
}


def _loop_written(x):
    out = np.zeros(x.shape, like=x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = x[i, j] * (i + 1.0)
    return out


@pytest.mark.parametrize("make", sorted(MADE_LIKE))
def test_an_array_made_like_a_written_one_leaves_it_alone(make):
    def f(x):
        o = _loop_written(x)
        new = MADE_LIKE[make](o)
        new[0, 0] = np.exp(o[0, 0] + o[1, 1])
        return np.sum(o * o) + np.sum(new * new)

    x = np.array([[0.3, -0.2], [0.5, 0.1]])
    v, g = dg.value_and_grad(f)(x)
    assert v == f(x)  # plain numpy
    fd = _central(lambda w: f(w.reshape(2, 2)), x.ravel()).reshape(2, 2)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
