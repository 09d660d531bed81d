"""The GNN's inputs and training: edge attributes, label inputs, mini-batch fitting, no leaks."""

from __future__ import annotations

import torch
from torch_geometric.loader import NodeLoader

from graph.export import GraphExport
from graph.sampling.sampler import HeteroNeighborSampler
from tests.training.tensors import unscaled_data
from training.inputs import edge_dims
from training.model import HeteroRiskGNN


def test_trimming_a_sampled_batch_leaves_the_seed_outputs_unchanged(graph: GraphExport) -> None:
    data, dims = unscaled_data(graph)
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
    data, dims = unscaled_data(graph)
    model = HeteroRiskGNN(dims, list(data.edge_types), edge_dims(data), hidden=16).eval()
    biggest = max(int(ei.size(1)) for ei in data.edge_index_dict.values())
    # the most edges into one node, over every relation into its type
    widest = max(
        int(torch.bincount(ei[1]).max()) for ei in data.edge_index_dict.values() if ei.size(1)
    )
    with torch.no_grad():
        whole = model(data.x_dict, data.edge_index_dict, data.edge_attr_dict)
        # blocks far smaller than every relation, and smaller than the widest neighbourhood
        # (a node with more edges than the limit gets a block of its own)
        for max_edges in (biggest // 7, max(widest // 2, 1)):
            assert max_edges < widest
            chunked = model(data.x_dict, data.edge_index_dict, data.edge_attr_dict,
                            max_edges=max_edges)  # fmt: skip
            for head in ("fraud", "default"):
                torch.testing.assert_close(chunked[head], whole[head], rtol=1e-4, atol=1e-5)
