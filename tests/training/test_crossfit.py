"""Cross-fitting: grouped folds, OOF predictions that never saw their label, the split guard,
the bootstrap intervals, the backtest's cutoff and labels' observed_at."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from encoders.features import build_features
from graph.bundle import ValidatedBundle, read_bundle
from graph.export import GraphExport, as_of, export_from_bundle, labels_known_at
from graph.neo4j.load import import_bundle
from graph.neo4j.reader import export_graph
from graph.neo4j.store import GraphStore
from serving.settings import Settings
from tests.bundles import write_bundle
from training.backtest import backtest, default_cutoff
from training.config import TrainConfig
from training.crossfit import crossfit
from training.folds import grouped_folds, split_guard, user_groups, validation_slice
from training.metrics import bootstrap_intervals

DAY = 86_400_000
FAST = TrainConfig(hidden=16, epochs=2, patience=2, batch_size=256, device="cpu")


@pytest.fixture(scope="module")
def bundle(small_bundle: Path) -> ValidatedBundle:
    return read_bundle(small_bundle)


@pytest.fixture(scope="module")
def graph(bundle: ValidatedBundle) -> GraphExport:
    return export_from_bundle(bundle)


def _labeled(g: GraphExport) -> tuple[np.ndarray, np.ndarray]:
    y = g.labels["fraud"].to_numpy(np.float64)
    labeled = np.flatnonzero(~np.isnan(y))
    return labeled, y[labeled].astype(int)


def test_no_shared_device_component_spans_two_folds(graph: GraphExport) -> None:
    labeled, y = _labeled(graph)
    groups = user_groups(graph, max_hub_users=30)
    folds = np.full(len(graph.ids["user"]), -1)
    folds[labeled] = grouped_folds(labeled, y, groups, 5, seed=0)
    uses = graph.edges[("user", "uses", "device")]
    u, d = uses["src"].to_numpy(), uses["dst"].to_numpy()
    on_device = np.bincount(d)
    private = (on_device[d] >= 2) & (on_device[d] <= 30) & (folds[u] >= 0)
    per_device = pd.DataFrame({"d": d[private], "fold": folds[u[private]]})
    assert per_device.groupby("d")["fold"].nunique().max() == 1
    assert per_device["d"].nunique() > 10  # the graph has shared devices to keep together
    counts = np.bincount(folds[labeled], minlength=5)
    positives = np.bincount(folds[labeled], weights=y, minlength=5)
    assert counts.min() > 0.7 * counts.mean() and positives.min() > 0


def test_a_public_device_ties_nobody(graph: GraphExport) -> None:
    uses = graph.edges[("user", "uses", "device")]
    busiest = int(np.bincount(uses["dst"].to_numpy()).argmax())
    users = uses["src"].to_numpy()[uses["dst"].to_numpy() == busiest]
    assert len(users) > 3
    below = user_groups(graph, max_hub_users=len(users) - 1)
    above = user_groups(graph, max_hub_users=len(users))
    assert len(np.unique(above[users])) == 1
    assert len(np.unique(below[users])) > 1


def test_validation_slice_is_grouped_and_disjoint(graph: GraphExport) -> None:
    labeled, y = _labeled(graph)
    groups = user_groups(graph)
    train, val = validation_slice(labeled, y, groups, 0.15, seed=1)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(labeled)
    assert 0.08 < len(val) / len(labeled) < 0.25
    assert not set(groups[train]) & set(groups[val])


def test_split_guard_names_the_counts() -> None:
    y = np.r_[np.ones(100), np.zeros(900)]
    assert split_guard({"all": np.arange(1000)}, y) == []
    few = np.r_[np.arange(40), np.arange(100, 500)]  # 40 positives
    skewed = np.r_[np.arange(100), np.arange(100, 300)]  # rate 1/3 against 1/10
    warnings = split_guard({"few": few, "skewed": skewed}, y)
    assert len(warnings) == 2
    assert warnings[0].startswith("few: 40 positives of 440")
    assert "skewed: 100 positives of 300" in warnings[1] and "33.33%" in warnings[1]


def test_bootstrap_interval_brackets_the_estimate() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(3000) < 0.1).astype(float)
    score = y + rng.normal(size=3000)
    ci = bootstrap_intervals(y, score, n_boot=300)
    assert ci["auroc"][0] < roc_auc_score(y, score) < ci["auroc"][1]
    assert ci["auprc"][0] < average_precision_score(y, score) < ci["auprc"][1]
    # resampling whole groups of 30 perfectly correlated users widens the interval
    grouped = bootstrap_intervals(y, score, np.arange(3000) // 30, n_boot=300)
    assert np.diff(grouped["auroc"])[0] > 0 and np.isfinite(grouped["auprc"]).all()


def test_settings_default_to_crossfitting(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.split == "crossfit" and settings.folds == 5
    monkeypatch.setenv("RISKGRAPH_FOLDS", "3")
    monkeypatch.setenv("RISKGRAPH_PUBLIC_DEVICE_USERS", "12")
    settings = Settings()
    assert settings.folds == 3 and settings.public_device_users == 12
    monkeypatch.setenv("RISKGRAPH_FOLDS", "1")
    with pytest.raises(ValueError):
        Settings()
    monkeypatch.setenv("RISKGRAPH_FOLDS", "5")
    monkeypatch.setenv("RISKGRAPH_SPLIT", "random")
    with pytest.raises(ValueError):
        Settings()


def test_observed_at_is_read_and_decides_when_a_label_is_known(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "b")
    (folder / "labels.csv").write_text(
        "user_id,fraud,default,observed_at\nU1,0,,\nU2,1,1,2026-02-01T00:00:00Z\nU3,1,,soon\n"
    )
    b = read_bundle(folder)
    labels = b.tables["labels"].set_index("user_id")
    assert np.isnan(labels.loc["U1", "observed_at"])
    assert labels.loc["U2", "observed_at"] == pd.Timestamp("2026-02-01T00:00:00Z").value // 10**6
    rules = set(b.rejects.loc[b.rejects["table"] == "labels", "rule"])
    assert "bad_timestamp" in ";".join(rules) and len(b.tables["labels"]) == 2
    g = export_from_bundle(b)
    jan10 = int(pd.Timestamp("2026-01-10T00:00:00Z").value // 10**6)
    known = labels_known_at(g, jan10)  # U1 known from creation, U2 only from February
    assert known["fraud"].iloc[0] == 0.0 and np.isnan(known["fraud"].iloc[1])
    later = labels_known_at(g, jan10 + 30 * DAY)
    assert later["fraud"].iloc[1] == 1.0
    assert as_of(g, jan10).labels["fraud"].isna().iloc[1]
    without = export_from_bundle(read_bundle(write_bundle(tmp_path / "c")))
    assert without.labels["observed_at"].isna().all()


@pytest.mark.slow
def test_oof_score_ignores_the_users_own_label(graph: GraphExport) -> None:
    """Flip a labelled user's fraud label: its out-of-fold score stays exactly the same (the
    model that scored it never saw that label), while the production scorer moves."""
    features = build_features(graph, None)
    first = crossfit(graph, features, FAST)
    assert first.folds is not None and first.oof_logits is not None
    labeled, _ = _labeled(graph)
    user = int(labeled[len(labeled) // 2])
    flipped = graph.labels.copy()
    flipped.loc[user, "fraud"] = 1.0 - flipped.loc[user, "fraud"]
    second = crossfit(dataclasses.replace(graph, labels=flipped), features, FAST,
                      folds=first.folds)  # fmt: skip
    assert second.oof_logits is not None
    assert second.oof_logits["fraud"][user] == first.oof_logits["fraud"][user]
    assert second.oof_logits["default"][user] == first.oof_logits["default"][user]
    others = labeled[first.folds[labeled] != first.folds[user]]
    assert not np.array_equal(second.oof_logits["fraud"][others], first.oof_logits["fraud"][others])
    assert np.isfinite(first.oof_logits["fraud"][labeled]).all()
    assert first.metrics["fraud"]["auroc_ci"][0] <= first.metrics["fraud"]["auroc"]
    assert len(first.model.members) == 5 and "split_guard" in first.metrics


@pytest.mark.slow
def test_an_event_after_the_cutoff_changes_nothing_the_backtest_fits(
    bundle: ValidatedBundle, graph: GraphExport
) -> None:
    """A later order and labels that became known after the cutoff (newer accounts, and an
    older account whose outcome arrived later) leave the model fitted at the cutoff as it was."""
    cutoff = default_cutoff(graph)
    created = bundle.tables["users"].set_index("user_id")["created_at"]
    labels = bundle.tables["labels"].copy()
    newer = labels["user_id"].map(created) > cutoff
    older = labels.index[~newer & labels["fraud"].notna()][0]
    labels.loc[older, "observed_at"] = cutoff + DAY  # an outcome that arrives after the cutoff
    base = {**bundle.tables, "labels": labels}
    changed = {k: v.copy() for k, v in base.items()}
    orders = changed["orders"]
    late = orders.iloc[[0]].assign(order_id="late-order", ts=cutoff + DAY, status="chargeback")
    changed["orders"] = pd.concat([orders, late], ignore_index=True)
    flips = changed["labels"]
    flips.loc[newer, "fraud"] = 1.0 - flips.loc[newer, "fraud"]  # newer accounts' labels
    flips.loc[older, "fraud"] = 1.0 - flips.loc[older, "fraud"]

    def fitted(g: GraphExport) -> dict[str, np.ndarray]:
        past = as_of(g, cutoff)
        result = backtest(past, build_features(past, None), g, build_features(g, None), FAST)
        return {k: v.numpy() for k, v in result.fitted.model.state_dict().items()}

    before = fitted(export_from_bundle(dataclasses.replace(bundle, tables=base)))
    after = fitted(export_from_bundle(dataclasses.replace(bundle, tables=changed)))
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])


@pytest.mark.neo4j
def test_observed_at_survives_neo4j(store: GraphStore, tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "b")
    (folder / "labels.csv").write_text(
        "user_id,fraud,default,observed_at\nU1,0,,\nU2,1,1,2026-02-01T10:00:00+01:00\n"
    )
    bundle = read_bundle(folder)
    import_bundle(store, bundle)
    got = export_graph(store).labels
    pd.testing.assert_frame_equal(got, export_from_bundle(bundle).labels)
    assert got["observed_at"].iloc[1] == pd.Timestamp("2026-02-01T09:00:00Z").value // 10**6
    assert np.isnan(got["observed_at"].iloc[0])
    # a newer bundle without the column clears it (an upsert takes the newer row as it is)
    import_bundle(store, read_bundle(write_bundle(tmp_path / "c")))
    assert export_graph(store).labels["observed_at"].isna().all()
