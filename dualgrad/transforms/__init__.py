"""The transforms users call, with JAX's signatures, and the two modes under them.

- ``forward``: dual numbers (``Dual``, ``JVPTrace``);
- ``reverse``: the Wengert list (``Tape``, ``Node``) and its backward sweep;
- ``derivatives``: ``grad``, ``jvp``, ``vjp``, ``jacfwd``, ``jacrev``, ``hessian``, ``hvp``;
- ``batching``: ``vmap``;
- ``custom``: ``custom_jvp``, ``custom_vjp``, ``stop_gradient``;
- ``check``: gradient checks against finite differences.

May import: ``core``, ``backend``, ``rules``, ``numpy`` and ``compiler``.
"""

from .batching import vmap
from .check import check_grads, check_jvp, check_vjp, numerical_jacobian
from .custom import custom_jvp, custom_vjp, stop_gradient
from .derivatives import grad, hessian, hvp, jacfwd, jacrev, jvp, linearize, value_and_grad, vjp
from .forward import Dual
from .reverse import Tape

__all__ = ["Dual", "Tape", "check_grads", "check_jvp", "check_vjp", "custom_jvp", "custom_vjp",
           "grad", "hessian", "hvp", "jacfwd", "jacrev", "jvp", "linearize",
           "numerical_jacobian", "stop_gradient", "value_and_grad", "vjp", "vmap"]
