"""Teaching and checking: what shows how autodiff works.

- ``tracetable``: a tape printed as the evaluation and adjoint traces of the literature;
- ``expression``: scalar expressions read safely from text (a whitelist, never ``eval``);
- ``symbolic``: the sympy referee (``dg.symcheck``), ``from_sympy``;
- ``timing``: ``median_time``, the timing the tutorials and bench share;
- ``cli``: ``python -m dualgrad``.

May import: every layer below.
"""
