"""Real numpy programs, unmodified: arrays built from traced values with np.array, and
in-place updates on traced arrays.

Each program is differentiated in reverse mode (``grad``), forward mode (``jacfwd``) and
to second order (forward-over-reverse and reverse-over-reverse), against central finite
differences.
"""

import numpy as np
import pytest

import dualgrad as dg

P0 = np.array([1.1, 0.4, 0.1, 0.4])
Z0 = np.array([1.0, 1.5])


def lotka_volterra(z, p):
    x, y = z[0], z[1]
    a, b, c, d = p[0], p[1], p[2], p[3]
    return np.array([a * x - b * x * y, c * x * y - d * y])


def rk4_trajectory(p, n=5, dt=0.1):
    traj = np.zeros_like(np.ones((n + 1, 2)) * p[0])  # a traced array to write into
    traj[0] = Z0
    for i in range(n):
        z = traj[i]
        k1 = lotka_volterra(z, p)
        k2 = lotka_volterra(z + dt / 2 * k1, p)
        k3 = lotka_volterra(z + dt / 2 * k2, p)
        k4 = lotka_volterra(z + dt * k3, p)
        traj[i + 1] = z + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return np.sum(traj[-1] ** 2) + np.sum(traj)


def jacobian_rows(x):
    rows = []
    for i in range(3):
        rows.append([x[i] * x[j] for j in range(3)])
    J = np.array(rows)
    return np.sum(np.tanh(x) * (J @ x))


def _in_place_ops(x):
    y = x * 1.0
    y[0] = x[1] ** 2                    # y[i] = v
    y[x > 0.5] = 0.3 * x[x > 0.5]     # y[mask] = v
    y[1:3] += np.sin(x[:2])             # y[a:b] += v
    y[[0, 0, 2]] += x[:3]               # repeated index: numpy's buffered semantics
    y += x                               # x += y
    y *= 2.0
    y /= 1.5 + x ** 2
    y -= 0.1
    y **= 2
    np.add.at(y, [1, 1], x[0])          # unbuffered: the repeated index adds twice
    return np.sum(y * np.cos(x))


PROGRAMS = {
    "ode_rhs": (lambda p: np.sum(lotka_volterra(Z0, p) ** 2), P0),
    "ode_rhs_vector": (lambda p: np.sum(np.sin(np.array([p[:2] * p[2], p[2:] ** 2]))), P0),
    "rk4_traj_setitem": (rk4_trajectory, P0),
    "jacobian_row_by_row": (jacobian_rows, np.array([0.3, -0.8, 1.2])),
    "nested_with_constants": (lambda x: np.sum(np.array([[x[0], 2.0], [x[1] * x[0], 1.0]])
                                                @ np.array([0.5, -1.0]) * x), Z0),
    "asarray": (lambda x: np.sum(np.asarray(x) ** 3), Z0),
    "mean_std_var_of_list": (lambda x: np.mean([x, x ** 2]) + np.std([x, np.sin(x)])
                             + np.var([x ** 2, x]), Z0),
    "mean_of_scalars_stacked": (lambda x: np.mean(np.stack([x[0] ** 2, x[1], 3.0])), Z0),
    "norm_of_list": (lambda x: np.linalg.norm([x[0] ** 2, x[1], 3.0]), Z0),
    "sum_of_list": (lambda x: np.sum([x[0] * x[1], np.exp(x[1])]), Z0),
    "concatenate_list": (lambda x: np.sum(np.concatenate([[0.5], x]) ** 2 * np.arange(3)), Z0),
    "matmul_list": (lambda x: (x @ [1.0, 2.0]) ** 2 + ([3.0, -1.0] @ x) ** 3, Z0),
    "r_": (lambda x: np.sum(np.r_[0.5, x, x[0] ** 2] ** 3), Z0),
    "c_": (lambda x: np.sum(np.c_[x, x ** 2] @ np.array([1.0, -2.0])), Z0),
    "array_then_ufuncs": (lambda x: np.sum(np.exp(np.array([x[0], x[1] ** 2])) / 2), Z0),
    "in_place_ops": (_in_place_ops, np.array([0.3, 0.7, -0.4, 1.1])),
}


def _check(f, x):
    num = dg.numerical_jacobian(f, (x,))[0].reshape(x.shape)
    np.testing.assert_allclose(dg.grad(f)(x), num, rtol=1e-6, atol=1e-7, err_msg="rev")
    np.testing.assert_allclose(dg.jacfwd(f)(x), num, rtol=1e-6, atol=1e-7, err_msg="fwd")
    g = dg.grad(f)
    h_num = dg.numerical_jacobian(g, (x,))[0].reshape(x.shape * 2)
    for how, h in {"fwd-over-rev": dg.jacfwd(g)(x), "rev-over-rev": dg.jacrev(g)(x),
                   "fwd-over-fwd": dg.jacfwd(dg.jacfwd(f))(x)}.items():
        np.testing.assert_allclose(h, h_num, rtol=1e-5, atol=1e-6, err_msg=how)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_differentiates(name):
    f, x = PROGRAMS[name]
    _check(f, x)


def test_ode_rhs_jacobian_both_modes():
    J = np.array([[1.0, -1.5, 0.0, 0.0], [0.0, 0.0, 1.5, -1.5]])
    np.testing.assert_allclose(dg.jacfwd(lambda p: lotka_volterra(Z0, p))(P0), J)
    np.testing.assert_allclose(dg.jacrev(lambda p: lotka_volterra(Z0, p))(P0), J)


def test_array_of_traced_values_looks_like_numpy():
    seen = {}

    def f(x):
        a = np.array([x[0], x[1] * 2.0])
        seen["shape"], seen["dtype"] = a.shape, a.dtype
        b = np.array([x, x])
        seen["b"] = b.shape
        return np.sum(a) + np.sum(b)
    dg.grad(f)(Z0)
    assert seen["shape"] == (2,) and seen["b"] == (2, 2)
    assert seen["dtype"] == np.dtype(object)  # numpy's object array, packed later
    plain = np.array([1.0, 2.0])
    assert np.array([plain, plain]).dtype == np.float64  # plain values: untouched


def test_packing_records_a_few_entries():
    """np.array([x, y]) of two traced numbers records no more than np.stack would."""
    with dg.Tape() as tape:
        x = tape.watch(1.0)
        y = x * 2.0
        n = len(tape)
        z = np.array([x, y]) @ np.array([1.0, 1.0])  # packed: a reshape each, a concatenate
        assert len(tape) - n <= 4
        z = z * x
    np.testing.assert_allclose(tape.gradient(z, x), 6.0)


def test_aliasing_rule():
    """As in numpy: a view taken before an in-place write sees it (y[1:] is a view), as
    does every reference to the written box itself; np.array(y) is a copy, and does not.
    (Before views were linked, the view kept the old values, as JAX's copies do, which
    differs from what numpy computes for the same code.)"""
    seen = {}

    def f(x):
        y = x * 1.0
        alias = y
        view = y[1:]
        snap = np.array(y)
        y[1] = 10.0 * x[0]
        seen["view"], seen["alias"] = dg.stop_gradient(view), dg.stop_gradient(alias)
        return np.sum(view) + 100.0 * np.sum(alias) + 1000.0 * np.sum(snap)
    x = np.array([1.0, 2.0, 3.0])
    g = dg.grad(f)(x)
    np.testing.assert_allclose(seen["view"], [10.0, 3.0])
    np.testing.assert_allclose(seen["alias"], [1.0, 10.0, 3.0])
    np.testing.assert_allclose(f(x), 13.0 + 100.0 * 14.0 + 1000.0 * 6.0)  # numpy's own
    # d/dx: view -> (10,0,1); alias -> 100*(1 + 10, 0, 1); snap -> 1000*(1,1,1)
    np.testing.assert_allclose(g, [10.0 + 1100.0 + 1000.0, 1000.0, 1.0 + 100.0 + 1000.0])
    np.testing.assert_allclose(dg.jacfwd(f)(x), g)


def test_writes_do_not_touch_the_inputs():
    x = np.array([1.0, 2.0])

    def f(x):
        x[0] = 5.0 * x[1]  # rebinds the traced x; the caller's array is untouched
        return np.sum(x ** 2)
    np.testing.assert_allclose(dg.grad(f)(x), [0.0, 50.0 * 2.0 + 2.0 * 2.0])
    np.testing.assert_allclose(dg.jacfwd(f)(x), [0.0, 104.0])
    np.testing.assert_array_equal(x, [1.0, 2.0])


def test_traced_numbers_are_immutable():
    def f(x):
        s = x[0]
        t = s
        s += 1.0  # a number: rebinds s only
        return t * s
    np.testing.assert_allclose(dg.grad(f)(Z0), [2 * Z0[0] + 1.0, 0.0])


# numpy's zeros bound at import (from numpy import zeros): its arrays stay plain inside
# transforms, where np.zeros's are writable (test_preallocated_unmodified.py)
plain_zeros = np.zeros


@pytest.mark.parametrize("program, match", [
    (lambda x: _fill(plain_zeros(2), 0, x[0]), "plain numpy array"),
    (lambda x: _fill(plain_zeros((2, 2)), 0, x), "plain float array"),
    (lambda x: _fill(plain_zeros(2), slice(None), x), "plain float array"),
    (lambda x: _acc(plain_zeros(2), x), "acc = acc \\+ x"),
    (lambda x: np.array([x[0], x[1]], dtype=float), "plain float array"),
    (lambda x: np.mean([x[0], x[1]]), "np.mean\\(np.stack"),
    (lambda x: np.std([x[0], x[1]]), "np.var\\(np.stack"),
])
def test_plain_arrays_receiving_traced_values_raise(program, match):
    with pytest.raises((TypeError, ValueError)) as info:
        dg.grad(lambda x: np.sum(program(x)))(Z0)
    text = str(info.value) + str(info.value.__cause__ or "")
    assert __import__("re").search(match, text), text


def _fill(out, i, v):
    out[i] = v
    return out


def _acc(acc, v):
    acc += v
    return acc


def test_tape_api_with_in_place_and_lists():
    with dg.Tape() as tape:
        x = tape.watch(np.array([1.0, 2.0]))
        y = np.zeros_like(x)
        y[0] = x[1] * 3.0
        y[1] += x[0]
        s = np.sum(np.array([y[0], y[1] ** 2]))
    np.testing.assert_allclose(tape.gradient(s, x), [2.0, 3.0])
    with dg.Tape() as tape:
        x = tape.watch(np.array([1.0, 2.0]))
        with pytest.raises(TypeError, match="watched"):
            x[0] = 3.0
