"""Reductions: ``sum``, ``max``, ``min``, ``prod``, ``cumsum``, ``cumprod`` (and
``expand_dims``, which their rules use to put the reduced axes back).
"""

import numpy as np

from .. import backend
from ..core.trace import Box
from .elementwise import _NO_ORDER, multiply
from .indexing import getitem
from .structure import broadcast_to, concatenate, flip, reshape, transpose
from .table import (
    _raw,
    batch_shape,
    batch_trailing,
    defprim,
    device_like,
    float_dtype,
    float_mask,
    ndim_of,
    shape_of,
)

# ---------------------------------------------------------------------------
# reductions (axis: a tuple of negative axes, normalised by numpy_api)
# ---------------------------------------------------------------------------

def expand_back(g, ans, x, axis, keepdims):
    """Broadcast a reduced cotangent back to (batch axes) + x.shape.

    On a dask ``x`` the result is chunked as x (``broadcast_to`` would make one chunk of
    all of it): one host number ``g`` (the seed of a loss, ``1 / n`` for a mean) becomes
    ``backend.dask.full``, a stride-0 view per chunk that dask fuses into its reader (no
    pass, no task); any other ``g`` (an array, a dask or a traced value) is multiplied
    by ones chunked as x, which keeps it differentiable."""
    d = device_like(x)
    if d is not None and backend.dask.is_dask_array(d):
        dtype = float_dtype(x)
        unbatched = ndim_of(x) - (0 if keepdims else len(axis))  # g's ndim, no batch axes
        if (not isinstance(g, Box) and device_like(g) is None and np.size(g) == 1
                and np.ndim(g) == unbatched):
            dtype = np.result_type(g, dtype)
            return backend.dask.full(shape_of(x), np.reshape(g, ())[()], dtype, d)
        g = g if keepdims else expand_dims(g, axis)
        return multiply(g, backend.dask.ones(shape_of(x), dtype, d))
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


def _sum(x, axis, keepdims):
    """np.sum: for a numpy array, the ufunc reduction it calls (``np.sum``'s Python
    layers cost 1.3 us of the 2 us of a sum of 27 entries)."""
    if x.__class__ is np.ndarray:
        return np.add.reduce(x, axis=axis, keepdims=keepdims)
    return np.sum(x, axis=axis, keepdims=keepdims)


sum_ = defprim("sum", _sum,
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
