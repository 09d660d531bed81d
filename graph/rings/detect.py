"""From evidence links to rings an investigator can work with.

``detect_rings`` takes the graph, a risk array and (optionally) per-review copy groups; it
imports nothing from the model side, so any risk score can drive it. GNN risk ranks and
prunes: only accounts at or above the member floor form a ring's core, and hubs count by how
risky their accounts are (see :mod:`graph.rings.linkage`); a core then takes in the accounts
its repeated synchronised activity vouches for, whatever their risk (:mod:`graph.rings.vouch`).

One kind of ring is found without risk: a review farm, whose accounts each post the same
text several times at one merchant. Chargebacks and refunds, where labels come from, never
mark such accounts, so a label-trained risk score cannot support them; the copying itself is
the evidence (:func:`copy_rings`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import comb

import numpy as np
import pandas as pd
import scipy.sparse as sp

from graph import schema
from graph.export import GraphExport
from graph.rings.chance import core_chance
from graph.rings.communities import densities, split_groups
from graph.rings.config import RingConfig
from graph.rings.dense import column_weights, dense_blocks
from graph.rings.linkage import MS, Links, _hub_codes, _ms, build_links
from graph.rings.vouch import merge_cores, vouched

DAY_MS = 86_400 * MS


@dataclass
class Rings:
    """Detected rings.

    Attributes:
        rings: one row per ring: ``group`` (position), size, density, risk_mean, risk_max,
            exposure_amount, chargeback_amount (last 30 days), evidence_<kind> counts, method.
        members: ``group``, ``user_id``, ``user`` (index).
        centres: ``group``, ``kind`` (device or merchant), ``id``, ``members`` (how many use it).
        links: the evidence linkage the rings were cut from.
        as_of_ms: the graph's clock (latest event), used for exposure and first/last seen.
    """

    rings: pd.DataFrame
    members: pd.DataFrame
    centres: pd.DataFrame
    links: Links
    as_of_ms: int
    timings: dict[str, float] = field(default_factory=dict)


def as_of(g: GraphExport) -> int:
    """The latest event time in the graph (ms): the clock a run's rings are stamped with."""
    stamps = [_ms(g.edges[schema.ORDERED_EDGE]["ts"]),
              _ms(g.edges[schema.REVIEWED_EDGE]["ts"]),
              _ms(g.edges[schema.USES_EDGE]["last_seen"])]  # fmt: skip
    return int(max((s.max() for s in stamps if len(s)), default=0))


def ring_groups(links: Links, risk: np.ndarray, n_users: int, cfg: RingConfig) -> list[np.ndarray]:
    """Community rings: Leiden-split components of the risky, purity-weighted link graph (the
    cores), cores that act as one joined, the accounts each core vouches for added, and what
    chance explains dropped."""
    floor = cfg.risk_threshold if cfg.member_floor is None else cfg.member_floor
    risky = risk >= floor
    keep = risky[links.src] & risky[links.dst] & (links.ring_weight >= cfg.min_link_weight)
    groups = split_groups(
        links.src[keep], links.dst[keep], links.ring_weight[keep], n_users,
        cfg.max_size, cfg.resolution, cfg.seed, objective=cfg.objective,
    )  # fmt: skip
    # the risk gate looks at the core (the risky community); vouched members only add to it
    cores = [
        grp for grp in groups
        if len(grp) >= 2 and risk[grp].mean() >= cfg.ring_min_risk
        and (risk[grp] >= cfg.risk_threshold).any()
    ]  # fmt: skip
    if cfg.merge_cores:
        cores = merge_cores(cores, links.sync_hubs, links.sync_merchant, n_users, cfg)
    extra = vouched(cores, links.sync_hubs, links.sync_merchant, n_users, cfg)
    rings = [np.union1d(core, more) for core, more in zip(cores, extra, strict=True)]
    return _beyond_chance([grp for grp in rings if len(grp) >= cfg.min_size], links, risk, cfg)


def _beyond_chance(
    cores: list[np.ndarray], links: Links, risk: np.ndarray, cfg: RingConfig
) -> list[np.ndarray]:
    """Rings (cores with the partners they vouched for) that a shared device binds, and rings
    whose co-activity chance does not explain (:func:`graph.rings.chance.core_chance` <=
    ``core_chance``, counting as tests every group of ``min_size`` accounts that could form a
    core: the more candidates, the more a ring has to show, which is what keeps a large
    marketplace's chance triples out). Tested whole, after vouching: a ring's evidence is all
    its members acting together, and a core alone is often only part of its ring."""
    hubs, merchant, window = links.sync_hubs, links.sync_merchant, links.sync_window
    if cfg.core_chance <= 0 or hubs is None or merchant is None or window is None or not cores:
        return cores
    core_of = np.full(len(risk), -1, dtype=np.int64)
    core_of[np.concatenate(cores)] = np.repeat(np.arange(len(cores)), [len(c) for c in cores])
    bound = np.zeros(len(cores), dtype=bool)
    inside = (core_of[links.src] >= 0) & (core_of[links.src] == core_of[links.dst])
    hit = inside & (links.by_kind.get("device", np.zeros(len(links))) > 0)
    bound[core_of[links.src[hit]]] = True
    crowd = np.asarray(hubs.sum(axis=0)).ravel()
    usable = (crowd >= 2) & (crowd <= cfg.max_hub_users)
    # any min_size accounts that could form a core might have been this co-active by luck
    floor = cfg.risk_threshold if cfg.member_floor is None else cfg.member_floor
    tests = comb(int((risk >= floor).sum()), cfg.min_size)
    chance = core_chance(cores, hubs, merchant, window, usable, float(tests))
    return [c for c, ok in zip(cores, bound | (chance <= cfg.core_chance), strict=True) if ok]


def block_groups(g: GraphExport, risk: np.ndarray, cfg: RingConfig) -> list[np.ndarray]:
    """FRAUDAR blocks over risky users x (merchant, window) with camouflage-resistant columns."""
    orders = g.edges[schema.ORDERED_EDGE]
    reviews = g.edges[schema.REVIEWED_EDGE]
    merchant_of = g.merchant_of_product()
    user = np.concatenate([orders["src"].to_numpy(np.int64), reviews["src"].to_numpy(np.int64)])
    merchant = merchant_of[
        np.concatenate([orders["dst"].to_numpy(np.int64), reviews["dst"].to_numpy(np.int64)])
    ]
    ts = np.concatenate([_ms(orders["ts"]), _ms(reviews["ts"])])
    ok = (merchant >= 0) & (ts >= 0)
    cell = _hub_codes(merchant[ok], ts[ok] // (cfg.sync_window_s * MS))
    user = user[ok]
    n_cells = int(cell.max()) + 1 if len(cell) else 0
    binary = sp.csr_matrix((np.ones(len(user)), (user, cell)), shape=(len(risk), n_cells))
    binary.data[:] = 1.0
    binary.sum_duplicates()
    binary.data[:] = 1.0
    degree_all = np.asarray(binary.sum(axis=0)).ravel()
    risky = np.flatnonzero(risk >= cfg.risk_threshold)
    sub = binary[risky] @ sp.diags(column_weights(degree_all))
    # a cell touched by one risky account cannot bind anyone: drop it before peeling
    shared = np.asarray((binary[risky] != 0).sum(axis=0)).ravel() >= 2
    sub = sub.tocsc()[:, np.flatnonzero(shared)].tocsr()
    blocks = dense_blocks(sub, cfg.min_size, min_density=1.0)
    return [risky[b] for b in blocks]


def copy_rings(g: GraphExport, copy_groups: np.ndarray | None, cfg: RingConfig) -> list[np.ndarray]:
    """Authors of one copy group who post its text repeatedly: a review farm.

    A group qualifies when it has ``min_size`` to ``max_size`` distinct authors and they post
    on average at least ``copy_repeat`` of its copies each. Customers who happen to write
    the same short praise post it once each (their mean is 1.0, however many they are).
    """
    if copy_groups is None or cfg.copy_repeat <= 0 or not (copy_groups >= 0).any():
        return []
    reviews = g.edges[("user", "reviewed", "product")]
    if len(copy_groups) != len(reviews):
        return []
    copied = copy_groups >= 0
    frame = pd.DataFrame({"c": copy_groups[copied], "u": reviews["src"].to_numpy(np.int64)[copied]})
    stats = frame.groupby("c")["u"].agg(["nunique", "size"])
    ok = (
        (stats["nunique"] >= cfg.min_size)
        & (stats["nunique"] <= cfg.max_size)
        & (stats["size"] >= cfg.copy_repeat * stats["nunique"])
    )
    chosen = frame[frame["c"].isin(stats.index[ok])].drop_duplicates()
    return [np.sort(grp["u"].to_numpy(np.int64)) for _, grp in chosen.groupby("c", sort=True)]


def combine(
    found: list[tuple[str, list[np.ndarray]]], n_users: int, min_size: int
) -> tuple[list[np.ndarray], list[str]]:
    """Communities first; a later method's group adds its members that no ring holds yet."""
    taken = np.zeros(n_users, dtype=bool)
    out, methods = [], []
    for method, groups in found:
        for grp in groups:
            rest = grp[~taken[grp]]
            if method == "communities" or (len(rest) >= min_size and len(rest) >= len(grp) / 2):
                out.append(np.sort(rest))
                methods.append(method)
                taken[rest] = True
    return out, methods


def detect_rings(
    g: GraphExport,
    risk: np.ndarray,
    copy_groups: np.ndarray | None = None,
    cfg: RingConfig | None = None,
) -> Rings:
    """Rings from evidence linkage, pruned and ranked by ``risk`` (one value per user), plus
    review farms found by their copied text (``copy_groups``: per review, its copy group)."""
    import time

    cfg = cfg or RingConfig()
    risk = np.asarray(risk, dtype=np.float64)
    n_users = len(g.ids["user"])
    timings: dict[str, float] = {}
    started = time.perf_counter()
    links = build_links(g, risk, copy_groups, cfg)
    timings["linkage"] = time.perf_counter() - started
    started = time.perf_counter()
    communities = ring_groups(links, risk, n_users, cfg) if cfg.method != "dense" else []
    blocks = block_groups(g, risk, cfg) if cfg.method != "communities" else []
    copies = copy_rings(g, copy_groups, cfg)
    groups, methods = combine(
        [("communities", communities), ("dense", blocks), ("copied_text", copies)],
        n_users, cfg.min_size,
    )  # fmt: skip
    timings["rings"] = time.perf_counter() - started
    clock = as_of(g)
    rings, members, centres = describe(g, risk, links, groups, methods, clock)
    return Rings(rings, members, centres, links, clock, timings)


def describe(
    g: GraphExport, risk: np.ndarray, links: Links, groups: list[np.ndarray],
    methods: list[str], clock: int,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Per-ring figures an investigator starts from, computed for all rings at once."""
    n_users = len(g.ids["user"])
    group_of = np.full(n_users, -1, dtype=np.int64)
    for i, grp in enumerate(groups):
        group_of[grp] = i
    n = len(groups)
    user = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
    grp_idx = group_of[user]
    size = np.bincount(grp_idx, minlength=n)
    rings = pd.DataFrame({
        "group": np.arange(n), "size": size,
        "density": densities(links.src, links.dst, group_of) if n else np.zeros(0),
        "risk_mean": np.bincount(grp_idx, risk[user], n) / np.maximum(size, 1),
        "risk_max": pd.Series(risk[user]).groupby(grp_idx).max().reindex(range(n)).to_numpy(),
        "method": methods,
    })  # fmt: skip
    same = (group_of[links.src] >= 0) & (group_of[links.src] == group_of[links.dst])
    for kind, values in links.by_kind.items():
        hit = same & (values > 0)
        rings[f"evidence_{kind}"] = np.bincount(group_of[links.src[hit]], minlength=n)
    orders = g.edges[schema.ORDERED_EDGE]
    o_user = orders["src"].to_numpy(np.int64)
    recent = (_ms(orders["ts"]) >= clock - 30 * DAY_MS) & (group_of[o_user] >= 0)
    amount = pd.to_numeric(orders["amount"], errors="coerce").fillna(0).to_numpy(np.float64)
    charged = (orders["status"].astype(str).to_numpy() == schema.CHARGEBACK) & recent
    rings["exposure_amount"] = np.bincount(group_of[o_user[recent]], amount[recent], n).round(2)
    rings["chargeback_amount"] = np.bincount(group_of[o_user[charged]], amount[charged], n).round(2)
    members = pd.DataFrame({"group": grp_idx, "user": user, "user_id": g.ids["user"][user]})
    return rings, members, _centres(g, group_of, n)


def _centres(g: GraphExport, group_of: np.ndarray, n: int, top: int = 3) -> pd.DataFrame:
    """Devices and merchants that at least two members share, the most shared first."""
    uses = g.edges[schema.USES_EDGE]
    orders = g.edges[schema.ORDERED_EDGE]
    merchant_of = g.merchant_of_product()
    parts = []
    for kind, u, hub, ids in (
        ("device", uses["src"].to_numpy(np.int64), uses["dst"].to_numpy(np.int64), g.ids["device"]),
        ("merchant", orders["src"].to_numpy(np.int64),
         merchant_of[orders["dst"].to_numpy(np.int64)], g.ids["merchant"]),
    ):  # fmt: skip
        inside = (group_of[u] >= 0) & (hub >= 0)
        frame = pd.DataFrame({"group": group_of[u[inside]], "hub": hub[inside], "u": u[inside]})
        counts = frame.drop_duplicates().groupby(["group", "hub"]).size().rename("members")
        counts = (
            counts[counts >= 2]
            .reset_index()
            .sort_values(["group", "members", "hub"], ascending=[True, False, True])
        )
        counts = counts.groupby("group").head(top)
        parts.append(counts.assign(kind=kind, id=ids[counts["hub"].to_numpy(np.int64)]))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return (
        out[["group", "kind", "id", "members"]]
        if len(out)
        else pd.DataFrame(columns=["group", "kind", "id", "members"])
    )
