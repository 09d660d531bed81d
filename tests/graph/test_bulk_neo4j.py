"""The offline bulk importer builds exactly the graph the transactional import builds.

The bulk import stops and restarts the server it loads into, so this module loads into the
private bulk server of ``tests/conftest.py`` (``bulk_settings``), not the shared test server.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, LiteralString, cast

import pytest
from neo4j.time import DateTime

from graph import schema
from graph.bundle import ValidatedBundle, read_bundle
from graph.neo4j.bulk import BulkImportError, bulk_import
from graph.neo4j.load import import_bundle
from graph.neo4j.server import LocalNeo4j
from graph.neo4j.store import GraphStore
from graph.synth.marketplace import GeneratorConfig, generate_marketplace
from serving.connect import local_server
from serving.settings import Settings
from tests.bundles import write_bundle
from tests.graph.review_aggregates import assert_exact

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]

NODE_LABELS = (
    schema.MERCHANT,
    schema.PRODUCT,
    schema.USER,
    schema.DEVICE,
    schema.LABEL,
    schema.TRUTH_RING,
)


@pytest.fixture(scope="module")
def server(bulk_settings: Settings) -> LocalNeo4j:
    return local_server(bulk_settings)


def open_store(server: LocalNeo4j) -> GraphStore:
    """A fresh driver each time: a bulk import restarts the server under older drivers."""
    return GraphStore(server.uri, "neo4j", server.password())


def _plain(value: Any) -> Any:
    """Driver values → JSON-comparable ones; datetimes keep their zone so Z ≠ a named zone."""
    if isinstance(value, DateTime):
        return f"{value.iso_format()}|{value.tzinfo}"
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _entry(key: Any, props: dict[str, Any], types: list[list[str]]) -> tuple[Any, str]:
    return key, json.dumps(
        {"props": {k: _plain(v) for k, v in props.items()}, "types": dict(types)}, sort_keys=True
    )


def dump(store: GraphStore) -> dict[str, Any]:
    """Counts, label sets, schema names, and every node's and relationship's properties.

    Properties come with Cypher's ``valueType`` so an integer stored as a float, or a datetime
    stored as a string, shows up as a difference.
    """
    out: dict[str, Any] = {"counts": store.counts()}
    out["label_sets"] = sorted(
        (tuple(sorted(r["labels"])), r["n"])
        for r in store.read("MATCH (n) RETURN labels(n) AS labels, count(*) AS n")
    )
    out["rel_types"] = sorted(
        (r["t"], r["n"]) for r in store.read("MATCH ()-[r]->() RETURN type(r) AS t, count(*) AS n")
    )
    out["constraints"] = sorted(r["name"] for r in store.read("SHOW CONSTRAINTS YIELD name"))
    out["indexes"] = sorted(
        json.dumps(r, sort_keys=True)
        for r in store.read(
            "SHOW INDEXES YIELD name, type, entityType, labelsOrTypes, properties, "
            "owningConstraint, state"
        )
    )
    for label in NODE_LABELS:
        query = cast(
            LiteralString,
            f"MATCH (n:{label}) RETURN properties(n) AS props, "
            "[k IN keys(n) | [k, valueType(n[k])]] AS types",
        )
        keys = ("ring_id", "user_id") if label == schema.TRUTH_RING else (schema.ID_KEY[label],)
        out[label] = sorted(
            _entry(tuple(r["props"].get(k) for k in keys), r["props"], r["types"])
            for r in store.read(query)
        )
    for rel in schema.RELATIONS:
        query = cast(
            LiteralString,
            f"MATCH (a:{rel.src})-[r:{rel.rel}]->(b:{rel.dst}) "
            f"RETURN a.{schema.ID_KEY[rel.src]} AS a, b.{schema.ID_KEY[rel.dst]} AS b, "
            "properties(r) AS props, [k IN keys(r) | [k, valueType(r[k])]] AS types",
        )
        out[rel.rel] = sorted(
            _entry((r["a"], r["b"]), r["props"], r["types"]) for r in store.read(query)
        )
    return out


def transactional_snapshot(server: LocalNeo4j, bundle: ValidatedBundle) -> dict[str, Any]:
    with open_store(server) as store:
        store.delete_all()
        import_bundle(store, bundle)
        return dump(store)


def tricky_bundle(folder: Path) -> ValidatedBundle:
    """The hand-written test bundle plus the values most likely to differ between the paths.

    Ids ``007``/``7``, a missing feature, unknown labels, an order without a device, and review
    texts with quotes, commas, line breaks (also CRLF), backslashes, edge spaces, an empty text,
    emoji and the importer's array delimiter; a user without a country; rejected rows.
    """
    write_bundle(folder, bad=True)
    with (folder / "users.csv").open("a", encoding="utf-8", newline="") as fh:
        fh.write("U3,2026-01-02T05:06:07.123Z,,\n")
    # labels with and without observed_at (an optional datetime: absent, never a string)
    (folder / "labels.csv").write_text(
        "user_id,fraud,default,observed_at\nU1,0,,\nU2,1,1,2026-02-01T10:00:00Z\nU3,,,\n"
    )
    texts = [
        "",
        "  edge spaces  ",
        'back\\slash and \\"escaped\\" quote',
        "crlf\r\nline",
        "ünïcødé 🚀, fine; semi;colons",
        '"fully quoted"',
        "multi\n\nparagraph\n",
    ]
    with (folder / "reviews.csv").open("a", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        for i, text in enumerate(texts):
            writer.writerow([f"T{i}", "U3", "007" if i % 2 else "7", 1 + i % 5, text, "2026-02-01"])
    bundle = read_bundle(folder)
    assert len(bundle.rejects) > 0 and len(bundle.tables["reviews"]) == 1 + len(texts)
    return bundle


def test_bulk_import_equals_transactional_import(server: LocalNeo4j, tmp_path: Path) -> None:
    generate_marketplace(GeneratorConfig(n_users=300, seed=3), tmp_path / "market")
    bundle = read_bundle(tmp_path / "market")
    expected = transactional_snapshot(server, bundle)
    assert expected["counts"]["User"] == 300 and expected["counts"]["USES"] > 0
    assert expected["counts"]["TruthRingMember"] > 0 and expected["counts"]["Label"] > 0

    with open_store(server) as store:
        store.delete_all()
    report = bulk_import(server, bundle, tmp_path / "work")

    with open_store(server) as store:
        got = dump(store)
        assert_exact(store)  # the review aggregates computed from the CSVs' reviews
    for key in expected:
        assert got[key] == expected[key], key  # properties, review aggregates included
    assert report.nodes[schema.USER] == 300
    assert report.relationships[schema.USES] == expected["counts"][schema.USES]
    assert {"import", "start", "schema", "total"} <= set(report.seconds)


def test_bulk_import_force_overwrites_and_keeps_tricky_values(
    server: LocalNeo4j, tmp_path: Path
) -> None:
    bundle = tricky_bundle(tmp_path / "tricky")
    expected = transactional_snapshot(server, bundle)
    # The database holds the transactional import now; force replaces it with the bulk one.
    bulk_import(server, bundle, tmp_path / "work", force=True, threads=2)
    with open_store(server) as store:
        got = dump(store)
    for key in expected:
        assert got[key] == expected[key], key
    texts = {json.loads(p)["props"]["text"] for _, p in got[schema.REVIEWED]}
    assert "crlf\r\nline" in texts and "" in texts and "  edge spaces  " in texts


def test_bulk_import_refuses_a_non_empty_database(server: LocalNeo4j, tmp_path: Path) -> None:
    bundle = read_bundle(write_bundle(tmp_path / "small"))
    with open_store(server) as store:
        store.delete_all()
        import_bundle(store, bundle)
        before = store.counts()
    pid = server.status().pid
    with pytest.raises(BulkImportError, match="not empty"):
        bulk_import(server, bundle, tmp_path / "work")
    status = server.status()
    assert status.running and status.pid == pid  # refused before the server was stopped
    with open_store(server) as store:
        assert store.counts() == before


def test_bulk_import_refuses_relationships_to_ids_outside_the_bundle(
    server: LocalNeo4j, tmp_path: Path
) -> None:
    bundle = read_bundle(write_bundle(tmp_path / "small"))
    bundle.tables["users"] = bundle.tables["users"][bundle.tables["users"]["user_id"] != "U2"]
    with pytest.raises(BulkImportError, match="not in this bundle"):
        bulk_import(server, bundle, tmp_path / "work")
