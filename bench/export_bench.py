"""``riskgraph export`` file writing at scale, next to pandas' own ``to_parquet`` of the same
frame, in the same process.

Usage: ``.venv/bin/python bench/export_bench.py --users 1000000 [--rounds 2]``

The frame has the users table's columns and types as ``serving.export.tables`` reads them
(ids, credit scores, bands, probabilities, three reasons, previous run, versions, ring ids).
Timed per round, the two writers alternating so a slower machine moment favours neither:

* baseline: ``DataFrame.to_parquet`` (pyarrow, snappy) into one file;
* export: ``write_export`` as the command runs it: ``export_part_rows``-row parts (zstd),
  sha256 of every part, manifest, staging folder renamed into place;
* export + pseudonymise: the same after HMAC-SHA256 of every user id;
* frame build: ``pd.DataFrame`` from column lists, as the driver's rows arrive.

With ``--neo4j-users N`` it also runs the whole command (``run_export``: run check, Cypher
read, parts, manifest) on N scored users in the Neo4j the ``RISKGRAPH_*`` settings point at,
next to a plain read of the same query plus ``to_parquet``. It refuses a database that is
not empty, and empties it afterwards: use a scratch server, e.g.
``RISKGRAPH_STATE_DIR=/tmp/rg-bench RISKGRAPH_NEO4J_PORT=7704``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import LiteralString, cast

import numpy as np
import pandas as pd

from serving.export.pseudonym import check_key, pseudonymise_frame
from serving.export.write import write_export

REASONS = np.array(["12% of orders charged back", "account is 3 days old",
                    "shares device D9 with 14 other accounts", "9 orders within one hour"])  # fmt: skip


def users_columns(n: int, seed: int = 0) -> dict[str, list[object]]:
    """Column lists shaped like ``GraphStore.read_columns`` returns the users query."""
    rng = np.random.default_rng(seed)
    credit = rng.integers(300, 850, n)
    prev = credit + rng.integers(-120, 120, n)
    bands = np.array(["very high", "high", "medium", "low", "very low"])[
        np.clip((credit - 300) // 110, 0, 4)
    ]
    picks = rng.integers(0, len(REASONS), (n, 3))
    return {
        "user_id": [f"U{i:09d}" for i in range(n)],
        "credit_score": credit.tolist(),
        "risk_band": bands.tolist(),
        "risk_score": rng.random(n).tolist(),
        "default_probability": rng.random(n).tolist(),
        "reasons": REASONS[picks].tolist(),
        "previous_score": prev.tolist(),
        "previous_band": bands[rng.permutation(n)].tolist(),
        "score_change": (credit - prev).tolist(),
        "score_version": ["3f2a9c1b7d4e"] * n,
        "score_run": ["run-20261203T103000123456-a1b2c3"] * n,
        "scored_at": ["2026-12-03T10:30:00Z"] * n,
        "ring_ids": [["ring-1a2b3c4d5e6f"] if i % 97 == 0 else [] for i in range(n)],
    }


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# The baseline read: one Cypher row per user, what a first version would write.
PLAIN_USERS = """
MATCH (u:User) WHERE {filter}
RETURN u.user_id AS user_id, u.credit_score AS credit_score, u.risk_band AS risk_band,
       u.risk_score AS risk_score, u.default_probability AS default_probability,
       u.reasons AS reasons, u.previous_score AS previous_score,
       u.previous_band AS previous_band, u.credit_score - u.previous_score AS score_change,
       u.score_version AS score_version, u.score_run AS score_run,
       toString(u.scored_at) AS scored_at,
       COLLECT {{ MATCH (u)-[:MEMBER_OF]->(r:Ring) RETURN r.ring_id }} AS ring_ids
"""


def neo4j_round(n: int, work: Path) -> None:
    """Score ``n`` users twice on an empty database, then time the export against a plain
    read and ``to_parquet`` of the same rows."""
    from graph.neo4j.runs import incomplete_run_ids, mark_complete, start_run
    from graph.neo4j.writeback import write_user_scores
    from serving.connect import open_store
    from serving.export.command import run_export
    from serving.export.tables import USER_FILTER, ExportFilters
    from serving.settings import Settings

    settings = Settings()
    with open_store(settings) as store:
        if store.read("MATCH (n) RETURN count(n) AS n")[0]["n"]:
            raise SystemExit("--neo4j-users needs an empty database (it is emptied afterwards)")
        store.ensure_schema()
        try:
            ids = [f"U{i:09d}" for i in range(n)]
            store.write_batches("UNWIND $rows AS r CREATE (:User {user_id: r.id})",
                                [{"id": i} for i in ids], 20_000)  # fmt: skip
            cols = users_columns(n)
            frame = pd.DataFrame({k: cols[k] for k in ("user_id", "credit_score", "risk_band",
                                                       "risk_score", "default_probability",
                                                       "reasons")})  # fmt: skip
            started = time.perf_counter()
            for version in ("v1", "v2"):
                run_id, _ = start_run(store, version)
                write_user_scores(store, frame, version, "2026-12-03T10:00:00+00:00", run_id,
                                  incomplete_run_ids(store), 20_000)  # fmt: skip
                mark_complete(store, run_id)
            print(f"neo4j: {n:,} users scored twice in {time.perf_counter() - started:.1f} s")
            rows = cast(LiteralString, PLAIN_USERS.format(filter=USER_FILTER))
            base = timed(lambda: pd.DataFrame(store.read_columns(
                rows, **ExportFilters().params())).to_parquet(work / "plain.parquet"))  # fmt: skip
            full = timed(lambda: run_export(store, settings, work / "neo4j-export",
                                            tables=("users",)))  # fmt: skip
            print(f"{'neo4j read + to_parquet (baseline)':<40}{base:>8.2f} s")
            print(f"{'run_export (riskgraph export)':<40}{full:>8.2f} s "
                  f"({n / full:,.0f} users/s)")  # fmt: skip
        finally:
            store.delete_all(batch_size=20_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--part-rows", type=int, default=1_000_000)
    parser.add_argument("--neo4j-users", type=int, default=0)
    args = parser.parse_args()
    if args.neo4j_users:
        with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
            neo4j_round(args.neo4j_users, Path(tmp))
        return
    cols = users_columns(args.users)
    build = timed(lambda: pd.DataFrame(cols))
    frame = pd.DataFrame(cols)
    for c in ("credit_score", "previous_score", "score_change"):
        frame[c] = frame[c].astype("Int64")
    key = check_key("bench-key-0123456789abcdef")
    results: dict[str, list[float]] = {"baseline to_parquet": [], "export": [],
                                       "export --pseudonymise": []}  # fmt: skip
    sizes: dict[str, int] = {}
    writers: dict[str, Callable[[Path], object]] = {
        "baseline to_parquet": lambda path: frame.to_parquet(path, index=False),
        "export": lambda path: write_export(path, {"users": frame}, "parquet", args.part_rows, {}),
        "export --pseudonymise": lambda path: write_export(
            path, {"users": pseudonymise_frame(key, frame)}, "parquet", args.part_rows, {}
        ),
    }
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        for r in range(args.rounds):
            for name, write in writers.items():
                path = Path(tmp) / f"{r}-{name.split()[-1].strip('-')}"
                results[name].append(timed(lambda w=write, p=path: w(p)))  # type: ignore[misc]
                files = list(path.iterdir()) if path.is_dir() else [path]
                sizes[name] = sum(f.stat().st_size for f in files)
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    print(f"{args.users:,} users, {args.rounds} rounds, parts of {args.part_rows:,} rows; "
          f"frame from column lists {build:.2f} s")  # fmt: skip
    print(f"{'writer':<24}{'best s':>9}{'mean s':>9}{'MB':>8}{'rows/s':>12}")
    for name, times in results.items():
        best = min(times)
        print(f"{name:<24}{best:>9.2f}{np.mean(times):>9.2f}{sizes[name] / 1e6:>8.1f}"
              f"{args.users / best:>12,.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
