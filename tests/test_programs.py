"""Random short numpy programs, differentiated in both modes (hypothesis).

A program is a few steps over a list of (2, 3) float arrays: each step applies one
ordinary numpy operation to one or two earlier values and appends the result.  The
loss is a weighted sum of the last value.  Reverse mode (``grad``) and forward mode
(``jacfwd``) must agree with Richardson-extrapolated finite differences, and the
gradient must have the input's dtype (float32 stays float32, float64 stays float64),
even where float64 constants promote the values in between.
"""

import numpy as np
from cases import run, step
from hypothesis import given, settings
from hypothesis import strategies as st

import dualgrad as dg


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
