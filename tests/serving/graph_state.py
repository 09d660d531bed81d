"""Node and relationship counts and a checksum of every property: "nothing changed" checks."""

from __future__ import annotations

import hashlib
import json
from typing import LiteralString

from graph.neo4j.store import GraphStore

NODES: LiteralString = "MATCH (n) RETURN labels(n) AS l, properties(n) AS p"
RELS: LiteralString = (
    "MATCH (a)-[r]->(b) RETURN type(r) AS t, properties(r) AS p, "
    "coalesce(a.user_id, a.product_id, a.ring_id, '') AS a, "
    "coalesce(b.product_id, b.device_id, b.merchant_id, b.ring_id, b.user_id, '') AS b"
)
SCORE_KEYS = {"risk_score", "default_probability", "credit_score", "risk_band", "reasons",
              "score_version", "scored_at"}  # fmt: skip


def graph_state(store: GraphStore, ignore: set[str] | None = None) -> tuple[int, int, str]:
    """(nodes, relationships, sha256 over every property); ``ignore``: property keys left out."""
    skip = ignore or set()
    lines = []
    for query in (NODES, RELS):
        for row in store.read(query):
            props = {k: v for k, v in row["p"].items() if k not in skip}
            lines.append(json.dumps({**row, "p": props}, sort_keys=True, default=str))
    lines.sort()
    nodes = sum(1 for line in lines if line.startswith('{"l"'))
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return nodes, len(lines) - nodes, digest
