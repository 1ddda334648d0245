"""The numpy surface on traced values.

What makes ``np.sin(x)``, ``x @ w``, ``x[i] = v`` and ``np.linalg.solve(a, b)`` work when
``x`` is traced: the Box's operators and methods, numpy's functions and ufuncs (through
``__array_function__`` and ``__array_ufunc__``), ``np.linalg`` (also ``dg.linalg``), the
functional layer ``dg.nn``, object arrays of traced values and in-place updates.  Each
function here is built from rows of ``rules``.

May import: ``core``, ``backend`` and ``rules``.
"""

from . import api as api  # noqa: F401  (attaches numpy support to boxes)
from . import linalg as linalg  # noqa: F401
from . import nn as nn  # noqa: F401
from . import tail as tail  # noqa: F401
