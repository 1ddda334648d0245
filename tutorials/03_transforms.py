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
# # 3. Function transforms: grad, jvp, vjp, Jacobians, Hessians
#
# dualgrad's user-facing API is a set of **function transforms** with JAX's names and
# signatures: each takes a Python function written with numpy and returns a new function
# (or values) computing derivatives. This tutorial walks through all of them, with
# pytrees (nested tuples, lists and dicts of arrays) and auxiliary outputs, and ends with
# a table of when to use which.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import dualgrad as dg

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIG_DIR = Path(os.environ.get("DUALGRAD_TUTORIAL_FIGURES", HERE / "figures"))
FIG_DIR.mkdir(parents=True, exist_ok=True)
np.set_printoptions(precision=4, suppress=True)


def f(x1, x2):
    return np.log(x1) + x1 * x2 - np.sin(x2)


# %% [markdown]
# ## `grad` and `value_and_grad`: scalar output, reverse mode
#
# `dg.grad(f)` differentiates with respect to the first argument; `argnums` picks others
# (an int, or a tuple for several, which returns a tuple). `value_and_grad` returns the
# value too, from the same single evaluation.

# %%
print("df/dx1          :", dg.grad(f)(2.0, 5.0))
print("df/dx2          :", dg.grad(f, argnums=1)(2.0, 5.0))
print("(df/dx1, df/dx2):", dg.grad(f, argnums=(0, 1))(2.0, 5.0))
value, grads = dg.value_and_grad(f, argnums=(0, 1))(2.0, 5.0)
print("value and grad  :", value, grads)
assert grads[0] == 5.5

# %% [markdown]
# `grad` insists on a scalar output: the gradient of a vector-valued function is not
# defined (it is a Jacobian), and dualgrad says so instead of silently summing.

# %%
try:
    dg.grad(np.sin)(np.array([0.1, 0.2]))
except TypeError as e:
    print("TypeError:", e)

# %% [markdown]
# ## `jvp` and `vjp`: the two primitive products
#
# For $f:\mathbb{R}^n\to\mathbb{R}^m$ with Jacobian $J$ at $x$:
#
# * `dg.jvp(f, (x,), (v,))` returns $(f(x), J v)$ — forward mode, one pass, $v \in
#   \mathbb{R}^n$.
# * `dg.vjp(f, x)` returns $(f(x), \text{pullback})$ with $\text{pullback}(u) = (u^\top
#   J,)$ — reverse mode; the recording is done once and the pullback can be called with
#   many cotangents $u \in \mathbb{R}^m$.
#
# They are transposes of each other: $\langle u, J v\rangle = \langle J^\top u,
# v\rangle$ for every $u, v$. We check that identity numerically.

# %%
A = np.array([[1.0, 2.0, 0.5], [-1.0, 0.3, 2.0]])


def g(x):
    return np.tanh(A @ x) + x[0] ** 2


x = np.array([0.3, -0.2, 0.9])
v = np.array([1.0, 0.0, -1.0])
u = np.array([0.5, 2.0])
y, Jv = dg.jvp(g, (x,), (v,))
y2, pullback = dg.vjp(g, x)
(uJ,) = pullback(u)
print("f(x)  =", y)
print("J v   =", Jv)
print("u^T J =", uJ)
print("<u, J v> =", u @ Jv, "  <J^T u, v> =", uJ @ v)
assert np.isclose(u @ Jv, uJ @ v, rtol=1e-14)

# %% [markdown]
# ## `jacfwd` and `jacrev`: whole Jacobians
#
# Both return the same matrix; `jacfwd` pushes all $n$ columns of the identity through
# one batched forward pass, `jacrev` pulls all $m$ rows through one batched reverse
# sweep (tutorial 2 times them). The shape follows JAX: `out.shape + in.shape`, so a
# function from $2\times 3$ matrices to vectors of length 2 has a $2\times 2\times 3$
# Jacobian.

# %%
Jf = dg.jacfwd(g)(x)
Jr = dg.jacrev(g)(x)
print("jacfwd:\n", Jf)
print("max |jacfwd - jacrev| =", np.max(np.abs(Jf - Jr)))
assert np.allclose(Jf, Jr, rtol=1e-14, atol=1e-15)


def layer(W):
    return np.tanh(W @ x)


W = np.full((2, 3), 0.1)
print("Jacobian of W -> tanh(W x), W of shape", W.shape, ":", dg.jacrev(layer)(W).shape)

# %% [markdown]
# ## `hessian` and `hvp`: second order
#
# Because every derivative rule is written with differentiable primitives, transforms
# nest. `dg.hessian(f)` is `jacfwd(jacrev(f))` (forward-over-reverse). When only the
# product with a vector is needed, `dg.hvp(f, (x,), (v,))` computes $\nabla f(x)$ and
# $H v$ without ever forming $H$: one forward-mode pass through the gradient
# computation. For the Rosenbrock function in 4 dimensions:

# %%
def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


x0 = np.array([-1.2, 1.0, 0.5, 0.8])
H = dg.hessian(rosen)(x0)
grad_x0, Hv = dg.hvp(rosen, (x0,), (np.ones(4),))
print("Hessian:\n", H)
print("H @ 1 from the Hessian:", H @ np.ones(4))
print("H @ 1 from hvp        :", Hv)
assert np.allclose(H, H.T) and np.allclose(H @ np.ones(4), Hv)

# %% [markdown]
# Second derivatives make Newton's method a few lines: $x \leftarrow x - H^{-1}\nabla f$.
# We start the 2-dimensional Rosenbrock function at its classic starting point
# $(-1.2, 1)$ and damp the step (halve it until the function decreases), which keeps
# Newton from overshooting along the curved valley.

# %%
x_k = np.array([-1.2, 1.0])
path = [x_k]
for _ in range(100):
    gk = dg.grad(rosen)(x_k)
    if np.linalg.norm(gk) < 1e-10:
        break
    step = np.linalg.solve(dg.hessian(rosen)(x_k), gk)
    t = 1.0
    while rosen(x_k - t * step) > rosen(x_k) and t > 1e-8:
        t /= 2
    x_k = x_k - t * step
    path.append(x_k)
print(f"Newton: |grad| < 1e-10 after {len(path) - 1} steps, at x = {x_k}, "
      f"f = {rosen(x_k):.3e}")
assert np.allclose(x_k, 1.0, atol=1e-8)

path = np.array(path)
X, Y = np.meshgrid(np.linspace(-1.6, 1.6, 200), np.linspace(-0.6, 1.6, 200))
Z = 100.0 * (Y - X ** 2) ** 2 + (1.0 - X) ** 2
fig, ax = plt.subplots(figsize=(6, 4))
ax.contour(X, Y, np.log10(Z + 1e-3), levels=20, cmap="viridis")
ax.plot(path[:, 0], path[:, 1], "o-", color="C3", ms=4, label="damped Newton iterates")
ax.plot([1], [1], "k*", ms=12, label="minimum (1, 1)")
ax.legend(loc="lower right")
ax.set_title("Damped Newton on Rosenbrock (dg.grad, dg.hessian)")
fig.tight_layout()
fig.savefig(FIG_DIR / "03_newton_rosenbrock.png", dpi=100)
print("saved", FIG_DIR / "03_newton_rosenbrock.png")

# %% [markdown]
# ## Higher order: nesting `grad`
#
# `grad` of `grad` of `grad`... works to any order. For an elementwise function, the
# gradient of `sum(f(x))` is the vector of derivatives $f'(x_i)$, so one call
# differentiates on a whole grid. Here are $\tanh$ and its first four derivatives,
# checked against the closed form $\tanh' = 1 - \tanh^2$.

# %%
def elementwise_derivative(fun):
    return dg.grad(lambda x: np.sum(fun(x)))


ts = np.linspace(-3, 3, 200)
curves = [np.tanh]
for _ in range(4):
    curves.append(elementwise_derivative(curves[-1]))
values = [c(ts) for c in curves]
print("max |d tanh - (1 - tanh^2)| on the grid:",
      np.max(np.abs(values[1] - (1 - np.tanh(ts) ** 2))))
assert np.allclose(values[1], 1 - np.tanh(ts) ** 2, atol=1e-14)
# The second derivative is -2 tanh (1 - tanh^2):
assert np.allclose(values[2], -2 * np.tanh(ts) * (1 - np.tanh(ts) ** 2), atol=1e-14)

fig, ax = plt.subplots(figsize=(7, 4))
for k, vals in enumerate(values):
    ax.plot(ts, vals, label="tanh" if k == 0 else f"derivative {k}")
ax.set_xlabel("x")
ax.legend()
ax.set_title("tanh and its derivatives by nested dg.grad")
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(FIG_DIR / "03_tanh_derivatives.png", dpi=100)
print("saved", FIG_DIR / "03_tanh_derivatives.png")

# %% [markdown]
# ## Pytrees: differentiate with respect to structures
#
# Arguments may be nested tuples, lists and dicts of arrays and numbers (pytrees). The
# gradient has the same structure as the argument, which is what training code wants:
# one gradient per parameter, under the same name.

# %%
rng = np.random.default_rng(0)
params = {"w": rng.standard_normal((3, 2)), "b": np.zeros(2)}
xb = rng.standard_normal((5, 3))
yb = rng.standard_normal((5, 2))


def mse(params, xb, yb):
    pred = xb @ params["w"] + params["b"]
    return np.mean((pred - yb) ** 2)


grads = dg.grad(mse)(params, xb, yb)
for k, gk in grads.items():
    print(f"grad[{k!r}] shape {gk.shape}:\n{gk}")
# the bias gradient by hand: d/db mean((xw + b - y)^2) = 2 * mean over rows of the residual
resid = xb @ params["w"] + params["b"] - yb
assert np.allclose(grads["b"], 2 * resid.sum(0) / resid.size)

# %% [markdown]
# Tuples and lists work the same way: `dg.grad(lambda t: t[0] * t[1][0] + t[1][1])` at
# `(1.0, [2.0, 3.0])` returns `(2.0, [1.0, 1.0])`.

# %%
gt = dg.grad(lambda t: t[0] * t[1][0] + t[1][1])((1.0, [2.0, 3.0]))
print(gt)
assert gt == (2.0, [1.0, 1.0])

# %% [markdown]
# ## `has_aux`: return extra outputs without differentiating them
#
# A loss function often computes things worth keeping (predictions, accuracy). With
# `has_aux=True` the function returns `(loss, aux)`; `grad` returns `(gradient, aux)` and
# `value_and_grad` returns `((loss, aux), gradient)`. The auxiliary output is returned
# as plain values, not traced.

# %%
def mse_with_aux(params, xb, yb):
    pred = xb @ params["w"] + params["b"]
    loss = np.mean((pred - yb) ** 2)
    return loss, {"pred": pred, "max_abs_error": np.max(np.abs(pred - yb))}


(loss, aux), grads2 = dg.value_and_grad(mse_with_aux, has_aux=True)(params, xb, yb)
print("loss:", loss, " aux keys:", sorted(aux), " max_abs_error:", aux["max_abs_error"])
print("aux['pred'] is a plain", type(aux["pred"]).__name__)
assert np.allclose(grads2["w"], grads["w"])

# %% [markdown]
# ## `linearize`: evaluate once, push many tangents
#
# `dg.linearize(f, x)` runs $f$ once, keeps its Wengert list, and returns a function
# that replays it forward with any tangent: $v \mapsto J v$ without re-evaluating $f$.

# %%
y_lin, g_jvp = dg.linearize(g, x)
print("J v from linearize:", g_jvp(v), " from jvp:", Jv)
assert np.allclose(g_jvp(v), Jv)

# %% [markdown]
# ## When to use which
#
# | you want | use | cost (in evaluations of f) |
# |---|---|---|
# | gradient of a scalar loss | `grad`, `value_and_grad` | a small constant, any $n$ |
# | $J v$ for one or a few directions | `jvp` (or `linearize` for many $v$ at one $x$) | about one per direction |
# | $u^\top J$ for one or a few cotangents | `vjp` (record once, pull many times) | about one per cotangent |
# | full Jacobian, $n \le m$ (few inputs) | `jacfwd` | grows with $n$ |
# | full Jacobian, $m \le n$ (few outputs) | `jacrev` | grows with $m$ |
# | full Hessian (small $n$) | `hessian` | grows with $n$ |
# | Hessian times a vector (large $n$) | `hvp` | a small constant |
# | higher derivatives | nest any of the above | |
#
# Extra outputs you want back but not differentiated: `has_aux=True`. Structured
# parameters: pass pytrees; gradients come back in the same structure.
