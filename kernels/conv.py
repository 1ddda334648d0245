"""Image kernels, NCHW: im2col / col2im (the data movement around a convolution's
matrix products) and 2-D max pooling.

A convolution is ``w.reshape(C_out, -1) @ cols``; the matrix product stays with
BLAS (through numpy), these loops only move data.  Geometry, for each spatial
axis: input position = out_pos * stride + k * dilation - padding; positions
outside the input read as zero (convolution) or are skipped (pooling).

``im2col_parallel`` and ``col2im_parallel`` split the N*C image planes over numba's
threads (``prange``); each plane is still moved by one thread in the same order, so
they agree bitwise with the serial kernels (``dualgrad.backend.numba_ops`` times both).

    >>> import numpy as np
    >>> cols = np.empty((1, 1, 1, 2, 1, 2))     # 1x2 kernel, padding 1 on the width
    >>> im2col(np.array([[[[5.0]]]]), 1, 1, 0, 1, 1, 1, cols); cols.ravel().tolist()
    [0.0, 5.0, 5.0, 0.0]
"""

from numba import prange
from numba.extending import register_jitable

from .diskcache import njit


@njit(cache=True)
def _span(size, n_out, stride, offset):
    """[lo, hi): the output positions o with 0 <= o * stride + offset < size."""
    lo = 0 if offset >= 0 else (-offset + stride - 1) // stride
    hi = (size - 1 - offset) // stride + 1 if size - 1 - offset >= 0 else 0
    return min(lo, n_out), max(min(hi, n_out), min(lo, n_out))


@register_jitable(inline="always")
def _col2im_plane(cols, sh, sw, ph, pw, dh, dw, gx):
    """One image plane: gx (H, W) += every window of cols (kH, kW, Ho, Wo), in (i, j, oh,
    ow) order (stride 1 on the width: a run of a row at once, the same adds)."""
    H, W = gx.shape
    kH, kW, Ho, Wo = cols.shape
    for i in range(kH):
        for j in range(kW):
            off = j * dw - pw
            lo, hi = _span(W, Wo, sw, off)
            for oh in range(Ho):
                ih = oh * sh + i * dh - ph
                if ih < 0 or ih >= H:
                    continue
                src, dst = cols[i, j, oh], gx[ih]
                if sw == 1:
                    run, part = dst[lo + off:hi + off], src[lo:hi]
                    for k in range(hi - lo):
                        run[k] += part[k]
                else:
                    for ow in range(lo, hi):
                        dst[ow * sw + off] += src[ow]


@njit(cache=True)
def im2col(x, sh, sw, ph, pw, dh, dw, cols):
    """cols[n, c, i, j, oh, ow] = x[n, c, oh*sh + i*dh - ph, ow*sw + j*dw - pw] (0 outside)."""
    N, C, H, W = x.shape
    kH, kW, Ho, Wo = cols.shape[2], cols.shape[3], cols.shape[4], cols.shape[5]
    for n in range(N):
        for c in range(C):
            for i in range(kH):
                for j in range(kW):
                    for oh in range(Ho):
                        ih = oh * sh + i * dh - ph
                        for ow in range(Wo):
                            iw = ow * sw + j * dw - pw
                            inside = 0 <= ih < H and 0 <= iw < W
                            cols[n, c, i, j, oh, ow] = x[n, c, ih, iw] if inside else 0


@njit(cache=True)
def col2im(cols, sh, sw, ph, pw, dh, dw, gx):
    """The adjoint of im2col: gx[n, c, ih, iw] += cols[n, c, i, j, oh, ow], in (i, j) order.

    gx must be zero on entry."""
    for n in range(gx.shape[0]):
        for c in range(gx.shape[1]):
            _col2im_plane(cols[n, c], sh, sw, ph, pw, dh, dw, gx[n, c])


@njit(cache=True, parallel=True)
def im2col_parallel(x, sh, sw, ph, pw, dh, dw, cols):
    """im2col with the N*C planes split over numba's threads."""
    N, C, H, W = x.shape
    kH, kW, Ho, Wo = cols.shape[2], cols.shape[3], cols.shape[4], cols.shape[5]
    for p in prange(N * C):
        n, c = p // C, p % C
        for i in range(kH):
            for j in range(kW):
                for oh in range(Ho):
                    ih = oh * sh + i * dh - ph
                    for ow in range(Wo):
                        iw = ow * sw + j * dw - pw
                        inside = 0 <= ih < H and 0 <= iw < W
                        cols[n, c, i, j, oh, ow] = x[n, c, ih, iw] if inside else 0


@njit(cache=True, parallel=True)
def col2im_parallel(cols, sh, sw, ph, pw, dh, dw, gx):
    """col2im with the N*C planes split over numba's threads (one plane, one thread:
    its sums run in the serial kernel's order).  gx must be zero on entry."""
    C = gx.shape[1]
    for p in prange(gx.shape[0] * C):
        n, c = p // C, p % C
        _col2im_plane(cols[n, c], sh, sw, ph, pw, dh, dw, gx[n, c])


@njit(cache=True)
def max_pool2d_fwd(x, kh, kw, sh, sw, ph, pw, out, arg):
    """out = max over each window of real (unpadded) elements; arg = its index in H*W.

    Ties go to the first maximum in row-major window order, NaN to the first NaN
    (``np.argmax`` semantics); a window of all -inf picks its first real element.
    NaN is only flagged in the hot loop (a NaN test per update cost 2x) and the
    rare window holding one is rescanned."""
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2], out.shape[3]
    for n in range(N):
        for c in range(C):
            for oh in range(Ho):
                h0, h1 = max(oh * sh - ph, 0), min(oh * sh - ph + kh, H)
                for ow in range(Wo):
                    w0, w1 = max(ow * sw - pw, 0), min(ow * sw - pw + kw, W)
                    out[n, c, oh, ow], arg[n, c, oh, ow] = window_max(x[n, c], h0, h1, w0, w1)


@register_jitable(inline="always")
def window_max(plane, h0, h1, w0, w1):
    """(max, index in H*W) of plane[h0:h1, w0:w1], the first maximum or NaN winning.

    The scalar loop both targets compile (kernels/cuda.py: one thread per window)."""
    W = plane.shape[1]
    best = plane[h0, w0]
    bi = h0 * W + w0
    nan = False
    for ih in range(h0, h1):
        for iw in range(w0, w1):
            v = plane[ih, iw]
            nan |= v != v
            if v > best:
                best = v
                bi = ih * W + iw
    if nan:
        return first_nan(plane, h0, h1, w0, w1)
    return best, bi


@register_jitable
def first_nan(plane, h0, h1, w0, w1):
    for ih in range(h0, h1):
        for iw in range(w0, w1):
            if plane[ih, iw] != plane[ih, iw]:
                return plane[ih, iw], ih * plane.shape[1] + iw
    return plane[h0, w0], h0 * plane.shape[1] + w0


@njit(cache=True)
def max_pool2d_bwd(g, arg, gx):
    """gx[b, p, arg[p, oh, ow]] += g[b, p, oh, ow]; gx (B, P, H*W) zero on entry.

    p runs over the N*C image planes, b over any batch of cotangents."""
    B, P, Ho, Wo = g.shape
    for b in range(B):
        for p in range(P):
            for oh in range(Ho):
                for ow in range(Wo):
                    gx[b, p, arg[p, oh, ow]] += g[b, p, oh, ow]
