"""The project's own Neo4j server: provisioning edge cases, against a real server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from graph.neo4j_local import LocalNeo4j, LocalNeo4jConfig
from graph.store import GraphStore

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]


def test_first_start_accepts_a_password_that_looks_like_an_option(tmp_path: Path) -> None:
    """token_urlsafe passwords start with '-' about once in 64 first starts."""
    port = int(os.environ.get("RISKGRAPH_TEST_FRESH_NEO4J_PORT", "7692"))
    server = LocalNeo4j(LocalNeo4jConfig(home=tmp_path / "neo4j", port=port, heap="512m",
                                         pagecache="64m"))  # fmt: skip
    server.home.mkdir(parents=True)
    (server.home / "password").write_text("-starts-like-an-option\n")
    try:
        status = server.start()
        assert status.running
        with GraphStore(server.uri, "neo4j", "-starts-like-an-option") as store:
            assert store.read("RETURN 1 AS one") == [{"one": 1}]
    finally:
        server.stop()
    assert not server.status().running
