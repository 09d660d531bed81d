"""Moving a marketplace in and out of Neo4j, each path next to a naive baseline in the same run.

Usage (needs the local Neo4j; the database is REPLACED, so use a scratch server, e.g.
``RISKGRAPH_NEO4J_PORT=7695 RISKGRAPH_STATE_DIR=/tmp/rg-bench``, and give it memory for the
size, e.g. ``RISKGRAPH_NEO4J_HEAP=4g RISKGRAPH_NEO4J_PAGECACHE=4g`` for 1M users):

    .venv/bin/python bench/graph_io_bench.py --users 20000
    .venv/bin/python bench/graph_io_bench.py --users 1000000 [--bundle /tmp/gen1m]

Rows of the table, in the order they run:
  * generate: the synthetic bundle (skipped with ``--bundle``, which reads an existing one);
  * validate: ``read_bundle`` (every rule of the bundle format), which both import paths run;
  * import (transactional): every table through ``graph.neo4j.load.import_bundle`` into the emptied
    database; by default only up to 100k users (``--transactional`` / ``--no-transactional``);
  * bulk import: ``neo4j-admin database import full`` replacing the database, including the
    server stop and start (skipped with ``--no-bulk`` or an external server);
  * export: ``export_graph`` (all four relationship types with their properties, all nodes,
    labels), first right after the load (cold page cache and JIT), then again (warm), next to
    ``session.run(...).data()`` into pandas, one record per relationship, with the same columns,
    on a sample of ``--naive-edges`` relationships;
  * insert: ``--insert-frac`` of the orders deleted (untimed), then written again by the batched
    upsert, next to the naive baseline (one order per transaction through the plain ``MERGE``);
    the write queries are first run once on 500 orders, untimed, so that planning and JIT
    compilation after the bulk load's restart are not timed;
  * upsert 10%: 10% of the orders changed (amount + 1) and written by the batched upsert, next to
    the naive baseline on ``--naive-rows`` changed orders; ``--batch-sizes`` adds the same
    upsert on ``--sweep-frac`` of the orders per batch size.
Naive baselines run on samples and report rates. ``peak MiB`` is the peak resident memory of
this process plus its child processes (the offline importer) during the stage, sampled every
50 ms; ``server MiB`` is the Neo4j server's.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, LiteralString, TypeVar

import pandas as pd

T = TypeVar("T")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with suppress(FileNotFoundError, ValueError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


@dataclass
class MemorySampler:
    """Peak RSS of this process (+ children other than the server) and of the Neo4j server."""

    server_pid: Callable[[], int | None]
    peak: int = 0
    server_peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        server = self.server_pid()
        todo, total = [os.getpid()], 0
        while todo:
            pid = todo.pop()
            if pid == server:
                continue
            total += _rss(pid)
            todo += _children(pid)
        self.peak = max(self.peak, total)
        if server:
            self.server_peak = max(self.server_peak, _rss(server))

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    @contextmanager
    def running(self) -> Iterator[MemorySampler]:
        self._sample()
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self._sample()


@dataclass
class Table:
    server_pid: Callable[[], int | None]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def measure(self, fn: Callable[[], T]) -> tuple[T, float, MemorySampler]:
        sampler = MemorySampler(self.server_pid)
        with sampler.running():
            started = time.perf_counter()
            out = fn()
            seconds = time.perf_counter() - started
        return out, seconds, sampler

    def add(self, stage: str, path: str, seconds: float, mem: MemorySampler | None,
            n_rows: int = 0, n_rels: int = 0, note: str = "") -> None:  # fmt: skip
        self.rows.append({
            "stage": stage, "path": path, "seconds": round(seconds, 2),
            "rows": f"{n_rows:,}" if n_rows else "", "rows/s": f"{n_rows / seconds:,.0f}" if n_rows else "",
            "rels/s": f"{n_rels / seconds:,.0f}" if n_rels else "",
            "peak MiB": round(mem.peak / 2**20) if mem else "",
            "server MiB": round(mem.server_peak / 2**20) if mem and mem.server_peak else "",
            "note": note,
        })  # fmt: skip
        print(f"  {stage}: {path}: {seconds:.2f} s {note}", flush=True)

    def print(self) -> None:
        print(pd.DataFrame(self.rows).to_string(index=False))


# The naive export: one record per relationship, same columns as export_graph returns.
NAIVE_EDGES: dict[str, LiteralString] = {
    "ORDERED": """MATCH (s:User)-[r:ORDERED]->(d:Product) RETURN s.user_id AS src,
        d.product_id AS dst, r.order_id AS order_id, r.amount AS amount,
        r.ts.epochMillis AS ts, r.status AS status, r.device_id AS device_id LIMIT $limit""",
    "REVIEWED": """MATCH (s:User)-[r:REVIEWED]->(d:Product) RETURN s.user_id AS src,
        d.product_id AS dst, r.review_id AS review_id, r.rating AS rating,
        r.ts.epochMillis AS ts, r.text AS text LIMIT $limit""",
    "SOLD_BY": """MATCH (s:Product)-[:SOLD_BY]->(d:Merchant) RETURN s.product_id AS src,
        d.merchant_id AS dst LIMIT $limit""",
    "USES": """MATCH (s:User)-[r:USES]->(d:Device) RETURN s.user_id AS src, d.device_id AS dst,
        r.logins AS logins, r.first_seen.epochMillis AS first_seen,
        r.last_seen.epochMillis AS last_seen LIMIT $limit""",
}
DELETE_ORDERS: LiteralString = """
UNWIND $order_id AS id MATCH ()-[o:ORDERED {order_id: id}]->() DELETE o
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bundle", type=Path, help="use this bundle instead of generating one")
    parser.add_argument("--naive-rows", type=int, default=2_000, help="rows per naive write loop")
    parser.add_argument("--naive-edges", type=int, default=200_000, help="naive export sample")
    parser.add_argument("--insert-frac", type=float, default=0.01, help="orders re-inserted")
    parser.add_argument("--batch-size", type=int, default=None, help="default: graph.neo4j.load's")
    parser.add_argument("--batch-sizes", default="", help="e.g. 2000,5000,10000,20000")
    parser.add_argument("--sweep-frac", type=float, default=0.02)
    parser.add_argument("--export-workers", type=int, default=None)
    tx = parser.add_mutually_exclusive_group()
    tx.add_argument("--transactional", dest="transactional", action="store_true", default=None)
    tx.add_argument("--no-transactional", dest="transactional", action="store_false")
    parser.add_argument("--no-bulk", action="store_true")
    args = parser.parse_args()

    from graph.bundle import aggregate_logins, read_bundle
    from graph.neo4j import reader as export
    from graph.neo4j.bulk import bulk_import
    from graph.neo4j.load import (
        DEFAULT_BATCH_SIZE,
        ORDERS,
        UPDATE_ORDERS,
        columns_for,
        import_bundle,
    )
    from graph.neo4j.reader import export_graph
    from graph.synth.marketplace import GeneratorConfig, generate_marketplace
    from serving.connect import local_server, open_store
    from serving.settings import Settings

    settings = Settings()
    batch = args.batch_size or DEFAULT_BATCH_SIZE
    workers = args.export_workers or export.EXPORT_WORKERS
    server = None if settings.neo4j_uri else local_server(settings)
    table = Table(lambda: server.status().pid if server else None)
    bulk = not args.no_bulk and server is not None
    transactional = args.transactional
    if transactional is None:
        transactional = args.users <= 100_000 or not bulk
    print(f"graph_io_bench: {args.users:,} users, batch {batch:,}, export workers {workers}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.bundle or Path(tmp) / "bundle"
        if args.bundle is None:
            summary, s, m = table.measure(
                lambda: generate_marketplace(
                    GeneratorConfig(n_users=args.users, seed=args.seed), folder
                )
            )
            table.add("generate", f"{args.users:,} users", s, m, sum(summary.counts.values()))
        bundle, s, m = table.measure(lambda: read_bundle(folder))
        n_rows = sum(len(f) for f in bundle.tables.values())
        table.add("validate", "read_bundle (all rules)", s, m, n_rows)
    t = bundle.tables
    n_rels = (len(t["orders"]) + len(t["reviews"]) + len(t["products"])
              + len(aggregate_logins(t["logins"])))  # fmt: skip
    orders = t["orders"]

    if transactional:
        with open_store(settings) as store:
            store.delete_all()
            _, s, m = table.measure(lambda: import_bundle(store, bundle, batch_size=batch))
            table.add("import", f"transactional, batches of {batch:,}", s, m, n_rows, n_rels)
    if bulk:
        assert server is not None
        with tempfile.TemporaryDirectory() as work:
            report, s, m = table.measure(
                lambda: bulk_import(server, bundle, Path(work), force=True)
            )
        stages = ("plan", "check", "write_csv", "stop", "import", "start", "schema")
        note = ", ".join(f"{k} {report.seconds[k]:.0f}" for k in stages if k in report.seconds)
        table.add("bulk import", "neo4j-admin import full + stop/start", s, m, n_rows, n_rels,
                  note=note)  # fmt: skip

    with open_store(settings) as store:
        # -- export: first right after the load (cold caches), then again -----------------
        counts = store.counts()
        n_edges = sum(counts[r] for r in NAIVE_EDGES)
        for when in ("cold", "warm"):
            exported, s, m = table.measure(lambda: export_graph(store, workers=workers))
            n_out = sum(len(f) for f in exported.edges.values())
            assert n_out == n_edges, (n_out, n_edges)
            del exported
            table.add("export", f"export_graph, {workers} workers, {when}", s, m,
                      n_rels=n_edges, note=f"{n_edges:,} rels")  # fmt: skip

        def naive_export() -> int:
            got = 0
            with store.driver.session(database=store.database) as session:
                for rel, query in NAIVE_EDGES.items():
                    limit = max(1_000, round(args.naive_edges * counts[rel] / n_edges))
                    got += len(pd.DataFrame(session.run(query, limit=limit).data()))
            return got

        got, s, m = table.measure(naive_export)
        table.add("export", "naive: session.run().data() → pandas", s, m, n_rels=got,
                  note="sample" if got < n_edges else "")  # fmt: skip

        # -- inserting new relationships ---------------------------------------------------
        def upsert(frame: pd.DataFrame, size: int) -> int:
            """The batched path, shaping the parameter columns included."""
            return store.write_columns(
                ORDERS, columns_for("orders", frame), size, update=UPDATE_ORDERS
            )

        def naive_loop(frame: pd.DataFrame) -> int:
            return store.write_columns(ORDERS, columns_for("orders", frame), batch_size=1)

        def fresh(frame: pd.DataFrame) -> pd.DataFrame:
            """Delete these orders (untimed) so that writing them again inserts them."""
            ids = frame["order_id"].tolist()
            store.write_columns(DELETE_ORDERS, {"order_id": ids}, 10_000)
            return frame

        # Untimed warm-up: plan and compile the write queries once, as on a running server.
        warm = orders.sample(n=min(500, len(orders)), random_state=0)
        upsert(fresh(warm), batch)
        upsert(warm.assign(amount=warm["amount"] + 0.5), batch)
        naive_loop(warm.head(20))

        sample = fresh(orders.drop(warm.index).sample(frac=args.insert_frac, random_state=1))
        _, s, m = table.measure(partial(upsert, sample, batch))
        table.add("insert", f"{len(sample):,} new orders, batches of {batch:,}", s, m,
                  len(sample), len(sample))  # fmt: skip
        rest = orders.drop(warm.index).drop(sample.index)
        naive = fresh(rest.sample(n=min(args.naive_rows, len(rest)), random_state=2))
        _, s, m = table.measure(partial(naive_loop, naive))
        table.add("insert", "naive: one order per transaction (MERGE)", s, m, len(naive),
                  len(naive), note="sample")  # fmt: skip

        # -- upserting a 10% update ----------------------------------------------------------
        def changed(frac: float, seed: int, bump: float) -> pd.DataFrame:
            frame = orders.sample(frac=frac, random_state=seed)  # shuffled, like a random update
            return frame.assign(amount=frame["amount"] + bump)

        update = changed(0.1, 3, 1.0)
        _, s, m = table.measure(partial(upsert, update, batch))
        table.add("upsert 10%", f"{len(update):,} changed orders, batches of {batch:,}", s, m,
                  len(update), len(update))  # fmt: skip
        few = changed(args.naive_rows / len(orders), 4, 2.0)
        _, s, m = table.measure(partial(naive_loop, few))
        table.add("upsert 10%", "naive: one order per transaction (MERGE)", s, m, len(few),
                  len(few), note="sample")  # fmt: skip
        for k, size in enumerate(int(x) for x in args.batch_sizes.split(",") if x):
            part = changed(args.sweep_frac, 10 + k, 3.0 + k)
            _, s, m = table.measure(partial(upsert, part, size))
            table.add("upsert sweep", f"{len(part):,} changed orders, batches of {size:,}", s, m,
                      len(part), len(part))  # fmt: skip

    table.print()


if __name__ == "__main__":
    main()
