"""Read the marketplace graph out of Neo4j into a ``GraphExport`` (columnar arrays + ``HeteroData``).

Results are pulled column-wise (one record of long lists per chunk, no dict per record) and
decoded straight into numpy and Arrow arrays. Relationships come back with their endpoints as
internal node ids, which numpy maps to contiguous node indices (nodes are indexed in sorted
bundle-id order). The id arrays are kept, so scores can be written back under the original
bundle ids.
"""

from __future__ import annotations

import re
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, LiteralString

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from graph import schema
from graph.export import GraphExport, build_data, user_labels
from graph.neo4j.store import GraphStore
from graph.schema import EdgeType

# Node ids per label, for existing_ids (an incremental bundle may reference stored entities).
NODE_IDS: dict[str, LiteralString] = {
    "user": f"MATCH (n:{schema.USER}) RETURN collect(n.user_id) AS id",
    "merchant": f"MATCH (n:{schema.MERCHANT}) RETURN collect(n.merchant_id) AS id",
    "product": f"MATCH (n:{schema.PRODUCT}) RETURN collect(n.product_id) AS id",
    "device": f"MATCH (n:{schema.DEVICE}) RETURN collect(n.device_id) AS id",
}
# The export reads every label's internal node ids first (integers, cheap to scan and to send),
# then node properties and relationships per chunk of those ids. Endpoints come back as
# internal ids too, so no string id crosses Bolt twice and no endpoint property is read; the
# client maps internal ids to node indices with numpy. ``id()`` is deprecated in Neo4j 5 and
# ids of deleted nodes are reused, so they serve only within one export; they are far cheaper
# than ``elementId()`` strings. A relationship to a node created after its label's ids were
# read is left out of the export.
#
# Every query returns ONE record of list-valued columns: decoding a few long lists is far faster
# than one record per row (``collect`` drops nulls, so nullable values are coalesced).
NODE_HANDLES: dict[str, LiteralString] = {
    "user": f"MATCH (n:{schema.USER}) RETURN collect(id(n)) AS h",
    "merchant": f"MATCH (n:{schema.MERCHANT}) RETURN collect(id(n)) AS h",
    "product": f"MATCH (n:{schema.PRODUCT}) RETURN collect(id(n)) AS h",
    "device": f"MATCH (n:{schema.DEVICE}) RETURN collect(id(n)) AS h",
}
NODE_QUERIES: dict[str, LiteralString] = {
    "user": f"""UNWIND $h AS h MATCH (n:{schema.USER}) WHERE id(n) = h
               RETURN collect(h) AS h, collect(n.user_id) AS id,
               collect(n.created_at.epochMillis) AS created_at,
               collect(coalesce(n.country, '')) AS country,
               collect([k IN $feature_keys | n[k]]) AS features""",
    "merchant": f"""UNWIND $h AS h MATCH (n:{schema.MERCHANT}) WHERE id(n) = h
                   RETURN collect(h) AS h, collect(n.merchant_id) AS id,
                   collect(n.created_at.epochMillis) AS created_at,
                   collect(n.category) AS category""",
    "product": f"""UNWIND $h AS h MATCH (n:{schema.PRODUCT}) WHERE id(n) = h
                  RETURN collect(h) AS h, collect(n.product_id) AS id,
                  collect(n.category) AS category, collect(n.price) AS price""",
    "device": f"""UNWIND $h AS h MATCH (n:{schema.DEVICE}) WHERE id(n) = h
                 RETURN collect(h) AS h, collect(n.device_id) AS id, collect(n.kind) AS kind,
                 collect(n.first_seen.epochMillis) AS first_seen""",
}
# Relationships per chunk of source node ids: ``src``/``dst`` are internal node ids.
EDGE_QUERIES: dict[str, LiteralString] = {
    schema.ORDERED: f"""UNWIND $h AS h MATCH (s:{schema.USER}) WHERE id(s) = h
        MATCH (s)-[r:{schema.ORDERED}]->(d:{schema.PRODUCT})
        RETURN collect(h) AS src, collect(id(d)) AS dst, collect(r.order_id) AS order_id,
               collect(r.amount) AS amount, collect(r.ts.epochMillis) AS ts,
               collect(r.status) AS status, collect(coalesce(r.device_id, '')) AS device_id""",
    schema.REVIEWED: f"""UNWIND $h AS h MATCH (s:{schema.USER}) WHERE id(s) = h
        MATCH (s)-[r:{schema.REVIEWED}]->(d:{schema.PRODUCT})
        RETURN collect(h) AS src, collect(id(d)) AS dst, collect(r.review_id) AS review_id,
               collect(r.rating) AS rating, collect(r.ts.epochMillis) AS ts,
               collect(r.text) AS text""",
    schema.SOLD_BY: f"""UNWIND $h AS h MATCH (s:{schema.PRODUCT}) WHERE id(s) = h
        MATCH (s)-[:{schema.SOLD_BY}]->(d:{schema.MERCHANT})
        RETURN collect(h) AS src, collect(id(d)) AS dst""",
    schema.USES: f"""UNWIND $h AS h MATCH (s:{schema.USER}) WHERE id(s) = h
        MATCH (s)-[r:{schema.USES}]->(d:{schema.DEVICE})
        RETURN collect(h) AS src, collect(id(d)) AS dst, collect(r.logins) AS logins,
               collect(r.first_seen.epochMillis) AS first_seen,
               collect(r.last_seen.epochMillis) AS last_seen""",
}
EDGE_SOURCE = {schema.ORDERED: "user", schema.REVIEWED: "user", schema.SOLD_BY: "product",
               schema.USES: "user"}  # fmt: skip
# How each returned column is decoded: integers, floats, or python objects (the per-user feature
# lists); every other column is a string (Arrow-backed pandas ``str``).
INT, FLOAT, STR, OBJ = "int", "float", "str", "obj"
COLUMN_KINDS: dict[str, str] = {
    "h": INT,
    "src": INT,
    "dst": INT,
    "created_at": INT,
    "first_seen": INT,
    "last_seen": INT,
    "ts": INT,
    "rating": INT,
    "logins": INT,
    "price": FLOAT,
    "amount": FLOAT,
    "features": OBJ,
}
SOURCE_CHUNK = 10_000
EXPORT_WORKERS = 2
FEATURE_KEYS: LiteralString = f"""
MATCH (n:{schema.USER}) UNWIND keys(n) AS k WITH DISTINCT k WHERE k STARTS WITH $prefix
RETURN k ORDER BY k
"""
LABELS: LiteralString = f"""MATCH (l:{schema.LABEL}) RETURN collect(l.user_id) AS id,
    collect(coalesce(l.fraud, -1.0)) AS fraud, collect(coalesce(l.default, -1.0)) AS default,
    collect(coalesce(l.observed_at.epochMillis, -1)) AS observed_at"""


def _object_array(values: list[object]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values  # keeps list values (e.g. feature lists) as single cells
    return out


def _frame(columns: dict[str, list[object]]) -> pd.DataFrame:
    return pd.DataFrame({k: _object_array(v) for k, v in columns.items()})


def export_graph(
    store: GraphStore, chunk: int = SOURCE_CHUNK, workers: int = EXPORT_WORKERS
) -> GraphExport:
    """Read every node, relationship and label out of Neo4j into a :class:`GraphExport`.

    Node properties and relationships are read per chunk of ``chunk`` source nodes, ``workers``
    chunks at a time (read transactions take no locks; the server works on each in its own
    thread). Nodes are read first; while the relationships are still being read, the calling
    thread already sorts the nodes and then assembles each relationship type as soon as its
    chunks are in. The result equals :func:`export_from_bundle` of the bundle that was imported.
    """
    feature_keys = [
        str(k) for k in store.read_columns(FEATURE_KEYS, prefix=schema.FEATURE_PREFIX).get("k", [])
    ]
    handles = {nt: store.read_packed(q)["h"] for nt, q in NODE_HANDLES.items()}

    def run(query: LiteralString, part: list[int]) -> dict[str, Any]:
        cols = store.read_packed(query, h=part, feature_keys=feature_keys)
        return {key: _decode(key, values) for key, values in cols.items()}

    nodes: dict[str, pd.DataFrame] = {}
    rank: dict[str, _Handles] = {}
    frames: dict[EdgeType, pd.DataFrame] = {}
    with ThreadPoolExecutor(max(1, workers)) as pool:  # runs the chunks in submission order
        pending: dict[str, list[Future[dict[str, Any]]]] = {}
        for nt, query in NODE_QUERIES.items():
            pending[nt] = [pool.submit(run, query, part) for part in _parts(handles[nt], chunk)]
        for rel, query in EDGE_QUERIES.items():
            sources = handles[EDGE_SOURCE[rel]]
            pending[rel] = [pool.submit(run, query, part) for part in _parts(sources, chunk)]

        for nt, query in NODE_QUERIES.items():
            cols = _concat([f.result() for f in pending.pop(nt)], query)
            node_handles = cols.pop("h")
            features = cols.pop("features", None)
            frame = pd.DataFrame({k: _column(v) for k, v in cols.items()})
            if nt == "user":
                frame["country"] = frame["country"].replace({"": None})
                matrix = np.array(
                    [f for part in features or [] for f in part], dtype=np.float64
                ).reshape(len(frame), len(feature_keys))
                for j, key in enumerate(feature_keys):
                    frame[key] = matrix[:, j].astype(np.float32)
            order = np.argsort(frame["id"].to_numpy(dtype=object), kind="stable")
            nodes[nt] = frame.take(order).reset_index(drop=True)
            rank[nt] = _Handles(node_handles[order])

        for relation in schema.RELATIONS:
            query = EDGE_QUERIES[relation.rel]
            cols = _concat([f.result() for f in pending.pop(relation.rel)], query)
            src_t, _, dst_t = relation.edge_type
            src = rank[src_t].index_of(cols.pop("src"))
            dst = rank[dst_t].index_of(cols.pop("dst"))
            keep = (src >= 0) & (dst >= 0)  # a node created after its label was read is left out
            order = np.flatnonzero(keep)[np.lexsort((dst[keep], src[keep]))]
            frame = pd.DataFrame({"src": src[order], "dst": dst[order]})
            for key, values in cols.items():
                frame[key] = _column(values, order, blank_is_none=key == "device_id")
            frames[relation.edge_type] = frame

    ids = {nt: nodes[nt]["id"].to_numpy(dtype=object) for nt in nodes}
    labels = _frame(store.read_packed(LABELS))
    for key in ("fraud", "default"):
        labels[key] = pd.to_numeric(labels[key]).where(lambda v: v >= 0)
    if "observed_at" in labels:  # -1: not given (a real instant before 1970 is not a label's)
        labels["observed_at"] = pd.to_numeric(labels["observed_at"]).astype(float)
        labels.loc[labels["observed_at"] == -1, "observed_at"] = np.nan
    label_frame = user_labels(pd.Index(ids["user"]), labels)
    return GraphExport(build_data(ids, frames), ids, nodes, frames, label_frame, feature_keys)


class _Handles:
    """Internal node ids of one label, in node-index order, mapped back to node indices."""

    def __init__(self, handles: np.ndarray) -> None:
        self.low = int(handles.min()) if len(handles) else 0
        span = int(handles.max()) - self.low + 1 if len(handles) else 0
        # A direct lookup table while the ids are dense enough (the store allocates them in
        # runs), else a binary search.
        self.table: np.ndarray | None = None
        if span <= 8 * len(handles) + 1_000_000:
            self.table = np.full(span, -1, dtype=np.int64)
            self.table[handles - self.low] = np.arange(len(handles), dtype=np.int64)
        else:
            self.sorter = np.argsort(handles, kind="stable")
            self.sorted = handles[self.sorter]

    def index_of(self, handles: np.ndarray) -> np.ndarray:
        """Node index of each internal id (-1 where the id is not a node of this label)."""
        out = np.full(len(handles), -1, dtype=np.int64)
        if self.table is not None:
            offset = handles - self.low
            inside = (offset >= 0) & (offset < len(self.table))
            out[inside] = self.table[offset[inside]]
        elif len(self.sorted):
            pos = np.searchsorted(self.sorted, handles).clip(0, len(self.sorted) - 1)
            found = self.sorted[pos] == handles
            out[found] = self.sorter[pos[found]]
        return out


def _parts(values: list[int], chunk: int) -> list[list[int]]:
    return [values[start : start + chunk] for start in range(0, len(values), chunk)]


def _decode(key: str, values: list[Any]) -> Any:
    """One returned column, decoded as early as possible (in the reading thread)."""
    kind = COLUMN_KINDS.get(key, STR)
    if kind == INT:
        try:
            return np.array(values, dtype=np.int64)
        except (TypeError, OverflowError):
            return np.array(values, dtype=np.float64)
    if kind == FLOAT:
        return np.array(values, dtype=np.float64)
    if kind == OBJ:
        return values
    return pa.array(values, type=pa.string())


def _concat(parts: list[dict[str, Any]], query: LiteralString) -> dict[str, Any]:
    """Concatenate the decoded chunks of one query, column by column.

    Numbers become one numpy array, strings one Arrow chunked array, objects a list of chunks.
    """
    keys = list(parts[0]) if parts else _returned_keys(query)
    out: dict[str, Any] = {}
    for key in keys:
        values = [part[key] for part in parts]
        kind = COLUMN_KINDS.get(key, STR)
        if kind == OBJ:
            out[key] = values
        elif kind == STR:
            out[key] = pa.chunked_array(values, type=pa.string())
        else:
            out[key] = np.concatenate(values) if values else np.zeros(0, dtype=np.int64)
    return out


def _column(
    values: np.ndarray | pa.ChunkedArray,
    order: np.ndarray | None = None,
    blank_is_none: bool = False,
) -> Any:
    """A frame column, rows taken in ``order``: numbers as numpy, strings as pandas ``str``
    (Arrow-backed: no Python object per row); with ``blank_is_none``, empty strings become
    missing (NaN)."""
    if isinstance(values, np.ndarray):
        return values if order is None else values[order]
    if order is not None:
        values = values.take(pa.array(order))
    if blank_is_none:
        blank = pc.equal(values, "")
        values = pc.if_else(blank, pa.scalar(None, pa.string()), values)
    return pd.Series(values, dtype="str")


def _returned_keys(query: LiteralString) -> list[str]:
    """The ``AS name`` columns of a packed query (for an empty label)."""
    return re.findall(r"\bAS (\w+)", query.split("RETURN", 1)[1])


def existing_ids(store: GraphStore) -> dict[str, pd.Index]:
    """Bundle ids already in the store per bundle table, so an incremental bundle may reference
    entities loaded by an earlier import."""
    tables = {"user": "users", "merchant": "merchants", "product": "products", "device": "devices"}
    return {
        table: pd.Index(store.read_packed(NODE_IDS[node_type])["id"], dtype=object)
        for node_type, table in tables.items()
    }
