"""Reads of a half-finished scoring run say so (issue 15), on a real Neo4j.

A run of model v1 completes; a run of model v2 dies after 3 batches of 100 (300 of 1,000
users on v2). ``riskgraph cypher``, ``query`` and ``ring`` then warn on stderr and add an
``_unfinished_run`` field to their JSON; the report's banner names the same counts. After the
rerun completes v2, the same commands print no warning and no field.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from graph.neo4j.runs import (
    incomplete_run_ids,
    mark_complete,
    run_status,
    start_run,
    unfinished_run,
)
from graph.neo4j.store import GraphStore
from graph.neo4j.writeback import write_user_scores
from serving.cli import app
from serving.connect import connection
from serving.report.data import run_warning
from serving.run_flag import FIELD
from serving.settings import Settings
from tests.scores import random_scores

pytestmark = pytest.mark.neo4j
N_USERS, BATCH, RING = 1_000, 100, "ring-unfinished"


class Killed(RuntimeError):
    """Stands for the process dying between two committed batches."""


def _graph(store: GraphStore) -> None:
    store.ensure_schema()
    store.write_batches(
        "UNWIND $rows AS row CREATE (:User {user_id: row.id})",
        [{"id": f"U{i}"} for i in range(N_USERS)],
    )
    store.write_batches(
        "MERGE (r:Ring {ring_id: $ring}) SET r.size = 3, r.risk_mean = 0.8, r.status = 'new', "
        "r.method = 'test', r.density = 1.0 WITH r UNWIND $rows AS row "
        "MATCH (u:User {user_id: row.u}) MERGE (u)-[:MEMBER_OF]->(r)",
        [{"u": "U0"}, {"u": "U1"}, {"u": "U999"}],
        ring=RING,
    )


def _scores(seed: int) -> pd.DataFrame:
    return random_scores(N_USERS, seed)


def _score(store: GraphStore, version: str, seed: int, kill_after: int = 0) -> str:
    """One scoring run as `riskgraph score` writes it; ``kill_after`` batches, then die."""
    run_id, _ = start_run(store, version)
    done = {"batches": 0}

    def progress(_: int) -> None:
        done["batches"] += 1
        if kill_after and done["batches"] == kill_after:
            raise Killed

    write_user_scores(store, _scores(seed), version, "2026-12-03T10:00:00+00:00", run_id,
                      incomplete_run_ids(store), BATCH, progress)  # fmt: skip
    assert mark_complete(store, run_id) == 0
    return run_id


@pytest.fixture
def cli(neo4j_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    conn = connection(neo4j_settings)
    env = {"RISKGRAPH_NEO4J_URI": conn.uri, "RISKGRAPH_NEO4J_PASSWORD": conn.password or "",
           "RISKGRAPH_STATE_DIR": str(neo4j_settings.state_dir),
           "RISKGRAPH_NEO4J_PORT": str(neo4j_settings.neo4j_port)}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return CliRunner()


COMMANDS: list[list[str]] = [
    ["cypher", "MATCH (u:User) RETURN u.user_id AS id, u.credit_score AS score LIMIT 3"],
    ["query", "ring-members", "-p", f"ring_id={RING}"],
    ["ring", RING],
]


def _json_rows(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_every_score_reading_command_flags_an_unfinished_run(
    store: GraphStore, cli: CliRunner
) -> None:
    _graph(store)
    _score(store, "v1", seed=1)
    with pytest.raises(Killed):
        _score(store, "v2", seed=2, kill_after=3)
    flag = unfinished_run(store)
    assert flag is not None and flag.version == "v2"
    assert (flag.on_run, flag.on_older, flag.unscored) == (300, 700, 0)
    assert flag.older_versions == ("v1",)
    expected = f"score run {flag.run_id} (model v2) did not finish: 300 users carry its " \
        "scores, 700 an older run's (model v1)"  # fmt: skip

    for args in COMMANDS:
        plain = cli.invoke(app, args)
        assert plain.exit_code == 0, (args, plain.output)
        warning = " ".join(plain.stderr.split())  # rich may wrap the line
        assert "warning:" in warning and expected in warning, (args, plain.stderr)
        assert flag.run_id not in plain.stdout  # the warning goes to stderr only
        as_json = cli.invoke(app, [*args, "--json"])
        assert as_json.exit_code == 0, (args, as_json.output)
        rows = _json_rows(as_json.stdout)
        assert rows and all(row[FIELD]["run_id"] == flag.run_id for row in rows), args
        assert all(row[FIELD]["users_on_run"] == 300 for row in rows)
        assert all(row[FIELD]["users_on_older_runs"] == 700 for row in rows)
        assert all(row[FIELD]["version"] == "v2" for row in rows)

    status = run_status(store)
    shown = status.latest_complete
    assert shown is not None and shown.version == "v1"
    banner = run_warning(store, status, shown)
    assert banner is not None and expected in banner and shown.run_id in banner

    _score(store, "v2", seed=2)  # the rerun completes the run: nothing to say any more
    assert unfinished_run(store) is None
    status = run_status(store)
    assert status.latest is not None and run_warning(store, status, status.latest) is None
    for args in COMMANDS:
        plain = cli.invoke(app, args)
        assert plain.exit_code == 0 and plain.stderr == "", (args, plain.stderr)
        rows = _json_rows(cli.invoke(app, [*args, "--json"]).stdout)
        assert rows and not any(FIELD in row for row in rows), args


def test_a_graph_never_scored_is_not_flagged(store: GraphStore, cli: CliRunner) -> None:
    _graph(store)
    assert unfinished_run(store) is None
    plain = cli.invoke(app, COMMANDS[0])
    assert plain.exit_code == 0 and plain.stderr == ""
