"""dualgrad: forward- and reverse-mode automatic differentiation of numpy code.

    >>> import numpy as np, dualgrad as dg
    >>> f = lambda x1, x2: np.log(x1) + x1 * x2 - np.sin(x2)
    >>> dg.grad(f)(2.0, 5.0)
    5.5

Forward mode is dual numbers (``transforms/forward.py``), reverse mode a Wengert list
(``transforms/reverse.py``); both share one table of primitives (``rules/``), and the
transforms (``transforms/derivatives.py``) nest in any order.  The layers are folders:
core < backend < rules < numpy < compiler < transforms < scipy < teach.
"""

from .backend.devices import device_get, device_put
from .compiler import jit
from .core import tree as tree  # dg.tree: pytrees (register_dataclass, ...)
from .core.tree import tree_flatten, tree_map, tree_unflatten
from .numpy import linalg as linalg  # dg.linalg: eigh/svd/qr/eig/pinv rows, expm, ...
from .numpy import nn as nn  # dg.nn: the functional layer (softmax, logsumexp, conv, ...)
from .teach import symbolic as symbolic  # dg.symbolic: the sympy referee
from .teach import tracetable as _tracetable  # noqa: F401  (print(tape): the trace table)
from .teach.symbolic import symcheck
from .transforms import (
    Dual,
    Tape,
    check_grads,
    check_jvp,
    check_vjp,
    custom_jvp,
    custom_vjp,
    grad,
    hessian,
    hvp,
    jacfwd,
    jacrev,
    jvp,
    linearize,
    numerical_jacobian,
    stop_gradient,
    value_and_grad,
    vjp,
    vmap,
)
from .transforms.implicit import custom_root, implicit  # dg.custom_root/dg.implicit: roots

try:  # scipy is optional: with it, scipy.special's ufuncs join the primitive table
    import scipy.special as _scipy_special  # noqa: F401
except ImportError:
    pass
else:
    from . import scipy as scipy  # noqa: F401  # optional: only when scipy imports
    from .scipy import special as scipy_special  # noqa: F401  # optional: scipy, as above

__version__ = "0.1.0"

__all__ = [
    "Dual", "Tape", "check_grads", "check_jvp", "check_vjp", "custom_jvp", "custom_vjp",
    "grad", "hessian", "hvp", "jacfwd", "jit", "jacrev", "jvp", "linearize", "numerical_jacobian",
    "stop_gradient", "tree_flatten", "tree_map", "tree_unflatten", "value_and_grad", "vjp",
    "nn", "symcheck", "vmap", "device_get", "device_put",
    "custom_root", "implicit",
]
