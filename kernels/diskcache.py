"""numba's disk cache for dualgrad's kernels, checked and kept in dualgrad's cache folder.

``@njit(cache=True)`` here (and ``attach`` for the generated kernels of ``dg.jit``) keeps
numba's format of one index (``.nbi``) and one data file (``.nbc``) per signature, and
changes three things:

* **Where.** ``$NUMBA_CACHE_DIR`` when the user set it (numba's own rule), otherwise
  ``$XDG_CACHE_HOME/dualgrad/numba``.  Never ``__pycache__`` beside the installed source:
  numba's default locators fall back to it, and when neither is writable there is no
  disk cache (one warning per process, from ``dualgrad.backend.tuning.unwritable``).
* **Fresh.** A cached entry is used only for the exact source it was compiled from: the
  index is stamped with the SHA-256 of the function's file and of every ``kernels/*.py``
  (numba's own stamp is the file's mtime and size in older releases and in numba-cuda,
  and never covers the helpers a kernel calls from another file).
* **Whole.** Each file carries the SHA-256 of its content and each data file the index key
  it was saved for, checked before anything is unpickled.  A truncated, random, flipped or
  mismatched file is a cache miss: the kernel is compiled again and the file rewritten.
  Writes are numba's (a uniquely named temporary file in the same folder, then
  ``os.replace``), so a crash or a racing process leaves no half file.

    >>> from dualgrad.kernels import scatter
    >>> scatter.index_add_rows.stats.cache_path.startswith(scatter.__file__.rsplit("/", 1)[0])
    False
"""

import functools
import hashlib
import os
import pickle
import tempfile
import warnings

import llvmlite.binding as ll
import numba
from numba.core import config
from numba.core.caching import FunctionCache, NullCache
from numba.core.dispatcher import Dispatcher
from numba.core.runtime import rtsys

_MAGIC = b"dualgrad-numba-cache-1\n"
_HERE = os.path.dirname(os.path.abspath(__file__))


def njit(*args, cache=False, **kwargs):
    """``numba.njit``, with ``cache=True`` meaning dualgrad's checked cache (``attach``)."""
    if args and callable(args[0]):
        return njit(*args[1:], cache=cache, **kwargs)(args[0])
    jit = numba.njit(*args, **kwargs)
    return (lambda f: attach(jit(f))) if cache else jit


def attach(dispatcher):
    """Give ``dispatcher`` (compiled nothing yet) dualgrad's checked disk cache; a plain
    function (``NUMBA_DISABLE_JIT=1``) or a source with no file is returned as it is."""
    kind = _kind(dispatcher)
    if kind is not None:
        base, null = kind
        try:
            dispatcher._cache = _checked(base)(dispatcher.py_func)
        except Exception:  # noqa: BLE001  (no locator for this source: no disk cache)
            dispatcher._cache = null()
    return dispatcher


def _kind(dispatcher):
    """numba's cache class and null cache for this dispatcher: CPU, or numba-cuda's."""
    if isinstance(dispatcher, Dispatcher):
        return FunctionCache, NullCache
    try:
        from numba.cuda.core.caching import NullCache as CUDANull  # optional: numba-cuda
        from numba.cuda.dispatcher import CUDACache, CUDADispatcher
    except ImportError:
        return None
    return (CUDACache, CUDANull) if isinstance(dispatcher, CUDADispatcher) else None


def root():
    """The folder numba's files go under: ``$NUMBA_CACHE_DIR`` or dualgrad's cache."""
    if config.CACHE_DIR:
        return config.CACHE_DIR
    from dualgrad.backend.tuning import cache_dir  # no cycle: tuning imports no kernels
    return os.path.join(cache_dir(), "numba")


@functools.cache
def _package_digest():
    h = hashlib.sha256()
    for name in sorted(os.listdir(_HERE)):
        if name.endswith(".py"):
            with open(os.path.join(_HERE, name), "rb") as f:
                h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()


class _Locator:
    """numba's locator interface: where, how fresh, and which function of the file."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        parent = os.path.dirname(os.path.abspath(py_file))
        sub = f"{os.path.basename(parent)}_{hashlib.sha1(parent.encode()).hexdigest()}"
        self._cache_path = os.path.join(root(), sub)

    @classmethod
    def from_function(cls, py_func, py_file):
        return cls(py_func, py_file) if os.path.isfile(py_file) else None

    def ensure_cache_path(self):
        os.makedirs(self._cache_path, exist_ok=True)
        tempfile.TemporaryFile(dir=self._cache_path).close()

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        with open(self._py_file, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest(), _package_digest()

    def get_disambiguator(self):
        return str(self._lineno)


def _seal(payload):
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def _unseal(blob):
    """The payload of a sealed file; ValueError for anything else."""
    head, digest, payload = blob[:len(_MAGIC)], blob[len(_MAGIC):len(_MAGIC) + 32], \
        blob[len(_MAGIC) + 32:]
    if head != _MAGIC or hashlib.sha256(payload).digest() != digest:
        raise ValueError("not a whole dualgrad cache file")
    return payload


@functools.cache
def _checked_file(base):
    """``base`` (numba's IndexDataCacheFile) with sealed files and keyed data."""

    class CheckedFile(base):
        def load(self, key):
            try:
                name = self._load_index().get(key)
                if name is None:
                    return None
                with open(self._data_path(name), "rb") as f:
                    saved, data = pickle.loads(_unseal(f.read()))
                return data if saved == key else None
            except Exception:  # noqa: BLE001  (anything unreadable is a miss: recompile)
                return None

        def save(self, key, data):
            overloads = self._load_index()
            name = overloads.get(key)
            if name is None:
                used = set(overloads.values())
                name = next(n for n in map(self._data_name, range(1, len(used) + 2))
                            if n not in used)
                overloads[key] = name
                self._save_index(overloads)
            self._write(self._data_path(name), self._dump((key, data)))

        def _load_index(self):
            try:
                with open(self._index_path, "rb") as f:
                    version, stamp, overloads = pickle.loads(_unseal(f.read()))
            except Exception:  # noqa: BLE001  (missing, old format or damaged: empty)
                return {}
            if version != self._version or stamp != self._source_stamp \
                    or not isinstance(overloads, dict):
                return {}
            return overloads

        def _save_index(self, overloads):
            self._write(self._index_path,
                        pickle.dumps((self._version, self._source_stamp, overloads), -1))

        def _write(self, path, payload):
            with self._open_for_write(path) as f:  # numba's: uuid-named temp, os.replace
                f.write(_seal(payload))

    return CheckedFile


def _load_light(cache, sig, ctx):
    """numba's ``Cache.load_overload`` for the CPU, refreshing the target context only
    where the machine code needs it.

    numba refreshes the context before every load: the first one in a process imports and
    installs every typing and lowering registry (0.2 s; in a process that only loads cached
    kernels, most of a first call's time).  Loading machine code needs none of them, only
    its symbols: the runtime's (``rtsys.initialize``, always done here) and whatever the
    code declares.  So the context is refreshed first only where a symbol the code declares
    is not yet defined (in the process, or in code numba already loaded); a later compile
    refreshes it as numba always does."""
    if not cache._enabled:
        return None
    rtsys.initialize(ctx)
    codegen = ctx.codegen()
    data = cache._cache_file.load(cache._index_key(sig, codegen))
    if data is None:
        return None
    if not _resolvable(data[0], codegen):
        ctx.refresh()
    return cache._impl.rebuild(ctx, data)


def _resolvable(libdata, codegen):
    """Whether every symbol cached object code declares is defined already (False for a
    library of any form but numba's object code, or where that cannot be told)."""
    try:
        name, kind, (obj, bitcode) = libdata
        if kind != "object":
            return False
        mod = ll.parse_bitcode(bitcode)
        engine = codegen._engine
        for v in (*mod.functions, *mod.global_variables):
            if v.is_declaration and not v.name.startswith("llvm.") \
                    and not engine.is_symbol_defined(v.name) \
                    and not ll.address_of_symbol(v.name):
                return False
        return True
    except Exception:  # noqa: BLE001  (another numba's internals: refresh, as numba does)
        return False


@functools.cache
def _checked(base):
    """numba's cache class ``base`` with dualgrad's locator and checked files; a load that
    fails in any way is a miss, a save that fails turns this function's cache off."""

    impl = type("CheckedImpl", (base._impl_class,), {"_locator_classes": [_Locator]})

    class CheckedCache(base):
        _impl_class = impl

        def __init__(self, py_func):
            super().__init__(py_func)
            old = self._cache_file
            self._cache_file = _checked_file(type(old))(
                self._cache_path, self._impl.filename_base, old._source_stamp)

        def load_overload(self, sig, target_context):
            try:
                if base is FunctionCache:
                    return _load_light(self, sig, target_context)
                return super().load_overload(sig, target_context)
            except Exception:  # noqa: BLE001  (a bad entry: compile instead)
                return None

        def save_overload(self, sig, data):
            try:
                super().save_overload(sig, data)
            except OSError as e:
                from dualgrad.backend.tuning import unwritable
                unwritable(self._cache_path, e)
                self.disable()
            except Exception as e:  # noqa: BLE001  (never fail a call over its cache)
                warnings.warn(f"dualgrad: numba's cache could not save {self._name} "
                              f"({type(e).__name__}: {e}); not cached", RuntimeWarning,
                              stacklevel=2)
                self.disable()

    return CheckedCache
