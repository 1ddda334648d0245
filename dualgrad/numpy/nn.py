"""``dg.nn``: the functional neural-network layer, with PyTorch's semantics and layouts.

    >>> import numpy as np, dualgrad as dg
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 2, 2))
    >>> dg.nn.max_pool2d(dg.nn.conv2d(x, w), 3).tolist()
    [[[[50.0]]]]
    >>> float(dg.grad(lambda w: dg.nn.conv2d(x, w).sum())(w)[0, 0, 0, 0])
    45.0

Four rows of the primitive table (``rules/nn.py``) are computed by backend kernels
(``dualgrad.backend``): ``softmax``, ``log_softmax``, ``logsumexp`` and ``conv2d``.
Their derivative rules are written with primitives, so they differentiate again; a
first-order reverse sweep (nothing traced) takes the fused backend kernel instead.
The rest are compositions of existing primitives: ``max_pool2d`` is a gather at the
window maxima (its VJP a scatter-add), ``relu`` a ``where``, ``softplus`` a ``logaddexp``.
"""

import math

import numpy as np

from .. import backend
from .. import rules as P
from ..core.trace import unbox
from ..rules import ndim_of, shape_of
from ..rules import normalize_axes as _axes
from ..rules.nn import Geometry, conv2d_p, log_softmax_p, logsumexp_p, softmax_p

__all__ = ["conv2d", "cross_entropy", "log_softmax", "logsumexp", "max_pool2d", "relu",
           "sigmoid", "softmax", "softplus"]


def _axis(axis, nd, what):
    """A single axis as a negative int (valid with leading batch axes too)."""
    if not isinstance(axis, (int, np.integer)):
        raise ValueError(f"{what}: axis must be an int, got {axis!r}")
    return _axes(axis, nd, f"{what}: axis")[0]


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis``, stable for large inputs.

    >>> import numpy as np, dualgrad as dg
    >>> dg.nn.softmax(np.array([1000.0, 1000.0])).tolist()
    [0.5, 0.5]
    """
    return softmax_p(x, axis=_axis(axis, ndim_of(unbox(x)), "softmax"))


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along ``axis``, stable for large inputs.

    >>> import numpy as np, dualgrad as dg
    >>> dg.nn.log_softmax(np.array([0.0, np.log(3.0)])).round(6).tolist()
    [-1.386294, -0.287682]
    """
    return log_softmax_p(x, axis=_axis(axis, ndim_of(unbox(x)), "log_softmax"))


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over ``axis`` (all axes when None), stable for large inputs.

    >>> import numpy as np, dualgrad as dg
    >>> float(dg.nn.logsumexp(np.array([1000.0, 1000.0])))
    1000.6931471805599
    >>> dg.grad(dg.nn.logsumexp)(np.array([1000.0, 1000.0])).tolist()
    [0.5, 0.5]
    """
    return logsumexp_p(x, axis=_axes(axis, ndim_of(unbox(x)), "logsumexp: axis"),
                       keepdims=bool(keepdims))


# ---------------------------------------------------------------------------
# conv2d (a row of the table) and max_pool2d (a gather)
# ---------------------------------------------------------------------------

def conv2d(x, w, b=None, stride=1, padding=0, dilation=1):
    """2-D convolution (cross-correlation, as PyTorch): x (N, C, H, W), w (C_out, C, kH,
    kW), optional bias b (C_out,) -> (N, C_out, H_out, W_out).  ``stride``, ``padding``
    (zeros) and ``dilation`` are ints or (h, w) pairs.

    >>> import numpy as np, dualgrad as dg
    >>> dg.nn.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), b=np.array([0.5]),
    ...              padding=1)[0, 0].tolist()
    [[1.5, 2.5, 2.5, 1.5], [2.5, 4.5, 4.5, 2.5], [2.5, 4.5, 4.5, 2.5], [1.5, 2.5, 2.5, 1.5]]
    """
    xs, ws = shape_of(unbox(x)), shape_of(unbox(w))
    if len(xs) != 4:
        raise ValueError(f"conv2d: x must be (N, C, H, W), got shape {xs}")
    if len(ws) != 4:
        raise ValueError(f"conv2d: w must be (C_out, C_in, kH, kW), got shape {ws}")
    geo = Geometry(xs, ws, stride, padding, dilation)
    out = conv2d_p(x, w, geo=geo)
    if b is not None:
        if shape_of(unbox(b)) != (ws[0],):
            raise ValueError(f"conv2d: b must have shape ({ws[0]},), got {shape_of(unbox(b))}")
        out = P.add(out, P.reshape(b, (ws[0], 1, 1)))
    return out


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over ``kernel_size`` windows of the last two axes (PyTorch semantics: stride
    defaults to kernel_size, padding counts as -inf, floor mode).  The gradient flows to
    the first maximum of each window.

    >>> import numpy as np, dualgrad as dg
    >>> x = np.array([[[[1.0, 3.0], [2.0, 0.0]]]])
    >>> dg.grad(lambda x: dg.nn.max_pool2d(x, 2).sum())(x)[0, 0].tolist()
    [[0.0, 1.0], [0.0, 0.0]]
    """
    raw = np.asarray(unbox(x))
    if raw.ndim < 2:
        raise ValueError(f"max_pool2d: x must have at least 2 axes (..., H, W), got {raw.shape}")
    _, arg = backend.max_pool2d(raw, kernel_size, stride, padding)
    lead, (Ho, Wo) = raw.shape[:-2], arg.shape[-2:]
    planes = math.prod(lead)
    flat = P.reshape(x, (planes, raw.shape[-2] * raw.shape[-1]))
    rows = np.arange(planes)[:, None]
    out = P.getitem(flat, (rows, arg.reshape(planes, Ho * Wo)))
    return P.reshape(out, lead + (Ho, Wo))


# ---------------------------------------------------------------------------
# activations and the loss
# ---------------------------------------------------------------------------

def relu(x):
    """max(x, 0), with derivative 0 at 0 (as PyTorch).

    >>> import numpy as np, dualgrad as dg
    >>> dg.grad(lambda x: dg.nn.relu(x).sum())(np.array([-1.0, 0.0, 2.0])).tolist()
    [0.0, 0.0, 1.0]
    """
    return P.where(np.greater(x, 0), x, 0.0)  # a graph node under dg.jit, not a guard


def sigmoid(x):
    """1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2 so it never overflows.

    >>> import dualgrad as dg
    >>> float(dg.nn.sigmoid(0.0)), float(dg.grad(dg.nn.sigmoid)(0.0))
    (0.5, 0.25)
    """
    return P.multiply(0.5, P.add(P.tanh(P.multiply(0.5, x)), 1.0))


def softplus(x):
    """log(1 + exp(x)), stable for large |x| (a ``logaddexp(x, 0)``).

    >>> import dualgrad as dg
    >>> float(dg.nn.softplus(1000.0)), float(dg.grad(dg.nn.softplus)(1000.0))
    (1000.0, 1.0)
    """
    return P.logaddexp(x, 0.0)


def cross_entropy(logits, target, reduction="mean"):
    """Cross-entropy of ``logits`` (N, C) against ``target``: class indices (N,) of
    integers, or class probabilities (N, C) of floats, as PyTorch's ``cross_entropy``.
    ``reduction``: "mean" (over N), "sum" or "none".

    >>> import numpy as np, dualgrad as dg
    >>> logits = np.array([[2.0, 0.0], [0.0, 2.0]])
    >>> round(float(dg.nn.cross_entropy(logits, np.array([0, 1]))), 6)
    0.126928
    """
    ls = shape_of(unbox(logits))
    if len(ls) != 2:
        raise ValueError(f"cross_entropy: logits must be (N, C), got shape {ls}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', "
                         f"got {reduction!r}")
    logp = log_softmax(logits, axis=-1)
    t = unbox(target)
    kind = (t.dtype if backend.dask.is_dask_array(t) else np.asarray(t).dtype).kind
    if kind in "iu" and backend.dask.is_dask_array(t):  # lazy: a one-hot product, and no
        if t.shape != ls[:1]:                           # range check (it would compute)
            raise ValueError(f"cross_entropy: integer target must be ({ls[0]},), got {t.shape}")
        onehot = (t[:, None] == np.arange(ls[1])).astype(P.float_dtype(logits))
        per = P.negative(P.sum_(P.multiply(onehot, logp), axis=(-1,), keepdims=False))
    elif kind in "iu":
        t = np.asarray(t)
        if t.shape != ls[:1]:
            raise ValueError(f"cross_entropy: integer target must be ({ls[0]},), got {t.shape}")
        if t.size and (t.min() < 0 or t.max() >= ls[1]):
            raise ValueError(f"cross_entropy: target classes must be in [0, {ls[1]}), got "
                             f"{t.min()}..{t.max()}")
        per = P.negative(P.getitem(logp, (np.arange(ls[0]), t)))
    elif kind == "f":
        if shape_of(t) != ls:
            raise ValueError(f"cross_entropy: probability target must be {ls}, "
                             f"got {shape_of(t)}")
        per = P.negative(P.sum_(P.multiply(target, logp), axis=(-1,), keepdims=False))
    else:
        raise TypeError(f"cross_entropy: target must hold integer classes or float "
                        f"probabilities, got dtype {np.asarray(t).dtype}")
    if reduction == "none":
        return per
    total = P.sum_(per, axis=(-1,), keepdims=False)
    return P.divide(total, float(ls[0])) if reduction == "mean" else total
