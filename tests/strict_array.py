"""A stand-in device array for tests: numpy inside, but as strict as CuPy about the host.

``StrictArray`` refuses every implicit trip to the host that a CuPy array refuses --
``np.asarray(x)`` (``__array__``), ``float(x)``, ``int(x)``, ``bool(x)``, ``x.item()``,
``x.tolist()`` -- and, like CuPy, an operation mixing it with a host ``numpy.ndarray``.
Everything else goes through NEP 13/18: numpy's functions and ufuncs called on it run
numpy on the wrapped data and wrap the results again, as CuPy runs its own.  So code
that works on it keeps device values on the device; ``.get()`` is the explicit copy.

    >>> import numpy as np
    >>> x = StrictArray(np.arange(3.0))
    >>> type(np.sin(x) + 1).__name__
    'StrictArray'
    >>> float(x[0])
    Traceback (most recent call last):
    ...
    strict_array.HostPull: float() of a device array: a copy to the host (use .get())
"""

import numpy as np


class HostPull(TypeError):
    """A device value was pulled to the host implicitly (CuPy raises TypeError here)."""


def unwrap(x):
    """The numpy data of StrictArrays inside x (tuples, lists, dicts); host arrays refused."""
    if isinstance(x, StrictArray):
        return x._a
    if isinstance(x, np.ndarray) and x.ndim and x.dtype != object:
        raise HostPull(f"an operation mixes a device array with a host numpy.ndarray of shape "
                       f"{x.shape} (CuPy refuses this)")
    if isinstance(x, (list, tuple)):
        return type(x)(unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: unwrap(v) for k, v in x.items()}
    return x


def wrap(x):
    """numpy results as StrictArrays (0-d for scalars, as CuPy's reductions give)."""
    if isinstance(x, np.ndarray) and x.dtype != object:
        return StrictArray(x)
    if isinstance(x, np.generic):
        return StrictArray(np.asarray(x))
    if isinstance(x, (list, tuple)):
        items = [wrap(v) for v in x]
        return type(x)(*items) if hasattr(x, "_fields") else type(x)(items)  # namedtuples
    return x


def _index(idx):
    """An index's numpy data; host index arrays are allowed, as CuPy uploads them (a copy
    to the device, never from it)."""
    if isinstance(idx, tuple):
        return tuple(_index(k) for k in idx)
    return idx if isinstance(idx, np.ndarray) else unwrap(idx)


def _foreign(x):
    t = type(x)
    return t is not StrictArray and hasattr(t, "__array_ufunc__") and \
        not issubclass(t, (np.ndarray, np.generic))


class StrictArray:
    """numpy data that refuses implicit copies to the host (see the module docstring)."""

    __slots__ = ("_a",)

    def __init__(self, a):
        self._a = a if type(a) is np.ndarray else np.array(a)

    # --- what CuPy refuses -------------------------------------------------------
    def _pull(self, what):
        raise HostPull(f"{what} of a device array: a copy to the host (use .get())")

    def __array__(self, dtype=None, copy=None):
        self._pull("np.asarray()")

    def __float__(self):
        self._pull("float()")

    def __int__(self):
        self._pull("int()")

    def __index__(self):
        self._pull("operator.index()")

    def __bool__(self):
        self._pull("bool()")

    def __complex__(self):
        self._pull("complex()")

    def item(self, *args):
        self._pull(".item()")

    def tolist(self):
        self._pull(".tolist()")

    def get(self):
        """The explicit copy to the host, as CuPy's ``.get()``."""
        return self._a.copy()

    # --- NEP 13 / 18 --------------------------------------------------------------
    def __array_namespace__(self, api_version=None):
        """numpy: its functions run on a StrictArray through NEP 13/18, as CuPy's own do
        (what makes dualgrad treat it as a device array: ``primitives.device_like``)."""
        return np

    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        if any(_foreign(x) for x in inputs):
            return NotImplemented  # a type that wraps arrays (a traced value) goes first
        if "out" in kw:
            kw["out"] = tuple(unwrap(o) for o in kw["out"])
        return wrap(getattr(ufunc, method)(*unwrap(inputs), **unwrap(kw)))

    def __array_function__(self, func, types, args, kwargs):
        if any(t is not StrictArray and hasattr(t, "__array_function__") and
               not issubclass(t, np.ndarray) for t in types):
            return NotImplemented
        if func in _UPLOADS:  # np.asarray(host, like=device): cupy.asarray's explicit copy
            return wrap(func(*(a._a if isinstance(a, StrictArray) else a for a in args),
                             **unwrap(kwargs)))
        return wrap(func(*unwrap(args), **unwrap(kwargs)))

    # --- the array's own attributes and methods ------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: StrictArray(self._a.T))
    real = property(lambda self: StrictArray(self._a.real))
    imag = property(lambda self: StrictArray(self._a.imag))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (StrictArray(v) for v in self._a)

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    def __getitem__(self, idx):
        return wrap(self._a[_index(idx)])

    def __setitem__(self, idx, value):
        self._a[_index(idx)] = unwrap(value)

    def __copy__(self):
        return StrictArray(self._a.copy())

    def __deepcopy__(self, memo):
        return StrictArray(self._a.copy())


#: what numpy dispatches only through ``like=`` (NEP 35): creating a device array from
#: host data is CuPy's explicit ``cupy.asarray`` upload, which it allows
_UPLOADS = frozenset((np.asarray, np.array, np.asanyarray, np.ascontiguousarray))


def _method(name):
    def method(self, *args, **kw):
        return wrap(getattr(self._a, name)(*unwrap(args), **unwrap(kw)))
    method.__name__ = name
    return method


for _name in ("reshape", "transpose", "astype", "copy", "sum", "mean", "prod", "max", "min",
              "argmax", "argmin", "ravel", "flatten", "swapaxes", "squeeze", "conj",
              "conjugate", "view", "cumsum", "dot", "clip", "all", "any", "std", "var",
              "round", "nonzero", "take", "repeat", "fill", "diagonal", "trace", "argsort",
              "sort", "searchsorted", "cumprod"):
    setattr(StrictArray, _name, _method(_name))


def _operator(ufunc, reflected=False):
    if reflected:
        return lambda self, other: ufunc(other, self)
    return lambda self, other: ufunc(self, other)


for _name, _uf in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                   ("truediv", np.true_divide), ("floordiv", np.floor_divide),
                   ("mod", np.remainder), ("pow", np.power), ("matmul", np.matmul),
                   ("and", np.bitwise_and),
                   ("or", np.bitwise_or), ("xor", np.bitwise_xor)):
    setattr(StrictArray, f"__{_name}__", _operator(_uf))
    setattr(StrictArray, f"__r{_name}__", _operator(_uf, reflected=True))
for _name, _uf in (("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                   ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)):
    setattr(StrictArray, f"__{_name}__", _operator(_uf))
StrictArray.__neg__ = lambda self: np.negative(self)
StrictArray.__pos__ = lambda self: np.positive(self)
StrictArray.__abs__ = lambda self: np.absolute(self)
StrictArray.__invert__ = lambda self: np.invert(self)
StrictArray.__hash__ = None
