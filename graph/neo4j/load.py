"""Transactional import of a validated bundle into Neo4j: idempotent upserts by bundle id.

Every statement upserts by the bundle id, so importing the same bundle twice changes nothing,
a newer bundle updates changed rows, and a load killed half-way completes when rerun.
Parents are written before children (merchants → products → users/devices → edges).

Rows travel column-wise: each batch's parameters are one list per column (``$order_id``,
``$amount`` …), which Bolt packs several times faster than a map per row; each query walks them
with ``UNWIND range(0, size($order_id) - 1) AS i`` (most build a ``row`` map with the
:func:`_unwind` prefix). Rows are sent in key order (:func:`columns_for`). Orders and reviews, the bulk of an
incremental update, first try an in-place update that finds the relationship by its id through
the relationship index and checks its endpoints (:data:`UPDATE_ORDERS`); only rows not found
that way (new ones, or ones whose user or product changed) go through the ``MERGE`` path, which
locks both endpoints and walks their relationships.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, LiteralString, TextIO, cast

import pandas as pd

from graph import schema
from graph.bundle import ValidatedBundle, aggregate_logins
from graph.limits import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_SIZE
from graph.neo4j.store import Columns, GraphStore, records

ProgressFactory = Callable[[str, int], Callable[[int], None]]


def _unwind(*columns: LiteralString) -> LiteralString:
    """``UNWIND`` prefix turning one list parameter per column into ``i`` and a ``row`` map.

    Column names are constants of this module, never input.
    """
    fields = ", ".join(f"{c}: ${c}[i]" for c in columns)
    return cast(
        LiteralString,
        f"UNWIND range(0, size(${columns[0]}) - 1) AS i\nWITH i, {{{fields}}} AS row\n",
    )


# Parameter columns per table (the bundle's columns, logins aggregated per user and device).
COLUMNS: dict[str, tuple[LiteralString, ...]] = {
    "merchants": ("merchant_id", "created_at", "category"),
    "products": ("product_id", "merchant_id", "category", "price"),
    "users": ("user_id", "created_at", "country", "features"),
    "devices": ("device_id", "kind", "first_seen"),
    "logins": ("user_id", "device_id", "first_ts", "last_ts", "logins"),
    "orders": ("order_id", "user_id", "product_id", "amount", "ts", "status", "device_id"),
    "reviews": ("review_id", "user_id", "product_id", "rating", "text", "ts"),
    "labels": ("user_id", "fraud", "default", "observed_at"),
    "rings": ("ring_id", "user_id"),
}

MERCHANTS: LiteralString = (
    _unwind(*COLUMNS["merchants"])
    + f"""
MERGE (m:{schema.MERCHANT} {{merchant_id: row.merchant_id}})
SET m.created_at = datetime({{epochMillis: row.created_at}}), m.category = row.category
"""
)
PRODUCTS: LiteralString = (
    _unwind(*COLUMNS["products"])
    + f"""
MERGE (p:{schema.PRODUCT} {{product_id: row.product_id}})
SET p.category = row.category, p.price = row.price
WITH p, row
MATCH (m:{schema.MERCHANT} {{merchant_id: row.merchant_id}})
MERGE (p)-[:{schema.SOLD_BY}]->(m)
WITH p, m
OPTIONAL MATCH (p)-[old:{schema.SOLD_BY}]->(other:{schema.MERCHANT}) WHERE other <> m
DELETE old
"""
)
USERS: LiteralString = (
    _unwind(*COLUMNS["users"])
    + f"""
MERGE (u:{schema.USER} {{user_id: row.user_id}})
SET u.created_at = datetime({{epochMillis: row.created_at}}), u.country = row.country
SET u += row.features
"""
)
DEVICES: LiteralString = (
    _unwind(*COLUMNS["devices"])
    + f"""
MERGE (d:{schema.DEVICE} {{device_id: row.device_id}})
SET d.kind = row.kind, d.first_seen = datetime({{epochMillis: row.first_seen}})
"""
)
USES: LiteralString = (
    _unwind(*COLUMNS["logins"])
    + f"""
MATCH (u:{schema.USER} {{user_id: row.user_id}})
MATCH (d:{schema.DEVICE} {{device_id: row.device_id}})
MERGE (u)-[r:{schema.USES}]->(d)
WITH r, row, datetime({{epochMillis: row.first_ts}}) AS first, datetime({{epochMillis: row.last_ts}}) AS last
SET r.first_seen = CASE WHEN r.first_seen IS NULL OR first < r.first_seen THEN first ELSE r.first_seen END,
    r.last_seen = CASE WHEN r.last_seen IS NULL OR last > r.last_seen THEN last ELSE r.last_seen END,
    r.logins = CASE WHEN r.logins IS NULL OR row.logins > r.logins THEN row.logins ELSE r.logins END
"""
)
# In-place update of orders that exist with the same endpoints: one relationship-index seek
# per row, and only the properties whose value differs are written (a re-import of an unchanged
# bundle writes nothing here); returns the positions it found. The hot path of an incremental
# update, so it reads its parameters directly instead of building a ``row`` map (~8% faster).
UPDATE_ORDERS: LiteralString = f"""
UNWIND range(0, size($order_id) - 1) AS i
MATCH (a)-[o:{schema.ORDERED} {{order_id: $order_id[i]}}]->(b)
WHERE a.user_id = $user_id[i] AND b.product_id = $product_id[i]
WITH i, o, $amount[i] AS amount, $ts[i] AS ts, $status[i] AS status, $device_id[i] AS device
FOREACH (_ IN CASE WHEN o.amount = amount THEN [] ELSE [1] END | SET o.amount = amount)
FOREACH (_ IN CASE WHEN o.ts.epochMillis = ts THEN [] ELSE [1] END |
  SET o.ts = datetime({{epochMillis: ts}}))
FOREACH (_ IN CASE WHEN o.status = status THEN [] ELSE [1] END | SET o.status = status)
FOREACH (_ IN CASE WHEN coalesce(o.device_id, '') = coalesce(device, '') THEN [] ELSE [1] END |
  SET o.device_id = device)
RETURN collect(i) AS found
"""
# The rest: new orders, and orders whose user or product changed (the old edge is deleted).
ORDERS: LiteralString = (
    _unwind(*COLUMNS["orders"])
    + f"""
MATCH (u:{schema.USER} {{user_id: row.user_id}})
MATCH (p:{schema.PRODUCT} {{product_id: row.product_id}})
OPTIONAL MATCH (a)-[moved:{schema.ORDERED} {{order_id: row.order_id}}]->(b) WHERE a <> u OR b <> p
DELETE moved
MERGE (u)-[o:{schema.ORDERED} {{order_id: row.order_id}}]->(p)
SET o.amount = row.amount, o.ts = datetime({{epochMillis: row.ts}}), o.status = row.status,
    o.device_id = row.device_id
"""
)
UPDATE_REVIEWS: LiteralString = f"""
UNWIND range(0, size($review_id) - 1) AS i
MATCH (a)-[r:{schema.REVIEWED} {{review_id: $review_id[i]}}]->(b)
WHERE a.user_id = $user_id[i] AND b.product_id = $product_id[i]
WITH i, r, b, $rating[i] AS rating, $text[i] AS text, $ts[i] AS ts
FOREACH (_ IN CASE WHEN r.rating = rating THEN [] ELSE [1] END | SET r.rating = rating
  REMOVE b.{schema.REVIEW_COUNT}, b.{schema.RATING_SUM})
FOREACH (_ IN CASE WHEN r.text = text THEN [] ELSE [1] END | SET r.text = text)
FOREACH (_ IN CASE WHEN r.ts.epochMillis = ts THEN [] ELSE [1] END |
  SET r.ts = datetime({{epochMillis: ts}}))
RETURN collect(i) AS found
"""
_REVIEWS_HEAD: LiteralString = (
    _unwind(*COLUMNS["reviews"])
    + f"""
MATCH (u:{schema.USER} {{user_id: row.user_id}})
MATCH (p:{schema.PRODUCT} {{product_id: row.product_id}})
OPTIONAL MATCH (a)-[moved:{schema.REVIEWED} {{review_id: row.review_id}}]->(b) WHERE a <> u OR b <> p
"""
)
_REVIEWS_TAIL: LiteralString = f"""DELETE moved
MERGE (u)-[r:{schema.REVIEWED} {{review_id: row.review_id}}]->(p)
SET r.rating = row.rating, r.text = row.text, r.ts = datetime({{epochMillis: row.ts}})
"""
# Recount of each product's review aggregates (schema.REVIEW_COUNT, RATING_SUM) from its
# REVIEWED edges, for a list ``touched`` of product nodes bound before it. A recount, never an
# increment: a rerun, a duplicate or a moved review leaves the exact values. Each product is
# write-locked (in product id order) before its edges are read, so two transactions changing
# the same product's reviews (a rating updated in place locks only the edge) cannot commit a
# count that misses the other's change: the second one reads after the first committed.
RECOUNT_TOUCHED: LiteralString = f"""
CALL {{ WITH touched
  UNWIND touched AS q
  WITH DISTINCT q ORDER BY q.product_id
  SET q._LOCK_ = true
  WITH q
  CALL {{ WITH q
    OPTIONAL MATCH (q)<-[x:{schema.REVIEWED}]-()
    RETURN count(x) AS n, sum(x.rating) AS s }}
  SET q.{schema.REVIEW_COUNT} = n, q.{schema.RATING_SUM} = s
  REMOVE q._LOCK_ }}
"""
# The import's review upsert. Every product whose reviews it changes (the new one; the old
# one of a review that moves; in :data:`UPDATE_REVIEWS`, one whose rating changes) has its
# aggregates cleared, so readers count it by traversal and stay exact until
# :func:`recount_products` recounts, once the table is written, every product of the table and
# every cleared one (also after a load killed half-way: the next import finds them). Recounting
# per batch instead would read a popular product's every review once per batch.
REVIEWS: LiteralString = (
    _REVIEWS_HEAD
    + f"""FOREACH (_ IN CASE WHEN moved IS NULL THEN [] ELSE [1] END |
  REMOVE b.{schema.REVIEW_COUNT}, b.{schema.RATING_SUM})
REMOVE p.{schema.REVIEW_COUNT}, p.{schema.RATING_SUM}
"""
    + _REVIEWS_TAIL
)
# The same upsert for a few rows written online (the service's events): the touched products,
# old and new, are recounted in the same query, so the neighbourhood read after it in the same
# transaction sees exact aggregates.
REVIEWS_ONLINE: LiteralString = (
    _REVIEWS_HEAD + _REVIEWS_TAIL + "WITH collect(p) + collect(b) AS touched\n" + RECOUNT_TOUCHED
)
# Standalone recount over a list of product ids (column ``product_id``, batched like rows).
RECOUNT_PRODUCTS: LiteralString = (
    f"""
UNWIND $product_id AS pid
MATCH (q:{schema.PRODUCT} {{product_id: pid}})
WITH collect(q) AS touched
"""
    + RECOUNT_TOUCHED
)
# Products whose aggregates are missing: imported before they existed, created by a products
# table without reviews, or cleared by a moved review.
STALE_PRODUCTS: LiteralString = f"""
MATCH (q:{schema.PRODUCT}) WHERE q.{schema.REVIEW_COUNT} IS NULL OR q.{schema.RATING_SUM} IS NULL
RETURN q.product_id AS product_id
"""
LABELS: LiteralString = (
    _unwind(*COLUMNS["labels"])
    + f"""
MERGE (l:{schema.LABEL} {{user_id: row.user_id}})
SET l.fraud = row.fraud, l.default = row.default,
    l.observed_at = CASE WHEN row.observed_at IS NULL THEN null
                         ELSE datetime({{epochMillis: toInteger(row.observed_at)}}) END
"""
)
TRUTH_RINGS: LiteralString = (
    _unwind(*COLUMNS["rings"])
    + f"""
MERGE (:{schema.TRUTH_RING} {{ring_id: row.ring_id, user_id: row.user_id}})
"""
)


@dataclass(frozen=True)
class Write:
    """How one bundle table is written: the upsert, and optionally an in-place update first."""

    table: str
    query: LiteralString
    update: LiteralString | None = None
    online: LiteralString | None = None  # the query for a few rows written online, if not query

    @property
    def online_query(self) -> LiteralString:
        return self.online or self.query


# In write order; logins are aggregated into the USES edge first.
WRITES: tuple[Write, ...] = (
    Write("merchants", MERCHANTS),
    Write("products", PRODUCTS),
    Write("users", USERS),
    Write("devices", DEVICES),
    Write("logins", USES),
    Write("orders", ORDERS, UPDATE_ORDERS),
    Write("reviews", REVIEWS, UPDATE_REVIEWS, REVIEWS_ONLINE),
    Write("labels", LABELS),
    Write("rings", TRUTH_RINGS),
)

# Rows per write transaction, chosen by measurement (bench/graph_io_bench.py --batch-sizes).


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
        """Write ``report.json`` and ``rejects.csv`` (every rejected row with its rule).

        Both are readable by their owner only (0600; a new report folder is 0700): rejected
        rows are customer data.
        """
        report_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.report_dir = str(report_dir)
        with _private(report_dir / "rejects.csv") as fh:
            rejects.to_csv(fh, index=False)
        with _private(report_dir / "report.json") as fh:
            fh.write(json.dumps(asdict(self), indent=2) + "\n")


def _private(path: Path) -> TextIO:
    """``path`` opened for writing text with mode 0600, also when it already existed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


def _values(series: pd.Series) -> list[Any]:
    """A column as plain python values, NaN/NA as None (Neo4j has no NaN)."""
    if not series.hasnans:
        return list(series.tolist())
    return list(series.astype(object).where(series.notna(), None).tolist())


def _blank_to_none(values: list[Any]) -> list[Any]:
    return [None if v == "" else v for v in values]


def columns_for(table: str, frame: pd.DataFrame) -> Columns:
    """Shape one clean table into the parameter columns its write query expects.

    Rows are put in order of their key (the first column), so that consecutive index seeks of
    a batch touch neighbouring index and store pages: a shuffled 10% update of 1M users' orders
    upserts about 30% faster sorted than in random order.
    """
    if table == "logins":
        frame = aggregate_logins(frame)  # sorted by user and device
    key = COLUMNS[table][0]
    if not frame[key].is_monotonic_increasing:
        frame = frame.sort_values(key, kind="stable")
    out = {name: _values(frame[name]) for name in COLUMNS[table] if name != "features"}
    if table == "users":
        out["country"] = _blank_to_none(out["country"])
        feats = [c for c in frame.columns if c.startswith(schema.FEATURE_PREFIX)]
        out["features"] = records(frame[feats]) if feats else [{} for _ in range(len(frame))]
    if table == "orders":
        out["device_id"] = _blank_to_none(out["device_id"])
    return out


def row_columns(table: str, rows: Sequence[Mapping[str, Any]]) -> Columns:
    """:func:`columns_for` over clean dict rows (``graph.bundle_rows.validate_rows``): the
    same parameter columns, in the same order, for the service's few-row events (building a
    frame for them cost more than the write)."""
    if table == "logins":  # aggregate_logins: one row per (user, device), sorted
        spans: dict[tuple[str, str], list[int]] = {}
        for row in rows:
            ts = row["ts"]
            span = spans.setdefault((row["user_id"], row["device_id"]), [ts, ts, 0])
            span[0], span[1], span[2] = min(span[0], ts), max(span[1], ts), span[2] + 1
        rows = [{"user_id": u, "device_id": d, "first_ts": f, "last_ts": t, "logins": n}
                for (u, d), (f, t, n) in sorted(spans.items())]  # fmt: skip
    key = COLUMNS[table][0]
    rows = sorted(rows, key=lambda row: row[key])  # stable, as sort_values(kind="stable")
    out = {name: [_plain(row[name]) for row in rows]
           for name in COLUMNS[table] if name != "features"}  # fmt: skip
    if table == "users":
        out["country"] = _blank_to_none(out["country"])
        out["features"] = [{c: _plain(v) for c, v in row.items()
                            if c.startswith(schema.FEATURE_PREFIX)} for row in rows]  # fmt: skip
    if table == "orders":
        out["device_id"] = _blank_to_none(out["device_id"])
    return out


def _plain(value: Any) -> Any:
    """NaN as None (Neo4j has no NaN), as :func:`_values`."""
    return None if isinstance(value, float) and math.isnan(value) else value


def rows_for(table: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The same values as :func:`columns_for`, one map per row (for one-row-at-a-time writers)."""
    columns = columns_for(table, frame)
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def import_bundle(
    store: GraphStore,
    bundle: ValidatedBundle,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressFactory | None = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> ImportReport:
    """Upsert every clean row of ``bundle`` into Neo4j; return counts and timings.

    Transactions hold at most ``batch_size`` rows and about ``batch_bytes`` bytes of values,
    so rows with long texts never make one transaction too big for the server's memory.
    """
    store.ensure_schema()
    loaded: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for write in WRITES:
        if write.table not in bundle.tables:
            continue
        started = time.perf_counter()
        columns = columns_for(write.table, bundle.tables[write.table])
        n_rows = len(next(iter(columns.values())))
        tick = progress(write.table, n_rows) if progress else None
        store.write_columns(
            write.query,
            columns,
            batch_size=batch_size,
            progress=tick,
            update=write.update,
            batch_bytes=batch_bytes,
        )
        loaded[write.table] = len(bundle.tables[write.table])
        seconds[write.table] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    reviews = bundle.tables.get("reviews")
    touched = [] if reviews is None else reviews["product_id"].unique().tolist()
    recount_products(store, touched, batch_size=max(1, batch_size // 10))
    seconds["review_aggregates"] = round(time.perf_counter() - started, 3)
    return ImportReport.of(bundle, loaded, seconds)


def recount_products(
    store: GraphStore, product_ids: Sequence[str] = (), batch_size: int = 1_000
) -> int:
    """Recount the review aggregates of ``product_ids`` and of every product missing them
    (:data:`STALE_PRODUCTS`); return how many products were recounted.

    Run by :func:`import_bundle` after its writes, so a graph imported before the aggregates
    existed gets them on its next import (or by calling this once). Each transaction recounts
    ``batch_size`` products: it reads every review of each, so batches are kept smaller than
    row batches.
    """
    stale = [row["product_id"] for row in store.read(STALE_PRODUCTS)]
    ids = sorted(set(product_ids).union(stale))
    if ids:
        store.write_columns(RECOUNT_PRODUCTS, {"product_id": ids}, batch_size=batch_size)
    return len(ids)
