"""mkdocs hooks: every page of the site but none of its text is generated here.

- Home comes from README.md, the user guide and the design page from docs/guide/*.md and
  docs/design.md (and README sections not moved there yet: ``site_pages.readme_pages``),
  the tutorials' index from tutorials/README.md, the tutorials from tutorials/*.py run
  cell by cell (``docs/run_tutorial.py``), "What covers what" from the primitive table,
  the API reference from the docstrings (mkdocstrings); the nav is built from them.
- Tutorials run in parallel, each with a time limit (``DUALGRAD_DOCS_TIMEOUT``, seconds,
  default 300); their outputs are cached in ``build/docs-cache`` (``DUALGRAD_DOCS_CACHE``)
  under a hash of the tutorial and of dualgrad's sources, so a rebuild runs none
  (``python docs/run_tutorial.py --cache TUTORIAL`` fills the same cache: a test run that
  runs the tutorials that way leaves the build nothing to run).
  ``DUALGRAD_DOCS_EXECUTE``: ``1`` (default) runs what the cache lacks, ``cached`` runs
  nothing and takes the newest cached outputs even of an older version (a quick local
  build), ``0`` runs nothing; a tutorial without outputs says so on its page.
  A tutorial that fails or times out is a warning: ``mkdocs build --strict`` fails.
- Math (``$...$``, ``$$...$$``, through pymdownx.arithmatex) becomes MathML when the page
  is written (latex2mathml), so the site needs no script from the network.
- DOT graphs a tutorial prints are drawn as SVG with graphviz's ``dot`` when it is
  installed, and shown as text otherwise.
"""

import base64
import concurrent.futures
import html
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_tutorial  # noqa: E402
import site_pages as pages  # noqa: E402

log = logging.getLogger("mkdocs.hooks.dualgrad")
ROOT = pages.ROOT
_state = {}


# --- tutorials ------------------------------------------------------------------------

def _run_one(path, out, timeout, threads):
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                        os.environ.get("PYTHONPATH")])))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, str(threads))  # tutorials side by side share the cores
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as figures:
        env["DUALGRAD_TUTORIAL_FIGURES"] = figures
        try:
            proc = subprocess.run([sys.executable, str(ROOT / "docs" / "run_tutorial.py"),
                                   str(path), str(out)], env=env, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"timed out after {timeout} s"
    log.info("ran tutorial %s in %.1f s", path.stem, time.perf_counter() - start)
    if proc.returncode != 0 and not out.exists():
        return f"exited with status {proc.returncode}: {proc.stderr[-2000:]}"
    return None


def run_tutorials():
    """{stem: {"ok", "cells"} or None}: each tutorial's executed cells, from the cache or
    run now (in parallel, one process per tutorial)."""
    mode = pages.env_flag("DUALGRAD_DOCS_EXECUTE", "1")
    timeout = float(os.environ.get("DUALGRAD_DOCS_TIMEOUT", "300"))
    cache = Path(run_tutorial.cache_dir())
    cache.mkdir(parents=True, exist_ok=True)
    sources = run_tutorial.sources_hash()
    results, todo = {}, []
    for path in pages.tutorial_files():
        out = Path(run_tutorial.cache_file(path, sources, cache))
        results[path.stem] = out
        if not out.exists() and mode not in ("0", "cached"):
            todo.append((path, out))
    if todo:
        log.info("running %d tutorial(s) for the docs (timeout %g s each)", len(todo), timeout)
        workers = min(len(todo), os.cpu_count() or 2)
        threads = max(1, (os.cpu_count() or 2) // workers)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            errors = dict(zip([p.stem for p, _ in todo],
                              pool.map(lambda t: _run_one(*t, timeout, threads), todo)))
        for stem, err in errors.items():
            if err:
                log.warning("tutorial %s did not run for the docs: %s", stem, err)
    loaded = {}
    for stem, out in results.items():
        if not out.exists() and mode == "cached":  # outputs of an earlier version, if any
            older = sorted(cache.glob(f"{stem}-*.json"), key=lambda p: p.stat().st_mtime)
            out = older[-1] if older else out
        loaded[stem] = json.loads(out.read_text()) if out.exists() else None
        if loaded[stem] is not None and not loaded[stem]["ok"]:
            out.unlink()  # a failed run is shown once, and run again next time
            log.warning("tutorial %s raised while running for the docs (its page shows "
                        "the traceback)", stem)
    return loaded


def _fence(text, lang=""):
    ticks = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


DOT = re.compile(r"^\s*(?:strict\s+)?(?:di)?graph\b[^{]*\{.*\}\s*$", re.S)


def _dot_svg(text):
    dot = shutil.which("dot")
    if dot is None or not DOT.match(text):
        return None
    proc = subprocess.run([dot, "-Tsvg"], input=text, capture_output=True, text=True,
                          timeout=60)
    return proc.stdout if proc.returncode == 0 else None


def tutorial_page(path, run, add, targets, anchors, wanted):
    """The markdown of a tutorial page; its figures go to ``add(site path, content)``."""
    stem = path.stem
    page = f"tutorials/{stem}.md"
    cells = (run["cells"] if run is not None else
             [{"kind": k, "source": s, "outputs": []}
              for k, s in run_tutorial.read_cells(path.read_text(encoding="utf-8"))])
    parts, n_fig = [], 0
    for i, cell in enumerate(cells):
        if cell["kind"] == "markdown":
            text = pages.rewrite_links(cell["source"], f"tutorials/{path.name}", page,
                                       targets, anchors, wanted)
            parts.append(text)
            if i == 0:
                note = (f"[Download `{path.name}`]({path.name}) (a jupytext notebook: run "
                        "it as a script, or open it in Jupyter)")
                if run is None:
                    note += ". *This build did not run it: the outputs are not shown.*"
                parts.append(f"!!! note \"\"\n    {note}")
            continue
        parts.append(_fence(cell["source"], "python"))
        for out in cell["outputs"]:
            if out["type"] == "png":
                n_fig += 1
                name = f"{stem}/figure-{n_fig}.png"
                add(f"tutorials/{name}", base64.b64decode(out["data"]))
                parts.append(f"![{stem}: figure {n_fig}]({name})")
                continue
            svg = _dot_svg(out["data"])
            if svg is not None:
                n_fig += 1
                name = f"{stem}/graph-{n_fig}.svg"
                add(f"tutorials/{name}", svg)
                parts.append(f"![{stem}: graph {n_fig}]({name})")
            else:
                parts.append('<div class="dg-output" markdown>\n\n'
                             + _fence(out["data"], "text") + "\n\n</div>")
    return "\n\n".join(parts) + "\n"


def _title(path):
    for kind, source in run_tutorial.read_cells(path.read_text(encoding="utf-8")):
        if kind == "markdown":
            m = re.search(r"^# (.+)$", source, re.M)
            if m:
                return m.group(1).replace("`", "").strip()
    return path.stem


# --- the hooks ------------------------------------------------------------------------

def on_config(config):
    guide = pages.readme_pages()
    api = pages.api_pages()
    tutorials = pages.tutorial_files()
    _state.update(guide=guide, api=api)
    home = [p for p in guide if p[0] == "index.md"]
    design = [p for p in guide if p[0] == "design.md"]
    config["nav"] = (
        [{"Home": "index.md"}]
        + [{"User guide": [{t: p} for p, t, *_ in guide if p.startswith("guide/")]}]
        + [{"Tutorials": ["tutorials/index.md"]
            + [{_title(t): f"tutorials/{t.stem}.md"} for t in tutorials]}]
        + [{"API reference": [{t: p} for p, t, _ in api]}]
        + [{"What covers what": "coverage.md"}]
        + ([{"Design": "design.md"}] if design else [])
    )
    assert home
    return config


def on_files(files, config):
    guide, api = _state["guide"], _state["api"]
    tutorials = pages.tutorial_files()
    targets = {"README.md": "index.md", "tutorials/README.md": "tutorials/index.md"}
    targets.update({source: path for path, _, _, _, source in guide
                    if source.startswith("docs/")})  # the guide's pages link each other
    targets.update({f"tutorials/{t.name}": f"tutorials/{t.stem}.md" for t in tutorials})
    anchors = {}
    for path, _, text, _, _ in guide:
        for s in pages.headings(text):
            anchors.setdefault(s, path)
    wanted = set()

    def add(path, content):
        if files.get_file_from_path(path) is not None:
            files.remove(files.get_file_from_path(path))
        files.append(File.generated(config, path, content=content))

    for path, _, text, _, source in guide:
        add(path, pages.rewrite_links(text, source, path, targets, anchors, wanted))
    index = (ROOT / "tutorials" / "README.md").read_text(encoding="utf-8")
    add("tutorials/index.md", pages.rewrite_links(index, "tutorials/README.md",
                                                  "tutorials/index.md", targets, {}, wanted))
    runs = run_tutorials()
    for t in tutorials:
        add(f"tutorials/{t.name}", t.read_bytes())
        add(f"tutorials/{t.stem}.md",
            tutorial_page(t, runs[t.stem], add, targets, anchors, wanted))
    for path, _, text in api:
        add(path, text)
    add("coverage.md", pages.coverage_page())
    done = set()
    while wanted - done:  # repository files the pages link to, and those they link to
        repo_path = sorted(wanted - done)[0]
        done.add(repo_path)
        data = (ROOT / repo_path).read_bytes()
        if repo_path.endswith(".md"):
            data = pages.rewrite_links(data.decode("utf-8"), repo_path, f"repo/{repo_path}",
                                       targets, {}, wanted)
        add(f"repo/{repo_path}", data)
    return files


_MATH = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.S)


def _mathml(m):
    try:
        from latex2mathml.converter import convert  # optional: the docs extra has it
    except ImportError:
        return m.group(0)
    tex = html.unescape(m.group(2)).strip()
    display = tex.startswith("\\[")
    tex = tex[2:-2] if tex[:2] in ("\\(", "\\[") else tex
    try:
        out = convert(tex, display="block" if display else "inline")
    except Exception:  # noqa: BLE001  (an unknown macro: keep the TeX, readable as is)
        return m.group(0)
    return f'<{m.group(1)} class="arithmatex">{out}</{m.group(1)}>'


def on_page_content(html_text, page, config, files):
    return _MATH.sub(_mathml, html_text)
