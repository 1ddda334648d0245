"""The gradient-descent solver of the particle and saddle evals.

Written from GradBench's description of its shared solver (cpp/gradbench/gd.hpp):
step size 1e-5, doubled after 10 accepted steps in a row and halved after a
rejected one; stop when the gradient or the step is at most 1e-5 long.  It
works on numpy vectors that may be traced values of an enclosing derivative,
so the solver itself can be differentiated (nested AD).
"""

import numpy as np

import dualgrad as dg

TOL = 1e-5


def _norm(v):
    return np.sqrt(np.sum(v * v))


def argmin(f, grad, x):
    """argmin of f from x, with ``grad(f)`` giving its gradient."""
    g = grad(f)
    fx, gx = f(x), g(x)
    eta, accepted = 1e-5, 0
    while True:
        if _norm(gx) <= TOL:
            return x
        if accepted == 10:
            eta, accepted = 2.0 * eta, 0
            continue
        x_new = x - eta * gx
        if _norm(x - x_new) <= TOL:
            return x
        f_new = f(x_new)
        if f_new < fx:
            x, fx, gx = x_new, f_new, g(x_new)
            accepted += 1
        else:
            eta, accepted = eta / 2.0, 0


def argmax(f, grad, x):
    return argmin(lambda v: -f(v), grad, x)


def max_value(f, grad, x):
    return f(argmax(f, grad, x))


# the two ways of taking a gradient of R^n -> R

def grad_r(f):
    """Reverse mode: one sweep."""
    return dg.grad(f)


def grad_f(f):
    """Forward mode: one JVP per input direction, pushed through together (jacfwd)."""
    return dg.jacfwd(f)


MODES = {"r": grad_r, "f": grad_f}
