"""Rings that hide their devices: coordinated rings and fragmented rings.

Device farms share one to three devices, so a user-device component finds them whole. Real
rings learn to avoid that. Two typologies here do:

- *coordinated rings*: every member on their own devices; the ring shows only in time and
  place: in each of several windows, members order (and review) at the same few merchants
  within hours of each other. The merchants mix small colluding shops and popular ones, so
  "bought at a tiny merchant" is not the tell either.
- *fragmented rings*: members act together the same way (looser in time, more chargebacks)
  and share a device only occasionally: a few members per shared device, a different device
  for each subset, so the device components cut one ring into several pieces.

Members of both are turned from legit users into fraud, keep their ordinary orders (the
camouflage shopping every account does) and their own devices. Everything draws from the
generator's auxiliary stream, so a config with both switched off draws nothing here and the
default marketplace stays byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from graph.synth.fraud import (
    CANCELLED,
    CHARGEBACK,
    COORDINATED,
    DAY,
    FRAGMENTED,
    HOUR,
    LEGIT,
    PAID,
    REFUNDED,
    SYNC_ORDER,
    OrderBatch,
    RolePlan,
    _ring_sizes,
)
from graph.synth.text import compose_reviews


@dataclass(frozen=True)
class SyncPlan:
    """Per coordinated or fragmented ring (index ``ring - first``): when and how it acts."""

    first: int  # ring index of the first such ring in the RolePlan
    t0: np.ndarray  # the ring's first synchronised window (epoch seconds)
    lead: np.ndarray  # members are created up to ``lead`` seconds before ``t0``
    fragmented: np.ndarray  # bool: a fragmented ring (else coordinated)

    @property
    def n_rings(self) -> int:
        return len(self.t0)


def add_ring_roles(
    rng: np.random.Generator, plan: RolePlan, coordinated_share: float, fragmented_share: float
) -> RolePlan:
    """Turn random legit users into coordinated (6-20 members) and fragmented (8-24) rings."""
    n = len(plan.role)
    coordinated = _ring_sizes(rng, round(coordinated_share * n), 6, 20)
    fragmented = _ring_sizes(rng, round(fragmented_share * n), 8, 24)
    sizes = np.concatenate([coordinated, fragmented]).astype(np.int64)
    if len(sizes) == 0:
        return plan
    legit = np.flatnonzero(plan.role == LEGIT)
    if int(sizes.sum()) + (n - len(legit)) > n // 2:
        raise ValueError("too many fraud users for n_users; lower the ring shares")
    members = rng.choice(legit, int(sizes.sum()), replace=False)
    local = np.repeat(np.arange(len(sizes)), sizes)
    role, ring = plan.role.copy(), plan.ring.copy()
    ring[members] = plan.n_rings + local
    role[members] = np.where(local < len(coordinated), COORDINATED, FRAGMENTED)
    return replace(
        plan,
        role=role,
        ring=ring,
        n_coordinated_rings=len(coordinated),
        n_fragmented_rings=len(fragmented),
    )


def plan_sync_rings(rng: np.random.Generator, plan: RolePlan, start: int, end: int) -> SyncPlan:
    """Recruitment lead (coordinated 5-40 days, fragmented 2-10) and a first window that leaves
    at least two weeks of span for the repeated windows."""
    n_rings = plan.n_coordinated_rings + plan.n_fragmented_rings
    fragmented = np.arange(n_rings) >= plan.n_coordinated_rings
    lead = np.where(fragmented, 2 + 8 * rng.random(n_rings), 5 + 35 * rng.random(n_rings)) * DAY
    earliest = start + 5 * DAY
    t0 = earliest + (rng.random(n_rings) * (end - 15 * DAY - earliest)).astype(np.int64)
    first = plan.n_farm_rings + plan.n_review_rings
    return SyncPlan(first, t0, lead.astype(np.int64), fragmented)


def sync_created_at(
    rng: np.random.Generator, plan: RolePlan, sync: SyncPlan, created: np.ndarray
) -> np.ndarray:
    """Members are opened (or recruited) over the ``lead`` before their ring's first window."""
    created = created.copy()
    members = np.flatnonzero(np.isin(plan.role, (COORDINATED, FRAGMENTED)))
    local = plan.ring[members] - sync.first
    aged = (rng.random(len(members)) * sync.lead[local]).astype(np.int64)
    created[members] = sync.t0[local] - np.maximum(aged, HOUR)
    return created


def fragment_device_edges(
    rng: np.random.Generator, plan: RolePlan
) -> tuple[np.ndarray, np.ndarray, int]:
    """Shared devices of fragmented rings: each ring's members fall in cells of 2-4 (the cell
    size drawn per ring), 85% of a cell's members use its one device, and a cell left with
    fewer than two users gets none. Cells never share a device, so a ring is always in pieces.

    Returns (edge_user, edge_device, n_devices) with devices numbered from 0.
    """
    members = np.flatnonzero(plan.role == FRAGMENTED)
    members = members[np.lexsort((rng.random(len(members)), plan.ring[members]))]
    ring = plan.ring[members]
    ring_first = np.searchsorted(ring, ring)  # first position of each member's ring
    cell_size = rng.integers(2, 5, plan.n_rings + 1)[ring]
    cell = ring * 1000 + (np.arange(len(members)) - ring_first) // cell_size
    joins = rng.random(len(members)) < 0.85
    _, cell_index, users_per_cell = np.unique(cell[joins], return_inverse=True, return_counts=True)
    kept = users_per_cell >= 2
    device_of_cell = np.cumsum(kept) - 1
    use = kept[cell_index]
    return members[joins][use], device_of_cell[cell_index[use]], int(kept.sum())


def _merchant_targets(
    rng: np.random.Generator, n_rings: int, product_merchant: np.ndarray, popularity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Three targets per ring: two small shops (the colluding or cashed-out ones) and one of
    the ten most popular merchants. Returns (targets of shape (n_rings, 3), merchant size)."""
    n_merchants = int(product_merchant.max()) + 1
    mass = np.bincount(product_merchant, popularity, minlength=n_merchants)
    n_products = np.bincount(product_merchant, minlength=n_merchants)
    popular = np.argsort(-mass, kind="stable")[: max(1, min(10, n_merchants // 5))]
    small = np.flatnonzero(n_products <= np.quantile(n_products, 0.9))
    small = small[~np.isin(small, popular)]
    targets = np.stack(
        [
            rng.choice(small, n_rings),
            rng.choice(small, n_rings),
            rng.choice(popular, n_rings),
        ],
        axis=1,
    )
    return targets, n_products


def sync_orders(
    rng: np.random.Generator,
    plan: RolePlan,
    sync: SyncPlan,
    created: np.ndarray,
    product_merchant: np.ndarray,
    popularity: np.ndarray,
    end: int,
) -> OrderBatch:
    """Synchronised orders: 3-6 windows per ring over 10-40 days from ``t0``; in each window
    60-95% of the members order 1-2 times at one of the ring's three target merchants, within
    hours of the window's centre (coordinated: a spread of 0.5-3 hours; fragmented: 1-5).
    Coordinated rings charge back 10-30% of these orders, fragmented rings 30-50%.
    """
    n_rings = sync.n_rings
    n_windows = rng.integers(3, 7, n_rings)
    win_ring = np.repeat(np.arange(n_rings), n_windows)
    span = (10 + 30 * rng.random(n_rings)) * DAY
    span = np.clip(np.minimum(span, end - 2 * DAY - sync.t0), 0, None)
    offset = rng.random(len(win_ring)) * span[win_ring]
    offset[np.r_[0, np.cumsum(n_windows)[:-1]]] = 0  # the first window opens at t0
    centre = sync.t0[win_ring] + offset.astype(np.int64)
    targets, n_products = _merchant_targets(rng, n_rings, product_merchant, popularity)
    win_merchant = targets[win_ring, rng.integers(0, 3, len(win_ring))]

    members = np.flatnonzero(np.isin(plan.role, (COORDINATED, FRAGMENTED)))
    members = members[np.argsort(plan.ring[members], kind="stable")]
    ring_size = np.bincount(plan.ring[members] - sync.first, minlength=n_rings)
    ring_start = np.r_[0, np.cumsum(ring_size)[:-1]]
    # every (window, member of the window's ring) pair; then who turns out in each window
    per_window = ring_size[win_ring]
    pair_window = np.repeat(np.arange(len(win_ring)), per_window)
    position = np.arange(len(pair_window)) - np.repeat(
        np.cumsum(per_window) - per_window, per_window
    )
    pair_user = members[ring_start[win_ring[pair_window]] + position]
    turnout = 0.6 + 0.35 * rng.random(len(win_ring))
    came = rng.random(len(pair_window)) < turnout[pair_window]
    n_orders = 1 + (rng.random(int(came.sum())) < 0.35)
    window = np.repeat(pair_window[came], n_orders)
    user = np.repeat(pair_user[came], n_orders)

    spread = np.where(sync.fragmented, 1 + 4 * rng.random(n_rings), 0.5 + 2.5 * rng.random(n_rings))
    jitter = np.clip(rng.normal(0.0, 1.0, len(user)), -2.0, 2.0) * spread[win_ring[window]] * HOUR
    ts = np.clip(centre[window] + jitter.astype(np.int64), created[user] + 600, end - 1)
    merchant = win_merchant[window]
    first_product = np.searchsorted(product_merchant, merchant)
    product = first_product + (rng.random(len(user)) * n_products[merchant]).astype(np.int64)
    chargeback = np.where(sync.fragmented, 0.3, 0.1) + 0.2 * rng.random(n_rings)
    other = rng.choice([PAID, REFUNDED, CANCELLED], len(user), p=[0.8, 0.15, 0.05])
    hit = rng.random(len(user)) < chargeback[win_ring[window]]
    status = np.where(hit, CHARGEBACK, other)
    kind = np.full(len(user), SYNC_ORDER, dtype=np.int8)
    return OrderBatch(user, product, ts.astype(np.int64), status.astype(np.int64), kind)


def sync_reviews(
    rng: np.random.Generator,
    orders: OrderBatch,
    role: np.ndarray,
    category: np.ndarray,
    end: int,
) -> pd.DataFrame:
    """Coordinated members review half of their paid or refunded synchronised orders
    (fragmented: 15%), 1-12 hours after the order, four or five stars, in ordinary varied
    words: the signal is the timing and the place, not copied text."""
    chance = np.where(role[orders.user] == COORDINATED, 0.5, 0.15)
    eligible = (orders.kind == SYNC_ORDER) & (orders.status <= REFUNDED)
    reviewed = np.flatnonzero(eligible & (rng.random(len(chance)) < chance))
    rating = np.where(rng.random(len(reviewed)) < 0.65, 5, 4)
    delay = ((1 + 11 * rng.random(len(reviewed))) * HOUR).astype(np.int64)
    return pd.DataFrame(
        {
            "user": orders.user[reviewed],
            "product": orders.product[reviewed],
            "rating": rating,
            "text": compose_reviews(rng, category[orders.product[reviewed]], rating),
            "ts": np.minimum(orders.ts[reviewed] + delay, end - 1),
        }
    )
