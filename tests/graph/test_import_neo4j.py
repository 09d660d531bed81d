"""Importing bundles into a real Neo4j server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from graph.bundle import BundleError, read_bundle
from graph.export import export_from_bundle
from graph.neo4j.load import import_bundle
from graph.neo4j.reader import export_graph
from graph.neo4j.store import GraphStore
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
    reviews = (folder / "reviews.csv").read_text().replace("Great, really", "Fine, really")
    (folder / "reviews.csv").write_text(reviews)
    run_import(store, neo4j_settings, folder, None, QUIET)
    after = store.counts()
    assert after["ORDERED"] == before["ORDERED"] + 1
    assert after["REVIEWED"] == before["REVIEWED"]
    amounts = {r["o"]: r["amount"] for r in store.read(PROPS)}
    assert amounts["O1"] == 12.5
    texts = [r["text"] for r in store.read("MATCH ()-[r:REVIEWED]->() RETURN r.text AS text")]
    assert texts == ['Fine, really "great"\nbook']


EDGES = """
MATCH (u:User)-[r:ORDERED|REVIEWED]->(p:Product)
RETURN coalesce(r.order_id, r.review_id) AS id, u.user_id AS u, p.product_id AS p,
       r.amount AS amount, r.status AS status, r.device_id AS device, r.rating AS rating,
       r.text AS text ORDER BY id
"""


def test_newer_bundle_moves_and_clears_without_duplicates(
    store: GraphStore, neo4j_settings: Settings, tmp_path: Path
) -> None:
    """Changed endpoints move the edge, a cleared device goes away, unchanged rows stay."""
    folder = write_bundle(tmp_path / "v1")
    run_import(store, neo4j_settings, folder, None, QUIET)
    before = store.counts()
    orders = (folder / "orders.csv").read_text()
    orders = orders.replace(
        "O1,U1,P1,10,2026-01-05T10:00:00Z,paid,D1", "O1,U1,P1,10,2026-01-05T10:00:00Z,paid,"
    )
    orders = orders.replace("O2,U2,007,5,", "O2,U1,7,5,")
    (folder / "orders.csv").write_text(orders)
    reviews = (folder / "reviews.csv").read_text().replace("R1,U1,P1,5,", "R1,U2,P1,2,")
    (folder / "reviews.csv").write_text(reviews)
    run_import(store, neo4j_settings, folder, None, QUIET)
    assert store.counts() == before
    rows = {r["id"]: r for r in store.read(EDGES)}
    assert len(store.read(EDGES)) == len(rows) == 3
    assert rows["O1"] == {"id": "O1", "u": "U1", "p": "P1", "amount": 10.0, "status": "paid",
                          "device": None, "rating": None, "text": None}  # fmt: skip
    assert (rows["O2"]["u"], rows["O2"]["p"], rows["O2"]["status"]) == ("U1", "7", "chargeback")
    assert (rows["R1"]["u"], rows["R1"]["p"], rows["R1"]["rating"]) == ("U2", "P1", 2)
    assert rows["R1"]["text"] == 'Great, really "great"\nbook'


def _normal(frame: pd.DataFrame, sort_by: list[str]) -> pd.DataFrame:
    """Values only: float32/float64 and object/str differences and NaN/None spellings ignored."""
    out = pd.DataFrame(index=range(len(frame)))
    for col in sorted(frame.columns):
        values = frame[col]
        if values.dtype.kind == "f":
            out[col] = values.astype(np.float32).astype(np.float64)
        elif values.dtype.kind in "iu":
            out[col] = values.astype(np.int64)
        else:
            out[col] = values.astype(object).where(values.notna(), None)
    return out.sort_values(sort_by, kind="stable").reset_index(drop=True)


def test_export_equals_the_bundle_it_was_imported_from(
    store: GraphStore, small_bundle: Path
) -> None:
    """export_graph (many small chunks read by several workers) == export_from_bundle."""
    bundle = read_bundle(small_bundle)
    import_bundle(store, bundle)
    got = export_graph(store, chunk=97, workers=3)
    want = export_from_bundle(bundle)
    assert got.feature_keys == want.feature_keys and got.feature_keys
    for node_type, ids in want.ids.items():
        assert got.ids[node_type].tolist() == ids.tolist()
        pd.testing.assert_frame_equal(
            _normal(got.nodes[node_type], ["id"]), _normal(want.nodes[node_type], ["id"])
        )
    for edge_type, frame in want.edges.items():
        assert set(got.edges[edge_type].columns) == set(frame.columns)
        keys = ["src", "dst", *(c for c in ("order_id", "review_id") if c in frame)]
        pd.testing.assert_frame_equal(_normal(got.edges[edge_type], keys), _normal(frame, keys))
        index = got.data[edge_type].edge_index.numpy()
        assert (index[0] == got.edges[edge_type]["src"].to_numpy()).all()
        assert (np.diff(index[0]) >= 0).all()  # sorted by source, like assemble
    pd.testing.assert_frame_equal(got.labels, want.labels)
