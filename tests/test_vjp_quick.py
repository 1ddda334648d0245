"""The reverse sweep's direct path (transforms/steps.py ``_QUICK``): on a first-order sweep
of raw values, each row's quick VJP must compute exactly what the row's rule computes and
``fit`` makes of it (same class, dtype, shape and bits), or decline (None) and leave it to
the rule.  Generated from the ``_QUICK`` table and the table's elementwise cases (their
domains, shapes and broadcasting), with Python numbers and numpy scalars as arguments and
cotangents: a row the table adds is tested here without a new test."""

import numpy as np
import pytest
from cases import elementwise_cases

import dualgrad as dg
from dualgrad import rules as P
from dualgrad.transforms import reverse, steps

R = np.random.default_rng(5)


def _as(kind, a):
    """An argument as a test passes it: an array, or a 0-d one as a Python float or a
    numpy scalar (what Python-number code records)."""
    if a.ndim or kind == "array":
        return a
    return float(a) if kind == "float" else np.float64(a)


def _cases():
    for case in elementwise_cases():
        if case.fn not in steps._QUICK:
            continue
        kinds = ("array", "float", "numpy") if all(a.ndim == 0 for a in case.args) \
            else ("array",)
        for kind in kinds:
            yield pytest.param(case.fn, [_as(kind, a) for a in case.args],
                               id=f"{case!r}-{kind}")


def _entry(prim, args):
    """The Wengert-list entry of ``prim(*args)``, every argument watched."""
    with dg.Tape() as tape:
        prim(*[tape.watch(np.array(a) if a.__class__ is np.ndarray else a) for a in args])
    return tape.entries[-1]


def _same(got, want):
    assert got.__class__ is want.__class__
    if got.__class__ is np.ndarray:
        assert got.dtype == want.dtype and got.shape == want.shape
    assert np.asarray(got).tobytes() == np.asarray(want).tobytes()


@pytest.mark.parametrize("prim,args", list(_cases()))
def test_quick_vjp_is_the_rule_fitted_bitwise(prim, args):
    e = _entry(prim, args)
    ans = e.ans
    cts = [1.0, -0.0] if ans.__class__ is not np.ndarray \
        else [R.standard_normal(ans.shape), np.full(ans.shape, -0.0)]
    for g in cts:
        for argnum, _ in e.parents:
            with np.errstate(all="ignore"):
                got = steps._QUICK[prim](e, argnum, g)
                want = steps.fit(prim.vjp[argnum](g, ans, *e.args), e.args[argnum],
                                 prim.bcast, 0)
            assert got is not None  # small raw values: the direct path takes every form
            _same(got, want)


def test_rows_that_check_their_arguments_keep_their_rules():
    """A row whose rules refuse complex values first (maximum's, ``real_only``) is not on
    the direct path: its check runs."""
    assert P.maximum in P.CHECKED and P.maximum not in steps._QUICK
    for prim in steps._QUICK:
        assert prim not in P.CHECKED, prim.name
    with pytest.raises(TypeError, match="maximum"):
        dg.grad(lambda z: np.abs(np.maximum(z, 0.5)))(1.0 + 2.0j)


@pytest.mark.parametrize("f,x", [
    (lambda a, b: np.log(a) + a * b - np.sin(b), (2.0, 5.0)),
    (lambda a, b: np.exp(a) / b - np.tanh(a * b) ** 2 + np.arctan2(a, b), (0.3, 1.7)),
    (lambda a, b: np.sum(np.sqrt(a) * np.cos(b) - np.hypot(a, b)),
     (np.abs(R.standard_normal(5)) + 0.5, R.standard_normal(5))),
    (lambda a, b: np.sum(np.expm1(a)[:, None] * np.log1p(b ** 2) - a[:, None] / (1.0 + b)),
     (R.standard_normal(4), R.standard_normal(3))),
])
def test_gradients_agree_without_the_quick_path(f, x, monkeypatch):
    """grad, on Python numbers and on (broadcast) arrays, gives the same bits with the
    sweep's ``_QUICK`` as without it."""
    def run():
        return dg.grad(f, argnums=(0, 1))(*x)

    got = run()
    monkeypatch.setattr(steps, "_QUICK", {})
    monkeypatch.setattr(reverse, "_QUICK", {})
    for a, b in zip(got, run()):
        _same(a, b)
