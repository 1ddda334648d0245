"""Run GradBench's evals against dualgrad (and its PyTorch and JAX tools) without Docker.

    python -m bench.gradbench.run_all --gradbench /path/to/gradbench \\
        [--python /path/to/venv/bin/python] [--tools dualgrad pytorch jax] \\
        [--evals lse gmm ...] [--preset quick|full] [--cpu 0]

``--gradbench`` is a local checkout of https://github.com/gradbench/gradbench set up
as its README describes for running without Docker ("Running evals outside of
Docker"): the ``manual`` C++ tool built (``make -C tools/manual``; the evals use
it to validate every output) and a Python that can import the eval package
(numpy, pydantic, dataclasses-json, scipy; torch and jax for those tools).
This project never builds, copies or vendors any GradBench code: it only runs
the checkout's own eval scripts, the way GradBench's CLI does with
``./gradbench repo run --eval "$ ..." --tool "$ ..."``.

This module is that intermediary, in Python: it starts the eval
(``python/gradbench/gradbench/evals/<eval>/run.py``, cwd = the checkout) and
the tool, forwards each eval message to the tool and each response back, and
writes the session log in GradBench's format (one ``{"elapsed", "message"}``
or ``{"elapsed", "response"}`` object per line) to
``<logs>/<eval>/<tool>.jsonl``.  Every process is pinned to one core and one
thread (``taskset -c CPU``, ``OMP_NUM_THREADS=1`` and friends).

From the logs it reports, per eval and tool: the outcome (success, invalid,
failure, undefined, timeout, error) as GradBench's CLI defines it, the mean
primal and derivative time per workload, their ratio J/F, and GradBench's
score (1 / Σ over workloads of mean primal + mean derivative time; for
particle and saddle 1 / the fastest function's mean time), and writes a
markdown summary (default ``bench/results/gradbench.md``).
"""

import argparse
import datetime
import json
import os
import platform
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

EVALS = ("hello", "lse", "llsq", "det", "ode", "gmm", "kmeans", "lstm", "ba", "ht",
         "particle", "saddle")

#: (primal function, derivative function) of each eval that GradBench scores classically.
FUNCTIONS = {
    "lse": ("primal", "gradient"), "llsq": ("primal", "gradient"),
    "det": ("primal", "gradient"), "ode": ("primal", "gradient"),
    "gmm": ("objective", "jacobian"), "kmeans": ("cost", "dir"),
    "lstm": ("objective", "jacobian"), "ba": ("objective", "jacobian"),
    "ht": ("objective", "jacobian"),
}
EQUIVALENT = ("particle", "saddle")  # four equivalent functions; the fastest one scores

#: Eval arguments.  "full" is GradBench's defaults, except where the stored data is missing.
#: "quick" trims the largest workloads so that PyTorch's per-element Python loops (ba, ht)
#: and everything else finish in minutes on one core.
PRESETS = {
    "full": {
        "ht": ["--max", "11"],   # hand12 of the complicated data is not in the snapshot
    },
    "quick": {
        "lse": ["-n", "2500", "10000", "40000", "160000", "640000", "1280000"],
        "llsq": ["-n", "16", "64", "256", "1024", "4096", "16392"],
        "det": ["-l", "5", "7", "9", "10", "11"],
        "ode": ["-n", "1000", "10000", "100000", "-s", "1", "10", "100"],
        "gmm": ["-d", "2", "10", "20", "64", "-k", "5", "25", "100"],
        "kmeans": [],
        "lstm": ["-l", "2", "4", "-c", "1024", "4096"],
        "ba": ["--min", "1", "--max", "2"],
        "ht": ["--min", "1", "--max", "4"],
    },
}

#: Which tools GradBench's repository implements each eval for (Python tools only).
TOOL_MODULES = {
    "pytorch": ("python/gradbench/gradbench/tools/pytorch/run.py",
                {"hello", "lse", "gmm", "kmeans", "lstm", "ba", "ht"}),
    "jax": ("python/gradbench/gradbench/tools/jax/run.py",
            {"hello", "lse", "llsq", "ode", "gmm", "kmeans"}),
}

SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
}


# ---------------------------------------------------------------------------
# running one eval against one tool
# ---------------------------------------------------------------------------

def _reader(stream, q):
    for line in iter(stream.readline, ""):
        q.put(line)
    q.put(None)


def intermediary(eval_cmd, eval_cwd, eval_env, tool_cmd, tool_cwd, tool_env, log_path,
                 timeout=600.0, echo=None):
    """Run one session; returns the outcome (GradBench's names) and writes the log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stderr_eval = open(log_path.with_suffix(".eval.stderr"), "w")
    stderr_tool = open(log_path.with_suffix(".tool.stderr"), "w")
    ev = subprocess.Popen(eval_cmd, cwd=eval_cwd, env=eval_env, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=stderr_eval, text=True, bufsize=1)
    tool = subprocess.Popen(tool_cmd, cwd=tool_cwd, env=tool_env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=stderr_tool, text=True, bufsize=1)
    eq, tq = queue.Queue(), queue.Queue()
    threading.Thread(target=_reader, args=(ev.stdout, eq), daemon=True).start()
    threading.Thread(target=_reader, args=(tool.stdout, tq), daemon=True).start()
    start = time.perf_counter_ns()
    counts = {"undefined": 0, "failure": 0, "invalid": 0}
    outcome = None
    with open(log_path, "w") as log:
        while True:
            line = eq.get()
            if line is None:
                break
            now = time.perf_counter_ns() - start
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                outcome = "error"
                break
            log.write(f'{{"elapsed": {{"nanoseconds": {now}}}, "message": {line.strip()}}}\n')
            if message.get("kind") == "analysis" and not message.get("valid"):
                counts["invalid"] += 1
            if echo:
                echo(message, None)
            try:
                tool.stdin.write(line if line.endswith("\n") else line + "\n")
                tool.stdin.flush()
            except BrokenPipeError:
                outcome = "error"
                break
            try:
                reply = tq.get(timeout=timeout)
            except queue.Empty:
                outcome = "timeout"
                break
            if reply is None:
                outcome = "error"
                break
            now = time.perf_counter_ns() - start
            log.write(f'{{"elapsed": {{"nanoseconds": {now}}}, "response": {reply.strip()}}}\n')
            log.flush()
            response = json.loads(reply)
            kind = message.get("kind")
            if kind == "define" and not response.get("success"):
                counts["undefined"] += 1
            if kind == "evaluate" and not response.get("success"):
                counts["failure"] += 1
            if echo:
                echo(message, response)
            try:
                ev.stdin.write(reply if reply.endswith("\n") else reply + "\n")
                ev.stdin.flush()
            except BrokenPipeError:
                break
    for p in (ev, tool):
        try:
            p.stdin.close()
        except OSError:
            pass
    for p in (ev, tool):
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    stderr_eval.close()
    stderr_tool.close()
    if outcome is None and ev.returncode not in (0, None):
        outcome = "error"
    if outcome is None:
        for name in ("undefined", "failure", "invalid"):
            if counts[name]:
                outcome = name
                break
    return outcome or "success"


# ---------------------------------------------------------------------------
# reading a log
# ---------------------------------------------------------------------------

def read_log(path):
    """Per evaluate message: function, description, success, mean/count of timings, validity."""
    rows, by_id = [], {}
    pending = None
    with open(path) as f:
        for line in f:
            entry = json.loads(line)
            if "message" in entry:
                pending = entry["message"]
                if pending.get("kind") == "analysis" and pending.get("of") in by_id:
                    row = by_id[pending["of"]]
                    row["valid"] = bool(pending.get("valid"))
                    row["error"] = pending.get("error")
                continue
            msg, resp = pending, entry["response"]
            pending = None
            if msg is None or msg.get("kind") != "evaluate":
                continue
            times = [t["nanoseconds"] for t in resp.get("timings") or []
                     if t.get("name") == "evaluate"]
            row = {"id": msg["id"], "function": msg["function"],
                   "description": msg.get("description"), "success": resp.get("success"),
                   "runs": len(times), "mean_s": sum(times) / len(times) / 1e9 if times else None,
                   "valid": None, "error": resp.get("error")}
            rows.append(row)
            by_id[msg["id"]] = row
    return rows


def workloads(eval_name, rows):
    """{description: {"primal": s, "derivative": s}} for classically scored evals."""
    primal, derivative = FUNCTIONS[eval_name]
    out = {}
    for r in rows:
        if r["description"] is None or r["mean_s"] is None:
            continue
        pair = out.setdefault(r["description"], {})
        if r["function"] == primal:
            pair["primal"] = r["mean_s"]
        elif r["function"] == derivative:
            pair["derivative"] = r["mean_s"]
    return out


def score(eval_name, rows):
    """GradBench's score for one tool's log (higher is better); None if nothing ran."""
    if eval_name in FUNCTIONS:
        total = sum(v for pair in workloads(eval_name, rows).values() for v in pair.values())
        return 1.0 / total if total > 0 else None
    if eval_name in EQUIVALENT:
        means = [r["mean_s"] for r in rows if r["mean_s"]]
        return 1.0 / min(means) if means else None
    return None


# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------

def _env(base_extra, pythonpath):
    env = dict(os.environ)
    env.update(SINGLE_THREAD)
    env.update(base_extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath),
                                                    env.get("PYTHONPATH", "")) if p)
    return env


def _pin(cmd, cpu):
    return (["taskset", "-c", str(cpu)] + cmd) if cpu is not None and _has_taskset() else cmd


def _has_taskset():
    try:
        subprocess.run(["taskset", "-V"], capture_output=True, check=False)
        return True
    except OSError:
        return False


def lstm_overlay(gb, text_source):
    """A working directory for the lstm eval whose evals/lstm/data/lstm_full.txt is
    ``text_source`` (the checkout's own file when present); tools/ is the checkout's."""
    work = Path(tempfile.mkdtemp(prefix="gradbench-lstm-"))
    (work / "evals" / "lstm" / "data").mkdir(parents=True)
    (work / "evals" / "lstm" / "data" / "lstm_full.txt").symlink_to(Path(text_source).resolve())
    (work / "tools").symlink_to((gb / "tools").resolve())
    return work


def default_lstm_text(gb):
    """The eval's text if the checkout has it; else a stand-in made of the evals' READMEs."""
    real = gb / "evals" / "lstm" / "data" / "lstm_full.txt"
    if real.is_file():
        return real, False
    text = "".join(p.read_text(encoding="utf8") for p in sorted(gb.glob("evals/*/README.md")))
    text = "".join(c for c in text if ord(c) < 128)  # 7-bit characters, as English text
    stand_in = Path(tempfile.mkdtemp(prefix="gradbench-lstm-text-")) / "lstm_full.txt"
    stand_in.write_text(text * (1 + 8192 // max(len(text), 1)), encoding="utf8")
    return stand_in, True


def tool_command(tool, gb, python, eval_name):
    """(cmd, cwd, env, supported) for running ``tool``."""
    if tool in ("dualgrad", "dualgrad-jit"):
        jit = ["--jit"] if tool == "dualgrad-jit" else []
        return ([sys.executable, "-m", "bench.gradbench", *jit], ROOT, _env({}, ROOT), True)
    script, supported = TOOL_MODULES[tool]
    return ([python, str(gb / script)], gb, _env({}, gb / "python" / "gradbench"),
            eval_name in supported)


def tool_available(tool, python):
    if tool in ("dualgrad", "dualgrad-jit"):
        return True
    module = {"pytorch": "torch", "jax": "jax"}[tool]
    r = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
    return r.returncode == 0


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------

def _fmt_s(s):
    if s is None:
        return "–"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def _fmt_score(x):
    return "–" if x is None else f"{x:.4g}"


def report(results, meta):
    """Markdown from {eval: {tool: {"outcome", "rows", "note"}}}."""
    lines = ["# GradBench results for dualgrad", ""]
    lines += [f"- date: {meta['date']}", f"- machine: {meta['machine']}",
              f"- GradBench checkout: {meta['gradbench']}",
              f"- preset: {meta['preset']}; evals run with `--min-runs 1 --min-seconds "
              f"{meta['min_seconds']}` unless noted",
              f"- every process pinned: `taskset -c {meta['cpu']}`, one thread "
              "(OMP/OpenBLAS/MKL/NUMBA/XLA set to 1)",
              "- score: GradBench's, 1 / Σ over workloads (mean primal + mean derivative "
              "seconds); particle and saddle: 1 / mean seconds of the fastest function. "
              "Higher is better; scores compare only across tools on the same eval.",
              "- JAX: GradBench's JAX tool does not wait for JAX's asynchronous dispatch "
              "(no `block_until_ready`) before stopping its clock, so its timings "
              "(and score) understate the real time; they are shown for reference only.",
              ""]
    lines += ["## Summary", "",
              "| eval | tool | outcome | valid | score | vs PyTorch | notes |",
              "|---|---|---|---|---|---|---|"]
    for ev, tools in results.items():
        torch_score = None
        if "pytorch" in tools and tools["pytorch"]["outcome"] == "success":
            torch_score = score(ev, tools["pytorch"]["rows"])
        for tool, res in tools.items():
            rows = res["rows"]
            valid = [r["valid"] for r in rows if r["valid"] is not None]
            nvalid = f"{sum(valid)}/{len(valid)}" if valid else "–"
            sc = score(ev, rows) if res["outcome"] == "success" else None
            rel = (f"{sc / torch_score:.2f}×" if sc and torch_score and tool != "pytorch"
                   else "")
            lines.append(f"| {ev} | {tool} | {res['outcome']} | {nvalid} | {_fmt_score(sc)} "
                         f"| {rel} | {res.get('note', '')} |")
    lines.append("")
    for ev, tools in results.items():
        if ev not in FUNCTIONS and ev not in EQUIVALENT:
            continue
        lines += [f"## {ev}", ""]
        if ev in EQUIVALENT:
            lines += ["| tool | function | mean | runs | valid |", "|---|---|---|---|---|"]
            for tool, res in tools.items():
                for r in res["rows"]:
                    lines.append(f"| {tool} | {r['function']} | {_fmt_s(r['mean_s'])} | "
                                 f"{r['runs']} | {r['valid']} |")
            lines.append("")
            continue
        names = list(tools)
        header = "| workload | " + " | ".join(f"{t} F | {t} J | {t} J/F" for t in names) + " |"
        lines += [header, "|---|" + "---|" * (3 * len(names))]
        per_tool = {t: workloads(ev, tools[t]["rows"]) for t in names}
        order = []
        for t in names:
            for d in per_tool[t]:
                if d not in order:
                    order.append(d)
        for d in order:
            cells = []
            for t in names:
                pair = per_tool[t].get(d, {})
                f, j = pair.get("primal"), pair.get("derivative")
                ratio = f"{j / f:.2f}" if f and j else "–"
                cells += [_fmt_s(f), _fmt_s(j), ratio]
            lines.append(f"| {d} | " + " | ".join(cells) + " |")
        invalid = [(t, r) for t in names for r in tools[t]["rows"] if r["valid"] is False]
        for t, r in invalid[:5]:
            err = (r.get("error") or "").strip().splitlines()
            lines.append(f"\n{t} invalid on {r['function']} {r['description']}: "
                         f"`{err[-1] if err else ''}`")
        lines.append("")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gradbench", required=True, type=Path,
                    help="a local GradBench checkout (with tools/manual built)")
    ap.add_argument("--python", default=sys.executable,
                    help="Python for the evals and the PyTorch/JAX tools (needs numpy, "
                    "pydantic, dataclasses-json, scipy; torch/jax for those tools)")
    ap.add_argument("--tools", nargs="+", default=["dualgrad", "pytorch", "jax"])
    ap.add_argument("--evals", nargs="+", default=list(EVALS))
    ap.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--cpu", default="0", help="the core every process is pinned to")
    ap.add_argument("--timeout", type=float, default=1800.0,
                    help="seconds to wait for any one response")
    ap.add_argument("--lstm-text", type=Path, default=None,
                    help="text for the lstm eval when the checkout lacks "
                    "evals/lstm/data/lstm_full.txt (default: a stand-in made of the "
                    "checkout's eval READMEs, noted in the report)")
    ap.add_argument("--logs", type=Path, default=ROOT / "bench" / "results" / "gradbench-logs")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gradbench.md")
    ap.add_argument("--json", type=Path, default=None,
                    help="also write the parsed results as JSON here")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)

    gb = args.gradbench.resolve()
    if not (gb / "python" / "gradbench" / "gradbench" / "evals").is_dir():
        ap.error(f"{gb} does not look like a GradBench checkout")
    if not (gb / "tools" / "manual" / "bin").is_dir():
        print(f"warning: {gb}/tools/manual/bin is missing; the evals validate against the "
              "manual tool: build it with `make -C tools/manual` (needs cpp/json.hpp)",
              file=sys.stderr)
    cpu = None if args.cpu in ("", "none") else args.cpu
    results = {}
    for ev in args.evals:
        results[ev] = {}
        eval_args = ["--min-seconds", str(args.min_seconds)]
        eval_args += PRESETS[args.preset].get(ev, [])
        eval_cwd, note = gb, ""
        if ev == "lstm":
            text, stand_in = ((args.lstm_text, True) if args.lstm_text
                              else default_lstm_text(gb))
            if stand_in:
                eval_cwd = lstm_overlay(gb, text)
                note = f"input text: stand-in ({text.name}), evals/lstm/data/lstm_full.txt " \
                       "is missing"
        if ev == "ht":
            eval_args += ["--model", "big", "--variant", "complicated"]
        eval_cmd = _pin([args.python, str(gb / "python/gradbench/gradbench/evals" / ev /
                                          "run.py")] + eval_args, cpu)
        eval_env = _env({}, gb / "python" / "gradbench")
        for tool in args.tools:
            if not tool_available(tool, args.python):
                continue
            cmd, cwd, env, supported = tool_command(tool, gb, args.python, ev)
            if not supported:
                continue
            log = args.logs / ev / f"{tool}.jsonl"
            if not args.quiet:
                print(f"== {ev} × {tool}", flush=True)

            def echo(message, response):
                if args.quiet or response is None or message.get("kind") != "evaluate":
                    return
                times = [t["nanoseconds"] for t in response.get("timings") or []]
                mean = sum(times) / len(times) / 1e9 if times else None
                print(f"   {message['function']:>10} {message.get('description', '')!s:>22} "
                      f"{'ok ' if response.get('success') else 'FAIL'} {_fmt_s(mean)} "
                      f"× {len(times)}", flush=True)

            t0 = time.time()
            outcome = intermediary(eval_cmd, eval_cwd, eval_env, _pin(cmd, cpu), cwd, env,
                                   log, timeout=args.timeout, echo=echo)
            rows = read_log(log)
            results[ev][tool] = {"outcome": outcome, "rows": rows, "note": note,
                                 "wall_s": time.time() - t0}
            if not args.quiet:
                print(f"   -> {outcome}, score {_fmt_score(score(ev, rows))}, "
                      f"{time.time() - t0:.0f} s", flush=True)
    meta = {"date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"Python {platform.python_version()}",
            "gradbench": _checkout_id(gb), "preset": args.preset,
            "min_seconds": args.min_seconds, "cpu": args.cpu}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(results, meta))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(f"wrote {args.out}")
    bad = [(ev, t, r["outcome"]) for ev, ts in results.items() for t, r in ts.items()
           if t in ("dualgrad", "dualgrad-jit") and r["outcome"] != "success"]
    return 1 if bad else 0


def _checkout_id(gb):
    try:
        head = subprocess.run(["git", "-C", str(gb), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        return f"{gb} (commit {head})"
    except (OSError, subprocess.CalledProcessError):
        return str(gb)


if __name__ == "__main__":
    sys.exit(main())
