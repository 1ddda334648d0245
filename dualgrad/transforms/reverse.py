"""Reverse mode: the Wengert list.

While a function runs, every primitive applied to a value watched by a ``Tape`` appends
one ``Entry`` to ``tape.entries``: the primitive, its arguments one level down, its
keyword parameters, which arguments were on this tape, the result, and (for a fused
elementwise row) its local derivative.  The reverse sweep walks that list backwards,
applying each primitive's VJP rule.  The list is already in execution order, so no
topological sort is needed, and the sweep is a plain loop (no recursion).

    >>> import numpy as np, dualgrad as dg
    >>> with dg.Tape() as tape:
    ...     x = tape.watch(2.0)
    ...     y = np.log(x) + x * 3.0
    >>> float(tape.gradient(y, x))
    3.5
"""

import threading
import weakref

import numpy as np

from ..core import buffers
from ..core.trace import Box, Trace, kept, thaw, unlift
from ..core.validate import check_differentiable, seed_cotangent
from ..numpy.box import ArrayBox
from ..rules import SCALARS, getitem, index_set, sum_
from .forward import push_tangents
from .slices import (
    LAZY,
    Blocks,
    Masked,
    add_block,
    add_dual_slice,
    dense,
    merge_lazy,
    split_index_set,
)
from .steps import (  # noqa: F401  (accumulate, cotangent: teach/tracetable.py's)
    _NONE,
    _QUICK,
    _accumulate_in_place,
    _getitem_into,
    _getitem_into_blocks,
    _in_place,
    _index_set_into,
    _merge_all,
    _one_element,
    _v_part,
    accumulate,
    cotangent,
    entry_into,
    fit,
    sum_of_product,
)


class Entry:
    """One instruction of the Wengert list (ReverseDiff's ``tape.jl``: func, input,
    output, cache).

    ``prim`` is the primitive (``None`` for an input), ``args`` its arguments one level
    down, ``kw`` its keyword parameters (or ``None``), ``parents`` pairs each argument
    position that was on this tape with the entry it came from, ``ans`` is the result,
    and ``local`` the f'(x) a fused elementwise row computed with it (or ``None``).
    """

    __slots__ = ("prim", "args", "kw", "parents", "ans", "local")

    def __init__(self, prim, args, kw, parents, ans, local=None):
        self.prim, self.args, self.kw, self.parents, self.ans = prim, args, kw, parents, ans
        self.local = local

    def __repr__(self):
        name = "input" if self.prim is None else self.prim.name
        return f"<Entry {name} parents={[j for _, j in self.parents]}>"


class Node(ArrayBox):
    """A value recorded on a tape; ``index`` is its row in the Wengert list.

    ``grad`` is filled in by ``backward()`` for watched values (PyTorch style).
    """

    __slots__ = ("index", "_grad")  # (weak references: ArrayBox has the slot)

    def __init__(self, value, trace, index):
        self.value = value
        self._trace = trace
        self.index = index
        # no view, no write, no views of it (inplace.py): set, as getattr of an unset slot
        self._view_of, self._writes, self._views = None, 0, None  # is slow

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


_new = object.__new__
_ND = np.ndarray
# the references to x when Tape._set_in_place may write into it: the entry that made it
# (``ans``), the box being written (``value``), ``process``'s list of values and
# ``_set_in_place``'s local ``x`` (tests/test_aliasing.py checks writes go in place)
_SET_REFS = 4


def _overwritten(shape, dtype):
    """What an entry keeps of an array written over in place: a read-only array of its
    shape and dtype (zeros, broadcast: no memory), where only the shape is ever read; one
    per shape and dtype (a loop of writes asks for the same one each time)."""
    r = _LAST[0]  # a loop of writes asks for the one it asked for last
    if r.shape == shape and r.dtype is dtype:
        return r
    key = (shape, dtype)
    r = _OVERWRITTEN.get(key)
    if r is None:
        if len(_OVERWRITTEN) > 256:
            _OVERWRITTEN.clear()
        r = _OVERWRITTEN[key] = np.broadcast_to(np.zeros((), dtype), shape)
    _LAST[0] = r
    return r


_OVERWRITTEN = {}
_LAST = [np.broadcast_to(np.zeros((), bool), ())]


class Tape(Trace):
    """A Wengert list being recorded: use as a context manager, or through ``dg.grad``.

    ``entries`` holds one ``Entry`` per input and operation, in execution order.

        with dg.Tape() as tape:
            x = tape.watch(x0)
            y = f(x)
        tape.gradient(y, x)     # or: y.backward(); x.grad
        print(tape)             # the evaluation trace as a table
    """

    __slots__ = ("entries", "adjoints", "names", "_leaves", "keep_adjoints", "kept",
                 "frozen", "boxed")
    # backward()'s accumulation into leaf.grad (one for all tapes: a tape is made per
    # transform call, and the lock is taken only by backward's few additions)
    _lock = threading.Lock()

    def __init__(self, keep_adjoints=True):
        super().__init__()
        self.entries = []
        self.kept = {}  # large plain arguments, kept once (core.trace.kept)
        # the user's large arrays it holds read-only (core.trace.freeze) instead of copies:
        # None (copies) unless a transform that is done with the tape when it returns asks
        self.frozen = None
        self.adjoints = None
        self.names = {}
        self._leaves = []
        self.keep_adjoints = keep_adjoints
        # whether any value on the list is another trace's box (a higher-order recording):
        # else its sweep computes on raw values, whatever other threads are tracing
        self.boxed = False

    # -- recording -------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.finish()

    def add_input(self, value, what="value", name=None):
        """Append an input entry for ``value`` (checked: a float or complex value, named
        ``what`` in the error); returns the traced value to compute with."""
        check_differentiable(value, what)
        if isinstance(value, Box):
            self.boxed = True
        node = Node(value, self, self._append(Entry(None, (), None, (), value)))
        if name is not None:
            self.names[node.index] = name
        return node

    def watch(self, value, name=None):
        """Start recording ``value``: returns a traced value to compute with.  A writable
        array is recorded as a copy: writing into ``value`` later changes no derivative."""
        if value.__class__ is np.ndarray:
            value = kept(value)
        node = self.add_input(value, "value", name)
        self._leaves.append(weakref.ref(node))
        return node

    def record(self, prim, vals, kw, parents, ans):
        """Append one entry to the Wengert list; returns the traced result."""
        if isinstance(ans, Box) or any(isinstance(v, Box) for v in vals):
            self.boxed = True
        return Node(ans, self, self._append(Entry(prim, tuple(vals), kw, tuple(parents), ans)))

    def _append(self, e):
        """Append entry ``e``; returns its row.  Threads may record on one tape: the list
        only grows, and ``append`` is atomic, so the row is the old length unless another
        thread appended in between, and then it is found after that length (no lock:
        one comparison on the hot path, ``process`` has it inline)."""
        entries = self.entries
        i = len(entries)
        entries.append(e)
        return i if entries[i] is e else entries.index(e, i)

    def process(self, prim, args, kw):
        vals = []
        parents = []
        nested = False  # boxes of lower levels among the arguments?
        for a in args:
            c = a.__class__
            if c is Node and a._trace is self:
                parents.append((len(vals), a.index))
                a = a.value
                c = a.__class__
            elif c is _ND and prim.reads and (a.flags.writeable or a.base is not None):
                a = kept(a, self.kept, self.frozen)  # the rules read it: the user may write
            if c is not _ND and c not in SCALARS and isinstance(a, Box):
                nested = True
            vals.append(a)
        local = None
        c = vals[0].__class__  # (no local holds vals[0]: _set_in_place counts references)
        if nested:  # the primitive again, one level down
            self.boxed = True
            ans = prim(*vals, **kw) if kw else prim(*vals)
        elif c is _ND and prim.fused is not None \
                and (r := prim.fused(vals[0])) is not None:
            ans, local = r  # value and f'(x) in one pass: the sweep's step is one multiply
        elif not kw and ((c is _ND and vals[0].nbytes >= buffers.LARGE)
                         or (len(vals) > 1 and vals[1].__class__ is _ND
                             and vals[1].nbytes >= buffers.LARGE)) \
                and buffers.large(vals) and (r := buffers.forward(prim, vals)) is not None:
            ans = r  # a large elementwise result, in a cached buffer (core/buffers.py)
        elif prim is index_set and (r := self._set_in_place(args, vals, parents, kw)) is not None:
            ans = r  # x[idx] = v written into x's array: no other entry can see it
        else:
            ans = prim.impl(*vals, **kw) if kw else prim.impl(*vals)
        node = _new(Node)
        node.value = ans
        node._trace = self
        node._view_of = None  # (Node.__init__'s, inline)
        node._writes = 0
        node._views = None
        e = _new(Entry)  # the hot path: Entry(...) without the cost of a Python __init__
        e.prim = prim
        # tuples of raw values are untracked by the cyclic GC once it has seen them (lists
        # stay tracked): every full collection walks the tape, which grows with its length
        e.args = tuple(vals)
        e.kw = kw
        e.parents = tuple(parents)
        e.ans = ans
        e.local = local
        entries = self.entries  # _append, inline
        i = len(entries)
        entries.append(e)
        node.index = i if entries[i] is e else entries.index(e, i)
        return node

    def _set_in_place(self, args, vals, parents, kw):
        """``index_set(x, v, idx)`` written into x's own array, returned; None to copy.

        A loop writing one entry at a time (``out[n, f, i, j] = ...``) would copy the whole
        array per write.  The write may go into x's array when nothing but the write
        itself can see its old values: the box written to is the one whose write is being
        recorded (``self.rebinding``: the writer makes it stand for the result, so no box
        holds the old values: an ``index_set`` of a box that stays what it was, such as
        ``np.zeros(S, like=x)``'s of x, copies), x is the result of an earlier
        ``index_set`` on this tape (whose rules read no values, only x's shape), and the
        only references to the array are that entry's result, the box written to and this
        call's own (counted:
        any other entry that used x, a view of it, or a user's variable holding it adds
        one, and then x is copied, as the row's impl does)."""
        if not parents or parents[0][0] != 0 or args[0] is not self.rebinding \
                or not buffers.ENABLED:
            return None
        x = vals[0]
        producer = self.entries[parents[0][1]]
        if x.__class__ is not np.ndarray or producer.prim is not index_set \
                or producer.ans is not x or args[0].value is not x \
                or not buffers.free(x, _SET_REFS):
            return None
        x[kw["idx"]] = vals[1]
        # x's old values are gone: the two entries that named them (the one that made x,
        # and this one's argument) keep x's shape and dtype, all their rules read
        producer.ans = vals[0] = _overwritten(x.shape, x.dtype)
        return x

    def __del__(self):
        if self.frozen:
            thaw(self.frozen)

    def done(self):
        """The tape will not be swept again: the user's arrays it made read-only
        (``core.trace.freeze``) are writable again (else when the tape is collected)."""
        if self.frozen:
            thaw(self.frozen)

    # -- forward and reverse over the list ---------------------------------------
    def replay_tangents(self, seeds):
        """Push tangents forward through the list, reusing every recorded value (a JVP
        without re-running the function); ``seeds`` maps input entries to tangents.
        Returns one tangent per entry (``None``: zero)."""
        tans = [None] * len(self.entries)
        for i, t in seeds.items():
            tans[i] = t
        for i, e in enumerate(self.entries):
            if e.prim is None:
                continue
            ts = [None] * len(e.args)
            for argnum, j in e.parents:
                ts[argnum] = tans[j]
            if any(t is not None for t in ts):
                tans[i] = push_tangents(e.prim, ts, e.ans, e.args, e.kw)
        return tans

    def sweep(self, seeds, nb=0, once=False):
        """Walk the list backwards from the seeded entries; returns every entry's adjoint.

        ``seeds`` pairs entry indices with their cotangents; ``nb`` is the number of
        leading batch axes the cotangents carry (``jacrev`` seeds k rows at once).
        ``once``: the list is swept only this once (a transform's tape), so each entry,
        its values and its f'(x) are dropped as soon as it is swept.

        A first-order sweep (nothing traced) allocates like a framework (core/buffers.py):
        large cotangents are accumulated in place when nobody else holds them, and the
        elementwise rows write their cotangents into a dead buffer (f'(x)'s own, the
        cotangent's, the dead result's, or a cached one) instead of a fresh array.
        """
        entries = self.entries
        if len(seeds) == 1:  # one output (grad's)
            (n, c), = seeds
            cts = [None] * (n + 1)
            cts[n] = c
            n += 1
            boxed = isinstance(c, Box)
        else:
            n = 1 + max(i for i, _ in seeds)
            cts = [None] * n
            for i, c in seeds:
                accumulate(cts, i, c)
            boxed = any(isinstance(c, Box) for _, c in seeds)
        c = None
        keep = self.keep_adjoints
        once = once and not keep
        # raw values only (no box on the list or among the seeds): nothing can record this
        # sweep, so its first-order shortcuts apply (another thread's trace is not this one's)
        raw = not self.boxed and not boxed
        fast = raw and buffers.ENABLED and not nb
        merge = _accumulate_in_place if fast else accumulate
        if once:
            del entries[n:]
        for i in range(n - 1, -1, -1):
            g = cts[i]
            e = entries[i]
            if once:
                entries[i] = None  # swept (or never reached): its values go now
            if g is None:
                continue
            p = e.prim
            if g.__class__ in LAZY:  # kept slice by slice (slices.py)
                if p is index_set and g.__class__ is Masked and not keep \
                        and (cs := split_index_set(e, g, _v_part(e, nb, raw))) is not None:
                    cts[i] = None
                    _merge_all(cts, e.parents, cs, merge)
                    cs = None
                    continue
                g = cts[i] = dense(g)
            if p is None:
                continue
            if not keep:
                cts[i] = None
            if p is getitem and len(e.parents) == 1:  # a slice: into x's cotangent
                j = e.parents[0][1]
                bc = cts[j].__class__  # (no local holds cts[j]: the helpers count references)
                if bc is _NONE or bc in LAZY:
                    # Blocks as many as their axis is long (disjoint, each one wide at
                    # least) cover it: add_block could only refuse, so it is not asked
                    if not (bc is Blocks and len(cts[j].blocks) >= cts[j].shape[cts[j].axis]) \
                            and add_block(cts, j, e, g):
                        continue
                    if fast and cts[j].__class__ is Blocks \
                            and _getitem_into_blocks(cts[j], e, g):
                        continue
                    if not raw and not nb and cts[j].__class__ is not _NONE \
                            and add_dual_slice(cts, j, e, g):
                        continue  # forward over reverse: overlapping slices, in place
                elif fast and g.__class__ is np.ndarray and _getitem_into(cts, j, e, g):
                    continue
                elif not raw and not nb and add_dual_slice(cts, j, e, g):
                    continue
            elif p is index_set and not keep:
                if fast and entry_into(cts, e, g):
                    continue
                if not _one_element(e) \
                        and (cs := split_index_set(e, g, _v_part(e, nb, raw))) is not None:
                    _merge_all(cts, e.parents, cs, merge)
                    cs = None
                    continue
                if fast and g.__class__ is np.ndarray and _index_set_into(cts, e, g, merge):
                    continue
            elif p is sum_ and fast and not keep and sum_of_product(cts, entries, i, e, g, merge):
                continue
            if not (fast and g.__class__ is np.ndarray and g.nbytes >= buffers.LARGE
                    and e.local is None and buffers.pays(g)):
                quick = _QUICK.get(p) if fast and e.local is None else None
                for argnum, j in e.parents:
                    if quick is None or (c := quick(e, argnum, g)) is None:
                        c = cotangent(e, argnum, g, nb, raw, not keep)
                    prev = cts[j]
                    if prev is None:  # the first contribution: no call (the hot path)
                        cts[j] = c
                    elif prev.__class__ in LAZY:
                        merge_lazy(cts, j, c, merge)
                    else:
                        prev = None
                        merge(cts, j, c)
                    c = prev = None
                continue
            last = len(e.parents) - 1  # a large array: its cotangents into free buffers
            for k, (argnum, j) in enumerate(e.parents):
                c = _in_place(e, argnum, g, k == last and not keep, once and k == last)
                if c is None:
                    c = cotangent(e, argnum, g, nb, raw, not keep)
                else:
                    c = fit(c, e.args[argnum], e.prim.bcast, nb)
                if cts[j].__class__ in LAZY:
                    merge_lazy(cts, j, c, merge)
                else:
                    merge(cts, j, c)
                c = None
        if keep:
            self.adjoints = cts
        return cts

    def gradient(self, target, sources, output_gradient=None):
        """d target / d sources, for one watched value or a list/tuple of them.

        A source the target does not depend on gets zeros of its shape.
        """
        target = unlift(target)
        if not isinstance(target, Node) or target._trace is not self:
            raise TypeError("tape.gradient: 'target' was not computed from this tape's "
                            "watched values")
        g = seed_cotangent(target.value, output_gradient, "output_gradient")
        cts = self.sweep([(target.index, g)])
        single = isinstance(sources, Node)
        srcs = [sources] if single else list(sources)
        out = []
        for k, s in enumerate(srcs):
            if not isinstance(s, Node) or s._trace is not self \
                    or self.entries[s.index].prim is not None:
                raise TypeError(f"tape.gradient: source {k} is not a value watched by this tape")
            c = cts[s.index] if s.index < len(cts) else None
            out.append(np.zeros_like(s.value) if c is None else c)
        out = buffers.distinct(out, (g,))  # arrays of their own: an add gives both sides one
        return out[0] if single else type(sources)(out)

    def backward(self, target, cotangent=None):
        target = unlift(target)
        g = seed_cotangent(target.value, cotangent, "cotangent")
        cts = self.sweep([(target.index, g)])
        given = [g]  # each .grad an array of its own
        for ref in self._leaves:
            leaf = ref()
            if leaf is not None and leaf.index < len(cts) and cts[leaf.index] is not None:
                c = buffers.distinct([cts[leaf.index]], given)[0]
                given.append(c)
                with self._lock:  # two threads' backward() add both of their parts
                    leaf.grad = c if leaf.grad is None else leaf.grad + c

    def __len__(self):
        return len(self.entries)

    # __str__ (the evaluation trace as a table) is attached by teach/tracetable.py
