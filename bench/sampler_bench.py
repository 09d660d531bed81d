"""Throughput of ``graph.sampling.sampler.HeteroNeighborSampler`` against PyG's ``NeighborLoader``.

Measures seeds/s for 2-hop sampling (fanouts ``[10, 5]``, batches of 1024 user seeds), all in
one process and on the same graph, seeds and batches:

* PyG's ``NeighborLoader`` (``torch-sparse`` or ``pyg-lib`` kernels) and its sampler alone,
  only where one of those is importable (``make bench-env`` builds them into ``.venv-bench``)
  and only on CPU (their kernels are CPU-only);
* ours through PyG's ``NodeLoader``: the same ``HeteroData`` batches as ``NeighborLoader``
  (features gathered by the same ``filter_fn``), and ``sample_from_nodes`` alone;
* a naive per-node Python sampler (``random.sample`` per frontier node), on a few batches.

Graphs: a random heterogeneous marketplace (users, merchants, devices; ~1M edges by default,
hub-skewed merchants) and, with ``--marketplace-users N``, the generated marketplace
(``graph.synth.marketplace``) of ``N`` users, read back through ``graph.bundle``/``graph.export``, with
random 16-d node features (the features are only gathered, so their values do not matter).

Each contender's first ``--warmup`` batches are run and not timed; then ``--batches`` batches
are timed. Contenders take turns for ``--rounds`` rounds, so load from other processes hits
them alike; the table reports the best round and the spread (worst/best). ``vs PyG`` is
seeds/s over PyG on the same graph (loader rows over ``NeighborLoader``, sampler-only rows
over PyG's ``NeighborSampler`` alone); ``vs CPU`` (GPU rows) is over the same of ours on CPU in
the same run.

Run::

    .venv-bench/bin/python bench/sampler_bench.py                      # CPU, with NeighborLoader
    .venv-bench/bin/python bench/sampler_bench.py --marketplace-users 50000
    python bench/sampler_bench.py --device cpu,cuda                    # GPU machine
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch_geometric
import torch_geometric.typing
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.loader import NeighborLoader, NodeLoader
from torch_geometric.sampler import BaseSampler, NodeSamplerInput
from torch_geometric.typing import EdgeType

from graph.sampling.sampler import HeteroNeighborSampler

SEED_TYPE = "user"


def pyg_backend() -> str | None:
    """The kernels PyG's ``NeighborSampler`` would use here, or ``None`` if it cannot run."""
    if torch_geometric.typing.WITH_PYG_LIB:
        return "pyg-lib"
    if torch_geometric.typing.WITH_TORCH_SPARSE:
        import torch_sparse

        return f"torch-sparse {torch_sparse.__version__}"
    return None


def build_random_graph(args: argparse.Namespace) -> HeteroData:
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


def build_marketplace(users: int, seed: int) -> HeteroData:
    """The generated marketplace's graph (all relations and their reverses), 16-d features.

    Shapes:
        data[t].x: ``[num_nodes_t, 16]``; edge_index: ``[2, num_edges_et]``.
    """
    from graph.bundle import read_bundle
    from graph.export import export_from_bundle
    from graph.synth.marketplace import GeneratorConfig, generate_marketplace

    with tempfile.TemporaryDirectory() as tmp:
        generate_marketplace(GeneratorConfig(n_users=users, seed=seed), Path(tmp))
        data = export_from_bundle(read_bundle(Path(tmp))).data
    g = torch.Generator().manual_seed(seed)
    for t in data.node_types:
        data[t].x = torch.randn(data[t].num_nodes, 16, generator=g)
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
        nodes: dict[str, dict[int, int]] = {SEED_TYPE: {s: i for i, s in enumerate(seeds)}}
        frontier: dict[str, list[int]] = {SEED_TYPE: seeds}
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


@dataclass
class Row:
    """One contender on one graph and device: seconds per batch of every round."""

    graph: str
    device: str
    name: str
    batches: int
    kind: str  # "loader" (HeteroData batches with features) or "sample" (sampler output only)
    seconds: list[float] = field(default_factory=list)
    nodes: float = 0.0
    edges: float = 0.0
    note: str = ""

    @property
    def best(self) -> float:
        """Fastest round's seconds per batch."""
        return min(self.seconds)

    @property
    def spread(self) -> float:
        """Slowest round over fastest round."""
        return max(self.seconds) / min(self.seconds)


def sync(device: str) -> None:
    """Waits for queued kernels, so wall-clock times cover the work."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


Runner = Callable[[], tuple[float, int, float, float]]


def time_loader(loader: Iterable[HeteroData], warmup: int, device: str) -> Runner:
    """A round runner for a loader: skips ``warmup`` batches, times the rest.

    Returns:
        ``run() -> (seconds, batches, nodes per batch, edges per batch)``.
    """

    def run() -> tuple[float, int, float, float]:
        it = iter(loader)
        for _ in range(warmup):
            next(it)
        sync(device)
        start = time.perf_counter()
        count = nodes = edges = 0
        for batch in it:
            count += 1
            nodes += sum(batch[t].num_nodes for t in batch.node_types)
            edges += sum(batch[et].edge_index.size(1) for et in batch.edge_types)
        sync(device)
        return time.perf_counter() - start, count, nodes / count, edges / count

    return run


def time_sampler(sampler: BaseSampler, batches: list[Tensor], warmup: int, device: str) -> Runner:
    """A round runner for ``sampler.sample_from_nodes`` alone, on the loaders' batches."""

    def run() -> tuple[float, int, float, float]:
        for seeds in batches[:warmup]:
            sampler.sample_from_nodes(NodeSamplerInput(None, seeds, input_type=SEED_TYPE))
        sync(device)
        start = time.perf_counter()
        for seeds in batches[warmup:]:
            sampler.sample_from_nodes(NodeSamplerInput(None, seeds, input_type=SEED_TYPE))
        sync(device)
        return time.perf_counter() - start, len(batches) - warmup, 0.0, 0.0

    return run


def bench_graph(
    label: str, cpu_data: HeteroData, devices: list[str], args: argparse.Namespace
) -> list[Row]:
    """Runs every contender on one graph, in ``args.rounds`` interleaved rounds."""
    num_edges = sum(cpu_data[et].edge_index.size(1) for et in cpu_data.edge_types)
    num_nodes = sum(cpu_data[t].num_nodes for t in cpu_data.node_types)
    print(
        f"\n[{label}] {num_nodes:,} nodes, {num_edges:,} edges, "
        f"{len(cpu_data.node_types)} node / {len(cpu_data.edge_types)} edge types"
    )
    bs, warmup = args.batch_size, args.warmup
    n_users = cpu_data[SEED_TYPE].num_nodes
    total = warmup + args.batches
    if total * bs > n_users:
        raise SystemExit(f"{label}: {total} batches of {bs} need more than {n_users:,} users")
    perm = torch.randperm(n_users, generator=torch.Generator().manual_seed(args.seed))
    seeds_all = perm[: total * bs]
    batches = list(seeds_all.split(bs))

    runners: list[tuple[Row, Runner | None]] = []
    backend = pyg_backend()
    for device in devices:
        t0 = time.perf_counter()
        # ``HeteroData.to`` moves in place: the CPU graph must stay for the other contenders.
        data = cpu_data if device == "cpu" else cpu_data.clone().to(device)
        sync(device)
        t1 = time.perf_counter()
        ours = HeteroNeighborSampler(data, args.fanout, seed=args.seed)
        sync(device)
        t2 = time.perf_counter()
        print(f"  {device}: to device {t1 - t0:.2f}s, our CSC precompute {t2 - t1:.2f}s")

        if device == "cpu":
            if backend is None:
                runners.append(
                    (
                        Row(
                            label,
                            device,
                            "PyG NeighborLoader",
                            0,
                            "loader",
                            note="needs torch-sparse",
                        ),
                        None,
                    )
                )
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "without pyg-lib is deprecated"
                    t3 = time.perf_counter()
                    pyg = NeighborLoader(
                        data,
                        num_neighbors=args.fanout,
                        input_nodes=(SEED_TYPE, seeds_all),
                        batch_size=bs,
                    )
                    print(f"  {device}: PyG CSC precompute {time.perf_counter() - t3:.2f}s")
                name = f"PyG NeighborLoader ({backend.split()[0]})"
                runners.append(
                    (
                        Row(label, device, name, args.batches, "loader"),
                        time_loader(pyg, warmup, device),
                    )
                )
                runners.append(
                    (
                        Row(
                            label,
                            device,
                            "PyG NeighborSampler: sample only",
                            args.batches,
                            "sample",
                        ),
                        time_sampler(pyg.node_sampler, batches, warmup, device),
                    )
                )

        loader = NodeLoader(
            data, node_sampler=ours, input_nodes=(SEED_TYPE, seeds_all), batch_size=bs
        )
        runners.append(
            (
                Row(label, device, "ours: NodeLoader", args.batches, "loader"),
                time_loader(loader, warmup, device),
            )
        )
        runners.append(
            (
                Row(label, device, "ours: sample_from_nodes only", args.batches, "sample"),
                time_sampler(ours, batches, warmup, device),
            )
        )

    for r in range(args.rounds):
        for row, run in runners:
            if run is None:
                continue
            seconds, count, nodes, edges = run()
            row.seconds.append(seconds / count)
            row.nodes, row.edges = nodes or row.nodes, edges or row.edges
        print(f"  round {r + 1}/{args.rounds} done")

    rows = [row for row, _ in runners]
    if args.naive_batches > 0:
        t0 = time.perf_counter()
        naive = NaiveSampler(cpu_data, args.fanout, args.seed)
        build = time.perf_counter() - t0
        row = Row(label, "cpu", "naive per-node Python", args.naive_batches, "sample")
        start = time.perf_counter()
        for seeds in batches[: args.naive_batches]:
            naive.sample(seeds.tolist())
        row.seconds.append((time.perf_counter() - start) / args.naive_batches)
        row.note = f"lists built in {build:.1f}s; 1 round"
        rows.append(row)
    return rows


def print_table(rows: list[Row], batch_size: int) -> None:
    """One table over all graphs and devices, with ratios to PyG and to our CPU loader."""
    pyg = {(r.graph, r.kind): r for r in rows if r.name.startswith("PyG") and r.seconds}
    ours_cpu = {
        (r.graph, r.kind): r for r in rows if r.name.startswith("ours") and r.device == "cpu"
    }
    header = (
        f"{'graph':14} {'device':6} {'sampler':34} {'ms/batch':>9} {'seeds/s':>9} "
        f"{'spread':>6} {'nodes/b':>8} {'edges/b':>8} {'vs PyG':>7} {'vs CPU':>7}  note"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        if not r.seconds:
            blank = f"{'-':>9} {'-':>9} {'':>6} {'':>8} {'':>8} {'':>7} {'':>7}"
            print(f"{r.graph:14} {r.device:6} {r.name:34} {blank}  {r.note}")
            continue
        rate = batch_size / r.best
        ref = pyg.get((r.graph, r.kind))
        vs_pyg = f"{ref.best / r.best:.2f}x" if ref else "-"
        cpu = ours_cpu.get((r.graph, r.kind))
        vs_cpu = f"{cpu.best / r.best:.2f}x" if cpu and r.device != "cpu" and cpu.seconds else ""
        nodes = f"{r.nodes:,.0f}" if r.nodes else ""
        edges = f"{r.edges:,.0f}" if r.edges else ""
        spread = f"{r.spread:.2f}" if len(r.seconds) > 1 else ""
        print(
            f"{r.graph:14} {r.device:6} {r.name:34} {r.best * 1e3:>9.1f} {rate:>9,.0f} "
            f"{spread:>6} {nodes:>8} {edges:>8} {vs_pyg:>7} {vs_cpu:>7}  {r.note}"
        )


def main() -> None:
    """Builds the graphs, runs each sampler, prints one table of seeds/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--merchants", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument(
        "--marketplace-users", type=int, default=0, help="also bench a generated marketplace"
    )
    parser.add_argument("--no-random", action="store_true", help="skip the random graph")
    parser.add_argument("--fanout", type=int, nargs="+", default=[10, 5])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--naive-batches", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="comma-separated, e.g. cpu,cuda")
    # One intra-op thread by default: on a small shared machine OpenMP workers spin against
    # other processes and a 2-thread run measured ~10x slower than a 1-thread one.
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    devices = []
    for device in args.device.split(","):
        if device.startswith("cuda") and not torch.cuda.is_available():
            print(f"skipping device {device}: CUDA is not available")
            continue
        devices.append(device)
    if not devices:
        raise SystemExit("no usable device")
    gpu = f", GPU {torch.cuda.get_device_name()}" if any(d != "cpu" for d in devices) else ""
    print(
        f"torch {torch.__version__}, torch-geometric {torch_geometric.__version__}, "
        f"PyG sampler kernels: {pyg_backend() or 'none'}; {os.cpu_count()} CPU cores, "
        f"{torch.get_num_threads()} torch threads{gpu}; fanout {args.fanout}, batch "
        f"{args.batch_size}, {args.warmup} warm-up + {args.batches} timed batches x "
        f"{args.rounds} rounds"
    )

    rows: list[Row] = []
    if not args.no_random:
        graph = build_random_graph(args)
        rows += bench_graph(f"random-{args.edges / 1e6:g}M", graph, devices, args)
    if args.marketplace_users:
        t0 = time.perf_counter()
        try:
            graph = build_marketplace(args.marketplace_users, args.seed)
        except ImportError as exc:  # graph.export needs the neo4j driver, even without a server
            print(f"\nskipping the marketplace: {exc}")
        else:
            print(f"\ngenerated the marketplace in {time.perf_counter() - t0:.1f}s")
            rows += bench_graph(f"market-{args.marketplace_users // 1000}k", graph, devices, args)
    print_table(rows, args.batch_size)
    print(
        "\nms/batch and seeds/s: best round; spread: slowest/fastest round; nodes/b, edges/b: "
        "per sampled batch; vs PyG: over PyG's loader (loader rows) or PyG's sampler alone "
        "(sampler rows) on the same graph; vs CPU: over the same of ours on CPU."
    )


if __name__ == "__main__":
    main()
