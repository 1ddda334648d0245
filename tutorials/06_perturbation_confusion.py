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
# # 6. Perturbation confusion: nesting derivatives safely
#
# Derivatives of functions that themselves take derivatives appear everywhere: Hessians,
# meta-learning, physics (a Lagrangian's Euler–Lagrange equations), optimisation
# inside a model. Siskind & Pearlmutter (2005), *Perturbation confusion and referential
# transparency*, gave the smallest example that breaks naive implementations:
#
# $$\frac{d}{dx}\left[\, x \cdot \left(\frac{d}{dy}(x + y)\right)\Big|_{y=1} \right]_{x=1}.$$
#
# The inner derivative is $\frac{d}{dy}(x + y) = 1$ for every $x$, so the bracket is
# $x \cdot 1 = x$, and its derivative is **1**. A forward-mode implementation that cannot
# tell the two perturbations apart answers **2**.

# %%
import itertools
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import dualgrad as dg

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIG_DIR = Path(os.environ.get("DUALGRAD_TUTORIAL_FIGURES", HERE / "figures"))
FIG_DIR.mkdir(parents=True, exist_ok=True)


# %% [markdown]
# ## A naive dual number, nested
#
# The dual class from tutorial 1, allowed to hold duals inside (so derivatives can be
# nested), and a derivative operator `d` that seeds a tangent of 1:

# %%
class Naive:
    def __init__(self, val, dot):
        self.val, self.dot = val, dot

    def __add__(self, o):
        o = o if isinstance(o, Naive) else Naive(o, 0.0)
        return Naive(self.val + o.val, self.dot + o.dot)

    def __mul__(self, o):
        o = o if isinstance(o, Naive) else Naive(o, 0.0)
        return Naive(self.val * o.val, self.dot * o.val + self.val * o.dot)

    __radd__, __rmul__ = __add__, __mul__


def d_naive(f):
    def df(x):
        out = f(Naive(x, 1.0))
        return out.dot if isinstance(out, Naive) else 0.0
    return df


answer_naive = d_naive(lambda x: x * d_naive(lambda y: x + y)(1.0))(1.0)
print("naive nested dual numbers:", answer_naive)
assert answer_naive == 2.0

# %% [markdown]
# ## Why 2?
#
# Follow the values. The outer `d_naive` makes $x = (1, 1)$: value 1, tangent 1 with
# respect to $x$. The inner `d_naive` makes $y = (1, 1)$: value 1, tangent 1 with respect
# to $y$. But both tangents live in the same slot `.dot`, so
#
# $$x + y = (1 + 1,\; 1 + 1) = (2, 2),$$
#
# and the inner derivative reads `.dot = 2`: it has counted $x$'s perturbation as if it
# were $y$'s. The bracket becomes $x \cdot 2$, whose derivative is 2. Each derivative
# operator needs its **own** infinitesimal: $\varepsilon_x$ and $\varepsilon_y$ with
# $\varepsilon_x^2 = \varepsilon_y^2 = 0$ but $\varepsilon_x \varepsilon_y \ne 0$.
#
# ## The fix: tag each perturbation
#
# Give every call of `d` a fresh tag, and let a dual number carry the tag of the
# perturbation it belongs to. An operation looks at the *newest* tag among its
# arguments, splits every argument into (value, tangent) **for that tag only** — an
# argument with an older tag is, to this perturbation, a constant — and recurses on the
# parts. Extracting a derivative reads only the tangent of its own tag.

# %%
_tags = itertools.count()


class Tagged:
    def __init__(self, tag, val, dot):
        self.tag, self.val, self.dot = tag, val, dot

    def __add__(self, o):
        return _apply(lambda av, ad, bv, bd: (av + bv, ad + bd), self, o)

    def __mul__(self, o):
        return _apply(lambda av, ad, bv, bd: (av * bv, ad * bv + av * bd), self, o)

    __radd__, __rmul__ = __add__, __mul__


def _split(x, tag):
    return (x.val, x.dot) if isinstance(x, Tagged) and x.tag == tag else (x, 0.0)


def _apply(rule, a, b):
    tag = max(x.tag for x in (a, b) if isinstance(x, Tagged))
    val, dot = rule(*_split(a, tag), *_split(b, tag))
    return Tagged(tag, val, dot)


def d_tagged(f):
    def df(x):
        tag = next(_tags)
        return _split(f(Tagged(tag, x, 1.0)), tag)[1]
    return df


answer_tagged = d_tagged(lambda x: x * d_tagged(lambda y: x + y)(1.0))(1.0)
print("tagged nested dual numbers:", answer_tagged)
assert answer_tagged == 1.0

# %% [markdown]
# Inside the inner derivative, $x$ carries the outer (older) tag, so when the inner
# addition splits its arguments for the inner tag, $x$ is a constant with tangent 0:
# $x + y$ has inner tangent 1. This is exactly dualgrad's mechanism: every transform
# opens a *trace* with a *level* (`dualgrad/core/trace.py`), and a primitive unboxes only the
# argument of the highest level, treating lower levels as constants.
#
# ## dualgrad: all four nestings
#
# The outer and inner derivative can each be forward mode (`dg.jvp`) or reverse mode
# (`dg.grad`), and the Tape is a third way to spell reverse mode. All must give 1.

# %%
def d_fwd(f):
    return lambda x: dg.jvp(f, (x,), (1.0,))[1]


def d_rev(f):
    return dg.grad(f)


def d_tape(f):
    def df(x):
        with dg.Tape() as tape:
            xt = tape.watch(x)
            out = f(xt)
        return tape.gradient(out, xt)
    return df


results = {}
for (outer_name, outer), (inner_name, inner) in itertools.product(
        [("fwd", d_fwd), ("rev", d_rev)], repeat=2):
    results[f"{outer_name}/{inner_name}"] = outer(lambda x, inner=inner: x * inner(
        lambda y: x + y)(1.0))(1.0)
results["tape/tape"] = d_tape(lambda x: x * d_tape(lambda y: x + y)(1.0))(1.0)
for name, value in results.items():
    print(f"outer/inner = {name:9s}: d/dx [x * d/dy (x + y)] = {float(value)}")
assert all(v == 1.0 for v in results.values())

# %% [markdown]
# One caution: `dg.Dual(primal, tangent)` values made **by hand** all share one
# perturbation (the root level), just like the naive class. Mixing two hand-made duals
# meant as different perturbations confuses them; nest with `dg.jvp`, which opens a
# fresh level per call.

# %%
x_by_hand, y_by_hand = dg.Dual(1.0, 1.0), dg.Dual(1.0, 1.0)
print("hand-made Duals share a perturbation:", x_by_hand + y_by_hand)
assert (x_by_hand + y_by_hand).tangent == 2.0

# %% [markdown]
# ## A second example, across a range of x
#
# $h(x) = x \cdot \big(\frac{d}{dy}(x y)\big)\big|_{y=2} = x \cdot x$, so $h'(x) = 2x$. The
# naive nested duals put both tangents in one slot, so the inner derivative reads
# $\dot x\, y + x\, \dot y = 1 \cdot 2 + x \cdot 1 = x + 2$ instead of $x$; and since
# that comes back as a plain number (the outer tangent is lost in the mix), the outer
# derivative of $x \cdot (x_0 + 2)$ is $x + 2$ instead of $2x$. We evaluate the naive
# and the tagged duals, and dualgrad in its four nestings, on a grid.

# %%
def h_with(d):
    return lambda x: x * d(lambda y: x * y)(2.0)


grid = np.linspace(-2, 2, 21)
naive_curve = np.array([d_naive(h_with(d_naive))(float(x)) for x in grid])
tagged_curve = np.array([d_tagged(h_with(d_tagged))(float(x)) for x in grid])
dg_curves = {f"{on}/{inn}": np.array([float(o(h_with(i))(float(x))) for x in grid])
             for (on, o), (inn, i) in itertools.product([("fwd", d_fwd), ("rev", d_rev)],
                                                        repeat=2)}
assert np.allclose(naive_curve, grid + 2)
assert np.allclose(tagged_curve, 2 * grid)
for name, c in dg_curves.items():
    assert np.allclose(c, 2 * grid), name
print("naive  h'(x) at x = -2, 0, 2:", naive_curve[[0, 10, 20]])
print("tagged h'(x) at x = -2, 0, 2:", tagged_curve[[0, 10, 20]])
for name, c in dg_curves.items():
    print(f"dualgrad {name} h'(x) at x = -2, 0, 2:", c[[0, 10, 20]])

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(grid, 2 * grid, "k-", lw=4, alpha=0.25, label="exact: 2x")
ax.plot(grid, naive_curve, "o--", color="C3", label="naive nested duals")
ax.plot(grid, tagged_curve, "s", mfc="none", color="C0", label="tagged duals")
for (name, c), marker in zip(dg_curves.items(), "x+.1"):
    ax.plot(grid, c, marker, ls="none", label=f"dualgrad {name}")
ax.set_xlabel("x")
ax.set_ylabel("h'(x)")
ax.set_title("d/dx [x * d/dy (x y) at y=2]: perturbation confusion")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(FIG_DIR / "06_perturbation_confusion.png", dpi=100)
print("saved", FIG_DIR / "06_perturbation_confusion.png")

# %% [markdown]
# ## What to take away
#
# * Nested derivatives need distinct perturbations; sharing one slot silently gives
#   wrong answers (2 instead of 1), with no error.
# * Tags (dualgrad's levels, ForwardDiff.jl's tags, JAX's trace levels) keep them apart;
#   the same mechanism serves forward mode, reverse mode and any mix.
# * Use the transforms (`dg.jvp`, `dg.grad`, tapes) to nest; hand-made `dg.Dual`s share
#   one perturbation.
