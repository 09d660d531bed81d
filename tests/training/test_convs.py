"""The GNN's inputs and training: edge attributes, label inputs, mini-batch fitting, no leaks."""

from __future__ import annotations

import torch

from training.convs import EdgeSAGEConv


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
