"""The check shared by the tests of each path that writes reviews: every product's stored
review aggregates equal what a traversal of its REVIEWED edges counts."""

from __future__ import annotations

from typing import Any

from graph import schema
from graph.neo4j.store import GraphStore

AGGREGATES = f"""
MATCH (p:{schema.PRODUCT})
OPTIONAL MATCH (p)<-[x:{schema.REVIEWED}]-()
RETURN p.product_id AS id, p.{schema.REVIEW_COUNT} AS stored_n, p.{schema.RATING_SUM} AS stored_s,
       count(x) AS n, sum(x.rating) AS s
ORDER BY id
"""


def assert_exact(store: GraphStore) -> list[dict[str, Any]]:
    """Every product's stored aggregates equal the traversal's (and are set at all)."""
    rows = store.read(AGGREGATES)
    assert rows and any(r["n"] > 1 for r in rows)
    wrong = [r for r in rows if (r["stored_n"], r["stored_s"]) != (r["n"], r["s"])]
    assert not wrong, wrong[:5]
    return rows
