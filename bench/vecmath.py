"""Time kernels/vecmath.py's vectorizable functions against numpy and numba's libm calls.

    python bench/vecmath.py [--out bench/results/vecmath-YYYYMMDD.md]

1e6 float64 standard normals (log and log1p on their absolute values), one thread,
median of 15 calls, in ns per element.  Per function: a numba loop calling
``kernels.vecmath.f``, numpy's ufunc (``out=``, no allocation) and a numba loop
calling ``np.f`` (a libm call per element).  Then the fused value + gradient of
``tanh(x)*sin(x) + exp(-x*x)`` written both ways, and as numpy would run it.
"""

import argparse
import os
import pathlib
import subprocess
import sys

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from dualgrad.teach.timing import median_time  # noqa: E402
from kernels import vecmath as vm  # noqa: E402

NAMES = ["exp", "expm1", "log", "log1p", "sin", "cos", "tanh", "sigmoid"]


def _loop(f):
    @njit
    def loop(x, out):
        for i in range(x.size):
            out[i] = f(x[i])
    return loop


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _fused(tanh, sin, cos, exp):
    @njit
    def value_grad(x, v, g):
        for i in range(x.size):
            xi = x[i]
            t, s, e = tanh(xi), sin(xi), exp(-xi * xi)
            v[i] = t * s + e
            g[i] = (1.0 - t * t) * s + t * cos(xi) - 2.0 * xi * e
    return value_grad


def _numpy_fused(x, v, g):
    t, s, e = np.tanh(x), np.sin(x), np.exp(-x * x)
    np.add(t * s, e, out=v)
    np.subtract((1.0 - t * t) * s + t * np.cos(x), 2.0 * x * e, out=g)


def median_ns(f, n, reps=15):
    """ns per element of a call of f() on n elements (the median of reps calls)."""
    return median_time(f, reps) * 1e9 / n


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(ln.split(":", 1)[1].strip() for ln in out.splitlines()
                    if ln.startswith("Model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", help="also write the table to this markdown file")
    args = ap.parse_args()
    n = 10**6
    x = np.random.default_rng(0).standard_normal(n)
    out, g = np.empty(n), np.empty(n)
    lines = [f"# kernels/vecmath.py vs numpy vs numba libm calls: {cpu_name()}", "",
             f"numpy {np.__version__}, 1e6 float64 normals, one thread, median of 15, "
             "ns per element (speedup = libm loop / vecmath loop).", "",
             "| function | vecmath loop | numpy ufunc | numba libm loop | vs numpy | vs libm |",
             "|---|---|---|---|---|---|"]
    for name in NAMES:
        xi = np.abs(x) if name.startswith("log") else x
        ufunc = _np_sigmoid if name == "sigmoid" else getattr(np, name)
        libm = _loop(njit(_np_sigmoid) if name == "sigmoid" else ufunc)
        fast = _loop(getattr(vm, name))
        tv = median_ns(lambda: fast(xi, out), n)  # noqa: B023
        tn = median_ns(lambda: ufunc(xi, out=out) if name != "sigmoid" else ufunc(xi), n)  # noqa: B023
        tl = median_ns(lambda: libm(xi, out), n)  # noqa: B023
        lines.append(f"| {name} | {tv:.2f} | {tn:.2f} | {tl:.2f} | {tn / tv:.1f}x | "
                     f"{tl / tv:.1f}x |")
    fast = _fused(vm.tanh, vm.sin, vm.cos, vm.exp)
    libm = _fused(np.tanh, np.sin, np.cos, np.exp)
    tv = median_ns(lambda: fast(x, out, g), n)
    tn = median_ns(lambda: _numpy_fused(x, out, g), n)
    tl = median_ns(lambda: libm(x, out, g), n)
    lines.append(f"| tanh(x)*sin(x)+exp(-x*x), value+grad | {tv:.2f} | {tn:.2f} | {tl:.2f} | "
                 f"{tn / tv:.1f}x | {tl / tv:.1f}x |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        pathlib.Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
