"""A heterogeneous neighbour sampler in plain torch, behind PyG's ``BaseSampler`` interface.

PyG's ``NeighborSampler`` needs ``pyg-lib`` or ``torch-sparse`` kernels, which have no PyPI
wheels for our torch build. This sampler produces the same ``HeteroSamplerOutput`` (seeds
first, locally relabelled ``row``/``col`` per edge type, per-hop counts), so PyG's
``NodeLoader`` turns it into mini-batches and ``trim_to_layer`` works on them. Kernels live
in ``graph.sampling.ops`` (CSC, sampling) and ``graph.sampling.nodes`` (deduplication); they
are vectorised and device-agnostic, so a graph on CUDA is sampled on CUDA.

Example::

    sampler = HeteroNeighborSampler(data, num_neighbors=[10, 5], seed=0)
    loader = NodeLoader(data, node_sampler=sampler, input_nodes=("user", idx), batch_size=1024)
    for batch in loader:
        out = model(batch.x_dict, batch.edge_index_dict)[: batch["user"].batch_size]
"""

from __future__ import annotations

import os
from typing import Any, TypeAlias

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.sampler import (
    BaseSampler,
    EdgeSamplerInput,
    HeteroSamplerOutput,
    NodeSamplerInput,
)
from torch_geometric.sampler.base import NumNeighbors
from torch_geometric.typing import EdgeType, NodeType

from graph.sampling.nodes import NodeSet
from graph.sampling.ops import Csc, build_csc, neighbour_ranges, sample_segments, take

NumNeighborsArg: TypeAlias = NumNeighbors | list[int] | dict[EdgeType, list[int]]


class HeteroNeighborSampler(BaseSampler):
    """Uniform multi-hop neighbour sampling on a ``HeteroData`` graph, PyG-compatible.

    Semantics follow PyG's ``NeighborSampler`` (directional subgraph, ``sample_direction=
    'forward'``): messages flow src→dst, so hop ``h`` samples, for every edge type
    ``(src, rel, dst)``, up to ``k`` in-neighbours (of type ``src``) of each frontier node of
    type ``dst``. Only nodes first found at hop ``h`` are expanded at hop ``h + 1``. Sampled
    nodes are deduplicated per node type; seeds come first in ``node[input_type]``, verbatim
    (a repeated seed keeps its slots so ``batch_size`` lines up, and each copy gets its own
    neighbours). ``edge`` holds original edge ids, so ``edge_permutation`` stays ``None``.

    Temporal sampling (``time_attr``): with an edge-level attribute only edges with
    ``time <= seed time`` are followed; with a node-level attribute only neighbours with
    ``time <= seed time``. Like PyG, temporal sampling is always disjoint (each seed grows its
    own subgraph, ``batch`` tells which), since one shared node cannot honour two cutoffs.

    Args:
        data: The graph; ``edge_index`` per edge type and ``num_nodes`` per node type. The
            sampler keeps its CSC copy on the device of the edge indices.
        num_neighbors: Fanout per hop, for all edge types (list) or per edge type (dict, or
            PyG's ``NumNeighbors``). ``-1`` takes all neighbours, ``0`` none.
        replace: Sample with replacement (exactly ``k`` draws per node with neighbours).
        disjoint: One subgraph per seed, with ``batch`` vectors in the output.
        time_attr: Name of a node- or edge-level int64 time attribute for temporal sampling.
        seed: Seed of the sampler's own generator, for reproducible batches; ``None`` uses
            torch's global generator (which DataLoader workers reseed).
        hub_factor: Nodes with degree above ``hub_factor * k`` are sampled by Floyd's
            algorithm rather than by sorting random keys over all their neighbours.
    """

    def __init__(
        self,
        data: HeteroData,
        num_neighbors: NumNeighborsArg,
        replace: bool = False,
        disjoint: bool = False,
        time_attr: str | None = None,
        seed: int | None = None,
        hub_factor: float = 8.0,
    ) -> None:
        """Validates the inputs and builds one CSC per edge type (done once, reused per batch)."""
        self.node_types, self.edge_types = data.metadata()
        self.num_nodes: dict[NodeType, int] = {}
        for node_type in self.node_types:
            num = data[node_type].num_nodes
            if num is None:
                raise ValueError(f"node type {node_type!r} has no num_nodes")
            self.num_nodes[node_type] = int(num)
        if not isinstance(num_neighbors, NumNeighbors):
            num_neighbors = NumNeighbors(num_neighbors)
        fanouts = num_neighbors.get_values(self.edge_types)
        assert isinstance(fanouts, dict)
        self.fanouts: dict[EdgeType, list[int]] = {et: list(fanouts[et]) for et in self.edge_types}
        self.num_hops = max((len(v) for v in self.fanouts.values()), default=0)
        self.replace = replace
        self.seed = seed
        self.hub_factor = hub_factor
        self.device = (
            data[self.edge_types[0]].edge_index.device if self.edge_types else torch.device("cpu")
        )
        self.node_time, self.edge_time = self._collect_time(data, time_attr)
        self.temporal = bool(self.node_time or self.edge_time)
        self.disjoint = disjoint or self.temporal
        self.csc: dict[EdgeType, Csc] = {}
        for et in self.edge_types:
            src, dst = data[et].edge_index.to(self.device)
            time = self.edge_time.get(et)
            if time is None and et[0] in self.node_time:
                time = self.node_time[et[0]][src]
            self.csc[et] = build_csc(src, dst, self.num_nodes[et[2]], time)
        self._generator: torch.Generator | None = None
        self._generator_pid = -1

    def _collect_time(
        self, data: HeteroData, time_attr: str | None
    ) -> tuple[dict[NodeType, Tensor], dict[EdgeType, Tensor]]:
        """Finds ``time_attr`` on node or edge stores (not both, as in PyG)."""
        if time_attr is None:
            return {}, {}
        node_time = {
            t: data[t][time_attr].to(self.device).long()
            for t in self.node_types
            if time_attr in data[t]
        }
        edge_time = {
            et: data[et][time_attr].to(self.device).long()
            for et in self.edge_types
            if time_attr in data[et]
        }
        if node_time and edge_time:
            raise ValueError(f"time attribute {time_attr!r} is on both nodes and edges")
        if not node_time and not edge_time:
            raise ValueError(f"time attribute {time_attr!r} is on no node or edge type")
        return node_time, edge_time

    def __getstate__(self) -> dict[str, Any]:
        """Drops the generator when pickled (spawned workers build their own)."""
        state = self.__dict__.copy()
        state["_generator"], state["_generator_pid"] = None, -1
        return state

    def generator(self) -> torch.Generator | None:
        """The sampler's generator; each DataLoader worker process derives its own stream.

        A forked worker would otherwise inherit the parent's generator state and every worker
        would draw identical neighbourhoods.
        """
        if self.seed is None:
            return None
        if self._generator is None or self._generator_pid != os.getpid():
            info = torch.utils.data.get_worker_info()
            self._generator = torch.Generator(device=self.device)
            self._generator.manual_seed(self.seed if info is None else self.seed + 1 + info.id)
            self._generator_pid = os.getpid()
        return self._generator

    def sample_from_nodes(self, inputs: NodeSamplerInput, **kwargs: Any) -> HeteroSamplerOutput:
        """Samples the multi-hop neighbourhood of a batch of seed nodes.

        Args:
            inputs: Seeds of type ``inputs.input_type``; ``inputs.time`` gives per-seed time
                cutoffs (defaults to the seeds' own node time with a node-level ``time_attr``).
            **kwargs: Unused; accepted for signature compatibility with ``BaseSampler``.

        Returns:
            PyG's ``HeteroSamplerOutput``; ``metadata`` is ``(input_id, seed_time)`` as
            ``NodeLoader`` expects (``seed_time``: the cutoffs used, on CPU, or ``None``).

        Shapes:
            inputs.node, inputs.time: ``[batch_size]``; node[t]: ``[num_sampled_t]``;
            row[et], col[et], edge[et]: ``[num_sampled_edges_et]``.
        """
        input_type = inputs.input_type
        if input_type is None or input_type not in self.num_nodes:
            raise ValueError(f"input_type must be a node type of the graph (got {input_type!r})")
        seeds = inputs.node.to(self.device).long()
        seed_time: Tensor | None = None
        if self.temporal:
            if inputs.time is not None:
                seed_time = inputs.time.to(self.device).long()
            elif input_type in self.node_time:
                seed_time = self.node_time[input_type][seeds]
            else:
                raise ValueError("temporal sampling needs seed times (NodeLoader input_time=...)")
        # One thread while sampling: each batch is ~1,600 small ops that gain nothing from
        # OpenMP, and on a shared 2-core machine waking the pool for each costs 3x throughput.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            out = self._sample(input_type, seeds, seed_time)
        finally:
            torch.set_num_threads(threads)
        input_id = inputs.input_id if inputs.input_id is not None else torch.arange(seeds.numel())
        # The effective cutoffs (node time when no input_time was given), so a batch always
        # carries the times it was sampled under as `data[input_type].seed_time`.
        out.metadata = (input_id, seed_time.cpu() if seed_time is not None else inputs.time)
        return out

    def sample_from_edges(self, inputs: EdgeSamplerInput, neg_sampling: Any = None) -> Any:
        """Link-level sampling is not implemented (node classification only, for now)."""
        raise NotImplementedError("HeteroNeighborSampler only samples from nodes")

    def _sample(
        self, input_type: NodeType, seeds: Tensor, seed_time: Tensor | None
    ) -> HeteroSamplerOutput:
        """Hop loop: sample each edge type from the frontier, deduplicate, relabel.

        Node keys are global ids, or ``batch * num_nodes + id`` when disjoint, so the same
        sort/searchsorted deduplication serves both modes.
        """
        device, hops, n = self.device, self.num_hops, self.num_nodes
        batch_size = seeds.numel()
        sets = {t: NodeSet(device) for t in self.node_types}
        chunks: dict[NodeType, list[Tensor]] = {t: [] for t in self.node_types}
        num_nodes_out = {t: [0] * (hops + 1) for t in self.node_types}
        rows: dict[EdgeType, list[Tensor]] = {et: [] for et in self.edge_types}
        cols: dict[EdgeType, list[Tensor]] = {et: [] for et in self.edge_types}
        edges: dict[EdgeType, list[Tensor]] = {et: [] for et in self.edge_types}
        num_edges_out: dict[EdgeType, list[int]] = {et: [] for et in self.edge_types}

        arange = torch.arange(batch_size, device=device)
        keys = arange * n[input_type] + seeds if self.disjoint else seeds
        sets[input_type].add_seeds(keys)
        chunks[input_type].append(keys)
        num_nodes_out[input_type][0] = batch_size
        # Frontier per node type: (keys, local ids). Every seed slot is expanded, even repeats.
        frontier: dict[NodeType, tuple[Tensor, Tensor]] = {input_type: (keys, arange)}
        gen = self.generator()

        for hop in range(hops):
            cands: dict[NodeType, list[Tensor]] = {}
            pending: list[tuple[EdgeType, Tensor, Tensor]] = []
            for et in self.edge_types:
                src_t, _, dst_t = et
                k = self.fanouts[et][hop] if hop < len(self.fanouts[et]) else 0
                if k == 0 or dst_t not in frontier:
                    continue
                fr_keys, fr_local = frontier[dst_t]
                nodes, batch = (
                    (fr_keys % n[dst_t], fr_keys // n[dst_t]) if self.disjoint else (fr_keys, None)
                )
                cutoff = (
                    take(seed_time, batch) if seed_time is not None and batch is not None else None
                )
                start, count = neighbour_ranges(self.csc[et], nodes, cutoff)
                seg, slot = sample_segments(start, count, k, self.replace, gen, self.hub_factor)
                src = take(self.csc[et].row, slot)
                if batch is not None:
                    src = take(batch, seg) * n[src_t] + src
                cands.setdefault(src_t, []).append(src)
                pending.append((et, take(fr_local, seg), take(self.csc[et].perm, slot)))

            local_of: dict[NodeType, list[Tensor]] = {}
            frontier = {}
            for t, parts in cands.items():
                local, new_keys, new_local = sets[t].add(torch.cat(parts))
                local_of[t] = list(torch.split(local, [p.numel() for p in parts]))
                chunks[t].append(new_keys)
                num_nodes_out[t][hop + 1] = new_keys.numel()
                if new_keys.numel() > 0:
                    frontier[t] = (new_keys, new_local)
            sampled = {et: (col, eid) for et, col, eid in pending}
            for et in self.edge_types:
                if et not in sampled:
                    num_edges_out[et].append(0)
                    continue
                col, eid = sampled[et]
                rows[et].append(local_of[et[0]].pop(0))
                cols[et].append(col)
                edges[et].append(eid)
                num_edges_out[et].append(col.numel())

        return self._collate(chunks, rows, cols, edges, num_nodes_out, num_edges_out)

    def _collate(
        self,
        chunks: dict[NodeType, list[Tensor]],
        rows: dict[EdgeType, list[Tensor]],
        cols: dict[EdgeType, list[Tensor]],
        edges: dict[EdgeType, list[Tensor]],
        num_nodes_out: dict[NodeType, list[int]],
        num_edges_out: dict[EdgeType, list[int]],
    ) -> HeteroSamplerOutput:
        """Concatenates per-hop pieces; splits disjoint keys into node ids and batch ids."""
        empty = torch.empty(0, dtype=torch.long, device=self.device)
        node: dict[NodeType, Tensor] = {}
        batch: dict[NodeType, Tensor] | None = {} if self.disjoint else None
        for t in self.node_types:
            keys = torch.cat(chunks[t]) if chunks[t] else empty
            node[t] = keys % self.num_nodes[t] if self.disjoint else keys
            if batch is not None:
                batch[t] = keys // self.num_nodes[t]

        def cat(parts: list[Tensor]) -> Tensor:
            return torch.cat(parts) if parts else empty

        return HeteroSamplerOutput(
            node=node,
            row={et: cat(rows[et]) for et in self.edge_types},
            col={et: cat(cols[et]) for et in self.edge_types},
            edge={et: cat(edges[et]) for et in self.edge_types},
            batch=batch,
            num_sampled_nodes=num_nodes_out,
            num_sampled_edges=num_edges_out,
        )
