"""The evidence links built a block of accounts at a time are exactly those of one whole product.

``graph.rings.linkage`` builds its pair matrices by blocks of rows (bounded memory at any
size). These tests pin the result bit for bit against the plain formula it replaced (one
float32 product ``B diag(w) B^T`` per weight over every account, then the upper triangle and
the shared-hub filter) and against itself with blocks of a few rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import graph.rings.linkage as linkage
from graph.export import GraphExport
from graph.rings import RingConfig, detect_rings
from graph.rings.linkage import _kind_incidences, _pairs, build_links


def _plain_pairs(
    inc: sp.csr_matrix, keep: np.ndarray, risky: np.ndarray, cfg: RingConfig,
    discount: np.ndarray | None, min_shared: int,
) -> tuple[sp.csr_matrix, sp.csr_matrix]:  # fmt: skip
    """The formula as it was: whole products, then triangle and (sync, burst) repeat filter."""
    n_per_hub = np.asarray(inc.sum(axis=0)).ravel()
    risky_per_hub = np.asarray(inc.T @ risky.astype(np.float32)).ravel()
    usable = (n_per_hub >= 2) & (n_per_hub <= cfg.max_hub_users)
    rarity = np.where(usable, np.maximum(n_per_hub - 1, 1) ** -cfg.rarity_power, 0.0)
    if discount is not None:
        rarity = rarity * discount
    purity = np.divide(risky_per_hub, n_per_hub, out=np.zeros_like(rarity), where=n_per_hub > 0)
    sub = inc[keep]
    sub_t = sub.T.tocsr()

    def product(w: np.ndarray) -> sp.csr_matrix:
        out = (sub @ sp.diags(w.astype(np.float32)) @ sub_t).tocsr()
        out.setdiag(0)
        out.eliminate_zeros()
        return sp.triu(out, k=1).tocsr()

    rare, pure = product(rarity), product(rarity * purity)
    if min_shared > 1:
        repeated = product(usable.astype(np.float32))
        repeated.data = (repeated.data >= min_shared).astype(np.float32)
        rare, pure = rare.multiply(repeated).tocsr(), pure.multiply(repeated).tocsr()
    return rare, pure


def _same(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    a, b = a.tocsr(), b.tocsr()
    a.sort_indices()
    b.sort_indices()
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
        and np.array_equal(a.data, b.data)  # bit for bit, not approximately
    )


def _copy_groups(g: GraphExport) -> np.ndarray:
    """Reviews of one merchant with the same text: a stand-in for the text encoder's groups."""
    reviews = g.edges[("user", "reviewed", "product")]
    merchant = g.merchant_of_product()[reviews["dst"].to_numpy(np.int64)]
    frame = pd.DataFrame({"m": merchant, "t": reviews["text"].astype(str).to_numpy()})
    code = frame.groupby(["m", "t"], sort=True).ngroup().to_numpy()
    return np.where(np.bincount(code)[code] >= 2, code, -1)


@pytest.mark.parametrize("block_terms", [None, 64])
def test_pairs_equal_the_whole_product_bit_for_bit(graph: GraphExport, block_terms: int) -> None:
    cfg = RingConfig()
    risk = np.random.default_rng(1).random(len(graph.ids["user"]))
    keep = np.flatnonzero(risk >= cfg.link_risk_floor)
    risky = np.clip(risk / cfg.risk_threshold, 0.0, 1.0)
    kinds, *_ = _kind_incidences(graph, _copy_groups(graph), cfg)
    assert set(kinds) == {"device", "sync", "text", "burst"}
    for kind, (inc, discount) in kinds.items():
        min_shared = cfg.sync_min_windows if kind in ("sync", "burst") else 1
        *got, count = _pairs(inc, keep, risky, cfg, discount, min_shared, block_terms)
        assert (count is not None) == (min_shared > 1)
        want = _plain_pairs(inc, keep, risky, cfg, discount, min_shared)
        assert want[0].nnz > 0, kind
        assert all(_same(g, w) for g, w in zip(got, want, strict=True)), kind
        # counts asked for (a chance test with sync_min_windows 1): same pairs, and counts
        *counted, count = _pairs(inc, keep, risky, cfg, discount, min_shared, block_terms, True)
        assert count is not None and count.nnz >= counted[0].nnz, kind
        assert all(_same(g, w) for g, w in zip(counted, want, strict=True)), kind


def test_links_and_rings_do_not_depend_on_the_blocks(
    graph: GraphExport, monkeypatch: pytest.MonkeyPatch
) -> None:
    risk = np.random.default_rng(2).random(len(graph.ids["user"]))
    copies = _copy_groups(graph)
    whole = detect_rings(graph, risk, copies, RingConfig(method="both"))
    monkeypatch.setattr(linkage, "PAIR_BLOCK_TERMS", 50)  # hundreds of blocks of a few rows
    blocked = detect_rings(graph, risk, copies, RingConfig(method="both"))
    a, b = whole.links, blocked.links
    assert len(a) > 1000
    for x, y in ((a.src, b.src), (a.dst, b.dst), (a.weight, b.weight),
                 (a.ring_weight, b.ring_weight)):  # fmt: skip
        assert x.dtype == y.dtype and np.array_equal(x, y)
    assert list(a.by_kind) == list(b.by_kind)
    assert all(np.array_equal(a.by_kind[k], b.by_kind[k]) for k in a.by_kind)
    assert len(whole.rings) > 0
    pd.testing.assert_frame_equal(whole.rings, blocked.rings, check_exact=True)
    pd.testing.assert_frame_equal(whole.members, blocked.members, check_exact=True)


def test_no_account_above_the_floor_gives_no_links(graph: GraphExport) -> None:
    links = build_links(graph, np.zeros(len(graph.ids["user"])), None, RingConfig())
    assert len(links) == 0
