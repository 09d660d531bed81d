"""The marketplace graph as arrays: ``GraphExport`` and the views taken of it.

``GraphExport`` is what every later stage reads: node ids and properties, relationships with
``src``/``dst`` node indices, labels kept apart from features, and the PyG ``HeteroData``.
``graph.neo4j.reader`` fills it from Neo4j; :func:`export_from_bundle` fills it straight from a
validated bundle (benchmarks and tests); :func:`as_of` cuts it at an instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from graph import schema
from graph.bundle import ValidatedBundle, aggregate_logins
from graph.schema import EdgeType

if TYPE_CHECKING:  # torch and PyG load only when a graph is built: `riskgraph import` needs neither
    from torch_geometric.data import HeteroData

LABEL_COLUMNS = ("fraud", "default", "observed_at")


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
        sold_by = self.edges[schema.SOLD_BY_EDGE]
        out = np.full(len(self.ids["product"]), -1, dtype=np.int64)
        out[sold_by["src"].to_numpy(np.int64)] = sold_by["dst"].to_numpy(np.int64)
        return out

    def index_of(self, node_type: str, ids: np.ndarray | list[str]) -> np.ndarray:
        """Node indices of bundle ids (-1 where unknown)."""
        return np.asarray(pd.Index(self.ids[node_type]).get_indexer(np.asarray(ids, dtype=object)))


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
    # as the Cypher export returns it: Arrow-backed ``str``, blank = missing (ten million
    # Python strings would cost ~1.4 GB and a slow conversion in every Arrow kernel after)
    device = orders["device_id"].astype("str")
    orders["device_id"] = device.where(device != "")
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
    label_frame = user_labels(index["user"], labels)
    return GraphExport(build_data(ids, frames), ids, nodes, frames, label_frame, feature_keys)


def user_labels(users: pd.Index, labels: pd.DataFrame) -> pd.DataFrame:
    """``fraud``/``default`` per user (aligned with ``users``), NaN where not observed, and
    ``observed_at`` (epoch ms; NaN where the bundle did not say when the outcome became known)."""
    n_users = len(users)
    label_frame = pd.DataFrame({key: np.full(n_users, np.nan) for key in LABEL_COLUMNS})
    if len(labels):
        pos = users.get_indexer(labels["id"].to_numpy(dtype=object))
        ok = pos >= 0
        for key in (k for k in LABEL_COLUMNS if k in labels):
            vals = pd.to_numeric(labels[key], errors="coerce").to_numpy(np.float64)
            label_frame.loc[pos[ok], key] = vals[ok]
    return label_frame


def build_data(ids: dict[str, np.ndarray], edges: dict[EdgeType, pd.DataFrame]) -> HeteroData:
    """``HeteroData`` with every relation and its ``rev_`` reverse."""
    import torch
    from torch_geometric.data import HeteroData

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
    ids are unchanged. Labels are those known at the cutoff (:func:`labels_known_at`).
    """
    edges = dict(g.edges)
    for et, col in (
        (schema.ORDERED_EDGE, "ts"),
        (schema.REVIEWED_EDGE, "ts"),
    ):
        frame = edges[et]
        keep = pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64) <= cutoff_ms
        edges[et] = frame[keep].reset_index(drop=True)
    uses = edges[schema.USES_EDGE]
    first = pd.to_numeric(uses["first_seen"], errors="coerce").to_numpy(np.float64)
    last = pd.to_numeric(uses["last_seen"], errors="coerce").to_numpy(np.float64)
    uses = uses[first <= cutoff_ms].copy()
    spans_cutoff = last[first <= cutoff_ms] > cutoff_ms
    uses.loc[spans_cutoff, "logins"] = 1
    uses.loc[spans_cutoff, "last_seen"] = cutoff_ms
    edges[schema.USES_EDGE] = uses.reset_index(drop=True)
    return GraphExport(
        build_data(g.ids, edges), g.ids, g.nodes, edges, labels_known_at(g, cutoff_ms),
        g.feature_keys, cutoff_ms,
    )  # fmt: skip


def labels_known_at(g: GraphExport, cutoff_ms: int) -> pd.DataFrame:
    """The labels as they were known at ``cutoff_ms``: a label counts from its ``observed_at``,
    or, where the bundle did not give one, from its account's creation (which flatters a
    backtest: a chargeback arrives weeks after the account opens); later ones become NaN."""
    created = pd.to_numeric(g.nodes["user"]["created_at"], errors="coerce").to_numpy(np.float64)
    observed = g.labels["observed_at"].to_numpy(np.float64)
    known_from = np.where(np.isnan(observed), created, observed)
    labels = g.labels.copy()
    labels.loc[~(known_from <= cutoff_ms), ["fraud", "default"]] = np.nan
    return labels
