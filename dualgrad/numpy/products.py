"""Products: einsum, tensordot, dot, inner, outer, vdot, kron, cross.

Every contraction is the ``einsum`` row (``matmul`` for ``dot`` of matrices); einsum's
sublist form, implicit output and repeated letters (a diagonal, taken first) are
normalised here.  The ``np.linalg`` functions are in linalg.py.
"""

import warnings

import numpy as np

from .. import rules as P
from . import reductions
from .dispatch import _arr, _no, implements
from .gather import diagonal
from .shapes import moveaxis, ravel, reshape, stack

_shape, _ndim = P.shape_of, P.ndim_of


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
    return reductions.sum(P.multiply(a, ravel(b)))


@implements(np.kron)
def kron(a, b):
    """Every product a[i] * b[j], laid out as numpy's Kronecker blocks: one broadcast
    multiply between interleaved axes, then a reshape."""
    a, b = _arr(a), _arr(b)
    nd = max(_ndim(a), _ndim(b))
    sa = (1,) * (nd - _ndim(a)) + tuple(_shape(a))
    sb = (1,) * (nd - _ndim(b)) + tuple(_shape(b))
    A = reshape(a, tuple(v for n in sa for v in (n, 1)))
    B = reshape(b, tuple(v for n in sb for v in (1, n)))
    return reshape(P.multiply(A, B), tuple(x * y for x, y in zip(sa, sb)))


@implements(np.cross)
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = moveaxis(_arr(a), axisa, -1), moveaxis(_arr(b), axisb, -1)
    na, nb = _shape(a)[-1], _shape(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError("incompatible dimensions for cross product\n"
                         "(dimension must be 2 or 3)")
    if na == 2 or nb == 2:
        warnings.warn("Arrays of 2-dimensional vectors are deprecated. Use arrays of "
                      "3-dimensional vectors instead. (deprecated in NumPy 2.0)",
                      DeprecationWarning, stacklevel=2)
    a0, a1, b0, b1 = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    c2 = P.subtract(P.multiply(a0, b1), P.multiply(a1, b0))
    if na == 2 and nb == 2:
        return c2
    a2 = a[..., 2] if na == 3 else 0.0
    b2 = b[..., 2] if nb == 3 else 0.0
    c0 = P.subtract(P.multiply(a1, b2), P.multiply(a2, b1))
    c1 = P.subtract(P.multiply(a2, b0), P.multiply(a0, b2))
    c = stack([c0, c1, c2], axis=-1)
    return moveaxis(c, -1, axisc)
