"""Score every user with a trained artifact: calibrated probabilities, credit score, band, reasons.

Reasons come from gradient × input attributions on the user's own behaviour features (inputs
are standardised, so zero is the population mean and the product says how far the value pushes
the fraud logit), phrased with the raw value, plus a graph reason naming the most shared device.
The gradient is taken block by block (``training.attribution``), so scoring a million users
keeps at most ``INFERENCE_MAX_EDGES`` edges' messages in memory, forward and backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from encoders.features import NodeFeatures
from graph import schema
from graph.export import GraphExport
from training.artifact import ModelArtifact
from training.attribution import user_attributions
from training.fit import INFERENCE_MAX_EDGES, pick_device, predict_logits
from training.inputs import graph_data
from training.scorecard import p_bad, risk_band

TOP_REASONS = 3
# Features the graph reason ("shares device D with N accounts") already states.
DEVICE_FEATURES = frozenset({"max_users_on_device", "mean_users_on_device"})
PHRASES: dict[str, str] = {
    "chargeback_rate": "{v:.0%} of orders charged back",
    "refunded_rate": "{v:.0%} of orders refunded",
    "cancelled_rate": "{v:.0%} of orders cancelled",
    "max_orders_per_hour": "{v:.0f} orders within one hour",
    "orders_last_1d": "{v:.0f} orders in the last day",
    "orders_last_7d": "{v:.0f} orders in the last 7 days",
    "orders_last_30d": "{v:.0f} orders in the last 30 days",
    "account_age_days": "account is {v:.0f} days old",
    "days_to_first_order": "first order {v:.1f} days after sign-up",
    "n_devices": "logs in from {v:.0f} devices",
    "max_users_on_device": "uses a device shared by {v:.0f} accounts",
    "n_logins": "{v:.0f} logins",
    "n_reviews": "{v:.0f} reviews written",
    "mean_rating": "mean rating given {v:.1f} stars",
    "mean_users_on_device": "devices used by {v:.1f} accounts on average",
    "night_share": "{v:.0%} of orders placed at night",
    "recent_spend_share": "{v:.0%} of all spend in the last 7 days",
    "order_rate_change": "orders in the last 7 days against the earlier weekly rate: {v:.1f}",
    "amount_change": "mean order in the last 7 days {v:.1f}x the earlier mean",
    "max_amount": "largest order {v:,.2f}",
    "total_spend": "total spend {v:,.2f}",
    "mean_amount": "mean order {v:,.2f}",
    "n_orders": "{v:.0f} orders",
    "five_star_share": "{v:.0%} of reviews are five-star",
    "rating_deviation": "ratings differ from product means by {v:.1f} stars",
    "text_near_dup_reviews_max": "a review near-identical to {v:.0f} others on the same merchant",
    "text_near_dup_review_share": "{v:.0%} of reviews near-identical to others on the same merchant",
}


@dataclass
class Scores:
    """One row per user, aligned with ``GraphExport.ids['user']`` (a shard: its rows, in order)."""

    frame: pd.DataFrame
    merchant_risk: np.ndarray


def _phrase(name: str, value: float) -> str:
    template = PHRASES.get(name)
    if template is None:
        return f"{name.replace('_', ' ')} = {value:.3g}"
    return template.format(v=value)


def shared_device_reasons(g: GraphExport) -> np.ndarray:
    """Per user: 'shares device D with N accounts, K confirmed fraud' for their most shared device."""
    n = len(g.ids["user"])
    out = np.full(n, "", dtype=object)
    uses = g.edges[schema.USES_EDGE]
    if uses.empty:
        return out
    u = uses["src"].to_numpy(np.int64)
    d = uses["dst"].to_numpy(np.int64)
    n_dev = len(g.ids["device"])
    users_on = np.bincount(d, minlength=n_dev)
    fraud = np.nan_to_num(g.labels["fraud"].to_numpy(np.float64)) > 0
    fraud_on = np.bincount(d, weights=fraud[u].astype(float), minlength=n_dev)
    edges = pd.DataFrame({"u": u, "d": d, "k": users_on[d]}).sort_values(
        ["u", "k"], ascending=[True, False]
    )
    top = edges.drop_duplicates("u")
    top = top[top["k"] >= 3]
    uu, dd = top["u"].to_numpy(), top["d"].to_numpy()
    others_fraud = fraud_on[dd] - fraud[uu]
    dev_ids = g.ids["device"][dd]
    out[uu] = [
        f"shares device {dev} with {k - 1} other accounts"
        + (f", {int(f)} confirmed fraud" if f > 0 else "")
        for dev, k, f in zip(dev_ids, users_on[dd], others_fraud, strict=True)
    ]
    return out


def shard_rows(user_ids: np.ndarray, shard: int, shards: int) -> np.ndarray:
    """Rows of shard ``shard`` (0-based) of ``shards``: a contiguous range of the users sorted
    by id, so shards never overlap, cover everyone, and a rerun picks the same users."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard}/{shards}: need 0 <= shard < shards")
    order = np.argsort(np.asarray(user_ids, dtype=str), kind="stable")
    bounds = np.linspace(0, len(order), shards + 1).round().astype(np.int64)
    return np.sort(order[bounds[shard] : bounds[shard + 1]])


def score_users(
    g: GraphExport,
    features: NodeFeatures,
    artifact: ModelArtifact,
    device: str | None = None,
    rows: np.ndarray | None = None,
) -> Scores:
    """Calibrated fraud and default probabilities, credit score, band and reasons for every user
    (or only ``rows``, a shard: the full-graph pass is the same, so its scores are exactly
    those of an unsharded run; the per-user reasons are phrased for its rows only)."""
    artifact.check_features(features)
    dev = pick_device(device)
    model = artifact.model.to(dev)
    x = artifact.normaliser.transform(features)
    y_fraud = g.labels["fraud"].to_numpy(np.float64)
    # Scoring shows the model every observed label (an analyst knows them too); a user's own
    # label is an input only for that user, whose outcome is known anyway.
    labeled = np.flatnonzero(~np.isnan(y_fraud))
    shown = labeled if artifact.config["train"].get("label_trick") else labeled[:0]
    data = graph_data(g, x, y_fraud, shown).to(dev)
    logits = predict_logits(model, data)
    p_fraud = artifact.calibrators["fraud"](logits["fraud"])
    p_default = artifact.calibrators["default"](logits["default"])
    bad = p_bad(p_fraud, p_default)
    credit = artifact.scale.score(bad)

    names = artifact.feature_names["user"]
    attributions = user_attributions(model, data, INFERENCE_MAX_EDGES)[:, : len(names)]
    top = np.argsort(-attributions, axis=1)[:, : TOP_REASONS + len(DEVICE_FEATURES)]
    raw = features.scalars["user"][names].to_numpy(np.float64)
    graph_reason = shared_device_reasons(g)
    rows = np.arange(len(top)) if rows is None else rows
    reasons, codes = [], []
    for i in rows:  # phrasing is per user text, the ranking above is vectorised
        has_graph_reason = bool(graph_reason[i]) and p_fraud[i] >= 0.5
        items = [graph_reason[i]] if has_graph_reason else []
        item_codes = ["shared_device"] if has_graph_reason else []
        for j in top[i]:
            if attributions[i, j] > 0 and not (has_graph_reason and names[j] in DEVICE_FEATURES):
                items.append(_phrase(names[j], raw[i, j]))
                item_codes.append(names[j])
        reasons.append(items[:TOP_REASONS])
        codes.append(item_codes[:TOP_REASONS])
    frame = pd.DataFrame(
        {
            "user_id": g.ids["user"][rows],
            "risk_score": p_fraud[rows],
            "default_probability": p_default[rows],
            "bad_probability": bad[rows],
            "credit_score": credit[rows],
            "risk_band": risk_band(credit[rows]),
            "reasons": reasons,
            "reason_codes": codes,  # machine-readable: feature names, or "shared_device"
        }
    )
    return Scores(frame, merchant_risk(g, p_fraud))


def merchant_risk(g: GraphExport, p_fraud: np.ndarray, prior_weight: float = 5.0) -> np.ndarray:
    """Per merchant: the expected share of fraudulent accounts among its reviewers and buyers.

    A colluding merchant is one whose reviews come from fraud rings; a merchant that ring
    accounts merely buy from is a victim, so reviews weigh twice as much as orders. The mean
    is shrunk towards the marketplace mean with ``prior_weight`` pseudo-interactions, so a
    merchant with two reviews from one bad account is not ranked above a proven colluder.
    """
    n = len(g.ids["merchant"])
    of_product = g.merchant_of_product()
    weight, risk = np.zeros(n), np.zeros(n)
    for et, w in ((schema.REVIEWED_EDGE, 2.0), (schema.ORDERED_EDGE, 1.0)):
        frame = g.edges[et]
        m = of_product[frame["dst"].to_numpy(np.int64)]
        ok = m >= 0
        weight += np.bincount(m[ok], minlength=n) * w
        risk += np.bincount(m[ok], weights=p_fraud[frame["src"].to_numpy(np.int64)[ok]] * w,
                            minlength=n)  # fmt: skip
    prior = float(np.mean(p_fraud)) if len(p_fraud) else 0.0
    return (risk + prior_weight * prior) / (weight + prior_weight)
