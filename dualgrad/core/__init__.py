"""The core: traces and boxes, pytrees, argument checks, buffers.

What every layer above builds on, with no knowledge of any primitive:

- ``trace``: ``Primitive``, ``Box`` and ``Trace``, levels and ``unbox`` (how forward and
  reverse mode compose without perturbation confusion);
- ``tree``: pytrees (``tree_flatten``, ``tree_map``, registered dataclasses);
- ``validate``: argument checks with the error messages users read;
- ``buffers``: the cache of reusable output buffers for eager primitives.

May import: numpy and the standard library only (nothing else of dualgrad).
"""

from .trace import (  # noqa: F401  (dg.core.Box, dg.core.unbox, ...)
    Box,
    IndexedRules,
    Primitive,
    Trace,
    check_live,
    no_derivative,
    raw_apply,
    top_trace,
    tracing,
    unbox,
    unlift,
)
