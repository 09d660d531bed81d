"""Behaviour features per node type, computed in numpy on the exported arrays.

Everything is a bincount or a grouped reduction over edge arrays, so the cost is linear in the
number of edges (one sort, for orders per hour: n log n) and there is no Python loop per node or
per edge. Order statuses are compared as integer codes and order device ids are looked up in
Arrow, not as one Python string per order: with ten million orders those per-row objects and a
Python hash lookup each made the stage grow ~x6 for x4 users (cache misses in big hash tables).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from graph import schema
from graph.export import GraphExport

MS_PER_DAY = 86_400_000.0
MS_PER_HOUR = 3_600_000
CHANGE_WINDOW_DAYS = 7  # "recent" for the change features: a week of orders


def _count(index: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(index, weights=weights, minlength=n).astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def _group_max(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float64)
    if len(index):
        np.maximum.at(out, index, values.astype(np.float64))
    return out


def _timestamps(frame: pd.DataFrame, col: str) -> np.ndarray:
    return pd.to_numeric(frame[col], errors="coerce").fillna(0).to_numpy(np.int64)


def status_masks(status: pd.Series) -> dict[str, np.ndarray]:
    """``status == s`` for every order status, from one factorisation of the column (missing
    never equals anything), instead of an object array of ten million Python strings."""
    codes, uniques = pd.factorize(status)
    code_of = {v: i for i, v in enumerate(uniques) if isinstance(v, str)}
    return {s: codes == code_of.get(s, -2) for s in schema.ORDER_STATUSES}


def _max_per_hour(u: np.ndarray, ts: np.ndarray, n: int) -> np.ndarray:
    """Most orders a user placed within one clock hour: one sort of (user, hour) keys and the
    lengths of their runs (a two-key pandas groupby hashed and sorted, and grew ~x6.5 per x4)."""
    out = np.zeros(n, dtype=np.float64)
    if not len(u):
        return out
    hour = ts // MS_PER_HOUR
    lo = int(hour.min())
    span = int(hour.max()) - lo + 1
    if span <= (2**62) // max(n, 1):
        key = np.sort(u * span + (hour - lo))
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        run_user = key[starts] // span
    else:  # hours spread too wide for one int64 key: sort the pair
        order = np.lexsort((hour, u))
        su, sh = u[order], hour[order]
        starts = np.flatnonzero(np.r_[True, (su[1:] != su[:-1]) | (sh[1:] != sh[:-1])])
        run_user = su[starts]
    run_len = np.diff(np.r_[starts, len(u)])
    first = np.flatnonzero(np.r_[True, run_user[1:] != run_user[:-1]])
    out[run_user[first]] = np.maximum.reduceat(run_len, first)
    return out


def change_features(
    recent_orders: np.ndarray,
    recent_spend: np.ndarray,
    prior_orders: np.ndarray,
    prior_spend: np.ndarray,
    age_days: np.ndarray,
) -> dict[str, np.ndarray]:
    """The last ``CHANGE_WINDOW_DAYS`` against the account's own history before them.

    Bust-outs (a clean history, then a spike of large orders) and takeovers (an established
    account suddenly ordering) differ from the account's own past, not from other accounts:
    seven orders in a week is ordinary for one buyer and a spree for another. Defined for
    every account (no history before the window: the rate before it is zero and the amount
    ratio neutral, 1), so online scoring computes the same from one user's orders.
    """
    total = recent_spend + prior_spend
    prior_days = np.maximum(age_days - CHANGE_WINDOW_DAYS, CHANGE_WINDOW_DAYS)
    both = (recent_orders > 0) & (prior_orders > 0) & (prior_spend > 0)
    recent_mean = np.divide(recent_spend, recent_orders, out=np.ones_like(total), where=both)
    prior_mean = np.divide(prior_spend, prior_orders, out=np.ones_like(total), where=both)
    return {
        "recent_spend_share": np.divide(
            recent_spend, total, out=np.zeros_like(total), where=total > 0
        ),
        "order_rate_change": recent_orders / (1.0 + prior_orders * CHANGE_WINDOW_DAYS / prior_days),
        "amount_change": recent_mean / prior_mean,
    }


def _device_index(g: GraphExport, device_id: pd.Series) -> np.ndarray:
    """``g.index_of("device", device_id.fillna(""))``, the lookup done by Arrow's hash table over
    contiguous strings rather than one Python object and dict probe per order."""
    try:
        values = pc.fill_null(pa.array(device_id, type=pa.string(), from_pandas=True), "")
        known = pa.array(g.ids["device"], type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # ids that are not all strings
        return g.index_of("device", device_id.fillna("").to_numpy(dtype=object))
    found = pc.index_in(values, value_set=known)
    return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def reference_time(g: GraphExport) -> int:
    """'Now' for ages and recency windows: the cutoff of an ``as_of`` view, else the latest event."""
    if g.cutoff_ms is not None:
        return int(g.cutoff_ms)
    orders = g.edges[schema.ORDERED_EDGE]
    ts = _timestamps(orders, "ts")
    created = _timestamps(g.nodes["user"], "created_at")
    return int(max(ts.max(initial=0), created.max(initial=0)))


def user_features(g: GraphExport) -> pd.DataFrame:
    """Per user: spend, velocity, refunds, chargebacks, device sharing, age, reviews, ``feat_*``."""
    n = len(g.ids["user"])
    now = reference_time(g)
    orders = g.edges[schema.ORDERED_EDGE]
    u = orders["src"].to_numpy(np.int64)
    amount = pd.to_numeric(orders["amount"], errors="coerce").fillna(0).to_numpy(np.float64)
    is_status = status_masks(orders["status"])
    ts = _timestamps(orders, "ts")
    n_orders = _count(u, n)
    spend = _count(u, n, amount)
    feats: dict[str, np.ndarray] = {
        "n_orders": n_orders,
        "total_spend": spend,
        "mean_amount": _ratio(spend, n_orders),
        "max_amount": _group_max(u, amount, n),
    }
    for st in (schema.REFUNDED, schema.CHARGEBACK, schema.CANCELLED):
        feats[f"{st}_rate"] = _ratio(_count(u, n, is_status[st].astype(float)), n_orders)
    for days in (1, 7, 30):
        recent = (ts >= now - days * MS_PER_DAY).astype(float)
        feats[f"orders_last_{days}d"] = _count(u, n, recent)
    feats["max_orders_per_hour"] = _max_per_hour(u, ts, n)
    hour_of_day = (ts // MS_PER_HOUR) % 24
    feats["night_share"] = _ratio(_count(u, n, (hour_of_day < 6).astype(float)), n_orders)
    created = _timestamps(g.nodes["user"], "created_at")
    feats["account_age_days"] = np.maximum(now - created, 0) / MS_PER_DAY
    first_order = np.full(n, np.inf)
    if len(u):
        np.minimum.at(first_order, u, ts.astype(np.float64))
    feats["days_to_first_order"] = np.where(
        np.isfinite(first_order), (first_order - created) / MS_PER_DAY, -1.0
    )
    recent = ts >= now - CHANGE_WINDOW_DAYS * MS_PER_DAY
    recent_orders = _count(u, n, recent.astype(float))
    recent_spend = _count(u, n, np.where(recent, amount, 0.0))
    feats.update(
        change_features(
            recent_orders,
            recent_spend,
            n_orders - recent_orders,
            spend - recent_spend,
            feats["account_age_days"],
        )
    )

    uses = g.edges[schema.USES_EDGE]
    uu = uses["src"].to_numpy(np.int64)
    dd = uses["dst"].to_numpy(np.int64)
    users_per_device = _count(dd, len(g.ids["device"]))
    feats["n_devices"] = _count(uu, n)
    feats["max_users_on_device"] = _group_max(uu, users_per_device[dd], n)
    feats["mean_users_on_device"] = _ratio(_count(uu, n, users_per_device[dd]), feats["n_devices"])
    logins = pd.to_numeric(uses.get("logins", pd.Series(dtype=float)), errors="coerce").fillna(0)
    feats["n_logins"] = _count(uu, n, logins.to_numpy(np.float64))

    reviews = g.edges[schema.REVIEWED_EDGE]
    ru = reviews["src"].to_numpy(np.int64)
    rp = reviews["dst"].to_numpy(np.int64)
    rating = pd.to_numeric(reviews["rating"], errors="coerce").fillna(0).to_numpy(np.float64)
    n_reviews = _count(ru, n)
    n_products = len(g.ids["product"])
    product_mean = _ratio(_count(rp, n_products, rating), _count(rp, n_products))
    feats["n_reviews"] = n_reviews
    feats["mean_rating"] = _ratio(_count(ru, n, rating), n_reviews)
    feats["five_star_share"] = _ratio(_count(ru, n, (rating == 5).astype(float)), n_reviews)
    feats["rating_deviation"] = _ratio(_count(ru, n, np.abs(rating - product_mean[rp])), n_reviews)
    frame = pd.DataFrame(feats)
    for key in g.feature_keys:
        frame[key] = g.nodes["user"][key].to_numpy(np.float64)
    return frame


def merchant_features(g: GraphExport) -> pd.DataFrame:
    """Per merchant: catalogue size, sales, refund/chargeback rates, ratings, age, new-account share."""
    n = len(g.ids["merchant"])
    now = reference_time(g)
    sold_by = g.edges[schema.SOLD_BY_EDGE]
    merchant_of = g.merchant_of_product()
    orders = g.edges[schema.ORDERED_EDGE]
    m = merchant_of[orders["dst"].to_numpy(np.int64)]
    ok = m >= 0
    m = m[ok]
    amount = pd.to_numeric(orders["amount"], errors="coerce").fillna(0).to_numpy(np.float64)[ok]
    is_status = {s: v[ok] for s, v in status_masks(orders["status"]).items()}
    ts = _timestamps(orders, "ts")[ok]
    buyer_created = _timestamps(g.nodes["user"], "created_at")[orders["src"].to_numpy(np.int64)][ok]
    n_orders = _count(m, n)
    feats = {
        "n_products": _count(sold_by["dst"].to_numpy(np.int64), n),
        "n_orders": n_orders,
        "sales": _count(m, n, amount),
        "refund_rate": _ratio(_count(m, n, is_status[schema.REFUNDED].astype(float)), n_orders),
        "chargeback_rate": _ratio(
            _count(m, n, is_status[schema.CHARGEBACK].astype(float)), n_orders
        ),
        "new_account_share": _ratio(
            _count(m, n, ((ts - buyer_created) < 7 * MS_PER_DAY).astype(float)), n_orders
        ),
        "age_days": np.maximum(now - _timestamps(g.nodes["merchant"], "created_at"), 0)
        / MS_PER_DAY,
    }
    reviews = g.edges[schema.REVIEWED_EDGE]
    rm = merchant_of[reviews["dst"].to_numpy(np.int64)]
    rok = rm >= 0
    rating = pd.to_numeric(reviews["rating"], errors="coerce").fillna(0).to_numpy(np.float64)[rok]
    n_reviews = _count(rm[rok], n)
    feats["n_reviews"] = n_reviews
    feats["mean_rating"] = _ratio(_count(rm[rok], n, rating), n_reviews)
    feats["five_star_share"] = _ratio(_count(rm[rok], n, (rating == 5).astype(float)), n_reviews)
    return pd.DataFrame(feats)


def product_features(g: GraphExport) -> pd.DataFrame:
    """Per product: price, sales, rating statistics."""
    n = len(g.ids["product"])
    orders = g.edges[schema.ORDERED_EDGE]
    p = orders["dst"].to_numpy(np.int64)
    reviews = g.edges[schema.REVIEWED_EDGE]
    rp = reviews["dst"].to_numpy(np.int64)
    rating = pd.to_numeric(reviews["rating"], errors="coerce").fillna(0).to_numpy(np.float64)
    n_reviews = _count(rp, n)
    return pd.DataFrame(
        {
            "price": pd.to_numeric(g.nodes["product"]["price"], errors="coerce").fillna(0),
            "n_orders": _count(p, n),
            "chargeback_rate": _ratio(
                _count(
                    p,
                    n,
                    status_masks(orders["status"])[schema.CHARGEBACK].astype(float),
                ),
                _count(p, n),
            ),
            "n_reviews": n_reviews,
            "mean_rating": _ratio(_count(rp, n, rating), n_reviews),
        }
    )


def device_features(g: GraphExport) -> pd.DataFrame:
    """Per device: users, logins, orders placed from it, kind (one-hot)."""
    n = len(g.ids["device"])
    uses = g.edges[schema.USES_EDGE]
    d = uses["dst"].to_numpy(np.int64)
    logins = pd.to_numeric(uses.get("logins", pd.Series(dtype=float)), errors="coerce").fillna(0)
    orders = g.edges[schema.ORDERED_EDGE]
    order_dev = _device_index(g, orders["device_id"])
    feats = {
        "n_users": _count(d, n),
        "n_logins": _count(d, n, logins.to_numpy(np.float64)),
        "n_orders": _count(order_dev[order_dev >= 0], n),
    }
    kind = g.nodes["device"]["kind"].to_numpy(dtype=object)
    for k in schema.DEVICE_KINDS:
        feats[f"kind_{k}"] = (kind == k).astype(np.float64)
    return pd.DataFrame(feats)
