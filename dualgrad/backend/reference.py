"""The numpy references: every backend operation in plain numpy, always present.

This is the backend's ``SimpleOps`` (minitorch's name): the definition the fast paths
(``numba_ops``, and a CUDA module beside it) are tested against, and the path taken
whenever a fast one does not apply.  No choice is made here -- ``dualgrad.backend``
decides, per call, which module runs.  The operations share one signature across the
modules, with shapes and geometry already checked by the caller (``conv_geometry``,
``pool_geometry`` are here and public), so a fast module holds only its kernels.

    >>> import numpy as np
    >>> unary("tanh", np.zeros(2), grad=True)[1].tolist()
    [1.0, 1.0]
    >>> conv_geometry((1, 3, 8, 8), (4, 3, 3, 3), 1, 1, 1)
    ((1, 1, 1, 1, 1, 1), (8, 8))
"""

import contextlib
import math

import numpy as np

# ---------------------------------------------------------------------------
# Elementwise functions and their local derivatives
#
# One row per function: f(x), and f'(x) given y = f(x).  Written with numpy
# functions, so the numpy path runs a row on whole arrays and numba compiles the
# very same row as scalar code into one fused loop (kernels/elementwise.py).

UNARY = {
    "sin":        (lambda x: np.sin(x),             lambda x, y: np.cos(x)),
    "cos":        (lambda x: np.cos(x),             lambda x, y: -np.sin(x)),
    "tan":        (lambda x: np.tan(x),             lambda x, y: 1 + y * y),
    "exp":        (lambda x: np.exp(x),             lambda x, y: y),
    "expm1":      (lambda x: np.expm1(x),           lambda x, y: y + 1),
    "log":        (lambda x: np.log(x),             lambda x, y: 1 / x),
    "log1p":      (lambda x: np.log1p(x),           lambda x, y: 1 / (1 + x)),
    "tanh":       (lambda x: np.tanh(x),            lambda x, y: 1 - y * y),
    "sigmoid":    (lambda x: 1 / (1 + np.exp(-x)),  lambda x, y: y * (1 - y)),
    "sqrt":       (lambda x: np.sqrt(x),            lambda x, y: (y != 0) * 0.5 / (y + (y == 0))),
    "square":     (lambda x: x * x,                 lambda x, y: 2 * x),
    "reciprocal": (lambda x: 1 / x,                 lambda x, y: -(y * y)),
    "negative":   (lambda x: -x,                    lambda x, y: -1),
    "abs":        (lambda x: np.abs(x),             lambda x, y: np.sign(x)),
    "arctan":     (lambda x: np.arctan(x),          lambda x, y: 1 / (1 + x * x)),
    "sinh":       (lambda x: np.sinh(x),            lambda x, y: np.cosh(x)),
    "cosh":       (lambda x: np.cosh(x),            lambda x, y: np.sinh(x)),
    "softplus":   (lambda x: np.logaddexp(0, x),    lambda x, y: 1 / (1 + np.exp(-x))),
    "relu":       (lambda x: np.maximum(x, 0),      lambda x, y: (x > 0) * 1),
}

# sqrt' at 0 is a zero subgradient (as PyTorch's norm gives), not inf: (y != 0) * 0.5 /
# (y + (y == 0)) is 0.5 / y elsewhere, and is plain arithmetic on bools, so numpy runs it
# on arrays and numba on scalars (np.where is array-only; 0.5 / y * (y != 0) is inf * 0).
OVERFLOW_OK = frozenset({"sigmoid", "softplus"})  # exp(-x) -> inf is the right limit there


def row(name):
    """``(f, df)`` of the UNARY row ``name``; a ValueError naming the rows otherwise."""
    try:
        return UNARY[name]
    except KeyError:
        raise ValueError(f"unary name must be one of {sorted(UNARY)}, got {name!r}") from None


def _like(a, y):
    """``a`` as an array of y's dtype and shape (derivative rows may give a constant)."""
    a = np.asarray(a, dtype=y.dtype, like=y)
    return a if a.shape == y.shape else np.full(y.shape, a, dtype=y.dtype, like=y)


def _array(y):
    """``y`` as an array where it lives: a numpy scalar becomes a 0-d numpy array, any
    other array type (a device array) is kept as it is, never converted."""
    c = y.__class__
    if c is np.ndarray or hasattr(c, "__cuda_array_interface__") or (
            hasattr(c, "__array_namespace__") and not isinstance(y, np.generic)):
        return y
    return np.asarray(y)


def unary(name, x, grad):
    """``(f(x), f'(x) if grad else None)`` for the row ``name``, on a whole array."""
    f, df = row(name)
    quiet = np.errstate(over="ignore") if name in OVERFLOW_OK else contextlib.nullcontext()
    with quiet:
        y = _array(f(x))
        return y, (_like(df(x, y), y) if grad else None)


# ---------------------------------------------------------------------------
# Scatter-add: the VJP of indexing

# One flat 1-D add.at (index i*D + j) beats add.at on rows once the work pays for
# building the flat index (numpy against numpy: a constant, not a measured rule).
INDEX_ADD_FLAT_MIN = 4096


def gather_layout(shape, index, values):
    """``(nb, idx, B, V, D)`` when ``index`` is ``(:,)*nb + (int array,) + (:,)*...`` and
    values has exactly the shape ``out[index]`` has: the gather reads rows of D elements
    from B blocks of V rows.  None for any other index."""
    if isinstance(index, np.ndarray):
        nb, idx, rest = 0, index, ()
    else:
        index = index if isinstance(index, tuple) else (index,)
        nb = 0
        while nb < len(index) and _is_full(index[nb]):
            nb += 1
        if nb == len(index):
            return None
        idx, rest = index[nb], index[nb + 1:]
        if rest and rest[-1] is Ellipsis:
            rest = rest[:-1]
        if not (isinstance(idx, np.ndarray) and all(_is_full(r) for r in rest)):
            return None
    if idx.dtype.kind not in "iu" or nb >= len(shape):
        return None
    if values.shape != shape[:nb] + idx.shape + shape[nb + 1:]:
        return None
    return nb, idx, math.prod(shape[:nb]), shape[nb], math.prod(shape[nb + 1:])


def _is_full(k):
    return isinstance(k, slice) and k.start is None and k.stop is None and k.step is None


def as_rows(values, dtype, idx, B, D):
    """A gather's values as C-contiguous (B, idx.size, D) of ``dtype``."""
    return np.ascontiguousarray(values, dtype=dtype, like=values).reshape(B, idx.size, D)


def sum_slices(out, parts):
    """``out[...] = 0`` then ``out[:, s:s + m] += v`` for each ``(s, v)`` of ``parts``, in
    order: one numpy add per slice."""
    out.fill(0)
    for s, v in parts:
        part = out[:, s:s + v.shape[1]]
        np.add(part, v, out=part)
    return out


def index_add(shape, dtype, index, values, layout=None):
    """``out = zeros(shape, dtype); np.add.at(out, index, values); out``.  ``layout``
    (``gather_layout``'s answer, from a caller that has it) lets a large gather take
    one flat 1-D ``add.at``, bitwise equal to ``add.at`` on rows."""
    nb, idx, B, V, D = layout or (0, None, 0, 0, 0)
    if values.size >= INDEX_ADD_FLAT_MIN and (D > 1 or B > 1):
        vals = as_rows(values, dtype, idx, B, D)
        return index_add_rows(vals, idx.reshape(-1), B, V, D, nb).reshape(shape)
    out = np.zeros(shape, dtype, like=values)
    if values.__class__ is not np.ndarray:  # values elsewhere (a device): the index goes there
        index = tuple(_to(k, values) for k in index) if isinstance(index, tuple) else \
            _to(index, values)
    np.add.at(out, index, values)
    return out


def _to(k, like):
    """An index array made where ``like`` lives (an explicit upload; None: unchanged)."""
    return np.asarray(k, like=like) if isinstance(k, np.ndarray) else k


def index_add_rows(vals, idx, B, V, D, axis):
    """out (B, V, D) with out[b, idx[i]] += vals[b, i], as one flat add.at."""
    lo, hi = (idx.min(), idx.max()) if idx.size else (0, -1)
    if lo < -V or hi >= V:
        index_error(lo if lo < -V else hi, axis, V)
    rows = np.where(idx < 0, idx + V, idx) if lo < 0 else idx
    flat = (np.arange(B)[:, None, None] * V + rows[:, None]) * D + np.arange(D)
    out = np.zeros(B * V * D, vals.dtype, like=vals)
    np.add.at(out, _to(flat.reshape(-1), vals), vals.reshape(-1))
    return out


def index_error(i, axis, size):
    raise IndexError(f"index {int(i)} is out of bounds for axis {axis} with size {size}")


# ---------------------------------------------------------------------------
# Softmax, log-softmax, logsumexp
#
# Stable (shift by the max) with scipy.special's special values: all -inf ->
# logsumexp -inf, softmax and log_softmax NaN; +inf -> logsumexp +inf; NaN
# propagates.  A fast module runs rows of the last axis (``rows``); other axes
# stay here.

def neg_axis(axis, ndim):
    return axis - ndim if axis >= 0 else axis


def rows(x, axis):
    """x as C-contiguous rows (M, K) when ``axis`` is its last non-trivial axis, else None."""
    if not isinstance(axis, (int, np.integer)) or x.ndim == 0:
        return None
    axis = neg_axis(axis, x.ndim)
    if any(n != 1 for n in x.shape[x.ndim + axis + 1:]):
        return None
    K = x.shape[axis]
    return np.ascontiguousarray(x).reshape(x.size // K if K else math.prod(x.shape[:axis]), K)


def reduced_shape(shape, axis, keepdims):
    axes = range(len(shape)) if axis is None else np.atleast_1d(axis) % max(len(shape), 1)
    axes = set(int(a) for a in axes)
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _shift(x, axis):
    """The row max with non-finite maxima set to 0 (scipy's logsumexp shift)."""
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    if isinstance(m, np.generic):  # a 0-d numpy x gives a scalar (np.asarray would pull a
        m = np.array(m)            # device array to the host)
    m[~np.isfinite(m)] = 0
    return m


def softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis):
    tmp = x - _shift(x, axis)
    with np.errstate(divide="ignore"):
        return tmp - np.log(np.sum(np.exp(tmp), axis=axis, keepdims=True))


def logsumexp(x, axis, keepdims):
    """Not unwrapped: the caller turns a 0-d result into a scalar."""
    m = _shift(x, axis)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else out.reshape(reduced_shape(x.shape, axis, False))


def softmax_vjp(g, y, axis):
    axis = neg_axis(axis, y.ndim)
    return y * (g - np.sum(g * y, axis=axis, keepdims=True))


def log_softmax_vjp(g, y, axis):
    axis = neg_axis(axis, y.ndim)
    return g - np.exp(y) * np.sum(g, axis=axis, keepdims=True)


def logsumexp_vjp(g, x, ans, axis, keepdims):
    if not keepdims:
        axes = range(x.ndim) if axis is None else np.atleast_1d(axis)
        axes = tuple(sorted(neg_axis(int(a) % max(x.ndim, 1), x.ndim) for a in axes))
        g, ans = np.expand_dims(g, axes), np.expand_dims(ans, axes)
    return g * np.exp(x - ans)


# ---------------------------------------------------------------------------
# conv2d (NCHW, PyTorch semantics: cross-correlation, zero padding, no groups)
#
# All three passes are BLAS matrix products around im2col / col2im, laid out so no
# operand is copied (K = C*kH*kW, P = Ho*Wo):
#   forward      out[n]   = W (C_out, K) @ cols[n] (K, P)
#   grad_input   gcolsT[n] = g[n].T (P, C_out) @ W (C_out, K), then col2im
#   grad_weight  gW        = sum_n g[n] @ cols[n].T
# (grad_input as W.T @ g[n] was 2.5x slower in OpenBLAS for this thin shape.)
# The products are the same on every backend; only the data movement (im2col,
# col2im) has fast versions, so the three passes take it as an argument.

def pair(v, what):
    """``v`` as a pair of ints (an int stands for both); a ValueError naming ``what``."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    try:
        a, b = v
        if int(a) == a and int(b) == b:
            return int(a), int(b)
    except (TypeError, ValueError):
        pass
    raise ValueError(f"{what} must be an int or a pair of ints, got {v!r}")


def conv_geometry(x_shape, w_shape, stride, padding, dilation):
    """Check a conv2d's shapes and parameters: ``((sh, sw, ph, pw, dh, dw), (Ho, Wo))``,
    Ho = floor((H + 2*ph - dh*(kH - 1) - 1) / sh) + 1 (and Wo alike), as in PyTorch."""
    (sh, sw), (ph, pw) = pair(stride, "stride"), pair(padding, "padding")
    dh, dw = pair(dilation, "dilation")
    if min(sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"conv2d: stride and dilation must be >= 1 and padding >= 0, got "
                         f"stride={stride}, padding={padding}, dilation={dilation}")
    if len(x_shape) < 4 or len(w_shape) != 4 or x_shape[-3] != w_shape[1]:
        raise ValueError(f"conv2d: x must be (N, C, H, W) and w (C_out, C, kH, kW) with the same "
                         f"C, got x {tuple(x_shape)} and w {tuple(w_shape)}")
    H, W = x_shape[-2:]
    kH, kW = w_shape[2:]
    Ho = (H + 2 * ph - dh * (kH - 1) - 1) // sh + 1
    Wo = (W + 2 * pw - dw * (kW - 1) - 1) // sw + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"conv2d: kernel {tuple(w_shape[2:])} (dilation {(dh, dw)}) is larger "
                         f"than the padded input {(H + 2 * ph, W + 2 * pw)}")
    return (sh, sw, ph, pw, dh, dw), (Ho, Wo)


def im2col(x, kh, kw, geo, out_hw):
    """(N, C, H, W) -> cols (N, C, kh, kw, Ho, Wo): every window, zero padded."""
    sh, sw, ph, pw, dh, dw = geo
    (N, C, H, W), (Ho, Wo) = x.shape, out_hw
    cols = np.empty((N, C, kh, kw, Ho, Wo), x.dtype, like=x)  # like: where x lives
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), x.dtype, like=x)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh,
                                  j * dw:j * dw + sw * (Wo - 1) + 1:sw]
    return cols


def col2im(cols, x_shape, geo):
    """The adjoint of im2col: sum every window back onto (N, C, H, W)."""
    sh, sw, ph, pw, dh, dw = geo
    N, C, kh, kw, Ho, Wo = cols.shape
    H, W = x_shape[-2:]
    gxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), cols.dtype, like=cols)
    for i in range(kh):
        for j in range(kw):
            gxp[:, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh,
                j * dw:j * dw + sw * (Wo - 1) + 1:sw] += cols[:, :, i, j]
    return np.ascontiguousarray(gxp[:, :, ph:ph + H, pw:pw + W], like=gxp)


def conv2d(x, w, geo, out_hw, im2col=im2col, matmul=np.matmul):
    """x (..., N, C, H, W) and w (C_out, C, kH, kW) -> (..., N, C_out, Ho, Wo)."""
    lead = x.shape[:-3]
    Co, C, kh, kw = w.shape
    Ho, Wo = out_hw
    cols = im2col(x.reshape((-1,) + x.shape[-3:]), kh, kw, geo, out_hw)
    out = matmul(w.reshape(Co, C * kh * kw), cols.reshape(len(cols), C * kh * kw, Ho * Wo))
    return out.reshape(lead + (Co, Ho, Wo))


def conv2d_grad_input(g, w, x_shape, geo, out_hw, col2im=col2im, matmul=np.matmul):
    Co, C, kh, kw = w.shape
    Ho, Wo = out_hw
    lead = g.shape[:-3]
    g3 = g.reshape((math.prod(lead), Co, Ho * Wo))  # not -1: ambiguous when empty
    # (K, Co) @ (N, Co, P): the columns in im2col's own layout, so col2im reads them in
    # order (the (N, P, K) product transposed made it stride through them: 17% slower)
    gcols = matmul(w.reshape(Co, C * kh * kw).T, g3)
    gcols = gcols.reshape(len(g3), C, kh, kw, Ho, Wo)
    return col2im(gcols, x_shape, geo).reshape(lead + tuple(x_shape[-3:]))


def conv2d_grad_weight(g, x, w_shape, geo, out_hw, im2col=im2col, matmul=np.matmul):
    Co, C, kh, kw = w_shape
    Ho, Wo = out_hw
    N = x.shape[0]
    cols = im2col(x, kh, kw, geo, out_hw).reshape(N, C * kh * kw, Ho * Wo)
    lead = g.shape[:-4]
    g4 = g.reshape((math.prod(lead), N, Co, Ho * Wo))
    gw = matmul(g4, cols.transpose(0, 2, 1)).sum(axis=1)
    return gw.reshape(lead + tuple(w_shape))


# ---------------------------------------------------------------------------
# max_pool2d (PyTorch semantics: -inf padding, floor mode, first max wins)

def pool_geometry(x_shape, kernel_size, stride, padding):
    """Check a max_pool2d's parameters: ``((kh, kw, sh, sw, ph, pw), (Ho, Wo))``."""
    (kh, kw), (ph, pw) = pair(kernel_size, "kernel_size"), pair(padding, "padding")
    sh, sw = pair(kernel_size if stride is None else stride, "stride")
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0 or 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"max_pool2d: need kernel_size, stride >= 1 and 0 <= padding <= "
                         f"kernel_size / 2, got kernel_size={kernel_size}, stride={stride}, "
                         f"padding={padding}")
    if len(x_shape) < 2:
        raise ValueError(f"max_pool2d: x must have at least 2 axes (..., H, W), got {x_shape}")
    H, W = x_shape[-2:]
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"max_pool2d: kernel {(kh, kw)} larger than padded input "
                         f"{(H + 2 * ph, W + 2 * pw)}")
    return (kh, kw, sh, sw, ph, pw), (Ho, Wo)


def max_pool2d(x, geo, out_hw):
    """(out, argmax): one vectorised pass per window offset (i, j), keeping the running max."""
    kh, kw, sh, sw, ph, pw = geo
    Ho, Wo = out_hw
    H, W = x.shape[-2:]
    lead = x.shape[:-2]
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp = np.full(lead + (H + 2 * ph, W + 2 * pw), low, x.dtype, like=x)  # where x lives
    xp[..., ph:ph + H, pw:pw + W] = x
    h0 = (np.arange(Ho, like=x) * sh - ph)[:, None]
    w0 = (np.arange(Wo, like=x) * sw - pw)[None, :]
    out = np.full(lead + (Ho, Wo), low, x.dtype, like=x)
    arg = np.broadcast_to(np.maximum(h0, 0) * W + np.maximum(w0, 0), out.shape).copy()
    for i in range(kh):
        for j in range(kw):
            v = xp[..., i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw]
            take = v > out                    # strict: the first maximum stays
            if x.dtype.kind == "f":           # the first NaN wins and stays
                take |= np.isnan(v) & ~np.isnan(out)
            out = np.where(take, v, out)
            arg = np.where(take, (h0 + i) * W + w0 + j, arg)
    return out, arg.astype(np.intp, copy=False)


def pool_grad_layout(g, argmax, x_shape):
    """(batch, B, P, HW, Ho, Wo): g's leading batch axes and their count B, the P planes
    of H*W = HW pixels of x, and the Ho x Wo windows (shared by every max_pool2d_grad)."""
    batch = g.shape[:g.ndim - argmax.ndim]
    Ho, Wo = argmax.shape[-2:]
    return (batch, math.prod(batch), math.prod(x_shape[:-2]), x_shape[-2] * x_shape[-1],
            Ho, Wo)


def max_pool2d_grad(g, argmax, x_shape):
    """g (batch + argmax.shape) summed onto the argmax positions of x_shape planes."""
    batch, B, P, HW, Ho, Wo = pool_grad_layout(g, argmax, x_shape)
    flat = (np.arange(B * P, like=g) * HW).reshape(B, P, 1) + argmax.reshape(1, P, Ho * Wo)
    gx = np.zeros(B * P * HW, g.dtype, like=g)
    np.add.at(gx, flat.reshape(-1), g.reshape(-1))
    return gx.reshape(batch + x_shape)
