"""kernels/vecmath.py: within 4 ulp of numpy everywhere, exact on special values, vectorized.

One table row per function: its numpy reference and the inputs that stress it.  Errors
are measured in ulps of numpy's result (``np.spacing``), never bitwise: numpy's
AVX-512 and AVX2 loops round differently, and both are ~1 ulp from exact.
"""

import doctest
import math
import os
import platform
import re
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

from kernels import vecmath as vm

PI = np.longdouble("3.14159265358979323846264338327950288")
RNG = np.random.default_rng(20261201)
MAX_ULP = 4.0


def _logspace(lo, hi, n=3000):
    return np.exp(RNG.uniform(lo, hi, n) * math.log(10))


def _signed(v):
    return np.concatenate([v, -v])


def _common(dt):
    tiny = np.finfo(dt).smallest_subnormal
    return np.concatenate([RNG.standard_normal(3000), 10 * RNG.standard_normal(3000),
                           _signed(_logspace(-30, 0)), [0.0, -0.0, tiny, -tiny, 3 * tiny]])


def _exp_inputs(dt):
    big = 709.78 if dt == np.float64 else 88.72       # overflow threshold
    low = -745.13 if dt == np.float64 else -103.97    # below: 0
    sub = -708.4 if dt == np.float64 else -87.3       # below: subnormal results
    edges = [np.linspace(e - 2, e + 2, 2001) for e in (big, low, sub)]
    return np.concatenate([*edges, RNG.uniform(low, big, 5000), [1e300, -1e300]])


def _log_inputs(dt):
    fi = np.finfo(dt)
    lo, hi = math.log10(fi.smallest_subnormal), math.log10(fi.max)
    near1 = 1 + np.arange(-300, 300) * fi.eps
    return np.concatenate([_logspace(lo, hi, 6000), near1, RNG.uniform(0.5, 2, 3000),
                           [fi.max, fi.tiny, fi.smallest_subnormal, -1.0, 1.0]])


def _log1p_inputs(dt):
    fi = np.finfo(dt)
    return np.concatenate([_log_inputs(dt) - 1, _signed(_logspace(-40, 0)),
                           -1 + _logspace(-15, 0), [-1.0, -1.5, fi.max]])


def _trig_inputs(dt):
    lim = vm.LIMITS["sin"]
    k = np.concatenate([np.arange(1, 2000), RNG.integers(1, int(lim / 1.5708), 4000)])
    near = (k * (PI / 2)).astype(dt)                  # doubles closest to k pi/2
    below = np.nextafter(dt(lim), dt(0)) - np.arange(2000) * np.spacing(dt(lim)) * 7
    return np.concatenate([_signed(near), RNG.uniform(-lim, lim, 6000), _signed(below),
                           _signed(_logspace(-5, 6))])


def _tanh_inputs(dt):
    return np.concatenate([_signed(np.linspace(0.5, 0.6, 2001)), RNG.uniform(-25, 25, 4000),
                           [1e300, -1e300]])


def _sigmoid(x):   # numpy has none: 1/(1 + e^-x) in extended precision, then rounded
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-x.astype(np.longdouble)))).astype(x.dtype)


# name: (numpy reference, extra inputs beyond _common)
TABLE = {
    "exp": (np.exp, _exp_inputs),
    "expm1": (np.expm1, _exp_inputs),
    "log": (np.log, _log_inputs),
    "log1p": (np.log1p, _log1p_inputs),
    "sin": (np.sin, _trig_inputs),
    "cos": (np.cos, _trig_inputs),
    "tanh": (np.tanh, _tanh_inputs),
    "sigmoid": (_sigmoid, lambda dt: np.linspace(-800, 800, 20001)),
}

LOOPS = {}


def loop(name):
    """A compiled ``out[i] = vm.<name>(x[i])`` loop (one per function, any dtype)."""
    if name not in LOOPS:
        f = getattr(vm, name)

        @njit
        def run(x, out):
            for i in range(x.size):
                out[i] = f(x[i])
        LOOPS[name] = run
    return LOOPS[name]


def inputs(name, dt):
    with np.errstate(all="ignore"):
        x = np.concatenate([_common(dt), TABLE[name][1](dt), [np.inf, -np.inf, np.nan]])
        x = x.astype(dt)
    if name in ("sin", "cos"):
        x = x[~(np.abs(x) >= vm.LIMITS[name])]   # nan stays
    return x


def ulps(got, want):
    """|got - want| in ulps of want; 0 where both are the same inf/nan, inf if only one is."""
    with np.errstate(all="ignore"):
        err = np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(want)).astype(np.float64)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    err[same] = 0.0
    err[np.isfinite(got) != np.isfinite(want)] = np.inf
    return err


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("name", TABLE)
def test_within_4_ulp_of_numpy(name, dt):
    x = inputs(name, dt)
    got = np.empty_like(x)
    loop(name)(x, got)
    with np.errstate(all="ignore"):
        want = TABLE[name][0](x)
    assert got.dtype == want.dtype == dt
    err = ulps(got, want)
    i = int(np.argmax(err))
    assert err[i] <= MAX_ULP, f"{name}({x[i]!r}) = {got[i]!r}, numpy {want[i]!r}: {err[i]} ulp"
    zero = (want == 0) & (x == 0)   # signed zeros: sin(-0) = -0, cos(-0) = 1...
    assert (np.signbit(got[zero]) == np.signbit(want[zero])).all()


SPECIALS = [  # (function, x, exact result)
    ("exp", np.inf, np.inf), ("exp", -np.inf, 0.0), ("exp", 0.0, 1.0), ("exp", 710.0, np.inf),
    ("exp", -746.0, 0.0), ("expm1", -np.inf, -1.0), ("expm1", -0.0, -0.0),
    ("expm1", np.inf, np.inf), ("log", 0.0, -np.inf), ("log", -0.0, -np.inf),
    ("log", -1.0, np.nan), ("log", np.inf, np.inf), ("log", 1.0, 0.0),
    ("log1p", -1.0, -np.inf), ("log1p", -2.0, np.nan), ("log1p", -0.0, -0.0),
    ("log1p", np.inf, np.inf), ("sin", -0.0, -0.0), ("sin", np.inf, np.nan),
    ("cos", -np.inf, np.nan), ("sin", 2.0**20, np.nan), ("cos", 1e300, np.nan),
    ("tanh", -np.inf, -1.0), ("tanh", -0.0, -0.0), ("tanh", 30.0, 1.0),
    ("sigmoid", -np.inf, 0.0), ("sigmoid", np.inf, 1.0),
] + [(name, np.nan, np.nan) for name in TABLE]


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_special_values_exact(dt):
    for name, x, want in SPECIALS:
        with np.errstate(over="ignore"):
            xs = np.array([x], dt)
        got = np.empty_like(xs)
        loop(name)(xs, got)
        assert got.dtype == dt
        ok = np.isnan(got[0]) if np.isnan(want) else (
            got[0] == want and np.signbit(got[0]) == np.signbit(want))
        assert ok, f"{name}({x}) = {got[0]}, want {want}"


def test_limits_cover_every_function():
    assert set(vm.LIMITS) == set(TABLE) and vm.LIMITS["sin"] == vm.LIMITS["cos"] == 2.0**20
    assert all(vm.LIMITS[n] == math.inf for n in TABLE if n not in ("sin", "cos"))


def test_scalar_calls_from_python_and_docstrings():
    assert vm.exp(0.0) == 1.0 and vm.log(1) == 0.0
    v = vm.sin(np.float32(1.0))   # numba boxes a float32 result as a Python float
    assert float(np.float32(v)) == v and abs(v - math.sin(1.0)) < 1e-7
    assert doctest.testmod(vm, optionflags=doctest.ELLIPSIS).failed == 0


def _asm_of_loop(f, x):
    """The machine code of the nopython function of ``out[i] = f(x[i])`` (not its wrapper)."""
    run = loop(f)
    run(x, np.empty_like(x))
    asm = run.inspect_asm(run.signatures[0])
    bodies = re.findall(r"\.type\s+(\S+),@function\n(.*?)\.Lfunc_end", asm, re.S)
    return "".join(body for sym, body in bodies if "run" in sym and "cpython" not in sym
                   and "cfunc" not in sym)


def _has_avx2():
    from llvmlite import binding as ll
    return "+avx2" in ll.get_host_cpu_features().flatten()


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or not _has_avx2(),
                    reason="the SIMD check reads x86 AVX2/AVX-512 assembly")
@pytest.mark.parametrize("name", ["exp", "sin", "tanh", "log"])
def test_loop_is_vectorized(name):
    body = _asm_of_loop(name, np.linspace(0.1, 1, 64))
    assert body, "could not find the loop's function in the assembly"
    assert not re.search(r"\bcall", body), f"a call is left in the {name} loop"
    packed = re.findall(r"\bv(?:fmadd|fnmadd|fmsub|mul|add)\w*pd\s+[^\n]*%[yz]mm", body)
    assert len(packed) >= 5, f"the {name} loop is not vectorized"


SCRIPT = """
import numpy as np
from kernels import vecmath as vm
x = np.array([-3.5, -0.3, 1e-3, 0.7, 2.0, 40.0])
for name, ref in [("exp", np.exp), ("expm1", np.expm1), ("sin", np.sin), ("cos", np.cos),
                  ("tanh", np.tanh), ("log", np.log), ("log1p", np.log1p)]:
    xs = np.abs(x) if name.startswith("log") else x
    for dt in (np.float64, np.float32):
        v = xs.astype(dt)
        got = np.array([getattr(vm, name)(e) for e in v])
        assert got.dtype == dt, (name, got.dtype)
        err = np.abs(got - ref(v)) / np.spacing(np.abs(ref(v)))
        assert err.max() <= 4, (name, dt, err)
assert np.isnan(vm.log(-1.0)) and vm.exp(-np.inf) == 0 and vm.tanh(np.inf) == 1
print("ok")
"""


def test_runs_as_plain_python_with_jit_disabled():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=root,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
