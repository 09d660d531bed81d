"""Labels for the synthetic marketplace: true credit default and the partial, noisy export.

Default is driven by observable behaviour (refunds, cancellations, spend volatility, KYC level,
email age) plus a latent risk, so a model has something real to learn; the exported labels are
then thinned and flipped the way a customer's labels are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.generator_fraud import CANCELLED, REFUNDED, OrderBatch


def default_truth(
    rng: np.random.Generator,
    orders: OrderBatch,
    users: pd.DataFrame,
    amount: np.ndarray,
    risk: np.ndarray,
    is_fraud: np.ndarray,
    default_rate: float,
) -> np.ndarray:
    """Credit default from behaviour: refunds, cancellations, spend volatility, KYC, email age.

    Non-fraud users default when their noisy score is in the top ``default_rate``; fraud users
    mostly default (85%), since a ring that charges back never repays.
    """
    n = len(users)
    n_orders = np.maximum(np.bincount(orders.user, minlength=n), 1)
    refunds = np.bincount(orders.user, orders.status == REFUNDED, minlength=n) / n_orders
    cancels = np.bincount(orders.user, orders.status == CANCELLED, minlength=n) / n_orders
    mean = np.bincount(orders.user, amount, minlength=n) / n_orders
    square = np.bincount(orders.user, amount**2, minlength=n) / n_orders
    volatility = np.sqrt(np.maximum(square - mean**2, 0)) / np.maximum(mean, 1e-9)

    def z(x: np.ndarray) -> np.ndarray:
        return (x - x.mean()) / (x.std() + 1e-9)

    score = (
        z(refunds)
        + 0.8 * z(cancels)
        + 0.6 * z(volatility)
        + 0.8 * risk
        - 0.4 * z(users["feat_kyc_level"].to_numpy())
        - 0.3 * z(np.log1p(users["feat_email_age_days"].to_numpy()))
        + rng.logistic(0.0, 0.7, n)
    )
    cutoff = np.quantile(score[~is_fraud], 1 - default_rate) if (~is_fraud).any() else np.inf
    return np.where(is_fraud, rng.random(n) < 0.85, score >= cutoff).astype(np.int64)


def observed_labels(
    rng: np.random.Generator,
    observed_share: float,
    noise: float,
    unknown_share: float,
    user_ids: np.ndarray,
    is_fraud: np.ndarray,
    default: np.ndarray,
) -> pd.DataFrame:
    """Labels as a customer would export them: partial, slightly noisy, some defaults unknown."""
    n = len(user_ids)
    observed = np.flatnonzero(rng.random(n) < observed_share)
    flip_fraud = rng.random(n) < noise
    flip_default = rng.random(n) < noise
    unknown = rng.random(n) < unknown_share
    fraud_label = (is_fraud ^ flip_fraud)[observed]
    default_label = pd.array((default ^ flip_default)[observed], dtype="Int64")
    default_label[unknown[observed]] = pd.NA
    return pd.DataFrame(
        {"user_id": user_ids[observed], "fraud": fraud_label, "default": default_label}
    )
