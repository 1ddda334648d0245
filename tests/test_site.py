"""The documentation site (mkdocs.yml, docs/): it builds with no warning, every public name
is on a reference page, every README section, tutorial, primitive row and numpy function
is on some page, and a real browser (headless Chromium) shows it without errors.

Needs the ``docs`` extra (skipped without mkdocs).  ``DUALGRAD_SITE_DIR`` names a site
already built (CI builds it once with ``mkdocs build --strict``); otherwise the site is
built here into a temporary folder, with the tutorials' outputs taken from the docs
build's cache where it has them (``DUALGRAD_DOCS_EXECUTE=cached``: none is run here).
"""

import functools
import http.server
import importlib
import inspect
import os
import pathlib
import pkgutil
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings

import pytest

import dualgrad as dg

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    given = os.environ.get("DUALGRAD_SITE_DIR")
    if given:
        path = pathlib.Path(given)
        assert (path / "index.html").exists(), f"DUALGRAD_SITE_DIR={given} holds no site"
        return path
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra is not installed "
                                           "(pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, DUALGRAD_DOCS_EXECUTE="cached", NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr[-5000:]}"
    warned = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    assert not warned, warned
    return out


def _docs_module(name):
    """docs/<name>.py, imported with docs/ on the path (as mkdocs imports the hooks)."""
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def _html(site, page):
    return (site / page).read_text(encoding="utf-8")


def _ids(site, folder):
    ids = set()
    for page in (site / folder).glob("*.html"):
        ids.update(re.findall(r'\bid="([^"]+)"', page.read_text(encoding="utf-8")))
    return ids


# --- every public name is on a reference page -------------------------------------------

def _defined(module):
    return [n for n, obj in vars(module).items()
            if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module.__name__]


def _public():
    """(where its reference entry is, name): every public name of dualgrad."""
    rows = [("dualgrad", n) for n in dg.__all__ if not inspect.ismodule(getattr(dg, n))]
    rows += [(dg.nn.__name__, n) for n in dg.nn.__all__]
    rows += [(dg.linalg.__name__, n) for n in _defined(dg.linalg)]
    rows += [(dg.tree.__name__, n) for n in _defined(dg.tree)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import dualgrad.scipy as dg_scipy
            import dualgrad.scipy_special
        except ImportError:  # scipy is optional
            return rows
        rows += [("dualgrad.scipy_special", n) for n in dualgrad.scipy_special.__all__]
        for sub in pkgutil.iter_modules(dg_scipy.__path__):
            module = importlib.import_module(f"dualgrad.scipy.{sub.name}")
            rows += [(module.__name__, n) for n in getattr(module, "__all__", ())]
    return rows


PUBLIC = _public()


@pytest.mark.parametrize("module,name", PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_public_name_is_on_a_reference_page(site, module, name):
    ids = _ids(site, "api")
    if module == "dualgrad.scipy_special":  # the deprecated name of dualgrad.scipy.special
        module = "dualgrad.scipy.special"
    assert f"{module}.{name}" in ids, f"{module}.{name} is on no page of the API reference"


def test_reference_entries_show_signature_and_example(site):
    page = _html(site, "api/dualgrad.html")
    entry = page[page.index('id="dualgrad.grad"'):]
    entry = entry[:entry.index('<div class="doc doc-object ')]
    assert "doc-signature" in entry, "dg.grad's entry has no signature"
    assert "argnums" in entry
    assert "&gt;&gt;&gt;" in entry and "<blockquote>" not in entry, (
        "dg.grad's doctest example should show as code")


# --- the guide, the tutorials, what covers what --------------------------------------------

def test_every_readme_section_is_on_a_page(site):
    pages = _docs_module("site_pages")
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    _, sections = pages.split_sections(text)
    ids = set()
    for page in site.rglob("*.html"):
        ids.update(re.findall(r'\bid="([^"]+)"', page.read_text(encoding="utf-8")))
    missing = [t for t, _ in sections
               if pages.PLACED.get(t, "") is not None and pages.slug(t) not in ids]
    assert not missing, f"README sections on no page of the site: {missing}"


def test_guide_pages_are_in_the_nav_by_title(site):
    """Each docs/guide page has a ``# `` title (its nav entry) and a place in GUIDE's order,
    and the built nav links it under that title."""
    pages = _docs_module("site_pages")
    home = _html(site, "index.html")
    nav = home[home.index('class="md-nav md-nav--primary"'):]
    for path in sorted((ROOT / "docs" / "guide").glob("*.md")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# "), f"{path.name} should start with its '# ' title"
        assert path.stem in pages.GUIDE, f"add {path.stem} to site_pages.GUIDE (the nav order)"
        title = first[2:].replace("`", "").strip()
        link = re.search(rf'href="guide/{re.escape(path.stem)}\.html"[^>]*>\s*(?:<[^>]+>\s*)*'
                         rf'([^<]+)', nav)
        assert link and link.group(1).strip() == title, (path.name, link and link.group(1))


TUTORIALS = sorted(p.stem for p in (ROOT / "tutorials").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("stem", TUTORIALS)
def test_tutorial_page(site, stem):
    page = _html(site, f"tutorials/{stem}.html")
    assert (site / "tutorials" / f"{stem}.py").exists(), "the source is not downloadable"
    if "This build did not run it" in page:
        pytest.skip("this build rendered the tutorials without running them")
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert images, f"{stem}'s page shows no figure"
    for src in images:
        assert (site / "tutorials" / src).exists(), src
    assert 'class="dg-output"' in page, f"{stem}'s page shows no output"
    raw = re.findall(r'class="arithmatex">(\\[(\[].{0,40})', page)
    assert not raw, f"math left as TeX (latex2mathml could not convert it): {raw[:3]}"


def _name(f):
    """np.add.reduce as "add.reduce", np.sum as "sum"."""
    owner = getattr(f, "__self__", None)
    return f"{owner.__name__}.{f.__name__}" if owner is not None else f.__name__


def test_coverage_page_lists_the_tables(site):
    from dualgrad.numpy.dispatch import HANDLED
    from dualgrad.rules.table import TABLE
    page = _html(site, "coverage.html")
    missing = [n for n in TABLE if f"<code>{n}</code>" not in page]
    assert not missing, f"primitives not on the coverage page: {missing}"
    missing = [_name(f) for f in HANDLED if f"<code>{_name(f)}</code>" not in page]
    assert not missing, f"numpy functions not on the coverage page: {missing}"


def test_coverage_page_compares_with_the_peers(site):
    """The feature table: a row per feature, a column per peer, and every ``dg.name`` it
    credits dualgrad with exists (the hand-written column cannot promise a missing name)."""
    pages = _docs_module("site_pages")
    page = _html(site, "coverage.html")
    table = page[page.index('id="dualgrad-beside-jax-pytorch-and-hips-autograd"'):]
    table = table[:table.index("</table>")]
    for peer in ("JAX", "PyTorch", "HIPS autograd"):
        assert f"<th>{peer}</th>" in table, peer
    for feature, *_ in pages.FEATURES:
        assert re.sub(r"`([^`]*)`", r"<code>\1</code>", feature) in table, feature
    for must in ("Forward mode", "Reverse mode", "vmap", "jit", "Higher order", "Custom rules",
                 "Complex", "In-place", "scipy", "Dask", "GPU", "Gradient checking"):
        assert any(must.lower() in f.lower() for f, *_ in pages.FEATURES), must
    named = {n for _, ours, *_ in pages.FEATURES for n in re.findall(r"`dg\.(\w+)", ours)}
    assert named and not [n for n in named if not hasattr(dg, n)], named


def test_coverage_page_lists_dualgrad_scipy(site):
    pytest.importorskip("scipy")
    page = _html(site, "coverage.html")
    section = page[page.index('id="dualgradscipy-'):]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import dualgrad.scipy as dg_scipy
        missing = []
        for sub in pkgutil.walk_packages(dg_scipy.__path__, "dualgrad.scipy."):
            module = importlib.import_module(sub.name)
            missing += [f"{sub.name}.{n}" for n in getattr(module, "__all__", ())
                        if f"<code>{n}</code>" not in section]
    assert not missing, f"dualgrad.scipy names not on the coverage page: {missing}"
    for name in ("erf", "gammaln", "jv", "betainc"):  # rows, and routed ufuncs
        assert f"<code>{name}</code>" in section, name
    assert "<code>np.erf</code>" not in page, "scipy's erf shown as numpy's"
    assert "<code>scipy.special.erf</code>" in page


def test_search_index_finds_hessian(site):
    """What the search box searches (the browser test types into it, when it can run)."""
    import json
    docs = json.loads(_html(site, "search/search_index.json"))["docs"]
    where = {d["location"].split("#")[0] for d in docs if "hessian" in d["text"].lower()}
    assert "api/dualgrad.html" in where, sorted(where)[:10]


# --- a real browser ------------------------------------------------------------------------

def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed (the docs extra has it)")
    chromium, driver = _chromium(), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("no headless Chromium: install Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver) to run the browser check")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=driver)
    b = webdriver.Chrome(options=options, service=service)
    b.set_page_load_timeout(30)
    try:
        yield b
    finally:
        b.quit()


@pytest.fixture
def server(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def _check_page(browser, url, shot):
    browser.get(url)
    deadline = time.time() + 10
    while browser.execute_script("return document.readyState") != "complete":
        assert time.time() < deadline, f"{url} did not finish loading"
        time.sleep(0.1)
    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
        ".map(i => i.src)")
    assert not broken, f"{url}: images that did not load: {broken}"
    browser.save_screenshot(str(shot))
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"{url}: console errors: {errors}"


def test_site_in_a_browser(site, browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    tutorial = next(p.name for p in sorted((site / "tutorials").glob("0[2-9]_*.html")))
    for name, path in [("home", "index.html"), ("api", "api/dualgrad.html"),
                       ("tutorial", f"tutorials/{tutorial}")]:
        _check_page(browser, f"{server}/{path}", tmp_path / f"{name}.png")
    browser.get(f"{server}/index.html")
    box = browser.find_element(By.CSS_SELECTOR, "input.md-search__input")
    box.click()
    box.send_keys("hessian")
    deadline, hits = time.time() + 20, []
    while time.time() < deadline and not hits:
        time.sleep(0.25)
        hits = [h.text for h in browser.find_elements(By.CSS_SELECTOR,
                                                      ".md-search-result__item")]
    browser.save_screenshot(str(tmp_path / "search.png"))
    assert hits, "the search box found nothing for 'hessian'"
    assert any("hessian" in h.lower() for h in hits), hits
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"console errors while searching: {errors}"
    assert len(list(tmp_path.glob("*.png"))) == 4


# --- the tutorials' outputs, left by a test run where the docs build looks for them ------------

def test_run_tutorial_cache_mode_leaves_the_outputs_for_the_build(tmp_path):
    pytest.importorskip("matplotlib")
    run_tutorial = _docs_module("run_tutorial")
    cache = tmp_path / "cache"
    env = dict(os.environ, MPLBACKEND="Agg", DUALGRAD_DOCS_CACHE=str(cache),
               DUALGRAD_TUTORIAL_FIGURES=str(tmp_path))
    good, bad = tmp_path / "90_good.py", tmp_path / "91_bad.py"
    good.write_text("# %% [markdown]\n# # Good\n\n# %%\nprint('hi')\n\n# %%\n6 * 7\n")
    bad.write_text("# %% [markdown]\n# # Bad\n\n# %%\nx = 1\nassert x == 2, 'planted'\n")

    def run(path):
        return subprocess.run([sys.executable, str(ROOT / "docs" / "run_tutorial.py"),
                               "--cache", str(path)], env=env, capture_output=True,
                              text=True, timeout=120)
    proc = run(good)
    assert proc.returncode == 0, proc.stderr
    assert "hi" in proc.stdout and "42" in proc.stdout
    out = pathlib.Path(run_tutorial.cache_file(good, folder=str(cache)))
    assert [p.name for p in cache.iterdir()] == [out.name]  # where hooks.run_tutorials looks
    import json
    cells = json.loads(out.read_text())
    assert cells["ok"] and [o["data"] for c in cells["cells"] for o in c["outputs"]] == [
        "hi\n", "42"]
    proc = run(bad)
    assert proc.returncode == 1 and "planted" in proc.stderr
    assert [p.name for p in cache.iterdir()] == [out.name], "a failed run is not cached"


# --- DOT graphs in a tutorial's output ------------------------------------------------------

def test_a_printed_dot_graph_is_drawn_as_svg_or_shown_as_text():
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    import numpy as np

    from dualgrad.teach.tracetable import to_dot
    hooks = _docs_module("hooks")
    with dg.Tape() as tape:
        x = tape.watch(2.0, "x")
        y = np.sin(x) * x
    dot = to_dot(tape, y)
    run = {"ok": True, "cells": [
        {"kind": "markdown", "source": "# A graph", "outputs": []},
        {"kind": "code", "source": "print(to_dot(tape, y))",
         "outputs": [{"type": "text", "data": dot + "\n"}]}]}
    files = {}
    page = hooks.tutorial_page(ROOT / "tutorials" / "02_wengert_list.py", run,
                               files.__setitem__, {}, {}, set())
    if shutil.which("dot") is None:  # no graphviz: the DOT source, as text
        assert not files and "digraph wengert" in page
    else:
        assert list(files) == ["tutorials/02_wengert_list/graph-1.svg"]
        svg = files["tutorials/02_wengert_list/graph-1.svg"]
        assert "<svg" in svg and "sin" in svg
        assert "](02_wengert_list/graph-1.svg)" in page and "digraph" not in page
