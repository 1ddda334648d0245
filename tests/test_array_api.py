"""The array API that real code uses (issue 23, item 3): ``astype(copy=)``, ``itemsize``/
``nbytes``/``strides``, the in-place methods ``fill``/``sort`` and ``x.shape = S``
(rebindings, as ``x += y``), ``broadcast_arrays``, ``meshgrid``, ``heaviside``,
``trim_zeros``, ``ufunc.reduce`` (``logaddexp.reduce`` is a logsumexp), ``reshape(order='F')``,
``sum/mean(where=)`` and ``matmul(dtype=)``.  Each: numpy's value on plain arrays, and
both modes against finite differences (second order where smooth)."""

import numpy as np
import pytest

import dualgrad as dg

R = np.random.default_rng(23)
A = R.standard_normal((3, 4))
V = np.array([0.0, 0.0, 0.7, -1.3, 0.0, 2.1, 0.0])
M = A > -0.3  # a plain mask
M[:, 0] = True


def _fill(x):
    y = x * 1.0
    y.fill(0.25)
    return y * x


def _fill_traced(x):
    y = x * 1.0
    y.fill(x[0, 1])
    return y * x


def _sort(x):
    y = x * 2.0
    y.sort()
    return y * x


def _sort_axis0(x):
    y = np.sin(x)
    y.sort(axis=0)
    return y


def _set_shape(x):
    y = x * x
    y.shape = (2, -1)
    return y


def _meta(x):
    return x * x.itemsize + x.nbytes / x.strides[0]


CASES = {  # name: (f, args, order)
    "astype copy=False": (lambda x: x.astype(np.float64, copy=False) ** 2, (A,), 2),
    "astype copy=True": (lambda x: np.sin(x.astype(np.float64, copy=True)), (A,), 2),
    "np.astype": (lambda x: np.astype(x, np.complex128).real ** 2, (A,), 2),
    "itemsize/nbytes/strides": (_meta, (A,), 2),
    "fill": (_fill, (A,), 2),
    "fill traced": (_fill_traced, (A,), 2),
    "sort": (_sort, (A,), 1),
    "sort axis=0": (_sort_axis0, (A,), 1),
    "shape =": (_set_shape, (A,), 2),
    "broadcast_arrays": (lambda x, y: np.broadcast_arrays(x, y)[1] * x, (A, A[0]), 2),
    "meshgrid xy": (lambda x, y: np.meshgrid(x, y)[0] * np.meshgrid(x, y)[1],
                    (A[0], A[1, :3]), 2),
    "meshgrid ij": (lambda x, y: np.meshgrid(x, y, indexing="ij")[1] ** 2,
                    (A[0], A[1, :3]), 2),
    "meshgrid sparse": (lambda x, y, z: sum(np.meshgrid(x, y, z, sparse=True, copy=False)),
                        (A[0], A[1, :3], A[2, :2]), 2),
    "heaviside x1": (lambda x: np.heaviside(x, 0.5) * x ** 2, (V + 0.1,), 2),
    "heaviside x2": (lambda y: np.heaviside(V, y) * y, (V[::-1] + 0.5,), 2),
    # x * mask: the zeros stay zeros as the finite differences move x
    "trim_zeros": (lambda x: np.trim_zeros(x * (V != 0)) ** 2, (V + 0.3,), 2),
    "trim_zeros f": (lambda x: np.trim_zeros(x * (V != 0), "f") ** 2, (V + 0.3,), 2),
    "trim_zeros 2-d": (lambda x: np.trim_zeros(x * [[0, 1, 0], [0, 1, 1]], axis=-1) ** 2,
                       (A[:2, :3],), 2),
    "logaddexp.reduce": (lambda x: np.logaddexp.reduce(x, axis=1), (A,), 2),
    "logaddexp.reduce axis 0": (lambda x: np.logaddexp.reduce(x), (A,), 2),
    "logaddexp.reduce all": (lambda x: np.logaddexp.reduce(x, axis=None, keepdims=True),
                             (A,), 2),
    "logaddexp2.reduce": (lambda x: np.logaddexp2.reduce(x, axis=-1), (A,), 2),
    "maximum.reduce": (lambda x: np.maximum.reduce(x, axis=1), (A,), 1),
    "minimum.reduce": (lambda x: np.minimum.reduce(x), (A,), 1),
    "multiply.reduce": (lambda x: np.multiply.reduce(x, axis=1), (A,), 2),
    "reshape F": (lambda x: np.reshape(x, (2, 6), order="F") ** 2, (A,), 2),
    "x.reshape F": (lambda x: np.sin(x.reshape((6, 2), order="F")), (A,), 2),
    "ravel F": (lambda x: np.ravel(x, order="F") ** 3, (A,), 2),
    "reshape F 1-d": (lambda x: np.reshape(x[0], (2, 2), order="F") ** 2, (A,), 2),
    "sum where": (lambda x: np.sum(x ** 2, where=M), (A,), 2),
    "sum where axis": (lambda x: np.sum(np.sin(x), axis=1, where=M, initial=1.0), (A,), 2),
    "mean where": (lambda x: np.mean(x ** 2, where=M), (A,), 2),
    "mean where axis": (lambda x: np.mean(np.exp(x), axis=0, where=M, keepdims=True),
                        (A,), 2),
    "matmul dtype": (lambda x: np.matmul(x, x.T, dtype=np.float64), (A,), 2),
    "matmul dtype complex": (lambda x: np.matmul(x, x.T, dtype=np.complex128).real, (A,), 2),
}


def _values(f, args):
    return dg.jvp(f, args, tuple(np.zeros_like(a) for a in args))[0]


@pytest.mark.parametrize("name", CASES)
def test_value_is_numpys(name):
    f, args, _ = CASES[name]
    want = f(*[a.copy() for a in args])
    got = _values(f, args)
    np.testing.assert_allclose(np.asarray(dg.core.unbox(got)), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_derivatives(name):
    f, args, order = CASES[name]
    dg.check_grads(f, args, order=order)


def test_heaviside_derivative_is_x2s_where_x1_is_zero():
    g = dg.grad(lambda y: np.sum(np.heaviside(V, y)))(np.full(V.shape, 0.5))
    np.testing.assert_array_equal(g, (V == 0).astype(float))
    assert np.all(dg.grad(lambda x: np.sum(np.heaviside(x, 0.5) * x))(V) ==
                  np.heaviside(V, 0.5))


def test_fill_and_sort_rebind_the_box():
    def f(x):
        y = x + 0.0
        z = y  # another reference to the same array sees the write, as in numpy
        y.fill(3.0)
        return np.sum(z * x)
    np.testing.assert_array_equal(dg.grad(f)(A), np.full(A.shape, 3.0))

    def g(x):
        y = x + 0.0
        y.sort(axis=0)
        return np.sum(y[0] * np.arange(4.0))
    want = (A == A.min(axis=0)) * np.arange(4.0)
    np.testing.assert_array_equal(dg.grad(g)(A), want)


def test_astype_copy_false_is_the_same_value():
    seen = []
    dg.grad(lambda x: seen.append(x.astype(x.dtype, copy=False) is x) or np.sum(x))(A)
    assert seen == [True]


def test_metadata_is_the_primals():
    seen = {}

    def f(x):
        y = x.T
        seen.update(itemsize=y.itemsize, nbytes=y.nbytes, strides=y.strides)
        return np.sum(y)
    dg.grad(f)(A)
    assert seen["itemsize"] == 8 and seen["nbytes"] == A.nbytes
    assert len(seen["strides"]) == 2


@pytest.mark.parametrize("call, message", [
    (lambda x: (x + 0.0).sort(order="a"), "structured arrays"),
    (lambda x: (x + 0.0).sort(axis=None), r"np\.sort\(x, axis=None\)"),
    (lambda x: np.sum(x, where=np.ones(A.shape)), "boolean mask"),
    (lambda x: np.mean(x, where=np.ones(A.shape)), "boolean mask"),
    (lambda x: x[0, 0].fill(1.0), "a traced number is immutable"),
    (lambda x: x.astype(np.float32, casting="safe"), "Cannot cast"),
])
def test_refusals(call, message):
    with pytest.raises((TypeError, AttributeError), match=message):
        dg.grad(lambda x: np.sum(call(x)))(A)


@pytest.mark.parametrize("name", ["shape =", "fill", "reshape F", "logaddexp.reduce",
                                  "sum where", "mean where axis", "matmul dtype",
                                  "meshgrid xy", "heaviside x2", "broadcast_arrays"])
def test_jit_and_vmap(name):
    f, args, _ = CASES[name]

    def loss(*a):
        return np.sum(f(*a) ** 2)
    want = dg.grad(loss)(*args)
    np.testing.assert_allclose(dg.jit(dg.grad(loss))(*args), want, rtol=1e-12)
    if name in ("shape =", "fill"):  # in place under vmap: refused (below)
        return
    batched = dg.vmap(dg.grad(loss))(*(np.stack([a, 2 * a]) for a in args))
    np.testing.assert_allclose(batched[0], want, rtol=1e-12)


@pytest.mark.parametrize("method, fix", [("sort", r"x = np\.sort\(x\)"),
                                         ("fill", r"np\.full_like")])
def test_in_place_methods_under_vmap_name_the_fix(method, fix):
    def f(x):
        y = x * 1.0
        getattr(y, method)(*([0.0] if method == "fill" else []))
        return np.sum(y)
    with pytest.raises(TypeError, match=fix):
        dg.vmap(dg.grad(f))(np.stack([A, A]))


def test_sort_and_take_along_axis_replay_under_jit():
    """np.sort and x.sort() under dg.jit(dg.grad): the argsort is a graph node, so a new
    order replays the same graph (it used to recurse forever)."""
    w = np.arange(4.0)
    f = lambda x: np.sum(np.sort(x) * w)

    def g(x):
        y = x * 1.0
        y.sort()
        return np.sum(np.take(y, [3, 0]) * np.take_along_axis(x, np.argsort(x), 0)[:2])
    for fn in (f, g):
        jg = dg.jit(dg.grad(fn))
        for x in ([3.0, 1.0, 2.0, 0.5], [0.1, 0.4, -2.0, 9.0], [5.0, 4.0, 3.0, 2.0]):
            x = np.array(x)
            np.testing.assert_allclose(jg(x), dg.grad(fn)(x), rtol=1e-15)
        assert jg.trace_count == 1


# -- numpy's methods and operators that call a numpy function: x.argmax(), x // y, divmod
METHOD_CASES = {  # name: f(x) of a float vector, smooth away from x's jumps
    "argmax": lambda x: x[x.argmax()] * 2.0,
    "argmin": lambda x: x[x.argmin()] ** 2,
    "argsort": lambda x: np.sum(x[x.argsort()] * np.arange(3.0)),
    "nonzero": lambda x: np.sum(x[(x > 0).nonzero()] ** 2),
    "round": lambda x: np.sum(x.round(1) * x),
    "all/any": lambda x: np.sum(x) * float((x > -5).all()) + float(x.any()),
    "x // y": lambda x: np.sum(x // 2.0 * x),
    "y // x": lambda x: np.sum(7.0 // x * x),
    "divmod": lambda x: np.sum(divmod(x, 2.0)[1] * x),
    "rdivmod": lambda x: np.sum(divmod(7.0, x)[0] * x),
}
POINT = np.array([1.3, -2.2, 3.6])


@pytest.mark.parametrize("name", METHOD_CASES)
def test_numpy_methods_and_operators_of_traced_arrays(name):
    f = METHOD_CASES[name]
    assert dg.grad(f)(POINT).shape == (3,)
    dg.check_grads(f, (POINT,))  # forward and reverse against central differences
    np.testing.assert_allclose(dg.jit(dg.grad(f))(POINT), dg.grad(f)(POINT), rtol=1e-13)
    batch = np.stack([POINT, POINT + 0.05])
    np.testing.assert_allclose(dg.vmap(dg.grad(f))(batch),
                               [dg.grad(f)(b) for b in batch], rtol=1e-13)
    value, _ = dg.value_and_grad(f)(POINT)
    assert value == f(POINT) and dg.jit(f)(POINT) == f(POINT)  # numpy's own numbers
