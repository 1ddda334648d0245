"""dg.jit's guards: the retrace warning names the guard that failed (file:line, what was
read), and a write of traced values into a plain array behaves as eager dualgrad does."""

import re

import numpy as np
import pytest

import dualgrad as dg

N, C = 5, 3
HERE = re.escape("test_jit_guards.py")


def _line(fn, text):
    """The line number of ``text`` in ``fn``'s source file."""
    import inspect
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, s in enumerate(lines) if text in s)


def branchy(x):
    if (x.sum() > 0):  # the bool() guard
        return x * 2.0
    return -x


def masked(W, m):
    return (W[m] ** 2).sum()  # a boolean mask's values set W[m]'s shape: read and guarded


def test_warning_names_bool_guard():
    f = dg.jit(branchy, retrace_limit=0)  # its second recording warns
    line = _line(branchy, "the bool() guard")
    with pytest.warns(RuntimeWarning,
                      match=rf"{HERE}:{line} \(bool\(\)\) failed on new inputs.*np\.where"):
        for i in range(6):
            x = np.full(3, 1.0 if i % 2 else -1.0)
            np.testing.assert_allclose(f(x), branchy(x))
    assert f.eager


def test_warning_names_index_guard():
    rng = np.random.default_rng(0)
    f = dg.jit(masked, retrace_limit=2)
    line = _line(masked, "W[m] ** 2")
    W = rng.normal(size=(N, C))
    with pytest.warns(RuntimeWarning,
                      match=rf"{HERE}:{line} \(an index array's values: m\) failed"):
        for i in range(6):
            m = np.array([(i >> k) % 2 == 1 for k in range(N)])  # a new mask each call
            np.testing.assert_allclose(f(W, m), masked(W, m))
    assert f.eager


def test_warning_under_jit_of_grad():
    g = dg.grad(masked)
    f = dg.jit(g, retrace_limit=1)
    line = _line(masked, "W[m] ** 2")
    W = np.ones((N, C))
    with pytest.warns(RuntimeWarning, match=rf"{HERE}:{line} \(an index array's values"):
        for i in range(4):
            m = np.array([(i + k) % 3 == 0 for k in range(N)])
            np.testing.assert_allclose(f(W, m), g(W, m))


def test_int_guard_named():
    def take(x, n):
        return x[:int(n)].sum()  # int() read
    f = dg.jit(take, retrace_limit=1)
    line = _line(take, "int() read")
    with pytest.warns(RuntimeWarning, match=rf"{HERE}:{line} \(int\(\): n\)"):
        for n in range(1, 5):
            assert f(np.arange(6.0), np.array(n)) == np.arange(n).sum()


# -- writes into a plain array, with traced labels and traced values ---------------------

def onehot(W, y):
    ind = np.zeros((N, C))
    ind[np.arange(N), y] = 1
    return (ind * W).sum()


def scaled(W, y):
    ind = np.zeros((N, C))
    ind[np.arange(N), y] = 2.0
    return (ind * W * W).sum()


def traced_value(W, y):
    ind = np.zeros((N, C))
    ind[np.arange(N), y] = W[:, 0]
    return (ind * W).sum()


def _outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except Exception as e:  # noqa: BLE001 - compared with the eager outcome
        return type(e), str(e)


@pytest.mark.parametrize("fun", [onehot, scaled, traced_value])
@pytest.mark.parametrize("transform", [lambda f: f, dg.grad], ids=["f", "grad"])
def test_plain_array_write_matches_eager(fun, transform):
    rng = np.random.default_rng(1)
    g = transform(fun)
    jg = dg.jit(g)
    W = rng.normal(size=(N, C))
    for _ in range(3):  # new labels: a new recording or a replay, never a stale result
        y = rng.integers(0, C, N)
        want, got = _outcome(g, W, y), _outcome(jg, W, y)
        assert want[0] == got[0], (want, got)
        if want[0] == "ok":
            np.testing.assert_allclose(got[1], want[1])
        else:
            assert got[1] == want[1]


def test_plain_array_write_replays_same_labels():
    rng = np.random.default_rng(2)
    f = dg.jit(dg.grad(onehot))
    W, y = rng.normal(size=(N, C)), rng.integers(0, C, N)
    f(W, y)
    f(W + 1.0, y)
    assert f.trace_count == 1
    np.testing.assert_allclose(f(W, y), dg.grad(onehot)(W, y))


def test_a_traced_exponent_replays_and_batches():
    """x ** b with a traced b: power's derivative compares values (graph nodes), so new
    exponents replay one graph and a batch of them vmaps (it guarded on b's value, and
    raised under vmap); x = b = 0 keeps its special case."""
    f = lambda x, b: np.sum(np.abs(x) ** b)
    x = np.array([0.5, -1.5, 2.0])
    g = dg.grad(f, argnums=(0, 1))
    jg = dg.jit(g)
    for b in (1.5, 2.5, 3.5):
        for got, want in zip(jg(x, b), g(x, b)):
            np.testing.assert_allclose(got, want, rtol=1e-13)
    assert jg.trace_count == 1
    bs = np.array([1.5, 2.5])
    np.testing.assert_allclose(dg.vmap(dg.grad(f, argnums=1), in_axes=(None, 0))(x, bs),
                               [dg.grad(f, argnums=1)(x, b) for b in bs], rtol=1e-13)
    h = lambda x, y: np.sum(x ** y)
    z, e = np.array([0.0, 2.0]), np.array([0.0, 3.0])
    for got in (dg.grad(h, argnums=(0, 1))(z, e), dg.jit(dg.grad(h, argnums=(0, 1)))(z, e)):
        np.testing.assert_allclose(got[0], [0.0, 12.0])
        np.testing.assert_allclose(got[1], [0.0, 8.0 * np.log(2.0)])
