"""Analyst queries: arbitrary Cypher that may only read the graph, with typed parameters.

A query runs in a managed *read* transaction (the server refuses writes) after its EXPLAIN plan
passed ``serving.query_guard`` (no LOAD CSV, no administration, no procedure outside a
read-only allowlist). Values travel as parameters, never formatted into the text.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, LiteralString, cast

from neo4j import ManagedTransaction, unit_of_work
from neo4j.exceptions import ClientError

from graph.neo4j.store import GraphStore
from serving.query_guard import QueryRefusedError, check_read_only

# Neo4j integers are 64-bit signed.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
PARAM_TYPES = ("str", "int", "float", "bool", "json")
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}
_INT = re.compile(r"[+-]?\d+")


class WriteRefusedError(QueryRefusedError):
    """An analyst query tried to write; analyst queries run in read mode only."""


class ParamError(ValueError):
    """A ``--param`` could not be read; the message names it and says the accepted syntax."""


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``name=value`` is the string ``value``; ``name:TYPE=value`` types it explicitly.

    TYPE is one of ``str``, ``int`` (64-bit), ``float`` (finite), ``bool`` (true/false, 1/0,
    yes/no) or ``json`` (any JSON value: lists, maps, null; numbers finite and in range).
    Nothing is guessed: ``id=7`` is the string "7", so it matches the string id "7".
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        name, _, kind = key.strip().partition(":")
        kind = kind.strip() or "str"
        if not sep or not name.isidentifier():
            raise ParamError(
                f"--param expects name=value or name:TYPE=value (TYPE: {', '.join(PARAM_TYPES)})"
                f", got {pair!r}"
            )
        if kind not in PARAM_TYPES:
            raise ParamError(
                f"--param {name}: unknown type {kind!r}; use one of {', '.join(PARAM_TYPES)}"
            )
        try:
            params[name] = _typed(raw, kind)
        except (ValueError, OverflowError, RecursionError) as exc:
            raise ParamError(f"--param {name}:{kind}={_short(raw)}: {exc}") from None
    return params


def _typed(raw: str, kind: str) -> Any:
    if kind == "str":
        return raw
    if kind == "int":
        if not _INT.fullmatch(raw.strip()):
            raise ValueError("not an integer")
        return _parse_int(raw.strip())
    if kind == "float":
        try:
            return _checked(float(raw.strip()))
        except ValueError as exc:
            raise ValueError(str(exc) if "finite" in str(exc) else "not a number") from None
    if kind == "bool":
        word = raw.strip().lower()
        if word not in _TRUE | _FALSE:
            raise ValueError("not a boolean (true/false, 1/0, yes/no)")
        return word in _TRUE
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at character {exc.pos})") from None
    return _checked(value)


def _parse_int(digits: str) -> int:
    """An integer in Neo4j's range; overlong digit strings fail here, before Python's own limit."""
    if len(digits.lstrip("+-").lstrip("0")) > 19:
        raise ValueError("integer outside Neo4j's 64-bit range")
    return int(_checked(int(digits)))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def _checked(value: Any) -> Any:
    """Refuse what Neo4j cannot hold: integers beyond 64 bits and non-finite floats."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise ValueError("integer outside Neo4j's 64-bit range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return value
    if isinstance(value, list):
        return [_checked(v) for v in value]
    if isinstance(value, dict):
        return {k: _checked(v) for k, v in value.items()}
    return value


def _short(raw: str, limit: int = 40) -> str:
    return raw if len(raw) <= limit else raw[:limit] + "…"


def run_read_query(
    store: GraphStore, text: str, params: dict[str, Any], timeout_s: float = 60.0
) -> list[dict[str, Any]]:
    """Check the plan, then run ``text`` in a managed *read* transaction.

    Raises:
        QueryRefusedError: the plan loads CSV, administers the server or calls a procedure or
            function outside the read-only allowlist.
        WriteRefusedError: the query writes (the server refuses it in read mode).
    """
    query = cast(LiteralString, text)  # analyst text, run as-is with parameters only
    check_read_only(store, query, params)

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


def json_line(row: dict[str, Any]) -> str:
    """One row as strict JSON: NaN and ±Infinity become null (JSON has no such numbers).

    Values JSON cannot hold (dates, points, durations) are written as their string form.
    """
    return json.dumps(_finite(row), default=str, allow_nan=False, ensure_ascii=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
