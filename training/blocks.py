"""One message-passing layer over the whole graph, a block of destination nodes at a time.

A full-graph layer's messages take memory proportional to the edge count (gigabytes at a
million users). Here a layer is computed for one block of destinations of one node type at a
time: the block's edges over every relation into that type, grouped by destination, so every
destination has its whole neighbourhood (mean and max stay exact), and only the block's
distinct sources are gathered. The same blocks serve the chunked forward pass of
``HeteroRiskGNN.encode`` (validation and scoring) and the reasons' reverse pass
(``training.attribution``), which recomputes each block to back-propagate through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn import HeteroConv

from graph.schema import EdgeType
from training.layer import combine


@dataclass
class RelationEdges:
    """One edge type into a destination type, with its edges' order by destination."""

    edge_type: EdgeType
    edge_index: Tensor
    attr: Tensor | None
    order: Tensor  # edge positions sorted by destination (stable)
    ends: Tensor  # ends[i]: number of edges whose destination is < i + 1


@dataclass
class Block:
    """Destinations ``lo:hi`` of one type and, per relation, the edges into them: their
    distinct sources and the edge index into those sources (destinations from 0)."""

    node_type: str
    lo: int
    hi: int
    edge_types: list[EdgeType]
    sources: list[Tensor]
    edge_index: list[Tensor]
    attr: list[Tensor | None]


def relations(
    edge_index_dict: dict[EdgeType, Tensor],
    edge_attr_dict: dict[EdgeType, Tensor],
    sizes: dict[str, int],
) -> dict[str, list[RelationEdges]]:
    """Every relation per destination type (those whose both ends are in ``sizes``)."""
    out: dict[str, list[RelationEdges]] = {}
    for et, edge_index in edge_index_dict.items():
        src_type, _, dst_type = et
        if src_type not in sizes or dst_type not in sizes:
            continue
        order = torch.argsort(edge_index[1], stable=True)
        bounds = torch.arange(1, sizes[dst_type] + 1, device=edge_index.device)
        ends = torch.searchsorted(edge_index[1, order], bounds)
        out.setdefault(dst_type, []).append(
            RelationEdges(et, edge_index, edge_attr_dict.get(et), order, ends)
        )
    return out


def blocks(
    rels: dict[str, list[RelationEdges]], sizes: dict[str, int], max_edges: int
) -> Iterator[Block]:
    """Destination ranges whose edges over all relations number at most ``max_edges`` (a
    destination with more gets a block of its own)."""
    for nt, type_rels in rels.items():
        n = sizes[nt]
        total = torch.stack([r.ends for r in type_rels]).sum(dim=0)  # edges into nodes < i + 1
        lo = 0
        while lo < n:
            first = int(total[lo - 1]) if lo else 0
            hi = min(max(int(torch.searchsorted(total, first + max_edges, right=True)), lo + 1), n)
            sources, edge_index, attr = [], [], []
            for r in type_rels:
                sel = r.order[int(r.ends[lo - 1]) if lo else 0 : int(r.ends[hi - 1])]
                src, dst = r.edge_index[:, sel]
                ids, local = torch.unique(src, return_inverse=True)
                sources.append(ids)
                edge_index.append(torch.stack([local, dst - lo]))
                attr.append(None if r.attr is None else r.attr[sel])
            yield Block(nt, lo, hi, [r.edge_type for r in type_rels], sources, edge_index, attr)
            lo = hi


def source_states(block: Block, h: dict[str, Tensor]) -> list[Tensor]:
    """Per relation of the block: its distinct sources' states (a copy)."""
    return [h[et[0]][ids] for et, ids in zip(block.edge_types, block.sources, strict=True)]


def block_layer(
    conv: HeteroConv, norms: nn.ModuleDict, dropout: nn.Module, block: Block, dst_h: Tensor,
    src_h: list[Tensor],
) -> Tensor:  # fmt: skip
    """The layer's output for the block's destinations from their input states and their
    sources' (``src_h[k]``: the k-th relation's distinct sources): the relations' messages
    summed, then ``training.layer.combine``, as ``HeteroRiskGNN.encode`` does."""
    out: Tensor | None = None
    for et, sources, edge_index, attr in zip(
        block.edge_types, src_h, block.edge_index, block.attr, strict=True
    ):
        msg = conv.convs[et]((sources, dst_h), edge_index, attr)
        out = msg if out is None else out + msg
    assert out is not None
    return combine(norms[block.node_type], dropout, dst_h, out)


def blocked_layer(
    conv: HeteroConv, norms: nn.ModuleDict, dropout: nn.Module, h: dict[str, Tensor],
    rels: dict[str, list[RelationEdges]], layer_blocks: Iterable[Block],
) -> dict[str, Tensor]:  # fmt: skip
    """The whole layer, block by block; a type no relation reaches keeps its state."""
    out = {nt: (v.new_empty(v.shape) if nt in rels else v) for nt, v in h.items()}
    for block in layer_blocks:
        out[block.node_type][block.lo : block.hi] = block_layer(
            conv, norms, dropout, block, h[block.node_type][block.lo : block.hi],
            source_states(block, h),
        )  # fmt: skip
    return out
