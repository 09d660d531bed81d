"""The GNN's inputs and training: edge attributes, label inputs, mini-batch fitting, no leaks."""

from __future__ import annotations

import numpy as np

from encoders.edge_features import EDGE_FEATURES, edge_attributes
from graph.export import GraphExport


def test_edge_attributes_follow_the_edges(graph: GraphExport) -> None:
    attrs = edge_attributes(graph)
    orders = graph.edges[("user", "ordered", "product")]
    got = attrs[("user", "ordered", "product")]
    assert got.shape == (len(orders), len(EDGE_FEATURES["ORDERED"]))
    np.testing.assert_array_equal(got, attrs[("product", "rev_ordered", "user")])
    chargeback = EDGE_FEATURES["ORDERED"].index("status_chargeback")
    np.testing.assert_array_equal(got[:, chargeback] == 1, orders["status"] == "chargeback")
    assert np.isfinite(got).all() and got[:, 1:5].sum(axis=1).max() == 1
    assert ("product", "sold_by", "merchant") not in attrs  # nothing to say about that link
