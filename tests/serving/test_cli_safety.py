"""The CLI's promises that need no server: typed parameters, strict JSON, one-line errors,
private files, light imports, and the analyst-query allowlists."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from neo4j.exceptions import AuthError, ServiceUnavailable

from graph.files import private_dir, private_umask
from graph.neo4j.server import _argfile_quote
from serving.errors import Server, describe
from serving.queries import ParamError, json_line, parse_params
from serving.query_guard import _refusals, function_allowed, procedure_allowed

ROOT = Path(__file__).resolve().parents[2]


# -- --param typing (item 7) ------------------------------------------------------------
def test_a_plain_param_is_a_string_and_types_are_explicit() -> None:
    params = parse_params(
        ["id=7", "n:int=7", "x:float=2.5", "flag:bool=yes", "off:bool=0",
         'ids:json=["U1", "U2"]', "m:json={\"a\": null}", "s:str=a=b", "empty="]
    )  # fmt: skip
    assert params == {
        "id": "7", "n": 7, "x": 2.5, "flag": True, "off": False, "ids": ["U1", "U2"],
        "m": {"a": None}, "s": "a=b", "empty": "",
    }  # fmt: skip
    assert type(params["n"]) is int and type(params["id"]) is str


def test_neo4j_int_range_is_inclusive() -> None:
    edges = parse_params(["hi:int=9223372036854775807", "lo:int=-9223372036854775808"])
    assert edges == {"hi": 2**63 - 1, "lo": -(2**63)}


@pytest.mark.parametrize(
    ("pair", "says"),
    [
        ("n:int=9223372036854775808", "64-bit range"),
        ("n:int=" + "9" * 5000, "64-bit range"),  # past Python's own int-parsing limit
        ("n:int=1.5", "not an integer"),
        ("n:int=abc", "not an integer"),
        ("x:float=inf", "not a finite number"),
        ("x:float=1e400", "not a finite number"),
        ("x:float=nan", "not a finite number"),
        ("j:json=[NaN]", "NaN is not a finite number"),
        ("j:json=[1e999]", "not a finite number"),
        ("j:json=[" + "1" * 30 + "]", "64-bit range"),
        ("j:json={", "not JSON"),
        ("b:bool=maybe", "not a boolean"),
        ("d:date=2024-01-01", "unknown type 'date'"),
        ("no_equals", "name=value"),
        ("1abc=3", "name=value"),
    ],
)
def test_a_bad_param_is_one_clear_line(pair: str, says: str) -> None:
    with pytest.raises(ParamError) as info:
        parse_params([pair])
    message = str(info.value)
    assert says in message and "\n" not in message and len(message) < 200


def test_json_lines_carry_no_nan_or_infinity() -> None:
    nan, inf = float("nan"), float("inf")
    line = json_line({"a": nan, "b": [inf, 1.5, -inf], "c": {"d": nan}, "e": "NaN", "f": 7})
    assert json.loads(line) == {"a": None, "b": [None, 1.5, None], "c": {"d": None},
                                "e": "NaN", "f": 7}  # fmt: skip
    json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


# -- analyst-query allowlists (item 6; the plan check itself is tested against Neo4j) ----
@pytest.mark.parametrize(
    "name", ["db.labels", "db.relationshipTypes", "db.propertyKeys", "db.schema.visualization",
             "db.schema.nodeTypeProperties", "gds.pageRank.stream", "gds.wcc.stats",
             "gds.louvain.write.estimate", "gds.graph.list"],
)  # fmt: skip
def test_read_only_procedures_are_allowed(name: str) -> None:
    assert procedure_allowed(name)


@pytest.mark.parametrize(
    "name", ["dbms.listConfig", "dbms.listConnections", "db.clearQueryCaches", "db.info",
             "dbms.components", "apoc.load.json", "gds.pageRank.write", "gds.graph.project",
             "gds.graph.drop", "gds.wcc.mutate", "db.createLabel", "tx.setMetaData"],
)  # fmt: skip
def test_other_procedures_are_refused(name: str) -> None:
    assert not procedure_allowed(name)


def test_functions_built_in_or_read_only_gds() -> None:
    builtin = {"date.truncate", "tolower"}
    assert function_allowed("date.truncate", builtin) and function_allowed("toLower", builtin)
    assert function_allowed("gds.util.asNode", builtin)
    assert function_allowed("gds.similarity.cosine", builtin)
    assert not function_allowed("gds.graph.project", builtin)
    assert not function_allowed("apoc.util.sleep", builtin)


# -- one-line errors (item 8) -----------------------------------------------------------
LOCAL = Server("bolt://127.0.0.1:7999", "neo4j", local=True, password_file="/x/password")


def test_error_lines_name_the_server_the_cause_and_the_fix() -> None:
    refused = ServiceUnavailable(
        "Couldn't connect to 127.0.0.1:7999 (resolved to ('127.0.0.1:7999',)):\nFailed to "
        "establish connection to ResolvedIPv4Address(('127.0.0.1', 7999)) (reason [Errno 111] "
        "Connection refused)"
    )
    message, code = describe(refused, LOCAL)
    assert "bolt://127.0.0.1:7999" in message and "refused" in message
    assert "riskgraph neo4j start" in message and code == 1
    silent = ServiceUnavailable("Failed to read four byte Bolt handshake response from server")
    assert "did not answer" in describe(silent, LOCAL)[0]
    auth, _ = describe(AuthError("The client is unauthorized"), LOCAL)
    assert "rejected the credentials" in auth and "/x/password" in auth
    for exc in (refused, silent, AuthError("x\ny"), RuntimeError("a\nb\nc")):
        assert "\n" not in describe(exc, LOCAL)[0]


def test_cli_help_and_status_do_not_import_torch_or_transformers(tmp_path: Path) -> None:
    """`riskgraph --help` and `neo4j status` stay instant: heavy imports happen in the commands
    that encode or train."""
    probe = (
        "import sys\nfrom typer.testing import CliRunner\nfrom serving.cli import app\n"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['neo4j', 'status'])\n"
        "r = CliRunner().invoke(app, ['cypher', '--help']); assert r.exit_code == 0\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'torch_geometric', 'pandas', "
        "'neo4j', 'scipy') "
        "if m in sys.modules)\nprint('HEAVY', heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RISKGRAPH_STATE_DIR": str(tmp_path / "s"),
           "RISKGRAPH_NEO4J_PORT": "1"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                         timeout=120, check=False)  # fmt: skip
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


@pytest.mark.slow  # three interpreter starts
def test_a_bad_setting_is_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RISKGRAPH_SPLIT": "sideways",
           "RISKGRAPH_STATE_DIR": str(tmp_path)}  # fmt: skip
    cmd = [sys.executable, "-m", "serving.cli", "train"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "RISKGRAPH_SPLIT" in lines[0], out.stderr
    debug = subprocess.run([*cmd[:3], "--debug", "train"], capture_output=True, text=True,
                           env=env, timeout=120, check=False)  # fmt: skip
    assert "Traceback (most recent call last)" in debug.stderr
    env_debug = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False,
                               env={**env, "RISKGRAPH_DEBUG": "1"})  # fmt: skip
    assert "Traceback (most recent call last)" in env_debug.stderr


# -- private files (item 10) -------------------------------------------------------------
def test_private_dir_creates_or_tightens_to_0700(tmp_path: Path) -> None:
    fresh = private_dir(tmp_path / "a" / "state")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    assert stat.S_IMODE(private_dir(loose).stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # sticky, like /tmp: shared by design, left alone
    assert stat.S_IMODE(private_dir(shared).stat().st_mode) == 0o1777


def test_private_umask_files_are_not_group_or_world_readable(tmp_path: Path) -> None:
    with private_umask():
        (tmp_path / "f").write_text("x")
        (tmp_path / "d").mkdir()
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) & 0o077 == 0


@pytest.mark.slow  # compiles a Java source file
def test_argfile_quoting_survives_quotes_and_backslashes(tmp_path: Path) -> None:
    """What Java reads back from an @argfile is exactly the argument we wrote."""
    java = subprocess.run(["which", "java"], capture_output=True, text=True, check=False)
    if java.returncode != 0:
        pytest.skip("no java")
    src = tmp_path / "Echo.java"
    src.write_text("public class Echo { public static void main(String[] a) "
                   "{ for (String s : a) System.out.println(\"<\" + s + \">\"); } }")  # fmt: skip
    tricky = ["-starts-with-dash", 'has "quotes"', "back\\slash", "sp ace", "A-z_09"]
    args = tmp_path / "args"
    args.write_text("\n".join(_argfile_quote(a) for a in [str(src), *tricky]) + "\n")
    out = subprocess.run(["java", f"@{args}"], capture_output=True, text=True, timeout=120,
                         check=False)  # fmt: skip
    assert out.stdout.splitlines() == [f"<{a}>" for a in tricky], out.stderr


def _refused(details: str, operator: str = "Projection@neo4j") -> list[str]:
    plan = {"operatorType": operator, "args": {"Details": details}}
    return list(_refusals(plan, "neo4j", {"tolower", "date.truncate"}))


def test_plan_details_quoting_cannot_hide_a_call() -> None:
    """Names and strings in a plan's details: only real calls count, however quoted."""
    assert _refused("`a.b` AS y, toLower($x) AS `q.r(`, 'x.y(' AS s") == []
    assert _refused("date.truncate($autostring_0, date()) AS x, n.`prop` AS p") == []
    assert _refused("apoc.util.sleep($autoint_0) AS x") == ["function apoc.util.sleep"]
    assert _refused("`my-ns`.fn(1) AS x") == ["function `my-ns`.fn"]
    assert _refused("ns.sub.`fn`(1) AS x") == ["function ns.sub.`fn`"]
    assert _refused("db.labels() :: (label :: STRING)", "ProcedureCall@neo4j") == []
    assert _refused("dbms.listConfig() :: (name :: STRING)", "ProcedureCall@neo4j") == [
        "procedure dbms.listConfig"
    ]
    assert _refused("r", "LoadCSV@neo4j") == [
        "LOAD CSV (the server would read a file or fetch a URL)"
    ]
    assert _refused("", "AdministrationCommand@system")[0].startswith("database 'system'")
