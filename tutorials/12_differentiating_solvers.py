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
# # 12. Differentiating through a solver
#
# Scientific code calls solvers: an ODE integrator, a Cholesky factorisation, an
# optimiser. Tracing every step of a solver and running reverse mode over the trace works
# badly. The steps are adaptive, so the trace differs from call to call. The tape grows with
# the number of steps. And the loop may sit in Fortran (LSODA) or C, where a tracer cannot go.
#
# `dualgrad.scipy` keeps scipy's signatures and runs scipy's own solvers on plain numbers.
# It differentiates the *mathematical object* the solver computes, not the solver's steps:
#
# 1. **`dualgrad.scipy.integrate.odeint`**: the gradient of an ODE solution comes from the
#    *continuous adjoint*, a second ODE solved backwards in time by the same scipy integrator.
#    We fit the four parameters of a Lotka–Volterra model to noisy data.
# 2. **`dualgrad.scipy.stats.multivariate_normal.logpdf`**: a Gaussian process's marginal
#    likelihood, differentiated through its Cholesky factor. We fit a kernel's length scale
#    and noise level.
# 3. **`dualgrad.scipy.optimize.minimize`**: the minimiser `x*(λ)` of an inner problem,
#    differentiated by the *implicit function theorem*. We tune a ridge penalty on a
#    validation loss (a bilevel problem) and compare the result with the closed form and
#    with unrolled gradient descent.
#
# In each case the outer optimiser is plain `scipy.optimize.minimize`, with `jac=` supplied
# by dualgrad.

# %%
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import scipy.integrate
import scipy.optimize
import scipy.stats

import dualgrad as dg
from dualgrad.scipy.integrate import odeint
from dualgrad.scipy.optimize import minimize
from dualgrad.scipy.stats import multivariate_normal

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIG_DIR = Path(os.environ.get("DUALGRAD_TUTORIAL_FIGURES", HERE / "figures"))
FIG_DIR.mkdir(parents=True, exist_ok=True)


def central_differences(f, x, h=1e-6):
    """The finite-difference gradient of a scalar function of a vector (the referee)."""
    return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(len(x))])


def relerr(a, b):
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


# %% [markdown]
# ## 1. Fitting an ODE: Lotka–Volterra with `odeint`
#
# Prey $u$ and predators $v$ follow
#
# $$\dot u = a u - b u v, \qquad \dot v = -c v + d u v.$$
#
# We observe both populations at 21 times, with noise, and fit $\theta = (a, b, c, d)$ by
# least squares. The model is written as for scipy: `func(y, t, *args)`. The parameters go
# through `args=`, which is what `dualgrad.scipy.integrate.odeint` differentiates with
# respect to. A function that closed over a traced parameter instead would be refused with
# an error, not given a silent zero gradient. We optimise the logarithms of the parameters
# so that they stay positive.

# %%
def lotka_volterra(y, t, a, b, c, d):
    prey, pred = y[0], y[1]
    return np.array([a * prey - b * prey * pred, -c * pred + d * prey * pred])


TRUE = np.array([1.0, 0.5, 1.5, 0.75])
Y0 = np.array([2.0, 1.0])
T_OBS = np.linspace(0.0, 10.0, 21)
TOL = dict(rtol=1e-8, atol=1e-8)  # the adjoint gradient is as accurate as the solves

rng = np.random.default_rng(0)
clean = scipy.integrate.odeint(lotka_volterra, Y0, T_OBS, args=tuple(TRUE), **TOL)
observed = clean + 0.1 * rng.standard_normal(clean.shape)


def ode_loss(log_theta):
    a, b, c, d = np.exp(log_theta)
    ys = odeint(lotka_volterra, Y0, T_OBS, args=(a, b, c, d), **TOL)
    return np.mean((ys - observed) ** 2)


start = np.log([0.8, 0.6, 1.2, 0.6])
print(f"loss at the start: {ode_loss(start):.4f}")

# %% [markdown]
# ### Where the gradient comes from
#
# Write $L = \sum_k \ell_k(y(t_k))$. Reverse mode needs the adjoint
# $a(t) = \partial L / \partial y(t)$. Between two output times it obeys the linear ODE
#
# $$\dot a = -a\, \frac{\partial f}{\partial y}, \qquad
#   \frac{dL}{d\theta} = \int a\, \frac{\partial f}{\partial \theta}\, dt,$$
#
# and at each output time $t_k$ it jumps by $\partial \ell_k / \partial y$. dualgrad builds
# the augmented system $[y, a, a_\theta]$ and hands it to scipy's LSODA, backwards from the
# last output time to the first. The vector–Jacobian products $a\,\partial f/\partial y$
# and $a\,\partial f/\partial\theta$ inside it are dualgrad's own `vjp` of
# `lotka_volterra`. The trajectory is never stored step by step: $y$ is recomputed
# backwards alongside $a$. One gradient costs about one extra solve of a system of size
# $2n + p$, however many parameters there are. This is the method used by autograd's
# `odeint` and by `jax.experimental.ode`.
#
# Forward mode (`dg.jacfwd`, `dg.jvp`) instead solves the forward sensitivity equations
# $\dot s = f_y s + f_\theta$ with the same integrator. We check both against central
# differences of the loss. The adjoint is exact for the *continuous* problem, so it agrees
# with the derivative of the computed solution only to about the solver's tolerance.

# %%
t0 = time.perf_counter()
g_adjoint = dg.grad(ode_loss)(start)
t_adjoint = time.perf_counter() - t0
g_forward = dg.jacfwd(ode_loss)(start)
g_fd = central_differences(ode_loss, start)
print("adjoint gradient :", np.round(g_adjoint, 7))
print("forward sensitiv.:", np.round(g_forward, 7))
print("central diffs    :", np.round(g_fd, 7))
err_fd, err_fwd = relerr(g_adjoint, g_fd), relerr(g_adjoint, g_forward)
print(f"adjoint vs finite differences: {err_fd:.1e}, vs forward mode: {err_fwd:.1e} "
      f"(relative); one adjoint gradient took {t_adjoint:.2f} s")
assert err_fd < 1e-5 and err_fwd < 1e-5

# %% [markdown]
# ### The fit
#
# `scipy.optimize.minimize` (BFGS) takes the loss and its gradient together: with
# `jac=True` it expects `fun` to return `(value, gradient)`, which is what
# `dg.value_and_grad` returns.

# %%
t0 = time.perf_counter()
fit = scipy.optimize.minimize(dg.value_and_grad(ode_loss), start, jac=True, method="BFGS")
theta_fit = np.exp(fit.x)
print(f"BFGS: {fit.nit} iterations, {fit.njev} adjoint gradients, "
      f"{time.perf_counter() - t0:.1f} s")
print("true  (a, b, c, d):", TRUE)
print("fitted(a, b, c, d):", np.round(theta_fit, 3))
print(f"loss {ode_loss(start):.4f} -> {fit.fun:.5f} (noise variance 0.01)")
assert fit.success
assert fit.fun < 0.02 < ode_loss(start)  # down to about the noise level
assert np.all(np.abs(theta_fit / TRUE - 1) < 0.1)  # every parameter within 10%

t_fine = np.linspace(0.0, 10.0, 300)
fitted = scipy.integrate.odeint(lotka_volterra, Y0, t_fine, args=tuple(theta_fit))
initial = scipy.integrate.odeint(lotka_volterra, Y0, t_fine, args=tuple(np.exp(start)))
fig, ax = plt.subplots(figsize=(8, 3.4))
for i, (name, color) in enumerate([("prey", "tab:blue"), ("predators", "tab:red")]):
    ax.plot(T_OBS, observed[:, i], "o", color=color, ms=4, label=f"{name}: data")
    ax.plot(t_fine, fitted[:, i], "-", color=color, label=f"{name}: fitted")
    ax.plot(t_fine, initial[:, i], ":", color=color, alpha=0.6, label=f"{name}: start")
ax.set_xlabel("t")
ax.set_ylabel("population")
ax.set_ylim(top=1.25 * observed.max())
ax.legend(ncol=3, fontsize=8)
fig.tight_layout()
fig.savefig(FIG_DIR / "12_lotka_volterra_fit.png", dpi=100)
print("saved", FIG_DIR / "12_lotka_volterra_fit.png")

# %% [markdown]
# ## 2. A Gaussian process fitted with `multivariate_normal.logpdf`
#
# A Gaussian process with a squared-exponential kernel says that the observations $y$ at
# inputs $x$ are jointly normal:
#
# $$y \sim \mathcal N\big(0,\ K + \sigma_n^2 I\big), \qquad
#   K_{ij} = \exp\!\Big(-\frac{(x_i - x_j)^2}{2\ell^2}\Big).$$
#
# The length scale $\ell$ and the noise level $\sigma_n$ are chosen by maximising the
# marginal likelihood, which is simply `multivariate_normal.logpdf(y, mean=0, cov=K + σ²I)`.
# This is scipy's call, with the covariance as an argument. dualgrad differentiates it
# through the Cholesky factor of the covariance. Several of autograd's example programs
# call this function, and that is why it is in `dualgrad.scipy.stats`.

# %%
def f_true(x):
    return np.sin(x) + 0.4 * np.sin(3.1 * x)


N_GP, NOISE_TRUE = 30, 0.15
rng = np.random.default_rng(3)
x_gp = np.sort(rng.uniform(0.0, 10.0, N_GP))
y_gp = f_true(x_gp) + NOISE_TRUE * rng.standard_normal(N_GP)


def se_kernel(a, b, ell):
    return np.exp(-0.5 * (a[:, None] - b[None, :]) ** 2 / ell ** 2)


def gp_covariance(log_hyper):
    ell, noise = np.exp(log_hyper[0]), np.exp(log_hyper[1])
    return se_kernel(x_gp, x_gp, ell) + noise ** 2 * np.eye(N_GP)


def neg_log_marginal(log_hyper):
    return -multivariate_normal.logpdf(y_gp, mean=np.zeros(N_GP), cov=gp_covariance(log_hyper))


def neg_log_marginal_by_hand(log_hyper):
    """The same quantity from the Cholesky factor: ½‖L⁻¹y‖² + Σ log Lᵢᵢ + n/2 log 2π."""
    chol = np.linalg.cholesky(gp_covariance(log_hyper))
    w = np.linalg.solve(chol, y_gp)
    return 0.5 * w @ w + np.sum(np.log(np.diag(chol))) + 0.5 * N_GP * np.log(2 * np.pi)


hyper0 = np.log([3.0, 0.5])  # too smooth, too noisy
scipy_value = -scipy.stats.multivariate_normal.logpdf(y_gp, np.zeros(N_GP),
                                                      gp_covariance(hyper0))
g_gp = dg.grad(neg_log_marginal)(hyper0)
print(f"-log p(y) = {neg_log_marginal(hyper0):.6f} (scipy.stats: {scipy_value:.6f})")
print("gradient in (log ell, log noise):", np.round(g_gp, 6))
assert abs(neg_log_marginal(hyper0) - scipy_value) < 1e-10
assert relerr(g_gp, dg.grad(neg_log_marginal_by_hand)(hyper0)) < 1e-10
assert relerr(g_gp, central_differences(neg_log_marginal, hyper0)) < 1e-7

# %% [markdown]
# The hand-written version shows what `logpdf` computes: a Cholesky factorisation, a
# triangular solve and a log-determinant. Each of these is a differentiable numpy call in
# dualgrad, and the two versions agree to rounding. Now BFGS maximises the marginal
# likelihood. We record its path so that we can draw it on the likelihood surface.

# %%
path = [hyper0]
gp_fit = scipy.optimize.minimize(dg.value_and_grad(neg_log_marginal), hyper0, jac=True,
                                 method="BFGS", callback=lambda xk: path.append(xk.copy()))
ell_fit, noise_fit = np.exp(gp_fit.x)
print(f"BFGS: {gp_fit.nit} iterations; length scale {ell_fit:.3f}, noise {noise_fit:.3f} "
      f"(data noise {NOISE_TRUE}); -log p(y) {neg_log_marginal(hyper0):.2f} -> "
      f"{gp_fit.fun:.2f}")
assert gp_fit.success and gp_fit.fun < neg_log_marginal(hyper0) - 10
assert np.linalg.norm(dg.grad(neg_log_marginal)(gp_fit.x)) < 1e-4
assert 0.1 < noise_fit < 0.25 and 0.3 < ell_fit < 1.5


def posterior(log_hyper, x_new):
    """The GP posterior mean and standard deviation of f at x_new (plain numpy)."""
    ell = np.exp(log_hyper[0])
    chol = np.linalg.cholesky(gp_covariance(log_hyper))
    k_new = se_kernel(x_new, x_gp, ell)
    alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y_gp))
    v = np.linalg.solve(chol, k_new.T)
    return k_new @ alpha, np.sqrt(np.maximum(1.0 - np.sum(v ** 2, axis=0), 0.0))


x_grid = np.linspace(0.0, 10.0, 200)
mean0, _ = posterior(hyper0, x_grid)
mean_fit, sd_fit = posterior(gp_fit.x, x_grid)
rmse0 = np.sqrt(np.mean((mean0 - f_true(x_grid)) ** 2))
rmse_fit = np.sqrt(np.mean((mean_fit - f_true(x_grid)) ** 2))
print(f"posterior mean vs the true function: RMSE {rmse0:.3f} at the start, "
      f"{rmse_fit:.3f} fitted")
assert rmse_fit < 0.5 * rmse0

# %%
log_ells, log_noises = np.linspace(-1.5, 1.5, 41), np.linspace(-3.0, 0.0, 41)
surface = np.array([[neg_log_marginal(np.array([le, ln])) for le in log_ells]
                    for ln in log_noises])
path = np.array(path)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
a1.plot(x_grid, f_true(x_grid), "k--", lw=1, label="true f")
a1.plot(x_gp, y_gp, "o", color="k", ms=3, label="data")
a1.plot(x_grid, mean0, ":", color="tab:gray", label="posterior mean, start")
a1.plot(x_grid, mean_fit, color="tab:blue", label="posterior mean, fitted")
a1.fill_between(x_grid, mean_fit - 2 * sd_fit, mean_fit + 2 * sd_fit, color="tab:blue",
                alpha=0.2, label="±2 sd")
a1.set_xlabel("x")
a1.legend(fontsize=7)
a2.contour(log_ells, log_noises, np.minimum(surface, np.min(surface) + 40), levels=20)
a2.plot(path[:, 0], path[:, 1], "o-", color="tab:red", ms=3, label="BFGS path")
a2.set_xlabel("log length scale")
a2.set_ylabel("log noise")
a2.set_title("-log marginal likelihood", fontsize=9)
a2.legend(fontsize=7)
fig.tight_layout()
fig.savefig(FIG_DIR / "12_gaussian_process.png", dpi=100)
print("saved", FIG_DIR / "12_gaussian_process.png")

# %% [markdown]
# ## 3. A bilevel problem through `minimize`: tuning a ridge penalty
#
# Ridge regression solves an *inner* problem,
#
# $$x^*(\lambda) = \arg\min_x\ \tfrac12\|A x - b\|^2 + \tfrac{\lambda}{2}\|x\|^2,$$
#
# on training data. The penalty $\lambda$ is then chosen to minimise an *outer* loss, the
# error of $x^*(\lambda)$ on validation data. Gradient-based tuning needs
# $dx^*/d\lambda$, the derivative of an optimiser's output. We let
# `dualgrad.scipy.optimize.minimize` (scipy's BFGS on plain numbers) solve the inner problem.
#
# **The implicit function theorem.** At the optimum the gradient vanishes:
# $F(x^*, \lambda) = A^\top(Ax^* - b) + \lambda x^* = 0$, where $F$ is the inner loss's
# gradient in $x$. Differentiating this identity in $\lambda$ gives
#
# $$\frac{dx^*}{d\lambda} = -\Big(\frac{\partial F}{\partial x}\Big)^{-1}
#   \frac{\partial F}{\partial \lambda} = -(A^\top A + \lambda I)^{-1} x^*.$$
#
# dualgrad forms $\partial F/\partial x$ (the Hessian of the inner loss) and
# $\partial F/\partial\lambda$ with its own transforms, at the solution scipy returned.
# In reverse mode it does one linear solve with the Hessian and one `vjp`. The solver's
# iterations are never recorded. BFGS asks for the inner gradient at every iteration, on
# plain numbers. We pass it as `jac=dg.jit(dg.grad(ridge))`, compiled once; without `jac=`,
# `minimize` supplies dualgrad's eager gradient, which gives the same answer more slowly.
# The problem below is deliberately ill-conditioned (singular values of $A$ from 8 down to
# 0.2), as real regression problems tend to be.

# %%
rng = np.random.default_rng(4)
D, N_TRAIN, N_VAL = 20, 30, 60
U, _ = np.linalg.qr(rng.standard_normal((N_TRAIN, D)))
V, _ = np.linalg.qr(rng.standard_normal((D, D)))
singular_values = np.geomspace(8.0, 0.2, D)
A_train = U @ np.diag(singular_values) @ V.T
w_true = 3.0 * V @ (rng.standard_normal(D) / np.sqrt(np.arange(1, D + 1)))
b_train = A_train @ w_true + 0.5 * rng.standard_normal(N_TRAIN)
A_val = rng.standard_normal((N_VAL, D)) @ V @ np.diag(singular_values) @ V.T / np.sqrt(N_TRAIN)
b_val = A_val @ w_true + 0.5 * rng.standard_normal(N_VAL)


def ridge(x, lam, A, b):
    return 0.5 * np.sum((A @ x - b) ** 2) + 0.5 * lam * np.sum(x ** 2)


RIDGE_GRAD = dg.jit(dg.grad(ridge))  # what scipy's BFGS calls: compiled, on plain values


def x_implicit(lam):
    """The inner problem solved by scipy's BFGS, differentiable in lam."""
    return minimize(ridge, np.zeros(D), args=(lam, A_train, b_train), jac=RIDGE_GRAD,
                    tol=1e-12).x


def x_closed(lam):
    return np.linalg.solve(A_train.T @ A_train + lam * np.eye(D), A_train.T @ b_train)


def validation_loss(x):
    return 0.5 * np.mean((A_val @ x - b_val) ** 2)


lam = 2.5
x_star = x_implicit(lam)
dx_implicit = dg.jacrev(x_implicit)(lam)
dx_formula = -np.linalg.solve(A_train.T @ A_train + lam * np.eye(D), x_closed(lam))
print(f"|x*(BFGS) - x*(closed form)| / |x*| = {relerr(x_star, x_closed(lam)):.1e}")
print(f"dx*/dlam: implicit vs -(A'A + lam I)^-1 x*: {relerr(dx_implicit, dx_formula):.1e}")
assert relerr(x_star, x_closed(lam)) < 1e-7
assert relerr(dx_implicit, dx_formula) < 1e-6

g_implicit = dg.grad(lambda lam: validation_loss(x_implicit(lam)))(lam)
g_closed = dg.grad(lambda lam: validation_loss(x_closed(lam)))(lam)
print(f"d(validation loss)/dlam: implicit {g_implicit:.12f}, closed form {g_closed:.12f}")
assert abs(g_implicit - g_closed) < 1e-7 * abs(g_closed)

# %% [markdown]
# ### Against unrolled gradient descent
#
# The other way to get $dx^*/d\lambda$ is to *unroll*: run $K$ steps of gradient descent
# on the inner problem as traced numpy code and differentiate through all of them. The
# result is the derivative of the $K$-th iterate, not of the optimum. Its error falls
# only as fast as gradient descent converges, here by a factor of about
# $1 - (\sigma_{\min}^2 + \lambda)/(\sigma_{\max}^2 + \lambda)$ per step. Its cost, in time
# and in tape memory, grows linearly with $K$.

# %%
step = 1.0 / (np.linalg.norm(A_train, 2) ** 2 + lam)


def x_unrolled(lam, K):
    x = np.zeros(D)
    for _ in range(K):
        x = x - step * (A_train.T @ (A_train @ x - b_train) + lam * x)
    return x


dg.grad(lambda lam: validation_loss(x_unrolled(lam, 3)))(lam)  # warm-up
ks = [10, 30, 100, 300, 1000]
unrolled_err, unrolled_time = [], []
for K in ks:
    times = []
    for _ in range(2):  # the faster of two runs
        t0 = time.perf_counter()
        g_K = dg.grad(lambda lam, K=K: validation_loss(x_unrolled(lam, K)))(lam)
        times.append(time.perf_counter() - t0)
    unrolled_time.append(min(times))
    unrolled_err.append(abs(g_K - g_closed) / abs(g_closed))
    print(f"unrolled K = {K:4d}: relative error {unrolled_err[-1]:.1e}, "
          f"{unrolled_time[-1] * 1e3:6.1f} ms")
t0 = time.perf_counter()
x_implicit(lam)
t_solve = time.perf_counter() - t0
t0 = time.perf_counter()
dg.grad(lambda lam: validation_loss(x_implicit(lam)))(lam)
t_implicit = time.perf_counter() - t0
implicit_err = abs(g_implicit - g_closed) / abs(g_closed)
print(f"implicit         : relative error {implicit_err:.1e}, {t_implicit * 1e3:6.1f} ms, "
      f"of which the BFGS solve alone takes {t_solve * 1e3:.1f} ms")
print("(timings are printed, not asserted)")
assert unrolled_err[0] > 0.1  # ten steps: the derivative of the wrong point
assert all(b < a for a, b in zip(unrolled_err[:4], unrolled_err[1:4]))
assert implicit_err < unrolled_err[2]  # better than 100 unrolled steps

# %% [markdown]
# Implicit differentiation wins for three reasons:
#
# - **Its cost does not depend on the iterations.** It is one Hessian solve at the
#   answer. The solver may take 10 steps or 10,000, and it may be BFGS in scipy, LSODA
#   in Fortran or a C library. None of its steps are traced or stored. Unrolling stores
#   every iterate and replays all of them backwards.
# - **It is exact at the optimum.** Its error is the solver's tolerance, not a truncation
#   of the iteration. Unrolling with too few steps gives the derivative of a point that is
#   not the optimum: with $K = 10$ above it is off by more than 10%.
# - **It needs only the optimality condition.** Any solver that reaches the optimum will
#   do, and the start point has no effect on the derivative. It gets a zero derivative.
#
# The price is that $x^*$ must really be an optimum, and an interior one, with an
# invertible Hessian there. `minimize` refuses a derivative at a solution on a bound, or
# under constraints, and says why.
#
# ### Tuning λ
#
# The outer problem is one-dimensional: $z = \log\lambda$. BFGS minimises the validation
# loss with implicit gradients, and so one `minimize` runs inside another. The closed form
# lets us check the answer with a bounded scalar search that uses no derivatives.

# %%
def outer(z):
    return validation_loss(x_implicit(np.exp(z[0])))


tuned = scipy.optimize.minimize(dg.value_and_grad(outer), np.array([np.log(lam)]), jac=True,
                                method="BFGS", options={"gtol": 1e-9})
z_best = scipy.optimize.minimize_scalar(lambda z: validation_loss(x_closed(np.exp(z))),
                                        bounds=(-6, 5), method="bounded",
                                        options={"xatol": 1e-10}).x
print(f"tuned lam = {np.exp(tuned.x[0]):.5f} in {tuned.nit} outer iterations "
      f"(closed-form search: {np.exp(z_best):.5f}); validation loss "
      f"{outer(np.log([lam])):.5f} -> {tuned.fun:.5f}")
assert abs(tuned.x[0] - z_best) < 1e-4
assert tuned.fun < outer(np.log([lam]))

lams = np.exp(np.linspace(-6, 5, 80))
curve = [validation_loss(x_closed(v)) for v in lams]
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
a1.loglog(lams, curve, color="tab:blue", label="validation loss (closed form)")
a1.axvline(np.exp(tuned.x[0]), color="tab:red", ls="--", label="tuned by implicit gradients")
a1.set_xlabel("λ")
a1.legend(fontsize=8)
a2.loglog(ks, unrolled_err, "o-", label="unrolled gradient descent")
a2.axhline(max(implicit_err, 1e-16), color="tab:red", ls="--",
           label="implicit (through minimize)")
a2.set_xlabel("unrolled steps K")
a2.set_ylabel("relative error of d loss / dλ")
a2.legend(fontsize=8)
fig.tight_layout()
fig.savefig(FIG_DIR / "12_bilevel_ridge.png", dpi=100)
print("saved", FIG_DIR / "12_bilevel_ridge.png")

# %% [markdown]
# ## Summary
#
# | solver | dualgrad's call (scipy's signature) | how the derivative is computed |
# |---|---|---|
# | ODE integrator | `dualgrad.scipy.integrate.odeint`, `solve_ivp` | continuous adjoint (reverse), forward sensitivities (forward), solved by the same scipy integrator |
# | Gaussian likelihood | `dualgrad.scipy.stats.multivariate_normal.logpdf` | through the Cholesky factor, with differentiable `cholesky`/`solve` |
# | optimiser | `dualgrad.scipy.optimize.minimize`, `root`, `least_squares`, `fixed_point` | implicit function theorem at the solution (`dg.custom_root` for your own solver) |
#
# In every case the solver runs on plain numbers at full speed. dualgrad adds a rule for
# the whole solve, and that rule is written with dualgrad's own transforms, so second
# derivatives, `dg.jit` and `dg.vmap` compose with it.
