"""``dualgrad.scipy``: scipy's functions on traced values (needs scipy).

- ``special``: scipy.special's ufuncs as rows, ``logsumexp``, ``softmax``, ``norm``.

May import: every layer below (``core`` to ``transforms``).
"""

from . import special as special  # noqa: F401
