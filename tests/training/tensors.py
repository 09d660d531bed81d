"""Tensors for the training tests that compare two ways of running one model."""

from __future__ import annotations

import numpy as np
from torch_geometric.data import HeteroData

from encoders.features import build_features
from graph.export import GraphExport
from training.inputs import graph_data


def unscaled_data(graph: GraphExport) -> tuple[HeteroData, dict[str, int]]:
    """The graph's tensors with raw behaviour features (every known label shown), and the
    input width per node type: enough for tests that compare two ways of running a model."""
    features = build_features(graph, None)
    x = {nt: f.to_numpy(np.float32) for nt, f in features.scalars.items()}
    y = graph.labels["fraud"].to_numpy(np.float64)
    data = graph_data(graph, x, y, np.flatnonzero(~np.isnan(y)))
    return data, {nt: int(data[nt].x.size(1)) for nt in data.node_types}
