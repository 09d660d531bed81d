"""Hostile bundles (issue 17) through the transactional import into a real Neo4j server.

What is stored must be exactly what validation kept: ids normalised (no second node or edge for
``"U9 "``), no infinity, rejects without columns outside the contract, reports 0600; a file
that cannot be read writes nothing; big texts load in byte-sized transactions on a 1 GB heap
and ``reset`` (``delete_all``) empties such a store.
"""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from graph import schema
from graph.bundle import BundleError
from graph.neo4j.store import GraphStore
from serving.pipeline import run_import
from serving.settings import Settings
from tests.bundles import write_bundle
from tests.graph.test_bulk_neo4j import dump
from tests.hostile import (
    BAD_VALUES_REJECTS,
    WHITESPACE_REJECTS,
    append_rows,
    bad_values_bundle,
    big_reviews_bundle,
    to_parquet,
    whitespace_bundle,
)

pytestmark = pytest.mark.neo4j
QUIET = Console(quiet=True)


def _rejects(report: Path) -> pd.DataFrame:
    return pd.read_csv(report / "rejects.csv", dtype=str, keep_default_na=False)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_white_space_ids_load_once_and_twice_changes_nothing(
    store: GraphStore, neo4j_settings: Settings, tmp_path: Path, fmt: str
) -> None:
    folder = whitespace_bundle(tmp_path / "b")
    if fmt == "parquet":
        for table in ("users", "orders", "merchants"):
            to_parquet(folder, table)
    report = run_import(store, neo4j_settings, folder, tmp_path / "r1", QUIET)
    rejects = _rejects(tmp_path / "r1")
    assert sorted(zip(rejects["table"], rejects["rule"], strict=True)) == WHITESPACE_REJECTS
    counts = store.counts()
    assert (counts["User"], counts["Merchant"], counts["Product"], counts["Device"]) == (3, 2, 3, 2)
    assert (counts["ORDERED"], counts["REVIEWED"], counts["USES"]) == (3, 1, 3)
    assert report.loaded["users"] == counts["User"] and report.loaded["orders"] == counts["ORDERED"]
    users = {r["id"]: r for r in store.read("MATCH (u:User) RETURN u.user_id AS id, u.country AS c, u.feat_kyc AS k")}  # fmt: skip
    assert set(users) == {"U1", "U2", "U9"}
    assert users["U2"]["c"] == "US" and users["U2"]["k"] is None  # not overwritten by "U2 "
    orders = store.read(
        "MATCH (u:User)-[o:ORDERED]->(p:Product) "
        "RETURN o.order_id AS o, u.user_id AS u, p.product_id AS p, o.amount AS a, o.device_id AS d"
    )
    assert sorted((r["o"], r["u"], r["p"], r["a"], r["d"]) for r in orders) == [
        ("O1", "U1", "P1", 10.0, "D1"),
        ("O2", "U2", "007", 5.0, None),
        ("O20", "U9", "007", 4.0, "D2"),
    ]
    first = dump(store)
    run_import(store, neo4j_settings, folder, tmp_path / "r2", QUIET)
    assert dump(store) == first


def test_bad_values_never_reach_the_store_and_rejects_hold_no_personal_data(
    store: GraphStore, neo4j_settings: Settings, tmp_path: Path
) -> None:
    folder = bad_values_bundle(tmp_path / "b")
    run_import(store, neo4j_settings, folder, tmp_path / "r", QUIET)
    rejects = _rejects(tmp_path / "r")
    assert sorted(zip(rejects["table"], rejects["rule"], strict=True)) == BAD_VALUES_REJECTS
    assert "example.com" not in (tmp_path / "r" / "rejects.csv").read_text()
    assert "email" not in json.loads(rejects[rejects["table"] == "users"]["record"].iloc[0])
    for name in ("rejects.csv", "report.json"):
        assert _mode(tmp_path / "r" / name) == 0o600, name
    values = [
        *(r["v"] for r in store.read("MATCH ()-[o:ORDERED]->() RETURN o.amount AS v")),
        *(r["v"] for r in store.read("MATCH (p:Product) RETURN p.price AS v")),
        *(r["v"] for r in store.read("MATCH (u:User) WHERE u.feat_kyc IS NOT NULL RETURN u.feat_kyc AS v")),
    ]  # fmt: skip
    assert values and all(math.isfinite(v) for v in values)
    countries = {r["c"] for r in store.read("MATCH (u:User) RETURN u.country AS c")}
    assert countries == {"DE", "US"}
    assert store.read("MATCH (u:User) WHERE u.email IS NOT NULL RETURN u")[:1] == []


def test_reports_are_private_even_when_they_existed(
    store: GraphStore, neo4j_settings: Settings, tmp_path: Path
) -> None:
    report = tmp_path / "r"
    report.mkdir()
    for name in ("rejects.csv", "report.json"):
        (report / name).write_text("old")
        (report / name).chmod(0o644)
    run_import(store, neo4j_settings, write_bundle(tmp_path / "b", bad=True), report, QUIET)
    assert {_mode(report / n) for n in ("rejects.csv", "report.json")} == {0o600}


@pytest.mark.parametrize("problem", ["duplicate_column", "csv_and_parquet", "not_utf8"])
def test_unreadable_files_write_nothing(
    store: GraphStore, neo4j_settings: Settings, tmp_path: Path, problem: str
) -> None:
    folder = write_bundle(tmp_path / "b")
    if problem == "duplicate_column":
        text = (folder / "reviews.csv").read_text().replace("rating,text", "rating,text,rating", 1)
        (folder / "reviews.csv").write_text(text)
        match = r"reviews\.csv.*'rating'"
    elif problem == "csv_and_parquet":
        pd.read_csv(folder / "rings.csv", dtype=str).to_parquet(folder / "rings.parquet")
        match = r"rings\.csv and .*rings\.parquet"
    else:
        with (folder / "orders.csv").open("ab") as fh:
            fh.write(b"O9,U1,P1,1,2026-01-05,paid,\xc3\x28\n")
        match = r"orders\.csv.*not UTF-8.*line 4, byte offset"
    with pytest.raises(BundleError, match=match):
        run_import(store, neo4j_settings, folder, tmp_path / "r", QUIET)
    assert sum(store.counts().values()) == 0
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_big_reviews_load_in_byte_sized_batches_and_reset_works(
    store: GraphStore, neo4j_settings: Settings, tmp_path: Path
) -> None:
    """The probe's case: 300 reviews of 1 MB against the 1 GB-heap test server (plus two over
    the 1 MiB field limit). Row-sized batches ran the server out of heap; now all 300 load,
    the two are rejected as field_too_large, and delete_all (``reset --yes``) empties it."""
    folder = big_reviews_bundle(tmp_path / "big", n=300, size=1_000_000, too_big=2)
    report = run_import(store, neo4j_settings, folder, tmp_path / "r", QUIET)
    assert report.rejected == {"reviews": {"field_too_large": 2}}
    assert store.counts()["REVIEWED"] == 1 + 300  # the good bundle's R1 and the big ones
    sizes = store.read(
        "MATCH ()-[r:REVIEWED]->() WHERE r.review_id STARTS WITH 'RB' "
        "RETURN count(r) AS n, min(size(r.text)) AS lo, max(size(r.text)) AS hi"
    )
    assert sizes == [{"n": 300, "lo": 1_000_000, "hi": 1_000_000}]
    store.delete_all(batch_size=neo4j_settings.write_batch_size)
    assert sum(store.counts().values()) == 0


def test_delete_all_mixes_small_and_big_entities(
    store: GraphStore, neo4j_settings: Settings, tmp_path: Path
) -> None:
    """Small entities go in row-bounded rounds, big ones (here 30 merchants with a 0.9 MB
    category, 30 reviews of 0.5 MB) by element id in byte-bounded groups; all of them go,
    and a label-restricted delete leaves the rest alone."""
    folder = write_bundle(tmp_path / "b")
    append_rows(folder, "merchants", [[f"MB{i}", "2026-01-01", "c" * 900_000] for i in range(30)])
    append_rows(
        folder,
        "reviews",
        [[f"RB{i}", "U1", "P1", "3", "t" * 500_000, "2026-01-06"] for i in range(30)],
    )
    run_import(store, neo4j_settings, folder, tmp_path / "r", QUIET)
    before = store.counts()
    assert (before["Merchant"], before["REVIEWED"]) == (32, 31)
    assert store.delete_all(schema.MERCHANT, batch_size=7, batch_bytes=1 << 20) == 32
    after = store.counts()
    assert after["Merchant"] == 0 and after["SOLD_BY"] == 0
    assert after["User"] == before["User"] and after["REVIEWED"] == 31
    store.delete_all(batch_size=7, batch_bytes=1 << 20)
    assert sum(store.counts().values()) == 0
