"""saddle: min over x of max over y of (x1² + y1²) − (x2² + y2²) by nested gradient descent.

Written as in the eval's specification: the outer argmin differentiates
``x ↦ max_y f(x, y)``, and that maximum is itself found by gradient descent
with the inner derivative, so the outer derivative goes through the whole
inner solver (nested AD, no perturbation confusion allowed).  The four
functions pick forward (``f``) or reverse (``r``) mode for the outer and the
inner derivative; the final argmax over y uses the outer mode.
"""

import numpy as np

from ..protocol import Function
from ._gd import MODES, argmax, argmin, max_value
from ._util import array


def f(p1, p):
    """The eval's f(x1, y1, x2, y2) with (x1, y1) = p1 and (x2, y2) = p."""
    return np.sum(p1 * p1) - np.sum(p * p)


def saddle(start, outer, inner):
    grad0, grad1 = MODES[outer], MODES[inner]

    def r1_cost(p1):
        return max_value(lambda p: f(p1, p), grad1, start)

    r1 = argmin(r1_cost, grad0, start)
    r2 = argmax(lambda p: f(r1, p), grad0, start)
    return np.concatenate((r1, r2))  # float64 arrays (traced ones under dg.jit)


def _make(outer, inner):
    return Function(run=lambda start: saddle(start, outer, inner),
                    prepare=lambda input: array(input["start"]),
                    output=lambda r: np.asarray(r, dtype=np.float64).tolist())


FUNCTIONS = {name: _make(name[0], name[1]) for name in ("rr", "ff", "fr", "rf")}


def example():
    return {"start": [1.0, 1.0], "min_runs": 1, "min_seconds": 0}


def warm_up():
    """One outer derivative through the inner solver in each mode combination."""
    start = np.array([1.0, 1.0])
    for outer in MODES.values():
        for inner in MODES.values():
            outer(lambda p1, inner=inner: max_value(lambda p: f(p1, p), inner,
                                                    np.array([1e-4, 1e-4])))(start)
