"""Execute one jupytext percent-format tutorial cell by cell, as a notebook would, and
write its cells with their outputs as JSON (what the docs build renders).

    python docs/run_tutorial.py tutorials/02_wengert_list.py out.json
    python docs/run_tutorial.py --cache tutorials/02_wengert_list.py

With ``--cache`` the JSON goes where the docs build looks for it (``cache_file``: the
docs cache, ``DUALGRAD_DOCS_CACHE`` or build/docs-cache, under a hash of the tutorial and
of dualgrad's sources), and only if the tutorial ran to the end; the cells' text is also
printed, and a failing cell's traceback goes to stderr, as a plain script run would show
them.  A test that runs the tutorials this way leaves the docs build nothing to run.

Each ``# %%`` code cell runs in one shared namespace (``__name__ == "__main__"``, the
working directory the tutorial's folder, no ``__file__``, as in Jupyter).  A cell's
outputs are what it prints (stdout, and stderr with warnings), the ``repr`` of its last
expression when that is not None (as IPython shows it), and every matplotlib figure
opened or still open and changed since the previous cell, as PNG.  A cell that raises
stops the run: the traceback is written as that cell's output and the exit status is 1.
Figures the tutorial saves itself go to ``DUALGRAD_TUTORIAL_FIGURES`` (a temporary
folder here, never the source tree).

No Jupyter kernel is needed: the docs extra stays small and the run is as fast as the
script itself.  Only the standard library, numpy and matplotlib (which the tutorials
import anyway) are used.
"""

import ast
import atexit
import base64
import contextlib
import hashlib
import io
import json
import linecache
import os
import re
import shutil
import sys
import tempfile
import traceback

CELL = re.compile(r"^# %%(?P<rest>.*)$", re.M)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sources_hash():
    """A hash of dualgrad's sources (dualgrad/, kernels/) and of this runner: outputs
    cached under it are outputs of this version."""
    h = hashlib.sha256()
    for folder in ("dualgrad", "kernels"):
        paths = []
        for top, dirs, files in os.walk(os.path.join(ROOT, folder)):
            dirs.sort()
            paths += [os.path.join(top, f) for f in files if f.endswith(".py")]
        for path in sorted(paths, key=lambda q: os.path.relpath(q, ROOT).split(os.sep)):
            h.update(os.path.relpath(path, ROOT).replace(os.sep, "/").encode())
            with open(path, "rb") as f:
                h.update(f.read())
    with open(os.path.abspath(__file__), "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def cache_dir():
    return os.environ.get("DUALGRAD_DOCS_CACHE") or os.path.join(ROOT, "build", "docs-cache")


def cache_file(path, sources=None, folder=None):
    """Where the docs build keeps (and looks for) the outputs of tutorial ``path``."""
    with open(path, "rb") as f:
        data = f.read()
    key = hashlib.sha256(data + (sources or sources_hash()).encode()).hexdigest()[:16]
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.join(folder or cache_dir(), f"{stem}-{key}.json")


def read_cells(text):
    """[(kind, source)] of a percent-format file; kind is "markdown" or "code".  The
    jupytext header (the leading ``# ---`` block) is dropped."""
    cells = []
    marks = list(CELL.finditer(text))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[m.end() + 1:end].strip("\n")
        if "[markdown]" in m.group("rest"):
            lines = [line[2:] if line.startswith("# ") else line.lstrip("#")
                     for line in body.splitlines()]
            cells.append(("markdown", "\n".join(lines).strip("\n")))
        elif body.strip():
            cells.append(("code", body))
    return cells


def _figures(plt, seen):
    """PNGs of the figures opened, or changed, since the last call."""
    out = []
    for num in plt.get_fignums():
        fig = plt.figure(num)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        data = buf.getvalue()
        if seen.get(num) != data:
            seen[num] = data
            out.append({"type": "png", "data": base64.b64encode(data).decode("ascii")})
    return out


def run_cell(source, namespace, filename):
    """Run one cell; returns (stdout+stderr text, repr of the last expression or None)."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    tree = ast.parse(source, filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, filename, "exec"), namespace)
    if last is not None:
        value = eval(compile(last, filename, "eval"), namespace)
        if value is not None:
            return repr(value)
    return None


def run(path):
    """(cells, ok): the tutorial's cells, each with its outputs."""
    with open(path, encoding="utf-8") as f:
        cells = read_cells(f.read())
    os.chdir(os.path.dirname(os.path.abspath(path)))
    sys.path.insert(0, os.getcwd())
    os.environ.setdefault("MPLBACKEND", "Agg")
    if "DUALGRAD_TUTORIAL_FIGURES" not in os.environ:  # the figures' files go when it ends
        figures = tempfile.mkdtemp(prefix="dg-figs-")
        atexit.register(shutil.rmtree, figures, ignore_errors=True)
        os.environ["DUALGRAD_TUTORIAL_FIGURES"] = figures
    import matplotlib  # noqa: F401  (the tutorials draw with it)
    import matplotlib.pyplot as plt

    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    seen, result, ok = {}, [], True
    for n, (kind, source) in enumerate(cells):
        cell = {"kind": kind, "source": source, "outputs": []}
        result.append(cell)
        if kind != "code" or not ok:
            continue
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                value = run_cell(source, namespace, f"<cell {n}>")
        except BaseException:  # noqa: BLE001  (the traceback is the cell's output)
            ok = False
            value = None
            buf.write(traceback.format_exc())
        if buf.getvalue():
            cell["outputs"].append({"type": "text", "data": buf.getvalue()})
        if value is not None:
            cell["outputs"].append({"type": "text", "data": value})
        cell["outputs"].extend(_figures(plt, seen))
    return result, ok


def main(argv):
    if argv[1:2] == ["--cache"]:
        path = os.path.abspath(argv[2])
        out = cache_file(path)  # the key is taken before the run (which may chdir)
        cells, ok = run(path)
        for cell in cells:
            for o in cell["outputs"]:
                if o["type"] == "text":
                    sys.stdout.write(o["data"].rstrip("\n") + "\n")
        if not ok:
            failed = [c for c in cells if c["outputs"]][-1]
            sys.stderr.write(f"{argv[2]}: a cell raised\n{failed['source']}\n"
                             f"{failed['outputs'][0]['data']}")
            return 1
        os.makedirs(os.path.dirname(out), exist_ok=True)
        tmp = f"{out}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"ok": ok, "cells": cells}, f)
        os.replace(tmp, out)  # whole or not at all, also with two runs side by side
        return 0
    path, out = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    cells, ok = run(path)
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"ok": ok, "cells": cells}, f)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
