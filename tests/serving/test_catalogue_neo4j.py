"""The analysts' catalogue against the real Neo4j: every query runs and answers what it says."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from graph.neo4j.store import GraphStore
from serving.catalogue import QUERIES, CatalogueError, has_gds, run_named
from serving.cli import app
from serving.connect import open_store
from serving.settings import Settings

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]


@pytest.fixture(scope="module")
def graph(scored_graph: Settings) -> GraphStore:
    return open_store(scored_graph, start=False)


def _a_ring(store: GraphStore) -> str:
    rows = store.read("MATCH (r:Ring)<-[:MEMBER_OF]-() RETURN r.ring_id AS id LIMIT 1")
    if not rows:  # the small test model may find no ring: plant one, as the rings stage writes it
        store.write_batches(
            "MERGE (r:Ring {ring_id: 'ring-test'}) SET r.risk_mean = 0.9, r.size = 3, "
            "r.exposure_amount = 100.0, r.status = 'new' WITH r "
            "UNWIND $rows AS row MATCH (u:User {user_id: row.u}) MERGE (u)-[:MEMBER_OF]->(r)",
            [{"u": "U000001"}, {"u": "U000002"}, {"u": "U000003"}],
        )
        return "ring-test"
    return str(rows[0]["id"])


def test_rings_members_and_neighbours(graph: GraphStore) -> None:
    ring = _a_ring(graph)
    rings = run_named(graph, "riskiest-rings", ["limit=5"])
    exposure = [r["exposure"] for r in rings]
    assert rings and exposure == sorted(exposure, reverse=True)
    members = run_named(graph, "ring-members", [f"ring_id={ring}"])
    expected = graph.read(
        "MATCH (u:User)-[:MEMBER_OF]->(:Ring {ring_id: $r}) RETURN count(u) AS n", r=ring
    )
    assert len(members) == expected[0]["n"] and all(
        m["n_devices"] == len(m["devices"]) for m in members
    )
    member_ids = {m["user"] for m in members}
    near = run_named(graph, "near-ring", [f"ring_id={ring}", "limit=500"])
    assert not member_ids & {n["user"] for n in near}
    for row in near[:5]:  # each shares a listed device with some member
        shared = graph.read(
            "MATCH (u:User {user_id: $u})-[:USES]->(d:Device)<-[:USES]-(m:User)-[:MEMBER_OF]->"
            "(:Ring {ring_id: $r}) RETURN collect(DISTINCT d.device_id) AS d",
            u=row["user"],
            r=ring,
        )
        assert set(row["via_devices"]) == set(shared[0]["d"])


def test_merchants_history_and_shared_devices(graph: GraphStore) -> None:
    merchants = run_named(graph, "risky-merchants", ["min_risk=0.0", "min_share=0.5"])
    assert merchants and all(m["risky_share"] >= 0.5 for m in merchants)
    assert run_named(graph, "risky-merchants", ["min_risk=1.01"]) == []
    history = run_named(graph, "score-history", ["user_id=U000001"])
    assert history[0]["user"] == "U000001" and history[0]["score"] is not None
    assert history[0]["previous_score"] is None or isinstance(history[0]["change"], int)
    sharer = graph.read(
        "MATCH (u:User)-[:USES]->(:Device)<-[:USES]-(o:User) WHERE u <> o "
        "RETURN u.user_id AS u, count(DISTINCT o) AS n ORDER BY n DESC, u LIMIT 1"
    )[0]
    shared = run_named(graph, "shared-devices", [f"user_id={sharer['u']}", "limit:int=1000"])
    assert len(shared) == sharer["n"] and sharer["u"] not in {r["user"] for r in shared}


def test_gds_queries(graph: GraphStore) -> None:
    if not has_gds(graph):
        pytest.skip("Graph Data Science is not loaded in this Neo4j")
    user = graph.read(
        "MATCH (u:User)-[:USES]->(:Device)<-[:USES]-(o:User) WHERE u <> o RETURN u.user_id AS u "
        "ORDER BY u LIMIT 1"
    )[0]["u"]
    communities = run_named(graph, "communities", [f"user_id={user}"])
    assert communities[0]["has_user"] and communities[0]["n_users"] >= 2
    similar = run_named(graph, "device-similarity", [f"user_id={user}"])
    assert all(0.0 < r["jaccard"] <= 1.0 for r in similar)
    left = graph.read("CALL gds.graph.list() YIELD graphName RETURN collect(graphName) AS g")
    assert not [g for g in left[0]["g"] if g.startswith("riskgraph-catalogue-")]


def test_bad_names_and_params(graph: GraphStore) -> None:
    with pytest.raises(CatalogueError, match="no query 'nope'"):
        run_named(graph, "nope", [])
    with pytest.raises(CatalogueError, match="needs --param ring_id"):
        run_named(graph, "ring-members", [])
    with pytest.raises(CatalogueError, match="takes no parameter 'x'"):
        run_named(graph, "riskiest-rings", ["x=1"])
    with pytest.raises(ValueError, match="limit"):
        run_named(graph, "riskiest-rings", ["limit=many"])


def test_cli(scored_graph: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKGRAPH_STATE_DIR", str(scored_graph.state_dir))
    monkeypatch.setenv("RISKGRAPH_NEO4J_PORT", str(scored_graph.neo4j_port))
    runner = CliRunner()
    listed = runner.invoke(app, ["query", "--list"])
    assert listed.exit_code == 0 and all(q.name in listed.output for q in QUERIES)
    rows = runner.invoke(app, ["query", "score-history", "--param", "user_id=U000001", "--json"])
    assert rows.exit_code == 0, rows.output
    assert json.loads(rows.output.splitlines()[0])["user"] == "U000001"
    with open_store(scored_graph, start=False) as store:
        sharer = store.read(
            "MATCH (u:User)-[:USES]->(:Device)<-[:USES]-(o:User) WHERE u <> o "
            "RETURN u.user_id AS u ORDER BY u LIMIT 1"
        )[0]["u"]
    as_csv = runner.invoke(app, ["query", "shared-devices", "-p", f"user_id={sharer}", "--csv"])
    assert as_csv.exit_code == 0 and as_csv.output.startswith("user,risk,band,n_shared,devices")
    bad = runner.invoke(app, ["query", "nope"])
    assert bad.exit_code == 2 and "no query 'nope'" in bad.output
