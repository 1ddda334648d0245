"""Red team, session 5: silent wrong numbers found by writing numpy programs a user would
write and comparing against JAX, central differences or numpy itself.

1. Results that share memory.  ``g = dg.grad(loss, argnums=(0, 1))(a, b)`` for
   ``loss = sum((a + b) ** 2)`` returned the *same* array for both gradients (the add's
   cotangent, passed through to both leaves), likewise a pytree of parameters, ``jacrev``,
   ``Tape.gradient`` and ``backward()``'s ``.grad``; ``vjp_fn(ct)`` of ``x + 1`` returned
   the caller's ``ct`` itself and ``jvp``/``linearize`` of ``x + 1`` the caller's tangent.
   numpy gives every result its own memory, and an optimiser written in numpy updates in
   place (``g *= lr``, ``g /= batch``, clipping): the second gradient was scaled twice, or
   the caller's cotangent changed under it -- silently.  dg.jit's replay likewise returned
   one array for two outputs the optimiser's CSE merged (``f = lambda x: (2 * x, 2 * x)``).
   Now every array a transform returns owns its memory apart from the others and from the
   caller's seeds (core/buffers.distinct; compiler/compiled._copies for dg.jit).
"""

import copy

import numpy as np
import pytest
from cases import central

import dualgrad as dg

X = np.array([0.5, -1.0, 2.0])
Y = np.array([1.0, 2.0, 3.0])
T = np.array([0.25, 1.0, -2.0])


def _sum_sq(a, b):
    return np.sum((a + b) ** 2)


def _tape_gradient():
    with dg.Tape() as tape:
        a, b = tape.watch(X.copy()), tape.watch(Y.copy())
        s = _sum_sq(a, b)
    return list(tape.gradient(s, [a, b])), []


def _tape_backward():
    with dg.Tape() as tape:
        a, b = tape.watch(X.copy()), tape.watch(Y.copy())
        s = np.sum(a + b)
    s.backward()
    return [a.grad, b.grad], []


def _jit_twice(f, *args):
    jf = dg.jit(f)
    jf(*args)
    return jf(*args)


# name -> () -> (the arrays a transform returned, the caller's arrays it was given)
SHARING = {
    "grad argnums=(0, 1) of sum((a + b)**2)":
        lambda: (list(dg.grad(_sum_sq, argnums=(0, 1))(X, Y)), [X, Y]),
    "grad of a dict of parameters":
        lambda: (list(dg.grad(lambda p: _sum_sq(p["w"], p["b"]))({"w": X, "b": Y}).values()),
                 [X, Y]),
    "value_and_grad, a list of parameters":
        lambda: (dg.value_and_grad(lambda p: np.sum(p[0] + p[1] * 1.0))([X, Y])[1], [X, Y]),
    "vjp_fn of x + y: both cotangents":
        lambda: (list(dg.vjp(lambda a, b: a + b, X, Y)[1](T)), [T, X, Y]),
    "vjp_fn of x + 1: the caller's cotangent":
        lambda: (list(dg.vjp(lambda a: a + 1.0, X)[1](T)), [T, X]),
    "vjp_fn of a reshape: a view of the caller's cotangent":
        lambda: (list(dg.vjp(lambda a: a.reshape(3, 1), X)[1](T.reshape(3, 1))), [T, X]),
    "jacrev argnums=(0, 1) of x + y":
        lambda: (list(dg.jacrev(lambda a, b: a + b, argnums=(0, 1))(X, Y)), [X, Y]),
    "jvp of x + 1: the caller's tangent":
        lambda: ([dg.jvp(lambda a: a + 1.0, (X,), (T,))[1]], [T, X]),
    "jvp of two outputs x + 1, x - 2":
        lambda: (list(dg.jvp(lambda a: (a + 1.0, a - 2.0), (X,), (T,))[1]), [T, X]),
    "linearize of x + 1: the caller's tangent":
        lambda: ([dg.linearize(lambda a: a + 1.0, X)[1](T)], [T, X]),
    "Tape.gradient of sum((a + b)**2)": _tape_gradient,
    "backward(): a.grad and b.grad": _tape_backward,
    "jit(grad) argnums=(0, 1), first call":
        lambda: (list(dg.jit(dg.grad(_sum_sq, argnums=(0, 1)))(X, Y)), [X, Y]),
    "jit(grad) argnums=(0, 1), replay":
        lambda: (list(_jit_twice(dg.grad(_sum_sq, argnums=(0, 1)), X, Y)), [X, Y]),
    "grad(jit(f)) argnums=(0, 1)":
        lambda: (list(dg.grad(dg.jit(_sum_sq), argnums=(0, 1))(X, Y)), [X, Y]),
    "jit(f) with two equal outputs (CSE), first call":
        lambda: (list(dg.jit(lambda a: (a * 2.0, a * 2.0))(X)), [X]),
    "jit(f) with two equal outputs (CSE), replay":
        lambda: (list(_jit_twice(lambda a: (a * 2.0, a * 2.0), X)), [X]),
}


@pytest.mark.parametrize("name", SHARING)
def test_results_own_their_memory(name):
    results, given = SHARING[name]()
    arrays = [r for r in results if isinstance(r, np.ndarray) and r.size]
    assert len(arrays) == len(results)
    for i, r in enumerate(arrays):
        for j in range(i):
            assert not np.shares_memory(r, arrays[j]), f"results {j} and {i} share memory"
        for k, a in enumerate(given):
            assert not np.shares_memory(r, a), f"result {i} shares memory with argument {k}"


def test_in_place_update_of_one_gradient_leaves_the_other():
    """The program the sharing broke: an in-place SGD step, leaf by leaf."""
    params = {"w": X.copy(), "b": Y.copy()}
    grads = dg.grad(lambda p: _sum_sq(p["w"], p["b"]))(params)
    want = 2 * (X + Y)
    for k in params:
        grads[k] *= 0.1
        params[k] -= grads[k]
    np.testing.assert_allclose(params["w"], X - 0.1 * want)
    np.testing.assert_allclose(params["b"], Y - 0.1 * want)


# 2. dg.jit's replay changed an output's shape: the ``sink`` pass (compiler/passes.py) moves
#    ``reshape(e(a, b), s)`` onto e's arguments, and when none of them is an array (numpy
#    scalars: a 0-d where/astype of reductions) nothing carries the new shape, so from the
#    second call on ``np.where(s > 0, s, 0.0).reshape(1)`` came back with shape () (and a
#    concatenate of it raised).  Fixed in passes.sink (e0cf735): a reshape is not moved onto
#    an elementwise node of numbers only.
JIT_SHAPES = {
    "where of numbers, reshape(1)":
        lambda w: np.where(np.sum(w) > 0, np.sum(w), 0.0).reshape(1) * 2.0,
    "astype of a sum, reshape(1, 1)":
        lambda w: np.sum(w ** 2).astype(np.float32).reshape(1, 1),
    "where of entries, reshape(1, 1)":
        lambda w: np.where(w[0] > 0, w[1] * w[0], w[2]).reshape(1, 1),
    "concatenate of a reshaped where":
        lambda w: np.concatenate([np.where(np.sum(w) > 0, np.sum(w) * 3, 0.0).reshape(1), w]),
}


@pytest.mark.parametrize("name", JIT_SHAPES)
def test_jit_replay_keeps_output_shapes(name):
    f = JIT_SHAPES[name]
    jf = dg.jit(f)
    want = f(X)
    for _ in range(2):  # the recording's call, then the replay
        got = jf(X)
        assert np.shape(got) == np.shape(want)
        np.testing.assert_allclose(got, want, rtol=1e-6)


# 3. A traced number as a dict key or a set member.  numpy's ``y[0]`` is a scalar that
#    hashes by value (``weights.get(label)``, ``x in {0.3, 0.5}``); a traced one hashed by
#    identity, so the lookup silently missed: ``dg.jit(f)(x, labels)`` with
#    ``w = class_weight.get(labels[0], 1.0)`` took the default for every label (dg.jit
#    traces integer arrays too), and a grad of ``x[0] * (1.0 if x[0] in {0.3} else 2.0)``
#    took the other branch.  Now a traced number hashes by its value (under dg.jit a
#    guard, as bool()), and a traced array is unhashable, as numpy's.
WEIGHT = {0: 2.0, 1: 5.0}


def _by_label(x, labels):
    return np.sum(x * WEIGHT.get(labels[0], -1.0)) + np.sum(x * (labels[1] in WEIGHT))


def _by_value(x):
    return x[0] * (1.0 if x[0] in {0.5: "a"} else 2.0) + x[1] * {-1.0: 3.0}.get(x[1], 7.0)


LABELS = [np.array([1, 0]), np.array([0, 5]), np.array([7, 1])]
HASHED = {
    "jit, a dict keyed by integer labels":
        lambda: [(dg.jit(_by_label)(X, y), _by_label(X, y)) for y in LABELS],
    "jit(grad), a dict keyed by integer labels":
        lambda: [(dg.jit(dg.grad(_by_label))(X, y),
                  np.full(3, WEIGHT.get(y[0], -1.0) + (y[1] in WEIGHT))) for y in LABELS],
    "grad, a number in a dict and a set": lambda: [(dg.grad(_by_value)(X), [1.0, 3.0, 0.0])],
    "jacfwd, a number in a dict and a set":
        lambda: [(dg.jacfwd(_by_value)(X), [1.0, 3.0, 0.0])],
    "jit, a number in a dict and a set":
        lambda: [(dg.jit(_by_value)(v), _by_value(v)) for v in (X, X + 1.0, X)],
}


@pytest.mark.parametrize("name", HASHED)
def test_traced_numbers_hash_by_value(name):
    for got, want in HASHED[name]():
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("transform", [dg.grad, dg.jit])
def test_traced_arrays_are_unhashable(transform):
    with pytest.raises(TypeError, match="unhashable"):
        transform(lambda x: np.sum(x) * {x: 1}[x])(X)


def test_traced_numbers_under_vmap_are_refused():
    """One hash per example: refused as bool() is (it took the default, silently)."""
    with pytest.raises(TypeError, match="one answer per example"):
        dg.vmap(lambda x, y: x * WEIGHT.get(y, -1.0))(X[:2], np.array([0, 1]))


# 4. Results that must be copies were the argument itself: x.flatten() of a 1-D x (ravel
#    returns x where nothing changes), np.concatenate([x]) / np.hstack([x]), np.nan_to_num
#    and np.cumsum/np.cumprod of one element; and copy.deepcopy(x) copied the trace, so
#    the copy was a constant (jacfwd: a silent zero derivative; grad: a pickling error).
#    A write into the result changed x, silently (value and gradient wrong in every mode).
COPIES = {
    "x.flatten() of a 1-D x": lambda y: y.flatten(),
    "x.flatten('F') of a 1-D x": lambda y: y.flatten("F"),
    "x[None].squeeze().flatten()": lambda y: y[None].squeeze().flatten(),
    "np.concatenate([x])": lambda y: np.concatenate([y]),
    "np.hstack([x])": lambda y: np.hstack([y]),
    "np.nan_to_num(x)": np.nan_to_num,
    "np.cumprod(x[:1])": lambda y: np.cumprod(y[:1]),
    "np.cumsum(x[:1])": lambda y: np.cumsum(y[:1]),
    "copy.deepcopy(x)": copy.deepcopy,
}


def _write_into(make):
    def f(w):
        y = w * 1.0
        z = make(y)
        z[0] = 5.0 * w[1]
        return np.sum(y * np.arange(1.0, 4.0)) + np.sum(z ** 2)
    return f


# the gradient of a function of X, four ways (each row checked against central differences)
GRADIENTS = {"grad": dg.grad, "jacfwd": dg.jacfwd, "jit(grad)": lambda f: dg.jit(dg.grad(f)),
             "vmap(grad)": lambda f: lambda x: dg.vmap(dg.grad(f))(np.stack([x, x]))[1]}


@pytest.mark.parametrize("name", COPIES)
@pytest.mark.parametrize("mode", GRADIENTS)
def test_a_copy_is_a_copy(name, mode):
    f = _write_into(COPIES[name])
    want = central(f, X)
    run = GRADIENTS[mode]
    np.testing.assert_allclose(run(f)(X), want, rtol=1e-6, atol=1e-8)
    if mode == "grad":
        assert dg.value_and_grad(f)(X)[0] == pytest.approx(f(X), rel=1e-13)


# 5. np.nan_to_num under dg.vmap left every NaN and infinity in place (it read the batch's
#    raw values as an object array, whose dtype is no float: "nothing to replace").
NAN_INPUTS = np.array([[0.0, 1.0, -1.0], [2.0, -3.0, 0.0]])


@pytest.mark.parametrize("kw", [{}, {"nan": 7.0, "posinf": 3.0, "neginf": -4.0}])
def test_nan_to_num_under_vmap_and_jit(kw):
    f = lambda x: np.nan_to_num(np.log(x) * np.sign(x + 0.5), **kw)  # noqa: E731
    with np.errstate(all="ignore"):
        want = np.stack([f(x) for x in NAN_INPUTS])
        np.testing.assert_array_equal(dg.vmap(f)(NAN_INPUTS), want)
        jf = dg.jit(f)
        for x in (NAN_INPUTS[0], NAN_INPUTS[1], NAN_INPUTS[0] + 1.0):
            np.testing.assert_array_equal(jf(x), f(x))
        g = lambda x: np.sum(np.nan_to_num(np.sin(x) / x, **kw))  # noqa: E731
        gx = np.array([[0.0, 1.0], [2.0, 0.5]])
        np.testing.assert_allclose(dg.vmap(dg.grad(g))(gx), np.stack([dg.grad(g)(x) for x in gx]))


# 6. (An error where numpy computes, not a wrong number.)  A ufunc writing into a traced
#    array, np.add(y, w, out=y), was refused with advice for a plain out; it is y[...] =
#    y + w now, a write into y (and through a view into its base).
def _agrees(f, mode):
    """``f``'s gradient by ``mode`` against central differences, its value against numpy's."""
    run = GRADIENTS[mode]
    np.testing.assert_allclose(run(f)(X), central(f, X), rtol=1e-6, atol=1e-8)
    assert dg.value_and_grad(f)(X)[0] == pytest.approx(f(X), rel=1e-13)


def _out_into_view(w):
    y = w * 1.0
    v = y[1:]
    np.sin(v, out=v)
    np.multiply(y, w, out=y)
    return np.sum(y * np.arange(1.0, 4.0))


def _out_overlapping(w):
    y = np.outer(w, w)
    np.subtract(y, y.T * 2.0, out=y)
    np.maximum(y, -0.5, out=y)
    return np.sum(y * np.arange(9.0).reshape(3, 3))


@pytest.mark.parametrize("f", [_out_into_view, _out_overlapping])
@pytest.mark.parametrize("mode", GRADIENTS)
def test_ufunc_out_a_traced_array(f, mode):
    _agrees(f, mode)


# 7. c.real and c.imag of a traced complex c were copies: c.real[0] = v (numpy: a write into
#    c, as FFT filters write spec.imag[0] = 0) was lost, silently; y.real of a real y too.
def _write_parts(w):
    c = w * (1.0 + 2.0j)
    np.real(c)[0] = w[1] ** 2  # np.real(c) is c.real
    c.imag[1:] = w[1:] * 3.0
    im = c.imag  # a view sees a later write into c
    c[2] = 0.5j * w[0]
    return np.sum(np.abs(c) ** 2 * np.arange(1.0, 4.0)) + np.sum(im * w)


def _write_real_of_real(w):
    y = w * 1.0
    r = y.real
    r[0] = w[1] ** 2
    return np.sum(y * np.arange(1.0, 4.0)) + np.sum(r)


@pytest.mark.parametrize("f", [_write_parts, _write_real_of_real])
@pytest.mark.parametrize("mode", GRADIENTS)
def test_real_and_imag_are_views(f, mode):
    _agrees(f, mode)


def _zeros_parts(w):  # an np.zeros array's parts: its own views (preallocated.py)
    y = np.zeros(3, dtype=complex)
    re = y.real
    y.real[:] = w
    y.imag[1:] = w[:2] ** 2
    return np.sum(np.abs(y) ** 2 * np.arange(1.0, 4.0)) + np.sum(re * w)


@pytest.mark.parametrize("mode", GRADIENTS)
def test_real_and_imag_of_np_zeros(mode):
    test_real_and_imag_are_views(_zeros_parts, mode)
