"""Shared fixtures. Tests marked ``neo4j`` talk to a real Neo4j server over Bolt.

By default the session starts the project's own local server, with its own state folder and
port (so tests never touch the demo's graph). Set ``RISKGRAPH_TEST_NEO4J_URI`` (with
``RISKGRAPH_TEST_NEO4J_PASSWORD``) to run them against an existing server instead. Tests of the
offline bulk importer, which stops its server, get a second private one (``bulk_settings``).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graph.bundle import read_bundle
from graph.export import GraphExport, export_from_bundle
from graph.neo4j.store import GraphStore
from graph.synth.marketplace import GeneratorConfig, generate_marketplace
from serving.connect import local_server, open_store
from serving.settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _local_settings(
    state_env: str, state_name: str, port_env: str, port: int, **common: Any
) -> Settings:
    """The project's own local server for tests, in a state folder and on a port that the
    environment may override (sessions running side by side each take their own)."""
    return Settings(
        neo4j_uri=None,
        state_dir=Path(os.environ.get(state_env, Path.home() / ".local/state" / state_name)),
        neo4j_port=int(os.environ.get(port_env, str(port))),
        neo4j_heap="1g",
        neo4j_pagecache="256m",
        **common,
    )


@pytest.fixture(scope="session")
def neo4j_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    work = tmp_path_factory.mktemp("riskgraph")
    common = {
        "artifact_dir": work / "artifacts",
        "export_dir": work / "exports",
        "epochs": 60,
        "patience": 15,
    }
    uri = os.environ.get("RISKGRAPH_TEST_NEO4J_URI")
    if uri:
        return Settings(
            neo4j_uri=uri,
            neo4j_user=os.environ.get("RISKGRAPH_TEST_NEO4J_USER", "neo4j"),
            neo4j_password=os.environ["RISKGRAPH_TEST_NEO4J_PASSWORD"],
            state_dir=work,
            **common,
        )
    settings = _local_settings(
        "RISKGRAPH_TEST_STATE_DIR", "riskgraph-test", "RISKGRAPH_TEST_NEO4J_PORT", 7688, **common
    )
    local_server(settings).start()
    return settings


@pytest.fixture(scope="module")
def bulk_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A second, private local server for the offline bulk importer, which stops and restarts
    the server it loads into: the shared one above, used by other tests, must not notice. Its
    state folder and port: ``RISKGRAPH_TEST_BULK_STATE_DIR`` (default
    ``~/.local/state/riskgraph-test-bulk``) and ``RISKGRAPH_TEST_BULK_NEO4J_PORT`` (7690). Started
    for each module that asks and stopped at its end; two test sessions on the same folder would
    stop it under each other, so they take turns (a file lock, held while a module runs)."""
    settings = _local_settings(
        "RISKGRAPH_TEST_BULK_STATE_DIR", "riskgraph-test-bulk", "RISKGRAPH_TEST_BULK_NEO4J_PORT",
        7690, artifact_dir=tmp_path_factory.mktemp("bulk") / "artifacts",
    )  # fmt: skip
    server = local_server(settings)  # creates the state folder
    with (settings.state_dir / "bulk-tests.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        server.start()
        try:
            yield settings
        finally:
            server.stop()


@pytest.fixture
def store(neo4j_settings: Settings) -> Iterator[GraphStore]:
    """An empty database (every test starts from nothing)."""
    with open_store(neo4j_settings, start=False) as st:
        st.delete_all()
        yield st


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 800-user marketplace, written once per session."""
    out = tmp_path_factory.mktemp("bundle") / "market"
    generate_marketplace(GeneratorConfig(n_users=800, seed=7), out)
    return out


@pytest.fixture(scope="module")
def graph(small_bundle: Path) -> GraphExport:
    """The small marketplace as an in-memory graph (no Neo4j), shared by a test module."""
    return export_from_bundle(read_bundle(small_bundle))
