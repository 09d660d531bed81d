"""Communities of the ring graph: components first (scipy, linear), then Leiden inside them.

Components of the pruned graph are the cheap first cut: most rings are a component on their
own. A component can still hold two rings bridged by one stray link (two farms whose members
happen to buy at the same merchant on the same days), so every component that is larger than
a ring can be, or loosely knit, is split with Leiden (igraph's C implementation, modularity,
fixed seed: the same graph gives the same rings).
"""

from __future__ import annotations

import random

import igraph as ig
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components


def components(src: np.ndarray, dst: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(component label per node, nodes that have at least one link)."""
    adj = sp.coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n)).tocsr()
    _, label = connected_components(adj, directed=False)
    linked = np.zeros(n, dtype=bool)
    linked[src] = True
    linked[dst] = True
    return label, np.flatnonzero(linked)


def leiden(
    src: np.ndarray, dst: np.ndarray, weight: np.ndarray, nodes: np.ndarray,
    resolution: float, seed: int, objective: str = "modularity",
) -> list[np.ndarray]:  # fmt: skip
    """Leiden (modularity or CPM) communities of the subgraph on ``nodes`` (global indices in/out)."""
    local = np.full(int(max(nodes.max(), src.max(initial=0), dst.max(initial=0))) + 1, -1)
    local[nodes] = np.arange(len(nodes))
    inside = (local[src] >= 0) & (local[dst] >= 0)
    edges = np.stack([local[src[inside]], local[dst[inside]]], axis=1)
    graph = ig.Graph(n=len(nodes), edges=edges.tolist())
    ig.set_random_number_generator(random.Random(seed))
    parts = graph.community_leiden(
        objective_function=objective, weights=weight[inside].tolist(),
        resolution=resolution, n_iterations=-1,
    )  # fmt: skip
    membership = np.asarray(parts.membership)
    order = np.argsort(membership, kind="stable")
    cuts = np.flatnonzero(np.diff(membership[order])) + 1
    return [nodes[np.sort(chunk)] for chunk in np.split(order, cuts)]


def densities(src: np.ndarray, dst: np.ndarray, group_of: np.ndarray) -> np.ndarray:
    """Per group (``group_of``: group per node, -1 for none): share of its pairs that are linked."""
    n_groups = int(group_of.max(initial=-1)) + 1
    size = np.bincount(group_of[group_of >= 0], minlength=n_groups).astype(np.float64)
    same = (group_of[src] >= 0) & (group_of[src] == group_of[dst])
    links = np.bincount(group_of[src[same]], minlength=n_groups).astype(np.float64)
    pairs = size * (size - 1) / 2
    return np.divide(links, pairs, out=np.zeros(n_groups), where=pairs > 0)


def split_groups(
    src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n: int,
    max_size: int, resolution: float, seed: int, min_density: float = 0.3,
    objective: str = "modularity",
) -> list[np.ndarray]:  # fmt: skip
    """Groups of linked nodes: components, with over-large or loose ones split by Leiden."""
    label, linked = components(src, dst, n)
    if not len(linked):
        return []
    group_of = np.full(n, -1, dtype=np.int64)
    _, group_of[linked] = np.unique(label[linked], return_inverse=True)
    size = np.bincount(group_of[linked])
    # Every component of more than three is handed to Leiden: two dense rings joined by a
    # few stray links are dense overall, yet modularity cuts them apart.
    loose = (size > 3) | (densities(src, dst, group_of) < min_density)
    order = np.argsort(group_of[linked], kind="stable")
    nodes = linked[order]
    cuts = np.flatnonzero(np.diff(group_of[nodes])) + 1
    chunks = np.split(nodes, cuts)
    if objective == "none":
        loose[:] = False
    groups = [np.sort(c) for c, bad in zip(chunks, loose, strict=True) if not bad]
    big = [c for c, bad in zip(chunks, loose, strict=True) if bad]
    if big and objective != "none":
        # one Leiden run over all loose components together (neither objective joins them)
        groups.extend(leiden(src, dst, weight, np.concatenate(big), resolution, seed, objective))
    return groups
