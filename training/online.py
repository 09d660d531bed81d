"""Score one user online from the last run's neighbour states ("historical embeddings").

A full-graph pass costs seconds; a checkout needs milliseconds. The model's user output
after layer ``l + 1`` depends only on the user's own state after layer ``l`` and its
neighbours' (products through orders and reviews, devices through logins). So a
:class:`StateSnapshot` keeps, per fold model, every product's and device's state entering
each layer, computed by one full-graph pass over the graph as it was loaded; a request then
recomputes only the user's own column: its fresh input features, then each layer from its
own state and the stored states of its current neighbours (a ``training.blocks`` block of
one destination, so mean and max see the same messages as in the full pass).

Exact for an unchanged graph (equal to batch scoring up to float summation order; tested
within 1e-4). After new events the user's own features, edges and edge attributes are
current, while its neighbours' states stay as of the snapshot until the next refresh: a new
order's product does not yet "know" about this user's other activity. A neighbour created
after the snapshot (a new device) has no stored state; its edges then carry no message
(``Online.unknown_neighbours`` counts them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv

from encoders.behaviour import reference_time
from encoders.features import NodeFeatures
from encoders.user_events import (
    UserEvents,
    edge_attribute_rows,
    events_from_export,
    user_feature_values,
)
from graph.export import GraphExport
from training.artifact import ModelArtifact
from training.blocks import Block, block_layer, blocked_layer, blocks, relations
from training.fit import INFERENCE_MAX_EDGES
from training.inputs import label_inputs
from training.model import HeteroRiskGNN, RiskEnsemble
from training.online_stack import Stack, stack_members, stacked_logits

EdgeType = tuple[str, str, str]
NEIGHBOUR_TYPES = ("product", "device")  # the user's neighbours over every relation


def members_of(artifact: ModelArtifact) -> list[HeteroRiskGNN]:
    model = artifact.model
    return list(model.members) if isinstance(model, RiskEnsemble) else [model]  # type: ignore[arg-type]


@dataclass
class StateSnapshot:
    """Neighbour states entering each layer, per fold model, and the user-side inputs."""

    now_ms: int
    index: dict[str, pd.Index]  # node type -> bundle ids (row order of the states)
    states: list[dict[str, Tensor]]  # [layer][node type] -> (members, nodes, hidden)
    user_index: pd.Index
    user_text: pd.DataFrame  # text_* scalar columns per user (may have no columns)
    user_embedding: np.ndarray  # (users, dim) mean review embedding, or (users, 0)
    full_logits: dict[str, np.ndarray]  # the snapshot's own full-graph logits, per user
    stack: Stack | None = None  # the members stacked (None: the reference path is used)

    def __post_init__(self) -> None:
        # per-request lookups without building an Index: id -> row, and the text columns
        self.positions = {nt: {k: i for i, k in enumerate(idx)} for nt, idx in
                          [*self.index.items(), ("user", self.user_index)]}  # fmt: skip
        self.text_values = self.user_text.to_numpy(np.float64)


def take_snapshot(
    artifact: ModelArtifact, g: GraphExport, features: NodeFeatures, data: HeteroData
) -> StateSnapshot:
    """One full-graph pass over ``data`` (built as ``training.predict.score_users`` builds it)
    keeping the products' and devices' states before each layer; the stacked path is set
    when it reproduces that pass (:func:`check_stack`)."""
    snap = _full_pass(artifact, g, features, data)
    snap.stack = check_stack(artifact, snap, g)
    return snap


@torch.inference_mode()
def _full_pass(
    artifact: ModelArtifact, g: GraphExport, features: NodeFeatures, data: HeteroData
) -> StateSnapshot:
    sizes = {nt: int(data[nt].x.size(0)) for nt in data.node_types}
    rels = relations(data.edge_index_dict, data.edge_attr_dict, sizes)
    per_member: list[list[dict[str, Tensor]]] = []
    logits: list[dict[str, Tensor]] = []
    for member in members_of(artifact):
        member.eval()
        h0 = {nt: member.project[nt](x) for nt, x in data.x_dict.items()}
        h, per_layer = h0, []
        for conv, norms in zip(member.convs, member.norms, strict=True):
            per_layer.append({nt: h[nt].clone() for nt in NEIGHBOUR_TYPES})
            assert isinstance(conv, HeteroConv)
            h = blocked_layer(conv, norms, member.dropout, h, rels,  # type: ignore[arg-type]
                              blocks(rels, sizes, INFERENCE_MAX_EDGES))  # fmt: skip
        per_member.append(per_layer)
        user = torch.cat([h0["user"], h["user"]], dim=-1)
        logits.append({"fraud": member.fraud_head(user).squeeze(-1),
                       "default": member.default_head(user).squeeze(-1)})  # fmt: skip
    full = {k: torch.stack([o[k] for o in logits]).mean(0).numpy() for k in ("fraud", "default")}
    text_cols = [c for c in features.scalars["user"].columns if c.startswith("text_")]
    emb = features.embeddings.get("user", np.zeros((len(g.ids["user"]), 0), np.float32))
    states = [
        {nt: torch.stack([m[layer][nt] for m in per_member]) for nt in NEIGHBOUR_TYPES}
        for layer in range(len(per_member[0]))
    ]  # stacked once: the reference path reads member m's slice, the stacked path all
    del per_member
    return StateSnapshot(
        now_ms=reference_time(g),
        index={nt: pd.Index(g.ids[nt]) for nt in NEIGHBOUR_TYPES},
        states=states,
        user_index=pd.Index(g.ids["user"]),
        user_text=features.scalars["user"][text_cols].reset_index(drop=True),
        user_embedding=emb,
        full_logits=full,
    )


@dataclass
class Online:
    """One user's online result: raw logits and what the reasons need."""

    logits: dict[str, float]
    attributions: np.ndarray  # gradient × input over the user's scalar features
    raw: pd.Series  # the user's raw scalar feature values
    unknown_neighbours: int


def user_inputs(
    artifact: ModelArtifact, snap: StateSnapshot, local: GraphExport, user_id: str,
    fraud_label: float,
) -> tuple[np.ndarray, pd.Series]:  # fmt: skip
    """The user's model input row (scaled scalars, embedding, label inputs) and raw scalars."""
    from encoders.behaviour import user_features

    scalars = user_features(local).iloc[[0]].reset_index(drop=True)
    pos = int(snap.user_index.get_indexer([user_id])[0])
    for col in snap.user_text.columns:
        scalars[col] = snap.user_text[col].iloc[pos] if pos >= 0 else 0.0
    names = artifact.feature_names["user"]
    scaled = artifact.normaliser.scalers["user"].transform(scalars)
    dim = snap.user_embedding.shape[1]
    emb = snap.user_embedding[pos : pos + 1] if pos >= 0 else np.zeros((1, dim), np.float32)
    shown = np.array([0]) if artifact.config["train"].get("label_trick") else np.zeros(0, int)
    labels = label_inputs(
        np.array([fraud_label]), shown if not np.isnan(fraud_label) else shown[:0]
    )
    row = np.hstack([scaled, emb.astype(np.float32), labels]).astype(np.float32)
    return row, scalars[names].iloc[0]


def score_online(
    artifact: ModelArtifact, snap: StateSnapshot, local: GraphExport, user_id: str,
    fraud_label: float,
) -> Online:  # fmt: skip
    """Recompute user 0 of ``local`` through every layer against the stored neighbour states."""
    from encoders.edge_features import edge_attributes

    local.cutoff_ms = max(snap.now_ms, _latest(local))
    row, raw = user_inputs(artifact, snap, local, user_id, fraud_label)
    attrs = edge_attributes(local)
    x = torch.from_numpy(row).requires_grad_(True)
    edge_types = [(str(a), str(b), str(c)) for a, b, c in artifact.config["edge_types"]]
    block, unknown = _block(edge_types, local, attrs, snap)
    fraud, default = [], []
    for m, member in enumerate(members_of(artifact)):  # in eval mode since take_snapshot
        h0 = member.project["user"](x)
        h = h0
        for layer, (conv, norms) in enumerate(zip(member.convs, member.norms, strict=True)):
            assert isinstance(conv, HeteroConv)
            sources = [snap.states[layer][et[0]][m][ids] for et, ids in
                       zip(block.edge_types, block.sources, strict=True)]  # fmt: skip
            h = block_layer(conv, norms, member.dropout, block, h, sources)  # type: ignore[arg-type]
        user = torch.cat([h0, h], dim=-1)
        fraud.append(member.fraud_head(user).squeeze(-1))
        default.append(member.default_head(user).squeeze(-1))
    fraud_logit = torch.stack(fraud).mean()
    (grad,) = torch.autograd.grad(fraud_logit, x)
    n = len(artifact.feature_names["user"])
    attribution = (grad * x).detach()[0, :n].numpy()
    logits = {
        "fraud": float(fraud_logit.detach()),
        "default": float(torch.stack(default).mean().detach()),
    }
    return Online(logits, attribution, raw, unknown)


def _latest(local: GraphExport) -> int:
    """Only the scored user's own events and creation move the reference time forward."""
    ts = local.edges[("user", "ordered", "product")]
    own = ts["ts"].to_numpy(np.int64)[ts["src"].to_numpy(np.int64) == 0]
    created = int(local.nodes["user"]["created_at"].iloc[0] or 0)
    return int(max(own.max(initial=0), created))


def _block(
    edge_types: list[EdgeType], local: GraphExport, attrs: dict[EdgeType, np.ndarray],
    snap: StateSnapshot,
) -> tuple[Block, int]:  # fmt: skip
    """A one-destination block for user 0: every relation into users, its edges from the
    stored neighbour states (edges to neighbours without a stored state left out)."""
    kept: list[EdgeType] = []
    sources: list[Tensor] = []
    edge_index: list[Tensor] = []
    attr: list[Tensor | None] = []
    missing = 0
    for et in edge_types:
        src_type, rel, dst_type = et
        if dst_type != "user" or not rel.startswith("rev_"):
            continue
        forward = (dst_type, rel[4:], src_type)
        frame = local.edges[forward]
        own = frame["src"].to_numpy(np.int64) == 0
        ids = local.ids[src_type][frame["dst"].to_numpy(np.int64)[own]]
        pos = snap.index[src_type].get_indexer(ids)
        ok = pos >= 0
        missing += int((~ok).sum())
        kept.append(et)
        sources.append(torch.from_numpy(pos[ok].astype(np.int64)))
        k = int(ok.sum())
        edge_index.append(torch.stack([torch.arange(k), torch.zeros(k, dtype=torch.long)]))
        a = attrs.get(et)
        attr.append(None if a is None else torch.from_numpy(a[own][ok]))
    return Block("user", 0, 1, kept, sources, edge_index, attr), missing


CHECK_USERS = 8  # users of the snapshot's graph the stacked path is checked on
CHECK_TOLERANCE = 1e-4  # largest |stacked - full-graph| logit accepted


def check_stack(artifact: ModelArtifact, snap: StateSnapshot, g: GraphExport) -> Stack | None:
    """The stacked members if they reproduce the full pass's logits on the graph's busiest
    users (features from their own events, as online); None (reference path) otherwise."""
    import logging

    edge_types = [(str(a), str(b), str(c)) for a, b, c in artifact.config["edge_types"]]
    stack = stack_members(members_of(artifact), edge_types)
    log = logging.getLogger("riskgraph.online")
    if stack is None:
        log.warning("model not of the stacked path's kind: online scoring uses the reference path")
        return None
    src = g.edges[("user", "ordered", "product")]["src"].to_numpy(np.int64)
    busy = np.argsort(-np.bincount(src, minlength=len(g.ids["user"])), kind="stable")
    labels = g.labels["fraud"].to_numpy(np.float64)
    snap.stack = stack
    worst = 0.0
    for user in busy[:CHECK_USERS]:
        ev = events_from_export(g, int(user))
        got = score_user(artifact, snap, ev, str(g.ids["user"][user]), float(labels[user]))
        worst = max(worst, abs(got.logits["fraud"] - float(snap.full_logits["fraud"][user])),
                    abs(got.logits["default"] - float(snap.full_logits["default"][user])))  # fmt: skip
    snap.stack = None
    if worst > CHECK_TOLERANCE:
        log.warning("stacked online path off the full pass by %.2e: reference path used", worst)
        return None
    return stack


def event_inputs(
    artifact: ModelArtifact, snap: StateSnapshot, ev: UserEvents, user_id: str, now: int,
    fraud_label: float,
) -> tuple[np.ndarray, pd.Series]:  # fmt: skip
    """:func:`user_inputs` from the user's own events (no local graph, no frames but one row)."""
    values = user_feature_values(ev, now)
    pos = snap.positions["user"].get(user_id, -1)
    for j, col in enumerate(snap.user_text.columns):
        values[col] = float(snap.text_values[pos, j]) if pos >= 0 else 0.0
    names = artifact.feature_names["user"]
    scaler = artifact.normaliser.scalers["user"]
    raw_in = np.array([[values.get(c, np.nan) for c in scaler.columns]], dtype=np.float64)
    signed = np.sign(raw_in) * np.log1p(np.abs(raw_in))  # ColumnScaler.transform, one row
    scaled = np.nan_to_num((signed - scaler.mean) / scaler.std, nan=0.0, posinf=0.0, neginf=0.0)
    dim = snap.user_embedding.shape[1]
    emb = snap.user_embedding[pos : pos + 1] if pos >= 0 else np.zeros((1, dim), np.float32)
    shown = np.array([0]) if artifact.config["train"].get("label_trick") else np.zeros(0, int)
    labels = label_inputs(
        np.array([fraud_label]), shown if not np.isnan(fraud_label) else shown[:0]
    )
    row = np.hstack([scaled.astype(np.float32), emb.astype(np.float32), labels])
    return row[0].astype(np.float32), pd.Series([values.get(n, np.nan) for n in names], index=names)


def score_user(
    artifact: ModelArtifact, snap: StateSnapshot, ev: UserEvents, user_id: str,
    fraud_label: float,
) -> Online:  # fmt: skip
    """The user's logits and reasons' attributions from its own events, all members at once
    (``training.online_stack``); equal to :func:`score_online` on the same neighbourhood."""
    assert snap.stack is not None
    now = max(snap.now_ms, ev.latest_ms)
    row, raw = event_inputs(artifact, snap, ev, user_id, now, fraud_label)
    attrs = edge_attribute_rows(ev, now)
    own = {"ordered": ev.order_product, "reviewed": ev.review_product, "uses": ev.device_id}
    sources: dict[EdgeType, tuple[Tensor, Tensor | None]] = {}
    missing = 0
    for rels in snap.stack.layers[:1]:
        for rel in rels:
            src_type, name, _ = rel.edge_type
            forward = name[4:]
            where = snap.positions[src_type]
            pos = np.fromiter((where.get(i, -1) for i in own[forward]), np.int64, len(own[forward]))
            ok = pos >= 0
            missing += int((~ok).sum())
            sources[rel.edge_type] = (torch.from_numpy(pos[ok].astype(np.int64)),
                                      torch.from_numpy(attrs[forward][ok]))  # fmt: skip
    x = torch.from_numpy(row).requires_grad_(True)
    with torch.enable_grad():
        logits = stacked_logits(snap.stack, snap.states, x, sources)
        fraud = logits["fraud"].mean()
        (grad,) = torch.autograd.grad(fraud, x)
    n = len(artifact.feature_names["user"])
    attribution = (grad * x).detach()[:n].numpy()
    out = {"fraud": float(fraud.detach()), "default": float(logits["default"].detach().mean())}
    return Online(out, attribution, raw, missing)
