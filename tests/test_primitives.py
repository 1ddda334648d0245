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
from dualgrad.core.trace import Box, Trace
from dualgrad.numpy.box import ArrayBox


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


class _Recorder(Trace):
    """A trace that only records: each primitive applied, with its raw arguments and
    result (no derivative, so rows that refuse complex derivatives still run)."""

    __slots__ = ("calls",)

    def __init__(self):
        super().__init__()
        self.calls = {}  # id(result box) -> (prim, raw args, params, raw result)

    def process(self, prim, args, kw):
        vals = [a.value if isinstance(a, Box) and a._trace is self else a for a in args]
        ans = prim(*vals, **kw)
        box = ArrayBox(ans, self)
        self.calls[id(box)] = (box, prim, vals, kw, ans)
        return box


def _record(fn, args):
    """(every primitive call of ``fn(*args)``, the call whose result ``fn`` returns)."""
    rec = _Recorder()
    try:
        with np.errstate(all="ignore"):
            out = fn(*(ArrayBox(a, rec) for a in args))
    finally:
        rec.finish()
    calls = [c[1:] for c in rec.calls.values()]
    last = rec.calls.get(id(out))
    return calls, (None if last is None else last[1:])


def _complex(a):
    return a + 0.5j * a[::-1] if a.ndim else a + 0.5j


def _declared_cases():
    for case in ALL:
        for dt in (np.float32, np.float64, np.complex128):
            yield pytest.param(case, dt, id=f"{case!r}-{np.dtype(dt).name}")


@pytest.mark.parametrize("case, dtype", list(_declared_cases()))
def test_declared_dtype_is_what_the_impl_returns(case, dtype):
    """Every row's dtype rule (``prim.dtype_of``) gives the dtype its implementation
    returns, on the case's inputs as float32, float64 and complex (where numpy takes
    complex), for every call the case makes: the row's own and those of the rows around
    it (and inside its wrapper)."""
    args = tuple(_complex(a) if dtype is np.complex128 else a.astype(dtype)
                 for a in case.args)
    try:
        calls, _ = _record(case.fn, args)
    except TypeError as e:  # numpy (or the row) takes no complex input here
        if dtype is not np.complex128:
            raise
        pytest.skip(f"no complex input: {e}")
    assert any(prim is P.TABLE[case.name] for prim, *_ in calls), "the case missed its row"
    for prim, vals, kw, ans in calls:
        assert prim.dtype_of(*vals, **kw) == np.result_type(ans), (
            f"{prim.name} of {[np.result_type(v) for v in vals if hasattr(v, 'dtype')]} "
            f"{sorted(kw)} declares {prim.dtype_of(*vals, **kw)}, returns "
            f"{np.result_type(ans)}")


def test_dtype_rules_say_where_the_dtype_changes():
    """The rows whose result dtype is not their promoted input's declare it."""
    x32, z64 = np.ones(4, np.float32), np.ones(4, np.complex64)
    assert P.absolute.dtype_of(z64) == P.real.dtype_of(z64) == P.imag.dtype_of(z64) \
        == np.float32
    assert P.TABLE["fft"].dtype_of(x32, axis=-1, norm=None) == np.complex64
    assert P.TABLE["rfft"].dtype_of(x32, axis=-1, norm=None) == np.complex64
    assert P.TABLE["irfft"].dtype_of(z64, n=6, axis=-1, norm=None) == np.float32
    assert P.TABLE["eig"].dtype_of(np.ones((2, 2))) == np.complex128
    assert P.TABLE["logabsdet"].dtype_of(np.ones((2, 2), np.complex64)) == np.float32
    assert P.astype.dtype_of(x32, dtype=np.float16) == np.float16
    assert P.getitem.dtype_of(x32, (np.arange(2),)) == np.float32
    assert P.gather.dtype_of(x32, np.arange(2), idx=()) == np.float32
    assert P.index_set.dtype_of(x32, 1.0, idx=(0,)) == np.float32
    assert P.multiply.dtype_of(x32, 2.0) == np.float32  # a Python number is weak
    assert P.multiply.dtype_of(x32, np.float64(2.0)) == np.float64  # a numpy scalar is not
    assert P.sqrt.dtype_of(np.arange(3)) == np.float64  # numpy's loop for an integer
    assert P.sum_.dtype_of(z64, axis=(-1,), keepdims=False) == np.complex64


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
    both modes: no silent promotion (to float64) or demotion (to float32).  The output
    has the dtype the rows declare (``dtype_of`` of the call that makes it), its tangent
    the output's dtype, and each argument's cotangent the argument's dtype."""
    args = tuple(a.astype(dtype) for a in case.args)
    _, last = _record(case.fn, args)
    assert last is not None, "the case's result is not a row's"
    prim, vals, kw, _ = last
    want = prim.dtype_of(*vals, **kw)
    with np.errstate(all="ignore"):
        out, pull = dg.vjp(case.fn, *args)
        assert np.result_type(out) == want, f"the primal output has dtype {np.result_type(out)}"
        cts = pull(np.ones(np.shape(out), want))
        for i, c in enumerate(cts):
            assert np.result_type(c) == dtype, f"VJP of argument {i}: {np.result_type(c)}"
        tans = tuple(np.ones(a.shape, dtype) for a in args)
        _, t = dg.jvp(case.fn, args, tans)
        assert np.result_type(t) == want, f"JVP: {np.result_type(t)}"
