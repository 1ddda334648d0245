"""Every primitive's derivative rules on a device-like array that refuses the host.

``StrictArray`` (``tests/strict_array.py``) raises where CuPy would: on an implicit
copy to the host (``np.asarray``, ``float()``, ``.item()``...) or on a host
``numpy.ndarray`` mixed into an operation.  For one case per row of
``dualgrad.primitives.TABLE`` (the first of ``tests/test_primitives.py``'s cases),
``dg.vjp`` and ``dg.jvp`` run on StrictArray inputs and must give StrictArray results
equal to the same calls on numpy arrays.  A rule that pulls to the host is listed in
``HOST_PULLS`` with the reason, as a strict xfail: the list is the engine's GPU to-do,
and a fixed rule turns its test into an XPASS failure until it leaves the list.
"""

import numpy as np
import pytest
from strict_array import HostPull, StrictArray, unwrap
from test_primitives import ALL

import dualgrad as dg

#: rule -> how it pulls to the host (found by this file; see the module docstring)
HOST_PULLS = {
    ('absolute', 'both'): 'primitives._mask: np.asarray(mask, dtype) of a device comparison',
    ('astype', 'both'): "astype's impl: np.asarray(x).astype(dtype)",
    ('cholesky', 'both'): "cholesky's rule multiplies by a host np.tril(np.ones)/np.eye mask",
    ('clip', 'both'): "clip's _clip_in builds its mask from a host array",
    ('conv2d', 'both'): 'backend.conv2d: np.asarray(x), np.asarray(w) (no CUDA dispatch yet)',
    ('det', 'jvp'): "det's JVP takes a trace by multiplying with a host np.eye",
    ('digamma', 'both'): "scipy.special's ufuncs take host arrays (needs cupyx.scipy.special)",
    ('eig', 'jvp'): 'linalg._gaps: np.asarray(eigenvalues) on the host',
    ('eig', 'vjp'): 'linalg._argmax_mask: np.asarray(eigenvectors) on the host',
    ('eigh', 'both'): 'linalg._gaps: np.asarray(eigenvalues) on the host',
    ('fabs', 'both'): 'primitives._mask: np.asarray(mask, dtype) of a device comparison',
    ('fft', 'both'): 'fft rules call astype, whose impl is np.asarray(x).astype(dtype)',
    ('fmax', 'both'): 'primitives._mask: np.asarray(mask, dtype) of a device comparison',
    ('fmin', 'both'): 'primitives._mask: np.asarray(mask, dtype) of a device comparison',
    ('fmod', 'both'): 'primitives._mask: np.asarray(mask, dtype) of a device comparison',
    ('gammaincc', 'both'): "scipy.special's ufuncs take host arrays (needs cupyx.scipy.special)",
    ('getitem', 'vjp'): "getitem's VJP (_scatter_impl) writes into a host np.zeros",
    ('hypot', 'both'):
        'primitives.divide_or_zero: `if np.any(...)` on a device array (bool() to the host)',
    ('i0e', 'both'): 'primitives._mask: np.asarray(mask, dtype) of a device comparison',
    ('i1', 'both'):
        'scipy_special._over_x: `if np.any(...)` on a device array (bool() to the host)',
    ('i1e', 'both'):
        'scipy_special._over_x: `if np.any(...)` on a device array (bool() to the host)',
    ('ifft', 'both'): 'ifft rules call astype (np.asarray(x).astype)',
    ('imag', 'vjp'): "imag's VJP returns a host zeros array for a real input",
    ('index_set', 'both'): '_index_set_impl copies x with np.array(x, copy=True)',
    ('irfft', 'both'): 'irfft rules call astype (np.asarray(x).astype)',
    ('jv', 'both'): "scipy.special's ufuncs take host arrays (needs cupyx.scipy.special)",
    ('log_softmax', 'both'): 'backend.log_softmax: np.asarray(x) (no CUDA dispatch yet)',
    ('logabsdet', 'jvp'): "logabsdet's JVP takes a trace by multiplying with a host np.eye",
    ('logsumexp', 'both'): 'backend.logsumexp: np.asarray(x) (no CUDA dispatch yet)',
    ('max', 'both'): 'primitives._mask: np.asarray(mask, dtype) of a device comparison',
    ('maximum', 'both'): 'primitives._mask: np.asarray(mask, dtype) of a device comparison',
    ('min', 'both'): 'primitives._mask: np.asarray(mask, dtype) of a device comparison',
    ('minimum', 'both'): 'primitives._mask: np.asarray(mask, dtype) of a device comparison',
    ('orth_complement', 'jvp'): 'linalg._gaps: np.asarray(singular values) on the host',
    ('orth_complement', 'vjp'): "getitem's VJP (_scatter_impl) writes into a host np.zeros",
    ('pinv', 'both'): "pinv's rule subtracts linalg._eye, a host identity",
    ('polygamma', 'both'): "scipy.special's ufuncs take host arrays (needs cupyx.scipy.special)",
    ('power', 'both'):
        'primitives._pow_dx: `if np.any(...)` on a device array (bool() to the host)',
    ('prod', 'both'): "prod's rule concatenates host np.ones padding",
    ('qr', 'both'): "qr's rule (linalg.py) multiplies by a host np.tril(np.ones) mask",
    ('remainder', 'both'): 'primitives._mask: np.asarray(mask, dtype) of a device comparison',
    ('rfft', 'both'): 'rfft rules call astype (np.asarray(x).astype)',
    ('scatter_add', 'both'): 'backend.index_add: np.asarray(values) (no CUDA dispatch yet)',
    ('softmax', 'both'): 'backend.softmax: np.asarray(x) (no CUDA dispatch yet)',
    ('sqrt', 'both'):
        'primitives.divide_or_zero: `if np.any(...)` on a device array (bool() to the host)',
    ('svd', 'both'): 'linalg._gaps: np.asarray(singular values) on the host',
    ('where', 'both'):
        "not a rule: the test case's condition is a host numpy mask (CuPy refuses it "
        "too; a user device_puts it)",
    ('xlog1py', 'both'):
        'scipy_special._safe_ratio: `if np.any(...)` on a device array (bool() to the host)',
    ('xlogy', 'both'):
        'scipy_special._safe_ratio: `if np.any(...)` on a device array (bool() to the host)',
}


def _one_case_per_row():
    seen = {}
    for case in ALL:
        seen.setdefault(case.name, case)
    return [seen[n] for n in sorted(seen)]


CASES = _one_case_per_row()


def _marks(case, mode):
    why = HOST_PULLS.get((case.name, mode)) or HOST_PULLS.get((case.name, "both"))
    if not why:
        return []
    return [pytest.mark.xfail(raises=(HostPull, AssertionError), strict=True, reason=why)]


def _params(mode):
    return [pytest.param(c, id=repr(c), marks=_marks(c, mode)) for c in CASES]


def _same(strict, host):
    """``strict`` holds StrictArrays wherever ``host`` holds arrays, with equal values."""
    if isinstance(host, (tuple, list)):
        assert len(strict) == len(host)
        for s, h in zip(strict, host):
            _same(s, h)
        return
    if isinstance(host, np.ndarray) and host.ndim:
        assert isinstance(strict, StrictArray), f"a host {type(strict).__name__} came back"
    np.testing.assert_allclose(unwrap(strict), host, rtol=1e-12, atol=1e-12)


def _cotangent(out, rng):
    return rng.standard_normal(np.shape(out))


@pytest.mark.parametrize("case", _params("vjp"))
def test_vjp_stays_on_device(case):
    rng = np.random.default_rng(0)
    host_out, host_pull = dg.vjp(case.fn, *case.args)
    u = _cotangent(host_out, rng)
    want = host_pull(u)
    out, pull = dg.vjp(case.fn, *[StrictArray(a) for a in case.args])
    _same(out, host_out)
    _same(pull(StrictArray(u)), want)


@pytest.mark.parametrize("case", _params("jvp"))
def test_jvp_stays_on_device(case):
    rng = np.random.default_rng(1)
    ts = [rng.standard_normal(a.shape) for a in case.args]
    host = dg.jvp(case.fn, case.args, tuple(ts))
    got = dg.jvp(case.fn, tuple(StrictArray(a) for a in case.args),
                 tuple(StrictArray(t) for t in ts))
    _same(got, host)


def test_grad_of_a_small_model_stays_on_device():
    rng = np.random.default_rng(2)
    w, x = rng.standard_normal((4, 3)), rng.standard_normal((5, 4))

    def loss(w, x):  # y * y, not y ** 2: power's rule is on HOST_PULLS
        y = np.tanh(x @ w)
        return np.sum(y * y) / x.shape[0]
    want = dg.grad(loss)(w, x)
    got = dg.grad(loss)(StrictArray(w), StrictArray(x))
    _same(got, want)


def test_the_stand_in_refuses_the_host():
    x = StrictArray(np.ones(3))
    for pull in (np.asarray, float, int, bool, lambda a: a.item(), lambda a: a.tolist()):
        with pytest.raises(HostPull):
            pull(x[0] if pull in (float, int) else x)
    with pytest.raises(HostPull, match="host numpy.ndarray of shape \\(3,\\)"):
        x + np.ones(3)
    y = np.exp(x) * 2 + x.sum()
    assert isinstance(y, StrictArray) and isinstance(np.concatenate([x, x]), StrictArray)
    np.testing.assert_allclose(y.get(), np.exp(1) * 2 + 3)
