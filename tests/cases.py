"""Test cases and helpers that more than one test module uses.

Each test module imports what it shares from here, never from another test module:

* the primitive table's cases (``ALL``: every elementwise row from its ``domain``, plus
  ``CASES``, one or more calls per structural row), and the ``RNG`` they were drawn from;
* ``FUSED`` (the cases a fused kernel runs) and ``close`` (equal to a few ulps);
* ``INDEPENDENT`` (each backend unary row by the ``math`` module, with its domain),
  ``sample`` (inputs in that domain) and ``ulp_close``;
* ``bias_loss``: a loss with broadcasting and reductions, the jit's shape-reuse workload,
  and ``check_bias_loss``, a jitted gradient of it against eager;
* ``step`` and ``run``: the random numpy programs of the hypothesis tests;
* ``run_threads``: a function run on several threads started together;
* ``central``: central differences of a function of one vector, plain numpy (the oracle
  of tests/test_aliasing.py and tests/test_views.py).
"""

import functools
import math
import threading
import zlib

import numpy as np
from hypothesis import strategies as st

import dualgrad as dg
from dualgrad import rules as P

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------
# The primitive table's cases (test_primitives.py, and every test generated from them)

def _sample(domain, shape, rng=RNG):
    r = rng.uniform
    return {"real": lambda: rng.standard_normal(shape),
            "positive": lambda: r(0.5, 2.0, shape),
            "unit": lambda: r(-0.9, 0.9, shape),
            "above1": lambda: r(1.5, 3.0, shape),
            "big": lambda: r(3.0, 4.0, shape),
            "prob": lambda: r(0.05, 0.95, shape),  # (0, 1): logit, ndtri, erfcinv
            "nonzero": lambda: np.where(r(0, 1, shape) < 0.5, -1, 1) * r(0.5, 2.0, shape),
            }[domain]()


class Case:
    def __init__(self, name, fn, *args, smooth=None):
        self.name, self.fn, self.args = name, fn, tuple(np.asarray(a, float) for a in args)
        self.smooth = P.TABLE[name].smooth if smooth is None else smooth

    def __repr__(self):
        return f"{self.name}{tuple(a.shape for a in self.args)}"


BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1)), ((), (3,)), ((3,), ())]
BINARY_DOMAINS = {"remainder": ("positive", "big"), "fmod": ("positive", "big")}


def elementwise_cases():
    for name, prim in P.TABLE.items():
        if prim not in P.UFUNCS.values() or name == "matmul":
            continue
        rng = np.random.default_rng(zlib.crc32(name.encode()))  # a row's samples are its own
        draw = functools.partial(_sample, rng=rng)
        nargs = len(prim.vjp)
        if nargs == 1:
            yield Case(name, prim, draw(prim.domain, (3, 4)))
            yield Case(name, prim, draw(prim.domain, ()))
        else:
            doms = BINARY_DOMAINS.get(name, (prim.domain, prim.domain))
            for sx, sy in BINARY_SHAPES:
                yield Case(name, prim, draw(doms[0], sx), draw(doms[1], sy))


def spd(n):
    a = RNG.standard_normal((n, n))
    return a @ a.T + n * np.eye(n)


MASK = RNG.standard_normal((3, 4)) > 0


def _symm(a):
    return P.multiply(0.5, P.add(a, P.mT(a)))


def _squared(x):
    return P.multiply(x, x)  # sign-invariant: a column's sign flip leaves it unchanged


def _projector(u):
    return P.matmul(u, P.mT(u))


def _spectral(rng, w):
    q = np.linalg.qr(rng.standard_normal((len(w), len(w))))[0]
    return q @ np.diag(w) @ q.T


def _idx_sep():
    return (np.array([0, 2, 1]), slice(None), np.array([1, 1, 0]))


_GEO1 = P.Geometry((2, 2, 4, 5), (3, 2, 3, 2), (1, 1), (1, 1), (1, 1))
_GEO2 = P.Geometry((1, 2, 6, 5), (2, 2, 2, 2), (2, 2), (1, 0), (1, 2))

CASES = [
    Case("sum", lambda x: P.sum_(x, axis=(-1,), keepdims=False), RNG.standard_normal((3, 4))),
    Case("sum", lambda x: P.sum_(x, axis=(-2, -1), keepdims=True), RNG.standard_normal((2, 3, 4))),
    Case("max", lambda x: P.amax(x, axis=(-1,), keepdims=False), RNG.standard_normal((3, 4))),
    Case("max", lambda x: P.amax(x, axis=(-2, -1), keepdims=True), RNG.standard_normal((3, 4))),
    Case("min", lambda x: P.amin(x, axis=(-2,), keepdims=False), RNG.standard_normal((3, 4))),
    Case("prod", lambda x: P.prod(x, axis=(-1,), keepdims=False), _sample("nonzero", (3, 4))),
    Case("prod", lambda x: P.prod(x, axis=(-2, -1), keepdims=True),
         np.array([[0.0, 1.5, 2.0], [0.7, -1.1, 0.0]])),
    Case("cumsum", lambda x: P.cumsum(x, axis=-1), RNG.standard_normal((3, 4))),
    Case("reshape", lambda x: P.reshape(x, shape=(2, 6)), RNG.standard_normal((3, 4))),
    Case("transpose", lambda x: P.transpose(x, axes=(2, 0, 1)), RNG.standard_normal((2, 3, 4))),
    Case("broadcast_to", lambda x: P.broadcast_to(x, shape=(2, 3, 4)),
         RNG.standard_normal((3, 1))),
    Case("flip", lambda x: P.flip(x, axis=(-1,)), RNG.standard_normal((3, 4))),
    Case("concatenate", lambda x, y: P.concatenate(x, y, axis=-2),
         RNG.standard_normal((2, 3)), RNG.standard_normal((4, 3))),
    Case("concatenate", lambda x, y: P.concatenate(x, y, axis=-1),
         RNG.standard_normal((2, 3)), RNG.standard_normal((2, 1))),
    Case("getitem", lambda x: P.getitem(x, idx=(slice(1, None), 2)), RNG.standard_normal((3, 4))),
    Case("getitem", lambda x: P.getitem(x, idx=(np.array([0, 2, 2, 1]),)),
         RNG.standard_normal((3, 4))),
    Case("getitem", lambda x: P.getitem(x, idx=(MASK,)),
         RNG.standard_normal((3, 4))),
    Case("getitem", lambda x: P.getitem(x, idx=_idx_sep()), RNG.standard_normal((3, 2, 4))),
    Case("gather", lambda x: P.gather(x, np.array([0, 2, 2, 1]), idx=(
        P.Slot(0, (4,), np.int64), slice(1, None))), RNG.standard_normal((3, 4))),
    Case("gather", lambda x: P.gather(x, np.array([[1], [0]]), np.array([2, 0, 2]), idx=(
        P.Slot(0, (2, 1), np.int64), slice(None), P.Slot(1, (3,), np.int64))),
        RNG.standard_normal((3, 2, 4))),
    Case("scatter", lambda v: P.scatter(v, np.array([0, 3, 0, 1, 3]), idx=(
        P.Slot(0, (5,), np.int64),), shape=(4, 2)), RNG.standard_normal((5, 2))),
    Case("scatter_add", lambda v: P.scatter_add(v, idx=(np.array([0, 3, 0, 1, 3]),),
                                                shape=(4, 3)), RNG.standard_normal((5, 3))),
    Case("astype", lambda x: P.astype(x, dtype=np.float64), RNG.standard_normal((3,))),
    Case("where", lambda x, y: P.where(np.array([True, False, True, True]), x, y),
         RNG.standard_normal((3, 4)), RNG.standard_normal((4,))),
    Case("clip", lambda x, lo, hi: P.clip(x, lo, hi), RNG.uniform(-1, 1, (3, 4)) * 2,
         np.full((4,), -0.5), np.full((3, 1), 0.5)),
    Case("matmul", P.matmul, RNG.standard_normal((3, 4)), RNG.standard_normal((4, 5))),
    Case("matmul", P.matmul, RNG.standard_normal((4,)), RNG.standard_normal((4, 5))),
    Case("matmul", P.matmul, RNG.standard_normal((3, 4)), RNG.standard_normal((4,))),
    Case("matmul", P.matmul, RNG.standard_normal((4,)), RNG.standard_normal((4,))),
    Case("matmul", P.matmul, RNG.standard_normal((2, 3, 4)), RNG.standard_normal((4, 5))),
    Case("matmul", P.matmul, RNG.standard_normal((3, 4)), RNG.standard_normal((2, 4, 5))),
    Case("matmul", P.matmul, RNG.standard_normal((4,)), RNG.standard_normal((2, 4, 5))),
    Case("inv", P.inv, spd(3) + RNG.standard_normal((3, 3))),
    Case("det", P.det, spd(3) + RNG.standard_normal((3, 3))),
    Case("det", P.det, RNG.standard_normal((2, 3, 3)) + 3 * np.eye(3)),
    Case("logabsdet", P.logabsdet, spd(3) - 5 * np.eye(3) + RNG.standard_normal((3, 3))),
    Case("solve", P.solve, spd(3) + RNG.standard_normal((3, 3)), RNG.standard_normal((3,))),
    Case("solve", P.solve, spd(3) + RNG.standard_normal((3, 3)), RNG.standard_normal((3, 2))),
    Case("cholesky", lambda a: P.cholesky((a + a.T) / 2), spd(3)),
    Case("cholesky", lambda a: P.cholesky((a + np.swapaxes(a, -1, -2)) / 2),
         np.stack([spd(3), spd(3)])),
    Case("solve", P.solve, np.stack([spd(3), spd(3)]) + RNG.standard_normal((2, 3, 3)),
         RNG.standard_normal((3,))),
    Case("solve", P.solve, np.stack([spd(3), spd(3)]) + RNG.standard_normal((2, 3, 3)),
         RNG.standard_normal((2, 3, 2))),
    Case("inv", P.inv, np.stack([spd(3), spd(3)]) + RNG.standard_normal((2, 3, 3))),
    Case("logabsdet", P.logabsdet, np.stack([spd(3), -spd(3)])),
    Case("einsum", lambda x, y: P.einsum(x, y, subscripts="ij,jk->ik"),
         RNG.standard_normal((3, 4)), RNG.standard_normal((4, 2))),
    Case("einsum", lambda x, y: P.einsum(x, y, subscripts="ijk,jk->i"),
         RNG.standard_normal((2, 3, 4)), RNG.standard_normal((3, 4))),
    Case("einsum", lambda x: P.einsum(x, subscripts="ij->i"), RNG.standard_normal((3, 4))),
    Case("einsum", lambda x, y: P.einsum(x, y, subscripts="i,j->ij"),
         RNG.standard_normal((3,)), RNG.standard_normal((2,))),
    Case("einsum", lambda x, y: P.einsum(x, y, subscripts="i...,i...->i..."),
         RNG.standard_normal((3,)), RNG.standard_normal((3, 3))),
    Case("einsum", lambda x, y: P.einsum(x, y, subscripts="...ij,...jk->...ik"),
         RNG.standard_normal((2, 1, 3, 4)), RNG.standard_normal((5, 4, 2))),
    Case("einsum", lambda x, y: P.einsum(x, y, subscripts="i...,i...->..."),
         RNG.standard_normal((3, 1, 2)), RNG.standard_normal((3, 4, 2))),
    # the rows dualgrad.nn adds (backend kernels)
    Case("softmax", lambda x: dg.nn.softmax(x, axis=0), RNG.standard_normal((3, 4))),
    Case("log_softmax", lambda x: dg.nn.log_softmax(x), RNG.standard_normal((2, 3, 4))),
    Case("logsumexp", dg.nn.logsumexp, RNG.standard_normal((3, 4))),
    Case("logsumexp", lambda x: dg.nn.logsumexp(x, axis=(0, 2), keepdims=True),
         RNG.standard_normal((2, 3, 4))),
    Case("conv2d", lambda x, w: dg.nn.conv2d(x, w, padding=1),
         RNG.standard_normal((2, 2, 4, 5)), RNG.standard_normal((3, 2, 3, 2))),
    Case("conv2d", lambda x, w: dg.nn.conv2d(x, w, stride=2, padding=(1, 0), dilation=(1, 2)),
         RNG.standard_normal((1, 2, 6, 5)), RNG.standard_normal((2, 2, 2, 2))),
    # conv2d's cotangents, rows of their own (bilinear: second derivatives by their rules)
    Case("conv2d_grad_input", lambda g, w: P.TABLE["conv2d_grad_input"](
        g, w, geo=_GEO1, x_shape=(2, 2, 4, 5)),
        RNG.standard_normal((2, 3, 4, 6)), RNG.standard_normal((3, 2, 3, 2))),
    Case("conv2d_grad_input", lambda g, w: P.TABLE["conv2d_grad_input"](
        g, w, geo=_GEO2, x_shape=(1, 2, 6, 5)),
        RNG.standard_normal((1, 2, 4, 2)), RNG.standard_normal((2, 2, 2, 2))),
    Case("conv2d_grad_weight", lambda g, x: P.TABLE["conv2d_grad_weight"](
        g, x, geo=_GEO1, w_shape=(3, 2, 3, 2)),
        RNG.standard_normal((2, 3, 4, 6)), RNG.standard_normal((2, 2, 4, 5))),
    Case("conv2d_grad_weight", lambda g, x: P.TABLE["conv2d_grad_weight"](
        g, x, geo=_GEO2, w_shape=(2, 2, 2, 2)),
        RNG.standard_normal((1, 2, 4, 2)), RNG.standard_normal((1, 2, 6, 5))),
    # functional index updates (y[idx] = v on a traced y)
    Case("index_set", lambda x, v: P.index_set(x, v, idx=(slice(1, 3),)),
         RNG.standard_normal((4, 3)), RNG.standard_normal((3,))),
    Case("index_set", lambda x, v: P.index_set(x, v, idx=(np.array([0, 2, 0]), 1)),
         RNG.standard_normal((3, 4)), RNG.standard_normal((3,))),
    Case("index_set", lambda x, v: P.index_set(x, v, idx=(MASK,)),
         RNG.standard_normal((3, 4)), RNG.standard_normal(())),
    Case("index_set", lambda x, v: P.index_set(x, v, idx=_idx_sep()),
         RNG.standard_normal((3, 2, 4)), RNG.standard_normal((3, 1))),
    # index_set with the index arrays as arguments (dg.jit's labels): repeats, a constant
    # array beside one, advanced indices split by a slice (own generator: the cases after
    # these keep their values)
    *(lambda r: [
        Case("scatter_set", lambda x, v: P.scatter_set(x, v, np.array([0, 2, 0]), idx=(
            P.Slot(0, (3,), np.int64), 1)), r.standard_normal((3, 4)), r.standard_normal((3,))),
        Case("scatter_set", lambda x, v: P.scatter_set(x, v, np.array([2, 0, 2]), idx=(
            np.arange(3), P.Slot(0, (3,), np.int64))), r.standard_normal((3, 4)),
            r.standard_normal(())),
        Case("scatter_set", lambda x, v: P.scatter_set(
            x, v, np.array([0, 2, 1]), np.array([1, 1, 0]), idx=(
                P.Slot(0, (3,), np.int64), slice(None), P.Slot(1, (3,), np.int64))),
            r.standard_normal((3, 2, 4)), r.standard_normal((3, 1))),
    ])(np.random.default_rng(23)),
    # complex rows on real inputs (identity and zero); complex inputs: test_complex.py
    Case("real", lambda x: P.real(x), np.random.default_rng(1).standard_normal((3, 4))),
    Case("imag", lambda x: P.imag(x), np.random.default_rng(2).standard_normal((3, 4))),
    # the decompositions (dualgrad/rules/linalg.py), on gauge-invariant outputs where the
    # vectors have a sign/phase freedom; distinct eigenvalues and singular values
    *(lambda L, r: [
        Case("eigh", lambda a: _squared(L.EIGH(_symm(a), uplo="L")), _spectral(r, [-1, .5, 2])),
        Case("eigh", lambda a: _squared(L.EIGH(_symm(a), uplo="L")),
             np.stack([_spectral(r, [1, 2, 4]), _spectral(r, [-3, 0, 1])])),
        Case("svd", lambda a: _squared(L.SVD(a)), r.standard_normal((4, 3))),
        Case("svd", lambda a: _squared(L.SVD(a)), r.standard_normal((3, 4))),
        Case("svd", lambda a: _squared(L.SVD(a)), r.standard_normal((2, 3, 3))),
        Case("orth_complement", lambda a: _projector(L.svd(a)[0][..., 2:]),
             r.standard_normal((4, 2))),
        Case("orth_complement", lambda a: _projector(L.qr(a, mode="complete")[0][..., 2:]),
             r.standard_normal((4, 2))),
        Case("qr", L.QR, r.standard_normal((4, 3))),
        Case("qr", L.QR, r.standard_normal((2, 3, 3))),
        Case("eig", lambda a: (lambda e: P.concatenate(P.real(e), P.imag(e), axis=-2))(L.EIG(a)),
             np.array([[1.0, 2.0, 0.3], [-2.0, 1.0, 0.5], [0.2, 0.1, 3.0]])),
        Case("eig", lambda a: (lambda e: P.concatenate(P.real(e), P.imag(e), axis=-2))(L.EIG(a)),
             r.standard_normal((2, 3, 3))),
        Case("pinv", lambda a: L.PINV(a, rtol=None), r.standard_normal((4, 3))),
        Case("pinv", lambda a: L.PINV(a, rtol=None), r.standard_normal((2, 3, 4))),
    ])(dg.linalg, np.random.default_rng(12)),
]

if "polygamma" in P.TABLE:  # scipy.special's rows with a constant order (rules/special.py)
    import scipy.special as sc

    from dualgrad.scipy import special as S
    CASES += [
        Case("polygamma", lambda x: S.polygamma(1, x), _sample("positive", (3, 4))),
        Case("polygamma", lambda x: S.polygamma(np.array([0, 2, 3]), x), _sample("positive", ())),
        Case("zeta", lambda q: sc.zeta(3.0, q), _sample("positive", (3, 4))),
        Case("gammainc", lambda x: sc.gammainc(2.5, x), _sample("positive", (3, 4))),
        Case("gammaincc", lambda x: sc.gammaincc(np.array([0.5, 1.0, 3.0]), x),
             _sample("positive", (2, 1))),
        Case("jv", lambda x: sc.jv(np.array([0.0, 1.0, 3.0]), x), _sample("real", (2, 3))),
        Case("yv", lambda x: sc.yv(1.0, x), _sample("positive", (3, 4))),
        Case("iv", lambda x: sc.iv(0.5, x), _sample("positive", (3, 4))),
        Case("kv", lambda x: sc.kv(2.0, x), _sample("positive", (3, 4))),
        # rows differentiable in their last argument only (the shapes are arrays)
        Case("igamma", lambda x: P.TABLE["igamma"](np.array([0.5, 1.0, 2.5, 4.0]), x),
             _sample("positive", (3, 4))),
        Case("igammac", lambda x: P.TABLE["igammac"](2.5, x), _sample("positive", (3, 4))),
        Case("gammaincinv", lambda y: sc.gammaincinv(np.array([0.5, 1.0, 3.0]), y),
             _sample("prob", (2, 3))),
        Case("gammainccinv", lambda y: sc.gammainccinv(2.0, y), _sample("prob", (3, 4))),
        Case("betainc", lambda x: sc.betainc(np.array([0.5, 2.0, 3.0]), 1.5, x),
             _sample("prob", (2, 3))),
        Case("betaincc", lambda x: sc.betaincc(2.0, 3.0, x), _sample("prob", (3, 4))),
        Case("betaincinv", lambda y: sc.betaincinv(2.0, 0.7, y), _sample("prob", (3, 4))),
        Case("betainccinv", lambda y: sc.betainccinv(1.5, 3.0, y), _sample("prob", (3, 4))),
        Case("stdtr", lambda t: sc.stdtr(np.array([1.0, 3.0, 30.0]), t), _sample("real", (2, 3))),
        Case("stdtrit", lambda p: sc.stdtrit(4.0, p), _sample("prob", (3, 4))),
    ]

def _fft_case(name, n_in, **kw):
    """An FFT row (rules/fft.py) on x + iy (or x alone), as its real and imaginary parts
    in x's dtype: numpy's FFT computes in single precision at least."""
    fn = P.TABLE[name]
    if n_in == 1:
        def f(x):
            z = fn(x, **kw)
            return P.astype(P.concatenate(P.real(z), P.imag(z), axis=-1), dtype=x.dtype)
    else:
        def f(x, y):
            z = fn(P.add(x, P.multiply(y, 1j)), **kw)
            if not P.is_complex(z):
                return P.astype(z, dtype=x.dtype)
            return P.astype(P.concatenate(P.real(z), P.imag(z), axis=-1), dtype=x.dtype)
    shape = (3, 5) if n_in == 1 else (3, 4)
    return Case(name, f, *(RNG.standard_normal(shape) for _ in range(n_in)))


CASES += [  # the FFT rows (rules/fft.py)
    _fft_case("fft", 2, axis=-1, norm=None),
    _fft_case("fft", 2, axis=-2, norm="ortho"),
    _fft_case("ifft", 2, axis=-1, norm="forward"),
    _fft_case("rfft", 1, axis=-1, norm=None),
    _fft_case("irfft", 2, n=6, axis=-1, norm=None),
    _fft_case("irfft", 2, n=7, axis=-1, norm="ortho"),
]

_SHARE = np.random.default_rng(25)  # (its own draws: the cases above keep theirs)
CASES += [  # logaddexp's share on dask arrays, a row of its own (rules/elementwise.py)
    Case("logaddexp_share", P.TABLE["logaddexp_share"], _SHARE.standard_normal((3, 4)),
         _SHARE.standard_normal((3, 4))),
    Case("logaddexp_share", P.TABLE["logaddexp_share"], _SHARE.standard_normal((3, 4)),
         _SHARE.standard_normal(4)),
]

ALL = list(elementwise_cases()) + CASES


# ---------------------------------------------------------------------------
# Fused rows, compared to a few ulps (test_codegen.py, test_jit_cuda.py)

FUSED = [c for c in ALL if P.TABLE[c.name].scalar is not None and c.fn is P.TABLE[c.name]]
ULPS = {np.float64: 64, np.float32: 64}


def close(got, want, dtype):
    """Equal to within a few ulps of ``want``'s magnitude (NaNs where ``want`` has them)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype)
    eps = np.finfo(dtype).eps
    scale = np.maximum(np.abs(want), np.finfo(dtype).tiny)
    both = np.isfinite(want)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.all(got[~both & ~np.isnan(want)] == want[~both & ~np.isnan(want)])
    err = np.abs(got[both] - want[both]) / (scale[both] * eps)
    assert err.size == 0 or err.max() <= ULPS[dtype], f"{err.max():.1f} ulps"


def bias_loss(x, b):
    """Broadcasting (a row bias), an axis reduction with keepdims, a mean (its 1/n a
    constant of each recording) and a full sum."""
    z = np.tanh(x * 1.5 + b)
    m = np.max(z, axis=1, keepdims=True)
    return np.sum(np.log(np.sum(np.exp(z - m), axis=1)) + m[:, 0]) / x.shape[0] \
        + np.mean(z * z)


def check_bias_loss(jg, g, rng, shape, dtype):
    """``jg`` (a ``dg.jit`` of ``g``, bias_loss's gradient) called three times on a random
    ``(x, b)`` of ``shape``: its result against eager ``g``'s, dtypes and values."""
    x = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    for _ in range(3):
        got = jg(x, b)
    for o, w in zip(got, g(x, b)):
        assert o.dtype == w.dtype
        np.testing.assert_allclose(o, w, rtol=1e-11 if dtype == np.float64 else 2e-4,
                                   atol=1e-13 if dtype == np.float64 else 2e-6)


# ---------------------------------------------------------------------------
# The backend's unary rows (test_kernels.py, test_cuda_kernels.py)

def ulp_close(actual, desired, ulps=4, dtype=np.float64, scale=1.0):
    """Equal to ``ulps`` units in the last place of ``dtype`` (relative), or of ``scale``
    (absolute, for values that cancel towards 0, like tanh' = 1 - y*y).  inf and NaN
    must match exactly."""
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(actual, desired, rtol=ulps * eps, atol=ulps * eps * scale)


# An independent definition of each row (math module, float64) and its domain.
INDEPENDENT = {
    "sin": (math.sin, math.cos, "real"),
    "cos": (math.cos, lambda x: -math.sin(x), "real"),
    "tan": (math.tan, lambda x: 1 / math.cos(x) ** 2, "unit"),
    "exp": (math.exp, math.exp, "real"),
    "expm1": (math.expm1, math.exp, "real"),
    "log": (math.log, lambda x: 1 / x, "positive"),
    "log1p": (math.log1p, lambda x: 1 / (1 + x), "positive"),
    "tanh": (math.tanh, lambda x: 1 / math.cosh(x) ** 2, "real"),
    "sigmoid": (lambda x: 1 / (1 + math.exp(-x)),
                lambda x: math.exp(-x) / (1 + math.exp(-x)) ** 2, "real"),
    "sqrt": (math.sqrt, lambda x: 1 / (2 * math.sqrt(x)), "positive"),
    "square": (lambda x: x * x, lambda x: 2 * x, "real"),
    "reciprocal": (lambda x: 1 / x, lambda x: -1 / x ** 2, "positive"),
    "negative": (lambda x: -x, lambda x: -1.0, "real"),
    "abs": (abs, lambda x: math.copysign(1.0, x), "real"),
    "arctan": (math.atan, lambda x: 1 / (1 + x * x), "real"),
    "sinh": (math.sinh, math.cosh, "real"),
    "cosh": (math.cosh, math.sinh, "real"),
    "softplus": (lambda x: math.log(1 + math.exp(x)),
                 lambda x: 1 / (1 + math.exp(-x)), "real"),
    "relu": (lambda x: max(x, 0.0), lambda x: float(x > 0), "real"),
}


def sample(name, shape, dtype, seed=0):
    x = np.random.default_rng(seed).uniform(-3, 3, shape)
    dom = INDEPENDENT[name][2]
    if dom == "positive":
        x = np.abs(x) + 0.1
    elif dom == "unit":
        x = x / 3.3
    return x.astype(dtype)


# ---------------------------------------------------------------------------
# Random short numpy programs (test_programs.py, test_buffers.py): a step applies one of
# UNARY or BINARY to earlier values

C = np.array([[0.5, -1.0, 0.3], [0.2, 0.4, -0.7], [1.1, 0.0, 0.6]])
W = np.array([[0.7, -1.3, 0.4], [1.9, 0.2, -0.5]])

UNARY = {
    "sin": np.sin, "cos": np.cos, "tanh": np.tanh, "exp_tanh": lambda x: np.exp(np.tanh(x)),
    "log1p_sq": lambda x: np.log1p(x * x), "sqrt_1p": lambda x: np.sqrt(1.0 + x ** 2),
    "square": lambda x: x ** 2, "scale": lambda x: 2.5 * x - x / 7, "neg": lambda x: -x,
    "arctan": np.arctan, "logaddexp0": lambda x: np.logaddexp(x, 0.0),
    "matmul": lambda x: x @ C, "einsum": lambda x: np.einsum("ij,jk->ik", x, C),
    "flip": lambda x: x[::-1, ::-1], "roll": lambda x: np.roll(x, 1, axis=1),
    "cumsum": lambda x: np.cumsum(x, axis=1), "gather": lambda x: x[[1, 0]][:, [2, 0, 1]],
    "mean_keep": lambda x: x - np.mean(x, axis=1, keepdims=True),
    "sum_keep": lambda x: x * np.sum(x, axis=0, keepdims=True),
    "norm_rows": lambda x: x / np.sqrt(1.0 + np.sum(x * x, axis=1, keepdims=True)),
    "concat": lambda x: np.concatenate([x[:, 1:], x[:, :1]], axis=1),
    "stack_T": lambda x: np.stack([x[0], x[1]]).T.reshape(2, 3),
    "tile": lambda x: np.tile(x[:, :1], (1, 3)) + x,
    "pad": lambda x: np.pad(x, ((0, 0), (1, 0)))[:, :3],
    "entry": lambda x: x * x[1, 2] / 3,
    "var": lambda x: x + np.var(x, axis=1, keepdims=True),
    "prod": lambda x: np.prod(1.0 + 0.1 * x, axis=1, keepdims=True) * x,
}
BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply,
    "div": lambda x, y: x / (1.0 + y * y), "hypot": lambda x, y: np.hypot(x, 1.0 + y * y),
    "arctan2": lambda x, y: np.arctan2(x, 2.0 + y * y), "matmul_T": lambda x, y: x @ y.T @ x,
    "outer_row": lambda x, y: x * np.outer(y[0], np.ones(3))[:2],
}

step = st.one_of(
    st.tuples(st.just("u"), st.sampled_from(sorted(UNARY)), st.integers(0, 9)),
    st.tuples(st.just("b"), st.sampled_from(sorted(BINARY)), st.integers(0, 9),
              st.integers(0, 9)))


def run(program, x):
    values = [x, np.sin(x) * 0.5]
    for s in program:
        if s[0] == "u":
            values.append(UNARY[s[1]](values[s[2] % len(values)]))
        else:
            values.append(BINARY[s[1]](values[s[2] % len(values)], values[s[3] % len(values)]))
        values[-1] = np.tanh(values[-1])  # keep the values of long programs in range
    return np.sum(values[-1] * W)


# ---------------------------------------------------------------------------
# Threads (test_threads.py, test_buffers.py)

def run_threads(work, n=4):
    """``work(k)`` on ``n`` threads at once (started together); re-raises the first error."""
    errors = []
    start = threading.Barrier(n)

    def body(k):
        try:
            start.wait()
            work(k)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=body, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def central(f, w, h=1e-6):
    """The gradient of ``f`` at the vector ``w`` by central differences (numpy alone)."""
    g = np.zeros_like(w)
    for i in range(w.size):
        e = np.zeros_like(w)
        e[i] = h
        g[i] = (f(w + e) - f(w - e)) / (2 * h)
    return g
