"""The workloads of DESIGN.md §8: inputs, the numpy forward F, and dualgrad's derivative.

A *workload* (``baydin``, ``hessian``, ...) expands into one or more *cases*, one per
derivative timed: ``hessian`` is the full Hessian at n=200 (case ``hessian``) and a
Hessian-vector product at n=100 000 (case ``hvp``); ``jacobian`` is ``jacfwd`` and
``jacrev``.  A case carries

* ``data``: the inputs as float64 numpy arrays (seeded, so every tool sees the same);
* ``forward``: the plain-numpy forward pass F, a zero-argument callable;
* ``dualgrad(dg)``: a zero-argument callable computing the derivative with dualgrad.
  The function differentiated is the numpy code of F itself wherever dualgrad
  accepts numpy code (``np.tanh(A @ x) + x ** 3``); conv uses ``dg.nn.conv2d``.

The peers (PyTorch, JAX, autograd) live in ``bench/peers.py`` and read the same ``data``.
Every derivative is returned in the order listed in ``Case.outputs``.
"""

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .lstm_reference import lstm_by_hand, lstm_loss

SEED = 0


@dataclass
class Case:
    name: str                 # case name, also the key into bench/peers.py
    workload: str             # the §8 workload it belongs to
    what: str                 # the function, in words
    derivative: str           # what is differentiated, in words
    unit: str                 # "us_per_call" | "us_per_op" | "ratio" (time / F)
    data: dict
    forward: object           # zero-arg numpy forward pass F
    dualgrad: object          # dg -> zero-arg callable computing the derivative
    outputs: tuple            # names of the derivative's parts, in order
    target: tuple = None      # (kind, value): kind "ratio" (x F), "us_per_op", "us", "ms"
    ops: int = 1              # recorded ops per call (chain: per-op normalisation)
    notes: list = field(default_factory=list)


def _rng():
    return np.random.default_rng(SEED)


# ---------------------------------------------------------------------------
# Helpers shared by F and dualgrad (plain numpy code: dualgrad differentiates it as is)

def _relu(dg):
    """dualgrad's relu when dg.nn has one, else numpy's maximum (which dualgrad traces)."""
    nn = getattr(dg, "nn", None) if dg is not None else None
    return getattr(nn, "relu", None) or (lambda z: np.maximum(z, 0.0))


def _log_softmax_np(z):
    m = np.max(z, axis=1, keepdims=True)
    s = z - m
    return s - np.log(np.sum(np.exp(s), axis=1, keepdims=True))


def _log_softmax(dg):
    nn = getattr(dg, "nn", None) if dg is not None else None
    f = getattr(nn, "log_softmax", None)
    return (lambda z: f(z, axis=1)) if f is not None else _log_softmax_np


def conv2d_numpy(x, w, pad=1):
    """NCHW cross-correlation, stride 1: im2col by sliding_window_view + one tensordot."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, w.shape[2:], axis=(2, 3))       # (N, C, Ho, Wo, kH, kW)
    out = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))       # (N, Ho, Wo, C_out)
    return out.transpose(0, 3, 1, 2)


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


# ---------------------------------------------------------------------------
# The workloads

def baydin():
    f = lambda x1, x2: np.log(x1) + x1 * x2 - np.sin(x2)
    d = {"x1": 2.0, "x2": 5.0}

    def dualgrad(dg):
        g = dg.grad(f, argnums=(0, 1))
        return lambda: g(2.0, 5.0)

    return [Case("baydin", "baydin", "ln(x1) + x1*x2 - sin(x2) at (2, 5), Python floats",
                 "grad w.r.t. x1, x2", "us_per_call", d, lambda: f(2.0, 5.0), dualgrad,
                 ("dx1", "dx2"), target=("us", 20.0))]


CHAIN_N = 1000


def chain_f(x):
    for _ in range(CHAIN_N):
        x = np.sin(x) * 1.0001 + 0.1 * x * x
    return x


def chain():
    d = {"x": 0.5, "n": CHAIN_N}

    def dualgrad(dg):
        g = dg.grad(chain_f)
        return lambda: g(0.5)

    # sin, *1.0001, 0.1*x, *x, + : five recorded ops per iteration
    return [Case("chain", "chain", f"x = 0.5; {CHAIN_N}x  x = sin(x)*1.0001 + 0.1*x*x, "
                 "Python float", "dx_final/dx0", "us_per_op", d, lambda: chain_f(0.5), dualgrad,
                 ("dx",), target=("us_per_op", 3.0), ops=5 * CHAIN_N)]


def mlp_cs231n():
    r = _rng()
    N, D_in, H, D_out = 64, 1000, 100, 10
    d = {"x": r.standard_normal((N, D_in)), "y": r.standard_normal((N, D_out)),
         "w1": r.standard_normal((D_in, H)) * 1e-2, "w2": r.standard_normal((H, D_out)) * 1e-1}

    def loss(relu):
        return lambda w1, w2, x, y: np.sum((relu(x @ w1) @ w2 - y) ** 2)

    F = loss(_relu(None))

    def dualgrad(dg):
        g = dg.grad(loss(_relu(dg)), argnums=(0, 1))
        return lambda: g(d["w1"], d["w2"], d["x"], d["y"])

    return [Case("mlp_cs231n", "mlp_cs231n", "N=64, D_in=1000, H=100, D_out=10; "
                 "sum((relu(x@w1)@w2 - y)^2)", "grad w.r.t. w1, w2", "ratio", d,
                 lambda: F(d["w1"], d["w2"], d["x"], d["y"]), dualgrad, ("w1", "w2"),
                 target=("ratio", 2.5))]


def mlp_large():
    r = _rng()
    N, D, H, C = 256, 1024, 1024, 10
    d = {"x": r.standard_normal((N, D)), "labels": r.integers(0, C, N),
         "W1": r.standard_normal((D, H)) / np.sqrt(D), "b1": np.zeros(H),
         "W2": r.standard_normal((H, C)) / np.sqrt(H), "b2": np.zeros(C)}
    rows = np.arange(N)

    def loss(relu, log_softmax):
        def f(W1, b1, W2, b2, x, labels):
            logp = log_softmax(relu(x @ W1 + b1) @ W2 + b2)
            return -np.mean(logp[rows, labels])
        return f

    F = loss(_relu(None), _log_softmax_np)
    args = lambda: (d["W1"], d["b1"], d["W2"], d["b2"], d["x"], d["labels"])

    def dualgrad(dg):
        g = dg.grad(loss(_relu(dg), _log_softmax(dg)), argnums=(0, 1, 2, 3))
        return lambda: g(*args())

    return [Case("mlp_large", "mlp_large", "N=256, D=1024, H=1024, C=10; mean softmax "
                 "cross-entropy of relu(x@W1+b1)@W2+b2", "grad w.r.t. W1, b1, W2, b2", "ratio",
                 d, lambda: F(*args()), dualgrad, ("W1", "b1", "W2", "b2"),
                 target=("ratio", 2.1))]


def elementwise():
    d = {"x": _rng().standard_normal(1_000_000)}
    f = lambda x: np.sum(np.tanh(x) * np.sin(x) + np.exp(-x ** 2))

    def dualgrad(dg):
        g = dg.grad(f)
        return lambda: g(d["x"])

    return [Case("elementwise", "elementwise", "x: 1e6 normals; sum(tanh(x)*sin(x) + exp(-x^2))",
                 "grad", "ratio", d, lambda: f(d["x"]), dualgrad, ("x",),
                 target=("ratio", 0.6))]


def hessian():
    r = _rng()
    dh = {"x": r.standard_normal(200)}
    dv = {"x": r.standard_normal(100_000), "v": r.standard_normal(100_000)}

    def dg_hessian(dg):
        h = dg.hessian(rosenbrock)
        return lambda: h(dh["x"])

    def dg_hvp(dg):
        return lambda: dg.hvp(rosenbrock, (dv["x"],), (dv["v"],))

    return [
        Case("hessian", "hessian", "Rosenbrock, n=200", "full Hessian (200x200)", "ratio", dh,
             lambda: rosenbrock(dh["x"]), dg_hessian, ("H",), target=("ms", 2.0)),
        Case("hvp", "hessian", "Rosenbrock, n=100000", "(grad, Hessian @ v)", "ratio", dv,
             lambda: rosenbrock(dv["x"]), dg_hvp, ("grad", "Hv"), target=("ratio", 5.0)),
    ]


def jacobian():
    r = _rng()
    n = 200
    d = {"A": r.standard_normal((n, n)) / np.sqrt(n), "x": r.standard_normal(n)}
    f = lambda x: np.tanh(d["A"] @ x) + x ** 3

    def make(kind):
        def dualgrad(dg):
            j = getattr(dg, kind)(f)
            return lambda: j(d["x"])
        return dualgrad

    def vmap_jvp(dg):
        cols = dg.vmap(lambda t: dg.jvp(f, (d["x"],), (t,))[1], out_axes=1)
        eye = np.eye(n)
        return lambda: cols(eye)

    return [Case(kind, "jacobian", "tanh(A@x) + x^3, n=200", f"{kind} (200x200)", "ratio", d,
                 lambda: f(d["x"]), make(kind), ("J",), target=("ms", 1.5))
            for kind in ("jacfwd", "jacrev")] + [
        Case("vmap_jvp", "jacobian", "tanh(A@x) + x^3, n=200", "vmap of jvp over the "
             "identity's columns (200x200)", "ratio", d, lambda: f(d["x"]), vmap_jvp, ("J",))]


def gather():
    r = _rng()
    d = {"E": r.standard_normal((10_000, 64)), "idx": r.integers(0, 10_000, 100_000)}
    f = lambda E, idx: np.sum(E[idx] ** 2)

    def dualgrad(dg):
        g = dg.grad(f)
        return lambda: g(d["E"], d["idx"])

    return [Case("gather", "gather", "E: 10000x64, 100000 random indices; sum(E[idx]^2)",
                 "grad w.r.t. E", "ratio", d, lambda: f(d["E"], d["idx"]), dualgrad, ("E",),
                 target=("ratio", 1.5))]


def conv():
    r = _rng()
    d = {"x": r.standard_normal((16, 3, 32, 32)), "w": r.standard_normal((16, 3, 3, 3)) / 3}
    F = lambda x, w: np.sum(np.maximum(conv2d_numpy(x, w), 0.0) ** 2)

    def dualgrad(dg):
        nn = getattr(dg, "nn", None)
        if nn is None or not hasattr(nn, "conv2d"):
            raise AttributeError("dualgrad has no dg.nn.conv2d")
        relu = _relu(dg)
        g = dg.grad(lambda x, w: np.sum(relu(nn.conv2d(x, w, padding=1)) ** 2), argnums=(0, 1))
        return lambda: g(d["x"], d["w"])

    return [Case("conv", "conv", "N=16, 3->16 channels, 32x32, 3x3, pad 1; "
                 "sum(relu(conv(x, w))^2)", "grad w.r.t. x, w", "ratio", d,
                 lambda: F(d["x"], d["w"]), dualgrad, ("x", "w"), target=("ratio", 1.5))]


def logreg_loss(w, b, X, y):
    """Mean logistic loss: mean(log1p(exp(-y * (X @ w + b))))."""
    return np.mean(np.log1p(np.exp(-y * (X @ w + b))))


def logreg():
    r = _rng()
    N, D = 2000, 20
    d = {"X": r.standard_normal((N, D)), "y": np.where(r.random(N) < 0.5, -1.0, 1.0),
         "w": r.standard_normal(D) * 0.1, "b": 0.1}

    def dualgrad(dg):
        g = dg.grad(logreg_loss, argnums=(0, 1))
        return lambda: g(d["w"], d["b"], d["X"], d["y"])

    return [Case("logreg", "logreg", "N=2000, D=20; mean(log1p(exp(-y*(X@w+b))))",
                 "grad w.r.t. w, b", "ratio", d,
                 lambda: logreg_loss(d["w"], d["b"], d["X"], d["y"]), dualgrad, ("w", "b"))]


def mlp_small_loss(W1, b1, W2, b2, W3, b3, x, y):
    h = np.tanh(x @ W1 + b1)
    h = np.tanh(h @ W2 + b2)
    return np.mean((h @ W3 + b3 - y) ** 2)


def mlp_small():
    r = _rng()
    d = {"W1": r.standard_normal((3, 32)) / np.sqrt(3), "b1": np.zeros(32),
         "W2": r.standard_normal((32, 32)) / np.sqrt(32), "b2": np.zeros(32),
         "W3": r.standard_normal((32, 1)) / np.sqrt(32), "b3": np.zeros(1),
         "x": r.standard_normal((32, 3)), "y": r.standard_normal((32, 1))}
    keys = ("W1", "b1", "W2", "b2", "W3", "b3", "x", "y")

    def dualgrad(dg):
        g = dg.value_and_grad(mlp_small_loss, argnums=(0, 1, 2, 3, 4, 5))

        def run():
            v, gs = g(*(d[k] for k in keys))
            return (v,) + tuple(gs)
        return run

    return [Case("mlp_small", "mlp_small", "3-32-32-1 tanh MLP, batch 32; mean squared loss",
                 "value_and_grad w.r.t. all weights", "ratio", d,
                 lambda: mlp_small_loss(*(d[k] for k in keys)), dualgrad,
                 ("loss", "W1", "b1", "W2", "b2", "W3", "b3"))]


def per_example_loss(W1, b1, W2, b2, W3, b3, x, y):
    """mlp_small's loss of one example: x (3,), y (1,)."""
    h = np.tanh(np.tanh(x @ W1 + b1) @ W2 + b2)
    return np.sum((h @ W3 + b3 - y) ** 2)


PER_EXAMPLE_N = 256


def per_example():
    """Per-example gradients of every weight of mlp_small, N=256 (``vmap(grad)``), beside
    the batched gradient of the same (summed) loss and a Python loop of ``dg.grad``."""
    r = _rng()
    n = PER_EXAMPLE_N
    d = {"W1": r.standard_normal((3, 32)) / np.sqrt(3), "b1": np.zeros(32),
         "W2": r.standard_normal((32, 32)) / np.sqrt(32), "b2": np.zeros(32),
         "W3": r.standard_normal((32, 1)) / np.sqrt(32), "b3": np.zeros(1),
         "x": r.standard_normal((n, 3)), "y": r.standard_normal((n, 1))}
    keys = ("W1", "b1", "W2", "b2", "W3", "b3", "x", "y")
    args = lambda: [d[k] for k in keys]  # noqa: E731
    nums = (0, 1, 2, 3, 4, 5)

    def vmapped(dg):
        g = dg.vmap(dg.grad(per_example_loss, argnums=nums), in_axes=(None,) * 6 + (0, 0))
        return lambda: g(*args())

    def batched(dg):
        g = dg.grad(per_example_loss, argnums=nums)  # x (N, 3): the sum over the batch
        return lambda: g(*args())

    def loop(dg):
        g = dg.grad(per_example_loss, argnums=nums)

        def run():
            *w, x, y = args()
            gs = [g(*w, x[i], y[i]) for i in range(n)]
            return tuple(np.stack(p) for p in zip(*gs))
        return run

    forward = lambda: per_example_loss(*args())  # noqa: E731
    outs = ("W1", "b1", "W2", "b2", "W3", "b3")
    what = f"mlp_small (3-32-32-1 tanh), N={n}; per-example squared loss"
    return [Case("per_example", "per_example", what, "vmap(grad) w.r.t. all weights",
                 "ratio", d, forward, vmapped, outs),
            Case("per_example_batched", "per_example", what,
                 "grad of the summed loss (the batched gradient)", "ratio", d, forward,
                 batched, outs),
            Case("per_example_loop", "per_example", what, "Python loop of dg.grad", "ratio",
                 d, forward, loop, outs)]


RK4_STEPS, RK4_DT = 100, 0.01


def rk4_loss(p, np=np):
    """Lotka-Volterra from (1, 1), 100 RK4 steps of dt=0.01; loss = sum of the final state."""
    a, b, c, e = p[0], p[1], p[2], p[3]
    x, y = 1.0, 1.0

    def f(x, y):
        return a * x - b * x * y, e * x * y - c * y

    h = RK4_DT
    for _ in range(RK4_STEPS):
        k1x, k1y = f(x, y)
        k2x, k2y = f(x + 0.5 * h * k1x, y + 0.5 * h * k1y)
        k3x, k3y = f(x + 0.5 * h * k2x, y + 0.5 * h * k2y)
        k4x, k4y = f(x + h * k3x, y + h * k3y)
        x = x + h / 6.0 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x)
        y = y + h / 6.0 * (k1y + 2.0 * k2y + 2.0 * k3y + k4y)
    return x + y


def rk4():
    d = {"p": np.array([1.5, 1.0, 3.0, 1.0])}

    def dualgrad(dg):
        g = dg.grad(rk4_loss)
        return lambda: g(d["p"])

    return [Case("rk4", "rk4", "Lotka-Volterra, 100 RK4 steps (dt=0.01) from (1, 1); "
                 "sum of the final state", "grad w.r.t. the 4 parameters", "us_per_call", d,
                 lambda: rk4_loss(d["p"]), dualgrad, ("p",))]


# fluidsim: Stam's "stable fluids" on a periodic grid, the shape of HIPS autograd's
# examples/fluidsim (issue 21).  The tape holds thousands of grid-sized temporaries at
# once, all of one shape: the case that made the old buffer cache's take() scan.

FLUID_N, FLUID_STEPS, FLUID_JACOBI = 100, 50, 10


def _fluid_diff(a, axis, np=np):
    """a[k+1] - a[k-1] along ``axis``, wrapping around (twice the central difference)."""
    return np.roll(a, -1, axis=axis) - np.roll(a, 1, axis=axis)


def fluid_project(vx, vy, np=np):
    """Remove most of the divergence of (vx, vy): FLUID_JACOBI Jacobi sweeps of the
    pressure Poisson equation, then subtract the pressure gradient."""
    h = 1.0 / vx.shape[0]
    div = -0.5 * h * (_fluid_diff(vx, 0, np) + _fluid_diff(vy, 1, np))
    p = np.zeros(vx.shape)
    for _ in range(FLUID_JACOBI):
        p = (div + np.roll(p, 1, axis=0) + np.roll(p, -1, axis=0)
             + np.roll(p, 1, axis=1) + np.roll(p, -1, axis=1)) / 4.0
    return vx - 0.5 * _fluid_diff(p, 0, np) / h, vy - 0.5 * _fluid_diff(p, 1, np) / h


def fluid_advect(f, vx, vy, np=np):
    """Carry ``f`` along the flow: each cell takes the value of ``f`` at the point the
    flow came from, interpolated bilinearly between its four neighbouring cells
    (semi-Lagrangian; vx moves along axis 0, vy along axis 1; periodic edges)."""
    rows, cols = f.shape
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    si, sj = np.reshape(i - vx, (-1,)), np.reshape(j - vy, (-1,))   # where it came from
    i0, j0 = np.floor(si), np.floor(sj)
    wi, wj = si - i0, sj - j0                   # weights of the lower/right neighbours
    i0, j0 = np.mod(i0.astype(int), rows), np.mod(j0.astype(int), cols)
    i1, j1 = np.mod(i0 + 1, rows), np.mod(j0 + 1, cols)
    out = ((1.0 - wi) * ((1.0 - wj) * f[i0, j0] + wj * f[i0, j1])
           + wi * ((1.0 - wj) * f[i1, j0] + wj * f[i1, j1]))
    return np.reshape(out, (rows, cols))


def fluidsim_loss(vx, vy, smoke, target, np=np):
    """FLUID_STEPS steps (self-advect the velocity, project it, advect the smoke); the
    mean squared distance of the final smoke from ``target``."""
    for _ in range(FLUID_STEPS):
        vx, vy = fluid_advect(vx, vx, vy, np), fluid_advect(vy, vx, vy, np)
        vx, vy = fluid_project(vx, vy, np)
        smoke = fluid_advect(smoke, vx, vy, np)
    return np.mean((target - smoke) ** 2)


def fluidsim_data(n=FLUID_N):
    """Initial velocities (the parameters: a smooth swirl plus noise, about a cell per
    step), a smoke ring, and a target image (a bar), float64 n x n."""
    r = _rng()
    y, x = np.mgrid[0:n, 0:n] / n
    vx = 2.0 * np.sin(2 * np.pi * y) + 0.3 * r.standard_normal((n, n))
    vy = 2.0 * np.cos(2 * np.pi * x) + 0.3 * r.standard_normal((n, n))
    rad = np.hypot(x - 0.5, y - 0.5)
    smoke = np.exp(-((rad - 0.25) / 0.06) ** 2)
    target = ((np.abs(x - 0.5) < 0.1) & (np.abs(y - 0.5) < 0.35)).astype(np.float64)
    return {"vx": vx, "vy": vy, "smoke": smoke, "target": target}


def fluidsim(n=FLUID_N):
    d = fluidsim_data(n)

    def dualgrad(dg):
        g = dg.grad(fluidsim_loss, argnums=(0, 1))
        return lambda: g(d["vx"], d["vy"], d["smoke"], d["target"])

    return [Case("fluidsim", "fluidsim",
                 f"2-D fluid, {n}x{n}, {FLUID_STEPS} steps of advection "
                 f"(bilinear, np.floor indices) and projection ({FLUID_JACOBI} Jacobi "
                 "sweeps); mean squared distance to a target", "grad w.r.t. the initial "
                 "velocities vx, vy", "us_per_call", d,
                 lambda: fluidsim_loss(d["vx"], d["vy"], d["smoke"], d["target"]),
                 dualgrad, ("vx", "vy"))]


# naive_conv: the CS231n conv layer as students write it (issue 23): loops writing one
# output entry at a time into a preallocated array.  F here is the student's own
# hand-written forward + backward (conv_forward_naive + conv_backward_naive, plain numpy),
# so "x F" is dualgrad's gradient over what the student computes by hand.

NAIVE_CONV = dict(N=4, C=3, H=16, W=16, F=8, HH=3, WW=3, stride=1, pad=1)


def conv_forward_naive(x, w, b, stride=1, pad=1):
    """CS231n's conv_forward_naive: ``out = np.zeros(..., like=x)`` (a traced array under
    dualgrad's transforms; plain numpy ignores like= for a numpy x), one entry per write."""
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out, W_out = 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((N, F, H_out, W_out), like=x)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    out[n, f, i, j] = np.sum(x_pad[n, :, hs:hs + HH, ws:ws + WW] * w[f]) + b[f]
    return out


def conv_backward_naive(dout, x, w, b, stride=1, pad=1):
    """CS231n's conv_backward_naive: the same loops, adding each output's cotangent into
    dx_pad, dw and db."""
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad, dw, db = np.zeros_like(x_pad), np.zeros_like(w), np.zeros_like(b)
    for n in range(N):
        for f in range(F):
            db[f] += np.sum(dout[n, f])
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    d = dout[n, f, i, j]
                    dw[f] += x_pad[n, :, hs:hs + HH, ws:ws + WW] * d
                    dx_pad[n, :, hs:hs + HH, ws:ws + WW] += w[f] * d
    return dx_pad[:, :, pad:pad + H, pad:pad + W], dw, db


def naive_conv_loss(x, w, b, dout):
    return np.sum(conv_forward_naive(x, w, b, NAIVE_CONV["stride"], NAIVE_CONV["pad"]) * dout)


def naive_conv_by_hand(x, w, b, dout):
    """The student's gradient of ``naive_conv_loss``: forward, then the backward by hand."""
    s, p = NAIVE_CONV["stride"], NAIVE_CONV["pad"]
    conv_forward_naive(x, w, b, s, p)
    return conv_backward_naive(dout, x, w, b, s, p)


def naive_conv():
    k = NAIVE_CONV
    r = _rng()
    H_out = 1 + (k["H"] + 2 * k["pad"] - k["HH"]) // k["stride"]
    W_out = 1 + (k["W"] + 2 * k["pad"] - k["WW"]) // k["stride"]
    d = {"x": r.standard_normal((k["N"], k["C"], k["H"], k["W"])),
         "w": r.standard_normal((k["F"], k["C"], k["HH"], k["WW"])) / 3,
         "b": r.standard_normal(k["F"]),
         "dout": r.standard_normal((k["N"], k["F"], H_out, W_out))}
    args = lambda: (d["x"], d["w"], d["b"], d["dout"])  # noqa: E731

    def dualgrad(dg):
        g = dg.grad(naive_conv_loss, argnums=(0, 1, 2))
        return lambda: g(*args())

    return [Case("naive_conv", "naive_conv",
                 f"CS231n naive conv loops, x {k['N']}x{k['C']}x{k['H']}x{k['W']}, "
                 f"{k['F']} filters {k['HH']}x{k['WW']}, stride 1, pad 1, writes into "
                 "np.zeros(S, like=x); loss = sum(out * dout). F: the student's forward + "
                 "conv_backward_naive by hand", "grad w.r.t. x, w, b", "ratio", d,
                 lambda: naive_conv_by_hand(*args()), dualgrad, ("x", "w", "b"),
                 target=("ratio", 4.0),
                 notes=["F is the hand-written forward + backward (plain numpy), not the "
                        "forward alone; the dg.jit target is <= 1.5x F"])]


# lstm: CS231n's LSTM (bench/lstm_reference.py) over T steps, many small ops (issue 26).
# F is the student's forward + lstm_backward by hand, as for naive_conv.

LSTM = dict(N=32, T=20, D=64, H=64)


def lstm():
    k = LSTM
    N, T, D, H = k["N"], k["T"], k["D"], k["H"]
    r = _rng()
    d = {"x": r.standard_normal((N, T, D)), "h0": r.standard_normal((N, H)),
         "Wx": r.standard_normal((D, 4 * H)) / np.sqrt(D),
         "Wh": r.standard_normal((H, 4 * H)) / np.sqrt(H),
         "b": r.standard_normal(4 * H) * 0.1, "R": r.standard_normal((N, T, H))}
    keys = ("x", "h0", "Wx", "Wh", "b", "R")
    args = lambda: tuple(d[key] for key in keys)  # noqa: E731

    def dualgrad(dg):
        g = dg.grad(lstm_loss, argnums=(0, 1, 2, 3, 4))
        mine, hand = g(*args()), lstm_by_hand(*args())
        for name, a, want in zip(keys, mine, hand):  # the hand-written backward, checked
            if not np.allclose(np.asarray(a), want, rtol=1e-9, atol=1e-12):
                raise AssertionError(f"lstm: dualgrad's d{name} differs from lstm_backward's "
                                     f"by {np.max(np.abs(np.asarray(a) - want)):.3g}")
        return lambda: g(*args())

    return [Case("lstm", "lstm",
                 f"CS231n lstm_forward, N={N}, T={T}, D=H={D}, h = np.zeros((N, T, H)) "
                 "written h[:, t, :] = next_h; loss = sum(h * R). F: the student's forward "
                 "+ lstm_backward by hand", "grad w.r.t. x, h0, Wx, Wh, b", "ratio", d,
                 lambda: lstm_by_hand(*args()), dualgrad, ("x", "h0", "Wx", "Wh", "b"),
                 target=("ratio", 3.0),
                 notes=["F is the hand-written forward + backward (plain numpy), not the "
                        "forward alone; the dg.jit target is <= 1.2x F; dualgrad's gradient "
                        "is checked against F's when the case is built"])]


class JitShim:
    """dualgrad with every transform compiled: ``dg.jit(dg.grad(f))`` where a workload
    says ``dg.grad(f)``, ``dg.jit(dg.vmap(g))`` where it says ``dg.vmap(g)`` (the tool
    ``dualgrad.jit``); the same code builds both columns."""

    def __init__(self, dg):
        self._dg = dg
        self._hvp = {}

    def __getattr__(self, name):
        return getattr(self._dg, name)

    def _wrap(name):  # noqa: N805
        def transform(self, *args, **kwargs):
            return self._dg.jit(getattr(self._dg, name)(*args, **kwargs))
        transform.__name__ = name
        return transform

    grad, value_and_grad = _wrap("grad"), _wrap("value_and_grad")
    jacfwd, jacrev, hessian = _wrap("jacfwd"), _wrap("jacrev"), _wrap("hessian")
    vmap = _wrap("vmap")  # jit(vmap(jit(grad(f)))): the outer jit records the batched graph,
    # as the jax.jit column is jax.jit(vmap(grad(f))); vmap of a jitted f alone runs eagerly

    def hvp(self, f, primals, tangents):
        j = self._hvp.get(f)
        if j is None:
            dg = self._dg
            j = self._hvp[f] = dg.jit(lambda p, t: dg.hvp(f, p, t))
        return j(tuple(primals), tuple(tangents))


def jit_shim(dg):
    return JitShim(dg)


WORKLOADS = {
    "baydin": baydin, "chain": chain, "mlp_cs231n": mlp_cs231n, "mlp_large": mlp_large,
    "elementwise": elementwise, "hessian": hessian, "jacobian": jacobian, "gather": gather,
    "conv": conv, "logreg": logreg, "mlp_small": mlp_small, "rk4": rk4,
    "per_example": per_example, "fluidsim": fluidsim, "naive_conv": naive_conv,
    "lstm": lstm,
}
# A case name may be given where a workload name is expected (--workloads hvp).
CASE_TO_WORKLOAD = {"hvp": "hessian", "jacfwd": "jacobian", "jacrev": "jacobian",
                    "vmap_jvp": "jacobian", "per_example_batched": "per_example",
                    "per_example_loop": "per_example"}


def build(names):
    """The cases of the named workloads (or case names), in §8 order."""
    want_w, want_c = set(), set()
    for n in names:
        if n in WORKLOADS:
            want_w.add(n)
        elif n in CASE_TO_WORKLOAD:
            want_c.add(n)
        else:
            known = sorted(WORKLOADS) + sorted(CASE_TO_WORKLOAD)
            raise SystemExit(f"unknown workload {n!r}; known: {', '.join(known)}")
    cases = []
    for w, make in WORKLOADS.items():
        if w in want_w or any(CASE_TO_WORKLOAD[c] == w for c in want_c):
            cases += [c for c in make() if w in want_w or c.name in want_c]
    return cases
