"""Credit score scaling and calibration."""

from __future__ import annotations

import numpy as np
import pytest

from training.scorecard import (
    PlattCalibrator,
    ScoreScale,
    expected_calibration_error,
    p_bad,
    risk_band,
)


def test_base_score_at_base_odds_and_pdo_doubles_odds() -> None:
    scale = ScoreScale(base_score=600, base_odds=50, pdo=20)
    p_at_base = 1 / 51  # good:bad odds of 50:1
    p_double = 1 / 101  # odds 100:1
    assert scale.score(np.array([p_at_base]))[0] == 600
    assert scale.score(np.array([p_double]))[0] == 620


def test_scores_are_monotone_and_bounded() -> None:
    p = np.linspace(0.0, 1.0, 2001)
    s = ScoreScale().score(p)
    assert s.min() >= 300 and s.max() <= 850
    assert np.all(np.diff(s) <= 0)  # riskier never scores higher
    assert s[0] == 850 and s[-1] == 300


def test_bands_follow_scores() -> None:
    bands = risk_band(np.array([800, 700, 600, 520, 310]))
    assert list(bands) == ["very low", "low", "medium", "high", "very high"]


def test_platt_recovers_a_known_miscalibration() -> None:
    rng = np.random.default_rng(0)
    true_logit = rng.normal(-2.0, 1.5, 50_000)
    y = rng.random(50_000) < 1 / (1 + np.exp(-true_logit))
    distorted = 3.0 * true_logit + 4.0  # what a class-weighted model emits
    raw = 1 / (1 + np.exp(-distorted))
    cal = PlattCalibrator.fit(distorted, y)
    assert cal.a == pytest.approx(1 / 3, rel=0.05)
    assert expected_calibration_error(raw, y) > 0.1
    assert expected_calibration_error(cal(distorted), y) < 0.01


def test_bad_probability_combines_fraud_and_default() -> None:
    assert p_bad(np.array([0.5]), np.array([0.5]))[0] == pytest.approx(0.75)
    assert p_bad(np.array([0.0]), np.array([0.2]))[0] == pytest.approx(0.2)
