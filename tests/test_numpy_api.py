"""Plain numpy code on traced values: one row per numpy function or method.

Each row is a function of float arrays written with ordinary numpy; both modes
must agree with finite differences (``dg.check_grads``, which the user calls too).
"""

import numpy as np
import pytest

import dualgrad as dg

R = np.random.default_rng(1)
A = R.standard_normal((3, 4))
B = R.standard_normal((4, 2))
V = R.standard_normal(4)
SQ = R.standard_normal((3, 3)) + 3 * np.eye(3)
POS = R.uniform(0.5, 2.0, (3, 4))

ROWS = {
    "operators": (lambda x, y: (x * 2 - 1 / (1 + x ** 2)) @ y + (-x) @ (x.T @ (x @ y)), A, B),
    "rpow_mod": (lambda x: 2.0 ** x + (x % 0.7) + abs(x), A),
    "ufuncs": (lambda x: np.log1p(x) + np.expm1(x) + np.log2(x) + np.log10(x) + np.cbrt(x)
               + np.arctan(x) + np.arcsinh(x) + np.sqrt(x) + np.reciprocal(x), POS),
    "sum_mean_keepdims": (lambda x: np.sum(x, axis=0)[None] + np.mean(x, 1, keepdims=True), A),
    "var_std": (lambda x: np.var(x, axis=1) + np.std(x, ddof=1) + x.var() + x.std(axis=0).sum(),
                A),
    "prod_minmax": (lambda x: np.prod(x, axis=1) + np.max(x, 1) + np.min(x, axis=1)
                    + np.amax(x) + x.max(axis=1) + x.min(), POS),
    "cumsum_cumprod": (lambda x: np.cumsum(x, axis=1) + np.cumprod(x, axis=1) + np.cumsum(x)
                       .reshape(3, 4), POS),
    "reshape_transpose": (lambda x: x.reshape(2, 6).T.reshape(-1) + np.ravel(x.T), A),
    "swap_move_expand": (lambda x: np.swapaxes(x[None], 0, 2).squeeze()
                         + np.moveaxis(np.expand_dims(x, 2), 2, 0)[0].T, A),
    "broadcast_to": (lambda x: np.broadcast_to(x, (2, 3, 4)) * 2.0, A),
    "concat_stack_split": (lambda x: np.concatenate(np.split(x, 2, axis=1)[::-1], axis=0)
                           .sum() + np.stack([x, 2 * x], axis=1) * 1.0, A),
    "hstack_vstack": (lambda x: np.vstack([x, x[:1]]).sum(0) + np.hstack([x, x]).sum(1).sum(),
                      A),
    "flip_roll_tile_repeat": (lambda x: np.flip(x, 1) + np.roll(x, 2, axis=1)
                              + np.tile(x, (1, 2))[:, :4] + np.repeat(x, 2, axis=0)[::2], A),
    "pad_sort": (lambda x: np.pad(x, ((1, 0), (2, 1)), constant_values=1.5).sum(0)
                 + np.pad(x, 1, mode="reflect").sum() + np.sort(x, axis=1)[:, 0].sum(), A),
    "take": (lambda x: np.take(x, [0, 3, 3], axis=1) + np.take_along_axis(
        x, np.argsort(x, axis=1), axis=1)[:, :3], A),
    "diag_tri_trace": (lambda x: np.diag(x[:, 0]) + np.diag(x) + np.triu(x[:, :3], 1)
                       + np.tril(x[:, :3]) + np.trace(x), A),
    "indexing": (lambda x: x[1:, ::2].sum() + x[[0, 0, 2], [1, 3, 3]] + x[x > 0].sum()
                 + x[..., 1][None, :] * x[-1, None, 0], A),
    "where_clip": (lambda x: np.where(x > 0, x ** 2, -x) + np.clip(x, -0.5, 0.5), A),
    "maximum_minimum": (lambda x, y: np.maximum(x, y) + np.minimum(x, 0.1) + np.fmax(x, y),
                        A, V),
    "arctan2_hypot_logaddexp": (lambda x, y: np.arctan2(x, y) + np.hypot(x, y)
                                + np.logaddexp(x, y) + np.logaddexp2(x, y), A, V),
    "dot_inner_outer": (lambda x, y: np.dot(x, y) + np.inner(x, y) + np.outer(y, y)[0].sum()
                        + np.vdot(y, y), A, V),
    "tensordot_einsum": (lambda x, y: np.tensordot(x, y, axes=1).sum(0)
                         + np.einsum("ij,jk->k", x, y) + np.einsum("ij,jk", x, y)[0], A, B),
    "linalg": (lambda a: np.linalg.det(a) + np.linalg.slogdet(a)[1]
               + np.linalg.inv(a).sum() + np.linalg.solve(a, np.ones(3)).sum(), SQ),
    "cholesky": (lambda a: np.linalg.cholesky(a @ a.T + np.eye(3)).sum(), SQ),
    "norms": (lambda x: np.linalg.norm(x) + np.linalg.norm(x, axis=1) .sum()
              + np.linalg.norm(x, ord=1, axis=0).sum() + np.linalg.norm(x, np.inf)
              + np.linalg.norm(x[0], 3), A),
    "ufunc_reduce": (lambda x: np.add.reduce(x, axis=1) + np.multiply.accumulate(x, axis=1)
                     [:, -1], POS),
    "astype_float32_roundtrip": (lambda x: x.astype(np.float64) * 2, A),
    "iteration_len": (lambda x: sum(row * i for i, row in enumerate(x)) * len(x), A),
}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_numpy_function_derivatives(name):
    f, *args = ROWS[name]
    dg.check_grads(f, tuple(args), order=1, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", ["operators", "ufuncs", "var_std", "linalg", "cholesky",
                                  "tensordot_einsum", "pad_sort"])
def test_numpy_function_second_order(name):
    f, *args = ROWS[name]
    dg.check_grads(f, tuple(args), order=2, modes=("fwd", "rev"))


def test_integer_and_boolean_arrays_pass_through():
    idx = np.array([2, 0])

    def f(x):
        n = np.arange(4)           # integer arrays are constants
        mask = x > 0               # comparisons give plain booleans
        assert isinstance(mask, np.ndarray) and mask.dtype == bool
        assert np.argmax(x) == np.argmax(np.asarray([1.0, 3.0, 2.0, 0.0]))
        return np.sum(x[idx] * n[idx]) + np.sum(np.where(mask, x, 0.0))
    g = dg.grad(f)(np.array([1.0, 3.0, 2.0, 0.0]))
    np.testing.assert_allclose(g, [1.0, 1.0, 3.0, 0.0])


def test_attributes_of_traced_values():
    def f(x):
        assert x.shape == (3, 4) and x.ndim == 2 and x.size == 12 and len(x) == 3
        assert x.dtype == np.float64 and x.T.shape == (4, 3)
        return x.sum()
    dg.grad(f)(A)
    dg.jvp(f, (A,), (A,))


def test_float32_stays_float32():
    x = A.astype(np.float32)
    g = dg.grad(lambda x: np.sum(np.sin(x) * 2.0))(x)
    assert g.dtype == np.float32
    _, t = dg.jvp(lambda x: np.sin(x) * 2.0, (x,), (x,))
    assert t.dtype == np.float32


@pytest.mark.parametrize("call, match", [
    (lambda x: np.fft.fft(x).real.sum(), "no derivative rule for numpy.fft.fft"),
    (lambda x: np.linalg.eigvalsh(x).sum(), "no derivative rule"),
    (lambda x: np.gcd(x, x), "no derivative rule for numpy.gcd"),
    (lambda x: np.array([x[0], x[1]]).sum(), "cannot become a plain numpy array"),
    (lambda x: float(x[0]), "float"),
])
def test_functions_without_rules_raise(call, match):
    with pytest.raises(TypeError, match=match):
        dg.grad(call)(SQ)


def test_in_place_writes_raise():
    def f(x):
        x[0] = 1.0
        return x.sum()
    with pytest.raises(TypeError, match="immutable"):
        dg.grad(f)(A)
    with pytest.raises(TypeError, match="in place"):
        dg.grad(lambda x: np.sin(x, out=np.empty_like(A)).sum())(A)


def test_square_power_is_the_square_row():
    with dg.Tape() as tape:
        x = tape.watch(np.array([1.5, -2.0]))
        y, z, _ = x ** 2, x ** 3, x ** np.float64(2.0)
        total = np.sum(y) + np.sum(z)
    assert [e.prim.name for e in tape.entries[1:4]] == ["square", "power", "power"]
    np.testing.assert_array_equal(y.value, np.array([1.5, -2.0]) ** 2)
    np.testing.assert_allclose(tape.gradient(total, x), [3 + 6.75, -4 + 12.0])
