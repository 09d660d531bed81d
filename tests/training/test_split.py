"""Training pieces that need no database: splits and the baselines' graph aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from training.split import stratified_split, time_split


def test_time_split_trains_on_earlier_accounts() -> None:
    labeled = np.arange(100)
    created = np.arange(100)[::-1].copy()  # user 99 is the oldest
    y = (np.arange(100) % 5 == 0).astype(int)
    split = time_split(labeled, created, y)
    assert created[split.train].max() < created[split.val].min()
    assert created[split.val].max() < created[split.test].min()
    assert len(split.train) == 60 and len(split.val) == 20 and len(split.test) == 20


def test_time_split_refuses_a_part_with_one_class() -> None:
    y = np.r_[np.ones(10, int), np.zeros(90, int)]  # all positives among the oldest
    with pytest.raises(ValueError, match="only one class"):
        time_split(np.arange(100), np.arange(100), y)


def test_stratified_split_keeps_the_positive_rate() -> None:
    y = (np.arange(1000) % 10 == 0).astype(int)
    split = stratified_split(np.arange(1000), y, seed=1)
    for part in (split.train, split.val, split.test):
        assert y[part].mean() == pytest.approx(0.1, abs=0.01)
    assert len(np.intersect1d(split.train, split.test)) == 0
