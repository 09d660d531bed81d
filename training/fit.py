"""Fit the heterogeneous GNN on the observed labels: mini-batches, early stopping, calibration.

Training runs on sampled mini-batches: PyG's ``NodeLoader`` over our plain-torch
``HeteroNeighborSampler`` (seeds first, per-relation fanouts), so memory per step is bounded by
the batch, not by the graph. Validation and scoring run one full-graph pass, which is exact (no
sampling noise in the reported metrics) and cheap without gradients. With a GPU present the
same code runs there, with bf16 autocast.
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
from torch_geometric.data import HeteroData
from torch_geometric.loader import NodeLoader

from encoders.features import NodeFeatures, Normaliser
from graph.export import GraphExport
from graph.sampling.sampler import HeteroNeighborSampler
from graph.schema import EdgeType
from training import distributed
from training.config import TrainConfig
from training.folds import split_guard
from training.inputs import edge_dims, graph_data, set_visible_labels
from training.metrics import binary_metrics
from training.model import HeteroRiskGNN, RiskEnsemble, RiskModel
from training.numeric import quantile_edges
from training.scorecard import PlattCalibrator, expected_calibration_error
from training.split import UserSplit, stratified_split, time_split

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    model: RiskModel
    normaliser: Normaliser
    calibrators: dict[str, PlattCalibrator]
    split: UserSplit
    metrics: dict[str, Any]
    config: TrainConfig
    in_dims: dict[str, int]
    edge_types: list[EdgeType]
    edge_dims: dict[EdgeType, int]
    feature_names: dict[str, list[str]]
    text_model: str | None = None  # NodeFeatures.text_model of the training features
    history: list[dict[str, float]] = field(default_factory=list)
    logits: dict[str, np.ndarray] = field(default_factory=dict)  # best model, every user
    comparison: pd.DataFrame | None = None  # filled by ``train --compare``
    oof_logits: dict[str, np.ndarray] | None = None  # crossfit: each user's out-of-fold logits
    folds: np.ndarray | None = None  # crossfit: fold per user, -1 where not labelled
    groups: np.ndarray | None = None  # crossfit: group (tied users) per user


def pick_device(name: str | None) -> torch.device:
    """The requested device, else CUDA when present, else CPU (chosen once, never hard-coded)."""
    dev = (
        torch.device(name) if name else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    return distributed.rank_device(dev)  # under torchrun on GPUs: this rank's own GPU


def _bce(logits: Tensor, target: Tensor, pos_weight: Tensor) -> Tensor:
    """Class-weighted BCE over the rows whose label is known (NaN = unknown)."""
    known = ~torch.isnan(target)
    if not known.any():
        return logits.sum() * 0.0
    return torch.nn.functional.binary_cross_entropy_with_logits(
        logits[known].float(), target[known], pos_weight=pos_weight
    )


def _pos_weight(y: np.ndarray, weighting: str = "balanced") -> Tensor:
    """Weight of a positive in the loss: rare positives count as much as all negatives
    (``balanced``, capped at 50), or the square root of that, or 1 (``none``)."""
    y = y[~np.isnan(y)]
    pos = max(float(y.sum()), 1.0)
    ratio = min((len(y) - pos) / pos, 50.0)
    weights = {"balanced": ratio, "sqrt": ratio**0.5, "none": 1.0}
    if weighting not in weights:
        raise ValueError(f"unknown class weighting {weighting!r}; use one of {sorted(weights)}")
    return torch.tensor(weights[weighting], dtype=torch.float32)


def make_split(
    g: GraphExport, labeled: np.ndarray, y: np.ndarray, config: TrainConfig
) -> UserSplit:
    """The configured held-out split of the labeled users."""
    if config.split == "stratified":
        return stratified_split(labeled, y, config.seed)
    if config.split == "time":
        created = pd.to_numeric(g.nodes["user"]["created_at"], errors="coerce").fillna(0)
        return time_split(labeled, created.to_numpy(np.int64), y)
    raise ValueError(f"unknown split {config.split!r}; use 'crossfit', 'time' or 'stratified'")


def labelled_users(g: GraphExport) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fraud and default labels of every user (NaN = unknown) and the indices of the users
    with a known fraud label; raises unless both classes are there to learn from."""
    y_fraud = g.labels["fraud"].to_numpy(np.float64)
    y_default = g.labels["default"].to_numpy(np.float64)
    labeled = np.flatnonzero(~np.isnan(y_fraud))
    if len(labeled) < 20 or len(np.unique(y_fraud[labeled])) < 2:
        raise ValueError(
            f"training needs labeled users of both classes; found {len(labeled)} labeled users"
        )
    return y_fraud, y_default, labeled


def training_summary(
    best_epochs: list[int], history: list[dict[str, float]], device: torch.device
) -> dict[str, Any]:
    """What the artifact records of how the members trained (whatever the split)."""
    return {
        "best_epoch": best_epochs,
        "epochs_run": len(history),
        "train_seconds": float(sum(h["seconds"] for h in history)),
        "train_seconds_per_epoch": float(np.mean([h["train_seconds"] for h in history])),
        "device": str(device),
    }


def fit(
    g: GraphExport,
    features: NodeFeatures,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
    truth: dict[str, np.ndarray] | None = None,
) -> TrainResult:
    """Train on observed fraud/default labels; early-stop on validation fraud AUPRC.

    With ``config.split == "crossfit"`` this is :func:`training.crossfit.crossfit` (every
    label teaches the production model, metrics out-of-fold); otherwise one held-out split.

    Args:
        truth: optional ground truth per head (every user, e.g. a generated marketplace's
            ``truth.csv``); when given, held-out metrics are also reported against it.
    """
    if config.split == "crossfit":
        from training.crossfit import crossfit  # it builds on this module

        return crossfit(g, features, config, on_epoch, truth)
    device = pick_device(config.device)
    y_fraud, y_default, labeled = labelled_users(g)
    if config.ensemble < 1:
        raise ValueError(f"ensemble must be >= 1, got {config.ensemble}")
    split = make_split(g, labeled, y_fraud[labeled].astype(int), config)
    normaliser = Normaliser.fit(features, split.train)
    x = normaliser.transform(features)
    shown = split.train if config.label_trick else np.zeros(0, dtype=np.int64)
    data = graph_data(g, x, y_fraud, shown).to(device)
    in_dims = {nt: int(data[nt].x.size(1)) for nt in data.node_types}
    dims = edge_dims(data)
    targets = torch.tensor(np.stack([y_fraud, y_default], axis=1), dtype=torch.float32)
    pos_weights = tuple(
        _pos_weight(y[split.train], config.class_weighting).to(device) for y in (y_fraud, y_default)
    )
    inputs = _TrainInputs(
        data, in_dims, dims, split, y_fraud, shown, targets.to(device), pos_weights, device,
        numeric_edges(x, normaliser, config),
    )  # fmt: skip
    members: list[HeteroRiskGNN] = []
    history: list[dict[str, float]] = []
    best_epochs: list[int] = []
    for member in range(config.ensemble):
        model, best_epoch = _train_member(member, inputs, config, history, on_epoch)
        members.append(model)
        best_epochs.append(best_epoch)
    final: RiskModel = members[0] if len(members) == 1 else RiskEnsemble(members)

    logits = predict_logits(final, data)
    calibrators = {}
    for head, y_head in (("fraud", y_fraud), ("default", y_default)):
        known = split.val[~np.isnan(y_head[split.val])]
        calibrators[head] = PlattCalibrator.fit(logits[head][known], y_head[known])
    metrics = evaluate(logits, calibrators, {"fraud": y_fraud, "default": y_default}, split)
    if truth is not None:
        metrics["truth"] = evaluate(logits, calibrators, truth, split)
    metrics["split_guard"] = split_guard({"training part": split.train}, y_fraud)
    metrics.update(training_summary(best_epochs, history, device))
    if len(best_epochs) == 1:
        metrics["best_epoch"] = best_epochs[0]
    return TrainResult(
        model=final,
        normaliser=normaliser,
        calibrators=calibrators,
        split=split,
        metrics=metrics,
        config=config,
        in_dims=in_dims,
        edge_types=list(data.edge_types),
        edge_dims=dims,
        feature_names=features.feature_names(),
        text_model=features.text_model,
        history=history,
        logits=logits,
    )


@dataclass
class _TrainInputs:
    """What every ensemble member trains on (built once in :func:`fit`)."""

    data: HeteroData
    in_dims: dict[str, int]
    edge_dims: dict[EdgeType, int]
    split: UserSplit
    y_fraud: np.ndarray
    shown: np.ndarray  # users whose fraud label is an input outside training batches
    targets: Tensor  # (users, 2): fraud, default
    pos_weights: tuple[Tensor, ...]  # fraud, default
    device: torch.device
    numeric_edges: dict[str, Tensor] | None = None  # see training.numeric


def numeric_edges(
    x: dict[str, np.ndarray], normaliser: Normaliser, config: TrainConfig
) -> dict[str, Tensor]:
    """Quantile edges of the users' scalar columns for the piecewise-linear encoding
    (``training.numeric``), over every user (no label enters them); empty when
    ``config.numeric_bins`` is 0."""
    if config.numeric_bins <= 0:
        return {}
    columns = len(normaliser.scalers["user"].columns)
    return {"user": quantile_edges(x["user"][:, :columns], config.numeric_bins)}


def _train_member(
    member: int,
    inputs: _TrainInputs,
    config: TrainConfig,
    history: list[dict[str, float]],
    on_epoch: EpochCallback | None,
) -> tuple[HeteroRiskGNN, int]:
    """One model from seed ``config.seed + member``, early-stopped on validation fraud
    AUPRC and returned at its best epoch (with that epoch); one row per epoch is appended
    to ``history``."""
    seed = config.seed + member
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data, split, y_fraud, device = inputs.data, inputs.split, inputs.y_fraud, inputs.device
    model = HeteroRiskGNN(
        inputs.in_dims, list(data.edge_types), inputs.edge_dims, config.hidden, config.layers,
        config.dropout, inputs.numeric_edges,
    ).to(device)  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rank, _ = distributed.world()  # under torchrun: DDP, this rank's slice of the seeds
    trained = distributed.wrap(model)
    sampler = HeteroNeighborSampler(data, num_neighbors=list(config.fanouts), seed=seed + rank)
    autocast = device.type == "cuda"
    pw_f, pw_d = inputs.pos_weights
    best_score, best_state, best_epoch = -1.0, None, 0
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        train_users = split.train[rng.permutation(len(split.train))]
        if config.label_trick:  # show some training labels, learn to predict the others
            n_shown = int(len(train_users) * config.label_input_share)
            set_visible_labels(data, y_fraud, train_users[:n_shown])
            train_users = train_users[n_shown:]
        train_users = distributed.rank_slice(train_users)
        loader = NodeLoader(
            data, node_sampler=sampler, input_nodes=("user", torch.from_numpy(train_users)),
            batch_size=config.batch_size, shuffle=False,  # already permuted with rng
        )  # fmt: skip
        trained.train()
        total, batches = 0.0, 0
        for batch in loader:
            opt.zero_grad()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                out = trained(
                    batch.x_dict, batch.edge_index_dict, batch.edge_attr_dict,
                    batch.num_sampled_nodes_dict, batch.num_sampled_edges_dict,
                )  # fmt: skip
            size = batch["user"].batch_size
            y = inputs.targets[batch["user"].n_id[:size]]
            loss = _bce(out["fraud"][:size], y[:, 0], pw_f) + 0.5 * _bce(
                out["default"][:size], y[:, 1], pw_d
            )
            loss.backward()
            opt.step()
            distributed.after_step(model)
            total, batches = total + loss.item(), batches + 1
        train_seconds = time.perf_counter() - started
        set_visible_labels(data, y_fraud, inputs.shown)
        logits = predict_logits(model, data)
        val = binary_metrics(y_fraud[split.val], logits["fraud"][split.val])
        val["auprc"] = distributed.agree(val["auprc"])  # every rank stops at the same epoch
        row = {"member": member, "epoch": epoch, "loss": total / max(batches, 1),
               "val_auprc": val["auprc"], "val_auroc": val["auroc"],
               "seeds": len(train_users), "batches": batches,
               "train_seconds": train_seconds,
               "seconds": time.perf_counter() - started}  # fmt: skip
        history.append(row)
        if on_epoch:
            on_epoch(len(history), row)
        if val["auprc"] > best_score:
            best_score, best_epoch = val["auprc"], epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, best_epoch


INFERENCE_MAX_EDGES = 1 << 19
"""Edges whose messages exist at once in a full-graph pass (and in the reasons' backward
pass). At 1M users, 512k-edge blocks were faster than 2M-edge ones (47 s against 53 s
forward, 181 s against 212 s with reasons, with per-relation blocks; smaller blocks stay in
cache) and kept the
forward pass under the memory the export already peaked at."""


@torch.inference_mode()
def predict_logits(
    model: RiskModel, data: HeteroData, max_edges: int = INFERENCE_MAX_EDGES
) -> dict[str, np.ndarray]:
    """Raw logits per head for every node, a full-graph pass layer by layer whose messages
    are computed ``max_edges`` edges at a time, so a million-user graph is scored in bounded
    memory (model left in eval mode)."""
    model.eval()
    out = model(data.x_dict, data.edge_index_dict, data.edge_attr_dict, max_edges=max_edges)
    return {k: v.float().cpu().numpy() for k, v in out.items()}


def evaluate(
    logits: dict[str, np.ndarray],
    calibrators: dict[str, PlattCalibrator],
    labels: dict[str, np.ndarray],
    split: UserSplit,
) -> dict[str, Any]:
    """Held-out (test) ranking metrics and calibration error for both heads.

    Args:
        labels: head -> label per user (1/0/NaN); the observed labels or the ground truth.
    """
    out: dict[str, Any] = {"n_train": len(split.train), "n_val": len(split.val),
                           "n_test": len(split.test)}  # fmt: skip
    for head, y in labels.items():
        test = split.test[~np.isnan(y[split.test])]
        p = calibrators[head](logits[head][test])
        out[head] = binary_metrics(y[test], p)
        out[head]["ece"] = expected_calibration_error(p, y[test])
    return out
