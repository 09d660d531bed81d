"""Score history and run integrity on a real Neo4j: a run killed half-way, then rerun."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from graph import schema
from graph.neo4j.runs import (
    IncompleteRunError,
    incomplete_run_ids,
    mark_complete,
    run_status,
    start_run,
)
from graph.neo4j.store import GraphStore
from graph.neo4j.writeback import write_user_scores
from tests.scores import random_scores

pytestmark = pytest.mark.neo4j
N_USERS = 1_000
BATCH = 100


class Killed(RuntimeError):
    """Stands for the process dying between two committed batches."""


def _users(store: GraphStore) -> None:
    store.ensure_schema()
    store.write_batches(
        "UNWIND $rows AS row CREATE (:User {user_id: row.id})",
        [{"id": f"U{i}"} for i in range(N_USERS)],
    )


def _scores(seed: int) -> pd.DataFrame:
    return random_scores(N_USERS, seed)


def _score(store: GraphStore, version: str, frame: pd.DataFrame, kill_after: int = 0) -> str:
    """One scoring run as `riskgraph score` does it; ``kill_after`` batches, then die."""
    run_id, _ = start_run(store, version, {"users": N_USERS})
    done = {"batches": 0}

    def progress(_: int) -> None:
        done["batches"] += 1
        if kill_after and done["batches"] == kill_after:
            raise Killed

    write_user_scores(store, frame, version, "2026-12-03T10:00:00+00:00", run_id,
                      incomplete_run_ids(store), BATCH, progress)  # fmt: skip
    assert mark_complete(store, run_id, {"fraud": {"auroc": 0.9}}) == 0
    return run_id


def _stored(store: GraphStore) -> pd.DataFrame:
    rows = store.read(
        "MATCH (u:User) RETURN u.user_id AS user_id, u.credit_score AS score, "
        "u.previous_score AS previous, u.previous_band AS previous_band, "
        "u.score_version AS version, u.previous_version AS previous_version, "
        "u.score_run AS run ORDER BY u.user_id"
    )
    return pd.DataFrame(rows).set_index("user_id").loc[[f"U{i}" for i in range(N_USERS)]]


def _crash(store: GraphStore, version: str, frame: pd.DataFrame) -> None:
    with pytest.raises(Killed):
        _score(store, version, frame, kill_after=3)


def test_killed_run_is_incomplete_and_a_rerun_completes_it(store: GraphStore) -> None:
    _users(store)
    first, second = _scores(1), _scores(2)
    run_a = _score(store, "v1", first)
    _crash(store, "v2", second)

    status = run_status(store)
    assert status.latest is not None and status.latest.status == schema.RUN_STARTED
    assert status.users_per_run[status.latest.run_id] == 3 * BATCH
    problem = status.problem()
    assert problem is not None and "did not finish" in problem and "300 of 1,000" in problem
    with pytest.raises(IncompleteRunError):
        status.require_consistent()

    run_b = _score(store, "v2", second)  # the rerun resumes the crashed run
    assert run_b == status.latest.run_id
    status = run_status(store)
    assert status.require_consistent().run_id == run_b
    assert [r.run_id for r in status.runs] == [run_b, run_a]
    assert status.latest is not None and status.latest.metrics == {"fraud": {"auroc": 0.9}}
    stored = _stored(store)
    assert (stored["version"] == "v2").all() and (stored["run"] == run_b).all()
    # every user, written before the crash or after, shifted exactly once
    assert stored["previous"].tolist() == first["credit_score"].tolist()
    assert stored["score"].tolist() == second["credit_score"].tolist()
    assert stored["previous_band"].tolist() == first["risk_band"].tolist()
    assert (stored["previous_version"] == "v1").all()

    moved = store.read(
        "MATCH (u:User) WHERE abs(u.credit_score - u.previous_score) > 100 RETURN count(u) AS n"
    )[0]["n"]
    assert moved == int((abs(second["credit_score"] - first["credit_score"]) > 100).sum())


def test_an_abandoned_run_never_becomes_history(store: GraphStore) -> None:
    _users(store)
    first, crashed, third = _scores(1), _scores(2), _scores(3)
    _score(store, "v1", first)
    _crash(store, "v2", crashed)  # never rerun: a new model is scored instead
    run_c = _score(store, "v3", third)
    stored = _stored(store)
    assert (stored["run"] == run_c).all()
    assert stored["previous"].tolist() == first["credit_score"].tolist()
    assert (stored["previous_version"] == "v1").all()
    # the newest run is complete, so reads go ahead despite the abandoned one
    assert run_status(store).require_consistent().run_id == run_c


def test_completion_waits_for_every_user(store: GraphStore) -> None:
    """A shard that finishes early cannot mark the run complete for the others."""
    _users(store)
    frame = _scores(1)
    run_id, resumed = start_run(store, "v1")
    assert not resumed and start_run(store, "v1") == (run_id, True)
    half: dict[str, Any] = {"run_id": run_id, "unshifted": [run_id], "batch_size": BATCH}
    write_user_scores(store, frame.iloc[:500], "v1", "2026-12-03T10:00:00+00:00", **half)
    assert mark_complete(store, run_id) == 500
    write_user_scores(store, frame.iloc[500:], "v1", "2026-12-03T10:00:00+00:00", **half)
    assert mark_complete(store, run_id) == 0
    assert run_status(store).require_consistent().version == "v1"
