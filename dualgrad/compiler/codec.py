"""Values as plain tuples for ``marshal`` and back: what dg.jit's build cache
(buildcache.py) writes for each constant, parameter and function a build holds, and reads
back field by field.  Each non-scalar is tagged by its first item; anything of another
kind is ``Uncacheable`` on the way in and a ``ValueError`` on the way out: no pickle, no
code object.  ``_Refs`` holds what an encoding refers to rather than holds (guard sites,
the constants' table, one copy of each array)."""

import functools
import operator
import sys

import numpy as np

from .graph import Const
from .record import Site


class Uncacheable(Exception):
    """The graph holds something this cache cannot describe: it is built as before."""


# What the build runs, as imported: a module global rebound since (a test's monkeypatch)
# may build differently from what the key says: then nothing is loaded or filed.
_SCALARS = (type(None), bool, int, float, complex, str, bytes)


def _array(a):
    """An array constant with its bytes and its layout (C or F order, or a broadcast of
    such an array: a reduction's order of summation follows the layout, and so may its
    last bits); Uncacheable for another layout."""
    dt = a.dtype
    if dt.hasobject or dt.fields is not None or dt.kind == "V":
        raise Uncacheable("an array of objects or records")
    if a.flags.c_contiguous or a.flags.f_contiguous:
        order = "C" if a.flags.c_contiguous else "F"
        return ("A", dt.str, a.shape, order, a.tobytes(order=order), a.flags.writeable)
    spread = [n > 1 and s == 0 for n, s in zip(a.shape, a.strides)]
    if any(spread) and not a.flags.writeable:
        one = a[tuple(slice(0, 1) if z else slice(None) for z in spread)]
        if one.flags.c_contiguous or one.flags.f_contiguous:
            return ("V", _array(one), a.shape)
    raise Uncacheable("a strided constant")


def _fn(f):
    """A raw node's function, by name: a numpy ufunc, an ``operator`` function, a numpy
    function, or a ``functools.partial`` of one with keywords only."""
    if f.__class__ is functools.partial:
        if f.args:
            raise Uncacheable("a partial with positional arguments")
        return ("p", _fn(f.func), _enc(f.keywords))
    name = getattr(f, "__name__", None)
    if isinstance(f, np.ufunc) and getattr(np, name, None) is f:
        return ("u", name)
    if name is not None and getattr(operator, name, None) is f:
        return ("o", name)
    module, qual = getattr(f, "__module__", None), getattr(f, "__qualname__", None)
    if module and qual and module.split(".")[0] == "numpy" and _resolve(module, qual) is f:
        return ("n", module, qual)
    raise Uncacheable(f"the function {f!r:.60}")


def _resolve(module, qual):
    m = sys.modules.get(module)
    for part in qual.split("."):
        m = getattr(m, part, None)
    return m


class _Refs:
    """What encoded values refer to rather than hold: the recording's guard sites (by
    position) and, in a stored build, its constants (by position in one table, so that
    the fused graph, the optimised graph and the kernels' regions share each ``Const``
    object again when read back, as regions key constants by identity)."""

    __slots__ = ("sites", "consts", "table", "values", "arrays", "contents")

    def __init__(self, sites, consts=False):
        self.sites = sites  # writing: id(site) -> position; reading: the sites
        self.consts = {} if consts else None  # writing: id(const) -> position
        self.table = []  # writing: the Consts in order; reading: the Consts read back
        self.values = {}  # writing: id(value) -> (position, value): one array, one copy
        self.arrays = []  # reading: the values table read back, by position
        self.contents = {}  # writing: an array parameter's encoding -> position

    def const(self, c):
        k = self.consts.get(id(c))
        if k is None:
            k = self.consts[id(c)] = len(self.table)
            self.table.append(c)
        return k

    def value(self, v):
        return self.values.setdefault(id(v), (len(self.values), v))[0]

    def array(self, v):
        """The position of array parameter ``v`` in the values table: one entry per
        content (a loop that makes its index array anew each step, as GradBench's fluid
        simulation does, files 210 arrays for its 3,700: 17 MB, not 296)."""
        k = self.values.get(id(v))
        if k is not None:
            return k[0]
        enc = _array(v)
        k = self.contents.get(enc)
        if k is None:
            k = self.contents[enc] = self.value(v)
        return k


def _enc(v, sites=None):
    """``v`` as nested tuples of Python scalars, each non-scalar tagged by its first item;
    Uncacheable for a value of any other kind.  ``sites``: a ``_Refs``."""
    c = v.__class__
    if c in _SCALARS:
        return v
    if c is tuple:
        return ("T",) + tuple(_enc(x, sites) for x in v)
    if c is list:
        return ("L",) + tuple(_enc(x, sites) for x in v)
    if c is dict:
        return ("D",) + tuple((_enc(k, sites), _enc(x, sites)) for k, x in v.items())
    if c is np.ndarray:
        if sites is not None and sites.consts is not None:  # a stored build: one copy of
            return ("R", sites.array(v))  # an index array a thousand ops take (a loop's)
        return _array(v)
    if isinstance(v, np.generic) and c is getattr(np, c.__name__, None):
        return ("G", v.dtype.str, v.tobytes())
    if isinstance(v, np.dtype):
        if v.hasobject or v.fields is not None:
            raise Uncacheable("a dtype of objects or records")
        return ("Y", v.str)
    if c is slice:
        return ("s", _enc(v.start), _enc(v.stop), _enc(v.step))
    if v is Ellipsis:
        return ("E",)
    if c is type:
        if v in (float, int, bool, complex):
            return ("B", v.__name__)
        if issubclass(v, np.generic) and getattr(np, v.__name__, None) is v:
            return ("N", v.__name__)
    if c is Const:
        if sites is not None and sites.consts is not None:
            return ("q", sites.const(v))
        return ("c", _enc(v.value, sites))
    if c is Site and sites is not None:
        k = sites.sites.get(id(v))
        if k is not None:
            return ("X", k)
    if c is functools.partial and v.func is np.asarray and not v.args:
        return ("Z", _enc(v.keywords))  # a kernel's cast of a 0-d output (kernel._cast)
    if callable(v):
        return ("F", _fn(v))  # a ufunc or a numpy function as a parameter
    raise Uncacheable(f"a value of type {c.__name__}")


def _dec(v, sites=None):
    c = v.__class__
    if c in _SCALARS:
        return v
    if c is not tuple or not v or v[0].__class__ is not str:
        raise ValueError("not an encoded value")
    tag = v[0]
    if tag == "T":
        return tuple(_dec(x, sites) for x in v[1:])
    if tag == "L":
        return [_dec(x, sites) for x in v[1:]]
    if tag == "D":
        return {_dec(k, sites): _dec(x, sites) for k, x in v[1:]}
    if tag == "A":
        _, dt, shape, order, data, writeable = v
        dt = _dtype(dt)
        if order not in ("C", "F"):
            raise ValueError("not an order")
        a = np.frombuffer(data, dt).reshape(_shape(shape), order=order).copy(order=order)
        if not writeable:
            a.flags.writeable = False
        return a
    if tag == "V":
        one = _dec(v[1])
        if one.__class__ is not np.ndarray:
            raise ValueError("not a broadcast array")
        return np.broadcast_to(one, _shape(v[2]))
    if tag == "S":
        _, dt, shape = v
        return np.broadcast_to(np.zeros((), _dtype(dt)), _shape(shape))
    if tag == "G":
        _, dt, data = v
        dt = _dtype(dt)
        if len(data) != dt.itemsize:
            raise ValueError("a scalar of the wrong size")
        return np.frombuffer(data, dt)[0]
    if tag == "Y":
        return _dtype(v[1])
    if tag == "b":
        return {"float": 0.0, "int": 0, "bool": False, "complex": 0j}[v[1]]
    if tag == "g":
        return _dtype(v[1]).type(0)
    if tag == "s":
        return slice(_dec(v[1]), _dec(v[2]), _dec(v[3]))
    if tag == "E":
        return Ellipsis
    if tag == "B":
        return {"float": float, "int": int, "bool": bool, "complex": complex}[v[1]]
    if tag == "N":
        t = getattr(np, v[1], None)
        if not (isinstance(t, type) and issubclass(t, np.generic)):
            raise ValueError("not a numpy scalar type")
        return t
    if tag == "c":
        return Const(_dec(v[1], sites))
    if tag == "q" and sites is not None:
        return _at(sites.table, v[1])
    if tag == "R" and sites is not None:
        return _at(sites.arrays, v[1])
    if tag == "qid" and sites is not None:  # a constant's identity, as regions key them
        return id(_at(sites.table, v[1]))
    if tag == "X" and sites is not None:
        return _at(sites.sites, v[1])
    if tag == "Z":
        return functools.partial(np.asarray, **_dec(v[1]))
    if tag == "F":
        return _dec_fn(v[1])
    raise ValueError(f"unknown tag {tag!r}")


def _at(seq, k):
    if k.__class__ is not int or not 0 <= k < len(seq):
        raise ValueError("a reference out of range")
    return seq[k]


def _dtype(s):
    if s.__class__ is not str:
        raise ValueError("not a dtype")
    dt = np.dtype(s)
    if dt.hasobject or dt.fields is not None:
        raise ValueError("a dtype of objects")
    return dt


def _shape(s):
    if s.__class__ is not tuple or any(n.__class__ is not int or n < 0 for n in s):
        raise ValueError("not a shape")
    return s


def _dec_fn(d):
    tag = d[0]
    if tag == "p":
        kw = _dec(d[2])
        if kw.__class__ is not dict:
            raise ValueError("a partial's keywords")
        return functools.partial(_dec_fn(d[1]), **kw)
    if tag == "u":
        f = getattr(np, d[1], None)
        if not isinstance(f, np.ufunc):
            raise ValueError("not a ufunc")
        return f
    if tag == "o":
        f = getattr(operator, d[1], None)
    elif tag == "n" and d[1].split(".")[0] == "numpy":
        f = _resolve(d[1], d[2])
    else:
        f = None
    if not callable(f):
        raise ValueError("not a function")
    return f
