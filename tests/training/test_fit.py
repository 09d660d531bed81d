"""The GNN's inputs and training: edge attributes, label inputs, mini-batch fitting, no leaks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from encoders.features import build_features
from graph.export import GraphExport
from training.fit import TrainConfig, fit


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
