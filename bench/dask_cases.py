"""``python -m bench.dask_cases``: gradients over dask arrays (issue 25), ``logreg_dask``.

    python -m bench.dask_cases                          # N = 1M x 20 in 10 chunks
    python -m bench.dask_cases --n 10000000 --chunks 100 --repeats 3
    python -m bench.dask_cases --cluster                # also on a LocalCluster (2 x 1
                                                        # threads, the data persisted there)
    python -m bench.dask_cases --no-write               # print only
    python -m bench.dask_cases --grid                   # the issue's four: N = 1M and 10M,
                                                        # 10 and 100 chunks, in one run
    python -m bench.dask_cases --blas-threads 0         # BLAS left multi-threaded on dask

Logistic regression, the loss ``mean(logaddexp(0, X @ w) - y * X @ w)`` and its gradient,
per evaluation (what each L-BFGS step asks for):

    numpy (hand)        the hand-written loss and gradient on numpy arrays in memory
    dualgrad numpy      ``dg.value_and_grad`` on the numpy arrays
    dualgrad dask       ``dg.value_and_grad`` on dask arrays, then one ``dask.compute``
    dualgrad jit dask   ``dg.jit(dg.value_and_grad)``: the recorded graph replayed on dask
    hand dask           dask-glm's hand-written pattern (``Logistic.pointwise_loss`` and
                        ``pointwise_gradient``: ``X.T @ (sigmoid(X @ w) - y)``), written
                        here (dask-glm itself is not a dependency), one ``dask.compute``

A dask evaluation includes building its graph (tracing, for dualgrad): a new ``w`` needs
a new graph.  Tools are sampled in rounds, each round in its own shuffled (seeded) order,
``--repeats`` samples each, the median reported; beside it the *paired* ratio, a dask
tool's time over the hand-written one's of the same round, median and range: on a shared
machine the load drifts between rounds, and a round's pair sees about the same load.  The
CPU time of this process per evaluation (all its threads, ``time.process_time``) is
reported too: other jobs on the machine stretch the wall clock far more than they change
it (the LocalCluster's workers run in this process, ``processes=False``).  While a dask
tool runs, BLAS is held to ``--blas-threads`` threads (1, with threadpoolctl; 0 leaves it
alone), as dask's distributed workers set it: each of the scheduler's threads calls BLAS,
and OpenBLAS's own threads on top of them oversubscribe the cores (on 2 shared cores a
100k x 20 product took 8-16 ms against 0.3 ms alone).  Numpy in memory keeps its threads.
Task counts are the tasks the threaded scheduler runs (after dask's
optimisation); tracing time is measured at N and, on lazy random data that is never
computed, at 10 N (it should not depend on N).  The CPU (lscpu) and the load average
(before and after: the machine may be shared) are named in the output; results go to
``bench/results/dask-<timestamp>.{json,md}``.
"""

import argparse
import contextlib
import json
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import dualgrad as dg

from .__main__ import lscpu_model

RESULTS = Path(__file__).resolve().parent / "results"


def loss(w, X, y):
    """The logistic loss, plain numpy (dualgrad differentiates it)."""
    z = X @ w
    return np.sum(np.logaddexp(0.0, z) - y * z) / X.shape[0]


def hand_numpy(w, X, y):
    z = X @ w
    p = 1.0 / (1.0 + np.exp(-z))
    return np.sum(np.logaddexp(0.0, z) - y * z) / X.shape[0], X.T @ (p - y) / X.shape[0]


def hand_dask(w, X, y):
    """dask-glm's Logistic family, written by hand: the loss and the gradient share X @ w
    (dask merges the identical keys), the gradient a transposed product and a tree sum."""
    z = X.dot(w)
    p = 1.0 / (1.0 + np.exp(-z))
    n = X.shape[0]
    return np.sum(np.logaddexp(0.0, z) - y * z) / n, X.T.dot(p - y) / n


def chunk_data(i, rows, n, d):
    """Rows ``i * rows`` to ``(i + 1) * rows`` of the data, from a generator of their own
    (seeded by ``i``), so a chunk is the same whether made here or on a worker."""
    r = np.random.default_rng([0, i])
    X = r.standard_normal((min(rows, n - i * rows), d))
    w_true = np.random.default_rng(0).standard_normal(d)
    return X, (r.random(len(X)) < 1.0 / (1.0 + np.exp(-X @ w_true))).astype(float)


def lazy_data(n, d, chunks):
    """``X``, ``y`` as dask arrays whose chunks :func:`chunk_data` makes when computed:
    the graph holds no data."""
    import dask
    import dask.array as da
    rows = -(-n // chunks)
    Xs, ys = [], []
    for i in range(chunks):
        m = min(rows, n - i * rows)
        Xi, yi = dask.delayed(chunk_data, nout=2, pure=True)(i, rows, n, d)
        Xs.append(da.from_delayed(Xi, (m, d), float))
        ys.append(da.from_delayed(yi, (m,), float))
    return da.concatenate(Xs), da.concatenate(ys)


def count_tasks(*collections):
    """The tasks the threaded scheduler runs to compute ``collections``."""
    import dask
    from dask.callbacks import Callback
    n = [0]

    class Count(Callback):
        def _posttask(self, key, result, dsk, state, id):
            n[0] += 1
    with Count():
        dask.compute(*collections, scheduler="threads")
    return n[0]


def tracing_seconds(X, y, w, repeats=5):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dg.value_and_grad(loss)(w, X, y)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def blas_limit(threads):
    """A function giving a context that holds BLAS to ``threads`` threads (threadpoolctl);
    None for 0 or without threadpoolctl (the results then say ``blas_threads: null``)."""
    if not threads:
        return None
    try:
        from threadpoolctl import ThreadpoolController  # optional: a bench-only helper
    except ImportError:
        return None
    controller = ThreadpoolController()
    return lambda: controller.limit(limits=threads, user_api="blas")


def logreg_dask(n, d, chunks, repeats, cluster, blas_threads=1):
    import dask
    import dask.array as da

    rows = -(-n // chunks)
    Xn, yn = np.empty((n, d)), np.empty(n)
    for i in range(chunks):
        Xn[i * rows:(i + 1) * rows], yn[i * rows:(i + 1) * rows] = chunk_data(i, rows, n, d)
    X, y = da.from_array(Xn, chunks=(rows, d)), da.from_array(yn, chunks=rows)
    w = 0.1 * np.random.default_rng(1).standard_normal(d)
    vg = dg.value_and_grad(loss)
    jvg = dg.jit(dg.value_and_grad(loss))

    def on_dask(make, scheduler, X=X, y=y):
        return lambda: dask.compute(*make(w, X, y), scheduler=scheduler)

    tools = {"numpy (hand)": lambda: hand_numpy(w, Xn, yn),
             "dualgrad numpy": lambda: vg(w, Xn, yn),
             "dualgrad dask": on_dask(vg, "threads"),
             "dualgrad jit dask": on_dask(jvg, "threads"),
             "hand dask": on_dask(hand_dask, "threads")}
    client = None
    if cluster:
        from dask.distributed import Client, LocalCluster
        client = Client(LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                     protocol="tcp", dashboard_address=None, processes=False))
        Xc, yc = client.persist(lazy_data(n, d, chunks))  # made on the workers, as data
        #  would be read there (Xn's values; persisting from_array(Xn) would send all of
        #  Xn inside the graph: 1.6 GB at N = 10M, and the workers paused for memory)
        tools["dualgrad dask (cluster)"] = on_dask(vg, None, Xc, yc)
        tools["hand dask (cluster)"] = on_dask(hand_dask, None, Xc, yc)
    try:
        ref = hand_numpy(w, Xn, yn)
        for name, fn in tools.items():  # twice untimed (jit records), checked
            fn()
            got = fn()
            assert np.allclose(got[0], ref[0], rtol=1e-10), name
            assert np.allclose(got[1], ref[1], rtol=1e-8, atol=1e-12), name
        samples = {k: [] for k in tools}
        cpu = {k: [] for k in tools}
        names = list(tools)
        limit = blas_limit(blas_threads)
        for i in range(repeats):  # each round in its own order: what a tool follows
            #  matters (after a run that freed large arrays, the next one's temporaries
            #  page-fault: +10% CPU), and a rotation keeps each tool's predecessor
            for name in np.random.default_rng(i).permutation(names):
                with limit() if limit and "dask" in name else contextlib.nullcontext():
                    t0, c0 = time.perf_counter(), time.process_time()
                    tools[name]()
                    samples[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.process_time() - c0)
    finally:
        if client is not None:
            cluster_ = client.cluster
            client.close()
            cluster_.close()
    tasks = {"dualgrad dask": count_tasks(*vg(w, X, y)),
             "dualgrad jit dask": count_tasks(*jvg(w, X, y)),
             "hand dask": count_tasks(*hand_dask(w, X, y))}
    big = da.random.default_rng(1).standard_normal((10 * n, d), chunks=(rows, d))
    ybig = da.zeros(10 * n, chunks=rows)
    trace = {f"N={n}": tracing_seconds(X, y, w),
             f"N={10 * n} (lazy)": tracing_seconds(big, ybig, w)}
    paired = {}
    for k, v in samples.items():
        base = samples["hand dask (cluster)" if "cluster" in k else "hand dask"]
        if "dask" in k and not k.startswith("hand"):
            r = sorted(a / b for a, b in zip(v, base))
            paired[k] = [statistics.median(r), r[0], r[-1]]
    return {"case": "logreg_dask", "n": n, "d": d, "chunks": chunks, "repeats": repeats,
            "blas_threads": blas_threads if limit else None,
            "median_s": {k: statistics.median(v) for k, v in samples.items()},
            "min_s": {k: min(v) for k, v in samples.items()},
            "cpu_median_s": {k: statistics.median(v) for k, v in cpu.items()},
            "paired_ratio": paired, "tasks": tasks, "tracing_s": trace}


def report(res, cpu):
    m, lo, pr, cpus = res["median_s"], res["min_s"], res["paired_ratio"], res["cpu_median_s"]
    blas = res["blas_threads"]
    lines = [f"## logreg_dask: N = {res['n']:,} x {res['d']}, {res['chunks']} chunks "
             f"({cpu}; median of {res['repeats']}; 1-minute load average "
             f"{res['load_average'][0]} before, {res['load_average'][1]} after; BLAS "
             f"{'left alone' if blas is None else f'{blas} thread(s)'} on dask)", "",
             "| tool | loss + gradient (s), median | min | ÷ hand dask (medians) "
             "| paired ÷, median [range] | CPU s, median | CPU ÷ hand |",
             "|---|---|---|---|---|---|---|"]
    for k, v in m.items():
        hand = "hand dask (cluster)" if "cluster" in k else "hand dask"
        p = f"{pr[k][0]:.2f}× [{pr[k][1]:.2f}–{pr[k][2]:.2f}]" if k in pr else ""
        lines.append(f"| {k} | {v:.4f} | {lo[k]:.4f} | {v / m[hand]:.2f}× | {p} "
                     f"| {cpus[k]:.4f} | {cpus[k] / cpus[hand]:.2f}× |")
    t = res["tasks"]
    lines += ["", "| graph | tasks | ÷ hand dask |", "|---|---|---|"]
    lines += [f"| {k} | {v} | {v / t['hand dask']:.2f}× |" for k, v in t.items()]
    lines += ["", "| tracing (dg.value_and_grad, graph only) | s |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in res["tracing_s"].items()]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=20)
    ap.add_argument("--chunks", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--cluster", action="store_true", help="also on a LocalCluster (2x1)")
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="BLAS threads while a dask tool runs (0: left alone)")
    ap.add_argument("--grid", action="store_true",
                    help="N = 1M and 10M, 10 and 100 chunks (--n, --chunks ignored)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    cpu = lscpu_model()
    cases = ([(n, c) for n in (1_000_000, 10_000_000) for c in (10, 100)] if args.grid
             else [(args.n, args.chunks)])
    out, texts = [], []
    for n, c in cases:
        load = os.getloadavg()[0]
        res = logreg_dask(n, args.d, c, args.repeats, args.cluster, args.blas_threads)
        res["cpu"] = cpu
        res["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]  # before, after
        texts.append(report(res, cpu))
        print(texts[-1] + "\n", flush=True)
        out.append(res)
    res, text = (out if args.grid else out[0]), "\n\n".join(texts)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        (RESULTS / f"dask-{stamp}.json").write_text(json.dumps(res, indent=1))
        (RESULTS / f"dask-{stamp}.md").write_text(text + "\n")
    return res


if __name__ == "__main__":
    main()
