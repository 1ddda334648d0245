"""What one cached ``dg.jit`` signature holds, against the size of its constants.

    python -m bench.jitmem                  # into bench/results/jitmem-<date>.md
    python -m bench.jitmem --n 200000 --no-write

Issue 21 measured about 145 MB held per signature of a 1e6-element gradient (every
recorded intermediate stayed with the cached graph) and 870 MB for six signatures.  A
compiled signature now keeps its graph's structure, constants, guards and kernels only.
For each case and each ``codegen`` mode this jits the gradient, calls it ``calls`` times
(record; first replay: build; replays) with several signatures (shapes), and reports the
bytes still held afterwards per signature, from ``tracemalloc`` (numpy reports its data
allocations to it), next to the bytes of the graph's constants: the arrays the function
closes over.  The target is at most 2x.  Also the process's RSS (``VmRSS``) before, after,
and after ``clear_cache()``.  Not a test: nothing is asserted.
"""

import argparse
import gc
import sys
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .__main__ import cpu_model

RESULTS = Path(__file__).resolve().parent / "results"


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cases(n):
    """name -> (loss(x), its constants, shapes of x)."""
    rng = np.random.default_rng(0)
    w = rng.uniform(0.5, 1.5, n)

    def smooth(x):  # a dozen elementwise intermediates of x's size
        return np.sum(np.tanh(x * w[:x.size]) * np.sin(x) + np.exp(-x * x) * w[:x.size])

    d, h = 256, max(8, n // (256 * 64))
    W1, W2 = rng.standard_normal((d, h)) / 16, rng.standard_normal((h, 1)) / 4

    def mlp(x):  # x: (batch, 256)
        z = np.tanh(x @ W1)
        return np.mean((z @ W2) ** 2)
    sizes = [n - 1000 * k for k in range(6)]
    return {f"smooth (1-D, {n})": (smooth, [w], [(s,) for s in sizes]),
            "mlp (batch x 256)": (mlp, [W1, W2], [(n // d - 10 * k, d) for k in range(6)])}


def measure(fun, shapes, codegen, calls):
    import dualgrad as dg
    xs = [np.linspace(-2, 2, int(np.prod(s))).reshape(s) for s in shapes]
    wants = [dg.grad(fun)(x) for x in xs]  # eager, before: its reusable buffers (core/buffers.py)
    gc.collect()                            # are not the jit's
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    jg = dg.jit(dg.grad(fun), codegen=codegen)
    worst = 0.0
    for x, want in zip(xs, wants):
        for _ in range(calls):
            got = jg(x)
        worst = max(worst, float(np.max(np.abs(got - want)) / (np.max(np.abs(want)) or 1)))
        del got
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    before = rss_mb()
    jg.clear_cache()
    gc.collect()
    return held / len(xs), jg.cache_size, worst, before, rss_mb()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.jitmem", description=__doc__)
    p.add_argument("--n", type=int, default=1_000_000, help="elements of x")
    p.add_argument("--calls", type=int, default=3, help="calls per signature")
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args(argv)
    start = rss_mb()
    lines = [f"# dg.jit memory per cached signature ({datetime.now(timezone.utc):%Y-%m-%d})",
             "", f"CPU: {cpu_model()}; Python {sys.version.split()[0]}, numpy "
             f"{np.__version__}; n = {a.n}; {a.calls} calls per signature, 6 signatures "
             "per case; `python -m bench.jitmem`", "",
             "| case | codegen | constants (MB) | held per signature (MB) | ratio | "
             "max rel. error | RSS before / after clear_cache (MB) |",
             "|---|---|---|---|---|---|---|"]
    for name, (fun, consts, shapes) in cases(a.n).items():
        cbytes = sum(c.nbytes for c in consts)
        for codegen in ("off", "auto"):
            held, size, err, r0, r1 = measure(fun, shapes, codegen, a.calls)
            lines.append(f"| {name} | {codegen} | {cbytes / 2**20:.2f} | {held / 2**20:.2f} | "
                         f"{held / cbytes:.2f} | {err:.1e} | {r0:.0f} / {r1:.0f} |")
            print(lines[-1], flush=True)
    lines += ["", f"RSS at start (after imports): {start:.0f} MB. Held bytes are traced "
              "allocations (Python objects and numpy data), not numba's compiled code."]
    text = "\n".join(lines) + "\n"
    if not a.no_write:
        out = RESULTS / f"jitmem-{datetime.now(timezone.utc):%Y%m%d}.md"
        out.write_text(text)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
