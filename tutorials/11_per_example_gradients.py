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
# # 11. Per-example gradients with `dg.vmap`, and DP-SGD
#
# `dg.grad` of a mean loss gives the *average* gradient of a batch. Some algorithms need
# each example's own gradient: differentially private SGD (Abadi et al. 2016) clips every
# example's gradient to a norm bound $C$ before averaging and adds Gaussian noise;
# influence functions and gradient-based data selection need them too.
#
# The obvious code is a Python loop of `dg.grad`, one example at a time. `dg.vmap` (JAX's
# semantics) writes the same thing without the loop: `vmap(grad(loss), in_axes=(None, 0,
# 0))` maps the per-example gradient over axis 0 of the inputs and labels, and shares the
# parameters (`None`). Under the hood `vmap` is one more trace: each primitive runs its
# batching rule once on the whole batch, so the cost is a few batched array operations,
# not N Python passes.

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

rng = np.random.default_rng(0)
N, D, H = 256, 3, 32
x = rng.standard_normal((N, D))
y = np.sin(x @ np.array([1.0, -2.0, 0.5]))[:, None] + 0.1 * rng.standard_normal((N, 1))
x[:8] *= 6.0  # a few outliers: their gradients are much larger than the rest
params = {"w1": rng.standard_normal((D, H)) / np.sqrt(D), "b1": np.zeros(H),
          "w2": rng.standard_normal((H, 1)) / np.sqrt(H), "b2": np.zeros(1)}


def example_loss(p, xi, yi):
    """One example's squared error: xi is (D,), yi is (1,)."""
    h = np.tanh(xi @ p["w1"] + p["b1"])
    return np.sum((h @ p["w2"] + p["b2"] - yi) ** 2)


# %% [markdown]
# ## Per-example gradients, two ways
#
# The loop and `vmap` give the same numbers; the pytree of parameters comes back with a
# leading batch axis on every leaf.

# %%
per_example = dg.vmap(dg.grad(example_loss), in_axes=(None, 0, 0))
g = per_example(params, x, y)
print({k: v.shape for k, v in g.items()})
assert g["w1"].shape == (N, D, H) and g["b2"].shape == (N, 1)

loop = [dg.grad(example_loss)(params, x[i], y[i]) for i in range(N)]
for k in params:
    np.testing.assert_allclose(g[k], np.stack([gi[k] for gi in loop]), rtol=1e-12, atol=1e-14)
print("vmap matches the loop to 1e-12")

t0 = time.perf_counter()
per_example(params, x, y)
t_vmap = time.perf_counter() - t0
t0 = time.perf_counter()
[dg.grad(example_loss)(params, x[i], y[i]) for i in range(N)]
t_loop = time.perf_counter() - t0
print(f"vmap: {t_vmap * 1e3:.2f} ms, loop: {t_loop * 1e3:.2f} ms (timings are printed, "
      "not asserted)")

# %% [markdown]
# ## DP-SGD: clip each example's gradient, add noise
#
# Each example's gradient (all parameters together, as one vector) is scaled to norm at
# most $C$; the clipped gradients are summed, Gaussian noise of standard deviation
# $\sigma C$ is added, and the sum is divided by $N$. Clipping bounds how much any one
# example can move the parameters, which is what the privacy analysis needs.

# %%
C, sigma = 1.0, 0.8


def flat_norms(g):
    return np.sqrt(sum(np.sum(v.reshape(N, -1) ** 2, axis=1) for v in g.values()))


def dp_gradient(params, x, y, rng):
    g = per_example(params, x, y)
    norms = flat_norms(g)
    scale = np.minimum(1.0, C / norms)  # per-example clipping factor
    noisy = {k: (np.tensordot(scale, v, axes=1) + sigma * C * rng.standard_normal(v.shape[1:]))
             / N for k, v in g.items()}
    return noisy, norms, norms * scale


noisy, norms, clipped = dp_gradient(params, x, y, np.random.default_rng(1))
assert np.all(clipped <= C + 1e-12)
assert norms[:8].mean() > norms[8:].mean()  # the outliers carry the largest gradients
print(f"median norm {np.median(norms):.3f}, outliers' mean {norms[:8].mean():.3f}, "
      f"{np.mean(norms > C):.0%} of the examples clipped")

mean_grad = dg.grad(lambda p: np.mean(dg.vmap(example_loss, in_axes=(None, 0, 0))(p, x, y)))(
    params)
for k in params:  # without clipping and noise, the average of per-example gradients
    np.testing.assert_allclose(g[k].mean(0), mean_grad[k], rtol=1e-10, atol=1e-14)

# %% [markdown]
# ## Training with DP-SGD
#
# A few hundred noisy, clipped steps still fit the data; the plot shows the per-example
# gradient norms before clipping (the outliers stand out) and the loss curve.

# %%
p = {k: v.copy() for k, v in params.items()}
noise_rng = np.random.default_rng(2)
losses = []
for _ in range(200):
    gp, _, _ = dp_gradient(p, x, y, noise_rng)
    p = {k: p[k] - 0.5 * gp[k] for k in p}
    losses.append(float(np.mean(dg.vmap(example_loss, in_axes=(None, 0, 0))(p, x, y))))
print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")
assert losses[-1] < losses[0]

fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
a1.hist(norms, bins=40, color="tab:blue", alpha=0.8)
a1.axvline(C, color="k", ls="--", label=f"clip bound C = {C}")
a1.set_xlabel("per-example gradient norm")
a1.set_ylabel("examples")
a1.set_xscale("log")
a1.legend()
a2.plot(losses)
a2.set_xlabel("DP-SGD step")
a2.set_ylabel("mean squared error")
fig.tight_layout()
fig.savefig(FIG_DIR / "11_per_example_norms.png", dpi=100)
print("saved", FIG_DIR / "11_per_example_norms.png")

# %% [markdown]
# ## What composes
#
# `vmap` is a trace with its own level, so it nests with every other transform in any
# order: `vmap(grad(f))` (above), `grad` of a sum of `vmap`, `vmap(jvp)`, `jacfwd(vmap(f))`,
# `vmap(vmap(f))`, `vmap(hessian(f))` and `dg.jit(vmap(grad(f)))`. A primitive without a
# batching rule would still work -- it runs once per example in a loop, with a one-time
# `BatchingFallbackWarning` -- but every row of dualgrad's table has one.

# %%
hess = dg.vmap(dg.hessian(lambda xi: example_loss(params, xi, np.zeros(1))))(x[:4])
print("per-example input Hessians:", hess.shape)
assert hess.shape == (4, D, D)
np.testing.assert_allclose(hess, np.swapaxes(hess, 1, 2), atol=1e-12)
