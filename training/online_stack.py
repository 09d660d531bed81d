"""One user's pass through every fold model at once: the members' weights stacked.

``training.online``'s reference path calls each member's modules (PyG convolutions, a
``HeteroConv`` per layer) for a one-destination block: about 30 module calls and their
Python overhead per member, five members, and the same again backwards for the reasons. Here
the same arithmetic runs on the members' weights stacked along a first axis ``K``: one
batched matrix product per relation and layer for all members, one LayerNorm, one head, and
one backward pass over the stack for the reasons (the ensemble's logit is the members' mean).

It is the model's arithmetic written out (``EdgeSAGEConv``: ``m = ReLU(W_n x_j + W_e e_ij)``,
``W_o [mean ‖ max] + W_r x_i``; ``training.layer.combine``: ``LayerNorm(h + ReLU(Σ))``;
``score_head``), so :func:`stack_members` refuses (returns None) a model whose modules are not
of those kinds, and the service checks the result against the reference path on real users
when it takes its snapshot (``training.online.check_stack``) before using it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from training.convs import EdgeSAGEConv
from training.model import HeteroRiskGNN
from training.numeric import PiecewiseLinear

EdgeType = tuple[str, str, str]


@dataclass
class Relation:
    """One relation into users, every member's weights stacked (``K`` first)."""

    edge_type: EdgeType
    w_neighbour: Tensor  # (K, H, H) transposed for x @ W
    b_neighbour: Tensor  # (K, 1, H)
    w_edge: Tensor | None  # (K, d, H)
    w_out: Tensor  # (K, 2H, H)
    b_out: Tensor  # (K, H)
    w_root: Tensor  # (K, H, H)


@dataclass
class Stack:
    """The user-side weights of ``K`` members."""

    encode: PiecewiseLinear | None  # the users' piecewise-linear encoding, shared by members
    w_project: Tensor  # (K, in, H)
    b_project: Tensor  # (K, H)
    layers: list[list[Relation]]
    ln_weight: list[Tensor]  # per layer (K, H)
    ln_bias: list[Tensor]
    ln_eps: list[float]
    heads: dict[str, tuple[Tensor, Tensor, Tensor, Tensor]]  # W1 (K,2H,H), b1, W2 (K,H,1), b2


def _t(linears: list[nn.Module]) -> Tensor:
    """The linears' weights, transposed (``x @ W``) and stacked."""
    return torch.stack([cast(nn.Linear, lin).weight.detach().t() for lin in linears]).contiguous()


def _b(linears: list[nn.Module]) -> Tensor:
    return torch.stack([cast(nn.Linear, lin).bias.detach() for lin in linears])


def _seq(module: nn.Module, kinds: tuple[type, ...]) -> bool:
    return isinstance(module, nn.Sequential) and tuple(type(m) for m in module) == kinds


def stack_members(members: list[HeteroRiskGNN], edge_types: list[EdgeType]) -> Stack | None:
    """The members' user-side weights stacked, or None for a model this path does not know."""
    first = members[0]
    usable, encode = _shared_encoding(members)
    plain: tuple[type, ...] = (nn.Linear, nn.ReLU)
    kinds = plain if encode is None else (PiecewiseLinear, *plain)
    for member in members:
        if not usable or not _seq(member.project["user"], kinds):
            return None
        for head in (member.fraud_head, member.default_head):
            if not _seq(head, (nn.Linear, nn.ReLU, nn.Linear)):
                return None
        layers_ok = len(member.layers()) == len(first.layers())
        if not layers_ok or not all(
            isinstance(n["user"], nn.LayerNorm) for _, n in member.layers()
        ):
            return None
    into_user = [et for et in edge_types if et[2] == "user" and et[1].startswith("rev_")]
    layers: list[list[Relation]] = []
    for layer in range(len(first.layers())):
        rels = []
        for et in into_user:
            convs = []
            for member in members:
                conv = member.layers()[layer][0].convs[et]
                if type(conv) is not EdgeSAGEConv or list(conv.aggr) != ["mean", "max"]:
                    return None
                convs.append(conv)
            edge = [c.lin_edge for c in convs]
            rels.append(Relation(
                et, _t([c.lin_neighbour for c in convs]),
                _b([c.lin_neighbour for c in convs]).unsqueeze(1),
                None if edge[0] is None else _t([e for e in edge if e is not None]),
                _t([c.lin_out for c in convs]), _b([c.lin_out for c in convs]),
                _t([c.lin_root for c in convs]),
            ))  # fmt: skip
        layers.append(rels)
    norms = [
        [cast(nn.LayerNorm, m.layers()[layer][1]["user"]) for m in members]
        for layer in range(len(layers))
    ]
    heads = {}
    for name in ("fraud", "default"):
        mods = [cast(nn.Sequential, m.fraud_head if name == "fraud" else m.default_head)
                for m in members]  # fmt: skip
        heads[name] = (_t([h[0] for h in mods]), _b([h[0] for h in mods]),
                       _t([h[2] for h in mods]), _b([h[2] for h in mods]))  # fmt: skip
    project = [cast(nn.Sequential, m.project["user"])[-2] for m in members]
    return Stack(
        encode, _t(project), _b(project), layers,
        [torch.stack([n.weight.detach() for n in ns]) for ns in norms],
        [torch.stack([n.bias.detach() for n in ns]) for ns in norms],
        [float(ns[0].eps) for ns in norms],
        heads,
    )  # fmt: skip


def _shared_encoding(members: list[HeteroRiskGNN]) -> tuple[bool, PiecewiseLinear | None]:
    """(usable, encoding): the members' user encoding when they share one (the fold models
    of one run do), None when none has one; not usable when they differ."""
    found = [cast(nn.Sequential, m.project["user"])[0] for m in members]
    encodings = [e for e in found if isinstance(e, PiecewiseLinear)]
    if not encodings:
        return True, None
    first = encodings[0]
    same = len(encodings) == len(members) and all(
        torch.equal(a, b)
        for e in encodings[1:]
        for a, b in zip(first.buffers(), e.buffers(), strict=True)
    )
    return same, first


def _bmv(v: Tensor, w: Tensor) -> Tensor:
    """Member k's row vector times member k's matrix: ``(K, c) x (K, c, h) -> (K, h)``."""
    return torch.bmm(v.unsqueeze(1), w).squeeze(1)


def stacked_logits(
    stack: Stack, states: list[dict[str, Tensor]], x: Tensor,
    sources: dict[EdgeType, tuple[Tensor, Tensor | None]],
) -> dict[str, Tensor]:  # fmt: skip
    """Every member's ``fraud`` and ``default`` logits ``(K,)`` for one user.

    ``states[layer][node type]``: ``(K, nodes, H)`` neighbour states entering the layer;
    ``x``: the user's input row ``(in,)``; ``sources[edge type]``: the user's neighbours'
    positions in ``states`` and their edges' attributes ``(E, d)``.
    """
    if stack.encode is not None:
        x = stack.encode(x.unsqueeze(0)).squeeze(0)
    h0 = torch.relu(torch.matmul(x, stack.w_project) + stack.b_project)
    h = h0
    for layer, rels in enumerate(stack.layers):
        total = torch.zeros_like(h)
        for rel in rels:
            ids, attr = sources[rel.edge_type]
            out = rel.b_out + _bmv(h, rel.w_root)
            if len(ids):
                src = states[layer][rel.edge_type[0]][:, ids]  # (K, E, H)
                m = torch.baddbmm(rel.b_neighbour, src, rel.w_neighbour)
                if rel.w_edge is not None and attr is not None:
                    m = m + torch.matmul(attr, rel.w_edge)
                m = torch.relu(m)
                agg = torch.cat([m.mean(dim=1), m.amax(dim=1)], dim=-1)
                out = out + _bmv(agg, rel.w_out)
            total = total + out
        z = h + torch.relu(total)
        mean = z.mean(dim=-1, keepdim=True)
        var = z.var(dim=-1, unbiased=False, keepdim=True)
        h = (z - mean) / torch.sqrt(var + stack.ln_eps[layer]) * stack.ln_weight[layer]
        h = h + stack.ln_bias[layer]
    both = torch.cat([h0, h], dim=-1)
    logits: dict[str, Tensor] = {}
    for name, (w1, b1, w2, b2) in stack.heads.items():
        hidden = torch.relu(_bmv(both, w1) + b1)
        logits[name] = _bmv(hidden, w2).squeeze(-1) + b2.squeeze(-1)
    return logits
