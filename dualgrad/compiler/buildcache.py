"""``dg.jit``'s build cache: a compiled signature's build kept on disk, so that another
process recording the same graph loads it instead of building it again.

A jitted function's second call builds its graph: the passes (passes.py), the fusion
regions and their kernels (fuse.py, roll.py, emit_cpu.py) and the replay source
(graph.py).  numba's machine code for the kernels is already cached on disk
(kernel.py); this caches what is built around it.  Recording still happens in every
process: it is what gives the graph to look up.

**Key.**  The SHA-256 of the recorded graph as the build reads it: each op's kind, its
primitive (a row of the table by name, a comparison row, or a numpy or ``operator``
function a raw node applies), its arguments (value numbers, and each constant's type and
bytes), its parameters, its value's class, dtype and shape, each guard's expected value;
the graph's inputs and outputs; the jit options (passes, rewrites left out, fast_math,
codegen); and the versions: the SHA-256 of dualgrad's own sources, numpy, numba, Python
and the CPU (``backend.tuning.machine_key``, as the tuning rules use).  A graph holding
anything else (a ``custom_vjp``'s opaque node, a function defined in user code, an array
type other than numpy's) is not cached: it is built as before.

**What is stored.**  Under ``$XDG_CACHE_HOME/dualgrad/builds`` (default ``~/.cache``), one
file per key: the fused graph replay runs (its ops, constants, guards' expected values,
and the shape and dtype of each value), the positions of outputs replay copies, each
kernel's source, region and casts, what each pass removed, and the optimised graph
(decoded only when an outer transform replays the graph one primitive at a time).  Data
only, written with ``marshal`` as plain tuples of numbers, strings and bytes, and decoded
field by field: no pickle, no code object.  The replay source is generated again from the
decoded graph (graph.compile_graph); a kernel's source is compiled as kernel.py compiles
any (its numba machine code checked by its own stamp).  The files are spread over 256
folders by the key's first two hex digits, each keeping its 32 most recently used: every
edit of dualgrad's sources and every new signature makes new keys.

**Checked.**  A file is used only if it is whole (its own SHA-256 precedes it), it was
written for this very key (the key is inside it: a file copied under another name is
foreign), and it decodes into exactly the structure written; anything else is a miss: the
graph is built and the file written anew.  Files are written whole (a temporary file,
then ``os.replace``): processes sharing the folder race harmlessly.  An unwritable folder
means no build cache (the one warning of dualgrad's disk caches); a compiler module's
global rebound since import (a test's monkeypatch), or ``DUALGRAD_BUILD_CACHE=0``, too.

A build loaded is the build of an earlier process on this machine: with ``codegen="auto"``
which regions run as kernels was decided by timing them there, as it would have been
decided by timing them here.
"""

import functools
import hashlib
import importlib.util
import marshal
import os
import platform
import sys

import numpy as np

from ..backend.tuning import cache_dir, machine_key, unwritable, write_atomic
from ..core.trace import Primitive
from ..rules import TABLE
from . import codec, emit_cpu, fuse, graph, kernel, loops, passes, record, regions, roll
from .codec import _SCALARS, Uncacheable, _at, _dec, _dec_fn, _enc, _fn, _Refs
from .graph import Const, Graph, Op
from .record import COMPARE

ENV = "DUALGRAD_BUILD_CACHE"
PER_FOLDER = 32  # builds kept in each of the 256 folders, most recently used (``_prune``)
#: the largest build filed (bytes): a larger one is built again by the next process (its
#: kernels still come from numba's cache) rather than written and read as a file that size
MAX_BYTES = 256 << 20
_MAGIC = b"dualgrad-build-1\n"
_COMPARE = {p.name: p for p in COMPARE.values()}
_PLAIN = Primitive("plain", None)  # an ad-hoc primitive's attributes, to compare with


_WATCHED = []


def watch(*modules):
    """Note the globals of ``modules`` as they are now (``unchanged`` compares)."""
    for m in modules:
        _WATCHED.extend((vars(m), k, v) for k, v in vars(m).items()
                        if not k.startswith("__"))


def unchanged():
    """Whether every watched module global is still the object it was."""
    return all(ns.get(k) is v for ns, k, v in _WATCHED)


watch(codec, emit_cpu, fuse, graph, kernel, loops, passes, record, regions, roll)


# ---------------------------------------------------------------------------
# versions

@functools.cache
def _sources_digest():
    """SHA-256 of every ``.py`` file of dualgrad and of its kernels."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folders = [here]
    spec = importlib.util.find_spec("dualgrad.kernels")  # (not imported: numba's)
    folders += [os.path.dirname(spec.origin)] if spec is not None and spec.origin else []
    h = hashlib.sha256()
    for top in folders:
        for folder, subs, files in os.walk(top):
            subs.sort()
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    with open(path, "rb") as f:
                        h.update(os.path.relpath(path, top).encode() + b"\0" + f.read())
    return h.hexdigest()


@functools.cache
def _versions():
    key = machine_key({"dualgrad": _sources_digest()})
    return repr(sorted(key.items())) + platform.python_implementation() + sys.version


# ---------------------------------------------------------------------------
# encoding a graph as plain tuples (marshal writes them; values: codec.py)

def _prim(p):
    if TABLE.get(p.name) is p:
        return ("t", p.name)
    if _COMPARE.get(p.name) is p:
        return ("c", p.name)
    for slot in Primitive.__slots__:
        if slot not in ("name", "impl", "reads") and getattr(p, slot) != getattr(_PLAIN, slot):
            raise Uncacheable(f"the primitive {p.name}")
    return ("r", p.name, _fn(p.impl))


def _shape_of(ans):
    """What the build reads of a value that is not a guard's: class, dtype and shape."""
    c = ans.__class__
    if c is tuple:
        return ("T",) + tuple(_shape_of(a) for a in ans)
    if c is np.ndarray:
        dt = ans.dtype
        if dt.hasobject or dt.fields is not None or dt.kind == "V":
            raise Uncacheable("an array of objects or records")
        return ("S", dt.str, ans.shape)
    if c in (float, int, bool, complex):
        return ("b", c.__name__)  # (read back as a zero of its type)
    if isinstance(ans, np.generic) and c is getattr(np, c.__name__, None):
        return ("g", ans.dtype.str)  # (read back as a zero of its type)
    raise Uncacheable(f"a value of type {c.__name__}")


def _ops(graph, sites, kernels=None):
    """The graph as plain values: three items per op, then the tables they index (its
    primitives, its values' classes, dtypes and shapes) and its inputs and outputs.

    An op is ``(head, args, value)``: ``head`` the index of its primitive for a plain
    ``op`` without parameters (most of a graph), else ``(kind, primitive, parameters)``,
    or for a guard ``("guard", parameters, expected value)``; ``args`` value numbers and
    ``("k", constant)`` (or ``("q", position)`` in the constants' table: ``_Refs``);
    ``value`` the index of its class, dtype and shape.  (The key hashes
    every op of the recorded graph: this loop is most of what a cached build costs.)"""
    out = []
    put = out.append
    prims, ptab = {}, []
    shapes = {float: 0, int: 1, bool: 2, complex: 3}
    stab = [("b", "float"), ("b", "int"), ("b", "bool"), ("b", "complex")]
    scalars = _SCALARS
    table = sites.consts
    for op in graph.ops:
        kind, p, args, kw, ans = op.kind, op.prim, op.args, op.kw, op.ans
        if kind == "guard":
            put(("guard", _enc(kw, sites), _enc(ans)))
            put(args)
            put(-1)
            continue
        if p is None:
            pi = -1
        else:
            pi = prims.get(p)
            if pi is None:
                if kind == "fused":
                    if kernels is None:
                        raise Uncacheable("a fused node")
                    desc = ("K", kernels[id(p)])
                elif kind == "call":
                    raise Uncacheable("an opaque call")
                else:
                    desc = _prim(p)
                pi = prims[p] = len(ptab)
                ptab.append(desc)
        put(pi if kind == "op" and kw is None else (kind, pi, None if kw is None
                                                       else _enc(kw, sites)))
        for a in args:
            if a.__class__ is not int:
                refs = []
                for b in args:
                    if b.__class__ is int:
                        refs.append(b)
                    elif table is not None:
                        refs.append(("q", sites.const(b)))
                    else:
                        v = b.value
                        refs.append(("k", v if v.__class__ in scalars else _enc(v)))
                args = tuple(refs)
                break
        put(args)
        c = ans.__class__
        si = shapes.get(c)
        if si is None:
            k = (ans.dtype, ans.shape) if c is np.ndarray else _shape_of(ans)
            si = shapes.get(k)
            if si is None:
                si = shapes[k] = len(stab)
                stab.append(_shape_of(ans))
            if c is not np.ndarray and issubclass(c, (np.number, np.bool_)):
                shapes[c] = si  # a numpy scalar's class says its dtype
        put(si)
    put(tuple(ptab))
    put(tuple(stab))
    put(tuple(graph.inputs))
    put(tuple(a if a.__class__ is int else _enc(a, sites) for a in graph.outputs))
    return out


def _site_list(graph):
    """The sites of the graph's guards, each once, in order."""
    out = {}
    for op in graph.ops:
        if op.kind == "guard" and op.kw and op.kw.get("site") is not None:
            out.setdefault(id(op.kw["site"]), op.kw["site"])
    return list(out.values())


def _sites(graph):
    """id(site) -> its position among the graph's guards' (``_site_list``)."""
    return {id(s): k for k, s in enumerate(_site_list(graph))}


def key(raw, options):
    """The key of the build of recorded graph ``raw`` with jit ``options`` (a tuple of
    plain values), or None where the graph cannot be cached."""
    if os.environ.get(ENV, "1").strip().lower() in ("0", "off", "no", "false") \
            or not unchanged():
        return None
    try:
        data = marshal.dumps((_versions(), _enc(options), _ops(raw, _Refs(_sites(raw)))), 2)
    except Exception:  # noqa: BLE001  (Uncacheable, or anything odd: built as before)
        return None
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------
# decoding a graph: every field checked, anything unexpected a ValueError

def _dec_graph(enc, sites, kernels=()):
    if enc.__class__ is not list or len(enc) % 3 != 1 or len(enc) < 4:
        raise ValueError("not an encoded graph")
    ptab, stab, inputs, outputs = enc[-4:]
    prims = []
    for pd in ptab:
        tag = pd[0]
        if tag == "K":
            if not 0 <= pd[1] < len(kernels):
                raise ValueError("a kernel out of range")
            prims.append(kernels[pd[1]])
        elif tag == "t":
            prims.append(TABLE[pd[1]])
        elif tag == "c":
            prims.append(_COMPARE[pd[1]])
        elif tag == "r":
            prims.append(Primitive(pd[1], _dec_fn(pd[2])))
        else:
            raise ValueError("an unknown primitive")
    vals = [_dec(d) for d in stab]
    ops = []
    put = ops.append
    for j in range(0, len(enc) - 4, 3):
        head, args, si = enc[j:j + 3]
        n = len(ops)
        if args.__class__ is not tuple:
            raise ValueError("arguments that are not a tuple")
        for a in args:
            if a.__class__ is not int or not 0 <= a < n:
                args = tuple([_ref(a, n, sites) for a in args])
                break
        if si.__class__ is not int or not -1 <= si < len(vals):
            raise ValueError("a value's shape out of range")
        if head.__class__ is int:
            if not 0 <= head < len(prims) or si < 0:
                raise ValueError("a primitive out of range")
            put(Op("op", prims[head], args, None, vals[si]))
            continue
        kind = head[0]
        if kind == "guard":
            kw, ans = _dec(head[1], sites), _dec(head[2])
            p = None
        elif kind in ("input", "op", "raw", "fused", "part"):
            if not -1 <= head[1] < len(prims) or si < 0:
                raise ValueError("a primitive out of range")
            p = None if head[1] == -1 else prims[head[1]]
            kw = None if head[2] is None else _dec(head[2], sites)
            ans = vals[si]
        else:
            raise ValueError("an op of unknown kind")
        if kw is not None and kw.__class__ is not dict:
            raise ValueError("parameters that are not a dict")
        put(Op(kind, p, args, kw, ans))
    n = len(ops)
    if inputs.__class__ is not tuple or any(i.__class__ is not int or not 0 <= i < n
                                            for i in inputs):
        raise ValueError("an input out of range")
    if outputs.__class__ is not tuple:
        raise ValueError("outputs that are not a tuple")
    return Graph(ops, list(inputs), [_ref(a, n, sites) for a in outputs], None)


def _ref(a, n, refs):
    """An argument read back: a value number below ``n``, or a constant."""
    if a.__class__ is int:
        if not 0 <= a < n:
            raise ValueError("an argument defined later")
        return a
    if a.__class__ is not tuple or len(a) != 2 or a[0] not in ("k", "q", "c"):
        raise ValueError("not an argument")
    return Const(_dec(a[1])) if a[0] == "k" else _dec(a, refs)


# ---------------------------------------------------------------------------
# the files

def _path(digest):
    return os.path.join(cache_dir(), "builds", digest[:2], digest + ".bin")


class Built:
    """A build read back: the ``fused`` graph, the output positions replay ``copies``,
    the ``kernels`` (kernel.Kernel, loaded), the ``summary``, and the optimised graph on
    demand (``graph()``)."""

    def __init__(self, fused, copies, kernels, summary, optimised, refs, odef):
        self.fused, self.copies, self.kernels, self.summary = fused, copies, kernels, summary
        self._optimised, self._refs, self._odef = optimised, refs, odef

    def graph(self):
        """The optimised graph, decoded now (ValueError if it does not decode); each call
        decodes it again (threads asking at once each get a whole one)."""
        if self._optimised is None:  # it is the fused graph: no kernel was used
            return self.fused
        g = _dec_graph(marshal.loads(self._optimised), self._refs)
        g.odef = self._odef
        return g


def save(digest, raw, optimised, fused, copies, kernels, summary):
    """File the build of ``raw`` under ``digest``; nothing where it cannot be encoded, one
    warning per process where the folder cannot be written.  Returns the optimised graph
    as encoded, a ``Built`` whose ``graph()`` decodes it (its constants the very ``Const``
    objects of ``fused``), for the caller to hold instead of the graph's objects; None
    where it was not encoded or is ``fused`` itself."""
    refs = _Refs(_sites(raw), consts=True)
    order = {id(k): n for n, k in enumerate(kernels)}
    try:
        same = fused is optimised  # no kernel used: the graph once
        head = _ops(fused, refs, order)
        graph = None if same else marshal.dumps(_ops(optimised, refs))
        ks = tuple((k.source, k.fn is not None, tuple(_enc(c) for c in k.casts),
                    _region(k.region, refs, len(optimised.ops)), _enc(k.seconds))
                   for k in kernels)
        consts = tuple(refs.value(c.value) for c in refs.table)  # Consts sharing an array
        values = tuple(_enc(v) for _, v in sorted(refs.values.values(), key=lambda kv: kv[0]))
        body = (head, tuple(sorted(copies)), ks, _enc(dict(summary)), graph, consts, values)
        payload = marshal.dumps((digest, body))
    except Exception:  # noqa: BLE001  (Uncacheable, or anything odd: not filed)
        return None
    read = _Refs(_site_list(raw))
    read.table = refs.table
    read.arrays = [v for _, v in sorted(refs.values.values(), key=lambda kv: kv[0])]
    held = None if graph is None else Built(None, None, None, None, graph, read, raw.odef)
    if len(payload) > MAX_BYTES:  # more to write and read back than a build is worth
        return held
    blob = _MAGIC + hashlib.sha256(payload).digest() + payload
    path = _path(digest)
    try:
        write_atomic(path, blob)
    except OSError as e:
        unwritable(os.path.dirname(path), e)
        return held
    _prune(os.path.dirname(path))
    return held


def _prune(folder, keep=PER_FOLDER):
    """Delete all but the ``keep`` most recently used builds of one of the 256 folders
    (a load touches its file): every edit of dualgrad's sources, and every signature,
    makes new keys, and nothing else would ever remove the old files.  A process that
    was about to read a file deleted here misses, and builds."""
    try:
        files = [e for e in os.scandir(folder) if e.name.endswith(".bin")]
        if len(files) <= keep:
            return
        files.sort(key=lambda e: e.stat().st_mtime_ns)
        for e in files[:len(files) - keep]:
            os.unlink(e.path)
    except OSError:
        pass  # another process pruned it first


def _region(r, refs, n):
    """A kernel's region (regions.Region) as plain values, its constants by reference
    (roll.py's analysis of it is not kept: found again if asked for).  A constant's
    identity as a key (``diags``: regions.input_key) is written as its position."""
    out = []
    for name in regions.Region.__slots__:
        if name == "rolls":
            continue
        v = getattr(r, name)
        if name == "diags":
            keys = []
            for k in v:
                if k.__class__ is int and k >= n:  # not a value number: an identity
                    if k not in refs.consts:
                        raise Uncacheable("a region keyed by an unknown constant")
                    k = ("qid", refs.consts[k])
                else:
                    k = _enc(k, refs)
                keys.append(k)
            out.append((name, ("D",) + tuple((k, _enc(x, refs))
                                             for k, x in zip(keys, v.values()))))
        else:
            out.append((name, _enc(v, refs)))
    return tuple(out)


def _dec_region(enc, refs):
    r = regions.Region(0, ())
    names = set(regions.Region.__slots__) - {"rolls"}
    got = set()
    for name, v in enc:
        if name not in names or name in got:
            raise ValueError("not a region")
        got.add(name)
        setattr(r, name, _dec(v, refs))
    if got != names:
        raise ValueError("a region missing a field")
    return r


def load(digest, raw):
    """The build filed under ``digest`` for recorded graph ``raw`` (its guards' sites are
    this recording's), or None: no file, or one not whole, not this key's, or not
    decodable."""
    try:
        with open(_path(digest), "rb") as f:
            blob = f.read()
    except OSError:
        return None
    head, seal, payload = blob[:len(_MAGIC)], blob[len(_MAGIC):len(_MAGIC) + 32], \
        blob[len(_MAGIC) + 32:]
    if head != _MAGIC or hashlib.sha256(payload).digest() != seal:
        return None
    try:
        saved, body = marshal.loads(payload)
        if saved != digest:
            return None
        fused_enc, copies, ks, summary, optimised, consts, values = body
        if optimised is not None and optimised.__class__ is not bytes:
            raise ValueError("the optimised graph")
        refs = _Refs(_site_list(raw))
        values = refs.arrays = [_dec(v) for v in values]
        refs.table = [Const(_at(values, k)) for k in consts]
        kernels = []
        for src, used, casts, region, seconds in ks:
            if src.__class__ is not str:
                raise ValueError("a kernel source that is not text")
            k = kernel.Kernel(_dec_region(region, refs), kernel.load(src) if used else None,
                              src, [_dec(c) for c in casts])
            k.seconds = _dec(seconds)
            kernels.append(k)
        fused = _dec_graph(fused_enc, refs, kernels)
        fused.odef = raw.odef
        copies = set(copies)
        if any(k.__class__ is not int for k in copies):
            raise ValueError("copies")
        summary = _dec(summary)
        if summary.__class__ is not dict:
            raise ValueError("summary")
    except Exception:  # noqa: BLE001  (anything unreadable is a miss: build it)
        return None
    try:
        os.utime(_path(digest))  # used: the last to be pruned (``_prune``)
    except OSError:
        pass
    return Built(fused, copies, kernels, summary, optimised, refs, raw.odef)
