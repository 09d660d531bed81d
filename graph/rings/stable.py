"""Stable ring ids across runs: a ring that persists keeps its id and first_seen.

A new ring takes over the id of the previous (still open) ring it overlaps most, when their
Jaccard is at least 0.5; pairs are matched greedily from the highest Jaccard, one to one.
The status says what happened since the last run: ``new``, ``grown``, ``shrunk`` or
``unchanged``; previous rings that nothing matches are ``closed`` (kept, with their members,
for the record). A rerun on the same graph (same clock, same members) changes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

NEW, GROWN, SHRUNK, UNCHANGED, CLOSED = "new", "grown", "shrunk", "unchanged", "closed"


@dataclass(frozen=True)
class PreviousRing:
    ring_id: str
    members: frozenset[str]
    first_seen: int
    last_seen: int
    status: str


def ring_id_of(members: list[str]) -> str:
    """A new ring's id: a hash of its sorted members (the same group always gets the same id)."""
    return "ring-" + hashlib.sha1("|".join(sorted(members)).encode()).hexdigest()[:12]


def assign_ids(
    groups: list[list[str]], previous: list[PreviousRing], clock: int
) -> tuple[pd.DataFrame, list[PreviousRing]]:
    """(ring_id, status, first_seen, last_seen) per group, and the previous rings now closed."""
    open_prev = [p for p in previous if p.status != CLOSED]
    owners: dict[str, list[int]] = {}
    for j, p in enumerate(open_prev):
        for u in p.members:
            owners.setdefault(u, []).append(j)
    pairs: list[tuple[float, int, int]] = []
    for i, grp in enumerate(groups):
        mine = set(grp)
        for j in {j for u in grp for j in owners.get(u, [])}:
            other = open_prev[j].members
            jac = len(mine & other) / len(mine | other)
            if jac >= 0.5:
                pairs.append((jac, i, j))
    match: dict[int, int] = {}
    used: set[int] = set()
    for _, i, j in sorted(pairs, key=lambda t: (-t[0], t[1], t[2])):
        if i not in match and j not in used:
            match[i] = j
            used.add(j)
    taken = {p.ring_id for p in previous}
    rows = []
    for i, grp in enumerate(groups):
        if i in match:
            p = open_prev[match[i]]
            now = frozenset(grp)
            if now == p.members:
                status = p.status if clock == p.last_seen else UNCHANGED
            elif len(now - p.members) > 0 and len(now) >= len(p.members):
                status = GROWN
            else:
                status = SHRUNK
            rows.append((p.ring_id, status, p.first_seen, clock))
        else:
            rid = ring_id_of(grp)
            while rid in taken:  # a closed ring with exactly these members: a fresh id
                rid = ring_id_of([rid, *grp])
            taken.add(rid)
            rows.append((rid, NEW, clock, clock))
    closed = [p for j, p in enumerate(open_prev) if j not in used]
    return pd.DataFrame(rows, columns=["ring_id", "status", "first_seen", "last_seen"]), closed
