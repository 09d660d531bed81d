"""Sharded batch scoring against the real Neo4j: two torchrun ranks write exactly what one
process writes, and a shard that died is rerun alone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, LiteralString

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from graph.neo4j.store import GraphStore
from serving.pipeline import load_context, run_import, run_train
from serving.settings import Settings
from training.predict import shard_rows

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]
QUIET = Console(quiet=True)
COLUMNS = ["risk_score", "default_probability", "credit_score", "risk_band", "reasons"]
SCORES: LiteralString = (
    "MATCH (u:User) RETURN u.user_id AS user_id, u.risk_score AS risk_score, "
    "u.default_probability AS default_probability, u.credit_score AS credit_score, "
    "u.risk_band AS risk_band, u.reasons AS reasons, u.score_version AS score_version"
)
CLEAR: LiteralString = (
    "UNWIND $rows AS row MATCH (u:User {user_id: row.user_id}) "
    "REMOVE u.risk_score, u.default_probability, u.credit_score, u.risk_band, u.reasons, "
    "u.score_version, u.scored_at"
)


@pytest.fixture(scope="module")
def trained(
    neo4j_settings: Settings, small_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """The small marketplace imported and a quick model trained; settings for the CLI runs."""
    from serving.connect import open_store

    work = tmp_path_factory.mktemp("shards")
    update = {"artifact_dir": work / "artifacts", "export_dir": work / "exports",
              "split": "time", "epochs": 3, "patience": 2}  # fmt: skip
    settings = neo4j_settings.model_copy(update=update)
    with open_store(settings, start=False) as store:
        store.delete_all()
        run_import(store, settings, small_bundle, work / "report", QUIET)
        run_train(store, settings, QUIET, load_context(store, settings, QUIET))
    yield settings


def cli(settings: Settings, *args: str) -> None:
    """``python -m serving.cli ARGS`` against the test server (one thread: bit-equal floats)."""
    env = {**os.environ, "PYTHONPATH": str(Path.cwd()), "OMP_NUM_THREADS": "1",
           "RISKGRAPH_ARTIFACT_DIR": str(settings.artifacts),
           "RISKGRAPH_EXPORT_DIR": str(settings.export_dir),
           "RISKGRAPH_STATE_DIR": str(settings.state_dir),
           "RISKGRAPH_NEO4J_PORT": str(settings.neo4j_port)}  # fmt: skip
    if settings.neo4j_uri:
        env["RISKGRAPH_NEO4J_URI"] = settings.neo4j_uri
        env["RISKGRAPH_NEO4J_USER"] = settings.neo4j_user
        if settings.neo4j_password is not None:
            env["RISKGRAPH_NEO4J_PASSWORD"] = settings.neo4j_password.get_secret_value()
    done = subprocess.run([sys.executable, "-m", "serving.cli", *args], env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


def graph_scores(store: GraphStore) -> pd.DataFrame:
    frame = pd.DataFrame(store.read(SCORES)).sort_values("user_id").reset_index(drop=True)
    frame["reasons"] = frame["reasons"].map(lambda r: None if r is None else tuple(r))
    return frame


def clear(store: GraphStore, user_ids: Any) -> None:
    store.write_batches(CLEAR, [{"user_id": u} for u in user_ids], 1000)


def parquet(paths: list[Path]) -> pd.DataFrame:
    # when and in which run differ between the two scorings; the scores must not
    frame = pd.concat([pd.read_parquet(p) for p in paths]).drop(columns=["scored_at", "score_run"])
    frame["reasons"] = frame["reasons"].map(tuple)
    frame["reason_codes"] = frame["reason_codes"].map(tuple)
    return frame.sort_values("user_id").reset_index(drop=True)


def test_two_ranks_equal_one_process_and_a_dead_shard_reruns_alone(trained: Settings) -> None:
    from serving.connect import open_store

    exports = trained.export_dir
    with open_store(trained, start=False) as store:
        cli(trained, "score")
        single = graph_scores(store)
        assert single["risk_score"].notna().all()
        whole = parquet([p for p in exports.glob("*.parquet") if ".part-" not in p.name])
        clear(store, single["user_id"])

        cli(trained, "score", "--nproc", "2")
        parts = sorted(exports.glob("*.part-*-of-00002.parquet"))
        assert len(parts) == 2
        pd.testing.assert_frame_equal(graph_scores(store), single)
        pd.testing.assert_frame_equal(parquet(parts), whole)

        # rank 1 "died": its users lost their scores; rerun shard 1 alone
        ids = np.asarray(single["user_id"])
        lost = ids[shard_rows(ids, 1, 2)]
        assert 0 < len(lost) < len(ids)
        clear(store, lost)
        assert graph_scores(store)["risk_score"].isna().sum() == len(lost)
        cli(trained, "score", "--shard", "1/2")
        pd.testing.assert_frame_equal(graph_scores(store), single)


def test_shards_cover_every_user_once_in_id_order() -> None:
    ids = np.array([f"u{i:04d}" for i in np.random.default_rng(1).permutation(1001)])
    parts = [shard_rows(ids, i, 3) for i in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(1001))
    assert max(ids[parts[0]]) < min(ids[parts[1]]) and max(ids[parts[1]]) < min(ids[parts[2]])
    with pytest.raises(ValueError, match="shard 3/3"):
        shard_rows(ids, 3, 3)
