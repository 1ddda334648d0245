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
# # 1. Dual numbers: forward mode in twenty lines
#
# Forward-mode automatic differentiation carries, next to every value computed by a
# program, the derivative of that value along one chosen input direction. The cleanest
# way to say this is with **dual numbers**: numbers of the form $a + b\varepsilon$ where
# $\varepsilon \neq 0$ but $\varepsilon^2 = 0$. Taylor's theorem then becomes exact:
#
# $$f(a + b\varepsilon) = f(a) + f'(a)\,b\,\varepsilon .$$
#
# So if we evaluate $f$ on $a + 1\varepsilon$, the $\varepsilon$ part of the answer *is*
# $f'(a)$. We call $a$ the **primal** and $b$ the **tangent**. Every arithmetic rule
# follows from $\varepsilon^2 = 0$:
#
# * $(a + b\varepsilon) + (c + d\varepsilon) = (a + c) + (b + d)\varepsilon$
# * $(a + b\varepsilon)(c + d\varepsilon) = ac + (ad + bc)\varepsilon$ (the product rule)
# * $g(a + b\varepsilon) = g(a) + g'(a)\,b\,\varepsilon$ for $g = \ln, \sin, \ldots$
#   (the chain rule)
#
# This tutorial builds a dual number class by hand, runs the worked example of Baydin,
# Pearlmutter, Radul & Siskind (2018), *Automatic differentiation in machine learning: a
# survey*, Table 2, and then does the same with `dualgrad`.

# %%
import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import dualgrad as dg

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIG_DIR = Path(os.environ.get("DUALGRAD_TUTORIAL_FIGURES", HERE / "figures"))
FIG_DIR.mkdir(parents=True, exist_ok=True)


# %% [markdown]
# ## A dual number class, by hand
#
# Twenty lines: a primal `val`, a tangent `dot`, the operators the example needs, and two
# elementary functions. Plain Python numbers are promoted to duals with zero tangent
# (constants do not vary).

# %%
class D:
    """A dual number val + dot·ε with ε² = 0."""

    def __init__(self, val, dot=0.0):
        self.val, self.dot = val, dot

    def __add__(self, o):
        o = o if isinstance(o, D) else D(o)
        return D(self.val + o.val, self.dot + o.dot)

    def __sub__(self, o):
        o = o if isinstance(o, D) else D(o)
        return D(self.val - o.val, self.dot - o.dot)

    def __mul__(self, o):
        o = o if isinstance(o, D) else D(o)
        return D(self.val * o.val, self.dot * o.val + self.val * o.dot)

    __radd__, __rmul__ = __add__, __mul__

    def __repr__(self):
        return f"D({self.val:.4f}, {self.dot:.4f})"


def log(x):
    return D(math.log(x.val), x.dot / x.val)


def sin(x):
    return D(math.sin(x.val), math.cos(x.val) * x.dot)


# %% [markdown]
# ## Baydin's example
#
# $f(x_1, x_2) = \ln(x_1) + x_1 x_2 - \sin(x_2)$ at $(x_1, x_2) = (2, 5)$. To get
# $\partial f / \partial x_1$ we seed the tangents $\dot x_1 = 1$, $\dot x_2 = 0$. Written
# out as the survey's evaluation trace, one elementary operation per line, each $v_i$
# carries its value and its tangent $\dot v_i$:

# %%
x1, x2 = D(2.0, 1.0), D(5.0, 0.0)
trace = [("v-1 = x1", x1), ("v0  = x2", x2)]
v1 = log(x1)
trace.append(("v1  = ln v-1", v1))
v2 = x1 * x2
trace.append(("v2  = v-1 * v0", v2))
v3 = sin(x2)
trace.append(("v3  = sin v0", v3))
v4 = v1 + v2
trace.append(("v4  = v1 + v2", v4))
v5 = v4 - v3
trace.append(("v5  = v4 - v3", v5))

print(f"{'forward primal trace':<18}{'value':>10}   {'tangent trace':>14}")
for name, v in trace:
    print(f"{name:<18}{v.val:>10.4f}   {v.dot:>14.4f}")
print(f"y = v5 = {v5.val:.4f},  dy/dx1 = {v5.dot}")
assert v5.dot == 5.5

# %% [markdown]
# The tangent column is the chain rule applied one line at a time, in the same order
# as the program runs: $\dot v_1 = \dot v_{-1}/v_{-1} = 1/2$, $\dot v_2 = \dot v_{-1} v_0 +
# v_{-1}\dot v_0 = 5$, $\dot v_3 = \cos(v_0)\,\dot v_0 = 0$, and $\dot y = \dot v_5 = 5.5$.
#
# There is no need to write the trace out; the same class runs the function as
# written, because the operators do the bookkeeping:

# %%
def f_hand(x1, x2):
    return log(x1) + x1 * x2 - sin(x2)


y_dx1 = f_hand(D(2.0, 1.0), D(5.0, 0.0))   # seed x1
y_dx2 = f_hand(D(2.0, 0.0), D(5.0, 1.0))   # seed x2
print("seed x1:", y_dx1)
print("seed x2:", y_dx2, " (2 - cos 5 =", 2 - math.cos(5.0), ")")
assert y_dx1.dot == 5.5 and abs(y_dx2.dot - (2 - math.cos(5.0))) < 1e-15

# %% [markdown]
# One forward pass gives one **directional derivative**: the derivative along the seeded
# direction. The full gradient of a function of $n$ inputs takes $n$ passes (or one pass
# with $n$ tangents at once, see tutorial 2). This is the key cost fact of forward mode.
#
# ## The same with dualgrad
#
# `dg.Dual(primal, tangent)` is the library's dual number. It works on numpy code as
# written (`np.log`, `np.sin` dispatch to dualgrad through numpy's `__array_ufunc__`
# protocol), and the tangent can be an array.

# %%
def f(x1, x2):
    return np.log(x1) + x1 * x2 - np.sin(x2)


y = f(dg.Dual(2.0, 1.0), dg.Dual(5.0, 0.0))
print(y)
print("primal:", float(y.primal), " tangent:", float(y.tangent))
assert y.tangent == 5.5

# %% [markdown]
# `dg.jvp` (Jacobian-vector product) is the function-transform form of the same thing:
# give it the function, the point and the tangent direction; it returns $f(x)$ and
# $J_f(x)\,v$. Unlike hand-made `Dual`s, each `jvp` call uses its own private
# perturbation, so calls can be nested safely (tutorial 6).

# %%
y, ydot = dg.jvp(f, (2.0, 5.0), (1.0, 0.0))
print(f"jvp along x1: f = {float(y):.4f}, df = {float(ydot)}")
y, ydot2 = dg.jvp(f, (2.0, 5.0), (0.0, 1.0))
print(f"jvp along x2: f = {float(y):.4f}, df = {float(ydot2)}")
assert ydot == 5.5 and ydot2 == 2 - math.cos(5.0)

# %% [markdown]
# Tangents may be arrays. Evaluating at many points $x_1$ at once (with $x_2 = 5$ fixed)
# and seeding every $\dot x_1 = 1$ gives the derivative along the whole line in one pass;
# we compare it with the closed form $\partial f/\partial x_1 = 1/x_1 + x_2$.

# %%
xs = np.linspace(0.3, 4.0, 200)
ys, dys = dg.jvp(f, (xs, 5.0), (np.ones_like(xs), 0.0))
print("max |jvp - (1/x1 + 5)| over the line:", np.max(np.abs(dys - (1 / xs + 5.0))))
assert np.allclose(dys, 1 / xs + 5.0, rtol=0, atol=1e-12)

# %% [markdown]
# ## Picture: the tangent line
#
# The tangent is the slope of $f$ along the seeded direction. Along $x_1$ (left) and along
# $x_2$ (right), through the point $(2, 5)$, the line with the slope dualgrad computed
# touches the curve.

# %%
x0 = np.array([2.0, 5.0])
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, d, label in zip(axes, ([1.0, 0.0], [0.0, 1.0]), ("x1", "x2")):
    d = np.array(d)
    s = np.linspace(-1.5, 1.5, 200)
    line = f(x0[0] + s * d[0], x0[1] + s * d[1])
    f0, slope = dg.jvp(f, (x0[0], x0[1]), (d[0], d[1]))
    ax.plot(s, line, label=f"f along {label}")
    ax.plot(s, f0 + slope * s, "--", label=f"tangent, slope {float(slope):.4f}")
    ax.plot([0], [f0], "ko")
    ax.set_xlabel(f"step s from (2, 5) along {label}")
    ax.set_ylabel("f")
    ax.legend()
fig.suptitle("f(x1, x2) = ln x1 + x1 x2 - sin x2 and its tangent lines at (2, 5)")
fig.tight_layout()
fig.savefig(FIG_DIR / "01_tangent_lines.png", dpi=100)
print("saved", FIG_DIR / "01_tangent_lines.png")

# %% [markdown]
# ## What to take away
#
# * A dual number carries (value, derivative); overloaded operators apply the chain rule
#   one elementary operation at a time, in program order.
# * One pass = one directional derivative $J v$. Cheap when there are few inputs.
# * `dg.Dual` and `dg.jvp` are this idea over numpy arrays, with the rules for every
#   primitive kept in one table (`dualgrad/rules/`).
#
# Next: reverse mode, where the program is recorded as a Wengert list and swept
# backwards.
