"""Emptying the store (``riskgraph reset --yes``): byte-bounded ``delete_all`` next to the old
row-only delete, on the same graph, in the same run.

Usage (needs the local Neo4j; the database is EMPTIED, so use a scratch server, e.g.
``RISKGRAPH_NEO4J_PORT=7704 RISKGRAPH_STATE_DIR=/tmp/rg-bench``):

    .venv/bin/python bench/reset_bench.py --users 20000 [--rounds 2]

Each round imports the generated bundle (untimed), deletes it with the baseline, imports it
again and deletes it with ``GraphStore.delete_all``; the two alternate so that a slower
machine moment does not favour one. The baseline is the query ``delete_all`` ran before it was
bounded by bytes: relationships, then nodes, ``LIMIT 10000`` per transaction.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from graph.bundle import read_bundle
from graph.neo4j.load import import_bundle
from graph.neo4j.store import GraphStore
from graph.synth.marketplace import GeneratorConfig, generate_marketplace

BASELINE_RELS = "MATCH (n)-[r]-() WITH DISTINCT r LIMIT $limit DELETE r RETURN count(*) AS deleted"
BASELINE_NODES = "MATCH (n) WITH n LIMIT $limit DELETE n RETURN count(*) AS deleted"


def baseline_delete(store: GraphStore, batch_size: int = 10_000) -> None:
    """The row-only delete (what ``delete_all`` did before; it ran a 1 GB heap out of memory
    on 300 reviews of 1 MB)."""
    while store._write_returning(BASELINE_RELS, limit=batch_size):
        pass
    while store._write_returning(BASELINE_NODES, limit=batch_size):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from serving.connect import open_store
    from serving.settings import Settings

    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "market"
        generate_marketplace(GeneratorConfig(n_users=args.users, seed=2), folder)
        bundle = read_bundle(folder)
        with open_store(settings) as store:
            store.delete_all()
            rows: list[tuple[str, int, float]] = []
            for _ in range(args.rounds):
                for name, delete in (
                    ("baseline: row-only DELETE ... LIMIT 10000", baseline_delete),
                    ("delete_all (rows and bytes bounded)", GraphStore.delete_all),
                ):
                    import_bundle(store, bundle)
                    size = sum(store.counts().values())
                    started = time.perf_counter()
                    delete(store)
                    rows.append((name, size, time.perf_counter() - started))
                    assert sum(store.counts().values()) == 0
    print(f"reset of a {args.users:,}-user marketplace (nodes + relationships per run)")
    print(f"{'method':<44}{'entities':>12}{'seconds':>10}")
    for name, size, seconds in rows:
        print(f"{name:<44}{size:>12,}{seconds:>10.1f}")


if __name__ == "__main__":
    main()
