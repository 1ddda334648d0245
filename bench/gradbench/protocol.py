"""The GradBench tool protocol: one JSON object per line in, one per line out.

The eval sends messages ``{"id", "kind", ...}``; the tool answers each with an
object carrying the same ``id``:

- ``start``    -> ``{"id", "tool": "dualgrad"}``
- ``define``   -> ``{"id", "success": bool}``; imports the eval module and warms
  it up on a tiny input, so one-off costs are not scored.
- ``evaluate`` -> ``{"id", "success": true, "output", "timings": [...]}``: the
  function runs at least ``min_runs`` times and until ``min_seconds`` have been
  spent; each run gives one ``{"name": "evaluate", "nanoseconds"}`` timing.
  Only the function is timed: converting the JSON input to arrays
  (``prepare``) and the result back to JSON (``output``) are not.
- anything else (``analysis``, ...) -> ``{"id"}``.

Each eval lives in ``evals/<name>.py`` and exposes ``FUNCTIONS``, a dict from
the GradBench function name to a :class:`Function`, and ``example()``, a small
input in the eval's own JSON format (used for the warm-up and by the tests).

``--jit`` runs every function as ``dg.jit(function)``: recorded on its first call with
an input's signature, optimised and compiled (fused numba kernels, dualgrad/compiler/), and
replayed on every later call; the first call of each evaluation is untimed (as the
warm-up is), so compilation is not scored, as GradBench's JAX tool does with ``jax.jit``.
Where dg.jit stops recording and runs the function eagerly (a recording past its budgets,
``max_branches`` or ``max_ops``: particle and saddle unroll gradient-descent loops that
branch on traced values), that first call was an eager run: it is timed (the abandoned
recording included) and counts as the first run, so no run is wasted.  So it is where the
first call recorded nothing: a new signature of a function whose builds cost more than its
calls would repay runs eagerly until they would (dg.jit's renting), and a signature built
by an earlier evaluation replays.
"""

import importlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import dualgrad as dg
from dualgrad.core.tree import tree_flatten, tree_unflatten

TOOL = "dualgrad"

#: Every eval this tool implements (the module names GradBench uses).
EVALS = ("hello", "lse", "llsq", "det", "ode", "gmm", "kmeans", "lstm", "ba", "ht",
         "particle", "saddle")


@dataclass(frozen=True)
class Function:
    """One GradBench function: JSON input -> prepared data -> result -> JSON output."""

    run: Callable[[Any], Any]           # the timed part
    prepare: Callable[[Any], Any] = lambda x: x
    output: Callable[[Any], Any] = lambda y: y
    repeated: bool = True               # input carries min_runs / min_seconds


def load(module):
    """The Python module implementing eval ``module``; ``KeyError`` if there is none."""
    if module not in EVALS:
        raise KeyError(f"dualgrad has no implementation of the {module!r} eval "
                       f"(it has: {', '.join(EVALS)})")
    return importlib.import_module(f"{__package__}.evals.{module}")


def repeat(run, arg, min_runs=1, min_seconds=0.0):
    """Call ``run(arg)`` until both ``min_runs`` calls and ``min_seconds`` have passed.

    Returns the last result and one timing per call.
    """
    timings = []
    elapsed = 0
    limit = int(float(min_seconds) * 1e9)
    result = None
    while len(timings) < max(int(min_runs), 1) or elapsed < limit:
        t0 = time.perf_counter_ns()
        result = run(arg)
        t1 = time.perf_counter_ns()
        timings.append({"name": "evaluate", "nanoseconds": t1 - t0})
        elapsed += t1 - t0
    return result, timings


_JITTED = {}


class _Jitted:
    """``run`` under ``dg.jit``, with the Python ints of its input (sizes: ``n``, the
    number of points...) static, as a JAX tool marks them with ``static_argnums``."""

    def __init__(self, run):
        def call(static, *arrays):
            it, st = iter(arrays), dict(static)
            return run(tree_unflatten(self.tdef, [st[i] if i in st else next(it)
                                                  for i in range(self.size)]))
        self.jit = dg.jit(call, static_argnums=0)
        self.plain = dg.jit(run)  # an input without ints: dg.jit's fast path

    @property
    def trace_count(self):
        return self.jit.trace_count + self.plain.trace_count

    @property
    def eager(self):
        """Whether dg.jit gave up on the function (it runs eagerly from now on)."""
        return self.jit.eager or self.plain.eager

    def __call__(self, arg):
        if arg.__class__ is np.ndarray:
            return self.plain(arg)
        leaves, self.tdef = tree_flatten(arg)
        self.size = len(leaves)
        static = tuple((i, v) for i, v in enumerate(leaves) if v.__class__ is int)
        return self.jit(static, *(v for v in leaves if v.__class__ is not int))


def jitted(module, function):
    """``dg.jit`` of a function's run, made once per (eval, function)."""
    key = (module, function)
    if key not in _JITTED:
        _JITTED[key] = _Jitted(load(module).FUNCTIONS[function].run)
    return _JITTED[key]


def evaluate(module, function, input, jit=False):
    """Run ``function`` of eval ``module`` on a JSON ``input``: (output, timings).  With
    ``jit``, the function is ``dg.jit``'s, recorded and compiled by two untimed calls."""
    fn = load(module).FUNCTIONS[function]
    arg = fn.prepare(input)
    runs, seconds = (input.get("min_runs", 1), input.get("min_seconds", 0.0)) \
        if fn.repeated else (1, 0.0)
    first = []
    if jit:
        run = jitted(module, function)
        traces = run.trace_count
        t0 = time.perf_counter_ns()
        result = run(arg)  # records
        t1 = time.perf_counter_ns()
        if run.eager or run.trace_count == traces:  # dg.jit gave up, or rents: it ran f
            # eagerly, a timed run (module docstring); or replayed a signature built before
            first = [{"name": "evaluate", "nanoseconds": t1 - t0}]
            runs, seconds = int(runs) - 1, float(seconds) - (t1 - t0) / 1e9
        else:
            run(arg)  # optimises, compiles and replays
        fn = Function(run=run, prepare=fn.prepare, output=fn.output, repeated=fn.repeated)
    if not first or runs > 0 or seconds > 0:
        result, timings = repeat(fn.run, arg, max(int(runs), 1), max(seconds, 0.0))
    else:
        timings = []
    return fn.output(result), first + timings


def warm_up(mod):
    """Run every function of ``mod`` once on its small example input (or the module's
    own, cheaper ``warm_up`` where a full run is long, as for particle and saddle), after
    compiling every numba kernel, which small inputs would not reach."""
    dg.backend.warm_up()
    if hasattr(mod, "warm_up"):
        mod.warm_up()
        return
    example = mod.example()
    for fn in mod.FUNCTIONS.values():
        fn.output(fn.run(fn.prepare(example)))


class Tool:
    """The tool side of one GradBench session."""

    def __init__(self, warm=True, jit=False):
        self.warm, self.jit = warm, jit

    def handle(self, message):
        """The response to one message (a dict)."""
        response = {"id": message["id"]}
        kind = message.get("kind")
        if kind == "start":
            response["tool"] = TOOL + ("-jit" if self.jit else "")
        elif kind == "define":
            t0 = time.perf_counter_ns()
            try:
                mod = load(message["module"])
                if self.warm:
                    warm_up(mod)
            except Exception as e:  # noqa: BLE001 - reported to the eval, not raised
                response["success"] = False
                response["error"] = _error(e)
            else:
                response["success"] = True
                response["timings"] = [{"name": "define",
                                        "nanoseconds": time.perf_counter_ns() - t0}]
        elif kind == "evaluate":
            try:
                output, timings = evaluate(message["module"], message["function"],
                                           message["input"], self.jit)
            except Exception as e:  # noqa: BLE001
                response["success"] = False
                response["error"] = _error(e)
            else:
                response["success"] = True
                response["output"] = output
                response["timings"] = timings
        return response

    def serve(self, lines, write):
        """Answer every JSON line of ``lines`` through ``write(str)``."""
        for line in lines:
            if not line.strip():
                continue
            message = json.loads(line)
            write(json.dumps(self.handle(message)) + "\n")
            if message.get("kind") == "end":
                break


def tune_malloc():
    """Keep freed memory in the process (glibc): a tape holds many large arrays, and
    without this every run of a repeated evaluation pays page faults afresh for
    memory the previous run just gave back.  Returns whether glibc accepted it."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = libc.mallopt(m_mmap_threshold, 1 << 30) or libc.mallopt(m_mmap_threshold, 32 << 20)
    ok = libc.mallopt(m_trim_threshold, 1 << 36) and ok
    return bool(libc.mallopt(m_top_pad, 64 << 20) and ok)


def _error(e):
    return "".join(traceback.format_exception(e))


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.gradbench",
                                     description="dualgrad as a GradBench tool "
                                     "(JSON lines on stdin/stdout)")
    parser.add_argument("--multithreaded", action="store_true",
                        help="accepted for GradBench compatibility; dualgrad runs "
                        "single-threaded unless the BLAS it links uses threads")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip running each eval on a small input at define time")
    parser.add_argument("--no-malloc-tuning", action="store_true",
                        help="leave glibc's malloc thresholds at their defaults")
    parser.add_argument("--jit", action="store_true",
                        help="run every function as dg.jit(function) (compilation untimed)")
    args = parser.parse_args(argv)
    if not args.no_malloc_tuning:
        tune_malloc()

    def write(s):
        sys.stdout.write(s)
        sys.stdout.flush()

    try:
        Tool(warm=not args.no_warmup, jit=args.jit).serve(sys.stdin, write)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
