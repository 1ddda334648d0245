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
GRID = np.array([0.0, 0.5, 1.5, 1.7])  # uneven sample points
XI, XP = np.array([-1.3, 0.2, 0.9, 1.6, 2.7]), np.array([-0.4, 0.3, 1.1, 1.9])
FP, Q = np.array([1.0, -0.3, 2.2, 0.7]), np.array([0.2, 0.75])
NANS = np.where(np.array([[0, 1, 0, 0], [1, 0, 0, 1], [0, 0, 1, 0]]) == 1, np.nan, 0.0)
INFS = np.where(np.array([[0, 1, 0, 0], [2, 0, 0, 3], [0, 0, 1, 0]]) == 1, np.nan, 0.0) + \
    np.array([0, np.inf, -np.inf, 0])[np.array([[0, 0, 0, 0], [1, 0, 0, 2], [0, 0, 0, 0]])]

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
    # the long tail (numpy/statistics.py, differences.py, ...); NANS and INFS are fixed nan /
    # inf patterns
    "diff_ediff1d": (lambda x: (np.diff(x, 2, axis=0, prepend=0.5), np.diff(x, append=x[:, :1]),
                                np.ediff1d(x, to_end=[1.0], to_begin=x[0, 0])), A),
    "gradient": (lambda x, h: (np.gradient(x, 0.3, h), np.gradient(x, axis=1, edge_order=2),
                               np.gradient(x[0], h, edge_order=2)), A, GRID),
    "interp": (lambda x, xp, fp: (np.interp(x, xp, fp), np.interp(x, xp, fp, fp[1], -1.0),
                                  np.interp(x, xp, fp, period=2.5)), XI, XP, FP),
    "trapezoid": (lambda y, x: (np.trapezoid(y, x, axis=1), np.trapezoid(y, dx=0.2, axis=0)),
                  A, GRID),
    "median_quantile": (lambda x, q: (np.median(x, axis=1), np.median(x), np.percentile(
        x, [10.0, 60.0], axis=0), np.quantile(x, q, axis=1, keepdims=True),
        np.quantile(x, 0.3, method="midpoint"), np.partition(x, 2, axis=1)[:, 2]), A, Q),
    "nan_reductions": (lambda x: tuple(f(x + NANS, axis=1) for f in (
        np.nansum, np.nanmean, np.nanmax, np.nanmin, np.nanstd, np.nanvar, np.nanprod,
        np.nanmedian, np.nancumsum, np.nancumprod)) + (np.nanquantile(x + NANS, 0.3, axis=0),
                                        np.nanpercentile(x + NANS, 40.0)), A),
    "average_cov_corrcoef": (lambda x, w: (np.average(x, axis=1, weights=w), np.average(
        x, weights=x ** 2), np.cov(x), np.cov(x, rowvar=False, aweights=w[:3] ** 2),
        np.cov(x[0], w, bias=True), np.corrcoef(x)), A, POS[0]),
    "copy_append_insert_delete": (lambda x, v: (np.copy(x), x.copy() * 2, np.append(x, v),
                                                np.append(x, x[:1], axis=0),
                                                np.insert(x, [1, 3], v[:3, None], axis=1),
                                                np.insert(x, 2, v[0]), np.delete(x, [0, 2], 1)),
                                  A, V),
    "kron_cross_outer": (lambda x, y: (np.kron(x, x[:2, :2]), np.kron(y, x), np.cross(
        x[:, :3], x[:, 1:]), np.multiply.outer(y, x[0]), np.subtract.outer(y, y),
        np.linalg.outer(y, x[1])), A, V),
    "sinc_select_piecewise": (lambda x: (np.sinc(x), np.select([x > 0.5, x < 0], [x, x ** 2],
                                                               default=-x),
                                         np.piecewise(x, [x < 0, x > 1],
                                                      [lambda v: v ** 2, 3.0, np.sin])), A),
    "stacking_and_splitting": (lambda x: (np.atleast_3d(x), np.rollaxis(x[None], 2, 1),
                                          np.column_stack([x[0], x[:2].T]), np.dstack([x, x]),
                                          np.vsplit(x, 3)[1], np.hsplit(x, [1, 3])[1],
                                          np.dsplit(x[None], 2)[0], np.matrix_transpose(x),
                                          np.ptp(x, axis=1), np.cumulative_sum(
                                              x, axis=1, include_initial=True),
                                          np.cumulative_prod(x, axis=0)), A),
    "linspace_geomspace": (lambda a, b: (np.linspace(a, b, 5), np.linspace(
        a[0], 2.0, 4, endpoint=False, retstep=True), np.geomspace(a ** 2 + 1, b ** 2 + 2, 4),
        np.logspace(a, b, 3, base=2.0)), V[:2], V[2:]),
    "nan_to_num_casts": (lambda x: (np.nan_to_num(x + INFS, neginf=-5.0), np.real_if_close(
        x + 0j), x * x.astype(int), np.angle(x * (1 + 2j))), POS),
    "einsum_repeated_sublist": (lambda x, s: (np.einsum("ii", s), np.einsum("ii->i", s),
                                              np.einsum("iij->j", np.stack([s, s], -1)),
                                              np.einsum("...ii->...i", np.stack([s, 2 * s])),
                                              np.einsum(x, [0, 1], x, [2, 1], [0, 2]),
                                              np.einsum(x, [Ellipsis, 1], s[0], [1])), A[:, :3],
                                SQ),
    "convolve_correlate": (lambda a, v: (np.convolve(a, v), np.convolve(a, v[:3], "same"),
                                         np.convolve(v[:2], a, "valid"),
                                         np.correlate(a, v[:3], "full"),
                                         np.correlate(v[:2], a, "same")), V, POS[0]),
    "polynomials": (lambda p, x: (np.polyval(p, x), np.polyadd(p, x[:2]), np.polysub(p[:2], x),
                                  np.polymul(p, x[:2]), np.polyder(p, 2),
                                  np.polyint(p, 2, k=[x[0], 1.0]), np.vander(x, 3)), V, POS[1]),
    "fft": (lambda x, y: tuple(p for z in (
        np.fft.fft(x + 1j * y, 6, axis=0), np.fft.ifft(x + 1j * y, norm="ortho"),
        np.fft.fft2(x + 1j * y), np.fft.ifftn(x + 1j * y, s=(2, 5), axes=(0, 1)), np.fft.rfft(x, 5),
        np.fft.irfft(x + 1j * y, 5), np.fft.rfft2(x), np.fft.irfft2(x + 1j * y),
        np.fft.fftshift(x), np.fft.ifftshift(x, axes=1), np.fft.fftn(x + 1j * y),
        np.fft.ifft2(x + 1j * y, norm="forward"), np.fft.rfftn(x, s=(4, 4), axes=(0, 1)),
        np.fft.irfftn(x + 1j * y, s=(3, 5), axes=(0, 1)))
        for p in (np.real(z), np.imag(z))), A, POS),
}
TAIL_SMOOTH = ["diff_ediff1d", "gradient", "trapezoid", "average_cov_corrcoef",
               "copy_append_insert_delete", "kron_cross_outer", "linspace_geomspace",
               "einsum_repeated_sublist", "convolve_correlate", "polynomials", "fft"]


@pytest.mark.parametrize("name", sorted(ROWS))
def test_numpy_function_derivatives(name):
    f, *args = ROWS[name]
    dg.check_grads(f, tuple(args), order=1, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", ["operators", "ufuncs", "var_std", "linalg", "cholesky",
                                  "tensordot_einsum", "pad_sort", *TAIL_SMOOTH])
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
    (lambda x: np.fft.hfft(x).sum(), "no derivative rule for numpy.fft.hfft"),
    (lambda x: np.linalg.matrix_rank(x), "no derivative rule for numpy.linalg.matrix_rank"),
    (lambda x: np.gcd(x, x), "no derivative rule for numpy.gcd"),
    (lambda x: np.array([x[0], x[1]], dtype=float).sum(), "plain float array"),
    (lambda x: float(x[0]), "float"),
])
def test_functions_without_rules_raise(call, match):
    with pytest.raises(TypeError, match=match):
        dg.grad(call)(SQ)


def test_in_place_writes_raise():
    def f(x):
        s = x[0, 0]
        s[()] = 1.0  # a traced number is immutable, as in numpy
        return x.sum()
    with pytest.raises(TypeError, match="item assignment"):
        dg.grad(f)(A)
    # out= a traced array (np.empty_like inside a transform is one) is written, as numpy's
    np.testing.assert_allclose(dg.grad(lambda x: np.sin(x, out=np.empty_like(A)).sum())(A),
                               np.cos(A))


def test_square_power_is_the_square_row():
    with dg.Tape() as tape:
        x = tape.watch(np.array([1.5, -2.0]))
        y, z, _ = x ** 2, x ** 3, x ** np.float64(2.0)
        total = np.sum(y) + np.sum(z)
    assert [e.prim.name for e in tape.entries[1:4]] == ["square", "power", "power"]
    np.testing.assert_array_equal(y.value, np.array([1.5, -2.0]) ** 2)
    np.testing.assert_allclose(tape.gradient(total, x), [3 + 6.75, -4 + 12.0])
