"""Moving a marketplace in and out of Neo4j, each path next to a naive baseline in the same run.

Usage (needs the local Neo4j: ``riskgraph neo4j start``; the database is reset, so use a
scratch server, e.g. ``RISKGRAPH_NEO4J_PORT=7695 RISKGRAPH_STATE_DIR=/tmp/rg-bench``):

    .venv/bin/python bench/graph_io_bench.py --users 20000 [--naive-rows 2000] [--no-bulk]

Rows of the table:
  * generate: the synthetic bundle (vectorised numpy), for scale;
  * transactional import: ``UNWIND $rows … MERGE`` batches, all tables, versus a one-row-per-
    transaction driver loop (same MERGE query) over ``--naive-rows`` orders;
  * incremental upsert: 10% of the orders changed and re-imported with the batched query;
  * bulk import: ``neo4j-admin database import full`` into the emptied database;
  * export: ``export_graph`` (packed list-valued records) versus ``session.run(...).data()``
    into pandas, one record per edge.
With ``--memory``, peak memory is the client's Python heap during each stage (tracemalloc,
which slows the Python-heavy stages about 2x, so time and memory are best taken in two runs).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

T = TypeVar("T")


TRACE_MEMORY = False  # set by --memory: tracemalloc roughly doubles Python-heavy stages


def measure(fn: Callable[[], T]) -> tuple[T, float, float]:
    """Run ``fn``; return (result, seconds, peak MiB of Python allocations or NaN)."""
    if TRACE_MEMORY:
        tracemalloc.start()
    started = time.perf_counter()
    try:
        out = fn()
    finally:
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / 2**20 if TRACE_MEMORY else float("nan")
        if TRACE_MEMORY:
            tracemalloc.stop()
    return out, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--naive-rows", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--no-bulk", action="store_true")
    parser.add_argument("--memory", action="store_true", help="trace peak memory (slower)")
    args = parser.parse_args()
    global TRACE_MEMORY
    TRACE_MEMORY = args.memory

    from graph.bulk import bulk_import
    from graph.bundle import read_bundle
    from graph.export import export_graph
    from graph.generator import GeneratorConfig, generate_marketplace
    from graph.load import ORDERS, import_bundle, rows_for
    from serving.connect import local_server, open_store
    from serving.settings import Settings

    settings = Settings()
    rows: list[dict[str, Any]] = []

    def row(stage: str, path: str, seconds: float, mib: float, n_rows: int, n_rels: int) -> None:
        rows.append({"stage": stage, "path": path, "seconds": round(seconds, 2),
                     "rows/s": round(n_rows / seconds) if n_rows else "",
                     "rels/s": round(n_rels / seconds) if n_rels else "",
                     "peak MiB": round(mib, 1)})  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        summary, s, m = measure(
            lambda: generate_marketplace(GeneratorConfig(n_users=args.users), Path(tmp))
        )
        row("generate", f"{args.users:,} users", s, m, sum(summary.counts.values()), 0)
        bundle = read_bundle(Path(tmp))
    n_rows = sum(len(f) for f in bundle.tables.values())
    n_rels = sum(len(bundle.tables[t]) for t in ("orders", "reviews", "products")) + len(
        rows_for("logins", bundle.tables["logins"])
    )
    order_rows = rows_for("orders", bundle.tables["orders"])

    with open_store(settings) as store:
        store.delete_all()
        _, s, m = measure(lambda: import_bundle(store, bundle, batch_size=args.batch_size))
        row("import", f"UNWIND batches of {args.batch_size:,}", s, m, n_rows, n_rels)
        sample = order_rows[: args.naive_rows]
        _, s, m = measure(lambda: store.write_batches(ORDERS, sample, batch_size=1))
        row("import", "naive: one order per transaction", s, m, len(sample), len(sample))

        changed = bundle.tables["orders"].sample(frac=0.1, random_state=0).copy()
        changed["amount"] = changed["amount"] + 1.0
        update = rows_for("orders", changed)
        _, s, m = measure(lambda: store.write_batches(ORDERS, update, args.batch_size))
        row("upsert 10%", f"{len(update):,} changed orders", s, m, len(update), len(update))

        n_edges = store.counts()
        n_edges_total = sum(n_edges[r] for r in ("ORDERED", "REVIEWED", "SOLD_BY", "USES"))
        exported, s, m = measure(lambda: export_graph(store))
        row("export", "export_graph (packed records)", s, m, 0, n_edges_total)
        del exported

        def naive_export() -> pd.DataFrame:
            with store.driver.session(database=store.database) as session:
                return pd.DataFrame(
                    session.run(
                        "MATCH (u:User)-[o:ORDERED]->(p:Product) RETURN u.user_id AS src, "
                        "p.product_id AS dst, o.amount AS amount, o.status AS status"
                    ).data()
                )

        frame, s, m = measure(naive_export)
        row("export", "naive: session.run().data() → pandas, ORDERED only", s, m, 0, len(frame))

        if not args.no_bulk and not settings.neo4j_uri:
            store.delete_all()
    if not args.no_bulk and not settings.neo4j_uri:
        with tempfile.TemporaryDirectory() as work:
            _, s, m = measure(
                lambda: bulk_import(local_server(settings), bundle, Path(work), force=True)
            )
        row("bulk import", "neo4j-admin database import full", s, m, n_rows, n_rels)

    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
