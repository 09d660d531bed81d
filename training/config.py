"""Training hyper-parameters: a plain dataclass, importable without torch.

``serving.settings`` takes its defaults from here, so the ``RISKGRAPH_*`` settings and the
library's defaults cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """Hyper-parameters, recorded in the artifact so a model can be reproduced."""

    hidden: int = 64
    layers: int = 2
    dropout: float = 0.2
    epochs: int = 60
    patience: int = 10
    lr: float = 0.005
    weight_decay: float = 1e-4
    seed: int = 0
    device: str | None = None
    # "crossfit": K grouped folds (training.crossfit); or one held-out split: "time" (train on
    # earlier accounts, test on later ones) or "stratified"
    split: str = "time"
    batch_size: int = 1024
    fanouts: tuple[int, ...] = (10, 5)  # neighbours per relation and hop
    label_trick: bool = True  # neighbours' known fraud labels as inputs (see training.inputs)
    label_input_share: float = 0.5  # share of training labels shown (not predicted) per epoch
    class_weighting: str = "balanced"  # positive weight neg/pos ("balanced"), its "sqrt", "none"
    ensemble: int = 1  # members trained with seeds seed, seed+1, ...; their logits averaged
    folds: int = 5  # crossfit(): grouped folds, one model each; their logits averaged
    val_share: float = 0.15  # crossfit(): early-stopping slice of each fold model's training
    public_device_users: int = 30
    # bins of the users' scalar features' piecewise-linear encoding (training.numeric); 0: off.
    # Off by default: on the 10k realistic marketplace it lifted the fraud scores of unlabelled
    # (new) accounts (+0.033 AUROC), but cost the default head 0.02-0.03 AUPRC, and on the
    # tests' 800-user marketplace five fresh chargebacks barely moved a quiet account's score
    # (velocity beyond the fitted range is held flat). docs/cross-fitting.md has the figures.
    numeric_bins: int = 0  # crossfit(): a device used by more accounts ties no group
