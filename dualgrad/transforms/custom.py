"""Custom derivative rules (JAX semantics) and ``stop_gradient``.

``custom_jvp`` gives a function its own forward rule; reverse mode gets the
matching VJP by transposing that rule (the rule is linear in the tangents, so
one reverse sweep of it gives the cotangents).  ``custom_vjp`` gives a function
its own reverse rule, with residuals saved by a forward function.

    >>> import numpy as np, dualgrad as dg
    >>> @dg.custom_jvp
    ... def softplus(x):
    ...     return np.logaddexp(0.0, x)
    >>> @softplus.defjvp
    ... def softplus_jvp(primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return softplus(x), t / (1.0 + np.exp(-x))
    >>> float(dg.grad(softplus)(1000.0))   # differentiating the formula gives nan here
    1.0
"""

import functools

import numpy as np

from ..core.trace import Box, IndexedRules, Primitive, top_trace, unbox
from ..core.tree import tree_map
from .derivatives import vjp
from .forward import JVPTrace

BATCH = [None]  # dg.vmap's rule for custom functions: (fn, args, dims) -> (ans, 0) (batching.py)


def stop_gradient(x):
    """``x`` with every derivative through it cut: a constant to all transforms.

    >>> import dualgrad as dg
    >>> float(dg.grad(lambda x: x * dg.stop_gradient(x))(3.0))
    3.0
    """
    return tree_map(_strip, x)


def _strip(x):
    """x without its derivative levels; a graph being recorded (``dg.jit``) keeps its own
    value, which is the value, not a derivative."""
    while isinstance(x, Box) and x._trace.read is None:
        x = x.value
    rebox = getattr(getattr(x, "_trace", None), "rebox", None)
    if rebox is not None:  # a batch (dg.vmap) is no derivative: keep it, strip below it
        return rebox(x, _strip(x.value))
    return x


def _batched_rule(rule, tangents, primals):
    """Call a user rule once per batch direction when tangents carry a batch axis."""
    nbs = [np.ndim(t) - np.ndim(p) for t, p in zip(tangents, primals) if t is not None]
    if not nbs or max(nbs) == 0:
        return rule(tangents)
    k = next(np.shape(t)[0] for t, p in zip(tangents, primals)
             if t is not None and np.ndim(t) > np.ndim(p))
    outs = [rule([None if t is None else t[i] for t in tangents]) for i in range(k)]
    return np.stack(outs)


class custom_jvp:
    """Decorator: ``f`` with a user-written JVP rule (``f.defjvp(rule)``).

    ``rule(primals, tangents)`` returns ``(f(*primals), tangent_out)``; a zero
    tangent arrives as an array of zeros.
    """

    def __init__(self, fun):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.rule = None

    def defjvp(self, rule):
        self.rule = rule
        return rule

    def _tangent(self, tangents, ans, *primals):
        def one(ts):
            full = [np.zeros(np.shape(unbox(p)), np.result_type(unbox(p), 1.0))
                    if t is None else t for t, p in zip(ts, primals)]
            return self.rule(tuple(primals), tuple(full))[1]
        return _batched_rule(one, tangents, primals)

    def _vjp(self, i):
        def rule(g, ans, *primals):
            def lin(t):  # the JVP rule as a function of tangent i alone: linear in t
                ts = [None] * len(primals)
                ts[i] = t
                return self._tangent(ts, ans, *primals)
            zero = np.zeros(np.shape(unbox(primals[i])),
                            np.result_type(unbox(primals[i]), 1.0))
            nb = np.ndim(g) - np.ndim(ans)
            if nb == 0:
                return vjp(lin, zero)[1](g)[0]
            return np.stack([vjp(lin, zero)[1](g[j])[0] for j in range(np.shape(g)[0])])
        return rule

    def __call__(self, *args):
        if self.rule is None:
            raise TypeError(f"custom_jvp function {self.__name__!r} has no rule: call "
                            ".defjvp(rule) first")
        if not any(isinstance(a, Box) for a in args):
            return self.fun(*args)
        batch = getattr(top_trace(args), "batch_custom", None)
        if batch is not None:  # dg.vmap: the function and its rule, batched (batching.py)
            return batch(self, args)
        prim = Primitive(self.__name__, self.fun, jvp=self._tangent,
                         vjp=IndexedRules(self._vjp),
                         batch=lambda args, dims: BATCH[0](self, args, dims))
        return prim(*args)


def _snapshot(g):
    """What ``_same_cotangent`` compares: a numpy cotangent's values (a copy), a traced
    one's current value (an in-place update rebinds it), a number itself."""
    if g.__class__ is np.ndarray:
        return g.copy()
    return g.value if isinstance(g, Box) else g


def _same_cotangent(cached, g):
    if cached is None or cached[0] is not g:
        return False
    snap = cached[1]
    if g.__class__ is np.ndarray:
        return g.shape == snap.shape and np.array_equal(
            g, snap, equal_nan=g.dtype.kind in "fc")
    return not isinstance(g, Box) or g.value is snap


class custom_vjp:
    """Decorator: ``f`` with a user-written VJP rule (``f.defvjp(fwd, bwd)``).

    ``fwd(*args)`` returns ``(f(*args), residuals)``; ``bwd(residuals, g)``
    returns a tuple with one cotangent per argument (``None`` for none).
    Forward mode through a custom_vjp function is an error, as in JAX.
    """

    def __init__(self, fun):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.fwd = self.bwd = None

    def defvjp(self, fwd, bwd):
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args):
        if self.fwd is None:
            raise TypeError(f"custom_vjp function {self.__name__!r} has no rule: call "
                            ".defvjp(fwd, bwd) first")
        top = top_trace(args)
        if top is None:
            return self.fun(*args)
        opaque = getattr(top, "call_opaque", None)
        if opaque is not None:  # a graph being recorded (dg.jit): one node that calls self
            return opaque(self, args)
        batch = getattr(top, "batch_custom", None)
        if batch is not None:  # dg.vmap: fwd and bwd, batched (batching.py)
            return batch(self, args)
        if isinstance(top, JVPTrace):
            raise TypeError(f"forward mode (jvp/jacfwd/Dual) through the custom_vjp function "
                            f"{self.__name__!r} is not possible; use custom_jvp instead")
        if not top.active:
            top.leaked(Primitive(self.__name__, None))
        vals = list(args)
        parents = []
        for i, a in enumerate(args):
            if isinstance(a, Box) and a._trace is top:
                vals[i] = a.value
                parents.append((i, a.index))
        ans, res = self.fwd(*vals)
        bwd, name = self.bwd, self.__name__
        cache = {}

        def cotangents(g, ans_):
            """bwd's cotangents; a batch of k cotangent rows (jacrev) goes row by row.  Each
            argument's rule asks with the same g: bwd runs once per g, which is the same
            object *with the same values* (a pullback called again with its cotangent
            changed in place must not get the first answer)."""
            if not _same_cotangent(cache.get("g"), g):
                nb = np.ndim(g) - np.ndim(ans_)
                rows = [bwd(res, g[j]) for j in range(np.shape(g)[0])] if nb else [bwd(res, g)]
                for cts in rows:
                    if not isinstance(cts, (tuple, list)) or len(cts) != len(args):
                        raise TypeError(f"custom_vjp {name!r}: bwd must return a tuple of "
                                        f"{len(args)} cotangent(s), one per argument")
                cache.update(g=(g, _snapshot(g)), rows=rows, nb=nb)
            return cache["rows"], cache["nb"]

        def cotangent(i):
            def rule(g, ans_, *vals_):
                rows, nb = cotangents(g, ans_)
                shape = np.shape(unbox(vals_[i]))
                out = []
                for cts in rows:
                    c = cts[i]
                    if c is None:
                        c = np.zeros(shape)
                    elif np.shape(unbox(c)) != shape:
                        raise ValueError(f"custom_vjp {name!r}: bwd returned a cotangent of "
                                         f"shape {np.shape(unbox(c))} for argument {i} of "
                                         f"shape {shape}")
                    out.append(c)
                return np.stack(out) if nb else out[0]
            return rule

        return top.record(Primitive(name, None, vjp=IndexedRules(cotangent)), vals, {}, parents,
                          ans)
