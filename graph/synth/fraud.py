"""Planted fraud typologies for the synthetic marketplace (the ground truth to detect).

Kept apart from the legit-behaviour code so each typology can be read, switched and tuned on
its own. Everything here returns index arrays (users, products, devices, seconds since epoch);
the caller in ``graph.synth.marketplace`` turns them into ids and rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEGIT, FARM, REVIEW_RING, LONE, BUST_OUT, TAKEOVER = 0, 1, 2, 3, 4, 5
COORDINATED, FRAGMENTED = 6, 7  # planted by graph.synth.rings
ROLE_NAMES = (
    "legit",
    "device_farm",
    "review_ring",
    "lone",
    "bust_out",
    "account_takeover",
    "coordinated_ring",
    "fragmented_ring",
)
# Accounts opened by fraudsters (not established or taken-over ones): camouflage and fraud
# recency apply to these, and their KYC and email age look like fraud.
FRAUD_OPENED = (FARM, REVIEW_RING, LONE, COORDINATED, FRAGMENTED)
PAID, REFUNDED, CHARGEBACK, CANCELLED = 0, 1, 2, 3
ORDINARY, FARM_BURST, REVIEW_SEED, BUST_OUT_SPIKE, TAKEOVER_SPREE = 0, 1, 2, 3, 4
SYNC_ORDER, LONE_FRAUD = 5, 6  # a ring's synchronised orders; a lone fraudster's own orders
DAY = 86_400
HOUR = 3_600


@dataclass(frozen=True)
class RolePlan:
    """Who is fraud and in which ring.

    Rings are numbered farm rings first, then review, coordinated and fragmented rings.
    """

    role: np.ndarray  # per user: one of the role constants above
    ring: np.ndarray  # per user: ring index, -1 for users outside rings
    n_farm_rings: int
    n_review_rings: int
    n_coordinated_rings: int = 0
    n_fragmented_rings: int = 0

    @property
    def n_rings(self) -> int:
        return (
            self.n_farm_rings
            + self.n_review_rings
            + self.n_coordinated_rings
            + self.n_fragmented_rings
        )


@dataclass(frozen=True)
class OrderBatch:
    """Orders as parallel arrays; ``kind`` says which behaviour produced them."""

    user: np.ndarray
    product: np.ndarray
    ts: np.ndarray
    status: np.ndarray
    kind: np.ndarray  # ORDINARY, FARM_BURST, ... : the order kind constants above


@dataclass(frozen=True)
class Episodes:
    """Per user: when the account holder's own activity stops and the late fraud burst runs.

    For bust-out users the burst is the spike of high-value orders before they default; for
    account-takeover users it starts with the first login from the attacker's new device.
    Other users keep their own activity to the end of the span and have no burst.
    """

    orders_end: np.ndarray  # the holder's ordinary orders stay before this second
    logins_end: np.ndarray  # and the holder's own sessions (not the attacker's) before this
    burst_start: np.ndarray  # equals orders_end for bust-out and takeover users
    burst_len: np.ndarray  # seconds; 0 for users without a burst


def _ring_sizes(rng: np.random.Generator, target: int, low: int, high: int) -> np.ndarray:
    """Ring sizes in [low, high] whose sum stays within ``target`` members."""
    sizes = rng.integers(low, high + 1, target // low + 1)
    kept = sizes[np.cumsum(sizes) <= target]
    rest = target - int(kept.sum())  # < high: the next drawn size did not fit
    if rest >= low:  # one smaller ring takes the rest, so members stay within low-1 of target
        kept = np.append(kept, rest)
    return kept.astype(np.int64)


def plan_roles(
    rng: np.random.Generator,
    n_users: int,
    farm_share: float,
    n_review_rings: int,
    lone_share: float,
    bust_out_share: float = 0.0,
    takeover_share: float = 0.0,
) -> RolePlan:
    """Pick fraud users at random positions so ids do not reveal ring membership."""
    farm_sizes = _ring_sizes(rng, round(farm_share * n_users), 5, 30)
    review_sizes = rng.integers(8, 26, n_review_rings)
    sizes = np.concatenate([farm_sizes, review_sizes]).astype(np.int64)
    n_in_rings = int(sizes.sum())
    n_alone = [round(share * n_users) for share in (lone_share, bust_out_share, takeover_share)]
    if n_in_rings + sum(n_alone) > n_users // 2:
        raise ValueError("too many fraud users for n_users; lower the fraud shares")
    shuffled = rng.permutation(n_users)
    role = np.full(n_users, LEGIT, dtype=np.int8)
    ring = np.full(n_users, -1, dtype=np.int64)
    ring_members = shuffled[:n_in_rings]
    ring[ring_members] = np.repeat(np.arange(len(sizes)), sizes)
    role[ring_members] = np.where(ring[ring_members] < len(farm_sizes), FARM, REVIEW_RING)
    alone = shuffled[n_in_rings : n_in_rings + sum(n_alone)]
    role[alone] = np.repeat(np.array([LONE, BUST_OUT, TAKEOVER], dtype=np.int8), n_alone)
    return RolePlan(role, ring, len(farm_sizes), n_review_rings)


def ring_start_times(rng: np.random.Generator, plan: RolePlan, start: int, end: int) -> np.ndarray:
    """Burst start per ring, leaving room after it for the ring's activity window."""
    n_rings = plan.n_farm_rings + plan.n_review_rings
    earliest = np.where(np.arange(n_rings) < plan.n_farm_rings, start, start + 20 * DAY)
    return earliest + (rng.random(n_rings) * (end - 10 * DAY - earliest)).astype(np.int64)


def ring_created_at(
    rng: np.random.Generator, plan: RolePlan, ring_t0: np.ndarray, created: np.ndarray
) -> np.ndarray:
    """Farm accounts are created in a 2-day burst; review accounts age up to 20 days first."""
    created = created.copy()
    farm = plan.role == FARM
    created[farm] = ring_t0[plan.ring[farm]] + (rng.random(farm.sum()) * 2 * DAY).astype(np.int64)
    review = plan.role == REVIEW_RING
    aged = (rng.random(review.sum()) * 20 * DAY).astype(np.int64)
    created[review] = ring_t0[plan.ring[review]] - aged
    return created


def farm_device_edges(
    rng: np.random.Generator, plan: RolePlan
) -> tuple[np.ndarray, np.ndarray, int]:
    """Each farm ring gets 1-3 devices; every member uses the first and maybe the others.

    The ring's first member uses all of them, so no device is left without a user.
    Returns (edge_user, edge_device, n_devices) with devices numbered from 0.
    """
    devices_per_ring = rng.integers(1, 4, plan.n_farm_rings)
    ring_first = np.concatenate([[0], np.cumsum(devices_per_ring)[:-1]]).astype(np.int64)
    members = np.flatnonzero(plan.role == FARM)
    member_ring = plan.ring[members]
    leader = np.zeros(len(members), dtype=bool)
    leader[np.unique(member_ring, return_index=True)[1]] = True
    users: list[np.ndarray] = []
    devices: list[np.ndarray] = []
    for slot in range(3):
        wanted = (slot == 0) | leader | (rng.random(len(members)) < 0.6)
        used = (slot < devices_per_ring[member_ring]) & wanted
        users.append(members[used])
        devices.append(ring_first[member_ring[used]] + slot)
    return np.concatenate(users), np.concatenate(devices), int(devices_per_ring.sum())


def farm_burst_orders(
    rng: np.random.Generator, plan: RolePlan, ring_t0: np.ndarray, price: np.ndarray
) -> OrderBatch:
    """Bursts of 3-10 high-value orders per member in a 1-3 day window, ~40-60% chargebacks."""
    members = np.flatnonzero(plan.role == FARM)
    n_per_member = rng.integers(3, 11, len(members))
    user = np.repeat(members, n_per_member)
    ring = plan.ring[user]
    n_rings = plan.n_farm_rings
    burst_start = ring_t0[:n_rings] + ((2 + 3 * rng.random(n_rings)) * DAY).astype(np.int64)
    burst_len = ((1 + 2 * rng.random(n_rings)) * DAY).astype(np.int64)
    ts = burst_start[ring] + (rng.random(len(user)) * burst_len[ring]).astype(np.int64)
    expensive = np.flatnonzero(price >= np.quantile(price, 0.9))
    product = expensive[rng.integers(0, len(expensive), len(user))]
    chargeback_rate = 0.4 + 0.2 * rng.random(n_rings)
    other = rng.choice([PAID, REFUNDED, CANCELLED], len(user), p=[0.85, 0.1, 0.05])
    status = np.where(rng.random(len(user)) < chargeback_rate[ring], CHARGEBACK, other)
    return OrderBatch(user, product, ts, status, np.ones(len(user), dtype=np.int8))


def _colluding_merchants(
    rng: np.random.Generator, n_rings: int, product_merchant: np.ndarray, n_merchants: int
) -> np.ndarray:
    """Mid-sized merchants (3+ products, not the biggest tenth) that buy fake reviews."""
    n_products = np.bincount(product_merchant, minlength=n_merchants)
    candidates = np.flatnonzero((n_products >= 3) & (n_products <= np.quantile(n_products, 0.9)))
    if len(candidates) == 0:
        candidates = np.flatnonzero(n_products >= 2)
    return rng.choice(candidates, n_rings, replace=len(candidates) < n_rings)


def review_ring_activity(
    rng: np.random.Generator,
    plan: RolePlan,
    ring_t0: np.ndarray,
    product_merchant: np.ndarray,
    price: np.ndarray,
    n_merchants: int,
) -> tuple[OrderBatch, np.ndarray, np.ndarray]:
    """Small paid orders on the colluding merchant's cheaper products, then a 5-star review.

    Returns the seed orders, the review timestamps (one per seed order, 0.5-3 days later) and
    the merchant each ring boosts.
    """
    first_ring = plan.n_farm_rings
    merchants = _colluding_merchants(rng, plan.n_review_rings, product_merchant, n_merchants)
    members = np.flatnonzero(plan.role == REVIEW_RING)
    n_per_member = rng.integers(1, 4, len(members))
    user = np.repeat(members, n_per_member)
    local_ring = plan.ring[user] - first_ring
    product = np.empty(len(user), dtype=np.int64)
    for ring_index, merchant in enumerate(merchants.tolist()):
        mine = np.flatnonzero(product_merchant == merchant)
        cheap = mine[np.argsort(price[mine], kind="stable")][: max(2, len(mine) // 2)]
        rows = np.flatnonzero(local_ring == ring_index)
        product[rows] = cheap[rng.integers(0, len(cheap), len(rows))]
    ts = ring_t0[plan.ring[user]] + (rng.random(len(user)) * 5 * DAY).astype(np.int64)
    review_ts = ts + ((0.5 + 2.5 * rng.random(len(user))) * DAY).astype(np.int64)
    status = np.full(len(user), PAID, dtype=np.int64)
    batch = OrderBatch(user, product, ts, status, np.full(len(user), 2, dtype=np.int8))
    return batch, review_ts, merchants


def plan_episodes(rng: np.random.Generator, plan: RolePlan, start: int, end: int) -> Episodes:
    """Late burst windows: a bust-out spike of 2-7 days ending 0-7 days before ``end``; a
    takeover some time after the first quarter of the span, its spree lasting 2-48 hours.
    """
    n = len(plan.role)
    bust_len = ((2 + 5 * rng.random(n)) * DAY).astype(np.int64)
    bust_start = end - bust_len - (rng.random(n) * 7 * DAY).astype(np.int64)
    spree_len = ((2 + 46 * rng.random(n)) * HOUR).astype(np.int64)
    earliest = start + (end - start) // 4
    takeover_at = earliest + (rng.random(n) * (end - 3 * DAY - earliest)).astype(np.int64)
    bust, takeover = plan.role == BUST_OUT, plan.role == TAKEOVER
    burst_start = np.select([bust, takeover], [bust_start, takeover_at], end)
    burst_len = np.select([bust, takeover], [bust_len, spree_len], 0)
    logins_end = np.where(takeover, burst_start, burst_start + burst_len)  # owner locked out
    return Episodes(burst_start, logins_end, burst_start, burst_len)


def established_created_at(
    rng: np.random.Generator, plan: RolePlan, episodes: Episodes, created: np.ndarray
) -> np.ndarray:
    """Bust-out accounts are built up for 3-16 months before the spike; taken-over accounts
    are at least a month old at the takeover. Both keep an earlier creation time if drawn.
    """
    n = len(created)
    history = np.where(
        plan.role == BUST_OUT, (90 + 400 * rng.random(n)) * DAY, (30 + 400 * rng.random(n)) * DAY
    ).astype(np.int64)
    latest = episodes.burst_start - history
    return np.where(np.isin(plan.role, (BUST_OUT, TAKEOVER)), np.minimum(created, latest), created)


def _burst_orders(
    rng: np.random.Generator,
    members: np.ndarray,
    n_per_member: np.ndarray,
    episodes: Episodes,
    price: np.ndarray,
    lead: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orders on the dearest tenth of products inside each member's burst window.

    ``lead`` seconds pass between the window's start and the first possible order.
    Returns (user, product, ts).
    """
    user = np.repeat(members, n_per_member)
    window = np.maximum(episodes.burst_len[user] - lead, 1)
    ts = episodes.burst_start[user] + lead + (rng.random(len(user)) * window).astype(np.int64)
    expensive = np.flatnonzero(price >= np.quantile(price, 0.9))
    product = expensive[rng.integers(0, len(expensive), len(user))]
    return user, product, ts


def bust_out_orders(
    rng: np.random.Generator, plan: RolePlan, episodes: Episodes, price: np.ndarray
) -> OrderBatch:
    """The bust-out spike: 6-15 high-value orders in the burst window, then no repayment.

    The bundle has no "unpaid" status: an order that was never paid for (no money taken, none
    returned, no card dispute) is ``cancelled``, so 75-95% of each user's spike is cancelled;
    the rest were paid while the account still looked good. No chargebacks: there is no card
    holder to dispute anything, the loss shows as a credit default.
    """
    members = np.flatnonzero(plan.role == BUST_OUT)
    user, product, ts = _burst_orders(
        rng, members, rng.integers(6, 16, len(members)), episodes, price, 0
    )
    unpaid_rate = 0.75 + 0.2 * rng.random(len(plan.role))
    status = np.where(rng.random(len(user)) < unpaid_rate[user], CANCELLED, PAID)
    return OrderBatch(user, product, ts, status, np.full(len(user), BUST_OUT_SPIKE, dtype=np.int8))


def takeover_orders(
    rng: np.random.Generator, plan: RolePlan, episodes: Episodes, price: np.ndarray
) -> OrderBatch:
    """The takeover spree: 2-8 high-value orders from 10 minutes after the new device's first
    login, 50-90% charged back by the real card holder; the rest paid or stopped (cancelled).
    """
    members = np.flatnonzero(plan.role == TAKEOVER)
    user, product, ts = _burst_orders(
        rng, members, rng.integers(2, 9, len(members)), episodes, price, 600
    )
    chargeback_rate = 0.5 + 0.4 * rng.random(len(plan.role))
    other = np.where(rng.random(len(user)) < 0.7, PAID, CANCELLED)
    status = np.where(rng.random(len(user)) < chargeback_rate[user], CHARGEBACK, other)
    return OrderBatch(user, product, ts, status, np.full(len(user), TAKEOVER_SPREE, dtype=np.int8))


def takeover_device_edges(plan: RolePlan) -> tuple[np.ndarray, np.ndarray, int]:
    """One new device per taken-over account, used by nobody else (devices numbered from 0)."""
    members = np.flatnonzero(plan.role == TAKEOVER)
    return members, np.arange(len(members)), len(members)
