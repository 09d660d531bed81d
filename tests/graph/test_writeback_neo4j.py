"""Scores written back to Neo4j land on the right nodes, with version and time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from graph.neo4j.store import GraphStore
from graph.neo4j.writeback import write_merchant_scores
from serving.pipeline import run_import
from serving.settings import Settings

pytestmark = pytest.mark.neo4j

READ = """
MATCH (m:Merchant) RETURN m.merchant_id AS id, m.risk_score AS risk,
       m.score_version AS version, toString(m.scored_at) AS at ORDER BY id
"""


def test_merchant_risk_is_written_to_each_merchant(
    store: GraphStore, neo4j_settings: Settings, small_bundle: Path, tmp_path: Path
) -> None:
    run_import(store, neo4j_settings, small_bundle, tmp_path / "r", Console(quiet=True))
    ids = [r["id"] for r in store.read(READ)]
    scores = pd.DataFrame(
        {"merchant_id": ids, "risk_score": [i / len(ids) for i in range(len(ids))]}
    )
    written = write_merchant_scores(store, scores, "v-test", "2026-06-01T00:00:00Z", batch_size=7)
    assert written == len(ids)
    rows = store.read(READ)
    assert [r["risk"] for r in rows] == scores["risk_score"].tolist()
    assert {r["version"] for r in rows} == {"v-test"}
    assert {r["at"] for r in rows} == {"2026-06-01T00:00:00Z"}
