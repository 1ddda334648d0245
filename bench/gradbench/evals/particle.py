"""particle: the control w that makes a charged particle hit the origin (nested AD).

A particle starts at (0, 8) with velocity (0.75, 0) in the field of unit
charges at (10, 10 − w) and (10, 0); naive Euler steps (dt = 0.1) with
acceleration −∇ₓ p(x; w), p = Σ 1/|x − charge|, run until it would cross the
x axis, then linear interpolation finds the crossing x0(t_f).  Gradient
descent minimises x0(t_f)² over w.  The Euler loop takes ∇ₓ p by the inner
mode of AD, and the solver differentiates the whole loop, inner derivatives
included, by the outer mode; the four functions are the four combinations.
"""

import numpy as np

import dualgrad as dg

from ..protocol import Function
from ._gd import MODES, argmin

DT = 0.1


def potential(w):
    """p(x1, x2; w) = 1/|x − (10, 10 − w)| + 1/|x − (10, 0)|, on scalars."""
    cy = 10.0 - w

    def p(x1, x2):
        a = x1 - 10.0
        b = x2 - cy
        return (a * a + b * b) ** -0.5 + (a * a + x2 * x2) ** -0.5
    return p


def grad_p_r(p):
    """∇ₓ p by reverse mode: one sweep for both components."""
    return dg.grad(p, argnums=(0, 1))


def grad_p_f(p):
    """∇ₓ p by forward mode: one JVP per component."""
    def g(x1, x2):
        return (dg.jvp(p, (x1, x2), (1.0, 0.0))[1], dg.jvp(p, (x1, x2), (0.0, 1.0))[1])
    return g


INNER = {"r": grad_p_r, "f": grad_p_f}


def crossing_sqr(w, inner):
    """x0(t_f)² for control w, with ∇ₓ p taken by the ``inner`` mode."""
    grad_p = INNER[inner](potential(w))
    x1, x2, v1, v2 = 0.0, 8.0, 0.75, 0.0
    while True:
        g1, g2 = grad_p(x1, x2)
        x1_new, x2_new = x1 + DT * v1, x2 + DT * v2
        if not x2_new > 0:
            break
        x1, x2, v1, v2 = x1_new, x2_new, v1 - DT * g1, v2 - DT * g2
    dt_f = -x2 / v2
    x1_f = x1 + dt_f * v1
    return x1_f * x1_f


def particle(w0, outer, inner):
    w = argmin(lambda v: crossing_sqr(v[0], inner), MODES[outer], np.array([w0]))
    return w[0]


def _make(outer, inner):
    return Function(run=lambda w0: particle(w0, outer, inner),
                    prepare=lambda input: float(input["w"]), output=float)


FUNCTIONS = {name: _make(name[0], name[1]) for name in ("rr", "ff", "fr", "rf")}


def example():
    return {"w": 0.0, "min_runs": 1, "min_seconds": 0}


def warm_up():
    """One outer derivative in each mode combination (a full solve takes seconds)."""
    for outer in MODES.values():
        for inner in INNER:
            outer(lambda v, inner=inner: crossing_sqr(v[0], inner))(np.array([0.2]))
