"""Rings in Neo4j: evidence links, and ring nodes replaced atomically with stable ids.

A run's rings are written in ONE write transaction: previous rings are re-pointed, closed or
replaced, memberships and centre links rewritten, all or nothing. A run killed half-way
(``kill -9``) leaves the previous rings whole, because Neo4j rolls back a transaction whose
client is gone. ``LINKED`` relationships are replaced in batches before that (they are
derived data: a killed run leaves some, and the next run replaces them).
"""

from __future__ import annotations

from typing import Any, LiteralString

import numpy as np
import pandas as pd
from neo4j import ManagedTransaction

from graph import schema
from graph.neo4j.store import GraphStore, records
from graph.rings.detect import Rings
from graph.rings.stable import CLOSED, PreviousRing, assign_ids

DELETE_LINKED: LiteralString = f"""
MATCH ()-[l:{schema.LINKED}]->() WITH l LIMIT $batch DELETE l RETURN count(*) AS n
"""
WRITE_LINKED: LiteralString = f"""
UNWIND $rows AS row
MATCH (a:{schema.USER} {{user_id: row.src}}) MATCH (b:{schema.USER} {{user_id: row.dst}})
CREATE (a)-[:{schema.LINKED} {{weight: row.weight, evidence: row.evidence}}]->(b)
"""
PREVIOUS: LiteralString = f"""
MATCH (r:{schema.RING}) OPTIONAL MATCH (u:{schema.USER})-[:{schema.MEMBER_OF}]->(r)
RETURN r.ring_id AS ring_id, coalesce(r.status, 'new') AS status,
       coalesce(r.first_seen_ms, 0) AS first_seen, coalesce(r.last_seen_ms, 0) AS last_seen,
       collect(u.user_id) AS members
"""
DROP_OTHER_RINGS: LiteralString = f"""
MATCH (r:{schema.RING}) WHERE NOT r.ring_id IN $keep DETACH DELETE r
"""
UPSERT_RINGS: LiteralString = f"""
UNWIND $rows AS row
MERGE (r:{schema.RING} {{ring_id: row.ring_id}})
SET r += row, r.first_seen = datetime({{epochMillis: row.first_seen_ms}}),
    r.last_seen = datetime({{epochMillis: row.last_seen_ms}}), r.closed_at = null
WITH r
OPTIONAL MATCH (r)-[old:{schema.MEMBER_OF}|{schema.CENTRES_ON}]-()
DELETE old
"""
MEMBERS: LiteralString = f"""
UNWIND $rows AS row
MATCH (u:{schema.USER} {{user_id: row.user_id}}) MATCH (r:{schema.RING} {{ring_id: row.ring_id}})
CREATE (u)-[:{schema.MEMBER_OF}]->(r)
"""
CENTRE_DEVICES: LiteralString = f"""
UNWIND $rows AS row
MATCH (r:{schema.RING} {{ring_id: row.ring_id}}) MATCH (d:{schema.DEVICE} {{device_id: row.id}})
CREATE (r)-[:{schema.CENTRES_ON} {{members: row.members}}]->(d)
"""
CENTRE_MERCHANTS: LiteralString = f"""
UNWIND $rows AS row
MATCH (r:{schema.RING} {{ring_id: row.ring_id}}) MATCH (m:{schema.MERCHANT} {{merchant_id: row.id}})
CREATE (r)-[:{schema.CENTRES_ON} {{members: row.members}}]->(m)
"""
CLOSE: LiteralString = f"""
UNWIND $rows AS row
MATCH (r:{schema.RING} {{ring_id: row.ring_id}})
SET r.status = 'closed', r.closed_at = datetime({{epochMillis: $clock}})
"""


def replace_links(store: GraphStore, rings: Rings, ids: np.ndarray, batch_size: int) -> int:
    """Replace every ``LINKED`` relationship by this run's links."""

    def delete(tx: ManagedTransaction) -> int:
        record = tx.run(DELETE_LINKED, batch=batch_size).single()
        return int(record["n"]) if record else 0

    with store.driver.session(database=store.database) as session:
        while session.execute_write(delete):
            pass
    links = rings.links
    frame = pd.DataFrame({
        "src": ids[links.src], "dst": ids[links.dst], "weight": links.weight.round(4),
        "evidence": links.evidence(),
    })  # fmt: skip
    return store.write_batches(WRITE_LINKED, records(frame), batch_size)


def previous_rings(store: GraphStore) -> list[PreviousRing]:
    cols = store.read_columns(PREVIOUS)
    return [
        PreviousRing(rid, frozenset(members), int(first), int(last), status)
        for rid, status, first, last, members in zip(
            cols.get("ring_id", []), cols.get("status", []), cols.get("first_seen", []),
            cols.get("last_seen", []), cols.get("members", []), strict=True,
        )
    ]  # fmt: skip


def write_rings(store: GraphStore, rings: Rings) -> pd.DataFrame:
    """Give this run's rings stable ids and write them in one transaction; returns the rings
    with ``ring_id``, ``status``, ``first_seen_ms``, ``last_seen_ms``.
    """
    previous = previous_rings(store)
    groups = [list(v) for _, v in rings.members.groupby("group", sort=True)["user_id"]]
    ids, closed = assign_ids(groups, previous, rings.as_of_ms)
    frame = rings.rings.sort_values("group").reset_index(drop=True)
    frame = pd.concat([frame, ids], axis=1).rename(
        columns={"first_seen": "first_seen_ms", "last_seen": "last_seen_ms"}
    )
    ring_of = dict(zip(frame["group"], frame["ring_id"], strict=True))
    members = rings.members.assign(ring_id=rings.members["group"].map(ring_of))
    centres = rings.centres.assign(ring_id=rings.centres["group"].map(ring_of))
    ring_rows = records(frame.drop(columns=["group"]))
    keep = [*frame["ring_id"], *(p.ring_id for p in closed),
            *(p.ring_id for p in previous if p.status == CLOSED)]  # fmt: skip
    params: list[tuple[LiteralString, dict[str, Any]]] = [
        (DROP_OTHER_RINGS, {"keep": keep}),
        (UPSERT_RINGS, {"rows": ring_rows}),
        (MEMBERS, {"rows": records(members[["ring_id", "user_id"]])}),
        (CENTRE_DEVICES, {"rows": records(centres[centres["kind"] == "device"])}),
        (CENTRE_MERCHANTS, {"rows": records(centres[centres["kind"] == "merchant"])}),
        (CLOSE, {"rows": [{"ring_id": p.ring_id} for p in closed], "clock": rings.as_of_ms}),
    ]

    def work(tx: ManagedTransaction) -> None:
        for query, values in params:
            tx.run(query, values).consume()

    with store.driver.session(database=store.database) as session:
        session.execute_write(work)
    return frame
