"""The peers: the same derivatives written with PyTorch, JAX and HIPS autograd.

One factory per tool per case: ``factory(data) -> zero-arg callable`` that computes the
derivative from inputs already converted to the tool's arrays (the conversion is not
timed).  Outputs come back in the order of ``Case.outputs`` (bench/workloads.py).  A case
missing from a tool's table is "not supported" and shows as "—".

Tools (each only when importable):

    torch       PyTorch eager: tensors with requires_grad, torch.autograd.grad; the
                Hessian/Jacobian through torch.autograd.functional (vectorize=True)
    torch.func  torch.func.hessian / jacfwd / jacrev / jvp(grad) (functorch transforms)
    jax         JAX without jit: jax.grad & co. run op by op
    jax.jit     jax.jit of the same transform, compiled during warm-up;
                results are waited for with block_until_ready
    autograd    HIPS autograd (autograd.numpy)

float64 everywhere: torch tensors are float64, JAX runs with jax_enable_x64.
"""

import importlib
import os
import time

import numpy as np

TOOLS = ("torch", "torch.func", "jax", "jax.jit", "autograd")

_mods = {}


def _import(name):
    """The module, or None when it cannot be imported (then the tool shows "—")."""
    if name not in _mods:
        try:
            _mods[name] = importlib.import_module(name)
        except Exception:  # noqa: BLE001  (ImportError, or a broken install)
            _mods[name] = None
    return _mods[name]


def setup(threads=1):
    """Import the installed peers once, with float64 and the thread count fixed: torch's
    intra- and inter-op pools, numba's threads (dualgrad's parallel kernels; also set by
    ``NUMBA_NUM_THREADS`` before import) and numpy's BLAS (threadpoolctl, where installed;
    also ``OPENBLAS_NUM_THREADS``...).  JAX reads its threads from the CPUs it may run on
    (the bench pins ``threads`` of them) and ``XLA_FLAGS`` at import: nothing to call."""
    limits = _import("threadpoolctl")
    if limits is not None:
        _mods["_blas_limits"] = limits.threadpool_limits(limits=threads, user_api="blas")
    numba = _import("numba")
    if numba is not None:
        try:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        except Exception:  # noqa: BLE001  (no threading layer: numba runs serial)
            pass
    torch = _import("torch")
    if torch is not None:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # already set (inter-op pool started)
            pass
    jax = _import("jax")
    if jax is not None:
        jax.config.update("jax_enable_x64", True)
    _import("autograd")


def busy_threads(fn, seconds=0.4):
    """How many OS threads of this process ran while ``fn()`` was called over and over for
    ``seconds`` (Linux: CPU ticks per thread from ``/proc/self/task``): a thread counts
    when it used at least a fifth of the busiest one's time.  None where unknown.  Unlike
    CPU time / wall time, this does not drop when other processes load the machine."""
    try:
        fn()
        before = _thread_ticks()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn()
        after = _thread_ticks()
    except Exception:  # noqa: BLE001  (a library that cannot run the probe: unknown)
        return None
    if not before:
        return None
    used = [after[t] - before.get(t, 0) for t in after]
    top = max(used, default=0)
    return sum(1 for u in used if top and u * 5 >= top) or None


def _thread_ticks():
    out = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[tid] = int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)
        except (OSError, ValueError, IndexError):
            pass
    return out


def thread_check(dg_backend=None):
    """{probe: busy threads} for one large call of each library: numpy's BLAS matmul,
    torch's matmul and tanh, jax.jit's matmul and tanh, and dualgrad's tanh with its
    gradient under the numba backend (which runs a parallel kernel only where one was
    measured faster)."""
    r = np.random.default_rng(0)
    a = r.standard_normal((700, 700))
    v = r.standard_normal(2_000_000)
    out = {"numpy matmul": busy_threads(lambda: a @ a)}
    torch = _import("torch")
    if torch is not None:
        ta, tv = torch.from_numpy(a), torch.from_numpy(v)
        out["torch matmul"] = busy_threads(lambda: ta @ ta)
        out["torch tanh"] = busy_threads(lambda: torch.tanh(tv))
    jax = _import("jax")
    if jax is not None:
        jnp = _import("jax.numpy")
        ja, jv = jnp.asarray(a), jnp.asarray(v)
        mm, th = jax.jit(lambda x: x @ x), jax.jit(jnp.tanh)
        out["jax.jit matmul"] = busy_threads(lambda: mm(ja).block_until_ready())
        out["jax.jit tanh"] = busy_threads(lambda: th(jv).block_until_ready())
    if dg_backend is not None:
        try:
            with dg_backend.use_backend("numba"):
                out["dualgrad[numba] tanh+grad"] = busy_threads(
                    lambda: dg_backend.unary_with_grad("tanh", v))
        except ImportError:  # no numba
            pass
    return out


def available(tool):
    base = {"torch": "torch", "torch.func": "torch", "jax": "jax", "jax.jit": "jax",
            "autograd": "autograd"}[tool]
    return _import(base) is not None


def version(tool):
    base = tool.split(".")[0]
    m = _import(base)
    return getattr(m, "__version__", None) if m is not None else None


def get(tool, case):
    """The factory for ``tool`` on ``case``, or None when the tool has none."""
    return FACTORIES[tool].get(case)


def to_numpy(r):
    """A derivative from any tool as a tuple of float64 numpy arrays."""
    if isinstance(r, dict):
        r = tuple(r[k] for k in sorted(r))
    if isinstance(r, (tuple, list)):
        out = ()
        for p in r:
            out += to_numpy(p)
        return out
    if hasattr(r, "detach"):  # torch
        r = r.detach().cpu().numpy()
    return (np.asarray(r, dtype=np.float64),)


# ---------------------------------------------------------------------------
# PyTorch eager

def _t(a, grad=False):
    torch = _mods["torch"]
    if isinstance(a, float):
        return torch.tensor(a, dtype=torch.float64, requires_grad=grad)
    t = torch.from_numpy(np.ascontiguousarray(a))
    if t.is_floating_point():
        t = t.to(torch.float64)
    return t.requires_grad_(grad) if grad else t


def _torch_grad(loss, params):
    torch = _mods["torch"]
    return lambda: torch.autograd.grad(loss(*params), params)


def torch_baydin(d):
    torch = _mods["torch"]
    x1, x2 = _t(d["x1"], True), _t(d["x2"], True)
    return _torch_grad(lambda a, b: torch.log(a) + a * b - torch.sin(b), (x1, x2))


def torch_chain(d):
    torch = _mods["torch"]
    n = d["n"]

    def f(x):
        for _ in range(n):
            x = torch.sin(x) * 1.0001 + 0.1 * x * x
        return x

    return _torch_grad(f, (_t(d["x"], True),))


def torch_mlp_cs231n(d):
    torch = _mods["torch"]
    x, y = _t(d["x"]), _t(d["y"])
    return _torch_grad(lambda w1, w2: torch.sum((torch.relu(x @ w1) @ w2 - y) ** 2),
                       (_t(d["w1"], True), _t(d["w2"], True)))


def torch_mlp_large(d):
    torch = _mods["torch"]
    F = torch.nn.functional
    x, labels = _t(d["x"]), torch.from_numpy(d["labels"]).long()
    ps = tuple(_t(d[k], True) for k in ("W1", "b1", "W2", "b2"))
    return _torch_grad(lambda W1, b1, W2, b2: F.cross_entropy(torch.relu(x @ W1 + b1) @ W2 + b2,
                                                              labels), ps)


def torch_elementwise(d):
    torch = _mods["torch"]
    return _torch_grad(lambda x: torch.sum(torch.tanh(x) * torch.sin(x) + torch.exp(-x ** 2)),
                       (_t(d["x"], True),))


def _torch_rosenbrock(x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def torch_hessian(d):
    torch = _mods["torch"]
    x = _t(d["x"])
    return lambda: torch.autograd.functional.hessian(_torch_rosenbrock, x, vectorize=True)


def torch_hvp(d):
    """Eager PyTorch: reverse-over-reverse (double backward), returns (grad, Hv)."""
    torch = _mods["torch"]
    x, v = _t(d["x"], True), _t(d["v"])

    def run():
        (g,) = torch.autograd.grad(_torch_rosenbrock(x), x, create_graph=True)
        (hv,) = torch.autograd.grad(g, x, v)
        return g, hv

    return run


def _torch_jac_f(d):
    torch = _mods["torch"]
    A = _t(d["A"])
    return lambda x: torch.tanh(A @ x) + x ** 3


def torch_jacfwd(d):
    torch = _mods["torch"]
    f, x = _torch_jac_f(d), _t(d["x"])
    return lambda: torch.autograd.functional.jacobian(f, x, vectorize=True,
                                                      strategy="forward-mode")


def torch_jacrev(d):
    torch = _mods["torch"]
    f, x = _torch_jac_f(d), _t(d["x"])
    return lambda: torch.autograd.functional.jacobian(f, x, vectorize=True,
                                                      strategy="reverse-mode")


def torch_gather(d):
    torch = _mods["torch"]
    idx = torch.from_numpy(d["idx"]).long()
    return _torch_grad(lambda E: torch.sum(E[idx] ** 2), (_t(d["E"], True),))


def torch_conv(d):
    torch = _mods["torch"]
    F = torch.nn.functional
    return _torch_grad(lambda x, w: torch.sum(torch.relu(F.conv2d(x, w, padding=1)) ** 2),
                       (_t(d["x"], True), _t(d["w"], True)))



def torch_lstm(d):
    """bench/lstm_reference.py's lstm_forward written with torch ops (the same equations,
    sigmoid as 1 / (1 + exp(-a)), h = zeros written h[:, t, :] = next_h); autograd's grad."""
    torch = _mods["torch"]
    R = _t(d["R"])

    def loss(x, h0, Wx, Wh, b):
        N, T, _ = x.shape
        H = h0.shape[1]
        h = torch.zeros((N, T, H), dtype=torch.float64)
        prev_h, prev_c = h0, torch.zeros((N, H), dtype=torch.float64)
        for t in range(T):
            a = x[:, t, :] @ Wx + prev_h @ Wh + b
            i = 1 / (1 + torch.exp(-a[:, :H]))
            f = 1 / (1 + torch.exp(-a[:, H:2 * H]))
            o = 1 / (1 + torch.exp(-a[:, 2 * H:3 * H]))
            g = torch.tanh(a[:, 3 * H:])
            prev_c = f * prev_c + i * g
            prev_h = o * torch.tanh(prev_c)
            h[:, t, :] = prev_h
        return torch.sum(h * R)

    return _torch_grad(loss, tuple(_t(d[k], True) for k in ("x", "h0", "Wx", "Wh", "b")))

# ---------------------------------------------------------------------------
# torch.func (functional transforms; only where they differ from eager autograd)

def torchfunc_hessian(d):
    torch = _mods["torch"]
    h, x = torch.func.hessian(_torch_rosenbrock), _t(d["x"])
    return lambda: h(x)


def torchfunc_hvp(d):
    torch = _mods["torch"]
    g = torch.func.grad(_torch_rosenbrock)
    x, v = _t(d["x"]), _t(d["v"])
    return lambda: torch.func.jvp(g, (x,), (v,))


def torchfunc_jacfwd(d):
    torch = _mods["torch"]
    j, x = torch.func.jacfwd(_torch_jac_f(d)), _t(d["x"])
    return lambda: j(x)


def torchfunc_jacrev(d):
    torch = _mods["torch"]
    j, x = torch.func.jacrev(_torch_jac_f(d)), _t(d["x"])
    return lambda: j(x)


# ---------------------------------------------------------------------------
# JAX: each function returns (transformed function, its arguments); jax.jit wraps it

def _j(a):
    jnp = _import("jax.numpy")
    return jnp.asarray(a, dtype=jnp.float64) if np.asarray(a).dtype.kind == "f" \
        else jnp.asarray(a)


def jax_baydin(d):
    jax, jnp = _mods["jax"], _import("jax.numpy")
    f = lambda x1, x2: jnp.log(x1) + x1 * x2 - jnp.sin(x2)
    return jax.grad(f, argnums=(0, 1)), (_j(d["x1"]), _j(d["x2"]))


def jax_chain(d):
    jax, jnp = _mods["jax"], _import("jax.numpy")
    n = d["n"]

    def f(x):
        for _ in range(n):
            x = jnp.sin(x) * 1.0001 + 0.1 * x * x
        return x

    return jax.grad(f), (_j(d["x"]),)


def jax_mlp_cs231n(d):
    jax, jnp = _mods["jax"], _import("jax.numpy")
    f = lambda w1, w2, x, y: jnp.sum((jax.nn.relu(x @ w1) @ w2 - y) ** 2)
    return jax.grad(f, argnums=(0, 1)), tuple(_j(d[k]) for k in ("w1", "w2", "x", "y"))


def jax_mlp_large(d):
    jax, jnp = _mods["jax"], _import("jax.numpy")

    def f(W1, b1, W2, b2, x, labels):
        logp = jax.nn.log_softmax(jax.nn.relu(x @ W1 + b1) @ W2 + b2, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))

    args = tuple(_j(d[k]) for k in ("W1", "b1", "W2", "b2", "x", "labels"))
    return jax.grad(f, argnums=(0, 1, 2, 3)), args


def jax_elementwise(d):
    jax, jnp = _mods["jax"], _import("jax.numpy")
    f = lambda x: jnp.sum(jnp.tanh(x) * jnp.sin(x) + jnp.exp(-x ** 2))
    return jax.grad(f), (_j(d["x"]),)


def _jax_rosenbrock(x):
    jnp = _import("jax.numpy")
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def jax_hessian(d):
    return _mods["jax"].hessian(_jax_rosenbrock), (_j(d["x"]),)


def jax_hvp(d):
    jax = _mods["jax"]
    g = jax.grad(_jax_rosenbrock)
    return (lambda x, v: jax.jvp(g, (x,), (v,))), (_j(d["x"]), _j(d["v"]))


def _jax_jac(kind):
    def make(d):
        jax, jnp = _mods["jax"], _import("jax.numpy")
        f = lambda x, A: jnp.tanh(A @ x) + x ** 3
        return getattr(jax, kind)(f), (_j(d["x"]), _j(d["A"]))
    return make


def jax_gather(d):
    jax, jnp = _mods["jax"], _import("jax.numpy")
    return jax.grad(lambda E, idx: jnp.sum(E[idx] ** 2)), (_j(d["E"]), _j(d["idx"]))


def jax_conv(d):
    jax, jnp = _mods["jax"], _import("jax.numpy")
    lax = jax.lax

    def f(x, w):
        y = lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return jnp.sum(jax.nn.relu(y) ** 2)

    return jax.grad(f, argnums=(0, 1)), (_j(d["x"]), _j(d["w"]))


def _eager(make):
    def factory(d):
        fn, args = make(d)
        jax = _mods["jax"]
        return lambda: jax.block_until_ready(fn(*args))
    return factory


def _jit(make):
    def factory(d):
        fn, args = make(d)
        jax = _mods["jax"]
        fn = jax.jit(fn)
        return lambda: jax.block_until_ready(fn(*args))
    return factory


# ---------------------------------------------------------------------------
# HIPS autograd

def _ag():
    return _mods["autograd"], _import("autograd.numpy")


def autograd_baydin(d):
    ag, anp = _ag()
    g = ag.grad(lambda x1, x2: anp.log(x1) + x1 * x2 - anp.sin(x2), argnum=(0, 1))
    return lambda: g(d["x1"], d["x2"])


def autograd_chain(d):
    ag, anp = _ag()
    n = d["n"]

    def f(x):
        for _ in range(n):
            x = anp.sin(x) * 1.0001 + 0.1 * x * x
        return x

    g = ag.grad(f)
    return lambda: g(d["x"])


def autograd_mlp_cs231n(d):
    ag, anp = _ag()
    f = lambda w1, w2, x, y: anp.sum((anp.maximum(x @ w1, 0.0) @ w2 - y) ** 2)
    g = ag.grad(f, argnum=(0, 1))
    return lambda: g(d["w1"], d["w2"], d["x"], d["y"])


def autograd_mlp_large(d):
    ag, anp = _ag()
    from autograd.scipy.special import logsumexp
    rows = np.arange(len(d["labels"]))

    def f(W1, b1, W2, b2, x, labels):
        z = anp.maximum(x @ W1 + b1, 0.0) @ W2 + b2
        logp = z - logsumexp(z, axis=1, keepdims=True)
        return -anp.mean(logp[rows, labels])

    g = ag.grad(f, argnum=(0, 1, 2, 3))
    return lambda: g(*(d[k] for k in ("W1", "b1", "W2", "b2", "x", "labels")))


def autograd_elementwise(d):
    ag, anp = _ag()
    g = ag.grad(lambda x: anp.sum(anp.tanh(x) * anp.sin(x) + anp.exp(-x ** 2)))
    return lambda: g(d["x"])


def _ag_rosenbrock(x):
    anp = _import("autograd.numpy")
    return anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def autograd_hessian(d):
    h = _mods["autograd"].hessian(_ag_rosenbrock)
    return lambda: h(d["x"])


def autograd_hvp(d):
    """Forward-over-reverse, as dualgrad: autograd's make_jvp over grad -> (grad, Hv)."""
    ag = _mods["autograd"]
    hvp_at = ag.make_jvp(ag.grad(_ag_rosenbrock))
    return lambda: hvp_at(d["x"])(d["v"])


def autograd_jacrev(d):
    ag, anp = _ag()
    A = d["A"]
    j = ag.jacobian(lambda x: anp.tanh(A @ x) + x ** 3)
    return lambda: j(d["x"])


def autograd_gather(d):
    ag, anp = _ag()
    g = ag.grad(lambda E, idx: anp.sum(E[idx] ** 2))
    return lambda: g(d["E"], d["idx"])


def autograd_conv(d):
    """autograd has no conv2d: nine shifted tensordots over a zero-padded input."""
    ag, anp = _ag()

    def conv(x, w):
        kh, kw = w.shape[2:]
        H, W = x.shape[2:]
        xp = anp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="constant")
        out = 0.0
        for i in range(kh):
            for j in range(kw):
                out = out + anp.einsum("nchw,oc->nohw", xp[:, :, i:i + H, j:j + W], w[:, :, i, j])
        return out

    g = ag.grad(lambda x, w: anp.sum(anp.maximum(conv(x, w), 0.0) ** 2), argnum=(0, 1))
    return lambda: g(d["x"], d["w"])


# ---------------------------------------------------------------------------

def jax_logreg(d):
    jax, jnp = _mods["jax"], _import("jax.numpy")
    f = lambda w, b, X, y: jnp.mean(jnp.log1p(jnp.exp(-y * (X @ w + b))))  # noqa: E731
    return jax.grad(f, argnums=(0, 1)), tuple(_j(d[k]) for k in ("w", "b", "X", "y"))


def jax_mlp_small(d):
    jax, jnp = _mods["jax"], _import("jax.numpy")

    def f(W1, b1, W2, b2, W3, b3, x, y):
        h = jnp.tanh(jnp.tanh(x @ W1 + b1) @ W2 + b2)
        return jnp.mean((h @ W3 + b3 - y) ** 2)

    g = jax.value_and_grad(f, argnums=(0, 1, 2, 3, 4, 5))
    keys = ("W1", "b1", "W2", "b2", "W3", "b3", "x", "y")

    def flat(*a):
        v, gs = g(*a)
        return (v,) + tuple(gs)
    return flat, tuple(_j(d[k]) for k in keys)


def _per_example_f(np):
    def f(W1, b1, W2, b2, W3, b3, x, y):  # one example, as bench.workloads.per_example_loss
        h = np.tanh(np.tanh(x @ W1 + b1) @ W2 + b2)
        return np.sum((h @ W3 + b3 - y) ** 2)
    return f


_PER_EXAMPLE_KEYS = ("W1", "b1", "W2", "b2", "W3", "b3", "x", "y")


def jax_per_example(d):
    jax, jnp = _mods["jax"], _import("jax.numpy")
    g = jax.vmap(jax.grad(_per_example_f(jnp), argnums=(0, 1, 2, 3, 4, 5)),
                 in_axes=(None,) * 6 + (0, 0))
    return g, tuple(_j(d[k]) for k in _PER_EXAMPLE_KEYS)


def torchfunc_per_example(d):
    torch = _mods["torch"]
    g = torch.func.vmap(torch.func.grad(_per_example_f(torch), argnums=(0, 1, 2, 3, 4, 5)),
                        in_dims=(None,) * 6 + (0, 0))
    args = tuple(_t(d[k]) for k in _PER_EXAMPLE_KEYS)
    return lambda: g(*args)


def jax_rk4(d):
    from .workloads import rk4_loss
    jax, jnp = _mods["jax"], _import("jax.numpy")
    return jax.grad(lambda p: rk4_loss(p, jnp)), (_j(d["p"]),)


_JAX = {"logreg": jax_logreg, "mlp_small": jax_mlp_small, "rk4": jax_rk4,
        "baydin": jax_baydin, "chain": jax_chain, "mlp_cs231n": jax_mlp_cs231n,
        "mlp_large": jax_mlp_large, "elementwise": jax_elementwise, "hessian": jax_hessian,
        "hvp": jax_hvp, "jacfwd": _jax_jac("jacfwd"), "jacrev": _jax_jac("jacrev"),
        "gather": jax_gather, "conv": jax_conv, "per_example": jax_per_example}

def autograd_fluidsim(d):
    from .workloads import fluidsim_loss
    ag, anp = _ag()
    g = ag.grad(lambda vx, vy: fluidsim_loss(vx, vy, d["smoke"], d["target"], np=anp),
                argnum=(0, 1))
    return lambda: g(d["vx"], d["vy"])


FACTORIES = {
    "torch": {"baydin": torch_baydin, "chain": torch_chain, "mlp_cs231n": torch_mlp_cs231n,
              "mlp_large": torch_mlp_large, "elementwise": torch_elementwise,
              "hessian": torch_hessian, "hvp": torch_hvp, "jacfwd": torch_jacfwd,
              "jacrev": torch_jacrev, "gather": torch_gather, "conv": torch_conv,
              "lstm": torch_lstm},
    "torch.func": {"hessian": torchfunc_hessian, "hvp": torchfunc_hvp,
                   "jacfwd": torchfunc_jacfwd, "jacrev": torchfunc_jacrev,
                   "per_example": torchfunc_per_example},
    "jax": {k: _eager(v) for k, v in _JAX.items()},
    "jax.jit": {k: _jit(v) for k, v in _JAX.items()},
    # autograd has no forward-mode Jacobian (make_jvp is one direction at a time)
    "autograd": {"baydin": autograd_baydin, "chain": autograd_chain,
                 "mlp_cs231n": autograd_mlp_cs231n, "mlp_large": autograd_mlp_large,
                 "elementwise": autograd_elementwise, "hessian": autograd_hessian,
                 "hvp": autograd_hvp, "jacrev": autograd_jacrev, "gather": autograd_gather,
                 "conv": autograd_conv, "fluidsim": autograd_fluidsim},
}
