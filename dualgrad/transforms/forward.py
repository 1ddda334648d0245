"""Forward mode: dual numbers.

A ``Dual`` carries a primal value and a tangent.  Applying a primitive to it
computes the primal one level down and pushes the tangent through the
primitive's JVP rule.  A tangent may carry one extra leading axis of k
directions (ForwardDiff's chunk mode): ``tangent.shape == (k,) + primal.shape``;
one pass then computes k directional derivatives.

    >>> import numpy as np, dualgrad as dg
    >>> x1, x2 = dg.Dual(2.0, 1.0), dg.Dual(5.0, 0.0)
    >>> y = np.log(x1) + x1 * x2 - np.sin(x2)
    >>> float(y.tangent)
    5.5
"""

import threading

import numpy as np

from .. import backend
from ..core import buffers
from ..core.trace import Box, Trace
from ..core.validate import check_tangent
from ..numpy.box import ArrayBox
from ..rules import (
    REALS,
    add,
    align_tangent,
    basic_index,
    broadcast_tangent,
    divide,
    getitem,
    is_complex,
    multiply,
    negative,
    power,
    scatter_add,
    subtract,
    sum_,
)


class JVPTrace(Trace):
    """One forward perturbation; every ``Dual`` of it shares its level."""

    __slots__ = ()

    def process(self, prim, args, kw):
        primals = list(args)
        tangents = [None] * len(args)
        live = False
        for i, a in enumerate(args):
            if a.__class__ is Dual and a._trace is self:
                primals[i] = a.value
                tangents[i] = a.tangent
                live = True
        fused = prim.fused
        if fused is not None and live and primals[0].__class__ is np.ndarray \
                and tangents[0].__class__ is np.ndarray and (r := fused(primals[0])):
            ans, d = r  # value and derivative in one fused pass, then one multiply
            return Dual._make(ans, np.multiply(tangents[0], d), self)
        ans = prim(*primals, **kw)
        if not live:
            return ans
        if not kw and (quick := _QUICK.get(prim)) is not None and ans.__class__ is _ND \
                and _plain(ans, primals, tangents):
            return Dual._make(ans, quick(tangents, ans, *primals), self)
        if kw and (quick := _QUICK_KW.get(prim)) is not None and len(primals) == 1 \
                and (t := tangents[0]).__class__ is _ND and t.dtype.kind == "f" \
                and primals[0].__class__ is _ND and (t := quick(t, primals[0], kw)) is not None:
            return Dual._make(ans, t, self)
        t = push_tangents(prim, tangents, ans, primals, kw)
        if t is None:
            return ans
        return Dual._make(ans, t, self)


def push_tangents(prim, tangents, ans, primals, kw):
    """Apply ``prim``'s JVP rule(s); ``None`` stands for a zero tangent."""
    rules = prim.jvp
    if rules is None:
        raise TypeError(f"dualgrad has no forward-mode (JVP) rule for {prim.name!r}")
    if callable(rules):
        return _real_onto_real(prim, rules(tangents, ans, *primals, **kw), ans)
    out = None
    for i, t in enumerate(tangents):
        if t is None:
            continue
        rule = rules[i]
        if rule is None:
            raise TypeError(f"{prim.name!r} is not differentiable with respect to argument "
                            f"{i} (no JVP rule)")
        if prim.bcast:
            t = align_tangent(t, primals[i], ans)
        c = rule(t, ans, *primals, **kw)
        out = c if out is None else add(out, c)
    if prim.bcast and out is not None:
        out = broadcast_tangent(out, ans)
    return _real_onto_real(prim, out, ans)


# -- the arithmetic rows' JVPs on plain arrays, without the rules' dispatch ------------
#
# A Dual's ``x * y`` on numpy arrays spends most of its time dispatching: the rules call
# primitives (each scans its arguments for boxes), then align, broadcast and check the
# tangent.  Where every array is real, raw, and of the result's shape (a tangent with
# batch axes in front), none of that changes anything, and ``_QUICK`` computes the rules'
# own numpy calls directly: the same operations on the same operands in the same order,
# so the same bits (``_raw`` is a primitive's own path for raw values, cached buffers
# included).

_ND = np.ndarray
_ALL = slice(None)


def _plain(ans, primals, tangents):
    """Whether ``_QUICK`` applies: ``ans`` a real array; each argument with a tangent a
    real array of ans's shape, its tangent a real array (batch axes in front: the rules
    would align nothing); each other argument a Python number or an array that broadcasts
    (the rules' own numpy call broadcasts it the same)."""
    if ans.dtype.kind != "f":
        return False
    shape = ans.shape
    for x, t in zip(primals, tangents):
        c = x.__class__
        if t is not None:
            if c is not _ND or x.shape != shape or t.__class__ is not _ND \
                    or t.dtype.kind != "f":
                return False
        elif c is _ND:
            if x.dtype.kind not in "fiub":
                return False
        elif c is not float and c is not int:
            return False
    return True


def _raw(prim, a, b=None):
    """``prim(a)`` or ``prim(a, b)`` on raw values, as ``Primitive.__call__`` computes it
    for them inside a transform (a large elementwise result in a cached buffer)."""
    args = (a,) if b is None else (a, b)
    if (a.__class__ is _ND or b.__class__ is _ND) and buffers.large(args) \
            and (r := buffers.forward(prim, args)) is not None:
        return r
    return prim.impl(*args)


def _add_jvp(tangents, ans, x, y):  # add's rules: each tangent as it is, summed
    tx, ty = tangents
    return ty if tx is None else tx if ty is None else _raw(add, tx, ty)


def _subtract_jvp(tangents, ans, x, y):  # rules/elementwise.py's _subtract_jvp
    tx, ty = tangents
    return tx if ty is None else _raw(negative, ty) if tx is None else _raw(subtract, tx, ty)


def _one_loop(kind, t, x, t2=None, y=None):
    """``backend.tangent``'s one loop for ``kind`` where its shapes hold (1-D primals of
    one float dtype, tangents (n,) or (B, n)) and it wins here; else None: the numpy ops."""
    if x.ndim != 1 or t.ndim > 2 or t.shape[-1] != x.shape[0] or t.dtype != x.dtype \
            or (t2 is not None and (t2.shape != t.shape or t2.dtype != t.dtype
                                    or y.dtype != x.dtype)):
        return None
    return backend.tangent(kind, t, x, t2, y)


def _multiply_jvp(tangents, ans, x, y):  # multiply(t, y), multiply(x, t), then add
    tx, ty = tangents
    if tx is not None and ty is not None and (r := _one_loop("product", tx, x, ty, y)) \
            is not None:
        return r
    if tx is None or ty is None:  # a tangent of directions times a plain 1-D array
        t, p = (ty, x) if tx is None else (tx, y)
        if p.__class__ is _ND and t.ndim == 2 and (r := _one_loop("scale", t, p)) is not None:
            return r  # (t * p is p * t: the same bits)
    out = None if tx is None else _raw(multiply, tx, y)
    if ty is not None:
        c = _raw(multiply, x, ty)
        out = c if out is None else _raw(add, out, c)
    return out


def _divide_jvp(tangents, ans, x, y):  # divide(t, y), negative(multiply(t, ans / y))
    tx, ty = tangents
    out = None if tx is None else _raw(divide, tx, y)
    if ty is not None:
        c = _raw(negative, _raw(multiply, ty, _raw(divide, ans, y)))
        out = c if out is None else _raw(add, out, c)
    return out


def _power_jvp(tangents, ans, x, y):  # x ** 2 and x ** c: multiply(t, _pow_dx(...))
    tx, ty = tangents
    if ty is not None or y.__class__ is not float and y.__class__ is not int or y == 0:
        return push_tangents(power, tangents, ans, (x, y), {})
    if y == 2 and (r := _one_loop("square", tx, x)) is not None:
        return r
    d = _raw(multiply, x, 2.0) if y == 2 else _raw(multiply, y, _raw(power, x, y - 1))
    return _raw(multiply, tx, d)


def _getitem_jvp(t, x, kw):  # the rule's _gather_batched for a basic index: a view
    idx = kw.get("idx")
    if idx.__class__ is not tuple or len(kw) != 1 or not basic_index(idx):
        return None
    nb = t.ndim - x.ndim
    return t[(_ALL,) * nb + idx] if nb else t[idx]


def _sum_jvp(t, x, kw):  # sum_(t, axis=axis, keepdims=keepdims): the row's impl
    return sum_.impl(t, kw["axis"], kw["keepdims"]) if len(kw) == 2 else None


def _scatter_add_jvp(t, v, kw):  # the rule's _scatter_batched for a basic index
    idx = kw.get("idx")
    if idx.__class__ is not tuple or len(kw) != 2 or not basic_index(idx):
        return None
    nb = t.ndim - v.ndim
    return scatter_add.impl(t, (_ALL,) * nb + idx, t.shape[:nb] + tuple(kw["shape"]))


# rows with parameters: a plain real tangent of a plain array -> the rule's tangent, or
# None for the rule to compute
_QUICK_KW = {getitem: _getitem_jvp, sum_: _sum_jvp, scatter_add: _scatter_add_jvp}

_QUICK = {add: _add_jvp, subtract: _subtract_jvp, multiply: _multiply_jvp,
          divide: _divide_jvp, negative: lambda ts, ans, x: _raw(negative, ts[0]),
          power: _power_jvp}


def _real_onto_real(prim, t, ans):
    """A real output's tangent is real: a complex one means the rule does not handle the
    complex argument it was given (see "complex numbers" in rules/table.py)."""
    if t is not None and t.__class__ not in REALS and is_complex(t) and not is_complex(ans):
        raise TypeError(f"dualgrad has no derivative rule for {prim.name!r} of complex values "
                        "(a complex tangent reached its real output)")
    return t


class RootTrace(JVPTrace):
    """The trace of hand-made Duals: level 0, recording exactly while one of its Duals
    (made by hand, or computed from one) is alive, so that ``tracing()`` -- and with it
    every untraced fast path -- returns to normal once the last of them is gone."""

    __slots__ = ("live",)

    def __init__(self):
        super().__init__(level=0)
        self.live = 0
        self.finish()

    def hold(self):  # Duals are made and collected on any thread: counted under a lock
        with _ROOT_LOCK:  # (re-entrant: a collection inside may release another)
            if self.live == 0:
                Trace.__init__(self, level=0)
            self.live += 1

    def release(self):
        with _ROOT_LOCK:
            self.live -= 1
            if self.live == 0:
                self.finish()


_ROOT_LOCK = threading.RLock()


_ROOT = RootTrace()


class Dual(ArrayBox):
    """A forward-mode value: ``Dual(primal, tangent)``.

    ``tangent`` has the primal's shape, or one extra leading axis of k
    directions.  Duals made by hand share one perturbation; use ``dg.jvp`` to
    nest perturbations safely.

    >>> import numpy as np, dualgrad as dg
    >>> d = dg.Dual(np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    >>> (d * d).tangent
    array([2., 0.])
    """

    __slots__ = ("tangent",)

    def __init__(self, primal, tangent):
        if isinstance(primal, Box) or isinstance(tangent, Box):
            raise TypeError("dg.Dual(primal, tangent) takes plain numbers or arrays; to "
                            "differentiate through traced values use dg.jvp")
        self.value = primal
        self.tangent = check_tangent(primal, tangent, "tangent", batch_ok=True)
        _ROOT.hold()
        self._trace = _ROOT

    @classmethod
    def _make(cls, primal, tangent, trace):
        d = cls.__new__(cls)
        d.value = primal
        d.tangent = tangent
        if trace is _ROOT:
            _ROOT.hold()
        d._trace = trace
        return d

    def __del__(self):
        if getattr(self, "_trace", None) is _ROOT:
            _ROOT.release()

    @property
    def primal(self):
        return self.value

    def __repr__(self):
        return f"Dual({self.value!r}, {self.tangent!r})"
