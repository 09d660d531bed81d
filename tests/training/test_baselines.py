"""Training pieces that need no database: splits and the baselines' graph aggregation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from encoders.features import Normaliser, build_features
from graph.bundle import read_bundle
from graph.export import assemble, export_from_bundle
from training.baselines import compare, neighbour_features
from training.split import stratified_split


def _tiny_graph():  # type: ignore[no-untyped-def]
    """u1 and u2 share device d1; u3 is alone on d2; u1 and u3 bought p1 of merchant m1."""
    nodes = {
        "user": pd.DataFrame({"id": ["u1", "u2", "u3"], "created_at": [0, 0, 0], "country": None}),
        "merchant": pd.DataFrame({"id": ["m1"], "created_at": [0], "category": ["x"]}),
        "product": pd.DataFrame({"id": ["p1"], "category": ["x"], "price": [1.0]}),
        "device": pd.DataFrame({"id": ["d1", "d2"], "kind": ["ios", "web"], "first_seen": [0, 0]}),
    }
    edges = {
        "USES": pd.DataFrame({"src": ["u1", "u2", "u3"], "dst": ["d1", "d1", "d2"]}),
        "ORDERED": pd.DataFrame({"src": ["u1", "u3"], "dst": ["p1", "p1"]}),
        "REVIEWED": pd.DataFrame({"src": [], "dst": []}),
        "SOLD_BY": pd.DataFrame({"src": ["p1"], "dst": ["m1"]}),
    }
    return assemble(nodes, edges, pd.DataFrame({"id": [], "fraud": [], "default": []}), [])


def test_neighbour_features_average_over_the_right_neighbours() -> None:
    g = _tiny_graph()
    x = {
        "user": np.array([[1.0], [2.0], [4.0]]),
        "device": np.array([[10.0], [20.0]]),
        "product": np.array([[7.0]]),
        "merchant": np.array([[5.0]]),
    }
    out = neighbour_features(g, x)
    # columns: own, mean device, mean co-device user, mean product, mean merchant
    np.testing.assert_allclose(out[0], [1, 10, 2, 7, 5])
    np.testing.assert_allclose(out[1], [2, 10, 1, 0, 0])
    np.testing.assert_allclose(out[2], [4, 20, 0, 7, 5])


def test_compare_reports_every_model_for_both_heads(small_bundle: Path) -> None:
    g = export_from_bundle(read_bundle(small_bundle))
    features = build_features(g, None)
    y = g.labels["fraud"].to_numpy()
    labeled = np.flatnonzero(~np.isnan(y))
    split = stratified_split(labeled, y[labeled].astype(int), seed=0)
    normaliser = Normaliser.fit(features, split.train)
    chargebacks = features.scalars["user"]["chargeback_rate"].to_numpy()
    table = compare(g, features, normaliser, split, {"fraud": chargebacks, "default": chargebacks})
    assert len(table) == 8 and set(table["head"]) == {"fraud", "default"}
    fraud = table[table["head"] == "fraud"].set_index("model")
    assert fraud["auroc"].notna().all() and (fraud["auroc"] > 0.6).all()
