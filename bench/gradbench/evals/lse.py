"""lse: LogSumExp a + log(sum(exp(x - a))), a = max(x), and its gradient (reverse mode)."""

import numpy as np

import dualgrad as dg

from ..protocol import Function
from ._util import array, tolist


def lse(x):
    a = dg.stop_gradient(np.max(x))  # the shift cancels in the derivative
    return a + np.log(np.sum(np.exp(x - a)))


gradient = dg.grad(lse)


def prepare(input):
    return array(input["x"])


FUNCTIONS = {
    "primal": Function(run=lse, prepare=prepare, output=float),
    "gradient": Function(run=gradient, prepare=prepare, output=tolist),
}


def example(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.random(n).tolist(), "min_runs": 1, "min_seconds": 0}
