"""The adjoint trace prints each row's own VJP rule (teach/tracetable.Formula), and what
it prints is that rule: read back and evaluated, each formula gives the sweep's number."""

import re

import numpy as np
import pytest

import dualgrad as dg
from dualgrad.rules import TABLE
from dualgrad.teach.expression import FUNCTIONS, parse
from dualgrad.teach.tracetable import adjoint_trace

UNARY = sorted(name for name, p in TABLE.items()
               if p.ufunc is not None and p.ufunc.nin == 1 and p.vjp is not None)
_APPLY = re.compile(r"\b([a-z][a-z0-9]*) (\w+|\([^()]*\))")


def _python(formula, values):
    """The printed formula as an expression ``expression.parse`` reads."""
    text = formula.replace("\u00d7", "*").replace("\u2212", "-").replace("\u00b2", "**2")
    text = text.replace("^", "**").replace("\u221a", "sqrt ")
    for name in sorted(values, key=len, reverse=True):
        text = text.replace(name, f"({values[name]!r})")
    while _APPLY.search(text):
        text = _APPLY.sub(r"\1(\2)", text)
    return text


@pytest.mark.parametrize("name", UNARY)
def test_printed_rule_evaluates_to_the_sweeps_value(name):
    prim = TABLE[name]
    for x0 in (0.4, 1.4, -0.4):
        with np.errstate(all="ignore"):
            y0 = TABLE[name].impl(x0)
        if np.isfinite(y0):
            break
    with dg.Tape() as tape:
        x = tape.watch(x0, "x")
        y = prim(x)
    if np.asarray(dg.core.unbox(y)).dtype.kind not in "f":
        pytest.skip(f"{name} is not a float row")
    (g,) = tape.gradient(y, [x])
    line = adjoint_trace(tape, y).splitlines()[2]
    _, _, rest = line.partition("\u2202v1/\u2202v0 = ")
    formula, _, value = rest.rpartition(" = ")
    if not formula:
        pytest.skip(f"{name}'s rule is more than a formula: {line}")
    unknown = {w for w in re.findall(r"[a-z][a-z0-9]*", formula.replace("v\u03041", ""))
               if w not in FUNCTIONS and not re.fullmatch(r"v[01]", w)}
    if unknown:
        pytest.skip(f"{name}: {formula} names {unknown}")
    text = _python(formula, {"v\u03041": 1.0, "v1": float(dg.core.unbox(y)), "v0": x0})
    got = float(parse(text, variables=[])())
    # constants print 7 digits
    np.testing.assert_allclose(got, float(g), rtol=1e-6, err_msg=f"{name}: {formula}")


def test_a_rule_that_is_more_than_a_formula_prints_its_value_alone():
    with dg.Tape() as tape:
        x = tape.watch(np.array([1.0, 2.0]), "x")
        y = np.sum(x)
    tape.gradient(y, [x])
    line = adjoint_trace(tape, y).splitlines()[2]
    assert line.endswith("\u2202v1/\u2202v0 = array(2,)"), line


@pytest.mark.parametrize("name", ["sin", "cos", "tan", "exp", "log", "tanh", "sqrt", "arctan",
                                  "sinh", "cosh", "log1p", "expm1", "square", "reciprocal"])
def test_textbook_rows_print_a_formula(name):
    with dg.Tape() as tape:
        x = tape.watch(0.5, "x")
        y = TABLE[name](x)
    tape.gradient(y, [x])
    line = adjoint_trace(tape, y).splitlines()[2]
    assert line.count(" = ") == 3 and "v\u03041" in line.rpartition(" = ")[0].split(" = ")[-1], line
