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
# # 7. Numerical stability: when exact derivatives of a formula go wrong
#
# Automatic differentiation differentiates *the formula you wrote*, operation by
# operation, in floating point. Two formulas that are equal on paper can differ wildly
# in floating point, and so can their derivatives. This tutorial covers the cases that
# bite most often in practice:
#
# 1. `softplus` and `logsumexp` at large inputs: overflow, and the stable rewrites;
# 2. the NaN gradient through `np.where`, and the "double where" fix;
# 3. `custom_jvp`: give a function a stable derivative rule of its own.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import dualgrad as dg

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIG_DIR = Path(os.environ.get("DUALGRAD_TUTORIAL_FIGURES", HERE / "figures"))
FIG_DIR.mkdir(parents=True, exist_ok=True)
np.set_printoptions(precision=4)


def elementwise_grad(f):
    """d f(x_i) / d x_i for an elementwise f, on a whole array at once."""
    return dg.grad(lambda x: np.sum(f(x)))


# %% [markdown]
# ## Softplus
#
# $\operatorname{softplus}(x) = \ln(1 + e^x)$, with derivative $\sigma(x) = 1/(1 +
# e^{-x})$. Written literally, it fails at both ends:
#
# * for large $x$, $e^x$ overflows to `inf` once $x > \ln(\text{largest float})$, and the
#   derivative, $e^x / (1 + e^x)$ step by step, becomes `inf/inf = nan`;
# * for very negative $x$, $1 + e^x$ rounds to exactly 1 and the value becomes 0 (the
#   derivative survives here, because it never forms $1 + e^x$ in a way that loses $e^x$).
#
# The stable forms: `np.logaddexp(0, x)` (which computes $\ln(e^0 + e^x)$ carefully), or
# by hand $\max(x, 0) + \operatorname{log1p}(e^{-|x|})$, where the exponential never
# exceeds 1.

# %%
def softplus_naive(x):
    return np.log(1.0 + np.exp(x))


def softplus_stable(x):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def softplus_logaddexp(x):
    return np.logaddexp(0.0, x)


xs = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
print("ln(largest float) =", np.log(np.finfo(float).max))
print("x                    :", xs)
with np.errstate(over="ignore", invalid="ignore"):
    for f in (softplus_naive, softplus_stable, softplus_logaddexp):
        print(f"{f.__name__:21s}: value {f(xs)}\n{'':21s}  grad  {elementwise_grad(f)(xs)}")
    naive_value, naive_grad = softplus_naive(xs), elementwise_grad(softplus_naive)(xs)
stable_value, stable_grad = softplus_stable(xs), elementwise_grad(softplus_stable)(xs)
assert np.isinf(naive_value[-1]) and np.isnan(naive_grad[-1]) and naive_value[1] == 0.0
assert stable_value[-1] == 1000.0 and stable_grad[-1] == 1.0
assert np.isclose(stable_value[1], np.exp(-40.0), rtol=1e-15)
assert np.allclose(stable_grad, elementwise_grad(softplus_logaddexp)(xs), rtol=1e-15)

# %% [markdown]
# The naive value at $x = -40$ is exactly 0, while the true value is $e^{-40} \approx
# 4.25 \cdot 10^{-18}$ to double precision: `log1p` keeps it. At $x = 1000$ the naive
# value is `inf` and its gradient `nan`; the stable versions give 1000 and 1. Note that
# dualgrad is not "fixing" anything: it differentiates each formula exactly; the stable
# formula simply has stable derivatives too (its derivative at $x = 1000$ is built from
# $e^{-1000} = 0$, not from $e^{1000} = \infty$).
#
# The picture: the naive derivative (left) vanishes into NaN past the overflow point,
# and the naive value (right, log scale) drops to exactly zero below about $x = -37$.

# %%
grid = np.linspace(-800, 800, 801)
with np.errstate(over="ignore", invalid="ignore"):
    g_naive = elementwise_grad(softplus_naive)(grid)
g_stable = elementwise_grad(softplus_stable)(grid)
small = np.linspace(-60, 0, 601)
v_naive, v_stable = softplus_naive(small), softplus_stable(small)
print("naive gradient is NaN for x >=", grid[np.isnan(g_naive)].min())
print("naive value is exactly 0 for x <=", small[v_naive == 0].max())
assert np.all(np.isfinite(g_stable))

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].plot(grid, g_stable, lw=4, alpha=0.4, label="stable: max(x,0) + log1p(exp(-|x|))")
axes[0].plot(grid, g_naive, "C3", label="naive: log(1 + exp(x))")
axes[0].plot(grid[np.isnan(g_naive)], np.full(np.isnan(g_naive).sum(), 0.5), "C3|",
             label="naive gradient is NaN")
axes[0].set_xlabel("x")
axes[0].set_title("d softplus / dx by dg.grad")
axes[0].legend(fontsize=8)
axes[1].semilogy(small, v_stable, lw=4, alpha=0.4, label="stable")
axes[1].semilogy(small, np.where(v_naive > 0, v_naive, np.nan), "C3", label="naive")
axes[1].set_xlabel("x")
axes[1].set_title("softplus(x) for negative x (log scale)")
axes[1].legend(fontsize=8)
fig.tight_layout()
fig.savefig(FIG_DIR / "07_softplus.png", dpi=100)
print("saved", FIG_DIR / "07_softplus.png")

# %% [markdown]
# ## Logsumexp
#
# $\operatorname{logsumexp}(x) = \ln \sum_i e^{x_i}$ is the log-normaliser behind softmax
# and cross-entropy; its gradient is $\operatorname{softmax}(x)$. Literally, any
# $x_i$ above about 709.8 overflows. The standard fix shifts by the maximum $m$:
# $\operatorname{logsumexp}(x) = m + \ln \sum_i e^{x_i - m}$, where every exponent is
# $\le 0$. The shift is a constant as far as the mathematics goes, so its derivative
# contributions cancel; it is common (and a little cheaper) to cut them with
# `dg.stop_gradient`.

# %%
def lse_naive(x):
    return np.log(np.sum(np.exp(x)))


def lse_shifted(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


def lse_shifted_stop(x):
    m = dg.stop_gradient(np.max(x))
    return m + np.log(np.sum(np.exp(x - m)))


def softmax(x):
    e = np.exp(x - np.max(x))
    return e / np.sum(e)


for x in (np.array([1.0, 2.0, 3.0]), np.array([1000.0, 1000.0, 999.0])):
    print(f"x = {x}:  softmax {softmax(x)}")
    with np.errstate(over="ignore", invalid="ignore"):
        for f in (lse_naive, lse_shifted, lse_shifted_stop):
            print(f"   {f.__name__:17s} value {f(x):.6f}  grad {dg.grad(f)(x)}")
    assert np.allclose(dg.grad(lse_shifted)(x), softmax(x), rtol=1e-14)
    assert np.allclose(dg.grad(lse_shifted_stop)(x), softmax(x), rtol=1e-14)

# %% [markdown]
# ## The NaN gradient through `np.where`
#
# A guard like `np.where(x > 0, np.sqrt(x), 0.0)` looks safe: at $x = 0$ the value is
# 0, no warning. Its gradient at 0 is NaN. Why: `where` is a primitive with two array
# inputs, and **both branches are computed**. In the reverse sweep `where` sends the
# cotangent to the branch it chose and **zero** to the other — but the other branch
# still multiplies that zero by its own local derivative, here $\tfrac{1}{x} = \infty$
# for `log` at 0, and $0 \cdot \infty = \text{NaN}$. The same happens with `sqrt` at
# $x = -1$, where $\sqrt{x}$ and its derivative are NaN. (At exactly $x = 0$ dualgrad
# defines the derivative of `sqrt` as 0 instead of $\infty$ -- the zero subgradient
# PyTorch's `norm` and `cdist` use -- so `sqrt` at 0 is not the trap here; in JAX or
# autograd it is.)

# %%
def sqrt_guarded(x):
    return np.where(x > 0, np.sqrt(x), 0.0)


def log_guarded(x):
    return np.where(x > 0, np.log(x), 0.0)


pts = np.array([-1.0, 0.0, 1.0, 4.0])
with np.errstate(divide="ignore", invalid="ignore"):
    g_sqrt = elementwise_grad(sqrt_guarded)(pts)
    g_log = elementwise_grad(log_guarded)(pts)
print("x                          :", pts)
print("grad where(x>0, sqrt(x), 0):", g_sqrt)
print("grad where(x>0, log(x), 0) :", g_log)
assert np.isnan(g_sqrt[0]) and g_sqrt[1] == 0.0 and np.isnan(g_log[1])

# %% [markdown]
# (At $x = -1$ both local derivatives are NaN, and at $x = 0$ the logarithm's is
# infinite; wherever the unselected branch has a non-finite local derivative, the zero
# cotangent turns into NaN.)
#
# Forward mode does not have this problem here: `where`'s JVP *selects* the tangent of
# the chosen branch instead of multiplying, so the infinite tangent of the unselected
# branch is simply dropped:

# %%
with np.errstate(divide="ignore", invalid="ignore"):
    _, t_fwd = dg.jvp(log_guarded, (pts,), (np.ones_like(pts),))
print("forward-mode tangent of where(x>0, log(x), 0):", t_fwd)
assert np.all(np.isfinite(t_fwd))

# %% [markdown]
# ### The fix: "double where"
#
# Make the unselected branch harmless *before* it is computed: replace the input of the
# dangerous function by a safe value wherever the result will be thrown away. Then
# every local derivative is finite and $0 \cdot \text{finite} = 0$.

# %%
def sqrt_double_where(x):
    safe_x = np.where(x > 0, x, 1.0)
    return np.where(x > 0, np.sqrt(safe_x), 0.0)


def log_double_where(x):
    safe_x = np.where(x > 0, x, 1.0)
    return np.where(x > 0, np.log(safe_x), 0.0)


g_sqrt_fixed = elementwise_grad(sqrt_double_where)(pts)
g_log_fixed = elementwise_grad(log_double_where)(pts)
print("grad, double where, sqrt:", g_sqrt_fixed)
print("grad, double where, log :", g_log_fixed)
assert np.array_equal(g_sqrt_fixed, [0.0, 0.0, 0.5, 0.25])
assert np.array_equal(g_log_fixed, [0.0, 0.0, 1.0, 0.25])
assert np.array_equal(sqrt_double_where(pts), sqrt_guarded(np.maximum(pts, 0)))

# %% [markdown]
# ## `custom_jvp`: a stable rule for a function
#
# Sometimes the formula should stay as written (it is the clearest, or it is someone
# else's code), and only its derivative should be computed differently. `dg.custom_jvp`
# attaches a forward rule to a function; reverse mode is derived from it automatically
# (the rule is linear in the tangent, and dualgrad transposes it).
#
# The Euclidean norm $\lVert x\rVert = \sqrt{\sum x_i^2}$, a common "distance" in
# losses, has the `where` trap's cousin at $x = 0$: the chain rule forms
# $\tfrac{1}{2\sqrt{0}} \cdot 0 = \infty \cdot 0$, and in JAX or autograd the gradient
# is NaN. dualgrad's `sqrt` takes the derivative at 0 to be 0, so the plain formula
# already gives the zero subgradient here; but that is a convention of one library. The
# rule $\dot{\lVert x\rVert} = \langle x, \dot x\rangle / \lVert x\rVert$, with the $0/0$
# case defined as 0 (a valid subgradient; the double-where trick inside the rule), states
# the choice in your own code, without touching the formula.

# %%
def norm_plain(x):
    return np.sqrt(np.sum(x ** 2))


@dg.custom_jvp
def norm(x):
    return np.sqrt(np.sum(x ** 2))


@norm.defjvp
def norm_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    ans = norm(x)
    safe = np.where(ans > 0, ans, 1.0)
    return ans, np.sum(x * t) / safe


zero, p = np.zeros(3), np.array([3.0, 4.0, 0.0])
with np.errstate(divide="ignore", invalid="ignore"):
    g_plain0 = dg.grad(norm_plain)(zero)
print("grad of the plain formula at 0:", g_plain0)
print("grad with the custom rule at 0:", dg.grad(norm)(zero))
print("grad with the custom rule at (3, 4, 0):", dg.grad(norm)(p),
      "  forward mode:", dg.jvp(norm, (p,), (np.array([1.0, 0.0, 0.0]),))[1])
assert np.array_equal(g_plain0, zero) and np.array_equal(dg.grad(norm)(zero), zero)
assert np.allclose(dg.grad(norm)(p), [0.6, 0.8, 0.0])

# %% [markdown]
# A custom rule is code you wrote, so check it (tutorial 5). Second order works too,
# because the rule is itself written with numpy operations that dualgrad differentiates:

# %%
dg.check_grads(norm, (np.array([0.3, -1.2, 2.0]),), order=2)
print("check_grads(norm, order=2) at a nonzero point: passed")
H = dg.hessian(norm)(p)
print("Hessian of the norm at (3, 4, 0):\n", H)
assert np.allclose(H, (np.eye(3) - np.outer(p, p) / 25.0) / 5.0)

# %% [markdown]
# ## What to take away
#
# * AD is exact for the formula; choose formulas whose intermediates do not overflow
#   (`logaddexp`, `log1p`, shift by the max).
# * `np.where` computes both branches, and reverse mode multiplies the unselected
#   branch's derivative by zero: make that branch finite with a second `where`.
# * `custom_jvp` (or `custom_vjp`) replaces a derivative rule without touching the
#   formula — and `check_grads` verifies it.
