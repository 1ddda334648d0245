"""Vectorising map: ``dg.vmap(f)`` runs ``f`` once on a whole batch, as a loop would.

``vmap`` is a trace like the tape and dual numbers.  Each batched argument is boxed with
the axis its batch lives on (a ``BatchBox``: ``value`` one level down, ``bdim`` an int)
and every primitive applied to a box runs its row's batching rule (``Primitive.batch``),
written with primitives, so batches of derivatives and derivatives of batches both work
and nest by level with every other transform.  Elementwise rows share one rule
(``primitives.align_batched``); a row without a rule runs once per example in a Python
loop, with a one-time ``BatchingFallbackWarning``: slow, never wrong.

    >>> import numpy as np, dualgrad as dg
    >>> dg.vmap(lambda x: x @ x)(np.arange(6.0).reshape(3, 2)).tolist()
    [1.0, 13.0, 41.0]
    >>> loss = lambda w, x: np.sum(w * x) ** 2      # per-example gradients:
    >>> xs = np.array([[1.0, 0.0], [0.0, 3.0]])
    >>> dg.vmap(dg.grad(loss), in_axes=(None, 0))(np.array([1.0, 2.0]), xs).tolist()
    [[2.0, 0.0], [0.0, 36.0]]

Derivative rules read raw values for their masks (``x > 0`` for relu's derivative): under
``vmap`` ``unbox`` hands them the batch as a box, and comparisons and the other functions
without a derivative (``np.sign``, ``np.isfinite``, ``np.argmax``...) are batched too.
``np.any``/``np.all`` of a whole batched value answer for the whole batch; ``bool()`` of
one is an error (one answer per example: use ``np.where``).
"""

import functools
import inspect
import operator
import threading
import warnings

import numpy as np

from .. import rules as P
from ..core.trace import Box, Trace, unbox
from ..core.tree import LEAF, tree_flatten, tree_map, tree_unflatten
from ..core.validate import dtype_of
from ..numpy.box import ArrayBox
from ..numpy.dispatch import NONDIFF_FUNCS, NONDIFF_UFUNCS
from ..numpy.dispatch import array_function as _array_function
from ..numpy.dispatch import array_ufunc as _array_ufunc
from ..numpy.objects import lift_out
from ..numpy.preallocated import call
from . import custom
from .custom import custom_jvp, custom_vjp


class BatchingFallbackWarning(RuntimeWarning):
    """A primitive without a batching rule ran once per example (correct, but slow)."""


_WARNED = set()


class BatchTrace(Trace):
    """One ``vmap`` in progress over a batch of ``size``."""

    __slots__ = ("size",)

    def __init__(self, size):
        super().__init__()
        self.size = size

    # jvp's batching rule (JAX's): tangents batched over unbatched primals are forward
    # mode's batched tangents (transforms.jvp asks through these two methods)
    def stacked(self, t, like):
        """Tangent ``t`` (of primal ``like``) with this batch as its leading axis."""
        if isinstance(t, BatchBox) and t._trace is self:
            return _move(t.value, t.bdim, 0)
        return P.broadcast_to(t, (self.size,) + P.shape_of(like))

    def unstacked(self, t):
        """A tangent with the batch leading, as this trace's value."""
        return BatchBox._make(t, 0, self)

    def process(self, prim, args, kw):
        vals, dims = list(args), [None] * len(args)
        for i, a in enumerate(args):
            if a.__class__ is BatchBox and a._trace is self:
                vals[i], dims[i] = a.value, a.bdim
        rule = prim.batch
        if kw and _holds(kw, self):
            if rule is not None:
                vals, dims, kw = _positional(prim, vals, dims, kw, self)
            if _holds(kw, self):  # a batched index: one call per example
                return BatchBox._make(*_loop(prim, vals, dims, kw, self), self)
        if rule is not None:
            if len(vals) > 1 and dims[-1] is None and isinstance(vals[-1], _PARAMS):
                vals, dims, kw = _keywords(prim, vals, dims, kw)
            res = rule(vals, dims, **kw) if kw else rule(vals, dims)
            # NotImplemented: the rule does not cover these batch axes (a batched index)
            ans, d = _loop(prim, vals, dims, kw, self) if res is NotImplemented else res
        elif _elementwise(prim):
            if not _lined_up(vals, dims):
                vals = P.align_batched(vals, dims)
            ans, d = prim(*vals, **kw) if kw else prim(*vals), 0
        else:
            ans, d = _loop(prim, vals, dims, kw, self)
        return ans if d is None else BatchBox._make(ans, d, self)

    def read(self, box):
        """``unbox`` of a batched value: still a box of this batch (its numbers differ per
        example), with the levels below stripped."""
        v = box.value
        return box if not isinstance(v, Box) else BatchBox._make(unbox(v), box.bdim, self)

    def compare(self, op, a, b):  # x > y etc. in rules and user code: batched booleans
        return _nondiff(op, (a, b), {})

    def guard(self, how, box):
        raise TypeError(f"dg.vmap: {how}() of a batched value has one answer per example; "
                        "write the branch with np.where(cond, a, b), or decide it outside "
                        "vmap")

    def rebox(self, box, value):  # stop_gradient: the batch is kept, derivatives go
        return BatchBox._make(value, box.bdim, self)

    def batch_custom(self, fn, args):
        """A custom_jvp/custom_vjp function of batched arguments (transforms/custom.py)."""
        vals = [a.value if isinstance(a, BatchBox) and a._trace is self else a for a in args]
        dims = [a.bdim if isinstance(a, BatchBox) and a._trace is self else None for a in args]
        return tree_map(lambda o: BatchBox._make(o, 0, self), _custom(fn, vals, dims)[0])


def _custom(fn, vals, dims):
    """The same kind of custom function of the whole batch, its rules batched (JAX's
    semantics), applied to the batch: ``(ans, 0)``."""
    dims = tuple(dims)
    size = P.batch_size(vals, dims)
    over = functools.partial(vmap, axis_size=size)
    if isinstance(fn, custom_jvp):
        g = custom_jvp(over(fn.fun, in_axes=dims))
        g.defjvp(over(fn.rule, in_axes=(dims, dims)))
    else:
        g = custom_vjp(over(fn.fun, in_axes=dims))
        bwd = over(fn.bwd, in_axes=(0, 0))
        g.defvjp(over(fn.fwd, in_axes=dims),
                 lambda res, ct: tuple(_unbatch(c, d) for c, d in zip(bwd(res, ct), dims)))
    return g(*vals), 0


custom.BATCH[0] = _custom


_PARAMS = (tuple, list, str, bool, type(None), np.dtype)
_NAMES = {}
_ELEMENTWISE = {}


def _elementwise(prim):
    """Whether ``prim`` is elementwise (numpy broadcasting): the generic rule is its."""
    e = _ELEMENTWISE.get(prim)
    if e is None:
        e = _ELEMENTWISE[prim] = bool(prim.bcast or prim is P.astype or (
            prim.ufunc is not None and prim.ufunc.signature is None))
    return e


def _lined_up(vals, dims):
    """True when numpy's broadcasting already lines the examples up: every batched value
    has its batch axis in front and the same rank, above every unbatched one's (what
    ``align_batched`` would leave as it is)."""
    top = nd = None
    for v, d in zip(vals, dims):
        r = v.ndim if v.__class__ is np.ndarray else P.ndim_of(v)
        if d is None:
            if nd is None or r > nd:
                nd = r
        elif d or (top is not None and r != top):
            return False
        else:
            top = r
    return top is not None and (nd is None or nd < top)


def _keywords(prim, vals, dims, kw):
    """Parameters passed by position (``reshape(x, shape)``, ``getitem(x, idx)``) as the
    keywords the batching rules take: trailing unbatched tuples, strings, None..."""
    k = len(vals)
    while k > 1 and dims[k - 1] is None and isinstance(vals[k - 1], _PARAMS):
        k -= 1
    if k == len(vals):
        return vals, dims, kw
    return vals[:k], dims[:k], dict(kw, **dict(zip(_names(prim)[k:], vals[k:])))


def _names(prim):
    names = _NAMES.get(prim)
    if names is None:
        names = _NAMES[prim] = list(inspect.signature(prim.impl).parameters)
    return names


def _positional(prim, vals, dims, kw, trace):
    """Batched keyword arguments (``orth_complement(u, basis=b)``) passed by position, so
    the rule sees their batch axes."""
    kw = dict(kw)
    for name in _names(prim)[len(vals):]:
        x = kw.get(name)
        if not (isinstance(x, BatchBox) and x._trace is trace):
            break
        del kw[name]
        vals, dims = vals + [x.value], dims + [x.bdim]
    return vals, dims, kw


def _unbatch(c, d):
    """A batched cotangent (batch in front) for an argument batched at ``d`` (None: summed
    over the batch, as the argument was shared by every example)."""
    if c is None:
        return None
    if d is None:
        return P.sum_(c, axis=(-P.ndim_of(c),), keepdims=False)
    return _move(c, 0, d)


def _move(x, src, dst):
    if src == dst:
        return x
    order = [i for i in range(P.ndim_of(x)) if i != src]
    order.insert(dst, src)
    return P.transpose(x, axes=tuple(order))


class BatchBox(ArrayBox):
    """A batched value: ``value`` holds every example, stacked along axis ``bdim``.
    Its ``shape`` and ``ndim`` are one example's."""

    __slots__ = ("bdim",)

    @classmethod
    def _make(cls, value, bdim, trace):
        b = cls.__new__(cls)
        b.value, b.bdim, b._trace = value, bdim, trace
        return b

    @property
    def shape(self):
        v, d = self.value, self.bdim
        s = v.shape if v.__class__ is np.ndarray else P.shape_of(v)
        return s[1:] if not d else s[:d] + s[d + 1:]

    @shape.setter
    def shape(self, shape):  # x.shape = S: one example's, a rebinding as ArrayBox's
        ArrayBox.shape.fset(self, shape)

    @property
    def ndim(self):
        v = self.value
        return (v.ndim if v.__class__ is np.ndarray else P.ndim_of(v)) - 1

    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))
    dtype = property(lambda self: dtype_of(self.value))

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d batched value (one number per example)")
        return self.shape[0]

    def __format__(self, spec):
        return format(unbox(self.value), spec)

    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        if method == "__call__" and ufunc in NONDIFF_UFUNCS:
            return _nondiff(ufunc, inputs, kw)
        return _array_ufunc(self, ufunc, method, *inputs, **kw)

    # a batch of masks or integers: numpy's operators, per example (np.nanmean's ~mask)
    __invert__ = lambda self: np.invert(self)  # noqa: E731
    __and__ = lambda self, o: np.bitwise_and(self, o)  # noqa: E731
    __rand__ = lambda self, o: np.bitwise_and(o, self)  # noqa: E731
    __or__ = lambda self, o: np.bitwise_or(self, o)  # noqa: E731
    __ror__ = lambda self, o: np.bitwise_or(o, self)  # noqa: E731
    __xor__ = lambda self, o: np.bitwise_xor(self, o)  # noqa: E731
    __rxor__ = lambda self, o: np.bitwise_xor(o, self)  # noqa: E731

    def __array_function__(self, func, types, args, kwargs):
        if func in _WHOLE and kwargs.get("axis") is None and len(args) == 1:
            return func(unbox(self.value))  # rules' "is there any ... at all?"
        if func in _META:
            return func(*[np.empty(a.shape, a.dtype) if isinstance(a, BatchBox) else a
                          for a in args], **kwargs)
        if func in NONDIFF_FUNCS:
            return _nondiff_loop(func, args, kwargs)
        running = _running()
        if func in running and _raw_only((args, kwargs)):
            # np.linalg.svd(unbox(a)) inside dualgrad's own svd: raw numbers per example
            return _nondiff_loop(func, args, kwargs)
        running[func] = running.get(func, 0) + 1
        try:
            return _array_function(self, func, types, args, kwargs)
        finally:
            running[func] -= 1
            if not running[func]:
                del running[func]


_THREAD = threading.local()


def _running():
    """The numpy functions this thread is computing on batched values now (a re-entry
    from inside one of them is dualgrad's own raw computation); per thread."""
    r = getattr(_THREAD, "running", None)
    if r is None:
        r = _THREAD.running = {}
    return r


def _raw_only(tree):
    """True if every traced value in ``tree`` is a batch of raw numbers (no derivative
    level anywhere under it)."""
    for x in tree_flatten(tree)[0]:
        while isinstance(x, BatchBox):
            x = x.value
        if isinstance(x, Box):
            return False
    return True


_WHOLE = {np.any, np.all}
_META = {np.shape, np.ndim, np.size, np.result_type, np.iscomplexobj, np.isrealobj,
         np.zeros_like, np.ones_like, np.empty_like, np.min_scalar_type, np.can_cast}
for _name, _op in dict(__lt__=operator.lt, __le__=operator.le, __gt__=operator.gt,
                       __ge__=operator.ge, __eq__=operator.eq, __ne__=operator.ne).items():
    setattr(BatchBox, _name, (lambda op: lambda self, other: _nondiff(op, (self, other), {}))(_op))
BatchBox.__hash__ = ArrayBox.__hash__  # a number by value: per example, refused as bool()


def _top_batch(xs):
    top = None
    for x in xs:
        if isinstance(x, BatchBox) and (top is None or x._trace.level > top.level):
            top = x._trace
    return top


def _nondiff(fn, inputs, kw):
    """An elementwise function without a derivative (a comparison, np.sign, np.floor...)
    of batched values: computed on the whole batch, batched like any elementwise row."""
    inputs = [unbox(x) for x in inputs]
    top = _top_batch(inputs)
    if top is None:
        return fn(*inputs, **kw)
    vals = [x.value if isinstance(x, BatchBox) and x._trace is top else x for x in inputs]
    dims = [x.bdim if isinstance(x, BatchBox) and x._trace is top else None for x in inputs]
    return BatchBox._make(fn(*P.align_batched(vals, dims), **kw), 0, top)


def _nondiff_loop(func, args, kwargs):
    """Any other numpy function without a derivative (np.argmax, np.round...): once per
    example, stacked."""
    args, kwargs = tree_map(unbox, (args, kwargs))
    top = _top_batch(tree_flatten((args, kwargs))[0])
    outs = [func(*a, **k) for a, k in (_example((args, kwargs), top, i)
                                       for i in range(top.size))]
    if isinstance(outs[0], tuple):  # (U, S, Vh), a namedtuple: each part stacked
        parts = [BatchBox._make(np.stack(p), 0, top) for p in zip(*outs)]
        return type(outs[0])(*parts) if hasattr(outs[0], "_fields") else tuple(parts)
    return BatchBox._make(np.stack(outs), 0, top)


def _example(tree, trace, i):
    """``tree`` with each value batched by ``trace`` replaced by its example ``i``."""
    def take(x):
        if isinstance(x, BatchBox) and x._trace is trace:
            return P.getitem(x.value, idx=(slice(None),) * x.bdim + (i,))
        return x
    return tree_map(take, tree)


_PLAIN = frozenset((int, float, bool, str, type(None)))


def _holds(kw, trace):
    """Whether a keyword argument holds a value batched by ``trace`` (the parameters'
    usual ints, strings and tuples of ints are passed over without flattening)."""
    for x in kw.values():
        c = x.__class__
        if c in _PLAIN or (c is tuple and all(y.__class__ in _PLAIN for y in x)):
            continue
        if any(isinstance(y, BatchBox) and y._trace is trace for y in tree_flatten(x)[0]):
            return True
    return False


def _loop(prim, vals, dims, kw, trace):
    """The fallback: ``prim`` once per example, the answers stacked along a new axis 0."""
    if prim.name not in _WARNED:
        _WARNED.add(prim.name)
        warnings.warn(f"dg.vmap: primitive {prim.name!r} has no batching rule (or got a "
                      "batched index); it runs once per example in a Python loop, which is "
                      "correct but slow", BatchingFallbackWarning, stacklevel=4)
    outs = []
    for i in range(trace.size):
        args = [v if d is None else P.getitem(v, idx=(slice(None),) * d + (i,))
                for v, d in zip(vals, dims)]
        outs.append(prim(*args, **_example(kw, trace, i)))
    nd = P.ndim_of(outs[0])
    return P.concatenate(*[P.reshape(o, shape=(1,) + P.shape_of(o)) for o in outs],
                         axis=-nd - 1), 0


# ---------------------------------------------------------------------------
# in_axes / out_axes: an int, None, or a pytree prefix of them
# ---------------------------------------------------------------------------

def _is_axis(a):
    return isinstance(a, (int, np.integer)) and not isinstance(a, bool)


def _check_spec(spec, what, path=""):
    """A clear, early error for anything but ints, None and containers of them."""
    if spec is None or _is_axis(spec):
        return
    if isinstance(spec, (tuple, list)):
        for i, s in enumerate(spec):
            _check_spec(s, what, f"{path}[{i}]")
    elif isinstance(spec, dict):
        for k, s in spec.items():
            _check_spec(s, what, f"{path}[{k!r}]")
    else:
        raise TypeError(f"vmap: {what}{path} must be an int, None, or a tuple/list/dict of "
                        f"them matching the arguments' structure, got {spec!r}")


def _leaf_axes(spec, d, path, what):
    """(path, axis) for each leaf of the treedef ``d`` under the prefix ``spec``."""
    kind = d[0]
    if spec is None or _is_axis(spec):
        if kind == LEAF:
            return [(path, spec)]
        if kind is None:
            return []
        children = d[2]
        keys = d[1] if kind is dict else range(len(children))
        return [x for k, c in zip(keys, children)
                for x in _leaf_axes(spec, c, f"{path}[{k!r}]", what)]
    if isinstance(spec, (tuple, list)) and kind in (tuple, list, "namedtuple") \
            and len(spec) == len(d[2]):
        return [x for i, (s, c) in enumerate(zip(spec, d[2]))
                for x in _leaf_axes(s, c, f"{path}[{i}]", what)]
    if isinstance(spec, dict) and kind is dict and sorted(spec) == list(d[1]):
        return [x for k, c in zip(d[1], d[2]) for x in _leaf_axes(spec[k], c, f"{path}[{k!r}]",
                                                                   what)]
    got = {LEAF: "an array", None: "None", dict: f"a dict with keys {d[1]}"}.get(
        kind, f"a container of {len(d[2])}" if len(d) > 2 else "a pytree node")
    raise ValueError(f"vmap: {what} gives {spec!r} for {path or 'the value'}, which is {got}; "
                     "a tuple/list/dict in the axes must match the structure it maps over")


def _in_axes(in_axes, args, kwargs):
    """Each argument leaf with the name for messages and its (non-negative) batch axis."""
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if isinstance(in_axes, tuple) and len(in_axes) != len(args):
        raise ValueError(f"vmap: in_axes has {len(in_axes)} entries, but the function was "
                         f"called with {len(args)} positional argument(s); give one entry "
                         "per argument, or one int/None for all")
    if isinstance(in_axes, dict):
        raise TypeError("vmap: in_axes must be an int, None or a tuple (one entry per "
                        "positional argument), got a dict; wrap it in a tuple: (in_axes,)")
    leaves, tdef = tree_flatten(tuple(args))
    pairs = _leaf_axes(in_axes, tdef, "", "in_axes")
    names = [f"argument {p[1:p.index(']')]}{p[p.index(']') + 1:]}" for p, _ in pairs]
    kl, kdef = tree_flatten(kwargs)
    pairs += _leaf_axes(0, kdef, "", "in_axes")  # keyword arguments: always axis 0 (JAX)
    names += [f"keyword argument {p[1:]}" for p, _ in pairs[len(names):]]
    out = []
    for leaf, (_, ax), name in zip(leaves + kl, pairs, names):
        if ax is not None:
            r = P.ndim_of(leaf)
            if not -r <= ax < r:
                raise ValueError(f"vmap: in_axes asks for axis {ax} of {name}, which has shape "
                                 f"{P.shape_of(leaf)}; expected an axis in [-{r}, {r})"
                                 if r else f"vmap: in_axes asks for axis {ax} of {name}, a "
                                 "scalar; give None for an argument that is not batched")
            ax = int(ax) % r
        out.append((leaf, ax, name))
    return out, tdef, kdef, len(leaves)


_ARRAYS = frozenset((np.ndarray, float, int, np.float64, np.float32))


def _flat_args(in_axes, args, axis_size):
    """``(trace, [(arg, axis)...])`` for the common call, without flattening pytrees:
    each argument an array, a number or a traced value, ``in_axes`` an int, None or one
    per argument, the sizes agreeing; None for anything else (``_in_axes`` handles it)."""
    axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
    if len(axes) != len(args):
        return None
    size, out = axis_size, []
    for a, ax in zip(args, axes):
        if a.__class__ not in _ARRAYS and not isinstance(a, Box):
            return None
        if ax is not None:
            s = P.shape_of(a)
            if not -len(s) <= ax < len(s):
                return None
            ax = int(ax) % len(s)
            if size is None:
                size = s[ax]
            elif s[ax] != size:
                return None
        out.append((a, ax))
    return None if size is None else (BatchTrace(size), out)


def _size(entries, axis_size):
    size, first = axis_size, None
    for leaf, ax, name in entries:
        if ax is None:
            continue
        n = P.shape_of(leaf)[ax]
        if size is None:
            size, first = n, (name, ax)
        elif n != size:
            was = (f"{first[0]} has size {size} along axis {first[1]}" if first
                   else f"axis_size is {size}")
            raise ValueError(f"vmap got inconsistent sizes for the mapped axes: {was}, but "
                             f"{name} has size {n} along axis {ax}")
    if size is None:
        raise ValueError("vmap: no argument is batched (every in_axes entry is None); "
                         "pass axis_size=n to say how many examples there are")
    return size


def _out_leaf(x, ax, trace, path):
    batched = isinstance(x, BatchBox) and x._trace is trace
    if ax is None:
        if batched:
            raise ValueError(f"vmap: out_axes is None for the output {path or ''}, but it "
                             "depends on the batched inputs; give it an axis")
        return x
    v = x.value if batched else x
    r = P.ndim_of(v) + (not batched)
    if not -r <= ax < r:
        raise ValueError(f"vmap: out_axes asks for axis {ax} of the output {path}, which has "
                         f"rank {r} with the batch axis; expected an axis in [-{r}, {r})")
    ax %= r
    if batched:
        return _move(v, x.bdim, ax)
    s = P.shape_of(v)
    out = P.broadcast_to(P.reshape(v, shape=s[:ax] + (1,) + s[ax:]),
                         shape=s[:ax] + (trace.size,) + s[ax:])
    return np.array(out) if out.__class__ is np.ndarray else out  # writable, as JAX's


def vmap(f, in_axes=0, out_axes=0, axis_size=None):
    """``f`` mapped over a batch axis of its arguments, without a Python loop.

    ``in_axes``: for each positional argument the axis its batch is on (negative counts
    from the end), ``None`` for an argument every example shares, or a pytree prefix of
    them (an int or ``None`` for all arguments); keyword arguments are batched along
    axis 0.  ``out_axes``: where the batch axis goes in each output.  ``axis_size``: the
    batch size, needed when no argument is batched.  JAX's semantics.

    >>> import numpy as np, dualgrad as dg
    >>> dg.vmap(np.outer, in_axes=(0, None))(np.eye(2), np.arange(2.0)).tolist()
    [[[0.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]]
    """
    _check_spec(in_axes, "in_axes")
    _check_spec(out_axes, "out_axes")
    if axis_size is not None and (not _is_axis(axis_size) or axis_size < 1):
        raise ValueError(f"vmap: axis_size must be a positive int, got {axis_size!r}")

    flat = in_axes is None or _is_axis(in_axes) or (
        isinstance(in_axes, (tuple, list)) and all(a is None or _is_axis(a) for a in in_axes))

    @functools.wraps(f)
    def vmapped(*args, **kwargs):
        boxed = _flat_args(in_axes, args, axis_size) if flat and not kwargs else None
        if boxed is None:  # pytrees, keyword arguments, or an error to explain
            entries, tdef, kdef, npos = _in_axes(in_axes, args, kwargs)
            trace = BatchTrace(_size(entries, axis_size))
            boxed = [leaf if ax is None else BatchBox._make(leaf, ax, trace)
                     for leaf, ax, _ in entries]
            boxed = tree_unflatten(tdef, boxed[:npos]), tree_unflatten(kdef, boxed[npos:])
        else:
            trace = boxed[0]
            boxed = [a if ax is None else BatchBox._make(a, ax, trace) for a, ax in boxed[1]], {}
        try:
            out = call(f, boxed[0], boxed[1])
            out = out if out.__class__ is BatchBox else tree_map(lift_out, out)
        finally:
            trace.finish()
        if out.__class__ is BatchBox and _is_axis(out_axes):  # the common case: one array
            return _out_leaf(out, out_axes, trace, "")
        leaves, odef = tree_flatten(out)
        spec = tuple(out_axes) if isinstance(out_axes, list) else out_axes
        pairs = _leaf_axes(spec, odef, "", "out_axes")
        return tree_unflatten(odef, [_out_leaf(x, ax, trace, p)
                                     for x, (p, ax) in zip(leaves, pairs)])
    return vmapped
