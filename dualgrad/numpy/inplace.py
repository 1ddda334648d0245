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
"""

import numpy as np

from .. import rules as P
from ..core.trace import OBJECTS, check_live, unbox
from .dispatch import implements
from .elementwise import astype
from .indexing import _index
from .shapes import broadcast_to

_shape, _ndim = P.shape_of, P.ndim_of


def _rebind(box, new, what):
    """Make ``box`` stand for the traced value ``new`` (an in-place write)."""
    if new.__class__ is not box.__class__:
        raise TypeError(
            f"dualgrad: {what} writes a value traced by a nested transform into an array "
            f"traced by an outer one ({type(new).__name__} into {type(box).__name__}); make "
            "the array inside the inner function (y = y + 0.0 there) or return the new value")
    leaves = getattr(box._trace, "_leaves", None)
    if leaves and box._trace.entries[box.index].prim is None \
            and any(r() is box for r in leaves):
        raise TypeError(f"dualgrad: {what} would overwrite a value watched by this Tape; "
                        "write into a copy (y = x + 0.0) instead")
    old = box._trace
    for cls in box.__class__.__mro__:
        for s in getattr(cls, "__slots__", ()):
            if s not in ("__weakref__", "_grad") and hasattr(new, s):
                object.__setattr__(box, s, getattr(new, s))
    hold, release = getattr(box._trace, "hold", None), getattr(old, "release", None)
    if hold is not None:
        hold()
    if release is not None:
        release()


def _setitem(self, key, value):
    check_live(self, "setitem")
    raw = unbox(self)
    raw = getattr(raw, "__dualgrad_raw__", raw)  # under dg.jit: the recorded value
    if raw.__class__ is not np.ndarray and P.device_like(raw) is None:
        raise TypeError(f"dualgrad: {type(raw).__name__!r} object does not support item "
                        "assignment (a traced number is immutable, as in numpy)")
    if isinstance(value, (list, tuple)) or (value.__class__ is np.ndarray
                                            and value.dtype == object):
        value = OBJECTS[0].pack(np.array(value, dtype=object)  # objects.py
                                if isinstance(value, (list, tuple)) else value)
    _rebind(self, P.index_set(self, value, idx=_index(key)), f"y[{key!r}] = v")


def _inplace(prim, name):
    def op(self, other):
        check_live(self, name)
        new = prim(self, other)
        raw = unbox(self)
        if raw.__class__ is not np.ndarray or new.__class__ is not self.__class__:
            return new  # an immutable number (or a value of another trace): a new value
        if _shape(new) != raw.shape:
            raise ValueError(f"non-broadcastable output operand with shape {raw.shape} "
                             f"doesn't match the broadcast shape {_shape(new)}")
        if P.float_dtype(new) != raw.dtype and raw.dtype.kind in "fc":
            new = astype(new, raw.dtype)  # x += y keeps x's dtype, as numpy's casting does
        _rebind(self, new, f"x {name} y")
        return self
    return op


@implements(np.add.at)
def _add_at(a, indices, b=None):
    """np.add.at(y, idx, v) on a traced y: unbuffered, a repeated index adds every time."""
    idx = _index(indices)
    tshape = np.empty(_shape(a), bool)[idx].shape
    v = broadcast_to(b, tshape) if _shape(b) != tshape else b
    _rebind(a, P.add(a, P.scatter_add(v, idx=idx, shape=_shape(a))), "numpy.add.at")
