"""What users do: ordinary orders (status rates follow a latent credit risk), the device an
order carries, and the reviews that follow paid or refunded orders."""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.synth import fraud
from graph.synth.config import GeneratorConfig
from graph.synth.fraud import (
    BUST_OUT,
    CANCELLED,
    CHARGEBACK,
    DAY,
    FARM,
    FARM_BURST,
    LONE,
    ORDINARY,
    PAID,
    REFUNDED,
    TAKEOVER_SPREE,
)
from graph.synth.population import TAKEOVER_DEVICE, Edges, Market, uniform_between
from graph.synth.text import compose_reviews


def ordinary_orders(
    rng: np.random.Generator,
    plan: fraud.RolePlan,
    created: np.ndarray,
    risk: np.ndarray,
    market: Market,
    orders_end: np.ndarray,
    start: int,
    end: int,
) -> fraud.OrderBatch:
    """Heavy-tailed order counts; status rates follow each user's latent credit risk.

    Orders stop at ``orders_end`` per user; bust-out accounts build a short, clean history
    (4-15 orders, a third of the usual refunds and cancellations) for their spike to follow.
    """
    n = len(created)
    first = np.maximum(created, start)
    active = (orders_end - first) / (end - start)
    count = 1 + (rng.lognormal(2.1, 1.0, n) * (0.3 + 0.7 * active)).astype(np.int64)
    count = np.select(
        [plan.role == FARM, plan.role == BUST_OUT],
        [rng.integers(1, 5, n), rng.integers(4, 16, n)],
        np.minimum(count, 400),
    )
    user = np.repeat(np.arange(n), count)
    scale = np.exp(0.5 * risk - 0.125) * np.where(plan.role == BUST_OUT, 0.3, 1.0)
    p_refund, p_cancel = 0.05 * scale, 0.04 * scale
    p_chargeback = np.where(plan.role == LONE, 0.15 + 0.2 * rng.random(n), 0.004 * scale)
    thresholds = np.cumsum(np.stack([p_refund, p_chargeback, p_cancel], axis=1), axis=1)
    draws = rng.random(len(user))
    code = (draws[:, None] >= thresholds[user]).sum(axis=1)
    status = np.array([REFUNDED, CHARGEBACK, CANCELLED, PAID])[code]
    product = rng.choice(len(market.price), len(user), p=market.popularity)
    ts = uniform_between(rng, first[user], orders_end[user])
    return fraud.OrderBatch(user, product, ts, status, np.full(len(user), ORDINARY, dtype=np.int8))


def concat(batches: list[fraud.OrderBatch]) -> fraud.OrderBatch:
    return fraud.OrderBatch(
        *(
            np.concatenate([getattr(b, f) for b in batches])
            for f in ("user", "product", "ts", "status", "kind")
        )
    )


def order_devices(
    rng: np.random.Generator, edges: Edges, orders: fraud.OrderBatch, n_users: int
) -> np.ndarray:
    """A random device of the ordering user for most orders; -1 where the export has none.

    A takeover device is the last of its user's edges: the owner's orders pick among the
    others, every order of the takeover spree carries the takeover device.
    """
    first_edge = np.searchsorted(edges.user, np.arange(n_users))
    own = edges.kind != TAKEOVER_DEVICE
    n_own = np.bincount(edges.user, own, minlength=n_users).astype(np.int64)
    spree = orders.kind == TAKEOVER_SPREE
    offset = (rng.random(len(orders.user)) * n_own[orders.user]).astype(np.int64)
    pick = first_edge[orders.user] + np.where(spree, n_own[orders.user], offset)
    chance = np.select([orders.kind == FARM_BURST, spree], [0.95, 1.0], 0.8)
    has_device = rng.random(len(orders.user)) < chance
    return np.where(has_device, edges.device[pick], -1)


def ordinary_reviews(
    rng: np.random.Generator,
    orders: fraud.OrderBatch,
    category: np.ndarray,
    config: GeneratorConfig,
    end: int,
) -> pd.DataFrame:
    """Reviews on a subset of paid/refunded orders, ratings skewed high unless refunded."""
    chance = np.select(
        [orders.kind == ORDINARY, orders.kind == FARM_BURST], [config.review_rate, 0.02], 0.0
    )
    reviewed = np.flatnonzero((orders.status <= REFUNDED) & (rng.random(len(chance)) < chance))
    happy = orders.status[reviewed] == PAID
    rating = (
        np.where(
            happy,
            rng.choice(5, len(reviewed), p=[0.04, 0.05, 0.1, 0.28, 0.53]),
            rng.choice(5, len(reviewed), p=[0.35, 0.25, 0.2, 0.12, 0.08]),
        )
        + 1
    )
    delay = (3600 + rng.exponential(4 * DAY, len(reviewed))).astype(np.int64)
    text = compose_reviews(rng, category[orders.product[reviewed]], rating)
    return pd.DataFrame(
        {
            "user": orders.user[reviewed],
            "product": orders.product[reviewed],
            "rating": rating,
            "text": text,
            "ts": np.minimum(orders.ts[reviewed] + delay, end - 1),
        }
    )
