"""The analyst query's guard and the CLI's failure modes, against the real Neo4j.

Items of issue 17: the plan check (6), typed parameters and strict JSON (7), one-line errors
from a server that answers (8; a refused, silent or frozen one: ``test_cli_outage.py``), the
demo that refuses a non-empty database (5), and `reset`.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from neo4j.exceptions import ClientError
from typer.testing import CliRunner

from graph.neo4j.store import GraphStore
from serving.connect import connection, local_server
from serving.queries import WriteRefusedError, run_read_query
from serving.query_guard import QueryRefusedError, QuerySyntaxError
from serving.settings import Settings
from tests.bundles import write_bundle

pytestmark = [pytest.mark.neo4j]
ROOT = Path(__file__).resolve().parents[2]


# -- helpers -----------------------------------------------------------------------------
@pytest.fixture
def loopback_http(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A tiny HTTP server on 127.0.0.1 only, serving one CSV; yields its URL and the paths hit."""
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)  # type: ignore[arg-type]

        def do_GET(self) -> None:
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/x.csv", hits
    finally:
        server.shutdown()
        server.server_close()


def _cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a `riskgraph` subprocess talking to the test server."""
    conn = connection(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKGRAPH_")}
    env.update(
        PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
        RISKGRAPH_NEO4J_URI=conn.uri, RISKGRAPH_NEO4J_PASSWORD=conn.password,
        RISKGRAPH_STATE_DIR=str(settings.state_dir), RISKGRAPH_NEO4J_PORT=str(settings.neo4j_port),
        RISKGRAPH_ARTIFACT_DIR=str(settings.artifacts), RISKGRAPH_EXPORT_DIR=str(settings.export_dir),
    )  # fmt: skip
    env.update(extra)
    return env


def _riskgraph(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "serving.cli", *args], capture_output=True,
                         text=True, env=env, timeout=timeout, check=False)  # fmt: skip
    return out, time.monotonic() - started


def _one_line(out: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr and lines[0].startswith("error: ")
    return lines[0]


# -- item 6: the plan check ---------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "LOAD CSV FROM $url AS row RETURN row",
        "load csv with headers from $url as row return row",
        "CALL () { LOAD CSV FROM $url AS row RETURN row } RETURN count(*) AS n",
        "MATCH (n) WITH count(n) AS c LOAD CSV FROM $url AS row RETURN row, c",
    ],
)
def test_load_csv_from_a_loopback_url_is_refused(
    store: GraphStore, loopback_http: tuple[str, list[str]], query: str
) -> None:
    url, hits = loopback_http
    with pytest.raises(QueryRefusedError, match="LOAD CSV"):
        run_read_query(store, query, {"url": url})
    assert hits == []  # the server never fetched the URL


def test_the_server_itself_refuses_urls_and_files(
    store: GraphStore, loopback_http: tuple[str, list[str]], neo4j_settings: Settings
) -> None:
    """Second line of defence, without the plan check: the server's own settings."""
    if neo4j_settings.neo4j_uri:
        pytest.skip("an external server keeps its own configuration")
    url, hits = loopback_http
    with pytest.raises(ClientError, match="blocked"):
        store.read("LOAD CSV FROM $url AS row RETURN row", url=url)
    assert hits == []
    imported = local_server(neo4j_settings).home / "import" / "inside.csv"
    imported.write_text("a\n1\n")
    for target in ("file:///inside.csv", "file:///../password", "file:///etc/passwd"):
        with pytest.raises(ClientError, match="allow_csv_import_from_file_urls"):
            store.read("LOAD CSV FROM $url AS row RETURN row", url=target)


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("SHOW USERS", "Administration"),
        ("SHOW CURRENT USER", "Administration"),
        ("SHOW DATABASES", "Administration"),
        ("SHOW TRANSACTIONS", "ShowTransactions"),
        ("SHOW SETTINGS", "ShowSettings"),
        ("SHOW PROCEDURES", "ShowProcedures"),
        ("TERMINATE TRANSACTIONS 'neo4j-transaction-1'", "TerminateTransactions"),
        ("CALL dbms.listConfig()", "dbms.listConfig"),
        ("CALL dbms.listConfig() YIELD name RETURN name", "dbms.listConfig"),
        ("/* hidden */ call dbms.listConnections()", "dbms.listConnections"),
        ("CALL db.clearQueryCaches()", "db.clearQueryCaches"),
        ("CALL dbms.components()", "dbms.components"),
        ("MATCH (n) CALL db.info() YIELD id RETURN id", "db.info"),
        ("CREATE USER intruder SET PASSWORD 'abcdefgh1'", "Administration"),
        ("ALTER CURRENT USER SET PASSWORD FROM 'a' TO 'bcdefghi'", "Administration"),
        ("CREATE INDEX sneaky FOR (n:User) ON (n.sneaky)", "CreateIndex"),
    ],
)
def test_administration_is_refused_naming_what(store: GraphStore, query: str, named: str) -> None:
    with pytest.raises(QueryRefusedError) as info:
        run_read_query(store, query, {})
    assert named in str(info.value) and str(info.value).startswith("refused:")


def test_show_connections_does_not_exist_and_does_not_run(store: GraphStore) -> None:
    with pytest.raises(QuerySyntaxError, match="line 1"):
        run_read_query(store, "SHOW CONNECTIONS", {})


def test_ordinary_reads_with_parameters_still_work(store: GraphStore) -> None:
    store.write_batches(
        "UNWIND $rows AS r CREATE (:User {user_id: r.id, n: r.n})",
        [{"id": "7", "n": 1}, {"id": "U8", "n": 2}],
    )
    rows = run_read_query(
        store,
        "MATCH (u:User) WHERE u.user_id IN $ids AND u.n >= $min "
        "RETURN u.user_id AS id, toUpper(u.user_id) AS up, date.truncate('day', date()) "
        "IS NOT NULL AS d ORDER BY id",
        {"ids": ["7", "U8"], "min": 1},
    )
    assert [r["id"] for r in rows] == ["7", "U8"] and rows[1]["up"] == "U8" and rows[0]["d"]
    assert {"label": "User"} in run_read_query(store, "CALL db.labels()", {})
    run_read_query(store, "CALL db.schema.visualization()", {})
    run_read_query(store, "SHOW INDEXES YIELD name RETURN name", {})
    with pytest.raises(WriteRefusedError, match="read mode"):
        run_read_query(store, "MATCH (u:User) SET u.n = 0", {})


# -- item 7: typed params and strict JSON through the CLI ---------------------------------
def test_cli_param_typing_and_json(
    store: GraphStore, neo4j_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.cli import app

    store.write_batches("UNWIND $rows AS r CREATE (:User {user_id: r.id})", [{"id": "7"}])
    for key, value in _cli_env(neo4j_settings).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    query = "MATCH (u:User {user_id: $id}) RETURN count(u) AS n"
    as_string = runner.invoke(app, ["cypher", query, "-p", "id=7", "--json"])
    assert as_string.exit_code == 0 and '{"n": 1}' in as_string.output, as_string.output
    as_int = runner.invoke(app, ["cypher", query, "-p", "id:int=7", "--json"])
    assert '{"n": 0}' in as_int.output
    odd = runner.invoke(
        app, ["cypher", "RETURN 0.0/0.0 AS nan, 1e308*10 AS inf, -1e308*10 AS ninf, "
              "[$x] AS xs", "-p", "x:float=1.5", "--json"],
    )  # fmt: skip
    assert (
        odd.exit_code == 0 and '{"nan": null, "inf": null, "ninf": null, "xs": [1.5]}' in odd.output
    )
    huge = runner.invoke(app, ["cypher", "RETURN $n", "-p", "n:int=" + "9" * 40])
    assert huge.exit_code == 2 and "64-bit range" in huge.output
    assert "OverflowError" not in huge.output and "Traceback" not in huge.output


# -- one-line errors from a server that answers (the unreachable one: test_cli_outage.py) ----
def test_auth_syntax_missing_parameter_and_timeout_are_one_line(
    neo4j_settings: Settings,
) -> None:
    env = _cli_env(neo4j_settings)
    cases = [
        (["cypher", "RETURN 1"], {"RISKGRAPH_NEO4J_PASSWORD": "wrong"}, "rejected the credentials"),
        (["cypher", "MATCH (n RETURN n"], {}, "Cypher syntax error"),
        (["cypher", "RETURN $who"], {}, "--param"),
        (["cypher", "--timeout", "1", "UNWIND range(1, 2000000000) AS x WITH x WHERE x < 0 "
          "RETURN count(*)"], {}, "time limit"),
        (["cypher", "CALL dbms.listConfig()"], {}, "procedure dbms.listConfig"),
    ]  # fmt: skip
    for args, extra, says in cases:
        out, seconds = _riskgraph(args, {**env, **extra})
        line = _one_line(out)
        assert says in line and out.returncode in (1, 2) and seconds < 15, (args, line, seconds)
    debug, _ = _riskgraph(["--debug", "cypher", "MATCH (n RETURN n"], env)
    assert "Traceback (most recent call last)" in debug.stderr


def test_syntax_errors_point_at_the_analysts_own_text(store: GraphStore) -> None:
    with pytest.raises(QuerySyntaxError, match=r"column 9 \(offset: 8\)"):
        run_read_query(store, "MATCH (n", {})


@pytest.mark.slow
def test_train_on_an_empty_or_tiny_database_says_so_in_a_sentence(
    store: GraphStore, neo4j_settings: Settings, tmp_path: Path
) -> None:
    env = _cli_env(neo4j_settings)
    out, _ = _riskgraph(["train"], env)
    assert "holds no users" in _one_line(out) and out.returncode == 2
    from serving.cli import app

    bundle = write_bundle(tmp_path / "tiny")
    runner = CliRunner(env=env)
    assert runner.invoke(app, ["import", str(bundle)]).exit_code == 0
    out, _ = _riskgraph(["train"], env, timeout=300)
    assert "labeled users of both classes" in _one_line(out) and out.returncode == 2


# -- item 5 and reset ----------------------------------------------------------------------
def _foreign_node(store: GraphStore) -> None:
    store.write_batches("UNWIND $rows AS r CREATE (:NotOurs {name: r.name})", [{"name": "keep"}])


def _count(store: GraphStore) -> int:
    return int(store.read("MATCH (n) RETURN count(n) AS n")[0]["n"])


def test_demo_refuses_a_database_that_is_not_empty(
    store: GraphStore, neo4j_settings: Settings, tmp_path: Path
) -> None:
    _foreign_node(store)
    out, _ = _riskgraph(["demo", "--users", "50", "--workdir", str(tmp_path)],
                        _cli_env(neo4j_settings))  # fmt: skip
    line = _one_line(out)
    assert out.returncode == 2 and "not empty" in line and "--reset" in line
    assert _count(store) == 1 and not any(tmp_path.iterdir())  # nothing generated, nothing lost
    from serving.cli import app

    assert "--reset" in CliRunner().invoke(app, ["demo", "--help"]).output


def test_reset_needs_yes_and_then_empties(
    store: GraphStore, neo4j_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.cli import app

    for key, value in _cli_env(neo4j_settings).items():
        monkeypatch.setenv(key, value)
    _foreign_node(store)
    runner = CliRunner()
    refused = runner.invoke(app, ["reset"])
    assert refused.exit_code == 2 and "--yes" in refused.output and _count(store) == 1
    done = runner.invoke(app, ["reset", "--yes"])
    assert done.exit_code == 0 and "deleted 1 nodes" in done.output and _count(store) == 0


# -- item 10: what the commands write is private -------------------------------------------
def _loose_files(*roots: Path) -> list[str]:
    """Files and folders under ``roots`` that a group or other users could read."""
    loose = []
    for root in roots:
        for path in [root, *root.rglob("*")]:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                loose.append(f"{path} {oct(mode)}")
    return loose


@pytest.mark.slow
def test_demo_reset_replaces_everything_and_writes_private_files(
    store: GraphStore, neo4j_settings: Settings, tmp_path: Path
) -> None:
    _foreign_node(store)
    state, exports = tmp_path / "state", tmp_path / "exports"
    env = _cli_env(
        neo4j_settings, RISKGRAPH_STATE_DIR=str(state), RISKGRAPH_EXPORT_DIR=str(exports),
        RISKGRAPH_EPOCHS="3", RISKGRAPH_ENSEMBLE="1", RISKGRAPH_SPLIT="stratified",
    )  # fmt: skip
    del env["RISKGRAPH_ARTIFACT_DIR"]  # artifacts in the state folder, as by default
    out, _ = _riskgraph(
        ["demo", "--reset", "--users", "300", "--workdir", str(tmp_path / "work")], env,
        timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert store.read("MATCH (n:NotOurs) RETURN count(n) AS n")[0]["n"] == 0
    assert store.read("MATCH (u:User) RETURN count(u) AS n")[0]["n"] == 300
    assert (state / "artifacts").is_dir() and (state / "embedding-cache").is_dir()
    assert list(exports.glob("scores-*.parquet"))
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    assert _loose_files(state, exports) == []


@pytest.mark.parametrize(
    "query",
    ["CREATE (:User {user_id: $id})", "MERGE (u:User {user_id: $id})",
     "MATCH (n) DETACH DELETE n", "MATCH (u:User) SET u.flag = $id"],
)  # fmt: skip
def test_graph_writes_are_refused_by_read_mode(store: GraphStore, query: str) -> None:
    with pytest.raises(WriteRefusedError, match="read mode"):
        run_read_query(store, query, {"id": "intruder"})
    assert store.read("MATCH (u:User {user_id: 'intruder'}) RETURN count(u) AS n")[0]["n"] == 0
