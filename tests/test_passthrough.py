"""Every numpy function dualgrad lets through without a rule of its own, audited.

``numpy/dispatch.py`` computes some functions on raw values (``NONDIFF_FUNCS``,
``NONDIFF_UFUNCS``: comparisons, rounding, argsort...) and builds others from an
index computed on raw values (``bincount``, ``histogram``, ``unique``...).  Letting a
traced value through is right only where the derivative really is zero.  So for every
such function, and each of its float-array arguments in turn, a traced value goes in and
the test asserts a correct derivative (both modes against finite differences) or a
``TypeError``: never a silently dropped derivative.  A function added to those lists
without a case here fails ``test_every_passthrough_function_has_a_case``.
"""

import numpy as np
import pytest

import dualgrad as dg
from dualgrad.numpy import dispatch as numpy_api

X = np.array([0.3, 1.7, -2.4, 0.9])       # away from integers and from each other
Y = np.array([1.2, -0.6, 2.1, 0.47])
M = np.array([[0.3, -1.2], [2.6, 0.8]])
IDX = np.array([0, 2, 2, 3])
EDGES = np.array([-3.0, -1.0, 0.5, 2.0])

# name -> (function, arguments); float arrays are the arguments that get traced
CASES = {
    "shape": (np.shape, (X,)), "ndim": (np.ndim, (X,)), "size": (np.size, (X,)),
    "argmax": (np.argmax, (X,)), "argmin": (np.argmin, (X,)), "argsort": (np.argsort, (X,)),
    "nonzero": (np.nonzero, (X,)), "argwhere": (np.argwhere, (X,)),
    "flatnonzero": (np.flatnonzero, (X,)), "count_nonzero": (np.count_nonzero, (X,)),
    "zeros_like": (np.zeros_like, (X,)), "ones_like": (np.ones_like, (X,)),
    "empty_like": (lambda x: np.empty_like(x).shape, (X,)),
    "isclose": (np.isclose, (X, Y)), "allclose": (np.allclose, (X, Y)),
    "array_equal": (np.array_equal, (X, Y)), "searchsorted": (np.searchsorted, (EDGES, X)),
    "round": (np.round, (X,)), "around": (np.around, (X,)),
    "iscomplexobj": (np.iscomplexobj, (X,)), "isrealobj": (np.isrealobj, (X,)),
    "result_type": (np.result_type, (X,)), "sign": (np.sign, (X,)),
    "floor": (np.floor, (X,)), "ceil": (np.ceil, (X,)), "isnan": (np.isnan, (X,)),
    "isfinite": (np.isfinite, (X,)), "isinf": (np.isinf, (X,)), "any": (np.any, (X,)),
    "all": (np.all, (X,)), "lexsort": (lambda x, y: np.lexsort((x, y)), (X, Y)),
    "digitize": (np.digitize, (X, EDGES)), "array_equiv": (np.array_equiv, (X, Y)),
    "may_share_memory": (np.may_share_memory, (X, Y)),
    "shares_memory": (np.shares_memory, (X, Y)), "can_cast": (np.can_cast, (X, np.float32)),
    "min_scalar_type": (np.min_scalar_type, (X,)),
    "argpartition": (lambda x: np.argpartition(x, 2), (X,)),
    "unravel_index": (lambda x: np.unravel_index(np.argmax(x), (2, 2)), (X,)),
    "ravel_multi_index": (lambda x: np.ravel_multi_index((np.argmax(x) // 2, 1), (2, 2)),
                          (X,)),
    # ufuncs
    "greater": (np.greater, (X, Y)), "greater_equal": (np.greater_equal, (X, Y)),
    "less": (np.less, (X, Y)), "less_equal": (np.less_equal, (X, Y)),
    "equal": (np.equal, (X, Y)), "not_equal": (np.not_equal, (X, Y)),
    "logical_and": (np.logical_and, (X, Y)), "logical_or": (np.logical_or, (X, Y)),
    "logical_xor": (np.logical_xor, (X, Y)), "logical_not": (np.logical_not, (X,)),
    "signbit": (np.signbit, (X,)), "rint": (np.rint, (X,)), "trunc": (np.trunc, (X,)),
    "floor_divide": (np.floor_divide, (X, Y)), "spacing": (np.spacing, (X,)),
    "bitwise_and": (lambda x: np.bitwise_and(IDX, IDX) * x, (X,)),
    "bitwise_or": (lambda x: np.bitwise_or(IDX, 1) * x, (X,)),
    "bitwise_xor": (lambda x: np.bitwise_xor(IDX, 1) * x, (X,)),
    "invert": (lambda x: np.invert(IDX) * x, (X,)),
    "left_shift": (lambda x: np.left_shift(IDX, 1) * x, (X,)),
    "right_shift": (lambda x: np.right_shift(IDX, 1) * x, (X,)),
    "isnat": (lambda x: np.isnat(np.array(["NaT"], "datetime64[s]")) * x, (X,)),
    # built from a raw index, differentiable in the values
    "bincount": (lambda w: np.bincount(IDX, weights=w), (X,)),
    "bincount_minlength": (lambda w: np.bincount(IDX, weights=w, minlength=6), (X,)),
    "histogram": (lambda a, w: np.histogram(a, bins=3, weights=w), (X, Y)),
    "histogram_edges": (lambda a: np.histogram(a, bins=4), (X,)),
    "histogram_range": (lambda a, w: np.histogram(a, bins=2, range=(-1.0, 1.0), weights=w),
                        (X, Y)),
    "histogram_density": (lambda a, w: np.histogram(a, bins=3, density=True, weights=w),
                          (X, np.abs(Y))),
    "histogram_explicit": (lambda a, e: np.histogram(a, bins=e), (X, EDGES)),
    "histogram_auto": (lambda a: np.histogram(a, bins="auto"), (X,)),
    "unique": (lambda x: np.unique(np.concatenate([x, x[:2]])), (X,)),
    "unique_axis": (lambda m: np.unique(np.concatenate([m, m[:1]]), axis=0), (M,)),
    "full_like": (lambda x, v: np.full_like(x, v), (X, np.float64(0.7))),
    "full_like_plain": (lambda v: np.full_like(X, v), (np.float64(0.7),)),
    "full": (lambda v: np.full(3, v), (np.float64(0.7),)),
    "copyto": (lambda v: np.copyto(np.zeros(3), v), (np.float64(0.7),)),
    "nextafter": (np.nextafter, (X, Y)),
}

COVERS = {  # the numpy function each case audits
    **{name: getattr(np, name.split("_")[0]) for name in CASES
       if name.startswith(("bincount", "histogram", "unique"))},
    "empty_like": np.empty_like, "full_like_plain": np.full_like, "full": np.full,
    "lexsort": np.lexsort, "argpartition": np.argpartition,
    "unravel_index": np.unravel_index, "ravel_multi_index": np.ravel_multi_index,
}


def _floats(out):
    """The float leaves of a result (numbers, arrays, tuples of them), flattened."""
    if isinstance(out, (tuple, list)):
        return [leaf for o in out for leaf in _floats(o)]
    if isinstance(out, (np.dtype, type)):
        return []
    if isinstance(out, dg.core.Box) or np.result_type(out).kind == "f":
        return [np.reshape(out, -1)]
    return []


def _audited():
    fns = numpy_api.NONDIFF_FUNCS | numpy_api.NONDIFF_UFUNCS
    fns |= {np.bincount, np.histogram, np.unique, np.full_like, np.full, np.copyto,
            np.nextafter}
    return fns


def test_every_passthrough_function_has_a_case():
    covered = {COVERS.get(name, getattr(np, name, None)) for name in CASES}
    missing = sorted(f.__name__ for f in _audited() if f not in covered)
    assert not missing, f"add a case to CASES for {missing}"


def _positions(args):
    return [i for i, a in enumerate(args)
            if isinstance(a, (np.ndarray, np.floating)) and np.result_type(a).kind == "f"]


@pytest.mark.parametrize("name, i", [(n, i) for n, (f, a) in CASES.items()
                                     for i in _positions(a)])
def test_traced_argument_gets_its_derivative_or_a_type_error(name, i):
    fn, args = CASES[name]

    def at(x):
        full = list(args)
        full[i] = x
        return fn(*full)

    def flat(x):
        leaves = _floats(at(x))
        return np.concatenate(leaves) if leaves else np.zeros(0)

    x0 = args[i]
    try:
        with dg.Tape() as tape:
            out = at(tape.watch(x0))
            floats = _floats(out)
    except TypeError as e:
        assert "dualgrad" in str(e)
        return
    if not floats:  # integers, booleans, shapes: nothing to differentiate
        leaves = out if isinstance(out, (tuple, list)) else [out]
        assert not any(isinstance(v, dg.core.Box) for v in leaves)
        return
    num = dg.numerical_jacobian(flat, (x0,))[0]
    rev = dg.jacrev(flat)(x0)
    fwd = dg.jacfwd(flat)(x0)
    np.testing.assert_allclose(np.reshape(rev, num.shape), num, atol=1e-7, err_msg="reverse")
    np.testing.assert_allclose(np.reshape(fwd, num.shape), num, atol=1e-7, err_msg="forward")
