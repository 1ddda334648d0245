"""Tests generated from the primitive table.

Every elementwise primitive is tested from its row alone (its ``domain`` says
where to sample).  Structural primitives need a call to test; ``CASES`` (in
tests/cases.py, shared with the other generated tests) gives one or more per
name, and ``test_every_primitive_has_cases`` fails for a new primitive until it
has them.  For each case: reverse mode (batched ``jacrev``)
and forward mode (batched ``jacfwd``) against finite differences, the
dot-product identity <u, J v> = <J^T u, v> between single JVPs and VJPs, and
second order (forward-over-reverse and reverse-over-reverse) for smooth rows.
"""

import numpy as np
import pytest
from cases import ALL, RNG

import dualgrad as dg
from dualgrad import rules as P


@pytest.fixture(autouse=True, params=["numba", "numpy"])
def backend(request):
    """Every generated test runs under both backends: the numba kernels and the numpy
    reference must give the same derivatives."""
    with dg.backend.use_backend(request.param):
        yield request.param


def test_every_primitive_has_cases():
    covered = {c.name for c in ALL}
    missing = sorted(set(P.TABLE) - covered)
    assert not missing, f"add a test case to CASES (tests/cases.py) for primitives {missing}"


def _scalarize(case, u):
    return lambda *a: np.sum(case.fn(*a) * u)


@pytest.mark.parametrize("case", ALL, ids=repr)
def test_reverse_matches_finite_differences(case):
    num = dg.numerical_jacobian(case.fn, case.args)
    for i in range(len(case.args)):
        jac = dg.jacrev(case.fn, argnums=i)(*case.args)
        np.testing.assert_allclose(np.reshape(jac, num[i].shape), num[i], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", ALL, ids=repr)
def test_forward_matches_finite_differences(case):
    num = dg.numerical_jacobian(case.fn, case.args)
    for i in range(len(case.args)):
        jac = dg.jacfwd(case.fn, argnums=i)(*case.args)
        np.testing.assert_allclose(np.reshape(jac, num[i].shape), num[i], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", ALL, ids=repr)
def test_jvp_vjp_dot_product_identity(case):
    out, pull = dg.vjp(case.fn, *case.args)
    u = RNG.standard_normal(np.shape(out))
    vs = tuple(RNG.standard_normal(a.shape) for a in case.args)
    _, jv = dg.jvp(case.fn, case.args, vs)
    cts = pull(u)
    lhs = np.sum(u * jv)
    rhs = sum(np.sum(c * v) for c, v in zip(cts, vs))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", [c for c in ALL if c.smooth], ids=repr)
def test_second_order(case):
    out = case.fn(*case.args)
    s = _scalarize(case, RNG.standard_normal(np.shape(out)))
    for i in range(len(case.args)):
        g = dg.grad(s, argnums=i)
        num = dg.numerical_jacobian(g, case.args)[i]
        g_fwd = dg.jacfwd(s, argnums=i)  # the same gradient by forward mode
        hessians = {"fwd-over-rev": dg.jacfwd(g, argnums=i)(*case.args),
                    "rev-over-rev": dg.jacrev(g, argnums=i)(*case.args),
                    "fwd-over-fwd": dg.jacfwd(g_fwd, argnums=i)(*case.args),
                    "rev-over-fwd": dg.jacrev(g_fwd, argnums=i)(*case.args)}
        for how, h in hessians.items():
            np.testing.assert_allclose(np.reshape(h, num.shape), num, rtol=1e-5, atol=1e-6,
                                       err_msg=how)


LINALG = {"inv", "det", "logabsdet", "solve", "cholesky", "eigh", "svd", "qr", "eig", "pinv",
          "orth_complement"}  # numpy.linalg: float32/64 only
DTYPES = [np.float16, np.float32, np.float64, np.longdouble]


def _dtype_cases():
    for case in ALL:
        for dt in DTYPES:
            if case.name in LINALG and dt in (np.float16, np.longdouble):
                continue
            if case.name == "conv2d" and dt is np.float16:
                continue  # BLAS has no float16 matrix product; numpy's fallback is slow
            yield pytest.param(case, dt, id=f"{case!r}-{np.dtype(dt).name}")


@pytest.mark.parametrize("case, dtype", list(_dtype_cases()))
def test_derivative_dtype_matches_primal(case, dtype):
    """float16/32/64 and longdouble inputs give derivatives of exactly their dtype, in
    both modes: no silent promotion (to float64) or demotion (to float32)."""
    args = tuple(a.astype(dtype) for a in case.args)
    if case.name == "astype":
        fn = lambda x: P.astype(x, dtype=dtype)  # noqa: E731 - the row's own dtype
    else:
        fn = case.fn
    with np.errstate(all="ignore"):
        out, pull = dg.vjp(fn, *args)
        assert np.result_type(out) == dtype, f"the primal output has dtype {np.result_type(out)}"
        cts = pull(np.ones(np.shape(out), dtype))
        for i, c in enumerate(cts):
            assert np.result_type(c) == dtype, f"VJP of argument {i}: {np.result_type(c)}"
        tans = tuple(np.ones(a.shape, dtype) for a in args)
        _, t = dg.jvp(fn, args, tans)
        assert np.result_type(t) == dtype, f"JVP: {np.result_type(t)}"
