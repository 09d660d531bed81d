"""Hostile variants of the hand-written bundle (issue 17): what a careless or hostile export holds.

Each helper writes one kind of trouble into a copy of :data:`tests.bundles.GOOD`; the tests of
both import paths (transactional and bulk) and of validation alone share them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tests.bundles import write_bundle

# Ids that normalise to an id already in the good bundle (duplicates), and spellings of it.
WHITESPACE = [" ", "\t", "\u00a0", "\u3000", "\u2003", "\u202f", "\u205f", "\u1680", "\u2028"]
NON_FINITE = ["inf", "-inf", "nan", "1e400", "-1e400", "Infinity", "-Infinity", "+inf", "NaN"]


def append_rows(folder: Path, table: str, rows: list[list[str]]) -> None:
    """Append rows to ``table``.csv with RFC 4180 quoting (values may hold any character)."""
    with (folder / f"{table}.csv").open("a", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def whitespace_bundle(folder: Path) -> Path:
    """The good bundle plus ids that differ from existing ones only by surrounding white space.

    Expected: every added user/order/product/device/review/merchant row is a ``duplicate_id``;
    references written with white space (``" U1"``) resolve; an id that is only white space is
    a ``missing_value``; ``"007 "`` is ``007``, never ``7``.
    """
    write_bundle(folder)
    append_rows(folder, "merchants", [["M1\u00a0", "2026-01-01", "spam"]])
    append_rows(folder, "products", [[" 007", "M2", "spam", "99"]])
    append_rows(
        folder,
        "users",
        [[f"U2{w}", "2026-01-01", "FR", "9"] for w in WHITESPACE]
        + [[f"{w}U9{w}", "2026-01-01", "FR", "1"] for w in ("\u00a0", "")]
        + [["\u3000 \t", "2026-01-01", "FR", "1"]],
    )
    append_rows(folder, "devices", [["D1\u3000", "android", "2026-01-01"]])
    append_rows(
        folder,
        "orders",
        [
            ["O2 ", "U1", "P1", "99", "2026-01-05T12:00:00Z", "paid", ""],
            ["\u00a0O1", "U1", "P1", "99", "2026-01-05T12:00:00Z", "paid", ""],
            ["O20", " U9\u3000", "007 ", "4", "2026-01-05T12:00:00Z", "paid", "D2\t"],
            ["  ", "U1", "P1", "4", "2026-01-05T12:00:00Z", "paid", ""],
            ["O21", "U1", "\u2003", "4", "2026-01-05T12:00:00Z", "paid", ""],
        ],
    )
    append_rows(folder, "reviews", [["R1\u202f", "U1", "P1", "1", "spam", "2026-01-06"]])
    append_rows(folder, "logins", [["U9\u00a0", " D2", "2026-01-07"]])
    return folder


# (table, rule) of every row whitespace_bundle adds, in the order written.
WHITESPACE_REJECTS = sorted(
    [("merchants", "duplicate_id"), ("products", "duplicate_id")]
    + [("users", "duplicate_id")] * len(WHITESPACE)
    + [("users", "duplicate_id"), ("users", "missing_value")]
    + [("devices", "duplicate_id")]
    + [("orders", "duplicate_id"), ("orders", "duplicate_id"), ("orders", "missing_value")]
    + [("orders", "missing_value")]
    + [("reviews", "duplicate_id")]
)


def bad_values_bundle(folder: Path) -> Path:
    """The good bundle plus non-finite numbers, unknown countries, empty required values and
    an ``email`` column outside the contract (which must never reach rejects.csv)."""
    write_bundle(folder)
    users = pd.read_csv(folder / "users.csv", dtype=str, keep_default_na=False)
    users["email"] = [f"{u.lower()}@example.com" for u in users["user_id"]]
    extra = pd.DataFrame(
        [
            ["U10", "2026-01-01", "ZZ", "1", "u10@example.com"],
            ["U11", "2026-01-01", "XK", "1", "u11@example.com"],
            ["U12", "2026-01-01", "uk", "1", "u12@example.com"],
            ["U13", "2026-01-01", "de", "inf", "u13@example.com"],
            ["U14", "2026-01-01", "DE", "1e400", "u14@example.com"],
            ["U15", "", "DE", "1", "u15@example.com"],
            ["U16", "2026-01-01", "D", "1", "u16@example.com"],
        ],
        columns=users.columns,
    )
    pd.concat([users, extra]).to_csv(folder / "users.csv", index=False)
    append_rows(
        folder,
        "orders",
        [
            [f"OX{i}", "U1", "P1", v, "2026-01-05T12:00:00Z", "paid", ""]
            for i, v in enumerate(NON_FINITE)
        ]
        + [["OX99", "U1", "P1", "", "2026-01-05T12:00:00Z", "paid", ""]],
    )
    append_rows(folder, "products", [["PX1", "M1", "books", "inf"], ["PX2", "M1", "books", "nan"]])
    append_rows(
        folder,
        "reviews",
        [
            ["RX1", "U1", "P1", "inf", "x", "2026-01-06"],
            ["RX2", "U1", "P1", "nan", "x", "2026-01-06"],
        ],
    )
    return folder


BAD_VALUES_REJECTS = sorted(
    [("users", "bad_country")] * 4
    + [("users", "bad_number")] * 2
    + [("users", "missing_value")]
    + [("orders", "bad_number")] * len(NON_FINITE)
    + [("orders", "missing_value")]
    + [("products", "bad_number")] * 2
    + [("reviews", "bad_number")] * 2
)


def to_parquet(folder: Path, table: str, schema: dict[str, pa.DataType] | None = None) -> None:
    """Replace ``table``.csv by ``table``.parquet, with some columns typed (not strings)."""
    frame = pd.read_csv(folder / f"{table}.csv", dtype=str, keep_default_na=False)
    arrays = {}
    for col in frame.columns:
        kind = (schema or {}).get(col, pa.string())
        values = frame[col].tolist()
        if kind != pa.string():
            values = [None if v == "" else float(v) for v in values]
            if pa.types.is_integer(kind):
                values = [None if v is None else int(v) for v in values]
        arrays[col] = pa.array(values, type=kind, from_pandas=False)
    pq.write_table(pa.table(arrays), folder / f"{table}.parquet")
    (folder / f"{table}.csv").unlink()


def big_reviews_bundle(folder: Path, n: int, size: int, too_big: int) -> Path:
    """The good bundle plus ``n`` reviews of ``size`` bytes and ``too_big`` reviews just over
    the default 1 MiB field limit (issue 17: 300 reviews of 1 MB exhausted a 1 GB heap)."""
    write_bundle(folder)
    with (folder / "reviews.csv").open("a", encoding="utf-8", newline="") as fh:
        for i in range(n + too_big):
            length = size if i < n else (1 << 20) + 1
            fill = chr(ord("a") + i % 26)
            fh.write(f"RB{i},U{1 + i % 2},P1,{1 + i % 5},{fill * length},2026-01-06\n")
    return folder
