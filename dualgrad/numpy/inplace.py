"""In-place updates on traced arrays: ``y[i] = v``, ``y[mask] = v``, ``y[a:b] += v``,
``x += y``, ``x *= 2``, ``np.add.at(y, idx, v)``.

A traced array cannot be written (its value is on the tape), so ``y[idx] = v`` records
``index_set(y, v, idx)`` (JAX's y.at[idx].set(v)) and makes the box ``y`` stand for the
new value: every reference to that same box sees the write, as for a numpy array.  Python
runs ``y[idx] += v`` as ``t = y[idx]; t += v; y[idx] = t``, which is numpy's buffered
semantics (a repeated index gets one update, the last); ``np.add.at`` is unbuffered (a
repeated index adds every time).  Aliasing, as in JAX: a view taken earlier (``z = y[1:]``,
``np.array(y)``) is a value of its own and does not see later writes to ``y``.  A traced
Python or numpy scalar is immutable, as in numpy: ``s += 1`` rebinds the name only.

A plain numpy array cannot hold a traced value: ``out[i, j] = v`` into ``out =
np.zeros(S)`` ends in numpy (``float(v)``, refused, then numpy's own "setting an array
element with a sequence") far from any dualgrad code.  The transforms hand such an error
to ``plain_write_error``, which finds the write in the user's source and says the fix with
the array's own shape: ``out = np.zeros(S, like=x)``.
"""

import ast
import linecache
import os
import weakref

import numpy as np

from .. import rules as P
from ..core.trace import OBJECTS, Box, any_frozen, check_live, unbox
from .dispatch import implements
from .elementwise import astype
from .indexing import _index
from .shapes import broadcast_to

_shape, _ndim = P.shape_of, P.ndim_of


# -- views: a basic index of a traced array is a view, as numpy's -------------------------
# ``row = out[i]`` (and ``out[i][j] = v``, ``for row in out: row[:] = v``) is a view in
# numpy: a write into it is a write into ``out``.  A traced value cannot share memory, so
# the view box remembers where it came from, ``_view_of = (base, key, writes)``: a write
# into the view is written back into the base at ``key``, and a view whose base was written
# since (``writes`` counts the base's rebindings) is first read again from the base, so a
# write through it never undoes one made through the base.

_BASIC_KEYS = P.BASIC_KEYS  # (a module global: read on every index)


def basic_key(key):
    """A key of ints, slices, None and Ellipsis only (numpy gives a view for it)."""
    for k in key if key.__class__ is tuple else (key,):
        c = k.__class__
        if c not in _BASIC_KEYS and not (isinstance(k, np.integer) and c is not np.bool_):
            return False
    return True


class Whole:
    """The key of a view of the whole base made by a method (``x.T``, ``x.reshape(S)``,
    ``x.ravel()``, ``x.squeeze()``, ``x.swapaxes(i, j)``): ``take(base)`` makes it again,
    ``back(view)`` gives its values in the base's shape."""

    __slots__ = ("take", "back")

    def __init__(self, take, back):
        self.take, self.back = take, back


def whole(shape, name, args, kw):
    """The ``Whole`` key of ``x.<name>(*args, **kw)`` for an x of ``shape``: ``T``,
    ``mT``, ``transpose``, ``swapaxes``, ``reshape``, ``ravel`` or ``squeeze``."""
    if name in ("T", "transpose"):
        axes = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
        inv = tuple(np.argsort([a % len(shape) for a in axes])) if axes else None
        back = lambda v: np.transpose(v, inv)  # noqa: E731
    elif name in ("mT", "swapaxes"):
        back = lambda v: np.swapaxes(v, *(args or (-1, -2)))  # noqa: E731
    else:
        back = lambda v: np.reshape(v, shape, order=kw.get("order", "C"))  # noqa: E731
    if name in ("T", "mT"):
        return Whole(lambda b: getattr(b, name), back)
    return Whole(lambda b: getattr(b, name)(*args, **kw), back)


def part(base, name):
    """The ``Whole`` key of ``base.real`` or ``base.imag``: numpy's views of a complex
    array's parts (``.real`` of a real array is the array itself), so ``c.real[0] = v``
    writes into ``c``; the other part is ``base``'s as it is at the write."""
    if name == "imag":
        return Whole(P.imag, lambda v: P.add(P.real(base), P.multiply(v, 1j)))
    if not P.is_complex(base):
        return Whole(P.real, lambda v: v)
    return Whole(P.real, lambda v: P.add(v, P.multiply(P.imag(base), 1j)))


WHOLE_VIEWS = frozenset(("T", "mT", "transpose", "swapaxes", "reshape", "ravel", "squeeze"))


def _take(base, key):
    return key.take(base) if key.__class__ is Whole else base[key]


def link_whole(base, key, view):
    """``view`` (= ``key.take(base)``) as numpy's view of ``base`` where numpy's would be
    one: its raw value shares the base's memory (a reshape that had to copy is a copy)."""
    rb, rv = base, view
    while isinstance(rb, Box) and isinstance(rv, Box):
        rb, rv = rb.value, rv.value
    if rb.__class__ is np.ndarray and rv.__class__ is np.ndarray \
            and np.may_share_memory(rb, rv):
        _link(base, key, view)
    return view


def keep_views(box, shape):
    """Before ``box.shape = shape`` (a rebinding): the views taken of ``box`` keep the
    memory they had, as numpy's do, through a view of ``box`` in its old shape: ``v =
    y[:2]; y.shape = (2, 2)`` leaves ``v`` the first two elements, not ``y[:2]`` of the
    reshaped ``y``."""
    refs = getattr(box, "_views", None) or []
    views = [v for v in (r() for r in refs) if v is not None]
    if not views:
        return
    old = _shape(box)
    key = Whole(lambda b: link_whole(b, key, P.reshape(b, shape=old)),  # (read again:
                lambda v: P.reshape(v, shape=tuple(shape)))  # linked, as a method's view)
    mid = key.take(box)
    if getattr(mid, "_view_of", None) is None:  # (a copy: nothing shares memory)
        return
    box._views = [r for r in box._views if r() is mid]
    mid._views = []
    for v in views:
        v._view_of = (mid, v._view_of[1], getattr(mid, "_writes", 0))
        mid._views.append(weakref.ref(v))


def link_view(base, key, view):
    """``view`` (= ``base[key]``) as numpy's view of ``base``, for the writes above; the
    base keeps a weak reference to it, so that a write into the base reads it again."""
    if basic_key(key) and _shape(view):
        _link(base, key, view)
    return view


def _link(base, key, view):
    if view.__class__ is base.__class__ and view is not base:  # (x.squeeze() can be x)
        view._view_of = (base, key, getattr(base, "_writes", 0))
        views = getattr(base, "_views", None)
        if views is None:
            base._views = views = []
        elif len(views) >= 32 and not len(views) & (len(views) - 1):  # 32, 64...: prune
            views[:] = [r for r in views if r() is not None]
        views.append(weakref.ref(view))


def _refresh_views(base):
    """After a write into ``base``: each live view of it is read again, as numpy's views
    see the write."""
    views = getattr(base, "_views", None)
    if views:
        live = [r for r in views if r() is not None]
        base._views = []
        for r in live:
            v = r()
            if v is not None:
                _reread(v, _take(base, v._view_of[1]))  # the new value, linked anew
                base._views.append(r)


def fresh(view):
    """Read a view again from its base where the base was written since it was taken."""
    link = getattr(view, "_view_of", None)
    if link is not None and getattr(link[0], "_writes", 0) != link[2]:
        base, key = link[0], link[1]
        _reread(view, _take(base, key))  # base[key] links the new value: copied too


def _reread(view, new):
    """``view`` stands for ``new`` (its base's values, read again): a change of value
    for the views taken of it in turn (``row = plane[0]`` of ``plane = out[1]``)."""
    _copy_slots(view, new)
    view._writes = getattr(view, "_writes", 0) + 1
    view._item = None  # (the last index read of the old value: not read again below)
    _refresh_views(view)


def _write_back(view):
    """After a write into ``view``: the same values into its base (and on up)."""
    base, key, _ = view._view_of
    if key.__class__ is Whole:
        base[...] = key.back(view)  # (which reads view again from base: its own values)
    else:
        base[key] = view
    view._view_of = (base, key, getattr(base, "_writes", 0))


def _copy_slots(box, new):
    """``box`` takes ``new``'s value: each slot set on ``new`` (but the box's own: its
    weak references, ``grad``, write count and the views taken of it)."""
    found = _COPIED.get(box.__class__)
    if found is None:
        found = _COPIED[box.__class__] = _copier(box.__class__)
    names, copy = found
    if copy is not None:
        try:
            return copy(box, new)  # every slot set on new (a recorded value's are)
        except AttributeError:  # one is not: copied one by one (nothing was written)
            pass
    for s in names:
        try:
            v = getattr(new, s)
        except AttributeError:  # not set on new
            continue
        object.__setattr__(box, s, v)


def _copier(cls):
    """(the slots ``_copy_slots`` copies for a box of class ``cls``, a function copying
    them all at once: it reads every one before it writes, so an unset one raises
    AttributeError with nothing written; None where ``cls`` has its own __setattr__)."""
    names = tuple(s for c in cls.__mro__ for s in getattr(c, "__slots__", ())
                  if s not in ("__weakref__", "_grad", "_writes", "_views", "_item"))
    if not names or cls.__setattr__ is not object.__setattr__ \
            or not all(s.isidentifier() and not s.startswith("__") for s in names):
        return names, None
    reads = "".join(f"new.{s}, " for s in names)  # (the right side is read first)
    writes = "".join(f"box.{s}, " for s in names)
    code = f"def copy(box, new):\n    {writes}= {reads}\n"
    scope = {}
    exec(compile(code, f"<dualgrad slot copy {cls.__name__}>", "exec"), scope)  # noqa: S102
    return names, scope["copy"]


_COPIED = {}  # box class -> (the slots _copy_slots copies, their copier): once per class


def _rebind(box, new, what):
    """Make ``box`` stand for the traced value ``new`` (an in-place write).  ``what`` names
    the write for an error: a string, or a function giving one (formatting an index on
    every write would cost more than the write: a mask's repr is its every entry)."""
    if new.__class__ is not box.__class__:
        what = what if isinstance(what, str) else what()
        raise TypeError(
            f"dualgrad: {what} writes a value traced by a nested transform into an array "
            f"traced by an outer one ({type(new).__name__} into {type(box).__name__}); make "
            "the array inside the inner function (y = y + 0.0 there) or return the new value")
    leaves = getattr(box._trace, "_leaves", None)
    if leaves and box._trace.entries[box.index].prim is None \
            and any(r() is box for r in leaves):
        what = what if isinstance(what, str) else what()  # formatted for the error only
        raise TypeError(f"dualgrad: {what} would overwrite a value watched by this Tape; "
                        "write into a copy (y = x + 0.0) instead")
    old = box._trace
    link = getattr(box, "_view_of", None)
    _copy_slots(box, new)
    box._view_of = link  # (new, a fresh value, is no view: box stays what it was)
    box._writes = getattr(box, "_writes", 0) + 1
    box._item = None  # (the last index read of the old value: not read again below)
    hold, release = getattr(box._trace, "hold", None), getattr(old, "release", None)
    if hold is not None:
        hold()
    if release is not None:
        release()
    if link is not None:
        _write_back(box)
    _refresh_views(box)


def _setitem(self, key, value):
    if not self._trace.active:
        check_live(self, "setitem")
    fresh(self)
    if self.value.__class__ is not np.ndarray or self._trace.read is not None:
        raw = unbox(self)  # (a numpy array one level down, unread: unbox's answer)
        if raw.__class__ is not np.ndarray:
            raw = getattr(raw, "__dualgrad_raw__", raw)  # under dg.jit: the recorded value
        if raw.__class__ is not np.ndarray and P.device_like(raw) is None \
                and not isinstance(raw, Box):  # (under dg.vmap: a batch of arrays)
            raise TypeError(f"dualgrad: {type(raw).__name__!r} object does not support "
                            "item assignment (a traced number is immutable, as in numpy)")
    if isinstance(value, (list, tuple)) or (value.__class__ is np.ndarray
                                            and value.dtype == object):
        value = OBJECTS[0].pack(np.array(value, dtype=object)  # objects.py
                                if isinstance(value, (list, tuple)) else value)
    raw = None  # dropped: a write into the box's own array counts who holds it (Tape)
    _rebind(self, written(self, value, _index(key)), lambda: f"y[{key!r}] = v")


def written(box, value, idx):
    """``P.set_at(box, value, idx)`` for a writer that makes ``box`` stand for the result
    right after (``_rebind``): the tape may write into box's own array (nothing can read
    its old values through box then).  Any other ``index_set`` (``np.zeros(S, like=x)``'s
    of x, which x still is) copies."""
    t = box._trace
    t.rebinding = box
    try:
        return P.set_at(box, value, idx)
    finally:
        t.rebinding = None


def _inplace(prim, name):
    def op(self, other):
        check_live(self, name)
        fresh(self)
        new = prim(self, other)
        raw = unbox(self)
        if raw.__class__ is not np.ndarray:
            raw = getattr(raw, "__dualgrad_raw__", raw)  # under dg.jit: the recorded value
        if (raw.__class__ is not np.ndarray and not (isinstance(raw, Box) and raw.shape)) \
                or new.__class__ is not self.__class__:  # (a batch of arrays: rebound)
            return new  # an immutable number (or a value of another trace): a new value
        if _shape(new) != raw.shape:
            raise ValueError(f"non-broadcastable output operand with shape {raw.shape} "
                             f"doesn't match the broadcast shape {_shape(new)}")
        if P.float_dtype(new) != raw.dtype and raw.dtype.kind in "fc":
            new = astype(new, raw.dtype)  # x += y keeps x's dtype, as numpy's casting does
        _rebind(self, new, f"x {name} y")
        return self
    return op


def scattered(a, indices, b):
    """``b`` added at ``indices`` into zeros of ``a``'s shape, unbuffered (a repeated
    index adds every time): what ``np.add.at(a, indices, b)`` adds to ``a``."""
    idx = _index(indices)
    tshape = np.empty(_shape(a), bool)[idx].shape
    v = broadcast_to(b, tshape) if _shape(b) != tshape else b
    return P.add_at(v, idx, _shape(a))


@implements(np.add.at)
def _add_at(a, indices, b=None):
    """np.add.at(y, idx, v) on a traced y: unbuffered, a repeated index adds every time."""
    _rebind(a, P.add(a, scattered(a, indices, b)), "numpy.add.at")


@implements(np.subtract.at)
def _subtract_at(a, indices, b=None):
    """np.subtract.at(y, idx, v) on a traced y: a repeated index subtracts every time."""
    _rebind(a, P.subtract(a, scattered(a, indices, b)), "numpy.subtract.at")


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _written(frame, line):
    """(the write's text, the plain float array it writes into) for the subscript write
    on ``frame``'s current line (``out[i] = v``, ``out[i] += v``), else None."""
    lines = linecache.getlines(frame.f_code.co_filename, frame.f_globals)
    try:
        tree = ast.parse("".join(lines))
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if not (isinstance(node, (ast.Assign, ast.AugAssign))
                and node.lineno <= line <= node.end_lineno):
            continue
        for t in getattr(node, "targets", None) or [node.target]:
            if not isinstance(t, ast.Subscript):
                continue
            name, obj = ast.unparse(t.value), _lookup(t.value, frame)
            if obj.__class__ is np.ndarray and obj.dtype.kind in "fc":
                write = f"{ast.unparse(t)} = v" if isinstance(node, ast.Assign) else \
                    ast.unparse(ast.AugAssign(t, node.op, ast.Name("v")))
                return write, name, obj
    return None


def _lookup(expr, frame):
    """The object a name or attribute chain (``out``, ``self.out``) names in ``frame``;
    nothing else is evaluated."""
    if isinstance(expr, ast.Name):
        return frame.f_locals.get(expr.id, frame.f_globals.get(expr.id))
    if isinstance(expr, ast.Attribute):
        return getattr(_lookup(expr.value, frame), expr.attr, None)
    return None


def plain_write_error(exc):
    """The TypeError to raise instead of ``exc`` when ``exc`` is a write of a traced value
    into a plain float array (``out[i] = v`` with ``out = np.zeros(S)``), naming the fix
    with the array's own shape; None for any other error."""
    cause = exc if isinstance(exc, TypeError) else exc.__cause__ or exc.__context__
    if not (isinstance(exc, (TypeError, ValueError)) and isinstance(cause, TypeError)
            and str(cause).startswith("dualgrad:")):
        return None
    tb, user = exc.__traceback__, None
    while tb is not None:  # the last frame outside dualgrad: the user's write
        if not os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE):
            user = tb
        tb = tb.tb_next
    found = None if user is None else _written(user.tb_frame, user.tb_lineno)
    if found is None:  # no source to read (python -c, exec of a string)
        if not isinstance(exc, ValueError):
            return None  # dualgrad's own message already says it
        return TypeError(
            "dualgrad: a traced value was written into a plain numpy array (numpy said: "
            f"{exc}), which cannot hold its derivative; make the array traced where it is "
            "made: out = np.zeros(shape, like=x), with x any value traced in this call "
            "(inside a transform np.zeros(shape) does this by itself in code whose source "
            "dualgrad can read: not python -c or exec of a string), or collect the pieces "
            "in a list and np.stack them")
    write, name, out = found
    dt = "" if out.dtype == np.float64 else f", dtype=np.{out.dtype.name}"
    return TypeError(
        f"dualgrad: {write} writes a traced value into {name}, a plain numpy array of shape "
        f"{out.shape}, which cannot hold its derivative; make {name} traced where it is "
        f"made: {name} = np.zeros({out.shape}{dt}, like=x) instead, with x any value traced "
        "in this call, such as an argument being differentiated (like= of a value held "
        "constant gives a plain array: when only the weights are differentiated, name a "
        "weight; np.ones, np.empty and np.full take like= too; or collect the pieces in a "
        "list and np.stack them). Use dg.stop_gradient(v) if no derivative is wanted.")


#: Functions ``hint(exc)`` giving a clearer error for an exception a transformed function
#: raised, or None; ``dualgrad.scipy`` adds one naming its drop-in for a scipy function
#: that met a traced value.  ``refusal`` asks them first, then ``plain_write_error``.
HINTS = []


def refusal(exc):
    """The error to raise instead of ``exc`` (raised by the user's function under a
    transform), or None to raise ``exc`` as it is."""
    if isinstance(exc, ValueError) and "read-only" in str(exc) and any_frozen():
        return ValueError(
            f"dualgrad: {exc} (numpy): a large numpy array the function used beside traced "
            f"values is read-only until the derivative is computed, since it reads the "
            f"array's values (a copy per call would cost more than the gradient); write into "
            f"a copy (a = a.copy()) before using it, or finish writing before its first use")
    for hint in HINTS:
        better = hint(exc)
        if better is not None:
            return better
    return plain_write_error(exc) if isinstance(exc, (TypeError, ValueError)) else None
