"""Evidence links between accounts: who is tied to whom, how strongly, and why.

Each kind of evidence is a set of *hubs* that accounts share: a device, a (merchant, time
window) cell, one piece of review text copied around a merchant (a copy group), a (creation
window, merchant) pair. A hub shared
by ``n`` accounts adds ``(n - 1) ** -p`` to each of its pairs (rarity: two accounts on one
device tie strongly, a kiosk used by 300 barely), and the pair weights of one kind are one
sparse product ``B diag(w) B^T``. Only accounts at or above a risk floor take part, but hub
sizes count every account, so a kiosk's legit crowd still dilutes it.

The ring graph also multiplies each hub by its *purity* (the share of its accounts that look
risky): a device farm's device is used by its ring alone, while a café PC that three risky
accounts happen to use is mostly legit traffic. The written ``LINKED`` weight is rarity only:
it says how rare the shared thing is, not what the model thinks of the accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
import scipy.sparse as sp

from graph import schema
from graph.export import GraphExport
from graph.rings.chance import burst_chance, sync_chance
from graph.rings.config import RingConfig

MS = 1000


@dataclass
class Links:
    """Undirected links ``src < dst`` (user indices), strongest ``top_links`` per account.

    Attributes:
        src, dst: user indices.
        weight: rarity-weighted strength, summed over kinds (what ``LINKED.weight`` holds).
        ring_weight: the same with hubs scaled by purity; the ring graph uses this.
        by_kind: kind -> rarity weight of that kind alone (0 where the kind is absent).
        sync_hubs: every account x (merchant, window) hub, binary, for
            :mod:`graph.rings.vouch`; ``None`` when sync evidence is off.
        sync_merchant: per sync hub, its merchant.
        sync_window: per sync hub, its window.
    """

    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    ring_weight: np.ndarray
    by_kind: dict[str, np.ndarray]
    sync_hubs: sp.csr_matrix | None = None
    sync_merchant: np.ndarray | None = None
    sync_window: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.src)

    def evidence(self) -> list[str]:
        """Per link a readable ``kind=weight`` list, e.g. ``device=1.00;sync=0.41``."""
        names = list(self.by_kind)
        values = np.stack([self.by_kind[k] for k in names], axis=1) if names else None
        out: list[str] = []
        for row in values if values is not None else []:
            out.append(";".join(f"{n}={v:.2f}" for n, v in zip(names, row, strict=True) if v > 0))
        return out


def _incidence(users: np.ndarray, hubs: np.ndarray, n_users: int) -> sp.csr_matrix:
    """Binary users x hubs matrix (duplicates collapse to 1)."""
    n_hubs = int(hubs.max()) + 1 if len(hubs) else 0
    mat = sp.csr_matrix(
        (np.ones(len(users), dtype=np.float32), (users, hubs)), shape=(n_users, n_hubs)
    )
    mat.data[:] = 1.0
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat


def _hub_codes(*keys: np.ndarray) -> np.ndarray:
    """Dense codes for composite hub keys (e.g. merchant and window)."""
    if not len(keys[0]):
        return np.zeros(0, dtype=np.int64)
    frame = pd.DataFrame({f"k{i}": k for i, k in enumerate(keys)})
    return frame.groupby(list(frame.columns), sort=True).ngroup().to_numpy(np.int64)


PAIR_BLOCK_TERMS = 1 << 23
"""Shared-hub terms (pairs before summing) one block of accounts may produce at once. The pair
matrices are built a block of rows at a time and keep only what survives: the upper triangle
and, for sync and burst, pairs that share enough hubs. At 200k users the busy (merchant, day)
cells alone tied 64M pairs, nearly all through one cell, and the whole products held 5 GiB for
about 2M kept pairs; built by blocks, memory follows the pairs kept."""


def _pairs(
    inc: sp.csr_matrix, keep: np.ndarray, risky: np.ndarray, cfg: RingConfig,
    discount: np.ndarray | None, min_shared: int = 1, block_terms: int | None = None,
    counts: bool = False,
) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix | None]:  # fmt: skip
    """(rarity, purity-scaled, shared usable hubs) pair matrices among ``keep`` accounts,
    upper triangle; the third with ``counts`` or ``min_shared`` > 1 (else None).

    ``discount`` (per hub, in [0, 1]) scales hubs further, e.g. by their merchant's popularity;
    ``min_shared`` > 1 keeps only pairs that share at least that many usable hubs;
    ``block_terms``: see :data:`PAIR_BLOCK_TERMS` (the default).

    Two weights ride one product as the real and imaginary parts of a complex64 weight: the
    parts are summed apart, term by term, in float32 (a part times 1 or 0 is exact), so each
    pair's value is bit for bit the real product's, and both parts come out aligned. When
    counts are asked for, the imaginary part counts the shared usable hubs instead.
    """
    n_per_hub = np.asarray(inc.sum(axis=0)).ravel()
    risky_per_hub = np.asarray(inc.T @ risky.astype(np.float32)).ravel()
    usable = (n_per_hub >= 2) & (n_per_hub <= cfg.max_hub_users)
    rarity = np.where(usable, np.maximum(n_per_hub - 1, 1) ** -cfg.rarity_power, 0.0)
    if discount is not None:
        rarity = rarity * discount
    purity = np.divide(risky_per_hub, n_per_hub, out=np.zeros_like(rarity), where=n_per_hub > 0)
    if not cfg.purity:
        purity = np.ones_like(rarity)
    rare32, pure32 = rarity.astype(np.float32), (rarity * purity).astype(np.float32)
    sub = inc[keep]
    # a hub of weight zero adds nothing to a pair; a hub of nonzero weight is always usable
    counted = counts or min_shared > 1
    if counted:
        hubs = np.flatnonzero(usable)
        weights = [rare32[hubs] + 1j * np.float32(1), pure32[hubs] + 1j * np.float32(1)]
    else:
        hubs = np.flatnonzero((rare32 != 0) | (pure32 != 0))
        weights = [rare32[hubs] + 1j * pure32[hubs]]
    part = sub[:, hubs]
    lefts = [(part @ sp.diags(w.astype(np.complex64))).tocsr() for w in weights]
    right = part.T.tocsr().astype(np.complex64)
    # a row's terms are at most the sizes (among ``keep``) of its hubs
    ends = np.cumsum(np.asarray(part @ np.asarray(part.sum(axis=0)).ravel()).ravel())
    step = block_terms or PAIR_BLOCK_TERMS
    cuts = np.searchsorted(ends, np.arange(step, ends[-1] if len(ends) else 0, step))
    bounds = np.unique(np.concatenate([[0], cuts, [part.shape[0]]]))
    out: tuple[list[sp.csr_matrix], ...] = ([], [], []) if counted else ([], [])
    for lo, hi in pairwise(bounds.tolist()):
        prods = [(left[lo:hi] @ right[:, lo:]).tocsr() for left in lefts]
        row = np.repeat(np.arange(hi - lo), np.diff(prods[0].indptr))
        col = prods[0].indices
        above = col > row
        if counted:  # the same hubs and rows: both products list the same pairs in order
            above &= prods[0].data.imag >= min_shared
            values = [prods[0].data.real, prods[1].data.real, prods[0].data.imag]
        else:
            values = [prods[0].data.real, prods[0].data.imag]
        for store, v in zip(out, values, strict=True):
            kept = above & (v != 0)
            store.append(
                sp.csr_matrix((v[kept], (row[kept], col[kept] + lo)), shape=(hi - lo, len(keep)))
            )
    empty = sp.csr_matrix((len(keep), len(keep)), dtype=np.float32)
    rare, pure, *count = (sp.vstack(b, format="csr") if b else empty for b in out)
    return rare, pure, (count[0] if count else None)


def _merchant_discount(user: np.ndarray, merchant: np.ndarray, n_users: int) -> np.ndarray:
    """Per merchant ``log(N / customers) / log(N)``: a merchant everyone uses ties nobody."""
    pairs = np.unique(np.stack([merchant, user]), axis=1)
    customers = np.bincount(pairs[0], minlength=int(merchant.max(initial=-1)) + 1)
    n = max(n_users, 2)
    return np.clip(np.log(n / np.maximum(customers, 1)) / np.log(n), 0.0, 1.0)


def _per_hub(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.zeros(int(codes.max(initial=-1)) + 1)
    out[codes] = values
    return out


def _kind_incidences(
    g: GraphExport, copy_groups: np.ndarray | None, cfg: RingConfig
) -> tuple[dict[str, tuple[sp.csr_matrix, np.ndarray | None]], dict[str, np.ndarray], np.ndarray]:
    """(users x hubs matrix, per-hub discount) per evidence kind the graph can support, the
    merchant of each sync and burst hub, and each user's creation window (-1: unknown)."""
    n = len(g.ids["user"])
    merchant_of = g.merchant_of_product()
    out: dict[str, tuple[sp.csr_matrix, np.ndarray | None]] = {}
    hub_merchant: dict[str, np.ndarray] = {}
    bucket = np.full(n, -1, dtype=np.int64)
    if "device" in cfg.kinds:
        uses = g.edges[schema.USES_EDGE]
        out["device"] = (
            _incidence(uses["src"].to_numpy(np.int64), uses["dst"].to_numpy(np.int64), n),
            None,
        )
    orders = g.edges[schema.ORDERED_EDGE]
    reviews = g.edges[schema.REVIEWED_EDGE]
    act_user = np.concatenate([orders["src"].to_numpy(np.int64), reviews["src"].to_numpy(np.int64)])
    act_merchant = merchant_of[
        np.concatenate([orders["dst"].to_numpy(np.int64), reviews["dst"].to_numpy(np.int64)])
    ]
    act_ts = np.concatenate([_ms(orders["ts"]), _ms(reviews["ts"])])
    ok = (act_merchant >= 0) & (act_ts >= 0)
    popular = _merchant_discount(act_user[ok], act_merchant[ok], n)
    if "sync" in cfg.kinds:
        window = act_ts[ok] // (cfg.sync_window_s * MS)
        codes = _hub_codes(act_merchant[ok], window)
        hub_merchant["sync"] = _per_hub(codes, act_merchant[ok]).astype(np.int64)
        hub_merchant["sync_window"] = _per_hub(codes, window).astype(np.int64)
        out["sync"] = (
            _incidence(act_user[ok], codes, n),
            _per_hub(codes, popular[act_merchant[ok]]),
        )
    if "text" in cfg.kinds and copy_groups is not None and len(copy_groups) == len(reviews):
        # the hub is the copied text itself: authors of one template tie strongly, while a
        # generic "Great product!" written by a hundred customers barely ties anyone (rarity)
        r_user = reviews["src"].to_numpy(np.int64)
        copied = copy_groups >= 0
        out["text"] = (_incidence(r_user[copied], copy_groups[copied], n), None)
    if "burst" in cfg.kinds:
        created = _ms(g.nodes["user"]["created_at"])
        bucket = np.where(created >= 0, created // (cfg.burst_window_s * MS), -1)
        # "Created minutes apart and later act alike": the hub is (creation window, merchant).
        u, m = act_user[ok], act_merchant[ok]
        has = created[u] >= 0
        codes = _hub_codes(bucket[u[has]], m[has])
        hub_merchant["burst"] = _per_hub(codes, m[has]).astype(np.int64)
        out["burst"] = (_incidence(u[has], codes, n), _per_hub(codes, popular[m[has]]))
    return out, hub_merchant, bucket


def _beyond_chance(
    kind: str, count: sp.csr_matrix, inc: sp.csr_matrix, hub_merchant: np.ndarray,
    window: np.ndarray | None, bucket: np.ndarray, keep: np.ndarray, cfg: RingConfig,
) -> sp.csr_matrix:  # fmt: skip
    """1 where chance does not explain how many hubs a pair shares (:mod:`graph.rings.chance`),
    else 0. ``count`` holds only the pairs :func:`_pairs` kept (at least ``sync_min_windows``
    shared hubs)."""
    out = count.copy()
    rows = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))
    a, b = keep[rows], keep[out.indices]
    shared = out.data.astype(np.float64)
    by_chance = np.zeros(len(a))
    if len(a) and kind == "sync" and window is not None:
        n_per_hub = np.asarray(inc.sum(axis=0)).ravel()
        usable = (n_per_hub >= 2) & (n_per_hub <= cfg.max_hub_users)
        by_chance = sync_chance(inc, hub_merchant, window, usable, a, b, shared)
    elif len(a) and kind == "burst":
        by_chance = burst_chance(inc, hub_merchant, bucket, a, b, shared)
    out.data = (by_chance <= cfg.link_chance).astype(np.float32)
    return out


def _ms(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").fillna(-1).to_numpy(np.int64)


def build_links(
    g: GraphExport, risk: np.ndarray, copy_groups: np.ndarray | None, cfg: RingConfig
) -> Links:
    """Weighted evidence links among accounts at or above ``cfg.link_risk_floor``.

    Args:
        g: the exported graph.
        risk: per user (aligned with ``g.ids['user']``), a fraud probability in [0, 1].
        copy_groups: per review (aligned with the reviewed edges), its copy group (reviews of
            one merchant joined by near-duplicate text; -1: none); ``None`` switches text
            evidence off.
        cfg: weights and thresholds.
    """
    risk = np.asarray(risk, dtype=np.float64)
    keep = np.flatnonzero(risk >= cfg.link_risk_floor)
    # soft purity: an account counts fully once at the risk threshold, partly below it
    risky = np.clip(risk / max(cfg.risk_threshold, 1e-9), 0.0, 1.0)
    total: sp.csr_matrix | None = None
    ring_total: sp.csr_matrix | None = None
    per_kind: dict[str, sp.csr_matrix] = {}
    incidences, hub_merchant, bucket = _kind_incidences(g, copy_groups, cfg)
    sync_hubs = incidences["sync"][0] if "sync" in incidences else None
    sync_merchant, sync_window = hub_merchant.get("sync"), hub_merchant.get("sync_window")
    for kind, (inc, discount) in incidences.items():
        # sync and burst pairs must repeat over several hubs, or they are not alike at all
        repeats = kind in ("sync", "burst")
        min_shared = cfg.sync_min_windows if repeats else 1
        rarity, pure, count = _pairs(inc, keep, risky, cfg, discount, min_shared, counts=repeats)
        if count is not None and cfg.link_chance > 0 and kind in cfg.chance_kinds:
            # and chance must not explain the repeats
            repeated = _beyond_chance(
                kind, count, inc, hub_merchant[kind], hub_merchant.get("sync_window"),
                bucket, keep, cfg,
            )  # fmt: skip
            rarity = rarity.multiply(repeated).tocsr()
            pure = pure.multiply(repeated).tocsr()
        scale = cfg.weight_of(kind)
        per_kind[kind] = rarity * scale
        total = per_kind[kind] if total is None else total + per_kind[kind]
        ring_total = pure * scale if ring_total is None else ring_total + pure * scale
    coo = total.tocoo() if total is not None else None
    if coo is None or ring_total is None or coo.nnz == 0:  # no evidence, or no one above the floor
        empty = np.zeros(0, dtype=np.int64)
        none = {k: np.zeros(0) for k in per_kind}
        return Links(
            empty, empty, np.zeros(0), np.zeros(0), none, sync_hubs, sync_merchant, sync_window
        )
    src, dst = keep[coo.row], keep[coo.col]
    order = top_links(src, dst, coo.data, len(risk), cfg.top_links)
    rows, cols = coo.row[order], coo.col[order]
    by_kind = {k: np.asarray(m[rows, cols]).ravel().astype(np.float64) for k, m in per_kind.items()}
    return Links(
        src[order], dst[order], coo.data[order].astype(np.float64),
        np.asarray(ring_total[rows, cols]).ravel().astype(np.float64), by_kind,
        sync_hubs, sync_merchant, sync_window,
    )  # fmt: skip


def top_links(src: np.ndarray, dst: np.ndarray, w: np.ndarray, n: int, k: int) -> np.ndarray:
    """Positions of links that are among the ``k`` strongest of either endpoint.

    One float sort: the key is the endpoint plus a fraction that falls as the weight grows, so
    each endpoint's links come together, strongest first; ranks come from the endpoints'
    counts (no second sort, no ``np.unique``).
    """
    if not len(src):
        return np.zeros(0, dtype=np.int64)
    ends = np.concatenate([src, dst])
    weight = np.concatenate([w, w]).astype(np.float64)
    top = float(weight.max()) if len(weight) else 1.0
    key = ends.astype(np.float64) + 0.5 * (1.0 - weight / (top * (1 + 1e-9) if top > 0 else 1.0))
    order = np.argsort(key, kind="quicksort")
    counts = np.bincount(ends, minlength=n)
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(order)) - starts[ends[order]]
    keep = np.zeros(len(src), dtype=bool)
    keep[order[rank < k] % len(src)] = True
    return np.flatnonzero(keep)
