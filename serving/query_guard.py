"""What an analyst query may do, decided from the server's EXPLAIN plan of it, never from its text.

Neo4j Community has no roles: ``riskgraph cypher`` runs as the admin user. A read transaction
stops writes, but not reads of the server's own state (users, settings, connections,
transactions), cache clearing, or ``LOAD CSV`` fetching a URL (a server-side request forgery).
So before a query runs, its plan is fetched with ``EXPLAIN`` (nothing executes) and every
operator is checked: ``LOAD CSV``, administration and ``SHOW``/``TERMINATE`` commands, a plan on
another database, and any procedure or non-built-in function outside a short read-only
allowlist are refused, naming what was refused. The text is never parsed by us: comments,
casing, backticks and subqueries cannot hide an operator from the planner.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, LiteralString, cast

from neo4j import ManagedTransaction
from neo4j.exceptions import CypherSyntaxError

from graph.neo4j.store import GraphStore

# Read-only procedures an analyst may call: the graph's schema, and GDS in its read modes.
ALLOWED_PROCEDURES = frozenset({"db.labels", "db.relationshipTypes", "db.propertyKeys"})
ALLOWED_PROCEDURE_PREFIXES = ("db.schema.",)
GDS_READ_MODES = ("stream", "stats", "estimate")
GDS_READ_ONLY = frozenset({"gds.graph.list", "gds.version", "gds.list"})
# GDS functions are read-only except the ones that project a graph into GDS's catalog.
GDS_FUNCTION_DENY = ("project",)
# SHOW commands that only describe the graph's schema.
ALLOWED_SHOW = frozenset({"ShowIndexes", "ShowConstraints"})
# Operators that run a server command rather than read or write the graph (writes such as
# Create, Merge, Delete are left to the read transaction, which refuses them as writes).
COMMAND_PREFIXES = (
    "Show", "Terminate", "Administration", "CreateIndex", "CreateConstraint",
    "CreateFulltextIndex", "CreatePointIndex", "CreateVectorIndex", "Drop", "DoNothingIfExists",
)  # fmt: skip

_PREFIX = "EXPLAIN "
_POSITION = re.compile(r"line 1, column (\d+) \(offset: (\d+)\)")
_STRINGS = re.compile(r"`(?:[^`]|``)*`|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
# A call whose name has a quoted part (`ns`.fn( or `fn`(): built-in names are never rendered so.
_QUOTED_CALL = re.compile(
    r"`(?:[^`]|``)*`(?:\.(?:`(?:[^`]|``)*`|\w+))*\s*\(|[\w.]*\w\.`(?:[^`]|``)*`\s*\("
)
_DOTTED_CALL = re.compile(r"(?<![\w.$])((?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*)\s*\(")
_PROCEDURE = re.compile(r"^\s*((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*)\s*\(")


class QueryRefusedError(PermissionError):
    """An analyst query does something outside reading the graph; the message names what."""


class QuerySyntaxError(ValueError):
    """The query is not valid Cypher; the message gives the server's reason and position."""


def check_read_only(store: GraphStore, query: LiteralString, params: dict[str, Any]) -> None:
    """Raise ``QueryRefusedError`` unless the plan of ``query`` only reads the graph.

    The plan is asked for in a read transaction with the same parameters the query will run
    with. A query that cannot be planned raises the server's error (syntax, unknown function).
    """

    def functions(tx: ManagedTransaction) -> set[str]:
        found = tx.run("SHOW FUNCTIONS YIELD name, isBuiltIn WHERE isBuiltIn RETURN name")
        return {str(r["name"]).lower() for r in found}

    def explain(tx: ManagedTransaction) -> dict[str, Any]:
        summary = tx.run(cast(LiteralString, _PREFIX + query), params).consume()
        if summary.plan is None:
            raise QueryRefusedError("refused: the server returned no plan for this query")
        return dict(summary.plan)

    # Two transactions: an administration command cannot share one with a read.
    with store.driver.session(database=store.database) as session:
        builtin = session.execute_read(functions)
        try:
            plan = session.execute_read(explain)
        except CypherSyntaxError as exc:
            raise QuerySyntaxError(f"Cypher syntax error: {_unprefixed(exc.message)}") from exc
    refused = sorted(set(_refusals(plan, store.database, builtin)))
    if refused:
        raise QueryRefusedError(
            "refused: analyst queries may only read the graph, and this one uses "
            + "; ".join(refused)
        )


def _unprefixed(message: str | None) -> str:
    """The server's first line, its line-1 column and offset moved back past our ``EXPLAIN ``."""
    first = (message or "").strip().splitlines()[0] if (message or "").strip() else ""

    def shift(m: re.Match[str]) -> str:
        column, offset = int(m.group(1)) - len(_PREFIX), int(m.group(2)) - len(_PREFIX)
        return f"line 1, column {column} (offset: {offset})"

    return _POSITION.sub(shift, first)


def _refusals(plan: dict[str, Any], database: str, builtin: set[str]) -> Iterator[str]:
    for op in _operators(plan):
        name, _, db = str(op.get("operatorType", "")).partition("@")
        details = str((op.get("args") or {}).get("Details", ""))
        if db and db != database:
            yield f"database {db!r} (only {database!r} may be queried)"
        if name == "LoadCSV":
            yield "LOAD CSV (the server would read a file or fetch a URL)"
        elif name == "ProcedureCall":
            match = _PROCEDURE.match(details)
            proc = match.group(1) if match else details
            if not procedure_allowed(proc):
                yield f"procedure {proc}"
            details = details[match.end() :] if match else ""  # its arguments: checked below
        elif name.startswith(COMMAND_PREFIXES) and name not in ALLOWED_SHOW:
            yield f"the command {name} (server administration)"
        unquoted = _STRINGS.sub(lambda m: m.group(0) if m.group(0)[0] == "`" else "''", details)
        for call in _QUOTED_CALL.findall(unquoted):
            yield f"function {call.rstrip('( ')}"
        for func in _DOTTED_CALL.findall(_STRINGS.sub("''", details)):
            if not function_allowed(func, builtin):
                yield f"function {func}"


def _operators(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("children") or ():
        yield from _operators(child)


def procedure_allowed(name: str) -> bool:
    """The schema procedures, and GDS procedures in a mode that writes nothing."""
    if name in ALLOWED_PROCEDURES or name.startswith(ALLOWED_PROCEDURE_PREFIXES):
        return True
    if name.startswith("gds."):
        return name in GDS_READ_ONLY or name.rsplit(".", 1)[-1] in GDS_READ_MODES
    return False


def function_allowed(name: str, builtin: set[str]) -> bool:
    """Built-in functions, and GDS's read-only ones (not those that project a graph)."""
    lowered = name.lower()
    if lowered in builtin:
        return True
    parts = lowered.split(".")
    return parts[0] == "gds" and not any(p in GDS_FUNCTION_DENY for p in parts)
