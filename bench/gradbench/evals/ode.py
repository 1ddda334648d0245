"""ode: 4th-order Runge-Kutta, s steps to t = 2, for y0' = x0, yi' = xi·y(i−1), y(0) = 0.

``primal`` returns y(2); ``gradient`` the gradient of its last element with
respect to x, by reverse mode through the s Runge-Kutta steps (the tape holds
every step).
"""

import numpy as np

import dualgrad as dg

from ..protocol import Function
from ._util import array, spread, tolist

_ONE = np.ones(1)


def rhs(x, y):
    """z0 = x0, zi = xi · y(i−1)."""
    return x * np.concatenate((_ONE, y[:-1]))


def ode(x, s):
    h = 2.0 / s
    y = np.zeros(x.shape[0])
    for _ in range(s):
        k1 = rhs(x, y)
        k2 = rhs(x, y + (h / 2) * k1)
        k3 = rhs(x, y + (h / 2) * k2)
        k4 = rhs(x, y + h * k3)
        y = y + (h / 6) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return y


def last(x, s):
    return ode(x, s)[-1]


gradient = dg.grad(last)


def prepare(input):
    return array(input["x"]), int(input["s"])


FUNCTIONS = {
    "primal": Function(run=spread(ode), prepare=prepare, output=tolist),
    "gradient": Function(run=spread(gradient), prepare=prepare, output=tolist),
}


def example(n=6, s=3, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.random(n).tolist(), "s": s, "min_runs": 1, "min_seconds": 0}
