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
# # 2. The Wengert list: reverse mode, and when each mode wins
#
# Forward mode (tutorial 1) pushes one tangent through the program and gets one
# directional derivative $J v$. Reverse mode does the opposite: it first **records** the
# program as it runs, one line per elementary operation (the *Wengert list*, or *tape*),
# then walks that list **backwards**, carrying for every intermediate value $v_i$ its
# *adjoint* $\bar v_i = \partial y / \partial v_i$. One backward sweep gives a whole row
# $u^\top J$ of the Jacobian: for a scalar output, the full gradient.
#
# The backward rule for an operation $v_k = \phi(v_i, v_j)$ is
# $\bar v_i \mathrel{+}= \bar v_k \, \partial\phi/\partial v_i$: each input receives the
# output's adjoint times a local partial derivative, summed over every use.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import dualgrad as dg
from dualgrad.teach.timing import median_time
from dualgrad.teach.tracetable import format_tape, labels, replay_tangents

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIG_DIR = Path(os.environ.get("DUALGRAD_TUTORIAL_FIGURES", HERE / "figures"))
FIG_DIR.mkdir(parents=True, exist_ok=True)


def f(x1, x2):
    return np.log(x1) + x1 * x2 - np.sin(x2)


# %% [markdown]
# ## Recording the tape
#
# Inside a `dg.Tape()` block, `tape.watch` marks the inputs. Every primitive applied to a
# watched value appends one entry to `tape.entries`: a record of the primitive
# (`e.prim`), its arguments (`e.args`), which earlier entries they came from
# (`e.parents`) and the result (`e.ans`). Printing the tape shows it as the
# evaluation trace of Baydin et al. (2018), Table 3: inputs numbered $v_{-1}, v_0$, then
# one line per operation. (Python evaluates `log(x1) + x1*x2` before `sin(x2)`, so the
# sine is $v_4$ here rather than $v_3$ as in the paper; the trace records what really ran.)

# %%
with dg.Tape() as tape:
    x1 = tape.watch(2.0, "x1")
    x2 = tape.watch(5.0, "x2")
    y = f(x1, x2)
print(tape)
print("entries on the tape:", len(tape))

# %% [markdown]
# ## The reverse sweep
#
# `tape.gradient(y, [x1, x2])` seeds $\bar y = 1$ and walks the list from the bottom up.
# Printing the tape again now also shows the adjoint trace: $\bar v_5 = 1$, the
# subtraction sends $-1$ to the sine, the sine sends $-\cos(5)$ to $x_2$, the product
# sends $\bar v_2 \cdot v_0 = 5$ to $x_1$ and $\bar v_2 \cdot v_{-1} = 2$ to $x_2$, and the
# logarithm sends $1 / v_{-1} = 0.5$ to $x_1$.

# %%
g1, g2 = tape.gradient(y, [x1, x2])
print(tape)
print(f"\ndf/dx1 = {float(g1)},  df/dx2 = {float(g2)}")
assert g1 == 5.5 and abs(g2 - 1.7163378145367738) < 1e-15

# %% [markdown]
# Those contributions, computed by hand from the recorded values, add up to the gradient
# the sweep returned:

# %%
v_m1, v0 = 2.0, 5.0
to_x1 = {"ln: adj(v1) / v-1": 1.0 / v_m1, "multiply: adj(v2) * v0": 1.0 * v0}
to_x2 = {"multiply: adj(v2) * v-1": 1.0 * v_m1, "sin: adj(v4) * cos(v0)": -1.0 * np.cos(v0)}
for target, parts in (("x1", to_x1), ("x2", to_x2)):
    for what, c in parts.items():
        print(f"  to {target} from {what:<24} {c:+.4f}")
    print(f"  adj({target}) = {sum(parts.values()):.4f}")
assert sum(to_x1.values()) == g1 and abs(sum(to_x2.values()) - g2) < 1e-15

# %% [markdown]
# The same sweep, PyTorch style: `y.backward()` fills `.grad` on every watched input.

# %%
with dg.Tape() as tape:
    x1, x2 = tape.watch(2.0, "x1"), tape.watch(5.0, "x2")
    y = f(x1, x2)
y.backward()
print("x1.grad =", float(x1.grad), " x2.grad =", float(x2.grad))
assert x1.grad == 5.5

# %% [markdown]
# A recorded tape can also be *replayed forward* with tangents — this is forward mode
# over the recorded list (what `dg.linearize` does). Seeding $\dot x_1 = 1$ reproduces the
# tangent column of tutorial 1, next to the adjoint trace of the sweep above:

# %%
tape.gradient(y, [x1, x2])
tangents = replay_tangents(tape, {x1.index: 1.0})
print(format_tape(tape, [("dv/dx1", tangents)]))
assert tangents[y.index] == 5.5

# %% [markdown]
# ## The tape is a graph
#
# Each entry knows which earlier entries it read (`parents`), so the list is a directed
# acyclic graph in topological order. We draw it with plain matplotlib: a node's column is
# its depth (longest path from an input), arrows go from operands to results, and each
# node shows its value $v$ and its adjoint $\bar v$.

# %%
def draw_tape(tape, ax):
    names = labels(tape)
    depth = {}
    for i, e in enumerate(tape.entries):
        depth[i] = 0 if e.prim is None else 1 + max(depth[j] for _, j in e.parents)
    columns = {}
    for i, d in depth.items():
        columns.setdefault(d, []).append(i)
    pos = {}
    for d, members in columns.items():
        for k, i in enumerate(members):
            pos[i] = (d, (len(members) - 1) / 2 - k)
    for i, e in enumerate(tape.entries):
        for _, j in e.parents:  # (argument position, entry index)
            ax.annotate("", xy=pos[i], xytext=pos[j],
                        arrowprops=dict(arrowstyle="-|>", color="0.4", lw=1.2,
                                        shrinkA=28, shrinkB=28))
    for i, e in enumerate(tape.entries):
        op = tape.names.get(i, "input") if e.prim is None else e.prim.name
        text = f"{names[i]}: {op}\nv = {float(e.ans):.3f}"
        if tape.adjoints is not None and tape.adjoints[i] is not None:
            text += f"\nadj = {float(tape.adjoints[i]):.3f}"
        color = "#cfe8ff" if e.prim is None else "#ffe9c7"
        ax.text(*pos[i], text, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.4", fc=color, ec="0.3"))
    ax.set_xlim(-0.6, max(depth.values()) + 0.6)
    ax.set_ylim(-1.4, 1.4)
    ax.axis("off")


fig, ax = plt.subplots(figsize=(10, 4))
draw_tape(tape, ax)
ax.set_title("The Wengert list of ln(x1) + x1*x2 - sin(x2) at (2, 5) as a graph")
fig.tight_layout()
fig.savefig(FIG_DIR / "02_tape_graph.png", dpi=100)
print("saved", FIG_DIR / "02_tape_graph.png")

# %% [markdown]
# ## Which mode wins? Counting passes
#
# For $f: \mathbb{R}^n \to \mathbb{R}^m$ the Jacobian $J$ is $m \times n$.
#
# * Forward mode gives one **column** $J e_j$ per pass: $n$ passes.
# * Reverse mode gives one **row** $e_i^\top J$ per pass: $m$ passes.
#
# So reverse mode wins when there are many inputs and few outputs (a loss function of
# millions of weights: $m = 1$), and forward mode wins when there are few inputs and many
# outputs. `dg.jacfwd` and `dg.jacrev` do all their passes at once by giving the tangent
# (or cotangent) a leading batch axis of size $n$ (or $m$); the passes become array work
# instead of Python loops, but the amount of work still scales with $n$ (or $m$).
#
# We time both on $f(x) = \tanh(A \sin x)$ with $A \in \mathbb{R}^{m \times n}$, once with
# $m = 1$ and growing $n$, once with $n = 1$ and growing $m$, and, to show the pass counts
# directly, also one `dg.jvp` per column and one `dg.vjp` per row in a Python loop.
# Timings are medians of a few repeats (`median_time`, from `dualgrad.teach.timing`: one
# untimed warm-up call, then the median of the timed ones, which a few slow outliers do not
# move) and depend on the machine; the *shape* of the curves is the point.

# %%
def make_problem(n, m, rng):
    A = rng.standard_normal((m, n)) / np.sqrt(n)
    return (lambda x: np.tanh(A @ np.sin(x))), rng.standard_normal(n)


def jac_by_columns(fun, x):   # n forward passes
    eye = np.eye(x.size)
    return np.stack([dg.jvp(fun, (x,), (eye[j],))[1] for j in range(x.size)], axis=-1)


def jac_by_rows(fun, x):      # m reverse passes (one recording, m sweeps)
    y, pull = dg.vjp(fun, x)
    eye = np.eye(y.size)
    return np.stack([pull(eye[i])[0] for i in range(y.size)])


rng = np.random.default_rng(0)
sizes = [1, 4, 16, 64, 256, 1024]
loop_sizes = [s for s in sizes if s <= 256]
results = {}
for case in ("many inputs, m = 1", "many outputs, n = 1"):
    rows = {"jacfwd": [], "jacrev": [], "jvp per column": [], "vjp per row": []}
    for k in sizes:
        n, m = (k, 1) if case.startswith("many inputs") else (1, k)
        fun, x = make_problem(n, m, rng)
        Jf, Jr = dg.jacfwd(fun)(x), dg.jacrev(fun)(x)
        assert np.allclose(Jf, Jr, atol=1e-12)
        rows["jacfwd"].append(median_time(lambda: dg.jacfwd(fun)(x)))
        rows["jacrev"].append(median_time(lambda: dg.jacrev(fun)(x)))
        if k in loop_sizes:
            assert np.allclose(jac_by_columns(fun, x), Jr, atol=1e-12)
            assert np.allclose(jac_by_rows(fun, x), Jr, atol=1e-12)
            rows["jvp per column"].append(median_time(lambda: jac_by_columns(fun, x), 3))
            rows["vjp per row"].append(median_time(lambda: jac_by_rows(fun, x), 3))
    results[case] = rows

for case, rows in results.items():
    print(f"\n{case}: median time in microseconds")
    print(f"{'size':>6}" + "".join(f"{name:>16}" for name in rows))
    for i, k in enumerate(sizes):
        cells = [f"{rows[name][i] * 1e6:16.0f}" if i < len(rows[name]) else f"{'':16}"
                 for name in rows]
        print(f"{k:>6}" + "".join(cells))

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
styles = {"jacfwd": "o-C0", "jacrev": "s-C1", "jvp per column": "o--C0", "vjp per row": "s--C1"}
for ax, (case, rows) in zip(axes, results.items()):
    for name, ts in rows.items():
        xs = sizes[:len(ts)]
        ax.loglog(xs, np.array(ts) * 1e6, styles[name][:-2], color=styles[name][-2:],
                  label=name)
    ax.set_xlabel("n (inputs)" if case.startswith("many inputs") else "m (outputs)")
    ax.set_title(f"f: R^n -> R^m, {case}")
    ax.grid(True, which="both", alpha=0.3)
axes[0].set_ylabel("median time [µs]")
axes[0].legend()
fig.tight_layout()
fig.savefig(FIG_DIR / "02_fwd_vs_rev.png", dpi=100)
print("saved", FIG_DIR / "02_fwd_vs_rev.png")

# %% [markdown]
# Reading the plot: with one output (left), reverse mode's cost stays nearly flat as $n$
# grows, while forward mode grows with $n$ — in the Python loop from the start, in the
# batched `jacfwd` once the $n \times n$ batch of tangents outweighs the fixed
# per-operation overhead. With one input (right) the roles swap. At small sizes all
# variants cost about the same: the fixed Python cost of each recorded operation
# dominates.
#
# ## The cheap gradient principle
#
# For a scalar function, reverse mode gets the whole gradient in one sweep, and each
# backward step costs a small constant times its forward step. So the gradient costs a
# **small constant multiple of one evaluation of $f$**, independently of $n$ (Griewank
# & Walther's cheap gradient principle). We measure the ratio
# $\text{time}(\nabla f) / \text{time}(f)$ for
# $f(x) = \sum \tanh(x)\sin(x) + e^{-x^2}$, against plain numpy evaluation of $f$.

# %%
def h(x):
    return np.sum(np.tanh(x) * np.sin(x) + np.exp(-x ** 2))


grad_h = dg.grad(h)
x = np.linspace(-2, 2, 7)
assert np.allclose(grad_h(x), dg.numerical_jacobian(h, (x,))[0][0], atol=1e-8)

ns = [10, 100, 1_000, 10_000, 100_000, 1_000_000]
ratios = []
print(f"{'n':>9} {'f [µs]':>10} {'grad f [µs]':>12} {'ratio':>7}")
for n in ns:
    x = rng.standard_normal(n)
    reps = 5 if n < 1_000_000 else 3
    t_f = median_time(lambda: h(x), reps)
    t_g = median_time(lambda: grad_h(x), reps)
    ratios.append(t_g / t_f)
    print(f"{n:>9} {t_f * 1e6:>10.0f} {t_g * 1e6:>12.0f} {t_g / t_f:>7.1f}")

fig, ax = plt.subplots(figsize=(6, 4))
ax.semilogx(ns, ratios, "o-")
ax.set_xlabel("n (input size)")
ax.set_ylabel("time(grad f) / time(f)")
ax.set_title("Cheap gradient principle: the ratio settles to a constant")
ax.set_ylim(0, max(ratios) * 1.1)
ax.grid(True, which="both", alpha=0.3)
fig.tight_layout()
fig.savefig(FIG_DIR / "02_cheap_gradient.png", dpi=100)
print("saved", FIG_DIR / "02_cheap_gradient.png")

# %% [markdown]
# At small $n$ the ratio is large: $f$ itself takes microseconds, and dualgrad's fixed
# per-operation cost (recording each entry, running each rule in Python) dominates. As
# $n$ grows that overhead is amortised and the ratio falls to a small constant, which is
# the cheap gradient principle at work: the gradient of a million-input function costs a
# few function evaluations, not a million.
#
# ## What to take away
#
# * Reverse mode = record a Wengert list, then one backward sweep per output; forward
#   mode = one pass per input direction.
# * Many inputs, few outputs (training losses): reverse (`grad`, `jacrev`, `vjp`).
#   Few inputs, many outputs: forward (`jvp`, `jacfwd`).
# * The tape is an ordinary object: print it, replay it, draw it.
