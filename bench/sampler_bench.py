"""Throughput of ``graph.sampler.HeteroNeighborSampler`` against PyG's and a naive sampler.

Builds a random heterogeneous marketplace graph (users, merchants, devices; ~1M edges by
default), then measures seeds/s for 2-hop sampling with fanouts ``[10, 5]`` and batches of
1024 seeds:

* ours, ``sample_from_nodes`` alone and through PyG's ``NodeLoader`` (which adds feature
  gathering into a ``HeteroData`` batch);
* PyG's ``NeighborLoader``, only if ``pyg-lib`` or ``torch-sparse`` is importable;
* a naive per-node Python sampler (``random.sample`` per frontier node), on a few batches,
  which is what a straightforward implementation without vectorisation costs.

Run: ``python bench/sampler_bench.py [--edges 1000000 --batches 20 --device cpu]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import time
from collections.abc import Callable

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.loader import NeighborLoader, NodeLoader
from torch_geometric.sampler import NodeSamplerInput
from torch_geometric.typing import EdgeType

from graph.sampler import HeteroNeighborSampler


def build_graph(args: argparse.Namespace) -> HeteroData:
    """Random graph: buys/sold_to (60% of edges), uses/used_by (30%), pays (10%).

    Merchant popularity is skewed (a few hub merchants), as in a real marketplace.

    Shapes:
        data[t].x: ``[num_nodes_t, 16]``; edge_index: ``[2, num_edges_et]``.
    """
    g = torch.Generator().manual_seed(args.seed)
    n = {"user": args.users, "merchant": args.merchants, "device": args.devices}
    data = HeteroData()
    for t, num in n.items():
        data[t].x = torch.randn(num, 16, generator=g)
    n_buy, n_use = int(args.edges * 0.3), int(args.edges * 0.15)
    n_pay = args.edges - 2 * n_buy - 2 * n_use
    users = torch.randint(0, n["user"], (n_buy,), generator=g)
    merchants = (torch.rand(n_buy, generator=g) ** 2 * n["merchant"]).long()
    data["user", "buys", "merchant"].edge_index = torch.stack([users, merchants])
    data["merchant", "sold_to", "user"].edge_index = torch.stack([merchants, users])
    u2 = torch.randint(0, n["user"], (n_use,), generator=g)
    dev = torch.randint(0, n["device"], (n_use,), generator=g)
    data["user", "uses", "device"].edge_index = torch.stack([u2, dev])
    data["device", "used_by", "user"].edge_index = torch.stack([dev, u2])
    data["user", "pays", "user"].edge_index = torch.randint(0, n["user"], (2, n_pay), generator=g)
    return data


class NaiveSampler:
    """Per-node Python sampler: adjacency lists, ``random.sample`` and dicts for deduplication."""

    def __init__(self, data: HeteroData, fanout: list[int], seed: int) -> None:
        """Builds Python in-neighbour lists (CSC) per edge type; not part of the timing."""
        self.fanout = fanout
        self.rng = random.Random(seed)
        self.adj: dict[EdgeType, tuple[list[int], list[int]]] = {}
        for et in data.edge_types:
            src, dst = data[et].edge_index
            order = torch.argsort(dst, stable=True)
            counts = torch.bincount(dst, minlength=data[et[2]].num_nodes)
            colptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
            self.adj[et] = (colptr.tolist(), src[order].tolist())

    def sample(self, seeds: list[int]) -> dict[str, list[int]]:
        """Two-hop directional sampling from user seeds, one node at a time."""
        nodes: dict[str, dict[int, int]] = {"user": {s: i for i, s in enumerate(seeds)}}
        frontier: dict[str, list[int]] = {"user": seeds}
        edges: dict[EdgeType, list[tuple[int, int]]] = {et: [] for et in self.adj}
        for k in self.fanout:
            new: dict[str, list[int]] = {}
            for et, (colptr, row) in self.adj.items():
                for v in frontier.get(et[2], []):
                    neigh = row[colptr[v] : colptr[v + 1]]
                    picked = neigh if len(neigh) <= k else self.rng.sample(neigh, k)
                    seen = nodes.setdefault(et[0], {})
                    for u in picked:
                        if u not in seen:
                            seen[u] = len(seen)
                            new.setdefault(et[0], []).append(u)
                        edges[et].append((seen[u], nodes[et[2]][v]))
            frontier = new
        return {t: list(m) for t, m in nodes.items()}


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Seconds per call of ``fn`` over ``repeat`` calls, after one warm-up call."""
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    """Builds the graph, runs each sampler, prints a table of seeds/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--merchants", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--fanout", type=int, nargs="+", default=[10, 5])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--naive-batches", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    # One intra-op thread by default: on a small shared machine OpenMP workers spin against
    # other processes and a 2-thread run measured ~10x slower than a 1-thread one.
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    data = build_graph(args).to(args.device)
    t1 = time.perf_counter()
    sampler = HeteroNeighborSampler(data, args.fanout, seed=args.seed)
    t2 = time.perf_counter()
    print(
        f"graph: {sum(data[t].num_nodes for t in data.node_types):,} nodes, "
        f"{data.num_edges:,} edges, {len(data.edge_types)} edge types on {args.device}; "
        f"built in {t1 - t0:.2f}s, CSC precompute {t2 - t1:.2f}s; torch threads "
        f"{torch.get_num_threads()}; fanout {args.fanout}, batch {args.batch_size}"
    )

    g = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(args.users, generator=g)
    bs = args.batch_size
    batches: list[Tensor] = [perm[i * bs : (i + 1) * bs] for i in range(args.batches)]
    rows: list[tuple[str, int, float | None, str]] = []

    it = iter(range(10**9))

    def ours_sample() -> None:
        seeds = batches[next(it) % len(batches)]
        sampler.sample_from_nodes(NodeSamplerInput(None, seeds, input_type="user"))

    sec = timed(ours_sample, args.batches)
    rows.append(("ours: sample_from_nodes", args.batches, sec, ""))

    seeds_all = torch.cat(batches)
    loader = NodeLoader(data, node_sampler=sampler, input_nodes=("user", seeds_all), batch_size=bs)
    start = time.perf_counter()
    nodes_per_batch = 0
    for batch in loader:
        nodes_per_batch += sum(batch[t].num_nodes for t in batch.node_types)
    sec_loader = (time.perf_counter() - start) / args.batches
    rows.append(
        (
            "ours: NodeLoader (+features)",
            args.batches,
            sec_loader,
            f"{nodes_per_batch // args.batches:,} nodes/batch",
        )
    )

    if importlib.util.find_spec("pyg_lib") or importlib.util.find_spec("torch_sparse"):
        pyg = NeighborLoader(
            data, num_neighbors=args.fanout, input_nodes=("user", seeds_all), batch_size=bs
        )
        start = time.perf_counter()
        for _ in pyg:
            pass
        rows.append(
            ("PyG NeighborLoader", args.batches, (time.perf_counter() - start) / args.batches, "")
        )
    else:
        rows.append(("PyG NeighborLoader", 0, None, "unavailable (needs torch-sparse/pyg-lib)"))

    cpu_data = data.to("cpu")
    start = time.perf_counter()
    naive = NaiveSampler(cpu_data, args.fanout, args.seed)
    build = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(args.naive_batches):
        naive.sample(batches[i].tolist())
    sec_naive = (time.perf_counter() - start) / args.naive_batches
    rows.append(
        ("naive per-node Python", args.naive_batches, sec_naive, f"lists built in {build:.1f}s")
    )

    print(f"\n{'sampler':32} {'batches':>7} {'ms/batch':>9} {'seeds/s':>10}  note")
    for name, n, s, note in rows:
        if s is None:
            print(f"{name:32} {'-':>7} {'-':>9} {'-':>10}  {note}")
        else:
            print(f"{name:32} {n:>7} {s * 1e3:>9.1f} {bs / s:>10,.0f}  {note}")
    print(f"\nspeed-up of sample_from_nodes over the naive sampler: {sec_naive / sec:.1f}x")


if __name__ == "__main__":
    main()
