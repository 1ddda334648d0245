"""Tests generated from the primitive table.

Every elementwise primitive is tested from its row alone (its ``domain`` says
where to sample).  Structural primitives need a call to test; ``CASES`` gives
one or more per name, and ``test_every_primitive_has_cases`` fails for a new
primitive until it has them.  For each case: reverse mode (batched ``jacrev``)
and forward mode (batched ``jacfwd``) against finite differences, the
dot-product identity <u, J v> = <J^T u, v> between single JVPs and VJPs, and
second order (forward-over-reverse and reverse-over-reverse) for smooth rows.
"""

import functools
import zlib

import numpy as np
import pytest

import dualgrad as dg
from dualgrad.rules import table as P

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True, params=["numba", "numpy"])
def backend(request):
    """Every generated test runs under both backends: the numba kernels and the numpy
    reference must give the same derivatives."""
    with dg.backend.use_backend(request.param):
        yield request.param


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


sample = _sample


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
        sample = functools.partial(_sample, rng=rng)
        nargs = len(prim.vjp)
        if nargs == 1:
            yield Case(name, prim, sample(prim.domain, (3, 4)))
            yield Case(name, prim, sample(prim.domain, ()))
        else:
            doms = BINARY_DOMAINS.get(name, (prim.domain, prim.domain))
            for sx, sy in BINARY_SHAPES:
                yield Case(name, prim, sample(doms[0], sx), sample(doms[1], sy))


def spd(n):
    a = RNG.standard_normal((n, n))
    return a @ a.T + n * np.eye(n)


MASK = RNG.standard_normal((3, 4)) > 0


def _symm(a):
    return P.multiply(0.5, P.add(a, P._T(a)))


def _squared(x):
    return P.multiply(x, x)  # sign-invariant: a column's sign flip leaves it unchanged


def _projector(u):
    return P.matmul(u, P._T(u))


def _spectral(rng, w):
    q = np.linalg.qr(rng.standard_normal((len(w), len(w))))[0]
    return q @ np.diag(w) @ q.T


def _idx_sep():
    return (np.array([0, 2, 1]), slice(None), np.array([1, 1, 0]))


CASES = [
    Case("sum", lambda x: P.sum_(x, axis=(-1,), keepdims=False), RNG.standard_normal((3, 4))),
    Case("sum", lambda x: P.sum_(x, axis=(-2, -1), keepdims=True), RNG.standard_normal((2, 3, 4))),
    Case("max", lambda x: P.amax(x, axis=(-1,), keepdims=False), RNG.standard_normal((3, 4))),
    Case("max", lambda x: P.amax(x, axis=(-2, -1), keepdims=True), RNG.standard_normal((3, 4))),
    Case("min", lambda x: P.amin(x, axis=(-2,), keepdims=False), RNG.standard_normal((3, 4))),
    Case("prod", lambda x: P.prod(x, axis=(-1,), keepdims=False), sample("nonzero", (3, 4))),
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
    # functional index updates (y[idx] = v on a traced y)
    Case("index_set", lambda x, v: P.index_set(x, v, idx=(slice(1, 3),)),
         RNG.standard_normal((4, 3)), RNG.standard_normal((3,))),
    Case("index_set", lambda x, v: P.index_set(x, v, idx=(np.array([0, 2, 0]), 1)),
         RNG.standard_normal((3, 4)), RNG.standard_normal((3,))),
    Case("index_set", lambda x, v: P.index_set(x, v, idx=(MASK,)),
         RNG.standard_normal((3, 4)), RNG.standard_normal(())),
    Case("index_set", lambda x, v: P.index_set(x, v, idx=_idx_sep()),
         RNG.standard_normal((3, 2, 4)), RNG.standard_normal((3, 1))),
    # complex rows on real inputs (identity and zero); complex inputs: test_complex.py
    Case("real", lambda x: P.real(x), np.random.default_rng(1).standard_normal((3, 4))),
    Case("imag", lambda x: P.imag(x), np.random.default_rng(2).standard_normal((3, 4))),
    # the decompositions (dualgrad/linalg.py), on gauge-invariant outputs where the
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

if "polygamma" in P.TABLE:  # scipy.special's rows with a constant order (scipy_special.py)
    import scipy.special as sc

    from dualgrad.scipy import special as S
    CASES += [
        Case("polygamma", lambda x: S.polygamma(1, x), sample("positive", (3, 4))),
        Case("polygamma", lambda x: S.polygamma(np.array([0, 2, 3]), x), sample("positive", ())),
        Case("zeta", lambda q: sc.zeta(3.0, q), sample("positive", (3, 4))),
        Case("gammainc", lambda x: sc.gammainc(2.5, x), sample("positive", (3, 4))),
        Case("gammaincc", lambda x: sc.gammaincc(np.array([0.5, 1.0, 3.0]), x),
             sample("positive", (2, 1))),
        Case("jv", lambda x: sc.jv(np.array([0.0, 1.0, 3.0]), x), sample("real", (2, 3))),
        Case("yv", lambda x: sc.yv(1.0, x), sample("positive", (3, 4))),
        Case("iv", lambda x: sc.iv(0.5, x), sample("positive", (3, 4))),
        Case("kv", lambda x: sc.kv(2.0, x), sample("positive", (3, 4))),
    ]

def _fft_case(name, n_in, **kw):
    """An FFT row (numpy_tail.py) on x + iy (or x alone), as its real and imaginary parts
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


CASES += [  # the FFT rows (numpy_tail.py)
    _fft_case("fft", 2, axis=-1, norm=None),
    _fft_case("fft", 2, axis=-2, norm="ortho"),
    _fft_case("ifft", 2, axis=-1, norm="forward"),
    _fft_case("rfft", 1, axis=-1, norm=None),
    _fft_case("irfft", 2, n=6, axis=-1, norm=None),
    _fft_case("irfft", 2, n=7, axis=-1, norm="ortho"),
]

ALL = list(elementwise_cases()) + CASES


def test_every_primitive_has_cases():
    covered = {c.name for c in ALL}
    missing = sorted(set(P.TABLE) - covered)
    assert not missing, f"add a test case to CASES for primitives {missing}"


def _scalarize(case, u):
    return lambda *a: np.sum(case.fn(*a) * u)


@pytest.mark.parametrize("case", ALL, ids=repr)
def test_reverse_matches_finite_differences(case):
    num = dg.numerical_jacobian(case.fn, case.args)
    for i in range(len(case.args)):
        jac = dg.jacrev(case.fn, argnums=i)(*case.args)
        np.testing.assert_allclose(np.reshape(jac, num[i].shape), num[i], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", ALL, ids=repr)
def test_forward_matches_finite_differences(case):
    num = dg.numerical_jacobian(case.fn, case.args)
    for i in range(len(case.args)):
        jac = dg.jacfwd(case.fn, argnums=i)(*case.args)
        np.testing.assert_allclose(np.reshape(jac, num[i].shape), num[i], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", ALL, ids=repr)
def test_jvp_vjp_dot_product_identity(case):
    out, pull = dg.vjp(case.fn, *case.args)
    u = RNG.standard_normal(np.shape(out))
    vs = tuple(RNG.standard_normal(a.shape) for a in case.args)
    _, jv = dg.jvp(case.fn, case.args, vs)
    cts = pull(u)
    lhs = np.sum(u * jv)
    rhs = sum(np.sum(c * v) for c, v in zip(cts, vs))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", [c for c in ALL if c.smooth], ids=repr)
def test_second_order(case):
    out = case.fn(*case.args)
    s = _scalarize(case, RNG.standard_normal(np.shape(out)))
    for i in range(len(case.args)):
        g = dg.grad(s, argnums=i)
        num = dg.numerical_jacobian(g, case.args)[i]
        g_fwd = dg.jacfwd(s, argnums=i)  # the same gradient by forward mode
        hessians = {"fwd-over-rev": dg.jacfwd(g, argnums=i)(*case.args),
                    "rev-over-rev": dg.jacrev(g, argnums=i)(*case.args),
                    "fwd-over-fwd": dg.jacfwd(g_fwd, argnums=i)(*case.args),
                    "rev-over-fwd": dg.jacrev(g_fwd, argnums=i)(*case.args)}
        for how, h in hessians.items():
            np.testing.assert_allclose(np.reshape(h, num.shape), num, rtol=1e-5, atol=1e-6,
                                       err_msg=how)


LINALG = {"inv", "det", "logabsdet", "solve", "cholesky", "eigh", "svd", "qr", "eig", "pinv",
          "orth_complement"}  # numpy.linalg: float32/64 only
DTYPES = [np.float16, np.float32, np.float64, np.longdouble]


def _dtype_cases():
    for case in ALL:
        for dt in DTYPES:
            if case.name in LINALG and dt in (np.float16, np.longdouble):
                continue
            if case.name == "conv2d" and dt is np.float16:
                continue  # BLAS has no float16 matrix product; numpy's fallback is slow
            yield pytest.param(case, dt, id=f"{case!r}-{np.dtype(dt).name}")


@pytest.mark.parametrize("case, dtype", list(_dtype_cases()))
def test_derivative_dtype_matches_primal(case, dtype):
    """float16/32/64 and longdouble inputs give derivatives of exactly their dtype, in
    both modes: no silent promotion (to float64) or demotion (to float32)."""
    args = tuple(a.astype(dtype) for a in case.args)
    if case.name == "astype":
        fn = lambda x: P.astype(x, dtype=dtype)  # noqa: E731 - the row's own dtype
    else:
        fn = case.fn
    with np.errstate(all="ignore"):
        out, pull = dg.vjp(fn, *args)
        assert np.result_type(out) == dtype, f"the primal output has dtype {np.result_type(out)}"
        cts = pull(np.ones(np.shape(out), dtype))
        for i, c in enumerate(cts):
            assert np.result_type(c) == dtype, f"VJP of argument {i}: {np.result_type(c)}"
        tans = tuple(np.ones(a.shape, dtype) for a in args)
        _, t = dg.jvp(fn, args, tans)
        assert np.result_type(t) == dtype, f"JVP: {np.result_type(t)}"
