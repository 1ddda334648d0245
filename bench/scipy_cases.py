"""``python -m bench.scipy_cases``: dualgrad.scipy's solvers against their peers.

    python -m bench.scipy_cases                         # every case
    python -m bench.scipy_cases --cases odeint_grad --repeats 9
    python -m bench.scipy_cases --no-write              # print only

One case per function below, registered with ``@case``: it builds its inputs and returns a
``Case`` whose ``tools`` map a tool's name to a zero-argument callable returning the
derivative as a numpy array (a peer that is not installed is left out).  Every tool is
called twice untimed (JAX compiles), its derivative checked against the reference tool's,
then sampled round-robin (one sample per tool per round, the order rotated); a sample
loops the call for at least ``--min-time`` seconds; the median per call is reported.  One
thread per library, pinned to the last core, float64 everywhere; the CPU (lscpu) is named
in the output.  Results: ``bench/results/scipy-<timestamp>.{json,md}``.

To add a case: write a function returning ``Case(...)`` and decorate it with ``@case``.
"""

import os

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
for _v in THREAD_VARS:  # before numpy, jax or numba load
    os.environ.setdefault(_v, "1")
os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from .__main__ import lscpu_model  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Case:
    """One benchmark: what it computes, its target, and one callable per tool."""
    name: str
    what: str
    derivative: str
    target: str
    tools: dict = field(default_factory=dict)  # tool -> () -> derivative (numpy array)
    ref: str = "dualgrad"                       # the tool the others are checked against
    rtol: float = 1e-6                          # of that check


CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


# ---------------------------------------------------------------------------
# odeint_grad: Lotka-Volterra, 4 parameters, 100 output times (issue 24)

LV_T = np.linspace(0.0, 10.0, 100)
LV_Y0 = np.array([1.0, 1.0])
LV_P = np.array([1.5, 1.0, 3.0, 1.0])
LV_TOL = 1.4e-8  # rtol = atol, every tool (JAX's default; scipy's odeint has 1.49e-8)


@case
def odeint_grad():
    """grad of sum(y(t)**2) over 100 output times w.r.t. the 4 Lotka-Volterra parameters:
    dualgrad (scipy's LSODA, the adjoint solved by LSODA), its dg.jit, JAX's
    ``jax.experimental.ode.odeint`` (dopri5, adjoint) under ``jax.jit``, and autograd's
    ``odeint`` (scipy's LSODA, adjoint)."""
    c = Case("odeint_grad", "Lotka-Volterra from (1, 1), 100 output times on [0, 10], "
             f"rtol = atol = {LV_TOL:g}; loss = sum of y(t)^2",
             "grad w.r.t. the 4 parameters", "≤ 1× JAX odeint (jit); ≤ 0.5× autograd",
             rtol=1e-4)  # three integrators (LSODA, dopri5), each to 1.4e-8 per step
    import dualgrad as dg
    from dualgrad.scipy.integrate import odeint

    def lv(y, t, p):
        return np.array([p[0] * y[0] - p[1] * y[0] * y[1], -p[2] * y[1] + p[3] * y[0] * y[1]])

    def loss(p):
        return np.sum(odeint(lv, LV_Y0, LV_T, args=(p,), rtol=LV_TOL, atol=LV_TOL) ** 2)
    g, jg = dg.grad(loss), dg.jit(dg.grad(loss))
    c.tools["dualgrad"] = lambda: g(LV_P)
    c.tools["dualgrad.jit"] = lambda: jg(LV_P)
    try:
        import jax
        import jax.numpy as jnp
        from jax.experimental.ode import odeint as jodeint
        jax.config.update("jax_enable_x64", True)

        def jlv(y, t, p):
            return jnp.stack([p[0] * y[0] - p[1] * y[0] * y[1],
                              -p[2] * y[1] + p[3] * y[0] * y[1]])

        def jloss(p):
            return jnp.sum(jodeint(jlv, jnp.asarray(LV_Y0), jnp.asarray(LV_T), p, rtol=LV_TOL,
                                   atol=LV_TOL) ** 2)
        jgrad, jp = jax.jit(jax.grad(jloss)), jnp.asarray(LV_P)
        c.tools["jax.jit"] = lambda: np.asarray(jgrad(jp).block_until_ready())
    except ImportError:
        pass
    try:
        import autograd
        import autograd.numpy as anp
        from autograd.builtins import tuple as atuple
        from autograd.scipy.integrate import odeint as aodeint

        def alv(y, t, p):
            return anp.array([p[0] * y[0] - p[1] * y[0] * y[1],
                              -p[2] * y[1] + p[3] * y[0] * y[1]])

        def aloss(p):
            return anp.sum(aodeint(alv, LV_Y0, LV_T, atuple((p,)), rtol=LV_TOL,
                                   atol=LV_TOL) ** 2)
        ag = autograd.grad(aloss)
        c.tools["autograd"] = lambda: ag(LV_P)
    except ImportError:
        pass
    return c


# ---------------------------------------------------------------------------
# the harness

def _sample(fn, min_time):
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / n


def run_case(c, repeats, min_time):
    """{tool: {"median_s", "samples_s", "first_s", "max_rel_diff"}} for one case."""
    out, values = {}, {}
    for tool, fn in c.tools.items():  # two untimed calls: the first compiles (JAX, dg.jit)
        t0 = time.perf_counter()
        values[tool] = np.asarray(fn())
        out[tool] = {"first_s": time.perf_counter() - t0, "samples_s": []}
        fn()
    ref = values.get(c.ref, next(iter(values.values())))
    for tool, r in out.items():
        diff = float(np.max(np.abs(values[tool] - ref)) / np.max(np.abs(ref)))
        r["max_rel_diff"], r["agrees"] = diff, bool(diff <= c.rtol)
    tools = list(c.tools)
    for k in range(repeats):
        for tool in tools[k % len(tools):] + tools[:k % len(tools)]:
            out[tool]["samples_s"].append(_sample(c.tools[tool], min_time))
    for r in out.values():
        r["median_s"] = statistics.median(r["samples_s"])
    return out


def _ms(s):
    return f"{s * 1e3:.3g} ms" if s >= 1e-3 else f"{s * 1e6:.3g} µs"


def markdown(meta, results):
    lines = [f"# dualgrad.scipy bench, {meta['date']}", "",
             f"CPU: {meta['cpu']}; one thread, pinned to core {meta['core']}; "
             f"{meta['repeats']} samples of ≥ {meta['min_time']} s each, median per call.", ""]
    for name, (c, res) in results.items():
        ref = res.get("dualgrad", {}).get("median_s")
        lines += [f"## {name}", "", f"{c.what}; {c.derivative}. Target: {c.target}.", "",
                  "| tool | median | dualgrad / tool | first call | derivative vs "
                  f"{c.ref} (rel.) |", "|---|---|---|---|---|"]
        for tool, r in res.items():
            ratio = f"{ref / r['median_s']:.3g}×" if ref else "—"
            mark = "" if r["agrees"] else " ✗MISMATCH"
            lines.append(f"| {tool} | {_ms(r['median_s'])} | {ratio} | {_ms(r['first_s'])} | "
                         f"{r['max_rel_diff']:.1e}{mark} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.scipy_cases", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated: " +
                    ", ".join(CASES))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    names = [n for n in args.cases.split(",") if n]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    core = None
    if hasattr(os, "sched_setaffinity"):
        core = sorted(os.sched_getaffinity(0))[-1]
        os.sched_setaffinity(0, [core])
    meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": lscpu_model(), "core": core, "repeats": args.repeats,
            "min_time": args.min_time}
    results = {}
    for name in names:
        c = CASES[name]()
        results[name] = (c, run_case(c, args.repeats, args.min_time))
    text = markdown(meta, results)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        (RESULTS / f"scipy-{stamp}.md").write_text(text + "\n")
        (RESULTS / f"scipy-{stamp}.json").write_text(json.dumps(
            {"meta": meta, "cases": {n: {"what": c.what, "derivative": c.derivative,
                                         "target": c.target, "results": r}
                                     for n, (c, r) in results.items()}}, indent=1))


if __name__ == "__main__":
    main()
