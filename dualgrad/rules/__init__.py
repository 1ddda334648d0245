"""The primitive table, as a package: one row per primitive, by family.

A row (``defprim``, ``defunary``, ``defbinary`` in ``table``) names a function on raw
arrays and its derivative rules: the JVP (forward mode), the VJP (reverse mode), the
batching rule (``dg.vmap``), the dtype rule and the scalar form the compiler fuses.  Every
derivative dualgrad knows is written once, in a row here.

May import: ``core`` and ``backend`` (never the numpy surface, the compiler or the
transforms above).
"""

from . import table as table  # noqa: F401
from .table import TABLE as TABLE  # noqa: F401  (every row, by name)
