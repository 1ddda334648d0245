"""Page faults and kernel time per gradient, under both huge-page settings.

    python -m bench.pagefaults                      # lse, kmeans, gather; dualgrad and torch
    python -m bench.pagefaults --cases lse --samples 31

Every (case, tool, setting) runs in a fresh interpreter pinned to one core and one
thread, because page faults depend on the state of the process's heap: in one process
the tools would disturb each other.  The settings are numpy's default
(``NUMPY_MADVISE_HUGEPAGE`` unset: huge-page advice on large arrays) and
``NUMPY_MADVISE_HUGEPAGE=0``; for dualgrad also with its buffers off
(``DUALGRAD_BUFFERS=0``: every temporary fresh from numpy, as before core/buffers.py).
Per call it reports the median and mean wall time, the median of
``resource.getrusage(RUSAGE_SELF).ru_minflt`` (minor page faults) and of the kernel
(system) time, and the spread of the samples (max / median).  Samples are single calls
after two warm-up calls.  Report the CPU and
``/sys/kernel/mm/transparent_hugepage/defrag`` with the numbers (printed at the top).
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from .__main__ import cpu_model

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "lse": [("lse", n) for n in (10_000, 160_000, 640_000, 1_280_000)],
    "kmeans": [("kmeans", (1000, 10_000, 8))],
    "gather": [("gather", None)],
}

_CHILD = r'''
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
import numpy as np
case, arg, tool, samples = {case!r}, {arg!r}, {tool!r}, {samples!r}
rng = np.random.default_rng(0)
if tool == "torch":
    import torch
    torch.set_num_threads(1)
    from torch.autograd.functional import vjp, vhp
    from functools import partial
if case == "lse":
    x = rng.random(arg)
    if tool == "torch":
        xt = torch.tensor(x)
        def lse(x):
            m = torch.max(x)
            return m + torch.log(torch.sum(torch.exp(x - m)))
        F = lambda: lse(xt)
        J = lambda: vjp(lse, xt, v=torch.tensor(1.0))[1]
    else:
        from bench.gradbench.evals import lse as L
        F = lambda: L.lse(x)
        J = lambda: L.gradient(x)
elif case == "kmeans":
    k, n, d = arg
    P = rng.random((n, d)); C = P[-k:].copy()
    if tool == "torch":
        Pt, Ct = torch.tensor(P), torch.tensor(C)
        def cost(points, centers):
            a = (points ** 2).sum(1)[None, :]; b = (centers ** 2).sum(1)[:, None]
            return torch.min(a + b - 2 * torch.matmul(centers, points.T), dim=0)[0].sum()
        F = lambda: cost(Pt, Ct)
        def J():
            _, jac = vjp(partial(cost, Pt), Ct, v=torch.tensor(1.0))
            _, hes = vhp(partial(cost, Pt), Ct, v=torch.ones_like(Ct))
            return jac / hes
    else:
        from bench.gradbench.evals import kmeans as K
        F = lambda: K.cost(C, P)
        J = lambda: K.direction(C, P)
else:  # the bench's gather workload
    E = rng.standard_normal((10_000, 64)); idx = rng.integers(0, 10_000, 100_000)
    if tool == "torch":
        Et, it = torch.tensor(E, requires_grad=True), torch.tensor(idx)
        F = lambda: torch.sum(Et.detach()[it] ** 2)
        J = lambda: torch.autograd.grad(torch.sum(Et[it] ** 2), Et)[0]
    else:
        import dualgrad as dg
        f = lambda E: np.sum(E[idx] ** 2)
        g = dg.grad(f)
        F = lambda: f(E)
        J = lambda: g(E)
out = {{}}
for name, fn in (("F", F), ("J", J)):
    fn(); fn()
    rows = []
    for _ in range(samples):
        r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter(); r1 = resource.getrusage(resource.RUSAGE_SELF)
        rows.append((t1 - t0, r1.ru_minflt - r0.ru_minflt, r1.ru_stime - r0.ru_stime))
    out[name] = rows
print(json.dumps(out))
'''


def _run(case, arg, tool, env_extra, samples, cpu):
    env = dict(os.environ)
    for k in ("NUMPY_MADVISE_HUGEPAGE", "DUALGRAD_BUFFERS"):
        env.pop(k, None)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                "NUMBA_NUM_THREADS": "1"})
    env.update(env_extra)
    code = _CHILD.format(root=str(ROOT), case=case, arg=arg, tool=tool, samples=samples)
    cmd = [sys.executable, "-c", code]
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        cmd = ["taskset", "-c", str(cpu)] + cmd
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if p.returncode:
        raise RuntimeError(f"{case} {tool} {env_extra}: {p.stderr.strip().splitlines()[-1:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def summary(rows):
    t = [r[0] for r in rows]
    med = _median(t)
    return {"median_ms": med * 1e3, "mean_ms": sum(t) / len(t) * 1e3,
            "spread": max(t) / med if med else None,
            "minflt": _median([r[1] for r in rows]),
            "sys_ms": _median([r[2] for r in rows]) * 1e3}


def machine():
    cpu = cpu_model()
    thp = {}
    for k in ("enabled", "defrag"):
        try:
            thp[k] = Path(f"/sys/kernel/mm/transparent_hugepage/{k}").read_text().strip()
        except OSError:
            thp[k] = "?"
    return cpu, thp


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.pagefaults", description=__doc__)
    p.add_argument("--cases", default="lse,kmeans,gather")
    p.add_argument("--tools", default="dualgrad,dualgrad-nobuffers,torch")
    p.add_argument("--samples", type=int, default=15)
    p.add_argument("--cpu", type=int, default=None, help="core to pin to (default: none)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    cpu, thp = machine()
    print(f"CPU: {cpu}; transparent_hugepage enabled: {thp['enabled']}; "
          f"defrag: {thp['defrag']}")
    tools = args.tools.split(",")
    if "torch" in tools:
        try:
            import importlib.util
            if importlib.util.find_spec("torch") is None:
                tools.remove("torch")
        except ImportError:
            tools.remove("torch")
    settings = (("THP advice (numpy default)", {}),
                ("NUMPY_MADVISE_HUGEPAGE=0", {"NUMPY_MADVISE_HUGEPAGE": "0"}))
    results = []
    print("| case | tool | numpy huge pages | F median | J median | J mean | J/F | "
          "J max/median | minflt per J | sys per J |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for cname in args.cases.split(","):
        for case, arg in CASES[cname]:
            for tool in tools:
                for sname, senv in settings:
                    env = dict(senv)
                    if tool == "dualgrad-nobuffers":
                        env["DUALGRAD_BUFFERS"] = "0"
                    r = _run(case, arg, "torch" if tool == "torch" else "dualgrad", env,
                             args.samples, args.cpu)
                    f, j = summary(r["F"]), summary(r["J"])
                    label = f"{case} {arg}" if arg is not None else case
                    results.append({"case": label, "tool": tool, "setting": sname,
                                    "F": f, "J": j})
                    print(f"| {label} | {tool} | {sname} | {f['median_ms']:.2f} ms | "
                          f"{j['median_ms']:.2f} ms | {j['mean_ms']:.2f} ms | "
                          f"{j['median_ms'] / f['median_ms']:.2f} | {j['spread']:.2f} | "
                          f"{j['minflt']:.0f} | {j['sys_ms']:.2f} ms |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu, "thp": thp, "results": results},
                                              indent=1))


if __name__ == "__main__":
    main()
