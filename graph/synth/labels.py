"""Labels for the synthetic marketplace: true credit default and the partial, noisy export.

Default is driven by observable behaviour (refunds, cancellations, spend volatility, KYC level,
email age) plus a latent risk, so a model has something real to learn; the exported labels are
then thinned and flipped the way a customer's labels are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.synth.fraud import (
    BUST_OUT,
    BUST_OUT_SPIKE,
    CANCELLED,
    FRAUD_OPENED,
    REFUNDED,
    TAKEOVER_SPREE,
    OrderBatch,
)


def default_truth(
    rng: np.random.Generator,
    orders: OrderBatch,
    users: pd.DataFrame,
    amount: np.ndarray,
    risk: np.ndarray,
    role: np.ndarray,
    default_rate: float,
) -> np.ndarray:
    """Credit default from behaviour: refunds, cancellations, spend volatility, KYC, email age.

    The score reads the account holder's own orders only, not a bust-out spike or a takeover
    spree. Legit and taken-over users default when their noisy score is in the top
    ``default_rate`` of those users (a takeover victim owes nothing for the attacker's orders);
    ring and lone fraudsters (all accounts fraudsters open) mostly default (85%), since a ring that charges back never repays;
    bust-out users always default, that is the scheme.
    """
    n = len(users)
    own = ~np.isin(orders.kind, (BUST_OUT_SPIKE, TAKEOVER_SPREE))
    user, status = orders.user[own], orders.status[own]
    n_orders = np.maximum(np.bincount(user, minlength=n), 1)
    refunds = np.bincount(user, status == REFUNDED, minlength=n) / n_orders
    cancels = np.bincount(user, status == CANCELLED, minlength=n) / n_orders
    mean = np.bincount(user, amount[own], minlength=n) / n_orders
    square = np.bincount(user, amount[own] ** 2, minlength=n) / n_orders
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
    scored = ~np.isin(role, (*FRAUD_OPENED, BUST_OUT))
    cutoff = np.quantile(score[scored], 1 - default_rate) if scored.any() else np.inf
    fraud_default = (rng.random(n) < 0.85) | (role == BUST_OUT)
    return np.where(scored, score >= cutoff, fraud_default).astype(np.int64)


def observed_labels(
    rng: np.random.Generator,
    observed_share: float,
    noise: float,
    unknown_share: float,
    is_fraud: np.ndarray,
    default: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, pd.arrays.IntegerArray]:
    """Labels as a customer would export them: partial, slightly noisy, some defaults unknown.

    Returns the observed users (indices), their fraud labels and their default labels, where
    an unknown default is missing (written as an empty field).
    """
    n = len(is_fraud)
    observed = np.flatnonzero(rng.random(n) < observed_share)
    flip_fraud = rng.random(n) < noise
    flip_default = rng.random(n) < noise
    unknown = rng.random(n) < unknown_share
    fraud_label = (is_fraud ^ flip_fraud)[observed]
    default_label = pd.array((default ^ flip_default)[observed], dtype="Int64")
    default_label[unknown[observed]] = pd.NA
    return observed, fraud_label, default_label
