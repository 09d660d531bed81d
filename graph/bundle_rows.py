"""The bundle's row rules for a few rows at a time: the same rules as :func:`graph.bundle.validate`
without pandas' fixed cost per rule.

``validate`` applies every rule as vectorised Series operations, right for a million-row
import; but each of its ~40 Series operations costs tens of microseconds whatever the row
count, so a one-row batch (the service's ``POST /v1/events``) paid 13–30 ms for it. This module
applies the same rules, in the same order, with the same rule names, fields and messages, to
plain dict rows (one value list per column), and returns the clean rows typed as ``validate``'s
tables and the rejects as its rejects table would hold them. What counts as a number or a
timestamp is decided by the very pandas functions ``validate`` uses (``pd.to_numeric`` and
``pd.to_datetime`` over the batch's values: one call per column, microseconds), so the two
paths cannot disagree about a value's format. ``tests/graph/test_bundle_rows.py`` runs both
over good and bad rows for every rule of the bundle format and asserts identical clean rows and
identical rejects (table, row, rule, detail, record).

Values are strings, as ``graph.bundle.read_raw`` gives them; a column a row lacks is ``""``,
as in a frame built from the same rows. Required fields are the caller's check (the import
refuses a table without them; the service answers 422 before validating).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from graph.bundle import (
    ID_COLUMN,
    ID_COLUMNS,
    KEYS,
    MAX_ID_BYTES,
    OPTIONAL_COLUMNS,
    OPTIONAL_TABLES,
    ORDER,
    REFERENCES,
    REQUIRED,
    TEXT_COLUMNS,
    _utf8_len,
    contract_columns,
    typed_column_rules,
)
from graph.countries import ISO_3166_ALPHA2
from graph.limits import DEFAULT_MAX_FIELD_BYTES

__all__ = ["Reject", "ValidatedRows", "table_columns", "validate_rows"]

Row = Mapping[str, str]
LABEL_VALUES = {"1.0": "1", "0.0": "0", "nan": "", "None": "", "true": "1", "false": "0"}
LABEL_FLOATS = {"1": 1.0, "0": 0.0, "": math.nan}


@dataclass(frozen=True)
class Reject:
    """One rejected row, as a row of ``ValidatedBundle.rejects`` (``row`` 1-based)."""

    table: str
    row: int
    rule: str
    detail: str
    record: str


@dataclass
class ValidatedRows:
    """Clean rows per table (typed as ``validate``'s tables: timestamps as epoch ms ints,
    numbers as floats, NaN where ``validate`` has NaN) and every rejected row."""

    tables: dict[str, list[dict[str, Any]]]
    rejects: list[Reject]
    read_rows: dict[str, int] = field(default_factory=dict)


def table_columns(rows: Iterable[Row]) -> list[str]:
    """The columns a DataFrame built from these rows has: keys in order of first appearance."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


class _Table:
    """The rules broken by each row of one table, collected column by column."""

    def __init__(self, table: str, rows: Sequence[Row], columns: list[str]) -> None:
        self.table, self.columns, self.n = table, columns, len(rows)
        self.raw = {c: [row.get(c, "") for row in rows] for c in columns}  # as read
        # ids normalised once, before any rule (graph.bundle.normalize_ids)
        self.col = {c: [v.strip() for v in vs] if c in ID_COLUMNS else vs
                    for c, vs in self.raw.items()}  # fmt: skip
        self.broken: list[list[tuple[str, str]]] = [[] for _ in range(self.n)]

    def flag(self, i: int, rule: str, detail: str) -> None:
        self.broken[i].append((rule, detail))

    def stripped(self, col: str) -> list[str]:
        return [v.strip() for v in self.col[col]]

    def required(self, col: str) -> None:
        for i, v in enumerate(self.col[col]):
            if v.strip() == "":
                self.flag(i, "missing_value", f"{col} is empty")

    def size(self, col: str, limit: int) -> None:
        for i, v in enumerate(self.col[col]):
            n = _utf8_len(v) if len(v) * 4 > limit else len(v)
            if n > limit:
                self.flag(i, "field_too_large", f"{col}: {n} bytes, the limit is {limit}")

    def reference(self, col: str, pool: set[str], target: str) -> None:
        for i, v in enumerate(self.col[col]):
            if v != "" and v not in pool:
                self.flag(i, "unknown_reference", f"{col} not in {target}: {v}")

    def timestamp(self, col: str) -> list[int]:
        """Epoch milliseconds (0 where unparsable), parsed by ``validate``'s own call."""
        values = self.stripped(col)
        parsed = pd.to_datetime(
            np.array(values, dtype=object), utc=True, format="ISO8601", errors="coerce"
        )
        bad = np.asarray(parsed.isna())
        ms = parsed.astype("datetime64[ms, UTC]").asi8
        for i in np.flatnonzero(bad):
            if values[i] != "":
                self.flag(int(i), "bad_timestamp", f"{col}: not ISO 8601: {values[i]}")
        return [0 if b else int(m) for b, m in zip(bad, ms, strict=True)]

    def number(self, col: str, rule_negative: str | None) -> list[float]:
        """Floats, NaN for anything but a finite number (``validate``'s own parse)."""
        values = self.stripped(col)
        num = pd.to_numeric(np.array(values, dtype=object), errors="coerce").astype(float)
        out = []
        for i, (v, x) in enumerate(zip(values, num.tolist(), strict=True)):
            finite = math.isfinite(x)
            if not finite and v != "":
                self.flag(i, "bad_number", f"{col}: not a finite number: {v}")
            if rule_negative is not None and finite and x < 0:
                self.flag(i, rule_negative, f"{col} < 0: {v}")
            out.append(x if finite else math.nan)
        return out

    def enum(self, col: str, allowed: tuple[str, ...]) -> list[str]:
        values = [v.lower() for v in self.stripped(col)]
        text = ", ".join(allowed)
        for i, v in enumerate(values):
            if v not in allowed and v != "":
                self.flag(i, "bad_enum", f"{col} not in {{{text}}}: {self.col[col][i]}")
        return values

    def label(self, col: str) -> list[float]:
        out = []
        for i, v in enumerate(self.stripped(col)):
            norm = LABEL_VALUES.get(v, v)
            if norm not in ("1", "0", ""):
                self.flag(i, "bad_enum", f"{col} not in {{1, 0, empty}}: {v}")
            out.append(LABEL_FLOATS.get(norm, math.nan))
        return out

    def duplicates(self, cols: tuple[str, ...]) -> None:
        seen: set[tuple[str, ...]] = set()
        for i in range(self.n):
            key = tuple(self.col[c][i] for c in cols)
            if key in seen and all(k != "" for k in key):
                self.flag(i, "duplicate_id", f"duplicate {'/'.join(cols)}: {key[0]}")
            seen.add(key)

    def rejects(self) -> list[Reject]:
        named = contract_columns(self.table, pd.Index(self.columns)) if self.n else []
        return [
            Reject(self.table, i + 1, ";".join(r for r, _ in broken),
                   ";".join(d for _, d in broken),
                   json.dumps({c: self.raw[c][i] for c in named}, ensure_ascii=False))
            for i, broken in enumerate(self.broken) if broken
        ]  # fmt: skip


def validate_rows(
    raw: Mapping[str, Sequence[Row]],
    existing_ids: Mapping[str, Iterable[str]] | None = None,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
) -> ValidatedRows:
    """Apply every row rule of the bundle format to dict rows (see :func:`graph.bundle.validate`,
    whose arguments these mirror: ``existing_ids`` are ids already stored, per table)."""
    existing = {t: set(ids) for t, ids in (existing_ids or {}).items()}
    known: dict[str, set[str]] = {}
    clean: dict[str, list[dict[str, Any]]] = {}
    rejects: list[Reject] = []
    for table in ORDER:
        if table not in raw:
            continue
        rows = raw[table]
        check = _Table(table, rows, table_columns(rows))
        out = _rules(table, check, known, existing, max_field_bytes)
        rejects.extend(check.rejects())
        names = list(out)
        clean[table] = [
            {c: out[c][i] for c in names} for i in range(check.n) if not check.broken[i]
        ]
        if table in ID_COLUMN:
            known[table] = {row[ID_COLUMN[table]] for row in clean[table]}
    return ValidatedRows(clean, rejects, {t: len(rows) for t, rows in raw.items()})


def _rules(
    table: str, check: _Table, known: dict[str, set[str]], existing: dict[str, set[str]],
    max_field_bytes: int,
) -> dict[str, list[Any]]:  # fmt: skip
    """``validate``'s loop body for one table, in its order; returns the output columns."""
    required = REQUIRED.get(table) or OPTIONAL_TABLES[table]
    for col in required:
        if col not in {"text", "fraud", "default"}:
            check.required(col)
    out: dict[str, list[Any]] = {}
    for col in required:
        out[col] = check.stripped(col) if col != "text" else list(check.col[col])
    for col in OPTIONAL_COLUMNS.get(table, ()):
        out[col] = check.stripped(col) if col in check.col else [""] * check.n
    for col in (c for c in check.columns if c in ID_COLUMNS):
        check.size(col, MAX_ID_BYTES)
    for col in TEXT_COLUMNS.get(table, ()):
        check.size(col, max_field_bytes)
    for col, target in REFERENCES.get(table, ()):
        if col in check.col:
            check.reference(col, known.get(target, set()) | existing.get(target, set()), target)
    _table_rules(table, check, out)
    if table in KEYS:
        check.duplicates(KEYS[table])
    return out


def _table_rules(table: str, check: _Table, out: dict[str, list[Any]]) -> None:
    """``graph.bundle._table_rules`` over value lists."""
    if table in ("users", "merchants"):
        out["created_at"] = check.timestamp("created_at")
    if table == "users":
        for i, v in enumerate(out["country"]):
            if v != "" and v.upper() not in ISO_3166_ALPHA2:
                check.flag(i, "bad_country", f"country is not an ISO 3166-1 alpha-2 code: {v}")
        out["country"] = [v.upper() for v in out["country"]]
        for col in (c for c in check.columns if c.startswith("feat_")):
            out[col] = check.number(col, rule_negative=None)
    typed_column_rules(table, check, out)
    if table == "reviews":
        values = check.stripped("rating")
        out["rating"] = []
        for i, r in enumerate(check.number("rating", rule_negative=None)):
            bad = not math.isnan(r) and (r % 1 != 0 or r < 1 or r > 5)
            if bad:
                check.flag(i, "rating_out_of_range", f"rating not an integer 1..5: {values[i]}")
            out["rating"].append(0 if bad or math.isnan(r) else int(r))
    if table == "labels":
        out["fraud"] = check.label("fraud")
        out["default"] = check.label("default")
        if "observed_at" in check.col:
            observed = check.timestamp("observed_at")
            out["observed_at"] = [
                math.nan if blank == "" else float(ms)
                for blank, ms in zip(out["observed_at"], observed, strict=True)
            ]
        else:
            out["observed_at"] = [math.nan] * check.n
