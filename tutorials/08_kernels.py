# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 8. Writing a numba kernel and registering it as a primitive
#
# Every operation dualgrad differentiates is a **primitive**: an implementation on raw
# arrays plus a forward rule (JVP) and a reverse rule (VJP), registered once in a table
# (`dualgrad/rules/`). numpy code built from many small primitives pays for each
# one twice: numpy makes a temporary array per operation, and dualgrad records a tape
# entry per operation and runs a rule per entry on the way back.
#
# When one elementwise expression dominates a workload, it can be **fused** into a single
# compiled loop with numba, and registered as *one* primitive. Its derivative rules are
# written with primitives too, so the new primitive composes with every transform: `grad`,
# `jvp`, `jacfwd`, `hessian`, nesting.
#
# Our example is the elementwise part of the `elementwise` benchmark workload,
#
# $$\phi(x) = \tanh(x)\sin(x) + e^{-x^2},$$
#
# $$\phi'(x) = (1 - \tanh^2 x)\sin x + \tanh x \cos x - 2x\,e^{-x^2}.$$

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from numba import njit

import dualgrad as dg
from dualgrad.rules import defprim, multiply
from dualgrad.teach.timing import median_time

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIG_DIR = Path(os.environ.get("DUALGRAD_TUTORIAL_FIGURES", HERE / "figures"))
FIG_DIR.mkdir(parents=True, exist_ok=True)


# %% [markdown]
# ## The kernels
#
# numba's `@njit` compiles a Python loop over a flat array to machine code: one pass over
# memory, no temporaries. We write three kernels: $\phi$, $\phi'$ and $\phi''$ (the last
# one lets us take second derivatives). They know nothing about autodiff: raw float
# arrays in, raw float arrays out.

# %%
@njit(cache=False)
def phi_kernel(x, out):
    for i in range(x.size):
        v = x[i]
        out[i] = np.tanh(v) * np.sin(v) + np.exp(-v * v)


@njit(cache=False)
def dphi_kernel(x, out):
    for i in range(x.size):
        v = x[i]
        t = np.tanh(v)
        out[i] = (1.0 - t * t) * np.sin(v) + t * np.cos(v) - 2.0 * v * np.exp(-v * v)


@njit(cache=False)
def d2phi_kernel(x, out):
    for i in range(x.size):
        v = x[i]
        t, s, c = np.tanh(v), np.sin(v), np.cos(v)
        sech2 = 1.0 - t * t
        out[i] = (-2.0 * t * sech2 * s + 2.0 * sech2 * c - t * s
                  + (4.0 * v * v - 2.0) * np.exp(-v * v))


def elementwise(kernel):
    """Wrap a flat-array kernel as a function of an array (or number) of any shape."""
    def run(x):
        x = np.asarray(x, dtype=np.float64)
        out = np.empty(x.size)
        kernel(np.ascontiguousarray(x).reshape(-1), out)
        return out.reshape(x.shape) if x.ndim else out[0]
    return run


# %% [markdown]
# ## Registering the primitives
#
# `defprim(name, impl, jvp=(rule,), vjp=(rule,))` registers a primitive with one rule per
# argument. Rule signatures, as in every row of `dualgrad/rules/`:
#
# * `jvp[i](t, ans, *args)`: the tangent of the output, given the tangent `t` of argument
#   `i`;
# * `vjp[i](g, ans, *args)`: the cotangent of argument `i`, given the output cotangent `g`.
#
# For an elementwise function both are "multiply by the local derivative":
# $\dot y = \phi'(x)\,\dot x$ and $\bar x = \phi'(x)\,\bar y$. The rules call `multiply` and
# `dphi` — **primitives**, not raw numpy — so when the arguments are themselves traced
# (a derivative of a derivative), the rules are recorded and differentiated like any other
# code. That is all second order needs. `d2phi` has no rules (`None`), so a third
# derivative raises a clear error instead of returning something wrong.
#
# Tangents may carry leading batch axes (`jacfwd` pushes many directions at once); since
# `multiply` broadcasts, these rules handle that for free.

# %%
d2phi = defprim("d2phi", elementwise(d2phi_kernel), jvp=(None,), vjp=(None,))
dphi = defprim("dphi", elementwise(dphi_kernel),
               jvp=(lambda t, ans, x: multiply(t, d2phi(x)),),
               vjp=(lambda g, ans, x: multiply(g, d2phi(x)),))
phi = defprim("phi", elementwise(phi_kernel),
              jvp=(lambda t, ans, x: multiply(t, dphi(x)),),
              vjp=(lambda g, ans, x: multiply(g, dphi(x)),))


def phi_numpy(x):
    return np.tanh(x) * np.sin(x) + np.exp(-x ** 2)


# %% [markdown]
# The new primitive is called directly (`phi(x)`); on plain arrays it just runs the
# kernel, on traced values it records one tape entry. Its values and derivatives match
# the numpy formula differentiated by dualgrad:

# %%
x = np.linspace(-3, 3, 7)
print("phi(x) kernel :", phi(x))
print("phi(x) numpy  :", phi_numpy(x))
g_kernel = dg.grad(lambda x: np.sum(phi(x)))(x)
g_numpy = dg.grad(lambda x: np.sum(phi_numpy(x)))(x)
print("grad kernel   :", g_kernel)
print("grad numpy    :", g_numpy)
assert np.allclose(phi(x), phi_numpy(x), rtol=1e-14, atol=1e-15)
assert np.allclose(g_kernel, g_numpy, rtol=1e-13, atol=1e-14)
assert np.allclose(dg.hessian(lambda x: np.sum(phi(x)))(x),
                   dg.hessian(lambda x: np.sum(phi_numpy(x)))(x), rtol=1e-12, atol=1e-13)

# %% [markdown]
# ## Checking the rules
#
# Hand-written rules are where bugs live (tutorial 5). `check_grads` compares forward and
# reverse mode, first and second order, against finite differences:

# %%
x_check = np.random.default_rng(0).standard_normal(10)
dg.check_grads(phi, (x_check,), order=2)
print("check_grads(phi, order=2, modes=('fwd', 'rev')): passed")

try:
    dg.grad(dg.grad(dg.grad(phi)))(0.5)
except TypeError as err:
    print("third derivative:", err)

# %% [markdown]
# The tape shows the difference in bookkeeping: the numpy formula records one entry per
# operation, the kernel one entry in all.

# %%
for name, fn in (("numpy formula", phi_numpy), ("numba kernel", phi)):
    with dg.Tape() as tape:
        xt = tape.watch(x)
        fn(xt)
    print(f"{name}: {len(tape) - 1} tape entries")

# %% [markdown]
# ## Benchmark
#
# We time, on $10^6$ float64 values (`median_time`: the median of 7 timed calls, after a
# warm-up call that also triggers numba's compilation; a median, so that a few slow calls
# do not move it): the plain value, and the gradient of
# $\sum_i \phi(x_i)$ by `dg.grad`, each with the numpy formula and the kernel. The
# numbers depend on the machine; the script prints its own.

# %%
xb = np.random.default_rng(1).standard_normal(1_000_000)
grad_numpy = dg.grad(lambda x: np.sum(phi_numpy(x)))
grad_kernel = dg.grad(lambda x: np.sum(phi(x)))
assert np.allclose(grad_numpy(xb), grad_kernel(xb), rtol=1e-12, atol=1e-14)
timings = {
    ("value", "numpy"): median_time(lambda: phi_numpy(xb), repeats=7),
    ("value", "numba kernel"): median_time(lambda: phi(xb), repeats=7),
    ("gradient", "numpy"): median_time(lambda: grad_numpy(xb), repeats=7),
    ("gradient", "numba kernel"): median_time(lambda: grad_kernel(xb), repeats=7),
}
for (what, how), t in timings.items():
    print(f"{what:8s} {how:12s}: {t * 1e3:7.2f} ms")
for what in ("value", "gradient"):
    speedup = timings[(what, "numpy")] / timings[(what, "numba kernel")]
    print(f"{what}: numba kernel is {speedup:.1f}x the speed of numpy")

# %%
fig, ax = plt.subplots(figsize=(6, 4))
labels = ["value", "gradient"]
pos = np.arange(len(labels))
for k, how in enumerate(("numpy", "numba kernel")):
    ax.bar(pos + (k - 0.5) * 0.38, [timings[(w, how)] * 1e3 for w in labels], 0.38,
           label=how)
ax.set_xticks(pos, ["phi(x)", "dg.grad(sum(phi))"])
ax.set_ylabel("median time [ms], 1e6 float64")
ax.set_title("tanh(x) sin(x) + exp(-x^2): numpy vs one fused numba primitive")
ax.legend()
fig.tight_layout()
fig.savefig(FIG_DIR / "08_kernel_benchmark.png", dpi=100)
print("saved", FIG_DIR / "08_kernel_benchmark.png")

# %% [markdown]
# ## What to take away
#
# * A primitive = implementation + JVP rule + VJP rule. The implementation can be
#   anything on raw arrays — here a compiled numba loop.
# * Write the rules with primitives (`multiply`, and another kernel-backed primitive for
#   the derivative), and the new operation works under every transform and at higher
#   order.
# * Check hand-written rules with `check_grads`, and measure before and after: fusing
#   pays where many small elementwise operations dominate.
