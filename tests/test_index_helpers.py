"""numpy's integer helpers fed by a traced argmax (CS231n's max pool:
``np.unravel_index(np.argmax(window), window.shape)``): integers, no derivative, under every
transform; under dg.jit each new position replays right (a guard on the index read)."""

import numpy as np
import pytest
from cases import central

import dualgrad as dg


def _pool(x):
    idx = np.unravel_index(np.argmax(x), x.shape)
    return x[idx] * 2.0


def _next(x):
    k = np.argmax(x)
    return x.ravel()[np.clip(k + 1, 0, 3)] + x.ravel()[np.ravel_multi_index((1, 1), x.shape)]


XS = [np.array([[0.3, 2.0], [1.5, -0.4]]), np.array([[3.3, 2.0], [1.5, -0.4]]),
      np.array([[0.3, 2.0], [1.5, 9.4]])]


def _grad_by_hand(f, a):
    """Central differences of ``f`` at the array ``a``, entry by entry."""
    return central(lambda v: f(v.reshape(a.shape)), a.ravel()).reshape(a.shape)


@pytest.mark.parametrize("f", [_pool, _next], ids=lambda f: f.__name__[1:])
def test_integer_helpers_of_a_traced_argmax(f):
    j, jg = dg.jit(f), dg.jit(dg.grad(f))
    for x in XS:  # the maximum moves: every call right, recorded or replayed
        assert j(x) == pytest.approx(f(x), rel=1e-15)
        want = _grad_by_hand(f, x)
        np.testing.assert_allclose(jg(x), want, atol=1e-6)
        np.testing.assert_allclose(dg.grad(f)(x), want, atol=1e-6)
