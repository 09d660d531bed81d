"""Cross-fitting: the production scorer learns from every label, and is still evaluated honestly.

A held-out split makes one model do two jobs: it is evaluated on the test part and then scores
production users, so the newest labels (validation and test) never teach it anything. Here the
two jobs are separated. The labelled users are dealt into K grouped, stratified folds
(:mod:`training.folds`); fold model k trains on the other folds, early-stops on a grouped
validation slice of them, and predicts fold k, whose labels it never saw, neither as targets
nor as label-trick inputs. Those out-of-fold (OOF) predictions give the metrics, with a
bootstrap interval, and the Platt calibration. The production scorer is the mean of the K fold
models' logits (a :class:`~training.model.RiskEnsemble`), scored with every label visible.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from encoders.features import NodeFeatures, Normaliser
from graph.export import GraphExport
from training.config import TrainConfig
from training.fit import (
    EpochCallback,
    TrainResult,
    _pos_weight,
    _train_member,
    _TrainInputs,
    labelled_users,
    numeric_edges,
    pick_device,
    predict_logits,
    training_summary,
)
from training.folds import grouped_folds, split_guard, user_groups, validation_slice
from training.inputs import edge_dims, graph_data, set_visible_labels
from training.metrics import binary_metrics, bootstrap_intervals
from training.model import HeteroRiskGNN, RiskEnsemble
from training.scorecard import PlattCalibrator, expected_calibration_error
from training.split import UserSplit

HEADS = ("fraud", "default")


def crossfit(
    g: GraphExport,
    features: NodeFeatures,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
    truth: dict[str, np.ndarray] | None = None,
    folds: np.ndarray | None = None,
) -> TrainResult:
    """Fit ``config.folds`` fold models on every labelled user; return the production
    ensemble, OOF metrics and calibrators fitted on the OOF logits.

    Args:
        truth: optional ground truth per head for every user; the OOF predictions are scored
            against it on the labelled users, and the production scores on the others.
        folds: fold of every user (-1 = not labelled) to use instead of computing them; a
            test passes the same folds twice to check that a user's OOF score ignores its label.
    """
    device = pick_device(config.device)
    y_fraud, y_default, labeled = labelled_users(g)
    near = features.text.review_near_dups if features.text else None
    groups = user_groups(g, config.public_device_users, near)
    if folds is None:
        folds = np.full(len(y_fraud), -1, dtype=np.int64)
        folds[labeled] = grouped_folds(
            labeled, y_fraud[labeled].astype(int), groups, config.folds, config.seed
        )
    k = int(folds.max()) + 1
    normaliser = Normaliser.fit(features, labeled)  # features only: no label enters it
    x = normaliser.transform(features)
    data = graph_data(g, x, y_fraud, labeled).to(device)
    in_dims = {nt: int(data[nt].x.size(1)) for nt in data.node_types}
    dims = edge_dims(data)
    targets = torch.tensor(np.stack([y_fraud, y_default], axis=1), dtype=torch.float32).to(device)

    members: list[HeteroRiskGNN] = []
    history: list[dict[str, float]] = []
    best_epochs: list[int] = []
    oof = {head: np.full(len(y_fraud), np.nan) for head in HEADS}
    parts: dict[str, np.ndarray] = {}
    encoding = numeric_edges(x, normaliser, config)
    for fold in range(k):
        held_out = np.flatnonzero(folds == fold)
        others = np.flatnonzero((folds >= 0) & (folds != fold))
        train, val = validation_slice(
            others, y_fraud[others].astype(int), groups, config.val_share, config.seed + fold
        )
        parts[f"fold {fold + 1} training part"] = train
        shown = train if config.label_trick else np.zeros(0, dtype=np.int64)
        pos_weights = tuple(
            _pos_weight(y[train], config.class_weighting).to(device) for y in (y_fraud, y_default)
        )
        inputs = _TrainInputs(
            data, in_dims, dims, UserSplit(train, val, held_out), y_fraud, shown, targets,
            pos_weights, device, encoding,
        )  # fmt: skip
        model, best_epoch = _train_member(fold, inputs, config, history, on_epoch)
        # the held-out fold: every label but its own is visible, as in production
        set_visible_labels(data, y_fraud, others if config.label_trick else shown)
        logits = predict_logits(model, data)
        for head in HEADS:
            oof[head][held_out] = logits[head][held_out]
        members.append(model)
        best_epochs.append(best_epoch)

    final = RiskEnsemble(members)
    set_visible_labels(data, y_fraud, labeled if config.label_trick else np.zeros(0, np.int64))
    production = predict_logits(final, data)
    calibrators = {}
    for head, y in (("fraud", y_fraud), ("default", y_default)):
        known = labeled[~np.isnan(y[labeled])]
        cal = PlattCalibrator.fit(oof[head][known], y[known])
        calibrators[head] = cal if cal.a > 0 else PlattCalibrator()  # never reverse the ranking
    labels = {"fraud": y_fraud, "default": y_default}
    group_sizes = np.bincount(np.unique(groups[labeled], return_inverse=True)[1])
    metrics: dict[str, Any] = {
        "evaluation": f"out-of-fold, {k} grouped folds",
        "n_labeled": len(labeled),
        "n_groups": len(group_sizes),
        "largest_group": int(group_sizes.max()),
        **oof_metrics(oof, calibrators, labels, labeled, groups, config.seed),
    }
    if truth is not None:
        metrics["truth"] = oof_metrics(oof, calibrators, truth, labeled, groups, config.seed)
        unlabeled = np.flatnonzero(np.isnan(y_fraud))
        metrics["unlabeled_truth"] = oof_metrics(
            production, calibrators, truth, unlabeled, groups, config.seed
        )
    metrics["split_guard"] = split_guard(parts, y_fraud)
    metrics.update(training_summary(best_epochs, history, device))
    return TrainResult(
        model=final,
        normaliser=normaliser,
        calibrators=calibrators,
        split=UserSplit(labeled, np.zeros(0, np.int64), labeled),
        metrics=metrics,
        config=config,
        in_dims=in_dims,
        edge_types=list(data.edge_types),
        edge_dims=dims,
        feature_names=features.feature_names(),
        text_model=features.text_model,
        history=history,
        logits=production,
        oof_logits=oof,
        folds=folds,
        groups=groups,
    )


def oof_metrics(
    logits: dict[str, np.ndarray],
    calibrators: dict[str, PlattCalibrator],
    labels: dict[str, np.ndarray],
    users: np.ndarray,
    groups: np.ndarray,
    seed: int = 0,
) -> dict[str, Any]:
    """Ranking metrics, calibration error and 95% group-bootstrap intervals for AUROC and
    AUPRC per head, over ``users`` whose label is known."""
    out: dict[str, Any] = {"n_test": len(users)}
    for head, y in labels.items():
        known = users[~np.isnan(y[users])]
        p = calibrators[head](logits[head][known])
        m: dict[str, Any] = dict(binary_metrics(y[known], p))
        m["ece"] = expected_calibration_error(p, y[known])
        ci = bootstrap_intervals(y[known], p, groups[known], seed=seed)
        m["auroc_ci"], m["auprc_ci"] = ci["auroc"], ci["auprc"]
        out[head] = m
    return out
