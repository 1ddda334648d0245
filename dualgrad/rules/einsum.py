"""``einsum``: one multilinear row for tensordot, inner and friends; its VJP for each
argument is another einsum.
"""

import numpy as np

from ..core.trace import IndexedRules
from .elementwise import add
from .structure import broadcast_to, reshape
from .table import batch_shape, bfront, defprim, ndim_of, shape_of

# -- einsum: one multilinear primitive for tensordot, inner and friends --------

def _einsum_parse(subscripts):
    ins, out = subscripts.split("->")
    return ins.split(","), out


def _fresh_letters(subscripts, n):
    used = set(subscripts)
    return "".join([c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used][:n])


def _einsum_impl(*xs, subscripts):
    return np.einsum(subscripts, *xs, optimize=len(xs) > 2)


def _spell_ellipsis(ins, out, shapes, letters):
    """Subscripts with every ``...`` replaced by explicit ``letters``, right-aligned as
    numpy broadcasts ellipsis axes, and the broadcast shape of those axes."""
    ells = [len(shape) - len(s.replace("...", "")) if "..." in s else 0
            for s, shape in zip(ins, shapes)]
    n = max(ells, default=0)
    E = letters[:n]
    parts = []
    for s, shape, k in zip(ins, shapes, ells):
        if "..." in s:
            at = s.index("...")
            parts.append(tuple(shape[at:at + k]))
    bshape = np.broadcast_shapes(*parts) if parts else ()
    spelled = [s.replace("...", E[n - k:]) for s, k in zip(ins, ells)]
    return spelled, out.replace("...", E), dict(zip(E, bshape))


def _einsum_vjp(i):
    def rule(g, ans, *xs, subscripts):
        ins, out = _einsum_parse(subscripts)
        nb = ndim_of(g) - ndim_of(ans)
        fresh = _fresh_letters(subscripts, 26)
        B = fresh[:nb]
        if len(set(ins[i].replace("...", ""))) != len(ins[i].replace("...", "")):
            raise TypeError(f"einsum: no derivative for an operand with a repeated index "
                            f"({ins[i]!r}); use np.diagonal instead")
        shapes = [shape_of(x) for x in xs]
        ins, out, ell = _spell_ellipsis(ins, out, shapes, fresh[nb:])
        # ellipsis axes broadcast from size 1: make them explicit so the letters agree
        others, operands = [], []
        for j, (s, x) in enumerate(zip(ins, xs)):
            if j == i:
                continue
            full = tuple(ell.get(c, n) for c, n in zip(s, shapes[j]))
            operands.append(x if full == shapes[j] else broadcast_to(x, full))
            others.append(s)
        target, xs_shape = ins[i], shapes[i]
        present = set("".join(others) + out)
        # a letter the cotangent lacks is summed inside operand i alone (broadcast back);
        # an ellipsis axis of size 1 that the others broadcast is summed to size 1
        kept = "".join(c for c, n in zip(target, xs_shape)
                       if c in present and not (n == 1 and ell.get(c, 1) != 1))
        sub = ",".join(others + [B + out]) + "->" + B + kept
        c = einsum(*operands, g, subscripts=sub)
        if kept != target:
            bs = batch_shape(g, ans)
            c = reshape(c, bs + tuple(n if ch in kept else 1 for ch, n in zip(target, xs_shape)))
            c = broadcast_to(c, bs + xs_shape) if shape_of(c) != bs + xs_shape else c
        return c
    return rule


def _einsum_jvp(tangents, ans, *xs, subscripts):
    ins, out = _einsum_parse(subscripts)
    total = None
    for i, t in enumerate(tangents):
        if t is None:
            continue
        B = _fresh_letters(subscripts, ndim_of(t) - ndim_of(xs[i]))
        sub = ",".join(ins[:i] + [B + ins[i]] + ins[i + 1:]) + "->" + B + out
        r = einsum(*xs[:i], t, *xs[i + 1:], subscripts=sub)
        total = r if total is None else add(total, r)
    return total


def _einsum_batch(args, dims, subscripts):
    """einsum with a batch axis: one more letter, in front of each batched operand and of
    the output."""
    ins, out = _einsum_parse(subscripts)
    b = _fresh_letters(subscripts, 1)
    ins = [s if d is None else b + s for s, d in zip(ins, dims)]
    xs = [bfront(x, d) for x, d in zip(args, dims)]
    return einsum(*xs, subscripts=",".join(ins) + "->" + b + out), 0


einsum = defprim("einsum", _einsum_impl, jvp=_einsum_jvp, vjp=IndexedRules(_einsum_vjp),
                 batch=_einsum_batch)
