"""Hostile input to the service: clean 4xx answers and not one change in the database."""

from __future__ import annotations

import urllib.parse

import pytest
from fastapi.testclient import TestClient

from serving.connect import open_store
from serving.settings import Settings
from tests.serving.conftest import HEADERS
from tests.serving.graph_state import graph_state

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]

IDS = [
    "x' OR 1=1 //", "U000001\" }) DETACH DELETE n //", "}) MATCH (n) DETACH DELETE n WITH 1 AS x MATCH ({",
    "$user_id", "`User`", "\\u0000", "用户-🙂-é", "\u202e\u2066", "a\nb", "%00", "../../etc/passwd",
    "x" * 10_000,
]  # fmt: skip


def test_hostile_requests_change_nothing(client: TestClient, scored_graph: Settings) -> None:
    with open_store(scored_graph, start=False) as store:
        before = graph_state(store)
        statuses = []
        for uid in IDS:
            path = "/v1/users/" + urllib.parse.quote(uid, safe="") + "/score"
            statuses.append(client.get(path, headers=HEADERS).status_code)
            statuses.append(client.get(path + "?fresh=true", headers=HEADERS).status_code)
            statuses.append(client.get("/v1/rings/" + urllib.parse.quote(uid, safe=""),
                                       headers=HEADERS).status_code)  # fmt: skip
        bodies: list[bytes] = [
            b"", b"{", b"[]", b"null", b'{"user_ids": "U000001"}', b'{"user_ids": [1, 2]}',
            b'{"user_ids": [null]}', b'{"user_ids": []}', b'{"user_ids": ["a"], "extra": 1}',
            b"\xff\xfe", b'{"user_ids": ["\\ud800"]}', b'{"user_ids": [' + b'"x",' * 30 + b'"x"]}',
        ]  # fmt: skip
        for body in bodies:
            for route in ("/v1/score", "/v1/events"):
                got = client.post(route, content=body,
                                  headers={**HEADERS, "content-type": "application/json"})  # fmt: skip
                statuses.append(got.status_code)
                assert "error" in got.json()
        events = [
            {"orders": [{"order_id": IDS[1], "user_id": IDS[0], "product_id": IDS[2], "amount": "1",
                         "ts": "2026-01-01", "status": "paid"}]},
            {"reviews": [{"review_id": "r", "user_id": IDS[-1], "product_id": "P000001",
                          "rating": 5, "text": "x", "ts": "2026-01-01"}]},
            {"logins": [{"user_id": {"$ne": 1}, "device_id": "D1", "ts": "2026-01-01"}]},
            {"orders": [{"order_id": "o", "user_id": "U000001", "product_id": "P000001",
                         "amount": "1e400", "ts": "2026-01-01", "status": "paid"}]},
            {"logins": [{"user_id": "U000001", "device_id": "D000001", "ts": "2026-01-01"}] * 51},
        ]  # fmt: skip
        for event in events:
            got = client.post("/v1/events", json=event, headers=HEADERS)
            statuses.append(got.status_code)
        assert all(400 <= s < 500 for s in statuses), statuses
        assert 500 not in statuses
        assert graph_state(store) == before
