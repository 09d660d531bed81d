"""Where should behaviour features be computed: in numpy on exported arrays, or in Cypher?

Usage:

    .venv/bin/python bench/features_bench.py --sizes 100000,1000000          # numpy only
    .venv/bin/python bench/features_bench.py --sizes 100000 --neo4j          # + Cypher, same run

For each size a marketplace is generated and validated. The numpy path computes every node
type's behaviour features from the bundle's arrays (``export_from_bundle`` → ``build_features``
without text). With ``--neo4j`` the bundle is also imported into the configured Neo4j (it is
reset first: use a scratch server), and two ways of getting the same per-user order features
are timed: (a) ``export_graph`` + numpy, (b) one Cypher aggregation query per user over
``ORDERED`` (the in-database alternative). The printed table puts them side by side.

Two baselines run in the same process at each size over the orders' users (shuffled): a
``bincount`` (linear, with the random access the features' scattered reads have) and an
``argsort`` (n log n). With more than one size, each path's growth exponent (least-squares
slope of log seconds on log users) and its step-by-step ratios are printed first, so the
features' growth reads against what this machine's caches do to the two references.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import resource
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import LiteralString

import numpy as np
import pandas as pd

CYPHER_USER_ORDERS: LiteralString = """
MATCH (u:User)
OPTIONAL MATCH (u)-[o:ORDERED]->()
WITH u, count(o) AS n, sum(o.amount) AS spend, max(o.amount) AS max_amount,
     sum(CASE o.status WHEN 'refunded' THEN 1 ELSE 0 END) AS refunded,
     sum(CASE o.status WHEN 'chargeback' THEN 1 ELSE 0 END) AS chargeback
RETURN u.user_id AS id, n, spend, max_amount, refunded, chargeback
"""


BINCOUNT = "baseline: bincount of the orders' users, shuffled (linear)"
ARGSORT = "baseline: argsort of the orders' users, shuffled (n log n)"


def best_of(times: int, fn: Callable[[], object]) -> float:
    """The fastest of ``times`` calls, in seconds (a baseline's noise floor on a shared box)."""
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def bench_size(n: int, with_neo4j: bool) -> list[dict[str, object]]:
    """Time the numpy path (and, with Neo4j, the export and Cypher paths) for ``n`` users."""
    from encoders.behaviour import user_features
    from encoders.features import build_features
    from graph.bundle import read_bundle
    from graph.export import export_from_bundle
    from graph.neo4j.reader import export_graph
    from graph.synth.marketplace import GeneratorConfig, generate_marketplace

    with tempfile.TemporaryDirectory() as tmp:
        with Timer() as t_gen:
            generate_marketplace(GeneratorConfig(n_users=n), Path(tmp))
        with Timer() as t_read:
            bundle = read_bundle(Path(tmp))
    with Timer() as t_assemble:
        g = export_from_bundle(bundle)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with Timer() as t_numpy:
        build_features(g, None)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    # the same call again in the same process: what the first call paid for touching fresh
    # memory and cold caches after the generator, not for the features' own operations
    gc.collect()
    again = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with Timer() as t_again:
        build_features(g, None)
    again = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - again
    edges = sum(len(f) for f in g.edges.values())
    # Baselines in the same process over the same array (the orders' users, shuffled with a
    # fixed seed: the export keeps edges sorted by user, and a sort of sorted data or a count
    # over it would not touch memory the way the features' scattered reads do): a linear
    # pass with random access (``bincount``) and an n log n one (``argsort``).
    order_users = g.edges[next(et for et in g.edges if et[1] == "ordered")]["src"].to_numpy()
    shuffled = np.random.default_rng(0).permutation(order_users)
    t_count = best_of(3, partial(np.bincount, shuffled, minlength=n))
    t_sort = best_of(3, partial(np.argsort, shuffled, kind="stable"))
    del shuffled
    note = f"generate {t_gen.seconds:.1f}s, validate {t_read.seconds:.1f}s, assemble {t_assemble.seconds:.1f}s"
    rows: list[dict[str, object]] = [
        {
            "users": n,
            "edges": edges,
            "path": "numpy, all node types",
            "seconds": t_numpy.seconds,
            "note": f"{note}; {faults:,} page faults",
        },
        {
            "users": n,
            "edges": edges,
            "path": "numpy, all node types, second call",
            "seconds": t_again.seconds,
            "note": f"{again:,} page faults",
        },
        {
            "users": n,
            "edges": edges,
            "path": BINCOUNT,
            "seconds": t_count,
            "note": f"{len(order_users):,} orders, best of 3",
        },
        {
            "users": n,
            "edges": edges,
            "path": ARGSORT,
            "seconds": t_sort,
            "note": "best of 3",
        },
    ]
    if not with_neo4j:
        return rows
    from graph.neo4j.load import import_bundle
    from serving.connect import open_store
    from serving.settings import Settings

    with open_store(Settings()) as store:
        store.delete_all()
        with Timer() as t_import:
            import_bundle(store, bundle)
        with Timer() as t_export:
            exported = export_graph(store)
        with Timer() as t_user:
            user_features(exported)
        with Timer() as t_cypher:
            store.read_columns(CYPHER_USER_ORDERS)
    note = f"export {t_export.seconds:.1f}s + numpy {t_user.seconds:.2f}s (import took {t_import.seconds:.0f}s)"
    rows.append(
        {
            "users": n,
            "edges": edges,
            "path": "export_graph + numpy user features",
            "seconds": t_export.seconds + t_user.seconds,
            "note": note,
        }
    )
    rows.append(
        {
            "users": n,
            "edges": edges,
            "path": "Cypher: 5 user order aggregates",
            "seconds": t_cypher.seconds,
            "note": "in-database, a subset of the user features",
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="100000", help="comma-separated user counts")
    parser.add_argument("--neo4j", action="store_true", help="also time Cypher (resets the db)")
    args = parser.parse_args()
    rows = [row for n in args.sizes.split(",") for row in bench_size(int(n), args.neo4j)]
    frame = pd.DataFrame(rows)
    sizes = sorted(frame["users"].unique())
    if len(sizes) > 1:  # growth per path: least-squares slope of log(seconds) on log(users)
        print("growth exponent over", ", ".join(f"{n:,}" for n in sizes), "users")
        for path, part in frame.groupby("path", sort=False):
            slope = np.polyfit(np.log(part["users"].astype(float)), np.log(part["seconds"]), 1)[0]
            steps = part["seconds"].to_numpy()
            ratios = " ".join(f"x{b / a:.2f}" for a, b in itertools.pairwise(steps))
            print(f"  {path:<62} {slope:5.2f}   step by step {ratios}")
        print()
    frame["seconds"] = frame["seconds"].map(lambda s: f"{s:.2f}")
    print(frame.to_string(index=False))


if __name__ == "__main__":
    main()
