"""kmeans: cost Σ_i min_j |C_j − P_i|², and the Newton direction J·H⁻¹.

The squared distances come from |P_i|² + |C_j|² − 2 P_i·C_j (one matrix
product).  ``dir`` differentiates the gradient function again by forward mode
(forward-over-reverse): the Hessian is diagonal, so one JVP of the gradient
along the all-ones direction gives every diagonal entry at once, and the same
JVP returns the gradient itself as its primal output.
"""

import numpy as np

import dualgrad as dg

from ..protocol import Function
from ._util import array, spread, tolist


def cost(centroids, points):
    p2 = np.sum(points * points, axis=1)                     # (n,) constant
    c2 = np.sum(centroids * centroids, axis=1)               # (k,)
    d2 = (p2[:, None] - 2.0 * (points @ centroids.T)) + c2   # (n, k)
    return np.sum(np.min(d2, axis=1))


grad_cost = dg.grad(cost)


def direction(centroids, points):
    g, h = dg.jvp(lambda c: grad_cost(c, points), (centroids,), (np.ones_like(centroids),))
    return g / h


def prepare(input):
    return array(input["centroids"]), array(input["points"])


FUNCTIONS = {
    "cost": Function(run=spread(cost), prepare=prepare, output=float),
    "dir": Function(run=spread(direction), prepare=prepare, output=tolist),
}


def example(k=3, n=12, d=2, seed=0):
    rng = np.random.default_rng(seed)
    points = rng.random((n, d))
    return {"points": points.tolist(), "centroids": points[-k:].tolist(),
            "min_runs": 1, "min_seconds": 0}
