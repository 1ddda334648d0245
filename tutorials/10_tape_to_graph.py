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
# # 10. From tape to graph: `dg.jit`
#
# Every call of a `dg.grad` function re-runs your Python and pays the dispatch cost of
# every primitive. But the Wengert list of tutorial 2 is already a graph. `dg.jit` records
# a function **once per signature** (the shapes and dtypes of its arguments), optimises
# that graph with a few small passes, and from then on **replays** it as one generated
# straight-line Python function: your function is not called again.
#
# This tutorial shows the optimiser at work with `lower()`, which returns the graph before
# and after optimisation, then guards (Python `if` on traced values), then timings.

# %%
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import dualgrad as dg

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIG_DIR = Path(os.environ.get("DUALGRAD_TUTORIAL_FIGURES", HERE / "figures"))
FIG_DIR.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Constant chains fold — exactly
#
# `t * 2 * 2 * 2` records three multiplies. Scaling by a power of two never rounds, so
# the optimiser may merge them into `t * 8` and the result keeps its bits.

# %%
lo = dg.jit(lambda t: t * 2.0 * 2.0 * 2.0).lower(np.arange(3.0))
print(lo)
assert len(lo.before) == 3 and len(lo.after) == 1
assert lo.after.count("multiply") == 1 and "* 8.0" in str(lo.after)

# %% [markdown]
# The same rewrite is **not** done for `t * 3 * 5`: `(t*3)*5` rounds twice and `t*15`
# once, so they can differ in the last bit. Nor is `t + 0.0` dropped: for `t = -0.0`,
# `-0.0 + 0.0` is `+0.0`. Those rewrites need `fast_math=True`, as Theano flags its
# unsafe ones.

# %%
x = np.array([0.1, 0.7, 1e-3])
exact = dg.jit(lambda t: t * 3.0 * 5.0)
fast = dg.jit(lambda t: t * 3.0 * 5.0, fast_math=True)
print("exact graph:", len(exact.lower(x).after), "ops; fast_math graph:",
      len(fast.lower(x).after), "op")
assert len(exact.lower(x).after) == 2 and len(fast.lower(x).after) == 1
np.testing.assert_array_equal(exact(x), x * 3.0 * 5.0)   # bit for bit, always
print("bits differ under fast_math:", np.sum(fast(x) != x * 3.0 * 5.0), "of 3")

# %% [markdown]
# ## The forward pass and the reverse sweep share subexpressions
#
# `jit(grad(f))` records the forward pass *and* the reverse sweep into one graph (the
# derivative rules are primitives too). For `f(x) = sum(sin(x) * cos(x))` the forward pass
# computes `cos(x)`, and the sweep needs `cos(x)` again as the derivative of `sin`:
# common-subexpression elimination keeps one.

# %%
f = lambda x: np.sum(np.sin(x) * np.cos(x))  # noqa: E731
lo = dg.jit(dg.grad(f)).lower(np.linspace(0.0, 1.0, 5))
print(lo.summary_text())
print(lo.after)
assert lo.before.count("cos") == 2 and lo.after.count("cos") == 1

# %% [markdown]
# ## Guards: Python control flow on traced values
#
# Recording runs your function on concrete values, so an `if` takes one branch. The
# comparison is recorded as a **guard**; replay checks it, and when it fails the function
# is recorded again for the other branch, and both graphs are cached (ADOL-C's retaping).
# A jitted function never returns the other branch's result.

# %%
def step(x):
    if x > 0:
        return x * x
    return -3.0 * x


jstep = dg.jit(step)
print(jstep.lower(2.0).after)
values = [jstep(v) for v in (2.0, 3.0, -1.0, -2.0, 4.0)]
print(values, "recorded", jstep.trace_count, "times")
assert values == [4.0, 9.0, 3.0, 6.0, 16.0] and jstep.trace_count == 2

# %% [markdown]
# ## Timings: eager against jit
#
# Baydin's ln(x1) + x1·x2 − sin(x2): its gradient eagerly, and jitted. (Timings are
# printed, not asserted: they depend on the machine.)

# %%
baydin = lambda x1, x2: np.log(x1) + x1 * x2 - np.sin(x2)  # noqa: E731
g = dg.grad(baydin, argnums=(0, 1))
jg = dg.jit(g)
assert jg(2.0, 5.0) == g(2.0, 5.0) == (5.5, 1.7163378145367738)


def per_call(fn, n=2000):
    t0 = time.perf_counter()
    for _ in range(n):
        fn(2.0, 5.0)
    return (time.perf_counter() - t0) / n * 1e6


t_eager, t_jit = per_call(g), per_call(jg)
print(f"eager grad: {t_eager:.1f} µs per call, jit(grad): {t_jit:.1f} µs per call")
print(jg.lower(2.0, 5.0).after)

fig, ax = plt.subplots(figsize=(5, 2.5))
ax.barh(["dg.grad", "dg.jit(dg.grad)"], [t_eager, t_jit], color=["#888", "#2a7"])
ax.set_xlabel("µs per gradient of Baydin's f (this machine)")
fig.tight_layout()
fig.savefig(FIG_DIR / "10_eager_vs_jit.png", dpi=100)

# %% [markdown]
# ## Fused kernels: one pass over memory
#
# Replaying the graph one numpy call per node reads and writes a whole array per node:
# the gradient of `sum(tanh(x)*sin(x) + exp(-x**2))` below has 15 nodes after the passes,
# so on 10⁶ float64 values it moves about 15 × 2 × 8 MB = 240 MB (each node reads one or
# two arrays and writes one). dg.jit's back end (`dualgrad/compiler/`) writes the whole
# elementwise region as one numba loop instead: it reads `x` once and writes the gradient
# once, 16 MB in all. Each node's line comes from its row's scalar form in the primitive
# table; `vm.sin`, `vm.exp`... are `kernels/vecmath.py`'s functions, which LLVM can
# vectorize (numba's libm calls cannot be), and `exact` is the same loop with numpy's
# scalar functions, run instead if an argument of `sin`/`cos` is outside `vm.LIMITS`.

# %%
h = lambda x: np.sum(np.tanh(x) * np.sin(x) + np.exp(-x**2))  # noqa: E731
jh = dg.jit(dg.grad(h), codegen="numba")  # "auto" (the default) also times it first
xs = np.random.default_rng(0).standard_normal(1000)
lowered = jh.lower(xs)
print(lowered.summary_text())
print(lowered.kernels[0])
print(lowered.source)  # the replay: one call to the kernel
jh(xs)
assert np.allclose(jh(xs), dg.grad(h)(xs), rtol=1e-13, atol=1e-15)
big = np.random.default_rng(1).standard_normal(1_000_000)
jh(big)
jh(big)  # a new signature's first replay: the same kernel (its loops read the length)
for name, fn in [("numpy forward F", h), ("eager grad", dg.grad(h)), ("jit grad", jh)]:
    t0 = time.perf_counter()
    for _ in range(5):
        fn(big)
    print(f"{name}: {(time.perf_counter() - t0) / 5 * 1e3:.1f} ms")
