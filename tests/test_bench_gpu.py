"""The GPU bench (bench/gpu.py, ``python -m bench --device cuda``) without a GPU: the whole
harness on the host device (numpy arrays, a no-op sync, torch on "cpu", jax on its CPU
backend) at ``--sizes tiny``; the clear error when CuPy or a CUDA device is missing; the
bytes the bandwidth figure counts; the verdicts against the issue's targets."""

import contextlib
import dataclasses
import importlib.util
import io
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from bench import gpu, workloads
from bench.__main__ import gpu_argv

ROOT = Path(__file__).resolve().parent.parent
HAVE = {t: importlib.util.find_spec(m) is not None for t, m in (("torch", "torch"),
                                                                ("jax.jit", "jax"))}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One end-to-end run: every workload, both dtypes, every tool (codegen off: replay
    only, so that no numba compile makes the test slow)."""
    out = tmp_path_factory.mktemp("gpu-bench")
    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        rc = gpu.main(["--device", "host", "--sizes", "tiny", "--repeats", "2",
                       "--min-time", "0", "--jit-codegen", "off", "--out", str(out)])
    files = sorted(out.iterdir())
    data = json.loads(next(f for f in files if f.suffix == ".json").read_text())
    return {"rc": rc, "stdout": buf.getvalue(), "stderr": err.getvalue(), "files": files,
            "json": data}


def results_rows(md):
    table = md.split("## Results", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in table.splitlines()
            if ln.startswith("| ") and not ln.startswith("| case")]


def test_table_has_every_workload_and_dtype_with_both_dualgrad_tools(report):
    assert report["rc"] == 0, report["stderr"]
    rows = results_rows(report["stdout"])
    assert [r[0].split(",")[0] for r in rows] == [f"{w} {d}" for w in gpu.WORKLOADS
                                                  for d in ("float32", "float64")]
    timed = re.compile(r"^[\d.]+ (µs|ms|s) \[[\d.]+ (µs|ms|s)\]$")
    for r in rows:
        assert timed.match(r[1]) and timed.match(r[2]), r  # dualgrad, dualgrad.jit
        for col, tool in ((3, "torch"), (4, "jax.jit")):
            assert bool(timed.match(r[col])) == HAVE[tool], (tool, r[col])
        # a verdict, never left blank; "?" only where the yardstick (PyTorch) is missing
        assert r[-1][0] in ("✓✗" if HAVE["torch"] or r[0].startswith("elementwise")
                            else "?"), r
    md = report["stdout"]
    for section in ("## Elementwise bandwidth", "## First calls", "## Gradient checks",
                    "## Tools that did not run"):
        assert section in md


def test_every_gradient_agrees_with_dualgrad_eager(report):
    assert "MISMATCH" not in report["stdout"] + report["stderr"]
    for case in report["json"]["cases"]:
        assert case["reference"] == "dualgrad"
        for tool in ("dualgrad.jit",) + tuple(t for t in HAVE if HAVE[t]):
            run = case["runs"][tool]
            assert run["status"] == "ok", (case["workload"], tool, run["reason"])
            assert run["check"]["ok"] and run["check"]["against"] == "dualgrad"
            assert len(run["samples_s"]) == 2 and run["median_s"] > 0


def test_files_name_the_device_and_versions(report):
    names = [f.name for f in report["files"]]
    assert len(names) == 2 and all(re.match(r"gpu-bench-\d{8}-\d{6}\.(md|json)$", n)
                                   for n in names)
    meta = report["json"]["meta"]
    assert meta["device"]["cpu"]  # the host run names its CPU; a GPU run, the GPU
    for name in ("cupy", "torch", "jax", "numba-cuda"):
        assert name in meta["versions"]


def test_elementwise_bytes_are_one_read_and_one_write():
    assert gpu.elementwise_bytes(10**8, 4) == 800_000_000
    assert gpu.elementwise_bytes(10**8, 8) == 1_600_000_000


def test_bandwidth_is_counted_bytes_over_time_against_the_copy(report):
    md = report["stdout"]
    assert "x read once + the gradient written once = 2 · n · itemsize" in md
    for case in report["json"]["cases"]:
        if case["workload"] != "elementwise":
            assert "bytes" not in case
            continue
        n, item = case["size"], np.dtype(case["dtype"]).itemsize
        assert case["bytes"] == 2 * n * item
        assert f"2·{n:,}·{item} = {2 * n * item:,}" in md
        runs = case["runs"]
        t_jit, t_copy = runs["dualgrad.jit"]["median_s"], runs["copy"]["median_s"]
        gbps, pct = case["bandwidth_gbps_pct_copy"]["dualgrad.jit"]
        assert gbps == pytest.approx(2 * n * item / t_jit / 1e9)
        assert pct == pytest.approx(100 * t_copy / t_jit)  # the copy moves the same bytes


def test_missing_cupy_is_one_clear_line():
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here")
    res = subprocess.run([sys.executable, "-m", "bench", "--device", "cuda"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert 'needs CuPy and a CUDA device: pip install "dualgrad[cuda]"' in lines[0]
    assert "cupy" in lines[0].split("dualgrad[cuda]", 1)[1]  # and says what failed


def test_cupy_without_a_device_is_one_clear_line(monkeypatch, capsys):
    def no_device():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    fake = types.SimpleNamespace(__version__="13.6.0", cuda=types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=no_device)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    assert gpu.main(["--no-write"], prog="python -m bench --device cuda") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "needs CuPy and a CUDA device" in err
    assert "CuPy 13.6.0 finds no CUDA device" in err and "cudaErrorNoDevice" in err


def test_device_flag_leaves_the_cpu_bench_alone():
    assert gpu_argv([]) is None and gpu_argv(["--device", "cpu", "--quick"]) is None
    assert gpu_argv(["--device", "cuda", "--repeats", "3"]) == ["--repeats", "3"]
    assert gpu_argv(["--device=cuda"]) == []


def test_the_same_functions_and_data_as_bench_workloads():
    import dualgrad as dg
    (ew,), (mlp,), (cv,) = workloads.elementwise(), workloads.mlp_large(), workloads.conv()
    x = gpu.elementwise_data(10**6, np.float64)["x"]
    np.testing.assert_array_equal(x, ew.data["x"])
    assert gpu.elementwise_loss(x) == ew.forward()
    d = gpu.mlp_large_data(256, np.float64)
    for k, v in mlp.data.items():
        np.testing.assert_array_equal(d[k], v)
    args = [d[k] for k in gpu.WORKLOADS["mlp_large"].args]
    assert gpu.mlp_large_loss(None)(*args) == mlp.forward()
    assert gpu.mlp_large_loss(dg)(*args) == pytest.approx(mlp.forward(), rel=1e-12)
    d = gpu.conv_data(16, np.float64)
    for k, v in cv.data.items():
        np.testing.assert_array_equal(d[k], v)
    assert gpu.conv_loss(dg)(d["x"], d["w"]) == pytest.approx(cv.forward(), rel=1e-12)


def test_a_failing_or_missing_tool_is_reported_and_a_mismatch_is_loud(monkeypatch, capsys):
    """torch's loss raises, or is wrong by a factor 2; jax is not importable."""
    ew = gpu.WORKLOADS["elementwise"]
    opts = gpu.Options(sizes="tiny", workloads=("elementwise",), dtypes=("float64",),
                       tools=("dualgrad", "torch", "jax.jit"), repeats=1, min_time=0)
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax: ImportError
    broken = dataclasses.replace(ew, torch=lambda torch: lambda x: x.no_such_method())
    case = gpu.run_case(broken, "float64", gpu.host_device(), opts, float("inf"))
    jx, tr = case["runs"]["jax.jit"], case["runs"]["torch"]
    assert jx.status == "not installed" and "jax" in jx.reason
    if HAVE["torch"]:
        assert tr.status == "error" and tr.reason.startswith("AttributeError: ")
        assert "no_such_method" in tr.reason
    case["verdict"] = gpu.verdict(case, broken)
    meta = {"command": "test", "date": "now", "device": {"cpu": "cpu"}, "versions": {},
            "repeats": 1, "min_time": 0, "bench_seconds": 0, "rtol": gpu.RTOL}
    md = gpu.markdown(meta, [case])
    assert "elementwise float64, jax.jit: not installed" in md
    if not HAVE["torch"]:
        return
    assert f"elementwise float64, torch: error — {tr.reason}" in md
    wrong = dataclasses.replace(ew, torch=lambda torch: lambda x: 2 * torch.sum(torch.sin(x)))
    case = gpu.run_case(wrong, "float64", gpu.host_device(), opts, float("inf"))
    assert not case["runs"]["torch"].check["ok"]
    assert "GRADIENT MISMATCH on elementwise float64: torch" in capsys.readouterr().err
    assert gpu.verdict(case, wrong) == "✗ MISMATCH (torch)"
    assert "✗MISMATCH" in gpu.cell(case["runs"]["torch"])


def fake_case(dtype, **medians):
    runs = {}
    for tool, t in medians.items():
        runs[tool] = gpu.Run(tool, samples=[t]) if t is not None else \
            gpu.Run(tool, "not installed", "not installed")
    case = {"dtype": dtype, "runs": runs}
    if "copy" in medians:
        case["bytes"] = 8000
    return case


@pytest.mark.parametrize("dtype, copy, expect", [
    ("float32", 0.75, "✓ met (75% of copy)"), ("float32", 0.65, "✗ not met (65% of copy)"),
    ("float64", 0.55, "✓ met (55% of copy)"), ("float64", 0.45, "✗ not met (45% of copy)")])
def test_elementwise_verdict_is_jit_bandwidth_against_copy(dtype, copy, expect):
    case = fake_case(dtype, **{"dualgrad": 5.0, "dualgrad.jit": 1.0, "copy": copy})
    assert gpu.verdict(case, gpu.WORKLOADS["elementwise"]) == expect


@pytest.mark.parametrize("workload, eager, jit, torch, expect", [
    ("mlp_large", 1.3, 1.1, 1.0, "✓ met (dualgrad.jit 1.10×)"),
    ("mlp_large", 1.3, 1.25, 1.0, "✗ not met (dualgrad.jit 1.25×)"),
    ("conv", 1.4, 2.0, 1.0, "✓ met (dualgrad 1.40×)"),
    ("conv", 1.6, 1.7, 1.0, "✗ not met (dualgrad 1.60×)"),
    ("conv", 1.0, 1.0, None, "? no torch to compare (not installed)")])
def test_model_verdicts_are_best_dualgrad_over_torch(workload, eager, jit, torch, expect):
    case = fake_case("float32", **{"dualgrad": eager, "dualgrad.jit": jit, "torch": torch})
    assert gpu.verdict(case, gpu.WORKLOADS[workload]) == expect


def test_peers_without_the_gpu_are_reported_unavailable():
    """On a CUDA device, a CPU-only torch or jax is listed with the reason, not dropped."""
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    if torch.cuda.is_available() or any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("torch or jax sees a GPU here")
    dev = gpu.Device("cuda", np, np.array, np.asarray, lambda: None, "cuda", "gpu")
    opts = gpu.Options(sizes="tiny", dtypes=("float32",), tools=("torch", "jax.jit"),
                       repeats=1, min_time=0)
    case = gpu.run_case(gpu.WORKLOADS["elementwise"], "float32", dev, opts, float("inf"))
    tr, jx = case["runs"]["torch"], case["runs"]["jax.jit"]
    assert tr.status == "unavailable" and "sees no CUDA device" in tr.reason
    assert jx.status == "unavailable" and "has no gpu backend" in jx.reason
    assert gpu.verdict(case, gpu.WORKLOADS["elementwise"]).startswith("✗ not met: dualgrad.jit")


def test_times_are_written_without_exponents():
    for s, text in ((9.996e-4, "1 ms"), (5e-7, "0.5 µs"), (0.9996, "1 s"), (12.3456, "12.3 s"),
                    (1.5e-3, "1.5 ms")):
        assert gpu.fmt_time(s) == text
