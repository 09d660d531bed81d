"""The project's own Neo4j server: provisioning edge cases, against a real server."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from graph.neo4j.server import LocalNeo4j, LocalNeo4jConfig
from graph.neo4j.store import GraphStore

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


def test_first_start_never_shows_the_password_in_any_process_arguments(tmp_path: Path) -> None:
    """Any local user can read /proc/*/cmdline; poll them all while a fresh server starts."""
    port = int(os.environ.get("RISKGRAPH_TEST_FRESH_NEO4J_PORT", "7692"))
    server = LocalNeo4j(LocalNeo4jConfig(home=tmp_path / "neo4j", port=port, heap="512m",
                                         pagecache="64m"))  # fmt: skip
    secret = server.password().encode()
    seen_admin, leaks = [], []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    args = cmdline.read_bytes()
                except OSError:
                    continue
                if b"admin-args-" in args:
                    seen_admin.append(args)
                if secret in args:
                    leaks.append(args)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        assert server.start().running
        with GraphStore(server.uri, "neo4j", secret.decode()) as store:
            assert store.read("RETURN 1 AS one") == [{"one": 1}]
    finally:
        done.set()
        poller.join()
        server.stop()
    assert seen_admin, "the poller never saw the password being set: the test proves nothing"
    assert leaks == []
    assert not list((server.home / "run").glob("admin-args-*"))  # the argfile is gone
    loose = [
        f"{p} {oct(p.stat().st_mode & 0o777)}"
        for p in [server.home, *server.home.rglob("*")]
        if p.stat().st_mode & 0o077
    ]
    assert loose == []  # store files, logs, conf, password: this user's only
