"""The primitive table, as a package: one row per primitive, by family.

A row (``defprim``, ``defunary``, ``defbinary`` in ``table``) names a function on raw
arrays and its derivative rules: the JVP (forward mode), the VJP (reverse mode), the
batching rule (``dg.vmap``), the dtype rule and the scalar form the compiler fuses.  Every
derivative dualgrad knows is written once, in a row here.

May import: ``core`` and ``backend`` (never the numpy surface, the compiler or the
transforms above).
"""

from . import fft as fft  # noqa: F401  (the FFT rows)
from . import linalg as linalg  # noqa: F401  (the decompositions)
from . import nn as nn  # noqa: F401  (softmax, logsumexp, conv2d)
from . import table as table  # noqa: F401
from .table import TABLE as TABLE  # noqa: F401  (every row, by name)

# special (scipy.special's rows) needs scipy, an optional dependency: dualgrad.scipy
# imports it.
