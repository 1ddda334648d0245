"""``python -m bench --device cuda``: dualgrad's gradients on a GPU beside PyTorch CUDA and
``jax.jit``, and a device-to-device copy as the bandwidth yardstick.

Three workloads of bench/workloads.py, the same functions at GPU sizes, each in float32
and float64:

    elementwise  x: 1e8 normals; sum(tanh(x)*sin(x) + exp(-x^2)); grad
    mlp_large    N=4096, D=1024, H=1024, C=10; mean softmax cross-entropy; grad w.r.t. weights
    conv         N=256, 3->16 channels, 32x32, 3x3, pad 1; sum(relu(conv(x, w))^2); grad x, w

Tools: ``dualgrad`` (``dg.grad`` on CuPy arrays from ``dg.device_put(x, "cuda")``),
``dualgrad.jit`` (``dg.jit`` of that gradient: the first call records, the second compiles,
later calls are timed), ``torch`` (PyTorch CUDA eager, ``torch.autograd.grad``), ``jax.jit``
(``jax.jit(jax.grad(f))`` on ``jax.device_put`` arrays) and ``copy`` (``out[...] = x`` in
CuPy, the same bytes as the elementwise gradient reads and writes).

The harness runs on a :class:`Device`: its array module, host-to-device and device-to-host
copies, a synchronisation, and the names PyTorch and JAX give the same device.
:func:`cuda_device` is the GPU (CuPy); :func:`host_device` is numpy on the CPU with a no-op
synchronisation, on which the tests run the whole harness at ``--sizes tiny``.

    python -m bench --device cuda                      # the GPU bench (this module)
    python -m bench.gpu --device host --sizes tiny     # the same harness on the CPU, seconds
    python -m bench.gpu --kernels [--n N --dtype D]    # per-kernel table: dualgrad vs CuPy
"""

import argparse
import gc
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
TOOLS = ("dualgrad", "dualgrad.jit", "torch", "jax.jit", "copy")
DG_TOOLS = ("dualgrad", "dualgrad.jit")
NEEDS = 'needs CuPy and a CUDA device: pip install "dualgrad[cuda]"'
RTOL = {"float32": 1e-4, "float64": 1e-8}
DASH = "—"


class DeviceMissing(RuntimeError):
    """No CuPy, or CuPy without a CUDA device: the GPU bench cannot run."""


class Unavailable(Exception):
    """A tool that is not installed, or installed without support for this device."""


def first_line(e):
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}".rstrip(": ")


# ---------------------------------------------------------------------------
# The device

@dataclass
class Device:
    """Where the arrays live: ``xp`` allocates there, ``put`` copies a numpy array there,
    ``get`` copies one back, ``sync`` waits for all work queued on it, ``free`` releases
    cached memory; ``torch_device`` and ``jax_platform`` name it for the peers."""
    name: str
    xp: object
    put: object
    get: object
    sync: object
    torch_device: str
    jax_platform: str
    free: object = lambda: None
    info: dict = field(default_factory=dict)

    def on_device(self, a):
        return isinstance(a, self.xp.ndarray)


def _cuda_version(v):
    return f"{v // 1000}.{v % 1000 // 10}"


def cuda_device():
    """The first CUDA device through CuPy; :class:`DeviceMissing` saying what is missing."""
    try:
        import cupy as cp
    except Exception as e:  # noqa: BLE001  (ImportError, or a CuPy for another CUDA)
        raise DeviceMissing(f"{NEEDS} (import cupy: {first_line(e)})") from None
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001  (CUDARuntimeError: no driver)
        raise DeviceMissing(f"{NEEDS} (CuPy {cp.__version__} finds no CUDA device: "
                            f"{first_line(e)})") from None
    if count < 1:
        raise DeviceMissing(f"{NEEDS} (CuPy {cp.__version__} finds no CUDA device)")
    # JAX takes 75% of GPU memory at start-up unless told not to; CuPy and torch share it
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import dualgrad as dg

    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"]
    info = {"gpu": name.decode() if isinstance(name, bytes) else str(name),
            "gpu_memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
            "compute_capability": f"{props['major']}.{props['minor']}",
            "cuda_runtime": _cuda_version(cp.cuda.runtime.runtimeGetVersion()),
            "cuda_driver": _cuda_version(cp.cuda.runtime.driverGetVersion()),
            "device_count": count}

    def free():
        gc.collect()
        cp.get_default_memory_pool().free_all_blocks()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    return Device("cuda", cp, lambda a: dg.device_put(a, "cuda"), cp.asnumpy,
                  cp.cuda.Device().synchronize, "cuda", "gpu", free, info)


def host_device():
    """numpy on the CPU, a no-op sync, torch on "cpu" and jax on its CPU backend: the
    whole harness without a GPU (the tests, and ``--device host``)."""
    from .__main__ import cpu_model
    return Device("host", np, np.array, np.asarray, lambda: None, "cpu", "cpu", gc.collect,
                  {"cpu": cpu_model()})


# ---------------------------------------------------------------------------
# The workloads: bench/workloads.py's functions, batch and dtype as parameters

SIZES = {"full": {"elementwise": 100_000_000, "mlp_large": 4096, "conv": 256},
         "tiny": {"elementwise": 4096, "mlp_large": 8, "conv": 2}}
MLP_D, MLP_H, MLP_C = 1024, 1024, 10


def elementwise_bytes(n, itemsize):
    """Bytes the elementwise gradient must move: x read once, the gradient written once."""
    return 2 * n * itemsize


@dataclass
class Workload:
    name: str
    what: str
    args: tuple          # argument names, in call order
    argnums: object      # what is differentiated (an int or a tuple, as bench/workloads.py)
    outputs: tuple       # the gradient's parts, in order
    data: object         # (size, dtype) -> {name: host numpy array}
    dualgrad: object     # dg -> loss(*args): the numpy code of bench/workloads.py
    torch: object        # torch -> loss(*args)
    jax: object          # jax -> loss(*args)
    target: tuple        # ("copy_pct", {dtype: % of copy}) | ("vs_torch", ratio)

    def size_text(self, size):
        return {"elementwise": f"n={size:,}", "mlp_large": f"N={size}",
                "conv": f"N={size}"}[self.name]


def _rng():
    from .workloads import SEED
    return np.random.default_rng(SEED)


def elementwise_loss(x):
    """bench/workloads.py's elementwise: sum(tanh(x)·sin(x) + exp(−x²))."""
    return np.sum(np.tanh(x) * np.sin(x) + np.exp(-x ** 2))


def elementwise_data(n, dtype):
    return {"x": _rng().standard_normal(n).astype(dtype, copy=False)}


def mlp_large_loss(dg):
    """bench/workloads.py's mlp_large; ``rows`` (arange(N)) is an argument so that it lives
    on the device with the labels."""
    from .workloads import _log_softmax, _relu
    relu, log_softmax = _relu(dg), _log_softmax(dg)

    def loss(W1, b1, W2, b2, x, labels, rows):
        logp = log_softmax(relu(x @ W1 + b1) @ W2 + b2)
        return -np.mean(logp[rows, labels])
    return loss


def mlp_large_data(N, dtype):
    r, D, H, C = _rng(), MLP_D, MLP_H, MLP_C  # the draws in bench/workloads.py's order
    d = {"x": r.standard_normal((N, D)), "labels": r.integers(0, C, N),
         "W1": r.standard_normal((D, H)) / np.sqrt(D), "b1": np.zeros(H),
         "W2": r.standard_normal((H, C)) / np.sqrt(H), "b2": np.zeros(C), "rows": np.arange(N)}
    return {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in d.items()}


def conv_loss(dg):
    from .workloads import _relu
    relu = _relu(dg)
    return lambda x, w: np.sum(relu(dg.nn.conv2d(x, w, padding=1)) ** 2)


def conv_data(N, dtype):
    r = _rng()
    d = {"x": r.standard_normal((N, 3, 32, 32)), "w": r.standard_normal((16, 3, 3, 3)) / 3}
    return {k: v.astype(dtype) for k, v in d.items()}


def _torch_elementwise(torch):
    return lambda x: torch.sum(torch.tanh(x) * torch.sin(x) + torch.exp(-x ** 2))


def _torch_mlp_large(torch):
    F = torch.nn.functional
    return lambda W1, b1, W2, b2, x, labels, rows: F.cross_entropy(
        torch.relu(x @ W1 + b1) @ W2 + b2, labels)


def _torch_conv(torch):
    F = torch.nn.functional
    return lambda x, w: torch.sum(torch.relu(F.conv2d(x, w, padding=1)) ** 2)


def _jax_elementwise(jax):
    jnp = jax.numpy
    return lambda x: jnp.sum(jnp.tanh(x) * jnp.sin(x) + jnp.exp(-x ** 2))


def _jax_mlp_large(jax):
    jnp, hi = jax.numpy, jax.lax.Precision.HIGHEST  # full float32: no TF32 on the GPU

    def loss(W1, b1, W2, b2, x, labels, rows):
        h = jax.nn.relu(jnp.matmul(x, W1, precision=hi) + b1)
        logp = jax.nn.log_softmax(jnp.matmul(h, W2, precision=hi) + b2, axis=1)
        return -jnp.mean(logp[rows, labels])
    return loss


def _jax_conv(jax):
    lax = jax.lax

    def loss(x, w):
        y = lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                     precision=lax.Precision.HIGHEST)
        return jax.numpy.sum(jax.nn.relu(y) ** 2)
    return loss


WORKLOADS = {
    "elementwise": Workload(
        "elementwise", "sum(tanh(x)·sin(x) + exp(−x²)), x normals", ("x",), 0, ("x",),
        elementwise_data, lambda dg: elementwise_loss, _torch_elementwise, _jax_elementwise,
        ("copy_pct", {"float32": 70.0, "float64": 50.0})),
    "mlp_large": Workload(
        "mlp_large", "D=1024, H=1024, C=10; mean softmax cross-entropy of "
        "relu(x@W1+b1)@W2+b2", ("W1", "b1", "W2", "b2", "x", "labels", "rows"), (0, 1, 2, 3),
        ("W1", "b1", "W2", "b2"), mlp_large_data, mlp_large_loss, _torch_mlp_large,
        _jax_mlp_large, ("vs_torch", 1.2)),
    "conv": Workload(
        "conv", "3→16 channels, 32×32, 3×3, pad 1; sum(relu(conv(x, w))²)", ("x", "w"),
        (0, 1), ("x", "w"), conv_data, conv_loss, _torch_conv, _jax_conv,
        ("vs_torch", 1.5)),
}


def target_text(wl, dtype):
    kind, lim = wl.target
    if kind == "copy_pct":
        return f"dualgrad.jit ≥ {lim[dtype]:g}% of copy bandwidth"
    return f"best dualgrad ≤ {lim:g}× torch"


# ---------------------------------------------------------------------------
# The tools: each builds (call, wait) from host data; wait(out) waits for out's work

def _tuple(argnums):
    return argnums if isinstance(argnums, tuple) else (argnums,)


def build_dualgrad(wl, data, dev, jit, codegen=None):
    import dualgrad as dg
    args = [dev.put(data[k]) for k in wl.args]
    g = dg.grad(wl.dualgrad(dg), argnums=wl.argnums)
    if jit:
        g = dg.jit(g) if codegen is None else dg.jit(g, codegen=codegen)
    return (lambda: g(*args)), None


def _module(name):
    try:
        return __import__(name)
    except ImportError as e:
        raise Unavailable(f"not installed ({first_line(e)})") from None


def build_torch(wl, data, dev):
    torch = _module("torch")
    cuda = dev.torch_device.startswith("cuda")
    if cuda:
        if not torch.cuda.is_available():
            raise Unavailable(f"torch {torch.__version__} sees no CUDA device "
                              f"(torch.version.cuda = {torch.version.cuda})")
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32, as CuPy's
        torch.backends.cudnn.allow_tf32 = False
    ts = [torch.from_numpy(np.ascontiguousarray(data[k])).to(dev.torch_device)
          for k in wl.args]
    diff = tuple(ts[i].requires_grad_() for i in _tuple(wl.argnums))
    loss = wl.torch(torch)
    wait = (lambda out: torch.cuda.synchronize()) if cuda else None
    return (lambda: torch.autograd.grad(loss(*ts), diff)), wait


def build_jax(wl, data, dev):
    jax = _module("jax")
    jax.config.update("jax_enable_x64", True)  # else float64 inputs silently become float32
    try:
        where = jax.devices(dev.jax_platform)[0]
    except Exception as e:  # noqa: BLE001  (RuntimeError: no such backend)
        raise Unavailable(f"jax {jax.__version__} has no {dev.jax_platform} backend "
                          f"({first_line(e)})") from None
    args = [jax.device_put(data[k], where) for k in wl.args]
    g = jax.jit(jax.grad(wl.jax(jax), argnums=wl.argnums))
    return (lambda: g(*args)), jax.block_until_ready


def build_copy(wl, data, dev):
    x = dev.put(data["x"])
    out = dev.xp.empty_like(x)
    return (lambda: out.__setitem__(Ellipsis, x)), None


def build(tool, wl, data, dev, codegen=None):
    if tool in DG_TOOLS:
        return build_dualgrad(wl, data, dev, tool == "dualgrad.jit", codegen)
    return {"torch": build_torch, "jax.jit": build_jax, "copy": build_copy}[tool](wl, data, dev)


def to_host(out, dev):
    """A gradient from any tool as a tuple of numpy arrays (dtype kept)."""
    if isinstance(out, (tuple, list)):
        return tuple(a for o in out for a in to_host(o, dev))
    if hasattr(out, "detach"):  # torch
        return (out.detach().cpu().numpy(),)
    if dev.on_device(out):
        return (dev.get(out),)
    return (np.asarray(out),)


def _leaves(out):
    return [a for o in out for a in _leaves(o)] if isinstance(out, (tuple, list)) else [out]


# ---------------------------------------------------------------------------
# Timing and checking

@dataclass
class Run:
    tool: str
    status: str = "ok"        # ok | not installed | unavailable | error | skipped | n/a
    reason: str = None
    first_s: float = None     # 1st call: jit recording, cuDNN / XLA set-up
    second_s: float = None    # 2nd call: dg.jit compiles here
    calls: int = 1            # calls per sample
    samples: list = field(default_factory=list)  # seconds per call
    check: dict = None
    notes: list = field(default_factory=list)
    call: object = None
    wait: object = None

    @property
    def ok(self):
        return self.status == "ok" and bool(self.samples)

    @property
    def median(self):
        return statistics.median(self.samples) if self.samples else None

    @property
    def min(self):
        return min(self.samples) if self.samples else None

    def fail(self, status, reason):
        self.status, self.reason, self.call, self.wait = status, reason, None, None

    def to_json(self):
        return {"status": self.status, "reason": self.reason, "first_s": self.first_s,
                "second_s": self.second_s, "calls_per_sample": self.calls,
                "median_s": self.median, "min_s": self.min, "samples_s": self.samples,
                "check": self.check, "notes": self.notes}


def timed(call, wait, dev, calls=1):
    """Seconds per call of ``calls`` back-to-back calls, the device synchronised before
    each clock read; and the last output."""
    dev.sync()
    t0 = time.perf_counter()
    for _ in range(calls):
        out = call()
    if wait is not None:
        wait(out)
    dev.sync()
    return (time.perf_counter() - t0) / calls, out


def compare(got, ref, dtype, rtol):
    """``got`` against ``ref`` (tuples of host arrays): shapes, dtypes, finiteness, and
    |a − b| ≤ rtol·(|b| + max|b|) elementwise, per output."""
    if len(got) != len(ref) or any(a.shape != b.shape for a, b in zip(got, ref)):
        return {"ok": False, "why": f"shapes {[a.shape for a in got]} vs "
                                    f"{[b.shape for b in ref]}"}
    bad = [str(a.dtype) for a in got if a.dtype != np.dtype(dtype)]
    if bad:
        return {"ok": False, "why": f"dtypes {bad}, expected {dtype}"}
    worst = 0.0
    ok = True
    step = 1 << 22  # in chunks: 1e8-element gradients without 800 MB temporaries
    for a, b in zip(got, ref):
        a, b = a.reshape(-1), b.reshape(-1)
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        fin_a = fin_b = True
        for i in range(0, a.size, step):
            ac, bc = a[i:i + step].astype(np.float64), b[i:i + step].astype(np.float64)
            err = np.abs(ac - bc)
            worst = max(worst, float(np.max(err)) / scale if scale > 0 else 0.0)
            ok &= bool(np.all(err <= rtol * (np.abs(bc) + scale)))
            fin_a &= bool(np.all(np.isfinite(ac)))
            fin_b &= bool(np.all(np.isfinite(bc)))
        ok &= fin_a == fin_b
    res = {"ok": ok, "max_err_scaled": worst, "rtol": rtol}
    if not ok:
        res["why"] = f"max |a−b| / max|b| = {worst:.3g} (rtol {rtol:g})"
    return res


@dataclass
class Options:
    sizes: str = "full"
    workloads: tuple = tuple(WORKLOADS)
    dtypes: tuple = ("float32", "float64")
    tools: tuple = TOOLS
    repeats: int = 10
    min_time: float = 0.02
    budget: float = 200.0       # seconds; later cases are skipped, samples cut to >= 3
    rtol: dict = field(default_factory=lambda: dict(RTOL))
    jit_codegen: str = None     # dg.jit(codegen=...); None: dg.jit's default


def run_case(wl, dtype, dev, opts, deadline):
    """Every tool on one workload and dtype: build, three warm calls (the third checked
    against dualgrad eager's gradient), then samples taken round-robin."""
    size = SIZES[opts.sizes][wl.name]
    case = {"workload": wl.name, "dtype": dtype, "size": size, "what": wl.what,
            "target": target_text(wl, dtype), "reference": None, "runs": {}}
    runs = case["runs"]
    if time.perf_counter() > deadline:
        for tool in opts.tools:
            runs[tool] = Run(tool, "skipped", "over the time budget (--budget)")
        return case
    data = wl.data(size, dtype)
    if wl.target[0] == "copy_pct":
        case["bytes"] = elementwise_bytes(data["x"].size, data["x"].itemsize)
    ref = None
    for tool in TOOLS:
        if tool not in opts.tools:
            continue
        r = runs[tool] = Run(tool)
        if tool == "copy" and wl.target[0] != "copy_pct":
            r.fail("n/a", "the bandwidth yardstick of elementwise only")
            continue
        try:
            r.call, r.wait = build(tool, wl, data, dev, opts.jit_codegen)
            with warnings.catch_warnings(record=True) as ws:
                warnings.simplefilter("always")
                r.first_s, _ = timed(r.call, r.wait, dev)
                r.second_s, _ = timed(r.call, r.wait, dev)
                t, out = timed(r.call, r.wait, dev)
            for w in ws:
                note = f"{w.category.__name__}: {str(w.message).splitlines()[0]}"
                if note not in r.notes:
                    r.notes.append(note)
        except Unavailable as e:
            r.fail("not installed" if str(e).startswith("not installed") else "unavailable",
                   str(e))
            continue
        except Exception as e:  # noqa: BLE001  (reported, the run goes on)
            r.fail("error", first_line(e))
            dev.free()
            continue
        r.calls = max(1, min(10_000, math.ceil(opts.min_time / max(t, 1e-9))))
        if tool == "copy":
            continue
        if tool in DG_TOOLS and dev.name != "host" and not all(
                dev.on_device(a) for a in _leaves(out)):
            r.notes.append("⚠ returned host arrays, not device arrays")
        got = to_host(out, dev)
        del out
        if ref is None:
            ref, case["reference"] = got, tool
            r.check = {"ok": True, "reference": True}
            bad = [str(a.dtype) for a in got if a.dtype != np.dtype(dtype)]
            if bad:  # the reference itself must keep its inputs' dtype (DESIGN.md §5)
                r.check.update(ok=False, why=f"dtypes {bad}, expected {dtype}")
        else:
            r.check = compare(got, ref, dtype, opts.rtol[dtype])
            r.check["against"] = case["reference"]
        if not r.check["ok"]:
            bar = "!" * 78
            print(f"\n{bar}\n!! GRADIENT MISMATCH on {wl.name} {dtype}: {tool} "
                  f"(against {case['reference']}): {r.check['why']}\n{bar}\n",
                  file=sys.stderr, flush=True)
        del got
    del ref
    live = [r for r in runs.values() if r.status == "ok"]
    for i in range(opts.repeats if live else 0):
        if i >= 3 and time.perf_counter() > deadline:
            case["cut"] = f"{i} samples per tool (over the time budget)"
            break
        k = i % len(live)  # rotate the order every round
        for r in live[k:] + live[:k]:
            try:
                r.samples.append(timed(r.call, r.wait, dev, r.calls)[0])
            except Exception as e:  # noqa: BLE001
                r.fail("error", f"while timing: {first_line(e)}")
                live.remove(r)
    for r in runs.values():
        r.call = r.wait = None
    dev.free()
    return case


def ratios(case):
    """dualgrad's median over torch's, per dualgrad tool."""
    runs = case["runs"]
    t = runs.get("torch")
    if t is None or not t.ok:
        return {}
    return {d: runs[d].median / t.median for d in DG_TOOLS if d in runs and runs[d].ok}


def bandwidth(case):
    """{tool: (GB/s, % of copy)}: the counted bytes over each tool's median time."""
    nbytes, runs = case.get("bytes"), case["runs"]
    if not nbytes:
        return {}
    c = runs.get("copy")
    copy_gbps = nbytes / c.median / 1e9 if c is not None and c.ok else None
    return {t: (nbytes / r.median / 1e9,
                100 * (nbytes / r.median / 1e9) / copy_gbps if copy_gbps else None)
            for t, r in runs.items() if r.ok}


def verdict(case, wl):
    """Met / not met / unknown against the issue's target, a mismatch first."""
    runs = case["runs"]
    if all(r.status == "skipped" for r in runs.values()):
        return "? skipped (time budget)"
    bad = [t for t, r in runs.items() if r.check and not r.check["ok"]]
    if bad:
        return f"✗ MISMATCH ({', '.join(bad)})"
    kind, lim = wl.target
    if kind == "copy_pct":
        lim = lim[case["dtype"]]
        j = runs.get("dualgrad.jit")
        if j is None or not j.ok:
            return f"✗ not met: dualgrad.jit {j.status if j else 'not run'}"
        pct = bandwidth(case)["dualgrad.jit"][1]
        if pct is None:
            return "? no copy yardstick"
        return f"{'✓ met' if pct >= lim else '✗ not met'} ({pct:.0f}% of copy)"
    rs = ratios(case)
    if not rs:
        t = runs.get("torch")
        if t is None or not t.ok:
            return f"? no torch to compare ({t.status if t else 'not run'})"
        return "✗ not met: no dualgrad result"
    best = min(rs, key=rs.get)
    return f"{'✓ met' if rs[best] <= lim else '✗ not met'} ({best} {rs[best]:.2f}×)"


def run(dev, opts):
    """All cases on ``dev``: a list of case dicts (see :func:`run_case`), with verdicts."""
    t0 = time.perf_counter()
    deadline = t0 + opts.budget if opts.budget else float("inf")
    cases = []
    for name in opts.workloads:
        wl = WORKLOADS[name]
        for dtype in opts.dtypes:
            print(f"== {name} {dtype} ({wl.size_text(SIZES[opts.sizes][name])})", flush=True)
            case = run_case(wl, dtype, dev, opts, deadline)
            case["verdict"] = verdict(case, wl)
            for t, r in case["runs"].items():
                why = f": {r.reason}" if r.reason and r.status != "n/a" else ""
                print(f"  {t:13s} {cell(r)}{why}", flush=True)
            print(f"  verdict: {case['verdict']}", flush=True)
            cases.append(case)
    return cases, round(time.perf_counter() - t0, 1)


# ---------------------------------------------------------------------------
# Report

def fmt_time(s):
    """Three significant digits in µs, ms or s, the unit chosen after rounding (999.6 µs
    is 1 ms, never "1e+03 µs")."""
    if s is None:
        return DASH
    for scale, unit in ((1e6, "µs"), (1e3, "ms")):
        if float(f"{s * scale:.3g}") < 1000:
            return f"{s * scale:.3g} {unit}"
    return f"{s:.3g} s"


def cell(r):
    if r.status != "ok":
        return {"error": "error†", "skipped": "skipped"}.get(r.status, r.status)
    s = f"{fmt_time(r.median)} [{fmt_time(r.min)}]"
    if r.check and not r.check["ok"]:
        s += " ✗MISMATCH"
    return s


def versions():
    v = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("dualgrad", "cupy", "torch", "jax", "jaxlib", "numba", "numba-cuda"):
        mod = sys.modules.get(name)
        ver = getattr(mod, "__version__", None) if mod is not None else None
        if ver is None:
            for dist in ((name, "cupy-cuda13x", "cupy-cuda12x") if name == "cupy" else (name,)):
                try:
                    ver = metadata.version(dist)
                    break
                except metadata.PackageNotFoundError:
                    pass
        v[name] = ver or "not installed"
    torch = sys.modules.get("torch")
    if torch is not None:
        v["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            v["torch_cudnn"] = torch.backends.cudnn.version()
    jax = sys.modules.get("jax")
    if jax is not None:
        try:
            v["jax_backend"] = jax.default_backend()
        except Exception as e:  # noqa: BLE001
            v["jax_backend"] = first_line(e)
    return v


def markdown(meta, cases):
    dev, ver = meta["device"], meta["versions"]
    where = (f"GPU: {dev['gpu']} ({dev['gpu_memory_gib']} GiB, compute capability "
             f"{dev['compute_capability']}), CUDA runtime {dev['cuda_runtime']}, driver "
             f"{dev['cuda_driver']}" if "gpu" in dev else
             f"host (no GPU): numpy arrays on {dev.get('cpu')}, no-op sync, torch on cpu, "
             f"jax on cpu")
    vs = ", ".join(f"{k} {v}" for k, v in ver.items())
    L = [f"# dualgrad on a GPU: `{meta['command']}`", "",
         f"{meta['date']}. {where}.", "", f"Versions: {vs}.", "",
         f"Each time is the median per call [min] over up to {meta['repeats']} samples; a "
         f"sample runs calls back to back for ≥ {meta['min_time']:g} s and the device is "
         "synchronised before every clock read (cupy.cuda.Device().synchronize(), and "
         "torch.cuda.synchronize() / jax.block_until_ready for their results). Samples "
         "are taken round-robin over the tools. The first two calls of every tool (dg.jit "
         "records, then compiles; XLA compiles; cuDNN and cuBLAS set up) and a third "
         "(checked, calibrates the sample) are not timed: see First calls. float32 is full "
         "float32 everywhere: TF32 off in torch (allow_tf32 = False), jax at "
         "Precision.HIGHEST, CuPy's default. "
         f"Whole run: {meta['bench_seconds']} s.", "",
         "## Results", "",
         "| case | dualgrad | dualgrad.jit | torch | jax.jit | copy | dualgrad ÷ torch | "
         "target | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        runs = c["runs"]
        rs = ratios(c)
        rtext = ", ".join(f"{'jit' if t == 'dualgrad.jit' else 'eager'} {x:.2f}×"
                          for t, x in rs.items()) or DASH
        cells = [cell(runs[t]) if t in runs else "not run" for t in TOOLS]
        wl = WORKLOADS[c["workload"]]
        L.append(f"| {c['workload']} {c['dtype']}, {wl.size_text(c['size'])} | "
                 + " | ".join(cells) + f" | {rtext} | {c['target']} | {c['verdict']} |")
    ew = [c for c in cases if c.get("bytes")]
    if ew:
        L += ["", "## Elementwise bandwidth", "",
              "Bytes counted for the gradient: x read once + the gradient written once = "
              "2 · n · itemsize; nothing else needs to reach memory (tanh, sin, exp and the "
              "sum's seed are recomputed in registers by a fused kernel). The copy "
              "`out[...] = x` moves the same 2 · n · itemsize. GB/s = bytes / median time.",
              "", "| case | bytes counted | " + " | ".join(
                  f"{t} GB/s (% of copy)" for t in TOOLS) + " | target |",
              "|---|---|" + "---|" * len(TOOLS) + "---|"]
        for c in ew:
            bw = bandwidth(c)
            row = []
            for t in TOOLS:
                if t not in bw:
                    row.append(DASH)
                else:
                    gbps, pct = bw[t]
                    show = pct is not None and t != "copy"
                    row.append(f"{gbps:.3g}" + (f" ({pct:.0f}%)" if show else ""))
            L.append(f"| elementwise {c['dtype']}, n={c['size']:,} | 2·{c['size']:,}·"
                     f"{np.dtype(c['dtype']).itemsize} = {c['bytes']:,} | " + " | ".join(row)
                     + f" | {c['target']} |")
    L += ["", "## First calls (not in the timings)", "",
          "| case | tool | 1st call | 2nd call | steady (median) | calls per sample |",
          "|---|---|---|---|---|---|"]
    for c in cases:
        for t, r in c["runs"].items():
            if r.status == "ok" and t != "copy":
                L.append(f"| {c['workload']} {c['dtype']} | {t} | {fmt_time(r.first_s)} | "
                         f"{fmt_time(r.second_s)} | {fmt_time(r.median)} | {r.calls} |")
    L += ["", "## Gradient checks", "",
          "Each tool's gradient after its third call, copied to the host, against dualgrad "
          "eager's (or, where that failed, the first tool that ran): same shapes, the "
          "inputs' dtype, |a − b| ≤ rtol·(|b| + max|b|) elementwise per output, rtol "
          + " / ".join(f"{v:g} ({k})" for k, v in meta["rtol"].items()) + ".", "",
          "| case | reference | " + " | ".join(t for t in TOOLS if t != "copy") + " |",
          "|---|---|" + "---|" * (len(TOOLS) - 1)]
    for c in cases:
        row = []
        for t in TOOLS[:-1]:
            r = c["runs"].get(t)
            if r is None or r.check is None:
                row.append(DASH)
            elif r.check.get("reference"):
                row.append("reference" if r.check["ok"] else f"✗ reference: {r.check['why']}")
            elif r.check["ok"]:
                row.append(f"ok ({r.check['max_err_scaled']:.1e})")
            else:
                row.append(f"✗ MISMATCH: {r.check['why']}")
        L.append(f"| {c['workload']} {c['dtype']} | {c['reference'] or DASH} | "
                 + " | ".join(row) + " |")
    errs = [(c, t, r) for c in cases for t, r in c["runs"].items()
            if r.status not in ("ok", "n/a")]
    L += ["", "## Tools that did not run", ""]
    L += [f"- {c['workload']} {c['dtype']}, {t}: {r.status} — {r.reason}" for c, t, r in errs] \
        or ["none"]
    notes = [f"- {c['workload']} {c['dtype']}, {t}: {n}" for c in cases
             for t, r in c["runs"].items() for n in r.notes]
    notes += [f"- {c['workload']} {c['dtype']}: sampling cut to {c['cut']}" for c in cases
              if c.get("cut")]
    if notes:
        L += ["", "## Notes", ""] + notes
    if meta.get("kernels"):
        L += ["", "## Kernels: dualgrad.backend.cuda against CuPy", ""] + meta["kernels"]
    return "\n".join(L) + "\n"


def to_json(meta, cases):
    out = []
    for c in cases:
        d = {k: v for k, v in c.items() if k != "runs"}
        d["runs"] = {t: r.to_json() for t, r in c["runs"].items()}
        d["dualgrad_over_torch"] = ratios(c)
        d["bandwidth_gbps_pct_copy"] = bandwidth(c)
        out.append(d)
    return {"meta": meta, "cases": out}


# ---------------------------------------------------------------------------
# The per-kernel table (dualgrad.backend.cuda against CuPy)

def _best(fn, sync, repeats):
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


def kernel_table(n=10_000_000, dtype="float32", repeats=20):
    """Markdown lines: each kernel of ``dualgrad.backend.cuda`` and its CuPy equivalent,
    best of ``repeats``, with a device-to-device copy of the same bytes as the yardstick."""
    import cupy as cp

    from dualgrad.backend import cuda as C
    sync = cp.cuda.Device().synchronize
    dt = np.dtype(dtype)
    x = cp.random.standard_normal(n).astype(dt)
    out = cp.empty_like(x)
    rows = cp.random.standard_normal((n // 16, 16)).astype(dt)
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
    L = [f"| kernel ({dtype}, n={n:,}) | dualgrad ms | GB/s | CuPy ms | dualgrad / CuPy |",
         "|---|---|---|---|---|"]
    for name, nbytes, ours, theirs in cases:
        try:
            t = _best(ours, sync, repeats)
        except Exception as e:  # noqa: BLE001
            L.append(f"| {name} | error: {first_line(e)} | | | |")
            continue
        tc = _best(theirs, sync, repeats) if theirs else None
        ratio = f"{t / tc:.2f}" if tc else "-"
        tcs = f"{tc * 1e3:.3f}" if tc else "-"
        L.append(f"| {name} | {t * 1e3:.3f} | {nbytes / t / 1e9:.0f} | {tcs} | {ratio} |")
    return L


# ---------------------------------------------------------------------------
# Command line

def _list(text, known, what):
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in items if s not in known]
    if bad:
        raise SystemExit(f"unknown {what} {', '.join(bad)}; known: {', '.join(known)}")
    return items


def parse_args(argv, prog):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "host"),
                   help="cuda (CuPy; the default) or host: numpy on the CPU, the same "
                        "harness without a GPU")
    p.add_argument("--sizes", default="full", choices=tuple(SIZES),
                   help="full (1e8 elements, batch 4096, batch 256) or tiny (seconds, CPU)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list")
    p.add_argument("--dtypes", default="float32,float64", help="comma list")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma list from " + ", ".join(TOOLS))
    p.add_argument("--repeats", type=int, default=10, help="samples per tool (default 10)")
    p.add_argument("--min-time", type=float, default=0.02,
                   help="seconds per sample: calls loop until this long (default 0.02)")
    p.add_argument("--budget", type=float, default=200.0,
                   help="seconds: past it, remaining cases are skipped and sampling stops "
                        "at 3 samples (default 200; 0: none)")
    p.add_argument("--rtol-f32", type=float, default=RTOL["float32"])
    p.add_argument("--rtol-f64", type=float, default=RTOL["float64"])
    p.add_argument("--jit-codegen", default=None, choices=("auto", "numba", "off"),
                   help="dg.jit's codegen for the dualgrad.jit tool (default: dg.jit's own)")
    p.add_argument("--no-kernels", action="store_true",
                   help="skip the per-kernel table (dualgrad.backend.cuda vs CuPy)")
    p.add_argument("--kernels", action="store_true",
                   help="only the per-kernel table, for --dtype at --n elements")
    p.add_argument("--n", type=int, default=10_000_000, help="elements per array (--kernels)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="--kernels only")
    p.add_argument("--out", default=str(RESULTS), help="results folder (default bench/results)")
    p.add_argument("--no-write", action="store_true", help="print only, write no files")
    a = p.parse_args(argv)
    a.workloads = _list(a.workloads, tuple(WORKLOADS), "workload")
    a.dtypes = _list(a.dtypes, tuple(RTOL), "dtype")
    a.tools = _list(a.tools, TOOLS, "tool")
    return a


def main(argv=None, prog="python -m bench.gpu"):
    argv = sys.argv[1:] if argv is None else list(argv)
    a = parse_args(argv, prog)
    try:
        dev = cuda_device() if a.device == "cuda" else host_device()
    except DeviceMissing as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    if a.kernels:
        if dev.name != "cuda":
            print(f"{prog}: --kernels {NEEDS}", file=sys.stderr)
            return 2
        print("\n".join(kernel_table(a.n, a.dtype)))
        return 0
    opts = Options(a.sizes, a.workloads, a.dtypes, a.tools, max(1, a.repeats), a.min_time,
                   a.budget, {"float32": a.rtol_f32, "float64": a.rtol_f64}, a.jit_codegen)
    meta = {"date": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
            "command": " ".join([prog] + [shlex.quote(s) for s in argv]),
            "device": dev.info, "sizes": {w: SIZES[a.sizes][w] for w in a.workloads},
            "repeats": opts.repeats, "min_time": opts.min_time, "budget_s": opts.budget,
            "rtol": {d: opts.rtol[d] for d in opts.dtypes}, "jit_codegen": opts.jit_codegen,
            "bytes_counted": "elementwise: 2 * n * itemsize (x read once, gradient written "
                             "once)"}
    cases, meta["bench_seconds"] = run(dev, opts)
    meta["versions"] = versions()
    if dev.name == "cuda" and not a.no_kernels:
        meta["kernels"] = []
        if opts.budget and meta["bench_seconds"] > opts.budget:
            meta["kernels"] = ["skipped: the run is over its time budget (--budget)"]
        for dt in opts.dtypes if not meta["kernels"] else ():
            try:
                meta["kernels"] += kernel_table(10_000_000, dt) + [""]
            except Exception as e:  # noqa: BLE001
                meta["kernels"] += [f"{dt}: error: {first_line(e)}", ""]
    md = markdown(meta, cases)
    print()
    print(md)
    if not a.no_write:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"gpu-bench-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        (out / f"{stem}.md").write_text(md)
        (out / f"{stem}.json").write_text(
            json.dumps(to_json(meta, cases), indent=1, default=str) + "\n")
        print(f"wrote {out / stem}.md and .json")
    mism = [f"{c['workload']} {c['dtype']}" for c in cases if c["verdict"].startswith("✗ MIS")]
    if mism:
        print(f"!! gradient mismatches in: {', '.join(mism)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
