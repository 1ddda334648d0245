"""Transforms, a shared Tape and dg.jit used from several threads at once.

Every result of the threaded runs is compared with the same call made on one thread
first.  The switch interval is lowered so that threads interleave inside dualgrad's own
bookkeeping (a tape's append, a trace's start and stop, a jit's cache), not only between
calls; each test is bounded to a few seconds.
"""

import sys
import threading

import numpy as np
import pytest
from cases import run_threads

import dualgrad as dg

THREADS = 4


@pytest.fixture(autouse=True)
def fast_switching():
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def f(x, a):
    return np.sum(np.tanh(x * a) * x + np.sin(x) ** 2) / a


def g(x, a):
    return np.tanh(x * a) + np.log1p(x * x) * a


CALLS = {  # one of each transform, forward, reverse and nested
    "grad": lambda x, a: dg.grad(f)(x, a),
    "value_and_grad": lambda x, a: dg.value_and_grad(f)(x, a)[1],
    "jvp": lambda x, a: dg.jvp(lambda x: g(x, a), (x,), (np.cos(x),))[1],
    "vjp": lambda x, a: dg.vjp(lambda x: g(x, a), x)[1](np.sin(x))[0],
    "jacfwd": lambda x, a: dg.jacfwd(g)(x, a),
    "jacrev": lambda x, a: dg.jacrev(g)(x, a),
    "hessian": lambda x, a: dg.hessian(f)(x, a),
    "hvp": lambda x, a: dg.hvp(lambda x: f(x, a), (x,), (np.cos(x),))[1],
    "vmap_grad": lambda x, a: dg.vmap(dg.grad(f), in_axes=(0, None))(
        np.stack([x, 2 * x]), a),
    "dual": lambda x, a: dg.Dual(x, np.ones_like(x)).tangent * a,
}


def test_mixed_transforms_on_threads_match_one_thread():
    xs = [np.linspace(-1, 1, 5) * (k + 1) for k in range(3)]
    cases = [(name, i, a) for name in CALLS for i in range(len(xs)) for a in (0.5, 2.0)]
    want = {c: CALLS[c[0]](xs[c[1]], c[2]) for c in cases}
    wrong = []

    def work(k):
        for r in range(4):
            for n, c in enumerate(cases):
                if (n + k + r) % THREADS == 0:  # each thread its own order of the cases
                    continue
                got = CALLS[c[0]](xs[c[1]], c[2])
                if not np.array_equal(got, want[c]):
                    wrong.append(c)
    run_threads(work)
    assert wrong == []


def test_a_tape_shared_by_threads_records_each_threads_values():
    x0 = np.linspace(0.1, 1.0, 7)
    wrong = []
    with dg.Tape() as tape:
        x = tape.watch(x0)

        def work(k):
            for _ in range(150):
                y = np.sum(np.sin(x) * (k + 1.0) + x * x)
                got = tape.gradient(y, x)
                if not np.array_equal(got, np.cos(x0) * (k + 1.0) + x0 * 2.0):
                    wrong.append(k)
        run_threads(work)
    assert wrong == []
    # every entry is where its index says: inputs once, each op after its arguments
    for i, e in enumerate(tape.entries):
        assert all(j < i for _, j in e.parents)


def test_backward_from_threads_adds_every_part():
    x0 = np.linspace(0.1, 1.0, 3)
    with dg.Tape() as tape:
        x = tape.watch(x0)
        ys = [np.sum(x * x * (k + 1.0)) for k in range(THREADS)]

        def work(k):
            for _ in range(50):
                ys[k].backward()
        run_threads(work)
    # sum over threads of 50 * d/dx (k+1) x^2
    np.testing.assert_allclose(x.grad, 50 * sum(2 * (k + 1.0) for k in range(THREADS)) * x0,
                               rtol=1e-12)


def test_a_jitted_function_records_each_signature_once_across_threads():
    shapes = [(3,), (4,), (5,)]
    for _ in range(25):  # fresh functions: the race is in a signature's first calls
        calls = []

        def h(x, calls=calls):
            calls.append(x.shape)  # a side effect: runs only while recording
            return dg.grad(lambda x: np.sum(np.sin(x) * x))(x)

        jh = dg.jit(h, codegen="off")
        wrong = []

        def work(k, jh=jh, wrong=wrong):
            for r in range(6):
                x = np.linspace(0, 1, shapes[(k + r) % 3][0])
                if not np.array_equal(jh(x), np.cos(x) * x + np.sin(x)):
                    wrong.append(x.shape)
        run_threads(work)
        assert wrong == []
        assert jh.trace_count == 3 and sorted(calls) == sorted(shapes), (jh.trace_count, calls)


def test_trace_bookkeeping_is_back_to_rest_after_threads():
    from dualgrad.core import trace as core
    before = core._active[0]
    run_threads(lambda k: [dg.grad(f)(np.ones(3), 1.0 + k) for _ in range(200)])
    assert core._active[0] == before  # starts and stops of traces counted exactly


def test_use_backend_is_per_thread():
    from dualgrad import backend
    outer = backend.get_backend()
    seen = {}
    inside = threading.Event()
    done = threading.Event()

    def chooser():
        with backend.use_backend("numpy"):
            seen["chooser"] = backend.get_backend()
            inside.set()
            done.wait(5)
        seen["after"] = backend.get_backend()

    t = threading.Thread(target=chooser)
    t.start()
    inside.wait(5)
    seen["other"] = backend.get_backend()
    done.set()
    t.join()
    assert seen == {"chooser": "numpy", "other": outer, "after": outer}


def test_the_garbage_collector_is_paused_while_transforms_run_and_back_after():
    """core.buffers.gc_paused: off while any thread records or sweeps, on again after the
    last (if it was on), whatever order the threads end in."""
    import gc
    import threading

    import dualgrad as dg

    seen = []
    gate = threading.Barrier(4)

    def f(x):
        seen.append(gc.isenabled())
        gate.wait(timeout=30)  # all four inside at once
        return np.sum(np.sin(x) ** 2)

    assert gc.isenabled()
    threads = [threading.Thread(target=dg.grad(f), args=(np.arange(3.0) + k,))
               for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [False] * 4
    assert gc.isenabled()
    gc.disable()
    try:
        dg.grad(lambda x: np.sum(x * x))(np.ones(2))
        assert not gc.isenabled()  # it was off: it stays off
    finally:
        gc.enable()


def test_hand_made_duals_on_threads_leave_tracing_off():
    """Hand-made Duals share one root trace that records while any of them lives; threads
    making and dropping them at once must count it right, or tracing stays on for good
    (every later call taking the traced paths)."""
    import gc

    def work(k):
        for i in range(3000):
            d = dg.Dual(float(i), 1.0)
            _ = (d * (k + 1.0)).tangent
    run_threads(work)
    gc.collect()
    assert not dg.core.tracing()
