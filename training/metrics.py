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
