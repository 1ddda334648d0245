"""Augmented assignment (``+=``, ``-=``, ``*=``, ``/=``, ``**=``) on a traced array changes
that array, as numpy's does: every other name for it sees the change (an alias, a list or
dict entry, views in either direction).

Under ``dg.jit`` the operator rebound only the one name it was written with: ``z = y;
z += 1`` left ``y`` as it was, a wrong value and gradient, silently (found by the red team).
numpy itself on plain arrays is the oracle: its value, and central differences.
"""

import numpy as np
import pytest
from cases import central as _central

import dualgrad as dg

C = np.arange(1.0, 5.0)


def _alias(w):
    y = w * 1.0
    z = y
    z += 1.0
    z *= w
    return np.sum(y * C)


def _in_a_dict(w):
    y = w * 1.0
    d = {"a": y}
    y -= w ** 2
    return np.sum(d["a"] * C)


def _in_a_list(w):
    y = w * 1.0
    keep = [y]
    y /= 1.0 + w ** 2
    y **= 2.0
    return np.sum(keep[0] * C)


def _view_updates_base(w):
    y = w * 1.0
    v = y[1:3]
    v *= 3.0
    return np.sum(y * C)


def _base_updates_view(w):
    y = w * 1.0
    v = y[1:3]
    y += w
    return np.sum(v * C[:2])


def _write_through_view_after(w):
    y = w * 1.0
    v = y[1:3]
    y *= 2.0
    v[0] = 5.0 * w[3]
    return np.sum(y * C)


def _transpose_sees_it(w):
    y = (w * 1.0).reshape(2, 2)
    t = y.T
    y *= 2.0
    return np.sum(t * C.reshape(2, 2))


def _helper_updates_argument(w):
    def scale(a, s):  # a helper that updates its argument in place
        a *= s
    y = np.sin(w)
    scale(y, w)
    return np.sum(y * C)


CASES = [_alias, _in_a_dict, _in_a_list, _view_updates_base, _base_updates_view,
         _write_through_view_after, _transpose_sees_it, _helper_updates_argument]
W = np.array([0.3, -0.7, 1.1, 0.5])


@pytest.mark.parametrize("f", CASES, ids=lambda f: f.__name__[1:])
def test_in_place_operators_reach_every_name(f):
    want = _central(f, W)
    j = dg.jit(f)
    for w in (W, 2.0 * W):  # the recording, then a replay with new inputs
        np.testing.assert_allclose(j(w), f(w), rtol=1e-13)
    for t in (dg.grad, lambda h: dg.jit(dg.grad(h)), dg.jacrev):
        np.testing.assert_allclose(t(f)(W), want, rtol=1e-6, atol=1e-8)
