"""``python -m bench.scipy_optimize_case``: the gradient of a validation loss through
``dualgrad.scipy.optimize.minimize`` (implicit differentiation) against unrolled
differentiation of 200 gradient-descent steps (issue 24's speed table: target ≤ 0.1×).

The problem: ridge regression with 50 parameters, A (200, 50), fitted on the training
half; the loss is the validation error of x*(λ), differentiated in λ.  Both sides compute
the whole derivative from λ: the implicit side runs scipy's BFGS with dualgrad's gradient
and then one solve with the Hessian; the unrolled side records 200 steps of
x ← x − s (Aᵀ(Ax − b) + λx) and sweeps them back.  Every gradient is checked against the
closed form (AᵀA + λI)⁻¹Aᵀb differentiated by dualgrad.  Configurations: the default
(BFGS, dualgrad's gradient, eager), a Newton-type method (trust-exact with dualgrad's
Hessian), the same with a jitted gradient and Hessian passed as ``jac=``/``hess=``, and the
whole implicit gradient under ``dg.jit``; the unrolled side eager and jitted.

Options: ``--repeats N`` (default 7), ``--threads N`` (BLAS threads, default 1).
"""

import argparse
import os

from .__main__ import lscpu_model


def case(repeats=7):
    """Medians (seconds) of each configuration's gradient, and its error against the
    closed form."""
    import numpy as np

    import dualgrad as dg
    from dualgrad.scipy.optimize import minimize
    from dualgrad.teach.timing import median_time

    rng = np.random.default_rng(0)
    n, m = 50, 200
    A = rng.standard_normal((m, n))
    w = rng.standard_normal(n)
    b = A @ w + 0.5 * rng.standard_normal(m)
    At, bt, Av, bv = A[:150], b[:150], A[150:], b[150:]
    lam = 2.0
    step = 1.0 / (np.linalg.norm(At, 2) ** 2 + lam)

    def train_loss(x, lam, a, y):
        return 0.5 * np.sum((a @ x - y) ** 2) + 0.5 * lam * np.sum(x ** 2)

    fast_jac = dg.jit(dg.grad(train_loss))     # what a user passes for speed: jac=, hess=
    fast_hess = dg.jit(dg.hessian(train_loss))

    def implicit(method, **kw):
        def val(lam):
            x = minimize(train_loss, np.zeros(n), args=(lam, At, bt), method=method,
                         tol=1e-10, **kw).x
            return np.sum((Av @ x - bv) ** 2)
        return val

    def val_unrolled(lam):
        x = np.zeros(n)
        for _ in range(200):
            x = x - step * (At.T @ (At @ x - bt) + lam * x)
        return np.sum((Av @ x - bv) ** 2)

    def val_closed(lam):
        x = np.linalg.solve(At.T @ At + lam * np.eye(n), At.T @ bt)
        return np.sum((Av @ x - bv) ** 2)

    exact = float(dg.grad(val_closed)(lam))
    configs = {
        "implicit: minimize(BFGS), jac=None (dualgrad's gradient, eager)":
            dg.grad(implicit("BFGS")),
        "implicit: minimize(trust-exact), jac=None, hess=None (eager)":
            dg.grad(implicit("trust-exact")),
        "implicit: minimize(trust-exact), jac=dg.jit(grad), hess=dg.jit(hessian)":
            dg.grad(implicit("trust-exact", jac=fast_jac, hess=fast_hess)),
        "implicit, as above, the whole gradient under dg.jit":
            dg.jit(dg.grad(implicit("trust-exact", jac=fast_jac, hess=fast_hess))),
        "unrolled: 200 GD steps, dg.grad (eager)": dg.grad(val_unrolled),
        "unrolled: 200 GD steps, dg.jit(dg.grad)": dg.jit(dg.grad(val_unrolled)),
    }
    out = {}
    for name, g in configs.items():
        err = abs(float(g(lam)) - exact) / abs(exact)
        out[name] = (median_time(lambda g=g: g(lam), repeats), err)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(a.threads))
    r = case(a.repeats)
    print(f"CPU: {lscpu_model()}, BLAS threads {a.threads}, median of {a.repeats}")
    base = r["unrolled: 200 GD steps, dg.grad (eager)"][0]
    base_jit = r["unrolled: 200 GD steps, dg.jit(dg.grad)"][0]
    print("| configuration | median | / unrolled eager | / unrolled jit | rel. error |")
    print("|---|---|---|---|---|")
    for name, (t, err) in r.items():
        print(f"| {name} | {t * 1e3:.2f} ms | {t / base:.3f}x | {t / base_jit:.3f}x | "
              f"{err:.1e} |")
    print("target (issue 24): implicit <= 0.1x unrolled")


if __name__ == "__main__":
    main()
