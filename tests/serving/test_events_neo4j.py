"""POST /v1/events against the real Neo4j: validation, idempotency, the score moving, thin files."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from graph.neo4j.load import USERS, columns_for
from serving.connect import open_store
from serving.settings import Settings
from tests.serving.conftest import HEADERS
from tests.serving.graph_state import SCORE_KEYS, graph_state

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]

QUIET_USER = """
MATCH (u:User)-[:ORDERED]->(p:Product) WHERE u.risk_score < 0.3
WITH u, p ORDER BY u.risk_score, u.user_id LIMIT 1
MATCH (u)-[:USES]->(d:Device)
RETURN u.user_id AS user, p.product_id AS product, d.device_id AS device,
       toString(datetime({epochMillis: COLLECT { MATCH ()-[o:ORDERED]->() RETURN max(o.ts.epochMillis) }[0]})) AS latest
LIMIT 1
"""


def _quiet(settings: Settings) -> dict[str, Any]:
    with open_store(settings, start=False) as store:
        return store.read(QUIET_USER)[0]


def _orders(who: dict[str, Any], prefix: str, n: int, status: str) -> list[dict[str, Any]]:
    start = datetime.fromisoformat(who["latest"].replace("Z", "+00:00"))
    return [
        {"order_id": f"{prefix}-{i}", "user_id": who["user"], "product_id": who["product"],
         "amount": 480.0 + i, "ts": (start + timedelta(minutes=10 * i)).isoformat(),
         "status": status, "device_id": who["device"]}
        for i in range(n)
    ]  # fmt: skip


def _three_tables(
    who: dict[str, Any], prefix: str, status: str, rating: int, text: str
) -> dict[str, list[dict[str, Any]]]:
    """Two orders, a login and a review by ``who``: an event touching every event table."""
    return {"orders": _orders(who, prefix, 2, status),
            "logins": [{"user_id": who["user"], "device_id": who["device"], "ts": who["latest"]}],
            "reviews": [{"review_id": f"{prefix}-r", "user_id": who["user"],
                         "product_id": who["product"], "rating": rating, "text": text,
                         "ts": who["latest"]}]}  # fmt: skip


def test_five_chargebacks_raise_risk_at_once(client: TestClient, scored_graph: Settings) -> None:
    who = _quiet(scored_graph)
    url = f"/v1/users/{who['user']}/score"
    before = client.get(f"{url}?fresh=true", headers=HEADERS).json()
    got = client.post("/v1/events", json={"orders": _orders(who, "cb", 5, "chargeback")},
                      headers=HEADERS)  # fmt: skip
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["accepted"] == {"orders": 5}
    after = body["scores"][0]
    assert after["user_id"] == who["user"]
    assert after["fraud_probability"] > before["fraud_probability"] + 0.01
    assert after["credit_score"] <= before["credit_score"]
    assert "chargeback_rate" in [r["code"] for r in after["reasons"]]
    stored = client.get(url, headers=HEADERS).json()  # the event stored the new score
    assert stored["fraud_probability"] == pytest.approx(after["fraud_probability"])


def test_same_event_twice_changes_nothing(client: TestClient, scored_graph: Settings) -> None:
    who = _quiet(scored_graph)
    events = _three_tables(who, "idem", "paid", 4, "fine, thanks")
    first = client.post("/v1/events", json=events, headers=HEADERS)
    assert first.status_code == 200, first.text
    with open_store(scored_graph, start=False) as store:
        state = graph_state(store, SCORE_KEYS)
        second = client.post("/v1/events", json=events, headers=HEADERS)
        assert second.status_code == 200
        assert graph_state(store, SCORE_KEYS) == state
    assert second.json()["scores"][0]["fraud_probability"] == pytest.approx(
        first.json()["scores"][0]["fraud_probability"], abs=1e-6
    )


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ({"reviews": [{"review_id": "bad-r", "user_id": "U000001", "product_id": "P000001",
                       "rating": 7, "text": "x", "ts": "2026-01-01T00:00:00Z"}]},
         "reviews[0]: rating_out_of_range"),
        ({"orders": [{"order_id": "bad-o", "user_id": "nobody", "product_id": "P000001",
                      "amount": 1, "ts": "2026-01-01T00:00:00Z", "status": "paid"}]},
         "orders[0]: unknown_reference"),
        ({"orders": [{"order_id": "bad-o", "user_id": "U000001", "product_id": "P000001",
                      "amount": -1, "ts": "yesterday", "status": "stolen"}]},
         "orders[0]: bad_timestamp"),
        ({"logins": [{"user_id": "U000001", "device_id": "D000001"}]}, "missing field 'ts'"),
        ({"logins": [{"user_id": "U000001", "device_id": "D000001", "ts": "2026-01-01",
                      "password": "x"}]}, "unknown field 'password'"),
        ({}, "no events"),
    ],
)  # fmt: skip
def test_bad_rows_write_nothing(
    client: TestClient, scored_graph: Settings, events: dict[str, Any], expected: str
) -> None:
    with open_store(scored_graph, start=False) as store:
        state = graph_state(store)
        good = {"order_id": "good-o", "user_id": "U000001", "product_id": "P000001",
                "amount": 5, "ts": "2026-01-01T00:00:00Z", "status": "paid"}  # fmt: skip
        batch = {**events, "orders": [*events.get("orders", []), good]} if events else events
        got = client.post("/v1/events", json=batch, headers=HEADERS)
        assert got.status_code == 422, got.text
        assert expected in got.json()["error"]["message"]
        assert graph_state(store) == state


def test_thin_file_user(client: TestClient, scored_graph: Settings) -> None:
    """A user with no orders, logins or reviews gets a valid score and the thin-file reason."""
    frame = pd.DataFrame({"user_id": ["brand-new"], "created_at": [1_780_000_000_000],
                          "country": ["DE"]})  # fmt: skip
    with open_store(scored_graph, start=False) as store:
        store.write_columns(USERS, columns_for("users", frame))
    got = client.get("/v1/users/brand-new/score", headers=HEADERS)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["reasons"] == [
        {"code": "thin_file", "text": "thin file: no orders, logins or reviews yet"}
    ]
    assert 300 <= body["credit_score"] <= 850 and 0.0 < body["fraud_probability"] < 1.0


def test_event_answer_equals_the_reference_rescore(
    client: TestClient, scored_graph: Settings
) -> None:
    """An event's answer (its user read inside the event's own write query, scored on the
    stacked path) equals the user rescored afterwards from a separate neighbourhood read on
    the module-by-module reference path, within 1e-4: for a three-table event too."""
    from graph.neo4j.neighbourhood import read_neighbourhood

    who = _quiet(scored_graph)
    events = _three_tables(who, "ref", "refunded", 2, "late")
    got = client.post("/v1/events", json=events, headers=HEADERS)
    assert got.status_code == 200, got.text
    assert got.json()["accepted"] == {"logins": 1, "orders": 2, "reviews": 1}
    answer = got.json()["scores"][0]
    scorer = client.app.state.scorer  # type: ignore[attr-defined]
    snap, keys, _ = scorer.ensure_snapshot()
    hood = read_neighbourhood(scorer.store, who["user"], keys, scorer.settings.api_fanout)
    assert hood is not None and {o["order_id"] for o in hood.record["orders"]} >= {"ref-0", "ref-1"}
    stack, snap.stack = snap.stack, None
    try:
        reference = scorer.score_hood(snap, hood)
    finally:
        snap.stack = stack
    assert answer["fraud_probability"] == pytest.approx(reference["fraud_probability"], abs=1e-4)
    assert answer["default_probability"] == pytest.approx(
        reference["default_probability"], abs=1e-4
    )
    assert [r["code"] for r in answer["reasons"]] == [r["code"] for r in reference["reasons"]]


def test_several_neighbourhoods_in_one_read_equal_single_reads(scored_graph: Settings) -> None:
    """NEIGHBOURHOODS (the event's read, several users at once) gives each user exactly the
    record NEIGHBOURHOOD (one user) gives; an unknown id gives no record."""
    from graph.neo4j.neighbourhood import NEIGHBOURHOOD, NEIGHBOURHOODS

    with open_store(scored_graph, start=False) as store:
        ids = [r["u"] for r in store.read(
            "MATCH (u:User) RETURN u.user_id AS u ORDER BY u.user_id LIMIT 25")]  # fmt: skip
        many = {r["user_id"]: r for r in store.read(NEIGHBOURHOODS, user_ids=[*ids, "nobody"],
                                                    fanout=5000)}  # fmt: skip
        assert set(many) == set(ids)
        for user in ids:
            single = store.read(NEIGHBOURHOOD, user_id=user, fanout=5000)[0]
            assert _unordered({**single, "user_id": user}) == _unordered(many[user])


def _unordered(record: dict[str, Any]) -> dict[str, Any]:
    """Lists compared as multisets (two plans may list equal-timestamp orders differently)."""

    def key(item: Any) -> str:
        return json.dumps(item, sort_keys=True, default=str)

    return {k: sorted(map(key, v)) if isinstance(v, list) else v for k, v in record.items()}


def test_review_events_keep_product_aggregates_exact(
    client: TestClient, scored_graph: Settings
) -> None:
    """A new review on the busiest product and an existing review moved to it by an event:
    both products' stored review aggregates (and every other's) equal the traversal's, and
    the answer read them as written (it equals a fresh read's score)."""
    from tests.graph.review_aggregates import assert_exact

    who = _quiet(scored_graph)
    with open_store(scored_graph, start=False) as store:
        busy = store.read(
            "MATCH (p:Product)<-[:REVIEWED]-() RETURN p.product_id AS p, count(*) AS n "
            "ORDER BY n DESC, p LIMIT 1"
        )[0]
        old = store.read(
            "MATCH (:User)-[r:REVIEWED]->(p:Product) WHERE p.product_id <> $busy "
            "RETURN r.review_id AS r, p.product_id AS p, COUNT { (p)<-[:REVIEWED]-() } AS n "
            "ORDER BY r.review_id LIMIT 1",
            busy=busy["p"],
        )[0]
        events = {"reviews": [
            {"review_id": "agg-new", "user_id": who["user"], "product_id": busy["p"],
             "rating": 1, "text": "broke at once", "ts": who["latest"]},
            {"review_id": old["r"], "user_id": who["user"], "product_id": busy["p"],
             "rating": 2, "text": "moved here", "ts": who["latest"]},
        ]}  # fmt: skip
        got = client.post("/v1/events", json=events, headers=HEADERS)
        assert got.status_code == 200, got.text
        rows = {r["id"]: r for r in assert_exact(store)}
        assert rows[busy["p"]]["n"] == busy["n"] + 2 and rows[old["p"]]["n"] == old["n"] - 1
    fresh = client.get(f"/v1/users/{who['user']}/score?fresh=true", headers=HEADERS).json()
    assert got.json()["scores"][0]["fraud_probability"] == pytest.approx(
        fresh["fraud_probability"], abs=1e-4
    )
