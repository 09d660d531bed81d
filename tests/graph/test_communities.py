"""Ring communities: components first, then Leiden splits what a component wrongly joins."""

from __future__ import annotations

import itertools

import numpy as np

from graph.rings.communities import split_groups


def _two_cliques_and_a_bridge() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes 0-5 and 6-11 each fully linked; one weak link 5-6 joins them; 12-13 a pair."""
    pairs = [*itertools.combinations(range(6), 2), *itertools.combinations(range(6, 12), 2)]
    pairs += [(5, 6), (12, 13)]
    src, dst = np.array(pairs).T
    weight = np.ones(len(pairs))
    weight[-2] = 0.1
    return src, dst, weight


def test_leiden_splits_two_rings_joined_by_a_stray_link() -> None:
    src, dst, weight = _two_cliques_and_a_bridge()
    for objective, resolution in (("modularity", 1.0), ("CPM", 0.3)):
        groups = split_groups(src, dst, weight, 15, max_size=100, resolution=resolution, seed=0,
                              objective=objective)  # fmt: skip
        found = sorted(sorted(g.tolist()) for g in groups)
        assert found == [list(range(6)), list(range(6, 12)), [12, 13]], objective


def test_without_leiden_components_stay_whole_and_unlinked_nodes_are_left_out() -> None:
    src, dst, weight = _two_cliques_and_a_bridge()
    groups = split_groups(src, dst, weight, 15, max_size=100, resolution=1.0, seed=0,
                          objective="none")  # fmt: skip
    found = sorted(sorted(g.tolist()) for g in groups)
    assert found == [list(range(12)), [12, 13]]  # node 14 has no link: in no group
