"""Behaviour features: leak-free cutoff, the saved normaliser, and both export paths agreeing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from encoders.features import ColumnScaler, Normaliser, build_features
from graph.bundle import ValidatedBundle, read_bundle
from graph.export import as_of, export_from_bundle
from graph.neo4j.load import import_bundle
from graph.neo4j.reader import export_graph
from graph.neo4j.store import GraphStore


@pytest.fixture(scope="module")
def bundle(small_bundle: Path) -> ValidatedBundle:
    return read_bundle(small_bundle)


def _cutoff(bundle: ValidatedBundle) -> int:
    return int(np.quantile(bundle.tables["orders"]["ts"], 0.6))


def _with_extra_order(bundle: ValidatedBundle, ts: int) -> ValidatedBundle:
    orders = bundle.tables["orders"]
    busy_user = orders["user_id"].value_counts().index[0]
    extra = orders.iloc[[0]].assign(
        order_id="O-EXTRA", user_id=busy_user, amount=9_999.0, status="chargeback", ts=ts
    )
    tables = {**bundle.tables, "orders": pd.concat([orders, extra], ignore_index=True)}
    return ValidatedBundle(bundle.source, tables, bundle.rejects, bundle.read_rows)


def _frames(bundle: ValidatedBundle, cutoff: int) -> dict[str, pd.DataFrame]:
    return build_features(as_of(export_from_bundle(bundle), cutoff), None).scalars


def test_an_order_after_the_cutoff_changes_no_feature(bundle: ValidatedBundle) -> None:
    cutoff = _cutoff(bundle)
    before = _frames(bundle, cutoff)
    after = _frames(_with_extra_order(bundle, cutoff + 3_600_000), cutoff)
    for node_type, frame in before.items():
        pd.testing.assert_frame_equal(frame, after[node_type], check_exact=True)


def test_an_order_before_the_cutoff_does_change_features(bundle: ValidatedBundle) -> None:
    cutoff = _cutoff(bundle)
    before = _frames(bundle, cutoff)["user"]
    after = _frames(_with_extra_order(bundle, cutoff - 3_600_000), cutoff)["user"]
    changed = (before != after).any(axis=0)
    assert changed["n_orders"] and changed["chargeback_rate"] and changed["max_amount"]


def test_cutoff_hides_later_edges_from_message_passing(bundle: ValidatedBundle) -> None:
    g = export_from_bundle(bundle)
    cutoff = _cutoff(bundle)
    past = as_of(g, cutoff)
    et = ("user", "ordered", "product")
    kept = past.edges[et]["ts"].to_numpy(np.int64)
    assert (kept <= cutoff).all()
    assert past.data[et].edge_index.shape[1] == len(kept) < g.data[et].edge_index.shape[1]
    assert past.data[("product", "rev_ordered", "user")].edge_index.shape[1] == len(kept)


def test_normaliser_is_fitted_on_training_users_only(bundle: ValidatedBundle) -> None:
    features = build_features(export_from_bundle(bundle), None)
    train = np.arange(0, 400)
    fitted = Normaliser.fit(features, train)
    user = features.scalars["user"].copy()
    user.loc[500:, "n_orders"] = 1e6  # users outside the training rows
    refit = Normaliser.fit(type(features)({**features.scalars, "user": user}, {}), train)
    np.testing.assert_array_equal(fitted.scalers["user"].mean, refit.scalers["user"].mean)


def test_saved_normaliser_transforms_identically(bundle: ValidatedBundle) -> None:
    features = build_features(export_from_bundle(bundle), None)
    fitted = Normaliser.fit(features, np.arange(0, 400))
    restored = Normaliser.from_dict(fitted.to_dict())
    for nt, matrix in fitted.transform(features).items():
        np.testing.assert_array_equal(matrix, restored.transform(features)[nt])


def test_scaler_is_robust_to_constant_and_missing_columns() -> None:
    frame = pd.DataFrame({"const": [3.0, 3.0, 3.0], "gap": [1.0, np.nan, 5.0]})
    out = ColumnScaler.fit(frame).transform(frame)
    assert np.isfinite(out).all() and (out[:, 0] == 0).all() and out[1, 1] == 0


@pytest.mark.neo4j
def test_neo4j_export_and_bundle_export_give_the_same_features(
    store: GraphStore, bundle: ValidatedBundle
) -> None:
    import_bundle(store, bundle)
    from_db = build_features(export_graph(store), None).scalars
    from_files = build_features(export_from_bundle(bundle), None).scalars
    for node_type, frame in from_db.items():
        pd.testing.assert_frame_equal(frame, from_files[node_type], check_dtype=False)


def test_near_duplicates_count_same_merchant_within_the_window_only() -> None:
    from encoders.text.features import near_duplicates

    a = np.array([1.0, 0.0], dtype=np.float32)
    b = np.array([0.0, 1.0], dtype=np.float32)
    emb = np.stack([a, a, a, b, a])
    merchant = np.array([0, 0, 0, 0, 1])
    day = 86_400_000
    ts = np.array([0, day, 90 * day, day, 0])
    # rows 0 and 1 copy each other within 30 days; row 2 is a copy 90 days later; row 3 is
    # different text; row 4 is the same text on another merchant.
    counts, _ = near_duplicates(emb, merchant, ts, window_ms=30 * day)
    assert counts.tolist() == [1, 1, 0, 0, 0]


def test_copy_groups_join_chains_of_copies_and_keep_texts_and_merchants_apart() -> None:
    """A paraphrase chain (x ~ y ~ z, x not ~ z) is one copy group; another text, and the same
    text at another merchant, are other groups; a review without copies has none (-1)."""
    from encoders.text.features import near_duplicates

    def unit(angle: float) -> np.ndarray:
        return np.array([np.cos(angle), np.sin(angle), 0.0], dtype=np.float32)

    step = 0.3  # cos 0.3 = 0.955 >= 0.92 between neighbours, cos 0.6 = 0.825 across the chain
    other = np.array([0.0, 0.0, 1.0], dtype=np.float32)
    emb = np.stack([unit(0), unit(step), unit(2 * step), other, other, unit(0), unit(1.5)])
    merchant = np.array([0, 0, 0, 0, 0, 1, 0])
    counts, groups = near_duplicates(emb, merchant, np.zeros(7, dtype=np.int64))
    assert counts.tolist() == [1, 2, 1, 1, 1, 0, 0]
    assert groups[0] == groups[1] == groups[2] >= 0
    assert groups[3] == groups[4] >= 0 and groups[3] != groups[0]
    assert groups[5] == -1 and groups[6] == -1
    assert sorted(set(groups[groups >= 0].tolist())) == [0, 1]  # dense ids
