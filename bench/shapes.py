"""One jitted gradient called with many shapes of one rank under ``codegen="auto"``.

    python -m bench.shapes                     # 200 shapes, float64: bench/results/shapes.md
    python -m bench.shapes --shapes 20 --no-write

Issue 21 measured 213 s, 1.04 GB of RSS growth, 200 kernel sources and 200 ``sys.modules``
entries for 200 shapes of one function: every shape compiled its own kernels, because the
generated source spelled out the shape.  Kernels are now generic over shape (the
compiler's loop builder: same structure, dtype and rank give one source), so the shapes share a
few compiled kernels and each new shape pays for recording, optimising, checking and a
short timing only.

The function is a row-wise log-sum-exp of a broadcast affine map and its gradient, in both
arguments: elementwise work, a broadcast bias, an axis reduction and a full reduction, so
the forward and backward sweeps are several fusion regions.  Shapes ``(n, m)`` are drawn
without repeats from 2..96 × 3..300 (sizes from tens to ~30,000 elements).  Each shape is
called three times (record; the first replay builds the kernels; a replay), so every one
compiles, checks, times and uses its kernels.  It runs in a fresh interpreter with an empty
kernel cache (``XDG_CACHE_HOME`` in a temporary folder): the first shape pays numba's
compile, as the issue's run did.  It reports wall time; RSS (``VmRSS`` from
``/proc/self/status``): numba's own first compile (a one-line ``@njit``: LLVM's start-up,
paid by any numba user, counted apart), then the growth from there to the end, the first
shape's share of it (compiling dualgrad's kernels) and the second half's (what each new
shape keeps, once the kernels are compiled); the distinct kernel sources in
use, the kernels loaded, ``dualgrad_kernel_*`` modules and files in the kernel cache, the
worst relative error against eager, and the CPU (``lscpu``'s model name).  Not a test:
nothing is asserted.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from .__main__ import lscpu_model

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

_CHILD = r'''
import json, os, sys, time
sys.path.insert(0, {root!r})

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

import numpy as np
import dualgrad as dg
from dualgrad.compiler import kernel as jit_kernel
import numba

r_imports = rss()  # numba's own first compile (LLVM's start-up), apart from dualgrad's


@numba.njit
def _warm(a):
    return a[0] + 1.0


_warm(np.ones(1))

def loss(x, b):
    z = np.tanh(x * 1.5 + b)
    m = np.max(z, axis=1, keepdims=True)
    return np.sum(np.log(np.sum(np.exp(z - m), axis=1)) + m[:, 0]) / x.shape[0]

rng = np.random.default_rng(0)
pairs = set()
while len(pairs) < {n!r}:
    pairs.add((int(rng.integers(2, 97)), int(rng.integers(3, 301))))
shapes = sorted(pairs, key=lambda s: rng.random())
dtype = np.dtype({dtype!r})
g = dg.grad(loss, argnums=(0, 1))
jg = dg.jit(g, codegen="auto")
r0, t0 = rss(), time.perf_counter()
worst, r_first, r_half = 0.0, None, None
for k, (n, m) in enumerate(shapes):
    if k == len(shapes) // 2:
        r_half = rss()
    x = rng.standard_normal((n, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    for _ in range(3):
        got = jg(x, b)
    want = g(x, b)
    for o, w in zip(got, want):
        err = float(np.max(np.abs(o - w)) / max(np.max(np.abs(w)), 1e-300))
        worst = max(worst, err)
    if r_first is None:  # numba and LLVM's one-time cost: the first kernels compiled
        r_first = rss()
wall = time.perf_counter() - t0
r1 = rss()
kernels = set(k.source for es in jg._cache.values() for c in es for k in c.kernels
              if k.fn is not None)
folder = jit_kernel._kernel_dir()
files = sum(len(fs) for _, _, fs in os.walk(folder)) if os.path.isdir(folder) else 0
print(json.dumps({{"shapes": len(shapes), "wall_s": wall, "rss_growth_mb": (r1 - r0) / 2**20,
                  "rss_start_mb": r0 / 2**20, "numba_first_compile_mb": (r0 - r_imports) / 2**20,
                  "rss_after_first_mb": (r_first - r0) / 2**20,
                  "rss_second_half_mb": (r1 - r_half) / 2**20, "signatures": jg.cache_size
                  if hasattr(jg, "cache_size") else None,
                  "kernel_sources_in_use": len(kernels), "loaded": len(jit_kernel._LOADED),
                  "modules": sum(1 for k in sys.modules if k.startswith("dualgrad_kernel_")),
                  "cache_files": files, "timed": len(jit_kernel._TIMED),
                  "worst_rel_err": worst}}))
'''


def run(n, dtype, buffers):
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, XDG_CACHE_HOME=tmp, DUALGRAD_BUFFERS="1" if buffers else "0")
        code = _CHILD.format(root=str(ROOT), n=n, dtype=dtype)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=3600)
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def markdown(meta, res):
    lines = [f"# dg.jit over many shapes — {meta['when']}", "",
             f"- CPU: {meta['cpu']}, {meta['cores']} logical cores, load average at start "
             f"{meta['load']}", f"- Command: `{meta['command']}`; git {meta['git']}", "",
             "| dtype | buffers | shapes | wall | numba's first compile | RSS growth after it "
             "| of it, the first shape | of it, the second half "
             "| kernel sources in use | loaded kernels | dualgrad_kernel_* modules | cache files "
             "| timings kept | worst rel. error |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (dt, buf), r in res.items():
        lines.append(f"| {dt} | {buf} | {r['shapes']} | {r['wall_s']:.1f} s | "
                     f"{r['numba_first_compile_mb']:.0f} MB | "
                     f"{r['rss_growth_mb']:.0f} MB | {r['rss_after_first_mb']:.0f} MB | "
                     f"{r['rss_second_half_mb']:.0f} MB | "
                     f"{r['kernel_sources_in_use']} | "
                     f"{r['loaded']} | {r['modules']} | {r['cache_files']} | {r['timed']} | "
                     f"{r['worst_rel_err']:.1e} |")
    lines += ["", "Issue 21's targets: ≤ 20 s and ≤ 100 MB of RSS growth for 200 shapes "
              "(before: 213 s, 1.04 GB, 200 kernel sources, 200 modules, 1,200 files).", ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.shapes", description=__doc__)
    p.add_argument("--shapes", type=int, default=200)
    p.add_argument("--dtypes", default="float64", help="comma list (float64,float32)")
    p.add_argument("--buffers", default="on", help="comma list (on,off): dualgrad's buffer "
                   "cache on, or off (DUALGRAD_BUFFERS=0: its free buffers are not counted)")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "dualgrad"],
                           capture_output=True, text=True).stdout.strip()
    meta = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cpu": lscpu_model(), "cores": os.cpu_count(),
            "load": [round(x, 2) for x in os.getloadavg()],
            "command": "python -m bench.shapes " + " ".join(argv or sys.argv[1:]),
            "git": git + ("+uncommitted" if dirty else "")}
    res = {(dt, buf): run(a.shapes, dt, buf == "on") for dt in a.dtypes.split(",")
           for buf in a.buffers.split(",")}
    text = markdown(meta, res)
    print(text)
    if not a.no_write:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "shapes.md").write_text(text)
        rows = [dict(r, dtype=dt, buffers=buf) for (dt, buf), r in res.items()]
        (out / "shapes.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
