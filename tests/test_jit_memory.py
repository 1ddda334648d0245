"""What a jitted function keeps: a bounded number of signatures (least recently used go
first), and for each the graph, its constants, guards and kernels, never the values
recorded with it."""

import gc
import tracemalloc

import numpy as np
import pytest

import dualgrad as dg


def f(x):
    return np.sum(np.tanh(x) * np.sin(x) + np.exp(-x * x) * x)


def df(x):
    return (1 - np.tanh(x) ** 2) * np.sin(x) + np.tanh(x) * np.cos(x) \
        + np.exp(-x * x) * (1 - 2 * x * x)


def test_least_recently_used_signature_goes_first():
    jf = dg.jit(dg.grad(f), max_signatures=2, codegen="off")
    a, b, c = (np.linspace(0, 1, n) for n in (3, 4, 5))
    jf(a)
    jf(b)
    jf(a)          # a used more recently than b
    jf(c)          # a third signature: b goes
    assert jf.cache_size == 2 and jf.trace_count == 3
    np.testing.assert_allclose(jf(a), df(a), rtol=1e-13)
    assert jf.trace_count == 3   # still compiled
    np.testing.assert_allclose(jf(b), df(b), rtol=1e-13)
    assert jf.trace_count == 4   # recorded again
    assert dg.jit(f).max_signatures == 64


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "8"])
def test_max_signatures_is_checked(bad):
    with pytest.raises(ValueError, match="max_signatures"):
        dg.jit(f, max_signatures=bad)


def _held(make):
    """Bytes still allocated after ``make()`` returns and garbage is collected."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        keep = make()
        dg.core.buffers.cache.clear()  # eager's reusable buffers (buffers.py) are not the jit's
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - base, keep
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("calls", [1, 3])
def test_a_cached_signature_holds_its_constants_not_its_intermediates(calls):
    n = 200_000  # 1.6 MB per float64 array; the gradient records a dozen of them
    w = np.linspace(0.5, 1.5, n)
    x = np.linspace(-2, 2, n)

    def loss(x):  # w: a constant of the graph
        return np.sum(np.tanh(x * w) * np.sin(x) + np.exp(-x * x) * w)
    want = dg.grad(loss)(x)

    def make():
        jg = dg.jit(dg.grad(loss), codegen="off")
        for _ in range(calls):
            got = jg(x)
        # (eager may run kernels/vecmath.py's tanh, sin and exp: a few ulp from numpy's)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
        del got
        return jg
    held, jg = _held(make)
    assert jg.cache_size == 1
    # the graph keeps a copy of w (core.trace.kept: the function could write into w after
    # using it), once for both uses, and holds no intermediate beyond one more array's worth
    assert held <= 3 * w.nbytes, \
        f"{held / 1e6:.1f} MB held for {w.nbytes / 1e6:.1f} MB of constants"


def test_first_replay_rebuilds_from_its_own_leaves():
    def g(x):
        if np.sum(x) > 0:  # a guard: the recording holds for positive sums only
            return np.sin(x) * 2.0
        return np.cos(x)
    jg = dg.jit(g, codegen="off")
    pos, neg = np.linspace(0.1, 1, 4), -np.linspace(0.1, 1, 4)
    np.testing.assert_array_equal(jg(pos), np.sin(pos) * 2.0)
    np.testing.assert_array_equal(jg(neg), np.cos(neg))      # first replay misses: records
    np.testing.assert_array_equal(jg(pos * 2), np.sin(pos * 2) * 2.0)  # builds from these
    np.testing.assert_array_equal(jg(neg * 2), np.cos(neg * 2))
    assert jg.trace_count == 2


def test_first_replay_never_returns_an_alias():
    x = np.arange(3.0)
    jf = dg.jit(lambda x, y: (x, y * 1.0, np.ones(2)))
    jf(x, x)
    a, b, c = jf(x, x)
    assert a is not x and not np.shares_memory(a, x)
    a[0] = 7.0
    c[0] = 7.0
    a2, _, c2 = jf(x, x)
    assert x[0] == 0.0 and c2[0] == 1.0


def test_a_dataclass_argument_gets_the_pytree_message():
    import dataclasses

    @dataclasses.dataclass
    class Params:
        w: np.ndarray
    with pytest.raises(TypeError, match="register_dataclass"):
        dg.jit(lambda p: np.sum(p.w))(Params(np.ones(2)))
    with pytest.raises(TypeError, match="register_dataclass"):
        dg.grad(lambda p: np.sum(p.w))(Params(np.ones(2)))


def test_lower_keeps_the_recorded_values_it_shows():
    from dualgrad.compiler.graph import compile_graph
    c = np.arange(3.0)
    x = np.linspace(0, 1, 3)
    lo = dg.jit(lambda x: x * (c * 2.0 + 1.0)).lower(x)
    np.testing.assert_array_equal(lo.before.ops[-1].ans, x * (c * 2.0 + 1.0))
    np.testing.assert_array_equal(compile_graph(lo.after)(x)[0], x * (c * 2.0 + 1.0))


def test_outer_transforms_before_the_first_replay_use_the_recorded_graph():
    c = np.array([-0.0, 1.0, 2.0])
    f = lambda x: np.sum(np.sin(x * (c * 2.0 + 1.0)) + 0.0) * x[0]
    jf = dg.jit(f, codegen="off")
    x = np.linspace(0.1, 1, 3)
    jf(x)  # recorded; its values dropped, nothing built yet
    comp = next(iter(jf._cache.values()))[0]
    np.testing.assert_allclose(dg.grad(jf)(x), dg.grad(f)(x), rtol=1e-14)
    np.testing.assert_allclose(dg.jvp(jf, (x,), (np.ones(3),))[1],
                               dg.jvp(f, (x,), (np.ones(3),))[1], rtol=1e-14)
    assert comp._graph is None
    np.testing.assert_array_equal(jf(x), f(x))  # the first replay builds it
    np.testing.assert_allclose(dg.grad(jf)(x), dg.grad(f)(x), rtol=1e-14)


def test_generated_kernels_keep_no_typed_ir():
    """A fused kernel keeps its machine code, not numba's type annotation of it (the
    whole typed IR, for ``inspect_types()`` only): a cold build of many kernels kept
    hundreds of thousands of IR objects.  The kernel still runs and agrees."""
    pytest.importorskip("numba")
    from dualgrad.compiler import kernel

    def g(x):  # a structure of its own: compiled here unless an earlier test loaded it
        return np.sum(np.cosh(x) * np.arctan(x) - x ** 3)

    x = np.linspace(-1.0, 1.0, 50)
    jf = dg.jit(dg.grad(g), codegen="numba")
    jf(x)
    got = jf(x)
    assert jf.lower(x).kernels  # fused: the kernels below were built for it
    loaded = [fn for fn in kernel._LOADED.values() if getattr(fn, "overloads", None)]
    assert loaded
    for fn in loaded:
        assert all(cres.type_annotation is None for cres in fn.overloads.values())
    np.testing.assert_allclose(got, dg.grad(g)(x), rtol=1e-13, atol=1e-15)

    from numba import njit

    @njit
    def twice(a):
        return 2 * a

    twice(1.0)
    assert kernel.forget_annotations(twice) == 1 and kernel.forget_annotations(twice) == 0
    assert twice(3.0) == 6.0 and twice(np.arange(3)).tolist() == [0, 2, 4]  # a new one
    assert len(twice.overloads) == 2
    assert all(cres.type_annotation is None for cres in twice.overloads.values())
