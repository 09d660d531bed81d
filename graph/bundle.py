"""Read a marketplace bundle (``../shared/bundle-format.md``) and split it into clean rows and rejects.

Whole-file problems (missing table or column, not UTF-8, unreadable) raise :class:`BundleError`
before anything is written. Row problems never stop the import: each bad row goes to the
rejects table with the rule it broke and its original values, and the good rows go on.
Validation is vectorised with pandas; references are checked in dependency order so that a row
pointing at a rejected row is itself rejected as an unknown reference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from graph.schema import DEVICE_KINDS, ORDER_STATUSES

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
REJECT_COLUMNS = ["table", "row", "rule", "detail", "record"]


class BundleError(ValueError):
    """A bundle file cannot be read at all; nothing has been written."""


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


def find_table(directory: Path, table: str) -> Path | None:
    """The file holding ``table`` (``NAME.csv`` or ``NAME.parquet``), or None."""
    for suffix in (".csv", ".parquet"):
        candidate = directory / f"{table}{suffix}"
        if candidate.exists():
            return candidate
    return None


def _read_file(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            return frame.astype(object).where(frame.notna(), "").astype(str)
        return pd.read_csv(
            path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8"
        )
    except UnicodeDecodeError as exc:
        raise BundleError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except pd.errors.EmptyDataError as exc:
        raise BundleError(f"{path}: empty file, a header row is required") from exc
    except (pd.errors.ParserError, OSError, ValueError) as exc:
        raise BundleError(f"{path}: cannot be read: {exc}") from exc


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
        frame = _read_file(path)
        frame.columns = [str(c).strip() for c in frame.columns]
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise BundleError(f"{path}: missing required column(s) {', '.join(missing)}")
        raw[table] = frame
    return raw


class _Checker:
    """Collects the rules broken by each row of one table (vectorised, one mask per rule)."""

    def __init__(self, table: str, frame: pd.DataFrame) -> None:
        self.table = table
        self.frame = frame
        self.broken: list[tuple[pd.Series, str, pd.Series]] = []

    def flag(self, mask: pd.Series, rule: str, detail: pd.Series | str) -> None:
        if mask.any():
            if isinstance(detail, str):
                detail = pd.Series(detail, index=self.frame.index)
            self.broken.append((mask, rule, detail))

    def required(self, *cols: str) -> None:
        for col in cols:
            self.flag(self.frame[col].str.strip() == "", "missing_value", f"{col} is empty")

    def timestamp(self, col: str) -> pd.Series:
        values = self.frame[col].str.strip()
        parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
        self.flag(
            parsed.isna() & (values != ""), "bad_timestamp", col + ": not ISO 8601: " + values
        )
        return parsed.astype("datetime64[ms, UTC]").astype("int64").where(parsed.notna(), 0)

    def number(self, col: str, rule_negative: str | None) -> pd.Series:
        values = self.frame[col].str.strip()
        num = pd.to_numeric(values, errors="coerce")
        self.flag(num.isna() & (values != ""), "bad_number", col + ": not a number: " + values)
        if rule_negative is not None:
            self.flag(num < 0, rule_negative, col + " < 0: " + values)
        return num.astype(float)

    def enum(self, col: str, allowed: tuple[str, ...]) -> pd.Series:
        values = self.frame[col].str.strip().str.lower()
        self.flag(
            ~values.isin(allowed) & (values != ""),
            "bad_enum",
            col + f" not in {{{', '.join(allowed)}}}: " + self.frame[col],
        )
        return values

    def reference(self, col: str, known: pd.Index, target: str, optional: bool = False) -> None:
        values = self.frame[col].str.strip()
        mask = ~values.isin(known)
        if optional:
            mask &= values != ""
        self.flag(mask, "unknown_reference", col + f" not in {target}: " + values)

    def duplicates(self, cols: tuple[str, ...]) -> None:
        dup = self.frame.duplicated(subset=list(cols), keep="first")
        self.flag(dup, "duplicate_id", "duplicate " + "/".join(cols) + ": " + self.frame[cols[0]])

    def split(self) -> tuple[pd.Series, pd.DataFrame]:
        """Return (keep mask, rejects frame with one row per bad row, rules joined by ';')."""
        bad = pd.Series(False, index=self.frame.index)
        rules = pd.Series("", index=self.frame.index)
        details = pd.Series("", index=self.frame.index)
        for mask, rule, detail in self.broken:
            mask = mask.fillna(False).astype(bool)
            sep = np.where(bad[mask], ";", "")
            rules[mask] = rules[mask] + sep + rule
            details[mask] = details[mask] + sep + detail[mask].astype(str)
            bad |= mask
        rejected = self.frame[bad]
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
) -> ValidatedBundle:
    """Apply every row rule of the bundle format.

    Args:
        raw: tables as read by :func:`read_raw` (all values strings).
        source: the bundle folder, for the report.
        existing_ids: ids already in the store per table, so an incremental bundle may refer
            to entities loaded by an earlier import.
    """
    existing_ids = existing_ids or {}
    clean: dict[str, pd.DataFrame] = {}
    known: dict[str, pd.Index] = {}
    reject_frames: list[pd.DataFrame] = []
    for table in ORDER:
        if table not in raw:
            continue
        frame = raw[table].reset_index(drop=True)
        check = _Checker(table, frame)
        out = pd.DataFrame(index=frame.index)
        required = REQUIRED.get(table) or OPTIONAL_TABLES[table]
        text_cols = {"text", "fraud", "default"}
        check.required(*(c for c in required if c not in text_cols))
        for col in required:
            out[col] = frame[col].str.strip() if col != "text" else frame[col]
        for col in OPTIONAL_COLUMNS.get(table, ()):
            out[col] = frame[col].str.strip() if col in frame.columns else ""
        for col, target in REFERENCES.get(table, ()):
            if col not in frame.columns:
                continue
            pool = known.get(target, pd.Index([]))
            if target in existing_ids:
                pool = pool.append(existing_ids[target])
            check.reference(col, pool, target, optional=col in OPTIONAL_COLUMNS.get(table, ()))
        _table_rules(table, check, out)
        if table in KEYS:
            check.duplicates(KEYS[table])
        keep, rejects = check.split()
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


def _table_rules(table: str, check: _Checker, out: pd.DataFrame) -> None:
    """Per-table value rules: timestamps, enums, numbers, ranges, typed output columns."""
    frame = check.frame
    if table in ("users", "merchants"):
        out["created_at"] = check.timestamp("created_at")
    if table == "users":
        country = out["country"].str.upper()
        check.flag(
            (country != "") & ~country.str.fullmatch(r"[A-Z]{2}"),
            "bad_country",
            "country is not ISO 3166 alpha-2: " + country,
        )
        out["country"] = country
        for col in (c for c in frame.columns if c.startswith("feat_")):
            out[col] = check.number(col, rule_negative=None)  # negative features are fine
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
    if table == "reviews":
        values = frame["rating"].str.strip()
        rating = pd.to_numeric(values, errors="coerce")
        bad = rating.isna() | (rating % 1 != 0) | (rating < 1) | (rating > 5)
        check.flag(
            bad & (values != ""), "rating_out_of_range", "rating not an integer 1..5: " + values
        )
        out["rating"] = rating.fillna(0).astype(int)
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


def read_bundle(
    directory: Path, existing_ids: Mapping[str, pd.Index] | None = None
) -> ValidatedBundle:
    """Read and validate a bundle folder (see :func:`read_raw` and :func:`validate`)."""
    return validate(read_raw(Path(directory)), Path(directory), existing_ids)
