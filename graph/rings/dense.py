"""Dense blocks in user x (merchant, time window): FRAUDAR-style greedy peeling.

Coordinated accounts act at the same merchants in the same windows, over and over; the block
they form in the user x cell matrix is denser than anything honest traffic makes. Peeling
(Hooi et al., FRAUDAR, KDD 2016) removes, one at a time, the node whose removal costs the
least weight and keeps the densest subgraph seen, ``f(S) / |S|``. Column weights
``1 / log(deg + c)``, with ``deg`` counted over *all* accounts, resist camouflage: orders a
fraudster places at popular merchants to look normal land in heavy columns that weigh little,
so they neither hide the block nor drag honest shoppers into it.
"""

from __future__ import annotations

import heapq

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components


def column_weights(degree_all: np.ndarray, c: float = 5.0) -> np.ndarray:
    """FRAUDAR's camouflage-resistant column weight from each column's degree over everyone."""
    return 1.0 / np.log(degree_all.astype(np.float64) + c)


def peel(mat: sp.csr_matrix) -> tuple[np.ndarray, float]:
    """Rows of the densest block of a weighted bipartite matrix, and its density.

    Nodes are rows then columns; each step removes the node of least current weighted
    degree (lazy heap), and the best prefix of removals defines the block.
    """
    n_rows, n_cols = mat.shape
    coo = mat.tocoo()
    row, col, w = coo.row, coo.col + n_rows, coo.data.astype(np.float64)
    n = n_rows + n_cols
    deg = np.bincount(row, w, n) + np.bincount(col, w, n)
    both = np.concatenate([row, col])
    other = np.concatenate([col, row])
    ww = np.concatenate([w, w])
    order = np.argsort(both, kind="stable")
    starts = np.searchsorted(both[order], np.arange(n + 1))
    nbr, nbr_w = other[order], ww[order]
    alive = deg > 0
    total, size = float(w.sum()), int(alive.sum())
    best, best_step = total / max(size, 1), 0
    heap = [(float(deg[i]), int(i)) for i in np.flatnonzero(alive)]
    heapq.heapify(heap)
    removed: list[int] = []
    while heap:
        d, i = heapq.heappop(heap)
        if not alive[i] or d != deg[i]:
            continue
        alive[i] = False
        removed.append(i)
        total -= deg[i]
        size -= 1
        for j, wj in zip(
            nbr[starts[i] : starts[i + 1]], nbr_w[starts[i] : starts[i + 1]], strict=True
        ):
            if alive[j]:
                deg[j] -= wj
                heapq.heappush(heap, (float(deg[j]), int(j)))
        if size > 0 and total / size > best:
            best, best_step = total / size, len(removed)
    gone = np.zeros(n, dtype=bool)
    gone[removed[:best_step]] = True
    keep = np.flatnonzero(~gone[:n_rows] & (np.asarray((mat != 0).sum(axis=1)).ravel() > 0))
    return keep, best


def dense_blocks(
    mat: sp.csr_matrix, min_rows: int, min_density: float, max_blocks: int = 10_000
) -> list[np.ndarray]:
    """Blocks found by peeling each connected part of ``mat`` again and again.

    After a block is found its rows leave the matrix and the rest is peeled anew, until the
    block is smaller than ``min_rows`` or thinner than ``min_density``.
    """
    mat = mat.tocsr()
    n_rows = mat.shape[0]
    bip = sp.bmat([[None, mat], [mat.T, None]]).tocsr()
    _, label = connected_components(bip, directed=False)
    blocks: list[np.ndarray] = []
    row_label = label[:n_rows]
    active = np.asarray((mat != 0).sum(axis=1)).ravel() > 0
    for comp in np.unique(row_label[active]):
        rows = np.flatnonzero((row_label == comp) & active)
        if len(rows) < min_rows:
            continue
        sub = mat[rows]
        for _ in range(max_blocks):
            picked, dens = peel(sub)
            if len(picked) < min_rows or dens < min_density:
                break
            blocks.append(rows[picked])
            mask = np.ones(sub.shape[0], dtype=bool)
            mask[picked] = False
            rows, sub = rows[mask], sub[mask]
            if len(rows) < min_rows:
                break
    return blocks
