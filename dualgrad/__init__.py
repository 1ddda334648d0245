"""dualgrad: forward- and reverse-mode automatic differentiation of numpy code.

    >>> import numpy as np, dualgrad as dg
    >>> f = lambda x1, x2: np.log(x1) + x1 * x2 - np.sin(x2)
    >>> dg.grad(f)(2.0, 5.0)
    5.5

Forward mode is dual numbers (``forward.py``), reverse mode a Wengert list
(``reverse.py``); both share one table of primitives (``primitives.py``), and
the transforms (``transforms.py``) nest in any order.
"""

from . import tracetable as _tracetable  # noqa: F401  (print(tape): the trace table)
from .backend.devices import device_get, device_put
from .compiler.api import jit
from .core import tree as tree  # dg.tree: pytrees (register_dataclass, ...)
from .core.tree import tree_flatten, tree_map, tree_unflatten
from .numpy import api as _numpy_api  # noqa: F401  (attaches numpy support to boxes)
from .numpy import (
    linalg as linalg,  # dg.linalg: eigh/svd/qr/eig/pinv rows, expm, ...
)
from .numpy import (
    nn,  # the functional layer; its rows join the primitive table
)
from .numpy import tail as _numpy_tail  # noqa: F401  (diff, median, fft, ...)
from .symbolic import symcheck
from .transforms.batching import vmap
from .transforms.check import check_grads, check_jvp, check_vjp, numerical_jacobian
from .transforms.custom import custom_jvp, custom_vjp, stop_gradient
from .transforms.derivatives import (
    grad,
    hessian,
    hvp,
    jacfwd,
    jacrev,
    jvp,
    linearize,
    value_and_grad,
    vjp,
)
from .transforms.forward import Dual
from .transforms.reverse import Tape

try:  # scipy is optional: with it, scipy.special's ufuncs join the primitive table
    import scipy.special as _scipy_special  # noqa: F401
except ImportError:
    pass
else:
    from . import scipy_special  # noqa: F401  # optional: only when scipy imports

__version__ = "0.1.0"

__all__ = [
    "Dual", "Tape", "check_grads", "check_jvp", "check_vjp", "custom_jvp", "custom_vjp",
    "grad", "hessian", "hvp", "jacfwd", "jit", "jacrev", "jvp", "linearize", "numerical_jacobian",
    "stop_gradient", "tree_flatten", "tree_map", "tree_unflatten", "value_and_grad", "vjp",
    "nn", "symcheck", "vmap", "device_get", "device_put",
]
