"""Moving pytrees between host memory (numpy) and the GPU (CuPy): ``dg.device_put`` and
``dg.device_get``, as in JAX.

A device array is a CuPy ``ndarray``; numpy code runs on it unchanged (NEP 13/18), and
the backend's CUDA module (``backend/cuda.py``) runs dualgrad's kernels on it.  CuPy is
optional: ``pip install "dualgrad[cuda]"``.

    >>> import numpy as np, dualgrad as dg
    >>> tree = dg.device_get({"w": np.ones(2), "b": 0.5})
    >>> tree["w"].tolist(), tree["b"]
    ([1.0, 1.0], 0.5)
"""

import sys

import numpy as np

from ..core.tree import tree_map
from . import cuda as _cuda

DEVICES = ("cpu", "cuda")
_NUMBERS = (bool, int, float, complex, np.generic)


def _cupy():
    """CuPy with at least one device, or an error saying what is missing."""
    cp = _cuda.array_module()  # ImportError naming dualgrad[cuda] if CuPy is missing
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # CuPy's CUDARuntimeError when there is no driver
        raise RuntimeError(f"dg.device_put(x, 'cuda'): CuPy is installed but finds no CUDA "
                           f"device ({type(e).__name__}: {e})") from e
    if count < 1:
        raise RuntimeError("dg.device_put(x, 'cuda'): CuPy is installed but finds no CUDA device")
    return cp


def _to_host(leaf):
    cp = sys.modules.get("cupy")  # no CuPy array exists unless cupy was imported
    if cp is not None and isinstance(leaf, cp.ndarray):
        return cp.asnumpy(leaf)
    if _cuda.is_device_array(leaf) and hasattr(leaf, "copy_to_host"):  # numba's arrays
        return leaf.copy_to_host()
    return leaf


def device_put(tree, device="cuda"):
    """``tree`` with every array and number leaf on ``device``: ``"cuda"`` (CuPy arrays; a
    number becomes a 0-d array) or ``"cpu"`` (numpy arrays, as :func:`device_get`).
    Other leaves are returned as they are.

    >>> device_put([np.zeros(1)], "cpu")[0].tolist()
    [0.0]
    """
    if device not in DEVICES:
        raise ValueError(f"device_put: device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return device_get(tree)
    cp = _cupy()

    def put(leaf):
        if isinstance(leaf, (np.ndarray, *_NUMBERS)) or isinstance(leaf, cp.ndarray):
            return cp.asarray(leaf)
        return leaf
    return tree_map(put, tree)


def device_get(tree):
    """``tree`` with every device-array leaf copied to a numpy array; others unchanged.

    >>> device_get((1.0, np.arange(2)))[1].tolist()
    [0, 1]
    """
    return tree_map(_to_host, tree)
