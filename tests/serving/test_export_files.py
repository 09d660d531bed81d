"""Export files without a database: parts, manifest checksums, atomicity, pseudonyms."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from serving.export import cli as export_cli
from serving.export import write as export_write
from serving.export.pseudonym import (
    PseudonymKeyError,
    check_key,
    key_id,
    pseudonym,
    pseudonymise_frame,
)
from serving.export.tables import TABLES
from serving.export.write import MANIFEST, ExportTargetError, verify_export, write_export

KEY = check_key("k" * 32)


def _users(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [f"U{i}" for i in range(n)],
            "credit_score": pd.array(range(n), dtype="Int64"),
            "reasons": [["a", "b"]] * n,
        }
    )


def test_parts_and_manifest_checksums_match_the_files(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    manifest = write_export(out, {"users": _users(25)}, "parquet", 10, {"run_id": "r1"})
    table = manifest["tables"]["users"]
    assert [p["rows"] for p in table["parts"]] == [10, 10, 5] and table["rows"] == 25
    for part in table["parts"]:
        data = (out / part["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == part["sha256"] and len(data) == part["bytes"]
    assert json.loads((out / MANIFEST).read_text()) == json.loads(json.dumps(manifest))
    assert {c["name"] for c in table["columns"]} == {"user_id", "credit_score", "reasons"}
    back = pd.concat(pd.read_parquet(out / p["file"]) for p in table["parts"])
    assert back["user_id"].tolist() == _users(25)["user_id"].tolist()
    assert verify_export(out) == []
    (out / table["parts"][1]["file"]).write_bytes(b"tampered")
    assert verify_export(out) == ["users: users-00001.parquet checksum differs"]


def test_csv_joins_list_cells_and_keeps_an_empty_table(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    manifest = write_export(out, {"users": _users(3), "rings": _users(0)}, "csv", 10, {})
    assert pd.read_csv(out / "users-00000.csv")["reasons"].tolist() == ["a; b"] * 3
    assert manifest["tables"]["rings"]["rows"] == 0
    assert (out / "rings-00000.csv").exists()


def test_an_interrupted_export_leaves_nothing_that_looks_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = export_write._write_part
    calls = {"n": 0}

    def dies_on_the_second_part(*args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(export_write, "_write_part", dies_on_the_second_part)
    out = tmp_path / "exp"
    with pytest.raises(KeyboardInterrupt):
        write_export(out, {"users": _users(25)}, "parquet", 10, {})
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_existing_export_is_never_mixed_with_a_new_one(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    write_export(out, {"users": _users(3)}, "parquet", 10, {})
    with pytest.raises(ExportTargetError, match="new folder"):
        write_export(out, {"users": _users(3)}, "parquet", 10, {})
    (tmp_path / "empty").mkdir()
    write_export(tmp_path / "empty", {"users": _users(3)}, "parquet", 10, {})
    assert (tmp_path / "empty" / MANIFEST).exists()


def test_pseudonyms_are_stable_keyed_and_kind_separated() -> None:
    frame = pd.DataFrame({"user_id": ["U1", "U2", "U1", None], "merchant_id": ["U1"] * 4})
    once, twice = pseudonymise_frame(KEY, frame), pseudonymise_frame(KEY, frame)
    assert once.equals(twice)  # stable: files pseudonymised apart still join
    assert once["user_id"][0] == once["user_id"][2] != once["user_id"][1]
    assert pd.isna(once["user_id"][3])
    assert once["merchant_id"][0] != once["user_id"][0]  # a user and a merchant "U1" differ
    other = pseudonymise_frame(check_key("q" * 32), frame)
    assert (other["user_id"][:3] != once["user_id"][:3]).all()  # keyed
    assert frame["user_id"][0] == "U1"  # the caller's frame is untouched


def test_pseudonyms_cannot_be_inverted_without_the_key() -> None:
    """Whoever holds the key joins back by recomputing; without it, neither a plain hash of a
    guessed id nor an HMAC under a wrong key reproduces the pseudonym."""
    target = pseudonym(KEY, "user", "U42")
    guesses = [f"U{i}" for i in range(1000)]
    assert {pseudonym(KEY, "user", g) for g in guesses} & {target} == {target}  # with the key
    plain = {hashlib.sha256(f"{p}{g}".encode()).hexdigest()[:32]
             for g in guesses for p in ("", "user:")}  # fmt: skip
    wrong_key = {pseudonym(check_key("x" * 32), "user", g) for g in guesses}
    assert target not in plain | wrong_key
    assert "U42" not in target and len(target) == 32
    assert key_id(KEY) != key_id(check_key("x" * 32)) and "k" * 16 not in key_id(KEY)


@pytest.mark.parametrize("key", [None, "", "short"])
def test_a_missing_or_short_key_is_refused(key: str | None) -> None:
    with pytest.raises(PseudonymKeyError, match="RISKGRAPH_PSEUDONYM_KEY"):
        check_key(key)


def test_cli_spells_the_same_tables_and_formats() -> None:
    assert tuple(TABLES) == export_cli.TABLES and export_cli.FORMATS == export_write.FORMATS
