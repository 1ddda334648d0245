"""scipy.signal on traced values: convolution, correlation and linear filters.

``convolve``, ``correlate``, ``fftconvolve``, ``convolve2d``, ``correlate2d`` and
``lfilter`` keep scipy's signatures.  Called on plain arrays they are scipy's own
functions; on traced values they are built from differentiable dualgrad operations, so
every transform (forward and reverse, higher order, ``vmap``, ``dg.jit``) goes through:

- direct 1-D and 2-D convolution is ``dg.nn.conv2d`` (a primitive with its own rules) with
  the kernel flipped, ``mode`` a crop of the full result, ``boundary`` a ``np.pad`` of
  the input ('fill' with ``fillvalue``, 'wrap', 'symm');
- FFT convolution (``fftconvolve``, ``method='fft'``, and N-D arrays with N > 2) is
  ``np.fft.rfftn``/``irfftn`` (``fftn``/``ifftn`` for complex values);
- ``lfilter`` is one primitive (scipy's ``lfilter`` on plain values) whose rules are
  filters again: a linear time-invariant filter's adjoint is the same filter run
  backwards in time, and its derivative in the coefficients filters shifted signals.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy import signal
    >>> x, k = np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.5])
    >>> signal.convolve(x, k)
    array([0. , 1. , 2.5, 4. , 1.5])
    >>> dg.grad(lambda k: np.sum(signal.convolve(x, k, mode="same") ** 2))(k)
    array([19., 36., 21.])
"""

import numpy as np
import scipy.signal as ss

from ..core.trace import Box, IndexedRules, Primitive, unbox
from ..core.tree import tree_flatten
from ..numpy import nn

__all__ = ["convolve", "correlate", "fftconvolve", "convolve2d", "correlate2d", "lfilter"]

_MODES = ("full", "same", "valid")
_BOUNDARY = {"fill": "fill", "pad": "fill", "wrap": "wrap", "circular": "wrap",
             "symm": "symm", "symmetric": "symm"}


def _traced(*xs):
    return any(isinstance(leaf, Box) for x in xs for leaf in tree_flatten(x)[0])


def _as_array(x):
    """An array, traced or not; a list with traced entries is stacked."""
    if isinstance(x, Box):
        return x
    if isinstance(x, (list, tuple)) and _traced(x):
        return np.stack([_as_array(e) for e in x])
    return np.asarray(x)


def _shape(x):
    return np.shape(unbox(x))


def _is_complex(x):
    return np.iscomplexobj(unbox(x))


def _check_mode(mode, fname):
    if mode not in _MODES:
        raise ValueError(f"{fname}: mode must be one of 'full', 'same' or 'valid', got "
                         f"{mode!r}")


def _valid_swap(s1, s2, axes, fname):
    """scipy's rule for 'valid': one input at least as large as the other along every
    convolved axis; True when in2 is the larger one."""
    ok1 = all(s1[i] >= s2[i] for i in axes)
    ok2 = all(s2[i] >= s1[i] for i in axes)
    if not (ok1 or ok2):
        raise ValueError(f"{fname}: for 'valid' mode, one input must be at least as large as "
                         f"the other in every dimension (got shapes {s1} and {s2})")
    return not ok1


def _crop(full, shape, axes, late=False):
    """The centred ``shape`` window of ``full`` along ``axes`` (scipy's ``_centered``;
    ``late``: the window one later for an odd excess, as correlate2d's 'same')."""
    fs = _shape(full)
    index = [slice(None)] * len(fs)
    for ax, n in zip(axes, shape):
        start = (fs[ax] - n + int(late)) // 2
        index[ax] = slice(start, start + n)
    return full[tuple(index)]


def _cropped(full, s1, s2, mode, axes, fname, late=False):
    if mode == "full":
        return full
    if mode == "same":
        return _crop(full, [s1[a] for a in axes], axes, late)
    _valid_swap(s1, s2, axes, fname)
    return _crop(full, [abs(s1[a] - s2[a]) + 1 for a in axes], axes)


# ---------------------------------------------------------------------------
# the full convolution: conv2d (direct) or the FFT
# ---------------------------------------------------------------------------

def _parts(x):
    """x as (real part, coefficient) pairs: one for a real x, two for a complex one."""
    if _is_complex(x):
        return [(np.real(x), 1.0), (np.imag(x), 1j)]
    return [(x, 1.0)]


def _direct_full(in1, in2):
    """The full 1-D or 2-D convolution by ``dg.nn.conv2d`` (a cross-correlation: the
    kernel, the smaller input, is flipped; zero padding of kernel-size - 1)."""
    nd = len(_shape(in1))
    if np.size(unbox(in2)) > np.size(unbox(in1)):
        in1, in2 = in2, in1  # convolution commutes: the smaller is the kernel
    out = None
    for p1, c1 in _parts(in1):
        for p2, c2 in _parts(in2):
            x, w = (p1, p2) if nd == 2 else (np.reshape(p1, (1, -1)), np.reshape(p2, (1, -1)))
            kh, kw = _shape(w)
            y = nn.conv2d(np.reshape(x * 1.0, (1, 1) + _shape(x)),
                          np.reshape(np.flip(w * 1.0), (1, 1, kh, kw)),
                          padding=(kh - 1, kw - 1))[0, 0]
            y = y if nd == 2 else y[0]
            c = c1 * c2
            y = y if c == 1.0 else y * c
            out = y if out is None else out + y
    return out


def _fft_full(in1, in2, axes):
    s1, s2 = _shape(in1), _shape(in2)
    s = [s1[a] + s2[a] - 1 for a in axes]
    if _is_complex(in1) or _is_complex(in2):
        return np.fft.ifftn(np.fft.fftn(in1, s=s, axes=axes) * np.fft.fftn(in2, s=s, axes=axes),
                            s=s, axes=axes)
    return np.fft.irfftn(np.fft.rfftn(in1, s=s, axes=axes) * np.fft.rfftn(in2, s=s, axes=axes),
                         s=s, axes=axes)


def _convolve(in1, in2, mode, method, fname, late=False):
    s1, s2 = _shape(in1), _shape(in2)
    if len(s1) != len(s2):
        raise ValueError(f"{fname}: in1 and in2 should have the same dimensionality (got "
                         f"shapes {s1} and {s2})")
    _check_mode(mode, fname)
    if len(s1) == 0:
        return in1 * in2
    axes = list(range(len(s1)))
    if mode == "valid":
        _valid_swap(s1, s2, axes, fname)
    if method == "fft" or len(s1) > 2:
        full = _fft_full(in1, in2, axes)
    else:
        full = _direct_full(in1, in2)
    return _cropped(full, s1, s2, mode, axes, fname, late)


def _reverse_and_conj(x):
    x = np.flip(x)
    return np.conj(x) if _is_complex(x) else x


def convolve(in1, in2, mode="full", method="auto"):
    """scipy.signal.convolve: N-D convolution, ``mode`` 'full', 'same' or 'valid'.

    Traced 1-D and 2-D inputs are convolved directly ('auto', 'direct') or by the FFT
    ('fft'); N-D ones (N > 2) always by the FFT.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy.signal import convolve
    >>> dg.jacrev(lambda a: convolve(a, np.array([1.0, -1.0]), mode="valid"))(np.ones(3))
    array([[-1.,  1.,  0.],
           [ 0., -1.,  1.]])
    """
    if method not in ("auto", "direct", "fft"):
        raise ValueError(f"convolve: method must be 'auto', 'direct' or 'fft', got {method!r}")
    if not _traced(in1, in2):
        return ss.convolve(in1, in2, mode=mode, method=method)
    return _convolve(_as_array(in1), _as_array(in2), mode, method, "convolve")


def correlate(in1, in2, mode="full", method="auto"):
    """scipy.signal.correlate: ``convolve(in1, in2 reversed and conjugated)``.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy.signal import correlate
    >>> float(dg.grad(lambda a: correlate(a, np.ones(2), "valid")[0])(np.ones(3))[0])
    1.0
    """
    if method not in ("auto", "direct", "fft"):
        raise ValueError(f"correlate: method must be 'auto', 'direct' or 'fft', got "
                         f"{method!r}")
    if not _traced(in1, in2):
        return ss.correlate(in1, in2, mode=mode, method=method)
    in1, in2 = _as_array(in1), _as_array(in2)
    if len(_shape(in1)) == len(_shape(in2)) == 0:
        return in1 * (np.conj(in2) if _is_complex(in2) else in2)
    return _convolve(in1, _reverse_and_conj(in2), mode, method, "correlate")


def fftconvolve(in1, in2, mode="full", axes=None):
    """scipy.signal.fftconvolve: convolution by the FFT, over ``axes`` (default: all);
    the other axes broadcast.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy.signal import fftconvolve
    >>> np.round(dg.grad(lambda k: fftconvolve(np.ones(4), k).sum())(np.ones(2)), 12)
    array([4., 4.])
    """
    if not _traced(in1, in2):
        return ss.fftconvolve(in1, in2, mode=mode, axes=axes)
    in1, in2 = _as_array(in1), _as_array(in2)
    s1, s2 = _shape(in1), _shape(in2)
    if len(s1) != len(s2):
        raise ValueError(f"fftconvolve: in1 and in2 should have the same dimensionality (got "
                         f"shapes {s1} and {s2})")
    _check_mode(mode, "fftconvolve")
    if len(s1) == 0:
        return in1 * in2
    nd = len(s1)
    if axes is None:
        axes = list(range(nd))
    else:
        axes = sorted({int(a) % nd for a in np.atleast_1d(axes)})
    for a in range(nd):
        if a not in axes and s1[a] != s2[a] and 1 not in (s1[a], s2[a]):
            raise ValueError(f"fftconvolve: incompatible shapes for in1 and in2: {s1} and {s2}"
                             f" (axis {a} is not convolved, so it must match or be 1)")
    if mode == "valid":
        _valid_swap(s1, s2, axes, "fftconvolve")
    return _cropped(_fft_full(in1, in2, axes), s1, s2, mode, axes, "fftconvolve")


def _conv2d(in1, in2, mode, boundary, fillvalue, fname, late):
    s1, s2 = _shape(in1), _shape(in2)
    if len(s1) != 2 or len(s2) != 2:
        raise ValueError(f"{fname}: inputs must both be 2-D arrays (got shapes {s1} and {s2})")
    _check_mode(mode, fname)
    if boundary not in _BOUNDARY:
        raise ValueError(f"{fname}: boundary must be 'fill', 'wrap' or 'symm' (or scipy's "
                         f"aliases 'pad', 'circular', 'symmetric'), got {boundary!r}")
    bd = _BOUNDARY[boundary]
    if mode == "valid" or (bd == "fill" and not _traced(fillvalue) and fillvalue == 0):
        return _convolve(in1, in2, mode, "direct", fname, late)
    pads = [(k - 1, k - 1) for k in s2]
    if bd == "fill":  # the border holds fillvalue (differentiable in it too)
        padded = np.pad(in1 - fillvalue, pads) + fillvalue
    else:
        padded = np.pad(in1, pads, mode="wrap" if bd == "wrap" else "symmetric")
    full = _crop(_direct_full(padded, in2), [a + b - 1 for a, b in zip(s1, s2)], [0, 1])
    return _cropped(full, s1, s2, mode, [0, 1], fname, late)


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """scipy.signal.convolve2d: ``mode`` 'full', 'same', 'valid'; ``boundary`` 'fill' (with
    ``fillvalue``), 'wrap' or 'symm'.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy.signal import convolve2d
    >>> k = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> dg.grad(lambda x: convolve2d(x, k, "same", "wrap").sum())(np.ones((2, 2)))
    array([[2., 2.],
           [2., 2.]])
    """
    if not _traced(in1, in2, fillvalue):
        return ss.convolve2d(in1, in2, mode=mode, boundary=boundary, fillvalue=fillvalue)
    return _conv2d(_as_array(in1), _as_array(in2), mode, boundary, fillvalue, "convolve2d",
                   False)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """scipy.signal.correlate2d: ``convolve2d`` with ``in2`` reversed and conjugated
    ('same' windows placed as scipy places them).

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy.signal import correlate2d
    >>> dg.grad(lambda x: correlate2d(x, np.ones((1, 2)), "valid").sum())(np.ones((1, 3)))
    array([[1., 2., 1.]])
    """
    if not _traced(in1, in2, fillvalue):
        return ss.correlate2d(in1, in2, mode=mode, boundary=boundary, fillvalue=fillvalue)
    in1, in2 = _as_array(in1), _as_array(in2)
    out = _conv2d(in1, _reverse_and_conj(in2), mode, boundary, fillvalue, "correlate2d", True)
    if mode == "valid" and _is_complex(out) and _valid_swap(_shape(in1), _shape(in2), [0, 1],
                                                            "correlate2d"):
        out = np.conj(out)  # scipy conjugates the swapped inputs' result here
    return out


# ---------------------------------------------------------------------------
# lfilter: one primitive whose rules are filters
# ---------------------------------------------------------------------------

def _iir_impl(b, a, v):
    return ss.lfilter(b, a, v, axis=-1)


def _shifted(w, k):
    """w delayed by k samples along its last axis (zeros shifted in)."""
    n = _shape(w)[-1]
    if k == 0:
        return w
    zeros = np.zeros(_shape(w)[:-1] + (min(k, n),), np.result_type(unbox(w), 1.0))
    if k >= n:
        return zeros
    return np.concatenate([zeros, w[..., :n - k]], axis=-1)


def _coefficient_sum(c, w, vnd, ncoef):
    """Σ_k c[..., k] · shift_k(w): a tangent of the coefficients applied to w."""
    batch = _shape(c)[:-1]
    out = None
    for k in range(ncoef):
        term = np.reshape(c[..., k], batch + (1,) * vnd) * _shifted(w, k)
        out = term if out is None else out + term
    return out


def _coefficient_cotangent(g, w, vnd, ncoef):
    """[Σ g · shift_k(w)]_k over w's axes: the cotangent of the coefficients."""
    axes = tuple(range(-vnd, 0))
    return np.stack([np.sum(g * _shifted(w, k), axis=axes) for k in range(ncoef)], axis=-1)


def _one(a):
    return np.ones(1, np.result_type(unbox(a), 1.0))


def _iir_jvp(tangents, ans, b, a, v):
    tb, ta, tv = tangents
    vnd = len(_shape(v))
    out = None
    if tv is not None:
        out = iir(b, a, tv)
    if tb is not None:
        t = _coefficient_sum(tb, iir(_one(a), a, v), vnd, _shape(b)[0])
        out = t if out is None else out + t
    if ta is not None:
        t = _coefficient_sum(ta, iir(_one(a), a, ans), vnd, _shape(a)[0])
        out = -t if out is None else out - t
    return out


def _iir_vjp(i):
    def rule(g, ans, b, a, v):
        vnd = len(_shape(v))
        if i == 2:  # the adjoint of a causal filter: the same filter, backwards in time
            return np.flip(iir(b, a, np.flip(g, axis=-1)), axis=-1)
        if i == 0:
            return _coefficient_cotangent(g, iir(_one(a), a, v), vnd, _shape(b)[0])
        return -_coefficient_cotangent(g, iir(_one(a), a, ans), vnd, _shape(a)[0])
    return rule


def _iir_batch(vals, dims):
    b, a, v = vals
    db, da, dv = dims
    if db is None and da is None:
        return iir(b, a, np.moveaxis(v, dv, 0)), 0
    size = next(_shape(x)[d] for x, d in zip(vals, dims) if d is not None)
    outs = [iir(*[x if d is None else np.take(x, k, axis=d) for x, d in zip(vals, dims)])
            for k in range(size)]
    return np.stack(outs), 0


# iir(b, a, v): v filtered along its last axis by 1-D coefficients b (numerator) and a
iir = Primitive("lfilter", _iir_impl, jvp=_iir_jvp, vjp=IndexedRules(_iir_vjp),
                batch=_iir_batch)


def lfilter(b, a, x, axis=-1, zi=None):
    """scipy.signal.lfilter: the IIR filter ``Σ a[k] y[n-k] = Σ b[k] x[n-k]`` along
    ``axis``, differentiable in ``b``, ``a``, ``x`` and ``zi``; with ``zi`` (the initial
    delays, shape of x with ``axis`` of length max(len(a), len(b)) - 1) it returns
    ``(y, zf)``.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.scipy.signal import lfilter
    >>> lfilter([1.0], [1.0, -0.5], np.array([1.0, 0.0, 0.0]))
    array([1.  , 0.5 , 0.25])
    >>> float(dg.grad(lambda p: lfilter([1.0], [1.0, -p], np.array([1.0, 0.0, 0.0]))[2])(0.5))
    1.0
    """
    if not _traced(b, a, x, zi):
        return ss.lfilter(b, a, x, axis=axis, zi=zi)
    b, a, x = _as_array(b), _as_array(a), _as_array(x)
    for name, c in (("b", b), ("a", a)):
        if len(_shape(c)) != 1 or _shape(c)[0] == 0:
            raise ValueError(f"lfilter: {name} must be a non-empty 1-D array of coefficients, "
                             f"got shape {_shape(c)}")
    nd = len(_shape(x))
    if nd == 0:
        raise ValueError("lfilter: x must have at least one axis")
    axis = int(axis) % nd
    xm = np.moveaxis(x, axis, -1)
    y = iir(b, a, xm)
    if zi is None:
        return np.moveaxis(y, -1, axis)
    K = max(_shape(a)[0], _shape(b)[0]) - 1
    zi = np.moveaxis(_as_array(zi), axis, -1) if len(_shape(zi)) == nd else _as_array(zi)
    want = _shape(xm)[:-1] + (K,)
    if _shape(zi) != want:
        raise ValueError(f"lfilter: zi must have x's shape with axis {axis} of length {K} "
                         f"(max(len(a), len(b)) - 1), got {_shape(zi)}")
    n = _shape(xm)[-1]
    an, bn = a / a[0], b / a[0]
    # the initial delays are an extra input at the first K samples: A y = B x + zi
    e = zi[..., :n] if n <= K else np.concatenate(
        [zi, np.zeros(want[:-1] + (n - K,), np.result_type(unbox(zi), 1.0))], axis=-1)
    y = y + iir(_one(a), an, e)
    ap = np.concatenate([an, np.zeros(K + 1 - _shape(a)[0])]) if _shape(a)[0] < K + 1 else an
    bp = np.concatenate([bn, np.zeros(K + 1 - _shape(b)[0])]) if _shape(b)[0] < K + 1 else bn
    zf = []
    for i in range(K):  # zf[i] = Σ_{j>i} b[j] x[n+i-j] - a[j] y[n+i-j], plus unused zi
        js = np.arange(i + 1, min(K, n + i) + 1)
        t = n + i - js
        z = xm[..., t] @ bp[js] - y[..., t] @ ap[js]
        if n + i < K:
            z = z + zi[..., n + i]
        zf.append(z)
    return np.moveaxis(y, -1, axis), np.moveaxis(np.stack(zf, axis=-1), -1, axis)
