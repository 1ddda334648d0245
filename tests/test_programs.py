"""Random short numpy programs, differentiated in both modes (hypothesis).

A program is a few steps over a list of (2, 3) float arrays: each step applies one
ordinary numpy operation to one or two earlier values and appends the result.  The
loss is a weighted sum of the last value.  Reverse mode (``grad``) and forward mode
(``jacfwd``) must agree with Richardson-extrapolated finite differences, and the
gradient must have the input's dtype (float32 stays float32, float64 stays float64),
even where float64 constants promote the values in between.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import dualgrad as dg

C = np.array([[0.5, -1.0, 0.3], [0.2, 0.4, -0.7], [1.1, 0.0, 0.6]])
W = np.array([[0.7, -1.3, 0.4], [1.9, 0.2, -0.5]])

UNARY = {
    "sin": np.sin, "cos": np.cos, "tanh": np.tanh, "exp_tanh": lambda x: np.exp(np.tanh(x)),
    "log1p_sq": lambda x: np.log1p(x * x), "sqrt_1p": lambda x: np.sqrt(1.0 + x ** 2),
    "square": lambda x: x ** 2, "scale": lambda x: 2.5 * x - x / 7, "neg": lambda x: -x,
    "arctan": np.arctan, "logaddexp0": lambda x: np.logaddexp(x, 0.0),
    "matmul": lambda x: x @ C, "einsum": lambda x: np.einsum("ij,jk->ik", x, C),
    "flip": lambda x: x[::-1, ::-1], "roll": lambda x: np.roll(x, 1, axis=1),
    "cumsum": lambda x: np.cumsum(x, axis=1), "gather": lambda x: x[[1, 0]][:, [2, 0, 1]],
    "mean_keep": lambda x: x - np.mean(x, axis=1, keepdims=True),
    "sum_keep": lambda x: x * np.sum(x, axis=0, keepdims=True),
    "norm_rows": lambda x: x / np.sqrt(1.0 + np.sum(x * x, axis=1, keepdims=True)),
    "concat": lambda x: np.concatenate([x[:, 1:], x[:, :1]], axis=1),
    "stack_T": lambda x: np.stack([x[0], x[1]]).T.reshape(2, 3),
    "tile": lambda x: np.tile(x[:, :1], (1, 3)) + x,
    "pad": lambda x: np.pad(x, ((0, 0), (1, 0)))[:, :3],
    "entry": lambda x: x * x[1, 2] / 3,
    "var": lambda x: x + np.var(x, axis=1, keepdims=True),
    "prod": lambda x: np.prod(1.0 + 0.1 * x, axis=1, keepdims=True) * x,
}
BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply,
    "div": lambda x, y: x / (1.0 + y * y), "hypot": lambda x, y: np.hypot(x, 1.0 + y * y),
    "arctan2": lambda x, y: np.arctan2(x, 2.0 + y * y), "matmul_T": lambda x, y: x @ y.T @ x,
    "outer_row": lambda x, y: x * np.outer(y[0], np.ones(3))[:2],
}

step = st.one_of(
    st.tuples(st.just("u"), st.sampled_from(sorted(UNARY)), st.integers(0, 9)),
    st.tuples(st.just("b"), st.sampled_from(sorted(BINARY)), st.integers(0, 9),
              st.integers(0, 9)))


def run(program, x):
    values = [x, np.sin(x) * 0.5]
    for s in program:
        if s[0] == "u":
            values.append(UNARY[s[1]](values[s[2] % len(values)]))
        else:
            values.append(BINARY[s[1]](values[s[2] % len(values)], values[s[3] % len(values)]))
        values[-1] = np.tanh(values[-1])  # keep the values of long programs in range
    return np.sum(values[-1] * W)


@settings(max_examples=60, deadline=None)
@given(st.lists(step, min_size=1, max_size=6),
       st.lists(st.floats(-1.5, 1.5), min_size=6, max_size=6))
def test_random_programs_both_modes_against_finite_differences(program, xs):
    x = np.reshape(np.array(xs), (2, 3))
    f = lambda x: run(program, x)
    num = dg.numerical_jacobian(f, (x,))[0].reshape(2, 3)
    rev = dg.grad(f)(x)
    fwd = dg.jacfwd(f)(x)
    assert rev.dtype == fwd.dtype == np.float64
    np.testing.assert_allclose(rev, num, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fwd, num, rtol=1e-6, atol=1e-8)


@settings(max_examples=30, deadline=None)
@given(st.lists(step, min_size=1, max_size=6),
       st.lists(st.floats(-1.5, 1.5), min_size=6, max_size=6))
def test_random_programs_keep_float32(program, xs):
    x = np.reshape(np.array(xs, np.float32), (2, 3))
    f = lambda x: run(program, x)
    rev = dg.grad(f)(x)
    fwd = dg.jacfwd(f)(x)
    # JAX's rule: a gradient has its input's dtype, a forward Jacobian its output's
    assert rev.dtype == np.float32, "float64 constants promote the values, not the gradient"
    assert fwd.dtype == np.result_type(f(x))
    ref = dg.grad(f)(x.astype(np.float64))
    np.testing.assert_allclose(rev, ref, rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(fwd, ref, rtol=2e-3, atol=2e-4)
