"""Vectorised node deduplication for ``graph.sampling.sampler.HeteroNeighborSampler``.

Sampled nodes are deduplicated per node type with sort/searchsorted only (no hash map, no
Python loop over nodes), so the same code runs on CPU and CUDA.
"""

from __future__ import annotations

import torch
from torch import Tensor

from graph.sampling.ops import take


def first_occurrence_unique(keys: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``torch.unique`` that orders the distinct values by first appearance, not by value.

    Newly discovered nodes get local ids in discovery order (as ``pyg-lib`` does), which keeps
    the output stable under relabelling of the global ids and puts nodes found through the
    first edge type first.

    Returns:
        ``(values, inverse, first)``: distinct values in order of first appearance; for each
        input its index into ``values``; for each value the position of its first appearance.

    Shapes:
        keys, inverse: ``[n]``; values, first: ``[num_distinct]``.
    """
    uniq, inv = torch.unique(keys, return_inverse=True)
    positions = torch.arange(keys.numel(), device=keys.device)
    first = torch.full_like(uniq, keys.numel()).scatter_reduce_(0, inv, positions, "amin")
    order = torch.argsort(first)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=keys.device)
    return take(uniq, order), take(rank, inv), take(first, order)


class NodeSet:
    """The nodes of one type sampled so far, as a sorted key array for ``searchsorted`` lookups.

    Keys are global node ids, or ``batch * num_nodes + node`` in disjoint mode (each seed's
    subgraph has its own copy of a node). Lookup and insert are both sort/searchsorted based,
    so deduplication is vectorised and device-agnostic.

    Shapes:
        keys (sorted), local: ``[num_known]``.
    """

    def __init__(self, device: torch.device) -> None:
        """Starts empty; ``size`` is the next free local index."""
        self.keys = torch.empty(0, dtype=torch.long, device=device)
        self.local = torch.empty(0, dtype=torch.long, device=device)
        self.size = 0

    def add_seeds(self, seeds: Tensor) -> None:
        """Registers the seeds as local ids ``0..len(seeds)-1``, verbatim.

        ``NodeLoader`` reads the first ``batch_size`` nodes as the seeds, so a repeated seed
        keeps its slot; lookups of a repeated key resolve to its first slot.

        Shapes:
            seeds: ``[batch_size]``.
        """
        values, _, first = first_occurrence_unique(seeds)
        self.keys, order = torch.sort(values)
        self.local = take(first, order)
        self.size = seeds.numel()

    def add(self, cand: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Maps candidate keys to local ids, appending the unseen ones in discovery order.

        Args:
            cand: Candidate keys (may repeat and may be known already).

        Returns:
            ``(local, new_keys, new_local)``: the local id of every candidate, the keys that were
            new, and their (consecutive) local ids.

        Shapes:
            cand, local: ``[n]``; new_keys, new_local: ``[num_new]``.
        """
        if self.keys.numel() > 0:
            pos = torch.searchsorted(self.keys, cand).clamp_(max=self.keys.numel() - 1)
            found = take(self.keys, pos) == cand
            local = take(self.local, pos)
        else:
            found = torch.zeros_like(cand, dtype=torch.bool)
            local = torch.empty_like(cand)
        unseen = (~found).nonzero().view(-1)
        new_keys, inverse, _ = first_occurrence_unique(take(cand, unseen))
        new_local = torch.arange(
            self.size, self.size + new_keys.numel(), device=cand.device, dtype=torch.long
        )
        local.index_copy_(0, unseen, take(new_local, inverse))
        keys, order = torch.sort(torch.cat([self.keys, new_keys]))
        self.keys, self.local = keys, take(torch.cat([self.local, new_local]), order)
        self.size += new_keys.numel()
        return local, new_keys, new_local
