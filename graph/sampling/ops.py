"""Vectorised kernels behind ``graph.sampling.sampler.HeteroNeighborSampler``, in plain torch.

PyG's own neighbour-sampling kernels live in ``pyg-lib`` / ``torch-sparse``, which have no
PyPI wheels for our torch build. Everything here is written with stock tensor ops (sort,
searchsorted, cumsum, repeat_interleave, scatter_reduce) so it runs unchanged on CPU and CUDA,
and no Python loop ever runs over nodes or edges: loops are over node/edge types, hops and, for
very-high-degree nodes, over the fanout ``k`` (a small constant).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def take(values: Tensor, index: Tensor) -> Tensor:
    """``values[index]`` for a 1-D int64 index, via ``index_select``.

    Advanced indexing (``aten::index``) costs several times more per call than
    ``index_select`` on CPU, and the sampler gathers a few hundred times per batch.
    """
    return values.index_select(0, index)


@dataclass
class Csc:
    """One edge type in compressed-sparse-column form (edges grouped by destination).

    The sampler walks from a destination node back to its sources (PyG's message passing goes
    src→dst, so a node's receptive field is its in-neighbourhood), hence grouping by destination.

    Attributes:
        colptr: ``colptr[v]:colptr[v+1]`` are the CSC slots of destination ``v``'s in-edges.
        row: Source node of each CSC slot.
        perm: Original edge id of each CSC slot (what ``HeteroSamplerOutput.edge`` reports).
        time_key: Only for temporal sampling: ``dst * (len(time_values) + 1) + rank(time)``,
            non-decreasing, so one ``searchsorted`` finds how many in-edges of ``v`` are not
            newer than a cutoff.
        time_values: Sorted distinct edge times of this edge type (temporal sampling only).

    Shapes:
        colptr: ``[num_dst + 1]``; row, perm, time_key: ``[num_edges]``;
        time_values: ``[num_distinct_times]``.
    """

    colptr: Tensor
    row: Tensor
    perm: Tensor
    time_key: Tensor | None = None
    time_values: Tensor | None = None


def build_csc(src: Tensor, dst: Tensor, num_dst: int, edge_time: Tensor | None = None) -> Csc:
    """Sorts edges by destination (then by time, when given) once, up front.

    Sorting by time inside each destination's segment turns "in-edges not newer than t" into
    a prefix of the segment, so temporal sampling costs one ``searchsorted`` per frontier node
    instead of a mask over every neighbour slot.

    Args:
        src: Source node of each edge.
        dst: Destination node of each edge.
        num_dst: Number of nodes of the destination type.
        edge_time: Optional timestamp of each edge (edge-level time, or the source node's time
            for node-level time).

    Returns:
        The CSC view of the edge type, on the device of ``src``.

    Shapes:
        src, dst, edge_time: ``[num_edges]``.
    """
    src, dst = src.long(), dst.long()
    if edge_time is None:
        perm = torch.argsort(dst, stable=True)
    else:
        perm = torch.argsort(edge_time, stable=True)
        perm = perm[torch.argsort(dst[perm], stable=True)]
    counts = torch.bincount(dst, minlength=num_dst)
    colptr = torch.zeros(num_dst + 1, dtype=torch.long, device=dst.device)
    colptr[1:] = torch.cumsum(counts, 0)
    csc = Csc(colptr=colptr, row=src[perm], perm=perm)
    if edge_time is not None:
        sorted_time = edge_time[perm]
        values = torch.unique(sorted_time)
        rank = torch.searchsorted(values, sorted_time)
        csc.time_key = dst[perm] * (values.numel() + 1) + rank
        csc.time_values = values
    return csc


def neighbour_ranges(csc: Csc, nodes: Tensor, cutoff: Tensor | None) -> tuple[Tensor, Tensor]:
    """CSC slot ranges ``[start, start + count)`` of the (time-admissible) in-edges of ``nodes``.

    Args:
        csc: The edge type.
        nodes: Destination nodes (the frontier).
        cutoff: Optional per-node time cutoff; only edges with ``time <= cutoff`` count.

    Returns:
        ``(start, count)``.

    Shapes:
        nodes, cutoff, start, count: ``[num_frontier]``.
    """
    start = take(csc.colptr, nodes)
    if cutoff is None or csc.time_key is None or csc.time_values is None:
        return start, take(csc.colptr, nodes + 1) - start
    # Edges of `v` with rank(time) < c(cutoff) are exactly those with time <= cutoff, and their
    # keys are the ones below v * (U + 1) + c in the sorted key array.
    num_values = csc.time_values.numel()
    admissible = torch.searchsorted(csc.time_values, cutoff.to(csc.time_values.dtype), right=True)
    end = torch.searchsorted(csc.time_key, nodes * (num_values + 1) + admissible)
    return start, end - start


def expand(start: Tensor, count: Tensor) -> tuple[Tensor, Tensor]:
    """Lists every slot of every segment: the vectorised ``for i: for j in range(count[i])``.

    Returns:
        ``(segment, slot)``: the segment index and the slot ``start[segment] + j`` of each item.

    Shapes:
        start, count: ``[n]``; segment, slot: ``[count.sum()]``.
    """
    total = int(count.sum())
    segment = torch.repeat_interleave(
        torch.arange(count.numel(), device=count.device), count, output_size=total
    )
    offset = torch.cumsum(count, 0) - count
    slot = take(start - offset, segment) + torch.arange(total, device=count.device)
    return segment, slot


def _topk_by_random_keys(
    start: Tensor, count: Tensor, k: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Uniform k-subset of each segment via one sort of ``(segment, random key)`` composites.

    Every slot gets a 32-bit random key; sorting ``segment << 32 | key`` orders each segment
    randomly while keeping segments apart, and the first ``k`` of each segment are a uniform
    sample without replacement. Costs ``O(sum(count))``, so it is used for moderate degrees.

    Shapes:
        start, count: ``[n]`` (every ``count > k``); outputs: ``[n * k]``.
    """
    segment, slot = expand(start, count)
    keys = torch.randint(
        0, 1 << 32, (slot.numel(),), generator=generator, device=slot.device, dtype=torch.long
    )
    order = torch.argsort((segment << 32) | keys)
    segment, slot = take(segment, order), take(slot, order)
    first = torch.cumsum(count, 0) - count
    rank = torch.arange(slot.numel(), device=slot.device) - take(first, segment)
    keep = (rank < k).nonzero().view(-1)
    return take(segment, keep), take(slot, keep)


def _floyd(
    start: Tensor, count: Tensor, k: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Uniform k-subset of each segment by Floyd's algorithm, vectorised across segments.

    For hubs (degree much larger than ``k``) listing all slots would dominate the cost; Floyd
    draws exactly ``k`` numbers per segment: for ``j = d-k .. d-1`` draw ``t ~ U{0..j}`` and
    take ``t`` unless already taken, else ``j``. Loops ``k`` times, never over nodes.

    Shapes:
        start, count: ``[n]`` (every ``count > k``); outputs: ``[n * k]``.
    """
    n = count.numel()
    chosen = torch.empty((n, k), dtype=torch.long, device=count.device)
    for i in range(k):
        j = count - k + i
        draw = torch.rand(n, generator=generator, device=count.device, dtype=torch.float64)
        t = torch.minimum((draw * (j + 1).double()).long(), j)
        taken = (chosen[:, :i] == t.unsqueeze(1)).any(1)
        chosen[:, i] = torch.where(taken, j, t)
    segment = torch.arange(n, device=count.device).repeat_interleave(k)
    return segment, (start.unsqueeze(1) + chosen).reshape(-1)


def sample_segments(
    start: Tensor,
    count: Tensor,
    k: int,
    replace: bool,
    generator: torch.Generator | None,
    hub_factor: float = 8.0,
) -> tuple[Tensor, Tensor]:
    """Samples up to ``k`` slots from each segment ``[start, start + count)``, uniformly.

    Without replacement, segments with ``count <= k`` are taken whole (PyG semantics), others
    get a uniform k-subset: by a random-key segmented sort, or by Floyd's algorithm when
    ``count > hub_factor * k`` (cheaper than listing a hub's slots). With replacement every
    non-empty segment gets exactly ``k`` independent draws, as in ``pyg-lib``. ``k < 0`` takes
    every slot.

    Args:
        start: First slot of each segment.
        count: Length of each segment.
        k: Fanout.
        replace: Sample with replacement.
        generator: Random generator on the tensors' device (``None``: torch's global one).
        hub_factor: Degree/fanout ratio above which Floyd's algorithm is used.

    Returns:
        ``(segment, slot)``: for each sampled item, the index of its segment and its slot.

    Shapes:
        start, count: ``[n]``; segment, slot: ``[num_sampled]``.
    """
    if k < 0:
        return expand(start, count)
    if replace:
        nonempty = (count > 0).nonzero().view(-1)
        segment = nonempty.repeat_interleave(k)
        draw = torch.rand(
            segment.numel(), generator=generator, device=count.device, dtype=torch.float64
        )
        seg_count = take(count, segment)
        offset = torch.minimum((draw * seg_count).long(), seg_count - 1)
        return segment, take(start, segment) + offset

    parts: list[tuple[Tensor, Tensor]] = []
    small = (count <= k).nonzero().view(-1)
    seg, slot = expand(take(start, small), take(count, small))
    parts.append((take(small, seg), slot))
    big = count > k
    hub = count > hub_factor * k
    for mask, kernel in ((big & ~hub, _topk_by_random_keys), (big & hub, _floyd)):
        idx = mask.nonzero().view(-1)
        if idx.numel() > 0:
            seg, slot = kernel(take(start, idx), take(count, idx), k, generator)
            parts.append((take(idx, seg), slot))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
