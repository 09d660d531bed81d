"""How each stage's cost grows with the marketplace: time and peak memory per stage, fitted exponent.

    OMP_NUM_THREADS=1 RISKGRAPH_STATE_DIR=... RISKGRAPH_NEO4J_PORT=... nice -n 10 \\
        .venv/bin/python bench/scale_bench.py --sizes 100000 250000 500000

At each size: generate a marketplace -> bulk import into the local Neo4j (neo4j-admin, the
offline importer; it replaces the settings' database) -> export over Bolt -> behaviour features
(no BERT: its cost is per review and measured by encoder_bench.py) -> one training epoch
(mini-batches, time split) -> scoring (full-graph pass and the reasons' backward pass) ->
rings (from the scores). Peak memory is the process's highest resident set during the stage
(sampled every 20 ms). Baselines in the same run, over the same arrays (the user-to-device and
order edges): ``argsort`` (an n log n reference) and ``bincount`` (a linear pass), 200 times
each. The exponent is the least-squares slope of log(seconds) on log(users); n log n between
100k and 500k users fits an exponent of about 1.1 (printed for the sizes run), so a stage fitting much above that grows faster than n log n.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measured(fn: Callable[[], Any]) -> tuple[Any, float, int]:
    """``fn()``, its wall seconds and the peak resident set while it ran."""
    peak, stop = [rss_bytes()], threading.Event()

    def watch() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], rss_bytes())

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    started = time.perf_counter()
    try:
        out = fn()
    finally:
        seconds = time.perf_counter() - started
        stop.set()
        thread.join()
    return out, seconds, max(peak[0], rss_bytes())


def run_size(n: int, work: Path) -> dict[str, tuple[float, int]]:
    """Every stage at ``n`` users: stage -> (seconds, peak bytes)."""
    from encoders.features import build_features
    from graph.bundle import read_bundle
    from graph.neo4j.bulk import bulk_import
    from graph.neo4j.reader import export_graph
    from graph.rings.config import RingConfig
    from graph.rings.detect import detect_rings
    from graph.synth.marketplace import GeneratorConfig, generate_marketplace
    from serving.connect import local_server, open_store
    from serving.settings import Settings
    from training.attribution import user_attributions
    from training.config import TrainConfig
    from training.fit import INFERENCE_MAX_EDGES, fit, predict_logits
    from training.inputs import graph_data

    settings = Settings()
    out: dict[str, tuple[float, int]] = {}

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        value, seconds, peak = measured(fn)
        out[name] = (seconds, peak)
        print(f"  {n:>9,} {name:<10} {seconds:8.1f} s  {peak / 2**30:6.2f} GiB", flush=True)
        return value

    bundle_dir = work / f"market-{n}"
    stage("generate", lambda: generate_marketplace(GeneratorConfig(n_users=n, seed=0), bundle_dir))
    server = local_server(settings)
    stage("import", lambda: bulk_import(server, read_bundle(bundle_dir), work / "bulk", force=True))
    server.start()
    with open_store(settings, start=False) as store:
        g = stage("export", lambda: export_graph(store))
    feats = stage("features", lambda: build_features(g, None))
    config = TrainConfig(epochs=1, split="time", device="cpu")
    result = stage("epoch", lambda: fit(g, feats, config))
    y = g.labels["fraud"].to_numpy(np.float64)
    x = result.normaliser.transform(feats)

    def score() -> np.ndarray:
        data = graph_data(g, x, y, np.flatnonzero(~np.isnan(y)))
        logits = predict_logits(result.model, data)
        user_attributions(result.model, data, INFERENCE_MAX_EDGES)
        return logits["fraud"]

    risk = 1 / (1 + np.exp(-stage("scoring", score)))
    stage("rings", lambda: detect_rings(g, risk, None, RingConfig()))
    edges = np.concatenate(
        [g.edges[("user", "uses", "device")]["src"].to_numpy(np.int64)]
        + [f["src"].to_numpy(np.int64) for et, f in g.edges.items() if et[1] == "ordered"]
    )
    reps = 200  # the baselines are fast: repeat them so their times are well above noise
    stage("argsort×200", lambda: [np.argsort(edges, kind="stable") for _ in range(reps)])
    stage("bincount×200", lambda: [np.bincount(edges) for _ in range(reps)])
    return out


def exponent(sizes: list[int], seconds: list[float]) -> float:
    return float(np.polyfit(np.log(sizes), np.log(np.maximum(seconds, 1e-6)), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 250_000, 500_000])
    parser.add_argument("--work", type=Path, default=None, help="folder for bundles (default tmp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        rows = {n: run_size(n, Path(tmp)) for n in args.sizes}
    stages = list(rows[args.sizes[0]])
    ref = np.array(args.sizes, float)
    print(f"\nn log n reference exponent over these sizes: "
          f"{exponent(args.sizes, list(ref * np.log(ref))):.2f}")  # fmt: skip
    print("| stage | " + " | ".join(f"{n:,} users: s / GiB" for n in args.sizes)
          + " | exponent (time) |")  # fmt: skip
    print("|---" * (len(args.sizes) + 2) + "|")
    for s in stages:
        cells = [f"{rows[n][s][0]:.1f} / {rows[n][s][1] / 2**30:.2f}" for n in args.sizes]
        k = exponent(args.sizes, [rows[n][s][0] for n in args.sizes])
        print(f"| {s} | " + " | ".join(cells) + f" | {k:.2f} |")


if __name__ == "__main__":
    main()
