"""POST /v1/events: orders, logins and reviews as bundle rows, validated like `import`.

The rows go through ``graph.bundle_rows.validate_rows``: the import's own rules (the same rule
names, fields and messages as ``graph.bundle.validate``, tested row for row against it) over
plain dict rows, without pandas' fixed cost per rule; references are checked against the stored
ids they name. If any row breaks a rule the answer is a 422 naming the table, row, field and
rule, and nothing is written. Good rows are upserted with the import's own queries
(``graph.neo4j.load.WRITES``: MERGE by order/review id, logins folded into the user–device
edge; reviews also recount their products' review aggregates, ``Write.online``), so the same
event twice changes nothing. Each affected user is then rescored online and
the new score stored on the user and returned.

One write transaction: it reads the referenced ids, validates, upserts, reads the affected
users' neighbourhoods as written, rescores them (CPU only) and stores every new score in one
``UNWIND``, then commits once; the cache takes the scores after the commit. The time each
stage takes is kept in the ``riskgraph_event_stage_seconds`` histogram (``/metrics``).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Annotated, Any, LiteralString, cast

from fastapi import APIRouter, Depends, HTTPException, Request
from neo4j import ManagedTransaction
from pydantic import BaseModel, ConfigDict, Field

from graph.bundle import ID_COLUMNS, OPTIONAL_COLUMNS, REFERENCES, REQUIRED
from graph.bundle_rows import Reject, validate_rows
from graph.neo4j.load import WRITES, row_columns
from graph.neo4j.neighbourhood import NEIGHBOURHOODS, neighbourhood_of
from graph.neo4j.store import run_columns
from serving.api.deps import ScorerDep, require_key
from serving.api.scoring import Scorer, write_scores

if TYPE_CHECKING:
    from prometheus_client import Histogram

    from training.online import StateSnapshot

router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])
TABLES = ("logins", "orders", "reviews")
# The id columns the event tables reference and the table each names (graph.bundle.REFERENCES)
REFERENCED = {col: target for t in TABLES for col, target in REFERENCES[t]}
Value = str | int | float | None
Row = dict[Annotated[str, Field(max_length=64)], Value]
Rows = dict[str, list[dict[str, str]]]
# Per table: its import MERGE query as a unit subquery, then the touched users'
# neighbourhoods, read in the same query (each clause sees the earlier clauses' writes).
WRITE_THEN_READ = {
    w.table: cast(LiteralString, "CALL {\n" + w.online_query + "}\n" + NEIGHBOURHOODS)
    for w in WRITES if w.table in TABLES
}  # fmt: skip
EXISTING: LiteralString = """
RETURN [x IN $users WHERE EXISTS { MATCH (:User {user_id: x}) }] AS users,
       [x IN $products WHERE EXISTS { MATCH (:Product {product_id: x}) }] AS products,
       [x IN $devices WHERE EXISTS { MATCH (:Device {device_id: x}) }] AS devices
"""


class Events(BaseModel):
    """New events, each a row of the bundle table of the same name."""

    model_config = ConfigDict(extra="forbid")
    orders: list[Row] = Field(default_factory=list)
    logins: list[Row] = Field(default_factory=list)
    reviews: list[Row] = Field(default_factory=list)


class Stages:
    """Time spent per stage of one request (``mark`` closes the stage running since the last
    mark), observed into the service's stage histogram once the request is done."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.spent: dict[str, float] = {}

    def mark(self, stage: str) -> None:
        now = time.perf_counter()
        self.spent[stage] = self.spent.get(stage, 0.0) + now - self.last
        self.last = now

    def observe(self, histogram: Histogram) -> None:
        for stage, seconds in self.spent.items():
            histogram.labels(stage).observe(seconds)


def _rows(body: Events, limit: int) -> Rows:
    """Rows as string values (as the bundle reader gives them: ``None`` is empty); 422 for an
    unknown or missing field, 413 beyond the row limit."""
    rows = {t: getattr(body, t) for t in TABLES}
    total = sum(len(r) for r in rows.values())
    if total == 0:
        raise HTTPException(422, "no events: send orders, logins or reviews")
    if total > limit:
        raise HTTPException(413, f"at most {limit} event rows per request, got {total}")
    out: Rows = {}
    for table, items in rows.items():
        if not items:
            continue
        allowed = (*REQUIRED[table], *OPTIONAL_COLUMNS.get(table, ()))
        for i, item in enumerate(items):
            unknown = sorted(set(item) - set(allowed))
            missing = [c for c in REQUIRED[table] if c not in item]
            if unknown or missing:
                what = (
                    f"unknown field {unknown[0]!r}" if unknown else f"missing field {missing[0]!r}"
                )
                raise HTTPException(422, f"{table}[{i}]: {what} (fields: {', '.join(allowed)})")
        out[table] = [{c: "" if item[c] is None else str(item[c]) for c in allowed if c in item}
                      for item in items]  # fmt: skip
    return out


def _wanted(rows: Rows) -> dict[str, list[str]]:
    """The ids the rows reference, per referenced table (normalised as the validator does)."""
    wanted: dict[str, set[str]] = {t: set() for t in REFERENCED.values()}
    for items in rows.values():
        for item in items:
            for col, table in REFERENCED.items():
                value = item.get(col, "").strip() if col in ID_COLUMNS else ""
                if value:
                    wanted[table].add(value)
    return {k: sorted(v) for k, v in wanted.items()}


def _rejected(rejects: list[Reject]) -> HTTPException:
    return HTTPException(422, "; ".join(
        f"{r.table}[{r.row - 1}]: {r.rule} ({r.detail})" for r in rejects[:20]
    ) + "; nothing was written")  # fmt: skip


def write_events(
    scorer: Scorer, rows: Rows, max_field_bytes: int, snap: StateSnapshot, keys: list[str],
    stages: Stages | None = None,
) -> tuple[dict[str, int], list[dict[str, Any]]]:  # fmt: skip
    """In ONE write transaction: the referenced ids, validation (422 and nothing written on
    any bad row), the upserts, the affected users' neighbourhoods as written, their rescore
    (CPU only) and their new scores: one commit, a round trip per query and nothing more.
    Three round trips and the commit for a one-table event: BEGIN with the referenced ids;
    the upsert with the touched users' neighbourhoods read as written (one query); the scores.

    Each table is written by the import's MERGE query alone: its in-place update pre-pass
    (``Write.update``) saves a bulk re-import the endpoints' locks, but for a few rows it is one
    more round trip, and the MERGE query alone gives the same graph (tested: same event twice).
    """
    fanout = scorer.settings.api_fanout
    stages = stages or Stages()

    def work(tx: ManagedTransaction) -> tuple[dict[str, int], list[dict[str, Any]]]:
        stages.mark("connection")
        found = tx.run(EXISTING, _wanted(rows)).single()  # BEGIN goes with it (pipelined)
        assert found is not None
        stages.mark("existing_ids")
        checked = validate_rows(rows, {t: found[t] for t in REFERENCED.values()}, max_field_bytes)
        if checked.rejects:
            raise _rejected(checked.rejects)
        stages.mark("validate")
        writes = [(w, checked.tables[w.table]) for w in WRITES if checked.tables.get(w.table)]
        for write, clean in writes[:-1]:
            run_columns(tx, write.online_query, row_columns(write.table, clean), len(clean))
        write, clean = writes[-1]  # the last write also reads the users it touched
        users = sorted({row["user_id"] for _, rows_ in writes for row in rows_})
        params = {**row_columns(write.table, clean), "user_ids": users, "fanout": fanout}
        records = {r["user_id"]: r.data() for r in tx.run(WRITE_THEN_READ[write.table], params)}
        stages.mark("upsert_and_read")
        scores = [scorer.score_hood(snap, neighbourhood_of(u, records[u], keys))
                  for u in users if u in records]  # fmt: skip
        stages.mark("rescore")
        write_scores(tx, scorer, scores)
        stages.mark("store_scores")
        return {w.table: len(clean) for w, clean in writes}, scores

    # BEGIN is sent with the first query instead of waiting for its own answer, as the
    # driver's execute_query does (its flag; without it, BEGIN is one more round trip)
    with (
        scorer.store.driver.session(database=scorer.store.database) as session,
        getattr(session, "_pipelined_begin", None) or nullcontext(),
    ):
        accepted, scores = session.execute_write(work)
    stages.mark("commit")
    scorer.remember(scores)  # committed: now the cache may serve them
    return accepted, scores


@router.post("/events")
def post_events(body: Events, request: Request, scorer: ScorerDep) -> dict[str, Any]:
    """Validate, upsert idempotently, rescore the affected users and return their scores."""
    stages = Stages()
    settings = request.app.state.settings
    rows = _rows(body, settings.api_max_event_rows)
    snap, keys, _ = scorer.ensure_snapshot()  # not ready: refuse before writing, not after
    stages.mark("parse")
    try:
        accepted, scores = write_events(scorer, rows, settings.max_field_bytes, snap, keys, stages)
    finally:
        stages.observe(request.app.state.metrics.stages)
    return {"accepted": accepted, "scores": scores}
