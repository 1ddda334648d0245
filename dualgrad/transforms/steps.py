"""One step of the reverse sweep (reverse.py): what a Wengert-list entry sends to each of
its arguments, and how the cotangents that meet are added.

``cotangent`` applies the entry's VJP rule (or, for a fused elementwise row, multiplies by
the f'(x) recorded with it); on a first-order sweep of raw values the commonest rows' rules
are computed here as the same numpy operations without their calls (``_QUICK``), and the
first-order sweep's allocation writes cotangents into buffers nobody else holds
(core/buffers.py).  Index rows add a slice's cotangent in place into the array's whole one
(or into ``slices.Blocks``' dense part) instead of the rule's scatter into zeros.
"""

import numpy as np

from ..core import buffers
from ..core.trace import Box
from ..rules import (
    CHECKED,
    SCALARS,
    TABLE,
    add,
    basic_index,
    divide,
    fit_cotangent,
    index_set,
    multiply,
    negative,
    scaled_first,
    shape_of,
    sum_,
    unbroadcast,
)
from .slices import LAZY, merge_lazy

# -- one reverse step: what an entry sends to one of its arguments -------------------------

def cotangent(e, argnum, g, nb, raw, take_local=False):
    """The cotangent entry ``e`` sends to its argument ``argnum`` given its own cotangent
    ``g`` (with ``nb`` leading batch axes): f'(x) * g for a fused row on raw values (into
    f'(x)'s own buffer with ``take_local``: a sweep that will not come back), else the
    row's VJP rule; broadcasting undone, in the argument's dtype."""
    d = e.local if raw else None
    if d is not None:  # a fused unary row: one multiply
        if take_local and g.__class__ is np.ndarray and g.shape == d.shape \
                and g.dtype == d.dtype:
            e.local = None
            return np.multiply(g, d, out=d)
        return np.multiply(g, d)
    prim = e.prim
    quick = _QUICK.get(prim) if raw and not nb else None
    if quick is not None and (c := quick(e, argnum, g)) is not None:
        return c
    rules = prim.vjp
    rule = rules[argnum] if rules is not None else None
    if rule is None:
        raise TypeError(f"{prim.name!r} is not differentiable with respect to argument "
                        f"{argnum} (no VJP rule)")
    args = e.args
    c = rule(g, e.ans, *args, **e.kw) if e.kw else rule(g, e.ans, *args)
    x = args[argnum]
    cc = c.__class__
    if cc is x.__class__:  # the common cases, nothing to fit: said here, not in a call
        if cc is np.ndarray:
            if c.dtype is x.dtype and c.shape == x.shape:
                return c
        elif cc in SCALARS:
            return c
    return fit(c, x, prim.bcast, nb)


def _fitted(c, x, bcast):
    """``fit(c, x, bcast, 0)``, with its common cases (nothing to fit) said first."""
    cc = c.__class__
    if cc is x.__class__:
        if cc is np.ndarray:
            if c.dtype is x.dtype and c.shape == x.shape:
                return c
        elif cc in SCALARS:
            return c
    return fit(c, x, bcast, 0)


# -- the rules of the commonest rows on small raw values, without their calls --------------
# On a first-order sweep of raw values (no batch axes) these compute what the row's VJP rule
# computes, as the same numpy operations on the same values, for the cases they recognise
# (else None: the rule), fitted to the argument as ``cotangent`` fits the rule's.  Each
# checks that its row still has the rules it stands for.  The sweep calls them first.

def _small(v):
    """A number or an array under ``buffers.LARGE``: where the quick VJPs compute on raw
    values (larger ones go through the rules, which reuse buffers)."""
    c = v.__class__
    return (c is np.ndarray and v.nbytes < buffers.LARGE) or c in SCALARS


def _quick_forms(e, argnum, g):
    """An elementwise row's VJP from its form (rules/table.py ``vjp_of``) on small values:
    ``g`` for "id", ``-g`` for "neg", ``g * f(ans, *args)`` for ("mul", f) and
    ``g / f(ans, *args)`` for ("div", f) (where ``negative``, ``multiply`` and ``divide`` on
    raw values are their impls); None for anything else."""
    prim = e.prim
    how = prim.forms
    if how is None or how[1] is not prim.vjp or e.kw:
        return None
    if not _small(g):
        return None
    form = how[0][argnum]
    if form == "id":
        return _fitted(g, e.args[argnum], prim.bcast)
    if form == "neg":
        return _fitted(negative.impl(g), e.args[argnum], prim.bcast)
    kind, f = form
    d = f(e.ans, *e.args)
    if d.__class__ is tuple:  # (c, v): c * v, c a power of two (rules' times_local)
        k, v = d
        if not _small(v):
            return None
        if scaled_first(g, v):
            return _fitted(multiply.impl(multiply.impl(g, k), v), e.args[argnum], prim.bcast)
        d = multiply.impl(v, k)
    if _small(d):
        c = multiply.impl(g, d) if kind == "mul" else divide.impl(g, d)
        return _fitted(c, e.args[argnum], prim.bcast)
    return None


def _quick_add(e, argnum, g):
    """add's VJP, ``g`` for each argument (its forms, "id"), fitted."""
    if add.vjp is not _ADD_VJP or e.kw:
        return None
    if not _small(g):
        return None
    return _fitted(g, e.args[argnum], True)


def _quick_multiply(e, argnum, g):
    """multiply's VJP, ``g * y`` for x and ``g * x`` for y (its forms), on small values
    (where ``multiply`` on raw values is its impl), fitted."""
    if multiply.vjp is not _MUL_VJP or e.kw:
        return None
    if not _small(g):
        return None
    args = e.args
    d = args[1 - argnum]
    if _small(d):
        return _fitted(multiply.impl(g, d), args[argnum], True)
    return None


def _whole_sum(e, g):
    """Whether ``e`` is a sum of a whole small array to a number and ``g``, its cotangent,
    a number of the array's dtype."""
    kw, x = e.kw, e.args[0]
    if x.__class__ is not np.ndarray or x.nbytes >= buffers.LARGE or sum_.vjp is not _SUM_VJP \
            or not kw or kw.get("keepdims") or len(kw.get("axis") or ()) != x.ndim:
        return False
    gc = g.__class__
    if gc is np.ndarray:
        return not g.ndim and g.dtype is x.dtype
    if gc is float:
        return x.dtype is _F64
    return gc in _NUMPY_SCALARS and g.dtype is x.dtype


def _quick_sum(e, argnum, g):
    """sum's VJP of a whole small array to a number: ``g`` at every entry (the rule's
    ``broadcast_to`` of g, as an array of x's own: one fill, not numpy's Python
    broadcasting); None for any other."""
    if not _whole_sum(e, g):
        return None
    x = e.args[0]
    c = np.empty(x.shape, x.dtype)
    c.fill(g)
    return c


def sum_of_product(cts, entries, i, e, g, merge):
    """``np.sum(a * b)`` on a first-order sweep: the whole-array sum (entry ``i``) of the
    product recorded just before it, which nothing else read (its cotangent is still
    empty when the sum is swept, and every later reader was swept): each factor gets
    ``g * the other`` now, and the product's step never runs (one step per output entry
    of a loop like the naive conv's, and no array of g's).  The same multiply, entry by
    entry, as the product's step computes from the sum's cotangent, merged in the same
    order (no entry lies between the two).  False otherwise."""
    j = i - 1
    if len(e.parents) != 1 or e.parents[0][1] != j or cts[j] is not None \
            or (m := entries[j]) is None or m.prim is not multiply or m.kw \
            or m.local is not None or multiply.vjp is not _MUL_VJP or not _whole_sum(e, g):
        return False
    x = e.args[0]
    a, b = m.args
    if a.__class__ is not np.ndarray or b.__class__ is not np.ndarray \
            or a.shape != x.shape or b.shape != x.shape \
            or a.dtype is not x.dtype or b.dtype is not x.dtype:
        return False
    _merge_all(cts, m.parents, [multiply.impl(g, b if argnum == 0 else a)
                                for argnum, _ in m.parents], merge)
    return True


def _quick_index_set(e, argnum, g):
    """index_set's VJP for its ``v`` where the index names one element (``out[n, f, i, j]
    = v``): that element of ``g`` (the rule's ``g[idx]``, nothing to unbroadcast); None
    for any other."""
    kw = e.kw
    if argnum != 1 or g.__class__ is not np.ndarray or index_set.vjp is not _SET_VJP \
            or not kw or (idx := kw.get("idx")).__class__ is not tuple \
            or len(idx) != g.ndim or shape_of(e.args[1]) != ():
        return None
    for k in idx:
        if k.__class__ is not int:
            return None
    return _fitted(g[idx], e.args[1], False)


_F64 = np.dtype(np.float64)
_F64S = np.float64
_NUMPY_SCALARS = frozenset((np.float64, np.float32, np.complex128, np.complex64))
_SUM_VJP, _SET_VJP = sum_.vjp, index_set.vjp
_ADD_VJP, _MUL_VJP = add.vjp, multiply.vjp
_QUICK = {sum_: _quick_sum, index_set: _quick_index_set, add: _quick_add,
          multiply: _quick_multiply}
# every other elementwise row of the table from its forms (log, sin, subtract, ...), but
# those whose rules check their arguments first (maximum refuses complex values)
_QUICK.update((p, _quick_forms) for p in TABLE.values()
              if p.forms is not None and p not in _QUICK and p not in CHECKED)


_NUMBERS = frozenset((float, int, bool))  # weakly typed, like numpy's own Python scalars


def fit(c, x, bcast, nb):
    """Cotangent ``c`` of argument ``x`` at x's shape (a broadcasting row sums it back)
    and in x's dtype (real for real x; float32 stays float32)."""
    cc, xc = c.__class__, x.__class__
    if cc in SCALARS and xc in SCALARS:  # numbers: only a dtype can need fitting
        if cc is xc or (xc in _NUMBERS and cc is not complex) or (cc is float and xc is _F64S):
            return c  # (a Python float is a float64 too)
        return fit_cotangent(c, x)
    if bcast:
        c = unbroadcast(c, shape_of(x), nb)
    if c.__class__ is np.ndarray and xc is np.ndarray:
        return c if c.dtype is x.dtype else fit_cotangent(c, x)
    if isinstance(c, Box) and isinstance(x, Box) and _same_kind(c.value, x.value):
        return c  # higher order: one level down they already agree
    return fit_cotangent(c, x)


def _same_kind(c, x):
    """Raw values of one dtype (or a number against a weakly typed Python number)."""
    cc, xc = c.__class__, x.__class__
    if cc is np.ndarray:
        return xc is np.ndarray and c.dtype is x.dtype
    return cc in SCALARS and (cc is xc or (xc in _NUMBERS and cc is not complex))


def accumulate(cts, j, c):
    """``cts[j] += c`` (a new value: cotangents may be shared)."""
    prev = cts[j]
    if prev is None:
        cts[j] = c
    elif prev.__class__ in SCALARS and c.__class__ in SCALARS:
        cts[j] = prev + c
    else:
        cts[j] = add(prev, c)


# -- the first-order sweep's allocation (core/buffers.py) --------------------------------
# Each helper counts the references it knows of before it writes into an array with
# buffers.free(); anything else holding the array vetoes it.  The sweep's loop holds ``g``,
# ``c`` and the entry ``e``; a one-shot sweep has already dropped the entry from the list,
# so its result is held by ``e.ans`` and the helper's local alone when it is dead.

def _in_place(e, argnum, g, last, dead):
    """The cotangent of argument ``argnum`` exactly as the row's rule computes it, written
    into a buffer nobody else holds; ``None`` to use the rule.

    The row's ``forms`` (rules/table.py ``vjp_of``) say what its rule computes: ``g``,
    ``-g``, ``g * f(ans, *args)`` or ``g / f(ans, *args)``; here the same ``f`` is called
    and the one multiply or divide is written in place.  ``g`` may be written only when
    ``last`` (no later argument of this entry needs it); the entry's result only when
    ``dead`` (a one-shot sweep's last argument of it)."""
    prim = e.prim
    how = prim.forms
    if how is None or how[1] is not prim.vjp or e.kw or g.__class__ is not np.ndarray \
            or g.dtype.kind != "f" or g.nbytes < buffers.LARGE:
        return None  # no such rule (or it was replaced), or nothing to gain
    form, vals, ans = how[0][argnum], e.args, e.ans
    if form == "id":
        return g
    if form == "neg":
        if last and buffers.free(g, 2):
            return np.negative(g, out=g)
        return np.negative(g, out=buffers.take(g.shape, g.dtype))
    kind, f = form
    d = f(ans, *vals)
    if d.__class__ is tuple:  # (c, v): c * v, c a power of two (rules' times_local)
        c, v = d
        d = v * c
    dc = d.__class__
    if dc is np.ndarray:
        if d.dtype.kind != "f":
            return None
        rd = g.dtype if d.dtype == g.dtype else np.result_type(g, d)
        rs = g.shape if d.shape == g.shape else np.broadcast_shapes(g.shape, d.shape)
    elif dc is float or dc is int:
        rd, rs = g.dtype, g.shape
    else:
        return None
    op = np.divide if kind == "div" else np.multiply
    if dc is np.ndarray and d is not ans and d is not g and d.shape == rs and d.dtype == rd \
            and all(d is not v for v in vals) and buffers.free(d, 1):
        return op(g, d, out=d)  # f(ans, *args) was a fresh temporary: it takes the result
    if dead and d is not g and ans.__class__ is np.ndarray and ans.shape == rs \
            and ans.dtype == rd and buffers.free(ans, 2 + (d is ans)):
        return op(g, d, out=ans)
    if last and d is not g and g.shape == rs and g.dtype == rd and buffers.free(g, 2):
        return op(g, d, out=g)
    return op(g, d, out=buffers.take(rs, rd))


def _accumulate_in_place(cts, j, c):
    """``cts[j] += c`` without a fresh array where one of them is free (``c`` is also held
    by the sweep's loop)."""
    prev = cts[j]
    if prev.__class__ is np.ndarray and c.__class__ is np.ndarray \
            and prev.dtype.kind == "f" and c.dtype.kind == "f" \
            and max(prev.nbytes, c.nbytes) >= buffers.LARGE and buffers.pays(prev):
        rd = prev.dtype if prev.dtype == c.dtype else np.result_type(prev, c)
        rs = prev.shape if prev.shape == c.shape else np.broadcast_shapes(prev.shape, c.shape)
        if prev.shape == rs and prev.dtype == rd and buffers.free(prev, 2):
            np.add(prev, c, out=prev)
        elif c.shape == rs and c.dtype == rd and buffers.free(c, 2):
            cts[j] = np.add(prev, c, out=c)
        else:
            cts[j] = np.add(prev, c, out=buffers.take(rs, rd))
    else:
        prev = None
        accumulate(cts, j, c)


# -- index rows: slices of a cotangent (transforms/slices.py keeps them slice by slice) -----
# ``x[:, t, :]`` sends x a cotangent of x's full shape that is zero outside the slice: over
# a loop of T steps the rule's form (zeros + write, then an add) costs T full-size arrays.
# A first-order sweep whose cotangent for x is already a whole array only it holds adds
# the slice into it in place.

def _getitem_into(cts, j, e, g):
    """getitem's cotangent added in place into ``cts[j]``, a whole array only the sweep
    holds, at the index: what the rule's scatter-add and the accumulation compute,
    without the full-size temporary.  False to use the rule."""
    kw = e.kw
    if not kw or len(e.args) != 1 or (idx := kw.get("idx")).__class__ is not tuple:
        return False  # getitem(x, idx) by position: the rule
    x, prev = e.args[0], cts[j]
    if x.__class__ is not np.ndarray or g.dtype is not x.dtype or not basic_index(idx) \
            or prev.__class__ is not np.ndarray or prev.dtype is not g.dtype \
            or prev.shape != x.shape or not buffers.free(prev, 2):
        return False  # a shared cotangent (or another kind): the rule's new array
    part = prev[idx]
    if part.shape != g.shape:
        return False
    if part.__class__ is np.ndarray:
        np.add(part, g, out=part)  # a view: into prev
    else:
        prev[idx] = part + g  # one element
    return True




_NONE = type(None)


def _one_element(e):
    """Whether index_set entry ``e`` writes one element of an array of two or more
    dimensions (``out[n, f, i, j] = v``): its index names two axes or more, which
    ``split_index_set`` never keeps slice by slice."""
    kw = e.kw
    idx = kw.get("idx") if kw else None
    if idx.__class__ is not tuple or len(idx) < 2:
        return False
    for k in idx:
        if k.__class__ is not int:
            return False
    return True


def _getitem_into_blocks(b, e, g):
    """getitem's cotangent added into the ``dense`` part of the Blocks ``b`` (a slice that
    overlaps one of its blocks: ``w[f]`` read once per output in a loop), in place where
    only ``b`` holds it: what the rule's scatter into zeros and the add compute, without
    the temporaries.  False to use the rule."""
    kw = e.kw
    if not kw or len(e.args) != 1 or (idx := kw.get("idx")).__class__ is not tuple:
        return False
    x = e.args[0]
    gc = g.__class__
    if x.__class__ is not np.ndarray or b.shape != x.shape or b.dtype is not x.dtype \
            or not (g.dtype is x.dtype if gc is np.ndarray else (
                (gc is float or gc is np.float64) and x.dtype is _F64)) or not basic_index(idx):
        return False
    d = b.dense
    if d is None:
        d = np.zeros(x.shape, x.dtype)
        if shape_of(d[idx]) != shape_of(g):
            return False
        d[idx] = g  # the rule's scatter, as it is
        b.dense = d
        return True
    if d.__class__ is not np.ndarray or d.dtype is not x.dtype or d.shape != x.shape \
            or not buffers.free(d, 2):
        return False
    part = d[idx]  # (an array or a numpy scalar: each has a shape; g is one or a float)
    if part.shape != (() if gc is float else g.shape):
        return False
    if part.__class__ is np.ndarray:
        np.add(part, g, out=part)  # a view: into d
    else:
        d[idx] = part + g  # one element
    return True


def entry_into(cts, e, g):
    """``out[n, f, i, j] = v`` swept where ``g`` is a whole array only the sweep holds and
    x and v have no other cotangent yet (a loop writing one element at a time): v gets
    ``g[idx]``, x gets g itself with a zero written there; what ``_index_set_into`` does
    for this case, with its checks said once.  False otherwise."""
    kw = e.kw
    idx = kw.get("idx") if kw else None
    if idx.__class__ is not tuple or g.__class__ is not np.ndarray or len(idx) != g.ndim \
            or len(idx) < 2:
        return False
    for k in idx:
        if k.__class__ is not int:
            return False
    parents = e.parents
    if len(parents) != 2 or index_set.vjp is not _SET_VJP:
        return False
    (ax, jx), (av, jv) = parents
    x, v = e.args
    if ax or jx == jv or cts[jx] is not None or cts[jv] is not None \
            or x.__class__ is not np.ndarray or x.shape != g.shape or x.dtype is not g.dtype \
            or shape_of(v) != () or not buffers.free(g, 2):
        return False
    cv = _fitted(g[idx], v, False)  # (read before the zero is written)
    g[idx] = 0.0
    cts[jx] = g
    cts[jv] = cv
    return True


def _index_set_into(cts, e, g, merge):
    """index_set's cotangents on a first-order sweep where ``g`` is a whole array only
    the sweep holds and the index is basic (``out[n, f, i, j] = v`` in a loop): v's is
    the rule's (a copy where it is a view of g), and x's, the rule's copy of g with zeros
    at the index, is g itself with those zeros written in.  False to use the rules."""
    kw = e.kw
    if not kw or len(e.args) != 2 or (idx := kw.get("idx")).__class__ is not tuple:
        return False
    x = e.args[0]
    if x.__class__ is not np.ndarray or g.dtype is not x.dtype or g.shape != x.shape \
            or not basic_index(idx) or not buffers.free(g, 2):
        return False
    parents = e.parents
    if len(parents) == 2:  # x's and v's, each the first contribution (the loop's case)
        (ax, jx), (av, jv) = parents
        if ax == 0 and av == 1 and jx != jv and cts[jx] is None and cts[jv] is None:
            cv = _quick_index_set(e, 1, g)  # read before g's zeros are written
            if cv is None:
                cv = cotangent(e, 1, g, 0, True)
                if cv.__class__ is np.ndarray and np.may_share_memory(cv, g):
                    cv = cv.copy()
            g[idx] = 0.0
            cts[jx] = g
            cts[jv] = cv
            return True
    cv = None
    for argnum, _ in e.parents:
        if argnum == 1:  # read before g's zeros are written
            cv = _quick_index_set(e, 1, g)
            if cv is None:
                cv = cotangent(e, 1, g, 0, True)
            if cv.__class__ is np.ndarray and np.may_share_memory(cv, g):
                cv = cv.copy()
    cs = []
    for argnum, _ in e.parents:
        if argnum == 0:
            g[idx] = 0.0
            cs.append(g)
        else:
            cs.append(cv)
    _merge_all(cts, e.parents, cs, merge)
    return True


def _v_part(e, nb, raw):
    """index_set's rule for its ``v`` on a given cotangent (slices.split_index_set)."""
    return lambda base: cotangent(e, 1, base, nb, raw)


def _merge_all(cts, parents, cs, merge):
    """Each parent's cotangent from ``cs`` into ``cts``."""
    for (_, j), c in zip(parents, cs):
        prev = cts[j]
        if prev is None:
            cts[j] = c
        elif prev.__class__ in LAZY or c.__class__ in LAZY:
            prev = None
            merge_lazy(cts, j, c, merge)
        else:
            prev = None
            merge(cts, j, c)
