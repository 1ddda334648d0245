"""dg.jit's CUDA target (jit_cuda.py), without a GPU.

1. numba's CUDA simulator, in a pytest process of its own (``NUMBA_ENABLE_CUDASIM`` must
   be set before numba is imported; :func:`test_under_the_cuda_simulator` runs this file
   again with it set).  There the ``sim`` tests run ``dg.jit`` with the CUDA target forced
   on host arrays (the simulator's kernels take numpy arrays; ``use_array_module(np)``
   allocates with numpy): every row with a scalar form, value and gradient, float32 and
   float64, and the reductions' block and per-row paths, against eager numpy.
2. Typing: every generated kernel of those graphs is typed and lowered to NVVM IR for
   compute capability 9.0 in this process, catching what the simulator (which runs
   Python) lets through: a numpy function numba-cuda cannot compile, a float64 leak.
3. ``cuda``-marked tests compare jit on a real GPU with jit on the CPU; skipped here.

Transcendentals are compared to a few ulps and sums to a reordering bound, never bitwise.
"""

import types
import warnings

import numpy as np
import pytest
from cases import FUSED, bias_loss, check_bias_loss, close
from cuda_helpers import SIM, needs_cuda_pkg, needs_gpu, run_under_simulator, sim

import dualgrad as dg
from dualgrad.compiler import compiled as JIT
from dualgrad.compiler import emit_cuda as jit_cuda
from dualgrad.compiler import fuse as jit_fuse
from dualgrad.compiler import kernel as jit_kernel
from dualgrad.compiler import regions as jit_regions
from dualgrad.rules.table import TABLE


@needs_cuda_pkg
@pytest.mark.skipif(SIM, reason="this is the simulator process")
def test_under_the_cuda_simulator():
    run_under_simulator(__file__)


@pytest.fixture
def on_cuda(monkeypatch):
    """dg.jit's CUDA target on host arrays: the simulator's kernels take numpy arrays."""
    from dualgrad.backend.cuda import use_array_module
    monkeypatch.setattr(JIT, "target", lambda graph: "cuda")
    with use_array_module(np), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a refused kernel must not hide
        yield


def _kernels(jf):
    (entries,) = jf._cache.values()
    return [k for k in entries[0].kernels if k.fn is not None]


def _run(g, args):
    """``g`` jitted with every kernel used: the recording, then two replays (the first
    builds the kernels); the result and the number of kernels."""
    jf = dg.jit(g, codegen="numba")
    with np.errstate(all="ignore"):
        for _ in range(3):
            got = jf(*args)
    return got, len(_kernels(jf))


def _pairs(got, want):
    return zip(got, want) if isinstance(want, tuple) else [(got, want)]


# ---------------------------------------------------------------------------
# The simulator: every scalar row, value and gradient

@sim
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", FUSED, ids=repr)
def test_sim_every_scalar_row(case, dtype, on_cuda):
    fn = TABLE[case.name]
    args = tuple(a.astype(dtype) for a in case.args)
    nums = tuple(range(len(args)))
    u = np.random.default_rng(3).standard_normal(np.shape(fn(*args))).astype(dtype)
    variants = {"f": lambda *a: fn(*a) * 1.5 - 0.25,
                "grad": dg.grad(lambda *a: np.sum(fn(*a) * u), argnums=nums)}
    for name, g in variants.items():
        with np.errstate(all="ignore"):
            want = g(*args)
        got, n = _run(g, args)
        assert n >= 1 or name == "grad", "nothing fused"  # a gradient may fold to one op
        for w, o in _pairs(got, want):
            if np.asarray(w).dtype.kind == "f":
                close(o, w, np.asarray(w).dtype.type)
            else:
                np.testing.assert_array_equal(o, w)


# ---------------------------------------------------------------------------
# The simulator: reductions (block tree + second pass; one thread per kept index)

REDUCE = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min}


@sim
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("axis,keepdims", [(None, False), (None, True), (0, False),
                                           (1, True), ((0, 2), False)])
@pytest.mark.parametrize("name", sorted(REDUCE))
def test_sim_reductions(name, axis, keepdims, dtype, on_cuda):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3, 5, 7)) * 0.3 + 1.0).astype(dtype)
    red = REDUCE[name]

    def f(x):
        return red(np.exp(x) * 0.5 + x, axis=axis, keepdims=keepdims)
    want = f(x)
    got, n = _run(f, (x,))
    assert n == 1
    assert np.asarray(got).dtype == np.asarray(want).dtype and np.shape(got) == np.shape(want)
    tol = 1e-12 if dtype == np.float64 else 1e-5  # float64 accumulators, another order
    np.testing.assert_allclose(got, want, rtol=tol)


@sim
@pytest.mark.parametrize("name", ["max", "min", "sum"])
def test_sim_reductions_propagate_nan(name, on_cuda):
    x = np.linspace(-1.0, 1.0, 70).reshape(7, 10)
    x[3, 4] = np.nan
    red = REDUCE[name]
    for axis in (None, 0, 1):
        got, _ = _run(lambda x: red(x * 2.0 + 1.0, axis=axis), (x,))
        np.testing.assert_array_equal(np.isnan(got), np.isnan(red(x * 2.0 + 1.0, axis=axis)))


@sim
def test_sim_gradient_of_a_model(on_cuda):
    """The graph a reverse sweep makes (GEMMs replayed between kernels, broadcasts,
    a softmax's row sums over the last axis, a bias's sum over the batch axis)."""
    rng = np.random.default_rng(7)
    w, b, x = rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal((6, 4))

    def loss(w, b, x):
        h = np.tanh(x @ w + b)
        z = h - np.max(h, axis=1, keepdims=True)
        return -np.sum(z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))) / 6.0
    g = dg.grad(loss, argnums=(0, 1))
    got, n = _run(g, (w, b, x))
    assert n >= 2
    for o, w_ in zip(got, g(w, b, x)):
        np.testing.assert_allclose(o, w_, rtol=1e-12, atol=1e-14)


def _workloads():
    """The GPU bench's three gradients (bench/gpu.py), at simulator sizes."""
    from bench import gpu
    rng = np.random.default_rng(10)
    N, D, H, C = 8, 6, 5, 3
    mlp = dict(W1=rng.standard_normal((D, H)), b1=np.zeros(H), W2=rng.standard_normal((H, C)),
               b2=np.zeros(C), x=rng.standard_normal((N, D)), labels=rng.integers(0, C, N),
               rows=np.arange(N))
    return {"elementwise": (gpu.elementwise_loss, 0, (rng.standard_normal(50),)),
            "mlp_large": (gpu.mlp_large_loss(dg), (0, 1, 2, 3), tuple(mlp.values())),
            "conv": (gpu.conv_loss(dg), (0, 1), (rng.standard_normal((2, 3, 6, 6)),
                                                 rng.standard_normal((4, 3, 3, 3)) / 3))}


@sim
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", ["elementwise", "mlp_large", "conv"])
def test_sim_gpu_bench_workloads(name, dtype, on_cuda):
    """What ``python -m bench --device cuda`` times as dualgrad.jit, fused for the GPU."""
    loss, argnums, args = _workloads()[name]
    args = tuple(a.astype(dtype) if a.dtype.kind == "f" else a for a in args)
    g = dg.grad(loss, argnums=argnums)
    got, n = _run(g, args)
    assert n >= 1
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for o, w in zip(got if isinstance(got, tuple) else (got,),
                    g(*args) if isinstance(got, tuple) else (g(*args),)):
        assert o.dtype == w.dtype
        np.testing.assert_allclose(o, w, rtol=tol, atol=tol * np.abs(w).max())


@sim
def test_sim_shifted_reads_of_a_padded_cotangent(on_cuda):
    """A reverse sweep's cotangent of x[1:] (placed in zeros) read at shifted indices."""
    x = np.random.default_rng(11).standard_normal(40)
    g = dg.grad(lambda x: np.sum(np.sin(x[1:]) * np.cos(x[:-1])))
    got, n = _run(g, (x,))
    assert n >= 1
    np.testing.assert_allclose(got, g(x), rtol=1e-13, atol=1e-15)


@sim
def test_sim_reductions_over_two_axis_sets_are_replayed(on_cuda):
    """One region reducing axis 0 and axis 1: no single thread mapping, so that region
    is replayed (and the result is still right)."""
    x = np.random.default_rng(8).standard_normal((4, 6))

    def f(x):
        y = np.exp(x)
        return np.sum(y, axis=0), np.sum(y, axis=1)
    lowered = dg.jit(f).lower(x)
    regions = jit_regions.recompute(lowered.after, jit_regions.partition(lowered.after))
    assert [jit_cuda.kernel_source(lowered.after, r) for r in regions] == [None]
    for o, w in zip(_run(f, (x,))[0], f(x)):
        np.testing.assert_allclose(o, w, rtol=1e-13)


SHAPES = [(3, 5), (4, 7), (9, 3), (5, 40), (17, 6)]


@sim
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_sim_one_kernel_per_structure_over_many_shapes(dtype, on_cuda):
    """Shapes of one rank share the CUDA kernels of the first (launch sizes, allocations
    and loop bounds come from the inputs' shapes); every result right."""
    g = dg.grad(bias_loss, argnums=(0, 1))
    jg = dg.jit(g, codegen="numba")
    rng = np.random.default_rng(21)
    for k, shape in enumerate(SHAPES):
        check_bias_loss(jg, g, rng, shape, dtype)
        sources = {k.source for cs in jg._cache.values() for c in cs for k in c.kernels
                   if k.fn is not None}
        if k == 0:
            first, loaded = sources, len(jit_kernel._LOADED)
            assert len(first) >= 2 and all("_k[nb, " in s for s in first)
    assert sources == first and len(jit_kernel._LOADED) == loaded


def test_cuda_sources_are_generic_over_shape():
    """Without the simulator: the CUDA target writes one source for every shape of a
    structure (no length, no block count in it), a different one for another broadcast
    pattern."""
    def sources(x, b):
        graph = dg.jit(dg.grad(bias_loss, argnums=(0, 1))).lower(x, b).after
        regions = jit_regions.recompute(graph, jit_regions.partition(graph))
        return [jit_cuda.kernel_source(graph, r) for r in regions if r.outputs]
    rng = np.random.default_rng(22)
    each = [sources(rng.standard_normal(s), rng.standard_normal(s[1])) for s in SHAPES]
    assert all(s == each[0] for s in each) and len(each[0]) >= 2
    assert not any(str(n) in "".join(each[0]) for n in (17, 40))
    other = sources(rng.standard_normal((6, 4)), rng.standard_normal((6, 1)))  # a column
    assert other != each[0]


# ---------------------------------------------------------------------------
# Typing: every generated kernel lowered to NVVM IR for sm_90

def _graphs(case, dtype):
    fn = TABLE[case.name]
    args = tuple(a.astype(dtype) for a in case.args)
    u = np.random.default_rng(3).standard_normal(np.shape(fn(*args))).astype(dtype)
    nums = tuple(range(len(args)))
    for g in (lambda *a: fn(*a) * 1.5 - 0.25,
              dg.grad(lambda *a: np.sum(fn(*a) * u), argnums=nums)):
        with np.errstate(all="ignore"):
            yield dg.jit(g).lower(*args).after


@needs_cuda_pkg
@pytest.mark.skipif(SIM, reason="the simulator runs Python: typing is this process's")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_generated_kernels_lower_to_nvvm_ir(dtype, monkeypatch):
    """Each kernel typed with the arguments its launcher passes (recorded by running the
    launcher with the launch replaced), then lowered for sm_90."""
    import numba
    import numba.cuda.dispatcher
    from numba import types as nt
    from numba.cuda.compiler import compile_cuda

    from dualgrad.backend.cuda import use_array_module
    monkeypatch.setattr(numba.cuda.dispatcher, "get_current_device",
                        lambda: types.SimpleNamespace(compute_capability=(9, 0)))
    lowered, failed = 0, {}
    for case in FUSED:
        for graph in _graphs(case, dtype):
            for r in jit_regions.recompute(graph, jit_regions.partition(graph)):
                src = jit_cuda.kernel_source(graph, r)
                if src is None or not r.outputs:
                    continue
                ns = {}
                src = src.replace("cache=True", "cache=False")  # no file to cache beside
                exec(compile(src, "<kernel>", "exec"), ns)  # noqa: S102 - generated here
                kernel, launched = ns["_k"], []
                ns["_k"] = _Launch(launched)
                vals = [jit_regions.value_of(graph.ops, r.source(a)) for a in r.inputs]
                with use_array_module(np), np.errstate(all="ignore"):
                    try:
                        ns["kernel"](*vals)
                    except _Launched:
                        pass
                sig = [numba.typeof(v) for v in launched[0]]
                try:
                    ir = compile_cuda(kernel.py_func, nt.void, sig, cc=(9, 0)).library \
                        .get_llvm_str()
                except Exception as e:  # noqa: BLE001 - numba's typing errors
                    failed.setdefault(case.name, f"{type(e).__name__}: {str(e)[:300]}")
                    continue
                assert "define" in ir, case.name
                lowered += 1
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())
    assert lowered >= len(FUSED)


class _Launched(Exception):
    pass


class _Launch:
    """Stands in for a kernel: ``_k[blocks, threads](*args)`` records args and stops."""

    def __init__(self, into):
        self.into = into

    def __getitem__(self, config):
        def launch(*args):
            self.into.append(args)
            raise _Launched()
        return launch


# ---------------------------------------------------------------------------
# Which target a graph gets

def test_target_follows_the_inputs():
    class FakeGPUArray:  # what the target test looks at: the class's interface
        __cuda_array_interface__ = property(lambda self: {})
        shape, dtype = (3,), np.dtype(np.float64)

    def graph(*values):
        return types.SimpleNamespace(ops=[types.SimpleNamespace(kind="input", ans=v)
                                          for v in values])
    assert jit_fuse.target(graph(np.ones(3), 2.0)) == "cpu"
    assert jit_fuse.target(graph(np.ones(3), FakeGPUArray())) == "cuda"
    from strict_array import StrictArray  # another array type: replayed, never compiled
    assert jit_fuse.target(graph(StrictArray(np.ones(3)))) is None


# ---------------------------------------------------------------------------
# A real GPU: jit there against jit on the CPU

@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_gpu_jit_matches_cpu_jit(dtype):
    import cupy
    rng = np.random.default_rng(9)
    w, b = rng.standard_normal((64, 32)).astype(dtype), rng.standard_normal(32).astype(dtype)
    x = rng.standard_normal((256, 64)).astype(dtype)

    def loss(w, b, x):
        h = np.tanh(x @ w + b)
        z = h - np.max(h, axis=1, keepdims=True)
        return -np.sum(z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))) / x.shape[0]
    g = dg.jit(dg.grad(loss, argnums=(0, 1)), codegen="numba")
    want = [g(w, b, x) for _ in range(3)][-1]
    cw, cb, cx = dg.device_put((w, b, x), "cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = [g(cw, cb, cx) for _ in range(3)][-1]
    assert all(isinstance(o, cupy.ndarray) for o in got)
    (entries,) = [v for k, v in g._cache.items() if "cupy" in repr(k)]
    assert any(k.fn is not None for k in entries[0].kernels)  # fused CUDA kernels ran
    tol = 1e-10 if dtype == np.float64 else 2e-4
    for o, w_ in zip(got, want):
        np.testing.assert_allclose(cupy.asnumpy(o), w_, rtol=tol, atol=tol)


def _cnn(params, x):
    """tutorials/09_cnn_digits.py's model."""
    h = dg.nn.conv2d(x, params["conv1_w"], params["conv1_b"], padding=1)
    h = dg.nn.max_pool2d(dg.nn.relu(h), 2)
    h = dg.nn.conv2d(h, params["conv2_w"], params["conv2_b"], padding=1)
    h = dg.nn.max_pool2d(dg.nn.relu(h), 2)
    h = h.reshape(h.shape[0], -1)
    return h @ params["fc_w"].T + params["fc_b"]


@pytest.mark.cuda
@needs_gpu
def test_gpu_tutorial_cnn_matches_the_host():
    """The CNN tutorial's model and loss, eager and jitted, on the GPU and on the host:
    the same loss and gradients to rounding, and three SGD steps that track each other."""
    import cupy
    rng = np.random.default_rng(12)
    shapes = {"conv1_w": (16, 1, 3, 3), "conv1_b": (16,), "conv2_w": (32, 16, 3, 3),
              "conv2_b": (32,), "fc_w": (10, 128), "fc_b": (10,)}
    params = {k: rng.standard_normal(s) * 0.3 for k, s in shapes.items()}
    x, y = rng.random((16, 1, 8, 8)), rng.integers(0, 10, 16)

    def loss(params, x, y):
        return dg.nn.cross_entropy(_cnn(params, x), y)
    for make in (lambda f: f, dg.jit):
        step = make(dg.value_and_grad(loss))
        hp, dp = params, dg.device_put(params, "cuda")
        dx, dy = dg.device_put((x, y), "cuda")
        for _ in range(3):
            (hl, hg), (dl, dgr) = step(hp, x, y), step(dp, dx, dy)
            assert isinstance(dgr["fc_w"], cupy.ndarray)
            np.testing.assert_allclose(float(dl), hl, rtol=1e-10)
            for k in shapes:
                np.testing.assert_allclose(cupy.asnumpy(dgr[k]), hg[k], rtol=1e-8, atol=1e-11)
            hp = {k: hp[k] - 0.1 * hg[k] for k in shapes}
            dp = {k: dp[k] - 0.1 * dgr[k] for k in shapes}
