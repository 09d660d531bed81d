"""Gradient × input of the users' fraud logits, in bounded memory at any graph size.

The reasons behind a score (``training.predict``) rank each user's own input features by
``x_u · ∂(Σ_v fraud_logit_v)/∂x_u``. Plain autograd over the whole graph keeps every
layer's messages for the backward pass, so its memory grows with the edge count (gigabytes
at a million users). Here the same gradient is taken layer by layer, in reverse, a block of
destination nodes at a time:

1. Forward, without a graph: each layer's node states ``h^l`` for every node, a block at a
   time (the block holds the destinations' whole neighbourhoods over every relation, so
   mean and max are exact).
2. Backward: the heads give ``∂L/∂h^L`` (and ``∂L/∂h^0`` for users, whose head also reads
   the projection). For each layer from the top, every block recomputes its output from
   ``h^l`` of its destinations and their sources, and one vector-Jacobian product with the
   block's slice of ``∂L/∂h^{l+1}`` adds into ``∂L/∂h^l`` of those nodes.
3. The user projection's vector-Jacobian product gives ``∂L/∂x`` for users.

Only one block's messages exist at a time; the states and their gradients are
``nodes × hidden`` per layer. The result equals plain autograd (tested); the model must be
in eval mode (dropout off), as it is for scoring.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv

from training.model import EdgeType, HeteroRiskGNN, RiskEnsemble, RiskModel

HEAD_ROWS = 1 << 16  # users per head / projection block


@dataclass
class _Relation:
    """One edge type into a destination type, its edges sorted by destination."""

    edge_type: EdgeType
    src: Tensor  # source index per edge, in destination order
    dst: Tensor  # destination index per edge, ascending
    attr: Tensor | None
    ends: Tensor  # ends[i]: edges whose destination is < i + 1


@dataclass
class _Block:
    """Destinations ``lo:hi`` of one type and, per relation, their edges' positions, the
    distinct sources those edges come from and each edge's index into them (computed once,
    used by every layer forward and backward)."""

    node_type: str
    lo: int
    hi: int
    edges: list[tuple[_Relation, slice]]
    sources: list[Tensor]
    local: list[Tensor]


def _relations(data: HeteroData, h: dict[str, Tensor]) -> dict[str, list[_Relation]]:
    """Every relation per destination type, edges sorted by destination (stable)."""
    out: dict[str, list[_Relation]] = {}
    for et, edge_index in data.edge_index_dict.items():
        src_type, _, dst_type = et
        if src_type not in h or dst_type not in h:
            continue
        order = torch.argsort(edge_index[1], stable=True)
        dst = edge_index[1, order]
        n_dst = h[dst_type].size(0)
        ends = torch.searchsorted(dst, torch.arange(1, n_dst + 1, device=dst.device))
        attr = data[et].get("edge_attr")
        out.setdefault(dst_type, []).append(
            _Relation(et, edge_index[0, order], dst, None if attr is None else attr[order], ends)
        )
    return out


def _blocks(
    relations: dict[str, list[_Relation]], sizes: dict[str, int], max_edges: int
) -> Iterator[_Block]:
    """Destination ranges whose edges over all relations number at most ``max_edges``
    (a destination with more gets a block of its own)."""
    for nt, rels in relations.items():
        n = sizes[nt]
        if n == 0:
            continue
        total = torch.stack([r.ends for r in rels]).sum(dim=0)  # edges into nodes < i + 1
        lo = 0
        while lo < n:
            first = int(total[lo - 1]) if lo else 0
            hi = int(torch.searchsorted(total, first + max_edges, right=True))
            hi = min(max(hi, lo + 1), n)
            spans, sources, local = [], [], []
            for r in rels:
                span = slice(int(r.ends[lo - 1]) if lo else 0, int(r.ends[hi - 1]))
                ids, index = torch.unique(r.src[span], return_inverse=True)
                spans.append((r, span))
                sources.append(ids)
                local.append(index)
            yield _Block(nt, lo, hi, spans, sources, local)
            lo = hi


def _block_forward(
    model: HeteroRiskGNN, layer: int, block: _Block, dst_h: Tensor, src_h: list[Tensor]
) -> Tensor:
    """``h^{l+1}`` of the block's destinations from their ``h^l`` and their sources' ``h^l``
    (``src_h[k]``: the k-th relation's distinct sources, in ``block.sources[k]`` order)."""
    conv, norms = model.convs[layer], model.norms[layer]
    assert isinstance(conv, HeteroConv) and isinstance(norms, nn.ModuleDict)
    out: Tensor | None = None
    for (rel, span), sources, index in zip(block.edges, src_h, block.local, strict=True):
        edge_index = torch.stack([index, rel.dst[span] - block.lo])
        attr = None if rel.attr is None else rel.attr[span]
        msg = conv.convs[rel.edge_type]((sources, dst_h), edge_index, attr)
        out = msg if out is None else out + msg
    assert out is not None
    # as in HeteroRiskGNN.encode (eval mode: dropout is the identity)
    result: Tensor = norms[block.node_type](dst_h + torch.relu(out))
    return result


def _source_states(block: _Block, h: dict[str, Tensor]) -> list[Tensor]:
    """Per relation of the block: its distinct sources' states (a copy)."""
    return [
        h[rel.edge_type[0]][ids] for (rel, _), ids in zip(block.edges, block.sources, strict=True)
    ]


def user_attributions(
    model: RiskModel, data: HeteroData, max_edges: int, head: str = "fraud"
) -> np.ndarray:
    """``x_user * ∂(Σ head logits)/∂x_user`` for every user, ``(users, in_dims['user'])``.

    Exactly what one autograd pass over the whole graph gives (the model in eval mode),
    with at most ``max_edges`` edges' messages in memory at a time. For an ensemble, whose
    logit is the members' mean, it is the mean of the members' attributions (the gradient
    is linear).
    """
    if isinstance(model, RiskEnsemble):
        parts = [
            user_attributions(m, data, max_edges, head)
            for m in model.members
            if isinstance(m, HeteroRiskGNN)
        ]
        mean: np.ndarray = np.mean(parts, axis=0)
        return mean
    model.eval()
    x = data.x_dict
    with torch.no_grad():
        states = [{nt: model.project[nt](v) for nt, v in x.items()}]
        sizes = {nt: v.size(0) for nt, v in states[0].items()}
        relations = _relations(data, states[0])
        blocks = list(_blocks(relations, sizes, max_edges))
        for layer in range(len(model.convs)):
            h = states[-1]
            nxt = {nt: v.clone() for nt, v in h.items()}  # a type without relations keeps h
            for block in blocks:
                nxt[block.node_type][block.lo : block.hi] = _block_forward(
                    model, layer, block, h[block.node_type][block.lo : block.hi],
                    _source_states(block, h),
                )  # fmt: skip
            states.append(nxt)

    head_module = model.fraud_head if head == "fraud" else model.default_head
    top = states[-1]
    grad = {nt: torch.zeros_like(v) for nt, v in top.items()}
    grad_h0_user = torch.zeros_like(states[0]["user"])
    for lo in range(0, sizes["user"], HEAD_ROWS):
        h0 = states[0]["user"][lo : lo + HEAD_ROWS].clone().requires_grad_(True)
        hl = top["user"][lo : lo + HEAD_ROWS].clone().requires_grad_(True)
        with torch.enable_grad():  # autograd.grad: no gradients left on the model's weights
            logit_sum = head_module(torch.cat([h0, hl], dim=-1)).sum()
            g0, gl = torch.autograd.grad(logit_sum, [h0, hl])
        grad_h0_user[lo : lo + HEAD_ROWS] = g0
        grad["user"][lo : lo + HEAD_ROWS] = gl

    for layer in reversed(range(len(model.convs))):
        h = states[layer]
        # types no relation reaches pass their state (and gradient) through unchanged
        below = {
            nt: (torch.zeros_like(g) if nt in relations else g.clone()) for nt, g in grad.items()
        }
        for block in blocks:
            dst = h[block.node_type][block.lo : block.hi].clone().requires_grad_(True)
            sources = [s.requires_grad_(True) for s in _source_states(block, h)]
            with torch.enable_grad():
                y = _block_forward(model, layer, block, dst, sources)
                g_dst, *g_sources = torch.autograd.grad(
                    y, [dst, *sources], grad[block.node_type][block.lo : block.hi]
                )
            below[block.node_type][block.lo : block.hi] += g_dst
            for (rel, _), node_ids, g in zip(block.edges, block.sources, g_sources, strict=True):
                below[rel.edge_type[0]].index_add_(0, node_ids, g)
        grad = below

    grad_h0_user += grad["user"]
    out = torch.empty_like(x["user"])
    for lo in range(0, sizes["user"], HEAD_ROWS):
        xu = x["user"][lo : lo + HEAD_ROWS].clone().requires_grad_(True)
        with torch.enable_grad():
            (g_x,) = torch.autograd.grad(
                model.project["user"](xu), [xu], grad_h0_user[lo : lo + HEAD_ROWS]
            )
        out[lo : lo + HEAD_ROWS] = g_x * xu.detach()
    return out.cpu().numpy()
