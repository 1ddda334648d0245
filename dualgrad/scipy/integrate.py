"""``scipy.integrate`` on traced values: ODE solutions, quadrature and sampled-data rules.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy import integrate
    >>> t = np.linspace(0.0, 1.0, 3)
    >>> loss = lambda k: integrate.odeint(lambda y, t, k: -k * y, 1.0, t, args=(k,))[-1, 0]
    >>> bool(np.isclose(dg.grad(loss)(2.0), -np.exp(-2.0), rtol=1e-6))   # d/dk e^(-k)
    True

``odeint`` and ``solve_ivp`` run scipy's own integrators on plain values; what dualgrad adds
are the derivatives of the solution, with respect to ``y0``, the parameters in ``args``
(a pytree of arrays and numbers) and the output times ``t``:

- reverse mode by the continuous adjoint: the augmented system ``[y, a, a_theta]`` with
  ``a' = -a f_y`` and ``a_theta' = -a f_theta`` is solved backwards by the same scipy
  integrator between consecutive output times, the output cotangents added at each time
  (as autograd's ``odeint`` and ``jax.experimental.ode`` do);
- forward mode by forward sensitivities: ``y' = f``, ``s' = f_y s + f_theta theta_dot``,
  solved forwards by the same integrator, k directions (``jacfwd``) in one solve.

The products ``a f_y`` and ``f_y s`` inside the augmented dynamics are dualgrad's own
``vjp``/``jvp`` of ``func`` (compiled with ``dg.jit`` when the values are plain).  The
solve is one primitive (``_Flow``) whose rules call the solve again on the augmented
system, so the rules are differentiable and second derivatives (``hessian``, ``grad`` of
``grad``) work, at the price of solving a larger system.  Under ``dg.jit`` the solve is
one opaque node; ``dg.vmap`` stacks the examples into one system, solved once (with
batched output times: one solve per example).
The adjoint gradient is exact for the continuous problem; it matches the derivative of the
computed solution to about the solver's tolerances, so pass tight ``rtol``/``atol`` when
the gradient must be accurate.

``quad`` differentiates under the integral sign (the derivative integrals are ``quad``'s
again) and in the limits (``f(b)``, ``-f(a)``).  ``trapezoid``, ``simpson`` and
``cumulative_trapezoid`` are written with numpy functions on traced values, so every
transform sees through them.
"""

import math

import numpy as np
import scipy.integrate as si

from ..compiler import jit
from ..core.trace import Box, IndexedRules, Primitive, unbox
from ..core.tree import tree_flatten, tree_map, tree_unflatten
from ..numpy.objects import lift_out
from ..rules import is_complex
from ..transforms import grad, jvp, vjp, vmap

__all__ = ["OdeResult", "cumulative_trapezoid", "odeint", "quad", "simpson", "solve_ivp",
           "trapezoid"]

_OBJECT = np.dtype(object)
_IVP_METHODS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")
# options of the user's solve that the augmented solves share (the rest concern the primal
# system alone: its Jacobian, its first step, the output format)
_ODEINT_SHARED = ("rtol", "atol", "tcrit", "hmax", "hmin", "mxstep", "mxordn", "mxords")
_IVP_SHARED = ("rtol", "atol", "max_step", "min_step")


# -- the integrator: scipy's, on plain values ---------------------------------------------

class _Solver:
    """One of scipy's integrators with its options: ``"odeint"`` (LSODA through
    ``scipy.integrate.odeint``) or a ``solve_ivp`` method.  ``augmented`` is the same
    integrator for an augmented system: the shared options, an array ``atol`` reduced to
    its smallest entry (the augmented state is longer than ``y``)."""

    def __init__(self, method, opts, primal=True):
        self.method, self.opts, self.primal = method, opts, primal

    def augmented(self):
        shared = _ODEINT_SHARED if self.method == "odeint" else _IVP_SHARED
        opts = {k: v for k, v in self.opts.items() if k in shared and v is not None}
        for k in ("rtol", "atol"):
            if k in opts and np.ndim(opts[k]) > 0:
                opts[k] = float(np.min(opts[k]))
        return _Solver(self.method, opts, primal=False)

    def __call__(self, rhs, z0, ts):
        """``(zs, info)``: the solution of ``z' = rhs(z, t)``, ``z(ts[0]) = z0``, at ``ts``."""
        if len(ts) == 1 or ts[0] == ts[-1]:
            return np.repeat(z0[None], len(ts), axis=0), {}
        if self.method == "odeint":
            opts = self.opts
            if ts[-1] < ts[0] and opts.get("tcrit") is not None:  # the user's tcrit bounds
                opts = dict(opts, tcrit=None)  # forward steps; LSODA refuses it backwards
            zs, info = si.odeint(rhs, z0, ts, full_output=True, **opts)
            if not self.primal and info["message"] != "Integration successful.":
                raise RuntimeError("dualgrad.scipy.integrate: the augmented (derivative) "
                                   f"solve failed: {info['message']}; loosen rtol/atol or "
                                   "raise mxstep")
            return zs, info
        new = np.concatenate([[True], ts[1:] != ts[:-1]])  # solve_ivp: no repeated time
        sol = si.solve_ivp(lambda t, z: rhs(z, t), (ts[0], ts[-1]), z0, method=self.method,
                           t_eval=ts[new], **self.opts)
        if sol.status != 0:
            what = "the solve" if self.primal else "the augmented (derivative) solve"
            raise RuntimeError(f"dualgrad.scipy.integrate.solve_ivp: {what} failed "
                               f"({self.method}): {sol.message}")
        return sol.y.T[np.cumsum(new) - 1], sol


# -- the solve as a primitive, with its adjoint and sensitivity rules ---------------------

def _vector(out, n, fname):
    """``func``'s output as a 1-D array of length ``n`` (a list, an object array of traced
    entries and an array all accepted, as scipy accepts them)."""
    if out.__class__ in (list, tuple):
        if any(isinstance(o, Box) or getattr(o, "dtype", None) is _OBJECT for o in out):
            out = np.array(out, dtype=object)
        else:
            out = np.asarray(out, dtype=float)
    if out.__class__ is np.ndarray and out.dtype == object:
        out = lift_out(out)
    if not isinstance(out, Box):
        out = np.asarray(out, dtype=float)
    if math.prod(np.shape(out)) != n:
        raise ValueError(f"{fname}: func returned shape {np.shape(out)}, but y0 has {n} "
                         "entries; func must return dy/dt with y0's size")
    return np.reshape(out, (n,))


def _snapshot(g):
    """What tells a later cotangent from ``g`` when it is the same object changed in place
    (``pull(ct)``, then ``ct[...] = ...`` and ``pull(ct)`` again)."""
    return g.copy() if g.__class__ is np.ndarray else g.value if isinstance(g, Box) else None


def _same(cache, g, ans):
    if not cache or cache["g"] is not g or cache["ans"] is not ans:
        return False
    s = cache["snapshot"]
    return np.array_equal(s, g) if g.__class__ is np.ndarray else (
        s is None or s is g.value)


class _Flow:
    """``y(ts)`` for ``y' = f(y, t, *theta)``, ``y(ts[0]) = y0``, as the primitive
    ``flow(y0, ts, *theta)`` of shape ``(len(ts), n)``.

    ``f`` works on plain and traced values; ``shapes`` are the parameters' shapes.  The
    rules build augmented flows (``_adjoint``, ``_sensitivity``), cached per batch size,
    whose dynamics are compiled with ``dg.jit`` for the plain solves (``compiled``)."""

    def __init__(self, f, n, shapes, solver, name, compiled=False):
        self.f, self.n, self.shapes, self.solver, self.name = f, n, shapes, solver, name
        self.fast = jit(f, codegen="off") if compiled else f
        self.sizes = [math.prod(s) for s in shapes]
        self.adjoints, self.sensitivities, self.cache, self.info = {}, {}, {}, {}
        self.batched = {}
        self.prim = Primitive(name, self.impl, jvp=self.jvp, vjp=IndexedRules(self.vjp),
                              batch=self.batch)

    def __call__(self, y0, ts, *theta):
        return self.prim(y0, ts, *theta)

    def impl(self, y0, ts, *theta):
        fast, name = self.fast, self.name
        ys, self.info = self.solver(lambda y, t: _plain(fast(y, t, *theta), name),
                                    np.asarray(y0, dtype=float), np.asarray(ts, dtype=float))
        return ys

    # -- reverse mode: the continuous adjoint -------------------------------------------
    def _adjoint(self, k):
        """The flow of ``[y, A, A_theta]`` (k adjoint rows) backwards in time."""
        flow = self.adjoints.get(k)
        if flow is None:
            f, n = self.f, self.n

            def dynamics(z, t, *theta):
                y, a = z[:n], np.reshape(z[n:n + k * n], (k, n))
                out, pull = vjp(lambda y_, *th: f(y_, t, *th), y, *theta)
                rows = [pull(a[j]) for j in range(k)]
                parts = [r[0] for r in rows] + [np.reshape(c, (-1,)) for r in rows
                                                for c in r[1:]]
                return np.concatenate([out, -np.concatenate(parts)])

            flow = self.adjoints[k] = _Flow(dynamics, n + k * (n + sum(self.sizes)),
                                            self.shapes, self.solver.augmented(),
                                            self.name + "_adjoint", compiled=True)
        return flow

    def _backward(self, g, ans, ts, theta):
        """The adjoint sweep for cotangent ``g`` (leading batch axes allowed): the cotangent
        rows of y0 and theta, and what the times' cotangents need."""
        n, T = self.n, np.shape(unbox(ts))[0]
        lead = np.shape(unbox(g))[:-2]
        k = math.prod(lead)
        G = np.reshape(g, (k, T, n))
        a, a_pre = G[:, T - 1], np.zeros((k, n))
        a_theta = np.zeros((k, sum(self.sizes)))
        flow = self._adjoint(k)
        for i in range(T - 1, 0, -1):
            z0 = np.concatenate([ans[i], np.reshape(a, (-1,)), np.reshape(a_theta, (-1,))])
            z1 = flow(z0, np.stack([ts[i], ts[i - 1]]), *theta)[1]
            a_pre = np.reshape(z1[n:n + k * n], (k, n))
            a_theta = np.reshape(z1[n + k * n:], (k, -1))
            a = a_pre + G[:, i - 1]
        return dict(lead=lead, k=k, G=G, y0=a, a_pre=a_pre, theta=a_theta)

    def vjp(self, i):
        def rule(g, ans, y0, ts, *theta):
            c = self.cache  # one sweep asks once per argument: solve once for them all
            if not _same(c, g, ans):
                c.clear()
                c.update(g=g, ans=ans, snapshot=_snapshot(g),
                         out=self._backward(g, ans, ts, theta))
            r = c["out"]
            lead = r["lead"]
            if i == 0:
                return np.reshape(r["y0"], lead + np.shape(unbox(y0)))
            if i == 1:  # moving output time t_i moves y(t_i) by f(y_i, t_i); t_0 moves y0's time
                T = np.shape(unbox(ts))[0]
                tbar = [-np.sum(r["a_pre"] * self.f(ans[0], ts[0], *theta), axis=-1)]
                tbar += [np.sum(r["G"][:, j] * self.f(ans[j], ts[j], *theta), axis=-1)
                         for j in range(1, T)]
                return np.reshape(np.stack(tbar, axis=-1), lead + (T,))
            j = i - 2
            off = sum(self.sizes[:j])
            return np.reshape(r["theta"][:, off:off + self.sizes[j]], lead + self.shapes[j])
        return rule

    # -- forward mode: forward sensitivities ----------------------------------------------
    def _sensitivity(self, k, mask):
        """The flow of ``[y, S]`` (k sensitivity rows); its parameters are theta, then the
        tangents (k rows each) of the parameters ``mask`` marks."""
        flow = self.sensitivities.get((k, mask))
        if flow is None:
            f, n, m = self.f, self.n, len(mask)
            idx = [j for j in range(m) if mask[j]]

            def dynamics(z, t, *args):
                theta, dots = args[:m], args[m:]
                y, s = z[:n], np.reshape(z[n:], (k, n))

                def f_sel(y_, *sel):
                    th = list(theta)
                    for j, v in zip(idx, sel):
                        th[j] = v
                    return f(y_, t, *th)
                outs = [jvp(f_sel, (y, *[theta[j] for j in idx]), (s[r], *[d[r] for d in dots]))
                        for r in range(k)]
                return np.concatenate([outs[0][0]] + [o[1] for o in outs])

            shapes = self.shapes + [(k,) + self.shapes[j] for j in idx]
            flow = self.sensitivities[(k, mask)] = _Flow(
                dynamics, n * (k + 1), shapes, self.solver.augmented(),
                self.name + "_sensitivity", compiled=True)
        return flow

    def jvp(self, tangents, ans, y0, ts, *theta):
        n, T = self.n, np.shape(unbox(ts))[0]
        lead = next(np.shape(unbox(t))[:np.ndim(unbox(t)) - np.ndim(unbox(x))]
                    for t, x in zip(tangents, (y0, ts) + theta) if t is not None)
        k = math.prod(lead)
        ty0, tts, tth = tangents[0], tangents[1], tangents[2:]
        s0 = np.zeros((k, n)) if ty0 is None else np.reshape(ty0, (k, n))
        if tts is not None:  # a later start moves the solution back along f(y0, t0)
            tts = np.reshape(tts, (k, T))
            s0 = s0 - tts[:, :1] * self.f(y0, ts[0], *theta)
        mask = tuple(t is not None for t in tth)
        dots = [np.reshape(t, (k,) + s) for t, s in zip(tth, self.shapes) if t is not None]
        zs = self._sensitivity(k, mask)(np.concatenate([y0, np.reshape(s0, (-1,))]), ts,
                                        *theta, *dots)
        s = np.transpose(np.reshape(zs[:, n:], (T, k, n)), (1, 0, 2))
        if tts is not None:  # a later output time moves its output along f(y_i, t_i)
            F = np.stack([self.f(ans[i], ts[i], *theta) for i in range(T)])
            s = s + tts[:, :, None] * F
        return np.reshape(s, lead + (T, n))

    # -- dg.vmap: the examples as one system --------------------------------------------------
    def batch(self, args, dims):
        """The examples stacked into one system and solved once (the integrator's error
        control then spans them all); batched times: one solve per example."""
        if dims[1] is not None:
            return _loop(self.prim, args, dims)
        n, y0, d0 = self.n, args[0], dims[0]
        size = next(np.shape(unbox(a))[d] for a, d in zip(args, dims) if d is not None)
        y0 = np.broadcast_to(y0, (size, n)) if d0 is None else np.moveaxis(y0, d0, 0)
        axes = tuple(None if d is None else 0 for d in dims[2:])
        theta = [x if d is None else np.moveaxis(x, d, 0) for x, d in zip(args[2:], dims[2:])]
        flow = self.batched.get((size, axes))
        if flow is None:
            mapped = vmap(self.f, in_axes=(0, None) + axes)

            def stacked(z, t, *th):
                return np.reshape(mapped(np.reshape(z, (size, n)), t, *th), (-1,))
            shapes = [s if a is None else (size,) + s for s, a in zip(self.shapes, axes)]
            flow = self.batched[(size, axes)] = _Flow(
                stacked, size * n, shapes, self.solver.augmented(), self.name, compiled=True)
        return np.reshape(flow(np.reshape(y0, (-1,)), args[1], *theta), (-1, size, n)), 1


def _plain(out, fname):
    """``func``'s output at plain arguments; a traced one means func closes over a traced
    value, whose derivative the solve would lose."""
    if isinstance(out, Box) or getattr(out, "dtype", None) is _OBJECT or (
            out.__class__ in (list, tuple) and any(isinstance(o, Box) for o in out)):
        raise _closure_error(fname)
    return out


def _closure_error(fname):
    fname = fname.replace("_adjoint", "").replace("_sensitivity", "")  # the user's solve
    return TypeError(f"{fname}: func returned a traced value for plain arguments: it uses a "
                     "traced value it closes over (a variable of the function being "
                     "differentiated); pass that value through args=(...), so that "
                     f"{fname}'s result is differentiated with respect to it")


def _real_array(x):
    """``x`` as an array: a traced value as it is, a list holding traced values stacked."""
    if isinstance(x, Box):
        return x
    if x.__class__ in (list, tuple) and any(isinstance(e, Box) for e in x):
        return lift_out(np.array(x, dtype=object))
    return np.asarray(x, dtype=float)


def _params(args):
    """``args``' parameters (its traced leaves) and ``call_with(theta)``: args with new
    parameters in their places, the other leaves (plain arrays, numbers, strings...) kept
    as constants, so the derivative systems carry only what is differentiated."""
    leaves, treedef = tree_flatten(args if isinstance(args, tuple) else (args,))
    where = [i for i, x in enumerate(leaves) if isinstance(x, Box)]

    def call_with(theta):
        full = list(leaves)
        for i, x in zip(where, theta):
            full[i] = x
        return tree_unflatten(treedef, full)
    return [leaves[i] for i in where], call_with


def _loop(prim, args, dims):
    """dg.vmap's rule for a solve: one call per example (one scipy solve each)."""
    size = next(np.shape(unbox(a))[d] for a, d in zip(args, dims) if d is not None)
    return np.stack([prim(*[a if d is None else a[(slice(None),) * d + (b,)]
                            for a, d in zip(args, dims)]) for b in range(size)]), 0


def _flow(fname, func, y0, t, args, call, solver):
    """The user's problem as ``(flow, y0, t, theta)``: ``call(func, y, t, args)`` calls
    ``func`` in scipy's argument order; ``args``' traced leaves become the parameters."""
    if not callable(func):
        raise TypeError(f"{fname}: func must be callable, got {type(func).__name__}")
    theta, call_with = _params(args)
    for x in (y0, t, *theta):
        if is_complex(x) or (x.__class__ in (list, tuple) and any(map(is_complex, x))):
            raise TypeError(f"{fname}: complex values are not supported (y0, t and args "
                            "must be real)")
    y0 = _real_array(y0)
    if np.ndim(unbox(y0)) > 1:
        raise ValueError(f"{fname}: y0 must be 1-dimensional, got shape {np.shape(unbox(y0))}")
    n = math.prod(np.shape(unbox(y0)))
    y0 = np.reshape(y0, (n,))
    t = _real_array(t)
    if np.ndim(unbox(t)) != 1 or np.shape(unbox(t))[0] < 1:
        raise ValueError(f"{fname}: t must be a 1-D sequence of times, got shape "
                         f"{np.shape(unbox(t))}")

    def f(y, tt, *th):
        return _vector(call(func, y, tt, call_with(th)), n, fname)

    shapes = [tuple(np.shape(unbox(x))) for x in theta]
    return _Flow(f, n, shapes, solver, fname), y0, t, theta


# -- the public functions: scipy's signatures ---------------------------------------------

def odeint(func, y0, t, args=(), Dfun=None, col_deriv=0, full_output=0, ml=None, mu=None,
           rtol=None, atol=None, tcrit=None, h0=0.0, hmax=0.0, hmin=0.0, ixpr=0, mxstep=0,
           mxhnil=0, mxordn=12, mxords=5, printmessg=0, tfirst=False):
    """``scipy.integrate.odeint`` (LSODA) with derivatives in ``y0``, ``args`` and ``t``.

    ``func(y, t, *args)`` (``func(t, y, *args)`` with ``tfirst=True``) is numpy code that
    dualgrad can trace; ``args`` may hold arrays, numbers and pytrees of them.  Returns the
    array of shape ``(len(t), len(y0))`` (and scipy's info dict with ``full_output``, which
    describes the primal solve).  ``Dfun`` is used by the primal solve only.

    >>> import numpy as np, dualgrad as dg
    >>> t = np.array([0.0, 1.0])
    >>> f = lambda y0: odeint(lambda y, t: -y, y0, t, rtol=1e-10, atol=1e-10)[1, 0]
    >>> round(float(dg.grad(f)(2.0)), 6)   # d/dy0 of y0 e^(-1)
    0.367879
    """
    opts = dict(Dfun=Dfun, col_deriv=col_deriv, ml=ml, mu=mu, rtol=rtol, atol=atol,
                tcrit=tcrit, h0=h0, hmax=hmax, hmin=hmin, ixpr=ixpr, mxstep=mxstep,
                mxhnil=mxhnil, mxordn=mxordn, mxords=mxords, printmessg=printmessg)
    order = (lambda y, tt: (tt, y)) if tfirst else (lambda y, tt: (y, tt))
    call = (lambda fn, y, tt, a: fn(*order(y, tt), *a))
    if Dfun is not None:  # the primal solve's Jacobian, on plain values
        plain = tree_map(unbox, args if isinstance(args, tuple) else (args,))
        opts["Dfun"] = lambda y, tt: Dfun(*order(y, tt), *plain)
    flow, y0, t, theta = _flow("odeint", func, y0, t, args, call, _Solver("odeint", opts))
    ys = flow(y0, t, *theta)
    return (ys, flow.info) if full_output else ys


class OdeResult(dict):
    """What ``solve_ivp`` returns, as scipy's ``OdeResult``: a dict whose keys are also
    attributes (``t``, ``y`` traced; ``success``, ``status``, ``message``, ``nfev``, ...
    describe the primal solve)."""

    def __getattr__(self, name):
        if name in self:
            return self[name]
        raise AttributeError(name)

    __setattr__ = dict.__setitem__


def solve_ivp(fun, t_span, y0, method="RK45", t_eval=None, dense_output=False, events=None,
              vectorized=False, args=None, **options):
    """``scipy.integrate.solve_ivp`` with derivatives in ``y0``, ``args`` and the times.

    ``fun(t, y, *args)``; ``method`` one of scipy's (RK45, RK23, DOP853, Radau, BDF,
    LSODA); ``t_eval`` the output times (traced or not).  Without ``t_eval`` the output
    times are the steps scipy takes, held constant (only the first and last follow
    ``t_span``).  ``dense_output`` and ``events`` are not supported; ``jac``,
    ``first_step`` and the like apply to the primal solve only.  A failed solve raises
    (a partial solution has no derivative).

    >>> import numpy as np, dualgrad as dg
    >>> f = lambda k: solve_ivp(lambda t, y, k: -k * y, (0.0, 1.0), [1.0], t_eval=[1.0],
    ...                         args=(k,), rtol=1e-10, atol=1e-10).y[0, -1]
    >>> round(float(dg.grad(f)(1.0)), 6)   # d/dk e^(-k)
    -0.367879
    """
    if method not in _IVP_METHODS:
        raise ValueError(f"solve_ivp: method must be one of {', '.join(_IVP_METHODS)} "
                         f"(dualgrad solves the derivative systems with it), got {method!r}")
    if dense_output or events is not None:
        raise NotImplementedError("dualgrad.scipy.integrate.solve_ivp: dense_output and "
                                  "events have no derivative here; pass t_eval instead")
    if not isinstance(t_span, (tuple, list)) and np.shape(unbox(t_span)) != (2,):
        raise ValueError("solve_ivp: t_span must be a pair (t0, tf)")
    t0, tf = t_span[0], t_span[1]
    args = () if args is None else tuple(args) if isinstance(args, (tuple, list)) else (args,)
    plain = tree_map(unbox, args)
    if callable(options.get("jac")):  # the primal solve's Jacobian, on plain values
        options["jac"] = (lambda jac: lambda t, y: jac(t, y, *plain))(options["jac"])
    if t_eval is None:  # scipy's own steps, as constants between the traced ends
        sol = si.solve_ivp(lambda t, y: np.asarray(_plain(fun(t, y, *plain), "solve_ivp"),
                                                   dtype=float),
                           (float(unbox(t0)), float(unbox(tf))),
                           np.asarray(unbox(_real_array(y0)), dtype=float), method=method,
                           **options)
        t_eval = np.concatenate([np.reshape(t0, (1,)), sol.t[1:-1], np.reshape(tf, (1,))])
    t_eval = _real_array(t_eval)
    if np.ndim(unbox(t_eval)) != 1:
        raise ValueError(f"solve_ivp: t_eval must be 1-D, got shape {np.shape(unbox(t_eval))}")
    ts = np.concatenate([np.reshape(t0, (1,)), t_eval])  # the solve starts at t0
    call = (lambda fn, y, tt, a: fn(tt, y, *a))
    flow, y0, ts, theta = _flow("solve_ivp", fun, y0, ts, args, call,
                                _Solver(method, dict(options)))
    ys = flow(y0, ts, *theta)[1:]
    info = flow.info
    return OdeResult(t=t_eval, y=np.transpose(ys), sol=None, t_events=None, y_events=None,
                     nfev=getattr(info, "nfev", 0), njev=getattr(info, "njev", 0),
                     nlu=getattr(info, "nlu", 0), status=getattr(info, "status", 0),
                     message=getattr(info, "message", "The solver successfully reached "
                                     "the end of the integration interval."),
                     success=getattr(info, "success", True))


# -- quad: differentiated under the integral sign and in the limits -----------------------

class _Quad:
    """``integral of f(x, *theta) dx from a to b`` by scipy's ``quad``, as the primitive
    ``quad(a, b, *theta)``.  Its derivative integrals are ``_Quad``s again (of ``f``'s
    ``jvp``, or of each entry of its ``grad``), so they differentiate in turn."""

    def __init__(self, f, shapes, opts):
        self.f, self.shapes, self.opts = f, shapes, opts
        self.tangents, self.gradients, self.info = {}, {}, (0.0, 0.0)
        self.prim = Primitive("quad", self.impl, jvp=self.jvp, vjp=IndexedRules(self.vjp),
                              batch=lambda args, dims: _loop(self.prim, args, dims))

    def impl(self, a, b, *theta):
        f = self.f
        self.info = si.quad(lambda x: float(_plain(f(x, *theta), "quad")), float(a), float(b),
                            **self.opts)
        return np.float64(self.info[0])

    def _under(self, j, e):
        """The quad of entry ``e`` of df/dtheta_j."""
        q = self.gradients.get((j, e))
        if q is None:
            f = self.f

            def integrand(x, *theta):
                def fj(v):
                    return f(x, *theta[:j], v, *theta[j + 1:])
                return np.reshape(grad(fj)(theta[j]), (-1,))[e]
            q = self.gradients[(j, e)] = _Quad(integrand, self.shapes, self.opts)
        return q

    def vjp(self, i):
        def rule(g, ans, a, b, *theta):
            if i < 2:
                side = self.f(b if i else a, *theta)
                return g * side if i else -g * side
            j = i - 2
            shape = self.shapes[j]
            parts = [self._under(j, e).prim(a, b, *theta) for e in range(math.prod(shape))]
            lead = np.shape(unbox(g))
            return np.reshape(g, lead + (1,) * len(shape)) * np.reshape(np.stack(parts), shape)
        return rule

    def _directional(self, mask):
        """The quad of f's jvp in the parameters ``mask`` marks, their tangents appended."""
        q = self.tangents.get(mask)
        if q is None:
            f, m = self.f, len(mask)
            idx = [j for j in range(m) if mask[j]]

            def integrand(x, *args):
                theta, dots = args[:m], args[m:]

                def f_sel(*sel):
                    th = list(theta)
                    for j, v in zip(idx, sel):
                        th[j] = v
                    return f(x, *th)
                return jvp(f_sel, tuple(theta[j] for j in idx), tuple(dots))[1]
            q = self.tangents[mask] = _Quad(integrand, self.shapes + [self.shapes[j]
                                                                      for j in idx], self.opts)
        return q

    def jvp(self, tangents, ans, a, b, *theta):
        lead = next(np.shape(unbox(t))[:np.ndim(unbox(t)) - np.ndim(unbox(x))]
                    for t, x in zip(tangents, (a, b) + theta) if t is not None)
        k = math.prod(lead)
        ta, tb, tth = tangents[0], tangents[1], tangents[2:]
        out = np.zeros((k,))
        if tb is not None:
            out = out + np.reshape(tb, (k,)) * self.f(b, *theta)
        if ta is not None:
            out = out - np.reshape(ta, (k,)) * self.f(a, *theta)
        mask = tuple(t is not None for t in tth)
        if any(mask):
            q = self._directional(mask)
            dots = [np.reshape(t, (k,) + s) for t, s in zip(tth, self.shapes) if t is not None]
            out = out + np.stack([q.prim(a, b, *theta, *[d[r] for d in dots])
                                  for r in range(k)])
        return np.reshape(out, lead)


def quad(func, a, b, args=(), full_output=0, epsabs=1.49e-8, epsrel=1.49e-8, limit=50,
         points=None, weight=None, wvar=None, wopts=None, maxp1=50, limlst=50,
         complex_func=False):
    """``scipy.integrate.quad``: ``(value, abserr)``, the value differentiable in the
    limits ``a``, ``b`` (``func(b)``, ``-func(a)``) and in the traced values in ``args``
    (under the integral sign: the derivative integrals are computed by ``quad`` too, one
    per parameter entry in reverse mode, one per direction in forward mode).  ``abserr``
    is a plain number describing the value's integral.  ``weight``, ``full_output`` and
    ``complex_func`` are not supported.

    >>> import numpy as np, dualgrad as dg
    >>> area = lambda k: quad(lambda x, k: np.exp(-k * x), 0.0, 1.0, args=(k,))[0]
    >>> round(float(dg.grad(area)(1.0)), 8)   # -integral of x e^(-x) from 0 to 1
    -0.26424112
    """
    if full_output or weight is not None or complex_func:
        raise NotImplementedError("dualgrad.scipy.integrate.quad: full_output, weight and "
                                  "complex_func are not supported")
    if not callable(func):
        raise TypeError(f"quad: func must be callable, got {type(func).__name__}")
    theta, call_with = _params(args)

    def f(x, *th):
        out = func(x, *call_with(th))
        if math.prod(np.shape(unbox(out))) != 1:
            raise ValueError(f"quad: func must return a number, got shape "
                             f"{np.shape(unbox(out))}")
        return np.reshape(out, ())

    opts = dict(epsabs=epsabs, epsrel=epsrel, limit=limit, points=points)
    q = _Quad(f, [tuple(np.shape(unbox(x))) for x in theta], opts)
    value = q.prim(a, b, *theta)
    return value, float(q.info[1])


# -- sampled data: numpy functions on traced values ---------------------------------------

def _at(nd, axis, index):
    """The index tuple picking ``index`` along ``axis`` of an ``nd``-dimensional array."""
    return (slice(None),) * (axis % nd) + (index,)


def _samples(y):
    return y if isinstance(y, Box) else np.asarray(y)


def _points(y, x, axis, fname):
    """The sample points ``x`` shaped to broadcast with ``y`` (None stays None)."""
    if x is None:
        return None
    x, nd = _samples(x), np.ndim(unbox(y))
    if np.ndim(unbox(x)) == 1:
        x = np.reshape(x, tuple(-1 if i == axis % nd else 1 for i in range(nd)))
    elif np.ndim(unbox(x)) != nd:
        raise ValueError(f"{fname}: if given, shape of x must be 1-D or the same as y")
    if np.shape(unbox(x))[axis] != np.shape(unbox(y))[axis]:
        raise ValueError(f"{fname}: if given, length of x along axis must be the same as y")
    return x


def _spacing(y, x, dx, axis, fname):
    """The N - 1 spacings along ``axis`` (shaped to broadcast with y), or ``dx``."""
    return dx if x is None else np.diff(_points(y, x, axis, fname), axis=axis)


def trapezoid(y, x=None, dx=1.0, axis=-1):
    """``scipy.integrate.trapezoid`` (numpy's ``trapezoid``): the trapezoidal rule.

    >>> import numpy as np, dualgrad as dg
    >>> dg.grad(lambda y: trapezoid(y, dx=0.5))(np.ones(3))
    array([0.25, 0.5 , 0.25])
    """
    y = _samples(y)
    nd = np.ndim(unbox(y))
    d = _spacing(y, x, dx, axis, "trapezoid")
    return np.sum(d * (y[_at(nd, axis, slice(1, None))] + y[_at(nd, axis, slice(None, -1))])
                  / 2.0, axis=axis)


def cumulative_trapezoid(y, x=None, dx=1.0, axis=-1, initial=None):
    """``scipy.integrate.cumulative_trapezoid``: the running trapezoidal rule (``initial``
    None or 0, as scipy allows).

    >>> import numpy as np
    >>> cumulative_trapezoid(np.array([0.0, 1.0, 2.0]), initial=0)
    array([0. , 0.5, 2. ])
    """
    y = _samples(y)
    nd = np.ndim(unbox(y))
    d = _spacing(y, x, dx, axis, "cumulative_trapezoid")
    res = np.cumsum(d * (y[_at(nd, axis, slice(1, None))] + y[_at(nd, axis, slice(None, -1))])
                    / 2.0, axis=axis)
    if initial is not None:
        if not np.isscalar(initial):
            raise ValueError("cumulative_trapezoid: `initial` parameter should be a scalar.")
        if initial != 0:
            raise ValueError("cumulative_trapezoid: `initial` must be `None` or `0`.")
        shape = list(np.shape(unbox(res)))
        shape[axis] = 1
        res = np.concatenate([np.zeros(tuple(shape)), res], axis=axis)
    return res


def _simpson_pairs(y, stop, x, dx, axis):
    """Simpson's rule over the pairs of intervals starting at 0, 2, ..., stop - 2."""
    nd = np.ndim(unbox(y))
    y0, y1, y2 = (y[_at(nd, axis, slice(s, stop + s, 2))] for s in range(3))
    if x is None:
        return np.sum(y0 + 4.0 * y1 + y2, axis=axis) * (dx / 3.0)
    h = np.diff(x, axis=axis)
    h0, h1 = h[_at(nd, axis, slice(0, stop, 2))], h[_at(nd, axis, slice(1, stop + 1, 2))]
    hsum, ratio = h0 + h1, h0 / h1
    return np.sum(hsum / 6.0 * (y0 * (2.0 - 1.0 / ratio) + y1 * (hsum * hsum / (h0 * h1))
                                + y2 * (2.0 - ratio)), axis=axis)


def simpson(y, x=None, *, dx=1.0, axis=-1):
    """``scipy.integrate.simpson``: composite Simpson's rule; with an even number of samples
    the last interval gets Cartwright's correction, as scipy's.  Samples at repeated ``x``
    (a zero spacing) are not supported.

    >>> import numpy as np
    >>> float(simpson(np.arange(10.0) ** 3, x=np.arange(10.0)))
    1640.5
    """
    y = _samples(y)
    nd = np.ndim(unbox(y))
    n = np.shape(unbox(y))[axis]
    x = _points(y, x, axis, "simpson")
    if n % 2:
        return _simpson_pairs(y, n - 2, x, dx, axis)
    last, before = y[_at(nd, axis, -1)], y[_at(nd, axis, -2)]
    if n == 2:
        h1 = dx if x is None else x[_at(nd, axis, -1)] - x[_at(nd, axis, -2)]
        return 0.5 * h1 * (last + before)
    if x is None:
        h0 = h1 = dx
    else:
        h = np.diff(x, axis=axis)
        h0, h1 = h[_at(nd, axis, -2)], h[_at(nd, axis, -1)]
    alpha = (2 * h1 ** 2 + 3 * h0 * h1) / (6 * (h1 + h0))
    beta = (h1 ** 2 + 3.0 * h0 * h1) / (6 * h0)
    eta = h1 ** 3 / (6 * h0 * (h0 + h1))
    return (_simpson_pairs(y, n - 3, x, dx, axis) + alpha * last + beta * before
            - eta * y[_at(nd, axis, -3)])
