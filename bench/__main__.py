"""``python -m bench``: time dualgrad against numpy, PyTorch, JAX and autograd.

    python -m bench                                  # everything, 15 rounds
    python -m bench --workloads chain,baydin --repeats 31
    python -m bench --quick                          # a smoke run: 3 rounds, short samples
    python -m bench --tools dualgrad,jax.jit         # F (numpy) is always timed
    python -m bench --device cuda                    # the GPU bench: bench/gpu.py

What it does, per case (see bench/workloads.py and bench/README.md):

1. pins the process to one CPU core and one thread per library (before numpy, numba,
   torch or jax load; it re-executes itself if they already had);
2. builds every tool's derivative callable on the same float64 inputs, calls each twice
   (warm-up: jit compiles, numba compiles) and checks every derivative against
   dualgrad's with ``np.allclose``;
3. takes samples round-robin across the tools (one sample of each tool per round, the
   order rotated every round), each sample a loop long enough to time reliably; the
   compiling tools (dg.jit, jax.jit) go after every case's other tools, round-robin with F
   timed again, so no eager figure is taken in a heap a large build has fragmented;
4. reports medians: ``bench/results/bench-<timestamp>.{json,md}`` and
   ``bench/results/latest.md``.

It also times ``import dualgrad`` in fresh interpreters and the first-call (compile)
latency of the numba backend with an empty and with a warm ``NUMBA_CACHE_DIR``.
"""

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
HEAVY = ("numpy", "numba", "torch", "jax", "dualgrad", "autograd", "scipy")
DG_TOOLS = ("dualgrad[numpy]", "dualgrad[numba]")
BASE_TOOLS = ("baseline[numpy]", "baseline[numba]")  # an earlier dualgrad (--baseline)
PEER_TOOLS = ("torch", "torch.func", "jax", "jax.jit", "autograd") + BASE_TOOLS
JIT_TOOLS = ("dualgrad.jit",)  # dg.jit of the same transform, recorded during warm-up
# timed after every case's other tools, beside F timed again: a large build leaves the
# Python heap fragmented, and the eager tools timed after it ran 15% slower (naive_conv
# 3.6x -> 4.1x), a state no eager user's process is in
COMPILING = JIT_TOOLS + ("jax.jit",)
TOOLS = ("F",) + DG_TOOLS + JIT_TOOLS + PEER_TOOLS
DASH = "—"


# ---------------------------------------------------------------------------
# Command line and pinning (no numpy before this is done)

def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default="all",
                   help="comma list of workloads (baydin, chain, mlp_cs231n, mlp_large, "
                        "elementwise, hessian, jacobian, gather, conv, logreg, mlp_small, "
                        "rk4, naive_conv) or cases (hvp, jacfwd, "
                        "jacrev); default all")
    p.add_argument("--tools", default="all",
                   help="comma list from: dualgrad (both backends), baseline (both, with "
                        "--baseline), " + ", ".join(TOOLS[1:])
                        + "; F is always timed; default all")
    p.add_argument("--repeats", type=int, default=None,
                   help="samples per tool per case, taken round-robin (default 15; --quick 3)")
    p.add_argument("--min-time", type=float, default=None,
                   help="seconds per sample: calls are looped until one sample takes this "
                        "long (default 0.05; --quick 0.01)")
    p.add_argument("--max-tool-seconds", type=float, default=None,
                   help="cap on the time one tool spends sampling one case: slow tools get "
                        "fewer samples, never fewer than 3 (default 30; --quick 5)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 3 samples, short samples, no compile-latency probe, "
                        "no jax.jit on chain (its compile takes ~15 s)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads per library and CPU cores pinned (default 1)")
    p.add_argument("--cpus", default=None,
                   help="comma list of CPU ids to pin to (default: the last --threads CPUs "
                        "of the current affinity)")
    p.add_argument("--no-pin", action="store_true", help="do not touch threads or affinity")
    p.add_argument("--no-startup", action="store_true",
                   help="skip the import-time and compile-latency subprocesses")
    p.add_argument("--rtol", type=float, default=1e-6, help="derivative check rtol")
    p.add_argument("--out", default=str(RESULTS), help="results folder (default bench/results)")
    p.add_argument("--no-write", action="store_true", help="print only, write no files")
    p.add_argument("--baseline", default=None, metavar="DIR",
                   help="a checkout of an earlier dualgrad (e.g. a git worktree): its "
                        "package is timed beside this one, in the same run, as the tools "
                        "baseline[numpy] and baseline[numba]")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="cpu: this bench (the default); cuda: the GPU bench of bench/gpu.py, "
                        "with its own options (python -m bench --device cuda --help)")
    p.add_argument("--_probe-compile", dest="probe_compile", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.repeats is None:
        a.repeats = 3 if a.quick else 15
    if a.min_time is None:
        a.min_time = 0.01 if a.quick else 0.05
    if a.max_tool_seconds is None:
        a.max_tool_seconds = 5.0 if a.quick else 30.0
    a.repeats = max(1, a.repeats)
    return a


def pin(args, argv):
    """One thread per library and a fixed set of cores; re-exec if libraries already loaded."""
    if args.no_pin:
        return None
    env = {v: str(args.threads) for v in THREAD_VARS}
    env["JAX_ENABLE_X64"] = "1"
    env["JAX_PLATFORMS"] = "cpu"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if args.threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            env["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                "intra_op_parallelism_threads=1").strip()
    cpus = None
    if hasattr(os, "sched_setaffinity"):
        have = sorted(os.sched_getaffinity(0))
        if args.cpus:
            cpus = [int(c) for c in args.cpus.split(",")]
        else:
            cpus = have[-args.threads:] if args.threads <= len(have) else have
        os.sched_setaffinity(0, cpus)
    changed = any(os.environ.get(k) != v for k, v in env.items())
    os.environ.update(env)
    if changed and any(m in sys.modules for m in HEAVY) and not os.environ.get("BENCH_REEXEC"):
        os.environ["BENCH_REEXEC"] = "1"
        os.execv(sys.executable, [sys.executable, "-m", "bench", *argv])
    return cpus


# ---------------------------------------------------------------------------
# Machine and versions

def lscpu_model():
    """lscpu's "Model name" (the same as /proc/cpuinfo's where both exist), else
    ``cpu_model()``."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return cpu_model()


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, else platform's guess (None if neither)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def machine_info(cpus, threads):
    model = cpu_model()
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return {"cpu_model": model, "logical_cores": os.cpu_count(), "pinned_cpus": cpus,
            "python_speed_us": python_speed(),
            "threads": threads, "memory": mem, "platform": platform.platform(),
            "loadavg_start": ([round(x, 2) for x in os.getloadavg()]
                              if hasattr(os, "getloadavg") else None)}


def python_speed():
    """µs for ``sum(range(1000))``, best of 7: a yardstick for the interpreter-bound
    numbers (baydin, chain), which scale with it from one machine (or load) to another."""
    import timeit
    return round(min(timeit.repeat("sum(range(1000))", number=2000, repeat=7)) / 2000 * 1e6, 2)


def versions():
    import numpy as np
    v = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        v["numpy_blas"] = f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001  (older numpy)
        pass
    # the kernels OpenBLAS runs (its own detection, or OPENBLAS_CORETYPE from the
    # environment: Haswell's AVX2 kernels on an AVX-512 CPU take ~1.45x as long per
    # matrix product, while XLA and torch choose their own)
    try:
        from threadpoolctl import threadpool_info
        arch = sorted({i.get("architecture") for i in threadpool_info()
                       if i.get("internal_api") == "openblas" and i.get("architecture")})
        if arch:
            forced = os.environ.get("OPENBLAS_CORETYPE")
            v["openblas_kernels"] = "/".join(arch) + (
                f" (OPENBLAS_CORETYPE={forced} in the environment)" if forced else "")
    except Exception:  # noqa: BLE001  (threadpoolctl missing)
        pass
    from importlib import metadata
    for name in ("numba", "torch", "jax", "jaxlib", "autograd", "dualgrad"):
        try:
            v[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            mod = sys.modules.get(name)
            v[name] = getattr(mod, "__version__", None) if mod is not None else None
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                             capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "dualgrad", "kernels"],
                               cwd=ROOT, text=True, capture_output=True, timeout=10).stdout
        v["git"] = sha + ("+uncommitted" if dirty.strip() else "")
    except Exception:  # noqa: BLE001
        v["git"] = None
    return v


# ---------------------------------------------------------------------------
# One tool on one case

def _minflt():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class Runner:
    """A tool's callable on one case, its warm-up, check and samples."""

    def __init__(self, tool):
        self.tool = tool
        self.fn = None
        self.ctx = None          # zero-arg context manager factory around every sample
        self.status = "ok"       # ok | n/a | error
        self.reason = None       # why n/a, or the error
        self.result = None       # the derivative as a tuple of numpy arrays
        self.first_call_s = None
        self.second_call_s = None  # dg.jit builds (passes, kernels) at the second call
        self.warm_s = None
        self.number = 1
        self.repeats = 0
        self.samples = []
        self.minflt = []         # minor page faults per call, one per sample (getrusage)
        self.check = None
        self.f_ref = None        # F's median beside this tool's samples, where not the case's

    def fail(self, where, exc):
        self.status = "error"
        self.reason = f"{where}: {type(exc).__name__}: {exc}".splitlines()[0][:300]
        self.traceback = traceback.format_exc()
        print(f"  !! {self.tool} raised during {where}: {self.reason}", file=sys.stderr)

    def call(self, number=1):
        ctx = self.ctx() if self.ctx else None
        if ctx is not None:
            ctx.__enter__()
        try:
            fn = self.fn
            f0 = _minflt()
            t0 = time.perf_counter()
            for _ in range(number):
                r = fn()
            t1 = time.perf_counter()
            self.last_minflt = (_minflt() - f0) / number
        finally:
            if ctx is not None:
                ctx.__exit__(None, None, None)
        return (t1 - t0) / number, r

    @property
    def median(self):
        return statistics.median(self.samples) if self.samples else None


def load_baseline(path):
    """The ``dualgrad`` package of the checkout at ``path``, imported under the name
    ``dualgrad_baseline`` (its own imports are relative, so it is a separate package)."""
    import importlib.util
    root = Path(path).resolve() / "dualgrad"
    spec = importlib.util.spec_from_file_location(
        "dualgrad_baseline", root / "__init__.py", submodule_search_locations=[str(root)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["dualgrad_baseline"] = mod
    spec.loader.exec_module(mod)
    return mod, sys.modules.get("dualgrad_baseline.backend")


def _dg_runners(case, runners, tools, names, dg, dg_error, backend):
    """Runners for dualgrad's tools ``names`` (``dualgrad[...]`` or ``baseline[...]``)."""
    for tool in names:
        if tool not in tools:
            continue
        r = runners[tool] = Runner(tool)
        name = tool[tool.index("[") + 1:-1]
        if dg is None:
            r.status, r.reason = "error", f"import dualgrad failed: {dg_error}"
            continue
        if backend is None:
            if name == "numba":
                r.status, r.reason = "n/a", "dualgrad.backend missing"
                continue
        else:
            try:
                with backend.use_backend(name):
                    pass
            except Exception as e:  # noqa: BLE001  (numba not importable)
                r.status, r.reason = "n/a", f"backend {name}: {e}"
                continue
            r.ctx = (lambda n=name: backend.use_backend(n))
        try:
            r.fn = case.dualgrad(dg)
        except Exception as e:  # noqa: BLE001
            r.fail("setup", e)


def build_runners(case, tools, dg, dg_error, backend, peers, quick, base=None):
    runners = {"F": Runner("F")}
    runners["F"].fn = case.forward
    _dg_runners(case, runners, tools, DG_TOOLS, dg, dg_error, backend)
    if base is not None:
        _dg_runners(case, runners, tools, BASE_TOOLS, base[0], None, base[1])
    if "dualgrad.jit" in tools:
        from .workloads import jit_shim
        r = runners["dualgrad.jit"] = Runner("dualgrad.jit")
        if dg is None:
            r.status, r.reason = "error", f"import dualgrad failed: {dg_error}"
        elif not hasattr(dg, "jit"):
            r.status, r.reason = "n/a", "this dualgrad has no dg.jit"
        else:
            try:
                r.fn = case.dualgrad(jit_shim(dg))
            except Exception as e:  # noqa: BLE001
                r.fail("setup", e)
    for tool in PEER_TOOLS:
        if tool not in tools or tool in BASE_TOOLS:
            continue
        r = runners[tool] = Runner(tool)
        factory = peers.get(tool, case.name) if peers.available(tool) else None
        if not peers.available(tool):
            r.status, r.reason = "n/a", "not installed"
        elif factory is None:
            r.status, r.reason = "n/a", "no such transform in this tool"
        elif quick and tool == "jax.jit" and case.name == "chain":
            r.status, r.reason = "n/a", "skipped by --quick (compile takes ~15 s)"
        elif tool == "jax.jit" and case.name == "rk4":
            # measured: XLA compiles the grad of the unrolled 100-step loop for > 4 minutes
            # here (2.3 GB); a JAX user would write lax.fori_loop, a different program
            r.status, r.reason = "n/a", "XLA compile of the unrolled loop takes minutes"
        else:
            try:
                r.fn = factory(case.data)
            except Exception as e:  # noqa: BLE001
                r.fail("setup", e)
    return runners


def warm_up(runners, to_numpy):
    for r in runners.values():
        if r.status != "ok":
            continue
        try:
            r.first_call_s, res = r.call()
            r.warm_s, res = r.call()  # dg.jit compiles at its first replay: calibrate on
            r.second_call_s = r.warm_s
            r.warm_s = min(r.warm_s, r.call()[0])  # the steady call (the third)
            r.result = res if r.tool == "F" else to_numpy(res)
        except Exception as e:  # noqa: BLE001
            r.fail("warm-up", e)


def check(case, runners, rtol):
    """Every tool's derivative against dualgrad's (numpy backend, else the first that ran)."""
    import numpy as np
    order = [t for t in DG_TOOLS + JIT_TOOLS + PEER_TOOLS
             if t in runners and runners[t].status == "ok"]
    if not order:
        return None
    ref_tool = order[0]
    ref = runners[ref_tool].result
    bad = []
    for t in order:
        r = runners[t]
        if t == ref_tool:
            r.check = {"ok": True, "reference": True}
            continue
        res = r.result
        if len(res) != len(ref) or any(np.shape(a) != np.shape(b) for a, b in zip(res, ref)):
            r.check = {"ok": False, "why": f"shapes {[np.shape(a) for a in res]} vs "
                                          f"{ref_tool} {[np.shape(b) for b in ref]}"}
        else:
            max_abs = max_rel = 0.0
            ok = True
            for a, b in zip(res, ref):
                scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
                err = np.abs(a - b)
                max_abs = max(max_abs, float(np.max(err)) if err.size else 0.0)
                rel = err / np.maximum(np.abs(b), 1e-300)
                max_rel = max(max_rel, float(np.max(np.where(np.abs(b) > 1e-12 * scale, rel, 0)))
                              if err.size else 0.0)
                ok &= bool(np.allclose(a, b, rtol=rtol, atol=rtol * 1e-3 * scale))
                ok &= bool(np.all(np.isfinite(a)) == np.all(np.isfinite(b)))
            r.check = {"ok": ok, "max_abs_err": max_abs, "max_rel_err": max_rel}
            if not ok:
                r.check["why"] = f"max abs err {max_abs:.3g}, max rel err {max_rel:.3g}"
        if not r.check["ok"]:
            bad.append(t)
            bar = "!" * 78
            print(f"\n{bar}\n!! DERIVATIVE MISMATCH on {case.name}: {t} disagrees with "
                  f"{ref_tool}: {r.check['why']}\n{bar}\n", file=sys.stderr)
    return {"reference": ref_tool, "mismatches": bad}


def run_phase(case, runners, args, to_numpy):
    """Warm up and sample ``runners`` (F among them) round-robin; print their medians."""
    warm_up(runners, to_numpy)
    sample(runners, args)
    fm = runners["F"].median
    for t, r in runners.items():
        v, unit = value(case, r, fm)
        shown = f"{v:.3g} {unit}" if v is not None else (r.reason or r.status)
        if t == "dualgrad.jit" and r.second_call_s is not None:  # record + build
            shown += f"  (compile latency {fmt_time(r.first_call_s + r.second_call_s)})"
        print(f"  {t:16s} {fmt_time(r.median):>10s}  {shown}", flush=True)


def sample(runners, args):
    live = [r for r in runners.values() if r.status == "ok"]
    for r in live:
        r.number = max(1, int(args.min_time / max(r.warm_s, 1e-9)) + 1) \
            if r.warm_s < args.min_time else 1
        per_sample = max(r.warm_s * r.number, 1e-9)
        r.repeats = max(min(args.repeats, int(args.max_tool_seconds / per_sample)),
                        min(3, args.repeats))
    for k in range(max((r.repeats for r in live), default=0)):
        order = live[k % len(live):] + live[:k % len(live)] if live else []
        for r in order:
            if r.status != "ok" or len(r.samples) >= r.repeats:
                continue
            try:
                t, _ = r.call(r.number)
                r.samples.append(t)
                r.minflt.append(r.last_minflt)
            except Exception as e:  # noqa: BLE001
                r.fail("timing", e)


# ---------------------------------------------------------------------------
# Values as reported

def value(case, r, f_med):
    """(number, unit) as the table shows it: µs/call, µs/op, or × F (the F timed beside r)."""
    if r.status != "ok" or r.median is None:
        return None, None
    f_med = r.f_ref or f_med
    if case.unit == "us_per_call":
        return r.median * 1e6, "µs"
    if case.unit == "us_per_op":
        return r.median * 1e6 / case.ops, "µs/op"
    return (r.median / f_med if f_med else None), "×F"


def target_met(case, r, f_med):
    if case.target is None or r.status != "ok" or r.median is None:
        return None
    kind, lim = case.target
    f_med = r.f_ref or f_med
    v = {"ratio": r.median / f_med if f_med else None, "us": r.median * 1e6,
         "us_per_op": r.median * 1e6 / case.ops, "ms": r.median * 1e3}[kind]
    return None if v is None else bool(v <= lim)


def ratio(a, b, f_med):
    """a's time ÷ b's, each against the F timed beside it where they were timed apart."""
    if not a.median or not b.median:
        return None
    fa, fb = a.f_ref or f_med, b.f_ref or f_med
    return a.median / b.median * (fb / fa if fa and fb else 1.0)


def fmt_time(s):
    if s is None:
        return DASH
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def fmt_target(case):
    if case.target is None:
        return ""
    kind, lim = case.target
    return {"ratio": f"≤ {lim:g}×F", "us": f"≤ {lim:g} µs", "us_per_op": f"≤ {lim:g} µs/op",
            "ms": f"≤ {lim:g} ms"}[kind]


# ---------------------------------------------------------------------------
# Start-up costs, in fresh interpreters

def _child_env(extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


def import_times(n=7):
    snippets = {
        "numpy": "import numpy",
        "dualgrad": "import dualgrad",
        "dualgrad + numba backend": "import dualgrad; from dualgrad import backend; "
                                    "backend.set_backend('numba')",
    }
    out = {}
    for label, stmt in snippets.items():
        code = (f"import time; t = time.perf_counter(); {stmt}; "
                f"print(time.perf_counter() - t)")
        ts = []
        for _ in range(n):
            p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_child_env(),
                               capture_output=True, text=True, timeout=300)
            if p.returncode != 0:
                out[label] = {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
                break
            ts.append(float(p.stdout.strip().splitlines()[-1]))
        else:
            out[label] = {"median_s": statistics.median(ts), "min_s": min(ts), "runs": n}
    return out


def probe_compile(names):
    """(In a child) first and steady call of dualgrad[numba] per case: prints JSON."""
    from . import workloads  # numpy first: its import is not dualgrad's
    t0 = time.perf_counter()
    import dualgrad as dg
    from dualgrad import backend
    t1 = time.perf_counter()
    backend.set_backend("numba")
    res = {"_import dualgrad": {"first_s": t1 - t0},
           "_set_backend('numba')": {"first_s": time.perf_counter() - t1}}
    for case in workloads.build(names.split(",")):
        try:
            fn = case.dualgrad(dg)
            t0 = time.perf_counter()
            fn()
            first = time.perf_counter() - t0
            steady = []
            for _ in range(3):
                t0 = time.perf_counter()
                fn()
                steady.append(time.perf_counter() - t0)
            res[case.name] = {"first_s": first, "steady_s": statistics.median(steady)}
        except Exception as e:  # noqa: BLE001
            res[case.name] = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:200]}
    print(json.dumps(res))


def compile_latency(names):
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-numba-cache-") as cache:
        for label in ("cold cache", "warm cache"):
            p = subprocess.run([sys.executable, "-m", "bench", "--no-pin", "--_probe-compile",
                                ",".join(names)], cwd=ROOT, capture_output=True, text=True,
                               env=_child_env({"NUMBA_CACHE_DIR": cache}), timeout=1200)
            if p.returncode != 0:
                out[label] = {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
                continue
            out[label] = json.loads(p.stdout.strip().splitlines()[-1])
            out[label + " files"] = sum(len(f) for _, _, f in os.walk(cache))
    return out


# ---------------------------------------------------------------------------
# Report

def cell(case, r, f_med):
    if r is None:
        return DASH
    if r.status == "n/a":
        return DASH
    if r.status == "error":
        return "error†"
    v, unit = value(case, r, f_med)
    if v is None:
        return DASH
    s = f"{v:.3g} µs" if unit == "µs" else f"{v:.3g} µs/op" if unit == "µs/op" else f"{v:.3g}×"
    if case.target is not None and case.target[0] == "ms":  # an absolute target: show the time
        s += f" ({fmt_time(r.median)})"
    if r.check is not None and not r.check.get("ok", True):
        s += " ✗MISMATCH"
    return s


def markdown(meta, cases, rows, startup):
    tools = [t for t in TOOLS[1:] if any(t in rr for rr in rows)]
    m, v = meta["machine"], meta["versions"]
    L = [f"# dualgrad benchmarks, {m['threads']} thread(s) per library — {meta['date']}", ""]
    L += [f"- Machine: {m['cpu_model']}, {m['logical_cores']} logical cores, "
          f"{m['memory']}; pinned to CPU {m['pinned_cpus']}, {m['threads']} thread(s) per "
          f"library; load average at start {m['loadavg_start']}, end {m.get('loadavg_end')}",
          f"- Threads: {m['threads']} per library (BLAS, torch, numba, XLA: {threads_how(m)})"
          + (f"; dualgrad's parallel kernels, run where measured faster than serial: "
             f"{fmt_parallel(meta.get('parallel_kernels'))}" if m["threads"] > 1 else ""),
          f"- Interpreter yardstick: `sum(range(1000))` takes {m['python_speed_us']} µs at start, "
          f"{m.get('python_speed_us_end')} µs at end (best of 7; ~10 µs on a current desktop "
          "core) — baydin and chain scale with it",
          "- Versions: " + ", ".join(f"{k} {v[k]}" for k in v if v[k] is not None),
          f"- Command: `{meta['command']}` — {meta['repeats']} samples per tool (round-robin, "
          f"≥ {meta['min_time']} s each, fewer for slow tools: see JSON), medians; float64 "
          f"everywhere; dualgrad.jit and jax.jit are timed after every case's other tools, "
          f"beside F timed again, and their ×F is against that F", ""]
    L += ["## Results", "",
          "baydin: µs per grad call; chain: µs per recorded op; all others: time ÷ F, the "
          "plain-numpy forward pass (absolute F in the F column). ✗MISMATCH: the derivative "
          "disagrees with dualgrad's; error†: the tool raised (see Errors); —: not installed "
          "or no such transform.", ""]
    head = ["case", "derivative", "F"] + tools + ["target", "met (numpy / numba)"]
    L += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case, rr in zip(cases, rows):
        f = rr["F"]
        fm = f.median
        fcell = fmt_time(fm) if case.unit != "us_per_op" else \
            (f"{fm * 1e6 / case.ops:.3g} µs/op" if fm else DASH)
        if f.status == "error":
            fcell = "error†"
        mets = []
        for t in DG_TOOLS:
            ok = target_met(case, rr[t], fm) if t in rr else None
            mets.append(DASH if ok is None else "✓" if ok else "✗")
        L.append("| " + " | ".join([case.name, case.derivative, fcell]
                                   + [cell(case, rr.get(t), fm) for t in tools]
                                   + [fmt_target(case), " / ".join(mets)]) + " |")
    peers_here = [t for t in PEER_TOOLS if t in tools]
    if peers_here:
        L += ["", "## dualgrad ÷ peer", "",
              "Median time of dualgrad divided by the peer's: below 1 dualgrad is faster (a "
              "compiled tool against an eager one: the ratio of their ×F).", ""]
        head = ["case", "dualgrad backend"] + [f"÷ {t}" for t in peers_here]
        L += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for case, rr in zip(cases, rows):
            for t in DG_TOOLS + JIT_TOOLS:
                d = rr.get(t)
                if d is None or d.median is None:
                    continue
                cs = []
                for p in peers_here:
                    pr = rr.get(p)
                    q = ratio(d, pr, rr["F"].median) if pr is not None else None
                    cs.append(DASH if q is None else f"{q:.3g}")
                L.append("| " + " | ".join([case.name, t[9:-1] if "[" in t else t] + cs)
                         + " |")
    L += ["", "## Absolute times", "",
          "Median seconds per call [min – max of the samples], samples × calls per sample, "
          "and minor page faults per call (median over samples of "
          "`getrusage().ru_minflt`; `python -m bench.pagefaults` compares both "
          "`NUMPY_MADVISE_HUGEPAGE` settings).", ""]
    head = ["case", "F"] + tools
    L += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case, rr in zip(cases, rows):
        cs = []
        for t in ["F"] + tools:
            r = rr.get(t)
            if r is None or r.median is None:
                cs.append("error†" if r is not None and r.status == "error" else DASH)
            else:
                flt = f", {statistics.median(r.minflt):.0f} flt" if r.minflt else ""
                cs.append(f"{fmt_time(r.median)} [{fmt_time(min(r.samples))} – "
                          f"{fmt_time(max(r.samples))}] {len(r.samples)}×{r.number}{flt}")
        L.append("| " + " | ".join([case.name] + cs) + " |")
    L += ["", "## Derivative checks", ""]
    for case, rr in zip(cases, rows):
        c = rr.get("_check")
        if c is None:
            L.append(f"- {case.name}: nothing to check (no tool ran)")
            continue
        others = [t for t in tools if t in rr and rr[t].check is not None and t != c["reference"]]
        if c["mismatches"]:
            L.append(f"- **{case.name}: MISMATCH** — " + "; ".join(
                f"{t}: {rr[t].check['why']}" for t in c["mismatches"]))
        else:
            worst = max((rr[t].check.get("max_rel_err", 0) for t in others), default=0)
            L.append(f"- {case.name}: {len(others)} tool(s) agree with {c['reference']} "
                     f"(np.allclose, rtol {meta['rtol']:g}; worst relative difference "
                     f"{worst:.2g})" if others else
                     f"- {case.name}: only {c['reference']} ran — nothing to compare")
    errs = [(case.name, t, rr[t].reason) for case, rr in zip(cases, rows) for t in rr
            if not t.startswith("_") and rr[t].status == "error"]
    if errs:
        L += ["", "## Errors", ""] + [f"- † {c} / {t}: `{why}`" for c, t, why in errs]
    dj = [(case, rr) for case, rr in zip(cases, rows)
          if rr.get("dualgrad.jit") is not None and rr["dualgrad.jit"].first_call_s is not None]
    if dj:
        L += ["", "## dg.jit: first call, compile latency and replay", "",
              "First call of `dualgrad.jit` (records the function and returns its result; "
              "the passes and the code generation run at the second call) against the "
              "first eager call of dualgrad[numpy] "
              "(target: ≤ 2× eager + 50 ms); compile latency = first + second call (record, "
              "passes, region fusion, code generation, numba compile or its disk cache: "
              "what a user waits before the replays), beside jax.jit's first call (trace + "
              "XLA compile) where it ran; and the steady replay.", "",
              "| case | eager first call | jit first call | 2× eager + 50 ms | met | "
              "jit compile latency | jax.jit first call | jit steady | "
              "eager steady ÷ jit steady |", "|---|---|---|---|---|---|---|---|---|"]
        for case, rr in dj:
            j, e = rr["dualgrad.jit"], rr.get("dualgrad[numpy]")
            ef = e.first_call_s if e is not None else None
            lim = 2 * ef + 0.05 if ef is not None else None
            met = DASH if lim is None else ("✓" if j.first_call_s <= lim else "✗")
            q = ratio(e, j, rr["F"].median) if e is not None else None
            sp = DASH if q is None else f"{q:.3g}"
            lat = fmt_time(j.first_call_s + j.second_call_s) if j.second_call_s is not None \
                else DASH
            jx = rr.get("jax.jit")
            jxf = fmt_time(jx.first_call_s) if jx is not None and jx.first_call_s else DASH
            L.append(f"| {case.name} | {fmt_time(ef) if ef else DASH} | "
                     f"{fmt_time(j.first_call_s)} | {fmt_time(lim) if lim else DASH} | {met} | "
                     f"{lat} | {jxf} | "
                     f"{fmt_time(j.median) if j.median else DASH} | {sp} |")
    jits = [(case.name, rr["jax.jit"].first_call_s) for case, rr in zip(cases, rows)
            if "jax.jit" in rr and rr["jax.jit"].first_call_s is not None]
    if startup:
        L += ["", "## Start-up", ""]
        for label, d in startup.get("import", {}).items():
            L.append(f"- `{label}` in a fresh interpreter: " + (
                f"{d['median_s'] * 1e3:.0f} ms (median of {d['runs']}, min "
                f"{d['min_s'] * 1e3:.0f} ms)" if "median_s" in d else f"error: {d['error']}"))
        comp = startup.get("compile")
        if comp:
            L += ["", "First call of dualgrad[numba] per case, in a fresh interpreter with an "
                  "empty NUMBA_CACHE_DIR (cold) and again with the cache it left (warm); "
                  "steady = median of the next 3 calls:", "",
                  "| case | cold first call | warm-cache first call | steady |",
                  "|---|---|---|---|"]
            cold, warm = comp.get("cold cache", {}), comp.get("warm cache", {})
            tot = [0.0, 0.0, 0.0]
            for name in cold if isinstance(cold, dict) else []:
                c, w = cold.get(name, {}), warm.get(name, {}) if isinstance(warm, dict) else {}
                if name.startswith("_"):  # the imports before the first call
                    L.append(f"| ({name[1:]}) | {fmt_time(c.get('first_s'))} | "
                             f"{fmt_time(w.get('first_s'))} | |")
                    continue
                if "error" in c or "first_s" not in c:
                    L.append(f"| {name} | error: {c.get('error', cold.get('error'))} | | |")
                    continue
                tot[0] += c["first_s"]
                tot[1] += w.get("first_s", 0)
                tot[2] += c["steady_s"]
                L.append(f"| {name} | {fmt_time(c['first_s'])} | {fmt_time(w.get('first_s'))} "
                         f"| {fmt_time(c['steady_s'])} |")
            L.append(f"| all | {fmt_time(tot[0])} | {fmt_time(tot[1])} | {fmt_time(tot[2])} |")
            L.append(f"\nFiles in NUMBA_CACHE_DIR after the cold run: "
                     f"{comp.get('cold cache files', '?')}.")
            if "error" in cold:
                L.append(f"\nCompile probe failed: {cold['error']}")
    if jits or any(c.name == "chain" for c in cases):
        L += ["", "## Notes", ""]
    for case in cases:
        if case.name == "chain":
            L.append(f"- chain: µs/op = time per call ÷ {case.ops} ops "
                     f"({case.notes[0] if case.notes else '5 per iteration'}); per iteration "
                     f"multiply by {case.ops // 1000}.")
    if jits:
        L.append("- jax.jit first call (trace + compile), excluded from the timings: " +
                 ", ".join(f"{n} {fmt_time(s)}" for n, s in jits))
    return "\n".join(L) + "\n"


def parallel_kernels():
    """dualgrad's measured serial-vs-parallel rules of this run ({name: [lo, hi] or None}),
    or None where the numba backend was not loaded."""
    ops = sys.modules.get("dualgrad.backend.numba_ops")
    table = getattr(ops, "PARALLEL", None)
    if table is None:
        return None
    return {k: (None if r is None else list(r)) for k, r in sorted(table.rules.items())}


def fmt_parallel(rules):
    if not rules:
        return "none measured"
    won = [f"{k.split('@')[0]} from {r[0]} elements" for k, r in rules.items() if r]
    return (", ".join(won) if won else "none") + f" (of {len(rules)} measured)"


def threads_how(m):
    busy = m.get("busy_threads") or {}
    return "busy threads during one large call: " + (
        ", ".join(f"{k} {DASH if v is None else v}" for k, v in busy.items()) or "not measured")


def to_json(meta, cases, rows, startup):
    out = {"meta": meta, "startup": startup, "cases": []}
    for case, rr in zip(cases, rows):
        fm = rr["F"].median
        tools = {}
        for t, r in rr.items():
            if t.startswith("_"):
                continue
            v, unit = value(case, r, fm)
            tools[t] = {"status": r.status, "reason": r.reason, "median_s": r.median,
                        "samples_s": r.samples, "calls_per_sample": r.number,
                        "minflt_per_call": (statistics.median(r.minflt) if r.minflt
                                            else None),
                        "first_call_s": r.first_call_s, "second_call_s": r.second_call_s,
                        "f_ref_s": r.f_ref,
                        "value": v, "unit": unit,
                        "target_met": target_met(case, r, fm) if t in DG_TOOLS else None,
                        "check": r.check}
        out["cases"].append({"name": case.name, "workload": case.workload, "what": case.what,
                             "derivative": case.derivative, "unit": case.unit,
                             "target": case.target, "ops": case.ops, "notes": case.notes,
                             "check": rr.get("_check"), "tools": tools})
    return out


# ---------------------------------------------------------------------------

def gpu_argv(argv):
    """The arguments after ``--device cuda`` is taken out, or None for the CPU bench."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--device", default="cpu")
    known, rest = p.parse_known_args(argv)
    return rest if known.device == "cuda" else None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    rest = gpu_argv(argv)
    if rest is not None:  # the GPU bench: no pinning, its own options (bench/gpu.py)
        from . import gpu
        return gpu.main(rest, prog="python -m bench --device cuda")
    args = parse_args(argv)
    if args.probe_compile:
        return probe_compile(args.probe_compile)
    cpus = pin(args, argv)

    import numpy as np  # noqa: F401  (after pinning)

    from . import peers, workloads

    names = list(workloads.WORKLOADS) if args.workloads == "all" else \
        [w.strip() for w in args.workloads.split(",") if w.strip()]
    cases = workloads.build(names)
    if args.tools == "all":
        tools = set(TOOLS)
    else:
        tools = {"F"}
        for t in args.tools.split(","):
            t = t.strip()
            if t == "dualgrad":
                tools |= set(DG_TOOLS)
            elif t == "baseline":
                tools |= set(BASE_TOOLS)
            elif t in TOOLS:
                tools.add(t)
            else:
                raise SystemExit(f"unknown tool {t!r}; known: dualgrad, {', '.join(TOOLS[1:])}")

    dg = backend = dg_error = None
    try:
        import dualgrad as dg
        try:
            from dualgrad import backend
        except ImportError:
            backend = None
    except Exception as e:  # noqa: BLE001
        dg_error = f"{type(e).__name__}: {e}"
        print(f"!! import dualgrad failed: {dg_error}", file=sys.stderr)
    base = None
    if args.baseline:
        base = load_baseline(args.baseline)
        tools |= set(BASE_TOOLS) if args.tools == "all" or "baseline" in args.tools else set()
    else:
        tools -= set(BASE_TOOLS)
    peers.setup(args.threads)
    print(f"== threads: {args.threads} per library; busy threads during one large call:",
          flush=True)
    busy = peers.thread_check(backend)
    print("  " + ", ".join(f"{k} {v}" for k, v in busy.items()), flush=True)

    meta = {"date": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
            "command": "python -m bench " + " ".join(shlex.quote(a) for a in argv),
            "machine": dict(machine_info(cpus, args.threads), busy_threads=busy),
            "versions": versions(),
            "repeats": args.repeats, "min_time": args.min_time,
            "max_tool_seconds": args.max_tool_seconds, "rtol": args.rtol,
            "tools": [t for t in TOOLS if t in tools]}

    rows = []
    t_all = time.perf_counter()
    for case in cases:  # every tool but the compiling ones, case by case
        if case.name == "chain" and dg is not None:
            try:  # the op count behind µs/op: entries dualgrad actually records
                with dg.Tape() as tape:
                    workloads.chain_f(tape.watch(0.5))
                n = sum(1 for e in tape.entries if e.prim is not None)
                case.notes.append(f"{n} ops recorded by dualgrad's tape; "
                                  f"{case.ops} nominal = 5 per iteration × 1000")
            except Exception as e:  # noqa: BLE001
                case.notes.append(f"could not count dualgrad's ops: {e}")
        print(f"== {case.name}: {case.derivative}", flush=True)
        runners = build_runners(case, tools, dg, dg_error, backend, peers, args.quick, base)
        run_phase(case, {k: v for k, v in runners.items() if k not in COMPILING}, args,
                  peers.to_numpy)
        rows.append(runners)
    for case, runners in zip(cases, rows):  # then dg.jit and jax.jit, beside F again
        later = {k: v for k, v in runners.items() if k in COMPILING}
        if not later:
            continue
        print(f"== {case.name} (compiled): {case.derivative}", flush=True)
        f = Runner("F")
        f.fn = case.forward
        run_phase(case, {"F": f, **later}, args, peers.to_numpy)
        for r in later.values():
            r.f_ref = f.median
    for case, runners in zip(cases, rows):
        runners["_check"] = check(case, {k: v for k, v in runners.items() if k != "F"},
                                  args.rtol)
    meta["bench_seconds"] = round(time.perf_counter() - t_all, 1)
    meta["parallel_kernels"] = parallel_kernels()

    startup = {}
    if not args.no_startup:
        print("== start-up: import time", flush=True)
        startup["import"] = import_times(3 if args.quick else 7)
        if not args.quick and dg is not None and backend is not None:
            print("== start-up: numba first-call latency (cold / warm cache)", flush=True)
            startup["compile"] = compile_latency([c.name for c in cases])
    if hasattr(os, "getloadavg"):
        meta["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["machine"]["python_speed_us_end"] = python_speed()

    md = markdown(meta, cases, rows, startup)
    print()
    print(md)
    if not args.no_write:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        (out / f"bench-{stamp}.json").write_text(
            json.dumps(to_json(meta, cases, rows, startup), indent=1, default=str) + "\n")
        (out / f"bench-{stamp}.md").write_text(md)
        (out / "latest.md").write_text(md)
        print(f"wrote {out / f'bench-{stamp}.json'}, {out / f'bench-{stamp}.md'}, "
              f"{out / 'latest.md'}")
    mism = [c.name for c, rr in zip(cases, rows) if rr.get("_check") and rr["_check"]["mismatches"]]
    if mism:
        print(f"!! derivative mismatches in: {', '.join(mism)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
