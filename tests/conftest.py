"""Fixtures that several test modules use (pytest finds them here by name).

Shared cases and plain helpers live in ``cases.py``; what is here is built afresh for
each test, so no test sees another's custom rules.
"""

import numpy as np
import pytest

import dualgrad as dg


@pytest.fixture
def softplus():
    """log(1 + e^x) with a custom JVP, ``t * sigmoid(x)``: finite where the naive chain
    rule through ``log(1 + exp(x))`` overflows (x = 1000), and written with
    differentiable functions, so its own derivatives (order 2, jit, vmap) work too."""
    @dg.custom_jvp
    def softplus(x):
        return np.logaddexp(0.0, x)

    @softplus.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return softplus(x), t * dg.nn.sigmoid(x)
    return softplus


@pytest.fixture
def clip_grad():
    """The identity with a custom VJP that clips the cotangent to [-1, 1]."""
    @dg.custom_vjp
    def clip_grad(x):
        return x

    clip_grad.defvjp(lambda x: (x, None), lambda res, g: (np.clip(g, -1.0, 1.0),))
    return clip_grad


@pytest.fixture(autouse=True)
def no_trace_left_open(request):
    """Every test leaves tracing off: a trace left open (a doctest's GraphTrace, a Dual
    kept in a global) would make later tests run dualgrad's traced paths instead of its
    plain ones, and hide what they test."""
    yield
    if dg.core.tracing():
        import gc
        gc.collect()  # hand-made Duals end their perturbation when they are collected
        assert not dg.core.tracing(), f"{request.node.nodeid} left a trace recording"


@pytest.fixture(autouse=True)
def builds_never_rented(monkeypatch):
    """dg.jit rents (runs eagerly) a new signature once one of its builds took
    ``BUILD_WAIT`` seconds of wall time: on a loaded machine with numba's cache cold a
    test's first build can take that long, and the tests that count builds or turn
    warnings into errors would then see a rented call.  Tests build at once, whatever the
    clock says; tests/test_jit_renting.py sets ``BUILD_WAIT`` itself."""
    from dualgrad.compiler import api
    monkeypatch.setattr(api, "BUILD_WAIT", float("inf"))
