"""Synthetic e-commerce marketplace with planted fraud, written as a bundle of CSV tables.

The output follows /work/shared/bundle-format.md so generated data goes through the same
import path as a customer's export. Everything is vectorised with numpy and driven by one
``numpy.random.default_rng(seed)``, so the same config gives byte-identical files.
Fraud typologies live in ``graph.synth.fraud`` (rings that hide their devices in
``graph.synth.rings``), fraud recency, label maturity and camouflage in
``graph.synth.realism``, review text in ``graph.synth.text``, labels in
``graph.synth.labels``, CSV formatting in ``graph.synth.writer``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from graph.synth import fraud as fraud
from graph.synth import labels as labels
from graph.synth import realism as realism
from graph.synth import rings as rings
from graph.synth import writer as csv
from graph.synth.fraud import (
    BUST_OUT,
    CANCELLED,
    CHARGEBACK,
    DAY,
    FARM,
    FARM_BURST,
    FRAUD_OPENED,
    LEGIT,
    LONE,
    ORDINARY,
    PAID,
    REFUNDED,
    REVIEW_SEED,
    ROLE_NAMES,
    TAKEOVER_SPREE,
)
from graph.synth.text import CATEGORIES, compose_reviews, ring_reviews
from graph.synth.writer import Column

COUNTRIES = np.array(["US", "GB", "DE", "FR", "PL", "ES", "BR", "IN"])
COUNTRY_WEIGHTS = np.array([0.3, 0.15, 0.15, 0.1, 0.08, 0.07, 0.08, 0.07])
CATEGORY_WEIGHTS = np.array([0.16, 0.2, 0.15, 0.1, 0.1, 0.09, 0.1, 0.1])
CATEGORY_MEDIAN_PRICE = np.array([120.0, 40.0, 50.0, 25.0, 12.0, 30.0, 45.0, 15.0])
DEVICE_KINDS = np.array(["ios", "android", "web", "other"])
STATUS_NAMES = np.array(["paid", "refunded", "chargeback", "cancelled"])
OWN, HOUSEHOLD, PUBLIC, FARM_DEVICE, TAKEOVER_DEVICE, RING_DEVICE = 0, 1, 2, 3, 4, 5
TIMING_DAYS = 30.0  # maturity delay behind observed_at when label maturity is switched off


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. Each fraud typology can be switched off to study detectors in isolation.

    Typologies (ground truth in truth.csv and rings.csv):
        device_farm_rings: bursts of 5-30 accounts created within two days that share 1-3
            devices and place high-value orders in a 1-3 day window, ~40-60% chargebacks.
        review_rings: 8-25 accounts that place small paid orders on one colluding merchant's
            products, then post near-duplicate five-star reviews (copies and paraphrases).
        lone_fraud_share: fraudsters outside rings, with 15-35% chargebacks, so that fraud
            is not only rings. All fraud accounts also place ordinary camouflage orders.
        bust_out_share: accounts that look good (legit-like KYC and email age, created 3-16
            months before the spike) and pay for ordinary orders with few refunds, then place
            6-15 high-value orders in a 2-7 day window ending 0-7 days before the span's end
            and never pay: 75-95% of the spike is `cancelled` (the bundle's status for an order
            never paid for), no chargebacks. Truth: fraud=1, default=1. 0 switches it off.
        account_takeover_share: legit accounts (at least a month old, ordinary history) taken
            over after the first quarter of the span: a login from a NEW device (first_seen is
            the takeover), then 2-8 high-value orders on that device within 2-48 hours, 50-90%
            charged back by the real card holder. The owner's own orders and logins stop at
            the takeover. Truth: fraud=1; default follows the owner's own credit behaviour,
            scored like a legit user on the pre-takeover orders (the victim owes nothing for
            the attacker's orders; that loss is fraud, not credit). 0 switches it off.
        coordinated_ring_share: share of users in coordinated rings of 6-20 accounts, each
            member on its own devices, joined only by synchronised activity: in 3-6 windows
            over 10-40 days, most members order (coordinated: and review, 4-5 stars, varied
            text) at one of the ring's three merchants (two small shops, one popular
            merchant) within 0.5-3 hours of each other; 10-30% of these orders charged back.
            Members are recruited over 5-40 days before the first window and shop ordinarily
            besides (camouflage). Typology `coordinated_ring`, listed in rings.csv. 0: off.
        fragmented_ring_share: share of users in fragmented rings of 8-24 accounts that act
            together the same way (spread 1-5 hours, 30-50% chargebacks) and share a device
            only occasionally: cells of 2-4 members each share one device, no device spans
            two cells, so the user-device components cut the ring into pieces. Typology
            `fragmented_ring`, listed in rings.csv. 0: off.
    Realism (each None or 0 is off, and the marketplace is then what it was without the knob):
        fraud_recency: the share of accounts opened by fraudsters (rings and lone fraud; not
            bust-out or takeover, which are established accounts by design) created in the
            last quarter of the span, e.g. 0.7; the rest are created before it. Whole rings
            move together, lone fraudsters fill the remainder, so the share is met to within
            a ring's size at most (to the account when there are enough lone fraudsters).
        label_maturity_days: outcomes become known only once they have had time to show:
            a chargeback arrives 0.5-1.5 times this delay after its order and is reported
            within three days; fraud without chargebacks is found the same delay after its
            first fraudulent order; a clean account is called clean once it is this old.
            Only labels known by the span's end are exported, so the newest accounts are
            the least labelled. labels.csv's `observed_at` always carries this time (with
            the knob off: from a 30-day delay, capped at the span's end, since the export
            then knows every sampled outcome, due or not).
        camouflage_share: the share of a fraud account's orders that are ordinary,
            legit-looking orders (legit status rates, popular products, spread over the
            account's life): 0 leaves only the fraudulent orders, 0.8 adds four ordinary
            orders per fraudulent one. All fraud but account takeover (whose ordinary orders
            are the victim's own). None keeps the built-in mix.
    `GeneratorConfig.realistic(n_users, seed)` switches the realistic knobs on together.
    truth.csv names each user's planted typology in `typology`: legit, device_farm,
    review_ring, lone, bust_out, account_takeover, coordinated_ring or fragmented_ring.
    Hard negatives (legit users): households sharing a family device, and public devices
    (cafe, library) used by 20-100 users each, so that device sharing alone is not fraud.
    """

    n_users: int = 10_000
    seed: int = 0
    start: str = "2026-01-01T00:00:00Z"
    days: int = 180
    device_farm_rings: bool = True
    ring_share: float = 0.03
    review_rings: bool = True
    review_ring_count: int | None = None  # None: one per 5,000 users, at least one
    lone_fraud_share: float = 0.01
    bust_out_share: float = 0.005
    account_takeover_share: float = 0.005
    household_share: float = 0.15
    public_devices: bool = True
    label_observed: float = 0.6
    label_noise: float = 0.01
    unknown_default_share: float = 0.02  # of observed users, with an empty `default`
    default_rate: float = 0.04  # credit defaults among non-fraud users
    review_rate: float = 0.2  # chance an ordinary paid/refunded order gets reviewed
    old_account_share: float = 0.15  # accounts created up to two years before `start`
    coordinated_ring_share: float = 0.0
    fragmented_ring_share: float = 0.0
    fraud_recency: float | None = None
    label_maturity_days: float | None = None
    camouflage_share: float | None = None

    @classmethod
    def realistic(
        cls, n_users: int = 10_000, seed: int = 0, **overrides: object
    ) -> GeneratorConfig:
        """A marketplace closer to what real teams see: 70% of the fraud opened in the last
        quarter, labels a month late, coordinated and fragmented rings about as many as the
        device farms (~15 and ~12 per 10,000 users, against ~17 farms)."""
        settings: dict[str, object] = {
            "fraud_recency": 0.7,
            "label_maturity_days": 30.0,
            "coordinated_ring_share": 0.02,
            "fragmented_ring_share": 0.02,
            **overrides,
        }
        return cls(n_users=n_users, seed=seed, **settings)  # type: ignore[arg-type]


@dataclass(frozen=True)
class GenerationSummary:
    """What was written: rows per bundle table and the size of the planted truth."""

    out_dir: Path
    counts: dict[str, int]
    n_fraud: int
    n_default: int
    n_rings: int


@dataclass(frozen=True)
class _Market:
    merchant_category: np.ndarray
    merchant_created: np.ndarray
    product_merchant: np.ndarray
    price: np.ndarray
    popularity: np.ndarray  # probability of each product being picked by an ordinary order


@dataclass(frozen=True)
class _Edges:
    """User-device usage pairs, sorted by user so a user's devices form one slice."""

    user: np.ndarray
    device: np.ndarray
    kind: np.ndarray  # OWN, HOUSEHOLD, PUBLIC or FARM_DEVICE
    device_kind: np.ndarray  # per device: index into DEVICE_KINDS


def _check(config: GeneratorConfig) -> None:
    """Reject configs the generator cannot honour rather than silently bending them."""
    if config.n_users < 100 or config.days < 30:
        raise ValueError("need n_users >= 100 and days >= 30")
    shares = (
        config.ring_share,
        config.household_share,
        config.label_observed,
        config.label_noise,
        config.lone_fraud_share,
        config.bust_out_share,
        config.account_takeover_share,
        config.default_rate,
        config.coordinated_ring_share,
        config.fragmented_ring_share,
        1.0 if config.fraud_recency is None else config.fraud_recency,
    )
    if not all(0.0 <= share <= 1.0 for share in shares):
        raise ValueError("shares and rates must lie in [0, 1]")
    if config.camouflage_share is not None and not 0.0 <= config.camouflage_share < 1.0:
        raise ValueError("camouflage_share must lie in [0, 1): at 1 fraud would place no fraud")
    maturity = config.label_maturity_days
    if maturity is not None and not 0.0 < maturity < config.days:
        raise ValueError("label_maturity_days must be positive and shorter than the span")


def _epoch_seconds(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _uniform_between(
    rng: np.random.Generator, low: np.ndarray, high: int | np.ndarray
) -> np.ndarray:
    return low + (rng.random(len(low)) * (high - low)).astype(np.int64)


def _make_users(
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
        _uniform_between(rng, np.full(n, start), end - DAY),
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


def _make_market(rng: np.random.Generator, n_users: int, start: int) -> _Market:
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
    return _Market(category, created, product_merchant, price, popularity / popularity.sum())


def _household_edges(
    rng: np.random.Generator, legit: np.ndarray, share: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Families of 2-5 legit users sharing one device each (devices numbered from 0)."""
    members = rng.permutation(legit)[: round(share * len(legit))]
    sizes = rng.integers(2, 6, len(members) // 2 + 1)
    sizes = sizes[np.cumsum(sizes) <= len(members)]
    return members[: sizes.sum()], np.repeat(np.arange(len(sizes)), sizes), len(sizes)


def _public_edges(
    rng: np.random.Generator, legit: np.ndarray, n_users: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """A few cafe/library devices, each used by 20-100 distinct legit users."""
    n_public = max(2, n_users // 3000)
    sizes = np.minimum(rng.integers(20, 101, n_public), len(legit))
    users = [rng.choice(legit, size, replace=False) for size in sizes.tolist()]
    return np.concatenate(users), np.repeat(np.arange(n_public), sizes), n_public


def _make_edges(
    rng: np.random.Generator,
    aux: np.random.Generator,
    config: GeneratorConfig,
    plan: fraud.RolePlan,
) -> _Edges:
    """Who uses which device: own devices, households, public devices, device farms and the
    occasional shared devices of fragmented rings."""
    owners = np.flatnonzero(plan.role != FARM)
    n_own = rng.choice([1, 2, 3], len(owners), p=[0.6, 0.3, 0.1])
    groups = [(OWN, (np.repeat(owners, n_own), np.arange(n_own.sum()), int(n_own.sum())))]
    legit = np.flatnonzero(plan.role == LEGIT)
    if config.household_share > 0:
        groups.append((HOUSEHOLD, _household_edges(rng, legit, config.household_share)))
    if config.public_devices:
        groups.append((PUBLIC, _public_edges(rng, legit, config.n_users)))
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
    return _Edges(user[by_user], device[by_user], edge_kind[by_user], device_kind)


def _make_logins(
    rng: np.random.Generator,
    edges: _Edges,
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
    own = _uniform_between(rng, np.maximum(base, start), episodes.logins_end[user])
    ts = np.where(edge_kind == FARM_DEVICE, burst, own)
    takeover = np.flatnonzero(edge_kind == TAKEOVER_DEVICE)
    first = np.diff(device[takeover], prepend=-1) != 0  # rows of one edge are adjacent
    offset = (rng.random(len(takeover)) * episodes.burst_len[user[takeover]]).astype(np.int64)
    ts[takeover] = episodes.burst_start[user[takeover]] + np.where(first, 0, offset)
    return user, device, ts


def _ordinary_orders(
    rng: np.random.Generator,
    plan: fraud.RolePlan,
    created: np.ndarray,
    risk: np.ndarray,
    market: _Market,
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
    ts = _uniform_between(rng, first[user], orders_end[user])
    return fraud.OrderBatch(user, product, ts, status, np.full(len(user), ORDINARY, dtype=np.int8))


def _concat(batches: list[fraud.OrderBatch]) -> fraud.OrderBatch:
    return fraud.OrderBatch(
        *(
            np.concatenate([getattr(b, f) for b in batches])
            for f in ("user", "product", "ts", "status", "kind")
        )
    )


def _order_devices(
    rng: np.random.Generator, edges: _Edges, orders: fraud.OrderBatch, n_users: int
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


def _ordinary_reviews(
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


def _write(tables: Iterable[tuple[str, dict[str, Column]]], out_dir: Path) -> dict[str, int]:
    """Write each table as NAME.csv as soon as it is built; returns rows per bundle table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, table in tables:
        counts[name] = csv.write_csv(out_dir / f"{name}.csv", table)
        del table  # free it before the next table is built
    return {name: count for name, count in counts.items() if name != "truth"}


@dataclass(frozen=True)
class _Simulation:
    """Everything simulated, as index arrays; turned into id-keyed tables by ``_tables``."""

    users: pd.DataFrame
    plan: fraud.RolePlan
    market: _Market
    edges: _Edges
    logins: tuple[np.ndarray, np.ndarray, np.ndarray]  # user, device, ts
    orders: fraud.OrderBatch
    amount: np.ndarray
    order_device: np.ndarray  # -1 where the order carries no device
    reviews: pd.DataFrame
    default: np.ndarray


def _simulate(config: GeneratorConfig) -> _Simulation:
    """Run every behaviour in a fixed order so a seed always yields the same marketplace.

    The realistic knobs draw from an auxiliary stream (``aux``) and only when switched on, so
    the main stream, and the default marketplace, never shift because they exist.
    """
    rng = np.random.default_rng(config.seed)
    aux = np.random.default_rng([config.seed, 2])
    start = _epoch_seconds(config.start)
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
    users = _make_users(rng, config, plan, ring_t0, episodes, start, end)
    if sync.n_rings > 0:
        users["created"] = rings.sync_created_at(aux, plan, sync, users["created"].to_numpy())
    if recent_user is not None:
        users["created"] = realism.recent_lone_created(
            aux, plan, recent_user, users["created"].to_numpy(), start, end
        )
    created = users["created"].to_numpy()
    market = _make_market(rng, n, start)
    category = market.merchant_category[market.product_merchant]
    edges = _make_edges(rng, aux, config, plan)
    logins = _make_logins(rng, edges, created, episodes, start, end)
    risk = rng.normal(0.0, 1.0, n)
    seeds, seed_review_ts, boosted = fraud.review_ring_activity(
        rng, plan, ring_t0, market.product_merchant, market.price, len(market.merchant_category)
    )
    batches = [
        _ordinary_orders(rng, plan, created, risk, market, episodes.orders_end, start, end),
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
    orders = _concat(batches)
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
    order_device = _order_devices(rng, edges, orders, n)
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
    review_parts = [_ordinary_reviews(rng, orders, category, config, end), ring_review_rows]
    if sync.n_rings > 0:
        review_parts.append(rings.sync_reviews(aux, orders, plan.role, category, end))
    reviews = pd.concat(review_parts, ignore_index=True)
    default = labels.default_truth(rng, orders, users, amount, risk, plan.role, config.default_rate)
    return _Simulation(
        users, plan, market, edges, logins, orders, amount, order_device, reviews, default
    )


def _device_table(sim: _Simulation, perm: np.ndarray, width: int) -> dict[str, Column]:
    """Devices with first_seen = earliest login or order, so no use predates the device.

    Device ``d`` is named by ``perm[d]``; ids are zero-padded, so sorting by ``perm`` sorts by id.
    """
    _, login_device, login_ts = sim.logins
    first_seen = np.full(len(perm), np.iinfo(np.int64).max)
    np.minimum.at(first_seen, login_device, login_ts)
    used = sim.order_device >= 0
    np.minimum.at(first_seen, sim.order_device[used], sim.orders.ts[used])
    by_id = np.argsort(perm, kind="stable")
    return {
        "device_id": csv.ids("D", perm[by_id], width),
        "kind": DEVICE_KINDS[sim.edges.device_kind][by_id],
        "first_seen": csv.iso(first_seen[by_id]),
    }


def _label_table(
    rng: np.random.Generator, sim: _Simulation, config: GeneratorConfig, width: int
) -> dict[str, Column]:
    """The exported labels with ``observed_at``, when each outcome became known.

    The timing draws from its own stream, so the sampled labels do not move with it; under
    label maturity, labels not yet known at the span's end are left out.
    """
    is_fraud = (sim.plan.role != LEGIT).astype(np.int64)
    observed, fraud_label, default_label = labels.observed_labels(
        rng,
        config.label_observed,
        config.label_noise,
        config.unknown_default_share,
        is_fraud,
        sim.default,
    )
    end = _epoch_seconds(config.start) + config.days * DAY
    maturity = config.label_maturity_days
    known = realism.observed_at(
        np.random.default_rng([config.seed, 3]),
        sim.orders,
        sim.users["created"].to_numpy(),
        is_fraud.astype(bool),
        TIMING_DAYS if maturity is None else maturity,
    )
    if maturity is not None:
        due = known[observed] <= end
        observed, fraud_label, default_label = observed[due], fraud_label[due], default_label[due]
    return {
        "user_id": csv.ids("U", observed, width),
        "fraud": fraud_label,
        "default": default_label,
        "observed_at": csv.iso(np.minimum(known[observed], end)),
    }


def _tables(sim: _Simulation, config: GeneratorConfig) -> Iterator[tuple[str, dict[str, Column]]]:
    """Bundle tables with string ids, rows sorted by time, built one at a time as written."""
    rng = np.random.default_rng([config.seed, 1])  # own stream: table layout never shifts data
    users, orders, market, plan = sim.users, sim.orders, sim.market, sim.plan
    n, n_devices = len(users), len(sim.edges.device_kind)
    width = max(6, len(str(max(n, len(orders.user), n_devices, len(sim.reviews)))))
    perm = rng.permutation(n_devices)  # device ids shuffled: farm devices are not the last ids
    categories = np.array(CATEGORIES)
    yield (
        "users",
        {
            "user_id": csv.ids("U", np.arange(n), width),
            "created_at": csv.iso(users["created"].to_numpy()),
            "country": users["country"],
            "feat_kyc_level": users["feat_kyc_level"],
            "feat_email_age_days": users["feat_email_age_days"],
        },
    )
    yield (
        "merchants",
        {
            "merchant_id": csv.ids("M", np.arange(len(market.merchant_category)), width),
            "created_at": csv.iso(market.merchant_created),
            "category": categories[market.merchant_category],
        },
    )
    yield (
        "products",
        {
            "product_id": csv.ids("P", np.arange(len(market.price)), width),
            "merchant_id": csv.ids("M", market.product_merchant, width),
            "category": categories[market.merchant_category[market.product_merchant]],
            "price": market.price,
        },
    )
    yield "devices", _device_table(sim, perm, width)
    login_user, login_device, login_ts = sim.logins
    login_sort = np.lexsort((login_device, login_user, login_ts))
    yield (
        "logins",
        {
            "user_id": csv.ids("U", login_user[login_sort], width),
            "device_id": csv.ids("D", perm[login_device[login_sort]], width),
            "ts": csv.iso(login_ts[login_sort]),
        },
    )
    del login_sort
    order_sort = np.lexsort((orders.product, orders.user, orders.ts))
    order_device = sim.order_device[order_sort]
    device_ids = csv.ids("D", perm[np.maximum(order_device, 0)], width)
    yield (
        "orders",
        {
            "order_id": csv.ids("O", np.arange(len(order_sort)), width),
            "user_id": csv.ids("U", orders.user[order_sort], width),
            "product_id": csv.ids("P", orders.product[order_sort], width),
            "amount": sim.amount[order_sort],
            "ts": csv.iso(orders.ts[order_sort]),
            "status": STATUS_NAMES[orders.status[order_sort]],
            "device_id": pc.if_else(
                pa.array(order_device >= 0), device_ids, pa.scalar(None, device_ids.type)
            ),
        },
    )
    del order_sort, order_device, device_ids
    rv = sim.reviews.iloc[
        np.lexsort((sim.reviews["product"], sim.reviews["user"], sim.reviews["ts"]))
    ]
    yield (
        "reviews",
        {
            "review_id": csv.ids("R", np.arange(len(rv)), width),
            "user_id": csv.ids("U", rv["user"].to_numpy(), width),
            "product_id": csv.ids("P", rv["product"].to_numpy(), width),
            "rating": rv["rating"].to_numpy(),
            "text": rv["text"].to_numpy(),
            "ts": csv.iso(rv["ts"].to_numpy()),
        },
    )
    del rv
    yield "labels", _label_table(rng, sim, config, width)
    ring_members = np.flatnonzero(plan.ring >= 0)
    ring_members = ring_members[np.lexsort((ring_members, plan.ring[ring_members]))]
    yield (
        "rings",
        {
            "ring_id": csv.ids("RING", plan.ring[ring_members], 4),
            "user_id": csv.ids("U", ring_members, width),
        },
    )
    yield (
        "truth",
        {
            "user_id": csv.ids("U", np.arange(n), width),
            "fraud": (plan.role != LEGIT).astype(np.int64),
            "default": sim.default,
            "typology": np.array(ROLE_NAMES)[plan.role],
        },
    )


def generate_marketplace(config: GeneratorConfig, out_dir: Path) -> GenerationSummary:
    """Generate a marketplace with planted fraud and write it as a bundle into ``out_dir``.

    Besides the bundle tables, writes ``truth.csv`` (every user, unflipped fraud/default and
    the planted ``typology``) for evaluation; it is not part of the bundle contract and
    importers ignore it.
    """
    _check(config)
    sim = _simulate(config)
    counts = _write(_tables(sim, config), out_dir)
    n_rings = sim.plan.n_rings
    return GenerationSummary(
        out_dir, counts, int((sim.plan.role != LEGIT).sum()), int(sim.default.sum()), n_rings
    )
