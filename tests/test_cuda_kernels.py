"""The ``@cuda.jit`` kernels (``kernels/cuda.py``) and the backend's CUDA module, without a GPU.

Three ways, from cheapest to most real:

1. numba's CUDA simulator: ``NUMBA_ENABLE_CUDASIM`` must be set before numba is
   imported, so :func:`test_under_the_cuda_simulator` runs this very file again in a
   pytest process of its own with it set; the ``sim`` tests then run every kernel
   (one Python thread per CUDA thread: tiny sizes) against the numpy reference and the
   CPU kernels, float32 and float64.
2. Typing: every kernel is typed and lowered to NVVM IR for compute capability 9.0 in
   this process (``numba.cuda.compiler.compile_cuda``; no driver, no NVVM needed),
   catching what the simulator, which runs Python, lets through.  Only the last step,
   NVVM IR to PTX, is left for a machine with the NVVM wheels or a GPU.
3. ``cuda``-marked tests run the backend's CUDA module on CuPy arrays on a real GPU
   and are skipped without one (``bench/gpu_check.sh`` runs them).

Transcendentals are compared to a few ulps, never bitwise; data movement (im2col,
col2im, pooling, ordered scatter-adds) bitwise.
"""

import types

import numpy as np
import pytest
from cases import sample, ulp_close
from cuda_helpers import SIM, gpu_present, needs_cuda_pkg, needs_gpu, run_under_simulator, sim

from dualgrad.backend import reference as R

DTYPES = [np.float32, np.float64]
NAMES = sorted(R.UNARY)


# ---------------------------------------------------------------------------
# The simulator, in a process of its own

@needs_cuda_pkg
@pytest.mark.skipif(SIM, reason="this is the simulator process")
def test_under_the_cuda_simulator():
    run_under_simulator(__file__, timeout=600)


def _kernels():
    from dualgrad.kernels import cuda as k  # numba.cuda is imported only here
    return k


def _to_device(*arrays):
    from numba import cuda
    return [cuda.to_device(np.ascontiguousarray(a)) for a in arrays]


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------
# Elementwise

@sim
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_sim_unary(name, dtype):
    k = _kernels()
    x = sample(name, (37,), dtype)  # 37: more than one grid-stride round, not a multiple
    kernel = k.compile_unary(*R.UNARY[name])
    dx, y, d = _to_device(x, np.empty_like(x), np.empty_like(x))
    k.unary(kernel, dx, y, d, True)
    ry, rd = R.unary(name, x, True)
    assert y.copy_to_host().dtype == dtype
    ulp_close(y.copy_to_host(), ry, dtype=dtype)
    ulp_close(d.copy_to_host(), rd, dtype=dtype, scale=1.0)
    y2 = _to_device(np.full_like(x, np.nan))[0]
    k.unary(kernel, dx, y2, y2, False)
    ulp_close(y2.copy_to_host(), ry, dtype=dtype)


# ---------------------------------------------------------------------------
# Scatter-add

@sim
@pytest.mark.parametrize("dtype", DTYPES)
def test_sim_index_add_rows(dtype):
    k = _kernels()
    r = _rng(1)
    B, V, M, D = 2, 5, 9, 3
    idx = r.integers(-V, V, M)
    vals = r.standard_normal((B, M, D)).astype(dtype)
    want = np.zeros((B, V, D), dtype)
    np.add.at(want, (slice(None), idx), vals)
    for det in (True, False):
        out, di, dv = _to_device(np.zeros((B, V, D), dtype), idx, vals)
        assert k.index_add_rows(out, di, dv, deterministic=det) == -1
        if det:  # np.add.at's order of additions: bitwise
            np.testing.assert_array_equal(out.copy_to_host(), want)
        else:
            np.testing.assert_allclose(out.copy_to_host(), want, rtol=8 * np.finfo(dtype).eps,
                                       atol=8 * np.finfo(dtype).eps)


@sim
def test_sim_index_add_reports_first_bad_index():
    k = _kernels()
    out, idx, vals = _to_device(np.zeros((1, 4, 1)), np.array([0, 7, 1, -5, 9]),
                                np.ones((1, 5, 1)))
    assert k.index_add_rows(out, idx, vals) == 1
    assert not out.copy_to_host().any()  # nothing added when an index is bad


# ---------------------------------------------------------------------------
# Softmax family

SPECIAL_ROWS = np.array([[1000.0, 1000.0, -1.0], [-np.inf, -np.inf, -np.inf],
                         [np.inf, 0.0, 1.0], [np.nan, 1.0, 2.0]])


@sim
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the special rows, in kernel threads
@pytest.mark.parametrize("dtype", DTYPES)
def test_sim_softmax_family(dtype):
    k = _kernels()
    x = _rng(2).standard_normal((5, 7)).astype(dtype)
    g = _rng(3).standard_normal((5, 7)).astype(dtype)
    eps = dict(dtype=dtype, ulps=8)

    def rows(kernel, *arrays, out_shape=None):
        dev = _to_device(*arrays)
        out = _to_device(np.empty(out_shape or arrays[-1].shape, dtype))[0]
        getattr(k, kernel)(*dev, out)
        return out.copy_to_host()

    y, ls = R.softmax(x, -1), R.log_softmax(x, -1)
    ulp_close(rows("softmax_rows", x), y, **eps)
    ulp_close(rows("log_softmax_rows", x), ls, **eps, scale=4.0)
    ulp_close(rows("logsumexp_rows", x, out_shape=(5,)), R.logsumexp(x, -1, False), **eps)
    ulp_close(rows("softmax_vjp_rows", g, y), R.softmax_vjp(g, y, -1), **eps)
    ulp_close(rows("log_softmax_vjp_rows", g, ls), R.log_softmax_vjp(g, ls, -1), **eps,
              scale=4.0)
    ans = R.logsumexp(x, -1, False)
    got = rows("logsumexp_vjp_rows", g[:, 0].copy(), x, ans, out_shape=x.shape)
    ulp_close(got, R.logsumexp_vjp(g[:, 0], x, ans, -1, False), **eps)
    with np.errstate(all="ignore"):
        s = SPECIAL_ROWS.astype(dtype)
        np.testing.assert_array_equal(rows("logsumexp_rows", s, out_shape=(4,)),
                                      R.logsumexp(s, -1, False))
        np.testing.assert_allclose(rows("softmax_rows", s), R.softmax(s, -1),
                                   rtol=4 * np.finfo(dtype).eps)


# ---------------------------------------------------------------------------
# im2col / col2im and max pooling: bitwise the CPU kernels

GEOMETRIES = [((2, 3, 5, 6), 3, 3, (1, 1, 1, 1, 1, 1)), ((1, 2, 7, 7), 2, 3, (2, 1, 0, 2, 1, 2)),
              ((1, 1, 6, 5), 3, 2, (2, 3, 1, 0, 2, 1))]


def _out_hw(shape, kh, kw, geo):
    sh, sw, ph, pw, dh, dw = geo
    H, W = shape[-2:]
    return (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1


@sim
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kh,kw,geo", GEOMETRIES)
def test_sim_im2col_col2im(shape, kh, kw, geo, dtype):
    from dualgrad import kernels as cpu
    k = _kernels()
    x = _rng(4).standard_normal(shape).astype(dtype)
    cshape = shape[:2] + (kh, kw) + _out_hw(shape, kh, kw, geo)
    want = np.empty(cshape, dtype)
    cpu.conv.im2col(x, *geo, want)
    dx, cols = _to_device(x, np.full(cshape, np.nan, dtype))
    k.im2col(dx, *geo, cols)
    np.testing.assert_array_equal(cols.copy_to_host(), want)
    c = _rng(5).standard_normal(cshape).astype(dtype)
    gwant = np.zeros(shape, dtype)
    cpu.conv.col2im(c, *geo, gwant)
    dc, gx = _to_device(c, np.zeros(shape, dtype))
    k.col2im(dc, *geo, gx)
    np.testing.assert_array_equal(gx.copy_to_host(), gwant)


POOLS = [((1, 3, 6, 6), (2, 2, 2, 2, 0, 0)), ((2, 2, 5, 7), (3, 3, 2, 2, 1, 1)),
         ((1, 2, 4, 5), (3, 2, 1, 2, 1, 0))]


@sim
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,geo", POOLS)
def test_sim_max_pool2d(shape, geo, dtype):
    from dualgrad import kernels as cpu
    k = _kernels()
    x = _rng(6).integers(-3, 3, shape).astype(dtype)  # ties: the first maximum must win
    x[0, 0, 1, 1] = np.nan
    kh, kw, sh, sw, ph, pw = geo
    hw = ((shape[2] + 2 * ph - kh) // sh + 1, (shape[3] + 2 * pw - kw) // sw + 1)
    oshape = shape[:2] + hw
    out, arg = np.empty(oshape, dtype), np.empty(oshape, np.intp)
    cpu.conv.max_pool2d_fwd(x, *geo, out, arg)
    dx, dout, darg = _to_device(x, np.empty(oshape, dtype), np.empty(oshape, np.intp))
    k.max_pool2d_fwd(dx, *geo, dout, darg)
    np.testing.assert_array_equal(dout.copy_to_host(), out)
    np.testing.assert_array_equal(darg.copy_to_host(), arg)
    P = shape[0] * shape[1]
    g = _rng(7).standard_normal((2, P) + hw).astype(dtype)
    want = np.zeros((2, P, shape[2] * shape[3]), dtype)
    cpu.conv.max_pool2d_bwd(g, arg.reshape((P,) + hw), want)
    dg_, da, gx = _to_device(g, arg.reshape((P,) + hw), np.zeros_like(want))
    k.max_pool2d_bwd(dg_, da, gx)
    np.testing.assert_allclose(gx.copy_to_host(), want, rtol=4 * np.finfo(dtype).eps)


# ---------------------------------------------------------------------------
# The backend's CUDA module, end to end (simulator: numpy arrays; GPU: CuPy arrays)

def _module_checks(put, get, dtype):
    """Every operation of dualgrad.backend.cuda against dualgrad.backend.reference."""
    from dualgrad.backend import cuda as C
    r = _rng(8)
    x = r.uniform(0.5, 1.5, (3, 4, 5)).astype(dtype)
    for name in ("tanh", "log", "softplus", "relu"):
        y, d = C.unary(name, put(x), True)
        ry, rd = R.unary(name, x, True)
        ulp_close(get(y), ry, dtype=dtype)
        ulp_close(get(d), rd, dtype=dtype)
    for axis in (0, 1, -1):
        ulp_close(get(C.on_rows("softmax", axis, put(x))), R.softmax(x, axis), dtype=dtype, ulps=8)
        gx = r.standard_normal(x.shape).astype(dtype)
        ls = R.log_softmax(x, axis)
        ulp_close(get(C.on_rows("log_softmax_vjp", axis, put(gx), put(ls))),
                  R.log_softmax_vjp(gx, ls, axis), dtype=dtype, ulps=8, scale=4.0)
    for axis in (None, 1, (0, 2)):
        ans = R.logsumexp(x, axis, False)
        ulp_close(get(C.logsumexp(put(x), axis, False)), ans, dtype=dtype, ulps=8)
        g = np.ones(np.shape(ans), dtype)
        ulp_close(get(C.logsumexp_vjp(put(g), put(x), put(np.asarray(ans)), axis)),
                  R.logsumexp_vjp(g, x, ans, axis, False), dtype=dtype, ulps=8)
    vals = r.standard_normal((2, 6, 3)).astype(dtype)
    idx = np.array([0, 3, 0, -1, 2, 3])
    out = get(C.index_add_rows(put(vals), put(idx), 2, 4, 3, 1, deterministic=True))
    want = np.zeros((2, 4, 3), dtype)
    np.add.at(want, (slice(None), idx), vals)
    np.testing.assert_array_equal(out, want)
    with pytest.raises(IndexError, match="index 4 is out of bounds for axis 1 with size 4"):
        C.index_add_rows(put(vals), put(idx + 1), 2, 4, 3, 1)
    img = r.standard_normal((2, 3, 6, 5)).astype(dtype)
    w = r.standard_normal((4, 3, 3, 3)).astype(dtype)
    geo, hw = R.conv_geometry(img.shape, w.shape, 2, 1, 1)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    out = C.conv2d(put(img), put(w), geo, hw)
    np.testing.assert_allclose(get(out), R.conv2d(img, w, geo, hw), **tol)
    g = r.standard_normal(get(out).shape).astype(dtype)
    np.testing.assert_allclose(get(C.conv2d_grad_input(put(g), put(w), img.shape, geo, hw)),
                               R.conv2d_grad_input(g, w, img.shape, geo, hw), **tol)
    np.testing.assert_allclose(get(C.conv2d_grad_weight(put(g), put(img), w.shape, geo, hw)),
                               R.conv2d_grad_weight(g, img, w.shape, geo, hw), **tol)
    pgeo, phw = R.pool_geometry(img.shape, 2, None, 0)
    pout, parg = C.max_pool2d(put(img), pgeo, phw)
    rout, rarg = R.max_pool2d(img, pgeo, phw)
    np.testing.assert_array_equal(get(pout), rout)
    np.testing.assert_array_equal(get(parg), rarg)
    np.testing.assert_array_equal(get(C.max_pool2d_grad(put(rout), put(rarg), img.shape)),
                                  R.max_pool2d_grad(rout, rarg, img.shape))


@sim
@pytest.mark.parametrize("dtype", DTYPES)
def test_sim_backend_cuda_module(dtype):
    from dualgrad.backend import cuda as C
    with C.use_array_module(np):  # the simulator's kernels take host arrays
        _module_checks(lambda a: a, lambda a: a, dtype)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_backend_cuda_module(dtype):
    import cupy
    _module_checks(cupy.asarray, cupy.asnumpy, dtype)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_gpu_unary_every_row(name, dtype):
    import cupy

    from dualgrad.backend import cuda as C
    x = sample(name, (1000,), dtype)
    y, d = C.unary(name, cupy.asarray(x), True)
    ry, rd = R.unary(name, x, True)
    ulp_close(cupy.asnumpy(y), ry, dtype=dtype, ulps=8)   # libdevice vs numpy's loops
    ulp_close(cupy.asnumpy(d), rd, dtype=dtype, ulps=8)


def test_ops_for_refuses_mixed_arrays():
    from dualgrad.backend import cuda as C

    class FakeDevice:
        __cuda_array_interface__ = {}
        shape = (3,)

    assert C.ops_for(np.ones(3), 2.0) is None
    assert C.ops_for(FakeDevice(), 2.0) is C
    with pytest.raises(TypeError, match=r"mixes a device array .*FakeDevice.* host numpy"):
        C.ops_for(FakeDevice(), np.ones(3))


# ---------------------------------------------------------------------------
# npmath: the GPU's replacements for numpy functions, compiled for the CPU

SPECIALS = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 30.0, -30.0, 700.0, -745.0, 1e-300,
                     np.inf, -np.inf, np.nan])


@pytest.mark.skipif(SIM, reason="the simulator process checks the kernels")
@pytest.mark.parametrize("dtype", DTYPES)
def test_npmath_matches_numpy(dtype):
    from dualgrad.kernels import npmath
    from numba import njit
    x = SPECIALS.astype(dtype)
    with np.errstate(all="ignore"):
        for name in npmath.__all__:
            want = getattr(np, name)
            if name in npmath.BINARY:
                fn = njit(getattr(npmath, name))
                for y in SPECIALS.astype(dtype):
                    got = np.array([fn(a, y) for a in x], dtype)
                    # y as an array: numpy's power takes a sqrt fast path for a scalar 0.5
                    ulp_close(got, want(x, np.full_like(x, y)), dtype=dtype)
                continue
            fn = njit(getattr(npmath, name))
            got = np.array([fn(a) for a in x])
            expect = want(x)
            if expect.dtype == bool:
                np.testing.assert_array_equal(got, expect)
            else:
                ulp_close(got.astype(dtype), expect, dtype=dtype)
                np.testing.assert_array_equal(np.signbit(got[x == 0]), np.signbit(expect[x == 0]))


# ---------------------------------------------------------------------------
# Typing: every kernel lowered to NVVM IR for sm_90, without a GPU

def _lowered(kernel, *argtypes):
    from numba import types as nt
    from numba.cuda.compiler import compile_cuda
    cres = compile_cuda(kernel.py_func, nt.void, argtypes, cc=(9, 0))
    return cres.library.get_llvm_str()


@needs_cuda_pkg
@pytest.mark.skipif(SIM or gpu_present(), reason="the simulator process or a real GPU "
                    "checks these kernels")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernels_lower_to_nvvm_ir(dtype, monkeypatch):
    import numba.cuda.dispatcher
    from numba import types as nt
    # device functions ask the (absent) driver for its compute capability: say sm_90
    monkeypatch.setattr(numba.cuda.dispatcher, "get_current_device",
                        lambda: types.SimpleNamespace(compute_capability=(9, 0)))
    k = _kernels()
    dt = getattr(nt, dtype)
    a1, a2, a3, a4, a6 = (nt.Array(dt, n, "C") for n in (1, 2, 3, 4, 6))
    i64, geo = nt.int64, [nt.int64] * 6
    ints = {n: nt.Array(nt.int64, n, "C") for n in (1, 3, 4)}
    for name in NAMES:
        ir = _lowered(k.compile_unary(*R.UNARY[name]), a1, a1, a1, nt.boolean)
        assert "define" in ir, name
    kernels = [(k._first_bad_index, ints[1], i64, ints[1]),
               (k._index_add_atomic, a3, ints[1], a3), (k._index_add_ordered, a3, ints[1], a3),
               (k._softmax_rows, a2, a2), (k._log_softmax_rows, a2, a2),
               (k._softmax_vjp_rows, a2, a2, a2), (k._log_softmax_vjp_rows, a2, a2, a2),
               (k._logsumexp_rows, a2, a1), (k._logsumexp_vjp_rows, a1, a2, a1, a2),
               (k._im2col, a4, *geo, a6), (k._col2im, a6, *geo, a4),
               (k._max_pool2d_fwd, a4, *geo, a4, ints[4]), (k._max_pool2d_bwd, a4, ints[3], a3)]
    for kernel, *sig in kernels:
        ir = _lowered(kernel, *sig)
        assert "define" in ir, kernel.py_func.__name__
    width = {"float32": "f32", "float64": "f64"}[dtype]  # a hardware float atomic add
    assert f"llvm.nvvm.atomic.load.add.{width}" in _lowered(k._index_add_atomic, a3, ints[1], a3)
