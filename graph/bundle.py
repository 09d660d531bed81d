"""Read a marketplace bundle (``../shared/bundle-format.md``) and split it into clean rows and rejects.

Whole-file problems (missing table or column, a column named twice, not UTF-8, a table given
both as CSV and Parquet, unreadable) raise :class:`BundleError` before anything is written
(:mod:`graph.bundle_files`). Row problems never stop the import: each bad row goes to the
rejects table with the rule it broke and its original values (contract columns only), and the
good rows go on. Ids are normalised once, before any rule runs (:func:`normalize_ids`), so the
duplicate check, the references and the write all see the same id, on both import paths.
Validation is vectorised with pandas; references are checked in dependency order so that a row
pointing at a rejected row is itself rejected as an unknown reference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from graph.bundle_files import BundleError, find_table, read_table
from graph.countries import ISO_3166_ALPHA2
from graph.limits import DEFAULT_MAX_FIELD_BYTES
from graph.schema import DEVICE_KINDS, ORDER_STATUSES

__all__ = ["BundleError", "ValidatedBundle", "find_table", "read_bundle", "read_raw", "validate"]

REQUIRED: dict[str, tuple[str, ...]] = {
    "users": ("user_id", "created_at"),
    "merchants": ("merchant_id", "created_at", "category"),
    "products": ("product_id", "merchant_id", "category", "price"),
    "devices": ("device_id", "kind", "first_seen"),
    "logins": ("user_id", "device_id", "ts"),
    "orders": ("order_id", "user_id", "product_id", "amount", "ts", "status"),
    "reviews": ("review_id", "user_id", "product_id", "rating", "text", "ts"),
}
OPTIONAL_TABLES: dict[str, tuple[str, ...]] = {
    "labels": ("user_id", "fraud", "default"),
    "rings": ("ring_id", "user_id"),
}
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("country",),
    "orders": ("device_id",),
    "labels": ("observed_at",),
}
# Key columns: a repeated key is a duplicate id (the first occurrence is kept).
KEYS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "merchants": ("merchant_id",),
    "products": ("product_id",),
    "devices": ("device_id",),
    "orders": ("order_id",),
    "reviews": ("review_id",),
    "labels": ("user_id",),
    "rings": ("ring_id", "user_id"),
}
# (table, column) -> referenced table; checked after the referenced table is validated.
REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "products": (("merchant_id", "merchants"),),
    "logins": (("user_id", "users"), ("device_id", "devices")),
    "orders": (("user_id", "users"), ("product_id", "products"), ("device_id", "devices")),
    "reviews": (("user_id", "users"), ("product_id", "products")),
    "labels": (("user_id", "users"),),
    "rings": (("user_id", "users"),),
}
ORDER = (
    "merchants",
    "products",
    "users",
    "devices",
    "logins",
    "orders",
    "reviews",
    "labels",
    "rings",
)
ID_COLUMN = {t: k[0] for t, k in KEYS.items() if len(k) == 1 and t != "labels"}
# Every column that holds an id (a key or a reference): normalised by normalize_ids.
ID_COLUMNS = frozenset(
    {c for cols in KEYS.values() for c in cols}
    | {c for refs in REFERENCES.values() for c, _ in refs}
)
REJECT_COLUMNS = ["table", "row", "rule", "detail", "record"]
# Free-text columns (not ids, not enums, not numbers): limited to max_field_bytes.
TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "merchants": ("category",),
    "products": ("category",),
    "reviews": ("text",),
}
# An id is a key of a uniqueness constraint, and Neo4j refuses index keys above about 8 kB
# (two ids share one key in the ring-member constraint), so ids have a fixed limit.
MAX_ID_BYTES = 1024
# Default limit for one free-text value (review text, category): see Settings.max_field_bytes.


@dataclass
class ValidatedBundle:
    """Clean, typed tables (timestamps as epoch milliseconds) plus every rejected row."""

    source: Path
    tables: dict[str, pd.DataFrame]
    rejects: pd.DataFrame
    read_rows: dict[str, int] = field(default_factory=dict)

    @property
    def feature_columns(self) -> list[str]:
        return [c for c in self.tables["users"].columns if c.startswith("feat_")]

    def reject_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        per_rule = self.rejects.assign(rule=self.rejects["rule"].str.split(";")).explode("rule")
        for (table, rule), n in per_rule.groupby(["table", "rule"]).size().items():
            out.setdefault(str(table), {})[str(rule)] = int(n)
        return out


def normalize_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every id column stripped of surrounding white space (any Unicode kind).

    Done once, before any rule runs, so ``"U9 "`` and ``U9`` are one id everywhere: in the
    duplicate check, in references, and in what is written (both import paths write the
    validated frame). An id empty after this is a missing value.
    """
    out = frame.copy()
    for col in ID_COLUMNS.intersection(out.columns):
        out[col] = out[col].astype(str).str.strip()
    return out


def contract_columns(table: str, columns: pd.Index) -> list[str]:
    """The columns of ``table`` the bundle format defines (required, optional, ``feat_*``).

    Only these are copied into rejects: columns outside the contract may hold personal data.
    """
    named = (*(REQUIRED.get(table) or OPTIONAL_TABLES[table]), *OPTIONAL_COLUMNS.get(table, ()))
    feats = [c for c in columns if table == "users" and str(c).startswith("feat_")]
    return [c for c in columns if c in named] + feats


def read_raw(directory: Path) -> dict[str, pd.DataFrame]:
    """Read every table as strings; raise BundleError for any whole-file problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory}: not a folder")
    raw: dict[str, pd.DataFrame] = {}
    for table, required in {**REQUIRED, **OPTIONAL_TABLES}.items():
        path = find_table(directory, table)
        if path is None:
            if table in REQUIRED:
                raise BundleError(
                    f"{directory}: required table '{table}' is missing "
                    f"(expected {table}.csv or {table}.parquet)"
                )
            continue
        frame = read_table(path)
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise BundleError(f"{path}: missing required column(s) {', '.join(missing)}")
        raw[table] = frame
    return raw


class _Checker:
    """Collects the rules broken by each row of one table (vectorised, one mask per rule)."""

    def __init__(self, table: str, frame: pd.DataFrame, raw: pd.DataFrame) -> None:
        self.table = table
        self.frame = frame  # ids normalised
        self.raw = raw  # as read, for the rejects
        self.broken: list[tuple[pd.Series, str, pd.Series]] = []

    def flag(
        self,
        mask: pd.Series,
        rule: str,
        detail: pd.Series | str,
        values: pd.Series | None = None,
        suffix: str = "",
    ) -> None:
        """Record ``rule`` for the rows in ``mask``. The detail is ``detail`` (a text, or one
        per row), or ``detail + value + suffix``, built for the flagged rows only (building it
        for every row of a clean million-row table cost seconds)."""
        mask = mask.fillna(False).astype(bool)
        if not mask.any():
            return
        if isinstance(detail, pd.Series):
            text = detail[mask].astype(str)
        elif values is not None:
            text = detail + values[mask].astype(str) + suffix
        else:
            text = pd.Series(detail, index=mask.index[mask.to_numpy()], dtype=object)
        self.broken.append((mask, rule, text))

    def required(self, *cols: str) -> None:
        for col in cols:
            self.flag(self.frame[col].str.strip() == "", "missing_value", f"{col} is empty")

    def timestamp(self, col: str) -> pd.Series:
        values = self.frame[col].str.strip()
        parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
        self.flag(parsed.isna() & (values != ""), "bad_timestamp", col + ": not ISO 8601: ", values)
        return parsed.astype("datetime64[ms, UTC]").astype("int64").where(parsed.notna(), 0)

    def number(self, col: str, rule_negative: str | None) -> pd.Series:
        """The column as floats; anything but a finite number (``inf``, ``nan``, ``1e400``,
        ``abc``) is a bad number, and becomes NaN here."""
        values = self.frame[col].str.strip()
        num = pd.to_numeric(values, errors="coerce").astype(float)
        finite = np.isfinite(num)
        self.flag(~finite & (values != ""), "bad_number", col + ": not a finite number: ", values)
        if rule_negative is not None:
            self.flag(finite & (num < 0), rule_negative, col + " < 0: ", values)
        return num.where(finite)

    def size(self, col: str, limit: int) -> None:
        """A value longer than ``limit`` UTF-8 bytes is refused (``field_too_large``): one
        such value must never make a write transaction too big for the server."""
        values = self.frame[col].astype(str)
        nbytes = values.str.len()  # characters; a character is 1 to 4 UTF-8 bytes
        maybe = nbytes * 4 > limit
        if maybe.any():
            nbytes[maybe] = values[maybe].map(_utf8_len)
        self.flag(
            nbytes > limit, "field_too_large", col + ": ", nbytes, f" bytes, the limit is {limit}"
        )

    def enum(self, col: str, allowed: tuple[str, ...]) -> pd.Series:
        values = self.frame[col].str.strip().str.lower()
        self.flag(
            ~values.isin(allowed) & (values != ""),
            "bad_enum",
            col + f" not in {{{', '.join(allowed)}}}: ",
            self.frame[col],
        )
        return values

    def reference(self, col: str, known: pd.Index, target: str) -> None:
        """Values not among ``known`` ids; an empty one is a missing value (or, for an
        optional reference such as ``orders.device_id``, allowed)."""
        values = self.frame[col]
        # pyarrow's hash set: pandas' isin on Arrow strings boxes every known id in Python.
        found = pc.is_in(
            pa.array(values.to_numpy(dtype=object), pa.string()),
            value_set=pa.array(np.asarray(known, dtype=object), pa.string()),
        )
        mask = pd.Series(~found.to_numpy(zero_copy_only=False), index=values.index)
        self.flag(mask & (values != ""), "unknown_reference", col + f" not in {target}: ", values)

    def duplicates(self, cols: tuple[str, ...]) -> None:
        """Rows repeating an earlier row's (normalised) key; empty keys are missing values."""
        dup = self.frame.duplicated(subset=list(cols), keep="first")
        for col in cols:
            dup &= self.frame[col] != ""
        self.flag(dup, "duplicate_id", "duplicate " + "/".join(cols) + ": ", self.frame[cols[0]])

    def split(self) -> tuple[pd.Series, pd.DataFrame]:
        """Return (keep mask, rejects frame with one row per bad row, rules joined by ';')."""
        if not self.broken:  # the usual case, and the API's one-event batches: no frame work
            return (pd.Series(True, index=self.frame.index),
                    pd.DataFrame(columns=REJECT_COLUMNS))  # fmt: skip
        bad = pd.Series(False, index=self.frame.index)
        rules = pd.Series("", index=self.frame.index)
        details = pd.Series("", index=self.frame.index)
        for mask, rule, detail in self.broken:
            sep = np.where(bad[mask], ";", "")
            rules[mask] = rules[mask] + sep + rule
            details[mask] = details[mask] + sep + detail.to_numpy(dtype=object)
            bad |= mask
        rejected = self.raw.loc[bad, contract_columns(self.table, self.raw.columns)]
        records = [json.dumps(r, ensure_ascii=False) for r in rejected.to_dict(orient="records")]
        rejects = pd.DataFrame(
            {
                "table": self.table,
                "row": rejected.index.to_numpy() + 1,  # 1-based record number after the header
                "rule": rules[bad].to_numpy(),
                "detail": details[bad].to_numpy(),
                "record": records,
            },
            columns=REJECT_COLUMNS,
        )
        return ~bad, rejects


def _label_value(check: _Checker, col: str) -> pd.Series:
    raw = check.frame[col].str.strip()
    norm = raw.replace({"1.0": "1", "0.0": "0", "nan": "", "None": "", "true": "1", "false": "0"})
    check.flag(~norm.isin(["1", "0", ""]), "bad_enum", col + " not in {1, 0, empty}: " + raw)
    return norm.map({"1": 1.0, "0": 0.0, "": np.nan}).astype(float)


def validate(
    raw: Mapping[str, pd.DataFrame],
    source: Path,
    existing_ids: Mapping[str, pd.Index] | None = None,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
) -> ValidatedBundle:
    """Apply every row rule of the bundle format.

    Args:
        raw: tables as read by :func:`read_raw` (all values strings).
        source: the bundle folder, for the report.
        existing_ids: ids already in the store per table, so an incremental bundle may refer
            to entities loaded by an earlier import.
        max_field_bytes: the largest free-text value (review text, category) accepted, in
            UTF-8 bytes; larger ones are rejected as ``field_too_large``. Ids are limited to
            :data:`MAX_ID_BYTES`.
    """
    existing_ids = existing_ids or {}
    clean: dict[str, pd.DataFrame] = {}
    known: dict[str, pd.Index] = {}
    reject_frames: list[pd.DataFrame] = []
    for table in ORDER:
        if table not in raw:
            continue
        original = raw[table].reset_index(drop=True)
        frame = normalize_ids(original)
        check = _Checker(table, frame, original)
        out = pd.DataFrame(index=frame.index)
        required = REQUIRED.get(table) or OPTIONAL_TABLES[table]
        text_cols = {"text", "fraud", "default"}
        check.required(*(c for c in required if c not in text_cols))
        for col in required:
            out[col] = frame[col].str.strip() if col != "text" else frame[col]
        for col in OPTIONAL_COLUMNS.get(table, ()):
            out[col] = frame[col].str.strip() if col in frame.columns else ""
        for col in (c for c in frame.columns if c in ID_COLUMNS):  # column order: stable
            check.size(col, MAX_ID_BYTES)
        for col in TEXT_COLUMNS.get(table, ()):
            check.size(col, max_field_bytes)
        for col, target in REFERENCES.get(table, ()):
            if col not in frame.columns:
                continue
            pool = known.get(target, pd.Index([]))
            if target in existing_ids:
                pool = pool.append(existing_ids[target])
            check.reference(col, pool, target)
        _table_rules(table, check, out)
        if table in KEYS:
            check.duplicates(KEYS[table])
        keep, rejects = check.split()
        if len(rejects):
            reject_frames.append(rejects)
        clean[table] = out[keep].reset_index(drop=True)
        if table in ID_COLUMN:
            known[table] = pd.Index(clean[table][ID_COLUMN[table]])
    rejects_all = pd.concat(reject_frames, ignore_index=True) if reject_frames else None
    return ValidatedBundle(
        source=source,
        tables=clean,
        rejects=rejects_all if rejects_all is not None else pd.DataFrame(columns=REJECT_COLUMNS),
        read_rows={t: len(f) for t, f in raw.items()},
    )


class TypedChecks(Protocol):
    """What both validators (a whole table here, a few rows in ``graph.bundle_rows``) offer:
    each parses one column, flags the rows that break its rule and returns the typed values."""

    def timestamp(self, col: str) -> Any: ...
    def number(self, col: str, rule_negative: str | None) -> Any: ...
    def enum(self, col: str, allowed: tuple[str, ...]) -> Any: ...


def typed_column_rules(table: str, check: TypedChecks, out: Any) -> None:
    """The rules both validators share word for word: prices, device kinds, event times,
    order amounts and statuses (``out[column] = typed values``)."""
    if table == "products":
        out["price"] = check.number("price", "negative_amount")
    if table == "devices":
        out["kind"] = check.enum("kind", DEVICE_KINDS)
        out["first_seen"] = check.timestamp("first_seen")
    if table in ("logins", "orders", "reviews"):
        out["ts"] = check.timestamp("ts")
    if table == "orders":
        out["amount"] = check.number("amount", "negative_amount")
        out["status"] = check.enum("status", ORDER_STATUSES)


def _table_rules(table: str, check: _Checker, out: pd.DataFrame) -> None:
    """Per-table value rules: timestamps, enums, numbers, ranges, typed output columns."""
    frame = check.frame
    if table in ("users", "merchants"):
        out["created_at"] = check.timestamp("created_at")
    if table == "users":
        country = out["country"].str.upper()
        check.flag(
            (country != "") & ~country.isin(ISO_3166_ALPHA2),
            "bad_country",
            "country is not an ISO 3166-1 alpha-2 code: ",
            out["country"],
        )
        out["country"] = country
        for col in (c for c in frame.columns if c.startswith("feat_")):
            out[col] = check.number(col, rule_negative=None)  # negative features are fine
    typed_column_rules(table, check, out)
    if table == "reviews":
        values = frame["rating"].str.strip()
        rating = check.number("rating", rule_negative=None)
        bad = rating.notna() & ((rating % 1 != 0) | (rating < 1) | (rating > 5))
        check.flag(bad, "rating_out_of_range", "rating not an integer 1..5: " + values)
        out["rating"] = rating.where(~bad).fillna(0).astype(int)
    if table == "labels":
        out["fraud"] = _label_value(check, "fraud")
        out["default"] = _label_value(check, "default")
        # when the outcome became known (epoch ms); NaN: not given, known from account creation
        observed = check.timestamp("observed_at") if "observed_at" in frame.columns else None
        blank = out["observed_at"] == ""
        out["observed_at"] = (
            observed.astype(np.float64).where(~blank) if observed is not None else np.nan
        )


def aggregate_logins(logins: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, device): first and last login (epoch ms) and the number of logins."""
    return (
        logins.groupby(["user_id", "device_id"], sort=True)["ts"]
        .agg(first_ts="min", last_ts="max", logins="size")
        .reset_index()
    )


def _utf8_len(value: object) -> int:
    text = str(value)
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def read_bundle(
    directory: Path,
    existing_ids: Mapping[str, pd.Index] | None = None,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
) -> ValidatedBundle:
    """Read and validate a bundle folder (see :func:`read_raw` and :func:`validate`)."""
    return validate(read_raw(Path(directory)), Path(directory), existing_ids, max_field_bytes)
