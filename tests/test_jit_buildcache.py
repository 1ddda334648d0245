"""dg.jit's build cache (dualgrad/compiler/buildcache.py): a second process loads the
build of the same recorded graph instead of building it, with the same bits; a damaged,
foreign or stale file is never used; processes sharing the folder race harmlessly; a
changed function is built anew."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import dualgrad as dg
from dualgrad.compiler import buildcache, roll

pytest.importorskip("numba")

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The functions both the test process and its children jit: a scalar loop unrolled (one
# rolled kernel), an array loss with a closure's constants of several kinds (an F-ordered
# array, -0.0, a float32 scalar, an index array) and a branch on a traced value (a guard),
# and a dict output.
CASES = '''
import numpy as np
import dualgrad as dg

C = np.asfortranarray(np.linspace(-1.0, 1.0, 12).reshape(3, 4))
IDX = np.array([2, 0, 1, 1])

def chain(x):
    for _ in range(60):
        x = np.sin(x) * 1.0001 + 0.1 * x * x
    return x

def loss(w, X):
    h = np.tanh(X @ w) * np.float32(1.5) + (-0.0)
    if np.sum(h) > -1e9:
        h = h * 2.0
    return np.sum(h ** 2) + np.sum(np.exp(-(X * C)[IDX] ** 2)) * 0.5

def parts(x):
    return {"s": np.sum(np.sin(x) * x), "v": np.cos(x) * 3.0 - x}

W = np.linspace(0.1, 0.5, 4)
X = np.cos(np.arange(12.0)).reshape(3, 4)

def jitted():
    return {"chain": (dg.jit(dg.grad(chain), codegen="numba"), (0.5,)),
            "loss": (dg.jit(dg.grad(loss), codegen="numba"), (W, X)),
            "parts": (dg.jit(parts, codegen="numba"), (X,))}

def run():
    """Three calls of each (the first records, the second builds or loads): the replays'
    bits, and whether each build came from the cache."""
    out = {}
    for name, (jf, args) in jitted().items():
        got = [jf(*args) for _ in range(3)][1:]
        flat = [v for r in got for v in (r.values() if isinstance(r, dict) else [r])]
        out[name] = {"bits": [np.asarray(v).dtype.str + str(np.shape(v)) +
                              np.asarray(v).tobytes().hex() for v in flat],
                     "cached": [c.from_cache for cs in jf._cache.values() for c in cs]}
    return out
'''

CHILD = CASES + '''
import json
from dualgrad.compiler import buildcache
print("RESULT " + json.dumps(dict(run(), sources=buildcache._sources_digest())))
'''


def _env(cache):
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), PYTHONPATH=str(ROOT))
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop(buildcache.ENV, None)
    return env


def _start(cache):
    return subprocess.Popen([sys.executable, "-c", CHILD], env=_env(cache), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(p):
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    (line,) = [s for s in out.splitlines() if s.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):])


def _twice(cache, together=False):
    """Two children's results on one cache folder, one after the other or at once; again
    (on a fresh folder) where dualgrad's sources changed between them (an edit made
    meanwhile in this working tree: another key)."""
    for attempt in range(3):
        folder = cache / str(attempt)
        if together:
            a, b = _start(folder), _start(folder)
            ra, rb = _result(a), _result(b)
        else:
            ra = _result(_start(folder))
            rb = _result(_start(folder))
        if ra["sources"] == rb.pop("sources"):
            return folder, ra, rb
    pytest.skip("dualgrad's sources kept changing while the test ran")


@pytest.fixture
def cases(tmp_path, monkeypatch):
    """CASES in this process, with its caches under an empty temporary folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(buildcache.ENV, raising=False)
    ns = {}
    exec(compile(CASES, "<cases>", "exec"), ns)  # noqa: S102 - the test's own source
    return ns


def _files(cache):
    return sorted((pathlib.Path(cache) / "dualgrad" / "builds").rglob("*.bin"))


def test_a_second_process_loads_every_build_and_gives_the_same_bits(tmp_path):
    folder, first, second = _twice(tmp_path)
    first.pop("sources")
    for name in first:
        assert first[name]["cached"] == [False], name
        assert second[name]["cached"] == [True], name
        assert second[name]["bits"] == first[name]["bits"], name
    assert len(_files(folder)) == len(first)


def test_two_processes_writing_at_once_both_succeed(tmp_path, cases, monkeypatch):
    folder, ra, rb = _twice(tmp_path, together=True)
    sources = ra.pop("sources")
    for name in ra:  # each built it (or loaded what the other had filed): the same bits
        assert ra[name]["bits"] == rb[name]["bits"], name
    files = _files(folder)
    assert len(files) == len(ra)
    assert not [f for f in (folder / "dualgrad" / "builds").rglob("*") if f.is_file()
                and f.suffix != ".bin"]  # no temporary file left
    if buildcache._sources_digest() != sources:
        return  # dualgrad's sources were edited since this process read them: other keys
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    here = cases["run"]()  # what they left is whole: this process loads all of it
    for name in ra:
        assert here[name]["cached"] == [True], name
        assert here[name]["bits"] == ra[name]["bits"], name


def _one(cases, name):
    jf, args = cases["jitted"]()[name]
    got = [jf(*args) for _ in range(3)][1:]
    (entries,) = jf._cache.values()
    return [np.asarray(g).tobytes() for g in got], [c.from_cache for c in entries]


@pytest.mark.parametrize("damage", ["flip", "truncate", "random", "empty", "foreign"])
def test_a_damaged_or_foreign_file_is_ignored_and_rebuilt(cases, tmp_path, damage):
    bits, cached = _one(cases, "loss")
    assert cached == [False]
    (path,) = _files(tmp_path)
    good = path.read_bytes()
    assert _one(cases, "loss") == (bits, [True])
    if damage == "flip":
        blob = bytearray(good)
        blob[len(blob) // 2] ^= 0x40
        path.write_bytes(bytes(blob))
    elif damage == "truncate":
        path.write_bytes(good[: len(good) // 3])
    elif damage == "random":
        path.write_bytes(np.random.default_rng(0).bytes(len(good)))
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # another graph's whole file under this graph's name
        _one(cases, "parts")
        (other,) = [f for f in _files(tmp_path) if f != path]
        path.write_bytes(other.read_bytes())
    assert _one(cases, "loss") == (bits, [False])  # built again, the same bits
    assert path.read_bytes() == good  # and filed again, whole
    assert _one(cases, "loss") == (bits, [True])


def test_a_changed_constant_is_not_served_the_old_build(cases):
    x = np.linspace(-1.0, 1.0, 7)

    def make(c):
        return dg.jit(lambda x: np.sum(np.sin(x) * c + x * x), codegen="numba")

    for c, want_cached in [(2.5, False), (2.5, True), (3.5, False), (-0.0, False),
                           (0.0, False)]:
        jf = make(c)
        got = [jf(x) for _ in range(3)]
        assert [e.from_cache for e in next(iter(jf._cache.values()))] == [want_cached], c
        want = np.sum(np.sin(x) * c + x * x)
        assert all(np.asarray(g).tobytes() == np.asarray(want).tobytes() or
                   np.isclose(g, want, rtol=1e-14, atol=0) for g in got), c


def test_a_guard_of_another_branch_is_another_build(cases):
    def f(x):
        return np.sin(x) * 2.0 if np.sum(x) > 0 else np.cos(x) * 3.0

    for x, want in [(np.ones(3), [False]), (np.ones(3), [True]), (-np.ones(3), [False])]:
        jf = dg.jit(f, codegen="numba")
        got = [jf(x) for _ in range(3)]
        assert [e.from_cache for e in next(iter(jf._cache.values()))] == want
        for g in got:
            np.testing.assert_allclose(g, f(x), rtol=1e-14, atol=0)


def test_a_rebound_build_function_turns_the_cache_off(cases, monkeypatch):
    """tests/test_roll.py compares rolled kernels with straight ones (roll.runs rebound)
    in one process: the straight build must be built, not loaded."""
    bits, _ = _one(cases, "chain")
    assert _one(cases, "chain") == (bits, [True])
    with monkeypatch.context() as m:
        m.setattr(roll, "runs", lambda graph, body: [])  # straight kernels
        jf, args = cases["jitted"]()["chain"]
        jf(*args), jf(*args)
        (c,) = next(iter(jf._cache.values()))
        assert not c.from_cache and "for j in range(" not in c.kernels[0].source
    assert _one(cases, "chain") == (bits, [True])  # and the file was not overwritten


def test_the_environment_variable_turns_it_off(cases, tmp_path, monkeypatch):
    monkeypatch.setenv(buildcache.ENV, "0")
    assert _one(cases, "parts")[1] == [False]
    assert _one(cases, "parts")[1] == [False]
    assert not _files(tmp_path)


def test_outer_transforms_and_the_summary_use_the_loaded_graph(cases):
    jf, args = cases["jitted"]()["parts"]
    jf(*args), jf(*args)
    jf2, _ = cases["jitted"]()["parts"]
    jf2(*args), jf2(*args)
    (c,) = next(iter(jf2._cache.values()))
    (c0,) = next(iter(jf._cache.values()))
    assert c.from_cache and not c0.from_cache
    assert c.summary == c0.summary
    assert str(c.graph) == str(c0.graph)  # the optimised graph, decoded on demand
    g = dg.grad(lambda x: jf2(x)["s"])(args[0])  # replayed one primitive at a time
    np.testing.assert_allclose(g, dg.grad(lambda x: cases["parts"](x)["s"])(args[0]),
                               rtol=1e-13, atol=0)


def test_each_folder_keeps_its_most_recently_used_builds(tmp_path):
    folder = tmp_path / "ab"
    folder.mkdir()
    for k in range(6):
        f = folder / f"{k}.bin"
        f.write_bytes(b"x")
        os.utime(f, ns=(k * 10**9, k * 10**9))
    os.utime(folder / "1.bin", ns=(10 * 10**9, 10 * 10**9))  # used lately
    (folder / ".tmp-not-a-build").write_bytes(b"")
    buildcache._prune(str(folder), keep=3)
    assert sorted(p.name for p in folder.iterdir()) == [".tmp-not-a-build", "1.bin",
                                                        "4.bin", "5.bin"]


@pytest.mark.parametrize("name", ["chain", "loss", "parts"])
def test_a_loaded_kernel_keeps_its_region(cases, name, monkeypatch):
    """The regions read back (their constants shared with the graph, as regions key
    constants by identity) write the source a region built here writes from the graph
    a compiled signature keeps (its values' shells)."""
    from dualgrad.compiler import emit_cpu

    def entry():
        jf, args = cases["jitted"]()[name]
        jf(*args), jf(*args)
        return next(iter(jf._cache.values()))[0]
    _one(cases, name)
    c = entry()
    monkeypatch.setenv(buildcache.ENV, "0")
    c0 = entry()
    assert c.from_cache and not c0.from_cache and len(c.kernels) == len(c0.kernels)
    for k, k0 in zip(c.kernels, c0.kernels, strict=True):
        assert k.source == k0.source and (k.fn is None) == (k0.fn is None)
        if k.fn is not None:
            assert emit_cpu.kernel_source(c.graph, k.region) == \
                emit_cpu.kernel_source(c0.graph, k0.region)


def test_an_input_of_another_memory_layout_is_another_build(cases):
    x = np.arange(12.0).reshape(3, 4) / 7.0
    f = lambda x: np.sum(np.tanh(x) * x, axis=0)  # noqa: E731
    for a, want in [(x, [False]), (x.copy(), [True]), (np.asfortranarray(x), [False]),
                    (x[:, ::2].copy(), [False]), (x[::2], [False])]:
        jf = dg.jit(f, codegen="numba")
        got = [jf(a) for _ in range(3)]
        assert [e.from_cache for e in next(iter(jf._cache.values()))] == want
        for g in got:
            np.testing.assert_allclose(g, f(a), rtol=1e-14, atol=0)


def test_a_fresh_build_holds_its_optimised_graph_encoded(cases, monkeypatch):
    """A build filed in the cache keeps its optimised graph as the encoding it filed (no
    graph objects for the collector to walk, a tenth of the memory), decoded when an outer
    transform asks: the same graph as one built with the cache off, the same gradient."""
    jf, args = cases["jitted"]()["loss"]
    jf(*args), jf(*args)
    (c,) = next(iter(jf._cache.values()))
    assert not c.from_cache and c._graph is None and c._stored is not None
    monkeypatch.setenv(buildcache.ENV, "0")
    jo, _ = cases["jitted"]()["loss"]
    jo(*args), jo(*args)
    (co,) = next(iter(jo._cache.values()))
    assert co._graph is not None and co._stored is None  # no cache: the objects stay
    assert str(c.graph) == str(co.graph)
    w, X = args
    outer = dg.jacfwd(lambda w: jf(w, X))(w)  # the graph replayed one primitive at a time
    np.testing.assert_allclose(outer, dg.jacfwd(lambda w: jo(w, X))(w), rtol=1e-13, atol=0)
    np.testing.assert_allclose(outer, dg.hessian(lambda w: cases["loss"](w, X))(w),
                               rtol=1e-12, atol=1e-12)


def test_equal_index_arrays_are_filed_once(cases, tmp_path):
    """A loop that makes its index array anew each step (GradBench's fluid simulation:
    3,700 parameters of 80 kB, 210 contents, a 1.16 GB file) files each content once; the
    build read back replays the same bits, each step reading its own indices."""
    n, steps = 20_000, 40

    def f(x):
        for k in range(steps):
            idx = (np.arange(n) + k % 2) % n  # a new array each step, two contents
            x = np.sin(x[idx]) * 1.5
        return np.sum(x)

    x = np.linspace(-1.0, 1.0, n)
    jf = dg.jit(dg.grad(f))
    want = [jf(x) for _ in range(3)][1:]
    (path,) = [p for p in _files(tmp_path) if p.stat().st_size > 100_000]
    assert path.stat().st_size < 10 * n * 8, path.stat().st_size  # not 40 copies
    again = dg.jit(dg.grad(f))
    got = [again(x) for _ in range(3)][1:]
    assert [c.from_cache for cs in again._cache.values() for c in cs] == [True]
    for g, w in zip(got, want):
        assert g.tobytes() == w.tobytes()
    np.testing.assert_allclose(got[0], dg.grad(f)(x), rtol=1e-12, atol=1e-12)


def test_a_build_past_the_size_limit_is_not_filed(cases, tmp_path, monkeypatch):
    """A build whose file would pass ``MAX_BYTES`` is not written (the next process
    builds it again); this one runs as any other."""
    limit = buildcache.MAX_BYTES
    monkeypatch.setattr(buildcache, "MAX_BYTES", 1000)
    jf, args = cases["jitted"]()["loss"]
    got = [jf(*args) for _ in range(3)][1:]
    assert not _files(tmp_path)
    np.testing.assert_allclose(got[1], dg.grad(cases["loss"])(*args), rtol=1e-12, atol=0)
    assert got[0].tobytes() == got[1].tobytes()
    monkeypatch.setattr(buildcache, "MAX_BYTES", limit)  # the same build, filed
    again, _ = cases["jitted"]()["loss"]
    replays = [again(*args) for _ in range(3)][1:]
    assert all(r.tobytes() == got[0].tobytes() for r in replays)
    assert len(_files(tmp_path)) == 1
