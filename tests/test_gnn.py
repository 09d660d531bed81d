"""The GNN's inputs and training: edge attributes, label inputs, mini-batch fitting, no leaks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import HeteroData
from torch_geometric.loader import NodeLoader

from encoders.edge_features import EDGE_FEATURES, edge_attributes
from encoders.features import build_features
from graph.bundle import read_bundle
from graph.export import GraphExport, export_from_bundle
from graph.sampling.sampler import HeteroNeighborSampler
from training.artifact import load_artifact, save_artifact
from training.attribution import user_attributions
from training.convs import EdgeSAGEConv
from training.fit import TrainConfig, fit, predict_logits
from training.inputs import edge_dims, graph_data, label_inputs
from training.model import HeteroRiskGNN, RiskEnsemble
from training.scorecard import ScoreScale


@pytest.fixture(scope="module")
def graph(small_bundle: Path) -> GraphExport:
    return export_from_bundle(read_bundle(small_bundle))


def _unscaled_data(graph: GraphExport) -> tuple[HeteroData, dict[str, int]]:
    """The graph's tensors with raw behaviour features (every known label shown), and the
    input width per node type: enough for tests that compare two ways of running a model."""
    features = build_features(graph, None)
    x = {nt: f.to_numpy(np.float32) for nt, f in features.scalars.items()}
    y = graph.labels["fraud"].to_numpy(np.float64)
    data = graph_data(graph, x, y, np.flatnonzero(~np.isnan(y)))
    return data, {nt: int(data[nt].x.size(1)) for nt in data.node_types}


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


def test_edge_attributes_change_the_message() -> None:
    torch.manual_seed(0)
    conv = EdgeSAGEConv(4, 8, edge_dim=2)
    x = (torch.randn(3, 4), torch.randn(2, 4))
    edge_index = torch.tensor([[0, 1, 2], [0, 0, 1]])
    attr = torch.zeros(3, 2)
    base = conv(x, edge_index, attr)
    attr[2] = torch.tensor([5.0, -5.0])  # only the edge into destination 1 changes
    moved = conv(x, edge_index, attr)
    assert torch.allclose(base[0], moved[0]) and not torch.allclose(base[1], moved[1])
    assert EdgeSAGEConv(4, 8)(x, edge_index).shape == (2, 8)  # a relation without attributes


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


@pytest.mark.slow
def test_mini_batch_training_learns(graph: GraphExport) -> None:
    features = build_features(graph, None)
    config = TrainConfig(epochs=15, patience=15, split="stratified", batch_size=128, device="cpu")
    result = fit(graph, features, config)
    losses = [h["loss"] for h in result.history]
    assert min(losses[-3:]) < losses[0]
    assert result.metrics["fraud"]["auroc"] > 0.75
    assert result.metrics["train_seconds_per_epoch"] > 0


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_runs_on_the_gpu_with_the_same_code(graph: GraphExport) -> None:
    features = build_features(graph, None)
    result = fit(graph, features, TrainConfig(epochs=3, patience=3, batch_size=256))
    assert result.metrics["device"].startswith("cuda")
    assert all(np.isfinite(v).all() for v in result.logits.values())


def test_trimming_a_sampled_batch_leaves_the_seed_outputs_unchanged(graph: GraphExport) -> None:
    data, dims = _unscaled_data(graph)
    model = HeteroRiskGNN(dims, list(data.edge_types), edge_dims(data), hidden=16).eval()
    sampler = HeteroNeighborSampler(data, num_neighbors=[10, 5], seed=0)
    batch = next(iter(NodeLoader(data, node_sampler=sampler, input_nodes=("user", torch.arange(64)),
                                 batch_size=64)))  # fmt: skip
    size = batch["user"].batch_size
    with torch.no_grad():
        full = model(batch.x_dict, batch.edge_index_dict, batch.edge_attr_dict)
        trimmed = model(batch.x_dict, batch.edge_index_dict, batch.edge_attr_dict,
                        batch.num_sampled_nodes_dict, batch.num_sampled_edges_dict)  # fmt: skip
    assert trimmed["fraud"].numel() < full["fraud"].numel()  # outer users were dropped
    torch.testing.assert_close(trimmed["fraud"][:size], full["fraud"][:size])


def test_chunked_full_graph_pass_equals_the_single_pass(graph: GraphExport) -> None:
    data, dims = _unscaled_data(graph)
    model = HeteroRiskGNN(dims, list(data.edge_types), edge_dims(data), hidden=16).eval()
    biggest = max(int(ei.size(1)) for ei in data.edge_index_dict.values())
    with torch.no_grad():
        whole = model(data.x_dict, data.edge_index_dict, data.edge_attr_dict)
        # blocks far smaller than every relation, and smaller than some neighbourhoods
        for max_edges in (biggest // 7, 3, 1):
            chunked = model(data.x_dict, data.edge_index_dict, data.edge_attr_dict,
                            max_edges=max_edges)  # fmt: skip
            for head in ("fraud", "default"):
                torch.testing.assert_close(chunked[head], whole[head], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_blocked_attributions_equal_whole_graph_autograd(graph: GraphExport) -> None:
    """Reasons' gradient × input, taken a block of destinations at a time layer by layer in
    reverse, equals one autograd pass over the whole graph (both heads, 2 and 3 layers)."""
    data, dims = _unscaled_data(graph)
    biggest = max(int(ei.size(1)) for ei in data.edge_index_dict.values())
    for layers, head in ((2, "fraud"), (2, "default"), (3, "fraud")):
        torch.manual_seed(layers)
        model = HeteroRiskGNN(dims, list(data.edge_types), edge_dims(data), hidden=16,
                              layers=layers).eval()  # fmt: skip
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
    logits and reasons the members' mean, and the artifact loads back to the same scores."""
    features = build_features(graph, None)
    config = TrainConfig(hidden=16, epochs=3, patience=3, split="stratified", batch_size=256,
                         device="cpu", ensemble=2)  # fmt: skip
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
    reasons = user_attributions(result.model, data, 1 << 19)
    parts = [user_attributions(m, data, 1 << 19) for m in result.model.members]
    np.testing.assert_allclose(reasons, np.mean(parts, axis=0), rtol=1e-6, atol=1e-9)

    folder = save_artifact(result, ScoreScale(), tmp_path, {})
    loaded = load_artifact(tmp_path, folder.name)
    assert isinstance(loaded.model, RiskEnsemble)
    np.testing.assert_array_equal(predict_logits(loaded.model, data)["fraud"],
                                  result.logits["fraud"])  # fmt: skip
