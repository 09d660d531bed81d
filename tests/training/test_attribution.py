"""The GNN's inputs and training: edge attributes, label inputs, mini-batch fitting, no leaks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from encoders.features import build_features
from graph.export import GraphExport
from tests.training.tensors import unscaled_data
from training.artifact import load_artifact, save_artifact
from training.attribution import user_attributions
from training.fit import TrainConfig, fit, predict_logits
from training.inputs import edge_dims, graph_data
from training.model import HeteroRiskGNN, RiskEnsemble
from training.numeric import quantile_edges
from training.scorecard import ScoreScale


@pytest.mark.slow
def test_blocked_attributions_equal_whole_graph_autograd(graph: GraphExport) -> None:
    """Reasons' gradient × input, taken a block of destinations at a time layer by layer in
    reverse, equals one autograd pass over the whole graph (both heads, 2 and 3 layers)."""
    data, dims = unscaled_data(graph)
    biggest = max(int(ei.size(1)) for ei in data.edge_index_dict.values())
    # the last case with the users' piecewise-linear encoding in the projection
    encoded = {"user": quantile_edges(data["user"].x[:, :6].numpy(), 4)}
    for layers, head, numeric in ((2, "fraud", None), (2, "default", None), (3, "fraud", None),
                                  (2, "fraud", encoded)):  # fmt: skip
        torch.manual_seed(layers)
        model = HeteroRiskGNN(dims, list(data.edge_types), edge_dims(data), hidden=16,
                              layers=layers, numeric_edges=numeric).eval()  # fmt: skip
        xu = data["user"].x.clone().requires_grad_(True)
        out = model({**data.x_dict, "user": xu}, data.edge_index_dict, data.edge_attr_dict)
        out[head].sum().backward()
        assert xu.grad is not None
        reference = (xu.grad * xu).detach().numpy()
        scale = float(np.abs(reference).max())
        assert scale > 0
        model.zero_grad(set_to_none=True)
        for max_edges in (biggest // 5, 300):  # blocks smaller than a relation, and small
            blocked = user_attributions(model, data, max_edges, head=head)
            assert all(p.grad is None for p in model.parameters())  # weights left untouched
            np.testing.assert_allclose(blocked, reference, rtol=1e-3, atol=1e-5 * scale)


@pytest.mark.slow
def test_seed_ensemble_averages_members_and_round_trips(graph: GraphExport, tmp_path: Path) -> None:
    """``ensemble=2``: members from seeds 0 and 1 (the first is the single model of seed 0),
    logits the members' mean, reasons the gradient of that mean, and the artifact loads back to the same scores."""
    features = build_features(graph, None)
    config = TrainConfig(hidden=16, epochs=3, patience=3, split="stratified", batch_size=256,
                         device="cpu", ensemble=2, numeric_bins=8)  # fmt: skip
    result = fit(graph, features, config)
    assert isinstance(result.model, RiskEnsemble) and len(result.model.members) == 2
    assert [h["member"] for h in result.history] == [0, 0, 0, 1, 1, 1]
    single = fit(graph, features, dataclasses.replace(config, ensemble=1))
    first = result.model.members[0]
    assert all(
        torch.equal(a, b)
        for a, b in zip(first.parameters(), single.model.parameters(), strict=True)
    )

    y = graph.labels["fraud"].to_numpy(np.float64)
    data = graph_data(graph, result.normaliser.transform(features), y, result.split.train)
    members = [predict_logits(m, data)["fraud"] for m in result.model.members]
    assert not np.allclose(members[0], members[1])
    np.testing.assert_allclose(result.logits["fraud"], np.mean(members, axis=0), rtol=1e-5,
                               atol=1e-6)  # fmt: skip
    # The ensemble's reasons are gradient x input of the score it serves (the members' mean
    # logit), checked against one plain autograd pass through the ensemble itself.
    result.model.eval()
    xu = data["user"].x.clone().requires_grad_(True)
    out = result.model({**data.x_dict, "user": xu}, data.edge_index_dict, data.edge_attr_dict)
    out["fraud"].sum().backward()
    assert xu.grad is not None
    reference = (xu.grad * xu).detach().numpy()
    reasons = user_attributions(result.model, data, 300)
    scale = float(np.abs(reference).max())
    assert scale > 0
    np.testing.assert_allclose(reasons, reference, rtol=1e-3, atol=1e-5 * scale)

    folder = save_artifact(result, ScoreScale(), tmp_path, {})
    loaded = load_artifact(tmp_path, folder.name)
    # the piecewise-linear encoding's shape travels with the artifact
    assert loaded.config["numeric"] == {"user": [len(features.scalars["user"].columns), 8]}
    assert isinstance(loaded.model, RiskEnsemble)
    np.testing.assert_array_equal(predict_logits(loaded.model, data)["fraud"],
                                  result.logits["fraud"])  # fmt: skip
