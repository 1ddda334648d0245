"""dg.jit rents before it buys: once recording and building one signature of a function
took ``api.BUILD_WAIT`` seconds, the function knows what a build costs in eager calls
(``build_cost``), and a new signature runs eagerly until its calls have taken that long
(then it is recorded and built), with one warning.  A build its calls would not repay is
never made; a cheap one (predicted under BUILD_WAIT) waits one eager call."""

import gc
import threading
import warnings
import weakref

import numpy as np
import pytest

import dualgrad as dg
from dualgrad.compiler import api

CALLS = []


def f(x):
    CALLS.append(1)  # counts the Python runs of f: recordings and eager calls
    return np.sum(np.sin(x) * x)


def built(jf, x):
    """jf recorded and built for x's signature (two calls)."""
    jf(x)
    jf(x)
    return jf


def test_a_quick_build_measures_nothing_and_new_signatures_record_at_once():
    jf = built(dg.jit(dg.grad(f)), np.linspace(0.1, 1.0, 5))
    assert jf.build_cost is None  # a small graph: recorded and built in well under 1 s
    jf(np.ones(7))
    assert jf.trace_count == 2


def test_a_long_build_is_measured_in_eager_calls(monkeypatch):
    monkeypatch.setattr(api, "BUILD_WAIT", 0.0)  # every build counts as a long one
    jf = dg.jit(dg.grad(f))
    x = np.linspace(0.1, 1.0, 5)
    CALLS.clear()
    jf(x)
    assert len(CALLS) == 1  # the recording
    np.testing.assert_array_equal(jf(x), dg.grad(f)(x))
    assert len(CALLS) == 3  # the build's call ran f once more, eagerly, timed (and grad once)
    assert jf.build_cost > 0
    cost = jf.build_cost
    jf(x)
    assert jf.build_cost == cost and jf.trace_count == 1  # measured once


def test_a_new_signature_rents_until_its_calls_would_repay_the_build(monkeypatch):
    monkeypatch.setattr(api, "BUILD_WAIT", 0.0)
    jf = built(dg.jit(dg.grad(f)), np.linspace(0.1, 1.0, 5))
    jf.build_cost = 3.0  # a build costs three eager calls
    y = np.linspace(-1.0, 2.0, 9)
    want = dg.grad(f)(y)
    with pytest.warns(RuntimeWarning, match="runs eagerly until its calls have taken"):
        got = jf(y)
    np.testing.assert_array_equal(got, want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning per jitted function
        for _ in range(2):
            np.testing.assert_array_equal(jf(y), want)
        assert jf.trace_count == 1  # three eager calls: the signature was never recorded
        np.testing.assert_array_equal(jf(y), want)  # the fourth records
        assert jf.trace_count == 2
        np.testing.assert_allclose(jf(y), want, rtol=1e-15)  # builds, replays
        np.testing.assert_allclose(jf(y), want, rtol=1e-15)
        assert jf.trace_count == 2
        # the rented signature's eager calls measured its cost again
        assert jf.build_cost > 0 and jf.build_cost != 3.0


def test_a_signature_predicted_to_build_quickly_waits_one_eager_call():
    jf = built(dg.jit(dg.grad(f)), np.linspace(0.1, 1.0, 5))
    jf.build_cost = 50.0  # fifty eager calls of a few µs: far under BUILD_WAIT
    y = np.ones(3)
    with pytest.warns(RuntimeWarning):
        jf(y)
    assert jf.trace_count == 1
    jf(y)
    assert jf.trace_count == 2


def test_renting_from_threads(monkeypatch):
    monkeypatch.setattr(api, "BUILD_WAIT", 0.0)
    jf = built(dg.jit(dg.grad(f)), np.linspace(0.1, 1.0, 5))
    jf.build_cost = 5.0
    y = np.linspace(0.5, 1.5, 11)
    want = dg.grad(f)(y)
    bad = []

    def work():
        for _ in range(10):
            got = jf(y)
            if not np.allclose(got, want, rtol=1e-15, atol=0):
                bad.append(got)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not bad
    assert jf.trace_count == 2  # the signature recorded once, however many threads rented


def test_a_compiled_signature_holds_none_of_its_first_calls_arrays(monkeypatch):
    monkeypatch.setattr(api, "BUILD_WAIT", 0.0)
    jf = dg.jit(dg.grad(f), static_argnums=())
    x = np.linspace(0.1, 1.0, 6)
    ref = weakref.ref(x)
    jf(x)  # recorded: its eager probe waits for the next call, without x
    del x
    gc.collect()
    assert ref() is None
