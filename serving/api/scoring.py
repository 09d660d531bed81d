"""What a score request answers: the stored batch score, or one computed online.

Reads serve the score the last batch run (or the last event) stored on the user: one
parameterised Cypher read. A user without a stored score (imported after the run, or asked
for with ``fresh=true``) and every user touched by an event is scored online
(``training.online``) against the neighbour states of a snapshot taken once, when the service
starts (or on the first request that needs it, if Neo4j was down at start).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, LiteralString

import numpy as np
import pandas as pd
from rich.console import Console

from graph.neo4j.neighbourhood import Neighbourhood, read_neighbourhood
from graph.neo4j.writeback import write_user_scores
from serving.api.store import ServiceStore
from serving.connect import open_store
from serving.settings import Settings

if TYPE_CHECKING:
    from training.artifact import ModelArtifact
    from training.online import Online, StateSnapshot

STORED: LiteralString = """
UNWIND $ids AS id
MATCH (u:User {user_id: id})
RETURN u.user_id AS user_id, u.risk_score AS fraud, u.default_probability AS default,
       u.credit_score AS credit, u.risk_band AS band, coalesce(u.reasons, []) AS reasons,
       coalesce(u.reason_codes, []) AS codes, u.score_version AS version,
       toString(u.scored_at) AS as_of,
       COLLECT { MATCH (u)-[:MEMBER_OF]->(r:Ring) RETURN r.ring_id } AS rings
"""
THIN_FILE = {"code": "thin_file", "text": "thin file: no orders, logins or reviews yet"}
SNAPSHOT_RETRY_S = 30.0


ONLINE_RUN = "online"  # the score_run of a score written by the service, not by a batch run


class NotReadyError(RuntimeError):
    """The model or its snapshot is not available yet (answered with 503)."""


@dataclass
class Scorer:
    """The model artifact, the neighbour-state snapshot and the store, made once per app."""

    settings: Settings
    store: ServiceStore
    artifact: ModelArtifact | None
    snapshot: StateSnapshot | None = None
    feature_keys: list[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last_try: float = 0.0

    @property
    def version(self) -> str:
        return self.artifact.version if self.artifact else "none"

    def ensure_snapshot(self) -> StateSnapshot:
        """The snapshot, taken now if missing (at most once per SNAPSHOT_RETRY_S on failure)."""
        if self.snapshot is not None:
            return self.snapshot
        if self.artifact is None:
            raise NotReadyError("no trained model: run `riskgraph train` and restart the service")
        with self._lock:
            if self.snapshot is None:
                if time.monotonic() - self._last_try < SNAPSHOT_RETRY_S and self._last_try:
                    raise NotReadyError("the scoring snapshot is not available yet")
                self._last_try = time.monotonic()
                self.snapshot, self.feature_keys = take(self.settings, self.artifact)
        return self.snapshot

    def stored(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Stored scores by user id (users without a stored score have ``fraud`` None)."""
        return {row["user_id"]: row for row in self.store.read(STORED, ids=ids)}

    def online(self, user_id: str, write: bool = False) -> dict[str, Any] | None:
        """Score ``user_id`` online; None when no such user. ``write``: store the result."""
        from training.online import score_online

        snap = self.ensure_snapshot()
        assert self.artifact is not None and self.feature_keys is not None
        hood = read_neighbourhood(self.store, user_id, self.feature_keys, self.settings.api_fanout)
        if hood is None:
            return None
        result = score_online(self.artifact, snap, hood.graph, user_id, hood.fraud_label)
        answer = self._answer(hood, result)
        if write:
            frame = pd.DataFrame([{
                "user_id": user_id, "risk_score": answer["fraud_probability"],
                "default_probability": answer["default_probability"],
                "credit_score": answer["credit_score"], "risk_band": answer["band"],
                "reasons": [r["text"] for r in answer["reasons"]],
            }])  # fmt: skip
            # an online rescore is a new score: the one it replaces becomes the previous one
            write_user_scores(self.store, frame, self.version, answer["as_of"], ONLINE_RUN, [])
        return answer

    def _answer(self, hood: Neighbourhood, result: Online) -> dict[str, Any]:
        from training.scorecard import p_bad, risk_band

        assert self.artifact is not None
        art = self.artifact
        p_fraud = float(art.calibrators["fraud"](np.array([result.logits["fraud"]]))[0])
        p_default = float(art.calibrators["default"](np.array([result.logits["default"]]))[0])
        credit = art.scale.score(p_bad(np.array([p_fraud]), np.array([p_default])))
        reasons = [THIN_FILE] if hood.thin_file else _reasons(hood, result, p_fraud)
        return {
            "user_id": hood.user_id,
            "credit_score": int(credit[0]),
            "fraud_probability": p_fraud,
            "default_probability": p_default,
            "band": str(risk_band(credit)[0]),
            "reasons": reasons,
            "rings": hood.rings,
            "model_version": art.version,
            "as_of": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": "online",
            "stale_neighbours": result.unknown_neighbours,
        }


def stored_answer(row: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a stored score row."""
    codes = list(row["codes"]) + [""] * max(0, len(row["reasons"]) - len(row["codes"]))
    return {
        "user_id": row["user_id"],
        "credit_score": int(row["credit"]),
        "fraud_probability": float(row["fraud"]),
        "default_probability": float(row["default"]),
        "band": row["band"],
        "reasons": [{"code": c, "text": t} for c, t in zip(codes, row["reasons"], strict=False)],
        "rings": list(row["rings"]),
        "model_version": row["version"],
        "as_of": row["as_of"],
        "source": "batch",
        "stale_neighbours": 0,
    }


def _reasons(hood: Neighbourhood, result: Online, p_fraud: float) -> list[dict[str, str]]:
    """Gradient × input over the user's own features (the batch reasons' method, on the
    user's own logit), plus the shared-device reason when the score is high."""
    from training.predict import DEVICE_FEATURES, TOP_REASONS, _phrase

    out: list[dict[str, str]] = []
    uses = hood.graph.edges[("user", "uses", "device")]
    counts = np.bincount(uses["dst"].to_numpy(np.int64), minlength=len(hood.graph.ids["device"]))
    if len(counts) and counts.max() >= 3 and p_fraud >= 0.5:
        top = int(np.argmax(counts))
        out.append({"code": "shared_device",
                    "text": f"shares device {hood.graph.ids['device'][top]} with "
                            f"{int(counts[top]) - 1} other accounts"})  # fmt: skip
    names = list(result.raw.index)
    for j in np.argsort(-result.attributions):
        if len(out) >= TOP_REASONS or result.attributions[j] <= 0:
            break
        if out and names[j] in DEVICE_FEATURES:
            continue
        out.append({"code": names[j], "text": _phrase(names[j], float(result.raw.iloc[j]))})
    return out


def take(settings: Settings, artifact: ModelArtifact) -> tuple[StateSnapshot, list[str]]:
    """Export the graph, build features and take the neighbour-state snapshot (a full pass)."""
    from serving.pipeline import load_context
    from training.inputs import graph_data
    from training.online import take_snapshot

    with open_store(settings, start=False) as full:
        ctx = load_context(full, settings, Console(quiet=True))
    artifact.check_features(ctx.features)
    x = artifact.normaliser.transform(ctx.features)
    y = ctx.graph.labels["fraud"].to_numpy(np.float64)
    labeled = np.flatnonzero(~np.isnan(y))
    shown = labeled if artifact.config["train"].get("label_trick") else labeled[:0]
    data = graph_data(ctx.graph, x, y, shown)
    return take_snapshot(artifact, ctx.graph, ctx.features, data), list(ctx.graph.feature_keys)
