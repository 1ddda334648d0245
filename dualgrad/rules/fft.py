"""The FFT rows: ``fft``, ``ifft``, ``rfft`` and ``irfft``, linear maps with their rules
written out.  The numpy functions (``np.fft.fft`` on traced values: the length ``n``, the
axis and ``norm`` checked) are in ``dualgrad.numpy.tail``.
"""

import numpy as np

from .. import rules as P  # the rows by name: rules/__init__ binds them before importing this

_shape = P.shape_of


def _along(x, ax, start=None, stop=None, step=None):
    """``x[..., start:stop:step, ...]`` on (negative) axis ``ax``."""
    return P.getitem(x, (Ellipsis, slice(start, stop, step)) + (slice(None),) * (-ax - 1))


def _on_axis(v, ax, nd):
    """A 1-D ``v`` shaped to broadcast along axis ``ax`` of an ``nd``-dim array."""
    shape = [1] * nd
    shape[ax] = -1
    return P.reshape(v, tuple(shape))


# ---------------------------------------------------------------------------
# the FFT: four linear rows, their rules written out
#
# fft(x)_j = sum_k x_k w^(jk), w = exp(-2 pi i / n): the DFT matrix F is symmetric, so
# under JAX's pairing Re(sum(u * t)) (no conjugate) the VJP of fft is fft itself, and
# likewise ifft; ``norm`` scales F and F^T alike.  rfft keeps the first n//2 + 1 rows of
# F applied to a real x: its transpose zero-pads the cotangent to n, applies fft and
# keeps the real part (x is real).  irfft(y) = Re(sum_j a_j y_j w^(-jk)) / n with a_j = 1
# for j = 0 and the Nyquist term, 2 otherwise: R-linear in y, so its JVP is irfft of the
# tangent, and its transpose is a * ifft(u) on the first n//2 + 1 entries.
# ---------------------------------------------------------------------------

def _fft_impl(fn):
    return lambda x, axis, norm: fn(x, axis=axis, norm=norm)


fft_ = P.defprim("fft", _fft_impl(np.fft.fft),
                 jvp=(lambda t, ans, x, axis, norm: fft_(t, axis=axis, norm=norm),),
                 vjp=(lambda g, ans, x, axis, norm: fft_(g, axis=axis, norm=norm),),
                 batch=P.batch_trailing("fft"), dtype=P.complex_dtype)
ifft_ = P.defprim("ifft", _fft_impl(np.fft.ifft),
                  jvp=(lambda t, ans, x, axis, norm: ifft_(t, axis=axis, norm=norm),),
                  vjp=(lambda g, ans, x, axis, norm: ifft_(g, axis=axis, norm=norm),),
                  batch=P.batch_trailing("ifft"), dtype=P.complex_dtype)


def _rfft_vjp(g, ans, x, axis, norm):
    n, m = _shape(x)[axis], _shape(ans)[axis]
    pad = list(_shape(g))
    pad[axis] = n - m
    full = P.concatenate(g, np.zeros(pad, P.float_dtype(g), like=P.device_like(g)),
                         axis=axis) if n > m else g
    return P.real(fft_(full, axis=axis, norm=norm))


rfft_ = P.defprim("rfft", _fft_impl(np.fft.rfft),
                  jvp=(lambda t, ans, x, axis, norm: rfft_(t, axis=axis, norm=norm),),
                  vjp=(_rfft_vjp,),  # a real input only: numpy_tail.rfft refuses complex
                  batch=P.batch_trailing("rfft"), dtype=P.complex_dtype)


def _irfft_weights(n, m, axis, like):
    a = np.full(m, 2.0, np.empty(0, P.float_dtype(like)).real.dtype, like=P.device_like(like))
    a[0] = 1.0
    if n % 2 == 0:
        a[-1] = 1.0
    return _on_axis(a, axis, -axis)


def _irfft_vjp(g, ans, y, n, axis, norm):
    m = _shape(y)[axis]
    c = _along(ifft_(g, axis=axis, norm=norm), axis, 0, m)
    return P.multiply(c, _irfft_weights(n, m, axis, g))


irfft_ = P.defprim("irfft", lambda y, n, axis, norm: np.fft.irfft(y, n, axis, norm),
                   jvp=(lambda t, ans, y, n, axis, norm: irfft_(t, n=n, axis=axis, norm=norm),),
                   vjp=(_irfft_vjp,), batch=P.batch_trailing("irfft"), dtype=P.real_dtype)
