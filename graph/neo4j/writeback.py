"""Write model outputs back onto the graph: scores on users and merchants.

Each user write belongs to a scoring run (:mod:`graph.neo4j.runs`). Before the new scores are
set, the user's current ones are copied into ``previous_*`` (``schema.PREVIOUS_PROPERTIES``),
unless they come from a run that never completed (this one, resumed after a crash, or an
abandoned one): then ``previous_*`` already holds the last complete run's scores and must not
shift again. So a rerun of a killed run writes every user exactly once into history.
Rings are written by :mod:`graph.rings.store` (one transaction, stable ids).
"""

from __future__ import annotations

from typing import LiteralString, cast

import pandas as pd

from graph import schema
from graph.limits import DEFAULT_BATCH_SIZE
from graph.neo4j.store import GraphStore, ProgressFn, records

_SHIFT = ", ".join(f"u.{new} = u.{old}" for old, new in schema.PREVIOUS_PROPERTIES.items())
USER_SCORES = cast(
    LiteralString,
    f"""
UNWIND $rows AS row
MATCH (u:{schema.USER} {{user_id: row.user_id}})
FOREACH (_ IN CASE WHEN u.score_run IS NULL OR NOT u.score_run IN $unshifted
                   THEN [1] ELSE [] END | SET {_SHIFT})
SET u.risk_score = row.risk_score, u.default_probability = row.default_probability,
    u.credit_score = row.credit_score, u.risk_band = row.risk_band, u.reasons = row.reasons,
    u.score_version = $version, u.scored_at = datetime($scored_at), u.score_run = $run_id
""",
)
MERCHANT_SCORES: LiteralString = f"""
UNWIND $rows AS row
MATCH (m:{schema.MERCHANT} {{merchant_id: row.merchant_id}})
SET m.risk_score = row.risk_score, m.score_version = $version, m.scored_at = datetime($scored_at)
"""


def write_user_scores(
    store: GraphStore,
    scores: pd.DataFrame,
    version: str,
    scored_at: str,
    run_id: str,
    unshifted: list[str],
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressFn | None = None,
) -> int:
    """SET risk_score, default_probability, credit_score, risk_band, reasons on every user.

    ``unshifted``: run ids whose scores are not history (``runs.incomplete_run_ids``, which
    includes ``run_id`` itself while it is open).
    """
    cols = ["user_id", "risk_score", "default_probability", "credit_score", "risk_band", "reasons"]
    frame = scores[cols].copy()
    frame["credit_score"] = frame["credit_score"].astype(int)
    return store.write_batches(
        USER_SCORES, records(frame), batch_size, progress, version=version,
        scored_at=scored_at, run_id=run_id, unshifted=sorted({*unshifted, run_id}),
    )  # fmt: skip


def write_merchant_scores(
    store: GraphStore,
    scores: pd.DataFrame,
    version: str,
    scored_at: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> int:
    return store.write_batches(
        MERCHANT_SCORES, records(scores), batch_size, version=version, scored_at=scored_at
    )
