"""Importing bundles into a real Neo4j server."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from graph.bundle import BundleError, read_bundle
from graph.load import import_bundle
from graph.store import GraphStore
from serving.pipeline import run_import
from serving.settings import Settings
from tests.bundles import BAD_ROWS, write_bundle

pytestmark = pytest.mark.neo4j
QUIET = Console(quiet=True)

PROPS = """
MATCH (u:User)-[o:ORDERED]->(p:Product)
RETURN u.user_id AS u, p.product_id AS p, o.order_id AS o, o.amount AS amount,
       o.status AS status, toString(o.ts) AS ts ORDER BY o
"""


def test_importing_twice_gives_the_same_graph(
    store: GraphStore, neo4j_settings: Settings, small_bundle: Path, tmp_path: Path
) -> None:
    run_import(store, neo4j_settings, small_bundle, tmp_path / "r1", QUIET)
    first, first_props = store.counts(), store.read(PROPS)
    assert first["User"] == 800 and first["ORDERED"] > 0 and first["TruthRingMember"] > 0
    run_import(store, neo4j_settings, small_bundle, tmp_path / "r2", QUIET)
    assert store.counts() == first
    assert store.read(PROPS) == first_props


def test_bad_rows_are_rejected_and_good_rows_load(
    store: GraphStore, neo4j_settings: Settings, tmp_path: Path
) -> None:
    folder = write_bundle(tmp_path / "bad", bad=True)
    report = run_import(store, neo4j_settings, folder, tmp_path / "report", QUIET)
    rejects = pd.read_csv(tmp_path / "report" / "rejects.csv")
    assert sorted(zip(rejects["table"], rejects["rule"], strict=True)) == sorted(
        (t, r) for t, _, r in BAD_ROWS
    )
    assert report.total_rejected == len(BAD_ROWS)
    assert (tmp_path / "report" / "report.json").exists()
    counts = store.counts()
    assert counts["User"] == 2 and counts["Device"] == 2 and counts["ORDERED"] == 2
    assert counts["REVIEWED"] == 1 and counts["USES"] == 2
    ids = {r["id"] for r in store.read("MATCH (p:Product) RETURN p.product_id AS id")}
    assert ids == {"P1", "007", "7"}  # numeric-looking ids stay distinct strings


def test_missing_column_writes_nothing(
    store: GraphStore, neo4j_settings: Settings, tmp_path: Path
) -> None:
    folder = write_bundle(tmp_path / "cut", drop_column=("reviews", "rating"))
    with pytest.raises(BundleError, match=r"reviews\.csv.*rating"):
        run_import(store, neo4j_settings, folder, tmp_path / "report", QUIET)
    assert sum(store.counts().values()) == 0


class Crash(RuntimeError):
    pass


def test_import_killed_half_way_completes_on_rerun(
    store: GraphStore, small_bundle: Path, tmp_path: Path
) -> None:
    bundle = read_bundle(small_bundle)
    import_bundle(store, bundle, batch_size=500)
    expected = store.counts()
    store.delete_all()

    def crash_during_orders(table: str, total: int):  # type: ignore[no-untyped-def]
        def tick(n: int) -> None:
            if table == "orders":
                raise Crash("killed")

        return tick

    with pytest.raises(Crash):
        import_bundle(store, bundle, batch_size=500, progress=crash_during_orders)
    partial = store.counts()
    assert 0 < partial["ORDERED"] < expected["ORDERED"]
    import_bundle(store, bundle, batch_size=500)
    assert store.counts() == expected


def test_newer_bundle_updates_rows_without_duplicates(
    store: GraphStore, neo4j_settings: Settings, tmp_path: Path
) -> None:
    folder = write_bundle(tmp_path / "v1")
    run_import(store, neo4j_settings, folder, None, QUIET)
    before = store.counts()
    orders = (folder / "orders.csv").read_text().replace("O1,U1,P1,10,", "O1,U1,P1,12.5,")
    (folder / "orders.csv").write_text(orders + "O8,U2,P1,3,2026-02-01T00:00:00Z,paid,\n")
    run_import(store, neo4j_settings, folder, None, QUIET)
    after = store.counts()
    assert after["ORDERED"] == before["ORDERED"] + 1
    amounts = {r["o"]: r["amount"] for r in store.read(PROPS)}
    assert amounts["O1"] == 12.5
