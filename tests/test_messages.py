"""Errors that teach: each refusal names what happened and what to write instead.

Also dataclasses as pytrees: frozen ones automatically, others once registered.
"""

import dataclasses
import math

import numpy as np
import pytest

import dualgrad as dg


@pytest.mark.parametrize("f, what, instead", [
    (lambda x: math.sin(x), "float()", "np.sin"),
    (lambda x: math.exp(x) * x, "float()", "np.exp"),
    (lambda x: float(x), "float()", "keep it an array"),
    (lambda x: int(x) * x, "int()", "integers have no derivative"),
    (lambda x: round(x), "round()", "np.round"),
    (lambda x: x.item(), "x.item()", "0-d array"),
    (lambda x: np.sum(x.tolist()), "x.tolist()", "np.stack"),
    (lambda x: x * range(x)[0], "as an integer", "plain values"),
])
def test_conversions_to_python_numbers_say_which_and_what_instead(f, what, instead):
    with pytest.raises(TypeError) as info:
        dg.grad(f)(np.array(1.5) if "tolist" in what else 1.5)
    msg = str(info.value)
    assert what in msg and instead in msg and "dg.stop_gradient" in msg


def test_formatting_a_traced_value_prints_its_number(capsys):
    g = dg.grad(lambda x: (print(f"loss {x ** 2:.3f}"), x ** 2)[1])(1.5)
    assert g == 3.0
    assert capsys.readouterr().out == "loss 2.250\n"


def test_a_missing_rule_names_the_function_and_how_to_give_one():
    with pytest.raises(TypeError, match=r"numpy\.i0.*dg\.custom_jvp.*defjvp"):
        dg.grad(lambda x: np.i0(x))(0.5)
    with pytest.raises(TypeError, match=r"numpy\.frexp"):
        dg.grad(lambda x: np.frexp(x)[0])(0.5)


def test_a_scipy_ufunc_without_a_rule_is_named_as_scipys():
    special = pytest.importorskip("scipy.special")
    from dualgrad.numpy.dispatch import _ufunc_name
    assert _ufunc_name(special.jv) == "scipy.special.jv"
    assert _ufunc_name(np.sin) == "numpy.sin"


@dataclasses.dataclass(frozen=True)
class Frozen:
    w: np.ndarray
    b: float


@dataclasses.dataclass
class Mutable:
    w: np.ndarray
    steps: int = 0


def test_frozen_dataclasses_are_pytrees():
    p = Frozen(np.array([1.0, -2.0]), 0.5)
    g = dg.grad(lambda p: np.sum(p.w ** 2) * p.b)(p)
    assert isinstance(g, Frozen)
    np.testing.assert_allclose(g.w, 2 * p.w * p.b)
    assert g.b == pytest.approx(5.0)
    J = dg.jacfwd(lambda p: p.w * p.b)(p)
    np.testing.assert_allclose(J.w, np.diag([0.5, 0.5]))


def test_other_dataclasses_are_refused_until_registered():
    with pytest.raises(TypeError, match="register_dataclass"):
        dg.grad(lambda m: np.sum(m.w ** 2))(Mutable(np.ones(2)))
    dg.tree.register_dataclass(Mutable, meta_fields=("steps",))
    g = dg.grad(lambda m: np.sum(m.w ** 2) * (m.steps + 1))(Mutable(np.ones(2), 2))
    assert g.steps == 2 and isinstance(g, Mutable)
    np.testing.assert_allclose(g.w, [6.0, 6.0])


def test_integer_casts_and_random_draws_say_what_to_write():
    with pytest.raises(TypeError, match=r"integers have no derivative.*astype"):
        dg.grad(lambda x: np.int64(x) * x)(np.float64(1.5))
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match=r"loc \+ scale \* rng\.standard_normal"):
        dg.grad(lambda loc: rng.normal(loc=loc))(np.float64(0.5))
    g = dg.grad(lambda loc: np.sum(loc + 2.0 * rng.standard_normal(3)))(np.float64(0.5))
    assert g == 3.0
