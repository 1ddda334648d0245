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

from ..core.trace import Box, Trace
from ..core.validate import check_tangent
from ..numpy.box import ArrayBox
from ..rules import REALS, add, align_tangent, broadcast_tangent, is_complex


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
