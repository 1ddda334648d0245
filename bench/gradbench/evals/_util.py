"""Small helpers shared by the eval modules."""

import numpy as np


def array(x):
    """A float64 numpy array from JSON lists."""
    return np.asarray(x, dtype=np.float64)


def spread(f):
    """``f`` for a prepared input that is a tuple of its arguments."""
    return lambda arg: f(*arg)


def tolist(x):
    return np.asarray(x, dtype=np.float64).tolist()
