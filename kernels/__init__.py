"""numba kernels on raw arrays -- installed as ``dualgrad.kernels``.

Nothing here knows about autodiff: arrays in, arrays out, and outputs are
preallocated by the caller (``dualgrad.backend.numba_ops``, the only module that calls
these).  Every kernel is ``@njit(cache=True)``, serial: measured on the
project's workloads, ``parallel=True`` did not pay for itself with one thread.
``NUMBA_DISABLE_JIT=1`` runs them all as plain Python, for debugging.

    elementwise  compile_unary(f, df): fused value + derivative maps
    scatter      index_add_rows: the scatter-add behind the VJP of a gather
    softmax      softmax / log_softmax / logsumexp rows and their VJPs
    conv         im2col / col2im around BLAS, max_pool2d forward and backward
"""

from . import conv, elementwise, scatter, softmax

__all__ = ["conv", "elementwise", "scatter", "softmax"]
