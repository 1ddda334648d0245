"""``python -m bench.dask_graph_figure``: the gradient's dask task graph beside dask-glm's.

    python -m bench.dask_graph_figure                 # writes docs/assets/dask-task-graphs.svg
    python -m bench.dask_graph_figure --out x.png     # any format matplotlib writes
    python -m bench.dask_graph_figure --text          # no figure: the operations each
                                                      # task of chunk 0 runs, in dualgrad's
                                                      # graph, dg.jit's and the hand-written

Issue 25, item 5.  The logistic loss and its gradient (``bench.dask_cases``) on a small
problem, 400 rows x 3 features in 4 row chunks: left, ``dg.value_and_grad(loss)(w, X, y)``
(the loss written in plain numpy, its gradient derived by dualgrad); right, dask-glm's
hand-written ``Logistic`` loss and gradient (``bench.dask_cases.hand_dask``).  Each graph
is the one dask's scheduler runs for one ``dask.compute(loss, grad)``, after dask's
optimisation (blockwise fusion), read from a scheduler callback; the task counts in the
titles count what the scheduler runs, as ``bench.dask_cases`` counts them.

Drawn with matplotlib (the python ``graphviz`` package, which ``dask.visualize`` needs,
is not a dependency): nodes layered by dependency depth, the data chunks on top; a task
is labelled by the numpy operations dask fused into it (from its keys' names), an alias
(a renaming task dask adds, which does no work) is a small ring.  Deterministic: the
same inputs give the same file (fixed layout order, SVG ids salted, no date).
"""

import argparse
from pathlib import Path

import numpy as np

import dualgrad as dg

from .dask_cases import hand_dask, loss

OUT = Path(__file__).resolve().parent.parent / "docs" / "assets" / "dask-task-graphs.svg"
N, D, CHUNKS = 400, 3, 4
GAP = 2.3  # the least distance between two nodes of a layer (a label's width)

COLORS = {"data": "#d9d9d9", "chunk": "#9ecae1", "reduce": "#fdae6b", "other": "#a1d99b",
          "alias": "white"}


def problem():
    """Small logistic-regression data in ``CHUNKS`` row chunks, and a weight vector."""
    import dask.array as da  # optional: dask is an extra; this script needs it
    r = np.random.default_rng(0)
    Xn = r.standard_normal((N, D))
    yn = (r.random(N) < 0.5).astype(float)
    rows = N // CHUNKS
    return r.standard_normal(D), da.from_array(Xn, chunks=(rows, D)), \
        da.from_array(yn, chunks=rows)


def scheduled_graph(*collections):
    """The graph (key -> task) the synchronous scheduler receives for
    ``dask.compute(*collections)``: after dask's optimisation."""
    import dask  # optional: dask is an extra
    from dask.callbacks import Callback
    got = {}

    class Grab(Callback):
        def _start(self, dsk):
            got.update(dsk)
    with Grab():
        dask.compute(*collections, scheduler="sync")
    return got


def _ops(task, out):
    """The operation names fused into ``task`` (its inner keys' prefixes), in order."""
    from dask.utils import key_split  # optional: dask is an extra
    func = getattr(task, "func", None)
    if getattr(func, "__name__", "") != "_execute_subgraph":
        return
    inner = task.args[0]
    inner = getattr(inner, "value", inner)
    for k, t in inner.items():
        _ops(t, out)
        for name in key_split(k).split("-"):
            if name not in out and name not in ("aggregate", "finalize",
                                                "hlgfinalizecompute"):
                out.append(name)


def operations(task, out=None):
    """The operations ``task`` runs, in its subgraph's order, not deduplicated (a fused
    task's inner keys' prefixes; ``[nested]`` where dask put a subgraph inside a subgraph,
    which costs an ordering of its own at every run, about 0.1 ms)."""
    from dask.utils import key_split  # optional: dask is an extra
    out = [] if out is None else out
    func = getattr(task, "func", None)
    if getattr(func, "__name__", "") != "_execute_subgraph":
        return out
    inner = task.args[0]
    inner = getattr(inner, "value", inner)
    for k, t in reversed(list(inner.items())):  # dask lists a subgraph output first
        if getattr(getattr(t, "func", None), "__name__", "") == "_execute_subgraph":
            out.append("[nested]")
            operations(t, out)
        elif type(t).__name__ == "Task":
            out.append(key_split(k))
    return out


def subgraph_nodes(task):
    """The nodes of a fused task's subgraph, its operations and its inputs (chunks, and
    each constant operand an operation was given as an array): dask orders them
    (``dask.order``) at every run of the task, a cost that grows with their number; 1 for
    a task of one operation."""
    if getattr(getattr(task, "func", None), "__name__", "") != "_execute_subgraph":
        return 1
    inner = task.args[0]
    return len(getattr(inner, "value", inner)) + len(task.args[2])


def chunk_tasks(graph, nodes=False):
    """(name, operations) of each task that works on chunk 0 (its key's indices all 0);
    with ``nodes``, (name, operations, :func:`subgraph_nodes`)."""
    from dask.utils import key_split  # optional: dask is an extra
    return [(key_split(k[0]), operations(t)) + ((subgraph_nodes(t),) if nodes else ())
            for k, t in graph.items()
            if type(t).__name__ == "Task" and isinstance(k, tuple) and len(k) > 1
            and not any(k[1:])]


def graphs():
    """(title, scheduled graph) of the loss and gradient: dualgrad's, dg.jit's replay (its
    second call) and the hand-written one, on :func:`problem`."""
    w, X, y = problem()
    jitted = dg.jit(dg.value_and_grad(loss))
    jitted(w, X, y)
    return (("dualgrad", scheduled_graph(*dg.value_and_grad(loss)(w, X, y))),
            ("dualgrad jit (replay)", scheduled_graph(*jitted(w, X, y))),
            ("hand-written", scheduled_graph(*hand_dask(w, X, y))))


def describe(graph):
    """Per key: (kind, label, chunk index) with kind one of COLORS' keys."""
    from dask.utils import key_split  # optional: dask is an extra
    out = {}
    for k, t in graph.items():
        kind_of = type(t).__name__
        index = k[1] if isinstance(k, tuple) and len(k) > 1 else -1
        if kind_of == "DataNode":
            v = t.value
            name = "X" if v.ndim == 2 else "w" if v.shape == (D,) else "y"
            out[k] = ("data", name if name == "w" else f"{name}[{index}]", index)
        elif kind_of == "Alias":
            out[k] = ("alias", "", index)
        else:
            ops = []
            _ops(t, ops)
            ops = ops or key_split(k).split("-")
            deps = [d for d in getattr(t, "dependencies", ()) if d in graph]
            data = [d for d in deps if type(graph[d]).__name__ == "DataNode"]
            names = [d[0] if isinstance(d, tuple) else d for d in deps if d not in data]
            kind = ("reduce" if len(set(names)) < len(names) else "chunk" if data
                    else "other")  # reduce: it combines several chunks of one array
            out[k] = (kind, "\n".join(" ".join(ops[i:i + 2]) for i in range(0, len(ops), 2)),
                      index)
    return out


def layout(graph, info):
    """(x, y) per key: y = -depth (longest path from the data); within a layer, data
    ordered by chunk, every other node at its parents' mean x (ties by label)."""
    deps = {k: [d for d in getattr(t, "dependencies", ()) if d in graph]
            for k, t in graph.items()}
    depth = {}

    def d_of(k):
        if k not in depth:
            first = 0 if info[k][0] == "data" else 1  # a constant task: below the data
            depth[k] = max(first, 1 + max((d_of(p) for p in deps[k]), default=-1))
        return depth[k]
    for k in graph:
        d_of(k)
    pos = {}
    for level in range(max(depth.values()) + 1):
        keys = [k for k in graph if depth[k] == level]
        if level == 0:
            order = {"X": 0, "y": 1, "w": 2}
            keys.sort(key=lambda k: (info[k][2] if info[k][1] != "w" else CHUNKS // 2 - 0.5,
                                     order[info[k][1][0]]))
            xs = GAP * np.arange(len(keys), dtype=float)
        else:
            keys.sort(key=lambda k: (np.mean([pos[p][0] for p in deps[k]]) if deps[k]
                                     else -1.0, info[k][2], info[k][1]))
            want = [np.mean([pos[p][0] for p in deps[k]]) if deps[k] else 0.0 for k in keys]
            xs = np.array(want)
            for i in range(1, len(xs)):  # keep nodes GAP apart, then re-centre the layer
                xs[i] = max(xs[i], xs[i - 1] + GAP)
            xs += np.mean(want) - np.mean(xs)
        for k, x in zip(keys, xs):
            pos[k] = (float(x), -2.6 * level)
    return pos, deps


def draw(ax, graph, title):
    info = describe(graph)
    pos, deps = layout(graph, info)
    edges = sorted((pos[p], pos[k]) for k, ps in deps.items() for p in ps)
    for (x0, y0), (x1, y1) in edges:  # drawn in the layout's order, not dask's key order
        ax.plot([x0, x1], [y0, y1], color="#888888", lw=0.6, zorder=1)
    for k, (x, y) in sorted(pos.items(), key=lambda kv: kv[1]):
        kind, label, _ = info[k]
        if kind == "alias":
            ax.scatter([x], [y], s=40, facecolor="white", edgecolor="#555555", lw=0.8,
                       zorder=2)
            continue
        ax.text(x, y, label, ha="center", va="center", fontsize=6.5, zorder=3,
                bbox=dict(boxstyle="round,pad=0.3", fc=COLORS[kind], ec="#555555", lw=0.6))
    n_tasks = sum(1 for k in graph if info[k][0] != "data")
    n_alias = sum(1 for k in graph if info[k][0] == "alias")
    ax.set_title(f"{title}\n{n_tasks} tasks ({n_alias} of them aliases)", fontsize=9)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - GAP / 2, max(xs) + GAP / 2)
    ax.set_ylim(min(ys) - 1.2, max(ys) + 1.0)
    ax.axis("off")
    return n_tasks


def figure(out=OUT):
    import matplotlib  # optional: a test/docs extra, only this script draws
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "dualgrad-dask-task-graphs"
    import matplotlib.pyplot as plt  # optional: as above
    from matplotlib.lines import Line2D  # optional: as above
    from matplotlib.patches import Patch  # optional: as above

    w, X, y = problem()
    ours = scheduled_graph(*dg.value_and_grad(loss)(w, X, y))
    hand = scheduled_graph(*hand_dask(w, X, y))
    fig, axes = plt.subplots(1, 2, figsize=(16, 7.5))
    counts = (draw(axes[0], ours, "dualgrad: dg.value_and_grad(loss)(w, X, y)"),
              draw(axes[1], hand, "dask-glm's hand-written loss and gradient"))
    handles = [Patch(fc=COLORS[k], ec="#555555", label=t) for k, t in (
        ("data", "data chunk"), ("chunk", "per-chunk task"), ("reduce", "tree-sum step"),
        ("other", "constant (the output's seed 1/n)"))]
    handles.append(Line2D([], [], ls="", marker="o", mfc="white", mec="#555555",
                          label="alias (a renaming dask adds; no work)"))
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle(f"Logistic loss + gradient on dask: {N} x {D} in {CHUNKS} row chunks, "
                 "the graphs the scheduler runs (after dask's fusion)", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"Date": None} if out.suffix == ".svg" else {}
    fig.savefig(out, metadata=meta, dpi=110)
    plt.close(fig)
    return out, counts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--text", action="store_true", help="print each chunk's operations")
    args = ap.parse_args(argv)
    if args.text:
        for title, graph in graphs():
            tasks = sum(type(t).__name__ not in ("DataNode",) for t in graph.values())
            print(f"{title}: {tasks} tasks; chunk 0's (operations; nodes dask orders at "
                  "each run):")
            for name, ops, nodes in chunk_tasks(graph, nodes=True):
                print(f"  {name}: {' '.join(ops) or '(one operation)'}; {nodes}")
        return
    out, (ours, hand) = figure(args.out)
    print(f"{out}: dualgrad {ours} tasks, hand-written {hand} tasks")


if __name__ == "__main__":
    main()
