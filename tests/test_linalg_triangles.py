"""Factorisations that read one triangle of their matrix: the derivative is taken at the
triangle numpy reads, with the symmetrised convention used for every such function (the
derivative of the function of (a + aᵀ)/2 built from that triangle).

``np.linalg.cholesky(a, upper=True)`` read the upper triangle for its value but took the
derivative at the lower one (found by the red team): wrong wherever the two differ.
"""

import numpy as np
import pytest
from cases import central

import dualgrad as dg

RNG = np.random.default_rng(11)
M = RNG.standard_normal((3, 3))
A = M @ M.T + 3 * np.eye(3) + np.triu(M, 1)  # upper triangle != lower triangle


def _central_matrix(f, a):
    """Central differences of ``f`` at the array ``a``, entry by entry."""
    return central(lambda v: f(v.reshape(a.shape)), a.ravel()).reshape(a.shape)


CASES = {
    "cholesky upper": lambda a: np.sum(np.sin(np.linalg.cholesky(a, upper=True))),
    "cholesky lower": lambda a: np.sum(np.sin(np.linalg.cholesky(a))),
    "cholesky upper, batched": lambda a: np.sum(np.cos(np.linalg.cholesky(
        np.stack([a, 2.0 * a]), upper=True))),
}


@pytest.mark.parametrize("name", CASES)
def test_one_triangle_derivatives(name):
    f = CASES[name]
    ref = _central_matrix(f, A)
    sym = (ref + ref.T) / 2  # the symmetrised convention
    value, g = dg.value_and_grad(f)(A)
    assert value == pytest.approx(f(A), rel=1e-13)
    np.testing.assert_allclose(g, sym, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dg.jacfwd(f)(A), sym, rtol=1e-6, atol=1e-7)
    t = np.zeros((3, 3))
    t[0, 2] = t[2, 0] = 0.5  # a symmetric direction: the convention and plain FD agree
    np.testing.assert_allclose(dg.jvp(f, (A,), (t,))[1], np.sum(ref * t), rtol=1e-6)
