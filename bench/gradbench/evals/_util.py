"""Small helpers shared by the eval modules."""

import numpy as np

import dualgrad as dg


def array(x):
    """A float64 numpy array from JSON lists."""
    return np.asarray(x, dtype=np.float64)


def logsumexp(v, axis=None):
    """log(sum(exp(v))) by the max trick, from primitive operations.

    The shift by the maximum cancels exactly in the derivative, so it is held
    constant (``stop_gradient``), as JAX's ``logsumexp`` does.
    """
    m = dg.stop_gradient(np.max(v, axis=axis, keepdims=True))
    s = np.log(np.sum(np.exp(v - m), axis=axis, keepdims=True)) + m
    return s.reshape(()) if axis is None else np.squeeze(s, axis=axis)


def tolist(x):
    return np.asarray(x, dtype=np.float64).tolist()
