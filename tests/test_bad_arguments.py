"""Bad arguments and unusual inputs to the public transforms (issue 21, item 6).

Each call returns the right answer or raises a TypeError/ValueError from dualgrad's own
validation, naming what was wrong: never an IndexError, AttributeError, KeyError,
ZeroDivisionError or RecursionError from deep inside.  The explicit cases come first; the
hypothesis test at the end draws combinations of them.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dualgrad as dg

# ---------------------------------------------------------------------------
# argnums
# ---------------------------------------------------------------------------

ARGNUM_TRANSFORMS = [dg.grad, dg.value_and_grad, dg.jacfwd, dg.jacrev, dg.hessian]


def f2(x, y):
    return x * x * y


@pytest.mark.parametrize("transform", ARGNUM_TRANSFORMS, ids=lambda t: t.__name__)
def test_argnums_accepts_numpy_integers(transform):
    want = transform(f2, argnums=1)(3.0, 2.0)
    for a in (np.int64(1), np.int32(1), np.intp(-1), np.uint8(1)):
        got = transform(f2, argnums=a)(3.0, 2.0)
        np.testing.assert_array_equal(np.asarray(got, dtype=object).astype(float),
                                      np.asarray(want, dtype=object).astype(float))
    got = transform(f2, argnums=(np.int64(0), 1))(3.0, 2.0)
    assert isinstance(got, tuple) and len(got) == 2


BAD_ARGNUMS = [
    ((0, 0), ValueError, r"argnums=\(0, 0\) names argument 0 twice"),
    ((1, -1), ValueError, r"names argument 1 twice"),
    (0.0, TypeError, r"argnums must be an int or a tuple of ints, got 0.0 of type float"),
    ("0", TypeError, r"argnums must be an int .* got '0' of type str"),
    (True, TypeError, r"got True of type bool"),
    (None, TypeError, r"got None of type NoneType"),
    ((0, 1.0), TypeError, r"an entry of type float"),
    (2, ValueError, r"argnums=2 is out of range for a function called with 2"),
    (-3, ValueError, r"out of range"),
    ((), ValueError, r"argnums must name at least one argument"),
]


@pytest.mark.parametrize("transform", ARGNUM_TRANSFORMS, ids=lambda t: t.__name__)
@pytest.mark.parametrize("argnums,error,match", BAD_ARGNUMS, ids=repr)
def test_bad_argnums_name_argnums(transform, argnums, error, match):
    with pytest.raises(error, match=match) as info:
        transform(f2, argnums=argnums)(3.0, 2.0)
    assert "argnums" in str(info.value)


# ---------------------------------------------------------------------------
# outputs that are not numbers
# ---------------------------------------------------------------------------

def _calls(f):
    """Every transform that runs f on one input (x, shape (2,))."""
    x, t = np.ones(2), np.ones(2)
    return {
        "grad": lambda: dg.grad(f)(x),
        "value_and_grad": lambda: dg.value_and_grad(f)(x),
        "jacrev": lambda: dg.jacrev(f)(x),
        "jacfwd": lambda: dg.jacfwd(f)(x),
        "hessian": lambda: dg.hessian(f)(x),
        "vjp": lambda: dg.vjp(f, x),
        "jvp": lambda: dg.jvp(f, (x,), (t,)),
        "hvp": lambda: dg.hvp(f, (x,), (t,)),
        "linearize": lambda: dg.linearize(f, x),
    }


BAD_OUTPUTS = [(None, "got None"), ("loss", r"got a str \('loss'\)"),
               (object(), "got a object"), ({"a": "b"}, "got a str"),
               (np.array(["a", "b"]), "got an array of dtype <U1"),
               (np.array([None, 1.0], dtype=object), "got an array of dtype object")]


@pytest.mark.parametrize("out,match", BAD_OUTPUTS, ids=lambda o: type(o).__name__)
@pytest.mark.parametrize("name", sorted(_calls(None)))
def test_non_numeric_outputs_are_a_type_error_naming_the_type(name, out, match):
    with pytest.raises(TypeError, match=match) as info:
        _calls(lambda x: out)[name]()
    assert "must return an array, a number or a pytree of them" in str(info.value)


def test_a_pytree_output_with_a_string_leaf():
    with pytest.raises(TypeError, match=r"got a str \('x'\)"):
        dg.jacrev(lambda x: (x, "x"))(np.ones(2))


def test_has_aux_may_carry_anything():
    """Only the differentiated output is checked: aux is the user's business (as JAX)."""
    g, aux = dg.grad(lambda x: (x * x, "note"), has_aux=True)(3.0)
    assert g == 6.0 and aux == "note"


# ---------------------------------------------------------------------------
# check_grads, check_jvp, check_vjp
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("order,error", [("two", TypeError), (0, ValueError), (-1, ValueError),
                                         (1.5, TypeError), (True, TypeError),
                                         (None, TypeError)])
def test_check_grads_validates_order(order, error):
    with pytest.raises(error, match=f"check_grads: order must be a positive int, got {order!r}"):
        dg.check_grads(np.sin, (np.ones(2),), order=order)


@pytest.mark.parametrize("modes,error,match", [
    (("fwd", "back"), ValueError, "got 'back'"), ((), TypeError, "non-empty"),
    (None, TypeError, "modes must be"), (1, TypeError, "modes must be"),
    ("both", ValueError, "got 'both'")])
def test_check_grads_validates_modes(modes, error, match):
    with pytest.raises(error, match=match):
        dg.check_grads(np.sin, (np.ones(2),), modes=modes)


def test_check_grads_takes_a_single_mode_name():
    dg.check_grads(np.sin, (np.ones(2),), modes="rev")
    with pytest.raises(AssertionError):  # and still checks: a wrong rule fails
        dg.check_grads(lambda x: dg.stop_gradient(x) * x, (np.ones(2),), modes="fwd")


@pytest.mark.parametrize("checker", [dg.check_grads, dg.check_jvp, dg.check_vjp],
                         ids=lambda c: c.__name__)
@pytest.mark.parametrize("arg", [1, np.arange(3), np.array([True, False]),
                                 np.array([1.0, 2.0], dtype=object)], ids=repr)
def test_checkers_refuse_arguments_with_nothing_to_differentiate(checker, arg):
    """Before, an int/bool/object argument was skipped and the check passed vacuously."""
    with pytest.raises(TypeError, match=f"{checker.__name__}: no argument is floating-point"):
        checker(lambda x: x * 2.0, (arg,))


def test_checkers_still_take_integer_constants_beside_floats():
    dg.check_grads(lambda x, n: x ** n, (np.array([0.5, 2.0]), 3))


@pytest.mark.parametrize("kw,error", [({"atol": -1.0}, ValueError), ({"rtol": "a"}, TypeError),
                                      ({"eps": 0.0}, ValueError), ({"trials": 0}, ValueError)])
def test_check_jvp_validates_options(kw, error):
    with pytest.raises(error, match=f"check_jvp: {next(iter(kw))} must be"):
        dg.check_jvp(np.sin, (np.ones(2),), **kw)


# ---------------------------------------------------------------------------
# the property test
# ---------------------------------------------------------------------------

INTERNAL = (IndexError, AttributeError, KeyError, ZeroDivisionError, RecursionError)
DTYPES = [np.float16, np.float32, np.float64, np.longdouble]
TOL = {np.float16: 2e-2, np.float32: 2e-5, np.float64: 1e-12, np.longdouble: 1e-12}

FUNCTIONS = {  # scalar-valued, smooth on [-2, 2]
    "sum sin(x) x": lambda x: np.sum(np.sin(x) * x),
    "mean tanh": lambda x: np.mean(np.tanh(x)),
    "logsumexp": lambda x: dg.nn.logsumexp(x),
    "softplus": lambda x: np.sum(dg.nn.softplus(x)),
    "sum x**3": lambda x: np.sum(x ** 3),
    "var": lambda x: np.var(x),
    "norm^2": lambda x: np.sum(np.square(x)) + 1.0,
}


def _layout(data, dtype):
    """An array of ``dtype`` in one of several layouts: 0-d, empty, 1-d, 2-d, a strided
    view, a transposed view."""
    kind = data.draw(st.sampled_from(["0d", "empty", "1d", "2d", "strided", "transposed"]))
    n = {"0d": 1, "empty": 0, "1d": 3, "2d": 6, "strided": 8, "transposed": 6}[kind]
    vals = np.array(data.draw(st.lists(st.floats(-2, 2), min_size=n, max_size=n)))
    x = vals.astype(dtype)
    if kind == "0d":
        return x.reshape(())
    if kind == "2d":
        return x.reshape(2, 3)
    if kind == "strided":
        return x[::2]
    if kind == "transposed":
        return x.reshape(2, 3).T
    return x


def _close(got, want, dtype):
    got = np.asarray(got)
    assert got.dtype == np.dtype(dtype), f"dtype {got.dtype}, expected {np.dtype(dtype)}"
    scale = 1.0 + np.max(np.abs(want), initial=0.0)
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=0,
                               atol=TOL[dtype] * scale * 10)


def _run_valid(data):
    """A good call on an unusual input: the answer in the input's dtype, within its
    precision of the float64 answer."""
    dtype = data.draw(st.sampled_from(DTYPES))
    name = data.draw(st.sampled_from(sorted(FUNCTIONS)))
    f = FUNCTIONS[name]
    x = _layout(data, dtype)
    x64 = x.astype(np.float64)
    if x.size == 0 and name == "logsumexp":
        return  # -inf: no float64 reference to compare with beyond that
    which = data.draw(st.sampled_from(["grad", "jacfwd", "jvp", "vjp", "hvp", "linearize"]))
    t = np.ones_like(x)
    if which == "grad":
        _close(dg.grad(f)(x), dg.grad(f)(x64), dtype)
    elif which == "jacfwd":
        _close(dg.jacfwd(f)(x), dg.jacrev(f)(x64), dtype)
    elif which == "jvp":
        _close(dg.jvp(f, (x,), (t,))[1], dg.jvp(f, (x64,), (t.astype(np.float64),))[1], dtype)
    elif which == "vjp":
        y, pull = dg.vjp(f, x)
        (ct,) = pull(np.ones_like(np.asarray(y)))
        _close(ct, dg.grad(f)(x64), dtype)
    elif which == "hvp":
        _close(dg.hvp(f, (x,), (t,))[1], dg.hvp(f, (x64,), (t.astype(np.float64),))[1], dtype)
    else:
        _close(dg.linearize(f, x)[1](t), dg.jvp(f, (x64,), (t.astype(np.float64),))[1], dtype)


BAD = {
    "argnums": lambda x: dg.grad(lambda a: np.sum(a), argnums=(0, 0))(x),
    "argnums float": lambda x: dg.jacrev(lambda a: a, argnums=0.0)(x),
    "argnums range": lambda x: dg.jacfwd(lambda a: a, argnums=np.int64(3))(x),
    "None output": lambda x: dg.hessian(lambda a: None)(x),
    "str output": lambda x: dg.jvp(lambda a: "loss", (x,), (x,)),
    "tangent shape": lambda x: dg.jvp(np.sin, (x,), (np.ones(np.shape(x) + (2,), x.dtype),)),
    "tangent dtype": lambda x: dg.jvp(np.sin, (x,), (np.ones(np.shape(x), np.int64),)),
    "tangent count": lambda x: dg.jvp(np.sin, (x,), (x, x)),
    "tangent tree": lambda x: dg.jvp(lambda d: d["a"], ({"a": x},), ([x],)),
    "cotangent shape": lambda x: dg.vjp(np.sin, x)[1](np.ones(np.shape(x) + (3,))),
    "cotangent tree": lambda x: dg.vjp(np.sin, x)[1]((x, x)),
    "linearize count": lambda x: dg.linearize(np.sin, x)[1](x, x),
    "grad of vector": lambda x: dg.grad(lambda a: np.stack([np.sum(a), np.sum(a)]))(x),
    "integer input": lambda x: dg.grad(lambda a: np.sum(a * 1.0))(np.arange(3)),
    "string input": lambda x: dg.grad(lambda a: a)("x"),
    "None input": lambda x: dg.jacfwd(lambda a: a)(None),
    "object input": lambda x: dg.grad(lambda a: 1.0)(object()),
    "order": lambda x: dg.check_grads(np.sin, (x,), order="two"),
    "modes": lambda x: dg.check_grads(np.sin, (x,), modes=("fwd", "sideways")),
    "no float": lambda x: dg.check_vjp(np.sin, (np.arange(2),)),
    "hvp primals": lambda x: dg.hvp(lambda a: np.sum(a), x, x),
}


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_transforms_answer_or_refuse_clearly(data):
    """A good call (unusual dtype, layout, size) gives the right answer; a bad one is a
    TypeError or ValueError raised by dualgrad's validation with a message, never an
    internal error."""
    if data.draw(st.booleans()):
        _run_valid(data)
        return
    bad = data.draw(st.sampled_from(sorted(BAD)))
    x = _layout(data, data.draw(st.sampled_from(DTYPES)))
    try:
        BAD[bad](x)
    except INTERNAL as err:  # the point of the test: say what, not where it broke
        raise AssertionError(f"{bad}: internal {type(err).__name__}: {err}") from err
    except (TypeError, ValueError) as err:
        assert len(str(err)) > 20, f"{bad}: a terse message: {err!r}"
    else:
        raise AssertionError(f"{bad}: no error for a bad call")


@pytest.mark.parametrize("x", [np.float16(1.5), np.float32(1.5), np.longdouble(1.5)],
                         ids=lambda x: type(x).__name__)
def test_scalar_dtypes_are_kept(x):
    for g in (dg.grad(lambda a: a * a * a)(x), dg.jvp(np.sin, (x,), (x,))[1],
              dg.hessian(lambda a: a * a * a)(x)):
        assert np.asarray(g).dtype == np.asarray(x).dtype


def test_nested_pytrees():
    tree = {"w": [np.ones(2), (np.full(3, 2.0), np.float32(0.5))], "b": np.zeros(0)}

    def f(t):
        w0, (w1, s) = t["w"]
        return np.sum(w0 ** 2) + np.sum(w1) * s + np.sum(t["b"])
    g = dg.grad(f)(tree)
    np.testing.assert_array_equal(g["w"][0], [2.0, 2.0])
    np.testing.assert_array_equal(g["w"][1][0], [0.5] * 3)
    assert g["w"][1][1] == 6.0 and g["b"].shape == (0,)
