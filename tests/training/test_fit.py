"""The GNN's inputs and training: edge attributes, label inputs, mini-batch fitting, no leaks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from encoders.features import build_features
from graph.export import GraphExport
from training.fit import TrainConfig, fit
from training.metrics import binary_metrics


@pytest.mark.slow
def test_mini_batch_training_learns(graph: GraphExport) -> None:
    features = build_features(graph, None)
    config = TrainConfig(epochs=15, patience=15, split="stratified", batch_size=128, device="cpu")
    result = fit(graph, features, config)
    losses = [h["loss"] for h in result.history]
    assert min(losses[-3:]) < losses[0]
    assert result.metrics["fraud"]["auroc"] > 0.75
    assert result.metrics["train_seconds_per_epoch"] > 0


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_runs_on_the_gpu_with_the_same_code(graph: GraphExport) -> None:
    features = build_features(graph, None)
    result = fit(graph, features, TrainConfig(epochs=3, patience=3, batch_size=256))
    assert result.metrics["device"].startswith("cuda")
    assert all(np.isfinite(v).all() for v in result.logits.values())


def test_early_stopping_returns_the_best_epoch_model(graph: GraphExport) -> None:
    """Training stops ``patience`` epochs after the best validation AUPRC and returns the
    model of that epoch, not the last one."""
    features = build_features(graph, None)
    config = TrainConfig(hidden=16, epochs=40, patience=2, split="stratified", batch_size=256,
                         device="cpu", lr=0.05)  # fmt: skip
    result = fit(graph, features, config)
    val_auprc = [h["val_auprc"] for h in result.history]
    best = int(np.argmax(val_auprc))  # the first best, as training keeps it
    assert result.metrics["best_epoch"] == result.history[best]["epoch"]
    assert len(val_auprc) < config.epochs  # it stopped early ...
    assert len(val_auprc) == best + config.patience + 1  # ... patience epochs after the best
    assert max(val_auprc[best + 1 :]) < val_auprc[best]
    y = graph.labels["fraud"].to_numpy(np.float64)
    val = result.split.val
    restored = binary_metrics(y[val], result.logits["fraud"][val])["auprc"]
    assert restored == pytest.approx(val_auprc[best], abs=1e-6)
