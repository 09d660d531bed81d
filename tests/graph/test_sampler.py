"""Tests of ``graph.sampling.sampler.HeteroNeighborSampler``, mostly through PyG's own ``NodeLoader``.

Graph-level tests run on CPU and, when a GPU is present, on CUDA (the ``gpu`` variant).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.loader import NodeLoader
from torch_geometric.nn import HeteroConv, SAGEConv
from torch_geometric.sampler import NodeSamplerInput
from torch_geometric.typing import EdgeType
from torch_geometric.utils import trim_to_layer

from graph.sampling.ops import sample_segments
from graph.sampling.sampler import HeteroNeighborSampler

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
        ],
    ),
]
BUYS: EdgeType = ("user", "buys", "merchant")
SOLD: EdgeType = ("merchant", "sold_to", "user")
PAYS: EdgeType = ("user", "pays", "user")


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


def tiny_graph() -> HeteroData:
    """4 users, 3 merchants; small enough to check by eye.

    sold_to (merchant→user): m0→u0, m1→u0, m2→u0, m0→u1
    buys    (user→merchant): u0→m0, u0→m1, u0→m2, u1→m0, u3→m2
    pays    (user→user):     u2→u1
    """
    data = HeteroData()
    data["user"].num_nodes = 4
    data["merchant"].num_nodes = 3
    data[SOLD].edge_index = torch.tensor([[0, 1, 2, 0], [0, 0, 0, 1]])
    data[BUYS].edge_index = torch.tensor([[0, 0, 0, 1, 3], [0, 1, 2, 0, 2]])
    data[PAYS].edge_index = torch.tensor([[2], [1]])
    return data


def random_graph(seed: int = 0, with_time: bool = False) -> HeteroData:
    """~2k nodes / ~25k edges over user, merchant, device; skewed so some merchants are hubs."""
    g = torch.Generator().manual_seed(seed)
    n = {"user": 1000, "merchant": 500, "device": 500}
    data = HeteroData()
    for t, num in n.items():
        data[t].num_nodes = num
        data[t].x = torch.randn(num, 4, generator=g)
    users = torch.randint(0, n["user"], (8000,), generator=g)
    merchants = (torch.rand(8000, generator=g) ** 3 * n["merchant"]).long()  # hubs at low ids
    data[BUYS].edge_index = torch.stack([users, merchants])
    data[SOLD].edge_index = torch.stack([merchants, users])
    u2 = torch.randint(0, n["user"], (3000,), generator=g)
    dev = torch.randint(0, n["device"], (3000,), generator=g)
    data["user", "uses", "device"].edge_index = torch.stack([u2, dev])
    data["device", "used_by", "user"].edge_index = torch.stack([dev, u2])
    data[PAYS].edge_index = torch.randint(0, n["user"], (2, 3000), generator=g)
    if with_time:
        for et in data.edge_types:
            data[et].time = torch.randint(0, 1000, (data[et].num_edges,), generator=g)
    return data


def batches(
    data: HeteroData, sampler: HeteroNeighborSampler, seeds: Tensor, **kwargs: object
) -> Iterator[HeteroData]:
    """Batches of ``NodeLoader`` over user seeds with our sampler."""
    yield from NodeLoader(
        data, node_sampler=sampler, input_nodes=("user", seeds), batch_size=64, **kwargs
    )


def in_degree(data: HeteroData, et: EdgeType) -> Tensor:
    return torch.bincount(data[et].edge_index[1].cpu(), minlength=data[et[2]].num_nodes)


def test_tiny_graph_full_fanout_by_eye() -> None:
    data = tiny_graph()
    sampler = HeteroNeighborSampler(data, [-1, -1], seed=0)
    out = sampler.sample_from_nodes(NodeSamplerInput(None, torch.tensor([1]), input_type="user"))
    # Hop 1 from u1: m0 (sold_to) and u2 (pays). Hop 2 from m0: u0, u1 (buys); u2 has none.
    assert out.node["user"][:1].tolist() == [1]
    assert sorted(out.node["user"].tolist()) == [0, 1, 2]
    assert out.node["merchant"].tolist() == [0]
    assert out.num_sampled_nodes == {"user": [1, 1, 1], "merchant": [0, 1, 0]}
    assert out.num_sampled_edges == {SOLD: [1, 0], BUYS: [0, 2], PAYS: [1, 0]}
    glob = out.global_row, out.global_col
    assert set(zip(glob[0][BUYS].tolist(), glob[1][BUYS].tolist(), strict=True)) == {
        (0, 0),
        (1, 0),
    }
    assert out.edge[BUYS].sort().values.tolist() == [0, 3]
    assert out.edge[SOLD].tolist() == [3]


def test_tiny_graph_fanout_caps_the_hub() -> None:
    data = tiny_graph()
    sampler = HeteroNeighborSampler(data, {SOLD: [2], BUYS: [2], PAYS: [2]}, seed=0)
    out = sampler.sample_from_nodes(NodeSamplerInput(None, torch.tensor([0]), input_type="user"))
    # u0 has 3 sellers; 2 of them are drawn.
    assert out.num_sampled_edges[SOLD] == [2]
    assert len(set(out.global_row[SOLD].tolist())) == 2
    assert set(out.global_col[SOLD].tolist()) == {0}


def test_node_loader_batch_layout(device: torch.device) -> None:
    data = random_graph().to(device)
    sampler = HeteroNeighborSampler(data, [10, 5], seed=1)
    seeds = torch.arange(0, 1000, 7)
    seen = []
    for batch in batches(data, sampler, seeds):
        size = batch["user"].batch_size
        assert batch["user"].n_id.device.type == device.type
        seen.append(batch["user"].n_id[:size].cpu())
        assert torch.equal(batch["user"].x[:size], data["user"].x[batch["user"].n_id[:size]])
        assert batch["user"].input_id.numel() == size
    assert torch.equal(torch.cat(seen), seeds)


def test_sampled_edges_exist_with_their_ids(device: torch.device) -> None:
    data = random_graph().to(device)
    sampler = HeteroNeighborSampler(data, [10, 5], seed=2)
    for batch in batches(data, sampler, torch.arange(300)):
        for et in data.edge_types:
            src_local, dst_local = batch[et].edge_index
            src = batch[et[0]].n_id[src_local]
            dst = batch[et[2]].n_id[dst_local]
            orig = data[et].edge_index[:, batch[et].e_id]
            assert torch.equal(orig, torch.stack([src, dst]))


def test_fanouts_respected_and_small_degrees_complete(device: torch.device) -> None:
    data = random_graph().to(device)
    fanout = [8, 3]
    sampler = HeteroNeighborSampler(data, fanout, seed=3)
    for batch in batches(data, sampler, torch.arange(256)):
        for et in data.edge_types:
            deg = in_degree(data, et)
            dst_t = et[2]
            hop_nodes = batch[dst_t].num_sampled_nodes
            hop_edges = batch[et].num_sampled_edges
            col = batch[et].edge_index[1].cpu()
            n_id = batch[dst_t].n_id.cpu()
            for hop, k in enumerate(fanout):
                lo, hi = sum(hop_nodes[:hop]), sum(hop_nodes[: hop + 1])
                e_lo, e_hi = sum(hop_edges[:hop]), sum(hop_edges[: hop + 1])
                got = torch.bincount(col[e_lo:e_hi], minlength=n_id.numel())
                # Only this hop's frontier receives this hop's edges, min(deg, k) each.
                assert got[:lo].sum() == 0 and got[hi:].sum() == 0
                assert torch.equal(got[lo:hi], deg[n_id[lo:hi]].clamp(max=k))


def test_no_duplicate_nodes(device: torch.device) -> None:
    data = random_graph().to(device)
    sampler = HeteroNeighborSampler(data, [10, 5], seed=4)
    for batch in batches(data, sampler, torch.randperm(1000)[:200]):
        for t in data.node_types:
            n_id = batch[t].n_id
            assert n_id.unique().numel() == n_id.numel()


def test_same_seed_same_batch_other_seed_differs(device: torch.device) -> None:
    data = random_graph().to(device)

    def first_batch(seed: int) -> HeteroData:
        return next(batches(data, HeteroNeighborSampler(data, [5, 3], seed=seed), torch.arange(64)))

    a, b, c = first_batch(7), first_batch(7), first_batch(8)
    for t in data.node_types:
        assert torch.equal(a[t].n_id, b[t].n_id)
    for et in data.edge_types:
        assert torch.equal(a[et].edge_index, b[et].edge_index)
        assert torch.equal(a[et].e_id, b[et].e_id)
    assert any(not torch.equal(a[t].n_id, c[t].n_id) for t in data.node_types)


def test_edge_time_respected(device: torch.device) -> None:
    data = random_graph(with_time=True).to(device)
    sampler = HeteroNeighborSampler(data, [10, 5], time_attr="time", seed=5)
    assert sampler.disjoint
    seeds = torch.arange(200)
    seed_time = torch.randint(0, 1000, (200,), generator=torch.Generator().manual_seed(0))
    total = 0
    for batch in batches(data, sampler, seeds, input_time=seed_time):
        cutoff = batch["user"].seed_time.to(device)
        for et in data.edge_types:
            sub_batch = batch[et[2]].batch[batch[et].edge_index[1]]
            edge_time = data[et].time[batch[et].e_id]
            assert bool((edge_time <= cutoff[sub_batch]).all())
            total += edge_time.numel()
        # Disjoint: (subgraph, node) pairs are unique per type.
        for t in data.node_types:
            pairs = batch[t].batch * data[t].num_nodes + batch[t].n_id
            assert pairs.unique().numel() == pairs.numel()
    assert total > 1000


def test_edge_time_takes_every_admissible_edge() -> None:
    data = random_graph(with_time=True)
    sampler = HeteroNeighborSampler(data, [-1], time_attr="time", seed=5)
    seeds, seed_time = torch.arange(50), torch.full((50,), 500)
    out = sampler.sample_from_nodes(NodeSamplerInput(None, seeds, seed_time, "user"))
    for et in (SOLD, PAYS):
        dst = data[et].edge_index[1]
        ok = (data[et].time <= 500) & (dst < 50)
        assert out.num_sampled_edges[et] == [int(ok.sum())]
        assert torch.equal(out.edge[et].sort().values, ok.nonzero().view(-1))


def test_node_time_respected() -> None:
    data = random_graph()
    for t in data.node_types:
        data[t].time = torch.randint(0, 100, (data[t].num_nodes,))
    sampler = HeteroNeighborSampler(data, [10, 5], time_attr="time", seed=6)
    for batch in batches(data, sampler, torch.arange(128)):  # seed time = the seed's own time
        seed_t = data["user"].time[batch["user"].n_id[: batch["user"].batch_size]]
        assert torch.equal(batch["user"].seed_time, seed_t)
        for et in data.edge_types:
            src_local, dst_local = batch[et].edge_index
            src_time = data[et[0]].time[batch[et[0]].n_id[src_local]]
            assert bool((src_time <= seed_t[batch[et[2]].batch[dst_local]]).all())


def test_heteroconv_matches_full_graph_when_fanout_covers_degrees(device: torch.device) -> None:
    torch.manual_seed(0)
    data = random_graph().to(device)
    max_deg = max(int(in_degree(data, et).max()) for et in data.edge_types)

    def layer(dim_in: int) -> HeteroConv:
        return HeteroConv({et: SAGEConv((dim_in, dim_in), 8) for et in data.edge_types})

    conv1, conv2 = layer(4).to(device), layer(8).to(device)

    def forward(x: dict[str, Tensor], edge_index: dict[EdgeType, Tensor]) -> Tensor:
        h = {t: v.relu() for t, v in conv1(x, edge_index).items()}
        return conv2({**{t: torch.zeros_like(v) for t, v in h.items()}, **h}, edge_index)["user"]

    full = forward(data.x_dict, data.edge_index_dict)
    for fanout in ([-1, -1], [max_deg + 1, max_deg + 1]):
        sampler = HeteroNeighborSampler(data, fanout, seed=0)
        for batch in batches(data, sampler, torch.arange(0, 1000, 3)):
            size = batch["user"].batch_size
            out = forward(batch.x_dict, batch.edge_index_dict)[:size]
            expected = full[batch["user"].n_id[:size]]
            torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_trim_to_layer_matches_untrimmed() -> None:
    # Per-hop counts and hop-ordered edges are what PyG's trim_to_layer relies on.
    torch.manual_seed(0)
    data = random_graph()
    convs = [HeteroConv({et: SAGEConv((d, d), 8) for et in data.edge_types}) for d in (4, 8)]

    def forward(batch: HeteroData, trim: bool) -> Tensor:
        x, edge_index = dict(batch.x_dict), dict(batch.edge_index_dict)
        for i, conv in enumerate(convs):
            if trim:
                x, edge_index, _ = trim_to_layer(
                    i, batch.num_sampled_nodes_dict, batch.num_sampled_edges_dict, x, edge_index
                )
            h = conv(x, edge_index)
            x = {t: h.get(t, torch.zeros(v.size(0), 8)).relu() for t, v in x.items()}
        return x["user"][: batch["user"].batch_size]

    batch = next(batches(data, HeteroNeighborSampler(data, [10, 5], seed=0), torch.arange(64)))
    torch.testing.assert_close(forward(batch, False), forward(batch, True))


def test_duplicate_seeds_keep_their_slots() -> None:
    data = tiny_graph()
    sampler = HeteroNeighborSampler(data, [-1], seed=0)
    out = sampler.sample_from_nodes(NodeSamplerInput(None, torch.tensor([1, 1]), input_type="user"))
    assert out.node["user"][:2].tolist() == [1, 1]
    # Each slot gets its own copy of u1's in-edges (m0 and u2).
    assert sorted(out.col[SOLD].tolist()) == [0, 1]
    assert sorted(out.col[PAYS].tolist()) == [0, 1]
    assert out.node["user"].tolist() == [1, 1, 2]


def test_replace_draws_exactly_k() -> None:
    data = tiny_graph()
    sampler = HeteroNeighborSampler(data, [5], replace=True, seed=0)
    out = sampler.sample_from_nodes(
        NodeSamplerInput(None, torch.tensor([0, 1, 3]), input_type="user")
    )
    # u0 and u1 have sellers, u3 none: 5 draws each for u0, u1.
    assert torch.bincount(out.col[SOLD], minlength=3).tolist() == [5, 5, 0]


@pytest.mark.parametrize("hub_factor", [0.0, 1e9], ids=["floyd", "sort"])
def test_without_replacement_is_uniform(hub_factor: float) -> None:
    # 20k segments of degree 5, k = 2: each of the 10 pairs should appear ~2000 times.
    n, deg, k = 20_000, 5, 2
    start = torch.arange(n) * deg
    gen = torch.Generator().manual_seed(0)
    seg, slot = sample_segments(start, torch.full((n,), deg), k, False, gen, hub_factor)
    order = torch.argsort(seg * deg + slot - start[seg])
    seg, pos = seg[order], (slot - start[seg])[order]
    assert torch.equal(torch.bincount(seg, minlength=n), torch.full((n,), k))
    pair = pos.view(n, k)
    assert bool((pair[:, 0] != pair[:, 1]).all())
    counts = torch.bincount(pair[:, 0] * deg + pair[:, 1], minlength=deg * deg).double()
    observed = counts[counts > 0]
    assert observed.numel() == 10
    chi2 = float(((observed - n / 10) ** 2 / (n / 10)).sum())
    assert chi2 < 27.9  # 9 degrees of freedom, p = 0.001
