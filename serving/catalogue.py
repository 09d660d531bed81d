"""The analysts' catalogue: named, parameterised, read-only Cypher shipped with riskgraph.

Each query runs like ``riskgraph cypher`` does (``serving.queries.run_read_query``: its plan
checked by ``serving.query_guard``, a read transaction, values as parameters only). The two
Graph Data Science queries first project a small neighbourhood of the user into GDS's
in-memory catalogue under a fresh name (the projection is ours, not analyst text, so it runs
without the guard, still in a read transaction), stream the algorithm through the guard, and
drop the projection.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, LiteralString

from neo4j import ManagedTransaction
from neo4j.exceptions import ClientError

from graph.neo4j.store import GraphStore
from serving.queries import parse_params, run_read_query


@dataclass(frozen=True)
class Param:
    kind: str  # str, int, float
    help: str
    default: Any = None  # None: required


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    cypher: LiteralString
    params: dict[str, Param] = field(default_factory=dict)
    gds_projection: LiteralString | None = None  # run first, with $graph; then cypher


class CatalogueError(ValueError):
    """Unknown query, bad or missing parameter, or GDS absent; the message says what to do."""


LIMIT = Param("int", "rows at most", 20)
USER = Param("str", "a user id")
RING = Param("str", "a ring id (riskiest-rings lists them)")

QUERIES: tuple[NamedQuery, ...] = (
    NamedQuery("riskiest-rings", "open rings by 30-day order exposure, largest first", """
MATCH (r:Ring) WHERE coalesce(r.status, 'new') <> 'closed'
RETURN r.ring_id AS ring_id, r.size AS size, round(r.risk_mean, 3) AS risk_mean,
       r.exposure_amount AS exposure, r.chargeback_amount AS chargebacks,
       coalesce(r.status, 'new') AS status
ORDER BY exposure DESC, risk_mean DESC, ring_id LIMIT $limit""", {"limit": LIMIT}),
    NamedQuery("ring-members", "a ring's members with their scores and devices", """
MATCH (u:User)-[:MEMBER_OF]->(:Ring {ring_id: $ring_id})
OPTIONAL MATCH (u)-[:USES]->(d:Device)
WITH u, collect(d.device_id) AS devices
RETURN u.user_id AS user, round(u.risk_score, 3) AS risk, u.risk_band AS band,
       size(devices) AS n_devices, devices
ORDER BY risk DESC, user""", {"ring_id": RING}),
    NamedQuery("near-ring", "accounts two hops from a ring (sharing a device with a member), "
               "not members themselves", """
MATCH (m:User)-[:MEMBER_OF]->(r:Ring {ring_id: $ring_id})
MATCH (m)-[:USES]->(d:Device)<-[:USES]-(u:User)
WHERE NOT (u)-[:MEMBER_OF]->(r)
WITH u, collect(DISTINCT d.device_id) AS via_devices, count(DISTINCT m) AS members_reached
RETURN u.user_id AS user, round(u.risk_score, 3) AS risk, members_reached, via_devices
ORDER BY members_reached DESC, risk DESC, user LIMIT $limit""", {"ring_id": RING, "limit": LIMIT}),
    NamedQuery("risky-merchants", "merchants whose sales come mostly from risky accounts", """
MATCH (m:Merchant)<-[:SOLD_BY]-(:Product)<-[o:ORDERED]-(u:User)
WITH m, sum(o.amount) AS sales, count(o) AS orders,
     sum(CASE WHEN coalesce(u.risk_score, 0.0) >= $min_risk THEN o.amount ELSE 0.0 END) AS risky
WHERE orders >= $min_orders AND sales > 0 AND risky / sales >= $min_share
RETURN m.merchant_id AS merchant, round(sales, 2) AS sales, round(risky / sales, 3) AS risky_share,
       orders, round(coalesce(m.risk_score, 0.0), 3) AS merchant_risk
ORDER BY risky_share DESC, sales DESC, merchant LIMIT $limit""", {
        "min_risk": Param("float", "fraud probability from which an account is risky", 0.5),
        "min_share": Param("float", "least share of sales from risky accounts", 0.5),
        "min_orders": Param("int", "least orders of a merchant", 5), "limit": LIMIT}),
    NamedQuery("score-history", "a user's current and previous score (previous_* appear once "
               "a second scoring run has stored them)", """
MATCH (u:User {user_id: $user_id})
WITH u, u['previous_score'] AS previous, u['previous_band'] AS previous_band
RETURN u.user_id AS user, u.credit_score AS score, u.risk_band AS band,
       previous AS previous_score, previous_band,
       CASE WHEN previous IS NULL OR u.credit_score IS NULL THEN null
            ELSE u.credit_score - previous END AS change,
       u.score_version AS model_version, toString(u.scored_at) AS scored_at""",
               {"user_id": USER}),
    NamedQuery("shared-devices", "accounts sharing a device with a user", """
MATCH (:User {user_id: $user_id})-[:USES]->(d:Device)<-[:USES]-(o:User)
WHERE o.user_id <> $user_id
WITH o, collect(d.device_id) AS shared
RETURN o.user_id AS user, round(o.risk_score, 3) AS risk, o.risk_band AS band,
       size(shared) AS n_shared, shared AS devices
ORDER BY n_shared DESC, risk DESC, user LIMIT $limit""", {"user_id": USER, "limit": LIMIT}),
    NamedQuery("communities", "GDS Louvain communities of the accounts and devices around a "
               "user (device sharers and linked accounts)", """
CALL gds.louvain.stream($graph) YIELD nodeId, communityId
WITH communityId, gds.util.asNode(nodeId) AS n
WITH communityId, collect(n.user_id) AS users, collect(n.device_id) AS devices,
     avg(n.risk_score) AS mean_risk
RETURN communityId AS community, size(users) AS n_users, round(mean_risk, 3) AS mean_risk,
       $user_id IN users AS has_user, users[..20] AS users, devices[..20] AS devices
ORDER BY has_user DESC, n_users DESC LIMIT $limit""", {"user_id": USER, "limit": LIMIT},
               gds_projection="""
MATCH (seed:User {user_id: $user_id})
CALL { WITH seed MATCH (seed)-[:USES]->(:Device)<-[:USES]-(n:User) RETURN n LIMIT 500
       UNION WITH seed MATCH (seed)-[:LINKED]-(n:User) RETURN n LIMIT 500
       UNION WITH seed RETURN seed AS n }
WITH DISTINCT n
MATCH (n)-[:USES]->(d:Device)
WITH gds.graph.project($graph, n, d, {}, {undirectedRelationshipTypes: ['*']}) AS g
RETURN g.nodeCount AS nodes"""),
    NamedQuery("device-similarity", "GDS node similarity (Jaccard over their accounts) among "
               "a user's devices and the devices their accounts use", """
CALL gds.nodeSimilarity.stream($graph, {topK: 5}) YIELD node1, node2, similarity
WITH gds.util.asNode(node1) AS a, gds.util.asNode(node2) AS b, similarity
WHERE a.device_id < b.device_id
RETURN a.device_id AS device, b.device_id AS similar_device, round(similarity, 3) AS jaccard
ORDER BY jaccard DESC, device, similar_device LIMIT $limit""", {"user_id": USER, "limit": LIMIT},
               gds_projection="""
MATCH (:User {user_id: $user_id})-[:USES]->(mine:Device)
MATCH (mine)<-[:USES]-(n:User)
WITH DISTINCT n LIMIT 500
MATCH (n)-[:USES]->(d:Device)
WITH gds.graph.project($graph, d, n) AS g
RETURN g.nodeCount AS nodes"""),
)  # fmt: skip
BY_NAME = {q.name: q for q in QUERIES}


def find(name: str) -> NamedQuery:
    if name not in BY_NAME:
        raise CatalogueError(f"no query {name!r}; `riskgraph query --list` shows them: "
                             + ", ".join(BY_NAME))  # fmt: skip
    return BY_NAME[name]


def bind(query: NamedQuery, pairs: list[str]) -> dict[str, Any]:
    """``name=value`` pairs typed by the query's declaration; defaults filled, none unknown."""
    typed = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        name = key.split(":")[0].strip()
        if sep and name not in query.params:
            raise CatalogueError(f"{query.name} takes no parameter {name!r}; it takes: "
                                 + (", ".join(query.params) or "none"))  # fmt: skip
        typed.append(
            f"{name}:{query.params[name].kind}={value}" if sep and ":" not in key else pair
        )
    params = parse_params(typed)
    for name, spec in query.params.items():
        if name not in params:
            if spec.default is None:
                raise CatalogueError(f"{query.name} needs --param {name}=… ({spec.help})")
            params[name] = spec.default
    return params


def has_gds(store: GraphStore) -> bool:
    try:
        store.read("RETURN gds.version() AS v")
    except ClientError:
        return False
    return True


def run_named(
    store: GraphStore, name: str, pairs: list[str], timeout_s: float = 60.0
) -> list[dict[str, Any]]:
    """Run a catalogue query; GDS ones project, stream and drop their own small graph."""
    query = find(name)
    params = bind(query, pairs)
    if query.gds_projection is None:
        return run_read_query(store, query.cypher, params, timeout_s)
    if not has_gds(store):
        raise CatalogueError(f"{name} needs Graph Data Science, which this Neo4j has not loaded "
                             "(the local server loads it unless RISKGRAPH_NEO4J_GDS_VERSION is empty)")  # fmt: skip
    graph = f"riskgraph-catalogue-{uuid.uuid4().hex}"
    projection = query.gds_projection

    def project(tx: ManagedTransaction) -> int:
        record = tx.run(projection, {**params, "graph": graph}).single()
        return int(record["nodes"] or 0) if record else 0

    def drop(tx: ManagedTransaction) -> None:
        tx.run("CALL gds.graph.drop($graph, false) YIELD graphName RETURN graphName",
               {"graph": graph}).consume()  # fmt: skip

    with store.driver.session(database=store.database) as session:
        if session.execute_read(project) == 0:
            return []
        try:
            return run_read_query(store, query.cypher, {**params, "graph": graph}, timeout_s)
        finally:
            session.execute_read(drop)
