"""Plain numpy on traced values: operators, methods, and the NEP 13/18 protocols.

A user writes ``np.sin(x) * x`` and it differentiates: ``np.sin`` is a ufunc,
so numpy hands it to ``Box.__array_ufunc__``; ``np.sum`` is an array function,
so numpy hands it to ``Box.__array_function__``.  Both look the function up
here and call the matching dualgrad function, which normalises numpy's
arguments (axes become negative numbers, shapes are resolved) and applies a
primitive.  The long tail of numpy (``mean``, ``var``, ``stack``, ``tile``,
``tensordot``...) is built from the small set of primitives in
``primitives.py``.  A numpy function with no rule raises ``TypeError``.

``np.array`` / ``np.asarray`` are not dispatched, so a traced value's ``__array__`` gives
a numpy object array of its entries, packed into one traced array by the first primitive
that meets it; ``y[i] = v`` and ``x += y`` on a traced array record ``index_set`` and
rebind the box (see the two sections "arrays built from traced values" and "in-place
updates" below, for how, what it costs, and the aliasing rule).
"""

import builtins
import operator
import sys
import warnings

import numpy as np

from .. import rules as P
from ..core.trace import OBJECTS, Box, Trace, check_live, unbox
from ..rules import normalize_axes as _axes

HANDLED = {}  # numpy function -> dualgrad implementation


def implements(*fns):
    def register(impl):
        for fn in fns:
            HANDLED[fn] = impl
        return impl
    return register


_shape, _ndim = P.shape_of, P.ndim_of


def _size(x):
    return int(np.prod(_shape(x), dtype=np.int64))


def _no(kwargs, fname, **defaults):
    for k, v in kwargs.items():
        if k in defaults and (v is defaults[k] or (
                v.__class__ is not np.ndarray and v == defaults[k])):
            continue
        raise TypeError(f"dualgrad: numpy.{fname}({k}=...) is not supported on traced values")


# ---------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------

@implements(np.sum)
def sum(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _no(dict(out=out, **kw), "sum", out=None, initial=np._NoValue, where=True)
    r = P.sum_(a, axis=_axes(axis, _ndim(a)), keepdims=bool(keepdims))
    return r if dtype is None else astype(r, dtype)


@implements(np.mean)
def mean(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _no(dict(out=out, **kw), "mean", out=None, where=True)
    axes = _axes(axis, _ndim(a))
    n = int(np.prod([_shape(a)[i] for i in axes], dtype=np.int64))
    if n == 0:  # numpy's nan with its warning; the derivative is JAX's: zeros of a's shape
        warnings.warn("Mean of empty slice.", RuntimeWarning, stacklevel=2)
        return P.multiply(sum(a, axes, dtype, keepdims=keepdims), np.nan)
    return P.divide(sum(a, axes, dtype, keepdims=keepdims), float(n))


@implements(np.var)
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    _no(dict(out=out, **kw), "var", out=None, where=True)
    axes = _axes(axis, _ndim(a))
    n = int(np.prod([_shape(a)[i] for i in axes], dtype=np.int64))
    with warnings.catch_warnings():  # n = 0: one warning, numpy's below
        warnings.simplefilter("ignore", RuntimeWarning)
        d = P.subtract(a, mean(a, axes, dtype, keepdims=True))
    ss = sum(_abs2(d), axes, keepdims=keepdims)
    if n - ddof <= 0:  # numpy: ss / 0, so nan for n = 0 and inf otherwise (no ZeroDivision)
        warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=2)
        if n == 0:  # nan, with JAX's zero tangent (ss of nothing is 0, its tangent too)
            return P.add(P.multiply(ss, 0.0), np.nan)
        return P.multiply(ss, np.inf)
    return P.divide(ss, float(n - ddof))


def _abs2(x):
    """|x|**2 as numpy's var and norm compute it: x*x, or (x * conj(x)).real if complex."""
    return P.real(P.multiply(x, P.conjugate(x))) if P.is_complex(x) else P.multiply(x, x)


@implements(np.std)
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    return P.sqrt(var(a, axis, dtype, out, ddof, keepdims, **kw))


def _reduction(prim, fname):
    def reduce(a, axis=None, out=None, keepdims=False, **kw):
        _no(dict(out=out, **kw), fname, out=None, initial=np._NoValue, where=True, dtype=None)
        return prim(a, axis=_axes(axis, _ndim(a)), keepdims=bool(keepdims))
    reduce.__name__ = fname
    return reduce


max = implements(np.max, np.amax)(_reduction(P.amax, "max"))
min = implements(np.min, np.amin)(_reduction(P.amin, "min"))
prod = implements(np.prod)(_reduction(P.prod, "prod"))


def _cumulative(prim, fname):
    def cumulate(a, axis=None, dtype=None, out=None):
        _no(dict(out=out), fname, out=None)
        if axis is None:
            a, axis = ravel(a), 0
        r = prim(a, axis=_axes(axis, _ndim(a))[0])
        return r if dtype is None else astype(r, dtype)
    cumulate.__name__ = fname
    return cumulate


cumsum = implements(np.cumsum)(_cumulative(P.cumsum, "cumsum"))
cumprod = implements(np.cumprod)(_cumulative(P.cumprod, "cumprod"))


# ---------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------

def _resolve_shape(shape, size):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple(operator.index(s) for s in shape)
    if shape.count(-1) == 1:
        known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
        shape = tuple(size // known if known and s == -1 else (0 if s == -1 else s)
                      for s in shape)
    if int(np.prod(shape, dtype=np.int64)) != size:
        raise ValueError(f"cannot reshape array of size {size} into shape {shape}")
    return shape


@implements(np.reshape)
def reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    if order != "C":
        raise TypeError("dualgrad: reshape supports order='C' only")
    shape = newshape if shape is None else shape
    shape = _resolve_shape(shape, _size(a))
    return a if shape == _shape(a) else P.reshape(a, shape=shape)


@implements(np.ravel)
def ravel(a, order="C"):
    return reshape(a, (-1,), order)


@implements(np.transpose)
def transpose(a, axes=None):
    nd = _ndim(a)
    axes = tuple(range(nd))[::-1] if axes is None else tuple(a_ % nd for a_ in _axes(axes, nd))
    return P.transpose(a, axes=axes)


@implements(np.swapaxes)
def swapaxes(a, axis1, axis2):
    nd = _ndim(a)
    perm = list(range(nd))
    i, j = (x % nd for x in _axes((axis1, axis2), nd))
    perm[i], perm[j] = perm[j], perm[i]
    return P.transpose(a, axes=tuple(perm))


@implements(np.moveaxis)
def moveaxis(a, source, destination):
    nd = _ndim(a)
    src = [x % nd for x in _axes(source, nd, "source")]
    dst = [x % nd for x in _axes(destination, nd, "destination")]
    order = [n for n in range(nd) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return P.transpose(a, axes=tuple(order))


@implements(np.expand_dims)
def expand_dims(a, axis):
    if not isinstance(axis, (tuple, list)):
        axis = (axis,)
    nd = _ndim(a) + len(axis)
    return P.expand_dims(a, tuple(x % nd for x in _axes(axis, nd)))


@implements(np.squeeze)
def squeeze(a, axis=None):
    s = _shape(a)
    axes = [i for i, n in enumerate(s) if n == 1] if axis is None else \
        [x % len(s) for x in _axes(axis, len(s))]
    for i in axes:
        if s[i] != 1:
            raise ValueError("cannot select an axis to squeeze out which has size not "
                             "equal to one")
    return reshape(a, tuple(n for i, n in enumerate(s) if i not in axes))


@implements(np.broadcast_to)
def broadcast_to(a, shape, subok=False):
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return a if _shape(a) == shape else P.broadcast_to(a, shape=shape)


@implements(np.atleast_1d)
def atleast_1d(*arys):
    r = [reshape(a, (1,)) if _ndim(a) == 0 else a for a in arys]
    return r[0] if len(r) == 1 else r


@implements(np.atleast_2d)
def atleast_2d(*arys):
    r = [reshape(a, (1,) * (2 - _ndim(a)) + _shape(a)) if _ndim(a) < 2 else a for a in arys]
    return r[0] if len(r) == 1 else r


@implements(np.concatenate)
def concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    _no(dict(out=out, dtype=dtype), "concatenate", out=None, dtype=None)
    arrays = list(arrays)
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    if len(arrays) == 1:
        return arrays[0]
    return P.concatenate(*arrays, axis=_axes(axis, _ndim(arrays[0]))[0])


@implements(np.stack)
def stack(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to stack")
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis, out=out, dtype=dtype)


@implements(np.vstack)
def vstack(tup, *, dtype=None, casting="same_kind"):
    return concatenate([atleast_2d(a) for a in tup], axis=0, dtype=dtype)


@implements(np.hstack)
def hstack(tup, *, dtype=None, casting="same_kind"):
    arrs = [atleast_1d(a) for a in tup]
    return concatenate(arrs, axis=0 if _ndim(arrs[0]) == 1 else 1, dtype=dtype)


@implements(np.split, np.array_split)
def split(ary, indices_or_sections, axis=0):
    n = _shape(ary)[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
        bounds = np.cumsum([0] + sizes)
    else:
        bounds = [0] + list(indices_or_sections) + [n]
    ax = _axes(axis, _ndim(ary))[0]
    tail = (slice(None),) * (-ax - 1)
    return [getitem(ary, (Ellipsis, slice(int(b0), int(b1))) + tail)
            for b0, b1 in zip(bounds[:-1], bounds[1:])]


@implements(np.flip)
def flip(m, axis=None):
    return P.flip(m, axis=_axes(axis, _ndim(m)))


@implements(np.fliplr)
def fliplr(m):
    return flip(m, 1)


@implements(np.flipud)
def flipud(m):
    return flip(m, 0)


# -- the long tail of data movement: a gather through an index map -------------

def _gather(a, move, fill=None):
    """Any numpy function that only moves entries, as one differentiable gather.

    ``move`` is applied to the array of positions ``0..size-1``; the result says
    where each output entry comes from.  With ``fill``, position ``size`` is a
    constant (for padding and the zeros of ``diag``).
    """
    n = _size(a)
    where_from = move(np.arange(n).reshape(_shape(a)))
    src = ravel(a)
    if fill is not None:  # a constant, or a traced number (pad's constant_values)
        fill = reshape(fill, (1,)) if isinstance(fill, Box) else np.full(1, fill,
                                                                        P.float_dtype(a))
        src = concatenate([src, fill])
    return getitem(src, (np.asarray(where_from),))


@implements(np.roll)
def roll(a, shift, axis=None):
    return _gather(a, lambda ix: np.roll(ix, shift, axis))


@implements(np.tile)
def tile(A, reps):
    return _gather(A, lambda ix: np.tile(ix, reps))


@implements(np.repeat)
def repeat(a, repeats, axis=None):
    return _gather(a, lambda ix: np.repeat(ix, repeats, axis))


@implements(np.rot90)
def rot90(m, k=1, axes=(0, 1)):
    return _gather(m, lambda ix: np.rot90(ix, k, axes))


@implements(np.take)
def take(a, indices, axis=None, out=None, mode="raise"):
    _no(dict(out=out), "take", out=None)
    return _gather(a, lambda ix: np.take(ix, indices, axis, mode=mode))


@implements(np.take_along_axis)
def take_along_axis(arr, indices, axis=-1):
    return _gather(arr, lambda ix: np.take_along_axis(ix, indices, axis))


@implements(np.sort)
def sort(a, axis=-1, kind=None, order=None, **kw):
    if axis is None:
        a, axis = ravel(a), -1
    idx = np.argsort(unbox(a), axis=axis, kind=kind)
    return take_along_axis(a, idx, axis)


@implements(np.diagonal)
def diagonal(a, offset=0, axis1=0, axis2=1):
    return _gather(a, lambda ix: np.diagonal(ix, offset, axis1, axis2))


@implements(np.diag)
def diag(v, k=0):
    if _ndim(v) == 2:
        return diagonal(v, k)
    n = _size(v)
    return _gather(v, lambda ix: np.where(np.diag(np.ones(n, bool), k), np.diag(ix, k), n),
                   fill=0.0)


@implements(np.pad)
def pad(array, pad_width, mode="constant", **kwargs):
    if mode == "constant":
        c = kwargs.pop("constant_values", 0)
        if np.ndim(c) != 0:
            raise TypeError("dualgrad: pad(constant_values=...) must be a single number")
        n = _size(array)
        return _gather(array, lambda ix: np.pad(ix, pad_width, constant_values=n), fill=c)
    if mode in ("edge", "reflect", "symmetric", "wrap"):
        return _gather(array, lambda ix: np.pad(ix, pad_width, mode=mode, **kwargs))
    raise TypeError(f"dualgrad: no derivative rule for numpy.pad(mode={mode!r})")


@implements(np.triu)
def triu(m, k=0):
    s = _shape(m)
    return P.multiply(m, np.triu(np.ones(s[-2:], P.float_dtype(m)), k))


@implements(np.tril)
def tril(m, k=0):
    s = _shape(m)
    return P.multiply(m, np.tril(np.ones(s[-2:], P.float_dtype(m)), k))


@implements(np.trace)
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    return sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype, out=out)


# ---------------------------------------------------------------------------
# indexing
# ---------------------------------------------------------------------------

def _jit_index(k):
    """An integer or boolean array that only dg.jit records (an argument of the jitted
    function used as an index): its value, which the graph then guards, so new indices
    record again; None for anything else."""
    c = unbox(k)
    read = getattr(c, "read", None)
    if read is None or c.__class__ is np.ndarray:
        return None
    v = read()
    return v if np.result_type(v).kind in "biu" else None


def _index(idx):
    """numpy's index as a tuple of ints, slices, None, Ellipsis and arrays."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    out = []
    for k in idx:
        if isinstance(k, Box):
            v = _jit_index(k)
            if v is None:
                raise TypeError("dualgrad: an index cannot be a traced (differentiated) "
                                "value")
            k = v
        if isinstance(k, (list, np.ndarray)):
            k = np.asarray(k)
            if k.dtype != bool and not np.issubdtype(k.dtype, np.integer):
                if k.size:
                    raise IndexError("arrays used as indices must be of integer or boolean "
                                     "type")
                k = k.astype(np.intp)
        out.append(k)
    return tuple(out)


def getitem(a, idx):
    parts = idx if isinstance(idx, tuple) else (idx,)
    arrays = [k for k in parts if _recorded_integers(k)]
    if arrays:  # dg.jit: index arrays the graph takes as values (``P.gather``)
        slots = iter(range(len(arrays)))
        parts = tuple(P.Slot(next(slots), k.shape, k.dtype) if _recorded_integers(k) else k
                      for k in parts)
        return P.gather(a, *arrays, idx=_index(parts))
    return P.getitem(a, idx=_index(idx))


def _recorded_integers(k):
    """An integer array only dg.jit records (an argument of the jitted function): a graph
    value, where reading it would guard its numbers."""
    if not isinstance(k, Box):
        return False
    c = unbox(k)
    return getattr(c, "read", None) is not None and c.__class__ is not np.ndarray \
        and c.dtype.kind in "iu" and c.ndim > 0


# ---------------------------------------------------------------------------
# linear algebra
# ---------------------------------------------------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _explicit(subscripts):
    s = subscripts.replace(" ", "")
    if "->" in s:
        return s
    letters = s.replace("...", "").replace(",", "")
    single = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return s + "->" + ("..." if "..." in s else "") + single


def _from_sublists(args):
    """einsum's sublist form, einsum(a, [0, 1], b, [1, 2], [0, 2]), in the string form."""
    def spell(sub):
        return "".join("..." if k is Ellipsis else (_LETTERS + _LETTERS.upper())[k]
                       for k in sub)
    ops, subs, out = args[0::2], args[1::2], ""
    if len(args) % 2:  # an odd count ends with the output's sublist
        ops, out = ops[:-1], "->" + spell(args[-1])
    return ",".join(spell(s) for s in subs) + out, ops


def _diagonals(subscripts, operands):
    """An operand whose subscripts repeat a letter ('ii', 'iij->j') replaced by its
    diagonal (a gather), so the einsum primitive sees each letter once per operand."""
    ins, out = subscripts.split("->")
    ins, ops = ins.split(","), list(operands)
    for k, s in enumerate(ins):
        letters = s.replace("...", "")
        while (c := next((c for c in letters if letters.count(c) > 1), None)) is not None:
            i = s.index(c)
            j = s.index(c, i + 1)
            e = s.find("...")
            axes = [p - len(s) if 0 <= e < p else p for p in (i, j)]  # after '...': from the end
            ops[k] = diagonal(ops[k], 0, *axes)  # numpy puts the diagonal axis last
            s = s[:i] + s[i + 1:j] + s[j + 1:] + c
            letters = s.replace("...", "")
        ins[k] = s
    return ",".join(ins) + "->" + out, ops


@implements(np.einsum)
def einsum(subscripts, *operands, out=None, optimize=False, **kw):
    if not isinstance(subscripts, str):
        subscripts, operands = _from_sublists((subscripts,) + operands)
    _no(dict(out=out, **kw), "einsum", out=None, dtype=None, order="K", casting="safe")
    subscripts, operands = _diagonals(_explicit(subscripts), operands)
    return P.einsum(*operands, subscripts=subscripts)


@implements(np.tensordot)
def tensordot(a, b, axes=2):
    na, nb = _ndim(a), _ndim(b)
    if isinstance(axes, (int, np.integer)):
        ax_a, ax_b = list(range(na - axes, na)), list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, (int, np.integer)) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, (int, np.integer)) else list(ax_b)
    ax_a, ax_b = [x % na for x in ax_a], [x % nb for x in ax_b]
    sa = list(_LETTERS[:na])
    sb = list(_LETTERS[na:na + nb])
    for i, j in zip(ax_a, ax_b):
        sb[j] = sa[i]
    out = [c for i, c in enumerate(sa) if i not in ax_a] + \
          [c for j, c in enumerate(sb) if j not in ax_b]
    return P.einsum(a, b, subscripts="".join(sa) + "," + "".join(sb) + "->" + "".join(out))


@implements(np.dot)
def dot(a, b, out=None):
    _no(dict(out=out), "dot", out=None)
    na, nb = _ndim(a), _ndim(b)
    if na == 0 or nb == 0:
        return P.multiply(a, b)
    if nb <= 2 and (na <= 2 or nb == 1):
        return P.matmul(a, b)
    return tensordot(a, b, axes=([-1], [-2]))


@implements(np.inner)
def inner(a, b):
    if _ndim(a) == 0 or _ndim(b) == 0:
        return P.multiply(a, b)
    return tensordot(a, b, axes=([-1], [-1]))


@implements(np.outer)
def outer(a, b, out=None):
    _no(dict(out=out), "outer", out=None)
    return P.multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


@implements(np.vdot)
def vdot(a, b):
    """sum(conj(a) * b) over the flattened arrays: numpy conjugates the first argument."""
    a = P.conjugate(ravel(a)) if P.is_complex(a) else ravel(a)
    return sum(P.multiply(a, ravel(b)))


@implements(np.linalg.det)
def det(a):
    return P.det(a)


@implements(np.linalg.slogdet)
def slogdet(a):
    if P.is_complex(a):  # the sign would be a phase e^{i theta(a)}: not a constant
        raise TypeError("dualgrad has no derivative rule for numpy.linalg.slogdet of a complex "
                        "matrix (use np.linalg.det)")
    return np.sign(np.linalg.det(unbox(a))), P.logabsdet(a)


@implements(np.linalg.inv)
def inv(a):
    return P.inv(a)


@implements(np.linalg.solve)
def solve(a, b):
    return P.solve(a, b)


@implements(np.linalg.cholesky)
def cholesky(a, upper=False):
    L = P.cholesky(a)
    return swapaxes(L, -1, -2) if upper else L


@implements(np.linalg.multi_dot)
def multi_dot(arrays, *, out=None):
    r = arrays[0]
    for b in arrays[1:]:
        r = dot(r, b)
    return r


@implements(np.linalg.norm)
def norm(x, ord=None, axis=None, keepdims=False):
    nd = _ndim(x)
    if axis is None and ord is not None:
        axis = tuple(range(nd)) if nd == 2 else (0 if nd == 1 else None)
        if axis is None:
            raise ValueError("Improper number of dimensions to norm.")
    axes = _axes(axis, nd)
    if ord is None or (len(axes) == 1 and ord == 2) or (len(axes) == 2 and ord == "fro"):
        return P.sqrt(sum(_abs2(x), axes, keepdims=keepdims))
    ax = P.absolute(x)
    if len(axes) == 1:
        if ord == np.inf:
            return max(ax, axes, keepdims=keepdims)
        if ord == -np.inf:
            return min(ax, axes, keepdims=keepdims)
        if ord == 0:
            return np.sum(unbox(x) != 0, axis=axes, keepdims=keepdims).astype(float)
        if ord == 1:
            return sum(ax, axes, keepdims=keepdims)
        return P.power(sum(P.power(ax, float(ord)), axes, keepdims=keepdims), 1.0 / ord)
    if ord in (1, -1, np.inf, -np.inf):
        inner_ax, outer_ax = (axes[0], axes[1]) if ord in (1, -1) else (axes[1], axes[0])
        s = sum(ax, inner_ax, keepdims=True)
        r = (max if ord > 0 else min)(s, outer_ax, keepdims=True)
        return r if keepdims else squeeze(r, axis=axes)
    if ord in (2, -2, "nuc"):  # singular values: the svd row (linalg.py packs U, s, V)
        a0, a1 = (a % nd for a in axes)
        rest = [i for i in builtins.range(nd) if i not in (a0, a1)]
        xm = P.transpose(x, axes=tuple(rest + [a0, a1]))
        s = getitem(P.TABLE["svd"](xm), (Ellipsis, _shape(x)[a0], slice(None)))
        r = sum(s, -1) if ord == "nuc" else (max if ord == 2 else min)(s, -1)
        return reshape(r, tuple(1 if i in (a0, a1) else n for i, n in
                                enumerate(_shape(x)))) if keepdims else r
    raise ValueError(f"Invalid norm order {ord!r} for matrices.")


@implements(np.where)
def where(condition, x=None, y=None):
    if x is None and y is None:
        return np.where(unbox(condition))
    return P.where(unbox(condition), x, y)


@implements(np.clip)
def clip(a, a_min=None, a_max=None, out=None, **kw):
    _no(dict(out=out), "clip", out=None)
    a_min = kw.pop("min", a_min)
    a_max = kw.pop("max", a_max)
    return P.clip(a, a_min, a_max)


def astype(x, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind not in "fc":
        return unbox(x).astype(dtype)
    if dtype.kind == "f" and P.is_complex(x):  # numpy keeps the real part, and warns
        warnings.warn("Casting complex values to real discards the imaginary part",
                      np.exceptions.ComplexWarning, stacklevel=2)
        x = P.real(x)
    return P.astype(x, dtype=dtype)


# ---------------------------------------------------------------------------
# complex numbers (the rules, and JAX's conventions: "complex numbers" in primitives.py)
# ---------------------------------------------------------------------------

@implements(np.real)
def real(val):
    return P.real(val)


@implements(np.imag)
def imag(val):
    return P.imag(val)


@implements(np.angle)
def angle(z, deg=False):
    """arctan2(imag, real), as numpy; piecewise constant (0 or pi) for real z."""
    if not P.is_complex(z):
        return np.angle(unbox(z), deg)
    a = P.arctan2(P.imag(z), P.real(z))
    return P.multiply(a, 180.0 / np.pi) if deg else a


@implements(np.sign)
def sign(x, **kwargs):
    """Piecewise constant for real x; for complex z numpy's z/|z| (0 at 0, derivative 0
    there), which is not constant: it is differentiated (JAX gives 0 for it)."""
    if not P.is_complex(x):
        return np.sign(unbox(x), **kwargs)
    _no(kwargs, "sign", where=True, casting="same_kind", order="K", dtype=None, subok=True)
    return P.divide_or_zero(x, P.absolute(x))


# ---------------------------------------------------------------------------
# functions that compute an index or a count from raw values and then move or add
# differentiable ones: the index is constant, the values keep their derivative
# ---------------------------------------------------------------------------

def _plain_index(x, fname, arg):
    if isinstance(x, Box) and (v := _jit_index(x)) is not None:
        x = v
    if isinstance(x, Box):
        raise TypeError(f"dualgrad: numpy.{fname}'s {arg} must be integers; an integer "
                        "array has no derivative, so it cannot be a traced value")
    return np.asarray(x)


@implements(np.bincount)
def bincount(x, weights=None, minlength=0):
    """Counts are constant; weighted counts are a scatter-add of the weights."""
    x = _plain_index(x, "bincount", "x")
    raw = np.bincount(x, weights=unbox(weights), minlength=minlength)  # numpy's checks
    if not isinstance(weights, Box):
        return raw
    return P.scatter_add(weights, idx=(x,), shape=raw.shape)


def _track(raw, pieces):
    """``raw`` (numpy's exact value) carrying the derivative of ``sum_i c_i * (v_i - raw(v_i))``
    for (traced v_i, constant c_i) in ``pieces``: every added term is exactly zero, so the
    value is numpy's to the bit while the derivative flows through the v_i."""
    out = raw
    for v, c in pieces:
        if isinstance(v, Box):
            out = P.add(out, P.multiply(P.subtract(v, unbox(v)), c))
    return out


@implements(np.histogram)
def histogram(a, bins=10, range=None, density=None, weights=None):
    """Counts are piecewise constant in ``a`` (derivative 0); the bin edges move with
    ``a``'s min and max (or with ``range``); weighted counts are a scatter-add."""
    raw_a = np.asarray(unbox(a))
    rng = None if range is None else tuple(unbox(r) for r in range)
    raw_bins = unbox(bins)
    if isinstance(raw_bins, str) and isinstance(a, Box):
        raise TypeError(f"dualgrad: numpy.histogram(bins={raw_bins!r}) estimates its bins from "
                        "the traced data; its edges have no derivative rule here (pass an "
                        "integer bins with range=..., or explicit edges)")
    counts, raw_edges = np.histogram(raw_a, raw_bins, rng, density=density,
                                     weights=unbox(weights))
    if not any(isinstance(v, Box) for v in (a, bins, weights) + tuple(range or ())):
        return counts, raw_edges
    if np.ndim(raw_bins) == 1:
        edges = bins  # explicit edges: they are the output as given
    else:
        lo, hi = (range[0], range[1]) if range is not None else (
            min(ravel(a)) if isinstance(a, Box) else None,
            max(ravel(a)) if isinstance(a, Box) else None)
        t = np.linspace(0.0, 1.0, len(raw_edges))
        edges = _track(raw_edges, [(lo, 1.0 - t), (hi, t)])
    if density:
        counts = np.histogram(raw_a, raw_bins, rng, weights=unbox(weights))[0]
    if isinstance(weights, Box):
        idx = np.searchsorted(raw_edges, raw_a.ravel(), side="right") - 1
        idx[raw_a.ravel() == raw_edges[-1]] = len(raw_edges) - 2
        keep = (raw_a.ravel() >= raw_edges[0]) & (raw_a.ravel() <= raw_edges[-1])
        w = getitem(ravel(weights), (np.flatnonzero(keep),))
        counts = P.scatter_add(w, idx=(idx[keep],), shape=(len(raw_edges) - 1,))
    if density:  # numpy's n / db / n.sum(), with derivatives
        db = P.subtract(getitem(edges, slice(1, None)), getitem(edges, slice(None, -1)))
        counts = P.divide(P.divide(counts, db), sum(counts))
    return counts, edges


@implements(np.unique)
def unique(ar, return_index=False, return_inverse=False, return_counts=False, axis=None,
           **kw):
    """The unique values are a gather of the input (each from its first occurrence)."""
    raw = unbox(ar)
    res = np.unique(raw, return_index=True, return_inverse=return_inverse,
                    return_counts=return_counts, axis=axis, **kw)
    first = res[1]
    vals = getitem(ravel(ar), (first,)) if axis is None else take(ar, first, axis=axis)
    rest = ((first,) if return_index else ()) + tuple(res[2:])
    return (vals,) + rest if rest else vals


@implements(np.full_like)
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, **kw):
    """Differentiable in the fill value (``a`` only gives the shape and dtype)."""
    shp = _shape(a) if shape is None else shape
    dt = np.dtype(np.result_type(unbox(a)) if dtype is None else dtype)
    if not isinstance(fill_value, Box) or dt.kind != "f":
        return np.full_like(unbox(a), unbox(fill_value), dtype=dt, order=order, shape=shape)
    return broadcast_to(astype(fill_value, dt), shp)


def _filled_like(fill):
    def like(a, dtype=None, order="K", subok=True, shape=None, **kw):
        dt = np.dtype(np.result_type(unbox(a)) if dtype is None else dtype)
        fn = {0.0: np.zeros_like, 1.0: np.ones_like}.get(fill, np.empty_like)
        if dt.kind not in "fc" or shape is not None:
            return fn(unbox(a), dtype=dt, order=order, shape=shape)
        # traced (derivative 0), so that y = np.zeros_like(x); y[i] = v differentiates
        r = P.index_set(a, 0.0 if fill is None else fill, idx=(Ellipsis,))
        return r if P.float_dtype(r) == dt else astype(r, dt)
    return like


zeros_like = implements(np.zeros_like)(_filled_like(0.0))
ones_like = implements(np.ones_like)(_filled_like(1.0))
empty_like = implements(np.empty_like)(_filled_like(None))


@implements(np.copyto)
def copyto(dst, src, casting="same_kind", where=True):
    raise TypeError(
        "dualgrad: numpy.copyto writes into an existing array in place, so a traced value "
        "cannot go in or out of it (np.full(shape, v) and np.full_like(plain, v) with a traced "
        "fill v call it): write np.broadcast_to(v, shape) or v * np.ones(shape) instead, or "
        "np.full_like(x, v) with a traced x")


@implements(np.nextafter)
def nextafter(x1, x2, **kw):
    """The next float after x1 towards x2: derivative 1 in x1, as for the identity."""
    return _track(np.nextafter(unbox(x1), unbox(x2), **kw), [(x1, 1.0)])


# ---------------------------------------------------------------------------
# functions whose derivative is zero everywhere they have one: computed on raw values
# ---------------------------------------------------------------------------

NONDIFF_UFUNCS = {
    np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal,
    np.logical_and, np.logical_or, np.logical_xor, np.logical_not, np.isnan, np.isinf,
    np.isfinite, np.signbit, np.sign, np.floor, np.ceil, np.rint, np.trunc, np.floor_divide,
    np.bitwise_and, np.bitwise_or, np.bitwise_xor, np.invert, np.left_shift, np.right_shift,
    np.isnat, np.spacing,
}
_COMPARE_UFUNCS = {np.greater: operator.gt, np.greater_equal: operator.ge, np.less: operator.lt,
                   np.less_equal: operator.le, np.equal: operator.eq,
                   np.not_equal: operator.ne}
NONDIFF_FUNCS = {
    np.shape, np.ndim, np.size, np.argmax, np.argmin, np.argsort, np.nonzero, np.argwhere,
    np.flatnonzero, np.count_nonzero, np.zeros_like, np.ones_like, np.empty_like,
    np.isclose, np.allclose, np.array_equal, np.searchsorted, np.round, np.around,
    np.iscomplexobj, np.isrealobj, np.result_type, np.sign, np.floor, np.ceil, np.isnan,
    np.isfinite, np.isinf, np.any, np.all, np.lexsort, np.digitize,
    np.array_equiv, np.may_share_memory,
    np.shares_memory, np.can_cast, np.min_scalar_type, np.argpartition,
}


def _deep_unbox(x):
    if isinstance(x, Box):
        return unbox(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_deep_unbox(v) for v in x)
    if isinstance(x, dict):
        return {k: _deep_unbox(v) for k, v in x.items()}
    return x


_UFUNC_METHODS = {("reduce", np.add): sum, ("reduce", np.multiply): prod,
                  ("reduce", np.maximum): max, ("reduce", np.minimum): min,
                  ("accumulate", np.add): cumsum, ("accumulate", np.multiply): cumprod}


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    if not self._trace.active:
        check_live(self, ufunc.__name__)
    if kwargs.get("out") is not None:
        raise TypeError(f"dualgrad: numpy.{ufunc.__name__}(out=...) would write a traced value "
                        "in place into a plain array (acc += x for a numpy acc and a traced x "
                        "does this); write acc = acc + x, or make acc traced first (acc = "
                        "np.zeros_like(x))")
    if method == "__call__":
        prim = P.UFUNCS.get(ufunc)
        if prim is None and ufunc in HANDLED:  # a ufunc built from primitives (nextafter)
            return HANDLED[ufunc](*inputs, **kwargs)
        if prim is not None:
            if kwargs:
                _no(kwargs, ufunc.__name__, out=None, where=True, casting="same_kind",
                    order="K", dtype=None, subok=True)
            return prim(*inputs)
        op = _COMPARE_UFUNCS.get(ufunc)
        if op is not None and not kwargs and len(inputs) == 2 and (
                _stage(inputs[0]) is not None or _stage(inputs[1]) is not None):
            return _compare(op)(*inputs)  # under dg.jit: a graph node, not a guard
        if ufunc in NONDIFF_UFUNCS:
            return ufunc(*_deep_unbox(inputs), **kwargs)
        raise TypeError(f"dualgrad has no derivative rule for {_ufunc_name(ufunc)}{_HOW}")
    if method == "at" and ufunc is np.add and isinstance(inputs[0], Box):
        return _add_at(*inputs)
    impl = _UFUNC_METHODS.get((method, ufunc))
    if method == "outer" and ufunc in P.UFUNCS:  # f.outer(a, b): a's axes before b's
        a, b = inputs
        return P.UFUNCS[ufunc](reshape(a, _shape(a) + (1,) * _ndim(b)), b)
    if impl is None:
        raise TypeError(f"dualgrad has no derivative rule for {_ufunc_name(ufunc)}.{method}"
                        f"{_HOW}")
    kwargs.setdefault("axis", 0)
    return impl(*inputs, **kwargs)


def _array_function(self, func, types, args, kwargs):
    if not self._trace.active:
        check_live(self, func.__name__)
    impl = HANDLED.get(func)
    if impl is not None:
        return impl(*args, **kwargs)
    if func in NONDIFF_FUNCS:
        return func(*_deep_unbox(args), **_deep_unbox(kwargs))
    name = f"{getattr(func, '__module__', None) or 'numpy'}.{func.__name__}"
    raise TypeError(f"dualgrad has no derivative rule for {name}{_HOW}")


_HOW = ("; give the function that calls it a rule with dg.custom_jvp (one line: "
        "f = dg.custom_jvp(f); f.defjvp(lambda p, t: (f(*p), dfdx(*p) * t[0]))), or use "
        "dg.stop_gradient(x) if no derivative is wanted")


def _ufunc_name(ufunc):
    """A ufunc's real home: 'numpy.sin', 'scipy.special.erf' (ufuncs carry no module)."""
    name = ufunc.__name__
    if getattr(np, name, None) is ufunc:
        return f"numpy.{name}"
    for mod in ("scipy.special", "numpy.linalg", "numpy.fft"):
        m = sys.modules.get(mod)
        if m is not None and getattr(m, name, None) is ufunc:
            return f"{mod}.{name}"
    return f"the ufunc {name!r}"


# ---------------------------------------------------------------------------
# arrays built from traced values: np.array([...]) / np.asarray(...) of traced values
#
# numpy's np.array is not dispatched by __array_function__, but it asks every element for
# __array__; a traced value answers with an object array of ``Elem``s, one per entry, so
# np.array([a*x - b*x*y, c*x*y - d*y]) is a numpy object array of shape (2,).  Numpy's object
# loops then compute with the elements (every operator and method of a Box works on them,
# entry by entry), and the first primitive that meets an object array holding traced
# values (a traced argument beside it, np.sum via the Box it returns, the output of a
# transform) packs it back into one traced array with one concatenate and one gather
# (``pack``).  Its cost: one Python object per entry at np.array time and an elementwise
# loop for arithmetic done on the object array itself; nothing at all for plain arrays.
# ---------------------------------------------------------------------------

def _snapshot(b):
    """A new box with ``b``'s current value and trace (later in-place writes to ``b`` do
    not reach it: np.array copies)."""
    c = object.__new__(b.__class__)
    for cls in b.__class__.__mro__:
        for s in getattr(cls, "__slots__", ()):
            if s not in ("__weakref__", "_grad") and hasattr(b, s):
                object.__setattr__(c, s, getattr(b, s))
    hold = getattr(c._trace, "hold", None)  # a hand-made Dual keeps its trace recording
    if hold is not None:
        hold()
    return c


class Elem(Box):
    """One entry of a numpy object array made from traced values (``np.array([x, y])``).

    ``origin`` is (source, flat index) into a snapshot of the traced array it came from;
    its ``value`` (that entry, traced) is computed the first time it is used, so packing the
    array back needs no per-entry work.  Every operation whose traced arguments are all
    elements gives an element again, whose dtype is ``object`` like its array's, so numpy's
    own code for object arrays (np.mean, np.var of a list...) runs unchanged."""

    __slots__ = ("_v", "origin")

    def __init__(self, value=None, origin=None):
        self._v, self.origin, self._trace = value, origin, _OBJECTS

    @property
    def value(self):
        if self._v is None:
            src, i = self.origin
            self._v = src if _ndim(src) == 0 else P.getitem(
                src, idx=tuple(int(k) for k in np.unravel_index(i, _shape(src))))
        return self._v

    @value.setter
    def value(self, v):
        self._v, self.origin = v, None

    shape, ndim, size = (), 0, 1
    dtype = np.dtype(object)

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != object:
            _no_float_array(self)
        a = np.empty((), object)
        a[()] = self
        return a


def _has_boxes(a):
    return any(isinstance(e, Box) for e in a.flat)


def pack(a):
    """An object array holding traced values as one traced array: ``a`` itself if it
    holds none."""
    srcs, ids, pos, consts = [], {}, [], []
    for e in a.flat:
        if e.__class__ is Elem and e._v is None:
            src, i = e.origin
        elif isinstance(e, Box):
            src, i = (e.value if e.__class__ is Elem else e), 0
            if _ndim(src) != 0:
                raise TypeError("dualgrad: an object array holds a traced array of shape "
                                f"{_shape(src)} as one entry; use np.stack to build it")
        else:
            consts.append(e)
            pos.append(-len(consts))
            continue
        k = ids.get(id(src))
        if k is None:
            k = ids[id(src)] = len(srcs)
            srcs.append(src)
        pos.append((k, i))
    if not srcs:
        return a
    offsets = np.cumsum([0] + [_size(s) for s in srcs])
    total = int(offsets[-1])
    where = np.array([total - 1 - p if p.__class__ is int else offsets[p[0]] + p[1]
                      for p in pos], dtype=np.intp).reshape(a.shape)
    parts = [reshape(s, (-1,)) for s in srcs]
    if consts:
        parts.append(np.array(consts))
    flat = parts[0] if len(parts) == 1 else P.concatenate(*parts, axis=-1)
    if where.size == total + len(consts) and np.array_equal(where.ravel(), np.arange(where.size)):
        return reshape(flat, a.shape)  # entries in order: no gather
    return P.getitem(flat, idx=(where,))


def lift_out(x):
    """A transform's output as a traced value: an element unwrapped, an object array of
    traced values packed; anything else as it is."""
    if x.__class__ is Elem:
        return x.value
    if x.__class__ is np.ndarray and x.dtype == object and _has_boxes(x):
        return pack(x)
    return x


class _ObjectTrace(Trace):
    """The trace above all others: it packs object arrays and unwraps elements among a
    primitive's arguments, applies the primitive, and wraps the result as an element when
    every traced argument was one.  It never counts as recording (``tracing()``)."""

    __slots__ = ()

    def __init__(self):
        self.level, self.active = np.inf, True

    @staticmethod
    def pack(a):
        """``np.array([x, y])`` of traced values as one traced array (``pack``)."""
        return pack(a)

    def process(self, prim, args, kw):
        new, lifted, changed = [], True, False
        for a in args:
            if a.__class__ is Elem:
                a, changed = a.value, True
            elif a.__class__ is np.ndarray and a.dtype == object:
                p = pack(a)
                if p is not a:
                    a, changed, lifted = p, True, False
            elif isinstance(a, Box):
                lifted = False
            new.append(a)
        if not changed:  # object arrays of plain Python objects: numpy's own business
            top = None
            for a in new:
                if isinstance(a, Box) and (top is None or a._trace.level > top.level):
                    top = a._trace
            if top is None:
                return prim.impl(*new, **kw)
            if not top.active:
                top.leaked(prim)
            return top.process(prim, new, kw)
        r = prim(*new, **kw)
        return Elem(r) if lifted and isinstance(r, Box) and _ndim(r) == 0 else r


_OBJECTS = _ObjectTrace()
OBJECTS[0] = _OBJECTS


def _no_float_array(self):
    raise TypeError(
        "dualgrad: a traced value cannot be stored in a plain float array (np.array(..., "
        "dtype=float), np.asarray(x, float), np.float64(x), out[i] = x into an array made by "
        "np.zeros/np.empty, rng.normal(loc=x) and the other numpy.random Generator methods): "
        "its derivative would be lost. Leave out the dtype (np.array([...]) of traced values "
        "works), write into a traced array instead (y = np.zeros_like(x) with x traced, then "
        "y[i] = v), collect the pieces in a list and np.stack them, or reparameterise a "
        "random draw (loc + scale * rng.standard_normal(shape)). Use dg.stop_gradient(x) if "
        "no derivative is wanted.")


def _array(self, dtype=None, copy=None):
    """``np.array(x)`` / ``np.asarray(x)`` of a traced x: an object array of its entries."""
    if dtype is not None and np.dtype(dtype) != object:
        caller = sys._getframe(1).f_code  # only on the way to an error
        if caller.co_name in ("_mean", "_var", "_std") and "numpy" in caller.co_filename:
            fn = caller.co_name[1:]
            raise TypeError(
                f"dualgrad: np.{fn}([...]) (np.mean, np.var, np.std) of a list of traced "
                "numbers cannot carry a "
                f"derivative (numpy finishes it with np.float64(...)); write "
                f"np.{fn}(np.stack([...])) instead (a list of traced arrays works as it is)")
        if np.dtype(dtype).kind in "iub":
            raise TypeError(
                f"dualgrad: converting a traced value to {np.dtype(dtype)} (np.int64(x), "
                f"np.asarray(x, int)): integers have no derivative; x.astype({np.dtype(dtype)})"
                " gives the raw integers, or use dg.stop_gradient(x)")
        _no_float_array(self)
    check_live(self, "numpy.array")
    shape = self.shape
    src = _snapshot(self)
    out = np.empty(int(np.prod(shape, dtype=np.int64)), object)
    for i in builtins.range(out.size):
        out[i] = Elem(None, (src, i))
    return out.reshape(shape)


# ---------------------------------------------------------------------------
# in-place updates on traced arrays: y[i] = v, y[mask] = v, y[a:b] += v, x += y, x *= 2
#
# A traced array cannot be written (its value is on the tape), so ``y[idx] = v`` records
# ``index_set(y, v, idx)`` (JAX's y.at[idx].set(v)) and makes the box ``y`` stand for the
# new value: every reference to that same box sees the write, as for a numpy array.  Python
# runs ``y[idx] += v`` as ``t = y[idx]; t += v; y[idx] = t``, which is numpy's buffered
# semantics (a repeated index gets one update, the last).  Aliasing, as in JAX: a view taken
# earlier (``z = y[1:]``, ``np.array(y)``) is a value of its own and does not see later
# writes to ``y``.  A traced Python or numpy scalar is immutable, as in numpy: ``s += 1``
# rebinds the name only.
# ---------------------------------------------------------------------------

def _rebind(box, new, what):
    """Make ``box`` stand for the traced value ``new`` (an in-place write)."""
    if new.__class__ is not box.__class__:
        raise TypeError(
            f"dualgrad: {what} writes a value traced by a nested transform into an array "
            f"traced by an outer one ({type(new).__name__} into {type(box).__name__}); make "
            "the array inside the inner function (y = y + 0.0 there) or return the new value")
    leaves = getattr(box._trace, "_leaves", None)
    if leaves and box._trace.entries[box.index].prim is None \
            and any(r() is box for r in leaves):
        raise TypeError(f"dualgrad: {what} would overwrite a value watched by this Tape; "
                        "write into a copy (y = x + 0.0) instead")
    old = box._trace
    for cls in box.__class__.__mro__:
        for s in getattr(cls, "__slots__", ()):
            if s not in ("__weakref__", "_grad") and hasattr(new, s):
                object.__setattr__(box, s, getattr(new, s))
    hold, release = getattr(box._trace, "hold", None), getattr(old, "release", None)
    if hold is not None:
        hold()
    if release is not None:
        release()


def _setitem(self, key, value):
    check_live(self, "setitem")
    raw = unbox(self)
    raw = getattr(raw, "__dualgrad_raw__", raw)  # under dg.jit: the recorded value
    if raw.__class__ is not np.ndarray and P.device_like(raw) is None:
        raise TypeError(f"dualgrad: {type(raw).__name__!r} object does not support item "
                        "assignment (a traced number is immutable, as in numpy)")
    if isinstance(value, (list, tuple)) or (value.__class__ is np.ndarray
                                            and value.dtype == object):
        value = lift_out(np.array(value, dtype=object) if isinstance(value, (list, tuple))
                         else value)
    _rebind(self, P.index_set(self, value, idx=_index(key)), f"y[{key!r}] = v")


def _inplace(prim, name):
    def op(self, other):
        check_live(self, name)
        new = prim(self, other)
        raw = unbox(self)
        if raw.__class__ is not np.ndarray or new.__class__ is not self.__class__:
            return new  # an immutable number (or a value of another trace): a new value
        if _shape(new) != raw.shape:
            raise ValueError(f"non-broadcastable output operand with shape {raw.shape} "
                             f"doesn't match the broadcast shape {_shape(new)}")
        if P.float_dtype(new) != raw.dtype and raw.dtype.kind in "fc":
            new = astype(new, raw.dtype)  # x += y keeps x's dtype, as numpy's casting does
        _rebind(self, new, f"x {name} y")
        return self
    return op


def _add_at(a, indices, b=None):
    """np.add.at(y, idx, v) on a traced y: unbuffered, a repeated index adds every time."""
    idx = _index(indices)
    tshape = np.empty(_shape(a), bool)[idx].shape
    v = broadcast_to(b, tshape) if _shape(b) != tshape else b
    _rebind(a, P.add(a, P.scatter_add(v, idx=idx, shape=_shape(a))), "numpy.add.at")


# ---------------------------------------------------------------------------
# the Box interface: operators and methods, shared by Dual and tape values
# ---------------------------------------------------------------------------

def _op(prim):
    def op(self, other):
        if not self._trace.active:
            check_live(self, prim.name)
        return prim(self, other)
    return op


def _pow(self, other):
    """``x ** 2`` of an array is ``square(x)`` (bitwise the same in numpy): one fused
    value-and-derivative pass where the backend has a kernel, instead of a power rule."""
    if not self._trace.active:
        check_live(self, "power")
    if other.__class__ in (int, float) and other == 2 and self.value.__class__ is np.ndarray:
        return P.square(self)  # arrays only: a Python float stays a float
    return P.power(self, other)


def _swap(prim):
    def op(self, other):
        if not self._trace.active:
            check_live(self, prim.name)
        return prim(other, self)
    return op


def _method(fn):
    def method(self, *args, **kw):
        if not self._trace.active:
            check_live(self, fn.__name__)
        return fn(self, *args, **kw)
    return method


def _unary(prim):
    def op(self):
        if not self._trace.active:
            check_live(self, prim.name)
        return prim(self)
    return op


def _shape_args(args):
    return args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


_BOX_METHODS = dict(
    __add__=_op(P.add), __radd__=_swap(P.add), __sub__=_op(P.subtract),
    __rsub__=_swap(P.subtract), __mul__=_op(P.multiply), __rmul__=_swap(P.multiply),
    __truediv__=_op(P.divide), __rtruediv__=_swap(P.divide), __pow__=_pow,
    __rpow__=_swap(P.power), __matmul__=_op(P.matmul), __rmatmul__=_swap(P.matmul),
    __mod__=_op(P.remainder), __rmod__=_swap(P.remainder),
    __neg__=_unary(P.negative), __pos__=_unary(P.positive), __abs__=_unary(P.absolute),
    __getitem__=_method(getitem), __setitem__=_setitem,
    __iadd__=_inplace(P.add, "+="), __isub__=_inplace(P.subtract, "-="),
    __imul__=_inplace(P.multiply, "*="), __itruediv__=_inplace(P.divide, "/="),
    __ipow__=_inplace(_pow, "**="), __imatmul__=_inplace(P.matmul, "@="),
    __imod__=_inplace(P.remainder, "%="),
    __array_ufunc__=_array_ufunc, __array_function__=_array_function, __array__=_array,
    sum=_method(sum), mean=_method(mean), var=_method(var), std=_method(std),
    prod=_method(prod), max=_method(max), min=_method(min), cumsum=_method(cumsum),
    cumprod=_method(cumprod), dot=_method(dot), clip=_method(clip), astype=_method(astype),
    trace=_method(trace), diagonal=_method(diagonal), squeeze=_method(squeeze),
    repeat=_method(repeat), ravel=_method(ravel), flatten=_method(ravel),
    swapaxes=_method(swapaxes), take=_method(take),
    conj=_unary(P.conjugate), conjugate=_unary(P.conjugate),
    reshape=_method(lambda self, *shape, **kw: reshape(self, _shape_args(shape), **kw)),
    transpose=_method(lambda self, *axes: transpose(self, _shape_args(axes) or None)),
)
for _name, _fn in _BOX_METHODS.items():
    setattr(Box, _name, _fn)

def _stage(x):
    """The graph being recorded (``dg.jit``, jit.py) under x's derivative levels, or None:
    it records comparisons and ``bool()`` as guards, so Python control flow replays right."""
    while isinstance(x, Box):
        t = x._trace
        if t.read is not None and t.active:
            return t
        x = x.value
    return None


def _compare(op):
    def compare(self, other):
        a, b = _stage(self), _stage(other)
        if a is not None or b is not None:
            stage = a if b is None or (a is not None and a.level > b.level) else b
            return stage.compare(op, self, other)
        return op(unbox(self), unbox(other))
    return compare


def _bool(self):
    stage = _stage(self)
    if stage is not None:
        return stage.guard("bool", self)
    return bool(unbox(self.value))


for _name, _op in dict(__lt__=operator.lt, __le__=operator.le, __gt__=operator.gt,
                       __ge__=operator.ge, __eq__=operator.eq, __ne__=operator.ne).items():
    setattr(Box, _name, _compare(_op))
Box.__hash__ = object.__hash__
Box.shape = property(lambda self: np.shape(unbox(self.value)))
Box.ndim = property(lambda self: np.ndim(unbox(self.value)))
Box.size = property(lambda self: int(np.size(unbox(self.value))))
Box.dtype = property(lambda self: np.result_type(unbox(self.value)))
Box.T = property(_method(transpose))
Box.mT = property(_method(lambda self: swapaxes(self, -1, -2)))
Box.real = property(_unary(P.real))
Box.imag = property(_unary(P.imag))
Box.__len__ = lambda self: len(unbox(self.value))
Box.__iter__ = lambda self: (self[i] for i in builtins.range(len(self)))
Box.__bool__ = _bool
for _u in P.UFUNCS:  # numpy's object loops call x.sin() for np.sin of an object array
    if _u.nin == 1 and not hasattr(Box, _u.__name__):
        setattr(Box, _u.__name__, (lambda u: lambda self: u(self))(_u))


def _no_number(what, instead):
    def refuse(self, *args):
        raise TypeError(f"dualgrad: {what} of a traced value would drop its derivative; "
                        f"{instead}, or use dg.stop_gradient(x) if no derivative is wanted")
    refuse.__name__ = what
    return refuse


Box.__float__ = _no_number(
    "float()", "keep it an array (Python's math module calls float(): use np.sin, np.exp, "
    "np.sqrt, ... instead of math.sin, math.exp, math.sqrt; storing it into a plain numpy "
    "array, out[i] = x, calls float() too: make out traced with out = np.zeros_like(x) for a "
    "traced x, or collect the pieces in a list and np.array/np.stack them)")
Box.__int__ = _no_number("int()", "integers have no derivative: keep it an array")
Box.__complex__ = _no_number("complex()", "keep it an array (x + 0j is complex and traced)")
Box.__index__ = _no_number("using it as an integer (an index, a size, range())",
                           "compute indices and sizes from plain values")
Box.__round__ = _no_number("round()", "np.round(x) rounds and keeps an array (derivative 0)")
Box.item = _no_number("x.item()", "keep x as a 0-d array")


def _guarded(how, refuse):
    """int()/float()/.item() of a value a graph records (``dg.jit``) is its number, kept
    as a guard; of a value a derivative traces it stays an error."""
    def convert(self, *args):
        t = self._trace
        if t.read is not None and t.active and not args:
            return t.guard(how, self)
        return refuse(self, *args)
    convert.__name__ = refuse.__name__
    return convert


for _name, _how in dict(__float__="float", __int__="int", __index__="index",
                        __complex__="complex", item="item").items():
    setattr(Box, _name, _guarded(_how, getattr(Box, _name)))
Box.tolist = _no_number("x.tolist()", "keep x an array (np.stack/np.concatenate build arrays)")
# formatting only reads the number: f"{loss:.4f}" inside a traced function prints its value
Box.__format__ = lambda self, spec: format(unbox(self), spec)
Box.__repr__ = lambda self: f"{type(self).__name__}({self.value!r})"
