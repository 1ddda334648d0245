"""The optimiser's named rewrites (compiler/passes.py's ``REWRITES``), each alone.

For every rewrite, a graph where it fires: the rewritten graph has fewer nodes of its
primitive, computes the same bits as the graph without the passes (and as eager numpy),
and with the rewrite switched off by name (``dg.jit(f, exclude=(name,))``) the node
stays.  Then the names themselves: an unknown one is an error that says which argument
held it, and a pass can be left out by name as a rewrite can.
"""

import numpy as np
import pytest

import dualgrad as dg
from dualgrad import rules
from dualgrad.compiler import passes as jit_passes

X = np.array([-0.0, 0.0, 1.5, -2.25, np.inf, -np.inf, np.nan])
INTS = np.arange(-3, 4)


@pytest.fixture(autouse=True)
def replay_only(monkeypatch):
    """Bit-for-bit comparisons: the replay back end (fused kernels round differently)."""
    monkeypatch.setenv("DUALGRAD_CODEGEN", "off")


def _power(t, p):
    return rules.TABLE["power"](t, p)


# name -> (f, argument, primitive it removes, its count before, after, jit options)
CASES = {
    "local_mul_one": (lambda t: np.sin(t) * 1.0, X, "multiply", 1, 0, {}),
    "local_mul_chain": (lambda t: t * 2.0 * 2.0 * 2.0, X, "multiply", 3, 1, {}),
    "local_add_zero": (lambda t: np.sin(t) + (-0.0), X, "add", 1, 0, {}),
    "local_add_chain": (lambda t: t + 1 + 2, INTS, "add", 2, 1, {}),
    "local_sub_zero": (lambda t: np.sin(t) - 0.0, X, "subtract", 1, 0, {}),
    "local_div_one": (lambda t: np.sin(t) / 1.0, X, "divide", 1, 0, {}),
    "local_pow_one": (lambda t: _power(np.sin(t), 1), X, "power", 1, 0, {}),
    "local_pow_two": (lambda t: _power(np.sin(t), 2), X, "power", 1, 0, {}),
    "local_positive": (lambda t: np.positive(np.sin(t)), X, "positive", 1, 0, {}),
    "local_neg_neg": (lambda t: np.negative(np.negative(np.sin(t))), X, "negative", 2, 0, {}),
}


def same(a, b):
    assert type(a) is type(b) and np.asarray(a).dtype == np.asarray(b).dtype
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def _run(jf, x):
    jf(x)
    return jf(x)  # the replay of the optimised graph


def test_every_rewrite_has_a_case():
    assert list(CASES) == list(jit_passes.REWRITES)


@pytest.mark.parametrize("name", list(CASES))
def test_rewrite_fires_keeps_the_bits_and_can_be_switched_off(name):
    f, x, prim, before, after, kw = CASES[name]
    lo = dg.jit(f, **kw).lower(x)
    assert lo.before.count(prim) == before, str(lo)
    assert lo.after.count(prim) == after, str(lo)
    assert lo.summary["simplify"] >= 1
    with np.errstate(all="ignore"):
        want = f(x)
        same(_run(dg.jit(f, **kw), x), want)
        same(_run(dg.jit(f, passes=(), **kw), x), want)  # the graph unrewritten
        off = dg.jit(f, exclude=(name,), **kw)
        assert off.lower(x).after.count(prim) == before
        same(_run(off, x), want)


def test_pow_two_becomes_square():
    lo = dg.jit(lambda t: _power(np.sin(t), 2)).lower(X)
    assert lo.after.count("square") == 1
    lo = dg.jit(lambda t: _power(np.sin(t), 2), exclude="local_pow_two").lower(X)
    assert lo.after.count("square") == 0


def test_chain_folds_to_mul_8_alone():
    """mul(mul(mul(T, 2), 2), 2) -> mul(T, 8) is ``local_mul_chain``'s, whatever else is
    left out."""
    others = tuple(n for n in jit_passes.REWRITES if n != "local_mul_chain")
    lo = dg.jit(lambda t: t * 2.0 * 2.0 * 2.0, exclude=others).lower(np.arange(3.0))
    assert len(lo.after) == 1 and "v0 * 8.0" in str(lo.after)


def test_unsafe_add_zero_only_with_fast_math():
    """x + 0.0 is not x for x = -0.0: ``local_add_zero`` rewrites it under fast_math only,
    and can be left out there too."""
    f = lambda t: np.sin(t) + 0.0
    assert dg.jit(f).lower(X).after.count("add") == 1
    assert dg.jit(f, fast_math=True).lower(X).after.count("add") == 0
    assert dg.jit(f, fast_math=True, exclude=["local_add_zero"]).lower(X).after.count(
        "add") == 1


def test_all_rewrites_left_out_is_no_simplify():
    f = lambda t: np.negative(np.negative(np.sin(t) * 1.0)) / 1.0
    lo = dg.jit(f, exclude=tuple(jit_passes.REWRITES)).lower(X)
    assert len(lo.after) == len(lo.before) == 5 and lo.summary["simplify"] == 0
    assert len(dg.jit(f).lower(X).after) == 1


def test_a_pass_is_left_out_by_name():
    f = lambda x: np.sin(x) + np.sin(x) * 1.0
    x = np.arange(3.0)
    assert len(dg.jit(f).lower(x).after) == 2
    lo = dg.jit(f, exclude="cse").lower(x)
    assert len(lo.after) == 3 and "cse" not in lo.summary


def test_unknown_names_are_errors_that_name_the_argument():
    with pytest.raises(ValueError, match=r"exclude= names no pass or rewrite 'local_mul_on'"):
        dg.jit(lambda x: x, exclude=("local_mul_on",))
    with pytest.raises(ValueError, match=r"passes= names no pass 'sim'"):
        dg.jit(lambda x: x, passes=("fold", "sim"))
    with pytest.raises(ValueError, match=r"rewrite of 'simplify'.*exclude="):
        dg.jit(lambda x: x, passes=("local_mul_one",))
    with pytest.raises(ValueError, match="exclude="):
        dg.jit(exclude="nope")(lambda x: x)
