"""Elementwise rows: arithmetic, numpy's ufuncs with their local derivatives, selection
(``where``, ``clip``), ``astype``, and the complex-number rows (``real``, ``imag``,
``conjugate``; ``absolute``'s complex rule) with JAX's conventions.

A ufunc row is ``defunary(np.sin, lambda ans, x: cos(x))`` or ``defbinary(ufunc, dx, dy)``:
its local derivatives, written with rows, so they differentiate again.
"""

import math
import operator

import numpy as np

from .. import backend
from ..core.trace import Box
from .table import (
    SCALARS,
    UFUNCS,
    _fused,
    _identity,
    _raw,
    align_tangent,
    batch_trailing,
    broadcast_tangent,
    defbinary,
    defprim,
    defunary,
    device_like,
    float_dtype,
    float_mask,
    is_complex,
    may_any,
    param_dtype,
    real_dtype,
    shape_of,
    ufunc_dtype,
)

# ---------------------------------------------------------------------------
# arithmetic
# ---------------------------------------------------------------------------

add = defprim("add", operator.add, ufunc=np.add, bcast=True,
              jvp=(_identity, _identity), forms=("id", "id"))


def _subtract_jvp(tangents, ans, x, y):
    tx, ty = tangents
    if ty is None:
        return broadcast_tangent(align_tangent(tx, x, ans), ans)
    ty = align_tangent(ty, y, ans)
    t = negative(ty) if tx is None else subtract(align_tangent(tx, x, ans), ty)
    return broadcast_tangent(t, ans)


subtract = defprim("subtract", operator.sub, ufunc=np.subtract, bcast=True,
                   jvp=_subtract_jvp, forms=("id", "neg"))
multiply = defprim("multiply", operator.mul, ufunc=np.multiply, bcast=True,
                   jvp=(lambda t, ans, x, y: multiply(t, y), lambda t, ans, x, y: multiply(x, t)),
                   forms=(("mul", lambda ans, x, y: y), ("mul", lambda ans, x, y: x)))
divide = defprim("divide", operator.truediv, ufunc=np.true_divide, bcast=True,
                 domain="nonzero",
                 jvp=(lambda t, ans, x, y: divide(t, y),
                      lambda t, ans, x, y: negative(multiply(t, divide(ans, y)))),
                 forms=(("div", lambda ans, x, y: y),
                        ("mul", lambda ans, x, y: negative(divide(ans, y)))))
negative = defprim("negative", operator.neg, ufunc=np.negative,
                   jvp=(lambda t, ans, x: negative(t),), forms=("neg",))
positive = defprim("positive", operator.pos, ufunc=np.positive,
                   jvp=(_identity,), forms=("id",))


def _log_nonzero(x):
    return log(where(float_mask(x == 0, x), 1.0, x))


def _pow_dx(ans, x, y):
    if y.__class__ in SCALARS:  # constant exponent: the common x ** 2
        if y == 0:
            return 0.0  # x ** 0 is constant: exactly 0, even at x = 0 (no 0 * inf)
        # x ** 2: 2 * x as a pair, so g * 2 * x scales g first where x carries the
        # tangent (a Hessian's sweep: one pass over the tangents, not two; times_local)
        return (2.0, x) if y == 2 else multiply(y, power(x, y - 1))
    # 0 * 0 ** -1: take y * 1 ** -1 there, which keeps y's own derivative.  Compared as
    # values (graph nodes under dg.jit, batches under vmap): reading the raw numbers
    # guarded on them, a retrace per exponent
    zero = np.logical_and(x == 0, y == 0)
    if may_any(zero):
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
                  impl=operator.pow, domain="positive")
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


def _share(ans, x, y, base2):
    """``d/dx logaddexp(x, y)``: ``exp(x - ans)``, x's share of the sum (``exp2`` for
    logaddexp2, ``base2``).  On a dask array it is written without the output, as the
    sigmoid ``1 / (1 + exp(y - x))`` that dask-glm writes by hand: the output read by
    the loss and by this rule would be a task of its own per chunk, which dask does not
    fuse into either reader; from the inputs, logaddexp fuses into the loss's task and
    the share into the gradient's.  For logaddexp that is the row ``logaddexp_share``,
    raw or traced (a higher derivative, dg.jit's recording): one blockwise kernel
    (``backend.dask.share_chunk``).  logaddexp2's raw values take the same kernel, its
    traced ones the sigmoid in rows, overflow-free (the exponent ``-|x - y|``, taken by
    ``where`` so the rule differentiates at x = y).  The share is 1 at x = y = +inf, as
    :func:`log_share`'s.

    >>> round(float(_share(np.logaddexp(0.0, 2.0), 0.0, 2.0, False)), 12)  # 1 / (1 + e^2)
    0.119202922022
    """
    exp_ = exp2 if base2 else exp
    d = device_like(ans)
    if d is None or not backend.dask.is_dask_array(d):
        return exp_(log_share(x, ans))
    if not base2:  # one row, raw or traced (dg.jit records it: replayed as the kernel)
        return logaddexp_share(x, y)
    if not isinstance(ans, Box) and not isinstance(x, Box) and not isinstance(y, Box):
        return backend.dask.logaddexp_share(x, y, True, _raw(ans).dtype)
    with np.errstate(invalid="ignore"):  # inf - inf: replaced below
        d = subtract(x, y)
        up = d >= 0
        e = exp_(where(up, negative(d), d))  # exp_(-|d|) <= 1
        s = divide(where(up, 1.0, e), add(1.0, e))
        return where(x == y, where(y == np.inf, 1.0, s), s)  # x = y = +inf: 1; -inf: nan


def _share_impl(x, y):
    if backend.dask.any_dask(x, y):
        return backend.dask.logaddexp_share(x, y, False, _LOGADDEXP_DTYPE(x, y))
    return exp(log_share(x, logaddexp(x, y)))  # numpy and device operands: the rule's own


def _share_slope(ans, x, y):
    return multiply(ans, logaddexp_share(y, x))  # s (1 - s), 1 - s as y's share: no
    #  cancellation where s is near 1


_LOGADDEXP_DTYPE = ufunc_dtype(np.logaddexp)
# x's share of logaddexp(x, y), 1 / (1 + exp(y - x)), as one row: on dask arrays (the
# only place _share uses it) one blockwise kernel, whose derivative is read from values
# (s (1 - s), 1 - s as y's share: finite where exp(y - x) overflows), so a traced share,
# dg.jit's recording of grad included, is that kernel too, not the eight rows of the
# sigmoid written with where (which dask fuses into a task three times as long)
logaddexp_share = defbinary(None, _share_slope,
                            lambda ans, x, y: negative(_share_slope(ans, x, y)),
                            impl=_share_impl, name="logaddexp_share",
                            dtype=_LOGADDEXP_DTYPE)
logaddexp = defbinary(np.logaddexp, lambda ans, x, y: _share(ans, x, y, False),
                      lambda ans, x, y: _share(ans, y, x, False))
logaddexp2 = defbinary(np.logaddexp2, lambda ans, x, y: _share(ans, x, y, True),
                       lambda ans, x, y: _share(ans, y, x, True))
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

exp = defunary(np.exp, fused=True, vector="exp")
exp2 = defunary(np.exp2, lambda ans, x: multiply(ans, math.log(2.0)))
expm1 = defunary(np.expm1, fused=True, vector="expm1")
# log and log1p keep a rule of their own: the kernels' 1 / x is Python's division on a
# traced python float (ZeroDivisionError at 0 in a second derivative), reciprocal numpy's (inf)
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
square = defunary(np.square, fused=True)
reciprocal = defunary(np.reciprocal, domain="nonzero", fused=True)
absolute = defprim("absolute", np.absolute, ufunc=np.absolute, smooth=False,  # see "complex"
                   jvp=(lambda t, ans, x: _abs_jvp(t, ans, x),),
                   forms=(("mul", lambda ans, x: _abs_deriv(ans, x)),),
                   fused=_fused("abs", "absolute"), dtype=real_dtype)  # |z| is real
fabs = defunary(np.fabs, lambda ans, x: float_mask(np.sign(_raw(x)), x), smooth=False)
sin = defunary(np.sin, fused=True, vector="sin")
cos = defunary(np.cos, fused=True, vector="cos")
tan = defunary(np.tan, domain="unit", fused=True)
arcsin = defunary(np.arcsin, lambda ans, x: reciprocal(sqrt(subtract(1.0, square(x)))),
                  domain="unit")
arccos = defunary(np.arccos, lambda ans, x: negative(reciprocal(sqrt(subtract(1.0, square(x))))),
                  domain="unit")
arctan = defunary(np.arctan, fused=True)
sinh = defunary(np.sinh, fused=True)
cosh = defunary(np.cosh, fused=True)
tanh = defunary(np.tanh, fused=True, vector="tanh")
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


where = defprim("where", backend.where, ufunc=None, bcast=True, smooth=False,
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


def _astype_form(x, dtype):
    d = np.dtype(dtype)
    return f"np.{'bool_' if d.kind == 'b' else d.name}({x})"


def _astype_impl(x, dtype):
    if x.__class__ is not np.ndarray and device_like(x) is not None:
        return x.astype(dtype)  # on the device: no host copy
    return np.asarray(x).astype(dtype)


astype = defprim("astype", _astype_impl, scalar=_astype_form, dtype=param_dtype("dtype"),
                 jvp=(lambda t, ans, x, dtype: astype(t, dtype=dtype),),
                 vjp=(lambda g, ans, x, dtype: astype(real_for(g, x), dtype=_raw(x).dtype
                                                      if hasattr(_raw(x), "dtype")
                                                      else np.float64),))


# ---------------------------------------------------------------------------
# complex numbers, with JAX's conventions
#
# A complex value's tangent is complex, and a cotangent u pairs with a tangent t as
# Re(sum(u * t)), with no conjugate: a VJP is the plain transpose of the R-linear JVP, so
# multiply-by-c transposes to multiply-by-c.  Every holomorphic row (add, multiply,
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
               vjp=(lambda g, ans, x: _as_complex_ct(g, x),), batch=batch_trailing("real"),
               dtype=real_dtype)


def _imag_vjp(g, ans, x):
    if is_complex(x):  # Im(t) = Re(-i t): the transpose multiplies by -i
        return multiply(g, complex_one(x, -1j))
    # imag of a real value is 0, made where g lives
    return np.zeros(shape_of(_raw(g)), float_dtype(x), like=device_like(g))


imag = defprim("imag", np.imag, jvp=(lambda t, ans, x: imag(t),), vjp=(_imag_vjp,),
               batch=batch_trailing("imag"), dtype=real_dtype)
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
