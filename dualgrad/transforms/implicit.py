"""Implicit differentiation: the derivative of a solver's answer, not of its iterations.

A solver returns ``x*(θ)`` with ``F(x*, θ) = 0``.  By the implicit function theorem

    dx*/dθ = -(∂F/∂x)⁻¹ ∂F/∂θ        (both at x*),

so the derivative needs ``F`` alone: the solver runs on plain values and can be anything
(scipy, a hand-written Newton loop, a C library).  ``custom_root`` makes such a solver
one primitive of the engine, whose rules are written with dualgrad's own transforms:

- forward mode: ``u = ∂F/∂θ · dθ`` (one forward pass of F in θ), ``dx = -(∂F/∂x)⁻¹ u``;
- reverse mode: ``(∂F/∂x)ᵀ λ = x̄`` (one solve), ``θ̄ = -λᵀ ∂F/∂θ`` (one ``vjp`` of F in θ).

``∂F/∂x`` is formed densely with ``jacfwd`` (x has n entries: one pass of n tangents) and
solved with ``np.linalg.solve``, which is differentiable: second derivatives, ``jit`` and
``vmap`` compose with it.  For large x, ``solve="gmres"`` never forms it (scipy's GMRES
with ``jvp``/``vjp`` products; that solve is a root of its own, differentiated alike).
The start point ``x0`` gets a zero derivative by definition: the solution does not depend
on where the solver started.

    >>> import numpy as np, dualgrad as dg
    >>> def F(x, a):                  # x = sqrt(a) solves x**2 - a = 0
    ...     return x ** 2 - a
    >>> @dg.custom_root(F)
    ... def sqrt(x0, a):              # Newton's method on plain floats
    ...     x = x0
    ...     for _ in range(50):
    ...         x = x - (x * x - a) / (2 * x)
    ...     return x
    >>> round(float(sqrt(1.0, 2.0)), 12)
    1.414213562373
    >>> round(float(dg.grad(sqrt, argnums=1)(1.0, 2.0)), 12)   # 1 / (2 sqrt(2))
    0.353553390593

Every traced quantity the solution depends on must reach ``F`` and the solver through
their arguments: a value ``F`` closes over is a constant to these rules.
"""

import functools

import numpy as np

from ..core.trace import Box, IndexedRules, Primitive, tracing, unbox
from ..core.tree import tree_flatten, tree_unflatten
from ..core.validate import dtype_of
from .custom import stop_gradient
from .derivatives import jacfwd, jvp, vjp
from .forward import Dual, JVPTrace


def custom_root(F, solve="dense"):
    """Decorator: ``solver(x0, *args) -> x`` with ``F(x, *args) = 0``, differentiable in
    ``args`` (pytrees of arrays) by the implicit function theorem.

    The solver is called on plain values (never on traced ones) and its iterations are not
    recorded; ``x`` is an array or a number, and ``F(x, *args)`` has as many entries as
    ``x``.  ``x0`` gets a zero derivative (the solution does not depend on the start).

    ``solve`` says how the rules solve with ∂F/∂x: ``"dense"`` forms it (``jacfwd``, n
    tangents in one pass) and calls ``np.linalg.solve``; ``"gmres"`` never forms it: it
    runs scipy's GMRES on plain values with ∂F/∂x·v (``jvp``) or vᵀ∂F/∂x (``vjp``)
    products, for large x (needs scipy).  That solve is itself a root
    (∂F/∂x λ - r = 0) differentiated the same way, so higher derivatives still work.

    >>> import numpy as np, dualgrad as dg
    >>> @dg.custom_root(lambda x, A, b: A @ x - b)
    ... def linsolve(x0, A, b):
    ...     return np.linalg.solve(A, b)
    >>> dg.grad(lambda b: linsolve(np.zeros(2), 2.0 * np.eye(2), b).sum())(np.ones(2))
    array([0.5, 0.5])
    """
    if not callable(F):
        raise TypeError(f"custom_root: F must be a function F(x, *args), got {F!r}")
    if solve not in ("dense", "gmres"):
        raise ValueError(f"custom_root: solve must be 'dense' or 'gmres', got {solve!r}")

    def wrap(solver):
        if not callable(solver):
            raise TypeError(f"custom_root: the solver must be a function solver(x0, *args), "
                            f"got {solver!r}")

        @functools.wraps(solver)
        def solved(x0, *args):
            return _root(F, solver, x0, args, getattr(solver, "__name__", "solver"), solve)
        return solved
    return wrap


def implicit(F, x, *args, solve="dense"):
    """``x``, a root of ``F(x, *args) = 0`` computed by any means, with the derivative the
    implicit function theorem gives it in ``args``; whatever derivative ``x`` carried is
    dropped (the root does not depend on how it was found).

    >>> import numpy as np, dualgrad as dg
    >>> def cube_root(a):
    ...     x = float(np.cbrt(dg.stop_gradient(a)))    # found on plain values
    ...     return dg.implicit(lambda x, a: x ** 3 - a, x, a)
    >>> round(float(dg.grad(cube_root)(8.0)), 12)     # 1 / (3 * 8**(2/3))
    0.083333333333
    """
    if solve not in ("dense", "gmres"):
        raise ValueError(f"implicit: solve must be 'dense' or 'gmres', got {solve!r}")
    return _root(F, lambda x0, *a: x0, x, args, "implicit", solve)


# ---------------------------------------------------------------------------
# the primitive: one per call, so its rules close over F and the pytree of args
# ---------------------------------------------------------------------------

def _root(F, solver, x0, args, name, solve="dense"):
    leaves, tdef = tree_flatten(tuple(args))
    floats = [j for j, v in enumerate(leaves) if _is_float(v)]

    def theta(vals):
        return tree_unflatten(tdef, list(vals))

    def impl(x0_, *vals):
        x = solver(x0_, *theta(vals))
        if isinstance(x, Box):
            raise TypeError(f"custom_root: {name!r} returned a traced value; the solver runs "
                            "on plain values (its iterations are not differentiated), so it "
                            "closes over a traced value: pass that through args")
        x = _as_array(x, name)
        if tracing():  # a transform is recording: F must not close over its values
            try:
                out = F(x, *theta(vals))
            except Exception:  # noqa: BLE001 - F may refuse here; its rules will say why
                out = None
            _closure_check(out, (), name)
        return x

    def jvp_rule(tangents, ans, x0_, *vals):
        live = [(j, t) for j, t in enumerate(tangents[1:]) if t is not None]
        if not live:
            return None
        nb = np.ndim(unbox(live[0][1])) - np.ndim(unbox(vals[live[0][0]]))
        batch = np.shape(unbox(live[0][1]))[:nb]
        k = int(np.prod(batch, dtype=np.int64))
        trace = JVPTrace()
        try:  # one forward pass of F in θ, with every tangent direction at once
            duals = list(vals)
            for j, t in live:
                t = np.reshape(t, ((k,) if nb else ()) + np.shape(unbox(vals[j])))
                duals[j] = Dual._make(vals[j], t, trace)
            out = F(ans, *theta(duals))
        finally:
            trace.finish()
        _closure_check(out.value if isinstance(out, Dual) and out._trace is trace else out,
                       (ans, vals), name)
        u = out.tangent if isinstance(out, Dual) and out._trace is trace else \
            np.zeros(((k,) if nb else ()) + np.shape(unbox(out)))
        n = int(np.prod(np.shape(unbox(ans)), dtype=np.int64))
        dx = -_solve_x(F, ans, vals, theta, np.reshape(u, (k, n)), False, solve, name)
        return np.reshape(dx, batch + np.shape(unbox(ans)))

    cache = {}

    def cotangents(g, ans, vals):
        key = cache.get("key")
        if key is None or key[0] is not g or key[1] is not ans or \
                any(a is not b for a, b in zip(key[2], vals)):
            nb = np.ndim(unbox(g)) - np.ndim(unbox(ans))
            batch = np.shape(unbox(g))[:nb]
            k = int(np.prod(batch, dtype=np.int64))
            n = int(np.prod(np.shape(unbox(ans)), dtype=np.int64))
            lam = _solve_x(F, ans, vals, theta, np.reshape(g, (k, n)), True, solve, name)

            def F_theta(*fl):
                v = list(vals)
                for j, x in zip(floats, fl):
                    v[j] = x
                return F(ans, *theta(v))
            fout, pull = vjp(F_theta, *[vals[j] for j in floats])
            _closure_check(fout, (ans, vals), name)
            fshape = np.shape(unbox(fout))
            rows = [pull(np.reshape(-lam[r], fshape)) for r in range(k)]
            cts = {}
            for m, j in enumerate(floats):
                shape = np.shape(unbox(vals[j]))
                c = np.stack([r[m] for r in rows]) if nb else rows[0][m]
                cts[j] = np.reshape(c, batch + shape) if nb else c
            cache["key"] = (g, ans, tuple(vals))
            cache["cts"] = cts
        return cache["cts"]

    def vjp_rule(i):
        def rule(g, ans, x0_, *vals):
            if i == 0:  # the start point: the solution does not depend on it
                return np.zeros(np.shape(unbox(x0_)), dtype_of(x0_))
            cts = cotangents(g, ans, vals)
            if i - 1 not in cts:
                raise TypeError(f"custom_root {name!r}: argument leaf {i - 1} is not "
                                "floating-point, so it has no derivative")
            return cts[i - 1]
        return rule

    def batch_rule(vals, dims):
        """dg.vmap: the solver once per example (each is its own root problem)."""
        size = next(np.shape(unbox(v))[d] for v, d in zip(vals, dims) if d is not None)
        outs = [prim(*[v if d is None else np.take(v, b, axis=d) for v, d in zip(vals, dims)])
                for b in range(size)]
        return np.stack(outs), 0

    prim = Primitive(f"custom_root[{name}]", impl, jvp=jvp_rule, vjp=IndexedRules(vjp_rule),
                     batch=batch_rule)
    return prim(stop_gradient(x0), *leaves)


def _traces(tree):
    """The traces of every level of every traced leaf of ``tree``."""
    found = set()
    for leaf in tree_flatten(tree)[0]:
        while isinstance(leaf, Box):
            found.add(id(leaf._trace))
            leaf = leaf.value
    return found


def _closure_check(out, inputs, name):
    """F's value at the root depends on traced values that are not arguments: F closes
    over them, and the solution's derivative in them would be silently lost."""
    if not _traces(out) <= _traces(inputs):
        raise TypeError(f"custom_root {name!r}: F(x, *args) uses a traced value that is not "
                        "among its arguments (it closes over one); the solution's derivative "
                        "in it cannot be seen. Pass every traced quantity through args")


def _is_float(v):
    try:
        return dtype_of(v).kind in "fc"
    except TypeError:
        return False


def _as_array(x, name):
    if isinstance(x, (float, np.floating)):
        return float(x) if isinstance(x, float) else x
    x = np.asarray(x)
    if x.dtype.kind not in "fc":
        raise TypeError(f"custom_root: {name!r} must return a float array or number, got "
                        f"dtype {x.dtype}")
    return x


def _solve_x(F, ans, vals, theta, rows, transpose, solve, name):
    """X with ∂F/∂x X_r = R_r (or ∂F/∂xᵀ X_r = R_r) for each row of ``rows`` (k, n)."""
    if solve == "dense":
        J, _ = _jacobian_x(F, ans, vals, theta, name)
        J = np.transpose(J) if transpose else J
        return np.transpose(np.linalg.solve(J, np.transpose(rows)))
    return np.stack([_matrix_free(F, ans, vals, theta, rows[r], transpose, name)
                     for r in range(np.shape(unbox(rows))[0])])


def _product(F, ans, vals, theta, v, transpose):
    """∂F/∂x · v, or vᵀ ∂F/∂x (``transpose``), flat, at x = ans."""
    xshape = np.shape(unbox(ans))

    def Fx(x):
        return np.reshape(F(x, *theta(vals)), (-1,))
    if transpose:
        return np.reshape(vjp(Fx, ans)[1](v)[0], (-1,))
    return jvp(Fx, (ans,), (np.reshape(v, xshape),))[1]


def _gmres(b, ans, vals, r, F, theta, transpose, name):
    """The plain-value solve: scipy's GMRES with products from dualgrad."""
    from scipy.sparse.linalg import LinearOperator, gmres  # optional: only for "gmres"
    n = np.size(r)
    op = LinearOperator((n, n), matvec=lambda v: np.asarray(
        _product(F, ans, vals, theta, v.ravel(), transpose), dtype=float), dtype=float)
    lam, info = gmres(op, np.asarray(r, dtype=float), rtol=1e-12, atol=0.0,
                      restart=min(n, 100), maxiter=10 * n + 100)
    if info != 0:
        raise RuntimeError(f"custom_root {name!r}: GMRES did not converge on the implicit "
                           f"linear system (info={info}); try solve='dense'")
    return lam


def _matrix_free(F, ans, vals, theta, r, transpose, name):
    """λ with ∂F/∂x λ = r (or its transpose) as a root of a linear F of its own, so that
    the solve is differentiable (in ans, args and r) by the same theorem."""
    def residual(lam, ans_, vals_, r_):
        return _product(F, ans_, vals_, theta, lam, transpose) - r_

    def solver(lam0, ans_, vals_, r_):
        return _gmres(lam0, ans_, vals_, r_, F, theta, transpose, name)
    zeros = np.zeros(np.shape(unbox(r)), dtype_of(r))
    return _root(residual, solver, zeros, (ans, tuple(vals), r), name + "/gmres", "gmres")


def _jacobian_x(F, ans, vals, theta, name):
    """∂F/∂x at the root as an (n, n) matrix (forward mode: n tangents in one pass)."""
    xshape = np.shape(unbox(ans))
    n = int(np.prod(xshape, dtype=np.int64))
    J = jacfwd(lambda x: F(x, *theta(vals)))(ans)
    if np.size(unbox(J)) != n * n:
        fshape = np.shape(unbox(J))[:len(np.shape(unbox(J))) - len(xshape)]
        raise ValueError(f"custom_root {name!r}: F(x, *args) must have as many entries as x "
                         f"(x has shape {xshape}, F has shape {fshape})")
    return np.reshape(J, (n, n)), n
