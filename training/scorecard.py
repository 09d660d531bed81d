"""Calibration and the credit score.

Weighted training losses distort probabilities, so raw logits are recalibrated on validation
users (Platt scaling: a logistic regression on the logit). The credit score then follows the
points-to-double-the-odds convention of credit scorecards:

    score = offset + factor * ln(odds_good),  factor = PDO / ln 2,
    offset = base_score - factor * ln(base_odds)

With the defaults (base score 600 at good:bad odds of 50:1, PDO 20) a user with a 50% chance
of a bad outcome scores 487, one with 1% scores 620; scores are clipped to 300..850 and are
strictly decreasing in the probability of a bad outcome (until the clip).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# scipy loads inside the methods that need it: the settings read ScoreScale's defaults, and
# `riskgraph --help` must stay quick.

SCORE_MIN, SCORE_MAX = 300, 850
BANDS: tuple[tuple[int, str], ...] = (
    (740, "very low"),
    (670, "low"),
    (580, "medium"),
    (500, "high"),
    (SCORE_MIN, "very high"),
)


@dataclass(frozen=True)
class ScoreScale:
    """Points-to-double-odds scaling (documented in the module docstring)."""

    base_score: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0

    def score(self, p_bad: np.ndarray) -> np.ndarray:
        """Integer credit scores 300..850 from probabilities of a bad outcome."""
        p = np.clip(np.asarray(p_bad, dtype=np.float64), 1e-9, 1 - 1e-9)
        factor = self.pdo / np.log(2.0)
        offset = self.base_score - factor * np.log(self.base_odds)
        raw = offset + factor * np.log((1 - p) / p)
        return np.clip(np.rint(raw), SCORE_MIN, SCORE_MAX).astype(np.int64)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def risk_band(scores: np.ndarray) -> np.ndarray:
    """Risk band names for credit scores (higher score, lower risk)."""
    out = np.full(len(scores), BANDS[-1][1], dtype=object)
    for threshold, name in reversed(BANDS):
        out[np.asarray(scores) >= threshold] = name
    return out


@dataclass(frozen=True)
class PlattCalibrator:
    """p = sigmoid(a * logit + b), fitted on validation logits."""

    a: float = 1.0
    b: float = 0.0

    @classmethod
    def fit(cls, logits: np.ndarray, labels: np.ndarray) -> PlattCalibrator:
        """Maximum-likelihood fit (L-BFGS on the log-loss with its analytic gradient)."""
        from scipy.optimize import minimize
        from scipy.special import expit

        x = np.asarray(logits, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
        if len(np.unique(y)) < 2:
            return cls()
        n_pos, n_neg = y.sum(), len(y) - y.sum()
        # Platt's smoothed targets keep the fit finite when classes separate perfectly.
        t = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
        scale = max(float(np.std(x)), 1e-6)  # optimise on a unit-scale logit, then undo

        def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
            z = params[0] * x / scale + params[1]
            p = expit(z)
            nll = np.sum(np.logaddexp(0.0, z) - t * z) / len(x)
            grad = np.array([np.sum((p - t) * x / scale), np.sum(p - t)]) / len(x)
            return float(nll), grad

        res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
        return cls(float(res.x[0] / scale), float(res.x[1]))

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        return np.asarray(expit(self.a * np.asarray(logits, dtype=np.float64) + self.b))


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-width probability bins."""
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(p) == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(total)


def p_bad(p_fraud: np.ndarray, p_default: np.ndarray) -> np.ndarray:
    """Probability of a bad outcome (fraud or default), treating the two as independent."""
    return 1 - (1 - np.asarray(p_fraud)) * (1 - np.asarray(p_default))
