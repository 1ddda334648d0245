"""How numpy reaches dualgrad: NEP 13/18 dispatch, and its errors.

A user writes ``np.sin(x) * x`` and it differentiates: ``np.sin`` is a ufunc, so numpy
hands it to ``ArrayBox.__array_ufunc__`` (``array_ufunc`` here), which applies the ufunc's
row of the primitive table; ``np.sum`` is an array function, so numpy hands it to
``ArrayBox.__array_function__`` (``array_function``), which calls ``HANDLED[np.sum]``.  The
modules beside this one fill ``HANDLED`` with ``@implements(np.sum)``; each normalises
numpy's arguments (axes become negative numbers, shapes are resolved) and applies rows.  A
function whose derivative is zero wherever it has one (comparisons, rounding, ``argsort``)
is computed on raw values (``NONDIFF_UFUNCS``, ``NONDIFF_FUNCS``); any other numpy function
raises a ``TypeError`` that names it and says what to do instead.
"""

import operator
import sys

import numpy as np

from .. import rules as P
from ..core.trace import Box, check_live, unbox

HANDLED = {}  # numpy function -> dualgrad implementation
LIKE = {}  # np.zeros(shape, like=x) and its kin -> implementation(x, shape, ...) (creation.py)


def implements(*fns):
    def register(impl):
        for fn in fns:
            HANDLED[fn] = impl
        return impl
    return register


# ---------------------------------------------------------------------------
# numpy's arguments
# ---------------------------------------------------------------------------

def _no(kwargs, fname, **defaults):
    """Refuse a keyword argument of numpy.``fname`` set to anything but its default (dualgrad
    does not support it on traced values)."""
    for k, v in kwargs.items():
        if k in defaults and (v is defaults[k] or (
                v.__class__ is not np.ndarray and v == defaults[k])):
            continue
        raise TypeError(f"dualgrad: numpy.{fname}({k}=...) is not supported on traced values")


def _arr(x):
    """A traced value as it is; anything else as a numpy array."""
    return x if isinstance(x, Box) else np.asarray(x)


# ---------------------------------------------------------------------------
# functions whose derivative is zero everywhere they have one: computed on raw values
# ---------------------------------------------------------------------------

NONDIFF_UFUNCS = {
    np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal,
    np.logical_and, np.logical_or, np.logical_xor, np.logical_not, np.isnan, np.isinf,
    np.isfinite, np.signbit, np.sign, np.floor, np.ceil, np.rint, np.trunc, np.floor_divide,
    np.bitwise_and, np.bitwise_or, np.bitwise_xor, np.invert, np.left_shift, np.right_shift,
    np.isnat, np.spacing,
}


_COMPARE_UFUNCS = {np.greater: operator.gt, np.greater_equal: operator.ge, np.less: operator.lt,
                   np.less_equal: operator.le, np.equal: operator.eq,
                   np.not_equal: operator.ne}


NONDIFF_FUNCS = {
    np.shape, np.ndim, np.size, np.argmax, np.argmin, np.argsort, np.nonzero, np.argwhere,
    np.flatnonzero, np.count_nonzero, np.zeros_like, np.ones_like, np.empty_like,
    np.isclose, np.allclose, np.array_equal, np.searchsorted, np.round, np.around,
    np.iscomplexobj, np.isrealobj, np.result_type, np.sign, np.floor, np.ceil, np.isnan,
    np.isfinite, np.isinf, np.any, np.all, np.lexsort, np.digitize,
    np.array_equiv, np.may_share_memory,
    np.shares_memory, np.can_cast, np.min_scalar_type, np.argpartition, np.unravel_index,
    np.ravel_multi_index,
}


def _deep_unbox(x):
    if isinstance(x, Box):
        return unbox(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_deep_unbox(v) for v in x)
    if isinstance(x, dict):
        return {k: _deep_unbox(v) for k, v in x.items()}
    return x


# ---------------------------------------------------------------------------
# comparisons and bool() under dg.jit: recorded, so Python control flow replays
# ---------------------------------------------------------------------------

def _stage(x):
    """The graph being recorded (``dg.jit``, compiler/) under x's derivative levels, or None:
    it records comparisons and ``bool()`` as guards, so Python control flow replays right."""
    while isinstance(x, Box):
        t = x._trace
        if t.read is not None and t.active:
            return t
        x = x.value
    return None


def _compare(op):
    def compare(self, other):
        a, b = _stage(self), _stage(other)
        if a is not None or b is not None:
            stage = a if b is None or (a is not None and a.level > b.level) else b
            return stage.compare(op, self, other)
        return op(unbox(self), unbox(other))
    return compare


# ---------------------------------------------------------------------------
# the two protocols
# ---------------------------------------------------------------------------

# a ufunc's methods as the numpy functions they are: np.add.reduce(x) is np.sum(x, axis=0)
_UFUNC_METHODS = {("reduce", np.add): np.sum, ("reduce", np.multiply): np.prod,
                  ("reduce", np.maximum): np.max, ("reduce", np.minimum): np.min,
                  ("accumulate", np.add): np.cumsum,
                  ("accumulate", np.multiply): np.cumprod,
                  ("reduce", np.logaddexp): np.logaddexp.reduce,  # a logsumexp
                  ("reduce", np.logaddexp2): np.logaddexp2.reduce}


def array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """``ArrayBox.__array_ufunc__``: ``np.sin(x)``, ``np.add.reduce(x)``, ``np.add.at(x, i, v)``."""
    if not self._trace.active:
        check_live(self, ufunc.__name__)
    if kwargs.get("out") is not None:
        out = kwargs["out"][0] if isinstance(kwargs["out"], tuple) else kwargs["out"]
        if isinstance(out, Box) and method == "__call__" and ufunc.nout == 1 \
                and kwargs.get("where", True) is True:  # np.add(y, w, out=y), y traced:
            kw = {k: v for k, v in kwargs.items() if k not in ("out", "where")}
            out[...] = array_ufunc(self, ufunc, method, *inputs, **kw)  # y[...] = y + w,
            return out  # a write into y (and through y into its base, if a view)
        made = f"np.zeros({np.shape(unbox(out))}, like=x)"
        raise TypeError(f"dualgrad: numpy.{ufunc.__name__}(out=...) would write a traced value "
                        "in place into a plain array (acc += x for a numpy acc and a traced x "
                        "does this); write acc = acc + x, or make acc traced where it is made: "
                        f"acc = {made} instead, with x any value traced in this call")
    if method == "__call__":
        prim = P.UFUNCS.get(ufunc)
        if prim is None and ufunc in HANDLED:  # a ufunc built from primitives (nextafter)
            return HANDLED[ufunc](*inputs, **kwargs)
        if prim is not None:
            if kwargs:  # the common call has none: nothing is looked up
                if kwargs.get("dtype") is not None:  # f(a, b, dtype=d): cast, then f
                    d = np.dtype(kwargs.pop("dtype"))
                    inputs = [P.astype(_arr(v), dtype=d) for v in inputs]
                _no(kwargs, ufunc.__name__, out=None, where=True, casting="same_kind",
                    order="K", dtype=None, subok=True)
            return prim(*inputs)
        op = _COMPARE_UFUNCS.get(ufunc)
        if op is not None and not kwargs and len(inputs) == 2 and (
                _stage(inputs[0]) is not None or _stage(inputs[1]) is not None):
            return _compare(op)(*inputs)  # under dg.jit: a graph node, not a guard
        if ufunc in NONDIFF_UFUNCS:
            return ufunc(*_deep_unbox(inputs), **kwargs)
        raise TypeError(f"dualgrad has no derivative rule for {_ufunc_name(ufunc)}{_HOW}")
    if method == "at" and ufunc in (np.add, np.subtract):
        if isinstance(inputs[0], Box):
            return HANDLED[ufunc.at](*inputs)  # inplace.py
        raise TypeError(
            f"dualgrad: numpy.{ufunc.__name__}.at writes a traced value into a plain numpy "
            f"array of shape {np.shape(inputs[0])}, which cannot hold its derivative; make "
            f"that array traced where it is made: out = np.zeros({np.shape(inputs[0])!r}, "
            f"like=x), x any traced value (np.zeros(shape) itself is, inside a transform, "
            f"in the function's own code)")
    impl = HANDLED.get(_UFUNC_METHODS.get((method, ufunc)))
    if method == "outer" and ufunc in P.UFUNCS:  # f.outer(a, b): a's axes before b's
        a, b = inputs
        return P.UFUNCS[ufunc](HANDLED[np.reshape](a, P.shape_of(a) + (1,) * P.ndim_of(b)),
                               b)
    if impl is None:
        raise TypeError(f"dualgrad has no derivative rule for {_ufunc_name(ufunc)}.{method}"
                        f"{_HOW}")
    kwargs.setdefault("axis", 0)
    return impl(*inputs, **kwargs)


def array_function(self, func, types, args, kwargs):
    """``ArrayBox.__array_function__``: ``np.sum(x)``, ``np.linalg.solve(a, x)``..."""
    if not self._trace.active:
        check_live(self, func.__name__)
    if func in FUNCTION_VIEWS and args and args[0] is self:  # np.transpose(x): x's view
        return function_view(func, args, kwargs)
    impl = HANDLED.get(func)
    if impl is not None:
        return impl(*args, **kwargs)
    if func in NONDIFF_FUNCS:
        return func(*_deep_unbox(args), **_deep_unbox(kwargs))
    if func in LIKE:  # np.zeros(shape, like=self): numpy leaves like out of the call
        return LIKE[func](self, *args, **kwargs)
    name = f"{getattr(func, '__module__', None) or 'numpy'}.{func.__name__}"
    raise TypeError(f"dualgrad has no derivative rule for {name}{_HOW}")


FUNCTION_VIEWS = frozenset((np.transpose, np.swapaxes, np.reshape, np.ravel, np.squeeze,
                            np.real, np.imag))


def function_view(func, args, kwargs):
    """``np.transpose(x)``, ``np.reshape(x, S)``...: the method's view of ``x``, so a write
    through it reaches ``x`` as numpy's does (``np.transpose(out)[2, 1] = v``)."""
    a, rest = args[0], args[1:]
    if func is np.real or func is np.imag:  # x.real, x.imag: views of x's parts
        return getattr(a, func.__name__)
    if func is np.transpose:
        axes = rest[0] if rest else kwargs.get("axes")
        return a.transpose() if axes is None else a.transpose(tuple(axes))
    if func is np.reshape:
        if kwargs.get("copy"):  # a copy asked for: numpy's reshape, not a view
            return HANDLED[np.reshape](*args, **kwargs)
        shape = rest[0] if rest else kwargs.get("shape", kwargs.get("newshape"))
        order = rest[1] if len(rest) > 1 else kwargs.get("order", "C")
        return a.reshape(shape, order=order)
    return getattr(a, func.__name__)(*rest, **kwargs)  # swapaxes, ravel, squeeze


_HOW = ("; give the function that calls it a rule with dg.custom_jvp (one line: "
        "f = dg.custom_jvp(f); f.defjvp(lambda p, t: (f(*p), dfdx(*p) * t[0]))), or use "
        "dg.stop_gradient(x) if no derivative is wanted")


def _ufunc_name(ufunc):
    """A ufunc's real home: 'numpy.sin', 'scipy.special.erf' (ufuncs carry no module)."""
    name = ufunc.__name__
    if getattr(np, name, None) is ufunc:
        return f"numpy.{name}"
    for mod in ("scipy.special", "numpy.linalg", "numpy.fft"):
        m = sys.modules.get(mod)
        if m is not None and getattr(m, name, None) is ufunc:
            return f"{mod}.{name}"
    return f"the ufunc {name!r}"
