"""Bundle validation rules (pure pandas, no database)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from graph.bundle import BundleError, read_bundle
from tests.bundles import BAD_ROWS, write_bundle


def test_good_bundle_has_no_rejects(tmp_path: Path) -> None:
    bundle = read_bundle(write_bundle(tmp_path / "b"))
    assert bundle.rejects.empty
    assert len(bundle.tables["orders"]) == 2
    assert bundle.feature_columns == ["feat_kyc"]


def test_ids_stay_strings_and_timestamps_default_to_utc(tmp_path: Path) -> None:
    bundle = read_bundle(write_bundle(tmp_path / "b"))
    assert set(bundle.tables["products"]["product_id"]) == {"P1", "007", "7"}
    users = bundle.tables["users"].set_index("user_id")
    # +02:00 is two hours before UTC midnight; no offset means UTC.
    assert users.loc["U1", "created_at"] == pd.Timestamp("2025-12-31T22:00:00Z").value // 10**6
    assert users.loc["U2", "created_at"] == pd.Timestamp("2026-01-03T00:00:00Z").value // 10**6


def test_review_text_keeps_commas_quotes_and_newlines(tmp_path: Path) -> None:
    bundle = read_bundle(write_bundle(tmp_path / "b"))
    assert bundle.tables["reviews"]["text"].iloc[0] == 'Great, really "great"\nbook'


def test_each_bad_row_is_rejected_with_its_rule(tmp_path: Path) -> None:
    bundle = read_bundle(write_bundle(tmp_path / "b", bad=True))
    assert len(bundle.rejects) == len(BAD_ROWS)
    for table, line, rule in BAD_ROWS:
        hits = bundle.rejects[(bundle.rejects["table"] == table) & (bundle.rejects["rule"] == rule)]
        originals = [json.loads(r) for r in hits["record"]]
        first_field = line.split(",")[0]
        assert any(first_field in rec.values() for rec in originals), (table, rule)
    # the good rows all survive, the duplicate keeps its first occurrence
    assert sorted(bundle.tables["orders"]["order_id"]) == ["O1", "O2"]
    assert bundle.tables["orders"].set_index("order_id").loc["O1", "device_id"] == "D1"


def test_row_pointing_at_a_rejected_row_is_rejected_too(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "b")
    with open(folder / "products.csv", "a") as fh:
        fh.write("P9,M1,books,-1\n")
    with open(folder / "orders.csv", "a") as fh:
        fh.write("O9,U1,P9,1,2026-01-05T10:00:00Z,paid,\n")
    rejects = read_bundle(folder).rejects
    assert set(zip(rejects["table"], rejects["rule"], strict=True)) == {
        ("products", "negative_amount"),
        ("orders", "unknown_reference"),
    }


def test_missing_required_column_names_file_and_column(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "b", drop_column=("orders", "status"))
    with pytest.raises(BundleError, match=r"orders\.csv.*status"):
        read_bundle(folder)


def test_missing_table_and_non_utf8_stop_the_import(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "b")
    (folder / "devices.csv").unlink()
    with pytest.raises(BundleError, match="devices"):
        read_bundle(folder)
    folder = write_bundle(tmp_path / "c")
    (folder / "users.csv").write_bytes(b"user_id,created_at\nU\xe9,2026-01-01\n")
    with pytest.raises(BundleError, match=r"users\.csv.*not UTF-8"):
        read_bundle(folder)


def test_parquet_tables_are_read_like_csv(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "b")
    frame = pd.read_csv(folder / "orders.csv", dtype=str, keep_default_na=False)
    frame.to_parquet(folder / "orders.parquet", index=False)
    (folder / "orders.csv").unlink()
    bundle = read_bundle(folder)
    assert bundle.rejects.empty
    assert list(bundle.tables["orders"]["order_id"]) == ["O1", "O2"]


def test_incremental_bundle_may_reference_existing_ids(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "b")
    with open(folder / "orders.csv", "a") as fh:
        fh.write("O7,U_OLD,P1,1,2026-01-05T10:00:00Z,paid,\n")
    assert len(read_bundle(folder).rejects) == 1
    existing = {"users": pd.Index(["U_OLD"])}
    assert read_bundle(folder, existing_ids=existing).rejects.empty
