"""Each product's stored review aggregates against a real Neo4j: after every path that writes
reviews they equal what a traversal of its REVIEWED edges counts, and the neighbourhood read
gives the same answer with and without them (the fallback for older graphs)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console

from graph import schema
from graph.bundle import read_bundle
from graph.neo4j.load import REVIEWS, UPDATE_REVIEWS, columns_for, recount_products
from graph.neo4j.neighbourhood import NEIGHBOURHOOD
from graph.neo4j.store import GraphStore
from serving.pipeline import run_import
from serving.settings import Settings
from tests.graph.review_aggregates import AGGREGATES, assert_exact

pytestmark = pytest.mark.neo4j
QUIET = Console(quiet=True)

HEAVY_REVIEWERS = f"""
MATCH (u:{schema.USER})-[:{schema.REVIEWED}]->(p:{schema.PRODUCT})
WITH u, sum(COUNT {{ (p)<-[:{schema.REVIEWED}]-() }}) AS weight
RETURN u.user_id AS id ORDER BY weight DESC, id LIMIT 5
"""
CLEAR = f"MATCH (p:{schema.PRODUCT}) REMOVE p.{schema.REVIEW_COUNT}, p.{schema.RATING_SUM}"


def _clear(store: GraphStore) -> None:
    with store.driver.session(database=store.database) as session:
        session.run(CLEAR).consume()


def _hoods(store: GraphStore, users: list[str]) -> list[dict[str, Any]]:
    return [store.read(NEIGHBOURHOOD, user_id=u, fanout=1000)[0]["reviews"] for u in users]


def test_transactional_import_rerun_and_moved_review_keep_exact_aggregates(
    store: GraphStore, neo4j_settings: Settings, small_bundle: Path, tmp_path: Path
) -> None:
    run_import(store, neo4j_settings, small_bundle, tmp_path / "r1", QUIET)
    first = assert_exact(store)
    run_import(store, neo4j_settings, small_bundle, tmp_path / "r2", QUIET)  # rerun
    assert assert_exact(store) == first

    # a newer bundle moves one review to another user and product and changes its rating,
    # and changes another review's rating in place (the in-place update path)
    moved = tmp_path / "moved"
    shutil.copytree(small_bundle, moved)
    reviews = pd.read_csv(moved / "reviews.csv", dtype=str, keep_default_na=False)
    users = pd.read_csv(moved / "users.csv", dtype=str, keep_default_na=False)["user_id"]
    counts = reviews["product_id"].value_counts()
    busy, quiet = counts.index[0], counts.index[-1]
    i = reviews.index[reviews["product_id"] == busy][0]
    old_rating = int(reviews.loc[i, "rating"])
    reviews.loc[i, "product_id"] = quiet
    reviews.loc[i, "user_id"] = users[users != reviews.loc[i, "user_id"]].iloc[0]
    reviews.loc[i, "rating"] = "1" if old_rating != 1 else "5"
    j = reviews.index[reviews["product_id"] != quiet][-1]
    reviews.loc[j, "rating"] = "2" if reviews.loc[j, "rating"] != "2" else "3"
    reviews.to_csv(moved / "reviews.csv", index=False)
    # a load killed after the reviews' upserts, before the recount: the touched products have
    # no values (read by traversal), every other product still exact ones
    table = read_bundle(moved).tables["reviews"]
    store.write_columns(REVIEWS, columns_for("reviews", table), update=UPDATE_REVIEWS)
    half = store.read(AGGREGATES)
    cleared = {r["id"] for r in half if r["stored_n"] is None}
    assert {busy, quiet, reviews.loc[j, "product_id"]} <= cleared
    assert all((r["stored_n"], r["stored_s"]) == (r["n"], r["s"]) for r in half
               if r["id"] not in cleared)  # fmt: skip
    run_import(store, neo4j_settings, moved, tmp_path / "r3", QUIET)
    after = {r["id"]: r for r in assert_exact(store)}
    before = {r["id"]: r for r in first}
    assert after[busy]["n"] == before[busy]["n"] - 1
    assert after[quiet]["n"] == before[quiet]["n"] + 1


def test_a_graph_without_the_aggregates_reads_the_same_and_gets_them_back(
    store: GraphStore, neo4j_settings: Settings, small_bundle: Path, tmp_path: Path
) -> None:
    run_import(store, neo4j_settings, small_bundle, tmp_path / "r1", QUIET)
    users = [r["id"] for r in store.read(HEAVY_REVIEWERS)]
    stored = _hoods(store, users)
    assert any(review["reviews"] > 1 for hood in stored for review in hood)
    _clear(store)  # as imported before the aggregates existed
    assert all(r["stored_n"] is None for r in store.read(AGGREGATES))
    assert _hoods(store, users) == stored  # the fallback counts by traversal
    assert recount_products(store) == len(store.read(AGGREGATES))  # every product was stale
    assert_exact(store)
    assert _hoods(store, users) == stored


def test_stored_aggregates_spare_the_traversal(
    store: GraphStore, neo4j_settings: Settings, small_bundle: Path, tmp_path: Path
) -> None:
    """PROFILE: with the aggregates stored, the read touches no other user's review."""
    run_import(store, neo4j_settings, small_bundle, tmp_path / "r1", QUIET)
    user = store.read(HEAVY_REVIEWERS)[0]["id"]

    def hits() -> int:
        with store.driver.session(database=store.database) as session:
            summary = session.run("PROFILE " + NEIGHBOURHOOD, user_id=user, fanout=1000).consume()
        return _db_hits(summary.profile)

    with_props = hits()
    _clear(store)
    without = hits()
    own = len(_hoods(store, [user])[0])
    others = sum(review["reviews"] for review in _hoods(store, [user])[0]) - own
    assert others > 20
    assert without - with_props >= others  # each other review was at least one db hit


def _db_hits(plan: dict[str, Any]) -> int:
    return int(plan.get("dbHits", 0)) + sum(_db_hits(c) for c in plan.get("children", []))
