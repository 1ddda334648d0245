"""Every primitive's derivative rules on a device-like array that refuses the host.

``StrictArray`` (``tests/strict_array.py``) raises where CuPy would: on an implicit
copy to the host (``np.asarray``, ``float()``, ``.item()``...) or on a host
``numpy.ndarray`` mixed into an operation.  For one case per row of
``dualgrad.rules.TABLE`` (the first of ``tests/test_primitives.py``'s cases),
``dg.vjp``, ``dg.jvp`` and ``dg.jit`` of the vjp run on StrictArray inputs and must
give StrictArray results equal to the same calls on numpy arrays.  A rule that cannot
yet stay on the device is listed in ``HOST_PULLS`` with the reason, as a strict
xfail (a fixed rule then turns its test into an XPASS failure until it leaves the list).
Cases that close over a constant array get it on the device, as a user would put it
there (``_device_constants``).
"""

import sys

import numpy as np
import pytest
from cases import ALL
from cuda_helpers import needs_gpu
from strict_array import HostPull, StrictArray, unwrap

import dualgrad as dg

#: rule -> how it pulls to the host (found by this file; see the module docstring)
HOST_PULLS = {}


def _on_device_of(c, x):
    """A case's constant array, on the device of its argument (as a user device_puts the
    constants a function closes over; CuPy refuses to mix host and device arrays)."""
    d = dg.rules.device_like(x)
    if d is None:
        return c
    return StrictArray(c) if isinstance(d, StrictArray) else sys.modules["cupy"].asarray(c)


def _device_constants():
    """The rows whose generated case closes over a host array, with it on the device."""
    from cases import Case

    P = dg.rules
    mask, orders = np.array([True, False, True, True]), np.array([0.5, 1.0, 3.0])
    base = {c.name: c for c in ALL}
    out = {"where": Case("where", lambda x, y: P.where(_on_device_of(mask, x), x, y),
                         *base["where"].args),
           # the index arrays of scatter_set are dg.jit's labels: on the device of the data
           "scatter_set": Case("scatter_set", lambda x, v: P.scatter_set(
               x, v, _on_device_of(np.array([0, 2, 0]), x), idx=(P.Slot(0, (3,), np.int64), 1)),
               *base["scatter_set"].args)}
    if "jv" not in base:  # scipy is not installed: no scipy.special rows
        return out
    import scipy.special as sc
    return out | {
        "gammaincc": Case("gammaincc",
                          lambda x: sc.gammaincc(_on_device_of(orders, x), x),
                          *base["gammaincc"].args),
        "jv": Case("jv", lambda x: sc.jv(_on_device_of(np.array([0.0, 1.0, 3.0]), x), x),
                   *base["jv"].args),
        # the rows differentiable in their last argument only: their shapes on the device
        "igamma": Case("igamma", lambda x: P.TABLE["igamma"](
            _on_device_of(np.array([0.5, 1.0, 2.5, 4.0]), x), x), *base["igamma"].args),
        "gammaincinv": Case("gammaincinv", lambda y: sc.gammaincinv(
            _on_device_of(orders, y), y), *base["gammaincinv"].args),
        "betainc": Case("betainc", lambda x: sc.betainc(
            _on_device_of(np.array([0.5, 2.0, 3.0]), x), 1.5, x), *base["betainc"].args),
        "stdtr": Case("stdtr", lambda t: sc.stdtr(
            _on_device_of(np.array([1.0, 3.0, 30.0]), t), t), *base["stdtr"].args),
    }


def _one_case_per_row():
    seen = _device_constants()
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


@pytest.mark.parametrize("case", _params("jit"))
def test_jit_stays_on_device(case):
    """``dg.jit`` of a row's value and vjp: recorded, optimised and replayed (three calls)
    on StrictArrays without a trip to the host, equal to the host's eager results."""
    rng = np.random.default_rng(4)
    host_out, host_pull = dg.vjp(case.fn, *case.args)
    u = _cotangent(host_out, rng)

    def f(u, *args):
        out, pull = dg.vjp(case.fn, *args)
        return out, pull(u)
    want = (host_out, host_pull(u))
    jf = dg.jit(f)
    for _ in range(3):
        _same(jf(StrictArray(u), *[StrictArray(a) for a in case.args]), want)


def test_grad_of_a_small_model_stays_on_device():
    rng = np.random.default_rng(2)
    w, x = rng.standard_normal((4, 3)), rng.standard_normal((5, 4))

    def loss(w, x):
        y = np.tanh(x @ w)
        return np.sum(y ** 2 + np.maximum(y, 0.1)) / x.shape[0]
    want = dg.grad(loss)(w, x)
    got = dg.grad(loss)(StrictArray(w), StrictArray(x))
    _same(got, want)


def _model(w, x):
    h = np.maximum(x @ w, 0.0)
    return np.sum(dg.nn.log_softmax(h, axis=-1)[:, 0]) + np.sum(np.sqrt(h * h + 1.0))


def _model_args(rng):
    return rng.standard_normal((4, 3)), rng.standard_normal((5, 4))


def test_grad_jvp_vjp_results_are_on_the_inputs_device():
    """Every result of grad, jvp and vjp -- values, tangents, cotangents -- comes back
    a StrictArray for StrictArray inputs, equal to the host results."""
    rng = np.random.default_rng(3)
    w, x = _model_args(rng)
    tw, u = rng.standard_normal(w.shape), 1.5
    sw, sx = StrictArray(w), StrictArray(x)
    g = dg.grad(_model, argnums=(0, 1))(sw, sx)
    assert all(isinstance(a, StrictArray) for a in g)
    _same(g, dg.grad(_model, argnums=(0, 1))(w, x))
    out, t = dg.jvp(lambda w: _model(w, sx), (sw,), (StrictArray(tw),))
    want_out, want_t = dg.jvp(lambda w: _model(w, x), (w,), (tw,))
    assert isinstance(out, StrictArray) and isinstance(t, StrictArray)
    _same((out, t), (want_out, want_t))
    out, pull = dg.vjp(_model, sw, sx)
    cts = pull(StrictArray(np.asarray(u)))
    assert isinstance(out, StrictArray) and all(isinstance(c, StrictArray) for c in cts)
    _same(cts, dg.vjp(_model, w, x)[1](u))


@pytest.mark.cuda
@needs_gpu
def test_grad_jvp_vjp_results_are_on_the_gpu():
    import cupy
    rng = np.random.default_rng(3)
    w, x = _model_args(rng)
    tw = rng.standard_normal(w.shape)
    cw, cx = dg.device_put((w, x), "cuda")
    g = dg.grad(_model, argnums=(0, 1))(cw, cx)
    assert all(isinstance(a, cupy.ndarray) for a in g)
    for got, want in zip(g, dg.grad(_model, argnums=(0, 1))(w, x)):
        np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=1e-10, atol=1e-12)
    out, t = dg.jvp(lambda w: _model(w, cx), (cw,), (cupy.asarray(tw),))
    assert isinstance(t, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(t), dg.jvp(lambda w: _model(w, x), (w,), (tw,))[1],
                               rtol=1e-10)
    out, pull = dg.vjp(_model, cw, cx)
    cts = pull(cupy.asarray(1.0))
    assert all(isinstance(c, cupy.ndarray) for c in cts)
    for got, want in zip(cts, dg.vjp(_model, w, x)[1](1.0)):
        np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=1e-10, atol=1e-12)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_every_row_on_the_gpu(case):
    """The table's rows on CuPy arrays: eager vjp and jvp, and dg.jit of the vjp, equal
    to the host's results to rounding (the GPU's libm and reductions differ)."""
    import cupy
    rng = np.random.default_rng(0)
    host_out, host_pull = dg.vjp(case.fn, *case.args)
    u = _cotangent(host_out, rng)
    want = host_pull(u)
    dev = [cupy.asarray(a) for a in case.args]
    out, pull = dg.vjp(case.fn, *dev)
    got = pull(cupy.asarray(u))

    def f(u, *args):
        o, p = dg.vjp(case.fn, *args)
        return o, p(u)
    jf = dg.jit(f)
    for _ in range(3):
        jout, jgot = jf(cupy.asarray(u), *dev)
    for g, w in [(out, host_out), (jout, host_out)] + list(zip(got, want)) + list(zip(jgot, want)):
        if isinstance(w, np.ndarray) and w.ndim:
            assert isinstance(g, cupy.ndarray), type(g)
        np.testing.assert_allclose(cupy.asnumpy(cupy.asarray(g)), w, rtol=1e-9, atol=1e-11)


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


def test_jit_never_hands_out_its_own_device_constants():
    """A jitted gradient that is a constant of the graph (a linear function's) comes back
    as a copy on the device, so mutating it cannot change the next call's result."""
    w = StrictArray(np.arange(3.0))
    jf = dg.jit(dg.grad(lambda x: np.sum(x * 2.0)))
    first = [jf(w) for _ in range(3)]
    assert all(isinstance(g, StrictArray) for g in first)
    assert first[1] is not first[2]
    np.testing.assert_array_equal(first[2].get(), [2.0, 2.0, 2.0])


@pytest.mark.parametrize("pattern", ["x[i]", "x[i, 1:]", "x[:, j]", "x[i, j]", "x[i, None, j]"])
def test_index_arrays_on_the_device(pattern):
    """Integer index arrays living on the device, with repeated entries: the scatter in
    the gradient adds the repeats up (as on the host), eagerly and under dg.jit."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((5, 4))
    i, j = np.array([0, 2, 2, 4, 2]), np.array([1, 1, 3, 0, 1])

    def f(x, i, j):
        return np.sum(eval(pattern) ** 2)  # noqa: S307 - the test's own patterns
    want = dg.grad(f)(x, i, j)
    dev = [StrictArray(a) for a in (x, i, j)]
    _same(dg.grad(f)(*dev), want)
    jf = dg.jit(dg.grad(f))
    for _ in range(3):
        _same(jf(*dev), want)


def test_functional_index_updates_with_device_indices():
    """``y[i] = v`` on a traced device array with a device index (repeats: the last write
    wins, and only it gets a derivative), eagerly and under dg.jit."""
    x, v, i = np.arange(5.0), np.array([1.0, 2.0, 3.0]), np.array([0, 2, 2])

    def f(x, v, i):
        y = x * 1.0
        y[i] = v * 2.0
        return np.sum(y ** 2)
    g = dg.grad(f, argnums=(0, 1))
    want = g(x, v, i)
    dev = [StrictArray(a) for a in (x, v, i)]
    _same(g(*dev), want)
    jg = dg.jit(g)
    _same(jg(*dev), want)  # the recording
    # the index is a value of the graph (the scatter_set row): new indices replay it,
    # with nothing read from the device
    for i in (np.array([0, 2, 2]), np.array([4, 4, 1]), np.array([3, 0, 1])):
        _same(jg(StrictArray(x), StrictArray(v), StrictArray(i)), g(x, v, i))
    assert jg.trace_count == 1
