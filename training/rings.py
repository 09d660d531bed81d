"""Fraud-ring detection: groups of risky accounts tied together by shared devices or copied reviews.

A bipartite graph links each risky user to the devices it uses (devices shared by at most
``max_device_users`` accounts: a library PC is not a ring) and each user to the merchants on
which it wrote five-star reviews that are near-duplicates of other reviews there. Connected
components (scipy, linear time) are candidate rings; components too large to be one ring are
split into communities with networkx's Louvain method. Households share devices too, but their
members score low, so they are not linked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from graph.export import GraphExport


@dataclass(frozen=True)
class RingConfig:
    min_size: int = 3
    risk_threshold: float = 0.5
    max_device_users: int = 60
    max_ring_size: int = 80
    min_risky_share: float = 0.5  # of a device's users, for the device to link them
    seed: int = 0


@dataclass
class Rings:
    """Detected rings: one row per ring and one per (ring, member)."""

    rings: pd.DataFrame  # ring_id, size, score, kind
    members: pd.DataFrame  # ring_id, user_id


def _link_edges(
    g: GraphExport, risk: np.ndarray, near_dups: np.ndarray | None, cfg: RingConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user index, hub index, hub kind) pairs; hubs are devices then merchants, offset."""
    n_dev = len(g.ids["device"])
    risky = risk >= cfg.risk_threshold
    uses = g.edges[("user", "uses", "device")]
    u = uses["src"].to_numpy(np.int64)
    d = uses["dst"].to_numpy(np.int64)
    users_on = np.bincount(d, minlength=n_dev)
    risky_on = np.bincount(d, weights=risky[u], minlength=n_dev)
    # A device binds a ring only when most of its users are risky: a farm device is shared by
    # its ring alone, while a café PC with two risky visitors would otherwise merge two rings.
    mostly_risky = risky_on >= cfg.min_risky_share * users_on
    keep = risky[u] & (users_on[d] >= 2) & (users_on[d] <= cfg.max_device_users) & mostly_risky[d]
    users, hubs, kinds = [u[keep]], [d[keep]], [np.zeros(int(keep.sum()), dtype=np.int8)]
    if near_dups is not None and len(near_dups):
        reviews = g.edges[("user", "reviewed", "product")]
        merchant_of = g.merchant_of_product()
        ru = reviews["src"].to_numpy(np.int64)
        rm = merchant_of[reviews["dst"].to_numpy(np.int64)]
        rating = pd.to_numeric(reviews["rating"], errors="coerce").fillna(0).to_numpy()
        # Copied reviews bind a ring even when the model is unsure of a member: require both a
        # near-duplicate cluster (>= 2 others) and a risky-looking author or a five-star rating.
        collusive = (
            (near_dups >= 2) & (rm >= 0) & (rating == 5) & (risk[ru] >= cfg.risk_threshold / 2)
        )
        users.append(ru[collusive])
        hubs.append(n_dev + rm[collusive])
        kinds.append(np.ones(int(collusive.sum()), dtype=np.int8))
    return np.concatenate(users), np.concatenate(hubs), np.concatenate(kinds)


def detect_rings(
    g: GraphExport,
    risk: np.ndarray,
    near_dups: np.ndarray | None = None,
    cfg: RingConfig | None = None,
) -> Rings:
    """Find rings; ``risk`` is the calibrated fraud probability per user.

    Device rings come first, from shared devices alone. Review rings come from the merchants
    their members boost, among users not already in a device ring: a popular merchant that
    members of two device farms happen to review must not merge the farms into one ring.
    """
    cfg = cfg or RingConfig()
    users, hubs, kinds = _link_edges(g, risk, near_dups, cfg)
    ring_rows: list[tuple[str, int, float, str]] = []
    member_rows: list[tuple[str, str]] = []
    in_ring = np.zeros(len(g.ids["user"]), dtype=bool)
    for kind, code in (("device", 0), ("review", 1)):
        mask = (kinds == code) & ~in_ring[users]
        for part in _components(g, users[mask], hubs[mask], cfg):
            member_ids = np.sort(g.ids["user"][part])
            ring_id = "ring-" + hashlib.sha1("|".join(member_ids).encode()).hexdigest()[:12]
            ring_rows.append((ring_id, len(part), float(np.mean(risk[part])), kind))
            member_rows.extend((ring_id, uid) for uid in member_ids)
            in_ring[part] = True
    rings = pd.DataFrame(ring_rows, columns=["ring_id", "size", "score", "kind"])
    rings = rings.sort_values("score", ascending=False).reset_index(drop=True)
    return Rings(rings, pd.DataFrame(member_rows, columns=["ring_id", "user_id"]))


def _components(
    g: GraphExport, users: np.ndarray, hubs: np.ndarray, cfg: RingConfig
) -> list[np.ndarray]:
    """User index arrays of the connected components (Louvain-split when too large)."""
    n_users = len(g.ids["user"])
    n = n_users + len(g.ids["device"]) + len(g.ids["merchant"])
    adj = sp.coo_matrix((np.ones(len(users)), (users, n_users + hubs)), shape=(n, n)).tocsr()
    _, comp = connected_components(adj, directed=False)
    linked = np.zeros(n_users, dtype=bool)
    linked[users] = True
    groups = pd.DataFrame({"user": np.flatnonzero(linked), "comp": comp[:n_users][linked]})
    out: list[np.ndarray] = []
    for _, members in groups.groupby("comp")["user"]:
        parts = [members.to_numpy()]
        if len(members) > cfg.max_ring_size:
            parts = _split(members.to_numpy(), users, hubs, cfg.seed)
        out.extend(part for part in parts if len(part) >= cfg.min_size)
    return out


def _split(members: np.ndarray, users: np.ndarray, hubs: np.ndarray, seed: int) -> list[np.ndarray]:
    """Louvain communities of an over-large component (user–hub bipartite graph)."""
    mask = np.isin(users, members)
    graph = nx.Graph()
    graph.add_edges_from(zip(users[mask].tolist(), (-1 - hubs[mask]).tolist(), strict=True))
    communities = nx.community.louvain_communities(graph, seed=seed)
    return [np.array(sorted(x for x in c if x >= 0), dtype=np.int64) for c in communities]


def match_planted(
    detected: pd.DataFrame, planted: pd.DataFrame, min_jaccard: float = 0.5
) -> dict[str, float]:
    """Precision/recall of detected rings against planted ones (a match has Jaccard >= 0.5)."""
    det = {k: set(v) for k, v in detected.groupby("ring_id")["user_id"]}
    truth = {k: set(v) for k, v in planted.groupby("ring_id")["user_id"]}

    def best(a: set[str], pool: dict[str, set[str]]) -> float:
        return max((len(a & b) / len(a | b) for b in pool.values()), default=0.0)

    found = sum(best(t, det) >= min_jaccard for t in truth.values())
    correct = sum(best(d, truth) >= min_jaccard for d in det.values())
    return {
        "planted": float(len(truth)),
        "detected": float(len(det)),
        "found": float(found),
        "recall": found / len(truth) if truth else float("nan"),
        "precision": correct / len(det) if det else float("nan"),
    }
