"""dg.jit writes in place where the graph's own buffer is dead (compiler/writes.py): a loop
of ``out[...] = v`` into np.zeros, and its reverse sweep's slice cotangents, replay as
writes into one array, never into an input, an output or an array something still reads."""

import numpy as np
import pytest

import dualgrad as dg
from dualgrad import rules as P
from dualgrad.compiler.graph import Const, Graph, Op, compile_graph
from dualgrad.compiler.writes import plan


def rows(x):  # a loop of writes into a preallocated output, then a reduction
    out = np.zeros((4, 3), like=x)
    for i in range(4):
        out[i] = x[i] * (i + 1.0)
    return np.sum(np.sin(out))


def entries(x):  # one entry per write, the naive conv's pattern
    out = np.zeros((3, 3), like=x)
    for i in range(3):
        for j in range(3):
            out[i, j] = np.sum(x[i:i + 2, j:j + 2] * x[j, i]) + x[i, j]
    return np.sum(out * out)


def view_kept(x):  # a view of the written array read after a later write
    out = np.zeros((4, 3), like=x)
    out[0] = x[0]
    first = out[0:2]           # a view of the array as it is now
    out[1] = x[1] * 2.0        # a write after it: the view must see the old array
    return np.sum(first * 3.0) + np.sum(out)


def chain_output(x):  # an array of the chain is an output, written again afterwards
    out = np.zeros((4, 3), like=x)
    out[0] = x[0]
    kept = out * 1.0
    out[1] = x[1]
    return kept, out


def reads_after(x):  # the old array read (by value) after the write
    out = np.zeros((4, 3), like=x)
    out[0] = x[0]
    before = out
    out = out.copy()
    out[2] = x[2]
    return np.sum(before) * 2.0 + np.sum(out * out)


def accumulate(x):  # slices of x read in a loop: their cotangents added slice by slice
    s = 0.0
    for i in range(3):
        for j in range(2):
            s = s + np.sum(np.tanh(x[i:i + 2, j:j + 2]) * (i - j + 0.5))
    return s


def same(a, b, exact):
    """Bit for bit where replay runs numpy's own functions; to rounding where a fused
    kernel computes tanh or sin with its own implementation (never compared bitwise)."""
    if exact:
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


CASES = [rows, entries, view_kept, reads_after, accumulate]


@pytest.mark.parametrize("f", CASES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("codegen", ["off", "numba"])
def test_jit_grad_equals_eager_grad(f, codegen):
    r = np.random.default_rng(3)
    g = dg.jit(dg.grad(f), codegen=codegen)
    for _ in range(3):  # new values each call: replays of one recording
        x = r.standard_normal((4, 3))
        x0 = x.copy()
        same(g(x), dg.grad(f)(x), exact=codegen == "off")
        np.testing.assert_array_equal(x, x0)  # the input was not written
    assert g.trace_count == 1


@pytest.mark.parametrize("f", CASES, ids=lambda f: f.__name__)
def test_jit_values_equal_eager(f):
    x = np.random.default_rng(4).standard_normal((4, 3))
    np.testing.assert_array_equal(dg.jit(f)(x), f(x))


def test_an_output_of_the_chain_is_not_written_afterwards():
    x = np.arange(12.0).reshape(4, 3)
    jf = dg.jit(chain_output)
    for k in range(2):
        kept, out = jf(x + k)
        want_kept, want_out = chain_output(x + k)
        np.testing.assert_array_equal(kept, want_kept)
        np.testing.assert_array_equal(out, want_out)
        assert not np.shares_memory(kept, out)


def recur(x):  # h[t] = f(h[t - 1]): the reverse sweep zeroes and reads row t of one array
    h = np.zeros((5, 3), like=x)
    for t in range(1, 5):
        h[t] = np.tanh(h[t - 1] * 0.5 + x[t])
    return np.sum(h * h)


def _plan(f, x):
    lo = dg.jit(f).lower(x)
    return lo.fused, plan(lo.fused)


def _kinds(p):
    return sorted(v[0] for v in p.writes.values())


def test_the_naive_loops_write_into_one_array():
    x = np.random.default_rng(5).standard_normal((4, 3))
    g, p = _plan(dg.grad(entries), x)
    # nine forward writes into np.zeros: the first copies, the other eight write in place;
    # the reverse sweep's slice cotangents are added in place, their scatters dropped
    assert _kinds(p).count("set") >= 8 and _kinds(p).count("add") >= 9
    assert p.dropped == {w[2] for w in p.writes.values() if w[0] == "add"}
    assert sorted(p.order) == list(range(len(g.ops)))  # every node, once
    for w in p.writes.values():  # never into an input or an output
        assert g.ops[w[1]].kind != "input" and w[1] not in g.outputs


def test_a_recurrence_writes_rows_in_place_both_ways():
    x = np.random.default_rng(6).standard_normal((5, 3))
    _, p = _plan(dg.grad(recur), x)
    assert _kinds(p).count("set") >= 4 and _kinds(p).count("add") >= 4
    jg = dg.jit(dg.grad(recur))
    for k in range(3):
        same(jg(x + k), dg.grad(recur)(x + k), exact=False)


def _graph(*rows):
    """A Graph of (prim, args, kw) rows after one float64[4, 3] input, its values
    computed as recorded; the last row is the output."""
    x = np.arange(12.0).reshape(4, 3)
    ops, vals = [Op("input", None, (), None, x)], [x]
    for prim, args, kw in rows:
        v = prim.impl(*[vals[a] if a.__class__ is int else a.value for a in args], **kw)
        ops.append(Op("op", prim, args, kw, v))
        vals.append(v)
    return Graph(ops, [0], [len(ops) - 1], None), x, vals[-1]


def test_a_view_read_after_the_write_is_copied_and_replays_right():
    """x[0] of the written array read after the write (a functional graph may: the reverse
    sweep of a row write reads g[t] after zeroing it): replay takes it as a copy."""
    g, x, want = _graph(
        (P.index_set, (0, Const(0.0)), {"idx": (Ellipsis,)}),   # 1: a new array
        (P.getitem, (1,), {"idx": (0,)}),                       # 2: a view of its row 0
        (P.index_set, (1, Const(5.0)), {"idx": (0,)}),          # 3: row 0 written
        (P.multiply, (2, 3), {}))                               # 4: the old row 0 read
    p = plan(g)
    assert p.writes == {3: ("set", 1)} and p.copied == {2}
    fn = compile_graph(g)
    for _ in range(2):
        np.testing.assert_array_equal(fn(x)[0], want)
    np.testing.assert_array_equal(want, np.zeros((4, 3)))  # row 0 of zeros, times 5s: 0


def test_a_later_reader_moves_before_the_write():
    g, x, want = _graph(
        (P.index_set, (0, Const(0.0)), {"idx": (Ellipsis,)}),   # 1
        (P.index_set, (1, Const(7.0)), {"idx": (2, 1)}),        # 2: written in place
        (P.getitem, (1,), {"idx": (2, 1)}),                     # 3: the old entry: 0.0
        (P.multiply, (2, 3), {}))                               # 4
    p = plan(g)
    assert p.writes == {2: ("set", 1)} and p.hoisted == {3} and p.order[:4] == [0, 1, 3, 2]
    np.testing.assert_array_equal(compile_graph(g)(x)[0], want)


def test_no_write_into_an_input_an_output_or_an_array_kept_as_a_view():
    g, _, _ = _graph((P.index_set, (0, Const(1.0)), {"idx": (0,)}))  # into the input: a copy
    assert plan(g).writes == {}
    g, x, want = _graph(
        (P.index_set, (0, Const(0.0)), {"idx": (Ellipsis,)}),   # 1
        (P.getitem, (1,), {"idx": (slice(0, 2),)}),             # 2: a view, then reshaped
        (P.index_set, (1, Const(3.0)), {"idx": (0,)}),          # 3
        (P.add, (2, Const(1.0)), {}),                           # 4
        (P.multiply, (3, Const(2.0)), {}))                      # 5
    assert 3 in plan(g).writes and 2 in plan(g).copied
    g2 = Graph(g.ops, g.inputs, [1, 5], None)  # the first array is an output too
    assert plan(g2).writes == {}


# -- random programs of writes and reads: jit (writes in place) against eager, bit for bit

_STEPS = ("set_row", "set_entry", "add_slice", "read_view", "read_entry", "copy", "scale")


def _program(seed):
    """A function of x (4, 3) that writes into np.zeros and reads it back in a random
    order: rows and entries set, slices added to, views and entries read (before and after
    later writes), copies taken; returns a scalar mixing every value read."""
    r = np.random.default_rng(seed)
    steps = [(_STEPS[r.integers(len(_STEPS))], int(r.integers(4)), int(r.integers(3)))
             for _ in range(int(r.integers(4, 12)))]

    def f(x):
        out = np.zeros((4, 3), like=x)
        kept, total = [], 0.0
        for kind, i, j in steps:
            if kind == "set_row":
                out[i] = x[(i + 1) % 4] * (j + 1.0)
            elif kind == "set_entry":
                out[i, j] = x[i, j] * x[(i + 2) % 4, j] + 1.0
            elif kind == "add_slice":
                out[i:, j:] += x[:4 - i, :3 - j] * 0.5
            elif kind == "read_view":
                kept.append(out[i])          # a view: sees later writes, as numpy's does
            elif kind == "read_entry":
                total = total + out[i, j] * 2.0
            elif kind == "copy":
                kept.append(out.copy() * 1.0)
            else:
                out = out * (j + 0.5)
        for k, v in enumerate(kept):
            total = total + np.sum(np.sin(v) * (k + 1.0))
        return total + np.sum(out * out)
    return f


@pytest.mark.parametrize("seed", range(40))
def test_random_programs_of_writes_equal_eager(seed):
    f = _program(seed)
    r = np.random.default_rng(1000 + seed)
    jf, jg = dg.jit(f, codegen="off"), dg.jit(dg.grad(f), codegen="off")
    for _ in range(2):
        x = r.standard_normal((4, 3))
        np.testing.assert_array_equal(jf(x), f(x))
        np.testing.assert_array_equal(jg(x), dg.grad(f)(x))
    jn = dg.jit(dg.grad(f))  # with kernels: equal to rounding
    np.testing.assert_allclose(jn(x), dg.grad(f)(x), rtol=1e-12, atol=1e-14)
