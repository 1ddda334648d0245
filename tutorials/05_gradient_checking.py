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
# # 5. Gradient checking
#
# Automatic differentiation is exact up to rounding *if every derivative rule is right*.
# The rules you write yourself — a `custom_vjp`, a new primitive, a hand-written backward
# pass — are where bugs live. This tutorial shows the three referees dualgrad offers:
#
# 1. `dg.check_grads`: compares forward- and reverse-mode derivatives with finite
#    differences and raises an `AssertionError` naming the argument and the worst entry;
# 2. finite differences themselves, and why their step size matters (the V-shaped error
#    curve);
# 3. `dg.symcheck`: sympy as an independent, exact referee for closed-form expressions.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp

import dualgrad as dg

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIG_DIR = Path(os.environ.get("DUALGRAD_TUTORIAL_FIGURES", HERE / "figures"))
FIG_DIR.mkdir(parents=True, exist_ok=True)


# %% [markdown]
# ## `check_grads` on a custom rule
#
# A `custom_vjp` function supplies its own backward rule: `fwd` computes the output and
# saves residuals, `bwd` maps the output cotangent $g$ to one cotangent per argument. Our
# function is a dense layer $z = \tanh(W x)$; with $\bar z = g \odot (1 - z^2)$ the
# cotangents are $\bar W = \bar z\, x^\top$ and $\bar x = W^\top \bar z$.
#
# We build it twice: once correctly, and once with a planted bug — the transpose in
# $W^\top \bar z$ forgotten. With a square $W$ the shapes still match, so nothing
# crashes; only the numbers are wrong. This is exactly the kind of bug that trains a
# model slowly instead of failing loudly.

# %%
def make_layer(planted_bug):
    @dg.custom_vjp
    def layer(W, x):
        return np.tanh(W @ x)

    def layer_fwd(W, x):
        z = np.tanh(W @ x)
        return z, (W, x, z)

    def layer_bwd(residuals, g):
        W, x, z = residuals
        gz = g * (1.0 - z ** 2)
        gx = W @ gz if planted_bug else W.T @ gz   # the bug: a missing transpose
        return np.outer(gz, x), gx

    layer.defvjp(layer_fwd, layer_bwd)
    return layer


rng = np.random.default_rng(0)
W = rng.standard_normal((3, 3))
x = rng.standard_normal(3)
good_layer, buggy_layer = make_layer(False), make_layer(True)

# %% [markdown]
# `check_grads(f, args, modes=...)` computes the Jacobian with the requested modes and
# compares it entry by entry with a Richardson-extrapolated central difference. A
# `custom_vjp` function has no forward-mode rule (as in JAX), so we check reverse mode
# only. The correct layer passes silently:

# %%
dg.check_grads(good_layer, (W, x), modes=("rev",))
print("correct layer: check_grads passed")

# %% [markdown]
# The buggy one fails, and the message says which argument (1, that is $x$), which
# entry of the Jacobian, and by how much:

# %%
try:
    dg.check_grads(buggy_layer, (W, x), modes=("rev",))
    raise RuntimeError("the planted bug was not detected")
except AssertionError as err:
    message = str(err)
    print("AssertionError:", message)
assert "argument 1" in message

# %% [markdown]
# The derivative with respect to argument 0 ($W$) is right in both versions, and the
# error names the first argument that is wrong. `check_grads` also checks higher orders
# (`order=2` checks the derivatives of the derivatives) and both modes for ordinary
# functions:

# %%
dg.check_grads(lambda W, x: np.tanh(W @ x), (W, x), order=2)
print("tanh(W x): first and second derivatives, forward and reverse: passed")

# %% [markdown]
# ## Finite differences and the step size
#
# Why does `check_grads` use a careful finite difference rather than the textbook one?
# The forward difference $\big(f(x+h) - f(x)\big)/h$ has two errors pulling in opposite
# directions:
#
# * **truncation**: Taylor's theorem leaves $\tfrac{h}{2} f''(x)$, which shrinks with $h$;
# * **rounding**: $f(x+h)$ and $f(x)$ are each off by about $\epsilon |f|$ (machine
#   epsilon $\epsilon$), and dividing their difference by $h$ amplifies that to about
#   $\epsilon |f| / h$, which grows as $h$ shrinks.
#
# The sum is smallest near $h \approx \sqrt{\epsilon}$. The central difference
# $\big(f(x+h) - f(x-h)\big)/2h$ has truncation error $\tfrac{h^2}{6} f'''(x)$, so its best
# step is larger, near $\epsilon^{1/3}$, and its best error smaller. On a log-log plot
# both errors form a V. We measure it for $f = \exp$ at $x = 1$, where $f' = e$ exactly.

# %%
x0 = 1.0
exact = np.exp(x0)
hs = np.logspace(-16, 0, 161)
err_fwd = np.abs((np.exp(x0 + hs) - np.exp(x0)) / hs - exact)
err_ctr = np.abs((np.exp(x0 + hs) - np.exp(x0 - hs)) / (2 * hs) - exact)
err_ad = abs(dg.grad(np.exp)(x0) - exact)

eps = np.finfo(float).eps
best_fwd, best_ctr = hs[np.argmin(err_fwd)], hs[np.argmin(err_ctr)]
print(f"machine epsilon: {eps:.3e};  sqrt(eps) = {np.sqrt(eps):.1e};  eps^(1/3) = {eps ** (1 / 3):.1e}")
print(f"forward difference: best step {best_fwd:.1e}, smallest error {err_fwd.min():.1e}")
print(f"central difference: best step {best_ctr:.1e}, smallest error {err_ctr.min():.1e}")
print(f"automatic differentiation (dg.grad): error {err_ad:.1e}, no step to choose")
assert 1e-10 < best_fwd < 1e-6 and 1e-7 < best_ctr < 1e-3
assert err_ctr.min() < err_fwd.min() and err_ad <= 4 * eps

# %%
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.loglog(hs, np.maximum(err_fwd, 1e-17), label="forward difference")
ax.loglog(hs, np.maximum(err_ctr, 1e-17), label="central difference")
ax.loglog(hs, 0.5 * hs * exact, "k:", lw=1, label="truncation h/2 f''")
ax.loglog(hs, eps * exact / hs, "k--", lw=1, label="rounding eps f / h")
ax.axhline(max(err_ad, 1e-17), color="C2", lw=3,
           label=f"dg.grad (error {err_ad:.0e}, drawn at 1e-17 if zero)")
ax.axvline(np.sqrt(eps), color="C0", alpha=0.3, label="sqrt(eps)")
ax.axvline(eps ** (1 / 3), color="C1", alpha=0.3, label="eps^(1/3)")
ax.set_ylim(3e-18, 1e2)
ax.set_xlabel("step h")
ax.set_ylabel("|error| of d/dx exp(x) at x = 1")
ax.set_title("Finite differences: truncation vs rounding")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(FIG_DIR / "05_fd_step_size.png", dpi=100)
print("saved", FIG_DIR / "05_fd_step_size.png")

# %% [markdown]
# Left of the V, rounding dominates and the error grows like $1/h$; right of it,
# truncation dominates and the error grows like $h$ (forward) or $h^2$ (central). The
# slopes of straight-line fits on the log-log plot confirm it:

# %%
def loglog_slope(lo, hi, err):
    sel = (hs >= lo) & (hs <= hi)
    return np.polyfit(np.log10(hs[sel]), np.log10(err[sel]), 1)[0]


slopes = {"forward, rounding side (h in 1e-15..1e-9)": loglog_slope(1e-15, 1e-9, err_fwd),
          "forward, truncation side (h in 1e-5..1e-1)": loglog_slope(1e-5, 1e-1, err_fwd),
          "central, truncation side (h in 1e-3..1e-1)": loglog_slope(1e-3, 1e-1, err_ctr)}
for what, slope in slopes.items():
    print(f"slope of log error vs log h, {what}: {slope:+.2f}")
assert [round(v) for v in slopes.values()] == [-1, 1, 2]

# %% [markdown]
# No step makes a finite difference as accurate
# as automatic differentiation, whose error is rounding in the final result only. This
# is why finite differences are a *referee* with a tolerance and not a way to compute
# gradients, and why `check_grads` goes one step further: it combines central differences
# at $h$ and $h/2$ (Richardson extrapolation, $(4D(h/2) - D(h))/3$), cancelling the
# $h^2$ term so a comfortable step like $10^{-3}$ is already accurate far below its
# default tolerance. `dg.numerical_jacobian` exposes that estimate:

# %%
(J_num,) = dg.numerical_jacobian(np.exp, (np.array([x0]),))
print(f"Richardson-extrapolated central difference at h = 1e-3: error "
      f"{abs(J_num[0, 0] - exact):.1e}")
assert abs(J_num[0, 0] - exact) < 1e-9

# %% [markdown]
# ## sympy as the referee
#
# Finite differences need a tolerance. For a closed-form expression there is an exact
# referee: symbolic differentiation. `dg.symcheck(expr, at=...)` parses the expression
# with sympy, differentiates it symbolically, evaluates the result at the point, and
# compares it with dualgrad's forward- and reverse-mode derivatives of the same
# expression; it raises if they disagree. Baydin's example:

# %%
expr = "log(x1) + x1*x2 - sin(x2)"
report = dg.symcheck(expr, at={"x1": 2.0, "x2": 5.0})
print(report)

# %% [markdown]
# What the referee does, spelled out with sympy directly: the symbolic gradient is
# $(1/x_1 + x_2,\; x_1 - \cos x_2)$, which at $(2, 5)$ is $(5.5,\; 2 - \cos 5)$.

# %%
x1s, x2s = sp.symbols("x1 x2")
f_sym = sp.sympify(expr)
grad_sym = [sp.diff(f_sym, v) for v in (x1s, x2s)]
point = {x1s: 2.0, x2s: 5.0}
grad_exact = [float(g.evalf(subs=point)) for g in grad_sym]
print("symbolic gradient:", grad_sym)
print("at (2, 5)        :", grad_exact)


def f_np(x1, x2):
    return np.log(x1) + x1 * x2 - np.sin(x2)


grad_rev = dg.grad(f_np, argnums=(0, 1))(2.0, 5.0)
grad_fwd = (dg.jvp(f_np, (2.0, 5.0), (1.0, 0.0))[1], dg.jvp(f_np, (2.0, 5.0), (0.0, 1.0))[1])
print("dualgrad reverse :", [float(g) for g in grad_rev])
print("dualgrad forward :", [float(g) for g in grad_fwd])
assert np.allclose(grad_rev, grad_exact, rtol=1e-15) and np.allclose(grad_fwd, grad_exact,
                                                                      rtol=1e-15)
assert grad_exact[0] == 5.5

# %% [markdown]
# ## What to take away
#
# * Check every hand-written rule with `check_grads` (both modes, `order=2` where it
#   applies); it names the argument and entry that is wrong.
# * Finite differences are a referee with a tolerance, never a gradient: their error is
#   a V in the step size, with a floor far above automatic differentiation's.
# * For closed-form expressions, sympy is an exact referee (`dg.symcheck`).
