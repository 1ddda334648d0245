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

from .core import Box, Trace, tracing
from .primitives import SCALARS, add, shape_of, unbroadcast


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
    def sweep(self, seeds, nb=0):
        """Walk the list backwards from the seeded entries; returns every entry's adjoint.

        ``seeds`` pairs entry indices with their cotangents; ``nb`` is the number of
        leading batch axes the cotangents carry (``jacrev`` seeds k rows at once).
        """
        entries = self.entries
        n = 1 + max(i for i, _ in seeds)
        cts = [None] * n
        for i, c in seeds:
            cts[i] = c if cts[i] is None else add(cts[i], c)
        keep = self.keep_adjoints
        local = self.local if self.local and not tracing() else None
        for i in range(n - 1, -1, -1):
            g = cts[i]
            if g is None:
                continue
            prim, vals, kw, parents, ans = entries[i]
            if prim is None:
                continue
            if not keep:
                cts[i] = None
            if local is not None and i in local:  # a fused unary row: one multiply
                d = local[i]
                if keep or g.__class__ is not np.ndarray or g.shape != d.shape \
                        or g.dtype != d.dtype:
                    c = np.multiply(g, d)
                else:  # a one-shot sweep (a transform's tape): f'(x)'s buffer is free
                    c = np.multiply(g, local.pop(i), out=d)
                j = parents[0][1]
                cts[j] = c if cts[j] is None else add(cts[j], c)
                continue
            rules = prim.vjp
            for argnum, j in parents:
                rule = rules[argnum] if rules is not None else None
                if rule is None:
                    raise TypeError(f"{prim.name!r} is not differentiable with respect to "
                                    f"argument {argnum} (no VJP rule)")
                c = rule(g, ans, *vals, **kw) if kw else rule(g, ans, *vals)
                if prim.bcast and not (c.__class__ in SCALARS and vals[argnum].__class__ in
                                       SCALARS):
                    c = unbroadcast(c, shape_of(vals[argnum]), nb)
                prev = cts[j]
                if prev is None:
                    cts[j] = c
                elif prev.__class__ in SCALARS and c.__class__ in SCALARS:
                    cts[j] = prev + c
                else:
                    cts[j] = add(prev, c)
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
