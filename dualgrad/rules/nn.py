"""The ``dg.nn`` rows: ``softmax``, ``log_softmax``, ``logsumexp`` and ``conv2d``.

Each is computed by a backend kernel (``dualgrad.backend``).  Their derivative rules are
written with primitives, so they differentiate again; a first-order reverse sweep
(nothing traced) takes the fused backend kernel instead (``kernel_or_rule``).  The
user-facing functions, with PyTorch's semantics, are in ``dualgrad.numpy.nn``.
"""

import math

import numpy as np

from .. import backend
from .. import rules as P  # the rows by name: rules/__init__ binds them before importing this
from ..core.trace import top_trace, unbox
from ..core.validate import dtype_of
from .table import defprim, ndim_of, shape_of


def kernel_or_rule(kernel, rule, batched=False, when=None):
    """The one place an ``nn`` row chooses between its backend kernel and its rule.

    ``rule`` is written with primitives, so it differentiates again; ``kernel`` is a raw
    backend call, taken on a first-order sweep only: nothing traced, no batch axes on the
    (co)tangent (unless the kernel handles them: ``batched``), and ``when(...)`` true.
    """
    def chosen(g, ans, *args, **kw):
        # raw values only: this thread's first-order sweep, whatever other threads trace
        if top_trace((g, ans) + args) is None and (batched or ndim_of(g) == ndim_of(ans)) \
                and (when is None or when(g, ans, *args, **kw)):
            return kernel(g, ans, *args, **kw)
        return rule(g, ans, *args, **kw)
    return chosen


# ---------------------------------------------------------------------------
# softmax, log_softmax, logsumexp (rows of the table)
# ---------------------------------------------------------------------------

def _softmax_rule(g, ans, x, axis):
    return P.multiply(ans, P.subtract(g, P.sum_(P.multiply(g, ans), axis=(axis,),
                                                keepdims=True)))


_softmax_fused = kernel_or_rule(lambda g, ans, x, axis: backend.softmax_vjp(g, ans, axis),
                                _softmax_rule)
softmax_p = defprim("softmax", lambda x, axis: backend.softmax(x, axis),
                    jvp=(_softmax_fused,), vjp=(_softmax_fused,),
                    batch=P.batch_trailing("softmax"))


def _log_softmax_jvp(t, ans, x, axis):
    return P.subtract(t, P.sum_(P.multiply(t, P.exp(ans)), axis=(axis,), keepdims=True))


def _log_softmax_vjp(g, ans, x, axis):
    return P.subtract(g, P.multiply(P.exp(ans), P.sum_(g, axis=(axis,), keepdims=True)))


log_softmax_p = defprim(
    "log_softmax", lambda x, axis: backend.log_softmax(x, axis), jvp=(_log_softmax_jvp,),
    vjp=(kernel_or_rule(lambda g, ans, x, axis: backend.log_softmax_vjp(g, ans, axis),
                        _log_softmax_vjp),), batch=P.batch_trailing("log_softmax"))


def _lse_impl(x, axis, keepdims):
    nd = np.ndim(x)
    raw = None if len(axis) == nd else (axis[0] if len(axis) == 1 else axis)
    return backend.logsumexp(x, axis=raw, keepdims=keepdims)


def _lse_weights(x, ans, axis, keepdims):
    """softmax of x over ``axis``, the local derivative of logsumexp.  Computed as
    exp(x - max) / sum(exp(x - max)), not exp(x - logsumexp), which loses digits when
    |x| is large; the max is a constant (softmax does not depend on the shift).  Rows
    whose logsumexp is +inf: ``_at_inf``."""
    raw = unbox(x)  # an array, or a batch of them under dg.vmap
    top = _top_rows(ans, axis, keepdims)
    xs = x if top is None else P.where(top, 0.0, x)  # finite rows: no inf/inf behind where
    m = np.max(unbox(xs), axis=axis, keepdims=True) if getattr(raw, "size", 1) \
        else np.zeros(())  # (raw.size: np.size of a dask array would compute it)
    e = P.exp(P.subtract(xs, np.where(np.isfinite(m), m, 0.0)))
    w = P.divide(e, P.sum_(e, axis=axis, keepdims=True))
    return w if top is None else _at_inf(w, x, ans, axis, keepdims, top)


def _top_rows(ans, axis, keepdims):
    """Where logsumexp is +inf (x has a +inf entry), in x's rank; None when nowhere."""
    top = unbox(ans) == np.inf  # a comparison: a batch of them under dg.vmap
    if not P.may_any(top):  # (a device mask: no copy to the host, the where path)
        return None
    return top if keepdims else P.expand_dims(top, axis)


def _at_inf(w, x, ans, axis, keepdims, top):
    """Weights of the rows whose logsumexp is +inf: 1 for each +inf entry and 0 for the
    rest (``P.log_share``: JAX's limit for logaddexp, which logsumexp of two entries is),
    where softmax would give inf/inf = nan.

    >>> import dualgrad as dg
    >>> dg.grad(dg.nn.logsumexp)(np.array([np.inf, 1.0])).tolist()
    [1.0, 0.0]
    """
    a = ans if keepdims else P.expand_dims(ans, axis)
    return P.where(top, P.exp(P.log_share(x, a)), w)


def _lse_rule(weights):
    def jvp(t, ans, x, axis, keepdims):
        w = weights(x, ans, axis, keepdims)
        return P.sum_(P.multiply(t, w), axis=axis, keepdims=keepdims)

    def vjp(g, ans, x, axis, keepdims):
        return P.multiply(P.expand_back(g, ans, x, axis, keepdims),
                          weights(x, ans, axis, keepdims))
    return jvp, vjp


def _kernel_weights(x, ans, axis, keepdims):
    """``_lse_weights`` by the fused softmax kernel (raw arrays, one axis)."""
    top = _top_rows(ans, axis, keepdims)
    if top is None:
        return backend.softmax(x, axis[0])
    return _at_inf(backend.softmax(np.where(top, 0.0, x), axis[0]), x, ans, axis, keepdims, top)


_lse_traced = _lse_rule(_lse_weights)
_lse_kernel = _lse_rule(_kernel_weights)  # the fused kernel
_one_axis = lambda g, ans, x, axis, keepdims: len(axis) == 1  # noqa: E731
logsumexp_p = defprim(
    "logsumexp", _lse_impl,
    jvp=(kernel_or_rule(_lse_kernel[0], _lse_traced[0], batched=True, when=_one_axis),),
    vjp=(kernel_or_rule(_lse_kernel[1], _lse_traced[1], batched=True, when=_one_axis),),
    batch=P.batch_trailing("logsumexp"))


# ---------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------

class Geometry:
    """Where each (kernel tap, output pixel) reads the input: clipped indices and a 0/1
    mask for the taps that fall in the zero padding."""

    def __init__(self, x_shape, w_shape, stride, padding, dilation):
        (sh, sw, ph, pw, dh, dw), (Ho, Wo) = backend.conv_geometry(
            x_shape, w_shape, stride, padding, dilation)
        H, W = x_shape[-2:]
        self.C, (kh, kw) = w_shape[1], w_shape[2:]
        self.out_hw, self.K = (Ho, Wo), self.C * kh * kw
        i = (np.arange(kh) * dh)[:, None, None, None] + (np.arange(Ho) * sh - ph)[:, None]
        j = (np.arange(kw) * dw)[None, :, None, None] + (np.arange(Wo) * sw - pw)
        i, j = np.broadcast_arrays(i, j)  # (kh, kw, Ho, Wo)
        self.mask = ((i >= 0) & (i < H) & (j >= 0) & (j < W)).astype(np.float64)
        self.i, self.j = np.clip(i, 0, H - 1), np.clip(j, 0, W - 1)
        self.params = (stride, padding, dilation)

    def __repr__(self):
        s, p, d = self.params
        return f"stride={s}, padding={p}, dilation={d}"

    def _mask(self, x):
        """The padding mask as x's dtype, where x lives (uploaded once per call to a device)."""
        return np.asarray(self.mask, dtype_of(x), like=P.device_like(x))

    def cols(self, x):
        """(..., C, H, W) -> (..., C*kh*kw, Ho*Wo): im2col as a differentiable gather."""
        idx = (slice(None),) * (ndim_of(x) - 2) + (self.i, self.j)
        c = P.multiply(P.getitem(x, idx), self._mask(x))
        return P.reshape(c, shape_of(x)[:-3] + (self.K, math.prod(self.out_hw)))

    def uncols(self, c, x_shape):
        """The transpose of ``cols``: (..., K, Ho*Wo) scatter-added onto (..., C, H, W)."""
        lead = shape_of(c)[:-2]
        c = P.reshape(c, lead + (self.C,) + self.i.shape)
        c = P.multiply(c, self._mask(c))
        idx = (slice(None),) * (len(lead) + 1) + (self.i, self.j)
        return P.scatter_add(c, idx=idx, shape=lead + tuple(x_shape[-3:]))


def _conv_ref(x, w, geo):
    """conv2d by primitives: x (..., N, C, H, W), w (B..., C_out, C, kH, kW) whose extra
    leading axes B broadcast in front: the result is (B..., ..., N, C_out, Ho, Wo)."""
    ws = shape_of(w)
    nb = len(ws) - 4
    pad = (1,) * (ndim_of(x) - 3)
    w2 = P.reshape(w, ws[:nb] + pad + (ws[nb], geo.K))
    out = P.matmul(w2, geo.cols(x))
    return P.reshape(out, shape_of(out)[:-1] + geo.out_hw)


def _conv_jvp(tangents, ans, x, w, geo):
    tx, tw = tangents
    out = None if tx is None else conv2d_p(tx, w, geo=geo)
    if tw is not None:
        r = conv2d_p(x, tw, geo=geo) if ndim_of(tw) == 4 else _conv_ref(x, tw, geo)
        out = r if out is None else P.add(out, r)
    return out


def _conv_vjp_x(g, ans, x, w, geo):
    ws = shape_of(w)
    gcols = P.matmul(P.transpose(P.reshape(w, (ws[0], geo.K)), (1, 0)),
                     P.reshape(g, shape_of(g)[:-2] + (math.prod(geo.out_hw),)))
    return geo.uncols(gcols, shape_of(x))


def _conv_vjp_w(g, ans, x, w, geo):
    nb = ndim_of(g) - ndim_of(ans)
    g2 = P.reshape(g, shape_of(g)[:-2] + (math.prod(geo.out_hw),))
    gw = P.matmul(g2, P.mT(geo.cols(x)))
    n = ndim_of(gw)  # sum over the data's leading axes; axes negative, as the table wants
    gw = P.sum_(gw, axis=tuple(range(nb - n, -2)), keepdims=False)
    return P.reshape(gw, shape_of(g)[:nb] + shape_of(w))


def _conv_batch(args, dims, geo):
    """conv2d with a batch axis: a batch of inputs is one convolution of B*N images; a
    batch of weights (an ensemble) is one matrix product with the im2col columns."""
    (x, w), (dx, dw) = args, dims
    x = P.bfront(x, dx)
    xs = shape_of(x)
    if dw is None:
        out = conv2d_p(P.reshape(x, (-1,) + xs[-3:]), w, geo=geo)
        return P.reshape(out, xs[:-3] + shape_of(out)[1:]), 0
    w = P.bfront(w, dw)
    ws = shape_of(w)
    out = P.matmul(P.reshape(w, (ws[0], 1, ws[1], geo.K)), geo.cols(x))
    return P.reshape(out, shape_of(out)[:-1] + geo.out_hw), 0


def _conv_impl(x, w, geo):
    return backend.conv2d(x, w, *geo.params)


# conv2d's two cotangents are rows of their own, computed by the backend's kernels: so a
# graph recorded by dg.jit keeps the kernels (the rules by primitives, an im2col gather and
# a scatter-add, replay several times slower), and a second derivative differentiates
# them by their own rules.  Each is bilinear, the adjoint of conv2d in one argument:
#   <conv2d_grad_input(g, w), v> = <g, conv2d(v, w)>,  <conv2d_grad_weight(g, x), v> =
#   <g, conv2d(x, v)>.
# The rows take 4-D arrays; (co)tangents with leading batch axes go through ``_conv_any``,
# ``_grad_input_any`` and ``_grad_weight_any``: images' extra axes fold into N, weights'
# extra axes take the rules' matrix products.
def _conv_any(x, w, geo):
    """conv2d of x (..., N, C, H, W) with w (B..., C_out, C, kH, kW)."""
    if ndim_of(w) > 4:
        return _conv_ref(x, w, geo)
    xs = shape_of(x)
    out = conv2d_p(P.reshape(x, (-1,) + xs[-3:]) if len(xs) > 4 else x, w, geo=geo)
    return P.reshape(out, xs[:-3] + shape_of(out)[1:]) if len(xs) > 4 else out


def _grad_input_any(g, w, geo, x_shape):
    """conv2d's x-cotangent of g (..., N, C_out, Ho, Wo), w (B..., C_out, C, kH, kW)."""
    gs = shape_of(g)
    if ndim_of(w) == 4:
        if len(gs) == 4:
            return conv2d_grad_input_p(g, w, geo=geo, x_shape=tuple(x_shape))
        n = math.prod(gs[:-3])
        out = conv2d_grad_input_p(P.reshape(g, (n,) + gs[-3:]), w, geo=geo,
                                  x_shape=(n,) + tuple(x_shape[1:]))
        return P.reshape(out, gs[:-3] + tuple(x_shape[1:]))
    ws = shape_of(w)
    wt = P.mT(P.reshape(w, ws[:-4] + (1, ws[-4], geo.K)))  # (B..., 1, K, C_out)
    gcols = P.matmul(wt, P.reshape(g, gs[:-2] + (math.prod(geo.out_hw),)))
    return geo.uncols(gcols, tuple(x_shape))


def _grad_weight_any(g, x, geo, w_shape):
    """conv2d's w-cotangent of g (..., N, C_out, Ho, Wo), x (..., N, C, H, W): one per
    leading index, summed over the images N."""
    gs, xs = shape_of(g), shape_of(x)
    if len(gs) == len(xs) == 4:
        return conv2d_grad_weight_p(g, x, geo=geo, w_shape=tuple(w_shape))
    gw = P.matmul(P.reshape(g, gs[:-2] + (math.prod(geo.out_hw),)), P.mT(geo.cols(x)))
    gw = P.sum_(gw, axis=(-3,), keepdims=False)  # (..., C_out, K)
    return P.reshape(gw, shape_of(gw)[:-2] + tuple(w_shape))


def _bilinear_jvp(row_any):
    def jvp(tangents, ans, a, b, geo, **shape):
        ta, tb = tangents
        out = None if ta is None else row_any(ta, b, geo, *shape.values())
        if tb is not None:
            r = row_any(a, tb, geo, *shape.values())
            out = r if out is None else P.add(out, r)
        return out
    return jvp


def _grad_input_batch(args, dims, geo, x_shape):
    (g, w), (dg_, dw) = args, dims
    g = P.bfront(g, dg_) if dg_ is not None else g
    w = P.bfront(w, dw) if dw is not None else w
    if dg_ is None:
        g = P.broadcast_to(g, shape_of(w)[:1] + shape_of(g))
    return _grad_input_any(g, w, geo, x_shape), 0


def _grad_weight_batch(args, dims, geo, w_shape):
    (g, x), (dg_, dx) = args, dims
    b = shape_of(g)[dg_] if dg_ is not None else shape_of(x)[dx]
    g = P.bfront(g, dg_) if dg_ is not None else P.broadcast_to(g, (b,) + shape_of(g))
    x = P.bfront(x, dx) if dx is not None else x
    return _grad_weight_any(g, x, geo, w_shape), 0


def _grad_input_impl(g, w, geo, x_shape):
    if g.shape[-3] != w.shape[0] or w.shape[1] != x_shape[-3]:
        raise ValueError(f"conv2d_grad_input: g {g.shape}, w {w.shape} and x {x_shape} "
                         "disagree in their channels")
    return backend.conv2d_grad_input(  # N (and any batch axes) from g
        g, w, tuple(g.shape[:-3]) + tuple(x_shape[-3:]), *geo.params)


def _grad_weight_impl(g, x, geo, w_shape):
    if g.shape[-3] != w_shape[0] or x.shape[-3] != w_shape[1] \
            or g.shape[:-3] != x.shape[:-3]:
        raise ValueError(f"conv2d_grad_weight: g {g.shape}, x {x.shape} and w {w_shape} "
                         "disagree in their images or channels")
    return backend.conv2d_grad_weight(g, x, w_shape, *geo.params)


conv2d_grad_input_p = defprim(
    "conv2d_grad_input", _grad_input_impl,
    batch=_grad_input_batch, jvp=_bilinear_jvp(_grad_input_any), vjp=(
        lambda v, ans, g, w, geo, x_shape: _conv_any(v, w, geo),
        lambda v, ans, g, w, geo, x_shape: _grad_weight_any(g, v, geo, shape_of(w)[-4:])))

conv2d_grad_weight_p = defprim(
    "conv2d_grad_weight", _grad_weight_impl,
    batch=_grad_weight_batch, jvp=_bilinear_jvp(_grad_weight_any), vjp=(
        lambda v, ans, g, x, geo, w_shape: _conv_any(x, v, geo),
        lambda v, ans, g, x, geo, w_shape: _grad_input_any(g, v, geo, shape_of(x)[-4:])))


def _plain(g, ans, x, w):
    """The cotangents' rows take one 4-D image batch, 4-D weights and no batch axes."""
    return ndim_of(g) == ndim_of(ans) == ndim_of(x) == ndim_of(w) == 4


def _conv_vjp_x_row(g, ans, x, w, geo):
    if _plain(g, ans, x, w):
        return conv2d_grad_input_p(g, w, geo=geo, x_shape=shape_of(x))
    return _conv_vjp_x(g, ans, x, w, geo)


def _conv_vjp_w_row(g, ans, x, w, geo):
    if _plain(g, ans, x, w):
        return conv2d_grad_weight_p(g, x, geo=geo, w_shape=shape_of(w))
    return _conv_vjp_w(g, ans, x, w, geo)


conv2d_p = defprim("conv2d", _conv_impl, jvp=_conv_jvp, vjp=(
    kernel_or_rule(lambda g, ans, x, w, geo: backend.conv2d_grad_input(
        g, w, shape_of(x), *geo.params), _conv_vjp_x_row, batched=True),
    kernel_or_rule(lambda g, ans, x, w, geo: backend.conv2d_grad_weight(
        g, x, shape_of(w), *geo.params), _conv_vjp_w_row, batched=True,
        when=lambda g, ans, x, w, geo: ndim_of(x) == 4)), batch=_conv_batch)
