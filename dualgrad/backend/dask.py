"""Dask arrays as one more array type (issue 25): recognising them, without importing dask.

A dask array (``dask.array.Array``) is a lazy collection of numpy chunks.  It implements
numpy's protocols (NEP 13/18), so the engine's numpy calls on it build a dask graph; the
backend treats it as a foreign array (``is_foreign_array``): rules take their
branch-free paths, constants are made with ``like=``/``astype`` on it, and nothing calls
``np.asarray``, ``bool()`` or ``.compute()`` on its values.  Rules that have no lazy form
call :func:`refuse` with their name.

    >>> import numpy as np
    >>> is_dask_array(np.ones(2)), is_dask_array(2.0)
    (False, False)

May import: ``reference``, numpy and the standard library; dask itself is optional and
imported only by the kernels, which only dask arrays reach (an object is recognised by
dask's collection protocol, without dask).
"""

import threading
import weakref

import numpy as np

from . import reference


def is_dask_array(x):
    """True for a dask array (a dask collection, ``__dask_graph__``, with a ``shape`` and a
    ``dtype``); dask is not imported.

    >>> is_dask_array([1.0])
    False
    """
    c = x.__class__
    return hasattr(c, "__dask_graph__") and hasattr(c, "chunks") and hasattr(x, "dtype")


def any_dask(*arrays):
    """True when one of ``arrays`` is a dask array.

    >>> any_dask(1.0, None)
    False
    """
    return any(is_dask_array(a) for a in arrays)


def refuse(rule, why):
    """The error of a rule with no lazy form on dask arrays: it names the rule and the
    dask limitation (instead of computing on the client silently).

    >>> str(refuse("median", "needs a sort along the axis"))[:42]
    'dualgrad: median on a dask array: needs a '
    """
    return NotImplementedError(
        f"dualgrad: {rule} on a dask array: {why}; dask cannot express it lazily, and "
        "dualgrad does not compute dask values on the client (compute the input first, "
        "e.g. x.compute() or x.persist(), if it fits in memory)")


# ---------------------------------------------------------------------------
# The backend's kernels on dask arrays (``backend._elsewhere`` returns this module): each
# one a few lazy numpy calls that dask turns into per-chunk tasks.

def _da():
    import dask.array as da  # optional: only reached with a dask array, so dask is installed
    return da


def chunks_like(shape, like):
    """Chunks for a new dask array of ``shape`` beside the dask array ``like``: like's
    chunks on the trailing axes of the same length (a gradient keeps its input's chunks),
    ``"auto"`` elsewhere.

    >>> class Like: shape, chunks = (4, 2), ((2, 2), (2,))
    >>> chunks_like((3, 4, 2), Like())
    ('auto', (2, 2), (2,))
    """
    shape = tuple(shape)
    out = ["auto"] * len(shape)
    ls, lc = tuple(like.shape), tuple(like.chunks)
    for i in range(1, min(len(shape), len(ls)) + 1):
        if shape[-i] == ls[-i]:
            out[-i] = lc[-i]
    return tuple(out)


def zeros(shape, dtype, like):
    """Zeros of ``shape`` chunked as the dask array ``like`` (:func:`chunks_like`).

    >>> try:
    ...     import dask.array as da
    ... except ImportError:  # dask is optional
    ...     da = None
    >>> da is None or zeros((4,), float, da.ones(4, chunks=2)).chunks == ((2, 2),)
    True
    """
    return _da().zeros(tuple(shape), dtype=dtype, chunks=chunks_like(shape, like))


def ones(shape, dtype, like):
    """Ones of ``shape`` chunked as the dask array ``like``.

    >>> try:
    ...     import dask.array as da
    ... except ImportError:  # dask is optional
    ...     da = None
    >>> da is None or ones((3, 4), float, da.ones(4, chunks=2)).chunks == ((3,), (2, 2))
    True
    """
    return _da().ones(tuple(shape), dtype=dtype, chunks=chunks_like(shape, like))


_FILLS = {}  # id of a dask array made by full -> (a weak reference to it, its value)
_MADE = {}  # (shape, value's bytes and dtype, dtype, chunks) -> a dask array made by full
MADE_KEEP = 16  # full's arrays kept for reuse (each a graph of stride-0 views: no data)
_MADE_LOCK = threading.Lock()


def fill_of(x):
    """The value every entry of ``x`` has when ``x`` is a dask array made by :func:`full`
    (and is still that object), else None.

    >>> fill_of(np.ones(2)) is None
    True
    """
    e = _FILLS.get(id(x))
    return e[1] if e is not None and e[0]() is x else None


def full(shape, value, dtype, like):
    """The host scalar ``value`` as an array of ``shape`` chunked as the dask array
    ``like`` (:func:`chunks_like`): dask's ``full`` makes each chunk a stride-0 view of
    one value (its broadcast trick) in a blockwise layer, which dask fuses into the task
    that reads it: no pass over memory and no task of its own (a reduction's cotangent
    broadcast back, where a product with :func:`ones` is a pass).  :func:`fill_of` gives
    the value back, so the rules can write ``-g`` and ``g * d`` with the number.  The
    same request gives the same array (dask arrays are immutable; the last
    ``MADE_KEEP`` are kept): a loss's seed and its negation are made at every gradient,
    and making one (dask tokenizes it) was a tenth of tracing a logistic loss.

    >>> try:
    ...     import dask.array as da
    ... except ImportError:  # dask is optional
    ...     da = None
    >>> da is None or full((4,), 0.5, float, da.ones(4, chunks=2)).chunks == ((2, 2),)
    True
    """
    shape, chunks = tuple(shape), chunks_like(shape, like)
    v = np.asarray(value)
    key = (shape, v.tobytes(), v.dtype.str, np.dtype(dtype).str, chunks)
    out = _MADE.get(key)
    if out is not None:
        return out
    out = _da().full(shape, value, dtype=dtype, chunks=chunks)
    made = id(out)
    _FILLS[made] = (weakref.ref(out, lambda _, made=made: _FILLS.pop(made, None)), value)
    with _MADE_LOCK:  # (threads may trace at once)
        while len(_MADE) >= MADE_KEEP:
            _MADE.pop(next(iter(_MADE)))
        _MADE[key] = out
    return out


def unary(name, x, grad):
    """``(f(x), f'(x) if grad else None)`` for the UNARY row ``name``, lazily."""
    f, df = reference.row(name)
    with np.errstate(all="ignore"):
        y = f(x)
        if not grad:
            return y, None
        d = df(x, y)
    if not is_dask_array(d) or d.shape != y.shape:
        d = np.zeros_like(y) + d  # a constant derivative (relu's 1), chunked as y
    return y, d.astype(y.dtype)


def matmul(x, y):
    """``x @ y`` through ``np.tensordot`` for operands of 1 or 2 dimensions: dask's
    tensordot is per-chunk products and a tree sum, where its matmul expands a vector
    operand to a matrix and back (a getitem task per chunk); stacks of matrices: matmul."""
    nx, ny = x.ndim, y.ndim
    if 1 <= nx <= 2 and 1 <= ny <= 2:
        return np.tensordot(x, y, axes=([nx - 1], [0]))
    return np.matmul(x, y)


def logaddexp_share(x, y, base2, dtype):
    """``d/dx logaddexp(x, y)`` (``logaddexp2`` with ``base2``) of dask values, from the
    inputs, not the output (the rule's ``_share`` says why), in ``dtype``: one blockwise
    operation, which dask fuses into the task that reads it.  It broadcasts as a ufunc
    (indices aligned from the right, as dask's ``elemwise``).  A host scalar operand
    (``logaddexp(0, z)``'s 0), base2 and the dtype are keywords of the chunk function, not
    inputs of the layer: a fused task orders its subgraph at every run (``dask.order``), and
    each input is one node more to order (elemwise made all four nodes, and wrapped the
    function to enforce the dtype: 20% of the gradient's task at 10k rows a chunk)."""
    da = _da()
    arrays, host = [], None
    for i, v in enumerate((x, y)):
        if is_dask_array(v) or np.ndim(v) > 0:
            arrays.append(v)
        else:
            host = (i, v)
    nd = max(np.ndim(a) for a in arrays)
    pairs = []
    for a in arrays:
        pairs += [a, tuple(range(np.ndim(a)))[::-1]]
    return da.blockwise(share_block, tuple(range(nd))[::-1], *pairs, dtype=dtype,
                        token="share_chunk", host=host, base2=base2, out_dtype=dtype)


def share_block(*blocks, host, base2, out_dtype):
    """:func:`share_chunk` of a chunk of each array operand, the host scalar operand
    ``host = (position, value)`` (or None) put back in its place.

    >>> float(share_block(np.array([0.0]), host=(0, 0.0), base2=False, out_dtype=float)[0])
    0.5
    """
    args = list(blocks)
    if host is not None:
        args.insert(host[0], host[1])
    return share_chunk(*args, base2, out_dtype)


def share_chunk(x, y, base2, dtype):
    """One chunk of :func:`logaddexp_share`: the sigmoid ``1 / (1 + b**(y - x))``, in
    place (an overflow to inf gives the share 0, exactly), 1 where x = y = +inf (JAX's
    limit, as the numpy rule's ``log_share``); nan where an input is nan or x = y = -inf.
    (``np.divide(1, s)``, not ``np.reciprocal``: numpy vectorises the division, 2x
    faster.)

    >>> share_chunk(np.array([0.0, 3.0, np.inf, -np.inf]), 1.0, False, float).round(6)
    array([0.268941, 0.880797, 1.      , 0.      ])
    """
    with np.errstate(all="ignore"):
        s = np.subtract(y, x, dtype=dtype)
        if isinstance(s, np.generic):  # 0-d operands: an array, to write in
            s = np.array(s)
        (np.exp2 if base2 else np.exp)(s, out=s)
        s += 1
        np.divide(1, s, out=s)
        if not (_finite_scalar(x) or _finite_scalar(y)) and np.isnan(s).any():
            # inf - inf: the share is 1 where both are +inf (a finite scalar operand,
            # logaddexp(0, z)'s 0, rules that out: the check's pass is skipped)
            s = np.where((np.asarray(x) == y) & (np.asarray(y) == np.inf), 1, s)
    return s


def _finite_scalar(v):
    return np.ndim(v) == 0 and bool(np.isfinite(v))


def index_add(shape, dtype, index, values, layout=None):
    """``zeros(shape)`` with ``values`` added at ``index``, lazily where each target
    appears once (a basic index, a numpy boolean mask, one numpy integer array without
    repeats, read on the host: a write); repeated targets need an add, which dask lacks."""
    index = index if isinstance(index, tuple) else (index,)
    ints = [k for k in index if isinstance(k, np.ndarray) and k.dtype != bool]
    if any(is_dask_array(k) for k in index) or len(ints) > 1 or (
            ints and (np.unique(ints[0]).size != ints[0].size or ints[0].min() < 0)):
        raise refuse("the gradient of x[integer array] with repeated or several index "
                     "arrays (a scatter-add)", "dask arrays have no np.add.at")
    out = zeros(shape, dtype, values)
    out[index] = values
    return out


def _shift(x, axis):
    """The max along ``axis`` with non-finite maxima set to 0 (as reference._shift)."""
    m = np.max(x, axis=axis, keepdims=True)
    return np.where(np.isfinite(m), m, 0.0)


def softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis):
    tmp = x - _shift(x, axis)
    return tmp - np.log(np.sum(np.exp(tmp), axis=axis, keepdims=True))


def logsumexp(x, axis, keepdims):
    m = _shift(x, axis)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else out.reshape(reference.reduced_shape(x.shape, axis, False))


softmax_vjp = reference.softmax_vjp
log_softmax_vjp = reference.log_softmax_vjp
logsumexp_vjp = reference.logsumexp_vjp


def _no_windows(name):
    def refused(*args, **kwargs):
        raise refuse(name, "its windows (im2col, pooling) are strided views of one array")
    refused.__name__ = name
    return refused


conv2d = _no_windows("conv2d")
conv2d_grad_input = _no_windows("conv2d's gradient")
conv2d_grad_weight = _no_windows("conv2d's gradient")
max_pool2d = _no_windows("max_pool2d")
max_pool2d_grad = _no_windows("max_pool2d's gradient")
