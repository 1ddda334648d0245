"""A product with a diagonal left factor replays as a row scaling (compiler/products.py),
with the product's bits, infinities, NaNs and signed zeros included."""

import numpy as np
import pytest

import dualgrad as dg
from dualgrad.compiler.products import diagonal_left

R = np.random.default_rng(11)
B = R.standard_normal((5, 4))
D = np.diag(R.standard_normal(5))


def _with(M, i, j, v):
    M = M.copy()
    M[i, j] = v
    return M


CASES = {  # name: (D, B)
    "diagonal": (D, B),
    "dense": (R.standard_normal((5, 5)), B),
    "zero on the diagonal": (_with(D, 2, 2, 0.0), B),
    "minus zero on the diagonal": (_with(D, 2, 2, -0.0), B),
    "minus zeros off the diagonal": (D * np.where(np.eye(5), 1.0, -0.0), B),
    "inf on the diagonal": (_with(D, 1, 1, np.inf), B),
    "nan off the diagonal": (_with(D, 3, 0, np.nan), B),
    "nonzero off the diagonal only far away": (_with(D, 4, 0, 1e-300), B),
    "inf in B": (D, _with(B, 3, 1, np.inf)),
    "nan in B": (D, _with(B, 0, 2, np.nan)),
    "zero in B": (D, _with(B, 1, 1, 0.0)),
    "minus zero in B": (D, _with(B, 1, 1, -0.0)),
    "underflow": (D * 1e-200, B * 1e-200),
    "overflow": (D * 1e200, B * 1e200),
    "float32": (D.astype(np.float32), B.astype(np.float32)),
    "mixed dtypes": (D.astype(np.float32), B),
    "not square": (np.eye(5, 6), np.ones((6, 2))),
    "a vector": (D, B[:, 0]),
    "2 x 2": (np.diag([2.0, -3.0]), np.ones((2, 3))),
}


def _bits(a):
    return a.dtype, a.shape, a.tobytes()


@pytest.mark.parametrize("name", CASES)
def test_diagonal_left_is_the_product_bit_for_bit(name):
    d, b = CASES[name]
    with np.errstate(all="ignore"):
        want = d @ b
        got = diagonal_left(d, b)
    assert _bits(got) == _bits(want)


def test_jacrev_under_jit_scales_rows():
    n = 40
    A = R.standard_normal((n, n)) / np.sqrt(n)
    f = lambda x: np.tanh(A @ x) + x ** 3  # noqa: E731
    jf = dg.jit(dg.jacrev(f))
    assert "dmm(" in jf.lower(np.zeros(n)).source
    for _ in range(3):
        x = R.standard_normal(n)
        np.testing.assert_allclose(jf(x), dg.jacrev(f)(x), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(jf(x), dg.jacfwd(f)(x), rtol=1e-12, atol=1e-14)
    # a point where tanh' underflows to 0 on the diagonal: the product, as it is
    x = np.full(n, 400.0)
    np.testing.assert_array_equal(jf(x), dg.jit(dg.jacrev(f), codegen="off")(x))


def test_an_outer_product_alone_is_a_kernel():
    """a[:, :, None] * b[:, None, :] (per-example weight gradients): a kernel of its own,
    where numpy's broadcasting loop runs the short inner axis element by element."""
    def f(a, b):
        return a[:, :, None] * b[:, None, :]

    a, b = R.standard_normal((64, 16)), R.standard_normal((64, 32))
    jf = dg.jit(f, codegen="numba")
    lo = jf.lower(a, b)
    assert len(lo.kernels) == 1 and lo.fused.count("multiply") == 0
    for k in range(2):
        np.testing.assert_array_equal(jf(a + k, b), f(a + k, b))
    small = dg.jit(f, codegen="numba").lower(a[:4, :4], b[:4, :4])
    assert not small.kernels  # 64 entries: numpy's own loop
