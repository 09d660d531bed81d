"""Rings from 10M candidate evidence links: graph.rings against networkx, same steps, one run.

    PYTHONPATH=$PWD .venv/bin/python bench/rings_bench.py --links 10000000

The links are synthetic (a real linkage of that size needs a marketplace of millions of
accounts): ``--users`` candidate accounts with a risk each, planted rings of 5-30 risky
accounts whose members link densely, and random links everywhere else (some between risky
accounts, as camouflage and coincidence make them). Both implementations run the same steps:

1. keep each account's ``top_links`` strongest links;
2. prune: both ends at or above the risk threshold, weight at or above ``min_link_weight``;
3. connected components;
4. split every component of more than three accounts into communities;
5. per ring: size, link density, mean and max risk.

graph.rings does 1-3 and 5 in numpy/scipy and 4 with igraph's Leiden; the baseline does them
with networkx (``nx.Graph``, ``heapq.nlargest`` per node, ``nx.connected_components``,
``nx.community.louvain_communities``). Leiden runs with modularity here, like Louvain, so the
community step optimises the same objective; the CPM objective the product uses is timed too.
"""

from __future__ import annotations

import argparse
import heapq
import resource
import time
from dataclasses import replace

import networkx as nx
import numpy as np
import pandas as pd

from graph.rings import RingConfig
from graph.rings.communities import densities, split_groups
from graph.rings.evaluate import match_planted
from graph.rings.linkage import top_links


def synthetic(n_users: int, n_links: int, seed: int) -> tuple[np.ndarray, ...]:
    """(src, dst, weight, risk, planted ring per user or -1)."""
    rng = np.random.default_rng(seed)
    risk = rng.beta(1.2, 4.0, n_users)
    sizes = rng.integers(5, 31, n_users // 100)
    sizes = sizes[np.cumsum(sizes) <= n_users // 10]
    members = rng.permutation(n_users)[: sizes.sum()]
    ring = np.full(n_users, -1)
    ring[members] = np.repeat(np.arange(len(sizes)), sizes)
    risk[members] = rng.beta(6.0, 1.5, len(members))
    # ring links: each member to ~8 random fellow members
    start = np.repeat(np.r_[0, np.cumsum(sizes)[:-1]], sizes)
    size = np.repeat(sizes, sizes)
    a = np.repeat(members, 8)
    b = members[np.repeat(start, 8) + rng.integers(0, np.repeat(size, 8))]
    w_ring = rng.uniform(0.2, 1.5, len(a))
    n_noise = int((n_links - len(a)) * 1.03)  # a few drop out as self-links or repeats
    s, d = rng.integers(0, n_users, n_noise), rng.integers(0, n_users, n_noise)
    w_noise = rng.lognormal(-3.0, 1.0, n_noise)
    src, dst = np.concatenate([a, s]), np.concatenate([b, d])
    w = np.concatenate([w_ring, w_noise])
    ok = src != dst
    lo, hi = np.minimum(src[ok], dst[ok]), np.maximum(src[ok], dst[ok])
    frame = pd.DataFrame({"s": lo, "d": hi, "w": w[ok]}).groupby(["s", "d"], sort=False).sum()
    frame = frame.iloc[:n_links]
    idx = frame.index
    return (idx.get_level_values(0).to_numpy(), idx.get_level_values(1).to_numpy(),
            frame["w"].to_numpy(), risk, ring)  # fmt: skip


def ours(src, dst, w, risk, cfg: RingConfig) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    keep = top_links(src, dst, w, len(risk), cfg.top_links)
    s, d, ww = src[keep], dst[keep], w[keep]
    ok = (risk[s] >= cfg.risk_threshold) & (risk[d] >= cfg.risk_threshold)
    ok &= ww >= cfg.min_link_weight
    s, d, ww = s[ok], d[ok], ww[ok]
    groups = split_groups(s, d, ww, len(risk), cfg.max_size, cfg.resolution, cfg.seed,
                          objective=cfg.objective)  # fmt: skip
    groups = [g for g in groups if len(g) >= cfg.min_size]
    group_of = np.full(len(risk), -1)
    for i, g in enumerate(groups):
        group_of[g] = i
    dens = densities(s, d, group_of)
    user = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
    size = np.bincount(group_of[user], minlength=len(groups))
    _mean = np.bincount(group_of[user], risk[user], len(groups)) / np.maximum(size, 1)
    _max = pd.Series(risk[user]).groupby(group_of[user]).max()
    assert len(dens) == len(groups) == len(_max)
    return groups


def with_networkx(src, dst, w, risk, cfg: RingConfig) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    graph = nx.Graph()
    graph.add_weighted_edges_from(zip(src.tolist(), dst.tolist(), w.tolist(), strict=True))
    kept = nx.Graph()
    for node, nbrs in graph.adjacency():
        best = heapq.nlargest(cfg.top_links, nbrs.items(), key=lambda kv: kv[1]["weight"])
        for other, attrs in best:
            if (risk[node] >= cfg.risk_threshold and risk[other] >= cfg.risk_threshold
                    and attrs["weight"] >= cfg.min_link_weight):  # fmt: skip
                kept.add_edge(node, other, weight=attrs["weight"])
    del graph
    groups: list[np.ndarray] = []
    for comp in nx.connected_components(kept):
        if len(comp) <= 3:
            groups.append(np.array(sorted(comp)))
            continue
        sub = kept.subgraph(comp)
        for part in nx.community.louvain_communities(sub, weight="weight", seed=cfg.seed):
            groups.append(np.array(sorted(part)))
    groups = [g for g in groups if len(g) >= cfg.min_size]
    for g in groups:  # the same per-ring figures
        sub = kept.subgraph(g.tolist())
        _ = (nx.density(sub), float(risk[g].mean()), float(risk[g].max()))
    return groups


def quality(groups: list[np.ndarray], ring: np.ndarray) -> dict[str, float]:
    det = pd.DataFrame({"ring_id": np.repeat(np.arange(len(groups)), [len(g) for g in groups]),
                        "user_id": np.concatenate(groups) if groups else []})  # fmt: skip
    members = np.flatnonzero(ring >= 0)
    planted = pd.DataFrame({"ring_id": ring[members], "user_id": members})
    return match_planted(det.astype(str), planted.astype(str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--links", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-networkx", action="store_true")
    args = parser.parse_args()
    src, dst, w, risk, ring = synthetic(args.users, args.links, args.seed)
    print(f"{len(src):,} candidate links among {args.users:,} accounts, "
          f"{ring.max() + 1:,} planted rings")  # fmt: skip
    rows = []
    runs = [("graph.rings (Leiden CPM, the product's default)", ours, RingConfig()),
            ("graph.rings (Leiden modularity)", ours, replace(RingConfig(), objective="modularity",
                                                              resolution=1.0))]  # fmt: skip
    if not args.skip_networkx:
        runs.append(("networkx (Louvain modularity)", with_networkx, RingConfig()))
    for name, fn, cfg in runs:
        started = time.perf_counter()
        groups = fn(src, dst, w, risk, cfg)
        seconds = time.perf_counter() - started
        q = quality(groups, ring)
        rows.append({"implementation": name, "seconds": round(seconds, 1), "rings": len(groups),
                     "ring F1": round(q["f1"], 3),
                     "peak RSS GiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                           / 2**20, 2)})  # fmt: skip
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    if not args.skip_networkx:
        base = table["seconds"].iloc[-1]
        table["speed-up vs networkx"] = (base / table["seconds"]).round(1)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
