"""Caches never change a result: every kind of disk cache file, damaged, then a new process.

dualgrad keeps three kinds of files under ``$XDG_CACHE_HOME/dualgrad``: the generated
kernels' sources (``kernels/dualgrad_kernel_<hash>.py``), numba's machine code for them
and for ``dualgrad.kernels`` (``numba/*/*.nbi`` indexes, ``*.nbc`` data), and the tuning
rules (``tuning-*.json``).  Each is damaged here the ways disks and crashes damage files
(truncated, random bytes, one flipped byte, a source edited to compute something else,
machine code compiled from that edited source), and a fresh interpreter must still give
the right values and leave whole files behind.  Also: processes racing on one empty
folder, an unwritable cache (one warning, nothing written beside the package) and a
user's ``NUMBA_CACHE_DIR`` (honoured).
"""

import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from dualgrad.backend import tuning

diskcache = pytest.importorskip("dualgrad.kernels.diskcache")  # numba's cache: needs numba

ROOT = pathlib.Path(__file__).resolve().parents[1]

# sin's vector form is exact only for |x| < 2**20 (vecmath.LIMITS): the large inputs run
# the kernel's ``exact`` loop, the small ones its ``fast`` loop.  scatter is one of the
# hand-written kernels of dualgrad.kernels.
PROGRAM = """
import json, sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import numpy as np, dualgrad as dg
    from dualgrad.kernels import scatter
    jf = dg.jit(dg.grad(lambda x: np.sum(np.sin(x) ** 2)), codegen="numba")
    small, big = np.linspace(-3, 3, 7), np.linspace(2e6, 3e6, 7)
    jf(small)
    for x in (small, big):
        g = jf(x)
        assert np.allclose(g, 2 * np.sin(x) * np.cos(x), rtol=1e-12, atol=1e-12), (x, g)
    out = np.zeros((1, 3, 1))
    assert scatter.index_add_rows(out, np.array([0, 2, 0, -1]), np.ones((1, 4, 1))) == -1
    assert out.ravel().tolist() == [2.0, 0.0, 2.0]
k = next(iter(jf._cache.values()))[0].kernels[0].fn
s = scatter.index_add_rows.stats
print(json.dumps({"kernel_hits": sum(k.stats.cache_hits.values()),
                  "scatter_hits": sum(s.cache_hits.values()),
                  "paths": [k.stats.cache_path, s.cache_path],
                  "warnings": [str(w.message) for w in caught
                               if "cannot write its cache" in str(w.message)]}))
"""


def environment(cache, **env):
    full = {k: v for k, v in os.environ.items()
            if k not in ("NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT")}
    return dict(full, XDG_CACHE_HOME=str(cache), DUALGRAD_TUNING="nocache",
                PYTHONDONTWRITEBYTECODE="1", **env)


def run(cache, **env):
    r = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                       env=environment(cache, **env), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def snapshot(folder):
    return {p: p.read_bytes() for p in pathlib.Path(folder).rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A cache folder filled by one process, and its files' bytes."""
    cache = tmp_path_factory.mktemp("warm")
    first = run(cache)
    assert first["kernel_hits"] == 0
    return cache, snapshot(cache)


@pytest.fixture
def cache(warm):
    """The warm folder, restored to its bytes (same paths: numba's folders name them)."""
    folder, files = warm
    shutil.rmtree(folder)
    for p, data in files.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return folder


def truncated(data):
    return data[:len(data) // 2]


def random_bytes(data):
    return np.random.default_rng(len(data)).bytes(len(data))


def flipped(data):
    i = len(data) * 2 // 3
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


DAMAGE = [truncated, random_bytes, flipped]


def sources(folder):
    return sorted((folder / "dualgrad" / "kernels").glob("dualgrad_kernel_*.py"))


def numba_files(folder, suffix):
    return sorted((folder / "dualgrad" / "numba").rglob(f"*{suffix}"))


def assert_whole(folder, files):
    """Every cache file is as it was, or rewritten whole."""
    for p in sources(folder):
        assert p.read_bytes() == files[p]
    for p in numba_files(folder, ".nbi") + numba_files(folder, ".nbc"):
        diskcache._unseal(p.read_bytes())  # raises on a damaged file


def test_the_warm_cache_is_used(cache):
    again = run(cache)
    assert again["kernel_hits"] >= 1 and again["scatter_hits"] >= 1
    for path in again["paths"]:
        assert path.startswith(str(cache / "dualgrad" / "numba"))


@pytest.mark.parametrize("damage", DAMAGE + ["edited"])
def test_a_damaged_kernel_source_is_rewritten(cache, warm, damage):
    (src,) = sources(cache)
    text = src.read_text()
    if damage == "edited":  # the edit: the exact loop computes 3 sin cos
        assert text.count("(v0 * 2.0)") == 2 and text.index("def exact") < text.index("2.0")
        src.write_text(text.replace("(v0 * 2.0)", "(v0 * 3.0)", 1))
    else:
        src.write_bytes(damage(src.read_bytes()))
    run(cache)
    assert_whole(cache, warm[1])


def test_machine_code_compiled_from_an_edited_source_is_never_loaded(cache, warm):
    """An older dualgrad compiled whatever the file said: numba's files for the edited
    source exist beside the file.  They are stamped with the edited text's hash, so the
    restored file's kernel misses them and is compiled again."""
    (src,) = sources(cache)
    good = src.read_text()
    src.write_text(good.replace("(v0 * 2.0)", "(v0 * 3.0)", 1))
    poison = f"""
import importlib.util, sys, numpy as np
from dualgrad.kernels.diskcache import attach
spec = importlib.util.spec_from_file_location({src.stem!r}, {str(src)!r})
m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m
spec.loader.exec_module(m)
for f in (m.exact, m.fast, m.kernel):
    attach(f)
x = np.linspace(2e6, 3e6, 7)
assert not np.allclose(m.kernel(x)[0], 2 * np.sin(x) * np.cos(x))  # the wrong code ran
"""
    r = subprocess.run([sys.executable, "-c", poison], capture_output=True, text=True,
                       env=environment(cache), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    after = run(cache)  # asserts the right values
    assert after["kernel_hits"] == 0
    assert src.read_text() == good


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("suffix", [".nbi", ".nbc"])
def test_damaged_numba_files_are_a_miss(cache, warm, suffix, damage):
    files = numba_files(cache, suffix)
    assert len(files) >= 4  # the generated kernel's three functions and scatter's
    for p in files:
        p.write_bytes(damage(p.read_bytes()))
    after = run(cache)
    assert after["kernel_hits"] == 0 and after["scatter_hits"] == 0
    assert_whole(cache, warm[1])


def test_a_data_file_saved_for_another_key_is_a_miss(cache, warm):
    """Two processes compiling different signatures can both pick data file 1: the data
    file names its key, and a key that is not the one asked for is a miss."""
    index = next(p for p in numba_files(cache, ".nbi") if "scatter" in p.name)
    data = next(p for p in numba_files(cache, ".nbc") if "scatter" in p.name)
    key, payload = pickle.loads(diskcache._unseal(data.read_bytes()))
    other = (key[0], key[1], ("0" * 64, "0" * 64))
    data.write_bytes(diskcache._seal(pickle.dumps((other, payload))))
    assert run(cache)["scatter_hits"] == 0
    assert index.exists() and run(cache)["scatter_hits"] >= 1


def test_racing_processes_on_one_empty_folder(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", PROGRAM], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=environment(tmp_path))
             for _ in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and ".tmp" in p.name]
    assert leftovers == []
    files = snapshot(tmp_path)
    assert_whole(tmp_path, files)
    last = run(tmp_path)
    assert last["kernel_hits"] >= 1 and last["scatter_hits"] >= 1


def test_an_unwritable_cache_warns_once_and_writes_nothing_beside_the_package(tmp_path):
    blocker = tmp_path / "a-file"  # root writes into read-only folders: use a file
    blocker.write_text("not a folder")
    before, out, after = cache_files(), run(blocker, HOME=str(blocker)), cache_files()
    assert after == before
    assert len(out["warnings"]) == 1, out["warnings"]
    assert all(path is None or not path.startswith(str(ROOT)) for path in out["paths"])


def cache_files():
    """numba's files, kernel sources and temporary files beside the package's source
    (numba's default locator writes ``kernels/__pycache__``), with their times."""
    return {p: p.stat().st_mtime_ns for d in (ROOT / "dualgrad", ROOT / "kernels")
            for p in d.rglob("*") if p.suffix in (".nbi", ".nbc")
            or p.name.startswith("dualgrad_kernel_") or ".tmp" in p.name}


def test_a_users_numba_cache_dir_is_honoured(tmp_path):
    out = run(tmp_path / "xdg", NUMBA_CACHE_DIR=str(tmp_path / "nb"))
    assert all(path.startswith(str(tmp_path / "nb")) for path in out["paths"])
    assert list((tmp_path / "nb").rglob("*.nbi"))
    assert not (tmp_path / "xdg" / "dualgrad" / "numba").exists()
    assert sources(tmp_path / "xdg")


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_tuning_file_is_measured_again(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    key = tuning.machine_key()
    path = tuning.cache_path(key)
    assert tuning.save(path, key, {"unary.tanh/d": (4096, None)}, {})
    assert tuning.load(path, key)[0] == {"unary.tanh/d": (4096, None)}
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(damage(data))
    assert tuning.load(path, key) == ({}, {})


def test_numba_cudas_cache_class_gets_the_same_checks(tmp_path, monkeypatch):
    """dg.jit's CUDA kernels (``@cuda.jit(cache=True)``) take the same checked cache; the
    plumbing, without a GPU: sealed files, keyed data, a damaged index is a miss."""
    cuda_dispatcher = pytest.importorskip("numba.cuda.dispatcher")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    source = tmp_path / "k.py"
    source.write_text("def k(x):\n    return x\n")
    namespace = {}
    exec(compile(source.read_text(), str(source), "exec"), namespace)
    c = diskcache._checked(cuda_dispatcher.CUDACache)(namespace["k"])
    assert c.cache_path.startswith(str(tmp_path / "dualgrad" / "numba"))
    c._impl.locator.ensure_cache_path()
    c._cache_file.save(("sig", 1), {"ptx": "..."})
    assert c._cache_file.load(("sig", 1)) == {"ptx": "..."}
    assert c._cache_file.load(("sig", 2)) is None
    (index,) = pathlib.Path(c.cache_path).glob("*.nbi")
    index.write_bytes(flipped(index.read_bytes()))
    assert c._cache_file.load(("sig", 1)) is None
