"""``dg.jit``: record a function's graph once, optimise it, and replay it compiled.

In the order a call goes through them:

- ``api``: ``dg.jit`` (``Jitted``): signatures, the cache of compiled graphs, retracing;
- ``record``: recording ``f`` as a graph (``GraphTrace``), guards on what Python reads;
- ``graph``: the graph (``Op``, ``Const``), its evaluation and replay;
- ``compiled``: one recorded graph optimised, fused and replayed (``Compiled``, ``Lowered``);
- ``passes``: the optimisations, one named pass or rewrite each;
- ``fuse``: which regions run as kernels (modes, timing choice), the graph with them;
- ``regions``: which ops fuse into one kernel;
- ``loops``: a region as one loop, written once for every target (``Loop``, ``Target``);
- ``emit_cpu``: the loop as a numba ``@njit`` kernel;
- ``emit_cuda``: the loop as a ``@cuda.jit`` kernel and its launcher;
- ``kernel``: a kernel source loaded (checked disk cache), checked and timed.

May import: ``core``, ``backend``, ``rules`` and ``numpy``.
"""

from .api import jit as jit  # noqa: F401
