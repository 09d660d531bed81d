"""The small-batch validator (graph.bundle_rows) against the import's (graph.bundle.validate):
the same good and bad rows through both must give identical clean rows, identical write
parameters and identical rejects (table, row, rule, detail, record), for every rule."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from graph.bundle import REQUIRED, read_raw, validate
from graph.bundle_rows import table_columns, validate_rows
from graph.neo4j.load import columns_for, row_columns
from tests.bundles import write_bundle

Rows = dict[str, list[dict[str, str]]]
EXISTING = {"users": ["U-old"], "products": ["P-old", "P 2"], "devices": ["D-old"]}
BIG = "x" * 2000
# Every rule of the bundle format, some rows breaking several at once, and good rows written
# in the many forms the format allows (offsets, dates, padded ids and numbers, Unicode).
# fmt: off
HOSTILE: Rows = {
    "merchants": [
        {"merchant_id": "M1", "created_at": "2026-01-01T00:00:00Z", "category": "books"},
        {"merchant_id": " M2\u3000", "created_at": "2026-01-02", "category": BIG},  # too large
        {"merchant_id": "", "created_at": "never", "category": "toys"},  # missing, bad ts
    ],
    "products": [
        {"product_id": "P1", "merchant_id": "M1", "category": "books", "price": "10"},
        {"product_id": "P2", "merchant_id": "M2", "category": "toys", "price": "5"},  # M2 bad
        {"product_id": "P3", "merchant_id": "M404", "category": "toys", "price": "-1"},
        {"product_id": "P4", "merchant_id": "M1", "category": "", "price": "1e400"},
        {"product_id": "P1", "merchant_id": "M1", "category": "b", "price": " 7.5 "},  # dup
    ],
    "users": [
        {"user_id": "U1", "created_at": "2026-01-01T00:00:00+02:00", "country": "de",
         "feat_kyc": "1", "feat_age": " -2.5 "},
        {"user_id": "U2 ", "created_at": "2026-01-03T00:00:00", "country": "ZZ",
         "feat_kyc": "abc", "feat_age": ""},
        {"user_id": "U3", "created_at": "1969-07-20T20:17:40.5Z", "country": "",
         "feat_kyc": "inf", "feat_age": "3"},
        {"user_id": "U1", "created_at": "2026-13-01", "country": "US", "feat_kyc": "",
         "feat_age": "nan"},
        {"user_id": "x" * 1100, "created_at": "2026-01-01", "country": " fr ", "feat_kyc": "0",
         "feat_age": "1"},
    ],
    "devices": [
        {"device_id": "D1", "kind": " iOS ", "first_seen": "2026-01-01"},
        {"device_id": "D2", "kind": "tablet", "first_seen": "yesterday"},
        {"device_id": "D3", "kind": "", "first_seen": ""},
    ],
    "logins": [
        {"user_id": "U1", "device_id": "D1", "ts": "2026-01-03"},
        {"user_id": "U1", "device_id": "D1", "ts": "2026-01-02T10:00:00.123456Z"},
        {"user_id": " U3", "device_id": "D-old", "ts": "2026-01-05"},
        {"user_id": "U2", "device_id": "D2", "ts": "2026-01-05"},  # both rejected upstream
        {"user_id": "U-old", "device_id": "D1", "ts": ""},
    ],
    "orders": [
        {"order_id": "O1", "user_id": "U1", "product_id": "P1", "amount": "10",
         "ts": "2026-01-05T10:00:00Z", "status": "paid", "device_id": "D1"},
        {"order_id": "O2", "user_id": "U-old", "product_id": " P 2 ", "amount": "1e3",
         "ts": "2026-01-05T11:00:00-05:30", "status": "Chargeback", "device_id": ""},
        {"order_id": "O3", "user_id": "U1", "product_id": "P404", "amount": "-3",
         "ts": "yesterday", "status": "stolen", "device_id": "D9"},
        {"order_id": "O1", "user_id": "U1", "product_id": "P1", "amount": "abc",
         "ts": "2026-01-05", "status": "paid", "device_id": ""},
        {"order_id": " ", "user_id": "", "product_id": "P1", "amount": "",
         "ts": "2026-01-05", "status": "", "device_id": ""},
        {"order_id": "O\u00e9", "user_id": "U3", "product_id": "P-old", "amount": "0",
         "ts": "2262-04-12", "status": "refunded", "device_id": "D-old"},
    ],
    "reviews": [
        {"review_id": "R1", "user_id": "U1", "product_id": "P1", "rating": "5",
         "text": ' Great, "great"\nbook ', "ts": "2026-01-06"},
        {"review_id": "R2", "user_id": "U1", "product_id": "P1", "rating": "7",
         "text": "too good", "ts": "2026-01-06"},
        {"review_id": "R3", "user_id": "U3", "product_id": "P1", "rating": "4.5",
         "text": "", "ts": "2026-01-06"},
        {"review_id": "R4", "user_id": "U3", "product_id": "P1", "rating": "x",
         "text": BIG * 100, "ts": "2026-01-06"},
        {"review_id": "R5", "user_id": "U3", "product_id": "P1", "rating": " 3.0 ",
         "text": "\u597d", "ts": "2026-01-06"},
    ],
    "labels": [
        {"user_id": "U1", "fraud": "true", "default": "", "observed_at": "2026-02-01"},
        {"user_id": "U3", "fraud": "1.0", "default": "nan", "observed_at": ""},
        {"user_id": "U1", "fraud": "2", "default": "maybe", "observed_at": "soon"},
        {"user_id": "U404", "fraud": "0", "default": "None", "observed_at": ""},
    ],
    "rings": [
        {"ring_id": "RING1", "user_id": "U1"},
        {"ring_id": "RING1", "user_id": "U1 "},
        {"ring_id": "", "user_id": "U3"},
        {"ring_id": " ", "user_id": "U3"},  # an empty key part is never a duplicate
        {"ring_id": "RING2", "user_id": "U404"},
    ],
}
# fmt: on


def frames(rows: Mapping[str, Sequence[Mapping[str, str]]]) -> dict[str, pd.DataFrame]:
    """The tables as the service builds them for the import's validator."""
    return {t: pd.DataFrame(list(r), dtype=object).fillna("") for t, r in rows.items()}


def plain(value: Any) -> Any:
    """A comparable value: numpy scalars as Python ones, NaN as a marker (NaN != NaN)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def typed(values: Sequence[Any]) -> list[tuple[str, Any]]:
    return [(type(plain(v)).__name__, plain(v)) for v in values]


def assert_same(
    rows: Mapping[str, Sequence[Mapping[str, str]]], max_field_bytes: int = 100_000
) -> None:
    existing = {t: pd.Index(ids, dtype=object) for t, ids in EXISTING.items()}
    bundle = validate(frames(rows), Path("x"), existing, max_field_bytes)
    small = validate_rows(rows, EXISTING, max_field_bytes)
    expected = [(r.table, int(r.row), r.rule, r.detail, r.record)
                for r in bundle.rejects.itertuples()]  # fmt: skip
    got = [(r.table, r.row, r.rule, r.detail, r.record) for r in small.rejects]
    assert got == expected
    assert small.read_rows == bundle.read_rows
    assert set(small.tables) == set(bundle.tables)
    for table, frame in bundle.tables.items():
        clean = small.tables[table]
        assert len(clean) == len(frame), table
        if clean:
            assert list(clean[0]) == list(frame.columns), table
        for col in frame.columns:  # same values and the same Python types
            assert typed([r[col] for r in clean]) == typed(frame[col].tolist()), (table, col)
        if len(frame):  # and the same write parameters
            params = columns_for(table, frame)
            mine = row_columns(table, clean)
            assert list(mine) == list(params), table
            for name, values in params.items():
                assert typed(mine[name]) == typed(values), (table, name)


def test_every_rule_gives_the_same_rows_and_rejects() -> None:
    assert_same(HOSTILE)
    rules = {rule for r in validate_rows(HOSTILE, EXISTING).rejects for rule in r.rule.split(";")}
    assert rules == {
        "missing_value", "field_too_large", "unknown_reference", "bad_timestamp", "bad_number",
        "negative_amount", "bad_enum", "bad_country", "rating_out_of_range", "duplicate_id",
    }  # fmt: skip


def test_a_small_text_limit_is_applied_the_same() -> None:
    assert_same(HOSTILE, max_field_bytes=5)


def test_the_planted_bundle_reads_the_same(tmp_path: Path) -> None:
    raw = read_raw(write_bundle(tmp_path / "b", bad=True))
    rows = {t: [{str(k): str(v) for k, v in r.items()} for r in f.to_dict(orient="records")]
            for t, f in raw.items()}  # fmt: skip
    assert_same(rows)
    assert validate_rows(rows).rejects  # the planted rows are found


def test_one_event_row() -> None:
    order = {"order_id": "O9", "user_id": "U-old", "product_id": "P-old", "amount": "25.0",
             "ts": "2026-12-03T10:00:00+00:00", "status": "paid"}  # fmt: skip
    assert_same({"orders": [order]})
    assert_same({"orders": [{**order, "amount": "-1"}]})
    assert_same({"logins": [{"user_id": "U-old", "device_id": "D-old", "ts": "2026-12-03"}]})


VALUES = {  # per column kind: good values in several spellings, and bad ones
    "id": ["U-old", "P-old", "D-old", " U-old ", "", "x" * 1100, "U404", "\u00e9"],
    "ts": ["2026-12-03T10:00:00Z", "2026-12-03", "2026-12-03T10:00:00.1234567+05:30",
           "1969-12-31T23:59:59.9995Z", "  2026-01-01T00:00:00 ", "2026-13-01", "2026-02-30",
           "3000-01-01", "1600-01-01", "", "now", "20261203T100000Z", "2026-12-03 10:00"],
    "number": ["25", "25.0", " 1e3 ", "-3", "-0.0", "inf", "-inf", "nan", "1e400", "abc", "",
               "0x10", "1_000", "+5", ".5", "5.", "99999999999999999999", "\u0663"],
    "rating": ["1", "5", "3.0", "0", "6", "2.5", "-1", "", "x", " 4 "],
    "status": ["paid", "PAID ", "refunded", "chargeback", "cancelled", "stolen", ""],
    "text": ["", " padded ", "\u597d\u597d", "x" * 30],
}  # fmt: skip
KIND = {"order_id": "id", "review_id": "id", "user_id": "id", "product_id": "id",
        "device_id": "id", "ts": "ts", "amount": "number", "rating": "rating",
        "status": "status", "text": "text"}  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_random_event_batches_agree(seed: int) -> None:
    """Random mixes of good and bad values (the service's tables), a few rows at a time."""
    rng = np.random.default_rng(seed)
    rows: Rows = {}
    for table in ("logins", "orders", "reviews"):
        cols = list(REQUIRED[table]) + (["device_id"] if table == "orders" else [])
        n = int(rng.integers(1, 12))
        pool = [f"{table[0]}{i}" for i in range(4)]  # repeated keys: duplicates
        rows[table] = [
            {c: str(rng.choice(pool)) if c in ("order_id", "review_id") and rng.random() < 0.7
             else str(rng.choice(VALUES[KIND[c]])) for c in cols if c != "device_id"
             or rng.random() < 0.6}
            for _ in range(n)
        ]  # fmt: skip
    assert table_columns(rows["orders"])  # optional device_id: sometimes absent
    assert_same(rows, max_field_bytes=40)
