"""Bundle validation against hostile input (issue 17), CSV and Parquet; no database."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graph.bundle import MAX_ID_BYTES, BundleError, read_bundle
from graph.neo4j.store import batch_bounds, row_bytes
from tests.bundles import write_bundle
from tests.hostile import (
    BAD_VALUES_REJECTS,
    NON_FINITE,
    WHITESPACE_REJECTS,
    append_rows,
    bad_values_bundle,
    to_parquet,
    whitespace_bundle,
)

FORMATS = ["csv", "parquet"]


def _as(fmt: str, folder: Path, typed: dict[str, dict[str, pa.DataType]] | None = None) -> Path:
    """Leave the bundle as CSV, or turn every table into Parquet (some columns typed)."""
    if fmt == "parquet":
        for path in sorted(folder.glob("*.csv")):
            to_parquet(folder, path.stem, (typed or {}).get(path.stem))
    return folder


def _rules(bundle_rejects: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted(zip(bundle_rejects["table"], bundle_rejects["rule"], strict=True))


# -- 1. ids are normalised once, before any rule ----------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_ids_differing_only_by_white_space_are_duplicates(tmp_path: Path, fmt: str) -> None:
    bundle = read_bundle(_as(fmt, whitespace_bundle(tmp_path / "b")))
    assert _rules(bundle.rejects) == WHITESPACE_REJECTS
    t = bundle.tables
    assert sorted(t["users"]["user_id"]) == ["U1", "U2", "U9"]
    assert sorted(t["orders"]["order_id"]) == ["O1", "O2", "O20"]
    assert sorted(t["products"]["product_id"]) == ["007", "7", "P1"]
    assert sorted(t["merchants"]["merchant_id"]) == ["M1", "M2"]
    # the first occurrence wins: U2 keeps its own values, not the duplicates' FR/9
    users = t["users"].set_index("user_id")
    assert users.loc["U2", "country"] == "US" and np.isnan(users.loc["U2", "feat_kyc"])
    # references written with white space resolve to the normalised ids
    o20 = t["orders"].set_index("order_id").loc["O20"]
    assert (o20["user_id"], o20["product_id"], o20["device_id"]) == ("U9", "007", "D2")
    logins = t["logins"]
    assert ("U9", "D2") in set(zip(logins["user_id"], logins["device_id"], strict=True))
    # the rejected rows keep the values as they were in the file
    dup = bundle.rejects[bundle.rejects["table"] == "orders"]["record"].map(json.loads)
    assert {"O2 ", "\u00a0O1"} <= {r["order_id"] for r in dup}


@pytest.mark.parametrize("fmt", FORMATS)
def test_numeric_looking_ids_stay_strings(tmp_path: Path, fmt: str) -> None:
    """``007`` and ``7`` differ; a Parquet integer id column reads as ``7``, never ``7.0``."""
    folder = write_bundle(tmp_path / "b")
    append_rows(folder, "users", [["0042", "2026-01-01", "DE", "1"], ["42", "2026-01-01", "", ""]])
    append_rows(folder, "orders", [["0100", "42", "7", "1", "2026-01-05T12:00:00Z", "paid", ""]])
    bundle = read_bundle(_as(fmt, folder))
    assert bundle.rejects.empty
    assert sorted(bundle.tables["users"]["user_id"]) == ["0042", "42", "U1", "U2"]
    order = bundle.tables["orders"].set_index("order_id").loc["0100"]
    assert (order["user_id"], order["product_id"]) == ("42", "7")


def test_parquet_integer_and_float_typed_ids(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    write_bundle(folder)
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([7, 8, 9], pa.int64()),
                "created_at": pa.array(["2026-01-01"] * 3),
                "country": pa.array(["DE", None, "FR"]),
            }
        ),
        folder / "users.parquet",
    )
    (folder / "users.csv").unlink()
    # float-typed (as pandas writes an integer column with a gap): 8.0 is the id 8
    pq.write_table(
        pa.table({"user_id": pa.array([8.0, None]), "fraud": [1, 0], "default": [0, None]}),
        folder / "labels.parquet",
    )
    (folder / "labels.csv").unlink()
    (folder / "orders.csv").write_text(
        "order_id,user_id,product_id,amount,ts,status\n"
        "O1,7,P1,1,2026-01-05,paid\nO2,007,P1,1,2026-01-05,paid\nO3,7.0,P1,1,2026-01-05,paid\n"
    )
    (folder / "rings.csv").unlink()
    (folder / "logins.csv").write_text("user_id,device_id,ts\n9,D1,2026-01-05\n")
    (folder / "reviews.csv").write_text("review_id,user_id,product_id,rating,text,ts\n")
    bundle = read_bundle(folder)
    assert sorted(bundle.tables["users"]["user_id"]) == ["7", "8", "9"]
    assert list(bundle.tables["orders"]["order_id"]) == ["O1"]
    assert _rules(bundle.rejects) == [
        ("labels", "missing_value"),
        ("orders", "unknown_reference"),
        ("orders", "unknown_reference"),
    ]
    assert list(bundle.tables["labels"]["user_id"]) == ["8"]


# -- 2. numbers must be finite; 12. countries must exist; missing values ---------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_non_finite_numbers_unknown_countries_and_missing_values(tmp_path: Path, fmt: str) -> None:
    typed = {
        "orders": {"amount": pa.float64()},
        "products": {"price": pa.float64()},
        "users": {"feat_kyc": pa.float64()},
        "reviews": {"rating": pa.float64()},
    }
    bundle = read_bundle(_as(fmt, bad_values_bundle(tmp_path / "b"), typed))
    assert _rules(bundle.rejects) == BAD_VALUES_REJECTS
    users = bundle.tables["users"].set_index("user_id")
    assert sorted(users.index) == ["U1", "U2"]
    for table, column in (("orders", "amount"), ("products", "price"), ("users", "feat_kyc")):
        values = bundle.tables[table][column].dropna()
        assert np.isfinite(values).all(), (table, column)
    details = " ".join(bundle.rejects["detail"])
    assert "ZZ" in details and "not a finite number" in details


def test_each_non_finite_spelling_is_a_bad_number_in_every_numeric_column(tmp_path: Path) -> None:
    for value in NON_FINITE:
        folder = write_bundle(tmp_path / f"b{NON_FINITE.index(value)}")
        append_rows(folder, "products", [["PX", "M1", "books", value]])
        append_rows(folder, "users", [["UX", "2026-01-01", "DE", value]])
        append_rows(folder, "orders", [["OX", "U1", "P1", value, "2026-01-05", "paid", ""]])
        append_rows(folder, "reviews", [["RX", "U1", "P1", value, "t", "2026-01-05"]])
        rejects = read_bundle(folder).rejects
        assert _rules(rejects) == [
            ("orders", "bad_number"),
            ("products", "bad_number"),
            ("reviews", "bad_number"),
            ("users", "bad_number"),
        ], value


def test_country_codes_are_checked_against_iso_3166(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "b")
    codes = ["ZZ", "XX", "UK", "EU", "AA", "QZ", "XK", "D", "DEU", "1A", "gb", " fr ", "AX", "SS"]
    append_rows(folder, "users", [[f"C{i}", "2026-01-01", c, ""] for i, c in enumerate(codes)])
    bundle = read_bundle(folder)
    bad = bundle.rejects[bundle.rejects["rule"] == "bad_country"]
    assert len(bad) == 10
    kept = bundle.tables["users"].set_index("user_id")["country"]
    assert [kept[f"C{i}"] for i in range(10, 14)] == ["GB", "FR", "AX", "SS"]


def test_missing_values_are_rejected_per_required_column(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "b")
    append_rows(folder, "merchants", [["M9", "", "books"], ["M8", "2026-01-01", " "]])
    append_rows(folder, "devices", [["D9", "", "2026-01-01"], ["D8", "ios", ""]])
    append_rows(folder, "orders", [["O9", "U1", "P1", "1", "2026-01-05", "", ""]])
    rejects = read_bundle(folder).rejects
    assert _rules(rejects) == [("devices", "missing_value")] * 2 + [
        ("merchants", "missing_value")
    ] * 2 + [("orders", "missing_value")]
    assert "status is empty" in " ".join(rejects["detail"])


# -- 3. whole-file problems stop the import ----------------------------------------------------
@pytest.mark.parametrize(
    ("table", "header", "column"),
    [
        ("orders", "order_id,user_id,product_id,amount,ts,status,amount", "amount"),
        ("users", "user_id,created_at,country,feat_kyc,feat_kyc", "feat_kyc"),
        ("users", "user_id,created_at, user_id,country", "user_id"),
        ("users", "user_id,created_at,email,email", "email"),
    ],
)
def test_a_column_named_twice_stops_the_import(
    tmp_path: Path, table: str, header: str, column: str
) -> None:
    folder = write_bundle(tmp_path / "b")
    (folder / f"{table}.csv").write_text(header + "\n")
    with pytest.raises(BundleError, match=rf"{table}\.csv.*'{column}'.*more than once"):
        read_bundle(folder)


def test_unnamed_trailing_columns_are_ignored_like_extra_columns(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "b")
    lines = (folder / "devices.csv").read_text().splitlines()
    (folder / "devices.csv").write_text("".join(line + ",,\n" for line in lines))
    bundle = read_bundle(folder)
    assert bundle.rejects.empty and len(bundle.tables["devices"]) == 2


def test_a_parquet_column_named_twice_stops_the_import(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "b")
    schema = pa.schema([("user_id", pa.string()), ("created_at", pa.string()), ("feat_a", pa.float64()), ("feat_a", pa.float64())])  # fmt: skip
    table = pa.Table.from_arrays(
        [pa.array(["U1"]), pa.array(["2026-01-01"]), pa.array([1.0]), pa.array([2.0])],
        schema=schema,
    )
    pq.write_table(table, folder / "users.parquet")
    (folder / "users.csv").unlink()
    with pytest.raises(BundleError, match=r"users\.parquet.*'feat_a'.*more than once"):
        read_bundle(folder)


def test_a_table_given_as_csv_and_as_parquet_is_refused(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "b")
    pd.read_csv(folder / "users.csv", dtype=str).to_parquet(folder / "users.parquet")
    with pytest.raises(BundleError, match=r"users\.csv and .*users\.parquet"):
        read_bundle(folder)
    (folder / "users.csv").unlink()
    pd.read_csv(folder / "rings.csv", dtype=str).to_parquet(folder / "rings.parquet")
    with pytest.raises(BundleError, match=r"rings\.csv and .*rings\.parquet"):
        read_bundle(folder)


def test_non_utf8_error_names_the_line_and_byte_offset(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "b")
    text = "user_id,created_at,country\nU1,2026-01-01,DE\nU2,2026-01-01,DE\n"
    data = text.encode() + b"U\xe9,2026-01-01,FR\n"
    (folder / "users.csv").write_bytes(data)
    with pytest.raises(BundleError, match=rf"users\.csv.*not UTF-8.*line 4, byte offset {len(text) + 1}"):  # fmt: skip
        read_bundle(folder)


def test_non_utf8_deep_in_a_big_file_with_a_split_multibyte_character(tmp_path: Path) -> None:
    """The bad byte lies past the scanner's 1 MiB chunks, after a 'é' cut by a chunk edge."""
    folder = write_bundle(tmp_path / "b")
    head = b"review_id,user_id,product_id,rating,text,ts\n"
    line = "R{},U1,P1,5,fine é,2026-01-06\n"
    body = b"".join(line.format(i).encode() for i in range(60_000))
    bad = b'RX,U1,P1,5,"multi\nline \xff",2026-01-06\n'
    (folder / "reviews.csv").write_bytes(head + body + bad)
    offset = len(head) + len(body) + bad.index(b"\xff")
    with pytest.raises(BundleError, match=rf"line {60_000 + 3}, byte offset {offset}\b"):
        read_bundle(folder)


def test_a_row_with_more_fields_than_the_header_stops_the_import(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "b")
    append_rows(folder, "devices", [["D9", "ios", "2026-01-01", "surplus"]])
    with pytest.raises(BundleError, match=r"devices\.csv.*line 4"):
        read_bundle(folder)


# -- 4. field size limits and byte-sized batches ----------------------------------------------
def test_fields_above_their_limit_are_rejected(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "b")
    big_id = "U" + "x" * MAX_ID_BYTES
    append_rows(
        folder,
        "reviews",
        [
            ["RBIG", "U1", "P1", "5", "é" * 600, "2026-01-06"],  # 1200 bytes, 600 characters
            ["ROK", "U1", "P1", "5", "a" * 1000, "2026-01-06"],
        ],
    )
    append_rows(folder, "users", [[big_id, "2026-01-01", "DE", ""]])
    append_rows(folder, "merchants", [["M9", "2026-01-01", "c" * 1001]])
    bundle = read_bundle(folder, max_field_bytes=1000)
    assert _rules(bundle.rejects) == [
        ("merchants", "field_too_large"),
        ("reviews", "field_too_large"),
        ("users", "field_too_large"),
    ]
    assert "1200 bytes, the limit is 1000" in " ".join(bundle.rejects["detail"])
    assert "ROK" in set(bundle.tables["reviews"]["review_id"])


def test_batches_are_bounded_by_rows_and_bytes() -> None:
    sizes = np.array([10, 10, 10, 100, 10, 10, 1, 1, 1, 1])
    assert batch_bounds(sizes, max_rows=3, max_bytes=10_000) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert batch_bounds(sizes, max_rows=100, max_bytes=30) == [
        (0, 3), (3, 4), (4, 10)
    ]  # fmt: skip
    assert batch_bounds(np.array([], dtype=np.int64), 5, 5) == []
    columns = {
        "id": ["a", "éé", None],
        "text": ["xyz", "", "🚀"],
        "n": [1.0, 2.0, None],
        "f": [{}, {"a": 1}, {}],
    }
    assert row_bytes(columns).tolist() == [1 + 3 + 8 + 0, 2 + 0 + 8 + 24, 8 + 1 + 8 + 0]


# -- 11. rejects keep the contract's columns only ---------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_rejects_never_copy_columns_outside_the_contract(tmp_path: Path, fmt: str) -> None:
    bundle = read_bundle(_as(fmt, bad_values_bundle(tmp_path / "b")))
    records = [json.loads(r) for r in bundle.rejects[bundle.rejects["table"] == "users"]["record"]]
    assert records and all(
        set(r) == {"user_id", "created_at", "country", "feat_kyc"} for r in records
    )
    assert "example.com" not in bundle.rejects.to_csv()
