"""``python -m bench.fluidsim``: the fluid-simulation gradient with dualgrad's buffer cache
on and off, side by side in one run (issue 21, item 3), and HIPS autograd where it is
installed (``pip install -e ".[bench]"``).

The workload is ``bench.workloads.fluidsim``: 50 steps of an n x n periodic fluid
(advection by bilinear interpolation at ``np.floor`` indices, projection by 10 Jacobi
sweeps), the gradient of a distance to a target image w.r.t. the initial velocities.
At n = 100 every field is 80 kB, above ``buffers.LARGE``, so every elementwise
temporary of the forward and reverse sweeps goes through the cache, about 5,000 of one
shape alive at once.

Measured: each tool runs in its own interpreter (cache on: ``DUALGRAD_BUFFERS=1``, off:
``=0``, so neither mode's heap is shaped by the other's), is called twice to warm up,
then ``--repeats`` rounds, one call of every tool per round in a rotated order (a slow
phase of a shared machine hits all alike); the table gives median wall and CPU seconds
per gradient and minor page faults.  Both dualgrad gradients must be bitwise equal,
autograd's within 1e-9.  ``--out`` writes the markdown (default
``bench/results/fluidsim.md``).
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from . import peers, workloads  # noqa: E402
from .__main__ import lscpu_model  # noqa: E402


def _label_autograd():
    try:
        from importlib.metadata import version
        return f"autograd {version('autograd')}"
    except Exception:  # noqa: BLE001  (not installed as a distribution)
        return "autograd"


TOOLS = {"on": "dualgrad, cache on", "off": "dualgrad, cache off", "autograd": "autograd"}


def worker(tool, n):
    """One tool in this interpreter: warm up twice, then time one gradient per line read
    from stdin, answering ``wall cpu minflt``.  The first answer is the derivative."""
    import pickle
    import resource
    import sys

    case, = workloads.fluidsim(n)
    if tool == "autograd":
        peers.setup()
        f = peers.get("autograd", "fluidsim")(case.data)
    else:
        import dualgrad as dg
        f = case.dualgrad(dg)
    first = peers.to_numpy(f())
    f()
    out = sys.stdout.buffer
    out.write(pickle.dumps(first).hex().encode() + b"\n")
    out.flush()
    for _ in sys.stdin:
        m0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0, c0 = time.perf_counter(), time.process_time()
        f()
        t, c = time.perf_counter() - t0, time.process_time() - c0
        m = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - m0
        out.write(f"{t} {c} {m}\n".encode())
        out.flush()


def run_size(n, repeats, with_autograd):
    """Times and checks for one grid size: (markdown rows, notes, all checks passed).

    Each tool runs in its own interpreter (its own heap: a cache full of free buffers
    must not change how numpy's allocations fare in the other mode), started with
    ``DUALGRAD_BUFFERS=1`` or ``0``; the rounds are interleaved across them."""
    import pickle
    import sys

    names = ["on", "off"] + (["autograd"] if with_autograd else [])
    procs, first = {}, {}
    for name in names:
        env = dict(os.environ, DUALGRAD_BUFFERS="0" if name == "off" else "1")
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "bench.fluidsim", "--worker", name, "--sizes", str(n)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
            cwd=Path(__file__).resolve().parent.parent)
        first[name] = pickle.loads(bytes.fromhex(procs[name].stdout.readline().decode()))
    ok = all(np.array_equal(a, b) for a, b in zip(first["on"], first["off"]))
    checks = [f"cache on == cache off bitwise: {'yes' if ok else 'NO'}"]
    if with_autograd:
        close = all(np.allclose(a, b, rtol=1e-9, atol=1e-12)
                    for a, b in zip(first["autograd"], first["on"]))
        checks.append(f"autograd within 1e-9: {'yes' if close else 'NO'}")
        ok = ok and close
    wall, cpu, flt = ({k: [] for k in names} for _ in range(3))
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            p = procs[name]
            p.stdin.write(b"go\n")
            p.stdin.flush()
            t, c, m = p.stdout.readline().split()
            wall[name].append(float(t))
            cpu[name].append(float(c))
            flt[name].append(int(m))
    for p in procs.values():
        p.stdin.close()
        p.wait()
    med = {k: float(np.median(v)) for k, v in wall.items()}
    medc = {k: float(np.median(v)) for k, v in cpu.items()}
    ref, refc = med["off"], medc["off"]
    label = dict(TOOLS, autograd=_label_autograd())
    rows = [f"| {n}x{n} | {label[k]} | {med[k]:.3f} | {min(wall[k]):.3f} | "
            f"{max(wall[k]):.3f} | {med[k] / ref:.2f}x | {medc[k]:.3f} | "
            f"{medc[k] / refc:.2f}x | {int(np.median(flt[k]))} |" for k in names]
    notes = [f"{n}x{n} ({n * n * 8 / 1000:.0f} kB a field): " + "; ".join(checks) + "."]
    return rows, notes, ok


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.fluidsim", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100", help="comma list of grid sizes n (n x n); "
                    "default 100")
    ap.add_argument("--repeats", type=int, default=9, help="timed rounds (default 9)")
    ap.add_argument("--no-autograd", action="store_true", help="skip HIPS autograd")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "fluidsim.md"),
                    help="markdown file to write ('-' for none)")
    ap.add_argument("--worker", choices=sorted(TOOLS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker, int(args.sizes))

    from dualgrad.core import buffers
    if not buffers.ENABLED:
        raise SystemExit("the buffer cache is off here (DUALGRAD_BUFFERS=0, or reference "
                         "counts are not reliable): nothing to compare")
    peers.setup()
    with_ag = not args.no_autograd and peers.available("autograd")
    rows, notes, ok = [], [], True
    for n in (int(v) for v in args.sizes.split(",")):
        r, nt, k = run_size(n, args.repeats, with_ag)
        rows, notes, ok = rows + r, notes + nt, ok and k
    cmd = " ".join(["python -m bench.fluidsim", *(argv if argv is not None else
                                                   __import__("sys").argv[1:])])
    lines = [f"# fluidsim gradient: dualgrad's buffer cache on and off — {lscpu_model()}",
             "", f"`{cmd}`: 2-D fluid, {workloads.FLUID_STEPS} steps of advection "
             f"(bilinear, np.floor indices) and projection ({workloads.FLUID_JACOBI} Jacobi "
             "sweeps); gradient of the mean squared distance to a target w.r.t. the "
             "initial velocities.  Each tool in its own interpreter (cache on: "
             "`DUALGRAD_BUFFERS=1`, off: `=0`), one thread, rounds interleaved across "
             f"them; {os.cpu_count()} logical CPUs shared with other work, numpy "
             f"{np.__version__}.  Median of {args.repeats} rounds after two warm-up "
             "calls: wall clock, and CPU time of the tool's process (less sensitive to the "
             "other work); ratios are to cache off; minor page faults per gradient.", "",
             "| grid | tool | median s | min s | max s | / cache off | median CPU s | "
             "CPU / cache off | page faults |", "|---|---|---|---|---|---|---|---|---|",
             *rows, "", *notes]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out != "-":
        Path(args.out).write_text(text)
    if not ok:
        raise SystemExit("derivative mismatch")


if __name__ == "__main__":
    main()
