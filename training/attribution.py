"""Gradient × input of the users' fraud logits, in bounded memory at any graph size.

The reasons behind a score (``training.predict``) rank each user's own input features by
``x_u · ∂(Σ_v fraud_logit_v)/∂x_u``. Plain autograd over the whole graph keeps every
layer's messages for the backward pass, so its memory grows with the edge count (gigabytes
at a million users). Here the same gradient is taken layer by layer, in reverse, a block of
destination nodes at a time:

1. Forward, without a graph: each layer's node states ``h^l`` for every node, a block at a
   time (``training.blocks``: the block holds the destinations' whole neighbourhoods over
   every relation, so mean and max are exact).
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

import numpy as np
import torch
from torch_geometric.data import HeteroData

from training.blocks import block_layer, blocked_layer, blocks, relations, source_states
from training.model import HeteroRiskGNN, RiskEnsemble, RiskModel

HEAD_ROWS = 1 << 16  # users per head / projection block


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
    layers = model.layers()
    with torch.no_grad():
        states = [{nt: model.project[nt](v) for nt, v in x.items()}]
        sizes = {nt: v.size(0) for nt, v in states[0].items()}
        rels = relations(data.edge_index_dict, data.edge_attr_dict, sizes)
        cached = list(blocks(rels, sizes, max_edges))  # reused by every layer, both ways
        for conv, norms in layers:
            states.append(blocked_layer(conv, norms, model.dropout, states[-1], rels, cached))

    # The heads alone read the last layer's states, and a layer's reverse step needs only its
    # input states: each is dropped as soon as it is used (one state of every node less at
    # the peak, and one less for every layer passed).
    top = states.pop()
    grad = {nt: torch.zeros_like(v) for nt, v in top.items()}
    grad_h0_user = torch.zeros_like(states[0]["user"])
    for lo in range(0, sizes["user"], HEAD_ROWS):
        h0 = states[0]["user"][lo : lo + HEAD_ROWS].clone().requires_grad_(True)
        hl = top["user"][lo : lo + HEAD_ROWS].clone().requires_grad_(True)
        with torch.enable_grad():  # autograd.grad: no gradients left on the model's weights
            logit_sum = model.head_logits(head, h0, hl).sum()
            g0, gl = torch.autograd.grad(logit_sum, [h0, hl])
        grad_h0_user[lo : lo + HEAD_ROWS] = g0
        grad["user"][lo : lo + HEAD_ROWS] = gl
    del top

    for layer in reversed(range(len(layers))):
        conv, norms = layers[layer]
        h = states.pop()  # the input states of this layer
        # types no relation reaches pass their state (and gradient) through unchanged
        below = {nt: (torch.zeros_like(g) if nt in rels else g.clone()) for nt, g in grad.items()}
        for block in cached:
            dst = h[block.node_type][block.lo : block.hi].clone().requires_grad_(True)
            sources = [s.requires_grad_(True) for s in source_states(block, h)]
            with torch.enable_grad():
                y = block_layer(conv, norms, model.dropout, block, dst, sources)
                g_dst, *g_sources = torch.autograd.grad(
                    y, [dst, *sources], grad[block.node_type][block.lo : block.hi]
                )
            below[block.node_type][block.lo : block.hi] += g_dst
            for et, node_ids, g in zip(block.edge_types, block.sources, g_sources, strict=True):
                below[et[0]].index_add_(0, node_ids, g)
        grad = below
        del h

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
