"""Fit the heterogeneous GNN on the observed labels, with early stopping and calibration.

Full-graph training: the marketplaces of the demo and the tests fit in memory, and PyG's
neighbour loaders need compiled extensions that do not install from PyPI wheels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from encoders.features import NodeFeatures, Normaliser
from graph.export import GraphExport
from training.metrics import binary_metrics
from training.model import EdgeType, HeteroRiskGNN
from training.scorecard import PlattCalibrator, expected_calibration_error
from training.split import UserSplit, stratified_split, time_split

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainConfig:
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.2
    epochs: int = 200
    patience: int = 30
    lr: float = 0.005
    weight_decay: float = 1e-4
    seed: int = 0
    device: str | None = None
    split: str = "stratified"  # or "time": train on earlier accounts, test on later ones


@dataclass
class TrainResult:
    model: HeteroRiskGNN
    normaliser: Normaliser
    calibrators: dict[str, PlattCalibrator]
    split: UserSplit
    metrics: dict[str, Any]
    config: TrainConfig
    in_dims: dict[str, int]
    edge_types: list[EdgeType]
    feature_names: dict[str, list[str]]
    history: list[dict[str, float]] = field(default_factory=list)
    logits: dict[str, np.ndarray] = field(default_factory=dict)  # best model, every user
    comparison: pd.DataFrame | None = None  # filled by ``train --compare``


def pick_device(name: str | None) -> torch.device:
    """The requested device, else CUDA when present, else CPU (chosen once, never hard-coded)."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def graph_tensors(
    g: GraphExport, x: dict[str, np.ndarray], device: torch.device
) -> tuple[dict[str, Tensor], dict[EdgeType, Tensor]]:
    """Feature matrices and edge indices on ``device``, skipping relations with no edges."""
    x_dict = {nt: torch.from_numpy(v).to(device) for nt, v in x.items()}
    edge_index_dict = {
        et: g.data[et].edge_index.to(device)
        for et in g.data.edge_types
        if g.data[et].edge_index.numel() > 0
    }
    return x_dict, edge_index_dict


def _masked_bce(logits: Tensor, y: Tensor, idx: Tensor, pos_weight: Tensor) -> Tensor:
    target = y[idx]
    known = ~torch.isnan(target)
    if not known.any():
        return logits.sum() * 0.0
    return torch.nn.functional.binary_cross_entropy_with_logits(
        logits[idx][known], target[known], pos_weight=pos_weight
    )


def _pos_weight(y: np.ndarray) -> Tensor:
    y = y[~np.isnan(y)]
    pos = max(float(y.sum()), 1.0)
    return torch.tensor(min((len(y) - pos) / pos, 50.0), dtype=torch.float32)


def make_split(
    g: GraphExport, labeled: np.ndarray, y: np.ndarray, config: TrainConfig
) -> UserSplit:
    """The configured held-out split of the labeled users."""
    if config.split == "stratified":
        return stratified_split(labeled, y, config.seed)
    if config.split == "time":
        created = pd.to_numeric(g.nodes["user"]["created_at"], errors="coerce").fillna(0)
        return time_split(labeled, created.to_numpy(np.int64), y)
    raise ValueError(f"unknown split {config.split!r}; use 'time' or 'stratified'")


def fit(
    g: GraphExport,
    features: NodeFeatures,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train on observed fraud/default labels; early-stop on validation fraud AUPRC."""
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    device = pick_device(config.device)
    y_fraud = g.labels["fraud"].to_numpy(np.float64)
    y_default = g.labels["default"].to_numpy(np.float64)
    labeled = np.flatnonzero(~np.isnan(y_fraud))
    if len(labeled) < 20 or len(np.unique(y_fraud[labeled])) < 2:
        raise ValueError(
            f"training needs labeled users of both classes; found {len(labeled)} labeled users"
        )
    split = make_split(g, labeled, y_fraud[labeled].astype(int), config)
    normaliser = Normaliser.fit(features, split.train)
    x = normaliser.transform(features)
    x_dict, edge_index_dict = graph_tensors(g, x, device)
    model = HeteroRiskGNN(
        {nt: v.shape[1] for nt, v in x.items()},
        list(edge_index_dict),
        hidden=config.hidden,
        layers=config.layers,
        dropout=config.dropout,
    ).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    yf = torch.tensor(y_fraud, dtype=torch.float32, device=device)
    yd = torch.tensor(y_default, dtype=torch.float32, device=device)
    train_idx = torch.from_numpy(split.train).to(device)
    pw_f = _pos_weight(y_fraud[split.train]).to(device)
    pw_d = _pos_weight(y_default[split.train]).to(device)

    best_score, best_state, best_epoch, history = -1.0, None, 0, []
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        opt.zero_grad()
        out = model(x_dict, edge_index_dict)
        loss = _masked_bce(out["fraud"], yf, train_idx, pw_f) + 0.5 * _masked_bce(
            out["default"], yd, train_idx, pw_d
        )
        loss.backward()
        opt.step()
        logits = predict_logits(model, x_dict, edge_index_dict)
        val = binary_metrics(y_fraud[split.val], logits["fraud"][split.val])
        row = {"epoch": epoch, "loss": loss.item(), "val_auprc": val["auprc"],
               "val_auroc": val["auroc"], "seconds": time.perf_counter() - started}  # fmt: skip
        history.append(row)
        if on_epoch:
            on_epoch(epoch, row)
        if val["auprc"] > best_score:
            best_score, best_epoch = val["auprc"], epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)

    logits = predict_logits(model, x_dict, edge_index_dict)
    calibrators = {}
    for head, y in (("fraud", y_fraud), ("default", y_default)):
        known = split.val[~np.isnan(y[split.val])]
        calibrators[head] = PlattCalibrator.fit(logits[head][known], y[known])
    metrics = evaluate(logits, calibrators, y_fraud, y_default, split)
    metrics["best_epoch"] = best_epoch
    metrics["epochs_run"] = len(history)
    return TrainResult(
        model=model,
        normaliser=normaliser,
        calibrators=calibrators,
        split=split,
        metrics=metrics,
        config=config,
        in_dims={nt: v.shape[1] for nt, v in x.items()},
        edge_types=list(edge_index_dict),
        feature_names=features.feature_names(),
        history=history,
        logits=logits,
    )


@torch.inference_mode()
def predict_logits(
    model: HeteroRiskGNN, x_dict: dict[str, Tensor], edge_index_dict: dict[EdgeType, Tensor]
) -> dict[str, np.ndarray]:
    """Raw logits per head as numpy arrays (model left in eval mode)."""
    model.eval()
    out = model(x_dict, edge_index_dict)
    return {k: v.float().cpu().numpy() for k, v in out.items()}


def evaluate(
    logits: dict[str, np.ndarray],
    calibrators: dict[str, PlattCalibrator],
    y_fraud: np.ndarray,
    y_default: np.ndarray,
    split: UserSplit,
) -> dict[str, Any]:
    """Held-out (test) ranking metrics and calibration error for both heads."""
    out: dict[str, Any] = {"n_train": len(split.train), "n_val": len(split.val),
                           "n_test": len(split.test)}  # fmt: skip
    for head, y in (("fraud", y_fraud), ("default", y_default)):
        test = split.test[~np.isnan(y[split.test])]
        p = calibrators[head](logits[head][test])
        out[head] = binary_metrics(y[test], p)
        out[head]["ece"] = expected_calibration_error(p, y[test])
    return out
