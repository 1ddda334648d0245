"""Pytrees: nested tuples, lists and dicts of arrays, flattened to a list of leaves.

    >>> from dualgrad.tree import tree_flatten, tree_unflatten
    >>> leaves, treedef = tree_flatten({"w": 1.0, "b": (2.0, 3.0)})
    >>> leaves
    [2.0, 3.0, 1.0]
    >>> tree_unflatten(treedef, [10.0, 20.0, 30.0])
    {'b': (10.0, 20.0), 'w': 30.0}

Dict keys are visited in sorted order (as in JAX); ``None`` is an empty subtree.
"""

import numpy as np

LEAF = "leaf"
_LEAF_DEF = (LEAF,)
_LEAF_TYPES = frozenset((float, int, np.ndarray, np.float64, np.float32))


def tree_flatten(tree):
    if tree.__class__ in _LEAF_TYPES:  # fast path: a single array or number
        return [tree], _LEAF_DEF
    leaves = []

    def walk(x):
        if isinstance(x, (tuple, list)):
            kind = "namedtuple" if hasattr(x, "_fields") else type(x)
            return (kind, type(x), [walk(v) for v in x])
        if isinstance(x, dict):
            keys = sorted(x)
            return (dict, keys, [walk(x[k]) for k in keys])
        if x is None:
            return (None,)
        leaves.append(x)
        return (LEAF,)

    return leaves, walk(tree)


def tree_unflatten(treedef, leaves):
    if treedef is _LEAF_DEF:
        return leaves[0]
    it = iter(leaves)

    def build(d):
        kind = d[0]
        if kind == LEAF:
            return next(it)
        if kind is None:
            return None
        if kind is dict:
            return {k: build(c) for k, c in zip(d[1], d[2])}
        children = [build(c) for c in d[2]]
        return d[1](*children) if kind == "namedtuple" else d[1](children)

    return build(treedef)


def tree_map(f, tree, *rest):
    leaves, treedef = tree_flatten(tree)
    others = [tree_flatten(r)[0] for r in rest]
    return tree_unflatten(treedef, [f(x, *ys) for x, *ys in zip(leaves, *others)])


def tree_structure(tree):
    return tree_flatten(tree)[1]
