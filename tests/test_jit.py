"""dg.jit: signatures and caching, guards, each optimiser pass alone, composition, and the
primitive table's corpus under jit, bit for bit against eager (numpy backend; the numba
backend's fused kernels round differently from the rules, so there it is a few ulps)."""

import warnings

import numpy as np
import pytest
from cases import ALL

import dualgrad as dg
from dualgrad.compiler import passes as jit_passes
from dualgrad.compiler.graph import Const, Graph, Op, compile_graph
from dualgrad.core.tree import tree_flatten
from dualgrad.rules import TABLE


def same(a, b):
    la, da = tree_flatten(a)
    lb, db = tree_flatten(b)
    assert da == db
    for x, y in zip(la, lb):
        assert type(x) is type(y), (type(x), type(y))
        np.testing.assert_array_equal(x, y)
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


@pytest.fixture
def numpy_backend():
    with dg.backend.use_backend("numpy"):
        yield


@pytest.fixture(autouse=True)
def replay_only(monkeypatch):
    """These tests compare jit with eager bit for bit: the replay back end (the numba
    kernels round differently; test_codegen.py tests them to a few ulps)."""
    monkeypatch.setenv("DUALGRAD_CODEGEN", "off")


# -- signatures, caching, counters ------------------------------------------------------

def test_records_once_per_signature_and_clears():
    calls = []

    def f(x, y):
        calls.append(1)  # a side effect: runs only while recording
        return np.sin(x) * y

    jf = dg.jit(f)
    x = np.arange(3.0)
    same(jf(x, 2.0), f(x, 2.0))
    calls.clear()
    for k in range(3):
        same(jf(x + k, 2.0 + k), np.sin(x + k) * (2.0 + k))
    assert calls == [] and jf.trace_count == 1
    jf(x.astype(np.float32), 2.0)       # new dtype
    jf(np.arange(4.0), 2.0)             # new shape
    jf(x, 2)                            # new Python scalar type
    assert jf.trace_count == 4 and jf.cache_size == 4
    jf.clear_cache()
    assert jf.cache_size == 0
    jf(x, 2.0)
    assert jf.trace_count == 5


def test_static_arguments():
    def f(x, n, scale=1.0):
        for _ in range(n):
            x = x * scale
        return x

    jf = dg.jit(f, static_argnums=1, static_argnames="scale")
    assert jf(1.5, 3, scale=2.0) == 12.0
    assert jf(1.5, 2, scale=2.0) == 6.0
    assert jf(1.5, 3, scale=2.0) == 12.0
    assert jf.trace_count == 2
    with pytest.raises(TypeError, match="static argument 1.*unhashable list"):
        jf(1.5, [3])


def test_pytrees_in_and_out():
    jf = dg.jit(lambda p, x: {"y": p["w"] * x + p["b"], "n": (x, 3.0)})
    p = {"w": np.ones(2), "b": 0.5}
    same(jf(p, np.arange(2.0)), {"y": p["w"] * np.arange(2.0) + 0.5, "n": (np.arange(2.0), 3.0)})
    jf(p, np.arange(2.0))
    assert jf.trace_count == 1


# -- guards ---------------------------------------------------------------------------

def test_if_guard_both_branches():
    def f(x):
        if np.sum(x) > 0:
            return x * 2.0
        return -x

    jf = dg.jit(f)
    for v in (1.0, -1.0, 2.0, -3.0, 0.5):
        same(jf(np.full(3, v)), f(np.full(3, v)))
    assert jf.trace_count == 2  # one graph per branch pattern, both cached
    assert "guard" in str(jf.lower(np.ones(3)).after)


def test_while_guard():
    def f(x):
        n = 0
        while x < 10.0:
            x = x * 2.0
            n += 1
        return x, n

    jf = dg.jit(f)
    for v in (1.0, 3.0, 1.5, 20.0, 0.7, 1.0):
        assert jf(v) == f(v)
    assert jf.trace_count == 4  # 4, 2, 0 and 4 doublings... 1.0 and 1.5 share a pattern


def test_int_float_item_are_exact_guards():
    jf = dg.jit(lambda x, n: x * float(n) + np.ones(int(n)).sum())
    assert jf(2.0, 3) == 9.0 and jf(2.0, 4) == 12.0 and jf(2.0, 3) == 9.0
    assert jf.trace_count == 2
    with pytest.raises(TypeError, match="float"):  # a derivative's value stays an error
        dg.grad(lambda x: x * float(x))(2.0)


def test_retrace_limit_warns_and_falls_back_to_eager():
    jf = dg.jit(lambda x: x * 2.0 if x > round(float(x)) else x, retrace_limit=3)
    with pytest.warns(RuntimeWarning, match="eagerly"):  # float(x): a guard on x itself
        out = [jf(0.1 * k + 0.3) for k in range(12)]
    assert out == [(0.1 * k + 0.3) * 2.0 if (0.1 * k + 0.3) > round(0.1 * k + 0.3)
                   else 0.1 * k + 0.3 for k in range(12)]
    assert jf.eager


def test_raw_nodes_carry_no_derivative_under_an_outer_transform(numpy_backend):
    """grad of a jitted gradient replays the graph under the outer transform: a rule's raw
    nodes (abs's sign, max's ties) stay constants there, as in the eager rule."""
    x = np.array([-1.5, 0.5, 2.0, 2.0])
    for f in (lambda x: np.sum(np.abs(x) * x), lambda x: np.max(x) * np.sum(x ** 2)):
        inner = dg.jit(dg.grad(f))
        inner(x)  # recorded: the outer grad below replays its graph
        outer = dg.jacfwd(inner)(x)
        np.testing.assert_allclose(outer, dg.hessian(f)(x), rtol=1e-13)


def test_functional_index_updates_record(numpy_backend):
    """``y[i] = v`` on a traced array inside a jitted function (dg.jit used to refuse it,
    mistaking the recorded array for a number)."""
    def f(x, v, i):
        y = x * 1.0
        y[i] = v * 2.0
        y[1:3] += v[:2]
        return np.sum(y ** 2)
    g = dg.grad(f, argnums=(0, 1))
    x, v, i = np.arange(5.0), np.array([1.0, 2.0, 3.0]), np.array([0, 2, 2])
    jg = dg.jit(g)
    for _ in range(3):
        for got, want in zip(jg(x, v, i), g(x, v, i)):
            same(got, want)
    with pytest.raises(TypeError, match="does not support item assignment"):
        dg.jit(dg.grad(lambda s: s.__setitem__(0, 1.0)))(2.0)


def test_index_arrays_passed_in_are_graph_values(numpy_backend):
    """An integer index array that is an argument (a batch's labels) is a value of the
    graph: new labels replay the same graph, with their own gather and scatter."""
    def loss(w, x, labels):
        logp = dg.nn.log_softmax(x @ w)
        return -np.mean(logp[np.arange(x.shape[0]), labels]) + np.sum(w[labels[:2]] ** 2)
    g = dg.grad(loss)
    jf = dg.jit(g)
    rng = np.random.default_rng(0)
    w, x = rng.standard_normal((4, 4)), rng.standard_normal((6, 4))
    for _ in range(6):
        labels = rng.integers(0, 4, 6)  # repeats: the scatter adds them up
        np.testing.assert_allclose(jf(w, x, labels), g(w, x, labels), rtol=1e-13, atol=1e-15)
    assert jf.trace_count == 1


def test_raw_values_a_rule_computes_with_are_graph_nodes(numpy_backend):
    """What a rule or user code computes from raw values (``np.floor(x)``, ``_raw(x) ==
    0``, ``np.sign(_raw(x))``) is a node of the graph: a new input reuses the graph, and
    only what Python reads (``float()``, ``bool()``) is guarded."""
    jf = dg.jit(lambda x: x * 2.0 if x > float(np.floor(x)) + 0.5 else x)
    xs = [0.1 * k + 0.3 for k in range(12)]
    assert [jf(x) for x in xs] == [x * 2.0 if x % 1 > 0.5 else x for x in xs]
    assert jf.trace_count == len({(np.floor(x), x > np.floor(x) + 0.5) for x in xs})
    for f in (dg.grad(lambda x: np.sum(np.abs(x) * x)),          # np.sign(_raw(x))
              dg.grad(lambda x: np.sum(np.max(x, axis=0))),      # _raw(x) == max
              dg.grad(lambda x: np.sum(np.fmod(x, 0.7)))):       # np.trunc(_raw(x) / ..)
        jf = dg.jit(f)
        for k in range(6):
            x = np.random.default_rng(k).standard_normal((3, 4))
            same(jf(x), f(x))
        assert jf.trace_count == 1, jf.trace_count


def test_rule_masks_are_graph_nodes(numpy_backend):
    """relu's, maximum's and clip's derivative masks are comparisons of the rule's
    arguments: graph nodes, so new inputs reuse the graph (no retrace) with their own
    masks; only whether ties exist is guarded (a bool)."""
    for f in (dg.grad(lambda x: np.sum(np.maximum(x, 0.0) ** 2)),
              dg.grad(lambda x: np.sum(dg.nn.relu(x) * x)),
              dg.grad(lambda x: np.sum(np.clip(x, -0.5, 0.5) ** 2))):
        jf = dg.jit(f)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no fallback to eager
            for k in range(12):
                x = np.random.default_rng(k).standard_normal(5)
                same(jf(x), f(x))
        assert jf.trace_count == 1, jf.trace_count
    jm = dg.jit(dg.grad(lambda x: np.sum(np.maximum(x, 0.0))))
    same(jm(np.array([1.0, -1.0])), np.array([1.0, 0.0]))
    same(jm(np.array([0.0, 2.0])), np.array([0.5, 1.0]))  # a tie: the other branch
    assert jm.trace_count == 2


# -- the passes, each alone -------------------------------------------------------------

def _lower(f, *args, **kw):
    return dg.jit(f, **kw).lower(*args)


def test_seed_example_folds_to_mul_8():
    lo = _lower(lambda t: t * 2.0 * 2.0 * 2.0, np.arange(3.0))
    assert len(lo.before) == 3 and lo.before.count("multiply") == 3
    assert len(lo.after) == 1 and "v0 * 8.0" in str(lo.after)
    assert lo.summary["simplify"] == 2 and lo.summary["dce"] == 2


def test_inexact_chains_stay_without_fast_math():
    x = np.array([1e308, 3.0, 0.1])
    for f in (lambda t: t * 3.0 * 5.0, lambda t: t * 0.5 * 0.5, lambda t: t + 1.0 + 2.0):
        lo = _lower(f, x)
        assert len(lo.after) == 2
        assert len(_lower(f, x, fast_math=True).after) == 1
    lo = _lower(lambda t: t * 2.0 * 0.5, x)  # overflow: (1e308 * 2) * 0.5 is inf
    assert len(lo.after) == 2
    assert np.isinf(dg.jit(lambda t: t * 2.0 * 0.5)(x)[0])
    ints = np.arange(3)
    assert len(_lower(lambda t: t * 3 * 5, ints).after) == 1  # integers wrap the same


def test_simplify_identities_exact():
    x = np.array([-0.0, 1.5, np.inf, np.nan])
    cases = {lambda t: t * 1.0: 0, lambda t: 1.0 * t: 0, lambda t: t - 0.0: 0,
             lambda t: t + (-0.0): 0, lambda t: t / 1.0: 0, lambda t: t ** 1: 0,
             lambda t: np.negative(np.negative(t)): 0, lambda t: t + 0.0: 1, lambda t: t * 0.0: 1}
    for f, n in cases.items():
        lo = _lower(lambda t, f=f: np.sin(f(t)), x)
        assert len(lo.after) == 1 + n, str(lo)
        same(dg.jit(lambda t, f=f: np.sin(f(t)))(x), np.sin(f(x)))
    # -0.0 + 0.0 is 0.0: x + 0 is not x, and stays in the graph
    same(dg.jit(lambda t: t + 0.0)(x), x + 0.0)
    assert np.signbit(dg.jit(lambda t: t + 0.0, fast_math=True)(x)[0])  # the unsafe rewrite
    # inf * 0 is nan: x * 0 is not 0
    assert np.isnan(dg.jit(lambda t: t * 0.0)(x)[2])


def test_square_rewrite():
    lo = _lower(lambda t: dg.jit(lambda u: TABLE["power"](u, 2))(t), np.arange(3.0))
    assert lo.after.count("square") == 1 and lo.after.count("power") == 0
    x = np.random.default_rng(0).standard_normal(100)
    same(dg.jit(lambda u: TABLE["power"](u, 2))(x), x ** 2)
    assert _lower(lambda u: TABLE["power"](u, 2), 3.0).after.count("power") == 1  # a float


def test_cse_keeps_one_sin_and_shares_cos():
    lo = _lower(lambda x: np.sin(x) + np.sin(x), np.arange(3.0))
    assert lo.before.count("sin") == 2 and lo.after.count("sin") == 1
    lo = _lower(dg.grad(lambda x: np.sum(np.sin(x) * np.cos(x))), np.arange(3.0))
    assert lo.before.count("cos") == 2 and lo.after.count("cos") == 1
    assert lo.summary["cse"] >= 1


def test_fold_and_dce_alone():
    add, mul = TABLE["add"], TABLE["multiply"]
    ops = [Op("input", None, (), None, np.ones(2)),
           Op("op", add, (Const(2.0), Const(3.0)), None, 5.0),
           Op("op", mul, (0, 1), None, np.full(2, 5.0)),
           Op("op", mul, (0, Const(7.0)), None, np.full(2, 7.0))]
    g = Graph(ops, [0], [2], tree_flatten(0.0)[1])
    folded, n = jit_passes.fold(g)
    assert n == 1 and folded.ops[2].args[1].value == 5.0
    live, dead = jit_passes.dce(folded)
    assert dead == 2 and len(live) == 1  # the folded add and the unused multiply
    same(compile_graph(live)(np.arange(2.0)), (np.arange(2.0) * 5.0,))


def test_each_pass_can_be_switched_off():
    f = lambda x: np.sin(x) + np.sin(x) * 1.0  # noqa: E731
    x = np.arange(3.0)
    assert len(_lower(f, x, passes=()).after) == 4
    assert len(_lower(f, x, passes=("cse", "dce")).after) == 3
    assert len(_lower(f, x).after) == 2


def test_layout_collapses_reshape_and_transpose_chains():
    x = np.arange(24.0).reshape(2, 3, 4)
    f = lambda t: np.sin(t.reshape(6, 4).reshape(4, 6).reshape(24)),  # noqa: E731
    lo = _lower(f[0], x)
    assert lo.after.count("reshape") == 1
    g = lambda t: np.sin(np.transpose(np.transpose(t, (1, 0, 2)), (1, 0, 2)))  # noqa: E731
    lo = _lower(g, x)
    assert lo.after.count("transpose") == 0
    same(dg.jit(g)(x), g(x))
    same(dg.jit(f[0])(x), f[0](x))


def test_broadcast_only_where_needed():
    f = lambda a, b: np.broadcast_to(a, (3, 4)) * b  # noqa: E731
    a, b = np.arange(4.0), np.ones((3, 4))
    lo = _lower(f, a, b)
    assert lo.after.count("broadcast_to") == 0
    same(dg.jit(f)(a, b), f(a, b))


def test_lower_is_visible():
    lo = _lower(lambda t: t * 2.0 * 2.0 * 2.0, np.arange(3.0))
    text = str(lo)
    assert "before (3 ops)" in text and "after (1 ops)" in text and "2 dead" in text
    assert lo.as_dot().startswith("digraph")
    assert "def replay(a0)" in lo.source


# -- composition ------------------------------------------------------------------------

def baydin(x1, x2):
    return np.log(x1) + x1 * x2 - np.sin(x2)


def test_jit_of_transforms(numpy_backend):
    x = np.array([0.3, -1.2, 2.0])
    f = lambda x: np.sum(np.tanh(x) * x ** 3)  # noqa: E731
    for t in (dg.grad, dg.value_and_grad, dg.jacrev, dg.hessian, dg.jacfwd):
        same(dg.jit(t(f))(x), t(f)(x))
        same(dg.jit(t(f))(x + 1.0), t(f)(x + 1.0))
    jv = dg.jit(lambda x, t: dg.jvp(f, (x,), (t,)))
    same(jv(x, np.ones(3)), dg.jvp(f, (x,), (np.ones(3),)))
    g = dg.jit(dg.grad(baydin, argnums=(0, 1)))
    assert g(2.0, 5.0) == (5.5, 1.7163378145367738)


def test_grad_and_jvp_of_jit(numpy_backend):
    jf = dg.jit(baydin)
    jf(2.0, 5.0)  # record
    g = dg.grad(jf, argnums=(0, 1))(2.0, 5.0)
    assert g == (5.5, 1.7163378145367738)
    assert jf.trace_count == 1  # the outer grad replayed the graph's primitives
    assert dg.jvp(jf, (2.0, 5.0), (1.0, 0.0))[1] == 5.5
    assert dg.grad(dg.grad(dg.jit(lambda x: x ** 3)))(2.0) == 12.0


def test_grad_of_jit_respects_guards():
    jf = dg.jit(lambda x: x * x if x > 0 else -3.0 * x)
    jf(1.0)
    assert dg.grad(jf)(2.0) == 4.0 and dg.grad(jf)(-2.0) == -3.0


def test_nested_jit():
    inner = dg.jit(lambda x: np.sin(x) * 2.0)
    outer = dg.jit(lambda x: inner(x) * 2.0 + 1.0)
    x = np.arange(3.0)
    same(outer(x), np.sin(x) * 2.0 * 2.0 + 1.0)
    same(outer(x), np.sin(x) * 2.0 * 2.0 + 1.0)
    lo = outer.lower(x)
    assert lo.after.count("multiply") == 1  # the inner graph inlined, then mul(T, 4)


def test_custom_rules_and_stop_gradient(softplus, clip_grad):
    f = lambda x: np.sum(softplus(x) * clip_grad(x * 5.0) * dg.stop_gradient(x))  # noqa: E731
    x = np.array([0.5, -2.0, 1000.0])
    want = dg.grad(f)(x)
    same(dg.jit(dg.grad(f))(x), want)
    same(dg.jit(dg.grad(f))(x), want)
    jf = dg.jit(f)
    same(jf(x), f(x))
    same(dg.grad(jf)(x), want)  # the custom_vjp node replays through its own rule
    h = dg.jit(lambda x: x * dg.stop_gradient(x))
    assert h(3.0) == 9.0 and h(4.0) == 16.0  # stop_gradient keeps the value traced


# -- errors -----------------------------------------------------------------------------

def test_leaked_tracer():
    box = []
    jf = dg.jit(lambda x: box.append(x) or x * 2.0)
    jf(1.0)
    with pytest.raises(RuntimeError, match="leaked tracer"):
        np.sin(box[0])


def test_no_rule_is_the_eager_error():
    with pytest.raises(TypeError) as eager:
        dg.grad(lambda x: np.sum(np.unwrap(x)))(np.ones(4))
    with pytest.raises(TypeError) as jitted:
        dg.jit(dg.grad(lambda x: np.sum(np.unwrap(x))))(np.ones(4))
    assert str(eager.value) == str(jitted.value)


# -- the primitive table's corpus ------------------------------------------------------

def _variants(case):
    u = np.random.default_rng(1).standard_normal(np.shape(case.fn(*case.args)))
    nums = tuple(range(len(case.args)))
    out = {"f": case.fn,
           "grad": dg.grad(lambda *a: np.sum(case.fn(*a) * u), argnums=nums),
           "jacfwd": dg.jacfwd(case.fn, argnums=nums)}
    if case.smooth:
        out["hessian"] = dg.hessian(lambda *a: np.sum(case.fn(*a) * u))
    return out


@pytest.mark.parametrize("case", ALL, ids=repr)
def test_corpus_bitwise(case, numpy_backend):
    rng = np.random.default_rng(7)
    other = tuple(rng.permutation(a.ravel()).reshape(a.shape) if a.ndim else a * 0.97
                  for a in case.args)
    for fn in _variants(case).values():
        jf = dg.jit(fn)
        same(jf(*case.args), fn(*case.args))
        same(jf(*case.args), fn(*case.args))  # the replay
        try:
            want = fn(*other)
        except (ValueError, np.linalg.LinAlgError):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            same(jf(*other), want)  # new values: the graph (or a retrace) holds
    if case.smooth:  # grad(jit(f)): the graph's primitives, differentiated outside it
        jf = dg.jit(case.fn)
        jf(*case.args)
        g = _variants(case)["grad"]
        u = np.random.default_rng(1).standard_normal(np.shape(case.fn(*case.args)))
        gj = dg.grad(lambda *a: np.sum(jf(*a) * u), argnums=tuple(range(len(case.args))))
        same(gj(*case.args), g(*case.args))


def test_integer_index_arguments():
    """An integer array argument used as an index (labels, a gather's indices) is a graph
    value: one recording serves new indices.  Where numpy needs the numbers themselves (a
    bincount's length, a boolean mask's count) they are read and guarded instead."""
    E = np.random.default_rng(0).standard_normal((6, 3))
    g = dg.grad(lambda E, idx: np.sum(E[idx] ** 2))
    jg = dg.jit(g)
    for idx in (np.array([0, 2, 2, 5]), np.array([0, 2, 2, 5]), np.array([1, 1, 3, 4])):
        same(jg(E, idx), g(E, idx))
    assert jg.trace_count == 1
    jb = dg.jit(dg.grad(lambda w, y: np.sum(np.bincount(y, weights=w, minlength=4))))
    same(jb(np.arange(3.0), np.array([0, 3, 3])), np.ones(3))


def test_transforms_of_object_arrays_inside_jit():
    """np.array([w]) of a traced w handed to grad, jacfwd or jvp inside a jitted function
    (GradBench's particle builds its starting point so) is packed first."""
    def f(w):
        v = np.array([w])
        g = dg.grad(lambda u: np.sum(u ** 3))(v)
        j = dg.jacfwd(lambda u: u ** 2)(v)
        t = dg.jvp(lambda u: np.sin(u), (v,), (np.ones(1),))[1]
        return g[0] + j[0, 0] + t[0]
    jf = dg.jit(f)
    for w in (0.5, 0.5, 1.5):
        same(jf(w), f(w))
    assert jf.trace_count == 1


def test_a_recording_past_max_ops_runs_eagerly():
    def f(x):
        for _ in range(50):
            x = np.sin(x)
        return x
    jf = dg.jit(f, max_ops=20)
    with pytest.warns(RuntimeWarning, match="passed 20 operations"):
        same(jf(0.5), f(0.5))
    same(jf(0.7), f(0.7))  # eager from now on, silently
    assert jf.eager and jf.trace_count == 0
