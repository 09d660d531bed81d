"""A scored 800-user marketplace in the test Neo4j and the service on top of it.

Training runs once per session (a small cross-fit: 2 folds, few epochs; the tests check the
service, not the model's accuracy); each module re-imports and re-scores the graph, because
other test modules empty the database between tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from rich.console import Console

from serving.api.app import create_app
from serving.connect import open_store
from serving.pipeline import load_context, run_import, run_rings, run_score, run_train
from serving.settings import Settings

KEY = "test-key-0123456789abcdef"
REVOKED = "revoked-key-0123456789abc"
HEADERS = {"X-API-Key": KEY}


@pytest.fixture(scope="session")
def api_settings(neo4j_settings: Settings) -> Settings:
    return neo4j_settings.model_copy(
        update={
            "epochs": 25, "patience": 6, "folds": 2,
            "api_keys": SecretStr(f"{KEY},{REVOKED}"), "api_revoked_keys": SecretStr(REVOKED),
            "api_max_batch": 20, "api_max_event_rows": 50, "api_max_body_bytes": 64 * 1024,
        }
    )  # fmt: skip


@pytest.fixture(scope="module")
def scored_graph(
    api_settings: Settings, small_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Import, (train once per session), score and detect rings."""
    console = Console(quiet=True)
    with open_store(api_settings, start=False) as store:
        store.delete_all()
        run_import(store, api_settings, small_bundle, tmp_path_factory.mktemp("report"), console)
        ctx = load_context(store, api_settings, console)
        if not (api_settings.artifacts / "LATEST").exists():
            run_train(store, api_settings, console, ctx)
        run_score(store, api_settings, console, ctx)
        run_rings(store, api_settings, console, ctx)
    return api_settings


@pytest.fixture(scope="module")
def client(scored_graph: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(scored_graph)) as c:
        yield c
