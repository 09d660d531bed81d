"""Ranking metrics for imbalanced risk labels (AUROC, AUPRC, recall at low FPR, KS)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def binary_metrics(y: np.ndarray, score: np.ndarray, max_fpr: float = 0.01) -> dict[str, float]:
    """AUROC, AUPRC, recall at ``max_fpr`` false-positive rate and the KS statistic.

    Returns NaNs when only one class is present (nothing to rank).
    """
    y = np.asarray(y, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    if len(np.unique(y)) < 2:
        nan = float("nan")
        return {
            "auroc": nan,
            "auprc": nan,
            "recall_at_1pct_fpr": nan,
            "ks": nan,
            "n": float(len(y)),
        }
    fpr, tpr, _ = roc_curve(y, score)
    return {
        "auroc": float(roc_auc_score(y, score)),
        "auprc": float(average_precision_score(y, score)),
        "recall_at_1pct_fpr": float(tpr[fpr <= max_fpr].max(initial=0.0)),
        "ks": float(np.max(tpr - fpr)),
        "n": float(len(y)),
        "positives": float(y.sum()),
    }


def _weighted_auc_ap(
    bins: np.ndarray, y: np.ndarray, w: np.ndarray, n_bins: int
) -> tuple[float, float]:
    """AUROC and average precision of users weighted by ``w``; ``bins`` ranks distinct scores
    from the highest (0) down, so ties count half (AUROC) and as one threshold (AP), as in
    scikit-learn."""
    pos = np.bincount(bins, weights=w * y, minlength=n_bins)
    neg = np.bincount(bins, weights=w * (1 - y), minlength=n_bins)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos == 0 or total_neg == 0:
        return float("nan"), float("nan")
    neg_below = total_neg - np.cumsum(neg)  # negatives scored lower than each bin
    auroc = float(np.sum(pos * (neg_below + 0.5 * neg)) / (total_pos * total_neg))
    tp, fp = np.cumsum(pos), np.cumsum(pos + neg)
    precision = np.divide(tp, fp, out=np.zeros_like(tp), where=fp > 0)
    auprc = float(np.sum(pos / total_pos * precision))
    return auroc, auprc


def bootstrap_intervals(
    y: np.ndarray,
    score: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals for AUROC and AUPRC.

    With ``groups`` the bootstrap resamples whole groups (users tied by a shared device):
    the members of one ring succeed or fail together, so counting them as independent
    draws would make the interval too narrow.

    Returns:
        ``{"auroc": [low, high], "auprc": [low, high]}`` (NaN when a class is missing).
    """
    y = np.asarray(y, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    nan = [float("nan"), float("nan")]
    if len(np.unique(y)) < 2:
        return {"auroc": nan, "auprc": nan}
    _, bins = np.unique(-score, return_inverse=True)
    n_bins = int(bins.max()) + 1
    _, group = np.unique(groups if groups is not None else np.arange(len(y)), return_inverse=True)
    n_groups = int(group.max()) + 1
    rng = np.random.default_rng(seed)
    draws = np.empty((n_boot, 2))
    for b in range(n_boot):
        picked = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
        draws[b] = _weighted_auc_ap(bins, y, picked[group].astype(np.float64), n_bins)
    tail = (1 - level) / 2 * 100
    return {
        name: [float(v) for v in np.nanpercentile(draws[:, j], [tail, 100 - tail])]
        for j, name in enumerate(("auroc", "auprc"))
    }
