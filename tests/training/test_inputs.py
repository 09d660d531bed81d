"""The GNN's inputs and training: edge attributes, label inputs, mini-batch fitting, no leaks."""

from __future__ import annotations

import numpy as np
import pytest

from encoders.features import build_features
from graph.export import GraphExport
from training.fit import TrainConfig, fit
from training.inputs import graph_data, label_inputs


def test_label_inputs_show_only_visible_known_labels() -> None:
    y = np.array([1.0, 0.0, np.nan, 1.0])
    out = label_inputs(y, np.array([0, 2]))
    np.testing.assert_array_equal(out, [[1, 1], [0, 0], [0, 0], [0, 0]])


def test_graph_data_appends_label_inputs_to_users(graph: GraphExport) -> None:
    features = build_features(graph, None)
    x = {nt: f.to_numpy(np.float32) for nt, f in features.scalars.items()}
    y = graph.labels["fraud"].to_numpy(np.float64)
    data = graph_data(graph, x, y, np.flatnonzero(~np.isnan(y)))
    assert data["user"].x.shape[1] == x["user"].shape[1] + 2
    assert data["device"].x.shape[1] == x["device"].shape[1]
    assert ("user", "uses", "device") in data.edge_attr_dict


@pytest.mark.slow
def test_test_users_labels_never_reach_the_model(graph: GraphExport) -> None:
    """Flipping the held-out users' observed labels must not change any prediction."""
    features = build_features(graph, None)
    config = TrainConfig(
        hidden=16, epochs=2, patience=2, split="time", batch_size=256, device="cpu"
    )
    first = fit(graph, features, config)
    flipped = graph.labels.copy()
    test = first.split.test
    flipped.loc[test, "fraud"] = 1.0 - flipped.loc[test, "fraud"]
    changed = GraphExport(graph.data, graph.ids, graph.nodes, graph.edges, flipped,
                          graph.feature_keys)  # fmt: skip
    second = fit(changed, features, config)
    np.testing.assert_array_equal(first.split.test, second.split.test)
    np.testing.assert_allclose(first.logits["fraud"], second.logits["fraud"], rtol=1e-5, atol=1e-6)
    assert first.metrics["fraud"]["auroc"] != second.metrics["fraud"]["auroc"]
