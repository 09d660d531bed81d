"""POST /v1/events: orders, logins and reviews as bundle rows, validated like `import`.

The rows go through ``graph.bundle.validate`` (the import's own rules, references checked
against the stored ids they name); if any row breaks a rule the answer is a 422 naming the
table, row, field and rule, and nothing is written. Good batches are upserted with the
import's own queries (``graph.neo4j.load.WRITES``: MERGE by order/review id, logins folded
into the user–device edge), so the same event twice changes nothing. Each affected user is
then rescored online and the new score stored on the user and returned.

One write transaction: it reads the referenced ids, validates, upserts, reads the affected
users' neighbourhoods as written, rescores them (CPU only) and stores every new score in one
``UNWIND``, then commits once; the cache takes the scores after the commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, LiteralString

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Request
from neo4j import ManagedTransaction
from pydantic import BaseModel, ConfigDict, Field

from graph.bundle import OPTIONAL_COLUMNS, REQUIRED, ValidatedBundle, normalize_ids, validate
from graph.neo4j.load import WRITES, columns_for
from graph.neo4j.neighbourhood import NEIGHBOURHOOD, neighbourhood_of
from graph.neo4j.store import run_columns
from serving.api.deps import ScorerDep, require_key
from serving.api.scoring import Scorer, write_scores

if TYPE_CHECKING:
    from training.online import StateSnapshot

router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])
TABLES = ("logins", "orders", "reviews")
Value = str | int | float | None
Row = dict[Annotated[str, Field(max_length=64)], Value]
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


def _frames(body: Events, limit: int) -> dict[str, pd.DataFrame]:
    """Rows as string tables (as the bundle reader gives them); 422 for an unknown or
    missing field, 413 beyond the row limit."""
    rows = {t: getattr(body, t) for t in TABLES}
    total = sum(len(r) for r in rows.values())
    if total == 0:
        raise HTTPException(422, "no events: send orders, logins or reviews")
    if total > limit:
        raise HTTPException(413, f"at most {limit} event rows per request, got {total}")
    frames: dict[str, pd.DataFrame] = {}
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
        frames[table] = pd.DataFrame(
            [{c: "" if item.get(c) is None else str(item[c]) for c in allowed if c in item}
             for item in items], dtype=object,
        ).fillna("")  # fmt: skip
    return frames


def _wanted(frames: dict[str, pd.DataFrame]) -> dict[str, list[str]]:
    """The ids the rows reference, per referenced table."""
    wanted: dict[str, set[str]] = {"users": set(), "products": set(), "devices": set()}
    for frame in frames.values():
        norm = normalize_ids(frame)
        for col, table in (("user_id", "users"), ("product_id", "products"),
                           ("device_id", "devices")):  # fmt: skip
            if col in norm:
                wanted[table].update(v for v in norm[col] if v)
    return {k: sorted(v) for k, v in wanted.items()}


def _rejected(bundle: ValidatedBundle) -> HTTPException:
    problems = [
        {"table": r.table, "row": int(r.row) - 1, "rule": r.rule, "detail": r.detail}
        for r in bundle.rejects.head(20).itertuples()
    ]
    return HTTPException(422, "; ".join(
        f"{p['table']}[{p['row']}]: {p['rule']} ({p['detail']})" for p in problems
    ) + "; nothing was written")  # fmt: skip


def write_events(
    scorer: Scorer, frames: dict[str, pd.DataFrame], max_field_bytes: int,
    snap: StateSnapshot, keys: list[str],
) -> tuple[dict[str, int], list[dict[str, Any]]]:  # fmt: skip
    """In ONE write transaction: the referenced ids, validation (422 and nothing written on
    any bad row), the upserts, the affected users' neighbourhoods as written, their rescore
    (CPU only) and their new scores: one commit, a round trip per query and nothing more."""
    fanout = scorer.settings.api_fanout

    def work(tx: ManagedTransaction) -> tuple[dict[str, int], list[dict[str, Any]]]:
        found = tx.run(EXISTING, _wanted(frames)).single()
        assert found is not None
        existing = {t: pd.Index(found[t], dtype=object) for t in ("users", "products", "devices")}
        bundle = validate(frames, Path("api-events"), existing, max_field_bytes)
        if len(bundle.rejects):
            raise _rejected(bundle)
        accepted: dict[str, int] = {}
        for write in WRITES:
            frame = bundle.tables.get(write.table)
            if frame is None or frame.empty:
                continue
            run_columns(tx, write.query, columns_for(write.table, frame), len(frame), write.update)
            accepted[write.table] = len(frame)
        scores = []
        for user in sorted({u for f in bundle.tables.values() for u in f["user_id"]}):
            row = tx.run(NEIGHBOURHOOD, user_id=user, fanout=fanout).single()
            if row is not None:
                scores.append(scorer.score_hood(snap, neighbourhood_of(user, row.data(), keys)))
        write_scores(tx, scorer, scores)
        return accepted, scores

    with scorer.store.driver.session(database=scorer.store.database) as session:
        accepted, scores = session.execute_write(work)
    scorer.remember(scores)  # committed: now the cache may serve them
    return accepted, scores


@router.post("/events")
def post_events(body: Events, request: Request, scorer: ScorerDep) -> dict[str, Any]:
    """Validate, upsert idempotently, rescore the affected users and return their scores."""
    settings = request.app.state.settings
    frames = _frames(body, settings.api_max_event_rows)
    snap, keys, _ = scorer.ensure_snapshot()  # not ready: refuse before writing, not after
    accepted, scores = write_events(scorer, frames, settings.max_field_bytes, snap, keys)
    return {"accepted": accepted, "scores": scores}
