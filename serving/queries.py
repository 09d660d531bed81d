"""Analyst queries: run arbitrary Cypher in read mode, with parameters, never formatted."""

from __future__ import annotations

import json
from typing import Any, LiteralString, cast

from neo4j import ManagedTransaction, unit_of_work
from neo4j.exceptions import ClientError

from graph.store import GraphStore


class WriteRefusedError(PermissionError):
    """An analyst query tried to write; analyst queries run in read mode only."""


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``name=value`` pairs; a value that parses as JSON (number, list, bool…) is typed."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ValueError(f"--param expects name=value, got {pair!r}")
        try:
            params[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[name.strip()] = raw
    return params


def run_read_query(
    store: GraphStore, text: str, params: dict[str, Any], timeout_s: float = 60.0
) -> list[dict[str, Any]]:
    """Run ``text`` in a managed *read* transaction; the server refuses any write in it."""
    query = cast(LiteralString, text)  # analyst text, run as-is with parameters only

    @unit_of_work(timeout=timeout_s)
    def work(tx: ManagedTransaction) -> list[dict[str, Any]]:
        return [record.data() for record in tx.run(query, params)]

    try:
        with store.driver.session(database=store.database) as session:
            return session.execute_read(work)
    except ClientError as exc:
        code = exc.code or ""
        if "AccessMode" in code or "ForbiddenOnReadOnlyDatabase" in code:
            raise WriteRefusedError(
                f"refused: this query writes to the graph, and analyst queries run in read mode "
                f"({code})"
            ) from exc
        raise
