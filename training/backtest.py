"""Out-of-time backtest: would the model trained at a cutoff have caught what came next?

The model is cross-fitted (:mod:`training.crossfit`) on the graph as it stood at the cutoff
(``graph.export.as_of``: no later order, review or login, and only the labels known then), then
scores the accounts created after the cutoff on the graph as it stands now, with the labels
known at the cutoff as its label inputs, exactly as production would have used it. Those
accounts are scored against their final labels (and the ground truth when given).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from encoders.features import NodeFeatures
from graph.export import GraphExport
from training.config import TrainConfig
from training.crossfit import crossfit, oof_metrics
from training.fit import EpochCallback, TrainResult, pick_device, predict_logits
from training.folds import user_groups
from training.inputs import graph_data

CUTOFF_QUANTILE = 0.8


def created_ms(g: GraphExport) -> np.ndarray:
    """Account creation (epoch ms) per user."""
    return pd.to_numeric(g.nodes["user"]["created_at"], errors="coerce").to_numpy(np.float64)


def default_cutoff(g: GraphExport, quantile: float = CUTOFF_QUANTILE) -> int:
    """The ``quantile`` of account creation among labelled users: most labels are before
    it, and enough labelled accounts come after it to score."""
    labeled = ~np.isnan(g.labels["fraud"].to_numpy(np.float64))
    if not labeled.any():
        raise ValueError("backtest needs labelled users; the graph has none")
    return int(np.quantile(created_ms(g)[labeled], quantile))


@dataclass
class Backtest:
    """What the backtest measured, and the model it fitted at the cutoff."""

    cutoff_ms: int
    metrics: dict[str, Any]  # per head on the accounts created after the cutoff
    fitted: TrainResult  # cross-fitted on the graph at the cutoff (OOF metrics there)
    labels_dated: int  # labels with an observed_at (the others count from account creation)
    labels_total: int


def backtest(
    past: GraphExport,
    past_features: NodeFeatures,
    now: GraphExport,
    now_features: NodeFeatures,
    config: TrainConfig,
    truth: dict[str, np.ndarray] | None = None,
    on_epoch: EpochCallback | None = None,
) -> Backtest:
    """Fit at the cutoff, score the accounts created after it.

    Args:
        past: ``as_of(now, cutoff)``; its labels are those known at the cutoff.
        past_features, now_features: node features of each graph (the same encoders).
        now: the graph as it stands, with the final labels (the targets).
        truth: optional ground truth per head for every user.
    """
    if past.cutoff_ms is None:
        raise ValueError("past must be an as_of view of the graph (it has no cutoff)")
    cutoff = past.cutoff_ms
    fitted = crossfit(past, past_features, config, on_epoch)  # whatever config.split says
    newer = np.flatnonzero(created_ms(now) > cutoff)
    y_known = past.labels["fraud"].to_numpy(np.float64)
    visible = np.flatnonzero(~np.isnan(y_known)) if config.label_trick else np.zeros(0, np.int64)
    device = pick_device(config.device)
    data = graph_data(now, fitted.normaliser.transform(now_features), y_known, visible)
    logits = predict_logits(fitted.model.to(device), data.to(device))
    labels = {head: now.labels[head].to_numpy(np.float64) for head in ("fraud", "default")}
    near = now_features.text.review_near_dups if now_features.text else None
    groups = user_groups(now, config.public_device_users, near)
    metrics: dict[str, Any] = {
        "evaluation": "accounts created after the cutoff, model fitted at the cutoff",
        "n_new_accounts": len(newer),
        **oof_metrics(logits, fitted.calibrators, labels, newer, groups, config.seed),
    }
    if truth is not None:
        metrics["truth"] = oof_metrics(
            logits, fitted.calibrators, truth, newer, groups, config.seed
        )
    metrics["split_guard"] = fitted.metrics["split_guard"]
    known = ~np.isnan(now.labels["fraud"].to_numpy(np.float64))
    dated = int((known & ~np.isnan(now.labels["observed_at"].to_numpy(np.float64))).sum())
    return Backtest(cutoff, metrics, fitted, dated, int(known.sum()))
