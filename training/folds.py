"""Grouped, label-stratified folds for cross-fitting, and the split guard.

Users tied together must fall in one fold: when two accounts of one device farm sit in
different folds, the fold model that predicts one of them sees the other's fraud label as an
input (the label trick) and through shared neighbours, and the out-of-fold estimate measures
"finds the rest of a ring whose members are already labelled" instead of "finds a new ring".
So users are grouped by the connected components of a user–hub graph, where hubs are

* devices used by at most ``max_hub_users`` accounts (a device used by more is *public*: a
  kiosk, a shop's tablet, a carrier NAT; it ties strangers together, not a ring), and
* merchants on which users wrote near-duplicate reviews (cheap ring candidates: copied
  reviews), again only while at most ``max_hub_users`` accounts do so there.

"Public" is decided by how many accounts use a hub, never by anything a generator plants.
Groups are then dealt to folds so that every fold holds about the same number of positives
and of negatives (a greedy fill for multi-user groups, largest first; single users fill the
rest by class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from graph import schema
from graph.export import GraphExport

DEFAULT_MAX_HUB_USERS = 30


def user_groups(
    g: GraphExport, max_hub_users: int = DEFAULT_MAX_HUB_USERS, near_dups: np.ndarray | None = None
) -> np.ndarray:
    """Group id of every user: connected components over non-public devices (and merchants
    with copied reviews, when ``near_dups`` is given: per review, its near-duplicates on the
    same merchant).

    Shapes:
        returns (num_users,) int64; users with no tie are groups of one.
    """
    n_users = len(g.ids["user"])
    n_dev = len(g.ids["device"])
    uses = g.edges[schema.USES_EDGE]
    u = uses["src"].to_numpy(np.int64)
    d = uses["dst"].to_numpy(np.int64)
    on_device = np.bincount(d, minlength=n_dev)
    keep = (on_device[d] >= 2) & (on_device[d] <= max_hub_users)
    users, hubs = [u[keep]], [n_users + d[keep]]
    if near_dups is not None and len(near_dups):
        reviews = g.edges[schema.REVIEWED_EDGE]
        ru = reviews["src"].to_numpy(np.int64)
        rm = g.merchant_of_product()[reviews["dst"].to_numpy(np.int64)]
        copied = (np.asarray(near_dups) >= 2) & (rm >= 0)
        ru, rm = ru[copied], rm[copied]
        pairs = np.unique(np.stack([ru, rm]), axis=1) if len(ru) else np.zeros((2, 0), np.int64)
        per_merchant = np.bincount(pairs[1], minlength=len(g.ids["merchant"]))
        ok = (per_merchant[pairs[1]] >= 2) & (per_merchant[pairs[1]] <= max_hub_users)
        users.append(pairs[0][ok])
        hubs.append(n_users + n_dev + pairs[1][ok])
    n = n_users + n_dev + len(g.ids["merchant"])
    src, dst = np.concatenate(users), np.concatenate(hubs)
    adj = sp.coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n)).tocsr()
    _, comp = connected_components(adj, directed=False)
    return np.asarray(comp[:n_users], dtype=np.int64)


def grouped_folds(
    labeled: np.ndarray, y: np.ndarray, groups: np.ndarray, k: int, seed: int
) -> np.ndarray:
    """Fold (0..k-1) of each labelled user: a group never spans two folds, and positives and
    negatives are spread evenly.

    Args:
        labeled: indices of labelled users.
        y: their labels (0/1), aligned with ``labeled``.
        groups: group id of every user (:func:`user_groups`).
        k: number of folds (>= 2).
        seed: shuffles groups of equal size, so the folds can be reproduced.

    Shapes:
        returns (len(labeled),) int64 aligned with ``labeled``.
    """
    if k < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, got {k}")
    rng = np.random.default_rng(seed)
    y = np.asarray(y, dtype=np.int64)
    _, group = np.unique(groups[labeled], return_inverse=True)
    n_groups = int(group.max()) + 1 if len(group) else 0
    pos = np.bincount(group, weights=y, minlength=n_groups)
    size = np.bincount(group, minlength=n_groups).astype(np.float64)
    neg = size - pos
    target = np.array([max(pos.sum(), 1.0), max(neg.sum(), 1.0)]) / k
    fill = np.zeros((k, 2))
    group_fold = np.full(n_groups, -1, dtype=np.int64)
    multi = np.flatnonzero(size > 1)
    multi = multi[np.lexsort((rng.random(len(multi)), -pos[multi], -size[multi]))]
    for gi in multi:  # few (rings, households): a loop is fine
        after = fill + np.array([pos[gi], neg[gi]])
        # the fold whose fullest class stays least full after taking the group
        cost = (after / target).max(axis=1) + 1e-6 * fill.sum(axis=1)
        f = int(np.argmin(cost))
        group_fold[gi], fill[f] = f, after[f]
    for cls, count in ((1, pos), (0, neg)):  # single users, by class, fill the deficits
        singles = np.flatnonzero((size == 1) & (count == 1))
        singles = singles[rng.permutation(len(singles))]
        deficit = np.maximum(target[1 - cls] - fill[:, 1 - cls], 0.0)
        share = deficit / deficit.sum() if deficit.sum() > 0 else np.full(k, 1.0 / k)
        cuts = np.round(np.cumsum(share) * len(singles)).astype(np.int64)
        group_fold[singles] = np.searchsorted(cuts, np.arange(len(singles)), side="right")
    return np.minimum(group_fold[group], k - 1)


def validation_slice(
    train: np.ndarray, y: np.ndarray, groups: np.ndarray, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split a fold model's training users into (fit, early-stopping validation), grouped and
    stratified like the folds, the validation part about ``share`` of them."""
    parts = max(2, round(1.0 / share))
    part = grouped_folds(train, y, groups, parts, seed)
    return np.sort(train[part != 0]), np.sort(train[part == 0])


@dataclass(frozen=True)
class GuardLimits:
    """When a training part is too small or too unlike the whole to trust."""

    min_positives: int = 50
    max_rate_ratio: float = 3.0


def split_guard(
    parts: dict[str, np.ndarray], y: np.ndarray, limits: GuardLimits | None = None
) -> list[str]:
    """Warnings for training parts with fewer than ``min_positives`` positives or a positive
    rate more than ``max_rate_ratio`` times off the rate of all labelled users.

    Args:
        parts: name -> user indices of a training part.
        y: label per user (1/0/NaN).
    """
    limits = limits or GuardLimits()
    known = ~np.isnan(y)
    whole = float(np.nanmean(y[known])) if known.any() else 0.0
    out = []
    for name, users in parts.items():
        yy = y[users]
        yy = yy[~np.isnan(yy)]
        n_pos, rate = int(yy.sum()), float(yy.mean()) if len(yy) else 0.0
        ratio = max(rate / whole, whole / rate) if rate > 0 and whole > 0 else float("inf")
        if n_pos < limits.min_positives or ratio > limits.max_rate_ratio:
            out.append(
                f"{name}: {n_pos} positives of {len(yy)} labelled users (rate {rate:.2%}, "
                f"all labelled users {whole:.2%}); needs >= {limits.min_positives} positives "
                f"and a rate within {limits.max_rate_ratio:g}x of the whole"
            )
    return out
