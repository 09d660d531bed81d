"""Shared fixtures. Tests marked ``neo4j`` talk to a real Neo4j server over Bolt.

By default the session starts the project's own local server, with its own state folder and
port (so tests never touch the demo's graph). Set ``RISKGRAPH_TEST_NEO4J_URI`` (with
``RISKGRAPH_TEST_NEO4J_PASSWORD``) to run them against an existing server instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from graph.bundle import read_bundle
from graph.export import GraphExport, export_from_bundle
from graph.neo4j.store import GraphStore
from graph.synth.marketplace import GeneratorConfig, generate_marketplace
from serving.connect import local_server, open_store
from serving.settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


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
    state = Path(
        os.environ.get("RISKGRAPH_TEST_STATE_DIR", Path.home() / ".local/state/riskgraph-test")
    )
    settings = Settings(
        neo4j_uri=None,
        state_dir=state,
        neo4j_port=int(os.environ.get("RISKGRAPH_TEST_NEO4J_PORT", "7688")),
        neo4j_heap="1g",
        neo4j_pagecache="256m",
        **common,
    )
    local_server(settings).start()
    return settings


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
