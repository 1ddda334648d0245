"""The per-machine kernel choice (dualgrad.backend.tuning): the decision on synthetic timings,
the cache file (written, re-read, keyed by machine, corrupt or unwritable), the
DUALGRAD_TUNING switch, and the backend obeying the measured rules.  No timing
assertions: every test that measures replaces the timer with fixed numbers."""

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dualgrad import backend
from dualgrad.backend import tuning

HAVE_NUMBA = backend._kernels() is not None
needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="numba not importable")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------
# decide: never a size where numba was measured slower

def test_decide_examples():
    s = [512, 4096, 32768, 262144]
    assert tuning.decide(s, [1, 1, 1, 1], [2, 2, 2, 2]) is None          # numba always slower
    assert tuning.decide(s, [2, 2, 2, 2], [1, 1, 1, 1]) == (512, None)   # always faster
    assert tuning.decide(s, [1, 2, 2, 2], [2, 1, 1, 1]) == (4096, None)  # a crossover
    assert tuning.decide(s, [2, 2, 1, 1], [1, 1, 2, 2]) == (512, 4096)   # wins small only
    assert tuning.decide(s, [2, 1, 2, 2], [1, 2, 1, 1]) == (32768, None)  # longest run
    assert tuning.decide(s, [2, 1, 1, 2], [1, 2, 2, 1]) == (262144, None)  # ties: larger
    # the margin: 5% faster is not a win, 20% is
    assert tuning.decide(s, [1.05] * 4, [1.0] * 4) is None
    assert tuning.decide(s, [1.2] * 4, [1.0] * 4) == (512, None)
    assert tuning.decide([], [], []) is None
    with pytest.raises(ValueError):
        tuning.decide(s, [1], [1])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(1e-7, 1.0), st.floats(1e-7, 1.0)), min_size=1, max_size=8))
def test_decide_never_takes_a_losing_kernel(times):
    sizes = [256 * 8 ** i for i in range(len(times))]
    tn, tb = [a for a, _ in times], [b for _, b in times]
    rule = tuning.decide(sizes, tn, tb)
    for n, a, b in zip(sizes, tn, tb):
        if tuning.applies(rule, n):
            assert b * tuning.MARGIN <= a       # chosen only where it won by the margin
    if rule is not None:
        lo, hi = rule
        inside = [i for i, n in enumerate(sizes) if lo <= n and (hi is None or n <= hi)]
        assert inside == list(range(inside[0], inside[-1] + 1))  # one contiguous run
        assert hi is not None or inside[-1] == len(sizes) - 1    # open only past a win
        assert not tuning.applies(rule, sizes[0] - 1)            # below the ladder: numpy
        between = [(sizes[i] + sizes[i + 1]) // 2 for i in range(len(sizes) - 1)
                   if not (tuning.applies(rule, sizes[i]) and tuning.applies(rule, sizes[i + 1]))]
        assert not any(tuning.applies(rule, n) for n in between)  # no guess next to a loss


def test_applies():
    assert not tuning.applies(None, 10 ** 9)
    assert tuning.applies((8, None), 8) and tuning.applies((8, None), 10 ** 9)
    assert not tuning.applies((8, None), 7)
    assert tuning.applies((8, 64), 64) and not tuning.applies((8, 64), 65)


# ---------------------------------------------------------------------------
# The table and its cache file (fake probes, fixed timings)

@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache directory, tuning on, and measure() returning fixed numbers."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(tuning.ENV, raising=False)
    speed = {}  # name -> (numpy seconds, numba seconds) at every size

    def fake_measure(call_numpy, call_numba, **kw):
        call_numpy()
        call_numba()
        return speed["now"]
    monkeypatch.setattr(tuning, "measure", fake_measure)
    return tmp_path, speed


def make_table(probed, extra=None):
    def probe(name):
        probed.append(name)
        return [(n, lambda use_numba: use_numba) for n in (100, 1000, 10000)]
    return tuning.Table(probe, key_extra=(lambda: extra) if extra else None)


def files(d):
    return sorted(p for p in (d / "dualgrad").glob("tuning-*.json")) if (d / "dualgrad").exists() \
        else []


def test_cache_written_and_re_read(cache):
    d, speed = cache
    probed = []
    speed["now"] = (2.0, 1.0)  # numba twice as fast
    t = make_table(probed)
    assert t.rule("k/d") == (100, None) and probed == ["k/d"]
    assert t.rule("k/d") == (100, None) and probed == ["k/d"]  # memory: not measured again
    speed["now"] = (1.0, 2.0)
    assert t.rule("other/f") is None
    [path] = files(d)
    data = json.loads(path.read_text())
    assert data["key"] == tuning.machine_key() and data["rules"] == {"k/d": [100, None],
                                                                     "other/f": None}
    assert data["timings"]["k/d"]["sizes"] == [100, 1000, 10000]
    fresh = make_table(probed)  # a new process: read from disk, nothing measured
    assert fresh.rule("k/d") == (100, None) and fresh.rule("other/f") is None
    assert probed == ["k/d", "other/f"]


def test_key_changes_with_cpu_features_and_versions(cache, monkeypatch):
    base = tuning.machine_key()
    assert base["cpu"] and base["numpy"] == np.__version__
    assert base["numpy_features"] == tuning.numpy_cpu_features()
    monkeypatch.setattr(tuning, "numpy_cpu_features", lambda: ["SSE2"])
    k2 = tuning.machine_key()
    assert k2 != base and tuning.cache_path(k2) != tuning.cache_path(base)
    monkeypatch.setattr(tuning, "cpu_model", lambda: "Another CPU")
    assert tuning.cache_path(tuning.machine_key()) != tuning.cache_path(k2)
    assert tuning.cache_path(tuning.machine_key({"sources": "x"})) != \
        tuning.cache_path(tuning.machine_key({"sources": "y"}))
    # a rule measured under one key is not read under another
    d, speed = cache
    speed["now"] = (2.0, 1.0)
    probed = []
    assert make_table(probed, {"sources": "a"}).rule("k/d") == (100, None)
    speed["now"] = (1.0, 2.0)
    assert make_table(probed, {"sources": "b"}).rule("k/d") is None
    assert probed == ["k/d", "k/d"] and len(files(d)) == 2


def test_key_follows_numpy_runtime_dispatch():
    """NPY_DISABLE_CPU_FEATURES switches numpy's SIMD loops, and so the key."""
    code = "from dualgrad.backend import tuning; print(tuning.key_digest(tuning.machine_key()))"
    feats = tuning.numpy_cpu_features()
    off = [f for f in ("AVX512_SPR", "AVX512_ICL", "X86_V4", "AVX512_SKX") if f in feats]
    if not off:
        pytest.skip("no AVX-512 dispatch target to switch off on this CPU")
    digests = []
    for value in ("", " ".join(off)):
        env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=value)
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=ROOT, env=env, timeout=120)
        assert res.returncode == 0, res.stderr
        digests.append(res.stdout.strip())
    assert digests[0] != digests[1]


@pytest.mark.parametrize("value", ["0", "off"])
def test_env_var_off_measures_nothing(cache, monkeypatch, value):
    d, speed = cache
    monkeypatch.setenv(tuning.ENV, value)
    speed["now"] = (2.0, 1.0)
    probed = []
    assert make_table(probed).rule("k/d") is None  # conservative: numpy
    assert probed == [] and files(d) == []


def test_env_var_nocache_measures_but_never_touches_disk(cache, monkeypatch):
    d, speed = cache
    speed["now"] = (2.0, 1.0)
    probed = []
    make_table(probed).rule("k/d")
    assert len(files(d)) == 1 and probed == ["k/d"]
    monkeypatch.setenv(tuning.ENV, "nocache")
    speed["now"] = (1.0, 2.0)
    t = make_table(probed)
    assert t.rule("k/d") is None and probed == ["k/d", "k/d"]  # the file was not read
    assert json.loads(files(d)[0].read_text())["rules"] == {"k/d": [100, None]}  # nor written


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", '{"key": 3}',
                                     '{"key": null, "rules": {"k/d": [1, 2]}}',
                                     "\x00\xff garbage"])
def test_corrupt_cache_is_ignored_and_replaced(cache, content):
    d, speed = cache
    path = tuning.cache_path(tuning.machine_key())
    os.makedirs(os.path.dirname(path))
    with open(path, "w", encoding="utf-8", errors="replace") as f:
        f.write(content)
    speed["now"] = (2.0, 1.0)
    probed = []
    assert make_table(probed).rule("k/d") == (100, None) and probed == ["k/d"]
    assert json.loads(open(path).read())["rules"] == {"k/d": [100, None]}


def test_bad_rules_in_a_cache_file_are_dropped(cache):
    d, speed = cache
    key = tuning.machine_key()
    path = tuning.cache_path(key)
    os.makedirs(os.path.dirname(path))
    data = {"key": key, "rules": {"k/d": "fast", "ok/d": [5, None]}}
    with open(path, "w") as f:  # whole (its digest agrees), but one rule is malformed
        json.dump(dict(data, digest=tuning._digest(data)), f)
    speed["now"] = (1.0, 2.0)
    probed = []
    t = make_table(probed)
    assert t.rule("ok/d") == (5, None) and t.rule("k/d") is None and probed == ["k/d"]


def test_unwritable_cache_never_breaks(cache, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr(tuning, "_warned", threading.Lock())  # a fresh process's state
    d, speed = cache
    speed["now"] = (2.0, 1.0)
    probed = []
    t = make_table(probed)
    with pytest.warns(RuntimeWarning, match="cannot write its cache"):
        assert t.rule("k/d") == (100, None) and t.rule("k/d") == (100, None)
    assert probed == ["k/d"]  # kept in memory


def test_a_failing_probe_means_numpy(cache):
    def probe(name):
        raise RuntimeError("no such kernel")
    t = tuning.Table(probe)
    with pytest.warns(RuntimeWarning, match="measuring k/d failed.*no such kernel"):
        assert t.rule("k/d") is None


def test_import_survives_a_corrupt_cache(tmp_path):
    """A broken cache file never breaks import, nor the first kernel call."""
    d = tmp_path / "dualgrad"
    d.mkdir()
    code = ("import numpy as np, os, glob\n"
            "from dualgrad import backend\n"
            "from dualgrad.backend import tuning\n"
            "p = tuning.cache_path(tuning.machine_key(backend._source_hash()))\n"
            "open(p, 'w').write('{corrupt')\n"
            "y, dy = backend.unary_with_grad('sin', np.ones(5000))\n"
            "assert np.allclose(dy, np.cos(1.0))\n"
            "print('ok')\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    env.pop(tuning.ENV, None)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


# ---------------------------------------------------------------------------
# The backend obeys the rules

@needs_numba
def test_small_calls_measure_nothing(monkeypatch):
    table = tuning.Table(lambda name: pytest.fail(f"measured {name} for a tiny call"))
    monkeypatch.setattr(backend, "TUNED", table)
    monkeypatch.setattr(backend, "FORCE_KERNELS", None)
    with backend.use_backend("numba"):
        for name in backend.UNARY:
            backend.unary_with_grad(name, np.full(8, 0.5))
        backend.index_add((5, 3), np.float64, np.array([0, 1, 1]), np.ones((3, 3)))
        backend.softmax(np.ones((2, 3)))
        out, arg = backend.max_pool2d(np.ones((1, 1, 4, 4)), 2)
        backend.max_pool2d_grad(out, arg, (1, 1, 4, 4))
        backend.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)))
    assert table.rules == {}


@needs_numba
@pytest.mark.parametrize("rule,numba", [((512, None), True), (None, False), ((512, 999), False)])
def test_unary_follows_the_rule(monkeypatch, rule, numba):
    monkeypatch.setattr(backend, "FORCE_KERNELS", None)
    monkeypatch.setitem(backend.TUNED.rules, "unary.tanh.grad/d", rule)
    calls = []
    ops = backend._numba_ops()
    real = ops.unary
    monkeypatch.setattr(ops, "unary", lambda *a: calls.append(1) or real(*a))
    x = np.linspace(-2, 2, 1000)
    with backend.use_backend("numba"):
        y, d = backend.unary_with_grad("tanh", x)
        assert (backend.fused_unary("tanh")(x) is not None) == numba
    assert bool(calls) == numba
    np.testing.assert_allclose(d, 1 - np.tanh(x) ** 2, rtol=1e-14, atol=1e-15)


@needs_numba
def test_backend_table_measures_lazily_and_caches(tmp_path, monkeypatch):
    """A call large enough measures its kernel once (fixed timings), and keeps the rule
    on disk under the machine key with the kernel sources' hash."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(tuning.ENV, raising=False)
    monkeypatch.setattr(backend, "FORCE_KERNELS", None)
    monkeypatch.setattr(backend, "TUNED", tuning.Table(backend._probe,
                                                       key_extra=backend._source_hash))
    monkeypatch.setattr(tuning, "measure", lambda a, b, **kw: (a(), b(), (1.0, 3.0))[2])
    with backend.use_backend("numba"):
        backend.unary_with_grad("sin", np.ones(5000))
    assert backend.TUNED.rules == {"unary.sin.grad/d": None}
    path = tuning.cache_path(tuning.machine_key(backend._source_hash()))
    data = json.loads(open(path).read())
    assert data["rules"] == {"unary.sin.grad/d": None}
    assert data["timings"]["unary.sin.grad/d"]["sizes"] == list(backend.LADDERS["unary"])


@needs_numba
def test_every_probe_runs_both_paths_alike():
    """Each kernel's probe, at its smallest size: numba and numpy agree (to a few ulps)."""
    names = backend.kernel_names((np.float64, np.float32))
    assert len(set(names)) == len(names)
    with backend.use_backend("numba"):
        for name in names:
            ladder = backend._probe(name)
            kernel = name.rpartition("/")[0]
            assert [n for n, _ in ladder] == list(backend.LADDERS[backend._family(kernel)])
            _, call = ladder[0]
            a, b = call(False), call(True)
            eps = np.finfo(np.dtype(name[-1])).eps
            pair = (a, b) if isinstance(a, tuple) else ((a,), (b,))
            for x, y in zip(*pair):
                np.testing.assert_allclose(y, x, rtol=16 * eps, atol=16 * eps, err_msg=name)


@needs_numba
def test_always_numba_forces_the_kernels(monkeypatch):
    table = tuning.Table(lambda name: pytest.fail("measured while forced"))
    monkeypatch.setattr(backend, "TUNED", table)
    for k, v in backend.ALWAYS_NUMBA.items():
        monkeypatch.setattr(backend, k, v)
    with backend.use_backend("numba"):
        assert backend.fused_unary("tanh")(np.ones(3)) is not None
        assert backend._fast(np.ones(3), kernel="im2col", size=1) is not None
    monkeypatch.setattr(backend, "FORCE_KERNELS", False)
    with backend.use_backend("numba"):
        assert backend.fused_unary("tanh")(np.ones(10 ** 6)) is None
