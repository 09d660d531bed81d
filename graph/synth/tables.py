"""The simulation written out as bundle tables: string ids, rows sorted by time, one table at
a time so peak memory stays at one table."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from graph.synth import labels, realism
from graph.synth import writer as csv
from graph.synth.config import GeneratorConfig, epoch_seconds
from graph.synth.fraud import (
    DAY,
    LEGIT,
    ROLE_NAMES,
)
from graph.synth.population import DEVICE_KINDS, STATUS_NAMES
from graph.synth.simulation import Simulation
from graph.synth.text import CATEGORIES
from graph.synth.writer import Column

TIMING_DAYS = 30.0  # maturity delay behind observed_at when label maturity is switched off


def write_tables(tables: Iterable[tuple[str, dict[str, Column]]], out_dir: Path) -> dict[str, int]:
    """Write each table as NAME.csv as soon as it is built; returns rows per bundle table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, table in tables:
        counts[name] = csv.write_csv(out_dir / f"{name}.csv", table)
        del table  # free it before the next table is built
    return {name: count for name, count in counts.items() if name != "truth"}


def device_table(sim: Simulation, perm: np.ndarray, width: int) -> dict[str, Column]:
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


def label_table(
    rng: np.random.Generator, sim: Simulation, config: GeneratorConfig, width: int
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
    end = epoch_seconds(config.start) + config.days * DAY
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


def tables(sim: Simulation, config: GeneratorConfig) -> Iterator[tuple[str, dict[str, Column]]]:
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
    yield "devices", device_table(sim, perm, width)
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
    yield "labels", label_table(rng, sim, config, width)
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
