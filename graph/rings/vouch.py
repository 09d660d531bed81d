"""Low-risk members vouched for by their ring: gate a ring on its risky core, not each member.

A label-trained risk score misses many members of a coordinated ring (new accounts, labels
not in yet), and a per-member risk gate then drops them, often so many that what is left is
less than half the ring. Their *behaviour* still gives them away: they act at the same
merchants in the same windows as the ring's risky members, window after window.

So once the risky accounts have formed a core (a community of two or more that passes the
ring's risk gate), the core's *acts* are the (merchant, window) hubs where at least
``vouch_share`` of its members (and at least two) are active. Another account joins the core
when

- it is active in at least ``sync_min_windows`` of the core's acts (coordination repeats);
- those acts are at least ``vouch_share`` of its windows at the acts' merchants (a regular
  of a busy shop is there on many days, the ring's days among them, and those are a small
  share of his);
- chance does not explain it: an account active in ``a`` windows of a merchant that is active
  in ``W`` windows, ``k`` of them the core's acts, hits ``a * k / W`` acts by chance; the
  Poisson tail of its hits, times the number of accounts active at the acts' merchants (all
  of whom could have hit them), must stay at or below ``vouch_chance``: at the default 1.0,
  fewer than one account per ring is expected to pass by luck. A ring that acts at a busy
  shop needs more shared windows than one acting at a small shop, as it should.

What this does not let in: a household member or a kiosk user (a shared device vouches for
nobody, only repeated synchronised activity does); anyone next to a lone risky account (a
core has two members or more).
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.stats import poisson

from graph.rings.config import RingConfig


def _indicator(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    ones = np.ones(len(rows), dtype=np.float32)
    mat = sp.csr_matrix((ones, (rows, cols)), shape=shape)
    mat.data[:] = 1.0  # duplicates collapse to one
    return mat


EXPOSED_BLOCK_TERMS = 1 << 23
"""Most (account, core) terms of the exposure product held at once. Whole, it is accounts x
cores: at 1M users with a weak risk model (most accounts above the link floor, thousands of
cores) it asked for 27 GiB."""


def exposed_counts(
    active: sp.csr_matrix, act_merchant: sp.csr_matrix, block_terms: int | None = None
) -> np.ndarray:
    """Per core, how many accounts are active at one or more of the merchants it acts at.

    The same as counting the nonzeros of each column of ``active @ act_merchant.T``, a block
    of cores at a time, the blocks cut where the sum of the cores' merchants' account counts
    (a bound of a block's nonzeros) reaches ``block_terms``.

    Shapes:
        active: (accounts, merchants) 0/1; act_merchant: (cores, merchants) 0/1 → (cores,).
    """
    n_cores = act_merchant.shape[0]
    per_merchant = np.asarray(active.sum(axis=0)).ravel()
    bound = np.cumsum(np.asarray(act_merchant @ per_merchant).ravel())
    step = block_terms or EXPOSED_BLOCK_TERMS
    cuts = np.searchsorted(bound, np.arange(step, bound[-1] if n_cores else 0, step))
    edges = np.unique(np.concatenate([[0], cuts, [n_cores]])).astype(np.int64)
    out = np.zeros(n_cores, dtype=np.int64)
    for lo, hi in pairwise(edges.tolist()):
        part = (active @ act_merchant[lo:hi].T).tocsc()
        part.eliminate_zeros()
        out[lo:hi] = np.diff(part.indptr)
    return out


def _ties(
    cores: list[np.ndarray], sync_hubs: sp.csr_matrix, hub_merchant: np.ndarray,
    n_users: int, cfg: RingConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(account, core, strength) for every account outside a core that the core vouches for;
    strength is ``-log`` of the expected number of accounts tied as strongly by chance."""
    size = np.array([len(c) for c in cores])
    members = np.concatenate(cores)
    core_of = np.repeat(np.arange(len(cores)), size)
    own = np.full(n_users, -1, dtype=np.int64)
    own[members] = core_of
    n_hubs, n_merchants = sync_hubs.shape[1], int(hub_merchant.max(initial=-1)) + 1
    # the core's acts: hubs where enough of its members are active together
    present = (_indicator(core_of, members, (len(cores), n_users)) @ sync_hubs).tocoo()
    is_act = present.data >= np.maximum(2, np.ceil(cfg.vouch_share * size))[present.row]
    act = _indicator(present.row[is_act], present.col[is_act], (len(cores), n_hubs))
    to_merchant = _indicator(np.arange(n_hubs), hub_merchant, (n_hubs, n_merchants))
    acts_at = (act @ to_merchant).tocsr()  # cores x merchants: acts at each merchant
    act_merchant = (acts_at > 0).astype(np.float32)
    windows = np.asarray(to_merchant.sum(axis=0)).ravel()  # windows each merchant is active in
    rate = (acts_at @ sp.diags(1.0 / np.maximum(windows, 1))).tocsr()  # a visit hits an act
    visits = (sync_hubs @ to_merchant).tocsr()  # accounts x merchants: windows active there
    # everyone active where a core acts could have hit its acts by chance
    candidates = exposed_counts((visits > 0).astype(np.float32), act_merchant)

    hits = (sync_hubs @ act.T).tocoo()  # accounts x cores: the core's acts each account is in
    keep = (hits.data >= cfg.sync_min_windows) & (own[hits.row] != hits.col)
    user, core, hit = hits.row[keep], hits.col[keep], hits.data[keep].astype(np.float64)
    expected = np.asarray(visits[user].multiply(rate[core]).sum(axis=1)).ravel()
    by_chance = poisson.sf(hit - 1, expected) * candidates[core]
    there = np.asarray(visits[user].multiply(act_merchant[core]).sum(axis=1)).ravel()
    share = hit / np.maximum(there, 1)
    ok = (by_chance <= cfg.vouch_chance) & (share >= cfg.vouch_share)
    return user[ok], core[ok], -np.log(np.maximum(by_chance[ok], 1e-300))


def merge_cores(
    cores: list[np.ndarray], sync_hubs: sp.csr_matrix | None, hub_merchant: np.ndarray | None,
    n_users: int, cfg: RingConfig,
) -> list[np.ndarray]:  # fmt: skip
    """Cores that act as one, joined: when core X vouches for at least ``vouch_share`` of core
    Y's members, X and Y are one ring that devices or thin links cut apart (a fragmented ring
    whose members share a device only in small cells)."""
    if cfg.vouch_chance <= 0 or sync_hubs is None or hub_merchant is None or len(cores) < 2:
        return cores
    user, core, _ = _ties(cores, sync_hubs, hub_merchant, n_users, cfg)
    size = np.array([len(c) for c in cores])
    own = np.full(n_users, -1, dtype=np.int64)
    own[np.concatenate(cores)] = np.repeat(np.arange(len(cores)), size)
    inside = own[user] >= 0
    pairs = pd.DataFrame({"y": own[user[inside]], "x": core[inside]}).value_counts()
    y, x = (pairs.index.get_level_values(k).to_numpy(np.int64) for k in ("y", "x"))
    join = pairs.to_numpy() >= np.maximum(2, np.ceil(cfg.vouch_share * size[y]))
    graph = sp.coo_matrix((np.ones(int(join.sum())), (y[join], x[join])), shape=(len(cores),) * 2)
    _, label = connected_components(graph, directed=False)
    merged = [
        np.concatenate([cores[i] for i in np.flatnonzero(label == k)])
        for k in range(label.max() + 1)
    ]
    # a union larger than a ring can be stays apart
    out: list[np.ndarray] = []
    for k, grp in enumerate(merged):
        out.extend(
            [np.sort(grp)]
            if len(grp) <= cfg.max_size
            else [cores[i] for i in np.flatnonzero(label == k)]
        )
    return out


def vouched(
    cores: list[np.ndarray],
    sync_hubs: sp.csr_matrix | None,
    hub_merchant: np.ndarray | None,
    n_users: int,
    cfg: RingConfig,
) -> list[np.ndarray]:
    """Per core, the accounts outside every core that its acts vouch for (sorted).

    Args:
        cores: risky communities (user indices), each already through the ring's risk gate.
        sync_hubs: accounts x (merchant, window) hubs, binary (``Links.sync_hubs``).
        hub_merchant: the merchant of each hub.
        n_users: number of accounts.
        cfg: ``vouch_chance``, ``vouch_share``, ``sync_min_windows``, ``max_size``.
    """
    empty = [np.zeros(0, dtype=np.int64) for _ in cores]
    if cfg.vouch_chance <= 0 or sync_hubs is None or hub_merchant is None or not cores:
        return empty
    user, core, strength = _ties(cores, sync_hubs, hub_merchant, n_users, cfg)
    in_core = np.zeros(n_users, dtype=bool)
    in_core[np.concatenate(cores)] = True
    outside = ~in_core[user]
    user, core, strength = user[outside], core[outside], strength[outside]
    if not len(user):
        return empty
    # an account vouched for by several cores joins the one least explained by chance
    order = np.lexsort((-strength, user))
    first = np.r_[True, user[order][1:] != user[order][:-1]]
    user, core = user[order][first], core[order][first]
    room = np.maximum(cfg.max_size - np.array([len(c) for c in cores]), 0)
    return [np.sort(user[core == i])[: room[i]] for i in range(len(cores))]
