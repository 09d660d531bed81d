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


def time_split(
    labeled: np.ndarray, created_at: np.ndarray, y: np.ndarray, val: float = 0.2, test: float = 0.2
) -> UserSplit:
    """Train on the earliest labeled users, validate on later ones, test on the latest.

    This is how the model is used: fitted on accounts whose outcome is known, then applied
    to accounts that arrived since. Raises when a part ends up without both classes.

    Args:
        labeled: indices of users with an observed label.
        created_at: account creation time (epoch ms) of every user (indexed by user).
        y: labels of ``labeled`` (0/1), aligned with ``labeled``.
    """
    order = np.argsort(created_at[labeled], kind="stable")
    ranked, ranked_y = labeled[order], y[order]
    n = len(ranked)
    n_test, n_val = round(n * test), round(n * val)
    cuts = {"train": slice(0, n - n_test - n_val), "val": slice(n - n_test - n_val, n - n_test),
            "test": slice(n - n_test, n)}  # fmt: skip
    for name, part in cuts.items():
        if len(np.unique(ranked_y[part])) < 2:
            raise ValueError(
                f"time split: the {name} part has only one class; use the stratified split"
            )
    return UserSplit(**{k: np.sort(ranked[v]) for k, v in cuts.items()})
