"""scipy.optimize on traced parameters: the solution differentiated, not the iterations.

``minimize``, ``root``, ``root_scalar``, ``fixed_point`` and ``least_squares`` keep scipy's
signatures and run scipy's own solvers on plain values.  Their answer is differentiated
with respect to the parameters in ``args`` by the implicit function theorem
(``dg.custom_root``), from the condition the answer satisfies:

============== =========================================
function       condition F(x, *args) = 0
============== =========================================
minimize       ∇ₓ fun(x, *args) = 0  (∂F/∂x: the Hessian)
root           fun(x, *args) = 0
root_scalar    f(x, *args) = 0
fixed_point    func(x, *args) - x = 0
least_squares  J(x)ᵀ r(x) = ∇ₓ ½‖r(x, *args)‖² = 0
============== =========================================

Only ``args`` carry derivatives: the start point (``x0``, ``bracket``) gets a zero
derivative by definition, since the solution does not depend on where the solver started
(a traced ``x0`` is accepted).  Gradients, Jacobians and Hessians that scipy asks for
(``jac=None``, ``hess=None`` where the method uses one) come from dualgrad.  The
derivative is that of the exact solution: it is as accurate as the solver's tolerance.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy.optimize import minimize
    >>> def loss(x, c):
    ...     return np.sum((x - c) ** 2) + 0.5 * np.sum(x ** 2)
    >>> def best(c):                      # argmin = c / 1.5
    ...     return minimize(loss, np.zeros(2), args=(c,), tol=1e-12).x
    >>> np.round(best(np.array([3.0, 1.5])), 8)
    array([2., 1.])
    >>> np.round(dg.jacrev(best)(np.array([3.0, 1.5])), 8)
    array([[0.66666667, 0.        ],
           [0.        , 0.66666667]])

The other fields of the result (``nit``, ``success``, ...) are scipy's, from plain values;
``fun`` is recomputed at the traced solution, so it is traced too.  Under ``dg.jit`` the
solver runs again on every call; the untraced fields are those of the recording call.
Bounds and constraints: the derivative needs an unconstrained optimum, so a derivative at
a solution on a bound, or with constraints, is refused.
"""

import numpy as np
import scipy.optimize as so

from ..core.trace import Box, unbox
from ..core.tree import tree_flatten
from ..transforms import grad, hessian, jacfwd, stop_gradient, value_and_grad
from ..transforms.implicit import custom_root

__all__ = ["minimize", "root", "root_scalar", "fixed_point", "least_squares"]

_NO_GRADIENT = {"nelder-mead", "powell", "cobyla", "cobyqa"}
_HESSIAN = {"newton-cg", "dogleg", "trust-ncg", "trust-krylov", "trust-exact"}


def _args(args):
    return args if isinstance(args, tuple) else (args,)


def _plain(f, fname, what):
    """``f`` as scipy calls it, on plain values: a traced value in its output comes from a
    closure, whose derivative the solution would silently lose."""
    def call(x, *a, **kw):
        out = f(x, *a, **kw)
        if any(isinstance(leaf, Box) for leaf in tree_flatten(out)[0]):
            raise TypeError(f"{fname}: {what} closes over a traced value (it returned one at "
                            "plain inputs); pass every traced quantity through args=(...) "
                            "so that the solution's derivative in it is seen")
        return out
    return call


def _first(fun, returns_pair):
    """fun's value alone, when it also returns its derivative (``jac=True``)."""
    return (lambda x, *a: fun(x, *a)[0]) if returns_pair else fun


def _free_of_bounds(x, bounds, fname):
    """The implicit derivative holds at an interior optimum: refuse one on a bound."""
    if bounds is None:
        return
    if isinstance(bounds, so.Bounds):
        lb, ub = bounds.lb, bounds.ub
    else:
        lb = [-np.inf if b is None or b[0] is None else b[0] for b in bounds]
        ub = [np.inf if b is None or b[1] is None else b[1] for b in bounds]
    x = np.asarray(unbox(x), dtype=float)
    lb, ub = np.broadcast_to(np.asarray(lb, float), x.shape), np.broadcast_to(
        np.asarray(ub, float), x.shape)
    if np.any(x <= lb) or np.any(x >= ub):
        raise NotImplementedError(
            f"{fname}: the solution lies on a bound, where the optimality condition "
            "grad = 0 does not hold; dualgrad differentiates only interior solutions "
            "(drop the bound, or reparametrise, e.g. x = exp(z) for x > 0)")


def _result(res, **traced):
    out = so.OptimizeResult(res)
    out.update(traced)
    return out


def minimize(fun, x0, args=(), method=None, jac=None, hess=None, hessp=None, bounds=None,
             constraints=(), tol=None, callback=None, options=None):
    """scipy.optimize.minimize; ``.x`` is differentiable in ``args`` (∇ₓ fun = 0).

    With ``jac=None`` scipy gets dualgrad's gradient (and, for methods that use one, its
    Hessian); ``jac=True`` (fun returns ``(f, g)``), a callable, or '2-point' are passed
    on as scipy takes them.  The implicit derivative always uses dualgrad's gradient of
    ``fun``'s value and its Hessian in x.  For speed, pass ``jac=dg.jit(dg.grad(fun))``
    (and ``hess=dg.jit(dg.hessian(fun))`` with a Newton method such as 'trust-exact'), or
    ``dg.jit`` the whole derivative: the solver stays one node, its rules are compiled.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy.optimize import minimize
    >>> f = lambda a: minimize(lambda x, a: (x[0] - a) ** 2, np.zeros(1), args=(a,)).x[0]
    >>> round(float(dg.grad(f)(2.0)), 6)
    1.0
    """
    args = _args(args)
    value = _first(fun, jac is True)
    m = (method or "").lower() if isinstance(method, str) else ""
    constrained = bool(constraints) and constraints != ()

    def optimality(x, *a):
        if constrained:
            raise NotImplementedError(
                "minimize: derivatives through constrained optimisation (constraints=) are "
                "not supported: the optimality condition grad = 0 does not hold there")
        _free_of_bounds(x, bounds, "minimize")
        return grad(value, argnums=0)(x, *a)

    holder = {}

    @custom_root(optimality)
    def solve(x0_, *a):
        fn, j, h = _plain(fun, "minimize", "fun"), jac, hess
        if jac is None and m not in _NO_GRADIENT:
            def fn(x, *a):
                v, g = _plain(value_and_grad(value), "minimize", "fun")(x, *a)
                return float(np.asarray(v).reshape(())), np.asarray(g, dtype=float)
            j = True
        if hess is None and hessp is None and m in _HESSIAN:
            def h(x, *a):
                return np.asarray(hessian(value)(x, *a), dtype=float)
        res = so.minimize(fn, x0_, args=a, method=method, jac=j, hess=h, hessp=hessp,
                          bounds=bounds, constraints=constraints, tol=tol, callback=callback,
                          options=options)
        holder["res"] = res
        return np.asarray(res.x, dtype=float)

    x = solve(x0, *args)
    res = holder.get("res") or so.OptimizeResult()
    return _result(res, x=x, fun=value(x, *args))


def root(fun, x0, args=(), method="hybr", jac=None, tol=None, callback=None, options=None):
    """scipy.optimize.root; ``.x`` is differentiable in ``args`` (fun(x, *args) = 0).

    ``jac=None`` gives scipy dualgrad's Jacobian for the methods that take one ('hybr',
    'lm'); ``jac=True`` means fun returns ``(F, J)``.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy.optimize import root
    >>> r = lambda a: root(lambda x, a: x ** 3 - a, np.ones(1), args=(a,)).x[0]
    >>> round(float(dg.grad(r)(8.0)), 10)   # 1 / (3 * 8**(2/3))
    0.0833333333
    """
    args = _args(args)
    value = _first(fun, jac is True)
    holder = {}

    @custom_root(value)
    def solve(x0_, *a):
        j = jac
        if jac is None and method in ("hybr", "lm"):
            def j(x, *a):
                return np.asarray(jacfwd(value)(x, *a), dtype=float)
        res = so.root(_plain(fun, "root", "fun"), x0_, args=a, method=method, jac=j, tol=tol,
                      callback=callback, options=options)
        holder["res"] = res
        return np.asarray(res.x, dtype=float)

    x = solve(x0, *args)
    return _result(holder.get("res") or so.OptimizeResult(), x=x, fun=value(x, *args))


def root_scalar(f, args=(), method=None, bracket=None, fprime=None, fprime2=None, x0=None,
                x1=None, xtol=None, rtol=None, maxiter=None, options=None):
    """scipy.optimize.root_scalar; ``.root`` is differentiable in ``args``.

    ``method='newton'`` or ``'halley'`` without ``fprime`` (or ``fprime2``) get dualgrad's
    derivatives; ``bracket``, ``x0`` and ``x1`` get zero derivatives.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy.optimize import root_scalar
    >>> r = lambda a: root_scalar(lambda x, a: x * x - a, args=(a,), bracket=(0, 5)).root
    >>> round(float(dg.grad(r)(4.0)), 8)    # 1 / (2 sqrt(4))
    0.25
    """
    args = _args(args)
    value = _first(f, fprime is True)
    starts = [bracket[0] if bracket is not None else np.nan,
              bracket[1] if bracket is not None else np.nan,
              np.nan if x0 is None else x0, np.nan if x1 is None else x1]
    holder = {}

    def d1(x, *a):
        return float(np.asarray(grad(value)(x, *a)))

    def d2(x, *a):
        return float(np.asarray(grad(grad(value))(x, *a)))

    @custom_root(value)
    def solve(s, *a):
        fp, fp2 = fprime, fprime2
        if method in ("newton", "halley") and fprime is None:
            fp = d1
        if method == "halley" and fprime2 is None:
            fp2 = d2
        res = so.root_scalar(_plain(f, "root_scalar", "f"), args=a, method=method,
                             bracket=None if bracket is None else (s[0], s[1]),
                             fprime=fp, fprime2=fp2, x0=None if x0 is None else s[2],
                             x1=None if x1 is None else s[3], xtol=xtol, rtol=rtol,
                             maxiter=maxiter, options=options)
        holder["res"] = res
        return float(res.root)

    x = solve(np.stack([stop_gradient(s) * 1.0 for s in starts]), *args)
    res = holder.get("res")
    if res is not None:
        res.root = x
    return res if res is not None else x


def fixed_point(func, x0, args=(), xtol=1e-8, maxiter=500, method="del2"):
    """scipy.optimize.fixed_point; the answer is differentiable in ``args`` (func(x) = x,
    as HIPS autograd's ``fixed_point``).

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy.optimize import fixed_point
    >>> p = lambda c: fixed_point(lambda x, c: np.cos(x) * c, 0.5, args=(c,))
    >>> x = p(1.0); bool(abs(x - np.cos(x)) < 1e-8)
    True
    >>> round(float(dg.grad(p)(1.0)), 8)     # cos x / (1 + sin x) at x = cos x
    0.44161079
    """
    args = _args(args)

    def residual(x, *a):
        return func(x, *a) - x

    @custom_root(residual)
    def solve(x0_, *a):
        return np.asarray(so.fixed_point(_plain(func, "fixed_point", "func"), x0_, args=a,
                                         xtol=xtol, maxiter=maxiter, method=method),
                          dtype=float)

    return solve(x0, *args)


def least_squares(fun, x0, jac=None, bounds=(-np.inf, np.inf), method="trf", ftol=1e-8,
                  xtol=1e-8, gtol=1e-8, x_scale=1.0, loss="linear", f_scale=1.0,
                  diff_step=None, tr_solver=None, tr_options=None, jac_sparsity=None,
                  max_nfev=None, verbose=0, args=(), kwargs=None):
    """scipy.optimize.least_squares; ``.x`` is differentiable in ``args`` and ``kwargs``
    (Jᵀr = 0).  ``jac=None`` (here the default) gives scipy dualgrad's Jacobian; scipy's
    '2-point', '3-point', 'cs' or a callable are passed on.  Derivatives need
    ``loss='linear'`` and a solution inside the bounds.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy.optimize import least_squares
    >>> t = np.linspace(0, 1, 5)
    >>> fit = lambda y: least_squares(lambda p, y: p[0] + p[1] * t - y, np.zeros(2),
    ...                               args=(y,)).x
    >>> np.round(fit(1.0 + 2.0 * t), 8)
    array([1., 2.])
    >>> np.round(dg.jacrev(fit)(1.0 + 2.0 * t)[1], 8) + 0.0  # the slope's weights
    array([-0.8, -0.4,  0. ,  0.4,  0.8])
    """
    args = _args(args)
    kwargs = dict(kwargs or {})
    lo, hi = bounds if not isinstance(bounds, so.Bounds) else (bounds.lb, bounds.ub)

    def residuals(x, a, kw):
        return fun(x, *a, **kw)

    def optimality(x, a, kw):
        if loss != "linear":
            raise NotImplementedError(
                f"least_squares: derivatives with loss={loss!r} are not supported (only "
                "loss='linear', whose optimality condition is J^T r = 0)")
        xs = np.shape(unbox(x))
        _free_of_bounds(x, list(zip(np.broadcast_to(lo, xs), np.broadcast_to(hi, xs))),
                        "least_squares")
        return grad(lambda y: 0.5 * np.sum(residuals(y, a, kw) ** 2))(x)

    holder = {}

    @custom_root(optimality)
    def solve(x0_, a, kw):
        j = jac
        if jac is None:
            def j(x, *a, **kw):
                return np.asarray(jacfwd(residuals)(x, a, kw), dtype=float)
        res = so.least_squares(_plain(fun, "least_squares", "fun"), x0_, jac=j, bounds=bounds,
                               method=method, ftol=ftol, xtol=xtol, gtol=gtol,
                               x_scale=x_scale, loss=loss, f_scale=f_scale,
                               diff_step=diff_step, tr_solver=tr_solver,
                               tr_options=tr_options or {}, jac_sparsity=jac_sparsity,
                               max_nfev=max_nfev, verbose=verbose, args=a, kwargs=kw)
        holder["res"] = res
        return np.asarray(res.x, dtype=float)

    x = solve(x0, args, kwargs)
    r = residuals(x, args, kwargs)
    return _result(holder.get("res") or so.OptimizeResult(), x=x, fun=r,
                   cost=0.5 * np.sum(r ** 2))
