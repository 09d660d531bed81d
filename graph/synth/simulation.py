"""One simulated marketplace: every behaviour run in a fixed order from one seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from graph.synth import fraud, labels, realism, rings
from graph.synth.activity import concat, order_devices, ordinary_orders, ordinary_reviews
from graph.synth.config import GeneratorConfig, epoch_seconds
from graph.synth.fraud import (
    DAY,
    REVIEW_SEED,
)
from graph.synth.population import Edges, Market, make_edges, make_logins, make_market, make_users
from graph.synth.text import ring_reviews


@dataclass(frozen=True)
class Simulation:
    """Everything simulated, as index arrays; turned into id-keyed tables by ``tables``."""

    users: pd.DataFrame
    plan: fraud.RolePlan
    market: Market
    edges: Edges
    logins: tuple[np.ndarray, np.ndarray, np.ndarray]  # user, device, ts
    orders: fraud.OrderBatch
    amount: np.ndarray
    order_device: np.ndarray  # -1 where the order carries no device
    reviews: pd.DataFrame
    default: np.ndarray


def simulate(config: GeneratorConfig) -> Simulation:
    """Run every behaviour in a fixed order so a seed always yields the same marketplace.

    The realistic knobs draw from an auxiliary stream (``aux``) and only when switched on, so
    the main stream, and the default marketplace, never shift because they exist.
    """
    rng = np.random.default_rng(config.seed)
    aux = np.random.default_rng([config.seed, 2])
    start = epoch_seconds(config.start)
    end = start + config.days * DAY
    n = config.n_users
    auto_review_rings = max(1, round(n / 5000))
    n_review_rings = (
        (config.review_ring_count if config.review_ring_count is not None else auto_review_rings)
        if config.review_rings
        else 0
    )
    farm_share = config.ring_share if config.device_farm_rings else 0.0
    plan = fraud.plan_roles(
        rng,
        n,
        farm_share,
        n_review_rings,
        config.lone_fraud_share,
        config.bust_out_share,
        config.account_takeover_share,
    )
    plan = rings.add_ring_roles(
        aux, plan, config.coordinated_ring_share, config.fragmented_ring_share
    )
    ring_t0 = fraud.ring_start_times(rng, plan, start, end)
    sync = rings.plan_sync_rings(aux, plan, start, end)
    recent_user = None
    if config.fraud_recency is not None:
        recent_ring, recent_user = realism.recent_units(aux, plan, config.fraud_recency)
        ring_t0, sync = realism.recent_starts(aux, plan, recent_ring, sync, start, end)
    episodes = fraud.plan_episodes(rng, plan, start, end)
    users = make_users(rng, config, plan, ring_t0, episodes, start, end)
    if sync.n_rings > 0:
        users["created"] = rings.sync_created_at(aux, plan, sync, users["created"].to_numpy())
    if recent_user is not None:
        users["created"] = realism.recent_lone_created(
            aux, plan, recent_user, users["created"].to_numpy(), start, end
        )
    created = users["created"].to_numpy()
    market = make_market(rng, n, start)
    category = market.merchant_category[market.product_merchant]
    edges = make_edges(rng, aux, config, plan)
    logins = make_logins(rng, edges, created, episodes, start, end)
    risk = rng.normal(0.0, 1.0, n)
    seeds, seed_review_ts, boosted = fraud.review_ring_activity(
        rng, plan, ring_t0, market.product_merchant, market.price, len(market.merchant_category)
    )
    batches = [
        ordinary_orders(rng, plan, created, risk, market, episodes.orders_end, start, end),
        fraud.farm_burst_orders(rng, plan, ring_t0, market.price),
        seeds,
        fraud.bust_out_orders(rng, plan, episodes, market.price),
        fraud.takeover_orders(rng, plan, episodes, market.price),
    ]
    if sync.n_rings > 0:
        batches.append(
            rings.sync_orders(
                aux, plan, sync, created, market.product_merchant, market.popularity, end
            )
        )
    orders = concat(batches)
    if config.camouflage_share is not None:
        orders = realism.camouflage(
            aux,
            plan,
            orders,
            created,
            episodes.orders_end,
            market.popularity,
            config.camouflage_share,
            start,
        )
    quantity = np.where(orders.kind == REVIEW_SEED, 1, 1 + rng.poisson(0.25, len(orders.user)))
    amount = np.round(
        market.price[orders.product] * quantity * rng.uniform(0.97, 1.03, len(orders.user)), 2
    )
    order_device = order_devices(rng, edges, orders, n)
    ring_texts = ring_reviews(
        rng, plan.ring[seeds.user] - plan.n_farm_rings, market.merchant_category[boosted]
    )
    ring_review_rows = pd.DataFrame(
        {
            "user": seeds.user,
            "product": seeds.product,
            "rating": 5,
            "text": ring_texts,
            "ts": np.minimum(seed_review_ts, end - 1),
        }
    )
    review_parts = [ordinary_reviews(rng, orders, category, config, end), ring_review_rows]
    if sync.n_rings > 0:
        review_parts.append(rings.sync_reviews(aux, orders, plan.role, category, end))
    reviews = pd.concat(review_parts, ignore_index=True)
    default = labels.default_truth(rng, orders, users, amount, risk, plan.role, config.default_rate)
    return Simulation(
        users, plan, market, edges, logins, orders, amount, order_device, reviews, default
    )
