"""Teaching and checking: what shows how autodiff works.

- ``tracetable``: a tape printed as the evaluation and adjoint traces of the literature;
- ``symbolic``: the sympy referee (``dg.symcheck``) and its expression parser;
- ``cli``: ``python -m dualgrad``.

May import: every layer below.
"""
