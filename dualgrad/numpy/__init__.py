"""The numpy surface on traced values.

What makes ``np.sin(x)``, ``x @ w``, ``x[i] = v`` and ``np.linalg.solve(a, b)`` work when
``x`` is traced.  Each function here is built from rows of ``rules``:

- ``dispatch``: how numpy reaches dualgrad (``__array_ufunc__``, ``__array_function__``,
  ``HANDLED`` and ``@implements``), the functions computed on raw values, and the errors;
- ``box``: ``ArrayBox``, the base class of every traced value: operators, methods,
  attributes and the numpy protocols;
- ``indexing`` (``x[i]``), ``inplace`` (``x[i] = v``, ``x += y``, ``np.add.at``) and
  ``objects`` (``np.array([x, y])`` of traced values: object arrays, packed back);
- numpy's functions by concept: ``shapes`` (and joining, splitting), ``elementwise``
  (``where``, ``clip``, ``astype``, complex parts), ``reductions``, ``gather`` (moving
  entries: ``roll``, ``take``, ``sort``, ``pad``...), ``statistics``, ``products``
  (``einsum``, ``dot``...), ``linalg`` (every ``np.linalg`` function; also ``dg.linalg``),
  ``creation`` (``*_like``, ``linspace``...), ``differences`` (``diff``, ``gradient``,
  ``interp``...), ``polynomials`` (and ``convolve``), ``fft``;
- ``nn``: the functional layer ``dg.nn`` (``softmax``, ``logsumexp``, ``conv2d``...).

Importing this package registers every function (``HANDLED``) and the object trace.

May import: ``core``, ``backend`` and ``rules``.
"""

from . import box as box  # noqa: F401  (ArrayBox, the base class of every traced value)
from . import creation as creation  # noqa: F401
from . import differences as differences  # noqa: F401
from . import dispatch as dispatch  # noqa: F401
from . import elementwise as elementwise  # noqa: F401
from . import fft as fft  # noqa: F401
from . import gather as gather  # noqa: F401
from . import indexing as indexing  # noqa: F401
from . import inplace as inplace  # noqa: F401
from . import linalg as linalg  # noqa: F401
from . import nn as nn  # noqa: F401
from . import objects as objects  # noqa: F401  (the object trace: core's OBJECTS[0])
from . import polynomials as polynomials  # noqa: F401
from . import products as products  # noqa: F401
from . import reductions as reductions  # noqa: F401
from . import shapes as shapes  # noqa: F401
from . import statistics as statistics  # noqa: F401
