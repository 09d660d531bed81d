"""What real platforms see and a tidy simulation lacks: recent fraud, late labels, camouflage.

- *Fraud recency*: most fraud sits in the newest accounts. A chosen share of the accounts that
  fraudsters open (rings and lone fraudsters) is created in the last quarter of the span;
  the rest before it. Bust-out and taken-over accounts are established by design and keep
  their history.
- *Label maturity*: an outcome is known only once it has had time to show. A chargeback
  arrives 0.5-1.5 times the maturity delay after its order, then is reported within three
  days; fraud without chargebacks (review seeding, a bust-out's unpaid spike) is found the
  same delay after its first fraudulent order; a clean account is called clean once it is
  one delay old. This time is ``observed_at`` in labels.csv; with maturity switched on, only
  labels known by the end of the span are exported.
- *Camouflage*: fraud accounts also shop like anyone else. The knob sets the share of their
  orders that are ordinary, legit-looking ones.

All randomness comes from streams apart from the generator's main one, so with the knobs off
the rest of the marketplace is byte-identical to a run without them.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from graph.synth.fraud import (
    BUST_OUT,
    CANCELLED,
    CHARGEBACK,
    DAY,
    FRAUD_OPENED,
    LONE,
    LONE_FRAUD,
    ORDINARY,
    PAID,
    REFUNDED,
    OrderBatch,
    RolePlan,
)
from graph.synth.rings import SyncPlan


def last_quarter(start: int, end: int) -> int:
    """The first second of the span's last quarter."""
    return start + 3 * (end - start) // 4


def recent_units(
    rng: np.random.Generator, plan: RolePlan, share: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pick which rings and lone fraudsters are recent, so that ``share`` of the accounts
    fraudsters opened are: ``share`` of the lone fraudsters, and whole rings (in random order,
    each taken if it still fits) for ``share`` of the ring members; lone fraudsters then make
    up what the whole rings missed. Returns (recent per ring, recent per user)."""
    sizes = np.bincount(plan.ring[plan.ring >= 0], minlength=plan.n_rings)
    target = round(share * int(sizes.sum()))
    recent_ring = np.zeros(plan.n_rings, dtype=bool)
    taken = 0
    for ring in rng.permutation(plan.n_rings).tolist():  # a few hundred rings per 100k users
        if taken + sizes[ring] <= target:
            recent_ring[ring] = True
            taken += int(sizes[ring])
    lone = rng.permutation(np.flatnonzero(plan.role == LONE))
    n_recent = round(share * len(lone)) + target - taken
    recent_user = np.zeros(len(plan.role), dtype=bool)
    recent_user[lone[: int(np.clip(n_recent, 0, len(lone)))]] = True
    in_ring = plan.ring >= 0
    recent_user[in_ring] = recent_ring[plan.ring[in_ring]]
    return recent_ring, recent_user


def _between(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    high = np.maximum(high, low)
    return low + (rng.random(len(low)) * (high - low)).astype(np.int64)


def recent_ring_starts(
    rng: np.random.Generator,
    recent_ring: np.ndarray,
    lead: np.ndarray,
    tail: np.ndarray,
    room: np.ndarray,
    earliest: np.ndarray,
    start: int,
    end: int,
) -> np.ndarray:
    """Ring start times (``t0``) that put the ring's accounts, created from ``t0 - lead`` to
    ``t0 + tail``, inside the last quarter for recent rings and before it for the others,
    leaving ``room`` seconds of activity after ``t0`` where the span allows."""
    quarter = last_quarter(start, end)
    low = np.where(recent_ring, quarter + lead, earliest)
    high = np.where(recent_ring, end - room, quarter - tail - 1)
    return _between(rng, low, high)


def recent_starts(
    rng: np.random.Generator,
    plan: RolePlan,
    recent_ring: np.ndarray,
    sync: SyncPlan,
    start: int,
    end: int,
) -> tuple[np.ndarray, SyncPlan]:
    """Ring start times under fraud recency: recent rings' accounts fall in the last quarter.

    Farm accounts are created in the two days after ``t0``, review accounts in the twenty
    days before it, coordinated and fragmented members over their ring's lead before it (for
    a recent ring cut so that two weeks of activity still fit in the span).
    """
    n_old = plan.n_farm_rings + plan.n_review_rings
    farm = np.arange(n_old) < plan.n_farm_rings
    quarter = last_quarter(start, end)
    room = np.r_[np.full(n_old, 10 * DAY), np.full(sync.n_rings, 15 * DAY)]
    recent_sync = recent_ring[n_old:]
    sync_lead = np.where(
        recent_sync, np.minimum(sync.lead, max(end - 15 * DAY - quarter, DAY)), sync.lead
    )
    t0 = recent_ring_starts(
        rng,
        recent_ring,
        lead=np.r_[np.where(farm, 0, 20 * DAY), sync_lead],
        tail=np.r_[np.where(farm, 2 * DAY, 0), np.zeros(sync.n_rings, dtype=np.int64)],
        room=room,
        earliest=np.r_[np.where(farm, start, start + 20 * DAY), sync_lead + start],
        start=start,
        end=end,
    )
    return t0[:n_old], replace(sync, t0=t0[n_old:], lead=sync_lead)


def recent_lone_created(
    rng: np.random.Generator,
    plan: RolePlan,
    recent_user: np.ndarray,
    created: np.ndarray,
    start: int,
    end: int,
) -> np.ndarray:
    """Recent lone fraudsters open their account in the last quarter; the others before it."""
    quarter = last_quarter(start, end)
    created = created.copy()
    lone = plan.role == LONE
    recent = np.flatnonzero(lone & recent_user)
    created[recent] = _between(rng, np.full(len(recent), quarter), np.full(len(recent), end - DAY))
    late = np.flatnonzero(lone & ~recent_user & (created >= quarter))
    created[late] = _between(rng, np.full(len(late), start), np.full(len(late), quarter - 1))
    return created


def camouflage(
    rng: np.random.Generator,
    plan: RolePlan,
    orders: OrderBatch,
    created: np.ndarray,
    orders_end: np.ndarray,
    popularity: np.ndarray,
    share: float,
    start: int,
) -> OrderBatch:
    """Replace fraud accounts' ordinary orders so that ``share`` of their orders are ordinary.

    Each fraud account (all typologies but takeover, whose ordinary orders are the victim's)
    keeps its fraudulent orders (bursts, seeds, spikes, synchronised orders; a lone
    fraudster's own chargeback-prone orders) and gets ``k * share / (1 - share)`` ordinary
    ones in expectation, ``k`` being its fraudulent count: legit status rates, products by
    popularity, spread from its creation to when its own activity ends.
    """
    n = len(plan.role)
    fraudster = np.isin(plan.role, (*FRAUD_OPENED, BUST_OUT))
    kind = np.where(
        (orders.kind == ORDINARY) & (plan.role[orders.user] == LONE), LONE_FRAUD, orders.kind
    )
    kept = ~((kind == ORDINARY) & fraudster[orders.user])
    n_fraud = np.bincount(orders.user[kept & (kind != ORDINARY)], minlength=n)
    expected = np.where(fraudster, n_fraud * share / (1.0 - share), 0.0)
    count = np.floor(expected + rng.random(n)).astype(np.int64)
    user = np.repeat(np.arange(n), count)
    first = np.maximum(created, start)
    ts = first[user] + (rng.random(len(user)) * (orders_end[user] - first[user])).astype(np.int64)
    code = (rng.random((len(user), 1)) >= np.cumsum([0.05, 0.004, 0.04])).sum(axis=1)
    status = np.array([REFUNDED, CHARGEBACK, CANCELLED, PAID])[code]
    product = rng.choice(len(popularity), len(user), p=popularity)
    return OrderBatch(
        np.concatenate([orders.user[kept], user]),
        np.concatenate([orders.product[kept], product]),
        np.concatenate([orders.ts[kept], ts]),
        np.concatenate([orders.status[kept], status]),
        np.concatenate([kind[kept], np.full(len(user), ORDINARY)]).astype(np.int8),
    )


def observed_at(
    rng: np.random.Generator,
    orders: OrderBatch,
    created: np.ndarray,
    is_fraud: np.ndarray,
    delay_days: float,
) -> np.ndarray:
    """When each user's outcome becomes known (epoch seconds), before any export cut-off.

    Fraud with a chargeback: the first chargeback to arrive (each arrives 0.5-1.5 delays after
    its order) plus a reporting lag of up to three days. Fraud without one: 0.5-1.5 delays
    after its first fraudulent order (its first order when none stands out) plus the lag.
    Legit: one delay after the account's creation plus the lag.
    """
    n = len(created)
    delay = delay_days * DAY
    never = np.iinfo(np.int64).max
    arrives = orders.ts + (delay * (0.5 + rng.random(len(orders.ts)))).astype(np.int64)
    first_chargeback = np.full(n, never)
    cb = orders.status == CHARGEBACK
    np.minimum.at(first_chargeback, orders.user[cb], arrives[cb])
    first_fraud_order = np.full(n, never)
    odd = orders.kind != ORDINARY
    np.minimum.at(first_fraud_order, orders.user[odd], arrives[odd])
    first_order = np.full(n, never)
    np.minimum.at(first_order, orders.user, arrives)
    found = np.where(
        first_chargeback < never,
        first_chargeback,
        np.where(first_fraud_order < never, first_fraud_order, first_order),
    )
    found = np.where(found < never, found, created + delay)
    lag = (rng.random(n) * 3 * DAY).astype(np.int64)
    return np.where(is_fraud, found, created + delay) + lag
