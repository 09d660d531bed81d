"""Everything the report shows, gathered once: the run, its saved data, the model, the rings.

The report describes the latest *complete* scoring run (and says so loudly when a newer run
did not finish); drift compares it with the complete run before it whose data is on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, LiteralString, cast

import pandas as pd

from graph import schema
from graph.neo4j.runs import IncompleteRunError, RunStatus, ScoreRun, run_status, unfinished_run
from graph.neo4j.store import GraphStore
from serving.report.figures import RingDrawing
from serving.report.snapshot import EVALUATION

GALLERY = 6
_R, _U = schema.RING, schema.USER
RINGS = cast(
    LiteralString,
    f"""
MATCH (r:{_R}) WHERE coalesce(r.status, 'new') <> 'closed'
RETURN r.ring_id AS ring_id, r.status AS status, r.size AS size, r.risk_mean AS risk_mean,
       r.exposure_amount AS exposure_amount, r.chargeback_amount AS chargeback_amount,
       r.evidence_device AS evidence_device, r.evidence_sync AS evidence_sync,
       r.evidence_text AS evidence_text, r.evidence_burst AS evidence_burst,
       r.method AS method
""",
)
RING_MEMBERS = cast(
    LiteralString,
    f"MATCH (u:{_U})-[:{schema.MEMBER_OF}]->(:{_R} {{ring_id: $ring_id}}) "
    "RETURN u.user_id AS user_id, coalesce(u.risk_score, 0.0) AS risk",
)
RING_CENTRES = cast(
    LiteralString,
    f"MATCH (:{_R} {{ring_id: $ring_id}})-[c:{schema.CENTRES_ON}]->(n) "
    "RETURN labels(n)[0] AS kind, coalesce(n.device_id, n.merchant_id) AS id, "
    "c.members AS members ORDER BY members DESC",
)
RING_TIES = cast(
    LiteralString,
    f"""
MATCH (r:{_R} {{ring_id: $ring_id}})<-[:{schema.MEMBER_OF}]-(u:{_U})
MATCH (r)-[:{schema.CENTRES_ON}]->(d:{schema.DEVICE})<-[:{schema.USES}]-(u)
RETURN u.user_id AS user_id, d.device_id AS id
UNION
MATCH (r:{_R} {{ring_id: $ring_id}})<-[:{schema.MEMBER_OF}]-(u:{_U})
MATCH (r)-[:{schema.CENTRES_ON}]->(m:{schema.MERCHANT})
WHERE EXISTS {{ MATCH (u)-[:{schema.ORDERED}|{schema.REVIEWED}]->(:{schema.PRODUCT})
                -[:{schema.SOLD_BY}]->(m) }}
RETURN u.user_id AS user_id, m.merchant_id AS id
""",
)


@dataclass
class RunFiles:
    """One run's saved data (``serving.report.snapshot``)."""

    run: ScoreRun
    users: pd.DataFrame
    merchants: pd.DataFrame
    devices: pd.DataFrame
    rings: pd.DataFrame | None
    meta: dict[str, Any]

    @classmethod
    def read(cls, folder: Path, run: ScoreRun) -> RunFiles:
        rings = folder / "rings.parquet"
        return cls(
            run=run,
            users=pd.read_parquet(folder / "users.parquet"),
            merchants=pd.read_parquet(folder / "merchants.parquet"),
            devices=pd.read_parquet(folder / "devices.parquet"),
            rings=pd.read_parquet(rings) if rings.exists() else None,
            meta=json.loads((folder / "run.json").read_text()),
        )


@dataclass
class ReportData:
    current: RunFiles
    previous: RunFiles | None
    model: dict[str, Any]  # the artifact's config.json
    evaluation: pd.DataFrame | None
    graph_counts: dict[str, int]
    rings: pd.DataFrame
    gallery: list[RingDrawing] = field(default_factory=list)
    warning: str | None = None


def runs_folder(state_dir: Path) -> Path:
    return state_dir / "runs"


def load_report_data(store: GraphStore, state_dir: Path, gallery: int = GALLERY) -> ReportData:
    """The latest complete run with its data, the one before it, the model and the rings."""
    status = run_status(store)
    done = [r for r in status.runs if r.complete and (runs_folder(state_dir) / r.run_id).exists()]
    if not done:
        raise IncompleteRunError(
            f"no complete scoring run with its data in {runs_folder(state_dir)}: run "
            "`riskgraph score` first"
        )
    warning = run_warning(store, status, done[0])
    current = RunFiles.read(runs_folder(state_dir) / done[0].run_id, done[0])
    previous = RunFiles.read(runs_folder(state_dir) / done[1].run_id, done[1]) \
        if len(done) > 1 else None  # fmt: skip
    artifact = Path(current.meta["artifact"])
    model = json.loads((artifact / "config.json").read_text())
    evaluation = pd.read_parquet(artifact / EVALUATION) if (artifact / EVALUATION).exists() \
        else None  # fmt: skip
    rings = pd.DataFrame(store.read_columns(RINGS))
    if len(rings):
        rings = rings.assign(weight=rings["risk_mean"].astype(float) * rings["size"].astype(float))
        rings = rings.sort_values(["weight", "ring_id"], ascending=[False, True])
    risk = current.users.set_index("user_id")["risk_score"]
    drawings = [
        ring_drawing(store, rid, risk) for rid in rings.get("ring_id", pd.Series())[:gallery]
    ]
    return ReportData(current, previous, model, evaluation, store.counts(), rings, drawings,
                      warning)  # fmt: skip


def run_warning(store: GraphStore, status: RunStatus, shown: ScoreRun) -> str | None:
    """The page's red banner: why the graph's scores are not all from the run shown.

    An unfinished newest run is named with its model version and the users on each side
    (``graph.neo4j.runs.unfinished_run``), so the reader knows the live graph is mixed while
    this page shows the last complete run from its saved files.
    """
    flag = unfinished_run(store)
    if flag is not None:
        return (f"{flag.message()}. This report shows the last complete run {shown.run_id} "
                f"(model {shown.version}) from its saved files, ring members coloured by that "
                "run's scores.")  # fmt: skip
    if status.latest is not None and status.latest.run_id != shown.run_id:
        return (f"the newest scoring run {status.latest.run_id} is {status.latest.status} but "
                f"its data is not in the runs folder; this report shows the run {shown.run_id}")  # fmt: skip
    return status.problem()


def ring_drawing(store: GraphStore, ring_id: str, risk: pd.Series | None = None) -> RingDrawing:
    """One ring's members, centres and ties; members' risk from ``risk`` (the run shown, by
    user id) where it has them, so a half-written newer run cannot tint the drawing."""
    members = pd.DataFrame(store.read_columns(RING_MEMBERS, ring_id=ring_id))
    if risk is not None and len(members):
        shown = members["user_id"].map(risk)
        members["risk"] = shown.fillna(members["risk"]).astype(float)
    centres = pd.DataFrame(store.read_columns(RING_CENTRES, ring_id=ring_id))
    ties = pd.DataFrame(store.read_columns(RING_TIES, ring_id=ring_id))
    return RingDrawing(
        ring_id,
        members if len(members) else pd.DataFrame(columns=["user_id", "risk"]),
        centres if len(centres) else pd.DataFrame(columns=["kind", "id", "members"]),
        ties if len(ties) else pd.DataFrame(columns=["user_id", "id"]),
    )
