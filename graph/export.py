"""Read the marketplace graph out of Neo4j into columnar arrays and a PyG ``HeteroData``.

Results are pulled column-wise (no dict per record) and turned into numpy arrays at once; string
ids are mapped to contiguous indices with a vectorised ``pd.Index.get_indexer``. The id arrays
are kept, so scores can be written back under the original bundle ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, LiteralString

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from graph import schema
from graph.bundle import ValidatedBundle, aggregate_logins
from graph.store import GraphStore

EdgeType = tuple[str, str, str]

# Every query returns ONE record of list-valued columns: decoding a few long lists is far
# faster than one record per row (``collect`` drops nulls, so nullable values are coalesced).
NODE_IDS: dict[str, LiteralString] = {
    "user": "MATCH (n:User) RETURN collect(n.user_id) AS id",
    "merchant": "MATCH (n:Merchant) RETURN collect(n.merchant_id) AS id",
    "product": "MATCH (n:Product) RETURN collect(n.product_id) AS id",
    "device": "MATCH (n:Device) RETURN collect(n.device_id) AS id",
}
# Node properties are read per chunk of ids (``$ids``), like the edges, to bound memory.
NODE_QUERIES: dict[str, LiteralString] = {
    "user": """UNWIND $ids AS id MATCH (n:User {user_id: id})
               RETURN collect(id) AS id, collect(n.created_at.epochMillis) AS created_at,
               collect(coalesce(n.country, '')) AS country,
               collect([k IN $feature_keys | n[k]]) AS features""",
    "merchant": """UNWIND $ids AS id MATCH (n:Merchant {merchant_id: id})
                   RETURN collect(id) AS id, collect(n.created_at.epochMillis) AS created_at,
                   collect(n.category) AS category""",
    "product": """UNWIND $ids AS id MATCH (n:Product {product_id: id})
                  RETURN collect(id) AS id, collect(n.category) AS category,
                  collect(n.price) AS price""",
    "device": """UNWIND $ids AS id MATCH (n:Device {device_id: id})
                 RETURN collect(id) AS id, collect(n.kind) AS kind,
                 collect(n.first_seen.epochMillis) AS first_seen""",
}
# Edge queries run per chunk of source ids (``$ids``), each id an index seek.
EDGE_QUERIES: dict[str, LiteralString] = {
    schema.ORDERED: """UNWIND $ids AS id MATCH (:User {user_id: id})-[r:ORDERED]->(d:Product)
        RETURN collect(id) AS src, collect(d.product_id) AS dst, collect(r.order_id) AS order_id,
               collect(r.amount) AS amount, collect(r.ts.epochMillis) AS ts,
               collect(r.status) AS status, collect(coalesce(r.device_id, '')) AS device_id""",
    schema.REVIEWED: """UNWIND $ids AS id MATCH (:User {user_id: id})-[r:REVIEWED]->(d:Product)
        RETURN collect(id) AS src, collect(d.product_id) AS dst, collect(r.review_id) AS review_id,
               collect(r.rating) AS rating, collect(r.ts.epochMillis) AS ts,
               collect(r.text) AS text""",
    schema.SOLD_BY: """UNWIND $ids AS id MATCH (:Product {product_id: id})-[:SOLD_BY]->(d:Merchant)
        RETURN collect(id) AS src, collect(d.merchant_id) AS dst""",
    schema.USES: """UNWIND $ids AS id MATCH (:User {user_id: id})-[r:USES]->(d:Device)
        RETURN collect(id) AS src, collect(d.device_id) AS dst, collect(r.logins) AS logins,
               collect(r.first_seen.epochMillis) AS first_seen,
               collect(r.last_seen.epochMillis) AS last_seen""",
}
EDGE_SOURCE = {schema.ORDERED: "user", schema.REVIEWED: "user", schema.SOLD_BY: "product",
               schema.USES: "user"}  # fmt: skip
SOURCE_CHUNK = 20_000
FEATURE_KEYS: LiteralString = """
MATCH (n:User) UNWIND keys(n) AS k WITH DISTINCT k WHERE k STARTS WITH $prefix
RETURN k ORDER BY k
"""
LABELS: LiteralString = """MATCH (l:Label) RETURN collect(l.user_id) AS id,
    collect(coalesce(l.fraud, -1.0)) AS fraud, collect(coalesce(l.default, -1.0)) AS default"""


@dataclass
class GraphExport:
    """The graph as arrays.

    Attributes:
        data: ``HeteroData`` with ``num_nodes`` per node type and ``edge_index`` for every
            relation and its ``rev_`` reverse.
        ids: node type -> bundle ids (object array); position ``i`` is node index ``i``.
        nodes: node type -> raw node properties, rows aligned with ``ids``.
        edges: forward edge type -> raw edge properties with ``src``/``dst`` node indices.
        labels: per user (aligned with ``ids['user']``): ``fraud`` and ``default`` as
            1.0/0.0/NaN (NaN = not observed). Kept apart from the features.
        feature_keys: the bundle's ``feat_*`` columns, in order.
        cutoff_ms: set by :func:`as_of`: nothing after this instant is in the graph.
    """

    data: HeteroData
    ids: dict[str, np.ndarray]
    nodes: dict[str, pd.DataFrame]
    edges: dict[EdgeType, pd.DataFrame]
    labels: pd.DataFrame
    feature_keys: list[str]
    cutoff_ms: int | None = None

    def merchant_of_product(self) -> np.ndarray:
        """Merchant index of every product (-1 when it has none)."""
        sold_by = self.edges[("product", "sold_by", "merchant")]
        out = np.full(len(self.ids["product"]), -1, dtype=np.int64)
        out[sold_by["src"].to_numpy(np.int64)] = sold_by["dst"].to_numpy(np.int64)
        return out

    def index_of(self, node_type: str, ids: np.ndarray | list[str]) -> np.ndarray:
        """Node indices of bundle ids (-1 where unknown)."""
        return np.asarray(pd.Index(self.ids[node_type]).get_indexer(np.asarray(ids, dtype=object)))


def _object_array(values: list[object]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values  # keeps list values (e.g. feature lists) as single cells
    return out


def _frame(columns: dict[str, list[object]]) -> pd.DataFrame:
    return pd.DataFrame({k: _object_array(v) for k, v in columns.items()})


def export_graph(store: GraphStore, chunk: int = SOURCE_CHUNK) -> GraphExport:
    """Read every node, relationship and label out of Neo4j into a :class:`GraphExport`."""
    feature_keys = [
        str(k) for k in store.read_columns(FEATURE_KEYS, prefix=schema.FEATURE_PREFIX).get("k", [])
    ]
    nodes: dict[str, pd.DataFrame] = {}
    for node_type, query in NODE_QUERIES.items():
        ids = store.read_packed(NODE_IDS[node_type])["id"]
        cols = _read_chunked(store, query, ids, chunk, feature_keys=feature_keys)
        features = cols.pop("features", None)
        frame = _frame(cols)
        if node_type == "user":
            frame["country"] = frame["country"].replace({"": None})
            matrix = np.array(features or [], dtype=np.float64).reshape(
                len(frame), len(feature_keys)
            )
            for j, key in enumerate(feature_keys):
                frame[key] = matrix[:, j].astype(np.float32)
        nodes[node_type] = frame
    edges: dict[str, pd.DataFrame] = {}
    for relation in schema.RELATIONS:
        source_ids = nodes[EDGE_SOURCE[relation.rel]]["id"].tolist()
        frame = _frame(_read_chunked(store, EDGE_QUERIES[relation.rel], source_ids, chunk))
        if relation.rel == schema.ORDERED:
            frame["device_id"] = frame["device_id"].replace({"": None})
        edges[relation.rel] = frame
    labels = _frame(store.read_packed(LABELS))
    for key in ("fraud", "default"):
        labels[key] = pd.to_numeric(labels[key]).where(lambda v: v >= 0)
    return assemble(nodes, edges, labels, feature_keys)


def existing_ids(store: GraphStore) -> dict[str, pd.Index]:
    """Bundle ids already in the store per bundle table, so an incremental bundle may reference
    entities loaded by an earlier import."""
    tables = {"user": "users", "merchant": "merchants", "product": "products", "device": "devices"}
    return {
        table: pd.Index(store.read_packed(NODE_IDS[node_type])["id"], dtype=object)
        for node_type, table in tables.items()
    }


def _read_chunked(
    store: GraphStore, query: LiteralString, ids: list[Any], chunk: int, **params: Any
) -> dict[str, list[Any]]:
    """Run a packed ``UNWIND $ids`` query per chunk of ids and concatenate its columns."""
    out: dict[str, list[Any]] = {}
    for start in range(0, max(len(ids), 1), chunk):
        part = store.read_packed(query, ids=ids[start : start + chunk], **params)
        for key, values in part.items():
            out.setdefault(key, []).extend(values)
    return out


def export_from_bundle(bundle: ValidatedBundle) -> GraphExport:
    """The same :class:`GraphExport` straight from a validated bundle, without a database.

    Used to benchmark feature computation at sizes where a Neo4j round trip would dominate,
    and by tests; it shapes the bundle's tables exactly as the Cypher export returns them.
    """
    t = bundle.tables
    users = t["users"].rename(columns={"user_id": "id"})
    users["country"] = users["country"].replace({"": None})
    nodes = {
        "user": users,
        "merchant": t["merchants"].rename(columns={"merchant_id": "id"}),
        "product": t["products"].rename(columns={"product_id": "id"})[["id", "category", "price"]],
        "device": t["devices"].rename(columns={"device_id": "id"}),
    }
    orders = t["orders"].rename(columns={"user_id": "src", "product_id": "dst"})
    orders["device_id"] = orders["device_id"].replace({"": None})
    uses = aggregate_logins(t["logins"]).rename(
        columns={
            "user_id": "src",
            "device_id": "dst",
            "first_ts": "first_seen",
            "last_ts": "last_seen",
        }
    )
    edges = {
        schema.ORDERED: orders,
        schema.REVIEWED: t["reviews"].rename(columns={"user_id": "src", "product_id": "dst"}),
        schema.SOLD_BY: t["products"][["product_id", "merchant_id"]].set_axis(
            ["src", "dst"], axis=1
        ),
        schema.USES: uses,
    }
    labels = t.get("labels", pd.DataFrame({"user_id": [], "fraud": [], "default": []}))
    keys = sorted(bundle.feature_columns)  # the Cypher export lists them sorted too
    return assemble(nodes, edges, labels.rename(columns={"user_id": "id"}), keys)


def assemble(
    nodes: dict[str, pd.DataFrame],
    edges: dict[str, pd.DataFrame],
    labels: pd.DataFrame,
    feature_keys: list[str],
) -> GraphExport:
    """Index nodes by sorted id, map edge endpoints to indices and build the ``HeteroData``.

    Args:
        nodes: node type -> frame with an ``id`` column and raw properties.
        edges: relationship type -> frame with ``src``/``dst`` bundle ids and raw properties.
        labels: frame with ``id``, ``fraud``, ``default`` (None/NaN when unknown).
        feature_keys: the ``feat_*`` columns present on users.
    """
    nodes = {
        nt: frame.sort_values("id", kind="stable").reset_index(drop=True)
        for nt, frame in nodes.items()
    }
    ids = {nt: nodes[nt]["id"].to_numpy(dtype=object) for nt in nodes}
    index = {nt: pd.Index(ids[nt]) for nt in ids}
    frames: dict[EdgeType, pd.DataFrame] = {}
    for relation in schema.RELATIONS:
        frame = edges[relation.rel].copy()
        src_t, _, dst_t = relation.edge_type
        frame["src"] = index[src_t].get_indexer(frame["src"].to_numpy(dtype=object))
        frame["dst"] = index[dst_t].get_indexer(frame["dst"].to_numpy(dtype=object))
        frames[relation.edge_type] = frame.sort_values(["src", "dst"], kind="stable").reset_index(
            drop=True
        )
    n_users = len(ids["user"])
    label_frame = pd.DataFrame(
        {"fraud": np.full(n_users, np.nan), "default": np.full(n_users, np.nan)}
    )
    if len(labels):
        pos = index["user"].get_indexer(labels["id"].to_numpy(dtype=object))
        ok = pos >= 0
        for key in ("fraud", "default"):
            vals = pd.to_numeric(labels[key], errors="coerce").to_numpy(np.float64)
            label_frame.loc[pos[ok], key] = vals[ok]
    return GraphExport(build_data(ids, frames), ids, nodes, frames, label_frame, feature_keys)


def build_data(ids: dict[str, np.ndarray], edges: dict[EdgeType, pd.DataFrame]) -> HeteroData:
    """``HeteroData`` with every relation and its ``rev_`` reverse."""
    data = HeteroData()
    for nt, node_ids in ids.items():
        data[nt].num_nodes = len(node_ids)
    for relation in schema.RELATIONS:
        frame = edges[relation.edge_type]
        edge_index = torch.from_numpy(
            np.stack([frame["src"].to_numpy(np.int64), frame["dst"].to_numpy(np.int64)])
        )
        data[relation.edge_type].edge_index = edge_index
        data[relation.rev_edge_type].edge_index = edge_index.flip(0)
    return data


def as_of(g: GraphExport, cutoff_ms: int) -> GraphExport:
    """The graph as it stood at ``cutoff_ms``: nothing that happened later is visible.

    Orders and reviews after the cutoff are dropped, both from the feature tables and from
    message passing. A user–device link counts from its first login; logins are stored
    aggregated per link, so a link still active after the cutoff counts one login, never
    the later ones. Nodes stay (a user created later has empty history) so indices and
    ids are unchanged.
    """
    edges = dict(g.edges)
    for et, col in (
        (("user", "ordered", "product"), "ts"),
        (("user", "reviewed", "product"), "ts"),
    ):
        frame = edges[et]
        keep = pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64) <= cutoff_ms
        edges[et] = frame[keep].reset_index(drop=True)
    uses = edges[("user", "uses", "device")]
    first = pd.to_numeric(uses["first_seen"], errors="coerce").to_numpy(np.float64)
    last = pd.to_numeric(uses["last_seen"], errors="coerce").to_numpy(np.float64)
    uses = uses[first <= cutoff_ms].copy()
    spans_cutoff = last[first <= cutoff_ms] > cutoff_ms
    uses.loc[spans_cutoff, "logins"] = 1
    uses.loc[spans_cutoff, "last_seen"] = cutoff_ms
    edges[("user", "uses", "device")] = uses.reset_index(drop=True)
    return GraphExport(
        build_data(g.ids, edges), g.ids, g.nodes, edges, g.labels, g.feature_keys, cutoff_ms
    )
