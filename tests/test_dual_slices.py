"""Forward over reverse (hessian, hvp, jacfwd of grad): the sweep's cotangents are Duals,
and slices of x that overlap (``x[1:] - x[:-1]``) are added in place into one Dual of x's
shape (``slices.DualSum``) instead of a scatter into zeros and an add per slice.  The
derivatives are the rules' own, bit for bit: each function is differentiated with and
without the in-place path."""

import numpy as np
import pytest

import dualgrad as dg
from dualgrad import backend
from dualgrad.core.tree import tree_flatten
from dualgrad.transforms import reverse

rng = np.random.default_rng(7)


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def stencil(x):  # three overlapping slices, one of them also read whole
    return np.sum(np.sin(x[2:]) * x[:-2] + x[1:-1] ** 3) + np.sum(x * x[::-1])


def rows(x):  # 2-D: overlapping slices along axis 0, then along axis 1
    return np.sum((x[1:, :] - x[:-1, :]) ** 2) + np.sum(x[:, 1:] * np.cos(x[:, :-1]))


def ints(x):  # integer indices (an axis squeezed) beside a slice over them
    return x[0] * x[1] * x[2] + np.sum(x[:2] ** 2) + np.sum(np.exp(x[1:]) * x[:-1])


def constant_part(x):  # a slice whose cotangent has no tangent (linear in x) beside others
    return np.sum(3.0 * x[1:]) + np.sum(x[:-1] ** 3) + np.sum(x[1:] * x[:-1])


FUNCTIONS = [(rosenbrock, (40,)), (stencil, (30,)), (rows, (5, 7)), (ints, (6,)),
             (constant_part, (9,))]


def without_in_place(monkeypatch):
    monkeypatch.setattr(reverse, "add_dual_slice", lambda cts, j, e, g: False)


def summed_by_numba(monkeypatch):
    """backend.sum_slices runs its loop at every size (where the numba backend is on)."""
    use = backend._use
    monkeypatch.setattr(backend, "_use", lambda k, c, n: k.startswith("slices.")
                        or use(k, c, n))


@pytest.mark.parametrize("loop", [False, True], ids=["measured", "summed_by_numba"])
@pytest.mark.parametrize("f,shape", FUNCTIONS, ids=[f.__name__ for f, _ in FUNCTIONS])
def test_hessian_and_hvp_are_the_rules_bits(f, shape, loop, monkeypatch):
    x = rng.standard_normal(shape)
    v = rng.standard_normal(shape)
    if loop:
        summed_by_numba(monkeypatch)
    calls = []
    real = reverse.add_dual_slice
    monkeypatch.setattr(reverse, "add_dual_slice",
                        lambda *a: calls.append(real(*a)) or calls[-1])
    got = (dg.hessian(f)(x), dg.hvp(f, (x,), (v,)), dg.jacfwd(dg.grad(f))(x))
    assert any(calls)  # the in-place path was taken
    without_in_place(monkeypatch)
    want = (dg.hessian(f)(x), dg.hvp(f, (x,), (v,)), dg.jacfwd(dg.grad(f))(x))
    for a, b in zip(tree_flatten(got)[0], tree_flatten(want)[0]):
        np.testing.assert_array_equal(a, b)


def test_the_rosenbrock_hessian_against_its_formula():
    x = rng.standard_normal(12)
    n = len(x)
    H = np.zeros((n, n))
    for i in range(n - 1):
        H[i, i] += 1200.0 * x[i] ** 2 - 400.0 * x[i + 1] + 2.0
        H[i + 1, i + 1] += 200.0
        H[i, i + 1] = H[i + 1, i] = -400.0 * x[i]
    np.testing.assert_allclose(dg.hessian(rosenbrock)(x), H, rtol=1e-12, atol=1e-9)


def test_two_perturbations_never_mix():
    # jvp over jvp over grad: the outer level's Duals may hold raw arrays too; a slice's
    # cotangent of one level is never added into the other's tangent
    x = rng.standard_normal(8)
    u, w = rng.standard_normal(8), rng.standard_normal(8)

    def d3(x):  # third derivative of stencil along u, w: (H(x) u) . w differentiated
        return dg.jvp(lambda y: dg.jvp(dg.grad(stencil), (y,), (u,))[1], (x,), (w,))[1]
    h = 1e-4
    fd = (dg.hvp(stencil, (x + h * w,), (u,))[1] - dg.hvp(stencil, (x - h * w,), (u,))[1]) \
        / (2 * h)
    np.testing.assert_allclose(d3(x), fd, rtol=1e-6, atol=1e-6)
