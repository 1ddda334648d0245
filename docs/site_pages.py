"""The site's generated pages, as plain functions from the repository to markdown text.

The docs build (``docs/hooks.py``) calls these; nothing here writes a file.

- ``readme_pages``: Home, the user guide and the design page.  Home is the text of
  README.md before its first ``## `` heading and the sections named in ``HOME``.  The guide
  is ``docs/guide/<name>.md``, hand-written (text moved out of the README), in the order of
  ``GUIDE`` (pages not listed follow, by name); the design page is ``docs/design.md``.
  A README section that is neither on Home nor in ``PLACED`` is replaced by the guide page
  of its slug when there is one (the README's short "Benchmarks" by the full page), and
  otherwise becomes ``guide/<slug>.md`` of its own (new README text shows up on the site
  until it is moved).
- ``rewrite_links``: links in a source file point at repository paths; on the site they
  point at the page that now holds that text, or at a copy of the file under ``repo/``.
- ``coverage_page``: dualgrad beside JAX, PyTorch and HIPS autograd (``FEATURES``), then
  the primitive table, the numpy functions dualgrad implements and ``dualgrad.scipy``.
- ``api_pages`` / ``public_names``: the reference pages, one ``:::`` block (mkdocstrings)
  per public name.
"""

import importlib
import inspect
import os
import pkgutil
import posixpath
import re
import warnings
from pathlib import Path

from pymdownx.slugs import slugify

SLUGIFY = slugify(case="lower")  # GitHub's anchors (mkdocs.yml's toc uses the same)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

HOME = ("Quickstart", "A short tour", "Documentation")
PLACED = {
    "How it is built": "design.md",
    "Tutorials": None,  # the tutorials' index is tutorials/README.md (one list, not two)
}
GUIDE = (  # the user guide's nav, by topic: docs/guide/<name>.md
    "transforms", "modes", "vmap", "numpy", "complex", "scipy", "nn", "checking-gradients",
    "jit", "backends", "gpu", "dask", "threads", "cli", "benchmarks")

FENCE = re.compile(r"^(```|~~~)", re.M)
LINK = re.compile(r"(!?\[(?:[^\]\[]|\[[^\]]*\])*\])\(([^)\s]+)((?:\s+\"[^\"]*\")?)\)")


def slug(title):
    return SLUGIFY(title.replace("`", ""), "-")


def split_sections(text, level="## "):
    """(preamble, [(title, body)]): ``text`` cut at the headings of ``level`` that are not
    inside a fenced code block; each body starts with its heading line."""
    preamble, sections, fenced = [], [], False
    for line in text.splitlines(keepends=True):
        if FENCE.match(line):
            fenced = not fenced
        if not fenced and line.startswith(level):
            sections.append([line[len(level):].strip(), [line]])
        elif sections:
            sections[-1][1].append(line)
        else:
            preamble.append(line)
    return "".join(preamble), [(t, "".join(b)) for t, b in sections]


def headings(text):
    """The slugs of every markdown heading in ``text`` (fenced code skipped)."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            out.append(slug(line.lstrip("#").strip()))
    return out


def _title(text, default):
    first = text.splitlines()[0] if text else ""
    return first.lstrip("# ").replace("`", "").strip() if first.startswith("# ") else default


def readme_pages():
    """[(page path, nav title, markdown, README section titles it holds, source file)]:
    Home first, then the guide in nav order, then the design page."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    preamble, sections = split_sections(text)
    home = [preamble] + [body for title, body in sections if title in HOME]
    pages = [("index.md", "Home", "".join(home), [t for t, _ in sections if t in HOME],
              "README.md")]
    hand = sorted((DOCS / "guide").glob("*.md"),
                  key=lambda p: (GUIDE.index(p.stem) if p.stem in GUIDE else len(GUIDE),
                                 p.stem))
    held = {}  # README section titles a hand-written page replaces
    for title, _ in sections:
        if title not in HOME and title not in PLACED and (DOCS / "guide" /
                                                          f"{slug(title)}.md").exists():
            held.setdefault(slug(title), []).append(title)
    for p in hand:
        body = p.read_text(encoding="utf-8")
        pages.append((f"guide/{p.name}", _title(body, p.stem), body, held.get(p.stem, []),
                      f"docs/guide/{p.name}"))
    for title, body in sections:  # README sections not moved yet: a page each
        if title in HOME or title in PLACED or slug(title) in held:
            continue
        pages.append((f"guide/{slug(title)}.md", title.replace("`", ""),
                      "# " + body[3:], [title], "README.md"))
    design = DOCS / "design.md"
    if design.exists():
        body = design.read_text(encoding="utf-8")
        pages.append(("design.md", "Design", body,
                      [t for t, _ in sections if PLACED.get(t) == "design.md"], "docs/design.md"))
    else:
        for title, body in sections:
            if PLACED.get(title) == "design.md":
                pages.append(("design.md", "Design", "# " + body[3:], [title], "README.md"))
    return pages


def rewrite_links(text, source, page, targets, anchors, wanted):
    """``text`` from repository file ``source`` as it reads on site page ``page``.

    ``targets`` maps repository paths to the site page that renders them; ``anchors``
    maps a README heading's slug to its page (a section's ``#anchor`` follows the
    text); repository files linked but not rendered are added to ``wanted`` and linked
    at ``repo/<path>``.  Links inside fenced code are left alone."""
    src_dir = posixpath.dirname(source)
    page_dir = posixpath.dirname(page)
    own = set(headings(text))

    def fix(m):
        label, target, title = m.groups()
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, mailto:, ...
            return m.group(0)
        path, _, frag = target.partition("#")
        if not path:
            here = frag in own or not (source == "README.md" or source.startswith("docs/"))
            where = page if here else anchors.get(frag, page)
        else:
            repo_path = posixpath.normpath(posixpath.join(src_dir, path))
            if repo_path in targets:
                where = targets[repo_path]
            elif (ROOT / repo_path).is_file():
                where = f"repo/{repo_path}"
                wanted.add(repo_path)
            elif "." not in path and "/" not in path:  # text in brackets, not a link:
                return m.group(0).replace("[", "\\[").replace("]", "\\]")  # "f[x](1)"
            else:
                return m.group(0)  # the build's link check reports it
        if where == page and frag:
            new = ""
        else:
            new = posixpath.relpath(where, page_dir or ".")
        new += f"#{frag}" if frag else ""
        return f"{label}({new}{title})"

    parts = re.split(r"(^```.*?^```[ \t]*$)", text, flags=re.M | re.S)
    return "".join(p if i % 2 else LINK.sub(fix, p) for i, p in enumerate(parts))


# --- what covers what -----------------------------------------------------------------

def _arguments(rule):
    """Which arguments a JVP/VJP row differentiates: "all", "1st, 2nd" or "—"."""
    if rule is None:
        return "—"
    if callable(rule) or not isinstance(rule, (list, tuple)):
        return "all"  # one rule for every tangent, or IndexedRules (any number of arguments)
    rules = list(rule)
    if all(r is not None for r in rules):
        return "all"
    have = [str(i) for i, r in enumerate(rules) if r is not None]
    return ("args " + ", ".join(have)) if have else "—"


def _scipy_special(f):
    """Whether ``f`` is one of scipy.special's ufuncs (and not numpy's)."""
    import numpy as np
    if not isinstance(f, np.ufunc) or getattr(np, f.__name__, None) is f:
        return False
    try:
        import scipy.special  # optional: scipy is not a dependency
    except ImportError:
        return False
    return getattr(scipy.special, f.__name__, None) is f


def _ufunc_name(prim):
    """The ufunc a row answers for, by where it lives: ``np.sin``, ``scipy.special.erf``."""
    import numpy as np
    u = prim.ufunc
    if u is None:
        return ""
    name = getattr(u, "__name__", repr(u))
    if getattr(np, name, None) is u:
        return f"`np.{name}`"
    try:
        import scipy.special  # optional: scipy is not a dependency
    except ImportError:
        pass
    else:
        if getattr(scipy.special, name, None) is u:
            return f"`scipy.special.{name}`"
    module = getattr(u, "__module__", None) or "numpy"
    return f"`{module.replace('numpy', 'np', 1)}.{name}`"


# dualgrad beside its peers, one row per feature: (feature, dualgrad, JAX, PyTorch, HIPS
# autograd).  Hand-written (what the others have cannot be generated); every `dg.name`
# in the dualgrad column is checked to exist (tests/test_site.py).
PEERS = "JAX 0.10, PyTorch 2.13 and HIPS autograd 1.9, the versions `python -m bench` ran"
FEATURES = [
    ("Forward mode",
     "`dg.jvp`, `dg.Dual` (dual numbers), `dg.jacfwd`, `dg.linearize`",
     "`jax.jvp`, `jax.linearize`, `jax.jacfwd`",
     "`torch.func.jvp`, `linearize`, `jacfwd`; `torch.autograd.forward_ad` (dual tensors)",
     "`make_jvp`"),
    ("Reverse mode",
     "`dg.grad`, `dg.value_and_grad`, `dg.vjp`, `dg.jacrev`",
     "`jax.grad`, `jax.value_and_grad`, `jax.vjp`, `jax.jacrev`",
     "`backward()`, `torch.autograd.grad`, `torch.func.grad`, `vjp`, `jacrev`",
     "`grad`, `value_and_grad`, `make_vjp`, `jacobian`"),
    ("grad, jvp, vjp, jacfwd, jacrev, hessian, hvp",
     "all seven: `dg.hessian` is forward-over-reverse, `dg.hvp` forms no Hessian",
     "all but `hvp`, which is written as `jvp` of `grad`",
     "all seven (`torch.func`, and `torch.autograd.functional.hvp`)",
     "`grad`, `make_jvp`, `make_vjp`, `jacobian` (reverse only), `hessian`, `make_hvp`"),
    ("Pytrees, auxiliary outputs",
     "dicts, lists, tuples (`dg.tree_map`); `has_aux=True`",
     "pytrees; `has_aux=True`",
     "`torch.func`: pytrees, `has_aux=True`",
     "lists, tuples, dicts; `grad_and_aux`"),
    ("A tape you can hold, `backward()`",
     "`dg.Tape`: `watch`, `gradient`, `y.backward()`, `x.grad`",
     "no: functional transforms only",
     "yes: the autograd graph, `backward()`, `.grad`",
     "no: functional only"),
    ("Batching (vmap)",
     "`dg.vmap`, JAX's semantics, composes with every transform",
     "`jax.vmap`",
     "`torch.func.vmap`",
     "no (`elementwise_grad` for diagonal Jacobians)"),
    ("Compiling (jit)",
     "`dg.jit`: exact graph rewrites, fused numba loops on the CPU, `@cuda.jit` kernels",
     "`jax.jit` (XLA)",
     "`torch.compile`",
     "no"),
    ("Higher order",
     "any transform nested in any other, to any order, without perturbation confusion",
     "yes, any nesting",
     "yes: `create_graph=True`, or nested `torch.func` transforms",
     "yes, nested `grad`"),
    ("Custom rules",
     "`dg.custom_jvp`, `dg.custom_vjp`; `dg.custom_root`, `dg.implicit` (implicit "
     "differentiation of solvers)",
     "`jax.custom_jvp`, `jax.custom_vjp`, `jax.lax.custom_root`",
     "`torch.autograd.Function` (`backward`, `jvp`)",
     "`@primitive` with `defvjp`, `defjvp`"),
    ("Complex numbers",
     "yes, JAX's convention; `holomorphic=True`",
     "yes; `holomorphic=True`",
     "yes (conjugate Wirtinger: the conjugate of JAX's gradient)",
     "yes; `holomorphic_grad`"),
    ("In-place writes, preallocated outputs",
     "`y[i] = v`, `x += y`, `np.add.at` on traced arrays; a plain `np.zeros` filled in a "
     "loop differentiates unchanged",
     "no: arrays are immutable (`x.at[i].set(v)`); a traced value written into a numpy "
     "array is an error",
     "yes: in-place tensor ops, checked by version counters; a `torch.zeros` filled by "
     "indexing works",
     "no: assignment into arrays is not supported"),
    ("The numpy you wrote",
     "numpy itself: `np.sin(x)` on traced values (`__array_ufunc__`, `__array_function__`)",
     "`jax.numpy`, a reimplementation imported instead",
     "torch's own API",
     "`autograd.numpy`, a wrapper imported instead"),
    ("scipy",
     "`dualgrad.scipy`: special, stats, integrate (`odeint`, `solve_ivp`, `quad`), optimize "
     "(implicit), signal, linalg, sparse; listed below",
     "`jax.scipy`: special, stats, linalg, signal, `integrate.trapezoid`, "
     "`optimize.minimize` (BFGS), sparse (experimental)",
     "none (`torch.special`, `torch.distributions`, `torch.linalg` of its own)",
     "`autograd.scipy`: special, stats (8 distributions), linalg, signal, "
     "`integrate.odeint`"),
    ("Dask arrays",
     "every transform, lazily: the gradient is a dask graph run where the data lives",
     "no", "no", "no"),
    ("GPU",
     "CuPy arrays; `dg.jit` emits `@cuda.jit` kernels (see the GPU page for what is "
     "measured)",
     "yes (XLA: CUDA, ROCm, TPU)",
     "yes (CUDA, ROCm, MPS)",
     "no"),
    ("Gradient checking",
     "`dg.check_grads`, `dg.check_jvp`, `dg.check_vjp`, `dg.numerical_jacobian`, "
     "`dg.symcheck` (sympy as referee)",
     "`jax.test_util.check_grads`",
     "`torch.autograd.gradcheck`, `gradgradcheck`",
     "`autograd.test_util.check_grads`"),
    ("Seeing the computation (teaching)",
     "`python -m dualgrad` prints the literature's trace tables; `print(tape)`, DOT "
     "graphs, `dg.jit(f).lower(...)`",
     "`jax.make_jaxpr` (the program as a jaxpr)",
     "`torch.fx` and `torch.export` graphs; the autograd graph through `grad_fn`",
     "no"),
    ("Neural-network functions",
     "`dg.nn`: `conv2d`, `max_pool2d`, `cross_entropy`, activations",
     "`jax.nn` (activations; layers in Flax)",
     "`torch.nn`",
     "no"),
]


def _features():
    lines = ["## dualgrad beside JAX, PyTorch and HIPS autograd", "",
             f"What each has, as of {PEERS}.", "",
             "| | dualgrad | JAX | PyTorch | HIPS autograd |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in FEATURES]
    return lines + [""]


def _scipy_section():
    """dualgrad.scipy's public names, by module (none without scipy)."""
    try:
        import dualgrad.scipy as dg_scipy  # optional: scipy is not a dependency
    except ImportError:
        return []
    import scipy

    from dualgrad.numpy.dispatch import HANDLED
    from dualgrad.rules.table import UFUNCS
    ufuncs = sorted({f.__name__ for f in list(UFUNCS) + list(HANDLED)
                     if _scipy_special(f)})
    mods = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in pkgutil.walk_packages(dg_scipy.__path__, "dualgrad.scipy."):
            mod = importlib.import_module(m.name)
            parent = importlib.import_module(m.name.rpartition(".")[0])
            names = list(getattr(mod, "__all__", ()))
            if names and not set(names) <= set(getattr(parent, "__all__", ())):
                mods.append((m.name, names))  # (stats.continuous: all in stats)
    lines = [f"## dualgrad.scipy ({len(ufuncs) + sum(len(n) for _, n in mods)})", "",
             f"**scipy.special's ufuncs** ({len(ufuncs)}): called on traced values "
             "(`scipy.special.erf(x)`), they run the primitive table's rows; "
             + ", ".join(f"`{n}`" for n in ufuncs), "",
             "The functions and distributions of `dualgrad.scipy`, by module (their "
             "`__all__`): scipy's names and signatures, differentiable, for what scipy "
             "computes in Python where no protocol can see a traced value "
             f"(built with scipy {scipy.__version__}).", ""]
    for name, names in mods:
        lines += [f"**{name.replace('dualgrad.', '', 1)}** ({len(names)}): "
                  + ", ".join(f"`{n}`" for n in names), ""]
    return lines


def coverage_page():
    """The page 'What covers what': ``FEATURES`` (dualgrad beside its peers), then
    ``dualgrad.rules.table.TABLE`` (every primitive row), ``dualgrad.numpy.dispatch.HANDLED``
    (every numpy function dualgrad runs on traced values) and ``dualgrad.scipy``'s names."""
    import dualgrad  # noqa: F401  (registers every row)
    from dualgrad.numpy.dispatch import HANDLED
    from dualgrad.rules.table import TABLE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import dualgrad.scipy.special  # noqa: F401  # optional: scipy's rows
        except ImportError:
            pass
    lines = [
        "# What covers what", "",
        "What dualgrad has beside its peers, then the lists of what differentiates, "
        "generated when the site is built from the primitive table "
        "(`dualgrad.rules.table.TABLE`), numpy's dispatch table "
        "(`dualgrad.numpy.dispatch.HANDLED`) and `dualgrad.scipy`'s modules, so they list "
        "what this version really has.",
        "", *_features(),
        f"## The primitive table ({len(TABLE)} rows)", "",
        "One row per primitive. **JVP** is forward mode (`dg.jvp`, `dg.jacfwd`, `Dual`), "
        "**VJP** reverse mode (`dg.grad`, `dg.vjp`, `Tape`): *all* when every argument is "
        "differentiable, *args i* for the arguments that are (the others raise), — for "
        "none. **vmap** says whether the row has its own batching rule (elementwise rows "
        "use the generic one; others fall back to a loop); **jit** whether `dg.jit` fuses "
        "it into generated loops.", "",
        "| primitive | ufunc | JVP | VJP | vmap rule | jit fused |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(TABLE):
        p = TABLE[name]
        elementwise = bool(p.bcast or name == "astype" or (  # as transforms/batching.py
            p.ufunc is not None and getattr(p.ufunc, "signature", None) is None))
        batch = "own" if p.batch is not None else ("elementwise" if elementwise else "loop")
        lines.append(f"| `{name}` | {_ufunc_name(p)} | {_arguments(p.jvp)} | "
                     f"{_arguments(p.vjp)} | {batch} | {'yes' if p.scalar else ''} |")
    groups = {}
    for fn in HANDLED:
        if _scipy_special(fn):
            continue  # listed with dualgrad.scipy
        module = getattr(fn, "__module__", None) or "numpy"
        if module.startswith("numpy._core") or module == "numpy.core":
            module = "numpy"
        owner = getattr(fn, "__self__", None)  # np.add.reduce: "add.reduce"
        name = fn.__name__ if owner is None else f"{owner.__name__}.{fn.__name__}"
        groups.setdefault(module, set()).add(name)
    lines += ["", f"## numpy functions on traced values ({sum(map(len, groups.values()))})",
              "",
              "The numpy functions with a dualgrad implementation (`__array_function__` "
              "and `__array_ufunc__` dispatch): calling them on a traced value records "
              "primitives, so every transform applies. numpy's ufuncs not listed here "
              "run through the primitive table's `ufunc` column above.", ""]
    for module in sorted(groups):
        names = ", ".join(f"`{n}`" for n in sorted(groups[module]))
        lines += [f"**{module.replace('numpy', 'np', 1)}** ({len(groups[module])}): {names}",
                  ""]
    return "\n".join(lines + _scipy_section())


# --- the API reference ----------------------------------------------------------------

def _defined(module):
    """A module's public names where it has no ``__all__``: the functions and classes
    it defines itself, not those it imports."""
    return sorted(n for n, obj in vars(module).items()
                  if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
                  and getattr(obj, "__module__", None) == module.__name__)


def public_names():
    """[(page, heading, module path, [names], note)]: every public name, by page."""
    import dualgrad as dg
    top = [n for n in dg.__all__ if not inspect.ismodule(getattr(dg, n))]
    groups = [
        ("api/dualgrad.md", "dualgrad", "dualgrad", top,
         "The top-level names, `dualgrad.__all__` (as `import dualgrad as dg`)."),
        ("api/nn.md", "dg.nn", dg.nn.__name__, list(dg.nn.__all__),
         "`dg.nn`: the functional neural-network layer."),
        ("api/linalg.md", "dg.linalg", dg.linalg.__name__, _defined(dg.linalg),
         "`dg.linalg`: numpy.linalg's functions, differentiable."),
        ("api/tree.md", "dg.tree", dg.tree.__name__, _defined(dg.tree),
         "`dg.tree`: pytrees."),
    ]
    try:
        import dualgrad.scipy as dg_scipy  # optional: scipy is not a dependency
    except ImportError:
        subs = []
    else:  # every submodule with an __all__, special first
        subs = sorted((m.name for m in pkgutil.iter_modules(dg_scipy.__path__)
                       if not m.name.startswith("_")), key=lambda m: (m != "special", m))
    for sub in subs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod = importlib.import_module(f"dualgrad.scipy.{sub}")
        if not hasattr(mod, "__all__"):  # errors: the messages, no API of its own
            continue
        names = list(mod.__all__)
        note = f"`dualgrad.scipy.{sub}`: scipy.{sub}'s functions on traced values."
        if sub == "special":
            note += (" Also importable as `dualgrad.scipy_special` (deprecated), which "
                     "holds the same names.")
        groups.append((f"api/scipy-{sub}.md", f"dualgrad.scipy.{sub}", mod.__name__,
                       names, note))
    return groups


def _instance(obj):
    """An object of a dualgrad class, documented by its class (not a function or class)."""
    return not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismodule(obj)
                or inspect.isbuiltin(obj)) and type(obj).__module__.startswith("dualgrad")


def api_pages():
    """[(page, nav title, markdown)]: one ``:::`` block per public name.  A name a module
    gives lazily (``__getattr__``, such as ``dualgrad.scipy.special.norm``) gets a short
    entry pointing at the object's own entry elsewhere in the reference."""
    groups = public_names()
    home = {}  # id(object) -> (page, its reference id), for the lazily given names
    for page, _, module, names, _ in groups:
        mod = importlib.import_module(module)
        for n in names:
            if n in vars(mod):
                home.setdefault(id(vars(mod)[n]), (page, f"{module}.{n}"))
    out = []
    for page, heading, module, names, note in groups:
        mod = importlib.import_module(module)
        lazy = [n for n in names if n not in vars(mod)]
        instances = [n for n in names if n in vars(mod) and _instance(vars(mod)[n])]
        plain = [n for n in names if n in vars(mod) and n not in instances]
        lines = [f"# {heading}", "", note, ""]
        if module == "dualgrad":
            for n in plain:
                lines += [f"::: dualgrad.{n}", ""]
        elif plain:
            lines += [f"::: {module}", "    options:", "      show_root_heading: false",
                      "      show_root_toc_entry: false", "      members:"]
            lines += [f"        - {n}" for n in plain] + [""]
        else:
            lines += [f"::: {module}", "    options:", "      show_root_heading: false",
                      "      show_root_toc_entry: false", "      members: false", ""]
        bases = []
        for n in instances:  # scipy.stats' distributions: the entry of their class
            cls = type(vars(mod)[n])
            if cls.__name__ == "Primitive":  # a row of the table, called on arrays
                lines += [f"## `{n}` {{ #{module}.{n} }}", "",
                          f"The primitive `{vars(mod)[n].name}`: a row of the primitive "
                          "table (see [What covers what](../coverage.md)), called on arrays "
                          "and traced values alike.", ""]
                continue
            lines += [f"## `{n}` {{ #{module}.{n} }}", "",
                      f"An instance of `{cls.__qualname__}`.", "",
                      f"::: {cls.__module__}.{cls.__qualname__}", "    options:",
                      "      show_root_heading: false", "      show_root_toc_entry: false",
                      "      heading_level: 3", ""]
            bases += [b for b in cls.__mro__[1:]
                      if b.__module__.startswith("dualgrad") and b not in bases]
        if bases:
            lines += ["## What they share", ""]
            for b in bases:
                lines += [f"::: {b.__module__}.{b.__qualname__}", "    options:",
                          "      heading_level: 3", ""]
        for n in lazy:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                where = home.get(id(getattr(mod, n)))
            lines += [f"## `{n}` {{ #{module}.{n} }}", ""]
            if where is None:
                lines += [f"`{module}.{n}` is given on first use; it has no entry of its own.", ""]
            else:
                target = posixpath.relpath(where[0], posixpath.dirname(page))
                lines += [f"`{module}.{n}` is [`{where[1]}`]({target}#{where[1]}), "
                          "kept here by name.", ""]
        out.append((page, heading, "\n".join(lines)))
    return out


def tutorial_files():
    return sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))


def env_flag(name, default):
    return os.environ.get(name, default).strip().lower()
