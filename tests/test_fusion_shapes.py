"""dg.jit's fusion across the shapes a batched sweep makes: diagonal constants written as
index comparisons (compiler/regions.py ``diagonal``), reshapes that add or drop length-1
axes moved onto elementwise arguments (compiler/passes.py ``sink``), and padded
cotangents recomputed at shifted indices (regions.py ``_chain``) in a loop whose edges are
peeled (loops.py ``Loop.peel``).

Each is checked three ways: the detection or rewrite fires where it should and not where
it must not, the jitted values equal eager dualgrad's, and the generated kernels show it.
"""

import re

import numpy as np
import pytest

import dualgrad as dg
from dualgrad.compiler import passes as jit_passes
from dualgrad.compiler.regions import diagonal

EYE = np.eye(6)

# name -> (array, what diagonal() must return)
DIAGONALS = {
    "identity": (EYE, (1.0, 0.0, 0, 1, 0, 0, 6)),
    "x[1:]'s tangents": (EYE[:, 1:], (1.0, 0.0, 0, 1, 1, 0, 5)),
    "x[:-1]'s tangents": (EYE[:, :-1], (1.0, 0.0, 0, 1, 0, 0, 5)),
    "scaled, a unit axis between": (np.where(EYE[:, None, 2:] == 1, -2.5, 0.0),
                                    (-2.5, 0.0, 0, 2, 2, 0, 4)),
    "scaled by a negative number: -0.0 off it": (-2.5 * EYE, (-2.5, -0.0, 0, 1, 0, 0, 6)),
    "above the diagonal": (np.eye(5, 7, k=2), (1.0, 0.0, 0, 1, -2, 2, 7)),
    "float32": (np.eye(5, dtype=np.float32) * 3, (3.0, 0.0, 0, 1, 0, 0, 5)),
    "-0.0 and 0.0 off it": (np.where(np.eye(5) == 1, 1.0, np.where(np.eye(5, k=1) == 1, -0.0,
                                                                   0.0)), None),
    "two values on it": (np.diag([1.0, 2, 1, 1, 1]), None),
    "a gap in it": (np.diag([1.0, 1, 0, 1, 1]), None),
    "stops one short (a Hessian's constant term)": (np.diag([2.0, 2, 2, 2, 0]),
                                                    (2.0, 0.0, 0, 1, 0, 0, 4)),
    "starts late, below": (np.eye(6, 5, k=-1) * np.r_[0, 0, 1, 1, 1, 1][:, None],
                           (1.0, 0.0, 0, 1, 1, 1, 5)),
    "one entry": (np.diag([0.0, 0, 3, 0, 0])[:, None, :], (3.0, 0.0, 0, 2, 0, 2, 3)),
    "two diagonals": (np.eye(5) + np.eye(5, k=1), None),
    "-0.0 off it": (np.where(np.eye(5) == 1, 1.0, -0.0), (1.0, -0.0, 0, 1, 0, 0, 5)),
    "three long axes": (np.ones((3, 3, 3)), None),
    "integers": (np.eye(5, dtype=np.int64), None),
    "nan on it": (np.eye(5) * np.nan, None),
    "zeros": (np.zeros((5, 5)), None),
}


@pytest.mark.parametrize("name", DIAGONALS)
def test_diagonal_detection(name):
    a, want = DIAGONALS[name]
    got = diagonal(a)
    assert got == want
    if got is not None:  # the pattern it names rebuilds the array exactly
        value, zero, p, q, k, lo, hi = got
        idx = np.indices(a.shape)
        on = (idx[p] - idx[q] == k) & (lo <= idx[q]) & (idx[q] < hi)
        rebuilt = np.where(on, value, zero).astype(a.dtype)
        np.testing.assert_array_equal(rebuilt, a)
        np.testing.assert_array_equal(np.signbit(rebuilt), np.signbit(a))


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def tridiag(x):
    return np.sum(np.sin(x[1:] * x[:-1]) + x[1:] ** 3)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_short_loops_peel_right(n, monkeypatch):
    """Peeled edges overlap the interior's bounds when the loop is shorter than the pads."""
    monkeypatch.setenv("DUALGRAD_CODEGEN", "numba")
    x = np.linspace(-1.0, 2.0, n)
    j = dg.jit(dg.hessian(rosenbrock))
    j(x)
    np.testing.assert_allclose(j(x), dg.hessian(rosenbrock)(x), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("f", [rosenbrock, tridiag])
@pytest.mark.parametrize("how", ["hessian", "jacfwd_grad"])
def test_batched_sweeps_fuse_and_agree(f, how, monkeypatch):
    monkeypatch.setenv("DUALGRAD_CODEGEN", "numba")
    x = np.random.default_rng(0).standard_normal(30)
    t = dg.hessian(f) if how == "hessian" else dg.jacfwd(dg.grad(f))
    j = dg.jit(t)
    want = t(x)
    for _ in range(2):  # records, then builds and replays
        got = j(x)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    x2 = np.random.default_rng(1).standard_normal(30)
    np.testing.assert_allclose(j(x2), t(x2), rtol=1e-13, atol=1e-13)
    assert j.trace_count == 1
    lo = j.lower(x)
    source = "\n".join(lo.kernels)
    assert " if i0 - i" in source  # an identity seed read as a comparison, not from memory
    # x[1:]'s and x[:-1]'s padded cotangents are recomputed at shifted indices by the loop
    # that reads them: no padded copy is made, and the loop's interior has no test
    assert lo.after.count("scatter_add") == 2
    assert all(op.kind != "op" or op.prim.name != "scatter_add" for op in lo.fused.ops)
    assert re.search(r"for i(\d) in range\(1, n\1 - 1\):", source)
    # the seeds' reshapes moved onto inputs: no elementwise node is reshaped
    ops = lo.after.ops
    for op in ops:
        if op.kind == "op" and op.prim.name == "reshape" and op.args[0].__class__ is int:
            src = ops[op.args[0]]
            assert src.kind != "op" or src.prim.scalar is None or not src.prim.bcast or \
                [n for n in src.ans.shape if n != 1] != [n for n in op.ans.shape if n != 1]


def test_sink_moves_unit_reshapes_and_keeps_bits(monkeypatch):
    monkeypatch.setenv("DUALGRAD_CODEGEN", "off")
    a = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    b = np.linspace(0.5, 2.0, 4)

    def f(a, b):
        e = np.sin(a) * b + 1.0
        return np.reshape(e, (3, 1, 4)) * np.cos(a)[:, None, :]

    lo = dg.jit(f).lower(a, b)
    assert lo.after.count("reshape") == 1  # onto sin(a)'s input a (a view), not onto e
    (r,) = [op for op in lo.after.ops if op.kind == "op" and op.prim.name == "reshape"]
    assert lo.after.ops[r.args[0]].kind == "input"
    np.testing.assert_array_equal(dg.jit(f)(a, b), f(a, b))
    # with the layout pass left out, the reshape stays on e
    lo2 = dg.jit(f, exclude=("layout",)).lower(a, b)
    (r2,) = [op for op in lo2.after.ops if op.kind == "op" and op.prim.name == "reshape"]
    assert lo2.after.ops[r2.args[0]].prim.name == "add"


def test_sink_leaves_a_value_read_elsewhere(monkeypatch):
    monkeypatch.setenv("DUALGRAD_CODEGEN", "off")
    a = np.linspace(-1.0, 1.0, 12).reshape(3, 4)

    def f(a):
        e = np.sin(a) * 2.0
        return np.reshape(e, (3, 1, 4)), e  # e is returned too: moving would compute it twice

    graph = dg.jit(f).lower(a).after
    sunk, n = jit_passes.sink(graph)
    assert n == 0 and sunk is graph
    out = dg.jit(f)(a)
    np.testing.assert_array_equal(out[0], f(a)[0])
    np.testing.assert_array_equal(out[1], f(a)[1])


def test_hvp_recomputes_with_shared_scalars(monkeypatch):
    """A chain whose scalar constants equal other inputs' (100.0 lifted once): hvp's
    forward-over-reverse sweep of rosenbrock, jitted, against eager."""
    monkeypatch.setenv("DUALGRAD_CODEGEN", "numba")
    r = np.random.default_rng(3)
    x, v = r.standard_normal(40), r.standard_normal(40)
    j = dg.jit(lambda p, t: dg.hvp(rosenbrock, p, t))
    j((x,), (v,))
    got, want = j((x,), (v,)), dg.hvp(rosenbrock, (x,), (v,))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-12)


def test_a_kernel_writer_that_fails_is_replayed(monkeypatch):
    """A bug in code generation costs speed, never the call: the region is replayed."""
    from dualgrad.compiler import emit_cpu

    def broken(*args, **kwargs):
        raise KeyError("a code generation bug")

    monkeypatch.setenv("DUALGRAD_CODEGEN", "numba")
    monkeypatch.setattr(emit_cpu, "kernel_source", broken)
    f = dg.jit(lambda x: np.sum(np.sin(x) * x))
    x = np.linspace(0.0, 1.0, 50)
    f(x)
    with pytest.warns(RuntimeWarning, match="could not write a fused kernel"):
        got = f(x)
    assert got == np.sum(np.sin(x) * x)
    assert f.lower(x).kernels == []


# reshape(e, s) where e's own arguments lack s's leading length-1 axes: the moved reshape
# must give them those axes (a unary op, or one whose every argument is shorter than s)
SINK_CASES = {
    "unary": lambda a: np.reshape(np.cos(a), (1, 3, 4)) * a[None],
    "shorter arguments": lambda a: np.reshape(np.sin(a) * a[0], (1, 1, 3, 4)) + 1.0,
    "0-d": lambda a: np.reshape(np.sum(a).astype(np.float64) * 2.0, (1, 1)) + a,
    "drops axes": lambda a: np.reshape(np.tanh(a[None]) - 1.0, (3, 4)) * a,
}


@pytest.mark.parametrize("name", SINK_CASES)
def test_sink_keeps_every_shape(name, monkeypatch):
    monkeypatch.setenv("DUALGRAD_CODEGEN", "off")
    f = SINK_CASES[name]
    a = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    j = dg.jit(f)
    j(a)
    np.testing.assert_array_equal(j(a), f(a))
    np.testing.assert_array_equal(j(a + 1.0), f(a + 1.0))
    g = dg.jit(dg.grad(lambda a: np.sum(f(a) ** 2)))
    g(a)
    np.testing.assert_allclose(g(a), dg.grad(lambda a: np.sum(f(a) ** 2))(a), rtol=1e-14)


def test_strided_inputs_are_copied_for_vector_loops(monkeypatch):
    """An LSTM's gates are column slices of one (N, 4H) array: the kernel copies each to a
    contiguous array once (which numba vectorizes over) under a name of its own."""
    monkeypatch.setenv("DUALGRAD_CODEGEN", "numba")
    a = np.random.default_rng(5).standard_normal((8, 64))

    def f(a):
        i, g = a[:, :16], a[:, 48:]
        return np.sum(1.0 / (1.0 + np.exp(-i)) * np.tanh(g))

    j = dg.jit(dg.value_and_grad(f))
    j(a)
    (v, g), (v0, g0) = j(a), dg.value_and_grad(f)(a)
    np.testing.assert_allclose(v, v0, rtol=1e-13)
    np.testing.assert_allclose(g, g0, rtol=1e-13, atol=1e-15)
    source = "\n".join(j.lower(a).kernels)
    assert re.search(r"(a\d+)c = np\.ascontiguousarray\(\1\)", source)


def test_a_bag_of_small_unrelated_pieces_is_not_a_kernel():
    """An unrolled loop's products of 27 entries, each summed (the naive conv): numpy
    computes the pieces; a chain over the same small shape is still one kernel."""
    import dualgrad.compiler.regions as regions

    def pieces(x, w):
        return [np.sum(x[i:i + 3, j:j + 3] * w) for i in range(4) for j in range(3)]

    def chain(x, w):
        return np.sum(np.sin(x[:3, :3] * w + 1.0) * 2.0 - w)

    x, w = np.random.default_rng(2).standard_normal((7, 6)), np.ones((3, 3))
    bag = dg.jit(lambda x, w: sum(pieces(x, w)), codegen="numba").lower(x, w)
    assert all(r.shape == () for r in regions.partition(bag.after))  # the sum's adds only
    one = dg.jit(chain, codegen="numba").lower(x, w)
    assert len(regions.partition(one.after)) == 1
    np.testing.assert_allclose(dg.jit(lambda x, w: sum(pieces(x, w)))(x, w),
                               sum(pieces(x, w)), rtol=1e-14)
