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
# # 4. A two-layer network three ways
#
# The classic warm-up from Stanford's CS231n and the PyTorch "learning by examples"
# tutorial: a fully connected ReLU network with one hidden layer, fitted to random data
# by gradient descent on a squared loss,
#
# $$L(w_1, w_2) = \sum \big(\operatorname{relu}(x w_1)\, w_2 - y\big)^2,$$
#
# with $N = 64$ examples, $D_\text{in} = 1000$ inputs, $H = 100$ hidden units and
# $D_\text{out} = 10$ outputs. We train it three ways:
#
# 1. **by hand**: the backward pass written out in numpy, as in CS231n;
# 2. **`dg.grad`**: the same loss function, differentiated by the transform;
# 3. **`dg.Tape` with `backward()`**: PyTorch style, gradients land in `.grad`.
#
# and check that all three compute the same gradients, to rounding.

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

N, D_in, H, D_out = 64, 1000, 100, 10
rng = np.random.default_rng(0)
x = rng.standard_normal((N, D_in))
y = rng.standard_normal((N, D_out))
w1_init = rng.standard_normal((D_in, H))
w2_init = rng.standard_normal((H, D_out))
learning_rate = 1e-6
steps = 500


# %% [markdown]
# ## 1. Backpropagation by hand
#
# The forward pass keeps what the backward pass needs (`h`, `h_relu`, `y_pred`). The
# backward pass applies the chain rule layer by layer, from the loss back to the
# weights: $\partial L/\partial \hat y = 2(\hat y - y)$, then through the matrix product
# ($\partial L/\partial w_2 = h_\text{relu}^\top\,\partial L/\partial \hat y$), through the
# ReLU (zero the gradient where $h < 0$), and through the first matrix product.

# %%
def loss_and_grads_by_hand(w1, w2):
    h = x @ w1
    h_relu = np.maximum(h, 0.0)
    y_pred = h_relu @ w2
    loss = np.sum((y_pred - y) ** 2)

    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h_relu.T @ grad_y_pred
    grad_h_relu = grad_y_pred @ w2.T
    grad_h = grad_h_relu * (h > 0)
    grad_w1 = x.T @ grad_h
    return loss, grad_w1, grad_w2


# %% [markdown]
# ## 2. `dg.grad`: write the loss, get the gradient
#
# Only the forward pass is written. `argnums=(0, 1)` asks for the gradient with respect
# to both weight matrices; `value_and_grad` returns the loss too, from the same
# evaluation.

# %%
def loss_fn(w1, w2):
    return np.sum((np.maximum(x @ w1, 0.0) @ w2 - y) ** 2)


loss_and_grads_dg = dg.value_and_grad(loss_fn, argnums=(0, 1))


# %% [markdown]
# ## 3. `dg.Tape` and `backward()`: PyTorch style
#
# Watch the weights, compute the loss inside the tape, call `loss.backward()`, and read
# `.grad` on the watched values.

# %%
def loss_and_grads_tape(w1, w2):
    with dg.Tape() as tape:
        w1_t = tape.watch(w1, "w1")
        w2_t = tape.watch(w2, "w2")
        loss = loss_fn(w1_t, w2_t)
    loss.backward()
    return loss.value, w1_t.grad, w2_t.grad


# %% [markdown]
# ## The three gradients agree
#
# At the initial weights, the largest difference between any two methods, relative to
# the largest gradient entry, is at the level of floating-point rounding. We assert it is
# below $10^{-12}$.

# %%
methods = {"by hand": loss_and_grads_by_hand, "dg.grad": loss_and_grads_dg,
           "dg.Tape": loss_and_grads_tape}


def unpack(result):
    if len(result) == 2:          # value_and_grad: (loss, (g1, g2))
        loss, (g1, g2) = result
        return loss, g1, g2
    return result


ref_loss, ref_g1, ref_g2 = unpack(loss_and_grads_by_hand(w1_init, w2_init))
print(f"initial loss: {ref_loss:.6e}")
for name, fn in methods.items():
    loss, g1, g2 = unpack(fn(w1_init, w2_init))
    rel1 = np.max(np.abs(g1 - ref_g1)) / np.max(np.abs(ref_g1))
    rel2 = np.max(np.abs(g2 - ref_g2)) / np.max(np.abs(ref_g2))
    print(f"{name:8s}: loss {float(loss):.6e}   rel. diff dw1 {rel1:.1e}   dw2 {rel2:.1e}")
    assert rel1 <= 1e-12 and rel2 <= 1e-12
    assert abs(float(loss) - ref_loss) <= 1e-12 * ref_loss

# %% [markdown]
# ## Training
#
# Plain gradient descent, $w \leftarrow w - \eta\,\nabla_w L$ with $\eta = 10^{-6}$, for
# 500 steps, once per method, each from the same initial weights.

# %%
curves, seconds = {}, {}
for name, fn in methods.items():
    w1, w2 = w1_init.copy(), w2_init.copy()
    losses, step_times = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss, g1, g2 = unpack(fn(w1, w2))
        step_times.append(time.perf_counter() - t0)
        losses.append(float(loss))
        w1 = w1 - learning_rate * g1
        w2 = w2 - learning_rate * g2
    seconds[name] = float(np.median(step_times))
    curves[name] = np.array(losses)
    print(f"{name:8s}: loss {losses[0]:.4e} -> {losses[-1]:.4e} after {steps} steps "
          f"(median {seconds[name] * 1e3:.2f} ms per loss-and-gradient)")

for name in methods:
    rel = np.max(np.abs(curves[name] - curves["by hand"]) / curves["by hand"])
    print(f"{name:8s}: largest relative deviation from the hand-written loss curve: {rel:.1e}")
    assert rel < 1e-9
assert curves["dg.grad"][-1] < 1e-3 * curves["dg.grad"][0]

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for (name, c), style in zip(curves.items(), ("-", "--", ":")):
    ax.semilogy(c, style, lw=2, label=name)
ax.set_xlabel("gradient descent step")
ax.set_ylabel("loss  sum((relu(x w1) w2 - y)^2)")
ax.set_title("Two-layer ReLU net: three ways to the same gradients")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(FIG_DIR / "04_loss_curves.png", dpi=100)
print("saved", FIG_DIR / "04_loss_curves.png")

# %% [markdown]
# The three curves lie on top of each other. The hand-written backward pass needed
# five lines of careful index bookkeeping and knowledge of what to keep from the forward
# pass; the two automatic versions needed none, and they stay correct when the model
# changes. The printed median times per step compare the cost of the automation on this
# small network (they depend on the machine and its load); all three versions spend most
# of their time in the same three matrix products forward and backward.
#
# ## Looking at the tape
#
# The recorded Wengert list for one step is short: the matrix products, the ReLU, the
# subtraction, the square and the sum — one entry per numpy operation, on whole arrays.

# %%
with dg.Tape() as tape:
    w1_t, w2_t = tape.watch(w1_init, "w1"), tape.watch(w2_init, "w2")
    loss = loss_fn(w1_t, w2_t)
print(tape)
