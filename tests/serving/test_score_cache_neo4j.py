"""The score cache against the real Neo4j: other processes' writes show up within the bound,
an unfinished run is reported (never mixed silently), the snapshot follows new runs, and an
outage turns cached reads into 503s within the bound."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from graph.neo4j.runs import incomplete_run_ids, mark_complete, start_run
from graph.neo4j.writeback import write_user_scores
from serving.api.app import create_app
from serving.connect import connection, open_store
from serving.settings import Settings
from tests.serving.conftest import HEADERS
from tests.serving.proxy import Proxy
from tests.serving.test_events_neo4j import _orders, _quiet

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]

REFRESH_S = 0.3
SCORES = """
MATCH (u:User) WHERE u.risk_score IS NOT NULL
RETURN u.user_id AS user_id, u.risk_score AS risk_score,
       u.default_probability AS default_probability, u.credit_score AS credit_score,
       u.risk_band AS risk_band, coalesce(u.reasons, []) AS reasons
ORDER BY user_id
"""


@pytest.fixture(scope="module")
def fast_settings(scored_graph: Settings) -> Settings:
    return scored_graph.model_copy(update={"api_cache_refresh_s": REFRESH_S})


@pytest.fixture(scope="module")
def app_client(fast_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(fast_settings)) as c:
        yield c


def _wait(check: Callable[[], Any], limit_s: float) -> float:
    """Seconds until ``check()`` is truthy; fails after ``limit_s``."""
    started = time.perf_counter()
    while not check():
        assert time.perf_counter() - started < limit_s, f"not within {limit_s} s"
        time.sleep(0.05)
    return time.perf_counter() - started


def _batch_run(settings: Settings, version: str, change: dict[str, float], *,
               only: int | None = None, complete: bool = True) -> str:  # fmt: skip
    """What another process's `riskgraph score` does to the graph: a ScoreRun and every
    user's score written under it (``change``: new fraud probabilities; ``only``: stop after
    that many users, as a run killed half-way)."""
    with open_store(settings, start=False) as store:
        frame = pd.DataFrame(store.read(SCORES))
        for user, risk in change.items():
            frame.loc[frame["user_id"] == user, "risk_score"] = risk
        run_id, _ = start_run(store, version)
        part = frame.head(only) if only is not None else frame
        write_user_scores(store, part, version, datetime.now(UTC).isoformat(timespec="seconds"),
                          run_id, incomplete_run_ids(store))  # fmt: skip
        if complete:
            assert mark_complete(store, run_id) == 0
    return run_id


def _score(client: TestClient, user: str) -> dict[str, Any]:
    got = client.get(f"/v1/users/{user}/score", headers=HEADERS)
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


def test_batch_run_from_another_process_shows_within_bound(
    app_client: TestClient, fast_settings: Settings
) -> None:
    scorer = app_client.app.state.scorer  # type: ignore[attr-defined]
    user = _score(app_client, _quiet(fast_settings)["user"])
    assert scorer.cache.usable() and scorer.cache.size > 0  # answered from memory
    run_id = _batch_run(fast_settings, "other-process-v1", {user["user_id"]: 0.123456})

    def served() -> bool:  # the new score, of the finished run, from memory again
        now = _score(app_client, user["user_id"])
        return bool(now["fraud_probability"] == 0.123456 and now["run_id"] == run_id
                    and now["run_complete"] is True and scorer.cache.usable())  # fmt: skip

    took = _wait(served, limit_s=REFRESH_S + 3.0)
    assert _score(app_client, user["user_id"])["source"] == "batch"
    print(f"batch score visible after {took:.2f} s (refresh {REFRESH_S} s)")
    # the snapshot follows the new complete run, rebuilt in the background and swapped whole
    _wait(lambda: scorer.current[2] == run_id, limit_s=120)


def test_unfinished_run_is_reported_not_mixed(
    app_client: TestClient, fast_settings: Settings
) -> None:
    scorer = app_client.app.state.scorer  # type: ignore[attr-defined]
    with open_store(fast_settings, start=False) as store:
        first = store.read(SCORES)[0]["user_id"]
    run_id = _batch_run(fast_settings, "killed-v2", {first: 0.654321}, only=5, complete=False)
    _wait(lambda: _score(app_client, first)["run_complete"] is False, limit_s=REFRESH_S + 3.0)
    answer = _score(app_client, first)
    assert answer["run_id"] == run_id and answer["fraud_probability"] == 0.654321
    assert not scorer.cache.usable()  # reads go to Neo4j while the run is unfinished
    many = app_client.post("/v1/score", json={"user_ids": [first]}, headers=HEADERS).json()
    assert many["scores"][0]["run_complete"] is False
    ready = app_client.get("/readyz").json()
    assert ready["score_run"] == {"run_id": run_id, "run_complete": False}
    assert run_id in ready["warning"] and ready["score_cache"]["serving"] is False
    # the run resumed and finished: answers and the cache are whole again
    assert _batch_run(fast_settings, "killed-v2", {first: 0.654321}) == run_id
    _wait(lambda: scorer.cache.usable(), limit_s=REFRESH_S + 3.0)
    assert _score(app_client, first)["run_complete"] is True


def test_online_write_of_another_service_shows_within_bound(
    app_client: TestClient, fast_settings: Settings
) -> None:
    who = _quiet(fast_settings)
    with TestClient(create_app(fast_settings)) as other:
        got = other.post("/v1/events", json={"orders": _orders(who, "other", 3, "chargeback")},
                         headers=HEADERS)  # fmt: skip
        assert got.status_code == 200, got.text
        new = got.json()["scores"][0]["fraud_probability"]
    _wait(lambda: _score(app_client, who["user"])["fraud_probability"] == pytest.approx(new),
          limit_s=REFRESH_S + 3.0)  # fmt: skip
    assert _score(app_client, who["user"])["source"] == "online"


def test_own_event_is_served_at_once(app_client: TestClient, fast_settings: Settings) -> None:
    who = _quiet(fast_settings)
    got = app_client.post("/v1/events", json={"orders": _orders(who, "own", 2, "refunded")},
                          headers=HEADERS)  # fmt: skip
    assert got.status_code == 200, got.text
    after = got.json()["scores"][0]
    stored = _score(app_client, who["user"])
    assert stored["fraud_probability"] == after["fraud_probability"]
    assert [r["code"] for r in stored["reasons"]] == [r["code"] for r in after["reasons"]]


def test_outage_ends_cached_answers_within_bound(fast_settings: Settings) -> None:
    conn = connection(fast_settings)
    proxy = Proxy(int(conn.uri.rsplit(":", 1)[1]))
    proxy.restore()
    settings = fast_settings.model_copy(update={
        "neo4j_uri": f"bolt://127.0.0.1:{proxy.port}", "neo4j_password": SecretStr(conn.password),
    })  # fmt: skip
    user = _quiet(fast_settings)["user"]
    try:
        with TestClient(create_app(settings)) as client:
            assert client.get(f"/v1/users/{user}/score", headers=HEADERS).status_code == 200
            _wait(lambda: client.app.state.scorer.cache.usable(), 10.0)  # type: ignore[attr-defined]
            proxy.cut()
            bound = 2 * REFRESH_S + settings.api_neo4j_timeout_s + 1.0  # + one slow look
            took = _wait(lambda: client.get(f"/v1/users/{user}/score",
                                            headers=HEADERS).status_code == 503, bound)  # fmt: skip
            print(f"cached reads ended {took:.2f} s after the cut")
            proxy.restore()
            _wait(lambda: client.get(f"/v1/users/{user}/score",
                                     headers=HEADERS).status_code == 200, 10.0)  # fmt: skip
            _wait(lambda: client.app.state.scorer.cache.usable(), 10.0)  # type: ignore[attr-defined]
    finally:
        proxy.cut()


def test_snapshot_rebuilt_on_timer(fast_settings: Settings) -> None:
    """RISKGRAPH_API_SNAPSHOT_REFRESH_S: the snapshot is rebuilt and swapped whole while the
    service keeps answering from the old one."""
    settings = fast_settings.model_copy(update={"api_snapshot_refresh_s": 1.0})
    user = _quiet(fast_settings)["user"]
    with TestClient(create_app(settings)) as client:
        scorer = client.app.state.scorer  # type: ignore[attr-defined]
        first = scorer.current
        assert first is not None
        _wait(lambda: scorer.current is not first, limit_s=120)
        assert scorer.current[0] is not first[0] and scorer.current[0].stack is not None
        fresh = client.get(f"/v1/users/{user}/score?fresh=true", headers=HEADERS)
        assert fresh.status_code == 200 and fresh.json()["source"] == "online"
