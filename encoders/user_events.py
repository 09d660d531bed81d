"""One user's behaviour features and edge attributes from its own events, in plain numpy.

The online scorer reads one user's orders, reviews and device links (with two server-side
aggregates per device and reviewed product). Building a two-user ``GraphExport`` and running
the frame-based ``encoders.behaviour.user_features`` on it cost more than the model itself;
here the same numbers come from a few array reductions over the user's own rows. They equal
``user_features`` and ``edge_features.edge_attributes`` of the whole graph (tested on the test
marketplace, every user), because the only values that depend on other accounts are the
device's user count and the product's review count and rating sum, which the read supplies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from encoders.behaviour import CHANGE_WINDOW_DAYS, MS_PER_DAY, MS_PER_HOUR, change_features
from encoders.edge_features import DAY_MS, STATUSES
from graph import schema
from graph.export import GraphExport


def _num(values: Sequence[Any], dtype: type = np.float64) -> np.ndarray:
    """Numbers with None (or anything not a number) as NaN."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[i] = float(v)
    return out.astype(dtype)


@dataclass
class UserEvents:
    """One user's own edges (rows in any order) and the aggregates features need."""

    created_at: float  # epoch ms (NaN: unknown)
    order_product: np.ndarray  # object ids
    order_amount: np.ndarray  # float64, NaN where missing
    order_ts: np.ndarray  # float64 epoch ms, NaN where missing
    order_status: np.ndarray  # object
    order_device: np.ndarray  # object, "" without a device
    review_product: np.ndarray
    review_rating: np.ndarray  # float64, NaN where missing
    review_ts: np.ndarray
    review_total: np.ndarray  # the product's review count (every account's)
    review_total_sum: np.ndarray  # and their rating sum
    device_id: np.ndarray
    device_logins: np.ndarray
    device_first: np.ndarray
    device_last: np.ndarray
    device_users: np.ndarray  # accounts on the device (this one included)
    keys: dict[str, float]  # the user's ``feat_*`` attributes (NaN: missing)

    @classmethod
    def from_record(cls, row: Mapping[str, Any], feature_keys: Sequence[str]) -> UserEvents:
        """From one ``graph.neo4j.neighbourhood.NEIGHBOURHOOD`` record."""
        orders, reviews, devices = row["orders"], row["reviews"], row["devices"]
        props = row["props"]

        def col(items: list[dict[str, Any]], key: str) -> list[Any]:
            return [item[key] for item in items]

        def ids(items: list[dict[str, Any]], key: str) -> np.ndarray:
            return np.array(["" if v is None else str(v) for v in col(items, key)], dtype=object)

        created = row["created_at"]
        return cls(
            created_at=float(created) if created is not None else np.nan,
            order_product=ids(orders, "product_id"),
            order_amount=_num(col(orders, "amount")),
            order_ts=_num(col(orders, "ts")),
            order_status=np.array([str(v) for v in col(orders, "status")], dtype=object),
            order_device=ids(orders, "device_id"),
            review_product=ids(reviews, "product_id"),
            review_rating=_num(col(reviews, "rating")),
            review_ts=_num(col(reviews, "ts")),
            review_total=_num(col(reviews, "reviews")),
            review_total_sum=_num(col(reviews, "rating_sum")),
            device_id=ids(devices, "device_id"),
            device_logins=_num(col(devices, "logins")),
            device_first=_num(col(devices, "first_seen")),
            device_last=_num(col(devices, "last_seen")),
            device_users=_num(col(devices, "users")),
            keys={k: _float(props.get(k)) for k in feature_keys},
        )

    @property
    def thin_file(self) -> bool:
        return not (len(self.order_ts) or len(self.review_ts) or len(self.device_id))

    @property
    def latest_ms(self) -> int:
        """The latest own order or the account's creation: what may move "now" forward."""
        ts = np.nan_to_num(self.order_ts, nan=0.0)
        return int(max(ts.max(initial=0.0), np.nan_to_num(self.created_at, nan=0.0)))


def _float(value: Any) -> float:
    try:
        return float(value) if value is not None else np.nan
    except (TypeError, ValueError):
        return np.nan


def _share(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def user_feature_values(ev: UserEvents, now: int) -> dict[str, float]:
    """``encoders.behaviour.user_features`` of this user, column by column."""
    ts = np.nan_to_num(ev.order_ts, nan=0.0).astype(np.int64)
    amount = np.nan_to_num(ev.order_amount, nan=0.0)
    n = float(len(ts))
    spend = float(amount.sum())
    out: dict[str, float] = {
        "n_orders": n,
        "total_spend": spend,
        "mean_amount": _share(spend, n),
        "max_amount": float(np.maximum(amount, 0.0).max(initial=0.0)),
    }
    for st in (schema.REFUNDED, schema.CHARGEBACK, schema.CANCELLED):
        out[f"{st}_rate"] = _share(float((ev.order_status == st).sum()), n)
    for days in (1, 7, 30):
        out[f"orders_last_{days}d"] = float((ts >= now - days * MS_PER_DAY).sum())
    hours = ts // MS_PER_HOUR
    out["max_orders_per_hour"] = float(np.unique(hours, return_counts=True)[1].max(initial=0))
    out["night_share"] = _share(float(((hours % 24) < 6).sum()), n)
    created = int(np.nan_to_num(ev.created_at, nan=0.0))
    out["account_age_days"] = max(now - created, 0) / MS_PER_DAY
    out["days_to_first_order"] = (float(ts.min()) - created) / MS_PER_DAY if len(ts) else -1.0
    recent = ts >= now - CHANGE_WINDOW_DAYS * MS_PER_DAY
    recent_n, recent_spend = float(recent.sum()), float(amount[recent].sum())
    change = change_features(
        np.array([recent_n]),
        np.array([recent_spend]),
        np.array([n - recent_n]),
        np.array([spend - recent_spend]),
        np.array([out["account_age_days"]]),
    )
    out.update({name: float(values[0]) for name, values in change.items()})

    users = np.maximum(np.nan_to_num(ev.device_users, nan=1.0), 1.0)
    n_dev = float(len(users))
    out["n_devices"] = n_dev
    out["max_users_on_device"] = float(users.max(initial=0.0))
    out["mean_users_on_device"] = _share(float(users.sum()), n_dev)
    out["n_logins"] = float(np.nan_to_num(ev.device_logins, nan=0.0).sum())

    rating = np.nan_to_num(ev.review_rating, nan=0.0)
    n_rev = float(len(rating))
    out["n_reviews"] = n_rev
    out["mean_rating"] = _share(float(rating.sum()), n_rev)
    out["five_star_share"] = _share(float((rating == 5).sum()), n_rev)
    out["rating_deviation"] = _share(float(np.abs(rating - _product_means(ev)).sum()), n_rev)
    for key, value in ev.keys.items():
        out[key] = value
    return out


def _product_means(ev: UserEvents) -> np.ndarray:
    """Each reviewed product's mean rating over every account's reviews, per own review."""
    if not len(ev.review_product):
        return np.zeros(0)
    products, inverse = np.unique(ev.review_product.astype(str), return_inverse=True)
    own_n = np.bincount(inverse, minlength=len(products)).astype(np.float64)
    rating = np.nan_to_num(ev.review_rating, nan=0.0)
    own_sum = np.bincount(inverse, weights=rating, minlength=len(products))
    first = np.full(len(products), -1)
    first[inverse[::-1]] = np.arange(len(inverse))[::-1]  # the product's first own review
    total = np.nan_to_num(ev.review_total[first], nan=0.0)
    total_sum = np.nan_to_num(ev.review_total_sum[first], nan=0.0)
    rest = np.maximum(total - own_n, 0.0)
    count = own_n + rest
    summed = np.where(rest > 0, total_sum, own_sum)
    means = np.divide(summed, count, out=np.zeros_like(count), where=count > 0)
    return means[inverse]


def _days_before(now: int, ts: np.ndarray) -> np.ndarray:
    days = np.clip((now - np.where(np.isnan(ts), float(now), ts)) / DAY_MS, 0, None)
    return np.exp(-days / 30.0)


def edge_attribute_rows(ev: UserEvents, now: int) -> dict[str, np.ndarray]:
    """``encoders.edge_features.edge_attributes`` of the user's own edges, per relation
    (keyed by the edge type's name: ``ordered``, ``reviewed``, ``uses``), rows in the order
    of ``ev``'s arrays."""
    amount = np.nan_to_num(ev.order_amount, nan=0.0)
    onehot = np.stack([ev.order_status == s for s in STATUSES], axis=1).astype(np.float64)
    ordered = np.column_stack([np.log1p(amount) / 5.0, onehot.reshape(len(amount), len(STATUSES)),
                               _days_before(now, ev.order_ts), ev.order_device != ""])  # fmt: skip
    rating = np.where(np.isnan(ev.review_rating), 3.0, ev.review_rating)
    reviewed = np.column_stack([(rating - 3) / 2, rating >= 5, _days_before(now, ev.review_ts)])
    logins = np.where(np.isnan(ev.device_logins), 1.0, ev.device_logins)
    span = np.nan_to_num((ev.device_last - ev.device_first) / DAY_MS, nan=0.0).clip(0, None)
    uses = np.column_stack([np.log1p(logins) / 3.0, np.tanh(span / 30.0),
                            _days_before(now, ev.device_last),
                            1.0 - _days_before(now, ev.device_first)])  # fmt: skip
    return {
        rel: np.nan_to_num(a.astype(np.float32))
        for rel, a in (
            (schema.ORDERED_EDGE[1], ordered),
            (schema.REVIEWED_EDGE[1], reviewed),
            (schema.USES_EDGE[1], uses),
        )
    }


def events_from_export(g: GraphExport, user: int) -> UserEvents:
    """User ``user``'s events out of a whole exported graph (the self-check and the tests
    compare the online path with the whole-graph features through this)."""
    import pandas as pd

    def num(frame: pd.DataFrame, col: str) -> np.ndarray:
        if col not in frame:
            return np.full(len(frame), np.nan)
        return pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64)

    orders = g.edges[schema.ORDERED_EDGE]
    o = orders[orders["src"].to_numpy(np.int64) == user]
    reviews = g.edges[schema.REVIEWED_EDGE]
    rp_all = reviews["dst"].to_numpy(np.int64)
    n_products = len(g.ids["product"])
    totals = np.bincount(rp_all, minlength=n_products).astype(np.float64)
    sums = np.bincount(rp_all, weights=np.nan_to_num(num(reviews, "rating")), minlength=n_products)
    own_r = reviews["src"].to_numpy(np.int64) == user
    r = reviews[own_r]
    rp = rp_all[own_r]
    uses = g.edges[schema.USES_EDGE]
    per_device = np.bincount(uses["dst"].to_numpy(np.int64), minlength=len(g.ids["device"]))
    u = uses[uses["src"].to_numpy(np.int64) == user]
    ud = u["dst"].to_numpy(np.int64)
    device = o["device_id"].fillna("").astype(str) if "device_id" in o else pd.Series([""] * len(o))
    users = g.nodes["user"]
    created = pd.to_numeric(users["created_at"], errors="coerce").to_numpy(np.float64)[user]
    return UserEvents(
        created_at=float(created),
        order_product=g.ids["product"][o["dst"].to_numpy(np.int64)].astype(object),
        order_amount=num(o, "amount"),
        order_ts=num(o, "ts"),
        order_status=o["status"].astype(str).to_numpy(dtype=object),
        order_device=device.to_numpy(dtype=object),
        review_product=g.ids["product"][rp].astype(object),
        review_rating=num(r, "rating"),
        review_ts=num(r, "ts"),
        review_total=totals[rp],
        review_total_sum=sums[rp],
        device_id=g.ids["device"][ud].astype(object),
        device_logins=num(u, "logins"),
        device_first=num(u, "first_seen"),
        device_last=num(u, "last_seen"),
        device_users=per_device[ud].astype(np.float64),
        keys={k: _float(users[k].iloc[user]) for k in g.feature_keys},
    )
