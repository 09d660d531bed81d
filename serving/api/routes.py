"""Score, ring and health routes. Every /v1 route needs an API key (``deps.require_key``)."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any, LiteralString

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from graph.bundle import MAX_ID_BYTES
from serving.api.deps import ScorerDep, require_key
from serving.api.scoring import Scorer, stored_answer
from serving.queries import json_line
from serving.ring_view import ring_report

router = APIRouter()
v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])

RINGS: LiteralString = """
MATCH (r:Ring) WHERE coalesce(r.risk_mean, 0.0) >= $min_score
  AND coalesce(r.status, 'new') <> 'closed'
RETURN r.ring_id AS ring_id, r.size AS size, r.risk_mean AS risk_mean,
       r.exposure_amount AS exposure_amount, r.chargeback_amount AS chargeback_amount,
       coalesce(r.status, 'new') AS status, toString(r.first_seen) AS first_seen,
       toString(r.last_seen) AS last_seen
ORDER BY risk_mean DESC, ring_id LIMIT $limit
"""
UserId = Annotated[str, Path(min_length=1, max_length=MAX_ID_BYTES)]


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_ids: list[Annotated[str, Field(min_length=1, max_length=MAX_ID_BYTES)]] = Field(
        min_length=1
    )


def _plain(value: Any) -> Any:
    return json.loads(json_line(value))  # datetimes as text, NaN as null


def score_one(scorer: Scorer, user_id: str, fresh: bool) -> dict[str, Any] | None:
    if not fresh:
        row = scorer.stored([user_id]).get(user_id)
        if row is None:
            return None
        if row["fraud"] is not None:
            return stored_answer(row, scorer.run_fields())
    return scorer.online(user_id)


@v1.get("/users/{user_id}/score", response_model=dict[str, Any])
async def user_score(
    user_id: UserId, scorer: ScorerDep, fresh: Annotated[bool, Query()] = False
) -> Response:
    """A user's score: the stored one (batch or last event), or computed now (``fresh``, or
    when none is stored). A cached stored score is answered on the event loop; anything that
    needs Neo4j or the model runs in a worker thread."""
    if not fresh:
        row = scorer.cache.get(user_id)
        if row is not None and row["fraud"] is not None:
            return JSONResponse(stored_answer(row, scorer.run_fields()))  # plain JSON already
    answer = await run_in_threadpool(score_one, scorer, user_id, fresh)
    if answer is None:
        raise HTTPException(404, "unknown user id")
    return JSONResponse(answer)


@v1.post("/score")
def batch_score(body: ScoreRequest, request: Request, scorer: ScorerDep) -> dict[str, Any]:
    """Scores of several users (at most RISKGRAPH_API_MAX_BATCH); unknown ids are listed."""
    limit = request.app.state.settings.api_max_batch
    if len(body.user_ids) > limit:
        raise HTTPException(413, f"at most {limit} user ids per request")
    ids = list(dict.fromkeys(body.user_ids))
    stored = scorer.stored(ids)
    scores, unknown = [], []
    for user_id in ids:
        row = stored.get(user_id)
        if row is None:
            unknown.append(user_id)
        elif row["fraud"] is not None:
            scores.append(stored_answer(row, scorer.run_fields()))
        else:
            online = scorer.online(user_id)
            scores.append(online) if online else unknown.append(user_id)
    return {"scores": scores, "unknown": unknown}


@v1.get("/rings")
def rings(
    scorer: ScorerDep,
    min_score: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """Open rings by mean member risk, riskiest first."""
    rows = scorer.store.read(RINGS, min_score=min_score, limit=limit)
    return {"rings": _plain(rows)}


@v1.get("/rings/{ring_id}")
def ring(
    ring_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_BYTES)], scorer: ScorerDep
) -> dict[str, Any]:
    """One ring: properties, members, centres, timeline and evidence links."""
    report = ring_report(scorer.store, ring_id)
    if report is None:
        raise HTTPException(404, "unknown ring id")
    return dict(_plain(report))


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive (says nothing about Neo4j)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Neo4j reachable and the model loaded (and its snapshot taken)."""
    scorer: Scorer = request.app.state.scorer
    neo4j = await run_in_threadpool(scorer.store.ping)
    if neo4j and scorer.artifact is not None and scorer.snapshot is None:
        with contextlib.suppress(Exception):
            await run_in_threadpool(scorer.ensure_snapshot)
    checks = {"neo4j": neo4j, "model": scorer.artifact is not None,
              "snapshot": scorer.snapshot is not None}  # fmt: skip
    ok = all(checks.values())
    run = scorer.run_fields()
    body = {"ready": ok, "checks": checks, "model_version": scorer.version, "score_run": run,
            "score_cache": {"enabled": scorer.cache.enabled, "serving": scorer.cache.usable(),
                            "users": scorer.cache.size}}  # fmt: skip
    if run["run_complete"] is False:
        body["warning"] = (f"the latest score run {run['run_id']} did not finish: stored scores "
                           "mix two runs; rerun `riskgraph score`")  # fmt: skip
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format: requests, latency histograms, errors, model version."""
    return Response(generate_latest(request.app.state.metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)  # fmt: skip


router.include_router(v1)
