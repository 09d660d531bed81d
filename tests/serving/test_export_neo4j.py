"""`riskgraph export` against a real Neo4j: filters, manifest, refusal of an unfinished run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from graph.neo4j.runs import IncompleteRunError, incomplete_run_ids, mark_complete, start_run
from graph.neo4j.store import GraphStore
from graph.neo4j.writeback import write_user_scores
from serving.export.command import run_export
from serving.export.pseudonym import PseudonymKeyError, check_key, pseudonym
from serving.export.tables import ExportFilters
from serving.export.write import verify_export
from serving.settings import Settings

pytestmark = pytest.mark.neo4j
N = 200
AT = "2026-12-03T10:00:00+00:00"


def _scores(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    credit = rng.integers(300, 850, N)
    return pd.DataFrame(
        {"user_id": [f"U{i}" for i in range(N)], "risk_score": rng.random(N),
         "default_probability": rng.random(N), "credit_score": credit,
         "risk_band": np.where(credit >= 600, "low", "high"), "reasons": [["why"]] * N}
    )  # fmt: skip


def _run(store: GraphStore, version: str, frame: pd.DataFrame, complete: bool = True) -> None:
    run_id, _ = start_run(store, version)
    write_user_scores(store, frame, version, AT, run_id, incomplete_run_ids(store), 50)
    if complete:
        assert mark_complete(store, run_id) == 0


@pytest.fixture
def two_runs(store: GraphStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    store.write_batches("UNWIND $rows AS r CREATE (:User {user_id: r.id})",
                        [{"id": f"U{i}"} for i in range(N)])  # fmt: skip
    store.write_batches(
        "CREATE (r:Ring {ring_id: 'ring-1', status: 'new', size: 3, risk_mean: 0.9}) "
        "WITH r MATCH (u:User) WHERE u.user_id IN ['U1', 'U2', 'U3'] CREATE (u)-[:MEMBER_OF]->(r)",
        [{}],
    )
    first, second = _scores(1), _scores(2)
    _run(store, "v1", first)
    _run(store, "v2", second)
    return first, second


def _read(out: Path, table: str) -> pd.DataFrame:
    manifest = json.loads((out / "manifest.json").read_text())
    parts = [pd.read_parquet(out / p["file"]) for p in manifest["tables"][table]["parts"]]
    return pd.concat(parts, ignore_index=True)


def test_filters_and_manifest(
    store: GraphStore, neo4j_settings: Settings, two_runs: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path: Path,
) -> None:  # fmt: skip
    first, second = two_runs
    settings = neo4j_settings.model_copy(update={"export_part_rows": 40})
    manifest = run_export(store, settings, tmp_path / "all")
    assert manifest["model_version"] == "v2" and manifest["run_status"] == "complete"
    assert (
        manifest["tables"]["users"]["rows"] == N and len(manifest["tables"]["users"]["parts"]) == 5
    )
    assert verify_export(tmp_path / "all") == []
    users = _read(tmp_path / "all", "users").set_index("user_id").loc[second["user_id"]]
    assert users["credit_score"].tolist() == second["credit_score"].tolist()
    assert users["previous_score"].tolist() == first["credit_score"].tolist()
    assert _read(tmp_path / "all", "members")["user_id"].tolist() == ["U1", "U2", "U3"]

    change = (second["credit_score"] - first["credit_score"]).abs()
    f = ExportFilters(bands=("high",), min_score=400, max_score=550, min_change=100)
    run_export(store, settings, tmp_path / "some", filters=f, columns=["user_id", "score_change"])
    some = _read(tmp_path / "some", "users")
    want = second[(second["credit_score"].between(400, 550)) & (change >= 100)]
    assert sorted(some["user_id"]) == sorted(want["user_id"]) and len(want) > 0
    assert list(some.columns) == ["user_id", "score_change"]

    run_export(store, settings, tmp_path / "ring", filters=ExportFilters(ring_id="ring-1"))
    assert sorted(_read(tmp_path / "ring", "users")["user_id"]) == ["U1", "U2", "U3"]
    with pytest.raises(ValueError, match="not in the users table"):
        run_export(store, settings, tmp_path / "bad", columns=["user_id", "email"])


def test_pseudonymised_export_joins_back_only_with_the_key(
    store: GraphStore, neo4j_settings: Settings, two_runs: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path: Path,
) -> None:  # fmt: skip
    with pytest.raises(PseudonymKeyError):
        run_export(store, neo4j_settings, tmp_path / "refused", pseudonymise=True)
    assert not (tmp_path / "refused").exists()
    key = "s3cret-key-of-the-risk-team"
    settings = neo4j_settings.model_copy(update={"pseudonym_key": SecretStr(key)})
    manifest = run_export(store, settings, tmp_path / "p", pseudonymise=True)
    assert manifest["pseudonymised"] and manifest["pseudonym_key_id"]
    users, members = _read(tmp_path / "p", "users"), _read(tmp_path / "p", "members")
    assert not users["user_id"].str.startswith("U").any()
    assert set(members["user_id"]) <= set(users["user_id"])  # files still join
    assert pseudonym(check_key(key), "user", "U7") in set(users["user_id"])


def test_an_unfinished_run_is_refused_unless_allowed(
    store: GraphStore, neo4j_settings: Settings, two_runs: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _run(store, "v3", _scores(3).iloc[:50], complete=False)
    with pytest.raises(IncompleteRunError, match="did not finish"):
        run_export(store, neo4j_settings, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    manifest = run_export(store, neo4j_settings, tmp_path / "y", allow_incomplete=True)
    assert "did not finish" in manifest["warning"] and manifest["run_status"] == "started"
    # the command line: one line, exit code 2, nothing written
    from serving.cli import app

    for name, value in {"STATE_DIR": neo4j_settings.state_dir,
                        "NEO4J_PORT": neo4j_settings.neo4j_port}.items():  # fmt: skip
        monkeypatch.setenv(f"RISKGRAPH_{name}", str(value))
    result = CliRunner().invoke(app, ["export", "--out", str(tmp_path / "z")])
    assert result.exit_code == 2 and "did not finish" in result.output
    assert not (tmp_path / "z").exists()


def test_users_are_read_page_by_page_without_loss(
    store: GraphStore, two_runs: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    from serving.export.tables import read_users

    rows = read_users(store, ExportFilters().params(), page=30)
    ids = [r[0] for r in rows]
    assert len(ids) == N and ids == sorted(ids) and len(set(ids)) == N
    high = read_users(store, ExportFilters(bands=("high",)).params(), page=7)
    assert sorted(r[0] for r in high) == sorted(two_runs[1].query("risk_band == 'high'")["user_id"])
