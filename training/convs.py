"""A GraphSAGE-style convolution whose messages also see the edge's attributes.

``SAGEConv`` ignores edge attributes, but for risk the edge says much: the same product reached
through a charged-back order and through a paid one should not send the same message. Here the
neighbour is projected once per node (cheap: nodes ≪ edges), the edge's attributes are added
per edge, and a ReLU makes the two interact before mean (and max) aggregation::

    m_ij = ReLU(W_n x_j + W_e e_ij)
    x_i' = W_o [mean_j m_ij ‖ max_j m_ij] + W_r x_i
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing


class EdgeSAGEConv(MessagePassing):
    """Bipartite message passing ``src → dst`` with optional edge attributes.

    Args:
        in_channels: width of source and destination inputs (both projected to ``hidden``).
        out_channels: output width.
        edge_dim: width of the edge attributes, or 0 for a relation without any.
    """

    def __init__(self, in_channels: int, out_channels: int, edge_dim: int = 0) -> None:
        super().__init__(aggr=["mean", "max"])
        self.lin_neighbour = nn.Linear(in_channels, out_channels)
        self.lin_edge = nn.Linear(edge_dim, out_channels, bias=False) if edge_dim else None
        self.lin_out = nn.Linear(2 * out_channels, out_channels)
        self.lin_root = nn.Linear(in_channels, out_channels, bias=False)

    def forward(
        self, x: tuple[Tensor, Tensor], edge_index: Tensor, edge_attr: Tensor | None = None
    ) -> Tensor:
        """Shapes: x = ((n_src, in), (n_dst, in)), edge_index (2, E), edge_attr (E, edge_dim)."""
        x_src, x_dst = x
        h_src = self.lin_neighbour(x_src)
        if self.lin_edge is None:
            edge_attr = None
        agg = self.propagate(edge_index, x=(h_src, x_dst), edge_attr=edge_attr,
                             size=(x_src.size(0), x_dst.size(0)))  # fmt: skip
        return self.lin_out(agg) + self.lin_root(x_dst)

    def message(self, x_j: Tensor, edge_attr: Tensor | None) -> Tensor:
        if edge_attr is not None and self.lin_edge is not None:
            x_j = x_j + self.lin_edge(edge_attr)
        return torch.relu(x_j)
