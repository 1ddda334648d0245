"""Preallocated outputs, unmodified (issue 23 item 2): ``out = np.zeros(S)`` inside a
transform, then ``out[i] = v`` with a traced ``v``, differentiates as ``like=`` would;
outside transforms, in other threads and in libraries' code, np.zeros is numpy's own."""

import threading

import numpy as np
import pytest

import dualgrad as dg
from dualgrad.numpy import preallocated

ZEROS = np.zeros  # numpy's own function, as imported before any transform ran
RNG = np.random.default_rng(223)


def naive_conv(x, w, b, like):
    """CS231n's conv_forward_naive (pad 1, stride 1), writing into zeros."""
    N, C, H, Wd = x.shape
    F, _, HH, WW = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((N, F, H, Wd), like=x) if like else np.zeros((N, F, H, Wd))
    for n in range(N):
        for f in range(F):
            for i in range(H):
                for j in range(Wd):
                    out[n, f, i, j] = np.sum(x_pad[n, :, i:i + HH, j:j + WW] * w[f]) + b[f]
    return out


def rnn(x, wx, wh, like):
    """tangent's rnn: h[t + 1] = tanh(x[t] wx + h[t] wh), h preallocated."""
    T, D = x.shape
    H = wh.shape[0]
    h = np.zeros((T + 1, H), like=x) if like else np.zeros((T + 1, H))
    for t in range(T):
        h[t + 1] = np.tanh(x[t] @ wx + h[t] @ wh)
    return h


def rows(x, like):
    """Writes of every kind: rows, scalars, +=, slices, an overwrite, ones, full, *_like."""
    out = np.zeros((3, 4), like=x) if like else np.zeros((3, 4))
    out[0] = np.sin(x) * x[0]
    out[1, 2] = x[1] * x[2]
    out[1, 3] += x[3] ** 2
    out[2, :2] = x[:2] * x[2:]
    out[0, 1] = np.exp(x[1])
    scale = np.ones(4, like=x) if like else np.ones(4)
    scale[1:3] *= x[1:3]
    acc = np.full(4, 2.0, like=x) if like else np.full(4, 2.0)
    acc -= x
    z = np.zeros_like(x) if like else np.zeros_like(np.ones(4))
    z[::2] = x[1::2]
    return out * scale + acc + z


X = RNG.standard_normal((1, 2, 4, 4))
W = RNG.standard_normal((2, 2, 3, 3))
B = RNG.standard_normal(2)
XS = RNG.standard_normal((3, 2))
WX, WH = RNG.standard_normal((2, 3)), RNG.standard_normal((3, 3)) * 0.5
XV = np.array([0.3, -1.2, 0.7, 2.1])

# (name, function of (args, like), args)
CASES = [
    ("conv", lambda a, like: np.sum(np.tanh(naive_conv(*a, like))), (X, W, B)),
    ("rnn", lambda a, like: np.sum(rnn(*a, like) ** 2), (XS, WX, WH)),
    ("rows", lambda a, like: np.sum(np.cos(rows(a[0], like))), (XV,)),
]
# like=x needs x differentiated (like= of a constant is a plain array): each transform
# differentiates argument 0, which every case's like= names
TRANSFORMS = {
    "grad": lambda f, a: dg.grad(f, argnums=tuple(range(len(a))))(*a),
    "jvp": lambda f, a: dg.jvp(f, a, tuple(np.ones_like(v) for v in a))[1],
    "jacfwd": lambda f, a: dg.jacfwd(f)(*a),
    "jacrev": lambda f, a: dg.jacrev(f)(*a),
    "hessian": lambda f, a: dg.hessian(f)(*a),
    "vmap_grad": lambda f, a: dg.vmap(dg.grad(f), in_axes=(0, *(None,) * (len(a) - 1)))(
        np.stack([a[0], 2 * a[0]]), *a[1:]),
    "jit_grad": lambda f, a: dg.jit(dg.grad(f))(*a),
}


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
@pytest.mark.parametrize("name, fn, args", CASES, ids=[c[0] for c in CASES])
def test_plain_zeros_equals_like(name, fn, args, transform):
    if transform == "hessian" and name == "conv":
        pytest.skip("a conv hessian in loops is slow; rnn and rows cover it")
    run = TRANSFORMS[transform]
    plain = run(lambda *a: fn(a, False), args)
    like = run(lambda *a: fn(a, True), args)
    for p, q in zip(plain if isinstance(plain, tuple) else (plain,),
                    like if isinstance(like, tuple) else (like,)):
        np.testing.assert_allclose(p, q, rtol=1e-13, atol=1e-14)
    assert np.zeros is ZEROS  # put back after every transform


@pytest.mark.parametrize("name, fn, args", CASES, ids=[c[0] for c in CASES])
def test_weights_only(name, fn, args):
    """The gradient in the last argument alone, where like=x (x held constant) could not."""
    last = len(args) - 1
    got = dg.grad(lambda *a: fn(a, False), argnums=last)(*args)
    want = dg.grad(lambda *a: fn(a, True), argnums=tuple(range(len(args))))(*args)[last]
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)
    got = dg.jit(dg.grad(lambda *a: fn(a, False), argnums=last))(*args)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_conv_gradient_against_conv2d():
    def loss(x, w, b):
        return np.sum(np.tanh(naive_conv(x, w, b, like=False)))
    ref = lambda x, w, b: np.sum(np.tanh(dg.nn.conv2d(x, w, b, padding=1)))
    for g, r in zip(dg.grad(loss, argnums=(0, 1, 2))(X, W, B),
                    dg.grad(ref, argnums=(0, 1, 2))(X, W, B)):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)


def test_jit_replays_the_written_graph():
    f = dg.jit(dg.grad(lambda w: np.sum(rnn(XS, WX, w, like=False) ** 2)))
    g = dg.grad(lambda w: np.sum(rnn(XS, WX, w, like=False) ** 2))
    for k in range(3):
        np.testing.assert_allclose(f(WH * (1 + k)), g(WH * (1 + k)), rtol=1e-12)
    assert f.trace_count == 1


def test_plain_values_behave_as_numpy():
    """Inside a transform, a Preallocated that holds no traced value is the plain array:
    values, views, in-place writes, out=, np.asarray, methods, int arrays plain."""
    seen = {}

    def f(x):
        out = np.zeros((2, 3))
        row = out[0]
        out[0, 1] = 5.0               # a plain write is numpy's: the view sees it
        seen["view"] = row.copy()
        out += 1.0
        np.add(out, 1.0, out=out)
        seen["values"] = np.asarray(out).copy()
        seen["asarray"] = type(np.asarray(out))
        seen["sum"] = out.sum(axis=0)
        seen["repr"] = repr(out)
        seen["int"] = type(np.zeros(3, dtype=int))
        seen["bool"] = type(np.ones(3, bool))
        seen["list"] = out.tolist()
        seen["float"] = float(out[0, 1])
        seen["mat"] = np.ones(3) @ x
        c = out.copy()
        c[1] = x                      # a copy is writable with traced values too
        return np.sum(c * x)
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(dg.grad(f)(x), 2 * x + [7.0, 8.0, 7.0] * np.array([1, 1, 1]) * 0
                               + np.array([2.0, 7.0, 2.0]))
    np.testing.assert_array_equal(seen["view"], [0.0, 5.0, 0.0])
    np.testing.assert_array_equal(seen["values"], [[2.0, 7.0, 2.0], [2.0, 2.0, 2.0]])
    assert seen["asarray"] is np.ndarray and seen["int"] is np.ndarray
    assert seen["bool"] is np.ndarray
    np.testing.assert_array_equal(seen["sum"], [4.0, 9.0, 4.0])
    assert seen["repr"] == repr(np.array([[2.0, 7.0, 2.0], [2.0, 2.0, 2.0]]))
    assert seen["list"] == [[2.0, 7.0, 2.0], [2.0, 2.0, 2.0]] and seen["float"] == 7.0


def test_outside_transforms_numpy_is_numpy():
    assert np.zeros is ZEROS and type(np.zeros(2)) is np.ndarray
    dg.grad(lambda x: np.sum(np.zeros(3) + x))(np.ones(3))
    assert np.zeros is ZEROS and type(np.zeros(2)) is np.ndarray
    with pytest.raises(ZeroDivisionError):
        dg.grad(lambda x: 1 // 0)(1.0)
    assert np.zeros is ZEROS  # put back when the function raises too


def test_other_threads_get_numpy_arrays():
    inside, done, got = threading.Event(), threading.Event(), {}

    def f(x):
        inside.set()
        done.wait(10)
        out = np.zeros(3)
        out[:] = x
        return out.sum()

    def transform():
        got["grad"] = dg.grad(f)(np.ones(3))
    t = threading.Thread(target=transform)
    t.start()
    assert inside.wait(10)
    got["other"] = type(np.zeros(3))  # this thread runs no transform
    done.set()
    t.join(10)
    assert got["other"] is np.ndarray
    np.testing.assert_array_equal(got["grad"], np.ones(3))
    assert np.zeros is ZEROS


def test_many_threads_at_once():
    def f(x):
        out = np.zeros(4)
        for i in range(4):
            out[i] = x[i] * x[(i + 1) % 4]
        return out.sum()
    x = np.arange(1.0, 5.0)
    want = dg.grad(f)(x)
    errors = []

    def work():
        try:
            for _ in range(30):
                np.testing.assert_allclose(dg.grad(f)(x), want)
                assert type(ZEROS(2)) is np.ndarray
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and np.zeros is ZEROS


def test_library_code_gets_plain_arrays():
    assert not preallocated._users_code(np.__file__)
    assert not preallocated._users_code(preallocated.__file__)
    assert not preallocated._users_code(threading.__file__)
    assert preallocated._users_code(__file__) and preallocated._users_code("<stdin>")
    seen = {}

    def f(x):
        seen["pad"] = type(np.pad(np.ones(2), 1))  # numpy's own code makes its arrays
        return np.sum(x)
    dg.grad(f)(np.ones(2))
    assert seen["pad"] is np.ndarray


def test_c_code_gets_numpy_arrays():
    """numpy's generators (Cython) call np.empty from the user's line and fill its memory
    directly: they must get a real ndarray, so the numbers are numpy's."""
    seen = {}

    def f(x):
        e = np.random.default_rng(5).standard_normal(4)
        seen["type"] = type(e)
        seen["e"] = e
        alias = np.zeros
        seen["alias"] = type(alias(2))  # called through another name: still the user's
        return np.sum(x * e)
    g = dg.grad(f)(np.ones(4))
    want = np.random.default_rng(5).standard_normal(4)
    assert seen["type"] is np.ndarray
    np.testing.assert_array_equal(seen["e"], want)
    np.testing.assert_array_equal(g, want)
    assert seen["alias"] is preallocated.Preallocated


def test_nested_transforms_and_weights_only():
    def f(w, x):
        h = np.zeros(3)
        for i in range(3):
            h[i] = np.sin(w * x[i])
        return np.sum(h ** 2)
    x = np.array([0.5, -1.0, 2.0])
    d2 = dg.grad(dg.grad(f))(0.7, x)
    want = np.sum(2 * x ** 2 * np.cos(2 * 0.7 * x))  # d2/dw2 sum sin(w x)^2
    np.testing.assert_allclose(d2, want, rtol=1e-12)
    np.testing.assert_allclose(dg.grad(f, argnums=1)(0.7, x),
                               0.7 * np.sin(2 * 0.7 * x), rtol=1e-12)


def test_full_of_a_traced_value():
    f = lambda x: np.sum(np.full((2, 2), x) * np.arange(4.0).reshape(2, 2))
    assert dg.grad(f)(1.5) == 6.0
    g = lambda x: np.sum(np.full_like(np.ones(3), x) ** 2)
    assert dg.grad(g)(2.0) == 12.0


@pytest.mark.parametrize("use", [
    lambda a, w: w * a, lambda a, w: a * w, lambda a, w: np.multiply(a, w),
    lambda a, w: np.dot(a, w), lambda a, w: a.dot(w), lambda a, w: a @ w,
    lambda a, w: np.sum(a.T * w), lambda a, w: np.sum(a[:2] * w[:2]),
    lambda a, w: np.stack([a, w]).sum(), lambda a, w: np.sum(a.reshape(3) * w),
], ids=["rmul", "mul", "ufunc", "np.dot", "a.dot", "matmul", "T", "view", "stack",
        "reshape"])
def test_a_later_plain_write_does_not_change_the_derivative(use):
    """A plain array used beside a traced value, then written in place (numpy's write):
    the derivative reads the value it had when used."""
    def f(w):
        a = np.ones(3)
        y = use(a, w)
        a[:] = 9.0        # after the use: must not reach the derivative
        a[0] = 5.0
        return np.sum(y)
    w = np.array([0.5, -1.0, 2.0])
    ref = dg.grad(lambda w: np.sum(use(np.ones(3, like=w), w)))(w)
    np.testing.assert_allclose(dg.grad(f)(w), ref, rtol=1e-15)
    np.testing.assert_allclose(dg.jacfwd(f)(w), ref, rtol=1e-15)


def test_numba_compiles_numpy_creation_during_and_after_transforms():
    """numba compiling np.empty while a transform runs (its first compile in the process,
    a kernel tuned on first use, the user's own @njit) and after: both see numpy's
    functions (a fresh process: numba registers them at its first compile)."""
    import subprocess
    import sys
    code = """if True:
        import numpy as np, dualgrad as dg
        from numba import njit
        @njit
        def fill(n):
            out = np.zeros(n)
            for i in range(n):
                out[i] = i
            return out
        print(dg.grad(lambda x: np.sum(fill(3) * x))(np.ones(3)).tolist())
        @njit
        def mask(n):
            return np.empty((n, 2), np.bool_).shape[0] + np.full_like(np.ones(2), 2.0).sum()
        print(mask(3))
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[0.0,", "1.0,", "2.0]", "7.0"]


def test_without_source_the_write_error_is_dualgrads():
    """Code dualgrad cannot read (python -c) keeps numpy's arrays; a traced write into one
    is dualgrad's TypeError saying the like= fix, not numpy's bare ValueError."""
    import subprocess
    import sys
    code = ("import numpy as np, dualgrad as dg\n"
            "def f(x):\n"
            "    out = np.zeros(3)\n"
            "    out[0] = x[0] * 2.0\n"
            "    return out.sum()\n"
            "dg.grad(f)(np.ones(3))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("TypeError: dualgrad: a traced value was written into a plain")
    assert "like=x" in last
