"""The report's numbers on planted data: PSI on known shifts, fairness on a planted disparity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.report.stats import (
    band_table,
    calibration_bins,
    drift_table,
    group_table,
    psi,
    psi_categorical,
    psi_flag,
)


def test_psi_of_a_known_categorical_shift() -> None:
    before = pd.Series(["a"] * 50 + ["b"] * 50)
    after = pd.Series(["a"] * 25 + ["b"] * 75)
    want = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert psi_categorical(before, after) == pytest.approx(want)  # 0.275: a major shift
    assert psi_flag(psi_categorical(before, after)) == "major shift"


def test_psi_of_a_shifted_normal_matches_theory() -> None:
    """For N(0,1) against N(mu,1) the PSI (the symmetric KL divergence) is mu^2; ten decile
    bins lose a little of it. No shift gives a PSI near zero."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=200_000)
    assert psi(base, rng.normal(size=200_000)) < 0.001
    shifted = psi(base, rng.normal(0.5, 1.0, 200_000))
    assert 0.2 < shifted <= 0.25 + 0.005
    assert psi_flag(psi(base, rng.normal(0.35, 1.0, 200_000))) == "moderate shift"
    assert psi_flag(psi(base, rng.normal(0.1, 1.0, 200_000))) == "stable"
    # values beyond the old range land in the outer bins instead of vanishing
    assert psi(base, base + 10) > 5


def _planted(n: int = 4_000, seed: int = 0) -> pd.DataFrame:
    """Country A: 90% approved, 2% bad; country B: 45% approved, 10% bad; C: 10 users."""
    rng = np.random.default_rng(seed)
    country = np.array(["A"] * (n // 2) + ["B"] * (n // 2) + ["C"] * 10)
    approve_p = np.select([country == "A", country == "B"], [0.9, 0.45], 0.5)
    approved = rng.random(len(country)) < approve_p
    score = np.where(approved, rng.integers(600, 850, len(country)),
                     rng.integers(300, 560, len(country)))  # fmt: skip
    bad = rng.random(len(country)) < np.select([country == "A", country == "B"], [0.02, 0.10], 0)
    labelled = rng.random(len(country)) < 0.5
    return pd.DataFrame({
        "country": country, "credit_score": score,
        "fraud": np.where(labelled, bad.astype(float), np.nan), "default": np.nan,
        "risk_band": np.where(score >= 580, "low", "high"),
    })  # fmt: skip


def test_fairness_table_finds_a_planted_disparity() -> None:
    table = group_table(_planted(), "country")
    a, b = table.loc["A"], table.loc["B"]
    assert a["approval_rate"] == pytest.approx(0.9, abs=0.03)
    assert b["approval_rate"] == pytest.approx(0.45, abs=0.03)
    assert b["disparate_impact"] == pytest.approx(0.5, abs=0.05) and b["flag"] == "below 4/5"
    assert a["disparate_impact"] == 1.0 and a["flag"] == ""
    assert b["bad_rate"] == pytest.approx(0.10, abs=0.025)
    assert a["bad_rate"] == pytest.approx(0.02, abs=0.01)
    assert a["labelled"] == pytest.approx(1000, rel=0.1)
    assert np.isnan(table.loc["C", "disparate_impact"]) and table.loc["C", "flag"] == "few users"


def test_no_disparity_no_flag() -> None:
    users = _planted()
    users["country"] = np.random.default_rng(1).choice(["A", "B"], len(users))
    table = group_table(users, "country")
    assert (table["disparate_impact"] > 0.9).all() and not (table["flag"] == "below 4/5").any()


def test_band_table_and_calibration() -> None:
    users = _planted()
    bands = band_table(users)
    assert list(bands.index) == ["low", "high"] and bands["share"].sum() == pytest.approx(1.0)
    assert bands.loc["low", "approval_rate"] == 1.0 and bands.loc["high", "approval_rate"] == 0.0
    rng = np.random.default_rng(0)
    p = rng.random(100_000)
    _, ece = calibration_bins((rng.random(100_000) < p).astype(float), p)
    assert ece < 0.01  # calibrated by construction
    _, off = calibration_bins((rng.random(100_000) < p).astype(float), p * 0.5)
    assert off == pytest.approx(0.25, abs=0.01)  # predictions halved: mean gap 0.25


def test_drift_table_orders_and_flags() -> None:
    rng = np.random.default_rng(0)
    prev = pd.DataFrame({"x": rng.normal(size=5000), "y": rng.normal(size=5000),
                         "band": ["a"] * 2500 + ["b"] * 2500})  # fmt: skip
    cur = pd.DataFrame({"x": rng.normal(size=5000) + 1.0, "y": rng.normal(size=5000),
                        "band": ["a"] * 2500 + ["b"] * 2500})  # fmt: skip
    table = drift_table(cur, prev, ["y", "x", "band", "missing"])
    assert table["what"].tolist()[0] == "x" and table.iloc[0]["flag"] == "major shift"
    assert set(table["what"]) == {"x", "y", "band"}


def test_report_curves_match_scikit_learn() -> None:
    """The report's numpy ROC and PR points are scikit-learn's (ties, continuous scores)."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    from serving.report.figures import curves

    rng = np.random.default_rng(4)
    for n, decimals in ((50, 1), (5_000, 2), (20_000, 6)):
        y = (rng.random(n) < 0.08).astype(np.float64)
        y[:3] = 1.0  # never a sample without positives (scikit-learn then returns NaN)
        score = np.round(rng.random(n) + 0.4 * y, decimals)  # rounding makes ties
        fpr, tpr, precision, recall = curves(y, score)
        expected_fpr, expected_tpr, _ = roc_curve(y, score, drop_intermediate=False)
        expected_p, expected_r, _ = precision_recall_curve(y, score)
        for got, want in ((fpr, expected_fpr), (tpr, expected_tpr), (precision, expected_p),
                          (recall, expected_r)):  # fmt: skip
            assert got.shape == want.shape and np.allclose(got, want)
