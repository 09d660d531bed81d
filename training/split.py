"""Held-out splits of the labeled users."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UserSplit:
    """User indices for training, validation (early stopping, calibration) and test."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def stratified_split(
    labeled: np.ndarray, y: np.ndarray, seed: int, val: float = 0.2, test: float = 0.2
) -> UserSplit:
    """Split labeled user indices, keeping the positive rate equal across parts.

    Args:
        labeled: indices of users with an observed label.
        y: their labels (0/1), aligned with ``labeled``.
        seed: recorded in the artifact so the split can be reproduced.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for cls in (0, 1):
        idx = labeled[y == cls]
        idx = idx[rng.permutation(len(idx))]
        n_test = round(len(idx) * test)
        n_val = round(len(idx) * val)
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    return UserSplit(**{k: np.sort(np.concatenate(v)) for k, v in parts.items()})
