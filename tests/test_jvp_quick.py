"""Forward mode's direct path for the arithmetic rows (transforms/forward.py ``_QUICK``):
on plain real arrays of the result's shape it must compute exactly what the rows' JVP
rules compute (``push_tangents``), bit for bit, signs of zero, infinities and nans
included, and leave every other case to the rules.  Generated from the ``_QUICK`` table:
a row added there is tested here without a new test."""

import itertools

import numpy as np
import pytest

import dualgrad as dg
from dualgrad.transforms import forward

SPECIAL = np.array([0.0, -0.0, 1.5, -2.25, np.inf, -np.inf, np.nan, 1e-300, 3.0, -1.0])
R = np.random.default_rng(11)


def _arg(kind, n=10):
    """A primal: an array (random, or IEEE's special values), or a Python number."""
    return {"rand": R.standard_normal(n), "special": SPECIAL.copy(), "two": 2.0,
            "three": 3, "half": 0.5}[kind]


def _tangent(x, batch):
    if x.__class__ is not np.ndarray:
        return None
    t = R.standard_normal((batch,) + x.shape if batch else x.shape)
    t.reshape(-1)[::3] = -0.0
    return t


def _cases():
    for prim in forward._QUICK:
        n = 1 if prim.ufunc is not None and prim.ufunc.nin == 1 else 2
        kinds = ("rand", "special") if n == 1 else ("rand", "special", "two", "three", "half")
        for ks in itertools.product(kinds, repeat=n):
            if not any(k in ("rand", "special") for k in ks):
                continue
            for live in itertools.product((True, False), repeat=n):
                if any(live) and all(not lv or k in ("rand", "special")
                                     for k, lv in zip(ks, live)):
                    for batch in (0, 4):
                        yield pytest.param(prim, ks, live, batch,
                                           id=f"{prim.name}-{'-'.join(ks)}-{live}-{batch}")


@pytest.mark.parametrize("prim,kinds,live,batch", list(_cases()))
def test_quick_is_the_rules_bitwise(prim, kinds, live, batch):
    primals = [_arg(k) for k in kinds]
    tangents = [_tangent(x, batch) if lv else None for x, lv in zip(primals, live)]
    with np.errstate(all="ignore"):
        ans = prim.impl(*primals)
        assert forward._plain(ans, primals, tangents)
        want = forward.push_tangents(prim, tangents, ans, primals, {})
        with dg.Tape():  # inside a transform, as process calls it
            got = forward._QUICK[prim](tangents, ans, *primals)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert got.tobytes() == want.tobytes()


def test_quick_leaves_the_rest_to_the_rules():
    """Broadcasting, a live Python number, complex values, integer results, object
    arrays: not plain, so the rules (which align and check) take them."""
    x, t = R.standard_normal(4), R.standard_normal(4)
    row = R.standard_normal((3, 4))
    assert not forward._plain(x + row, [x, row], [t, None])          # x broadcast
    assert forward._plain(row * x, [row, x], [R.standard_normal((3, 4)), None])  # x is not
    assert not forward._plain(x * 2.0, [x, 2.0], [t, 1.0])           # a number's tangent
    z = x.astype(complex)
    assert not forward._plain(z * 2.0, [z, 2.0], [t.astype(complex), None])
    i = np.arange(4)
    assert not forward._plain(i + i, [i, i], [t, None])              # an int result
    assert not forward._plain(x * 2.0, [x, 2.0], [t.astype(np.complex128), None])


def test_quick_with_a_broadcast_constant_is_the_rules_bitwise():
    """A constant argument that broadcasts (the sweep's (1, n) cotangent times an (n,)
    value): the rules' numpy call, as it is."""
    row, x = R.standard_normal((1, 6)), R.standard_normal(6)
    t = _tangent(row, 5)
    for prim in forward._QUICK:
        if prim.ufunc is not None and prim.ufunc.nin == 1 or prim.name == "power":
            continue
        for args, ts in (((row, x), [t, None]), ((x, row), [None, t])):
            ans = prim.impl(*args)
            if not forward._plain(ans, list(args), ts):
                continue
            want = forward.push_tangents(prim, ts, ans, list(args), {})
            with dg.Tape():
                got = forward._QUICK[prim](ts, ans, *args)
            assert got.shape == want.shape and got.tobytes() == want.tobytes(), prim.name


@pytest.mark.parametrize("f", [
    lambda x: x * x + 3.0 * x - x / (x + 4.0),
    lambda x: (x - x ** 2) ** 2 + x ** 3 - 1.0 / x,
    lambda x: -(x * np.flip(x)) - (2 - x) / 3,
])
def test_transforms_agree_without_the_quick_path(f, monkeypatch):
    """jvp, jacfwd, hessian and hvp give the same bits with ``_QUICK`` as without it."""
    x = np.abs(R.standard_normal(6)) + 0.5
    v = R.standard_normal(6)

    def run():
        g = lambda x: np.sum(f(x))  # noqa: E731
        return [dg.jvp(f, (x,), (v,))[1], dg.jacfwd(f)(x), dg.hessian(g)(x),
                dg.hvp(g, (x,), (v,))[1], dg.jacfwd(dg.jacfwd(f))(x)]

    got = run()
    monkeypatch.setattr(forward, "_QUICK", {})
    for a, b in zip(got, run()):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


KW_CASES = {  # rows with parameters (forward._QUICK_KW): (shape, parameters) each
    "getitem": [((5,), {"idx": (slice(1, None),)}), ((5,), {"idx": (slice(None, -1),)}),
                ((5,), {"idx": (2,)}), ((4, 5), {"idx": (Ellipsis, 1)}),
                ((5,), {"idx": (None, slice(0, 3))}), ((4, 5), {"idx": (1, slice(None), None)})],
    "sum": [((5,), {"axis": (-1,), "keepdims": False}), ((4, 5), {"axis": (-2, -1),
                                                                "keepdims": False}),
            ((4, 5), {"axis": (-2,), "keepdims": True}), ((3, 4, 5), {"axis": (-1,),
                                                                    "keepdims": False})],
    "scatter_add": [((4,), {"idx": (slice(1, None),), "shape": (5,)}),
                    ((4,), {"idx": (slice(None, -1),), "shape": (5,)}),
                    ((3,), {"idx": (1, slice(None)), "shape": (2, 3)}),
                    ((2, 3), {"idx": (slice(None), slice(1, 4)), "shape": (2, 5)})],
}


def _kw_cases():
    for prim in forward._QUICK_KW:
        for shape, kw in KW_CASES[prim.name]:  # a row added there needs its cases here
            for batch in (0, 3):
                yield pytest.param(prim, shape, kw, batch, id=f"{prim.name}-{shape}-{kw}-{batch}")


@pytest.mark.parametrize("prim,shape,kw,batch", list(_kw_cases()))
def test_rows_with_parameters_are_the_rules(prim, shape, kw, batch):
    """A plain Dual (one direction or a batch of them) through the row: its tangent is
    the rule's, bitwise (getitem's a view, as the rule's)."""
    x = R.standard_normal(shape)
    t = _tangent(x, batch)
    assert forward._QUICK_KW[prim](t, x, kw) is not None  # taken, not left to the rule
    got = forward.JVPTrace.process(forward._ROOT, prim, (dg.Dual(x, t),), kw).tangent
    want = forward.push_tangents(prim, [t], prim.impl(x, **kw), [x], kw)
    assert got.shape == want.shape and got.tobytes() == want.tobytes()
