"""dg.vmap: every row of the primitive table against a Python loop, the fallback, the
argument checks, and vmap composed with every other transform.

The table test reuses test_primitives' cases (one or more calls per row): each argument
gets a random batch axis or None, and ``vmap(case.fn)`` must equal stacking
``case.fn`` over the examples.  Every row has a batching rule, so no case may fall back
to the loop (the fallback is tested on its own, with a primitive that has no rule).
"""

import warnings
import zlib

import numpy as np
import pytest
from cases import ALL

import dualgrad as dg
from dualgrad import rules as P
from dualgrad.core.trace import Primitive
from dualgrad.transforms.batching import BatchingFallbackWarning

B = 3


def _examples(a, rng):
    """B examples near ``a``, inside its sampling domain (a multiplicative jitter keeps
    signs, zeros, ties and the ordering of distinct eigenvalues)."""
    return [a * (1.0 + 0.02 * rng.uniform(-1, 1, a.shape)) for _ in range(B)]


def _loop_vs_vmap(fn, args, rng):
    axes = [None if rng.uniform() < 0.3 else int(rng.integers(-a.ndim - 1, a.ndim + 1))
            for a in args]
    if all(ax is None for ax in axes):
        axes[int(rng.integers(len(args)))] = 0
    per = [_examples(a, rng) if ax is not None else [a] * B for a, ax in zip(args, axes)]
    batched = [np.stack(p, axis=ax) if ax is not None else a
               for p, a, ax in zip(per, args, axes)]
    with np.errstate(all="ignore"):
        want = np.stack([np.asarray(fn(*ex)) for ex in zip(*per)])
        got = dg.vmap(fn, in_axes=tuple(axes))(*batched)
    return axes, got, want


@pytest.mark.parametrize("case", ALL, ids=repr)
def test_every_row_batches_like_a_loop(case):
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    with warnings.catch_warnings():
        warnings.simplefilter("error", BatchingFallbackWarning)
        for _ in range(2):
            axes, got, want = _loop_vs_vmap(case.fn, case.args, rng)
            assert got.shape == want.shape, axes
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=str(axes))


def test_every_non_elementwise_row_has_a_rule():
    elementwise = {n for n, p in P.TABLE.items() if p.bcast or n == "astype"
                   or (p.ufunc is not None and p.ufunc.signature is None)}
    missing = sorted(n for n, p in P.TABLE.items() if p.batch is None and n not in elementwise)
    assert not missing, f"rows without a batching rule: {missing}"


# ---------------------------------------------------------------------------
# the loop fallback
# ---------------------------------------------------------------------------

def _ranked(x):
    """The rank of each entry along the last axis (no rule: not elementwise)."""
    return np.argsort(np.argsort(x, axis=-1), axis=-1).astype(float) * x


RANKED = Primitive("ranked_scale", _ranked,
                   jvp=(lambda t, ans, x: P.multiply(t, np.argsort(np.argsort(
                       P.unbox(x), axis=-1), axis=-1).astype(float)),),
                   vjp=(lambda g, ans, x: P.multiply(g, np.argsort(np.argsort(
                       P.unbox(x), axis=-1), axis=-1).astype(float)),))


def test_fallback_loops_warns_once_and_is_exact():
    x = np.random.default_rng(1).standard_normal((4, 5))
    with pytest.warns(BatchingFallbackWarning, match="ranked_scale"):
        got = dg.vmap(RANKED, in_axes=1)(x)
    np.testing.assert_array_equal(got, np.stack([_ranked(x[:, i]) for i in range(5)]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", BatchingFallbackWarning)  # once only
        dg.vmap(RANKED)(x)


def test_fallback_under_grad():
    x = np.random.default_rng(2).standard_normal((4, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BatchingFallbackWarning)
        got = dg.vmap(dg.grad(lambda r: np.sum(RANKED(r) ** 2)))(x)
        want = np.stack([dg.grad(lambda r: np.sum(RANKED(r) ** 2))(r) for r in x])
    np.testing.assert_allclose(got, want, rtol=1e-13)


# ---------------------------------------------------------------------------
# in_axes, out_axes, axis_size and their errors
# ---------------------------------------------------------------------------

def test_axes_prefixes_negative_axes_and_kwargs():
    rng = np.random.default_rng(3)
    p = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    xs = rng.standard_normal((5, 3))

    def f(params, x, scale=1.0):
        return np.tanh(x @ params["w"] + params["b"]) * scale

    scales = rng.standard_normal(5)
    got = dg.vmap(f, in_axes=({"w": None, "b": None}, -2), out_axes=-1)(p, xs, scale=scales)
    want = np.stack([f(p, x, s) for x, s in zip(xs, scales)], axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    tup = dg.vmap(lambda a, b: (a * b, b), in_axes=[0, None], out_axes=(1, None))(
        xs, p["b"][:3])
    np.testing.assert_allclose(tup[0], (xs * p["b"][:3]).T)
    assert tup[1] is p["b"][:3] or np.array_equal(tup[1], p["b"][:3])
    ones = dg.vmap(lambda: np.ones(2), in_axes=(), axis_size=4)()
    assert ones.shape == (4, 2) and ones.flags.writeable


def test_errors_name_the_argument():
    x, y = np.ones((3, 2)), np.ones((4, 2))
    with pytest.raises(ValueError, match=r"argument 0 has size 3 .* argument 1 has size 4"):
        dg.vmap(lambda a, b: a + b)(x, y)
    with pytest.raises(ValueError, match=r"axis_size is 5, but argument 0 has size 3"):
        dg.vmap(lambda a: a, axis_size=5)(x)
    with pytest.raises(ValueError, match=r"axis 2 of argument 1\['w'\], which has shape"):
        dg.vmap(lambda a, p: a, in_axes=(0, {"w": 2}))(x, {"w": x})
    with pytest.raises(ValueError, match="scalar"):
        dg.vmap(lambda a, s: a * s)(x, 2.0)
    with pytest.raises(ValueError, match="axis_size"):
        dg.vmap(lambda a: a, in_axes=None)(x)
    with pytest.raises(ValueError, match="2 entries, but the function was called with 1"):
        dg.vmap(lambda a: a, in_axes=(0, 0))(x)
    with pytest.raises(TypeError, match=r"in_axes\[1\] must be an int, None"):
        dg.vmap(lambda a, b: a, in_axes=(0, "x"))
    with pytest.raises(TypeError, match="out_axes must be an int"):
        dg.vmap(lambda a: a, out_axes=1.5)
    with pytest.raises(ValueError, match="in_axes gives"):
        dg.vmap(lambda p: p, in_axes=({"a": 0},))({"b": x})
    with pytest.raises(ValueError, match="out_axes is None"):
        dg.vmap(lambda a: a, out_axes=None)(x)
    with pytest.raises(TypeError, match="bool"):
        dg.vmap(lambda a: a if a[0] > 0 else -a)(x)


# ---------------------------------------------------------------------------
# composition with the other transforms, against loops
# ---------------------------------------------------------------------------

RNG = np.random.default_rng(4)
W = RNG.standard_normal((3, 4))
XS = RNG.standard_normal((6, 3))


def loss(w, x):
    """Non-smooth on purpose: relu, abs and max read raw values in their rules."""
    h = dg.nn.relu(x @ w)
    return np.sum(h ** 2) + np.sum(np.abs(w * x[:, None])) + np.max(np.sin(x @ w))


def test_vmap_of_grad_is_per_example_gradients():
    got = dg.vmap(dg.grad(loss), in_axes=(None, 0))(W, XS)
    want = np.stack([dg.grad(loss)(W, x) for x in XS])
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


def test_grad_of_sum_of_vmap():
    got = dg.grad(lambda w: np.sum(dg.vmap(loss, in_axes=(None, 0))(w, XS)))(W)
    want = sum(dg.grad(loss)(W, x) for x in XS)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_vmap_of_jvp_and_jacfwd_of_vmap():
    f = lambda x: np.tanh(W.T @ x) * np.sum(x ** 3)  # noqa: E731
    ts = RNG.standard_normal(XS.shape)
    got = dg.vmap(lambda x, t: dg.jvp(f, (x,), (t,))[1])(XS, ts)
    want = np.stack([dg.jvp(f, (x,), (t,))[1] for x, t in zip(XS, ts)])
    np.testing.assert_allclose(got, want, rtol=1e-13)
    jac = dg.jacfwd(dg.vmap(f))(XS)  # (6, 4, 6, 3): block diagonal in the examples
    for i, x in enumerate(XS):
        np.testing.assert_allclose(jac[i, :, i], dg.jacfwd(f)(x), rtol=1e-13)
    off = jac.copy()
    off[np.arange(6), :, np.arange(6)] = 0
    assert not off.any()


def test_vmap_of_vmap_and_of_hessian():
    xs = RNG.standard_normal((2, 5, 3))
    got = dg.vmap(dg.vmap(lambda x, w: np.sin(x @ w), in_axes=(0, None)),
                  in_axes=(1, None), out_axes=1)(xs, W)
    np.testing.assert_allclose(got, np.sin(xs @ W), rtol=1e-14)
    outer = dg.vmap(lambda a: dg.vmap(lambda b: a * b)(XS[:, 0]))(XS[:, 1])
    np.testing.assert_allclose(outer, np.outer(XS[:, 1], XS[:, 0]))
    h = lambda x: np.sum(np.tanh(x) * x[::-1]) + np.prod(x)  # noqa: E731
    got = dg.vmap(dg.hessian(h))(XS)
    np.testing.assert_allclose(got, np.stack([dg.hessian(h)(x) for x in XS]), rtol=1e-12)


def test_jit_of_vmap_of_grad():
    f = dg.jit(dg.vmap(dg.grad(loss), in_axes=(None, 0)))
    for _ in range(2):  # record, then replay
        got = f(W, XS)
        np.testing.assert_allclose(got, np.stack([dg.grad(loss)(W, x) for x in XS]),
                                   rtol=1e-13, atol=1e-14)


def test_no_perturbation_confusion_with_vmap_inside_or_outside():
    ys = np.array([1.0, 2.0, 3.0])
    inner = lambda x: x * np.mean(dg.vmap(dg.grad(lambda y: x + y))(ys))  # noqa: E731
    assert dg.grad(inner)(1.0) == 1.0  # a confused engine answers 2
    outer = dg.vmap(dg.grad(lambda x: x * dg.grad(lambda y: x + y)(1.0)))(ys)
    np.testing.assert_array_equal(outer, np.ones(3))
    both = dg.vmap(dg.grad(lambda x: x * np.sum(dg.vmap(dg.grad(lambda y: x * y))(ys))))(ys)
    np.testing.assert_allclose(both, 6 * ys)  # x * sum over 3 y's of d(xy)/dy = 3x^2


def test_custom_rules_batch(softplus, clip_grad):
    xs = np.array([-1000.0, 0.5, 1000.0])
    np.testing.assert_allclose(dg.vmap(dg.grad(softplus))(xs), [0.0, dg.nn.sigmoid(0.5), 1.0])
    got = dg.grad(lambda x: np.sum(dg.vmap(lambda v: clip_grad(v) * 3.0)(x)))(xs)
    np.testing.assert_array_equal(got, np.ones(3))
    sg = dg.vmap(dg.grad(lambda x: x * dg.stop_gradient(x)))(xs)
    np.testing.assert_array_equal(sg, xs)


# ---------------------------------------------------------------------------
# per-example gradients of the CS231n two-layer net (tutorials/04)
# ---------------------------------------------------------------------------

def test_cs231n_per_example_gradients_match_a_loop():
    N, D_in, H, D_out = 64, 1000, 100, 10
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((N, D_in)), rng.standard_normal((N, D_out))
    w = (rng.standard_normal((D_in, H)), rng.standard_normal((H, D_out)))

    def example_loss(w, x, y):
        w1, w2 = w
        return np.sum((np.maximum(x @ w1, 0.0) @ w2 - y) ** 2)

    g1, g2 = dg.vmap(dg.grad(example_loss), in_axes=(None, 0, 0))(w, x, y)
    assert g1.shape == (N, D_in, H) and g2.shape == (N, H, D_out)
    for i in range(N):
        l1, l2 = dg.grad(example_loss)(w, x[i], y[i])
        np.testing.assert_allclose(g1[i], l1, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(g2[i], l2, rtol=1e-12, atol=1e-12)
    b1, b2 = dg.grad(lambda w: np.sum((np.maximum(x @ w[0], 0.0) @ w[1] - y) ** 2))(w)
    np.testing.assert_allclose(g1.sum(0), b1, rtol=1e-10)
    np.testing.assert_allclose(g2.sum(0), b2, rtol=1e-10)


def test_vmap_of_jvp_over_tangents_is_one_batched_forward_pass():
    """JAX's batching rule for jvp: tangents batched over unbatched primals are forward
    mode's batched tangents; mixed with an unbatched tangent, and against a loop."""
    rng = np.random.default_rng(11)
    A = rng.standard_normal((4, 4))
    x, y = rng.standard_normal(4), rng.standard_normal(4)
    T = rng.standard_normal((4, 3))  # batch on axis 1
    ty = rng.standard_normal(4)

    def f(x, y):
        return np.tanh(A @ x) * y + x ** 3

    got_p, got_t = dg.vmap(lambda t: dg.jvp(f, (x, y), (t, ty)), in_axes=1)(T)
    for k in range(3):
        want_p, want_t = dg.jvp(f, (x, y), (T[:, k], ty))
        np.testing.assert_allclose(got_p[k], want_p, rtol=1e-14)
        np.testing.assert_allclose(got_t[k], want_t, rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="tangents"):
        dg.vmap(lambda t: dg.jvp(f, (x, y), (t, ty)))(np.ones((3, 5)))


def test_list_operands_are_arrays_under_vmap():
    """x @ [1.0, 2.0, 3.0] and the other operators read a list as numpy does."""
    X = np.arange(6.0).reshape(2, 3)
    c = [1.0, 2.0, 3.0]
    np.testing.assert_allclose(dg.vmap(lambda x: x @ c)(X), X @ c)
    np.testing.assert_allclose(dg.vmap(lambda x: c @ x)(X), X @ c)
    np.testing.assert_allclose(dg.vmap(lambda x: x * c - c)(X), X * c - c)
    np.testing.assert_allclose(dg.vmap(dg.grad(lambda x: np.sum((x @ c) ** 2)))(X),
                               2 * (X @ c)[:, None] * np.array(c))


def test_per_example_labels_index_under_vmap():
    """Per-example gradients of a classification loss: s[y] with y one integer label per
    example (the labels carry no derivative; a traced integer index is a gather)."""
    rng = np.random.default_rng(3)
    W, xs, ys = rng.standard_normal((3, 4)), rng.standard_normal((5, 3)), np.array([0, 3, 1, 3, 2])

    def loss(W, x, y):
        s = x @ W
        return np.log(np.sum(np.exp(s))) - s[y]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BatchingFallbackWarning)  # a loop per example
        got = dg.vmap(dg.grad(loss), in_axes=(None, 0, 0))(W, xs, ys)
        values = dg.vmap(loss, in_axes=(None, 0, 0))(W, xs, ys)
    want = np.stack([dg.grad(loss)(W, x, y) for x, y in zip(xs, ys)])
    np.testing.assert_allclose(got, want, rtol=1e-13)
    np.testing.assert_allclose(values, [loss(W, x, y) for x, y in zip(xs, ys)], rtol=1e-13)


# x[idx] where idx's integer arrays differ per example: (the per-example shape of x, the
# index with "L" for the per-example labels array and "M" for a shared array, labels' shape)
LABEL_INDEXES = {
    "s[y]": ((5,), ("L",), ()),
    "E[ids]": ((6, 3), ("L",), (4,)),
    "x[:, y]": ((3, 5), (slice(None), "L"), (2,)),
    "x[y, :, 1]": ((5, 3, 4), ("L", slice(None), 1), (2,)),
    "x[1, :, y] (separated)": ((3, 4, 5), (1, slice(None), "L"), (2, 2)),
    "x[:, y, M]": ((2, 5, 6), (slice(None), "L", "M"), (3,)),
    "x[M, y]": ((4, 5), ("M", "L"), (3,)),
}


@pytest.mark.parametrize("x_batched", [True, False])
@pytest.mark.parametrize("name", LABEL_INDEXES)
def test_batched_labels_gather_without_a_loop(name, x_batched):
    xs, key, ls = LABEL_INDEXES[name]
    rng = np.random.default_rng(11)
    B = 3
    n_lab = xs[key.index("L")] if "L" in key else None
    labels = rng.integers(-n_lab, n_lab, (B,) + ls)  # negative labels too
    shared = np.array([0, 3, 1]) % xs[key.index("M")] if "M" in key else None
    X = rng.standard_normal(((B,) if x_batched else ()) + xs)

    def f(x, y):
        k = tuple(y if e == "L" else shared if e == "M" else e for e in key)
        return np.sin(x[k]) * 2.0

    loss = lambda x, y: np.sum(f(x, y) ** 2)  # noqa: E731
    ax = 0 if x_batched else None
    with warnings.catch_warnings():
        warnings.simplefilter("error", BatchingFallbackWarning)  # the rule, not a loop
        grads = dg.vmap(dg.grad(loss), in_axes=(ax, 0))(X, labels)  # x traced, shared
        got, tangents = dg.vmap(lambda x, y: dg.jvp(lambda x: f(x, y), (x,),
                                                    (np.cos(x),)), in_axes=(ax, 0))(X, labels)
    for b in range(B):
        x = X[b] if x_batched else X
        np.testing.assert_allclose(got[b], f(x, labels[b]), rtol=1e-15)
        np.testing.assert_allclose(grads[b], dg.grad(loss)(x, labels[b]), rtol=1e-14)
        np.testing.assert_allclose(tangents[b], dg.jvp(lambda x: f(x, labels[b]), (x,),
                                                       (np.cos(x),))[1], rtol=1e-14)


def test_writes_with_per_example_indices_under_vmap():
    """y[i] = v and y[i] += v with a batch of index arrays (repeated indices: the last
    write wins, as numpy's): the values per example; the derivative is refused clearly."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((3, 4, 5))
    idx = np.array([[1, 3, 1], [0, 0, 2], [4, 2, 4]])  # per example, with repeats

    def write(x, i):
        y = x * 1.0
        y[:, i] = x[0, :3] * 2.0
        y[1, i] += 1.0
        return y

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BatchingFallbackWarning)
        got = dg.vmap(write)(X, idx)
        with pytest.raises(TypeError, match="per-example indices under dg.vmap"):
            dg.vmap(dg.grad(lambda x, i: np.sum(write(x, i))))(X, idx)
    for b in range(3):
        np.testing.assert_allclose(got[b], write(X[b], idx[b]), rtol=1e-15)


def test_masks_under_vmap_and_clear_refusals():
    """A batch of masks takes numpy's operators (np.nanmean's ~mask); the sorting
    statistics under vmap are refused naming the loop to write instead."""
    X = np.random.default_rng(6).standard_normal((3, 5))
    Xn = np.where(X > 1.0, np.nan, X)
    np.testing.assert_allclose(dg.vmap(np.nanmean)(Xn), np.nanmean(Xn, axis=1), rtol=1e-15)
    m = X > 0
    np.testing.assert_array_equal(dg.vmap(lambda a, b: ~a | (b & a) ^ b)(m, ~m),
                                  ~m | (~m & m) ^ ~m)
    g = dg.vmap(dg.grad(lambda x: np.nanmean(np.where(x > 1.0, np.nan, x) ** 2)))(X)
    for b in range(3):
        np.testing.assert_allclose(
            g[b], dg.grad(lambda x: np.nanmean(np.where(x > 1.0, np.nan, x) ** 2))(X[b]),
            rtol=1e-14)
    for f in (np.median, lambda x: np.quantile(x, 0.3), dg.grad(np.median)):
        with pytest.raises(TypeError, match="under dg.vmap is not supported yet"):
            dg.vmap(f)(X)
