"""dg.jit's numba back end (emit_cpu, kernel, fuse): every row with a scalar form, fused.

Generated from the primitive table: each elementwise row runs inside a fused kernel
(``codegen="numba"``, so the kernel is used whatever it costs) for its value, its gradient,
its forward derivative and, where smooth, its Hessian; in float32 and float64; on
contiguous, strided and broadcast inputs.  Kernels may round differently from numpy
(numba's libm, sums in another order), so results are compared to a few ulps, and fused
sums to a bound on the reordering.
"""

import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from cases import FUSED, bias_loss, check_bias_loss, close

import dualgrad as dg
from dualgrad.compiler import emit_cpu
from dualgrad.compiler import kernel as jit_kernel
from dualgrad.compiler import regions as jit_regions
from dualgrad.core.trace import Primitive
from dualgrad.rules import TABLE


def _variants(fn, nargs, u, smooth):
    nums = tuple(range(nargs))
    out = {"f": lambda *a: fn(*a) * 1.5 - 0.25,
           "grad": dg.grad(lambda *a: np.sum(fn(*a) * u), argnums=nums),
           "jacfwd": dg.jacfwd(lambda *a: fn(*a) * 2.0, argnums=nums)}
    if smooth:
        out["hessian"] = dg.hessian(lambda *a: np.sum(fn(*a) * u))
    return out


def _layouts(args):
    """The case's arguments as given, as strided views, and broadcast from a row."""
    yield "contiguous", args
    yield "strided", tuple(np.repeat(a, 2, axis=-1)[..., ::2] if a.ndim else a for a in args)
    if all(a.ndim == 2 and a.shape[0] > 1 for a in args):
        yield "broadcast", tuple(np.broadcast_to(a[:1], a.shape) for a in args)


def _fused_count(jf, args):
    return len(jf.lower(*args).kernels)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", FUSED, ids=repr)
def test_every_scalar_row_fuses(case, dtype):
    fn = TABLE[case.name]
    base = tuple(a.astype(dtype) for a in case.args)
    u = np.random.default_rng(3).standard_normal(np.shape(fn(*base))).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a kernel that fails must not hide
        for layout, args in _layouts(base):
            for name, g in _variants(fn, len(args), u, case.smooth).items():
                with np.errstate(all="ignore"):
                    want = g(*args)
                jf = dg.jit(g, codegen="numba")
                with np.errstate(all="ignore"):
                    jf(*args)
                    got = jf(*args)  # the first replay builds and uses the kernels
                for w, o in zip(np.atleast_1d(want) if not isinstance(want, tuple) else want,
                                np.atleast_1d(got) if not isinstance(got, tuple) else got):
                    close(o, w, dtype)
                if name == "f" and layout == "contiguous":
                    assert _fused_count(jf, args) >= 1, "the row did not fuse"


@pytest.mark.parametrize("name", ["sum", "max", "min", "prod"])
@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (-1, True), ((0, 2), False)])
def test_reductions_fuse_with_their_producers(name, axis, keepdims):
    red = getattr(np, {"max": "amax", "min": "amin"}.get(name, name))
    x = np.random.default_rng(0).uniform(0.5, 1.5, (4, 3, 5))
    f = lambda x: red(np.sin(x) * x + 1.0, axis=axis, keepdims=keepdims)  # noqa: E731
    jf = dg.jit(f, codegen="numba")
    jf(x)
    got = jf(x)
    lo = jf.lower(x)
    assert len(lo.kernels) == 1 and "for i2 in range(n2)" in lo.kernels[0]
    close(got, f(x), np.float64)


def test_sum_reordering_is_bounded():
    x = np.random.default_rng(1).standard_normal(200_000)
    f = lambda x: np.sum(np.cos(x) * x)  # noqa: E731
    jf = dg.jit(f, codegen="numba")
    jf(x)
    got, want = jf(x), f(x)
    terms = np.abs(np.cos(x) * x)
    assert abs(got - want) <= x.size * np.finfo(float).eps * terms.sum()
    assert type(got) is type(want)


def test_nan_and_inf_propagate_through_reductions():
    x = np.array([1.0, np.nan, 3.0, -np.inf])
    for red in (np.sum, np.max, np.min, np.prod):
        f = lambda x, red=red: red(x * 2.0 + 1.0)  # noqa: E731
        jf = dg.jit(f, codegen="numba")
        jf(x)
        got = jf(x)
        want = f(x)
        assert np.isnan(got) == np.isnan(want) and (np.isnan(want) or got == want)


def test_float32_stays_float32_and_constants_are_typed():
    x = np.linspace(-1, 1, 7, dtype=np.float32)
    f = lambda x: np.sum(np.tanh(x) * 0.1 + x * x)  # noqa: E731
    jf = dg.jit(dg.value_and_grad(f), codegen="numba")
    jf(x)
    v, g = jf(x)
    assert g.dtype == np.float32 and np.asarray(v).dtype == np.float32
    src = "\n".join(jf.lower(x).kernels)
    # 0.1 is an argument (jit_regions.is_lifted), cast for the loop; 1.0 a typed literal
    assert "(v0 * np.float32(a1))" in src and "np.float32(1.0)" in src
    close(g, dg.grad(f)(x), np.float32)


def test_scalar_graph_is_one_function():
    def baydin(x1, x2):
        return np.log(x1) + x1 * x2 - np.sin(x2)
    jg = dg.jit(dg.grad(baydin, argnums=(0, 1)), codegen="numba")
    jg(2.0, 5.0)
    g = jg(2.0, 5.0)
    assert g[0] == 5.5 and abs(g[1] - 1.7163378145367738) < 1e-15
    lo = jg.lower(2.0, 5.0)
    assert len(lo.kernels) == 1 and "for " not in lo.kernels[0]


def test_a_row_that_does_not_compile_falls_back_to_replay():
    bogus = Primitive("bogus", np.sin, bcast=True, scalar=lambda x: f"no_such_fn({x})")
    x = np.linspace(0, 1, 5)
    f = lambda x: bogus(x) * 2.0 + 1.0  # noqa: E731
    jf = dg.jit(f, codegen="numba")
    jf(x)
    with pytest.warns(RuntimeWarning, match="did not compile"):
        got = jf(x)
    np.testing.assert_array_equal(got, np.sin(x) * 2.0 + 1.0)


def test_a_kernel_that_disagrees_is_not_used():
    liar = Primitive("liar", np.sin, bcast=True, scalar=lambda x: f"np.cos({x})")
    x = np.linspace(0, 1, 5)
    jf = dg.jit(lambda x: liar(x) * 2.0, codegen="numba")
    jf(x)
    with pytest.warns(RuntimeWarning, match="disagreed"):
        got = jf(x)
    np.testing.assert_array_equal(got, np.sin(x) * 2.0)


def test_backward_region_recomputes_cheap_values():
    x = np.random.default_rng(2).standard_normal(50)

    def f(x):  # the backward loop needs 1/sum(...) first: a second region, which
        y = x * 3.0 + 1.0  # recomputes y from x rather than reading it
        return np.log(np.sum(y * y))
    jg = dg.jit(dg.grad(f), codegen="numba")
    jg(x)
    close(jg(x), dg.grad(f)(x), np.float64)
    graph = jg._cache[next(iter(jg._cache))][0].graph
    regions = jit_regions.recompute(graph, jit_regions.partition(graph))
    assert len(regions) >= 2 and any(r.copied for r in regions[1:])


def test_partition_never_makes_a_cycle():
    x = np.random.default_rng(4).standard_normal(6)

    def f(x):  # b (outside: a reduction) sits between two elementwise nodes of one shape
        a = np.sin(x) * 2.0
        b = np.sum(a)
        return np.cos(a) * b + a
    jf = dg.jit(f, codegen="numba")
    jf(x)
    close(jf(x), f(x), np.float64)


def test_off_and_env_switch():
    x = np.linspace(0, 1, 5)
    jf = dg.jit(lambda x: np.sin(x) * 2.0 + 1.0, codegen="off")
    jf(x)
    jf(x)
    assert jf.lower(x).kernels == []
    with pytest.raises(ValueError, match="codegen"):
        dg.jit(lambda x: x, codegen="fast")


def _run(code, **env):
    full = dict(os.environ, **env)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=full, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


_PROGRAM = """
import numpy as np, dualgrad as dg
x = np.linspace(-1, 1, 11)
jf = dg.jit(dg.grad(lambda x: np.sum(np.tanh(x) * x)), codegen="numba")
jf(x); g = jf(x)
want = (1 - np.tanh(x) ** 2) * x + np.tanh(x)
assert np.allclose(g, want, rtol=1e-14, atol=1e-15), (g, want)
k = jf._cache[next(iter(jf._cache))][0].kernels[0].fn
print(sum(getattr(k, "stats", None).cache_hits.values()) if hasattr(k, "stats") else -1)
"""


def test_second_process_loads_the_cached_machine_code(tmp_path):
    first = _run(_PROGRAM, XDG_CACHE_HOME=str(tmp_path))
    second = _run(_PROGRAM, XDG_CACHE_HOME=str(tmp_path))
    assert int(first) == 0 and int(second) >= 1
    assert any(f.startswith("dualgrad_kernel_") for f in os.listdir(tmp_path / "dualgrad"
                                                                      / "kernels"))


def test_generated_code_runs_as_python_without_numba(tmp_path):
    assert int(_run(_PROGRAM, XDG_CACHE_HOME=str(tmp_path), NUMBA_DISABLE_JIT="1")) == -1


def test_no_cycle_through_another_region():
    """Region A -> matmul -> region B, and a node that depends on B only through B's
    other members must not join A: with each region one node, A and B would read each
    other (found by GradBench's det under --jit)."""
    x = np.random.default_rng(5).standard_normal((4, 3))

    def f(x):
        a = x * 2.0                        # region A, shape (4, 3)
        b = (a @ np.ones(3)) * 3.0 + 1.0   # region B, shape (4,), after A
        c = np.sin(x[:, 0]) * 2.0          # also B's shape; independent of A
        return a + c.reshape(4, 1) * x, b  # reads B: cannot join A
    jf = dg.jit(f, codegen="numba")
    jf(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = jf(x)
    for g, w in zip(got, f(x)):
        close(g, w, np.float64)


def test_padded_cotangents_are_read_in_place():
    """The reverse sweep of ``x[1:]`` places a cotangent in zeros (scatter_add of a
    slice); a kernel reads it at shifted indices instead of the padded copy."""
    def rosenbrock(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    x = np.random.default_rng(6).standard_normal(50)
    v = np.random.default_rng(7).standard_normal(50)
    jh = dg.jit(lambda p, t: dg.hvp(rosenbrock, p, t), codegen="numba")
    jh((x,), (v,))
    got = jh((x,), (v,))
    want = dg.hvp(rosenbrock, (x,), (v,))
    for g, w in zip(got, want):
        close(np.asarray(g).reshape(-1), np.asarray(w).reshape(-1), np.float64)
    lo = jh.lower((x,), (v,))  # a cached signature keeps no fused graph: lower's does
    assert lo.after.count("scatter_add") > 0 and lo.fused.count("scatter_add") == 0
    comp = next(c for cs in jh._cache.values() for c in cs)
    # read (or recomputed: regions._chain) at shifted indices, tested at the edges
    assert any(" if " in k.source and re.search(r"- 1,?\]", k.source) for k in comp.kernels)


def test_threaded_loops_agree_with_serial():
    """The prange variant (chosen by timing when numba has threads) computes the same
    values; a max over the outer axis is never threaded."""
    x = np.random.default_rng(8).standard_normal((64, 7))
    for f in (lambda x: np.sum(np.sin(x) * x + 1.0),
              lambda x: np.sum(np.exp(-x * x) * 2.0, axis=-1),
              lambda x: np.tanh(x) * 3.0 - x):
        jf = dg.jit(f, codegen="numba")
        jf(x)
        jf(x)
        comp = next(c for cs in jf._cache.values() for c in cs)
        (k,) = comp.kernels
        assert emit_cpu.parallel_ok(comp.graph, k.region)
        src = emit_cpu.kernel_source(comp.graph, k.region, parallel=True)
        assert "prange(n0)" in src and "parallel=True" in src
        vals = jit_kernel._inputs(comp.graph, k.region)
        for got, want in zip(jit_kernel.load(src)(*vals), k.fn(*vals)):
            close(got, want, np.float64)
    jm = dg.jit(lambda x: np.max(np.sin(x) * 2.0, axis=0), codegen="numba")
    jm(x)
    jm(x)
    comp = next(c for cs in jm._cache.values() for c in cs)
    assert not emit_cpu.parallel_ok(comp.graph, comp.kernels[0].region)


# ---------------------------------------------------------------------------
# Kernels generic over shape: one source per structure, whatever the lengths

def _sources(jf):
    return {k.source for cs in jf._cache.values() for c in cs for k in c.kernels
            if k.fn is not None}


def _kernel_modules():
    return sum(1 for k in sys.modules if k.startswith("dualgrad_kernel_"))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_one_kernel_per_structure_over_many_shapes(dtype):
    """Twelve shapes of one rank compile the kernels of the first: no new source, no new
    compiled kernel, no new module; every result right against eager."""
    g = dg.grad(bias_loss, argnums=(0, 1))
    jg = dg.jit(g, codegen="numba")
    rng = np.random.default_rng(12)
    shapes = [(3, 5), (4, 7), (9, 3), (5, 40), (17, 6), (3, 3), (31, 11), (6, 64), (40, 5),
              (7, 7), (12, 29), (100, 3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a refused kernel must not hide
        for k, shape in enumerate(shapes):
            check_bias_loss(jg, g, rng, shape, dtype)
            if k == 0:
                first = _sources(jg)
                loaded, modules = len(jit_kernel._LOADED), _kernel_modules()
                assert len(first) >= 2, "the gradient did not fuse"
    assert _sources(jg) == first
    assert len(jit_kernel._LOADED) == loaded and _kernel_modules() == modules
    assert jg.cache_size == len(shapes)
    text = "\n".join(first)
    assert "range(n0)" in text and "/ 3" not in text and "0.333" not in text  # no lengths


def test_size_one_axes_are_part_of_the_structure():
    """Which axes broadcast is in the source: y of shape (n, m), (1, m) and (n, 1) give
    three kernels, each shared by every length with its pattern, all right; a length-1
    axis on both operands is an ordinary axis."""
    rng = np.random.default_rng(13)
    f = lambda x, y: np.sum(np.tanh(x * y) + x, axis=0)  # noqa: E731
    seen = {}
    for n, m in [(4, 6), (9, 5), (2, 11)]:
        for pattern, ys in {"full": (n, m), "row": (1, m), "column": (n, 1)}.items():
            x, y = rng.standard_normal((n, m)), rng.standard_normal(ys)
            jf = dg.jit(f, codegen="numba")
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)
                jf(x, y)
                got = jf(x, y)
            close(got, f(x, y), np.float64)
            (src,) = _sources(jf)
            seen.setdefault(pattern, set()).add(src)
    assert all(len(s) == 1 for s in seen.values()), {p: len(s) for p, s in seen.items()}
    full, row, column = (next(iter(seen[p])) for p in ("full", "row", "column"))
    assert len({full, row, column}) == 3
    assert "a1[0, i1]" in row and "a1[i0, 0]" in column and "a1[i0, i1]" in full
    x = rng.standard_normal((1, 6))  # (1, m) with (1, m): both span axis 0
    jf = dg.jit(f, codegen="numba")
    jf(x, x + 1.0)
    close(jf(x, x + 1.0), f(x, x + 1.0), np.float64)


def test_padded_reads_share_a_kernel_over_lengths():
    """x[1:] and x[:-1]'s cotangents pad one element at one end whatever the length:
    their shifted reads are one source for every length."""
    g = dg.grad(lambda x: np.sum(np.sin(x[1:]) * np.cos(x[:-1])))
    jg = dg.jit(g, codegen="numba")
    for n in (10, 23, 64):
        x = np.random.default_rng(n).standard_normal(n)
        jg(x)
        close(jg(x), g(x), np.float64)
        if n == 10:
            first = _sources(jg)
    assert _sources(jg) == first and any(" if " in s for s in first)


def test_timing_is_kept_per_source_and_size_class():
    """A timing decides for shapes within a factor of two of the one timed, never for a
    very different size (jit_kernel.timing)."""
    from types import SimpleNamespace
    calls = []

    def measure():
        calls.append(1)
        return (len(calls), 0.0)
    src = "# a source no kernel has: test_timing_is_kept_per_source_and_size_class\n"
    try:
        for shape in [(40, 25), (31, 32), (63, 16), (4, 5), (1000, 1000), (800, 1200)]:
            jit_kernel.timing(src, SimpleNamespace(shape=shape), measure)
        assert len(calls) == 3  # 992 to 1008 elements (512..1023), 20, 1e6 and 960,000
    finally:
        for key in [k for k in jit_kernel._TIMED if k[0] == src]:
            del jit_kernel._TIMED[key]


def test_auto_over_many_shapes_is_right():
    """codegen="auto" (the default): each size class timed, kernels used or not by that
    timing; every shape's result right."""
    g = dg.grad(bias_loss, argnums=(0, 1))
    jg = dg.jit(g)
    rng = np.random.default_rng(14)
    for shape in [(3, 4), (60, 70), (5, 9), (300, 40)]:
        x, b = rng.standard_normal(shape), rng.standard_normal(shape[1])
        for _ in range(3):
            got = jg(x, b)
        for o, w in zip(got, g(x, b)):
            np.testing.assert_allclose(o, w, rtol=1e-11, atol=1e-13)


def test_a_number_argument_read_once_by_a_fused_kernel():
    """A 0-d input read before a fused loop may come as a 0-d array (recording) or as the
    Python float itself (replays): both compile (it was a TypingError on the second call)."""
    loss = lambda x, a: np.sum(np.exp(-np.square(x) - np.where(np.greater(a, 0), a, 1.0)))
    g = dg.grad(loss, argnums=(0, 1))
    f = dg.jit(g)
    x = np.array([0.3, -0.5])
    for a in (0.7, 0.9, -0.2, np.float64(0.4), np.array(1.5)):
        for got, want in zip(f(x, a), g(x, a)):
            np.testing.assert_allclose(got, want, rtol=1e-13)
