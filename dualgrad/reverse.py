"""Reverse mode: the Wengert list.

While a function runs, every primitive applied to a value watched by a
``Tape`` appends one entry to ``tape.entries``: (primitive, the arguments
one level down, keyword parameters, which arguments were on this tape, the
result).  The reverse sweep walks that list backwards, applying each
primitive's VJP rule.  The list is already in execution order, so no
topological sort is needed, and the sweep is a plain loop (no recursion).

    >>> import numpy as np, dualgrad as dg
    >>> with dg.Tape() as tape:
    ...     x = tape.watch(2.0)
    ...     y = np.log(x) + x * 3.0
    >>> float(tape.gradient(y, x))
    3.5
"""

import weakref

import numpy as np

from . import buffers
from . import primitives as _P
from .core import Box, Trace, tracing
from .primitives import SCALARS, add, fit_cotangent, shape_of, unbroadcast


class Node(Box):
    """A value recorded on a tape; ``index`` is its row in the Wengert list.

    ``grad`` is filled in by ``backward()`` for watched values (PyTorch style).
    """

    __slots__ = ("index", "_grad", "__weakref__")

    def __init__(self, value, trace, index):
        self.value = value
        self._trace = trace
        self.index = index

    @property
    def grad(self):
        return getattr(self, "_grad", None)

    @grad.setter
    def grad(self, g):
        self._grad = g

    def backward(self, cotangent=None):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every watched leaf (PyTorch style).

        >>> import dualgrad as dg
        >>> with dg.Tape() as tape:
        ...     x = tape.watch(3.0)
        ...     y = x * x
        >>> y.backward(); float(x.grad)
        6.0
        """
        self._trace.backward(self, cotangent)


_new_node = object.__new__


# -- the first-order sweep's allocation (buffers.py) -------------------------------------
# Each helper counts the references it knows of (its callers' locals, ``cts``) before it
# writes into an array with buffers.free(); anything else holding the array vetoes it.

def _fast_rows():
    """Primitive -> (its vjp tuple, how the sweep may compute it without a fresh array).

    The vjp tuple is kept so that a row whose rules are later replaced is swept by
    those rules, untouched."""
    rows = {p: (v, ("local", d)) for p, (v, d) in _P.LOCAL.items()}
    for name, how in (("add", "id"), ("subtract", "sub"), ("multiply", "mul"),
                      ("divide", "div"), ("negative", "neg"), ("positive", "id")):
        p = _P.TABLE.get(name)
        if p is not None:
            rows[p] = (p.vjp, (how,))
    p = _P.TABLE.get("power")
    if p in rows:
        rows[p] = (rows[p][0], ("pow", rows[p][1][1]))
    return rows


_FAST = _fast_rows()


def _fast_vjp(how, argnum, g, ans, vals, last, dead):
    """The cotangent of argument ``argnum`` exactly as the row's rule computes it, written
    into a buffer nobody else holds; ``None`` to use the rule.

    ``g`` is also held by the sweep's local and may be written only when ``last`` (no
    later argument of this entry needs it); ``ans`` is held by the sweep's local and is
    dead when ``dead`` (a one-shot sweep's last argument of the entry)."""
    kind = how[0]
    if kind == "id" or (kind == "sub" and argnum == 0):
        return g
    if kind == "neg" or kind == "sub":
        if last and buffers.free(g, 2):
            return np.negative(g, out=g)
        return np.negative(g, out=buffers.cache.take(g.shape, g.dtype))
    if kind == "pow" and argnum == 0 and vals[1].__class__ in (int, float) and vals[1] == 2:
        x = vals[0]  # d/dx x**2 = x * 2.0, computed as the rule does, in place
        if x.__class__ is not np.ndarray or x.shape != g.shape or x.dtype != g.dtype:
            return None
        if dead and ans.__class__ is np.ndarray and ans.shape == x.shape \
                and ans.dtype == x.dtype and buffers.free(ans, 2):
            out = ans
        else:
            out = buffers.cache.take(x.shape, x.dtype)
        np.multiply(x, 2.0, out=out)
        return np.multiply(g, out, out=out)
    if kind == "mul":
        d = vals[1 - argnum]
    elif kind == "div":
        if argnum != 0:
            return None
        d = vals[1]
    else:  # "local" or "pow": g * f'(x), f'(x) as the row defines it
        d = how[1][argnum](ans, *vals)
    dc = d.__class__
    if dc is np.ndarray:
        if d.dtype.kind != "f":
            return None
        rd = g.dtype if d.dtype == g.dtype else np.result_type(g, d)
        rs = g.shape if d.shape == g.shape else np.broadcast_shapes(g.shape, d.shape)
    elif dc is float or dc is int:
        rd, rs = g.dtype, g.shape
    else:
        return None
    op = np.divide if kind == "div" else np.multiply
    if dc is np.ndarray and d is not ans and d is not g and d.shape == rs and d.dtype == rd \
            and kind not in ("mul", "div") and buffers.free(d, 1):
        return op(g, d, out=d)  # f'(x) was a fresh temporary: it takes the product
    if dead and d is not g and ans.__class__ is np.ndarray and ans.shape == rs \
            and ans.dtype == rd and buffers.free(ans, 2 + (d is ans)):
        return op(g, d, out=ans)
    if last and d is not g and g.shape == rs and g.dtype == rd and buffers.free(g, 2):
        return op(g, d, out=g)
    return op(g, d, out=buffers.cache.take(rs, rd))


def _accumulate(cts, j, c):
    """``cts[j] += c`` without a fresh array where one of them is free (``c`` is also held
    by the sweep's local)."""
    prev = cts[j]
    if prev.__class__ is np.ndarray and c.__class__ is np.ndarray \
            and prev.dtype.kind == "f" and c.dtype.kind == "f" \
            and max(prev.nbytes, c.nbytes) >= buffers.LARGE:
        rd = prev.dtype if prev.dtype == c.dtype else np.result_type(prev, c)
        rs = prev.shape if prev.shape == c.shape else np.broadcast_shapes(prev.shape, c.shape)
        if prev.shape == rs and prev.dtype == rd and buffers.free(prev, 2):
            np.add(prev, c, out=prev)
        elif c.shape == rs and c.dtype == rd and buffers.free(c, 2):
            cts[j] = np.add(prev, c, out=c)
        else:
            cts[j] = np.add(prev, c, out=buffers.cache.take(rs, rd))
    else:
        cts[j] = add(prev, c)


class Tape(Trace):
    """A Wengert list being recorded: use as a context manager, or through ``dg.grad``.

    ``entries[i] = (prim, args, kw, parents, ans)``; ``parents`` pairs each
    argument position that was on this tape with the entry it came from.
    Watched inputs are entries whose ``prim`` is ``None``.

        with dg.Tape() as tape:
            x = tape.watch(x0)
            y = f(x)
        tape.gradient(y, x)     # or: y.backward(); x.grad
        print(tape)             # the evaluation trace as a table
    """

    __slots__ = ("entries", "adjoints", "names", "_leaves", "keep_adjoints", "local")

    def __init__(self, keep_adjoints=True):
        super().__init__()
        self.entries = []
        self.adjoints = None
        self.names = {}
        self._leaves = []
        self.keep_adjoints = keep_adjoints
        self.local = {}  # entry -> f'(x) of a fused unary row, for the first-order sweep

    # -- recording -------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.finish()

    def watch(self, value, name=None):
        """Start recording ``value``: returns a traced value to compute with."""
        from .transforms import check_differentiable
        check_differentiable(value, "value")
        node = Node(value, self, len(self.entries))
        self.entries.append((None, (), None, (), value))
        self._leaves.append(weakref.ref(node))
        if name is not None:
            self.names[node.index] = name
        return node

    def record(self, prim, vals, kw, parents, ans):
        """Append one entry to the Wengert list; returns the traced result."""
        index = len(self.entries)
        self.entries.append((prim, vals, kw, parents, ans))
        return Node(ans, self, index)

    def process(self, prim, args, kw):
        vals = []
        parents = []
        nested = False  # boxes of lower levels among the arguments?
        for a in args:
            if a.__class__ is Node and a._trace is self:
                parents.append((len(vals), a.index))
                a = a.value
            if a.__class__ not in SCALARS and isinstance(a, Box):
                nested = True
            vals.append(a)
        index = len(self.entries)
        fused = prim.fused
        if fused is not None and not nested and vals[0].__class__ is np.ndarray \
                and (r := fused(vals[0])) is not None:
            ans, self.local[index] = r
        elif not nested and not kw and buffers.large(vals) \
                and (r := buffers.forward(prim, vals)) is not None:
            ans = r  # a large elementwise result, in a cached buffer (buffers.py)
        else:
            impl = prim if nested else prim.impl
            ans = impl(*vals, **kw) if kw else impl(*vals)
        self.entries.append((prim, vals, kw, parents, ans))
        node = _new_node(Node)
        node.value = ans
        node._trace = self
        node.index = index
        return node

    # -- the reverse sweep -----------------------------------------------------
    def sweep(self, seeds, nb=0, once=False):
        """Walk the list backwards from the seeded entries; returns every entry's adjoint.

        ``seeds`` pairs entry indices with their cotangents; ``nb`` is the number of
        leading batch axes the cotangents carry (``jacrev`` seeds k rows at once).
        ``once`` (with ``keep_adjoints`` off) says this tape is swept only this once:
        each entry is dropped as soon as it is swept, so its saved values die early and
        their buffers can take later cotangents.

        A first-order sweep (nothing traced) allocates like a framework (buffers.py):
        large cotangents are accumulated in place when nobody else holds them, and the
        elementwise rows write ``g * f'(x)`` into a dead buffer (f'(x)'s own, the
        cotangent's, the dead result's, or a cached one) instead of a fresh array.
        """
        entries = self.entries
        n = 1 + max(i for i, _ in seeds)
        cts = [None] * n
        for i, c in seeds:
            cts[i] = c if cts[i] is None else add(cts[i], c)
        keep = self.keep_adjoints
        once = once and not keep
        raw = not tracing()
        local = self.local if self.local and raw else None
        fast = raw and buffers.ENABLED and not nb
        if once:
            del entries[n:]
        for i in range(n - 1, -1, -1):
            g = cts[i]
            if g is None:
                if once and entries[i][0] is not None:
                    entries[i] = None
                    if local is not None:
                        local.pop(i, None)
                continue
            prim, vals, kw, parents, ans = entries[i]
            if prim is None:
                continue
            if not keep:
                cts[i] = None
            if once:
                entries[i] = None
            if local is not None and i in local:  # a fused unary row: one multiply
                d = local[i]
                if keep or g.__class__ is not np.ndarray or g.shape != d.shape \
                        or g.dtype != d.dtype:
                    c = np.multiply(g, d)
                else:  # a one-shot sweep (a transform's tape): f'(x)'s buffer is free
                    c = np.multiply(g, local.pop(i), out=d)
                d = None
                j = parents[0][1]
                prev = cts[j]
                if prev is None:
                    cts[j] = c
                elif fast:
                    prev = None
                    _accumulate(cts, j, c)
                else:
                    cts[j] = add(prev, c)
                continue
            rules = prim.vjp
            fastrow = _FAST.get(prim) if fast and not kw and g.__class__ is np.ndarray \
                and g.dtype.kind == "f" and g.nbytes >= buffers.LARGE else None
            if fastrow is not None and fastrow[0] is not rules:
                fastrow = None  # the row's rules were replaced: use them as they are
            last = len(parents) - 1
            for k, (argnum, j) in enumerate(parents):
                c = None
                if fastrow is not None:
                    # The reference that are ours: the local g (and, for the last
                    # argument, nothing else needs g: it may take the result).
                    c = _fast_vjp(fastrow[1], argnum, g, ans, vals, k == last and not keep,
                                  once and k == last)
                if c is None:
                    rule = rules[argnum] if rules is not None else None
                    if rule is None:
                        raise TypeError(f"{prim.name!r} is not differentiable with respect "
                                        f"to argument {argnum} (no VJP rule)")
                    c = rule(g, ans, *vals, **kw) if kw else rule(g, ans, *vals)
                if prim.bcast and not (c.__class__ in SCALARS and vals[argnum].__class__ in
                                       SCALARS):
                    c = unbroadcast(c, shape_of(vals[argnum]), nb)
                x = vals[argnum]  # the cotangent gets x's dtype: real for real, float32 stays
                if c.__class__ is np.ndarray and x.__class__ is np.ndarray:
                    if c.dtype is not x.dtype:
                        c = fit_cotangent(c, x)
                elif c.__class__ is not x.__class__ or c.__class__ not in SCALARS:
                    c = fit_cotangent(c, x)
                prev = cts[j]
                if prev is None:
                    cts[j] = c
                elif prev.__class__ in SCALARS and c.__class__ in SCALARS:
                    cts[j] = prev + c
                elif fast:
                    prev = None
                    _accumulate(cts, j, c)
                else:
                    cts[j] = add(prev, c)
                c = None
        if keep:
            self.adjoints = cts
        return cts

    def gradient(self, target, sources, output_gradient=None):
        """d target / d sources, for one watched value or a list/tuple of them.

        A source the target does not depend on gets zeros of its shape.
        """
        from .transforms import seed_cotangent
        if not isinstance(target, Node) or target._trace is not self:
            raise TypeError("tape.gradient: 'target' was not computed from this tape's "
                            "watched values")
        g = seed_cotangent(target.value, output_gradient, "output_gradient")
        cts = self.sweep([(target.index, g)])
        single = isinstance(sources, Node)
        srcs = [sources] if single else list(sources)
        out = []
        for k, s in enumerate(srcs):
            if not isinstance(s, Node) or s._trace is not self or self.entries[s.index][0]:
                raise TypeError(f"tape.gradient: source {k} is not a value watched by this tape")
            c = cts[s.index] if s.index < len(cts) else None
            out.append(np.zeros_like(s.value) if c is None else c)
        return out[0] if single else type(sources)(out)

    def backward(self, target, cotangent=None):
        from .transforms import seed_cotangent
        g = seed_cotangent(target.value, cotangent, "cotangent")
        cts = self.sweep([(target.index, g)])
        for ref in self._leaves:
            leaf = ref()
            if leaf is not None and leaf.index < len(cts) and cts[leaf.index] is not None:
                c = cts[leaf.index]
                leaf.grad = c if leaf.grad is None else leaf.grad + c

    def __len__(self):
        return len(self.entries)

    def __str__(self):
        from .tracetable import format_tape
        return format_tape(self)
