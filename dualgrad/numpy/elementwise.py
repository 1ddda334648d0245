"""Elementwise functions built from rows: ``where``, ``clip``, ``astype``, complex parts,
``select``, ``piecewise``, ``nan_to_num``, ``sinc``, ``nextafter``.

(The ufuncs themselves, ``np.sin`` and the rest, are rows of the table that dispatch.py
applies directly.)  A mask or a choice computed from raw values is a constant; the values
chosen keep their derivative.  ``_track`` gives numpy's exact value a derivative that
flows through the traced inputs.
"""

import warnings

import numpy as np

from .. import rules as P
from ..core.trace import Box, unbox
from .dispatch import _arr, _no, implements
from .indexing import getitem
from .shapes import broadcast_to, reshape

_shape, _ndim = P.shape_of, P.ndim_of


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


def astype(x, dtype, order="K", casting="unsafe", subok=True, copy=True):
    """x.astype(dtype): a row for float and complex dtypes, raw values for the others.
    ``copy`` changes nothing: a traced value is never written in place, so a copy and the
    original are indistinguishable (x.astype(x.dtype, copy=False) is x)."""
    dtype = np.dtype(dtype)
    if not np.can_cast(np.result_type(unbox(x)), dtype, casting):
        raise TypeError(f"Cannot cast array data from {np.result_type(unbox(x))} to {dtype} "
                        f"according to the rule {casting!r}")
    if copy is False and dtype == np.result_type(unbox(x)) and isinstance(x, Box):
        return x
    if dtype.kind not in "fc":
        return unbox(x).astype(dtype)
    if dtype.kind == "f" and P.is_complex(x):  # numpy keeps the real part, and warns
        warnings.warn("Casting complex values to real discards the imaginary part",
                      np.exceptions.ComplexWarning, stacklevel=2)
        x = P.real(x)
    return P.astype(x, dtype=dtype)


if hasattr(np, "astype"):  # NumPy >= 2.1
    @implements(np.astype)
    def _np_astype(x, dtype, /, *, copy=True, device=None):
        return astype(x, dtype, copy=copy)


@implements(np.heaviside)
def heaviside(x1, x2, **kw):
    """0 where x1 < 0, x2 where x1 == 0, 1 where x1 > 0 (nan where x1 is): derivative 0
    in x1 almost everywhere, and x2's own where x1 == 0 (a where)."""
    _no(kw, "heaviside", where=True, casting="same_kind", order="K", dtype=None, subok=True)
    r1 = unbox(x1)  # under dg.vmap a batch of raw values, still a box: numpy's ufuncs here
    dtype = np.result_type(*(getattr(v, "dtype", v) for v in (r1, unbox(x2))))
    step = P.where(np.isnan(r1), np.asarray(np.nan, dtype),
                   P.where(r1 > 0, np.ones((), dtype), np.zeros((), dtype)))
    return P.where(r1 == 0, x2, step)


@implements(np.select)
def select(condlist, choicelist, default=0):
    if len(condlist) != len(choicelist):
        raise ValueError("list of cases must be same length as list of conditions")
    if len(condlist) == 0:
        raise ValueError("select with an empty condition list is not possible")
    out = _arr(default)
    for i in reversed(range(len(condlist))):  # the first true condition wins
        c = np.asarray(unbox(condlist[i]))
        if c.dtype != bool:
            raise TypeError(f"invalid entry {i} in condlist: should be boolean ndarray")
        out = P.where(c, _arr(choicelist[i]), out)
    shape = np.broadcast_shapes(*[np.shape(unbox(c)) for c in condlist],
                                *[_shape(v) for v in choicelist], _shape(default))
    return broadcast_to(out, shape)


@implements(np.piecewise)
def piecewise(x, condlist, funclist, *args, **kw):
    """numpy's piecewise as gathers and scatters: each piece gets x[cond] (a gather) and
    its values are scattered back; a later condition wins where two overlap, as in numpy."""
    x = _arr(x)
    rx = np.asarray(unbox(x))
    if isinstance(condlist, np.ndarray) or not isinstance(condlist, (list, tuple)) or (
            condlist and np.ndim(unbox(condlist[0])) == 0 and rx.ndim != 0):
        condlist = [condlist]
    conds = [np.broadcast_to(np.array(unbox(c), bool), rx.shape) for c in condlist]  # copies
    if len(funclist) == len(conds) + 1:
        conds.append(~np.any(conds, axis=0) if conds else np.ones(rx.shape, bool))
    elif len(funclist) != len(conds):
        raise ValueError(f"with {len(conds)} condition(s), either {len(conds)} or "
                         f"{len(conds) + 1} functions are expected")
    taken = np.zeros(rx.shape, bool)
    dtype = np.result_type(rx)
    out = np.zeros(rx.shape, dtype)
    flat = reshape(x, (-1,))
    for cond, fn in reversed(list(zip(conds, funclist))):
        mask = cond & ~taken
        taken |= cond
        if not mask.any():
            continue
        where_flat = np.flatnonzero(mask)
        if callable(fn):
            v = fn(reshape(getitem(flat, (where_flat,)), (-1,)), *args, **kw)
        else:
            v = fn
        v = _arr(v)
        if not isinstance(v, Box):
            v = np.asarray(v, dtype)
        v = broadcast_to(v, (where_flat.size,)) if _shape(v) != (where_flat.size,) else v
        out = P.add(out, reshape(P.scatter_add(v, idx=(where_flat,), shape=(rx.size,)),
                                     rx.shape))
    return out


@implements(np.nan_to_num)
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """Derivative 1 at finite entries, 0 where a nan or an infinity was replaced."""
    x0 = x = _arr(x)
    if P.is_complex(x):
        re, im = (nan_to_num(p, copy, nan, posinf, neginf) for p in (P.real(x), P.imag(x)))
        return P.add(re, P.multiply(im, 1j))
    dt = x.dtype if isinstance(x, Box) else np.asarray(x).dtype
    if dt.kind not in "fc":
        return x
    big = np.finfo(dt).max
    posinf = big if posinf is None else posinf
    neginf = -big if neginf is None else neginf
    # the masks of x itself: under dg.vmap one per example (the raw batch is no array of
    # x's: its NaNs were left in place), under dg.jit values of the graph
    inf = np.isinf(x0)
    for mask, v in ((np.isnan(x0), nan), (inf & (x0 > 0), posinf), (inf & (x0 < 0), neginf)):
        if mask.__class__ is not np.ndarray or np.any(mask):
            x = P.where(mask, astype(v, dt) if isinstance(v, Box) else np.asarray(v, dt), x)
    return P.positive(x) if x is x0 and copy else x  # copy=True: a new array, as numpy's


# ---------------------------------------------------------------------------
# complex numbers (the rules, and JAX's conventions: "complex numbers" in rules/elementwise.py)
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


@implements(np.real_if_close)
def real_if_close(a, tol=100):
    if not P.is_complex(a):
        return a
    ra = np.asarray(unbox(a))
    if tol > 1:
        tol = np.finfo(ra.dtype).eps * tol
    return P.real(a) if np.all(np.absolute(ra.imag) < tol) else a


@implements(np.iscomplex)
def iscomplex(x):
    return np.iscomplex(unbox(x))  # booleans: no derivative


@implements(np.isreal)
def isreal(x):
    return np.isreal(unbox(x))


# ---------------------------------------------------------------------------
# numpy's value, differentiated
# ---------------------------------------------------------------------------

def _track(raw, pieces):
    """``raw`` (numpy's exact value) carrying the derivative of ``sum_i c_i * (v_i - raw(v_i))``
    for (traced v_i, constant c_i) in ``pieces``: every added term is exactly zero, so the
    value is numpy's to the bit while the derivative flows through the v_i."""
    out = raw
    for v, c in pieces:
        if isinstance(v, Box):
            out = P.add(out, P.multiply(P.subtract(v, unbox(v)), c))
    return out


@implements(np.nextafter)
def nextafter(x1, x2, **kw):
    """The next float after x1 towards x2: derivative 1 in x1, as for the identity."""
    return _track(np.nextafter(unbox(x1), unbox(x2), **kw), [(x1, 1.0)])


@implements(np.sinc)
def sinc(x):
    """sin(pi x) / (pi x), with its Taylor polynomial near 0, so that every derivative at
    and around 0 is exact (the quotient's rules would cancel catastrophically there)."""
    x = _arr(x)
    small = np.abs(unbox(x)) < 1e-2
    y = P.multiply(np.pi, x)
    if not np.any(small):
        return P.divide(P.sin(y), y)
    taylor = _horner(P.square(y), (1 / 362880, -1 / 5040, 1 / 120, -1 / 6, 1.0))
    ys = P.where(small, 1.0, y)
    return P.where(small, taylor, P.divide(P.sin(ys), ys))


def _horner(z, coeffs):
    r = coeffs[0]
    for c in coeffs[1:]:
        r = P.add(P.multiply(r, z), c)
    return r
