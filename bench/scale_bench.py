"""How each stage's cost grows with the marketplace: time and peak memory per stage, fitted exponent.

    OMP_NUM_THREADS=1 RISKGRAPH_STATE_DIR=... RISKGRAPH_NEO4J_PORT=... nice -n 10 \\
        .venv/bin/python bench/scale_bench.py --sizes 100000 250000 500000

At each size: generate a marketplace -> bulk import into the local Neo4j (neo4j-admin, the
offline importer; it replaces the settings' database) -> export over Bolt -> behaviour features
(no BERT: its cost is per review and measured by encoder_bench.py) -> one training epoch
(mini-batches, time split) -> scoring (full-graph pass and the reasons' backward pass) ->
rings (from the scores). Each stage starts after the objects no later stage needs are deleted,
collected and handed back to the system (``malloc_trim``); it reports its time, ``held`` (the
process's resident set at its start: interpreter, libraries and what later stages still need,
e.g. the graph) and ``peak`` (the highest resident set during the stage, sampled every 20 ms),
so ``peak - held`` is the stage's own need. The Neo4j server is another process (its heap is
fixed by its settings) and is not counted. Baselines in the same run, over the same array
(the user-to-device and order edges' users, shuffled with a fixed seed): ``argsort`` (an
n log n reference) and ``bincount`` (a linear pass with random access), 10 times each. The
exponent is the least-squares slope of log(seconds) on log(users); n log n between 100k and
500k users fits an exponent of about 1.1 (printed for the sizes run), so a stage fitting much
above that grows faster than n log n; the baselines show what this machine's caches add to
both at the same sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def release() -> int:
    """Collect garbage and hand freed heap back to the system; the resident set after it."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: freed heap stays counted
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_bytes()


MAX_RSS = [float("inf")]  # --max-rss-gib: the run stops rather than crowd the machine


def measured(fn: Callable[[], Any]) -> tuple[Any, float, int, int]:
    """``fn()``, its wall seconds, the resident set before it and the peak while it ran."""
    held = release()
    peak, stop = [held], threading.Event()

    def watch() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], rss_bytes())
            if peak[0] > MAX_RSS[0]:
                print(
                    f"resident set {peak[0] / 2**30:.1f} GiB > --max-rss-gib: stopping", flush=True
                )
                os._exit(3)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    started = time.perf_counter()
    try:
        out = fn()
    finally:
        seconds = time.perf_counter() - started
        stop.set()
        thread.join()
    return out, seconds, held, max(peak[0], rss_bytes())


def run_size(n: int, work: Path) -> dict[str, tuple[float, int, int]]:
    """Every stage at ``n`` users: stage -> (seconds, held bytes, peak bytes)."""
    from encoders.features import build_features
    from graph.bundle import read_bundle
    from graph.neo4j.bulk import bulk_import
    from graph.neo4j.reader import export_graph
    from graph.rings.config import RingConfig
    from graph.rings.detect import detect_rings
    from graph.synth.marketplace import GeneratorConfig, generate_marketplace
    from serving.connect import local_server, open_store
    from serving.settings import Settings
    from training.config import TrainConfig
    from training.fit import fit

    settings = Settings()
    out: dict[str, tuple[float, int, int]] = {}

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        value, seconds, held, peak = measured(fn)
        out[name] = (seconds, held, peak)
        print(f"  {n:>9,} {name:<12} {seconds:8.1f} s  held {held / 2**30:6.2f} GiB"
              f"  peak {peak / 2**30:6.2f} GiB", flush=True)  # fmt: skip
        return value

    bundle_dir = work / f"market-{n}"
    stage("generate", lambda: generate_marketplace(GeneratorConfig(n_users=n, seed=0), bundle_dir))
    server = local_server(settings)
    stage("import", lambda: bulk_import(server, read_bundle(bundle_dir), work / "bulk", force=True))
    server.start()
    with open_store(settings, start=False) as store:
        g = stage("export", lambda: export_graph(store))
    feats = stage("features", partial(build_features, g, None))
    result = stage(
        "epoch", partial(fit, g, feats, TrainConfig(epochs=1, split="time", device="cpu"))
    )
    model, normaliser = result.model, result.normaliser
    del result  # the artifact is what scoring loads: the model and its normaliser
    risk = 1 / (1 + np.exp(-stage("scoring", partial(score, g, feats, model, normaliser))))
    del feats, model, normaliser  # rings need the graph and the risk only
    stage("rings", partial(detect_rings, g, risk, None, RingConfig()))
    edges = np.concatenate(
        [g.edges[("user", "uses", "device")]["src"].to_numpy(np.int64)]
        + [f["src"].to_numpy(np.int64) for et, f in g.edges.items() if et[1] == "ordered"]
    )
    del g, risk
    # shuffled with a fixed seed: the export keeps edges sorted by source, and a sort of
    # sorted runs (or a count over them) is a linear, cache-friendly scan, not a reference
    edges = np.random.default_rng(0).permutation(edges)
    reps = 10  # shuffled, one call takes about as long as a stage; repeats smooth the noise
    stage(f"argsort×{reps}", partial(repeat, partial(np.argsort, edges, kind="stable"), reps))
    stage(f"bincount×{reps}", partial(repeat, partial(np.bincount, edges), reps))
    return out


def score(g: Any, feats: Any, model: Any, normaliser: Any) -> np.ndarray:
    """Fraud logits of every user and their reasons' attributions (as ``score_users``)."""
    from training.attribution import user_attributions
    from training.fit import INFERENCE_MAX_EDGES, predict_logits
    from training.inputs import graph_data

    y = g.labels["fraud"].to_numpy(np.float64)
    data = graph_data(g, normaliser.transform(feats), y, np.flatnonzero(~np.isnan(y)))
    logits = predict_logits(model, data)
    user_attributions(model, data, INFERENCE_MAX_EDGES)
    fraud: np.ndarray = logits["fraud"]
    return fraud


def repeat(fn: Callable[[], Any], times: int) -> None:
    """``fn()`` ``times`` times, each result dropped (a baseline's memory is one result)."""
    for _ in range(times):
        fn()


def exponent(sizes: list[int], seconds: list[float]) -> float:
    return float(np.polyfit(np.log(sizes), np.log(np.maximum(seconds, 1e-6)), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 250_000, 500_000])
    parser.add_argument("--work", type=Path, default=None, help="folder for bundles (default tmp)")
    parser.add_argument("--max-rss-gib", type=float, default=None,
                        help="stop the run when the resident set passes this")  # fmt: skip
    args = parser.parse_args()
    if args.max_rss_gib:
        MAX_RSS[0] = args.max_rss_gib * 2**30
    rows: dict[int, dict[str, tuple[float, int, int]]] = {}
    try:
        with tempfile.TemporaryDirectory(dir=args.work) as tmp:
            for n in args.sizes:
                rows[n] = run_size(n, Path(tmp))
                table(args.sizes[: len(rows)], rows)  # every size's table as it is done
    finally:
        from serving.connect import local_server
        from serving.settings import Settings

        local_server(Settings()).stop()


def table(sizes: list[int], rows: dict[int, dict[str, tuple[float, int, int]]]) -> None:
    """Markdown table: seconds / held / peak GiB per stage and size, and the time exponent."""
    stages = list(rows[sizes[0]])
    ref = np.array(sizes, float)
    fit = len(sizes) > 1
    if fit:
        print(f"\nn log n reference exponent over these sizes: "
              f"{exponent(sizes, list(ref * np.log(ref))):.2f}")  # fmt: skip
    print("\n| stage | " + " | ".join(f"{n:,} users: s / held / peak GiB" for n in sizes)
          + " | exponent (time) |")  # fmt: skip
    print("|---" * (len(sizes) + 2) + "|")
    for s in stages:
        cells = [f"{rows[n][s][0]:.1f} / {rows[n][s][1] / 2**30:.2f} / {rows[n][s][2] / 2**30:.2f}"
                 for n in sizes]  # fmt: skip
        k = f"{exponent(sizes, [rows[n][s][0] for n in sizes]):.2f}" if fit else "-"
        print(f"| {s} | " + " | ".join(cells) + f" | {k} |", flush=True)


if __name__ == "__main__":
    main()
