"""The FFT: fft, ifft, rfft, irfft, their 2-D and n-D forms, fftshift, ifftshift.

Four linear rows (``rules/fft.py``: the rules written out) on one axis; numpy's ``n``
(truncate or zero-pad), ``norm`` and the n-D forms (one axis at a time) are here.
"""

import numpy as np

from .. import rules as P
from ..core.trace import unbox
from ..rules.fft import fft_, ifft_, irfft_, rfft_
from .dispatch import _arr, _no, implements
from .gather import roll
from .indexing import _along
from .shapes import concatenate

_shape, _ndim = P.shape_of, P.ndim_of
_axes = P.normalize_axes


def _fit_length(a, n, axis):
    """numpy's ``n``: truncate, or zero-pad at the end of ``axis``."""
    have = _shape(a)[axis]
    if n == have:
        return a
    if n < have:
        return _along(a, axis, 0, n)
    pad = list(_shape(a))
    pad[axis] = n - have
    return concatenate([a, np.zeros(pad, np.result_type(unbox(a), 1.0),
                                        like=P.device_like(a))], axis=axis)


def _fft_args(a, n, axis, norm, out, fname):
    _no(dict(out=out), fname, out=None)
    if norm not in (None, "backward", "ortho", "forward"):
        raise ValueError(f'Invalid norm value {norm}; should be "backward", "ortho" or '
                         '"forward".')
    a = _arr(a)
    ax = _axes(axis, _ndim(a))[0]
    return a, ax, (None if norm == "backward" else norm)


@implements(np.fft.fft)
def fft(a, n=None, axis=-1, norm=None, out=None):
    a, ax, norm = _fft_args(a, n, axis, norm, out, "fft.fft")
    a = _fit_length(a, _shape(a)[ax] if n is None else n, ax)
    return fft_(a, axis=ax, norm=norm)


@implements(np.fft.ifft)
def ifft(a, n=None, axis=-1, norm=None, out=None):
    a, ax, norm = _fft_args(a, n, axis, norm, out, "fft.ifft")
    a = _fit_length(a, _shape(a)[ax] if n is None else n, ax)
    return ifft_(a, axis=ax, norm=norm)


@implements(np.fft.rfft)
def rfft(a, n=None, axis=-1, norm=None, out=None):
    a, ax, norm = _fft_args(a, n, axis, norm, out, "fft.rfft")
    if P.is_complex(a):
        raise TypeError("dualgrad: numpy.fft.rfft takes a real input; use numpy.fft.fft")
    a = _fit_length(a, _shape(a)[ax] if n is None else n, ax)
    return rfft_(a, axis=ax, norm=norm)


@implements(np.fft.irfft)
def irfft(a, n=None, axis=-1, norm=None, out=None):
    a, ax, norm = _fft_args(a, n, axis, norm, out, "fft.irfft")
    n = 2 * (_shape(a)[ax] - 1) if n is None else n
    if n < 1:
        raise ValueError(f"Invalid number of FFT data points ({n}) specified.")
    a = _fit_length(a, n // 2 + 1, ax)
    return irfft_(a, n=n, axis=ax, norm=norm)


def _nd_axes(a, s, axes, default2):
    nd = _ndim(a)
    if axes is None:
        axes = (-2, -1) if default2 else (tuple(range(-len(s), 0)) if s is not None
                                          else tuple(range(-nd, 0)))
    axes = list(_axes(axes, nd))
    s = [None] * len(axes) if s is None else list(s)
    if len(s) != len(axes):
        raise ValueError("Shape and axes have different lengths.")
    return s, axes


def _fftn(one, last=None, default2=False, fname="fftn"):
    def transform(a, s=None, axes=None, norm=None, out=None):
        _no(dict(out=out), f"fft.{fname}", out=None)
        s, axes = _nd_axes(_arr(a), s, axes, default2)
        pairs = list(zip(s, axes))
        if last is not None:  # the real transform on the last axis: first for rfftn, last
            n, ax = pairs.pop()  # for irfftn
            if last is rfft:
                a = rfft(a, n, ax, norm)
            for n_i, ax_i in pairs[::-1]:
                a = one(a, n_i, ax_i, norm)
            return irfft(a, n, ax, norm) if last is irfft else a
        for n_i, ax_i in pairs[::-1]:
            a = one(a, n_i, ax_i, norm)
        return a
    transform.__name__ = fname
    return transform


fft2 = implements(np.fft.fft2)(_fftn(fft, None, True, "fft2"))
ifft2 = implements(np.fft.ifft2)(_fftn(ifft, None, True, "ifft2"))
fftn = implements(np.fft.fftn)(_fftn(fft, None, False, "fftn"))
ifftn = implements(np.fft.ifftn)(_fftn(ifft, None, False, "ifftn"))
rfft2 = implements(np.fft.rfft2)(_fftn(fft, rfft, True, "rfft2"))
irfft2 = implements(np.fft.irfft2)(_fftn(ifft, irfft, True, "irfft2"))
rfftn = implements(np.fft.rfftn)(_fftn(fft, rfft, False, "rfftn"))
irfftn = implements(np.fft.irfftn)(_fftn(ifft, irfft, False, "irfftn"))


@implements(np.fft.fftshift)
def fftshift(x, axes=None):
    x = _arr(x)
    axes = tuple(range(_ndim(x))) if axes is None else axes
    axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
    return roll(x, [_shape(x)[a] // 2 for a in axes], axes)


@implements(np.fft.ifftshift)
def ifftshift(x, axes=None):
    x = _arr(x)
    axes = tuple(range(_ndim(x))) if axes is None else axes
    axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
    return roll(x, [-(_shape(x)[a] // 2) for a in axes], axes)
