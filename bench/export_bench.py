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

Reading the rows from Neo4j is not part of this bench (see docs/report.md for that rate).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--part-rows", type=int, default=1_000_000)
    args = parser.parse_args()
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
