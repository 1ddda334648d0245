"""Writes in place at replay: an index write or a cotangent's slice added into a buffer
the graph itself made and nobody reads any more.

The recorded graph is functional: ``out[n, f, i, j] = v`` in a loop records a chain of
``index_set`` nodes, each a copy of the last with one entry written (numpy's ``out`` is
written in place; JAX's ``x.at[idx].set(v)`` is a copy that XLA turns back into a write
when the old array is dead).  Its reverse sweep adds each slice's cotangent into the
input's: ``acc + scatter_add(g, idx, shape)``, a full-size array of zeros per slice.
Replayed as recorded, a loop of n writes into an array of n entries copies n² numbers
(the CS231n naive conv: 8,192 writes into 8,192 entries, and as many scatters into the
padded input's 3,888).

``plan`` finds where replay may instead write into the buffer itself, as XLA's buffer
donation does: the written array must be one the graph made (an ``index_set``, a
``scatter_add`` or an earlier write in place: never an input, a constant or a view), not
an output, and every other node that reads it must run before the write and keep no view
of it.  Such readers that come later in the graph (the reverse sweep reads ``g[idx]``
just after zeroing ``g[idx]``) are moved before the write when everything they read is
already there and no guard lies between.  ``acc + scatter_add(g, idx, shape)`` with a
basic index becomes ``acc[idx] += g``, as the eager sweep accumulates
(``transforms/reverse.py``): the same sums in the same order (a ``-0.0`` outside the
slice stays ``-0.0``, where adding the scatter's zeros would make it ``0.0``).  regions.py
leaves such an ``add`` out of its fused kernels (``accumulation``).
"""

import numpy as np

from ..rules import basic_index

# nodes whose array value is new (besides the ufuncs' and the kernels'): their readers
# keep no view of what they read
_NEW = frozenset(("sum", "prod", "max", "min", "mean", "matmul", "dot", "scatter_add",
                  "index_set", "concatenate", "stack", "where"))


def _basic(idx):
    return idx.__class__ is tuple and basic_index(idx)


def accumulation(op, ops):
    """For ``acc + scatter_add(g, idx, shape)`` (either order) of one numpy shape and
    dtype, with a basic index: the positions ``(acc, scatter)`` of its arguments; else
    None."""
    if op.kind != "op" or op.prim.name != "add" or op.kw or len(op.args) != 2:
        return None
    out = op.ans
    if out.__class__ is not np.ndarray:
        return None
    for k in (1, 0):
        s, acc = op.args[k], op.args[1 - k]
        if s.__class__ is not int or acc.__class__ is not int:
            return None
        sop = ops[s]
        if sop.kind == "op" and sop.prim.name == "scatter_add" and len(sop.args) == 1 \
                and _basic(sop.kw.get("idx")):
            a, b = ops[acc].ans, sop.ans
            if a.__class__ is np.ndarray and b.__class__ is np.ndarray \
                    and a.shape == b.shape == out.shape and a.dtype == b.dtype == out.dtype:
                return acc, s
    return None


def small(op, ops):
    """Whether ``op`` is an accumulation whose slice is at most a quarter of the array: it
    is left out of the fused kernels (regions.py), to be added in place over the slice
    alone rather than in a loop over the whole array."""
    acc = accumulation(op, ops)
    if acc is None:
        return False
    g = ops[acc[1]].args[0]
    g = ops[g].ans if g.__class__ is int else g.value
    return 4 * np.size(g) <= op.ans.size


def _keeps_no_view(op):
    """Whether ``op``'s value can share no memory with its arguments."""
    if op.kind == "fused":
        return True
    if op.kind != "op":
        return False
    if op.ans.__class__ is not np.ndarray:  # a number: x[i, j] of an array, a full sum
        return True
    return op.prim.ufunc is not None or op.prim.name in _NEW


def _view(op):
    """Whether ``op`` is ``x[idx]`` with a basic index and an array value: a view of x."""
    return op.kind == "op" and op.prim.name == "getitem" and len(op.args) == 1 \
        and _basic(op.kw.get("idx")) and op.ans.__class__ is np.ndarray


class Plan:
    """Where replay writes in place (``plan``): ``writes`` maps a node to ``("set", x)``
    or ``("add", acc, scatter)``, written into ``x``'s or ``acc``'s buffer; ``order`` is
    the emission order, with ``hoisted`` readers moved before the writes; ``dropped``, the
    scatters no longer computed; ``copied``, the slices ``x[idx]`` of a written array taken
    as copies rather than views where they are read after the write (a row of a cotangent
    read after the row is zeroed: the row is copied, not the whole array)."""

    __slots__ = ("writes", "order", "dropped", "copied", "hoisted")

    def __init__(self, writes, order, dropped, copied, hoisted):
        self.writes, self.order, self.dropped = writes, order, dropped
        self.copied, self.hoisted = copied, hoisted


NONE = Plan({}, None, frozenset(), frozenset(), frozenset())


def plan(graph):
    """The ``Plan`` of ``graph``'s writes in place (module docstring)."""
    ops = graph.ops
    n = len(ops)
    readers = [[] for _ in range(n)]
    for i, op in enumerate(ops):
        for a in op.args:
            if a.__class__ is int:
                readers[a].append(i)
    st = _State(ops, readers, set(a for a in graph.outputs if a.__class__ is int),
                [i for i, op in enumerate(ops) if op.kind == "guard"])
    writes, dropped = {}, set()
    for i, op in enumerate(ops):
        if op.ans.__class__ is np.ndarray and (op.kind == "part" or op.kind == "op" and (
                op.prim.ufunc is not None or op.prim.name in _NEW)):
            st.owned[i] = True  # a new array (a kernel's, a ufunc's, perhaps written into
        if op.kind != "op" or i in st.hoisted:  # a dead one: graph._buffer_plan)
            continue  # (a reader moved before a write is never one itself)
        name = op.prim.name
        if name == "index_set" and len(op.args) == 2 and _basic(op.kw.get("idx")):
            if op.args[0].__class__ is int and st.free(op.args[0], i):
                writes[i] = ("set", op.args[0])
            continue
        acc = accumulation(op, ops) if name == "add" else None
        if acc is not None and len(readers[acc[1]]) == 1 and acc[1] not in st.outputs \
                and st.free(acc[0], i):
            writes[i] = ("add",) + acc
            dropped.add(acc[1])
            st.owned[i] = True
    order = []
    for i in range(n):
        if i not in st.hoisted:
            order.extend(st.moved.get(i, ()))
            order.append(i)
    return Plan(writes, order, dropped, st.copied, st.hoisted)


class _State:
    __slots__ = ("ops", "readers", "outputs", "guards", "owned", "moved", "hoisted",
                 "written", "copied")

    def __init__(self, ops, readers, outputs, guards):
        self.ops, self.readers, self.outputs, self.guards = ops, readers, outputs, guards
        self.owned = [False] * len(ops)
        self.moved = {}  # write -> the readers emitted just before it
        self.hoisted, self.written, self.copied = set(), set(), set()

    def free(self, x, i):
        """Whether node ``i`` may write into ``x``'s buffer (module docstring); records
        the readers it moves before ``i``, the views it copies, and ``x`` as written."""
        ops, xa, ia = self.ops, self.ops[x].ans, self.ops[i].ans
        if not self.owned[x] or x in self.written or x in self.outputs \
                or ia.__class__ is not np.ndarray or ia.dtype != xa.dtype \
                or ia.shape != xa.shape:
            return False
        later, views = [], []
        for r in self.readers[x]:
            if r == i:
                continue
            after = r > i and r not in self.hoisted
            if not _keeps_no_view(ops[r]):
                if not _view(ops[r]) or r in self.outputs:
                    return False
                if after or any(q > i or q in self.hoisted or not _keeps_no_view(ops[q])
                                for q in self.readers[r]):
                    views.append(r)  # read after the write: a copy, not a view
            if after:
                if any(a.__class__ is int and a >= i for a in ops[r].args) \
                        or any(i < g < r for g in self.guards):
                    return False
                later.append(r)
        if later:
            self.moved.setdefault(i, []).extend(later)
            self.hoisted.update(later)
        self.copied.update(views)
        self.written.add(x)
        return True
