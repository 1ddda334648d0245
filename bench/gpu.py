"""GPU kernel timings: dualgrad's @cuda.jit kernels against CuPy doing the same work.

For a session lent a GPU (``bench/gpu_check.sh`` runs it): each line times one kernel of
``dualgrad.backend.cuda`` and its CuPy equivalent, and a device-to-device copy of the
same bytes as the bandwidth yardstick; the device is synchronised before every clock
read.  Prints a markdown table.  ``python -m bench.gpu [--n 10000000] [--dtype float32]``
"""

import argparse
import time

import numpy as np


def _timed(fn, sync, repeats):
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=10_000_000, help="elements per array")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args(argv)
    import cupy as cp

    from dualgrad.backend import cuda as C
    sync = cp.cuda.Device().synchronize
    dt = np.dtype(a.dtype)
    x = cp.random.standard_normal(a.n).astype(dt)
    out = cp.empty_like(x)
    rows = cp.random.standard_normal((a.n // 16, 16)).astype(dt)
    img = cp.random.standard_normal((64, 32, 32, 32)).astype(dt)
    geo, hw = (2, 2, 2, 2, 0, 0), (16, 16)
    cases = [
        ("copy (yardstick)", 2 * x.nbytes, lambda: out.__setitem__(Ellipsis, x), None),
        ("tanh value+grad", 3 * x.nbytes, lambda: C.unary("tanh", x, True),
         lambda: (cp.tanh(x), 1 - cp.tanh(x) ** 2)),
        ("sin value+grad", 3 * x.nbytes, lambda: C.unary("sin", x, True),
         lambda: (cp.sin(x), cp.cos(x))),
        ("softmax rows of 16", 2 * rows.nbytes, lambda: C.on_rows("softmax", -1, rows),
         lambda: (lambda e: e / e.sum(-1, keepdims=True))(
             cp.exp(rows - rows.max(-1, keepdims=True)))),
        ("max_pool2d 2x2", img.nbytes * 5 // 4, lambda: C.max_pool2d(img, geo, hw),
         lambda: img.reshape(64, 32, 16, 2, 16, 2).max(axis=(3, 5))),
    ]
    print(f"| kernel ({a.dtype}, n={a.n:,}) | dualgrad ms | GB/s | CuPy ms | dualgrad / CuPy |")
    print("|---|---|---|---|---|")
    for name, nbytes, ours, theirs in cases:
        t = _timed(ours, sync, a.repeats)
        tc = _timed(theirs, sync, a.repeats) if theirs else None
        ratio = f"{t / tc:.2f}" if tc else "-"
        tcs = f"{tc * 1e3:.3f}" if tc else "-"
        print(f"| {name} | {t * 1e3:.3f} | {nbytes / t / 1e9:.0f} | {tcs} | {ratio} |")


if __name__ == "__main__":
    main()
