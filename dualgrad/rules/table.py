"""The primitive table: every primitive with its implementation and both derivative rules.

One row per primitive.  Rules are written with primitives (``multiply``,
``cos``, ``sum_``...), never with raw numpy, so the derivative of a derivative
is just another traced computation: that is all ``grad(grad(f))`` needs.

Elementwise rows give *local derivatives*: ``defunary(np.sin, lambda ans, x: cos(x))``
means d sin(x)/dx = cos(x); the JVP multiplies it by the tangent, the VJP by
the cotangent, and broadcasting is undone in one place (``unbroadcast``).
Structural rows give their rules in full.

Batching convention: a tangent or cotangent may carry extra *leading* axes
(k directions at once, for ``jacfwd``/``jacrev``).  A rule finds how many with
``ndim(t) - ndim(x)``; parameters that name axes are stored as negative
numbers, so the same call works with or without the extra axes.

``domain`` says where the generated tests sample inputs: ``"real"``,
``"positive"``, ``"unit"`` (|x| < 1), ``"above1"`` (x > 1), ``"nonzero"``.
"""

import math
import operator

import numpy as np

from .. import backend
from ..core.trace import Box, IndexedRules, Primitive, unbox

TABLE = {}   # name -> Primitive
UFUNCS = {}  # numpy ufunc -> Primitive (the elementwise rows)
SCALARS = frozenset((float, int, bool, np.float64, np.float32, complex))  # shape ()
REALS = frozenset((float, int, bool, np.float64, np.float32))  # never complex: no dtype test


def defprim(name, impl, jvp=None, vjp=None, ufunc=None, real_only=None, scalar=None, **opts):
    """Register a primitive.  ``real_only`` (a reason) makes its rules refuse complex
    values with a TypeError naming it; ``scalar`` is its scalar form (``Primitive``; a
    numpy ufunc row gets ``ufunc_form(ufunc)``); the other options are ``Primitive``'s."""
    if real_only is not None:
        jvp, vjp = _real_only(name, jvp, real_only), _real_only(name, vjp, real_only)
    if scalar is None and ufunc is not None:
        scalar = ufunc_form(ufunc)
    prim = Primitive(name, impl, jvp, vjp, ufunc=ufunc, scalar=scalar, **opts)
    TABLE[name] = prim
    if ufunc is not None:
        UFUNCS[ufunc] = prim
    return prim


_OPERATORS = {np.add: "({} + {})", np.subtract: "({} - {})", np.multiply: "({} * {})",
              np.true_divide: "({} / {})", np.negative: "(-{})", np.positive: "(+{})"}


def ufunc_form(ufunc):
    """The scalar form of a numpy ufunc row: the operator (``(x + y)``) or the ufunc on
    scalars (``np.sin(x)``), which numba compiles and plain Python runs.  None for a
    gufunc (matmul) or a ufunc outside numpy's namespace (scipy.special's)."""
    if not isinstance(ufunc, np.ufunc) or ufunc.signature is not None \
            or getattr(np, ufunc.__name__, None) is not ufunc:
        return None
    form = _OPERATORS.get(ufunc)
    if form is not None:
        return form.format
    return lambda *args: f"np.{ufunc.__name__}({', '.join(args)})"


def _fused(fused, name):
    """A row's fused value-and-derivative kernel: ``fused=True`` takes the backend's row of
    the same name, a string names another (``absolute`` -> ``"abs"``)."""
    if not fused:
        return None
    return backend.fused_unary(name if fused is True else fused)


def defunary(ufunc, deriv, domain="real", smooth=True, impl=None, name=None, fused=False,
             real_only=None, vector=None):
    """An elementwise primitive from its local derivative ``deriv(ans, x)``.

    ``fused``: the backend has a kernel computing f(x) and f'(x) in one pass (ReverseDiff's
    ForwardOptimize); where it wins on this machine, recording keeps f'(x) on the tape and
    the first-order reverse step is one multiply.  Higher orders use ``deriv``.
    """
    name = name or ufunc.__name__
    return defprim(name, impl or ufunc,
                   jvp=(lambda t, ans, x: multiply(t, deriv(ans, x)),),
                   vjp=(lambda g, ans, x: multiply(g, deriv(ans, x)),),
                   ufunc=ufunc, partials=(deriv,), fast="local", fused=_fused(fused, name),
                   domain=domain, smooth=smooth, real_only=real_only, vector=vector)


def defbinary(ufunc, dx, dy, domain="real", smooth=True, impl=None, name=None, fast="local",
              real_only=None):
    """A broadcasting elementwise primitive from its two local partials."""
    return defprim(name or ufunc.__name__, impl or ufunc,
                   jvp=(lambda t, ans, x, y: multiply(t, dx(ans, x, y)),
                        lambda t, ans, x, y: multiply(t, dy(ans, x, y))),
                   vjp=(lambda g, ans, x, y: multiply(g, dx(ans, x, y)),
                        lambda g, ans, x, y: multiply(g, dy(ans, x, y))),
                   ufunc=ufunc, bcast=True, partials=(dx, dy), fast=fast, domain=domain,
                   smooth=smooth, real_only=real_only)


def is_complex(x):
    """True for a complex value (traced or raw, array or scalar)."""
    c = x.__class__
    if c is np.ndarray:
        return x.dtype.kind == "c"
    if c in REALS:
        return False
    while isinstance(x, Box):
        x = x.value
    if x.__class__ is complex:
        return True
    dt = getattr(x, "dtype", None)
    return dt is not None and dt.kind == "c"


def _real_only(name, rules, why):
    """``rules`` guarded: a complex argument or result raises TypeError naming the row."""
    def guard(rule):
        if rule is None:
            return None

        def checked(t, ans, *args, **kw):
            if is_complex(ans) or any(is_complex(a) for a in args):
                raise TypeError(f"dualgrad has no derivative rule for {name!r} of complex "
                                f"values ({why})")
            return rule(t, ans, *args, **kw)
        return checked
    if rules is None:
        return None
    return guard(rules) if callable(rules) else tuple(guard(r) for r in rules)


# ---------------------------------------------------------------------------
# shape helpers used by the rules (raw shape arithmetic, no derivatives)
# ---------------------------------------------------------------------------

def shape_of(x):
    """The shape of a value, raw or traced (numbers, arrays, boxes, nested lists)."""
    c = x.__class__
    if c is np.ndarray:
        return x.shape
    if c in SCALARS:
        return ()
    s = getattr(x, "shape", None)
    return np.shape(x) if s is None else s


def ndim_of(x):
    return x.ndim if x.__class__ is np.ndarray else len(shape_of(x))


def unbroadcast(c, shape, nb):
    """Sum cotangent ``c`` (with ``nb`` leading batch axes) back to ``shape``."""
    cs = shape_of(c)
    target = cs[:nb] + tuple(shape)
    if cs == target:
        return c
    extra = len(cs) - len(target)
    if extra < 0:
        return broadcast_to(c, target)
    axes = tuple(range(nb, nb + extra)) + tuple(
        nb + extra + i for i, s in enumerate(shape) if s == 1 and cs[nb + extra + i] != 1)
    if axes:
        c = sum_(c, axis=tuple(a - len(cs) for a in axes), keepdims=True)
    return reshape(c, target) if shape_of(c) != target else c


def align_tangent(t, x, ans):
    """Give a batched tangent of ``x`` the rank of ``ans`` so broadcasting lines up."""
    nx, na = ndim_of(x), ndim_of(ans)
    if nx >= na:
        return t
    nb = ndim_of(t) - nx
    if nb == 0:
        return t
    s = shape_of(t)
    return reshape(t, s[:nb] + (1,) * (na - nx) + s[nb:])


def broadcast_tangent(t, ans):
    """Broadcast a tangent to (batch axes) + ans.shape if a zero partner left it short."""
    st, sa = shape_of(t), shape_of(ans)
    if len(st) < len(sa):
        return broadcast_to(t, sa)
    nb = len(st) - len(sa)
    if st[nb:] != sa:
        return broadcast_to(t, st[:nb] + sa)
    return t


def normalize_axes(axis, nd, name="axis"):
    """numpy's axis argument as a tuple of negative axes (None: all axes), the form the
    rows take (negative axes still name the same axes under leading batch axes)."""
    if axis is None:
        return tuple(range(-nd, 0))
    if not isinstance(axis, (tuple, list)):
        axis = (axis,)
    out = []
    for a in axis:
        a = operator.index(a)
        if not -nd <= a < nd:
            raise np.exceptions.AxisError(f"{name}={a} is out of bounds for an array of "
                                          f"dimension {nd}")
        out.append(a - nd if a >= 0 else a)
    return tuple(out)


def batch_shape(t, x):
    """The leading batch shape of tangent/cotangent ``t`` over primal ``x``."""
    return shape_of(t)[:ndim_of(t) - ndim_of(x)]


def float_dtype(x):
    """The floating dtype a derivative of ``x`` has: x's own for a float array, float64
    for Python numbers and integers.  (A Python ``1.0`` is a *weak* float under NumPy 2's
    promotion rules, so float16/32/64 and longdouble arrays keep their dtype.)"""
    return np.result_type(unbox(x), 1.0)


def device_like(x):
    """The raw array under ``x`` when it is not numpy's (a CuPy array, or any array with
    ``__array_namespace__`` or ``__cuda_array_interface__``), else None.  Rules pass it
    as ``like=`` to numpy's constructors (NEP 35), so a constant mask or identity is
    made where x lives; ``like=None`` is numpy's own path, reached by one class test.

    >>> device_like(np.ones(2)) is None and device_like(2.0) is None
    True
    """
    while isinstance(x, Box):
        x = x.value
    c = x.__class__
    if c is np.ndarray or c in SCALARS:
        return None
    x = getattr(x, "__dualgrad_raw__", x)  # dg.jit's view of a recorded value: the value
    return x if backend.is_foreign_array(x) else None


def may_any(mask):
    """``np.any(mask)`` for a host mask; True for a device mask, whose answer would be a
    copy to the host: the caller then takes its branch-free ``where`` path, which gives
    the same values (it only skips work when nothing is masked)."""
    if mask.__class__ is not np.ndarray and device_like(mask) is not None:
        return True
    return bool(np.any(mask))


def float_mask(cond, like):
    """A float 0/1 array from a boolean condition (constant: no derivative).  Conditions
    are comparisons of the rule's arguments themselves (``x > y``, not of their raw
    values): under ``dg.jit`` a comparison is a graph node and the mask follows new
    values, where reading the raw values would guard on them (a retrace per new input)."""
    if isinstance(cond, Box):  # dg.jit's graph or dg.vmap's batch: the mask is traced too
        return astype(cond, dtype=float_dtype(like))
    c = unbox(cond)
    if isinstance(c, Box):  # a batch (dg.vmap): one condition per example
        return astype(c, dtype=float_dtype(like))
    if c.__class__ is not np.ndarray and device_like(c) is not None:
        return c.astype(float_dtype(like))  # on the device: no host copy
    return np.asarray(c, dtype=float_dtype(like))


_raw = unbox


# ---------------------------------------------------------------------------
# arithmetic
# ---------------------------------------------------------------------------

def _identity(t, ans, *args, **kw):
    return t


add = defprim("add", operator.add, ufunc=np.add, bcast=True, fast="id",
              jvp=(_identity, _identity), vjp=(_identity, _identity))
def _subtract_jvp(tangents, ans, x, y):
    tx, ty = tangents
    if ty is None:
        return broadcast_tangent(align_tangent(tx, x, ans), ans)
    ty = align_tangent(ty, y, ans)
    t = negative(ty) if tx is None else subtract(align_tangent(tx, x, ans), ty)
    return broadcast_tangent(t, ans)


subtract = defprim("subtract", operator.sub, ufunc=np.subtract, bcast=True, fast="sub",
                   jvp=_subtract_jvp,
                   vjp=(_identity, lambda g, ans, x, y: negative(g)))
multiply = defprim("multiply", operator.mul, ufunc=np.multiply, bcast=True, fast="mul",
                   jvp=(lambda t, ans, x, y: multiply(t, y), lambda t, ans, x, y: multiply(x, t)),
                   vjp=(lambda g, ans, x, y: multiply(g, y), lambda g, ans, x, y: multiply(x, g)))
divide = defprim("divide", operator.truediv, ufunc=np.true_divide, bcast=True,
                 fast="div", domain="nonzero",
                 jvp=(lambda t, ans, x, y: divide(t, y),
                      lambda t, ans, x, y: negative(multiply(t, divide(ans, y)))),
                 vjp=(lambda g, ans, x, y: divide(g, y),
                      lambda g, ans, x, y: negative(multiply(g, divide(ans, y)))))
negative = defprim("negative", operator.neg, ufunc=np.negative, fast="neg",
                   jvp=(lambda t, ans, x: negative(t),), vjp=(lambda g, ans, x: negative(g),))
positive = defprim("positive", operator.pos, ufunc=np.positive, fast="id",
                   jvp=(_identity,), vjp=(_identity,))


def _log_nonzero(x):
    return log(where(float_mask(x == 0, x), 1.0, x))


def _pow_dx(ans, x, y):
    if y.__class__ in SCALARS:  # constant exponent: the common x ** 2
        if y == 0:
            return 0.0  # x ** 0 is constant: exactly 0, even at x = 0 (no 0 * inf)
        return multiply(x, 2.0) if y == 2 else multiply(y, power(x, y - 1))
    zero = (_raw(y) == 0) & (_raw(x) == 0)
    if may_any(zero):  # 0 * 0 ** -1: take y * 1 ** -1 there, which keeps y's own derivative
        x = where(zero, 1.0, x)
    return multiply(y, power(x, subtract(y, 1)))


def divide_or_zero(num, den):
    """num / den, with 0 where den = 0: the zero subgradient PyTorch's norm and cdist give
    (sqrt's 0.5 / sqrt(x) at x = 0, so sqrt(sum(d ** 2)) at d = 0 has gradient 0, not
    0 * inf = nan; hypot at the origin; |z| at z = 0)."""
    zero = _raw(den) == 0
    if may_any(zero):
        return where(zero, 0.0, divide(num, where(zero, 1.0, den)))
    return divide(num, den)


def _select(first, tie, like):
    """0/1 mask of ``first`` with 0.5 where ``tie`` (ties split the derivative evenly)."""
    m = float_mask(first, like)
    if may_any(tie):
        m = m + 0.5 * float_mask(tie, like)
    return m


power = defbinary(np.power, _pow_dx,
                  lambda ans, x, y: multiply(ans, _log_nonzero(x)),
                  impl=operator.pow, domain="positive", fast="pow")
_NO_ORDER = "complex numbers have no order"
maximum = defbinary(np.maximum,
                    lambda ans, x, y: _select(x > y, x == y, ans),
                    lambda ans, x, y: _select(x < y, x == y, ans),
                    smooth=False, real_only=_NO_ORDER)
minimum = defbinary(np.minimum,
                    lambda ans, x, y: _select(x < y, x == y, ans),
                    lambda ans, x, y: _select(x > y, x == y, ans),
                    smooth=False, real_only=_NO_ORDER)
fmax = defbinary(np.fmax, lambda ans, x, y: float_mask(ans == x, x),
                 lambda ans, x, y: float_mask(ans != x, y), smooth=False,
                 real_only=_NO_ORDER)
fmin = defbinary(np.fmin, lambda ans, x, y: float_mask(ans == x, x),
                 lambda ans, x, y: float_mask(ans != x, y), smooth=False,
                 real_only=_NO_ORDER)
arctan2 = defbinary(np.arctan2,
                    lambda ans, y, x: divide(x, add(square(x), square(y))),
                    lambda ans, y, x: negative(divide(y, add(square(x), square(y)))),
                    domain="nonzero")
hypot = defbinary(np.hypot, lambda ans, x, y: divide_or_zero(x, ans),
                  lambda ans, x, y: divide_or_zero(y, ans),
                  domain="nonzero")


def log_share(x, ans):
    """``x - ans``: the log of term x's share of a log-sum-exp ``ans`` (``logaddexp``,
    ``logsumexp``), whose partials are ``exp(x - ans)``.  Where x is the +inf that makes
    ans +inf the share is 1, JAX's limit (softplus'(inf) = 1, d/dx logaddexp(inf, 1) = 1),
    not exp(inf - inf) = nan; at -inf it stays nan, as in JAX.  Raw values (the
    first-order sweep) are patched only where that happens; traced ones go through two
    ``where`` nodes so the rule stays differentiable.

    >>> float(log_share(np.inf, np.inf)), float(log_share(1.0, np.inf))
    (0.0, -inf)
    """
    with np.errstate(invalid="ignore"):  # inf - inf: replaced below
        d = subtract(x, ans)
    if not isinstance(d, Box):
        bad = (x == ans) & (ans == np.inf)
        return np.where(bad, 0.0, d)[()] if may_any(bad) else d
    return where(x == ans, where(ans == np.inf, 0.0, d), d)


logaddexp = defbinary(np.logaddexp, lambda ans, x, y: exp(log_share(x, ans)),
                      lambda ans, x, y: exp(log_share(y, ans)))
logaddexp2 = defbinary(np.logaddexp2, lambda ans, x, y: exp2(log_share(x, ans)),
                       lambda ans, x, y: exp2(log_share(y, ans)))
remainder = defbinary(np.remainder, lambda ans, x, y: float_mask(np.ones_like(_raw(ans)), ans),
                      lambda ans, x, y: negative(
                          float_mask(np.floor_divide(_raw(x), _raw(y)), ans)),
                      domain="positive", smooth=False)
fmod = defbinary(np.fmod, lambda ans, x, y: float_mask(np.ones_like(_raw(ans)), ans),
                 lambda ans, x, y: negative(float_mask(np.trunc(_raw(x) / _raw(y)), ans)),
                 domain="positive", smooth=False)

# ---------------------------------------------------------------------------
# elementwise functions (local derivative in terms of the answer and the input)
# ---------------------------------------------------------------------------

exp = defunary(np.exp, lambda ans, x: ans, fused=True, vector="exp")
exp2 = defunary(np.exp2, lambda ans, x: multiply(ans, math.log(2.0)))
expm1 = defunary(np.expm1, lambda ans, x: add(ans, 1.0), fused=True, vector="expm1")
log = defunary(np.log, lambda ans, x: reciprocal(x), domain="positive", fused=True,
               vector="log")
log2 = defunary(np.log2, lambda ans, x: reciprocal(multiply(x, math.log(2.0))),
                domain="positive")
log10 = defunary(np.log10, lambda ans, x: reciprocal(multiply(x, math.log(10.0))),
                 domain="positive")
log1p = defunary(np.log1p, lambda ans, x: reciprocal(add(x, 1.0)), domain="positive",
                 fused=True, vector="log1p")
sqrt = defunary(np.sqrt, lambda ans, x: divide_or_zero(0.5, ans), domain="positive", fused=True)
cbrt = defunary(np.cbrt, lambda ans, x: divide(1.0, multiply(3.0, square(ans))),
                domain="positive")
square = defunary(np.square, lambda ans, x: multiply(2.0, x), fused=True)
reciprocal = defunary(np.reciprocal, lambda ans, x: negative(square(ans)), domain="nonzero",
                      fused=True)
absolute = defprim("absolute", np.absolute, ufunc=np.absolute, smooth=False,  # see "complex"
                   jvp=(lambda t, ans, x: _abs_jvp(t, ans, x),),
                   vjp=(lambda g, ans, x: multiply(g, _abs_deriv(ans, x)),),
                   partials=(lambda ans, x: _abs_deriv(ans, x),), fast="local",
                   fused=_fused("abs", "absolute"))
fabs = defunary(np.fabs, lambda ans, x: float_mask(np.sign(_raw(x)), x), smooth=False)
sin = defunary(np.sin, lambda ans, x: cos(x), fused=True, vector="sin")
cos = defunary(np.cos, lambda ans, x: negative(sin(x)), fused=True, vector="cos")
tan = defunary(np.tan, lambda ans, x: add(1.0, square(ans)), domain="unit", fused=True)
arcsin = defunary(np.arcsin, lambda ans, x: reciprocal(sqrt(subtract(1.0, square(x)))),
                  domain="unit")
arccos = defunary(np.arccos, lambda ans, x: negative(reciprocal(sqrt(subtract(1.0, square(x))))),
                  domain="unit")
arctan = defunary(np.arctan, lambda ans, x: reciprocal(add(1.0, square(x))), fused=True)
sinh = defunary(np.sinh, lambda ans, x: cosh(x), fused=True)
cosh = defunary(np.cosh, lambda ans, x: sinh(x), fused=True)
tanh = defunary(np.tanh, lambda ans, x: subtract(1.0, square(ans)), fused=True, vector="tanh")
arcsinh = defunary(np.arcsinh, lambda ans, x: reciprocal(sqrt(add(square(x), 1.0))))
arccosh = defunary(np.arccosh, lambda ans, x: reciprocal(sqrt(subtract(square(x), 1.0))),
                   domain="above1")
arctanh = defunary(np.arctanh, lambda ans, x: reciprocal(subtract(1.0, square(x))), domain="unit")
deg2rad = defunary(np.deg2rad, lambda ans, x: math.pi / 180.0)
rad2deg = defunary(np.rad2deg, lambda ans, x: 180.0 / math.pi)

UFUNCS[np.radians] = deg2rad
UFUNCS[np.degrees] = rad2deg


# ---------------------------------------------------------------------------
# selection
# ---------------------------------------------------------------------------

def _where_jvp(tangents, ans, c, x, y):
    tc, tx, ty = tangents
    if tx is None and ty is None:
        return None
    zero = 0.0
    tx = zero if tx is None else align_tangent(tx, x, ans)
    ty = zero if ty is None else align_tangent(ty, y, ans)
    return broadcast_tangent(where(c, tx, ty), ans)


where = defprim("where", np.where, ufunc=None, bcast=True, smooth=False,
                scalar=lambda c, x, y: f"({x} if {c} else {y})",
                jvp=_where_jvp,
                vjp=(None, lambda g, ans, c, x, y: where(c, g, 0.0),
                     lambda g, ans, c, x, y: where(c, 0.0, g)))


def _clip_in(x, lo, hi, like):
    """The float 0/1 mask of lo <= x <= hi (a bound of None is no bound)."""
    if lo is None and hi is None:
        return float_mask(np.ones(np.shape(_raw(x)), bool, like=device_like(_raw(x))), like)
    if lo is None or hi is None:
        return float_mask(x <= hi if lo is None else x >= lo, like)
    return multiply(float_mask(x >= lo, like), float_mask(x <= hi, like))


def _clip_form(x, lo, hi):
    if lo != "None":
        x = f"np.maximum({x}, {lo})"
    return x if hi == "None" else f"np.minimum({x}, {hi})"


clip = defprim(
    "clip", np.clip, bcast=True, smooth=False, real_only=_NO_ORDER, scalar=_clip_form,
    jvp=(lambda t, ans, x, lo, hi: multiply(t, _clip_in(x, lo, hi, ans)),
         lambda t, ans, x, lo, hi: multiply(t, float_mask(x < lo, ans)),
         lambda t, ans, x, lo, hi: multiply(t, float_mask(x > hi, ans))),
    vjp=(lambda g, ans, x, lo, hi: multiply(g, _clip_in(x, lo, hi, ans)),
         lambda g, ans, x, lo, hi: multiply(g, float_mask(x < lo, ans)),
         lambda g, ans, x, lo, hi: multiply(g, float_mask(x > hi, ans))))


# ---------------------------------------------------------------------------
# batching rules (dg.vmap, vmap.py)
#
# ``batch(args, dims, **kw)`` gets the arguments one level down with their batch axis
# (an int, or None for an argument without one) and returns ``(ans, out_dim)``.  Most
# rules move the batch axis to the front and call the primitive again: the rows name
# axes by negative numbers, so the same ``axis`` still means the same axes.  Elementwise
# rows need no rule of their own: ``align_batched`` is theirs (vmap.py applies it).
# ---------------------------------------------------------------------------

def bfront(x, d):
    """``x`` with its batch axis ``d`` moved to the front (``None``: as it is)."""
    if not d:
        return x
    n = ndim_of(x)
    return transpose(x, axes=(d,) + tuple(i for i in range(n) if i != d))


def batch_size(args, dims):
    return next(shape_of(a)[d] for a, d in zip(args, dims) if d is not None)


def align_batched(args, dims):
    """Batched arguments with the batch axis in front and ranks padded (size-1 axes after
    it) so numpy's broadcasting lines the rest up; unbatched ones as they are."""
    nd = max(ndim_of(a) - (d is not None) for a, d in zip(args, dims))
    out = []
    for a, d in zip(args, dims):
        if d is not None:
            a = bfront(a, d)
            s = shape_of(a)
            if len(s) - 1 < nd:
                a = reshape(a, s[:1] + (1,) * (nd - len(s) + 1) + s[1:])
        out.append(a)
    return out


def batch_all(args, dims):
    """Every argument with a batch axis in front, the unbatched ones broadcast to it."""
    n = batch_size(args, dims)
    return [bfront(a, d) if d is not None else broadcast_to(a, shape=(n,) + shape_of(a))
            for a, d in zip(args, dims)]


def _shift_axes(kw):
    """Non-negative ``axis`` parameters moved past the new leading batch axis."""
    a = kw.get("axis")
    if a is None or (a.__class__ is int and a < 0):
        return kw
    if isinstance(a, tuple):
        a = tuple(i + 1 if i >= 0 else i for i in a)
    else:
        a = a + 1 if a >= 0 else a
    return dict(kw, axis=a)


def batch_trailing(name, n=1):
    """The rule of a row acting on trailing axes of its arguments (reductions, flip,
    concatenate, stacked linear algebra, softmax...): batch axes in front, re-apply.

    >>> import numpy as np, dualgrad as dg
    >>> dg.vmap(lambda x: np.sum(x, axis=0), in_axes=1)(np.ones((2, 3))).tolist()
    [2.0, 2.0, 2.0]
    """
    def rule(args, dims, **kw):
        k = len(args) if n is None else n  # the array arguments; then parameters
        return TABLE[name](*batch_all(args[:k], dims[:k]), *args[k:], **_shift_axes(kw)), 0
    return rule


def _batch_reshape(args, dims, shape):
    x = bfront(args[0], dims[0])
    s = shape_of(x)
    shape = s[:1] + tuple(shape)
    return (x if shape == s else reshape(x, shape=shape)), 0


def _batch_transpose(args, dims, axes):
    n = ndim_of(args[0]) - 1
    return transpose(bfront(args[0], dims[0]), axes=(0,) + tuple(a % n + 1 for a in axes)), 0


def _batch_broadcast_to(args, dims, shape):
    x = bfront(args[0], dims[0])
    s = shape_of(x)
    x = reshape(x, s[:1] + (1,) * (len(shape) - len(s) + 1) + s[1:])
    return broadcast_to(x, shape=s[:1] + tuple(shape)), 0


# ---------------------------------------------------------------------------
# reductions (axis: a tuple of negative axes, normalised by numpy_api)
# ---------------------------------------------------------------------------

def expand_back(g, ans, x, axis, keepdims):
    """Broadcast a reduced cotangent back to (batch axes) + x.shape."""
    if not keepdims:
        g = expand_dims(g, axis)
    return broadcast_to(g, batch_shape(g, x) + shape_of(x))


def expand_dims(g, axis):
    return reshape(g, _expanded_shape(shape_of(g), axis))


def _expanded_shape(s, axis):
    s = list(s)
    n = len(s) + len(axis)
    for a in sorted(a % n for a in axis):
        s.insert(a, 1)
    return tuple(s)


sum_ = defprim("sum", lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
               jvp=(lambda t, ans, x, axis, keepdims: sum_(t, axis=axis, keepdims=keepdims),),
               vjp=(lambda g, ans, x, axis, keepdims: expand_back(g, ans, x, axis, keepdims),),
               batch=batch_trailing("sum"))


def _extreme_weights(ans, x, axis, keepdims):
    """0/1 weights of the entries attaining the max/min, ties sharing equally."""
    a = _raw(ans) if keepdims else np.expand_dims(_raw(ans), axis)
    m = (_raw(x) == a)
    return float_mask(m / np.sum(m, axis=axis, keepdims=True), x)


_EXTREME_JVP = (lambda t, ans, x, axis, keepdims: sum_(
    multiply(t, _extreme_weights(ans, x, axis, keepdims)), axis=axis, keepdims=keepdims),)
_EXTREME_VJP = (lambda g, ans, x, axis, keepdims: multiply(
    expand_back(g, ans, x, axis, keepdims), _extreme_weights(ans, x, axis, keepdims)),)
amax = defprim("max", lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
               smooth=False, jvp=_EXTREME_JVP, vjp=_EXTREME_VJP, real_only=_NO_ORDER,
               batch=batch_trailing("max"))
amin = defprim("min", lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims),
               smooth=False, jvp=_EXTREME_JVP, vjp=_EXTREME_VJP, real_only=_NO_ORDER,
               batch=batch_trailing("min"))


def _prod_others(x, axis):
    """prod of every entry but this one along ``axis`` (zero-safe: no division).  An
    empty x has no entries to weigh: zeros of its shape (the scan below needs one)."""
    if 0 in shape_of(x):
        return np.zeros(shape_of(x), float_dtype(x), like=device_like(x))
    n = len(shape_of(x))
    axis = tuple(sorted(a % n for a in axis))
    keep = tuple(a for a in range(n) if a not in axis)
    perm = keep + axis
    xt = transpose(x, perm)
    s = shape_of(xt)
    flat = reshape(xt, s[:len(keep)] + (int(np.prod(s[len(keep):], dtype=int)),))
    ones = np.ones(shape_of(flat)[:-1] + (1,), dtype=_raw(flat).dtype, like=device_like(flat))
    left = concatenate(ones, cumprod(flat[..., :-1], axis=-1), axis=-1)
    right = flip(concatenate(ones, cumprod(flip(flat, axis=(-1,))[..., :-1], axis=-1), axis=-1),
                 axis=(-1,))
    others = reshape(multiply(left, right), s)
    return transpose(others, tuple(np.argsort(perm)))


prod = defprim("prod", lambda x, axis, keepdims: np.prod(x, axis=axis, keepdims=keepdims),
               jvp=(lambda t, ans, x, axis, keepdims:
                    sum_(multiply(t, _prod_others(x, axis)), axis=axis, keepdims=keepdims),),
               vjp=(lambda g, ans, x, axis, keepdims:
                    multiply(expand_back(g, ans, x, axis, keepdims), _prod_others(x, axis)),),
               batch=batch_trailing("prod"))

cumsum = defprim("cumsum", lambda x, axis: np.cumsum(x, axis=axis),
                 jvp=(lambda t, ans, x, axis: cumsum(t, axis=axis),),
                 vjp=(lambda g, ans, x, axis: flip(cumsum(flip(g, axis=(axis,)), axis=axis),
                                                    axis=(axis,)),),
                 batch=batch_trailing("cumsum"))


def cumprod(x, axis):
    """Cumulative product along ``axis`` (negative) as a Hillis-Steele scan of multiplies.

    Not a primitive: log2(n) shifted multiplies, so its derivatives come from
    ``multiply`` and are exact at zeros (no division by x).
    """
    n = shape_of(x)[axis]
    tail = (slice(None),) * (-axis - 1)
    d = 1
    while d < n:
        ones = np.ones(shape_of(x)[:ndim_of(x) + axis] + (d,) + shape_of(x)[ndim_of(x) + axis + 1:],
                       float_dtype(x), like=device_like(x))
        shifted = concatenate(ones, getitem(x, (Ellipsis, slice(0, n - d)) + tail), axis=axis)
        x = multiply(x, shifted)
        d *= 2
    return x


# ---------------------------------------------------------------------------
# shape and data movement (linear: a tangent goes through the primitive itself)
# ---------------------------------------------------------------------------

def _batched_shape(t, x, shape):
    return batch_shape(t, x) + tuple(shape)


reshape = defprim("reshape", lambda x, shape: np.reshape(x, shape),
                  jvp=(lambda t, ans, x, shape: reshape(t, _batched_shape(t, x, shape)),),
                  vjp=(lambda g, ans, x, shape: reshape(g, batch_shape(g, ans) + shape_of(x)),),
                  batch=_batch_reshape)


def _batched_axes(nb, axes):
    return tuple(range(nb)) + tuple(nb + a for a in axes)


transpose = defprim(
    "transpose", lambda x, axes: np.transpose(x, axes),
    jvp=(lambda t, ans, x, axes: transpose(t, _batched_axes(ndim_of(t) - ndim_of(x), axes)),),
    vjp=(lambda g, ans, x, axes: transpose(
        g, _batched_axes(ndim_of(g) - ndim_of(ans), tuple(np.argsort(axes)))),),
    batch=_batch_transpose)

broadcast_to = defprim(
    "broadcast_to", lambda x, shape: np.broadcast_to(x, shape),
    jvp=(lambda t, ans, x, shape: broadcast_to(
        align_tangent(t, x, ans), batch_shape(t, x) + tuple(shape)),),
    vjp=(lambda g, ans, x, shape: unbroadcast(g, shape_of(x), ndim_of(g) - ndim_of(ans)),),
    batch=_batch_broadcast_to)

flip = defprim("flip", lambda x, axis: np.flip(x, axis=axis),
               jvp=(lambda t, ans, x, axis: flip(t, axis=axis),),
               vjp=(lambda g, ans, x, axis: flip(g, axis=axis),), batch=batch_trailing("flip"))


def _concat_jvp(tangents, ans, *xs, axis):
    i = next(i for i, t in enumerate(tangents) if t is not None)
    bshape = batch_shape(tangents[i], xs[i])
    dtype = float_dtype(tangents[i])
    like = device_like(tangents[i])
    ts = [np.zeros(bshape + shape_of(x), dtype, like=like) if t is None else t
          for t, x in zip(tangents, xs)]
    return concatenate(*ts, axis=axis)


def _concat_vjp(i):
    def rule(g, ans, *xs, axis):
        start = int(np.sum([shape_of(x)[axis] for x in xs[:i]], dtype=int))
        stop = start + shape_of(xs[i])[axis]
        return getitem(g, (Ellipsis, slice(start, stop)) + (slice(None),) * (-axis - 1))
    return rule


concatenate = defprim("concatenate", lambda *xs, axis: np.concatenate(xs, axis=axis),
                      jvp=_concat_jvp, vjp=IndexedRules(_concat_vjp),
                      batch=batch_trailing("concatenate", n=None))


# -- indexing: a gather, whose transpose is a scatter-add ----------------------

def _is_adv(k):
    """An index array: numpy's, a device array (CuPy's, whose duplicates must add up in
    the scatter just the same) or a ``Slot`` standing for one."""
    return isinstance(k, np.ndarray) or k.__class__ is Slot or backend.is_foreign_array(k)


def _layout(idx):
    """(separated, adv_ndim): whether numpy moves the advanced-index axes to the front."""
    arrays = [k for k in idx if _is_adv(k)]
    if not arrays:
        return False, 0
    pos = [i for i, k in enumerate(idx) if _is_adv(k) or isinstance(k, (int, np.integer))]
    separated = pos[-1] - pos[0] + 1 != len(pos)
    adv_nd = max((1 if k.dtype == bool else k.ndim) for k in arrays) if arrays else 0
    if any(k.dtype == bool and k.ndim > 1 for k in arrays):
        adv_nd = 1
    return separated, adv_nd


class Slot:
    """The place of an index array in the index of a ``gather``/``scatter`` row: its
    ``k``-th array argument, with the shape and dtype the result's layout depends on.

    >>> _fill((Slot(0, (2,), np.dtype(np.int64)), 1), (np.array([0, 3]),))
    (array([0, 3]), 1)
    """

    __slots__ = ("k", "shape", "dtype")

    def __init__(self, k, shape, dtype):
        self.k, self.shape, self.dtype = k, tuple(shape), np.dtype(dtype)

    ndim = property(lambda self: len(self.shape))

    def __eq__(self, other):
        return other.__class__ is Slot and (self.k, self.shape, self.dtype) == (
            other.k, other.shape, other.dtype)

    def __hash__(self):
        return hash((self.k, self.shape, self.dtype.str))

    def __repr__(self):
        return f"<index {self.k}: {self.dtype}{list(self.shape)}>"


def _fill(idx, arrays):
    """``idx`` with each Slot replaced by its array."""
    return tuple(arrays[k.k] if k.__class__ is Slot else k for k in idx)


def _gather_batched(t, idx, nb, arrays=()):
    """t[idx] under ``nb`` leading batch axes; ``arrays``: the index arrays of idx's Slots."""
    if nb == 0:
        return gather(t, *arrays, idx=idx) if arrays else getitem(t, idx)
    full = (slice(None),) * nb + idx
    r = gather(t, *arrays, idx=full) if arrays else getitem(t, full)
    separated, adv_nd = _layout(idx)
    if separated:  # numpy put the advanced axes before the batch axes: move batch to front
        n = ndim_of(r)
        r = transpose(r, tuple(range(adv_nd, adv_nd + nb)) + tuple(range(adv_nd))
                      + tuple(range(adv_nd + nb, n)))
    return r


def _scatter_batched(v, idx, shape, nb, arrays=()):
    """The transpose of ``_gather_batched``: v added into zeros of ``shape`` at idx."""
    if nb:
        separated, adv_nd = _layout(idx)
        if separated:
            n = ndim_of(v)
            v = transpose(v, tuple(range(nb, nb + adv_nd)) + tuple(range(nb))
                          + tuple(range(nb + adv_nd, n)))
        idx = (slice(None),) * nb + idx
    return scatter(v, *arrays, idx=idx, shape=shape) if arrays else \
        scatter_add(v, idx=idx, shape=shape)


def _scatter_impl(v, idx, shape):
    dtype = float_dtype(v) if not hasattr(v, "dtype") else v.dtype
    if not any(_is_adv(k) and k.dtype != bool for k in idx):
        out = np.zeros(shape, dtype, like=device_like(v))
        out[idx] = v  # basic or boolean index: every target appears once
        return out
    return backend.index_add(shape, dtype, idx, v)  # numpy's add.at, or a numba kernel


getitem = defprim(
    "getitem", lambda x, idx: x[idx],
    jvp=(lambda t, ans, x, idx: _gather_batched(t, idx, ndim_of(t) - ndim_of(x)),),
    vjp=(lambda g, ans, x, idx: _scatter_batched(
        g, idx, batch_shape(g, ans) + shape_of(x), ndim_of(g) - ndim_of(ans)),),
    batch=lambda args, dims, idx: (_gather_batched(bfront(args[0], dims[0]), idx, 1), 0))

scatter_add = defprim(
    "scatter_add", _scatter_impl,
    jvp=(lambda t, ans, v, idx, shape: _scatter_batched(
        t, idx, batch_shape(t, v) + tuple(shape), ndim_of(t) - ndim_of(v)),),
    vjp=(lambda g, ans, v, idx, shape: _gather_batched(g, idx, ndim_of(g) - ndim_of(ans)),),
    batch=lambda args, dims, idx, shape: (_scatter_batched(
        bfront(args[0], dims[0]), idx, shape_of(args[0])[dims[0]:dims[0] + 1] + tuple(shape),
        1), 0))

# getitem and scatter_add with the index arrays as arguments (Slots in ``idx`` say where):
# dg.jit records an index array that is an argument of the jitted function this way, so a
# replay takes the new indices (a training loop's labels) instead of guarding the old ones
gather = defprim(
    "gather", lambda x, *arrays, idx: x[_fill(idx, arrays)],
    jvp=(lambda t, ans, x, *arrays, idx: _gather_batched(
        t, idx, ndim_of(t) - ndim_of(x), arrays),),
    vjp=(lambda g, ans, x, *arrays, idx: _scatter_batched(
        g, idx, batch_shape(g, ans) + shape_of(x), ndim_of(g) - ndim_of(ans), arrays),),
    batch=lambda args, dims, idx: NotImplemented if any(d is not None for d in dims[1:])
    else (_gather_batched(bfront(args[0], dims[0]), idx, 1, args[1:]), 0))

scatter = defprim(
    "scatter", lambda v, *arrays, idx, shape: _scatter_impl(v, _fill(idx, arrays), shape),
    jvp=(lambda t, ans, v, *arrays, idx, shape: _scatter_batched(
        t, idx, batch_shape(t, v) + tuple(shape), ndim_of(t) - ndim_of(v), arrays),),
    vjp=(lambda g, ans, v, *arrays, idx, shape: _gather_batched(
        g, idx, ndim_of(g) - ndim_of(ans), arrays),),
    batch=lambda args, dims, idx, shape: NotImplemented if any(
        d is not None for d in dims[1:]) else (_scatter_batched(
            bfront(args[0], dims[0]), idx, shape_of(args[0])[dims[0]:dims[0] + 1]
            + tuple(shape), 1, args[1:]), 0))


def _astype_form(x, dtype):
    d = np.dtype(dtype)
    return f"np.{'bool_' if d.kind == 'b' else d.name}({x})"


def _astype_impl(x, dtype):
    if x.__class__ is not np.ndarray and device_like(x) is not None:
        return x.astype(dtype)  # on the device: no host copy
    return np.asarray(x).astype(dtype)


astype = defprim("astype", _astype_impl, scalar=_astype_form,
                 jvp=(lambda t, ans, x, dtype: astype(t, dtype=dtype),),
                 vjp=(lambda g, ans, x, dtype: astype(real_for(g, x), dtype=_raw(x).dtype
                                                      if hasattr(_raw(x), "dtype")
                                                      else np.float64),))


# ---------------------------------------------------------------------------
# linear algebra
# ---------------------------------------------------------------------------

def mT(x):
    """x with its last two axes swapped (numpy's ``x.mT``): a stack of matrices transposed."""
    n = ndim_of(x)
    return transpose(x, tuple(range(n - 2)) + (n - 1, n - 2))


_T = mT  # the old name, until tests/ uses mT


def _as2d(x, n, side):
    """Promote a 1-D matmul operand to 2-D as numpy does: (1, m) left, (m, 1) right."""
    return x if n > 1 else expand_dims(x, (-2,) if side == 0 else (-1,))


def _lift(t, nd, bnd):
    """Insert size-1 axes after a tangent's batch axes so matmul's broadcasting lines up."""
    nb = ndim_of(t) - nd
    pad = bnd - (nd - 2)
    if nb == 0 or pad <= 0:
        return t
    s = shape_of(t)
    return reshape(t, s[:nb] + (1,) * pad + s[nb:])


def _matmul_jvp(tangents, ans, x, y):
    tx, ty = tangents
    nx, ny = ndim_of(x), ndim_of(y)
    if nx == 2 and ny == 1:  # matrix @ vector: all k directions in one matrix product
        out = None if ty is None else matmul(ty, mT(x))
        if tx is not None:
            r = matmul(tx, y)
            out = r if out is None else add(out, r)
        return out
    bnd = max(nx, ny, 2) - 2
    out = None
    if tx is not None:
        out = matmul(_lift(_as2d(tx, nx, 0), max(nx, 2), bnd), _as2d(y, ny, 1))
    if ty is not None:
        r = matmul(_as2d(x, nx, 0), _lift(_as2d(ty, ny, 1), max(ny, 2), bnd))
        out = r if out is None else add(out, r)
    t = tx if tx is not None else ty
    return reshape(out, batch_shape(t, x if tx is not None else y) + shape_of(ans))


def _matmul_vjp_x(g, ans, x, y):
    nb = ndim_of(g) - ndim_of(ans)
    nx, ny = ndim_of(x), ndim_of(y)
    if nx > 1 and ny > 1:
        return unbroadcast(matmul(g, mT(y)), shape_of(x), nb)
    x2, y2 = _as2d(x, nx, 0), _as2d(y, ny, 1)
    g2 = reshape(g, batch_shape(g, ans) + _mm_shape(x2, y2))
    c = unbroadcast(matmul(g2, mT(y2)), shape_of(x2), nb)
    return reshape(c, batch_shape(g, ans) + shape_of(x))


def _matmul_vjp_y(g, ans, x, y):
    nb = ndim_of(g) - ndim_of(ans)
    nx, ny = ndim_of(x), ndim_of(y)
    if nx == 2 and ny == 1:  # all k cotangent rows in one matrix product
        return matmul(g, x)
    if nx > 1 and ny > 1:
        return unbroadcast(matmul(mT(x), g), shape_of(y), nb)
    x2, y2 = _as2d(x, nx, 0), _as2d(y, ny, 1)
    g2 = reshape(g, batch_shape(g, ans) + _mm_shape(x2, y2))
    c = unbroadcast(matmul(mT(x2), g2), shape_of(y2), nb)
    return reshape(c, batch_shape(g, ans) + shape_of(y))


def _mm_shape(a, b):
    sa, sb = shape_of(a), shape_of(b)
    return np.broadcast_shapes(sa[:-2], sb[:-2]) + (sa[-2], sb[-1])


def _matmul_batch(args, dims):
    """matmul with a batch axis: a batched operand that is a stack of vectors or matrices
    against a plain matrix is one matrix product; the rest promote 1-D operands as numpy
    does, line up their leading axes behind the batch axis and broadcast."""
    (x, y), (dx, dy) = args, dims
    nx, ny = ndim_of(x) - (dx is not None), ndim_of(y) - (dy is not None)
    if dy is None and ny == 2:  # (B, ..., k) @ (k, m): one product over all rows
        x = bfront(x, dx)
        s = shape_of(x)
        if len(s) == 2:
            return matmul(x, y), 0
        return reshape(matmul(reshape(x, (-1, s[-1])), y), s[:-1] + shape_of(y)[-1:]), 0
    if dx is None and nx == 2 and ny == 1:  # (n, k) @ (B, k)
        return matmul(bfront(y, dy), mT(x)), 0
    px, py = dx is not None and nx == 1, dy is not None and ny == 1  # promoted to 2-D
    if px:
        x = expand_dims(bfront(x, dx), (-2,))
    if py:
        y = expand_dims(bfront(y, dy), (-1,))
    x, y = align_batched((x, y), (0 if px else dx, 0 if py else dy))
    if dx is not None and dy is not None and shape_of(x)[-1] == 1:
        r = multiply(x, y)  # a batch of outer products: no stacked matrix products
    else:
        r = matmul(x, y)
    if not (px or py):
        return r, 0
    s = shape_of(r)
    if py:
        s = s[:-1]
    if px:
        s = s[:-1] if ny == 1 else s[:-2] + s[-1:]  # a vector y left no column axis
    return reshape(r, s), 0


matmul = defprim("matmul", operator.matmul, ufunc=np.matmul, jvp=_matmul_jvp,
                 vjp=(_matmul_vjp_x, _matmul_vjp_y), batch=_matmul_batch)


def _trace_last2(a):
    n = shape_of(a)[-1]
    return sum_(multiply(a, np.eye(n, dtype=float_dtype(a), like=device_like(a))), axis=(-2, -1),
                keepdims=False)


def _solve_vec(a, b):
    """solve(a, b) for a batch of vectors b (..., n), whatever numpy thinks of its rank."""
    return getitem(solve(a, expand_dims(b, (-1,))), (Ellipsis, 0))


def _expand2(g):
    return expand_dims(g, (-2, -1))


inv = defprim("inv", np.linalg.inv,
              jvp=(lambda t, ans, x: negative(matmul(ans, matmul(t, ans))),),
              vjp=(lambda g, ans, x: negative(matmul(mT(ans), matmul(g, mT(ans)))),),
              batch=batch_trailing("inv"))
det = defprim("det", np.linalg.det,
              jvp=(lambda t, ans, x: multiply(ans, _trace_last2(solve(x, t))),),
              vjp=(lambda g, ans, x: multiply(_expand2(multiply(g, ans)), mT(inv(x))),),
              batch=batch_trailing("det"))
logabsdet = defprim("logabsdet", lambda x: np.linalg.slogdet(x)[1],
                    jvp=(lambda t, ans, x: _trace_last2(solve(x, t)),),
                    vjp=(lambda g, ans, x: multiply(_expand2(g), mT(inv(x))),),
                    real_only="its rules assume a real matrix",
                    batch=batch_trailing("logabsdet"))


def _solve_jvp(tangents, ans, a, b):
    """d(a⁻¹b) = a⁻¹(db − da·ans).  The tangents' leading batch axes go in front of every
    axis of ``ans`` (which may itself be batched: a cotangent under forward mode), so
    each tangent is lifted to ans's rank before the products broadcast."""
    ta, tb = tangents
    vec = ndim_of(b) == 1
    ans_m = expand_dims(ans, (-1,)) if vec else ans  # (..., M, K), K = 1 for a vector b
    rank = ndim_of(ans_m)
    rhs = None
    if ta is not None:
        rhs = negative(matmul(_lift(ta, ndim_of(a), rank - 2), ans_m))
    if tb is not None:
        tb = _lift(expand_dims(tb, (-1,)) if vec else tb, ndim_of(b) + vec, rank - 2)
        rhs = tb if rhs is None else add(rhs, tb)
    out = solve(a, rhs)
    return getitem(out, (Ellipsis, 0)) if vec else out


def _solve_vjp_a(g, ans, a, b):
    nb = ndim_of(g) - ndim_of(ans)
    gb = _solve_vjp_b(g, ans, a, b, reduce=False)
    if ndim_of(b) == 1:
        c = negative(multiply(expand_dims(gb, (-1,)), expand_dims(ans, (-2,))))
    else:
        c = negative(matmul(gb, mT(ans)))
    return unbroadcast(c, shape_of(a), nb)


def _solve_vjp_b(g, ans, a, b, reduce=True):
    nb = ndim_of(g) - ndim_of(ans)
    c = _solve_vec(mT(a), g) if ndim_of(b) == 1 else solve(mT(a), g)
    return unbroadcast(c, shape_of(b), nb) if reduce else c


def _solve_batch(args, dims):
    """solve with a batch axis: a vector right-hand side (per example) becomes an n x 1
    matrix, so numpy never mistakes the batch axis for a matrix axis."""
    (a, b), (da, db) = args, dims
    if ndim_of(b) - (db is not None) == 1:
        b = expand_dims(bfront(b, db), (-1,))
        a, b = align_batched((a, b), (da, None if db is None else 0))
        return getitem(solve(a, b), (Ellipsis, 0)), 0
    a, b = align_batched((a, b), dims)
    return solve(a, b), 0


solve = defprim("solve", np.linalg.solve, jvp=_solve_jvp, vjp=(_solve_vjp_a, _solve_vjp_b),
                batch=_solve_batch)


def _phi(x):
    """Lower triangle with the diagonal halved (the cholesky derivative's projection)."""
    n = shape_of(x)[-1]
    like = device_like(x)
    return multiply(x, (np.tril(np.ones((n, n), like=like)) - 0.5 * np.eye(n, like=like))
                    .astype(float_dtype(x)))


def _cholesky_jvp(t, L, x):
    s = multiply(0.5, add(t, mT(t)))
    return matmul(L, _phi(solve(L, mT(solve(L, s)))))


def _cholesky_vjp(g, L, x):
    p = _phi(matmul(mT(L), g))
    y = solve(mT(L), p)
    a = mT(solve(mT(L), mT(y)))
    return multiply(0.5, add(a, mT(a)))


cholesky = defprim("cholesky", np.linalg.cholesky, jvp=(_cholesky_jvp,), vjp=(_cholesky_vjp,),
                   real_only="its rules assume a real symmetric matrix",
                   batch=batch_trailing("cholesky"))


# -- einsum: one multilinear primitive for tensordot, inner and friends --------

def _einsum_parse(subscripts):
    ins, out = subscripts.split("->")
    return ins.split(","), out


def _fresh_letters(subscripts, n):
    used = set(subscripts)
    return "".join([c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used][:n])


def _einsum_impl(*xs, subscripts):
    return np.einsum(subscripts, *xs, optimize=len(xs) > 2)


def _spell_ellipsis(ins, out, shapes, letters):
    """Subscripts with every ``...`` replaced by explicit ``letters``, right-aligned as
    numpy broadcasts ellipsis axes, and the broadcast shape of those axes."""
    ells = [len(shape) - len(s.replace("...", "")) if "..." in s else 0
            for s, shape in zip(ins, shapes)]
    n = max(ells, default=0)
    E = letters[:n]
    parts = []
    for s, shape, k in zip(ins, shapes, ells):
        if "..." in s:
            at = s.index("...")
            parts.append(tuple(shape[at:at + k]))
    bshape = np.broadcast_shapes(*parts) if parts else ()
    spelled = [s.replace("...", E[n - k:]) for s, k in zip(ins, ells)]
    return spelled, out.replace("...", E), dict(zip(E, bshape))


def _einsum_vjp(i):
    def rule(g, ans, *xs, subscripts):
        ins, out = _einsum_parse(subscripts)
        nb = ndim_of(g) - ndim_of(ans)
        fresh = _fresh_letters(subscripts, 26)
        B = fresh[:nb]
        if len(set(ins[i].replace("...", ""))) != len(ins[i].replace("...", "")):
            raise TypeError(f"einsum: no derivative for an operand with a repeated index "
                            f"({ins[i]!r}); use np.diagonal instead")
        shapes = [shape_of(x) for x in xs]
        ins, out, ell = _spell_ellipsis(ins, out, shapes, fresh[nb:])
        # ellipsis axes broadcast from size 1: make them explicit so the letters agree
        others, operands = [], []
        for j, (s, x) in enumerate(zip(ins, xs)):
            if j == i:
                continue
            full = tuple(ell.get(c, n) for c, n in zip(s, shapes[j]))
            operands.append(x if full == shapes[j] else broadcast_to(x, full))
            others.append(s)
        target, xs_shape = ins[i], shapes[i]
        present = set("".join(others) + out)
        # a letter the cotangent lacks is summed inside operand i alone (broadcast back);
        # an ellipsis axis of size 1 that the others broadcast is summed to size 1
        kept = "".join(c for c, n in zip(target, xs_shape)
                       if c in present and not (n == 1 and ell.get(c, 1) != 1))
        sub = ",".join(others + [B + out]) + "->" + B + kept
        c = einsum(*operands, g, subscripts=sub)
        if kept != target:
            bs = batch_shape(g, ans)
            c = reshape(c, bs + tuple(n if ch in kept else 1 for ch, n in zip(target, xs_shape)))
            c = broadcast_to(c, bs + xs_shape) if shape_of(c) != bs + xs_shape else c
        return c
    return rule


def _einsum_jvp(tangents, ans, *xs, subscripts):
    ins, out = _einsum_parse(subscripts)
    total = None
    for i, t in enumerate(tangents):
        if t is None:
            continue
        B = _fresh_letters(subscripts, ndim_of(t) - ndim_of(xs[i]))
        sub = ",".join(ins[:i] + [B + ins[i]] + ins[i + 1:]) + "->" + B + out
        r = einsum(*xs[:i], t, *xs[i + 1:], subscripts=sub)
        total = r if total is None else add(total, r)
    return total


def _einsum_batch(args, dims, subscripts):
    """einsum with a batch axis: one more letter, in front of each batched operand and of
    the output."""
    ins, out = _einsum_parse(subscripts)
    b = _fresh_letters(subscripts, 1)
    ins = [s if d is None else b + s for s, d in zip(ins, dims)]
    xs = [bfront(x, d) for x, d in zip(args, dims)]
    return einsum(*xs, subscripts=",".join(ins) + "->" + b + out), 0


einsum = defprim("einsum", _einsum_impl, jvp=_einsum_jvp, vjp=IndexedRules(_einsum_vjp),
                 batch=_einsum_batch)


# ---------------------------------------------------------------------------
# complex numbers, with JAX's conventions
#
# A complex value's tangent is complex, and a cotangent u pairs with a tangent t as
# Re(sum(u * t)), with no conjugate: a VJP is the plain transpose of the R-linear JVP, so
# multiply-by-c transposes to multiply-by-c.  Every holomorphic row above (add, multiply,
# divide, exp, log, sin, sqrt, matmul, einsum, ...) is therefore right as it stands: its
# local derivative is f'(z).  The rows that are not holomorphic (absolute, real, imag,
# conjugate; angle is arctan2(imag, real)) get their rules here.  Two invariants hold
# where a rule's output meets an argument: a real argument's cotangent is real (the
# sweep takes the real part, ``fit_cotangent``: the transpose of R -> C), and a real
# output never receives a complex tangent (forward mode raises: no complex rule).  For a
# real loss L of z = x + iy the gradient is dL/dx - i dL/dy, the conjugate of PyTorch's.
# Rows that rest on the ordering of real numbers refuse complex values (TypeError).
# ---------------------------------------------------------------------------



def real_for(c, x):
    """``c``, or its real part when ``x`` is real (a real value's cotangent is real)."""
    return real(c) if is_complex(c) and not is_complex(x) else c


def fit_cotangent(c, x):
    """The cotangent ``c`` of argument ``x`` in x's own dtype, as JAX's transposes give it.

    A real x gets the real part of a complex c (the transpose of R -> C); a float32 x whose
    value a float64 constant promoted downstream gets its cotangent back in float32.  A
    Python number is weakly typed (like numpy's own scalars), so only the real part applies.
    """
    rx = _raw(x)
    rc = _raw(c)
    dc = rc.dtype if hasattr(rc, "dtype") else np.result_type(rc)
    dx = rx.dtype if hasattr(rx, "dtype") else None
    if dx is None or dx.kind not in "fc":
        return real(c) if dc.kind == "c" and not isinstance(rx, complex) else c
    if dc == dx:
        return c
    if dc.kind == "c" and dx.kind != "c":
        c = real(c)
    return c if np.result_type(_raw(c)) == dx else astype(c, dtype=dx)


def complex_one(x, value=1.0):
    """``value`` as a scalar of x's complex dtype (complex64 stays complex64)."""
    return np.asarray(value, float_dtype(x))[()]


def _as_complex_ct(g, x):
    """A real cotangent ``g`` of a complex argument ``x``, in x's complex dtype."""
    return multiply(g, complex_one(x)) if is_complex(x) and not is_complex(g) else g


real = defprim("real", np.real, jvp=(lambda t, ans, x: real(t),),
               vjp=(lambda g, ans, x: _as_complex_ct(g, x),), batch=batch_trailing("real"))


def _imag_vjp(g, ans, x):
    if is_complex(x):  # Im(t) = Re(-i t): the transpose multiplies by -i
        return multiply(g, complex_one(x, -1j))
    # imag of a real value is 0, made where g lives
    return np.zeros(shape_of(_raw(g)), float_dtype(x), like=device_like(g))


imag = defprim("imag", np.imag, jvp=(lambda t, ans, x: imag(t),), vjp=(_imag_vjp,),
               batch=batch_trailing("imag"))
conjugate = defprim("conjugate", np.conjugate, ufunc=np.conjugate,
                    jvp=(lambda t, ans, x: conjugate(t),),
                    vjp=(lambda g, ans, x: conjugate(g),))


def _abs_deriv(ans, x):
    """|x|'s local derivative: sign(x) for real x; conj(z)/|z| for complex z (d|z| =
    Re(conj(z) dz)/|z|), with 0 at z = 0 as JAX."""
    if is_complex(x):
        return divide_or_zero(conjugate(x), ans)
    return float_mask(np.sign(_raw(x)), x)


def _abs_jvp(t, ans, x):
    d = multiply(t, _abs_deriv(ans, x))
    return real(d) if is_complex(d) else d


# ---------------------------------------------------------------------------
# functional index updates: what ``y[idx] = v`` on a traced y records (numpy_api.py)
#
# ``index_set(x, v, idx)`` is a copy of x with x[idx] = v (JAX's x.at[idx].set(v)); v
# broadcasts to x[idx]'s shape.  Where an integer index repeats a position, numpy's last
# write wins, so only that entry of v has a derivative there (``_winners``).
# ---------------------------------------------------------------------------

def _index_set_impl(x, v, idx):
    out = np.array(x, copy=True, like=device_like(x))
    out[idx] = v
    return out


def _index_like(idx):
    """The device an index's arrays live on (``like=`` for arrays built to match it)."""
    for k in idx:
        if _is_adv(k) and (d := device_like(k)) is not None:
            return d
    return None


def _target_shape(x, idx):
    return np.empty(shape_of(x), bool, like=_index_like(idx))[idx].shape


def _winners(x, idx):
    """Boolean mask over x[idx]: False for an entry a later one overwrites; None if none
    (where the index lives on a device, the mask is always made: no value is read back)."""
    if not any(_is_adv(k) and k.dtype != bool for k in idx):
        return None
    like = _index_like(idx)
    tshape = _target_shape(x, idx)
    ids = np.arange(int(np.prod(tshape, dtype=np.int64)), like=like).reshape(tshape)
    label = np.full(shape_of(x), -1, np.intp, like=like)
    label[idx] = ids
    win = label[idx] == ids
    return win if like is not None or not win.all() else None


def _onto_target(t, v, bshape, tshape):
    """Tangent ``t`` of v (batch axes first) broadcast to (batch) + x[idx]'s shape."""
    nv = ndim_of(v)
    if nv < len(tshape):
        t = reshape(t, bshape + (1,) * (len(tshape) - nv) + shape_of(t)[len(bshape):])
    return broadcast_to(t, bshape + tshape) if shape_of(t) != bshape + tshape else t


def _index_set_jvp(tangents, ans, x, v, idx):
    tx, tv = tangents
    nb = ndim_of(tx) - ndim_of(x) if tx is not None else ndim_of(tv) - ndim_of(v)
    bshape = shape_of(tx if tx is not None else tv)[:nb]
    out = None if tx is None else index_set(tx, 0.0, idx=(slice(None),) * nb + idx)
    if tv is not None:
        t = _onto_target(tv, v, bshape, _target_shape(x, idx))
        win = _winners(x, idx)
        if win is not None:
            t = where(win, t, 0.0)
        s = _scatter_batched(t, idx, bshape + shape_of(x), nb)
        out = s if out is None else add(out, s)
    return out


def _index_set_vjp_v(g, ans, x, v, idx):
    nb = ndim_of(g) - ndim_of(ans)
    c = _gather_batched(g, idx, nb)
    win = _winners(x, idx)
    if win is not None:
        c = where(win, c, 0.0)
    return unbroadcast(c, shape_of(v), nb)


def _index_set_batch(args, dims, idx):
    """index_set with a batch axis: x (broadcast if unbatched) and v laid out as
    x[:, idx] wants them, then one write."""
    (x, v), (dx, dv) = args, dims
    n = batch_size(args, dims)
    x = bfront(x, dx) if dx is not None else broadcast_to(x, shape=(n,) + shape_of(x))
    tshape = np.empty(shape_of(x)[1:], bool)[idx].shape
    nv = ndim_of(v) - (dv is not None)
    v = bfront(v, dv) if dv is not None else reshape(v, (1,) + shape_of(v))
    sv = shape_of(v)
    if nv < len(tshape):
        v = reshape(v, sv[:1] + (1,) * (len(tshape) - nv) + sv[1:])
    v = broadcast_to(v, shape=(n,) + tshape)
    separated, adv_nd = _layout(idx)
    if separated:  # x[:, idx] puts the advanced axes first, then the batch axis
        v = transpose(v, axes=tuple(range(1, 1 + adv_nd)) + (0,)
                      + tuple(range(1 + adv_nd, 1 + len(tshape))))
    return index_set(x, v, idx=(slice(None),) + idx), 0


index_set = defprim(
    "index_set", _index_set_impl, jvp=_index_set_jvp,
    vjp=(lambda g, ans, x, v, idx: index_set(
        g, 0.0, idx=(slice(None),) * (ndim_of(g) - ndim_of(ans)) + idx),
         _index_set_vjp_v), batch=_index_set_batch)
