"""Primitives, boxes and traces: the mechanism both modes share.

A *primitive* is a function on raw arrays together with its derivative rules
(``jvp`` for forward mode, ``vjp`` for reverse mode), registered once in
``primitives.py``.  A *trace* is one derivative in progress: a tape being
recorded (reverse mode, ``reverse.py``) or a perturbation being pushed forward
(forward mode, ``forward.py``).  A *box* is a value that belongs to a trace.

Every trace gets a level, larger for traces started later.  Calling a
primitive finds the argument boxed at the highest level, lets that trace
unbox it, apply the primitive one level down (recursively), and box the
result again.  Boxes of lower levels pass through as ordinary constants.
This is what keeps nested derivatives apart::

    grad(lambda x: x * grad(lambda y: x + y)(1.0))(1.0)

Inside the inner ``grad`` the value ``x`` is a box of the *outer* trace, so the
inner trace treats it as a constant: d/dy (x + y) = 1, and the answer is 1,
not the 2 an engine that mixes the two perturbations would give.
"""

import itertools
import threading

import numpy as np

from . import buffers as _buffers
from .tree import leaf_class

_next_level = itertools.count(1)  # next() of a count is atomic: no two traces share a level
# How many traces are recording now, in all threads; 0 means every value in flight is raw.
# One count for the process, not one per thread: a Tape may be shared by threads, and a box
# made in one thread may be used in another.  ``+= 1`` is not atomic, so it changes under
# a lock (traces start and stop rarely; the hot path only reads it).
_active = [0]
_active_lock = threading.Lock()


def tracing():
    """True while some transform is recording (or a hand-made Dual exists)."""
    return _active[0] > 0


class Trace:
    """One derivative in progress.  Subclasses implement ``process``."""

    # ``rebinding``: the box whose write (``y[i] = v``) is being recorded, which the writer
    # makes stand for the result right after (inplace.py): only then may a tape write into
    # its array (reverse.py ``Tape._set_in_place``)
    __slots__ = ("level", "active", "rebinding", "__weakref__")
    read = None  # a graph trace (jit.py) hands unbox() a value that notes reads of it
    hold = release = None  # a trace that records while its values live (forward.RootTrace)

    def __init__(self, level=None):
        self.level = next(_next_level) if level is None else level
        self.active = True
        self.rebinding = None
        with _active_lock:
            _active[0] += 1

    def finish(self):
        """Stop recording: boxes of this trace used later are leaked tracers."""
        with _active_lock:
            if self.active:
                self.active = False
                _active[0] -= 1

    def process(self, prim, args, kw):  # pragma: no cover - abstract
        raise NotImplementedError

    def leaked(self, prim):
        raise RuntimeError(
            f"a traced value was used in {prim.name!r} after the transform that created it "
            f"({type(self).__name__}, level {self.level}) returned; this is a leaked tracer. "
            "Return it from the function instead of storing it, or use dg.stop_gradient.")


class Box:
    """A value traced by ``trace``; ``value`` lives one level down.

    Operators, indexing and the numpy protocols are attached in ``numpy_api.py``.
    """

    __slots__ = ("value", "_trace")
    __array_priority__ = 1000.0

    def __init__(self, value, trace):
        self.value = value
        self._trace = trace

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        leaf_class(cls)  # a traced value is a leaf of every pytree


class Primitive:
    """A function on raw arrays with its derivative rules.

    ``jvp[i](t, ans, *args, **kw)`` returns the tangent contribution of argument
    ``i`` given its tangent ``t``; ``vjp[i](g, ans, *args, **kw)`` returns the
    cotangent of argument ``i`` given the output cotangent ``g``.  A ``None``
    rule means "not differentiable in this argument" and raises if needed.
    ``jvp`` may instead be a single function ``f(tangents, ans, *args, **kw)``
    taking all tangents at once (``None`` for a zero tangent).

    Rules are written with primitives, so they are differentiable themselves.
    Tangents and cotangents may carry extra leading (batch) axes:
    ``ndim(t) - ndim(x)`` of them; every rule must respect that.
    """

    __slots__ = ("name", "impl", "jvp", "vjp", "bcast", "ufunc", "forms", "fused",
                 "domain", "smooth", "scalar", "vector", "batch", "dtype", "reads")

    def __init__(self, name, impl, jvp=None, vjp=None, bcast=False, ufunc=None, forms=None,
                 fused=None, domain="real", smooth=True, scalar=None, vector=None,
                 batch=None, dtype=None):
        self.name, self.impl, self.jvp, self.vjp = name, impl, jvp, vjp
        self.bcast = bcast        # elementwise with numpy broadcasting
        self.ufunc = ufunc        # the numpy ufunc an elementwise row computes
        # an elementwise row's VJP, per argument, as a form: "id" (g), "neg" (-g),
        # ("mul", f) (g * f(ans, *args)) or ("div", f) (g / f(ans, *args)).  The row's
        # ``vjp`` rules are built from them (rules/table.py ``vjp_of``) and the first-order
        # sweep runs them in place (transforms/reverse.py); kept with the rules they built,
        # so replacing the rules switches the in-place path off
        self.forms = None if forms is None else (forms, vjp)
        # whether the rules may read an argument's values (False: an elementwise row whose
        # every form is "id" or "neg", add and subtract): a tape keeps a copy of a plain
        # array argument when they may, so a later write into it cannot change a derivative
        self.reads = forms is None or any(f not in ("id", "neg") for f in forms)
        self.fused = fused        # kernel giving (ans, f'(ans)) in one pass (unary rows)
        self.domain = domain      # test-only hint: where the generated tests sample inputs
        self.smooth = smooth      # test-only hint: second derivatives are tested when True
        # an elementwise row's scalar form, which dg.jit's code generator (compiler/loops.py)
        # writes into fused loops: a function of the arguments' source text returning the
        # expression's, e.g. ``lambda x: f"np.sin({x})"``; None: the row is not fused
        self.scalar = scalar
        # the name of a kernels/vecmath.py function computing the scalar form within a few
        # ulps in a way LLVM vectorizes (fused loops of it run at SIMD speed), or None
        self.vector = vector
        # the batching rule dg.vmap uses (vmap.py): ``batch(args, dims, **kw)`` gets the
        # array arguments one level down and their batch axes (an int, or None where an
        # argument has none; parameters passed by position arrive as keywords) and returns
        # ``(ans, out_dim)``; None: elementwise rows use the generic rule, others a loop
        self.batch = batch
        # the dtype rule (rules/table.py): ``dtype(*args, **kw)`` gives the dtype of
        # ``impl(*args, **kw)`` from the arguments alone; None: not declared
        self.dtype = dtype

    def dtype_of(self, *args, **kw):
        """The dtype this primitive gives for ``args`` (arrays, or anything with a dtype;
        Python numbers weakly typed, as numpy treats them), by its row's dtype rule."""
        return np.dtype(self.dtype(*args, **kw))

    def __call__(self, *args, **kw):
        if not _active[0]:  # nothing is being traced: no argument can be a box
            return self.impl(*args, **kw) if kw else self.impl(*args)
        top = None  # top_trace(args), inline (the hot path)
        for a in args:
            if isinstance(a, Box):
                t = a._trace
                if top is None or t.level > top.level:
                    top = t
            elif a.__class__ is _NDARRAY and a.dtype is _OBJECT:
                top = OBJECTS[0]
                break
        if top is None:  # raw values inside a transform: dualgrad's own computation
            if not kw and args and (args[0].__class__ is np.ndarray or args[-1].__class__
                                    is np.ndarray) and _buffers.large(args) \
                    and (r := _buffers.forward(self, args)) is not None:
                return r  # a large elementwise result, in a reusable buffer (buffers.py)
            return self.impl(*args, **kw) if kw else self.impl(*args)
        if not top.active:
            top.leaked(self)
        return top.process(self, args, kw)

    def __repr__(self):
        return f"<primitive {self.name}>"


_OBJECT = np.dtype(object)
_NDARRAY = np.ndarray
OBJECTS = [None]  # the trace that packs object arrays of traced values (numpy_api.py)


def top_trace(args):
    """The trace of the innermost (highest-level) box among ``args``; None if none is.

    A numpy object array among them (``np.array([x, y])`` of traced values: see
    numpy_api.py) selects ``OBJECTS[0]``, the trace above all others, which packs it into
    one traced array first."""
    top = None
    for a in args:
        if isinstance(a, Box):
            t = a._trace
            if top is None or t.level > top.level:
                top = t
        elif a.__class__ is np.ndarray and a.dtype is _OBJECT:
            return OBJECTS[0]
    return top


class IndexedRules:
    """The rules of a primitive with any number of arguments (concatenate, einsum, custom
    rules): ``rules[i]`` is made on demand as ``make(i)``."""

    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make

    def __getitem__(self, i):
        return self.make(i)


def unlift(x):
    """An entry of a numpy object array of traced values as the traced value it stands for."""
    return x.value if isinstance(x, Box) and x._trace is OBJECTS[0] else x


def check_live(box, what):
    """Entry points from user code call this first, so a leaked box is caught early."""
    if not box._trace.active:
        box._trace.leaked(Primitive(what, None))


def unbox(x):
    """Strip every level of boxing: the raw value underneath.  Under a graph being
    recorded (``dg.jit``) that is a ``jit.Concrete``: reading its numbers adds a guard."""
    while isinstance(x, Box):
        read = x._trace.read
        if read is not None:
            return read(x)
        x = x.value
    return x


def raw_apply(fn, *args):
    """``fn(*args)`` on raw values (``unbox``'s), for a rule that computes a constant from
    them with numpy (a basis, a mask).  While ``dg.jit`` records, the call is a node of the
    graph (replays compute it from new values; nothing is guarded or read back); else it
    is just the call.

    >>> raw_apply(lambda a, k: a[k:], [1, 2, 3], 1)
    [2, 3]
    """
    for a in args:
        record = getattr(a.__class__, "__dualgrad_record__", None)
        if record is not None:
            v = record(a, fn, args)
            if v is not NotImplemented:
                return v
            break
    return fn(*args)


def no_derivative(name):
    """Rule placeholder that raises when a derivative is actually needed."""
    def rule(*args, **kw):
        raise TypeError(f"dualgrad has no derivative rule for {name!r} with respect to "
                        "this argument")
    return rule


def kept(a, memo=None, frozen=None):
    """A plain array argument as a recording keeps it: a copy, so that writing
    into ``a`` later (``a[0] = 5``, ``a += 1``, ``a.sort()``, or a write into the array it
    is a view of) changes no derivative and no replay.  An array that owns read-only data
    is kept as it is; a broadcast keeps a copy of its one stored row, broadcast again.
    ``memo`` (a dict, one per recording) keeps a large array once: a later use gets the
    same copy when the array's bits have not changed since (a copy per use would hold one
    per use for a jitted graph's life).

    >>> import numpy as np
    >>> a = np.arange(3.0)
    >>> k = kept(a); a[0] = 5; float(k[0])
    0.0
    """
    if not a.flags.writeable and a.base is None:
        return a
    if frozen is not None and a.base is None and a.nbytes >= FREEZE_BYTES:
        freeze(a)  # a large array of the user's: read-only while the recording lives
        frozen.append(a)
        return a
    if memo is None or a.nbytes < _MEMO_BYTES:
        return _copy(a)
    hit = memo.get(id(a))
    if hit is not None and hit[0] is a and _same_bits(a, hit[1]):
        return hit[1]
    k = _copy(a)
    memo[id(a)] = (a, k)  # a held: its id is not reused while the recording lives
    return k


_MEMO_BYTES = 1 << 16  # smaller arrays are copied at each use: cheaper than comparing

# A tape (``frozen=`` above) does not copy a large array that owns its memory (a data
# matrix: a copy per gradient would cost more than the gradient): it makes it read-only
# until the tape is done with it, so that a write into it in between is numpy's
# "assignment destination is read-only" (said again by inplace.refusal), never a wrong
# derivative.  Counted across tapes and threads; the flag is back when the last is done.
FREEZE_BYTES = 1 << 20
_FROZEN = {}  # id(a) -> [a, tapes holding it]
_FROZEN_LOCK = threading.Lock()


def freeze(a):
    """Make the writable array ``a`` (which owns its memory) read-only for one more
    holder; ``thaw`` gives the flag back when the last holder is done."""
    with _FROZEN_LOCK:
        hit = _FROZEN.get(id(a))
        if hit is not None and hit[0] is a:
            hit[1] += 1
        else:
            _FROZEN[id(a)] = [a, 1]
            a.flags.writeable = False


def thaw(arrays):
    """One holder is done with each of ``arrays`` (frozen by ``freeze``); the list empties."""
    with _FROZEN_LOCK:
        for a in arrays:
            hit = _FROZEN.get(id(a))
            if hit is not None and hit[0] is a:
                hit[1] -= 1
                if hit[1] == 0:
                    del _FROZEN[id(a)]
                    a.flags.writeable = True
        arrays.clear()


def any_frozen():
    """Whether some recording holds an array read-only now (``freeze``)."""
    return bool(_FROZEN)
_BITS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _copy(a):
    if 0 in a.strides and a.size:
        core = a[tuple(slice(0, 1) if s == 0 else slice(None) for s in a.strides)].copy()
        return np.broadcast_to(core, a.shape)
    return a.copy()  # writable: a device kernel's launch may copy its arguments back


def _same_bits(a, k):
    """Whether ``a`` holds exactly the bits of its copy ``k`` (nan and -0.0 included)."""
    bits = _BITS.get(a.dtype.itemsize)
    if bits is None or a.shape != k.shape or a.dtype != k.dtype:
        return False
    return bool(np.array_equal(a.view(bits), k.view(bits)))
