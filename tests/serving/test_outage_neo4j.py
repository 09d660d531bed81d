"""Neo4j unreachable: 503 within a second, no hang, and recovery without a restart.

The shared test server is never stopped: the app talks to it through a local TCP forwarder
that the test cuts and restores.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from serving.api.app import create_app
from serving.connect import connection
from serving.settings import Settings
from tests.serving.conftest import HEADERS
from tests.serving.proxy import Proxy

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]


@pytest.fixture
def proxied(scored_graph: Settings) -> Iterator[tuple[TestClient, Proxy, str]]:
    conn = connection(scored_graph)
    proxy = Proxy(int(conn.uri.rsplit(":", 1)[1]))
    proxy.restore()
    settings = scored_graph.model_copy(update={
        "neo4j_uri": f"bolt://127.0.0.1:{proxy.port}", "neo4j_password": SecretStr(conn.password),
        "api_cache": False,  # every read asks Neo4j; the cache's outage bound: test_score_cache
    })  # fmt: skip
    with TestClient(create_app(settings)) as client:
        user = client.post("/v1/score", json={"user_ids": ["U000001"]}, headers=HEADERS)
        assert user.status_code == 200
        yield client, proxy, "U000001"
    proxy.cut()


def test_outage_answers_503_fast_and_recovers(proxied: tuple[TestClient, Proxy, str]) -> None:
    client, proxy, user = proxied
    url = f"/v1/users/{user}/score"
    assert client.get(url, headers=HEADERS).status_code == 200
    proxy.cut()
    for path in (url, f"{url}?fresh=true", "/v1/rings"):
        started = time.perf_counter()
        got = client.get(path, headers=HEADERS)
        took = time.perf_counter() - started
        assert got.status_code == 503, got.text
        assert "Neo4j at bolt://127.0.0.1" in got.json()["error"]["message"]
        assert took < 1.0, f"{path} took {took:.2f} s"
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
    proxy.restore()
    deadline = time.monotonic() + 10
    while client.get(url, headers=HEADERS).status_code != 200:
        assert time.monotonic() < deadline, "the service did not recover by itself"
        time.sleep(0.2)
    assert client.get("/readyz").status_code == 200


def test_starts_without_neo4j_and_refuses_without_keys(scored_graph: Settings) -> None:
    dead = scored_graph.model_copy(update={
        "neo4j_uri": "bolt://127.0.0.1:9", "neo4j_password": SecretStr("x"),
    })  # fmt: skip
    with TestClient(create_app(dead)) as client:
        started = time.perf_counter()
        got = client.get("/v1/users/U000001/score", headers=HEADERS)
        assert got.status_code == 503 and time.perf_counter() - started < 1.0
        assert client.get("/readyz").json()["checks"]["neo4j"] is False
    for keys in ("", " , ", "short"):
        with pytest.raises(ValueError, match="RISKGRAPH_API_KEYS"):
            create_app(scored_graph.model_copy(update={"api_keys": SecretStr(keys)}))
