"""Pytrees: nested tuples, lists and dicts of arrays, flattened to a list of leaves.

    >>> from dualgrad import tree_flatten, tree_unflatten
    >>> leaves, treedef = tree_flatten({"w": 1.0, "b": (2.0, 3.0)})
    >>> leaves
    [2.0, 3.0, 1.0]
    >>> tree_unflatten(treedef, [10.0, 20.0, 30.0])
    {'b': (10.0, 20.0), 'w': 30.0}

Dict keys are visited in sorted order (as in JAX); ``None`` is an empty subtree.
Frozen dataclasses are pytrees of their fields; any other class becomes one with
``register_dataclass`` or ``register_pytree_node`` (JAX's names and signatures):

    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class Params:
    ...     w: float
    ...     b: float
    >>> tree_flatten(Params(1.0, 2.0))[0]
    [1.0, 2.0]
"""

import dataclasses

import numpy as np

LEAF = "leaf"
LEAF_DEF = (LEAF,)
# classes whose instances are leaves without a look (tree_flatten's fast path); every box
# class joins it as it is defined (core/trace.py Box.__init_subclass__)
_LEAF_TYPES = {float, int, np.ndarray, np.float64, np.float32}
_NODES = {}  # registered class -> (flatten: x -> (children, aux), unflatten: (aux, children) -> x)


def register_pytree_node(nodetype, flatten_func, unflatten_func):
    """Make ``nodetype`` a pytree: ``flatten_func(x) -> (children, aux_data)`` and
    ``unflatten_func(aux_data, children) -> x`` (as ``jax.tree_util``)."""
    _NODES[nodetype] = (flatten_func, unflatten_func)
    return nodetype


def register_dataclass(nodetype, data_fields=None, meta_fields=()):
    """Make a dataclass a pytree: ``data_fields`` (default: every field not in
    ``meta_fields``) are its children; ``meta_fields`` are kept as static data.
    Usable as a decorator.

    >>> @register_dataclass
    ... @dataclasses.dataclass
    ... class State:
    ...     x: float
    ...     steps: int = 0
    >>> tree_flatten(State(0.5))[0]
    [0.5, 0]
    """
    if data_fields is None:
        data_fields = [f.name for f in dataclasses.fields(nodetype) if f.name not in meta_fields]
    data_fields, meta_fields = tuple(data_fields), tuple(meta_fields)

    def flatten(x):
        return [getattr(x, k) for k in data_fields], tuple(getattr(x, k) for k in meta_fields)

    def unflatten(aux, children):
        return nodetype(**dict(zip(data_fields, children)), **dict(zip(meta_fields, aux)))
    return register_pytree_node(nodetype, flatten, unflatten)


def _node(x):
    """(flatten, unflatten) if ``x`` is a registered node or a frozen dataclass."""
    rules = _NODES.get(type(x))
    if rules is None and dataclasses.is_dataclass(x) and not isinstance(x, type) \
            and x.__dataclass_params__.frozen:
        rules = register_dataclass(type(x)) and _NODES[type(x)]
    return rules


def leaf_class(cls):
    """Declare every instance of ``cls`` a leaf (a traced value's box class): tree_flatten
    takes it as one without looking for a registered node."""
    _LEAF_TYPES.add(cls)


def tree_flatten(tree):
    """``(leaves, treedef)``: the leaves of a pytree (tuples, lists, dicts, registered
    nodes; anything else is a leaf) in order, and its structure.

    >>> leaves, treedef = tree_flatten({"b": (1, 2), "a": [3]})
    >>> leaves
    [3, 1, 2]
    """
    if tree.__class__ in _LEAF_TYPES:  # fast path: a single array or number
        return [tree], LEAF_DEF
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
        rules = _node(x) if not isinstance(x, (np.ndarray, float, int)) else None
        if rules is not None:
            children, aux = rules[0](x)
            return ("node", (type(x), aux), [walk(v) for v in children])
        leaves.append(x)
        return (LEAF,)

    return leaves, walk(tree)


def tree_unflatten(treedef, leaves):
    """The pytree of structure ``treedef`` with ``leaves`` in order (the inverse of
    ``tree_flatten``).

    >>> leaves, treedef = tree_flatten((1, [2, 3]))
    >>> tree_unflatten(treedef, [x * 10 for x in leaves])
    (10, [20, 30])
    """
    if treedef is LEAF_DEF:
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
        if kind == "node":
            cls, aux = d[1]
            return _NODES[cls][1](aux, [build(c) for c in d[2]])
        children = [build(c) for c in d[2]]
        return d[1](*children) if kind == "namedtuple" else d[1](children)

    return build(treedef)


def tree_map(f, tree, *rest):
    """``f`` applied to each leaf of ``tree`` (and the matching leaves of ``rest``, trees
    of the same structure), in a tree of the same structure.

    >>> tree_map(lambda x, y: x + y, {"a": 1, "b": (2, 3)}, {"a": 10, "b": (20, 30)})
    {'a': 11, 'b': (22, 33)}
    """
    leaves, treedef = tree_flatten(tree)
    others = [tree_flatten(r)[0] for r in rest]
    return tree_unflatten(treedef, [f(x, *ys) for x, *ys in zip(leaves, *others)])


def tree_structure(tree):
    """The structure of a pytree (``tree_flatten``'s treedef), leaves left out.

    >>> tree_structure((1, [2, 3])) == tree_structure((0, [0, 0]))
    True
    """
    return tree_flatten(tree)[1]
