"""The backend seam: every kernel against its numpy reference, and every numpy
reference against an independent definition (naive loops, math, finite differences).

Parametrized over backends and dtypes.  Under the numba backend the kernel
choice is forced (``backend.ALWAYS_NUMBA``) so the compiled kernels run even on
tiny inputs; one test per family also runs the measured choice on a large input.
``NUMBA_DISABLE_JIT=1 pytest tests/test_kernels.py`` runs the kernels as plain
Python (large shapes are then skipped).

Portable on every x86-64 CPU: numba's libm and numpy's SIMD loops (AVX2, AVX-512:
numpy picks one at run time) round transcendental functions differently, so two
implementations of one are compared to a few ulps (``ulp_close``), never bitwise.
Bitwise equality is asserted only where both sides run the same arithmetic in the
same order (scatter-adds, im2col/col2im around the same BLAS call, pooling).
"""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from cases import INDEPENDENT, sample, ulp_close

import dualgrad as dg
from dualgrad import backend

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")
HAVE_NUMBA = backend._kernels() is not None
BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    not HAVE_NUMBA, reason="numba not importable"))]
DTYPES = [np.float32, np.float64]
FORCE_NUMBA = backend.ALWAYS_NUMBA
large = pytest.mark.skipif(NO_JIT, reason="large shapes are too slow without the JIT")


@pytest.fixture(params=BACKENDS)
def bk(request, monkeypatch):
    """Run the test under one backend, with the kernel choice forced so numba always runs."""
    for name, value in FORCE_NUMBA.items():
        monkeypatch.setattr(backend, name, value)
    with backend.use_backend(request.param):
        yield request.param


def on_both(fn, *args, **kw):
    """fn(*args) under numpy and under numba (forced): (numpy result, numba result)."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in FORCE_NUMBA.items():
            mp.setattr(backend, name, value)
        with backend.use_backend("numpy"):
            ref = fn(*args, **kw)
        with backend.use_backend("numba"):
            got = fn(*args, **kw)
    return ref, got


def rng(seed=0):
    return np.random.default_rng(seed)


def tol(dtype):
    return dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-15)


needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="numba not importable")


# ---------------------------------------------------------------------------
# Selection

def test_backend_names_are_checked():
    with pytest.raises(ValueError, match=r"set_backend\(name\).*'numpy', 'numba'.*'cuda'"):
        backend.set_backend("cuda")
    with pytest.raises(ValueError, match=r"use_backend\(name\)"):
        with backend.use_backend("torch"):
            pass


def test_use_backend_restores_on_error():
    before = backend.get_backend()
    with pytest.raises(RuntimeError):
        with backend.use_backend("numpy"):
            assert backend.get_backend() == "numpy"
            raise RuntimeError
    assert backend.get_backend() == before


def test_env_var(monkeypatch):
    monkeypatch.setitem(backend._state, "name", None)
    monkeypatch.setenv("DUALGRAD_BACKEND", "numpy")
    assert backend.get_backend() == "numpy"
    monkeypatch.setitem(backend._state, "name", None)
    monkeypatch.setenv("DUALGRAD_BACKEND", "fortran")
    with pytest.raises(ValueError, match="DUALGRAD_BACKEND.*'numpy', 'numba'"):
        backend.get_backend()
    monkeypatch.setitem(backend._state, "name", None)
    monkeypatch.delenv("DUALGRAD_BACKEND")
    assert backend.get_backend() == ("numba" if HAVE_NUMBA else "numpy")


def test_works_without_numba():
    code = ("import sys; sys.modules['numba'] = None\n"
            "import numpy as np\n"
            "from dualgrad import backend\n"
            "assert backend.get_backend() == 'numpy'\n"
            "y, d = backend.unary_with_grad('sin', np.ones(5000))\n"
            "assert np.allclose(d, np.cos(1.0))\n"
            "try:\n"
            "    backend.set_backend('numba')\n"
            "except ImportError as e:\n"
            "    print('ok', e)\n")
    env = {k: v for k, v in os.environ.items() if k != "DUALGRAD_BACKEND"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=root, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok") and "numba" in res.stdout


# ---------------------------------------------------------------------------
# Elementwise: UNARY rows

NAMES = sorted(backend.UNARY)


def test_table_is_complete():
    assert set(INDEPENDENT) == set(backend.UNARY)


@pytest.mark.parametrize("name", NAMES)
def test_unary_matches_independent_definition(bk, name):
    f, df, _ = INDEPENDENT[name]
    x = sample(name, (3, 7), np.float64)
    y, dy = backend.unary_with_grad(name, x)
    assert y.dtype == dy.dtype == np.float64 and y.shape == dy.shape == x.shape
    np.testing.assert_allclose(y, np.vectorize(f)(x), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dy, np.vectorize(df)(x), rtol=1e-12, atol=1e-15)
    ulp_close(backend.unary(name, x), y)  # the value-only loop: same function, own pass
    h = 1e-6  # and the derivative is the derivative of the value
    fd = (backend.unary(name, x + h) - backend.unary(name, x - h)) / (2 * h)
    np.testing.assert_allclose(dy, fd, rtol=1e-6, atol=1e-6)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_unary_numba_matches_numpy(name, dtype):
    x = sample(name, (5, 9), dtype, seed=1)
    cases = [x, x[:, ::2], x.T, x[0], x[:0], x[:1, :1], np.asarray(x[2, 3])]
    for xi in cases:
        (y0, d0), (y1, d1) = on_both(backend.unary_with_grad, name, xi)
        assert y1.dtype == d1.dtype == dtype and y1.shape == d1.shape == xi.shape
        np.testing.assert_allclose(y1, y0, **tol(dtype))
        np.testing.assert_allclose(d1, d0, **tol(dtype))
        v0, v1 = on_both(backend.unary, name, xi)
        np.testing.assert_allclose(v1, v0, **tol(dtype))
        assert v1.shape == xi.shape and v1.dtype == dtype


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_unary_numba_trig_beyond_vecmath_limits(name, dtype):
    """The numba rows of sin and cos compute with kernels/vecmath.py, accurate below
    LIMITS only: entries beyond (and at) the limit take the reference row, serial kernel and
    parallel twin alike."""
    from dualgrad.kernels.vecmath import LIMITS

    from dualgrad.backend import numba_ops
    lim = LIMITS[name]
    x = np.array([0.5, -3.0, lim * (1 - 1e-7), lim, -lim, 1e7, -3e9, 1e300, np.inf, -np.inf,
                  np.nan, 0.0, -0.0], dtype=dtype)
    x = np.concatenate([x, np.linspace(-10, 10, 50, dtype=dtype)])
    f, df = {"sin": (np.sin, np.cos), "cos": (np.cos, lambda v: -np.sin(v))}[name]
    with np.errstate(invalid="ignore"):
        want_y, want_d = f(x), df(x)
    for parallel in (False, True):
        y, d = np.empty_like(x), np.empty_like(x)
        numba_ops.unary_kernel(name, parallel)(x, y, d, True)
        ulp_close(y, want_y, dtype=dtype)
        ulp_close(d, want_d, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu", "log"])
def test_unary_jvp_batched(bk, name, dtype):
    x = sample(name, (4, 6), dtype)
    for t in [rng(2).standard_normal((3, 4, 6)).astype(dtype),       # k = 3 directions
              rng(3).standard_normal((4, 6)).astype(dtype),          # no batch axis
              rng(4).standard_normal((2, 6, 4)).astype(dtype).transpose(0, 2, 1),
              rng(5).standard_normal((2, 1, 4, 6)).astype(dtype)]:   # two batch axes
        y, ty = backend.unary_jvp(name, x, t)
        y2, d = backend.unary_with_grad(name, x)
        assert ty.shape == t.shape and ty.dtype == dtype
        np.testing.assert_array_equal(y, y2)
        np.testing.assert_allclose(ty, t * d, **tol(dtype))


def test_unary_jvp_mixed_dtypes(bk):
    x = np.linspace(-1, 1, 7)
    y, ty = backend.unary_jvp("sin", x.astype(np.float32), x[None])  # float64 tangent
    assert ty.dtype == np.float64 and ty.shape == (1, 7)
    np.testing.assert_allclose(ty[0], x * np.cos(x), rtol=1e-6)


def test_unary_special_values(bk):
    x = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0, np.inf, -np.inf])
    y, d = backend.unary_with_grad("softplus", x)
    # closed forms through math (one libm), compared to a few ulps: the kernel's exp and
    # log1p are numba's or numpy's (SIMD on AVX2 / AVX-512), which round differently
    ulp_close(y, [0.0, math.log1p(math.exp(-40.0)), math.log(2), 40.0, 1000.0, np.inf, 0.0],
              scale=0.0)
    ulp_close(d, [0.0, 1 / (1 + math.exp(40.0)), 0.5, 1 / (1 + math.exp(-40.0)), 1.0, 1.0,
                  0.0], scale=0.0)
    assert y[0] == 0 and y[6] == 0 and d[0] == 0 and d[6] == 0 and d[5] == 1  # exact limits
    y, d = backend.unary_with_grad("sigmoid", x)
    assert y[0] == 0 and y[4] == 1 and d[0] == 0 and d[4] == 0 and not np.isnan(d).any()
    y, d = backend.unary_with_grad("relu", np.array([-1.0, -0.0, 0.0, 1e-300, np.nan]))
    np.testing.assert_array_equal(d, [0, 0, 0, 1, 0])
    assert np.isnan(y[-1])
    y, d = backend.unary_with_grad("abs", np.array([-2.0, 0.0, 3.0]))
    np.testing.assert_array_equal(d, [-1, 0, 1])
    # sqrt' at 0 is the zero subgradient (as PyTorch's norm), not inf; 1/(2 sqrt x) elsewhere
    with np.errstate(invalid="ignore"):
        y, d = backend.unary_with_grad("sqrt", np.array([0.0, -0.0, 4.0, 0.25, np.inf, -1.0]))
    assert d[0] == 0 and d[1] == 0 and not np.signbit(d[:2]).any()
    assert d[2] == 0.25 and d[3] == 1.0 and d[4] == 0 and np.isnan(d[5])
    for dt in DTYPES:
        y, d = backend.unary_with_grad("sqrt", np.array([0.0, 1.0, 16.0], dt))
        assert d.dtype == dt and d.tolist() == [0.0, 0.5, 0.125]
    with np.errstate(over="ignore"):
        y, d = backend.unary_with_grad("exp", np.array([1000.0]))
    assert np.isinf(y[0]) and np.isinf(d[0])


def test_unary_unknown_name(bk):
    for fn, args in [(backend.unary, ()), (backend.unary_with_grad, ()),
                     (backend.unary_jvp, (np.ones(3),))]:
        with pytest.raises(ValueError, match="'erf'.*must be one of|must be one of.*'erf'"):
            fn("erf", np.ones(3), *args)


@needs_numba
@large
@pytest.mark.parametrize("name", ["sin", "tanh", "sigmoid", "softplus"])
def test_unary_large_measured_choice(name):
    x = sample(name, 10**5, np.float64)
    with backend.use_backend("numba"):
        y1, d1 = backend.unary_with_grad(name, x)
        v1 = backend.unary(name, x)
    with backend.use_backend("numpy"):
        y0, d0 = backend.unary_with_grad(name, x)
    np.testing.assert_allclose(y1, y0, **tol(np.float64))
    np.testing.assert_allclose(d1, d0, **tol(np.float64))
    ulp_close(v1, y1)  # the value and value+grad calls may take different paths


# ---------------------------------------------------------------------------
# index_add: the VJP of a gather

def add_at(shape, dtype, index, values):
    out = np.zeros(shape, dtype)
    np.add.at(out, index, values)
    return out


def naive_rows(shape, idx, values):
    out = np.zeros(shape)
    for pos in np.ndindex(idx.shape):
        out[idx[pos]] += values[pos]
    return out


GATHERS = [  # (table shape, index shape)
    ((10, 4), (25,)), ((10,), (25,)), ((7, 3, 2), (4, 5)), ((1, 3), (6,)), ((5, 3), (0,)),
    ((5, 0), (3,)), ((0, 3), (0,)), ((6, 2), ()),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,ishape", GATHERS)
def test_index_add_gather(bk, dtype, shape, ishape):
    r = rng(7)
    idx = r.integers(-shape[0], shape[0], ishape) if shape[0] else np.zeros(ishape, int)
    values = r.standard_normal(ishape + shape[1:]).astype(dtype)
    out = backend.index_add(shape, dtype, idx, values)
    assert out.shape == shape and out.dtype == dtype
    np.testing.assert_array_equal(out, add_at(shape, dtype, idx, values))  # bitwise
    np.testing.assert_array_equal(backend.index_add(shape, dtype, (idx,), values), out)
    np.testing.assert_allclose(out, naive_rows(shape, idx, values.astype(np.float64)),
                               rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-6)


def test_index_add_repeats_and_negatives(bk):
    idx = np.array([2, -1, 2, 2, 0, -3, 4])   # -1 is 4 and -3 is 2 in a table of 5
    out = backend.index_add((5, 2), np.float64, idx, np.arange(14.0).reshape(7, 2))
    np.testing.assert_array_equal(out, [[8, 9], [0, 0], [0 + 4 + 6 + 10, 1 + 5 + 7 + 11],
                                        [0, 0], [2 + 12, 3 + 13]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_index_add_batched_strided_and_other_indices(bk, dtype):
    r = rng(8)
    idx = r.integers(-6, 6, (9,))
    cases = [  # (shape, index, values): batched, strided values, trailing slices, others
        ((3, 6, 4), (slice(None), idx), r.standard_normal((3, 9, 4))),
        ((6, 4), (idx, slice(None)), r.standard_normal((4, 9)).T),
        ((6, 4), (idx, Ellipsis), r.standard_normal((18, 4))[::2]),
        ((6, 4), idx.astype(np.int32), r.standard_normal((9, 4))),
        ((6, 4), idx.astype(np.int8), r.standard_normal((9, 4))),
        ((4, 6), (slice(None), idx), r.standard_normal((4, 9))),
        ((6, 4), (idx, idx % 4), r.standard_normal(9)),
        ((6, 4), (slice(1, 3), idx[:3] % 4), r.standard_normal((2, 3))),
        ((6, 4), r.standard_normal((6, 4)) > 0, 1.5),
        ((6, 4), (Ellipsis, 2), r.standard_normal(6)),
        ((6, 4), idx, 2.0),                                  # broadcast values
        ((6, 4), (None, idx), r.standard_normal((1, 9, 4))),
    ]
    for shape, index, values in cases:
        values = np.asarray(values, dtype)
        out = backend.index_add(shape, dtype, index, values)
        np.testing.assert_array_equal(out, add_at(shape, dtype, index, values))


def test_index_add_integer_table(bk):
    out = backend.index_add((3,), np.int64, np.array([0, 0, 2]), np.array([1, 2, 3]))
    assert out.dtype == np.int64 and out.tolist() == [3, 0, 3]


@pytest.mark.parametrize("bad", [5, -6, 100])
def test_index_add_out_of_bounds(bk, bad):
    idx = np.array([0, bad, 1])
    with pytest.raises(IndexError, match=f"index {bad} is out of bounds for axis 0 with size 5"):
        backend.index_add((5, 2), np.float64, idx, np.ones((3, 2)))
    with pytest.raises(IndexError):
        np.add.at(np.zeros((5, 2)), idx, np.ones((3, 2)))


def counting(monkeypatch, module, *names):
    """A list that gets a 1 on every call of ``module``'s kernels ``names`` (still run)."""
    calls = []
    for name in names:
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, real=real: calls.append(1) or real(*a))
    return calls


@needs_numba
def test_index_add_uses_the_kernel(monkeypatch):
    """The measured rule decides: numba inside its size range, numpy outside or if None."""
    calls = counting(monkeypatch, backend._kernels().scatter, "index_add_rows")
    want = add_at((100, 8), np.float64, np.arange(100) % 7, np.ones((100, 8)))
    for rule, used in [((0, None), [1]), (None, []), ((1024, None), []), ((0, 512), []),
                       ((800, 800), [1])]:
        monkeypatch.setitem(backend.TUNED.rules, "index_add.rows/d", rule)
        calls.clear()
        with backend.use_backend("numba"):
            out = backend.index_add((100, 8), np.float64, np.arange(100) % 7, np.ones((100, 8)))
        assert calls == used, rule
        np.testing.assert_array_equal(out, want)


# -- where: numpy's values by a select loop ---------------------------------------------

def _where_cases(dtype):
    """(name, c, x, y, kernel runs): np.where's arguments, the select kernel's own cases
    and the ones it leaves to numpy."""
    r = rng(3)
    x = r.standard_normal((6, 7)).astype(dtype)
    y = r.standard_normal((6, 7)).astype(dtype)
    x.flat[:6] = [np.nan, np.inf, -np.inf, -0.0, 0.0, np.finfo(dtype).tiny / 2]
    c = r.standard_normal((6, 7)) > 0
    other = np.float64 if dtype == np.float32 else np.float32
    return [
        ("array, scalar", c, x, 0.0, True), ("scalar, array", c, 0.0, y, True),
        ("arrays", c, x, y, True), ("-0.0", c, x, -0.0, True), ("int scalar", c, 3, y, True),
        ("inf scalar", c, x, -np.inf, True), ("all true", np.ones_like(c), x, y, True),
        ("all false", np.zeros_like(c), x, 1.0, True),
        ("nan scalar", c, x, np.nan, False), ("inexact scalar", c, x, 0.1, dtype == np.float64),
        ("strided", c[:, ::2], x[:, ::2], 0.0, False), ("broadcast", c, x[0], y, False),
        ("int condition", c.astype(int), x, y, False),
        ("mixed dtypes", c, x, y.astype(other), False),
        ("two scalars", c, 1.0, 2.0, False), ("empty", c[:0], x[:0], 0.0, True),
    ]


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_where_matches_numpy(dtype, monkeypatch):
    """backend.where (the where row's impl) is np.where bit for bit, signs of zeros and
    nans included, and its select kernel runs exactly where it claims to."""
    calls = counting(monkeypatch, backend._kernels().elementwise,
                     "select", "select_else", "select_then")
    for name, c, x, y, runs in _where_cases(dtype):
        calls.clear()
        want = np.where(c, x, y)
        ref, got = on_both(backend.where, c, x, y)
        for out in (ref, got):
            assert out.dtype == want.dtype, name
            np.testing.assert_array_equal(out, want, err_msg=name)
            np.testing.assert_array_equal(np.signbit(out), np.signbit(want), err_msg=name)
        assert bool(calls) == runs, name


@needs_numba
def test_where_follows_the_measured_rule(monkeypatch):
    """Unforced, the measured rule decides between the select loop and numpy's where."""
    calls = counting(monkeypatch, backend._kernels().elementwise, "select_else")
    c, x = rng(4).standard_normal(1000) > 0, rng(5).standard_normal(1000)
    for rule, used in [((0, None), [1]), (None, []), ((2000, None), [])]:
        monkeypatch.setitem(backend.TUNED.rules, "where/d", rule)
        calls.clear()
        with backend.use_backend("numba"):
            np.testing.assert_array_equal(backend.where(c, x, 0.0), np.where(c, x, 0.0))
        assert calls == used, rule


@needs_numba
@large
@pytest.mark.parametrize("dtype", DTYPES)
def test_index_add_large(dtype):
    r = rng(9)
    idx = r.integers(-2000, 2000, 10**5)
    values = r.standard_normal((10**5, 16)).astype(dtype)
    with backend.use_backend("numba"):
        got = backend.index_add((2000, 16), dtype, idx, values)
    np.testing.assert_array_equal(got, add_at((2000, 16), dtype, idx, values))
    with backend.use_backend("numpy"):
        np.testing.assert_array_equal(backend.index_add((2000, 16), dtype, idx, values), got)


# ---------------------------------------------------------------------------
# softmax, log_softmax, logsumexp

def naive_logsumexp(row):
    row = [float(v) for v in row]
    m = max(row)
    return m + math.log(math.fsum(math.exp(v - m) for v in row))


SHAPES_AXES = [((4, 7), -1), ((4, 7), 1), ((4, 7), 0), ((2, 3, 5), 1), ((6,), 0), ((1, 1), -1),
               ((3, 1), 0), ((5, 1), -2), ((0, 4), -1), ((130,), -1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
def test_softmax_family_definitions(bk, dtype, shape, axis):
    x = (rng(11).standard_normal(shape) * 3).astype(dtype)
    t = dict(rtol=2e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-16)
    moved = np.moveaxis(x, axis, -1).astype(np.float64)
    lse = np.array([naive_logsumexp(r) for r in moved.reshape(-1, moved.shape[-1])])
    lse = lse.reshape(moved.shape[:-1])
    got = backend.logsumexp(x, axis=axis)
    assert got.dtype == dtype and np.shape(got) == lse.shape
    np.testing.assert_allclose(got, lse, **t)
    kd = backend.logsumexp(x, axis=axis, keepdims=True)
    np.testing.assert_allclose(kd, np.expand_dims(lse, axis), **t)
    sm = backend.softmax(x, axis=axis)
    assert sm.dtype == dtype and sm.shape == x.shape
    np.testing.assert_allclose(sm, np.exp(x.astype(np.float64) - np.expand_dims(lse, axis)), **t)
    ls = backend.log_softmax(x, axis=axis)
    np.testing.assert_allclose(ls, x.astype(np.float64) - np.expand_dims(lse, axis),
                               rtol=t["rtol"], atol=t["rtol"] * 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_all_axes(bk, dtype):
    x = (rng(12).standard_normal((3, 4, 5)) * 10).astype(dtype)
    got = backend.logsumexp(x)
    assert np.ndim(got) == 0 and got.dtype == dtype
    np.testing.assert_allclose(got, naive_logsumexp(x.ravel()), rtol=2e-7 if dtype == np.float32
                               else 1e-14)
    assert backend.logsumexp(x, keepdims=True).shape == (1, 1, 1)
    np.testing.assert_allclose(backend.logsumexp(x, axis=(0, 2)),
                               [naive_logsumexp(x[:, j].ravel()) for j in range(4)],
                               rtol=1e-6 if dtype == np.float32 else 1e-14)
    assert backend.logsumexp(np.zeros((2, 0)), axis=1).tolist() == [-np.inf, -np.inf]
    assert backend.logsumexp(np.zeros(0)) == -np.inf


SPECIAL_ROWS = np.array([
    [1000.0, 999.0, -1000.0], [1e308, 1e308, 0.0], [-np.inf, -np.inf, -np.inf],
    [-np.inf, 0.0, 1.0], [np.inf, 1.0, 2.0], [np.nan, 1.0, 2.0], [np.inf, -np.inf, 0.0],
    [-1e308, -1e308, -np.inf]])


def test_softmax_special_values_follow_scipy(bk):
    special = pytest.importorskip("scipy.special")
    x = SPECIAL_ROWS
    with np.errstate(all="ignore"):
        for ours, theirs in [(backend.softmax, special.softmax),
                             (backend.log_softmax, special.log_softmax),
                             (backend.logsumexp, special.logsumexp)]:
            np.testing.assert_allclose(ours(x, axis=-1), theirs(x, axis=-1), rtol=1e-14)
        lse = backend.logsumexp(x, axis=1)
        assert np.isfinite(backend.softmax(x, -1)[:2]).all()
    ulp_close(lse[0], 1000 + math.log1p(math.exp(-1.0)))  # another log/exp: a few ulps
    assert lse[2] == -np.inf and lse[4] == np.inf
    assert np.isnan(lse[5]) and lse[1] == 1e308 + np.log(2)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_family_numba_matches_numpy(dtype):
    x = (rng(13).standard_normal((6, 11)) * 5).astype(dtype)
    g = rng(14).standard_normal((6, 11)).astype(dtype)
    # float32 log-space outputs cancel (x - max - log(sum)): absolute error ~ eps * |x|
    t = dict(rtol=2e-6, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-14)
    ln = lambda a, b: backend.logsumexp(a, axis=-1, keepdims=b)
    for xi in [x, x[:, ::2], x.T, x[:0]]:
        for fn in [backend.softmax, backend.log_softmax, lambda a: ln(a, False),
                   lambda a: ln(a, True), backend.logsumexp]:
            r0, r1 = on_both(fn, xi)
            assert r1.dtype == r0.dtype and np.shape(r1) == np.shape(r0)
            np.testing.assert_allclose(r1, r0, **t)
    with np.errstate(all="ignore"):
        for fn in [backend.softmax, backend.log_softmax, lambda a: backend.logsumexp(a, -1)]:
            r0, r1 = on_both(fn, SPECIAL_ROWS.astype(dtype))
            np.testing.assert_allclose(r1, r0, rtol=t["rtol"])
    for vjp, fwd in [(backend.softmax_vjp, backend.softmax),
                     (backend.log_softmax_vjp, backend.log_softmax)]:
        y = fwd(x)
        r0, r1 = on_both(vjp, g, y, -1)
        np.testing.assert_allclose(r1, r0, **t)
    ans = backend.logsumexp(x, axis=-1)
    r0, r1 = on_both(backend.logsumexp_vjp, g[:, 0], x, ans, -1, False)
    np.testing.assert_allclose(r1, r0, **t)
    ans = backend.logsumexp(x)
    r0, r1 = on_both(backend.logsumexp_vjp, np.asarray(2.0, dtype), x, ans, None, False)
    np.testing.assert_allclose(r1, r0, **t)


@pytest.mark.parametrize("shape,axis", [((4, 7), -1), ((4, 7), 0), ((2, 3, 5), 1), ((5,), 0)])
def test_softmax_family_vjps_are_transposed_jacobians(bk, shape, axis):
    r = rng(15)
    x, g = r.standard_normal(shape), r.standard_normal(shape)
    y = backend.softmax(x, axis)
    xm, gm, ym = (np.moveaxis(a, axis, -1) for a in (x, g, y))
    want_sm, want_ls = np.empty_like(xm), np.empty_like(xm)
    for pos in np.ndindex(xm.shape[:-1]):
        s = ym[pos]
        J = np.diag(s) - np.outer(s, s)                 # d softmax / dx
        want_sm[pos] = J.T @ gm[pos]
        J = np.eye(len(s)) - np.outer(np.ones(len(s)), s)  # d log_softmax / dx
        want_ls[pos] = J.T @ gm[pos]
    np.testing.assert_allclose(backend.softmax_vjp(g, y, axis), np.moveaxis(want_sm, -1, axis),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(backend.log_softmax_vjp(g, backend.log_softmax(x, axis), axis),
                               np.moveaxis(want_ls, -1, axis), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("axis,keepdims", [(-1, False), (0, True), (1, False), (None, False),
                                           (None, True), ((0, 2), False)])
def test_logsumexp_vjp_finite_differences(bk, axis, keepdims):
    r = rng(16)
    x = r.standard_normal((3, 4, 2))
    ans = backend.logsumexp(x, axis, keepdims)
    g = r.standard_normal(np.shape(ans))
    got = backend.logsumexp_vjp(g, x, ans, axis, keepdims)
    assert got.shape == x.shape
    h, fd = 1e-6, np.empty_like(x)
    for pos in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[pos] = h
        fd[pos] = np.sum(g * (backend.logsumexp(x + e, axis, keepdims)
                              - backend.logsumexp(x - e, axis, keepdims))) / (2 * h)
    np.testing.assert_allclose(got, fd, rtol=1e-7, atol=1e-8)
    gb = np.stack([g, 2 * g])                            # a batch of two cotangents
    np.testing.assert_allclose(backend.logsumexp_vjp(gb, x, ans, axis, keepdims),
                               np.stack([got, 2 * got]), rtol=1e-14)


@needs_numba
@large
def test_softmax_large_measured_choice():
    x = rng(17).standard_normal((100, 1000)) * 30
    with backend.use_backend("numba"):
        got = (backend.softmax(x), backend.log_softmax(x), backend.logsumexp(x, -1))
    with backend.use_backend("numpy"):
        want = (backend.softmax(x), backend.log_softmax(x), backend.logsumexp(x, -1))
    for a, b in zip(got, want):  # log-space values near 0 cancel: absolute error ~ eps * |x|
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-300 if a is got[0] else 1e-12)


# ---------------------------------------------------------------------------
# conv2d

def naive_conv(x, w, s, p, d):
    N, C, H, W = x.shape
    Co, _, kh, kw = w.shape
    Ho = (H + 2 * p[0] - d[0] * (kh - 1) - 1) // s[0] + 1
    Wo = (W + 2 * p[1] - d[1] * (kw - 1) - 1) // s[1] + 1
    out = np.zeros((N, Co, Ho, Wo))
    for n in range(N):
        for o in range(Co):
            for i in range(Ho):
                for j in range(Wo):
                    for c in range(C):
                        for a in range(kh):
                            for b in range(kw):
                                ih, iw = i * s[0] + a * d[0] - p[0], j * s[1] + b * d[1] - p[1]
                                if 0 <= ih < H and 0 <= iw < W:
                                    out[n, o, i, j] += x[n, c, ih, iw] * w[o, c, a, b]
    return out


GEOMETRIES = [  # (x shape, w shape, stride, padding, dilation)
    ((2, 3, 5, 6), (4, 3, 3, 2), (1, 1), (0, 0), (1, 1)),
    ((2, 3, 5, 6), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1)),
    ((1, 2, 7, 8), (3, 2, 3, 3), (2, 3), (1, 2), (1, 1)),
    ((2, 2, 7, 9), (2, 2, 2, 3), (1, 2), (2, 0), (2, 3)),
    ((1, 2, 6, 9), (2, 2, 2, 3), (2, 1), (1, 3), (1, 2)),   # width: stride 1, dilated
    ((1, 1, 4, 4), (1, 1, 1, 1), (1, 1), (0, 0), (1, 1)),
    ((1, 1, 3, 3), (2, 1, 3, 3), (1, 1), (0, 0), (1, 1)),   # 1x1 output
    ((1, 2, 3, 4), (2, 2, 2, 2), (5, 5), (1, 1), (1, 1)),   # stride past the input
    ((0, 3, 5, 5), (2, 3, 3, 3), (1, 1), (1, 1), (1, 1)),   # empty batch
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,s,p,d", GEOMETRIES)
def test_conv2d_naive_and_adjoint(bk, dtype, xs, ws, s, p, d):
    r = rng(20)
    x, w = r.standard_normal(xs).astype(dtype), r.standard_normal(ws).astype(dtype)
    out = backend.conv2d(x, w, s, p, d)
    want = naive_conv(x.astype(np.float64), w.astype(np.float64), s, p, d)
    assert out.shape == want.shape and out.dtype == dtype
    t = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(out, want, **t)
    g = r.standard_normal(out.shape).astype(dtype)
    gx = backend.conv2d_grad_input(g, w, x.shape, s, p, d)
    gw = backend.conv2d_grad_weight(g, x, w.shape, s, p, d)
    assert gx.shape == x.shape and gw.shape == w.shape and gx.dtype == gw.dtype == dtype
    # <conv(x, w), g> = <x, grad_input(g)> = <w, grad_weight(g)>
    lhs = np.vdot(want, g.astype(np.float64))
    scale = np.abs(want).sum() * np.abs(g).sum() / max(g.size, 1) + 1
    assert abs(np.vdot(x, gx) - lhs) <= t["rtol"] * scale
    assert abs(np.vdot(w, gw) - lhs) <= t["rtol"] * scale


def test_conv2d_grads_finite_differences(bk):
    r = rng(21)
    x, w = r.standard_normal((1, 2, 5, 5)), r.standard_normal((2, 2, 3, 3))
    args = ((2, 1), (1, 0), (1, 2))
    g = r.standard_normal(backend.conv2d(x, w, *args).shape)
    f = lambda x, w: np.vdot(backend.conv2d(x, w, *args), g)
    h = 1e-6
    for a, grad in [(x, backend.conv2d_grad_input(g, w, x.shape, *args)),
                    (w, backend.conv2d_grad_weight(g, x, w.shape, *args))]:
        for pos in [(0, 0, 0, 0), (0, 1, 2, 2), (0, 1, 1, 0)]:
            e = np.zeros_like(a)
            e[pos] = h
            fd = ((f(x + e, w) - f(x - e, w)) if a is x else (f(x, w + e) - f(x, w - e))) / (2 * h)
            assert abs(fd - grad[pos]) < 1e-7


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_strided_inputs_and_batches(bk, dtype):
    r = rng(22)
    base = r.standard_normal((3, 2, 8, 10)).astype(dtype)
    x = base[:, :, ::2, ::2]                              # non-contiguous
    xt = np.ascontiguousarray(base.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # F-ish view
    w = r.standard_normal((4, 3, 2, 3)).astype(dtype).transpose(0, 3, 2, 1)[:, :2]  # strided w
    args = ((1, 1), (1, 0), (1, 1))
    ref = backend.conv2d(np.ascontiguousarray(x), np.ascontiguousarray(w), *args)
    np.testing.assert_array_equal(backend.conv2d(x, w, *args), ref)
    np.testing.assert_array_equal(backend.conv2d(xt, w[:, :, :, :2], *args),
                                  backend.conv2d(base, np.ascontiguousarray(w[:, :, :, :2]),
                                                 *args))
    xb = np.stack([x, 2 * x])                             # leading batch axis: folded into N
    np.testing.assert_array_equal(backend.conv2d(xb, w, *args), np.stack([ref, 2 * ref]))
    g = r.standard_normal(ref.shape).astype(dtype)
    gx = backend.conv2d_grad_input(g, w, x.shape, *args)
    gw = backend.conv2d_grad_weight(g, x, w.shape, *args)
    gb = np.stack([g, g[::-1]])
    np.testing.assert_array_equal(backend.conv2d_grad_input(gb, w, x.shape, *args)[0], gx)
    gwb = backend.conv2d_grad_weight(gb, x, w.shape, *args)
    assert gwb.shape == (2,) + w.shape
    np.testing.assert_array_equal(gwb[0], gw)
    np.testing.assert_allclose(gwb[1], backend.conv2d_grad_weight(g[::-1], x, w.shape, *args),
                               rtol=1e-6)


def test_conv2d_errors(bk):
    x = np.ones((1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"same C.*\(1, 3, 4, 4\).*\(2, 2, 3, 3\)"):
        backend.conv2d(x, np.ones((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="larger than the padded input"):
        backend.conv2d(x, np.ones((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="stride"):
        backend.conv2d(x, np.ones((1, 3, 3, 3)), stride=0)
    with pytest.raises(ValueError, match="padding"):
        backend.conv2d(x, np.ones((1, 3, 3, 3)), padding=(1, 2, 3))


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_numba_matches_numpy_bitwise(dtype):
    r = rng(23)
    x = r.standard_normal((16, 3, 32, 32)).astype(dtype)       # the bench workload
    w = r.standard_normal((16, 3, 3, 3)).astype(dtype)
    for args in [((1, 1), (1, 1), (1, 1)), ((2, 1), (0, 2), (2, 1))]:
        out0, out1 = on_both(backend.conv2d, x, w, *args)
        np.testing.assert_array_equal(out1, out0)
        g = r.standard_normal(out0.shape).astype(dtype)
        for fn, a in [(backend.conv2d_grad_input, (g, w, x.shape)),
                      (backend.conv2d_grad_weight, (g, x, w.shape))]:
            r0, r1 = on_both(fn, *a, *args)
            np.testing.assert_array_equal(r1, r0)


# ---------------------------------------------------------------------------
# max_pool2d

def naive_pool(x, k, s, p):
    N, C, H, W = x.shape
    Ho, Wo = (H + 2 * p[0] - k[0]) // s[0] + 1, (W + 2 * p[1] - k[1]) // s[1] + 1
    out, arg = np.zeros((N, C, Ho, Wo), x.dtype), np.zeros((N, C, Ho, Wo), int)
    for n, c, i, j in np.ndindex(N, C, Ho, Wo):
        best, where = None, None
        for a in range(k[0]):
            for b in range(k[1]):
                ih, iw = i * s[0] - p[0] + a, j * s[1] - p[1] + b
                if 0 <= ih < H and 0 <= iw < W:
                    v = x[n, c, ih, iw]
                    if best is None or v > best or (np.isnan(v) and not np.isnan(best)):
                        best, where = v, ih * W + iw
        out[n, c, i, j], arg[n, c, i, j] = best, where
    return out, arg


POOLS = [((2, 3, 6, 7), (2, 2), (2, 2), (0, 0)), ((1, 2, 7, 7), (3, 3), (2, 2), (1, 1)),
         ((1, 1, 5, 6), (3, 2), (1, 1), (1, 1)), ((2, 1, 4, 4), (4, 4), (1, 1), (2, 2)),
         ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0)), ((0, 2, 4, 4), (2, 2), (2, 2), (0, 0))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p", POOLS)
def test_max_pool2d_naive(bk, dtype, shape, k, s, p):
    r = rng(30)
    x = r.integers(-3, 4, shape).astype(dtype)             # many ties
    x.flat[::5] = -np.inf
    x.flat[3:4] = np.nan
    out, arg = backend.max_pool2d(x, k, s, p)
    want, warg = naive_pool(x, k, s, p)
    assert out.dtype == dtype and arg.dtype == np.intp
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(arg, warg)
    g = r.standard_normal(out.shape).astype(dtype)
    gx = backend.max_pool2d_grad(g, arg, x.shape)
    want_gx = np.zeros(shape[:2] + (shape[2] * shape[3],))
    for n, c, i, j in np.ndindex(out.shape):
        want_gx[n, c, warg[n, c, i, j]] += g[n, c, i, j]
    np.testing.assert_allclose(gx, want_gx.reshape(x.shape), rtol=1e-6)
    gb = np.stack([g, -g, 0 * g])
    gxb = backend.max_pool2d_grad(gb, arg, x.shape)
    np.testing.assert_array_equal(gxb, np.stack([gx, -gx, 0 * gx]))


def test_max_pool2d_defaults_and_layouts(bk):
    x = rng(31).standard_normal((2, 3, 8, 9))
    out, arg = backend.max_pool2d(x, 3)                    # stride defaults to kernel_size
    want, warg = naive_pool(x, (3, 3), (3, 3), (0, 0))
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(arg, warg)
    o2, a2 = backend.max_pool2d(x[0], 3)                   # (C, H, W) works too
    np.testing.assert_array_equal(o2, want[0])
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(backend.max_pool2d(xt, 2, 1, 1)[0],
                                  naive_pool(x, (2, 2), (1, 1), (1, 1))[0])
    all_inf = np.full((1, 1, 2, 2), -np.inf)
    out, arg = backend.max_pool2d(all_inf, 2, 1, 1)        # windows of -inf and padding
    assert (out == -np.inf).all() and arg[0, 0].tolist() == [[0, 0, 1], [0, 0, 1], [2, 2, 3]]
    with pytest.raises(ValueError, match="padding"):
        backend.max_pool2d(x, 2, 2, 2)


@needs_numba
@large
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_numba_matches_numpy_large(dtype):
    x = rng(32).standard_normal((16, 16, 32, 32)).astype(dtype)
    for args in [(2, 2, 0), (3, 2, 1)]:
        (o0, a0), (o1, a1) = on_both(backend.max_pool2d, x, *args)
        np.testing.assert_array_equal(o1, o0)
        np.testing.assert_array_equal(a1, a0)
        g = rng(33).standard_normal(o0.shape).astype(dtype)
        r0, r1 = on_both(backend.max_pool2d_grad, g, a0, x.shape)
        np.testing.assert_array_equal(r1, r0)


# ---------------------------------------------------------------------------
# The engine's use of the fused unary kernels (value and derivative in one pass)

FUSED_ROWS = ["sin", "cos", "tan", "exp", "expm1", "log", "log1p", "tanh", "sqrt", "square",
              "reciprocal", "absolute", "arctan", "sinh", "cosh"]


@needs_numba
@pytest.mark.parametrize("name", FUSED_ROWS)
def test_fused_rows_match_the_rules(name, monkeypatch):
    """With numba forced the tape stores f'(x) from the kernel and the first-order
    sweep multiplies by it; forward mode pushes the tangent the same way.  Both must
    agree with the numpy backend (the table's rules) to rounding, and higher orders
    (where the rules run) must be unaffected."""
    import dualgrad as dg
    from dualgrad import rules as P
    prim = P.TABLE[name]
    x = rng(3).uniform(0.2, 0.9, (4, 33))  # inside every row's domain
    f = lambda x: np.sum(prim(x) * np.cos(x))
    t = rng(4).standard_normal((3,) + x.shape)
    with backend.use_backend("numpy"):
        ref_g, ref_j = dg.grad(f)(x), dg.jacfwd(lambda x: prim(x))(x[0])
        ref_d = dg.grad(lambda x: np.sum(prim(x)))(x)
        ref_t = dg.jvp(prim, (x,), (t[0],))[1]
        ref_h = dg.hvp(f, (x,), (t[0],))[1]
    for k, v in FORCE_NUMBA.items():
        monkeypatch.setattr(backend, k, v)
    with backend.use_backend("numba"):
        with dg.Tape() as tape:
            xw = tape.watch(x)
            y = prim(xw)
        fused = [e for e in tape.entries if e.local is not None]  # f'(x) kept on the entry
        assert len(fused) == 1, "the fused kernel was not used when recording"
        np.testing.assert_allclose(tape.gradient(y, xw, np.ones_like(x)), ref_d, rtol=1e-14)
        np.testing.assert_allclose(dg.grad(f)(x), ref_g, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(dg.jacfwd(lambda x: prim(x))(x[0]), ref_j, rtol=1e-13,
                                   atol=1e-15)
        np.testing.assert_allclose(dg.jvp(prim, (x,), (t[0],))[1], ref_t, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(dg.hvp(f, (x,), (t[0],))[1], ref_h, rtol=1e-12, atol=1e-14)


# arithmetic only: a transcendental function's numba kernel may differ from numpy's by an
# ulp (never compared bitwise), a select never does
WHERE_PROGRAMS = {
    "relu": lambda x: np.sum(dg.nn.relu(x) ** 2),
    "where, a scalar branch": lambda x: np.sum(np.where(x > 0.3, 0.5 * x * x, -1.5) * x),
    "where, two traced branches": lambda x: np.sum(np.where(x < 0, x * x, 1 / (1 + x * x))),
    "nested": lambda x: np.sum(np.where(x > 0, np.where(x > 1, x, 2 * x), 0.0) ** 3),
}


@needs_numba
@pytest.mark.parametrize("name", WHERE_PROGRAMS)
def test_where_kernel_under_every_transform(name):
    """The select kernel (forced) inside grad, jvp, vmap(grad) and the Hessian-vector
    product gives the numpy backend's numbers bit for bit."""
    f = WHERE_PROGRAMS[name]
    x = rng(7).standard_normal(600)
    xs = rng(8).standard_normal((3, 600))
    v = rng(9).standard_normal(600)

    def everything():
        return (dg.grad(f)(x), dg.jvp(f, (x,), (v,))[1], dg.vmap(dg.grad(f))(xs),
                dg.hvp(f, (x,), (v,))[1])

    ref, got = on_both(everything)
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a, b, err_msg=name)


# ---------------------------------------------------------------------------
# Forward mode's tangents in one pass (backend.tangent, kernels.elementwise)

SPECIALS = np.array([0.0, -0.0, 1.5, -2.25, np.inf, -np.inf, np.nan, 1e-300, 3e300, -1.0,
                     5e-324])


def _same_values(a, b):
    """The same values bit for bit, a NaN for a NaN (IEEE leaves a NaN's sign and payload
    to the hardware: numpy's SIMD loops and a compiled loop may pick either operand's)."""
    assert a.shape == b.shape and a.dtype == b.dtype
    nan = np.isnan(b)
    assert np.array_equal(np.isnan(a), nan)
    assert a[~nan].tobytes() == b[~nan].tobytes()


def _pick(r, shape, dtype):
    v = np.where(r.random(shape) < 0.2, r.choice(SPECIALS, shape),
                 r.standard_normal(shape) * 10.0 ** r.integers(-300, 300, shape))
    return v.astype(dtype)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [0, 1, 3])
@pytest.mark.parametrize("strided", [False, True])
def test_tangent_loops_are_numpys_operations(monkeypatch, dtype, batch, strided):
    """The product rule's t * y + x * t2, x ** 2's t * (x * 2.0) and a plain array's x * t
    in one loop: numpy's operations, each rounded as numpy rounds it (no fused
    multiply-add), on IEEE's special values, one or several directions, contiguous or
    views."""
    for name, value in FORCE_NUMBA.items():
        monkeypatch.setattr(backend, name, value)
    r = rng(batch + 10 * strided)
    for n in (1, 7, 1000):
        shape = ((batch,) if batch else ()) + (n + 1,)
        x, y = _pick(r, n + 1, dtype), _pick(r, n + 1, dtype)
        t, t2 = _pick(r, shape, dtype), _pick(r, shape, dtype)
        if strided:  # the slices a sweep hands on: x[1:]'s, x[:-1]'s
            x, y, t, t2 = x[1:], y[:-1], t[..., 1:], t2[..., :-1]
        else:
            x, y, t, t2 = x[:n], y[:n], t[..., :n].copy(), t2[..., :n].copy()
        with backend.use_backend("numba"), np.errstate(all="ignore"):
            prod, sq = backend.tangent("product", t, x, t2, y), backend.tangent("square", t, x)
            _same_values(prod, t * y + x * t2)
            _same_values(sq, t * (x * 2.0))
            _same_values(backend.tangent("scale", t, x), x * t)


@needs_numba
def test_tangent_loops_are_chosen_by_measurement():
    """Under the numba backend the loop runs where this machine's measurement says it
    wins, else None (forward mode's numpy operations); numpy's backend never loops."""
    x, t = np.linspace(0.1, 0.9, 300_000), np.ones(300_000)
    with backend.use_backend("numpy"):
        assert backend.tangent("square", t, x) is None
    with backend.use_backend("numba"):
        rule = backend.TUNED.rule("tangent.square/d")
        got = backend.tangent("square", t, x)
    assert (got is not None) == (rule is not None and rule[0] <= x.size
                                 and (rule[1] is None or x.size <= rule[1]))


@needs_numba
@pytest.mark.parametrize("f", [
    lambda x: np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2),
    lambda x: np.sum(x * np.sin(x) * x ** 2 - np.cos(x[::-1]) * x),
])
def test_forward_mode_with_the_tangent_loops(monkeypatch, f):
    """hessian, hvp and jacfwd(grad) with every tangent loop (and the slices' sums) forced
    give the values the numpy operations give (the other kernels' choices as measured:
    numba's sin is not numpy's bit for bit)."""
    x = np.linspace(-1.3, 1.7, 40)
    v = np.cos(np.arange(40.0))
    use = backend._use

    def run(loop):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(backend, "_use", lambda k, c, n: loop if k.startswith(
                ("tangent.", "slices.")) else use(k, c, n))
            return [dg.hessian(f)(x), dg.hvp(f, (x,), (v,))[1], dg.jacfwd(dg.grad(f))(x)]

    with backend.use_backend("numba"):
        want, got = run(False), run(True)
    for a, b in zip(got, want):
        _same_values(np.asarray(a), np.asarray(b))


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count", [1, 3, 4, 9])
def test_sum_slices_is_numpys_adds(monkeypatch, dtype, count):
    """Slices summed a row at a time (slices.DualSum's tangents): zeros, then each slice
    added in order, as numpy's adds one after another give them (IEEE's special values,
    signed zeros; contiguous parts and strided views; more parts than one call takes)."""
    for name, value in FORCE_NUMBA.items():
        monkeypatch.setattr(backend, name, value)
    r = rng(count)
    for rows_, n in ((1, 9), (5, 40)):
        parts = []
        for k in range(count):
            s, m = int(r.integers(0, n // 2)), int(r.integers(1, n // 2))
            v = _pick(r, (rows_, m + 1), dtype)
            parts.append((s, v[:, 1:] if k % 2 else v[:, :m].copy()))
        got = np.full((rows_, n), np.nan, dtype)
        with backend.use_backend("numba"), np.errstate(all="ignore"):
            want = backend.reference.sum_slices(np.empty((rows_, n), dtype), parts)
            assert backend.sum_slices(got, parts)
        _same_values(got, want)
    with backend.use_backend("numpy"):
        assert not backend.sum_slices(got, parts)
