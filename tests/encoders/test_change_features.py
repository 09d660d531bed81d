"""The change features compare an account's last week with its own history before it."""

from __future__ import annotations

import numpy as np

from encoders.behaviour import CHANGE_WINDOW_DAYS, change_features


def _one(
    recent_n: float, recent_spend: float, prior_n: float, prior_spend: float, age: float
) -> dict[str, float]:
    out = change_features(
        np.array([recent_n]),
        np.array([recent_spend]),
        np.array([prior_n]),
        np.array([prior_spend]),
        np.array([age]),
    )
    return {name: float(v[0]) for name, v in out.items()}


def test_spike_after_a_steady_history_stands_out() -> None:
    # a year of one 40.00 order a week, then: the same week again, or six 400.00 orders
    steady = _one(1, 40.0, 52, 52 * 40.0, 365 + CHANGE_WINDOW_DAYS)
    spike = _one(6, 2400.0, 52, 52 * 40.0, 365 + CHANGE_WINDOW_DAYS)
    assert steady["order_rate_change"] < 1.0 < spike["order_rate_change"]
    assert steady["amount_change"] == 1.0
    assert spike["amount_change"] == 10.0
    assert steady["recent_spend_share"] < 0.05 < 0.5 < spike["recent_spend_share"]


def test_accounts_without_history_are_neutral_not_missing() -> None:
    new = _one(3, 90.0, 0, 0.0, 2.0)  # created two days ago
    assert new["amount_change"] == 1.0  # nothing before to compare with
    assert new["order_rate_change"] == 3.0  # the week's orders over a zero earlier rate
    assert new["recent_spend_share"] == 1.0
    silent = _one(0, 0.0, 0, 0.0, 400.0)
    assert silent == {"recent_spend_share": 0.0, "order_rate_change": 0.0, "amount_change": 1.0}


def test_vectorised_rows_equal_one_at_a_time() -> None:
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 5, 200).astype(float), rng.random(200) * 300,
            rng.integers(0, 40, 200).astype(float), rng.random(200) * 3000,
            rng.random(200) * 700]  # fmt: skip
    rows[3][rows[2] == 0] = 0.0
    whole = change_features(*rows)
    for i in range(0, 200, 17):
        single = _one(*(float(r[i]) for r in rows))
        for name, value in single.items():
            assert whole[name][i] == value
