"""Event validation: the import's pandas validator against the small-batch row validator.

Both apply the same rules (tests/graph/test_bundle_rows.py); this prints what each costs per
batch of 1 to 500 order rows (the service's limit), validated against stored ids, the way
``POST /v1/events`` calls it, next to each other in the same process.

Usage: python bench/validate_bench.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from graph.bundle import validate
from graph.bundle_rows import validate_rows
from graph.neo4j.load import columns_for, row_columns


def orders(n: int) -> list[dict[str, str]]:
    return [{"order_id": f"O{i}", "user_id": f"U{i % 7}", "product_id": f"P{i % 5}",
             "amount": f"{10 + i}.5", "ts": "2026-12-03T10:00:00+00:00", "status": "paid",
             "device_id": "D1" if i % 2 else ""} for i in range(n)]  # fmt: skip


def best_ms(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and 99th percentile of ``repeat`` timed calls, in milliseconds."""
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    ms = np.asarray(times) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    ids = {"users": [f"U{i}" for i in range(7)], "products": [f"P{i}" for i in range(5)],
           "devices": ["D1"]}  # fmt: skip
    index = {t: pd.Index(v, dtype=object) for t, v in ids.items()}
    print(f"{'rows':>5} {'pandas validate + columns_for ms (p50/p99)':>44} "
          f"{'row validator + row_columns ms (p50/p99)':>42}")  # fmt: skip
    for n in (1, 5, 50, 500):
        rows = {"orders": orders(n)}

        def frames(rows: dict[str, list[dict[str, str]]] = rows) -> object:
            raw = {t: pd.DataFrame(r, dtype=object).fillna("") for t, r in rows.items()}
            bundle = validate(raw, Path("api-events"), index, 100_000)
            return columns_for("orders", bundle.tables["orders"])

        def small(rows: dict[str, list[dict[str, str]]] = rows) -> object:
            checked = validate_rows(rows, ids, 100_000)
            return row_columns("orders", checked.tables["orders"])

        (a50, a99), (b50, b99) = best_ms(frames, args.repeat), best_ms(small, args.repeat)
        print(f"{n:>5} {f'{a50:.2f} / {a99:.2f}':>44} {f'{b50:.2f} / {b99:.2f}':>42}", flush=True)


if __name__ == "__main__":
    main()
