"""Who is in the marketplace: users, merchants and products, who uses which device, and when
they log in. Index arrays only; ``graph.synth.tables`` turns them into id-keyed rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from graph import schema
from graph.synth import fraud, rings
from graph.synth.config import GeneratorConfig
from graph.synth.fraud import (
    DAY,
    FARM,
    FRAUD_OPENED,
    LEGIT,
)
from graph.synth.text import CATEGORIES

COUNTRIES = np.array(["US", "GB", "DE", "FR", "PL", "ES", "BR", "IN"])
COUNTRY_WEIGHTS = np.array([0.3, 0.15, 0.15, 0.1, 0.08, 0.07, 0.08, 0.07])
CATEGORY_WEIGHTS = np.array([0.16, 0.2, 0.15, 0.1, 0.1, 0.09, 0.1, 0.1])
CATEGORY_MEDIAN_PRICE = np.array([120.0, 40.0, 50.0, 25.0, 12.0, 30.0, 45.0, 15.0])
DEVICE_KINDS = np.array(schema.DEVICE_KINDS)
STATUS_NAMES = np.array(schema.ORDER_STATUSES)  # indexed by the codes in graph.synth.fraud
OWN, HOUSEHOLD, PUBLIC, FARM_DEVICE, TAKEOVER_DEVICE, RING_DEVICE = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Market:
    merchant_category: np.ndarray
    merchant_created: np.ndarray
    product_merchant: np.ndarray
    price: np.ndarray
    popularity: np.ndarray  # probability of each product being picked by an ordinary order


@dataclass(frozen=True)
class Edges:
    """User-device usage pairs, sorted by user so a user's devices form one slice."""

    user: np.ndarray
    device: np.ndarray
    kind: np.ndarray  # OWN, HOUSEHOLD, PUBLIC or FARM_DEVICE
    device_kind: np.ndarray  # per device: index into DEVICE_KINDS


def uniform_between(
    rng: np.random.Generator, low: np.ndarray, high: int | np.ndarray
) -> np.ndarray:
    return low + (rng.random(len(low)) * (high - low)).astype(np.int64)


def make_users(
    rng: np.random.Generator,
    config: GeneratorConfig,
    plan: fraud.RolePlan,
    ring_t0: np.ndarray,
    episodes: fraud.Episodes,
    start: int,
    end: int,
) -> pd.DataFrame:
    """Users with creation times, country and two weakly informative features.

    Bust-out and taken-over accounts get legit-looking features: that is what makes them work.
    """
    n = config.n_users
    old = rng.random(n) < config.old_account_share
    created = np.where(
        old,
        start - (rng.random(n) * 730 * DAY).astype(np.int64),
        uniform_between(rng, np.full(n, start), end - DAY),
    )
    created = fraud.ring_created_at(rng, plan, ring_t0, created)
    created = fraud.established_created_at(rng, plan, episodes, created)
    country = rng.choice(len(COUNTRIES), n, p=COUNTRY_WEIGHTS)
    farm = plan.role == FARM
    ring_country = rng.choice(len(COUNTRIES), len(ring_t0), p=COUNTRY_WEIGHTS)
    country[farm] = ring_country[plan.ring[farm]]
    is_fraud = np.isin(plan.role, FRAUD_OPENED)
    kyc = np.where(
        is_fraud,
        rng.choice(4, n, p=[0.25, 0.4, 0.25, 0.1]),
        rng.choice(4, n, p=[0.1, 0.3, 0.4, 0.2]),
    )
    email_age = np.where(is_fraud, rng.lognormal(4.8, 1.2, n), rng.lognormal(5.8, 1.0, n))
    return pd.DataFrame(
        {
            "created": created,
            "country": COUNTRIES[country],
            "feat_kyc_level": kyc,
            "feat_email_age_days": email_age.astype(int),
        }
    )


def make_market(rng: np.random.Generator, n_users: int, start: int) -> Market:
    """Merchants with heavy-tailed sizes; products priced lognormally by category."""
    n_merchants = max(20, n_users // 100)
    n_products = max(2 * n_merchants, n_users // 10)
    category = rng.choice(len(CATEGORIES), n_merchants, p=CATEGORY_WEIGHTS)
    created = start - (rng.random(n_merchants) * 1000 * DAY).astype(np.int64)
    size = rng.pareto(1.2, n_merchants) + 1.0
    extra = rng.choice(n_merchants, n_products - n_merchants, p=size / size.sum())
    product_merchant = np.sort(np.concatenate([np.arange(n_merchants), extra]))
    median = CATEGORY_MEDIAN_PRICE[category[product_merchant]]
    price = np.maximum(np.round(median * rng.lognormal(0.0, 0.6, n_products), 2), 0.5)
    popularity = 1.0 / (rng.permutation(n_products) + 1.0) ** 1.05
    return Market(category, created, product_merchant, price, popularity / popularity.sum())


def household_edges(
    rng: np.random.Generator, legit: np.ndarray, share: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Families of 2-5 legit users sharing one device each (devices numbered from 0)."""
    members = rng.permutation(legit)[: round(share * len(legit))]
    sizes = rng.integers(2, 6, len(members) // 2 + 1)
    sizes = sizes[np.cumsum(sizes) <= len(members)]
    return members[: sizes.sum()], np.repeat(np.arange(len(sizes)), sizes), len(sizes)


def public_edges(
    rng: np.random.Generator, legit: np.ndarray, n_users: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """A few cafe/library devices, each used by 20-100 distinct legit users."""
    n_public = max(2, n_users // 3000)
    sizes = np.minimum(rng.integers(20, 101, n_public), len(legit))
    users = [rng.choice(legit, size, replace=False) for size in sizes.tolist()]
    return np.concatenate(users), np.repeat(np.arange(n_public), sizes), n_public


def make_edges(
    rng: np.random.Generator,
    aux: np.random.Generator,
    config: GeneratorConfig,
    plan: fraud.RolePlan,
) -> Edges:
    """Who uses which device: own devices, households, public devices, device farms and the
    occasional shared devices of fragmented rings."""
    owners = np.flatnonzero(plan.role != FARM)
    n_own = rng.choice([1, 2, 3], len(owners), p=[0.6, 0.3, 0.1])
    groups = [(OWN, (np.repeat(owners, n_own), np.arange(n_own.sum()), int(n_own.sum())))]
    legit = np.flatnonzero(plan.role == LEGIT)
    if config.household_share > 0:
        groups.append((HOUSEHOLD, household_edges(rng, legit, config.household_share)))
    if config.public_devices:
        groups.append((PUBLIC, public_edges(rng, legit, config.n_users)))
    if plan.n_farm_rings > 0:
        groups.append((FARM_DEVICE, fraud.farm_device_edges(rng, plan)))
    if plan.n_fragmented_rings > 0:
        groups.append((RING_DEVICE, rings.fragment_device_edges(aux, plan)))
    groups.append((TAKEOVER_DEVICE, fraud.takeover_device_edges(plan)))  # last per user
    first_device = np.cumsum([0] + [n_new for _, (_, _, n_new) in groups])
    user = np.concatenate([users for _, (users, _, _) in groups])
    device = np.concatenate(
        [
            first + devices
            for first, (_, (_, devices, _)) in zip(first_device[:-1], groups, strict=True)
        ]
    )
    edge_kind = np.concatenate([np.full(len(users), kind) for kind, (users, _, _) in groups])
    device_type = np.concatenate([np.full(n_new, kind) for kind, (_, _, n_new) in groups])
    kind_probs = np.array(
        [
            [0.35, 0.4, 0.2, 0.05],
            [0.4, 0.3, 0.3, 0.0],
            [0.0, 0.0, 0.7, 0.3],
            [0.0, 0.8, 0.0, 0.2],
            [0.1, 0.3, 0.5, 0.1],  # an attacker's device: often a browser or an emulator
            [0.2, 0.5, 0.25, 0.05],  # a fragmented ring's shared phone or laptop
        ]
    )
    cumulative = kind_probs.cumsum(axis=1)[device_type]
    device_kind = (rng.random((len(device_type), 1)) > cumulative[:, :3]).sum(axis=1)
    by_user = np.argsort(user, kind="stable")
    return Edges(user[by_user], device[by_user], edge_kind[by_user], device_kind)


def make_logins(
    rng: np.random.Generator,
    edges: Edges,
    created: np.ndarray,
    episodes: fraud.Episodes,
    start: int,
    end: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Several sessions per user-device pair; farm sessions cluster right after sign-up.

    A holder's own sessions stop at the takeover or at the end of a bust-out spike; the
    takeover device's first session is the takeover itself, the rest fall in the spree.
    """
    rate = np.array([1.0, 1.0, 0.3, 2.0, 1.0, 0.3])[edges.kind]  # ring devices: now and then
    per_edge = 1 + rng.poisson(rate)
    user = np.repeat(edges.user, per_edge)
    device = np.repeat(edges.device, per_edge)
    edge_kind = np.repeat(edges.kind, per_edge)
    base = created[user]
    burst = np.minimum(base + (rng.random(len(user)) * 8 * DAY).astype(np.int64), end - 1)
    own = uniform_between(rng, np.maximum(base, start), episodes.logins_end[user])
    ts = np.where(edge_kind == FARM_DEVICE, burst, own)
    takeover = np.flatnonzero(edge_kind == TAKEOVER_DEVICE)
    first = np.diff(device[takeover], prepend=-1) != 0  # rows of one edge are adjacent
    offset = (rng.random(len(takeover)) * episodes.burst_len[user[takeover]]).astype(np.int64)
    ts[takeover] = episodes.burst_start[user[takeover]] + np.where(first, 0, offset)
    return user, device, ts
