"""``dg.jit``: record a function's graph once, optimise it, and replay it compiled.

- ``api``: ``dg.jit`` (``Jitted``), recording (``GraphTrace``), guards, ``lower``;
- ``graph``: the graph (``Op``, ``Const``), its evaluation and replay;
- ``passes``: the optimisations, one named rewrite each;
- ``regions``: which ops fuse into one kernel;
- ``codegen``: numba kernels for the CPU (emit, load, cache, check, time);
- ``emit_cuda``: the same regions as CUDA kernels.

May import: ``core``, ``backend``, ``rules`` and ``numpy``.
"""

from .api import jit as jit  # noqa: F401
