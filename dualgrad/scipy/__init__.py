"""``dualgrad.scipy``: scipy's functions on traced values (needs scipy).

Mirrors scipy's module names and signatures; each submodule is imported on first use
(``dualgrad.scipy.stats``, ``from dualgrad.scipy import integrate``), so importing one
does not pay for the others:

- ``special``: scipy.special's ufuncs as rows, ``logsumexp``, ``softmax``, ``norm``.
- ``stats``, ``integrate``, ``optimize``, ``signal``, ``linalg``, ``sparse``: as scipy's.

May import: every layer below (``core`` to ``transforms``).
"""

import importlib

from . import errors as errors  # noqa: F401  (scipy's refusals name the drop-in)
from . import special as special  # noqa: F401

_SUBMODULES = ("stats", "integrate", "optimize", "signal", "linalg", "sparse")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
