"""exp, expm1, log, log1p, sin, cos, tanh, sigmoid that LLVM can vectorize in numba loops.

numba lowers ``math.exp`` / ``np.sin`` on scalars to libm calls, and a loop with a call
in it is not vectorized (the pip llvmlite has no SVML).  These functions are plain
arithmetic, selects, ``abs``/``copysign`` and bit casts, so a loop calling them
compiles to packed SIMD code, and a fused loop ``tanh(x)*sin(x) + exp(-x*x)`` runs at
numpy's speed or better.  Each is one scalar function for numba and plain Python::

    >>> import numpy as np
    >>> from numba import njit
    >>> @njit
    ... def loop(x, out):
    ...     for i in range(x.size):
    ...         out[i] = exp(x[i])
    >>> x = np.array([0.0, 1.0, -np.inf]); y = np.empty(3); loop(x, y)
    >>> y[0], abs(y[1] - np.e) <= np.spacing(np.e), y[2]  # within 1 ulp of exact
    (np.float64(1.0), np.True_, np.float64(0.0))
    >>> float(sin(np.float32(1.0)))  # float32 in, float32 out
    0.8414709568023682

Contract (``tests/test_vecmath.py``): within 4 ulp of numpy (measured: at most 2)
for every finite input, float64 and float32, and exact on inf, nan, +-0 and
overflow/underflow.  ``sin``/``cos`` are accurate for ``abs(x) < LIMITS[name]``
and return nan beyond (a caller checks the limit and uses ``np.sin`` instead).

The method is the textbook one (Cody & Waite's reduction, Muller's *Elementary
Functions*, the identities fdlibm's comments describe): reduce x to a small r
with exactly representable pieces of ln2 or pi/2, evaluate a polynomial in r,
rebuild the result with a power of two made by putting bits in an exponent field.
The polynomials are near-minimax fits (Chebyshev interpolation with mpmath at
150 digits, then rounded to double) on the reduced interval widened by 0.2%;
the degree is the smallest whose fitting error is below 2^-56 of the result
(2^-33 for the float32 versions, which compute in float64 and round once).
Every branch is a select, so both sides are computed and nothing is a call;
float division goes through ``_div``, since numba's ``/`` checks for zero and a
loop that may raise does not vectorize.

With ``NUMBA_DISABLE_JIT=1`` the same code runs as Python on numpy scalars (the
bit casts become ``.view``); there ``_fma`` is an unfused multiply-add, which
the error analysis below never relies on.
"""

import math

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload, register_jitable

__all__ = ["LIMITS", "cos", "exp", "expm1", "log", "log1p", "sigmoid", "sin", "tanh"]

TRIG_LIMIT = 2.0**20
LIMITS = {"sin": TRIG_LIMIT, "cos": TRIG_LIMIT, "exp": math.inf, "expm1": math.inf,
          "log": math.inf, "log1p": math.inf, "tanh": math.inf, "sigmoid": math.inf}

# ---------------------------------------------------------------- bit casts, fma, div

if numba.config.DISABLE_JIT:
    def _bits(x):
        return x.view(np.int32) if isinstance(x, np.float32) else np.float64(x).view(np.int64)

    def _float(i):
        return i.view(np.float32) if isinstance(i, np.int32) else np.int64(i).view(np.float64)

    def _fma(a, b, c):
        return a * b + c

    def _div(a, b):
        with np.errstate(all="ignore"):
            return np.float64(a) / np.float64(b)
else:
    _CAST = {types.float64: types.int64, types.int64: types.float64,
             types.float32: types.int32, types.int32: types.float32}

    def _bitcast(typingctx, x):
        to = _CAST.get(x)
        if to is None:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], context.get_value_type(to))
        return to(x), codegen

    # float64 <-> int64 (float32 <-> int32) with the same bits: a register move, free.
    _bits = intrinsic(_bitcast)
    _float = intrinsic(lambda typingctx, i: _bitcast(typingctx, i))

    @intrinsic
    def _fma(typingctx, a, b, c):
        """a*b + c as llvm.fmuladd: one vfmadd where the CPU has FMA, mul+add elsewhere."""
        def codegen(context, builder, sig, args):
            d = ir.DoubleType()
            f = builder.module.declare_intrinsic("llvm.fmuladd", [d], ir.FunctionType(d, [d] * 3))
            return builder.call(f, args)
        return types.float64(types.float64, types.float64, types.float64), codegen

    @intrinsic
    def _div(typingctx, a, b):
        """a / b without numba's ZeroDivisionError check (IEEE: x/0 = inf)."""
        def codegen(context, builder, sig, args):
            return builder.fdiv(*args)
        return types.float64(types.float64, types.float64), codegen


@register_jitable
def _horner(x, c):
    """c[0] + c[1]*x + c[2]*x^2 + ... (a constant tuple: LLVM unrolls the loop)."""
    p = c[-1]
    for i in range(len(c) - 2, -1, -1):
        p = _fma(p, x, c[i])
    return p


@register_jitable
def _pow2(n):
    """2.0**n for int n in [-1022, 1023]: n + 1023 in the exponent field."""
    return _float((n + 1023) << 52)


# Rounding to an integer without a float->int conversion (AVX2 has none for int64):
# adding 1.5 * 2^52 pushes the fraction bits out, so (t + SHIFT) - SHIFT is t rounded
# to nearest, and the low mantissa bits of t + SHIFT are that integer.
SHIFT = 6755399441055744.0  # 1.5 * 2^52
SHIFT_BITS = 0x4338000000000000
INV_LN2 = float.fromhex("0x1.71547652b82fep+0")
# ln2 = LN2_HI + LN2_LO; LN2_HI has 42 significant bits, so n * LN2_HI is exact for
# |n| < 2^11 and x - n*LN2_HI is exact (Sterbenz): the reduction loses nothing.
LN2_HI = float.fromhex("0x1.62e42fefa3800p-1")
LN2_LO = float.fromhex("0x1.ef35793c76730p-45")
# pi/2 = P1 + P2 + P3 + P4 (+ 2^-157), P1..P3 with 33 significant bits: n * Pi is exact
# for |n| < 2^20, which sets LIMITS["sin"].
INV_PIO2 = float.fromhex("0x1.45f306dc9c883p-1")
PIO2_1 = float.fromhex("0x1.921fb54400000p+0")
PIO2_2 = float.fromhex("0x1.0b4611a600000p-34")
PIO2_3 = float.fromhex("0x1.3198a2e000000p-69")
PIO2_4 = float.fromhex("0x1.b839a252049c1p-104")

# ---------------------------------------------------------------- polynomials
# expm1(r) = r + r^2 * P(r) on |r| <= ln2/2.  Degree 10 in P: error 2.3e-18 (2^-58.6).
EXPM1_64 = (0.5, 0.1666666666666667, 0.04166666666666667, 0.008333333333326025,
            0.001388888888888367, 0.00019841269875205077, 2.4801587325822283e-05,
            2.75572549134867e-06, 2.7557273295539724e-07, 2.5105419192016337e-08,
            2.0914831351380406e-09)
EXPM1_32 = (0.5000000013620138, 0.16666666681794626, 0.041666463386339524,
            0.008333310754576892, 0.001393382048977602, 0.00019891180158282143)  # 1.4e-9
# sin(r) = r + r^3 * S(r^2), cos(r) = 1 - r^2/2 + r^4 * C(r^2) on |r| <= pi/4.
SIN_64 = (-0.16666666666666666, 0.008333333333330901, -0.00019841269836686008,
          2.7557316064986773e-06, -2.505112403138208e-08, 1.59175674789068e-10)  # 3.3e-17
COS_64 = (0.041666666666666664, -0.0013888888888887367, 2.480158729872029e-05,
          -2.7557317248229367e-07, 2.0876141380294955e-09, -1.1382280957702634e-11)  # 2.3e-18
SIN_32 = (-0.1666666666381008, 0.008333331857164982, -0.0001984007727607258,
          2.7248701708232046e-06)  # 2.9e-11
COS_32 = (0.04166666463535246, -0.0013888298350940012, 2.4546931841332072e-05)  # 2.0e-9
# log(1+f) = 2 atanh(s), s = f/(2+f): 2 atanh(s)/s - 2 = s^2 * L(s^2), s^2 <= 0.0295.
LOG_64 = (0.666666666666667, 0.3999999999989827, 0.28571428626533335, 0.22222211043822487,
          0.18182895746801428, 0.1533150172120742, 0.1461916477718642)  # 3.3e-16 (x s^2/2)
LOG_32 = (0.6666668515139674, 0.3998873484312968, 0.2958202252541237)  # 1.9e-7 (x s^2/2)
# tanh(a) = a + a^3 * T(a^2) on a <= 0.55 (tanh's poles at +-i pi/2 make this long).
TANH_64 = (-0.3333333333333333, 0.13333333333332692, -0.05396825396740608,
           0.021869488492393757, -0.008863234368506029, 0.0035921099929935095,
           -0.0014556587528061396, 0.0005889209114423407, -0.00023458987009772973,
           8.503972645603012e-05, -2.0551854683401628e-05)  # 2.0e-17
TANH_32 = (-0.33333333294149264, 0.13333324028190527, -0.05396464790807507,
           0.021817897358309874, -0.00852400197359922, 0.0025229835971684327)  # 3.9e-10


# ---------------------------------------------------------------- exp, expm1
# x = n ln2 + r, |r| <= ln2/2 (n = round(x / ln2)); exp(x) = 2^n exp(r).

def _make_exp(P):
    @register_jitable
    def exp(x):
        # Clamp so n stays in [-1077, 1025] (results there are already 0 or inf);
        # a nan fails both comparisons and flows through.
        x = 710.0 if x > 710.0 else x
        x = -746.0 if x < -746.0 else x
        t = _fma(x, INV_LN2, SHIFT)
        nf = t - SHIFT
        n = _bits(t) - SHIFT_BITS
        r = _fma(nf, -LN2_LO, x - nf * LN2_HI)
        y = 1.0 + _fma(r * r, _horner(r, P), r)
        # 2^n as 2^(n//2) * 2^(n - n//2): both normal, so a subnormal result is
        # rounded once (by the last multiply) and 2^1024 overflows to inf.
        h = n >> 1
        return y * _pow2(h) * _pow2(n - h)
    return exp


def _make_expm1(P):
    @register_jitable
    def expm1(x):
        # expm1(x) = 2^n (expm1(r) + 1) - 1.  Below -50 the result rounds to -1.
        x = 710.0 if x > 710.0 else x
        x = -50.0 if x < -50.0 else x
        t = _fma(x, INV_LN2, SHIFT)
        nf = t - SHIFT
        n = _bits(t) - SHIFT_BITS
        hi = x - nf * LN2_HI                # exact
        lo = nf * LN2_LO
        r = hi - lo
        c = (hi - r) - lo                   # r + c = x - n ln2 to ~2^-100
        q = _fma(r * r, _horner(r, P), r)   # expm1(r)
        q = _fma(c, q, q + c)               # + c * (1 + expm1(r))
        s = _pow2(n - 1)                    # 2^n / 2 (2^1024 is not a double)
        m = 60 if n > 60 else n
        pos = (q + (1.0 - _pow2(-m))) * s * 2.0   # n >= 1: 1 - 2^-n is exact up to n=53
        neg = _fma(q, s * 2.0, s * 2.0 - 1.0)     # n <= 0: 2^n - 1 is exact
        y = pos if n > 0 else neg
        return x if x == 0.0 else y         # keeps -0.0
    return expm1


_exp64, _exp32 = _make_exp(EXPM1_64), _make_exp(EXPM1_32)
_expm1_64, _expm1_32 = _make_expm1(EXPM1_64), _make_expm1(EXPM1_32)


# ---------------------------------------------------------------- log, log1p
# x = 2^k m with m in [sqrt(2)/2, sqrt(2)), f = m - 1 (exact), s = f / (2 + f):
# log(1+f) = 2 atanh(s) = f - f^2/2 + s (f^2/2 + R),  R = s^2 L(s^2)
# (rearranged so the big terms f and f^2/2 are added last, with the least rounding).

SQRT_HALF_BITS = 0x3FE6A09E667F3BCD   # sqrt(2)/2
MANTISSA = 0x000FFFFFFFFFFFFF


def _make_log_kernel(P):
    @register_jitable
    def kernel(x, c):
        """log(x) + c for x > 0 normal, c a small correction (<= ulp(log x))."""
        # Adding (1.0 - sqrt(2)/2)'s bits carries into the exponent exactly when
        # m >= sqrt(2); the mantissa minus that offset is m in [sqrt(2)/2, sqrt(2)).
        i = _bits(x) + (0x3FF0000000000000 - SQRT_HALF_BITS)
        k = (i >> 52) - 1023
        f = _float((i & MANTISSA) + SQRT_HALF_BITS) - 1.0
        s = _div(f, 2.0 + f)
        z = s * s
        hfsq = 0.5 * f * f
        R = z * _horner(z, P)
        kf = k * 1.0
        return _fma(kf, LN2_HI, f - (hfsq - _fma(s, hfsq + R, _fma(kf, LN2_LO, c))))
    return kernel


_log_kernel64, _log_kernel32 = _make_log_kernel(LOG_64), _make_log_kernel(LOG_32)


def _make_log(kernel):
    @register_jitable
    def log(x):
        sub = x < 2.2250738585072014e-308          # subnormal: scale by 2^54 first
        y = kernel(x * 18014398509481984.0 if sub else x, 0.0)
        y = y - 37.42994775023705 if sub else y     # 54 ln2
        y = y if x < math.inf else x                # inf -> inf, nan -> nan
        y = -math.inf if x == 0.0 else y
        return math.nan if x < 0.0 else y
    return log


def _make_log1p(kernel):
    @register_jitable
    def log1p(x):
        # u = 1 + x rounded; log1p(x) = log(u) + (1 + x - u)/u.  The rounding error
        # 1 + x - u is exact by Fast2Sum (bigger operand first).
        u = 1.0 + x
        c = (1.0 - (u - x)) if x > 1.0 else (x - (u - 1.0))
        y = kernel(u, _div(c, u))
        y = y if x < math.inf else x
        y = x if abs(x) < 1e-300 else y              # keeps -0.0 and subnormals
        y = -math.inf if x == -1.0 else y
        return math.nan if x < -1.0 else y
    return log1p


_log64, _log32 = _make_log(_log_kernel64), _make_log(_log_kernel32)
_log1p_64, _log1p_32 = _make_log1p(_log_kernel64), _make_log1p(_log_kernel32)


# ---------------------------------------------------------------- sin, cos
# x = n pi/2 + r, |r| <= pi/4 (n = round(x 2/pi), |n| < 2^20).  n*P1, n*P2, n*P3 are
# exact and x - n*P1 is exact (Sterbenz), two TwoSums keep the rest exact, so r + c
# is x - n pi/2 to about 2^-130 absolute: a relative 2^-70 even for the double below
# 2^20 closest to a multiple of pi/2 (45.553093477052 ~ 29 pi/2, |r| = 2^-60.5, found
# from the continued fraction of pi/2; tests/test_vecmath.py tries every k pi/2, k < 2000).

@register_jitable
def _two_sum(a, b):
    s = a + b
    t = s - a
    return s, (a - (s - t)) + (b - t)


@register_jitable
def _reduce_pio2(x):
    t = _fma(x, INV_PIO2, SHIFT)
    nf = t - SHIFT
    n = _bits(t) - SHIFT_BITS
    a = x - nf * PIO2_1
    b, eb = _two_sum(a, -(nf * PIO2_2))
    h, eh = _two_sum(b, -(nf * PIO2_3))
    tail = (eb + eh) - nf * PIO2_4
    r = h + tail
    return n, r, (h - r) + tail


def _make_sincos(S, C):
    @register_jitable
    def sin_cos_r(r, c):
        """sin(r + c) and cos(r + c) for |r| <= pi/4, c <= ulp(r)."""
        z = r * r
        s = r + _fma(r * z, _horner(z, S), c * (1.0 - 0.5 * z))
        # cos: 1 - z/2 rounds; (1 - w) - hz recovers that rounding error exactly.
        hz = 0.5 * z
        w = 1.0 - hz
        co = w + (((1.0 - w) - hz) + _fma(z * z, _horner(z, C), -r * c))
        return s, co

    @register_jitable
    def sin(x):
        n, r, c = _reduce_pio2(x)
        s, co = sin_cos_r(r, c)
        y = co if n & 1 else s        # sin(r + n pi/2) = sin r, cos r, -sin r, -cos r
        y = -y if n & 2 else y
        y = x if abs(x) < 1e-300 else y   # keeps -0.0 and subnormals
        return y if abs(x) < TRIG_LIMIT else math.nan

    @register_jitable
    def cos(x):
        n, r, c = _reduce_pio2(x)
        s, co = sin_cos_r(r, c)
        y = s if n & 1 else co        # cos(r + n pi/2) = cos r, -sin r, -cos r, sin r
        y = -y if (n + 1) & 2 else y
        return y if abs(x) < TRIG_LIMIT else math.nan
    return sin, cos


_sin64, _cos64 = _make_sincos(SIN_64, COS_64)
_sin32, _cos32 = _make_sincos(SIN_32, COS_32)


# ---------------------------------------------------------------- tanh, sigmoid
# tanh(a) for a = |x| <= 0.55 (tanh <= 1/2): the odd polynomial.  Above:
# 1 - 2E/(1 + E), E = exp(-2a) <= 1/3: the subtracted term is below the result,
# so its rounding costs under 1/2 ulp.  exp(-2a) -> 0 gives 1 for large a.

def _make_tanh(T, exp):
    @register_jitable
    def tanh(x):
        a = abs(x)
        z = a * a
        small = _fma(a * z, _horner(z, T), a)
        e = exp(-2.0 * a)
        big = 1.0 - _div(2.0 * e, 1.0 + e)
        return math.copysign(small if a < 0.55 else big, x)
    return tanh


def _make_sigmoid(exp):
    @register_jitable
    def sigmoid(x):
        # 1/(1 + e^-x) for x >= 0, e^x/(1 + e^x) below: e^-|x| <= 1 never overflows.
        e = exp(-abs(x))
        return _div(e if x < 0.0 else 1.0, 1.0 + e)
    return sigmoid


_tanh64, _tanh32 = _make_tanh(TANH_64, _exp64), _make_tanh(TANH_32, _exp32)
_sigmoid64, _sigmoid32 = _make_sigmoid(_exp64), _make_sigmoid(_exp32)


# ---------------------------------------------------------------- public functions

def _public(name, f64, f32, doc):
    """One scalar function: float32 in -> the f32 version rounded, else float64."""
    def impl(x):   # plain Python (NUMBA_DISABLE_JIT): dispatch on the value's type
        if isinstance(x, np.float32):
            return np.float32(f32(np.float64(x)))
        return f64(np.float64(x))

    if not numba.config.DISABLE_JIT:
        @overload(impl)
        def _typed(x):
            if x == types.float32:
                return lambda x: np.float32(f32(np.float64(x)))
            if isinstance(x, (types.Float, types.Integer, types.Boolean)):
                return lambda x: f64(np.float64(x))

    def f(x):
        return impl(x)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = doc
    return njit(f)


exp = _public("exp", _exp64, _exp32, """e**x; exp(x) overflows to inf above 709.78.

    >>> float(exp(0.0)), float(exp(-np.inf)), float(exp(710.0))
    (1.0, 0.0, inf)
    """)
expm1 = _public("expm1", _expm1_64, _expm1_32, """e**x - 1, accurate near 0.

    >>> float(expm1(1e-10))
    1.00000000005e-10
    """)
log = _public("log", _log64, _log32, """Natural log; log(0) = -inf, log(x < 0) = nan.

    >>> float(log(np.e)), float(log(0.0))
    (1.0, -inf)
    """)
log1p = _public("log1p", _log1p_64, _log1p_32, """log(1 + x), accurate near 0.

    >>> float(log1p(1e-20)), float(log1p(-1.0))
    (1e-20, -inf)
    """)
sin = _public("sin", _sin64, _sin32, """sine, for abs(x) < LIMITS["sin"] (nan beyond).

    >>> float(sin(np.pi / 6))
    0.49999999999999994
    """)
cos = _public("cos", _cos64, _cos32, """cosine, for abs(x) < LIMITS["cos"] (nan beyond).

    >>> float(cos(0.0)), float(cos(2.0**20))
    (1.0, nan)
    """)
tanh = _public("tanh", _tanh64, _tanh32, """hyperbolic tangent.

    >>> float(tanh(-np.inf)), round(float(tanh(0.5)), 12)
    (-1.0, 0.46211715726)
    """)
sigmoid = _public("sigmoid", _sigmoid64, _sigmoid32, """logistic 1 / (1 + exp(-x)).

    >>> float(sigmoid(0.0)), float(sigmoid(-800.0))
    (0.5, 0.0)
    """)
