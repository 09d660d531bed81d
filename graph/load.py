"""Transactional import of a validated bundle into Neo4j: idempotent ``UNWIND $rows … MERGE`` batches.

Every statement upserts by the bundle id, so importing the same bundle twice changes nothing,
a newer bundle updates changed rows, and a load killed half-way completes when rerun.
Parents are written before children (merchants → products → users/devices → edges).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, LiteralString

import pandas as pd

from graph import schema
from graph.bundle import ValidatedBundle, aggregate_logins
from graph.store import GraphStore, records

ProgressFactory = Callable[[str, int], Callable[[int], None]]

MERCHANTS: LiteralString = """
UNWIND $rows AS row
MERGE (m:Merchant {merchant_id: row.merchant_id})
SET m.created_at = datetime({epochMillis: row.created_at}), m.category = row.category
"""
PRODUCTS: LiteralString = """
UNWIND $rows AS row
MERGE (p:Product {product_id: row.product_id})
SET p.category = row.category, p.price = row.price
WITH p, row
MATCH (m:Merchant {merchant_id: row.merchant_id})
MERGE (p)-[:SOLD_BY]->(m)
WITH p, m
OPTIONAL MATCH (p)-[old:SOLD_BY]->(other:Merchant) WHERE other <> m
DELETE old
"""
USERS: LiteralString = """
UNWIND $rows AS row
MERGE (u:User {user_id: row.user_id})
SET u.created_at = datetime({epochMillis: row.created_at}), u.country = row.country
SET u += row.features
"""
DEVICES: LiteralString = """
UNWIND $rows AS row
MERGE (d:Device {device_id: row.device_id})
SET d.kind = row.kind, d.first_seen = datetime({epochMillis: row.first_seen})
"""
USES: LiteralString = """
UNWIND $rows AS row
MATCH (u:User {user_id: row.user_id})
MATCH (d:Device {device_id: row.device_id})
MERGE (u)-[r:USES]->(d)
WITH r, row, datetime({epochMillis: row.first_ts}) AS first, datetime({epochMillis: row.last_ts}) AS last
SET r.first_seen = CASE WHEN r.first_seen IS NULL OR first < r.first_seen THEN first ELSE r.first_seen END,
    r.last_seen = CASE WHEN r.last_seen IS NULL OR last > r.last_seen THEN last ELSE r.last_seen END,
    r.logins = CASE WHEN r.logins IS NULL OR row.logins > r.logins THEN row.logins ELSE r.logins END
"""
ORDERS: LiteralString = """
UNWIND $rows AS row
MATCH (u:User {user_id: row.user_id})
MATCH (p:Product {product_id: row.product_id})
OPTIONAL MATCH (a)-[moved:ORDERED {order_id: row.order_id}]->(b) WHERE a <> u OR b <> p
DELETE moved
MERGE (u)-[o:ORDERED {order_id: row.order_id}]->(p)
SET o.amount = row.amount, o.ts = datetime({epochMillis: row.ts}), o.status = row.status,
    o.device_id = row.device_id
"""
REVIEWS: LiteralString = """
UNWIND $rows AS row
MATCH (u:User {user_id: row.user_id})
MATCH (p:Product {product_id: row.product_id})
OPTIONAL MATCH (a)-[moved:REVIEWED {review_id: row.review_id}]->(b) WHERE a <> u OR b <> p
DELETE moved
MERGE (u)-[r:REVIEWED {review_id: row.review_id}]->(p)
SET r.rating = row.rating, r.text = row.text, r.ts = datetime({epochMillis: row.ts})
"""
LABELS: LiteralString = """
UNWIND $rows AS row
MERGE (l:Label {user_id: row.user_id})
SET l.fraud = row.fraud, l.default = row.default
"""
TRUTH_RINGS: LiteralString = """
UNWIND $rows AS row
MERGE (:TruthRingMember {ring_id: row.ring_id, user_id: row.user_id})
"""

# (table, query) in write order; logins are aggregated into the USES edge first.
WRITES: tuple[tuple[str, LiteralString], ...] = (
    ("merchants", MERCHANTS),
    ("products", PRODUCTS),
    ("users", USERS),
    ("devices", DEVICES),
    ("logins", USES),
    ("orders", ORDERS),
    ("reviews", REVIEWS),
    ("labels", LABELS),
    ("rings", TRUTH_RINGS),
)


@dataclass
class ImportReport:
    """What an import did: rows read, loaded and rejected per table, and where the files are."""

    bundle: str
    read: dict[str, int]
    loaded: dict[str, int]
    rejected: dict[str, dict[str, int]]
    seconds: dict[str, float] = field(default_factory=dict)
    report_dir: str = ""

    @classmethod
    def of(
        cls, bundle: ValidatedBundle, loaded: dict[str, int], seconds: dict[str, float]
    ) -> ImportReport:
        """The report of loading ``bundle``: its read and reject counts plus what was loaded."""
        return cls(str(bundle.source), bundle.read_rows, loaded, bundle.reject_counts(), seconds)

    @property
    def total_rejected(self) -> int:
        return sum(sum(v.values()) for v in self.rejected.values())

    def write(self, report_dir: Path, rejects: pd.DataFrame) -> None:
        """Write ``report.json`` and ``rejects.csv`` (every rejected row with its rule)."""
        report_dir.mkdir(parents=True, exist_ok=True)
        self.report_dir = str(report_dir)
        rejects.to_csv(report_dir / "rejects.csv", index=False)
        (report_dir / "report.json").write_text(json.dumps(asdict(self), indent=2) + "\n")


def rows_for(table: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Shape one clean table into the parameter rows its write query expects."""
    if table == "users":
        feats = [c for c in frame.columns if c.startswith(schema.FEATURE_PREFIX)]
        base = records(frame[["user_id", "created_at", "country"]].replace({"country": {"": None}}))
        feat_rows = records(frame[feats]) if feats else [{} for _ in base]
        for row, f in zip(base, feat_rows, strict=True):
            row["features"] = f
        return base
    if table == "logins":
        return records(aggregate_logins(frame))
    if table == "orders":
        out = frame.copy()
        out["device_id"] = out["device_id"].replace({"": None})
        return records(out)
    return records(frame)


def import_bundle(
    store: GraphStore,
    bundle: ValidatedBundle,
    batch_size: int = 10_000,
    progress: ProgressFactory | None = None,
) -> ImportReport:
    """Upsert every clean row of ``bundle`` into Neo4j; return counts and timings."""
    store.ensure_schema()
    loaded: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for table, query in WRITES:
        if table not in bundle.tables:
            continue
        started = time.perf_counter()
        rows = rows_for(table, bundle.tables[table])
        tick = progress(table, len(rows)) if progress else None
        store.write_batches(query, rows, batch_size=batch_size, progress=tick)
        loaded[table] = len(bundle.tables[table])
        seconds[table] = round(time.perf_counter() - started, 3)
    return ImportReport.of(bundle, loaded, seconds)
