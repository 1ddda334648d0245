"""numba kernels on raw arrays -- installed as ``dualgrad.kernels``.

Nothing here knows about autodiff: arrays in, arrays out, and outputs are
preallocated by the caller (``dualgrad.backend.numba_ops``, the only module that calls
these).  Every kernel is ``@njit(cache=True)`` and serial; the elementwise maps, the
softmax rows and im2col/col2im also have a ``parallel=True`` twin (``prange`` over
independent elements, rows or image planes, so bitwise the same result), which the
backend runs only where it was measured faster than the serial kernel with the calling
thread's numba thread count (``dualgrad.backend.numba_ops``): with one thread a twin
never runs.  The scatter-adds and max pooling have none (the scatters would race).
``njit`` here is ``diskcache.njit``: numba's cache kept in dualgrad's cache folder (never
``__pycache__`` beside this source), checked, and rebuilt when damaged.
``NUMBA_DISABLE_JIT=1`` runs them all as plain Python, for debugging.

    elementwise  compile_unary(f, df): fused value + derivative maps; forward mode's
                 tangent loops (product rule, square, a plain array's scale)
    scatter      index_add_rows: the scatter-add behind the VJP of a gather; sum_slices:
                 overlapping slices' cotangents summed a row at a time
    softmax      softmax / log_softmax / logsumexp rows and their VJPs
    conv         im2col / col2im around BLAS, max_pool2d forward and backward
    diskcache    numba's disk cache for these and for dg.jit's generated kernels
"""

from . import conv, elementwise, scatter, softmax

__all__ = ["conv", "elementwise", "scatter", "softmax"]
