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
# # 9. A small convolutional network on handwritten digits
#
# Everything so far, put to work: a convolutional network trained end to end with
# `dg.value_and_grad`, on scikit-learn's bundled 8×8 digits (1797 images of the digits
# 0–9, shipped with scikit-learn, so nothing is downloaded). The layers come from
# `dg.nn`, which follows PyTorch's semantics and layouts (NCHW images, weights of shape
# `(C_out, C_in, kH, kW)`), with the convolution and pooling running as numba kernels.
# The optimiser, Adam, is written by hand in a few lines.

# %%
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import dualgrad as dg

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIG_DIR = Path(os.environ.get("DUALGRAD_TUTORIAL_FIGURES", HERE / "figures"))
FIG_DIR.mkdir(parents=True, exist_ok=True)
t_start = time.perf_counter()

# %% [markdown]
# ## Data
#
# Pixel values run from 0 to 16; we scale them to $[0, 1]$ and add the channel axis
# (one grey channel): images of shape `(N, 1, 8, 8)`. A quarter of the images is held
# out for testing, stratified by digit.

# %%
digits = load_digits()
images = (digits.images / 16.0).astype(np.float64)[:, None, :, :]
labels = digits.target
x_train, x_test, y_train, y_test = train_test_split(
    images, labels, test_size=0.25, random_state=0, stratify=labels)
print("images:", images.shape, " train:", x_train.shape, " test:", x_test.shape,
      " classes:", np.unique(labels))
assert images.shape == (1797, 1, 8, 8)

# %% [markdown]
# ## The model
#
# conv 3×3 (1 → 16 channels, padding 1, so 8×8 stays 8×8) → ReLU → max-pool 2×2 (→ 4×4)
# → conv 3×3 (16 → 32, padding 1) → ReLU → max-pool 2×2 (→ 2×2) → flatten (32·2·2 = 128)
# → linear → 10 logits. The parameters are a dict (a pytree), so the gradient comes
# back as a dict with the same keys. Weights start with He initialisation.

# %%
def init_params(rng):
    def he(shape, fan_in):
        return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    return {
        "conv1_w": he((16, 1, 3, 3), 1 * 9), "conv1_b": np.zeros(16),
        "conv2_w": he((32, 16, 3, 3), 16 * 9), "conv2_b": np.zeros(32),
        "fc_w": he((10, 128), 128), "fc_b": np.zeros(10),
    }


def model(params, x):
    h = dg.nn.conv2d(x, params["conv1_w"], params["conv1_b"], padding=1)   # (N, 16, 8, 8)
    h = dg.nn.max_pool2d(dg.nn.relu(h), 2)                                 # (N, 16, 4, 4)
    h = dg.nn.conv2d(h, params["conv2_w"], params["conv2_b"], padding=1)   # (N, 32, 4, 4)
    h = dg.nn.max_pool2d(dg.nn.relu(h), 2)                                 # (N, 32, 2, 2)
    h = h.reshape(h.shape[0], -1)                                         # (N, 128)
    return h @ params["fc_w"].T + params["fc_b"]                          # (N, 10)


def loss_fn(params, x, y):
    logits = model(params, x)
    return dg.nn.cross_entropy(logits, y), logits


loss_and_grad = dg.value_and_grad(loss_fn, has_aux=True)

rng = np.random.default_rng(0)
params = init_params(rng)
for k, v in params.items():
    print(f"{k:8s} shape {str(v.shape):15s} {v.size:5d} numbers")
print("parameters:", sum(v.size for v in params.values()))
print("logits for two images:", model(params, x_train[:2]).shape)
assert params["conv1_w"].size == 144 and params["conv2_w"].size == 4608

# %% [markdown]
# Before training anything, check the gradient of the whole network on a few images
# against finite differences, in reverse mode (this exercises the convolution and
# pooling kernels' derivative rules end to end). ReLU and max-pooling have kinks, where
# a finite difference that steps across one is wrong, so we use a small step. The first
# convolution has few enough weights (144) for a full Jacobian; for the second (4608)
# `check_grads` checks a random direction instead.

# %%
x_few, y_few = x_train[:8], y_train[:8]
dg.check_grads(lambda w: loss_fn({**params, "conv1_w": w}, x_few, y_few)[0],
               (params["conv1_w"],), modes=("rev",), eps=1e-6, atol=1e-6, rtol=1e-6)
dg.check_grads(lambda w: loss_fn({**params, "conv2_w": w}, x_few, y_few)[0],
               (params["conv2_w"],), modes=("rev",), eps=1e-6, atol=1e-6, rtol=1e-6)
print("check_grads with respect to both convolutions' weights: passed")


# %% [markdown]
# ## Adam, by hand
#
# Adam (Kingma & Ba, 2015) keeps running averages of the gradient ($m$) and of its
# square ($v$), corrects their bias towards zero in the first steps, and steps each
# parameter by $\eta\, \hat m / (\sqrt{\hat v} + \epsilon)$. `dg.tree_map` applies that to
# every array in the parameter dict.

# %%
def adam_init(params):
    zeros = dg.tree_map(np.zeros_like, params)
    return {"m": zeros, "v": dg.tree_map(np.zeros_like, params), "t": 0}


def adam_step(params, grads, state, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    t = state["t"] + 1
    m = dg.tree_map(lambda m, g: beta1 * m + (1 - beta1) * g, state["m"], grads)
    v = dg.tree_map(lambda v, g: beta2 * v + (1 - beta2) * g * g, state["v"], grads)
    c1, c2 = 1 - beta1 ** t, 1 - beta2 ** t
    params = dg.tree_map(lambda p, m, v: p - lr * (m / c1) / (np.sqrt(v / c2) + eps),
                         params, m, v)
    return params, {"m": m, "v": v, "t": t}


def accuracy(params, x, y):
    return float(np.mean(np.argmax(model(params, x), axis=1) == y))


# %% [markdown]
# ## Training
#
# Mini-batches of 64, reshuffled every epoch. The learning rate follows a cosine
# schedule from $3\cdot10^{-3}$ down to $10^{-4}$, so the last epochs settle instead of
# bouncing around.

# %%
epochs, batch = 15, 64
steps_per_epoch = -(-len(x_train) // batch)
total_steps = epochs * steps_per_epoch
lr_max, lr_min = 3e-3, 1e-4


def learning_rate(step):
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + np.cos(np.pi * step / total_steps))


state = adam_init(params)
history = {"step_loss": [], "epoch": [], "train_acc": [], "test_acc": []}
t_train = time.perf_counter()
for epoch in range(1, epochs + 1):
    order = rng.permutation(len(x_train))
    epoch_losses = []
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        (loss, _), grads = loss_and_grad(params, x_train[idx], y_train[idx])
        params, state = adam_step(params, grads, state, learning_rate(state["t"]))
        history["step_loss"].append(float(loss))
        epoch_losses.append(float(loss) * len(idx))
    history["epoch"].append(len(history["step_loss"]))
    history["train_acc"].append(accuracy(params, x_train, y_train))
    history["test_acc"].append(accuracy(params, x_test, y_test))
    print(f"epoch {epoch:2d}: mean loss {sum(epoch_losses) / len(x_train):.4f}   "
          f"train acc {history['train_acc'][-1]:.4f}   test acc {history['test_acc'][-1]:.4f}")
train_seconds = time.perf_counter() - t_train
test_acc = history["test_acc"][-1]
print(f"\ntraining time: {train_seconds:.1f} s for {len(history['step_loss'])} steps")
print(f"test accuracy: {test_acc:.4f} ({round(test_acc * len(y_test))} of {len(y_test)})")

# %% [markdown]
# ## Pictures: the loss, and some predictions

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
steps = np.arange(1, len(history["step_loss"]) + 1)
axes[0].semilogy(steps, history["step_loss"], alpha=0.4, label="mini-batch loss")
window = 20
smooth = np.convolve(history["step_loss"], np.ones(window) / window, mode="valid")
axes[0].semilogy(steps[window - 1:], smooth, label=f"moving average ({window} steps)")
axes[0].set_xlabel("step")
axes[0].set_ylabel("cross-entropy")
axes[0].legend()
axes[0].set_title("Training loss")
axes[1].plot(history["epoch"], history["train_acc"], "o-", label="train")
axes[1].plot(history["epoch"], history["test_acc"], "s-", label="test")
axes[1].set_xlabel("step (end of each epoch)")
axes[1].set_ylabel("accuracy")
axes[1].set_title("Accuracy after each epoch")
axes[1].legend()
fig.tight_layout()
fig.savefig(FIG_DIR / "09_training.png", dpi=100)
print("saved", FIG_DIR / "09_training.png")

# %%
probs = dg.nn.softmax(model(params, x_test), axis=-1)
pred = np.argmax(probs, axis=1)
wrong = np.flatnonzero(pred != y_test)
print(f"misclassified test images: {len(wrong)}")
for k in wrong:
    print(f"  test image {k:3d}: label {y_test[k]}, predicted {pred[k]} "
          f"with probability {probs[k, pred[k]]:.2f}")

rows = [("test images", np.arange(8)), ("misclassified", wrong[:8])]
fig, axes = plt.subplots(2, 8, figsize=(11, 3.6))
for (row_name, idx), row_axes in zip(rows, axes):
    for j, ax in enumerate(row_axes):
        ax.axis("off")
        if j >= len(idx):
            continue
        k = idx[j]
        ok = pred[k] == y_test[k]
        ax.imshow(x_test[k, 0], cmap="gray_r")
        ax.set_title(f"{pred[k]} ({probs[k, pred[k]]:.2f})" + ("" if ok else f", is {y_test[k]}"),
                     color="C2" if ok else "C3", fontsize=9)
    row_axes[0].text(-0.3, 0.5, row_name, transform=row_axes[0].transAxes, rotation=90,
                     ha="right", va="center")
fig.suptitle("Predicted digit (probability); red: wrong, with the true label")
fig.tight_layout()
fig.savefig(FIG_DIR / "09_predictions.png", dpi=100)
print("saved", FIG_DIR / "09_predictions.png")
assert len(wrong) == len(y_test) - round(test_acc * len(y_test))

# %% [markdown]
# ## Result
#
# The script stops with an error unless the test accuracy is at least 95%.

# %%
print(f"total time for this tutorial: {time.perf_counter() - t_start:.1f} s")
assert test_acc >= 0.95, f"test accuracy {test_acc:.4f} is below 0.95"
