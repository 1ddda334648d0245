"""Fused elementwise maps: y = f(x) and f'(x) in one pass over memory.

``compile_unary(f, df)`` turns two *scalar* formulas into one compiled loop.
``df(x, y)`` receives the value ``y = f(x)`` already computed, so exp' = y and
tanh' = 1 - y*y cost one multiply (ReverseDiff's ForwardOptimize: the local
derivative is produced while the value is, and the reverse step is a single
multiply).  The formulas are written with numpy functions (``np.sin``...),
which numba compiles for scalars, so the caller can run the very same
functions on whole arrays as its numpy reference.

    >>> import numpy as np
    >>> k = compile_unary(lambda x: np.exp(x), lambda x, y: y)
    >>> x = np.zeros(3); y = np.empty(3); d = np.empty(3)
    >>> k(x, y, d, True); d.tolist()
    [1.0, 1.0, 1.0]
"""

from numba import prange
from numba.extending import register_jitable

from .diskcache import njit


def compile_unary(f, df, parallel=False, exact=None, limit=None):
    """One kernel ``k(x, y, d, grad)`` over flat C-contiguous arrays of one dtype:
    y[i] = f(x[i]), and if ``grad`` also d[i] = df(x[i], y[i]).

    df sees y as stored (rounded to the array's dtype), as numpy's df would.
    Float32 rows with float constants are evaluated in float64 and stored as float32.
    (A tangent pushed through is ``t * d``: measured, one numpy multiply after this
    loop was as fast as fusing it in, and faster for several tangents at once.)

    ``parallel=True`` compiles the same loop with ``prange`` (``numba.set_num_threads``
    threads split the index range): every element is computed by the same scalar code
    as in the serial kernel, so the results are bitwise the same; only the time
    differs (``dualgrad.backend.numba_ops`` times both and takes the faster).

    ``exact = (f0, df0)`` with ``limit``: f is accurate for ``abs(x) < limit`` only
    (kernels/vecmath.py's sin and cos, whose loops vectorize): a second loop, with the
    calls the first one is kept free of, computes the entries beyond with f0 and df0.
    """
    f, df = register_jitable(f), register_jitable(df)
    fix = exact is not None
    f0, df0 = (register_jitable(exact[0]), register_jitable(exact[1])) if fix else (f, df)
    limit = float("inf") if limit is None else float(limit)

    if parallel:
        @njit(cache=True, parallel=True)
        def kernel(x, y, d, grad):
            if grad:
                for i in prange(x.shape[0]):
                    y[i] = f(x[i])
                    d[i] = df(x[i], y[i])
            else:
                for i in prange(x.shape[0]):
                    y[i] = f(x[i])
            if fix:
                for i in range(x.shape[0]):
                    if abs(x[i]) >= limit:
                        y[i] = f0(x[i])
                        if grad:
                            d[i] = df0(x[i], y[i])
        return kernel

    @njit(cache=True)
    def kernel(x, y, d, grad):
        if grad:
            for i in range(x.shape[0]):
                y[i] = f(x[i])
                d[i] = df(x[i], y[i])
        else:
            for i in range(x.shape[0]):
                y[i] = f(x[i])
        if fix:
            for i in range(x.shape[0]):
                if abs(x[i]) >= limit:
                    y[i] = f0(x[i])
                    if grad:
                        d[i] = df0(x[i], y[i])
    return kernel


# Selection: np.where(c, x, y) over flat C-contiguous arrays of one shape, a scalar in
# place of x or y.  numpy's where branches on every entry (a random mask mispredicts half
# of them: ~8x its copy); this loop is a select, which LLVM makes a vector blend.  A
# select computes nothing, so the result is numpy's bit for bit.

@njit(cache=True)
def select(c, x, y, out):
    """out[i] = x[i] if c[i] else y[i]."""
    for i in range(c.shape[0]):
        out[i] = x[i] if c[i] else y[i]


@njit(cache=True)
def select_else(c, x, s, out):
    """out[i] = x[i] if c[i] else s (s a scalar of out's dtype)."""
    for i in range(c.shape[0]):
        out[i] = x[i] if c[i] else s


@njit(cache=True)
def select_then(c, s, y, out):
    """out[i] = s if c[i] else y[i] (s a scalar of out's dtype)."""
    for i in range(c.shape[0]):
        out[i] = s if c[i] else y[i]


# Forward mode's tangents (transforms/forward.py): what numpy computes in several passes
# over the tangent, in one.  Tangents are (B, n): B directions of an n-entry primal (B = 1
# for one), any strides.  Each product is rounded, then the sum (no fused multiply-add:
# numba compiles without fast-math), so the values are numpy's operations' bit for bit.

@njit(cache=True)
def product_tangent(tx, y, x, ty, out):
    """out[b, i] = tx[b, i] * y[i] + x[i] * ty[b, i]: the product rule."""
    for b in range(out.shape[0]):
        for i in range(out.shape[1]):
            out[b, i] = tx[b, i] * y[i] + x[i] * ty[b, i]


@njit(cache=True)
def scaled_tangent(t, x, out):
    """out[b, i] = t[b, i] * x[i]: a tangent times a plain array (numpy broadcasts x over
    the directions row by row; here one loop)."""
    for b in range(out.shape[0]):
        for i in range(out.shape[1]):
            out[b, i] = t[b, i] * x[i]


@njit(cache=True)
def square_tangent(t, x, out):
    """out[b, i] = t[b, i] * (x[i] * 2.0): the tangent of x ** 2 (x + x is x * 2.0 exactly,
    in x's own dtype: a float32 x is not promoted by a float64 literal)."""
    for b in range(out.shape[0]):
        for i in range(out.shape[1]):
            out[b, i] = t[b, i] * (x[i] + x[i])
