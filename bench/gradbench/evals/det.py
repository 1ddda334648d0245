"""det: the determinant by expansion by minors (cmpad's det_by_minor), and its gradient.

The recursion of the reference expands each minor along its first row, the
columns taken in increasing order with alternating signs.  Here the same
recursion tree is evaluated level by level, every node of it (no minor is
shared between nodes, so the work is the reference's O(ℓ!) products): a node
at depth d has its remaining columns ``rem[d][node]`` (sorted), its children
are contiguous, and

    det(node) = Σ_k (−1)^k · A[d, rem[d][node, k]] · det(child k of node).

Each level is a handful of array operations on dualgrad values (a gather, a
product and a signed sum), so reverse mode records O(ℓ) operations however
large ℓ! is.  The index tables depend only on ℓ and are built once per ℓ.
"""

import functools

import numpy as np

import dualgrad as dg

from ..protocol import Function
from ._util import array, spread, tolist


@functools.lru_cache(maxsize=4)
def tables(ell):
    """rem[d]: (ℓ!/(ℓ−d)!, ℓ−d) remaining columns of every node at depth d (uint8)."""
    rem = [np.arange(ell, dtype=np.uint8)[None, :]]
    for d in range(ell - 1):
        r = rem[-1]
        width = ell - d
        keep = ~np.eye(width, dtype=bool)  # child k drops column position k
        children = np.broadcast_to(r[:, None, :], (r.shape[0], width, width))[:, keep]
        rem.append(np.ascontiguousarray(children.reshape(-1, width - 1)))
    signs = [np.where(np.arange(ell - d) % 2 == 0, 1.0, -1.0) for d in range(ell)]
    return rem, signs


def det(A, ell):
    """The determinant of the ℓ×ℓ matrix A (row-major, any shape with ℓ² entries)."""
    A = A.reshape(ell, ell)
    rem, signs = tables(ell)
    D = A[ell - 1][rem[ell - 1][:, 0]]          # the 1×1 minors at the leaves
    for d in range(ell - 2, -1, -1):
        width = ell - d
        D = (A[d][rem[d]] * D.reshape(-1, width)) @ signs[d]
    return D.reshape(())


gradient = dg.grad(det)


def prepare(input):
    ell = int(input["ell"])
    tables(ell)  # structure only: built outside the timed function, like a compile
    return array(input["A"]), ell


FUNCTIONS = {
    "primal": Function(run=spread(det), prepare=prepare, output=float),
    "gradient": Function(run=spread(gradient), prepare=prepare, output=tolist),
}


def example(ell=4, seed=0):
    rng = np.random.default_rng(seed)
    return {"A": rng.random(ell * ell).tolist(), "ell": ell, "min_runs": 1, "min_seconds": 0}
