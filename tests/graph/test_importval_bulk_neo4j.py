"""Hostile bundles (issue 17) through the bulk path (``riskgraph import --bulk``).

The offline importer stops and restarts its server, so this module loads into the private bulk
server of ``tests/conftest.py`` (``bulk_settings``), and goes through
:func:`serving.pipeline.run_bulk_import`, exactly what the CLI runs. The graph must equal the
transactional import of the same bundle, value for value.
"""

from __future__ import annotations

import math
import stat
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from graph.bundle import read_bundle
from graph.neo4j.load import import_bundle
from graph.neo4j.store import GraphStore
from serving.connect import open_store
from serving.pipeline import run_bulk_import
from serving.settings import Settings
from tests.graph.test_bulk_neo4j import dump
from tests.hostile import (
    BAD_VALUES_REJECTS,
    WHITESPACE_REJECTS,
    bad_values_bundle,
    big_reviews_bundle,
    to_parquet,
    whitespace_bundle,
)

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]


def _store(settings: Settings) -> GraphStore:
    """A fresh driver each time: a bulk import restarts the server under older drivers."""
    return open_store(settings, start=False)


def _transactional_then_bulk(
    settings: Settings, folder: Path, report: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dump after a transactional import, then after a bulk import, of the same bundle."""
    with _store(settings) as store:
        store.delete_all()
        import_bundle(store, read_bundle(folder))
        expected = dump(store)
        store.delete_all()
    run_bulk_import(settings, folder, report)
    with _store(settings) as store:
        return expected, dump(store)


def _rules(report: Path) -> list[tuple[str, str]]:
    rejects = pd.read_csv(report / "rejects.csv", dtype=str, keep_default_na=False)
    return sorted(zip(rejects["table"], rejects["rule"], strict=True))


def test_bulk_white_space_ids_equal_the_transactional_import(
    bulk_settings: Settings, tmp_path: Path
) -> None:
    folder = whitespace_bundle(tmp_path / "b")
    for table in ("users", "orders"):
        to_parquet(folder, table)
    expected, got = _transactional_then_bulk(bulk_settings, folder, tmp_path / "r")
    for key in expected:
        assert got[key] == expected[key], key
    assert _rules(tmp_path / "r") == WHITESPACE_REJECTS
    assert (got["counts"]["User"], got["counts"]["ORDERED"]) == (3, 3)
    ids = sorted(key[0][0] for key in got["User"])
    assert ids == ["U1", "U2", "U9"]


def test_bulk_bad_values_never_reach_the_store(bulk_settings: Settings, tmp_path: Path) -> None:
    import pyarrow as pa

    folder = bad_values_bundle(tmp_path / "b")
    to_parquet(folder, "orders", {"amount": pa.float64()})
    to_parquet(folder, "users", {"feat_kyc": pa.float64()})
    expected, got = _transactional_then_bulk(bulk_settings, folder, tmp_path / "r")
    for key in expected:
        assert got[key] == expected[key], key
    assert _rules(tmp_path / "r") == BAD_VALUES_REJECTS
    assert "example.com" not in (tmp_path / "r" / "rejects.csv").read_text()
    for name in ("rejects.csv", "report.json"):
        assert stat.S_IMODE((tmp_path / "r" / name).stat().st_mode) == 0o600
    with _store(bulk_settings) as store:
        amounts = [r["a"] for r in store.read("MATCH ()-[o:ORDERED]->() RETURN o.amount AS a")]
        feats = [r["k"] for r in store.read("MATCH (u:User) RETURN u.feat_kyc AS k")]
        countries = {r["c"] for r in store.read("MATCH (u:User) RETURN u.country AS c")}
    assert all(math.isfinite(a) for a in amounts) and all(
        k is None or math.isfinite(k) for k in feats
    )
    assert countries == {"DE", "US"}


def test_bulk_big_reviews_load_and_reset_works(bulk_settings: Settings, tmp_path: Path) -> None:
    """300 reviews of 1 MB plus one of 5 MB (above the importer's documented 4 MiB read
    buffer, allowed here by a raised max_field_bytes) bulk-load; delete_all then empties the
    store on the 1 GB heap, in byte-sized transactions."""
    folder = big_reviews_bundle(tmp_path / "big", n=300, size=1_000_000, too_big=0)
    with (folder / "reviews.csv").open("a", encoding="utf-8") as fh:
        fh.write(f"RHUGE,U1,P1,5,{'h' * 5_000_000},2026-01-06\n")
    wide = bulk_settings.model_copy(update={"max_field_bytes": 8 << 20})
    with _store(bulk_settings) as store:
        store.delete_all()
    report, _ = run_bulk_import(wide, folder, tmp_path / "r")
    assert report.total_rejected == 0
    with _store(bulk_settings) as store:
        assert store.counts()["REVIEWED"] == 1 + 300 + 1
        longest = store.read("MATCH ()-[r:REVIEWED]->() RETURN max(size(r.text)) AS n")
        assert longest == [{"n": 5_000_000}]
        store.delete_all(batch_bytes=bulk_settings.write_batch_bytes)
        assert sum(store.counts().values()) == 0
