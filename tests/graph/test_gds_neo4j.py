"""Graph Data Science inside the project's own server: loaded, and its algorithms run."""

from __future__ import annotations

import pytest

from graph.neo4j.store import GraphStore

pytestmark = pytest.mark.neo4j


def test_gds_is_loaded_and_runs_wcc(store: GraphStore) -> None:
    assert store.read("RETURN gds.version() AS v") == [{"v": "2.13.9"}]
    store.write_batches(
        "UNWIND $rows AS r MERGE (a:User {user_id: r.a}) MERGE (b:User {user_id: r.b}) "
        "MERGE (a)-[:LINKED]->(b)",
        [{"a": "u1", "b": "u2"}, {"a": "u2", "b": "u3"}, {"a": "u4", "b": "u5"}],
    )
    with store.driver.session(database=store.database) as session:
        session.run(
            "CALL gds.graph.project('t_linked', 'User', {LINKED: {orientation: 'UNDIRECTED'}})"
        ).consume()
        try:
            rows = session.run(
                "CALL gds.wcc.stream('t_linked') YIELD nodeId, componentId "
                "RETURN gds.util.asNode(nodeId).user_id AS user, componentId AS c"
            ).data()
        finally:
            session.run("CALL gds.graph.drop('t_linked')").consume()
    comp = {r["user"]: r["c"] for r in rows}
    assert comp["u1"] == comp["u2"] == comp["u3"] != comp["u4"] == comp["u5"]
