"""What a score request answers: the stored batch score, or one computed online.

Reads serve the score the last batch run (or the last event) stored on the user, from the
in-process cache (``serving.api.cache``) or, when it cannot answer, one parameterised Cypher
read. A user without a stored score (imported after the run, or asked for with
``fresh=true``) and every user touched by an event is scored online (``training.online``)
against the neighbour states of a snapshot taken when the service starts (or on the first
request that needs it, if Neo4j was down at start) and rebuilt in the background after each
new complete scoring run (or every ``RISKGRAPH_API_SNAPSHOT_REFRESH_S``), swapped in whole.
Every answer says which run the graph's scores stand on (``run_id``) and whether it finished
(``run_complete``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, LiteralString, cast

import numpy as np
from neo4j import ManagedTransaction
from rich.console import Console

from graph import schema
from graph.neo4j.neighbourhood import Neighbourhood, read_neighbourhood
from graph.neo4j.writeback import USER_SCORES
from serving.api.cache import _FIELDS as STORED_FIELDS
from serving.api.cache import ONLINE_RUN, UNKNOWN_RUN, RunMark, ScoreCache
from serving.api.store import ServiceStore
from serving.connect import open_store
from serving.settings import Settings

if TYPE_CHECKING:
    from encoders.user_events import UserEvents
    from training.artifact import ModelArtifact
    from training.online import Online, StateSnapshot

STORED = cast(
    LiteralString,
    f"""
UNWIND $ids AS id
MATCH (u:{schema.USER} {{user_id: id}})
RETURN {STORED_FIELDS},
       COLLECT {{ MATCH (u)-[:{schema.MEMBER_OF}]->(r:{schema.RING}) RETURN r.ring_id }} AS rings
""",
)
# the online score write: the batch write's query, plus the reasons' codes
ONLINE_SCORES = cast(LiteralString, USER_SCORES + ", u.reason_codes = row.reason_codes\n")
log = logging.getLogger("riskgraph.api")
THIN_FILE = {"code": "thin_file", "text": "thin file: no orders, logins or reviews yet"}
SNAPSHOT_RETRY_S = 30.0


class NotReadyError(RuntimeError):
    """The model or its snapshot is not available yet (answered with 503)."""


@dataclass
class Scorer:
    """The model artifact, the neighbour-state snapshot, the score cache and the store, made
    once per app."""

    settings: Settings
    store: ServiceStore
    artifact: ModelArtifact | None
    cache: ScoreCache
    # (snapshot, feature keys, id of the run it was taken under): one reference, swapped whole
    current: tuple[StateSnapshot, list[str], str | None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last_try: float = 0.0

    @property
    def version(self) -> str:
        return self.artifact.version if self.artifact else "none"

    @property
    def snapshot(self) -> StateSnapshot | None:
        return self.current[0] if self.current else None

    def run_fields(self) -> dict[str, Any]:
        """``run_id`` and ``run_complete`` of the latest scoring run (None: not known yet)."""
        run = self.cache.run
        return run.fields() if run is not None else dict(UNKNOWN_RUN)

    def ensure_snapshot(self) -> tuple[StateSnapshot, list[str], str | None]:
        """The snapshot, taken now if missing (at most once per SNAPSHOT_RETRY_S on failure)."""
        current = self.current
        if current is not None:
            return current
        if self.artifact is None:
            raise NotReadyError("no trained model: run `riskgraph train` and restart the service")
        with self._lock:
            if self.current is None:
                if time.monotonic() - self._last_try < SNAPSHOT_RETRY_S and self._last_try:
                    raise NotReadyError("the scoring snapshot is not available yet")
                self._last_try = time.monotonic()
                run = self.cache.run.run_id if self.cache.run else None
                snap, keys = take(self.settings, self.artifact)
                self.current = (snap, keys, run)
            return self.current

    def refresh_snapshot(self, run: RunMark, due: bool = False) -> bool:
        """Rebuild the snapshot (in the watcher's thread) when it was taken under another
        run than the latest complete one, or when the timer is ``due``, and swap it in with
        one assignment; requests keep using the old one meanwhile. Returns whether it did."""
        current = self.current
        if self.artifact is None or current is None:
            return False  # none yet: the first request that needs one takes it
        if current[2] == run.run_id and not due:
            return False
        snap, keys = take(self.settings, self.artifact)
        self.current = (snap, keys, run.run_id)
        log.info("scoring snapshot rebuilt for run %s", run.run_id)
        return True

    def stored(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Stored scores by user id (users without a stored score have ``fraud`` None): from
        the cache where it can answer, the rest in one read."""
        out: dict[str, dict[str, Any]] = {}
        missing = []
        for user_id in ids:
            row = self.cache.get(user_id)
            if row is None:
                missing.append(user_id)
            else:
                out[user_id] = row
        if missing:
            out.update({row["user_id"]: row for row in self.store.read(STORED, ids=missing)})
        return out

    def online(self, user_id: str, write: bool = False) -> dict[str, Any] | None:
        """Score ``user_id`` online; None when no such user. ``write``: store the result."""
        snap, keys, _ = self.ensure_snapshot()
        hood = read_neighbourhood(self.store, user_id, keys, self.settings.api_fanout)
        if hood is None:
            return None
        return self.score_hood(snap, hood, write)

    def score_hood(
        self, snap: StateSnapshot, hood: Neighbourhood, write: bool = False
    ) -> dict[str, Any]:
        """Score one read neighbourhood; ``write``: store the score (and cache it)."""
        from encoders.user_events import UserEvents
        from training.online import score_online, score_user

        assert self.artifact is not None
        ev = UserEvents.from_record(hood.record, hood.feature_keys)
        if snap.stack is not None:
            result = score_user(self.artifact, snap, ev, hood.user_id, hood.fraud_label)
        else:
            result = score_online(self.artifact, snap, hood.graph, hood.user_id, hood.fraud_label)
        answer = self._answer(hood, ev, result)
        if write:
            self.write([answer])
        return answer

    def write(self, answers: list[dict[str, Any]]) -> None:
        """Store online scores on their users in one write and put them in the cache."""
        if answers:
            self.store.write_batches(ONLINE_SCORES, _score_rows(answers), len(answers),
                                     **self.score_params(answers))  # fmt: skip
            self.remember(answers)

    def score_params(self, answers: list[dict[str, Any]]) -> dict[str, Any]:
        """ONLINE_SCORES' parameters besides ``$rows`` (each replaced score becomes the
        previous one, except a previous online score)."""
        return {"version": self.version, "scored_at": answers[0]["as_of"],
                "run_id": ONLINE_RUN, "unshifted": [ONLINE_RUN]}  # fmt: skip

    def remember(self, answers: list[dict[str, Any]]) -> None:
        """Put written online scores in the cache (after their transaction committed)."""
        for a in answers:
            self.cache.put({
                "user_id": a["user_id"], "fraud": a["fraud_probability"],
                "default": a["default_probability"], "credit": a["credit_score"],
                "band": a["band"], "reasons": [r["text"] for r in a["reasons"]],
                "codes": [r["code"] for r in a["reasons"]], "version": self.version,
                "as_of": a["as_of"], "score_run": ONLINE_RUN,
            })  # fmt: skip

    def _answer(self, hood: Neighbourhood, ev: Any, result: Online) -> dict[str, Any]:
        from training.scorecard import p_bad, risk_band

        assert self.artifact is not None
        art = self.artifact
        p_fraud = float(art.calibrators["fraud"](np.array([result.logits["fraud"]]))[0])
        p_default = float(art.calibrators["default"](np.array([result.logits["default"]]))[0])
        credit = art.scale.score(p_bad(np.array([p_fraud]), np.array([p_default])))
        reasons = [THIN_FILE] if hood.thin_file else _reasons(ev, result, p_fraud)
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
            **self.run_fields(),
        }


def _score_rows(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ONLINE_SCORES' ``$rows``."""
    return [{
        "user_id": a["user_id"], "risk_score": a["fraud_probability"],
        "default_probability": a["default_probability"], "credit_score": a["credit_score"],
        "risk_band": a["band"], "reasons": [r["text"] for r in a["reasons"]],
        "reason_codes": [r["code"] for r in a["reasons"]],
    } for a in answers]  # fmt: skip


def write_scores(tx: ManagedTransaction, scorer: Scorer, answers: list[dict[str, Any]]) -> None:
    """Store online scores inside the caller's transaction (the event's own)."""
    if answers:
        tx.run(ONLINE_SCORES, {"rows": _score_rows(answers), **scorer.score_params(answers)})


def stored_answer(row: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a stored score row; ``run``: :meth:`Scorer.run_fields`."""
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
        "source": "online" if row.get("score_run") == ONLINE_RUN else "batch",
        "stale_neighbours": 0,
        **run,
    }


def _reasons(ev: UserEvents, result: Online, p_fraud: float) -> list[dict[str, str]]:
    """Gradient × input over the user's own features (the batch reasons' method, on the
    user's own logit), plus the shared-device reason when the score is high."""
    from training.predict import DEVICE_FEATURES, TOP_REASONS, _phrase

    out: list[dict[str, str]] = []
    counts = np.maximum(np.nan_to_num(ev.device_users, nan=1.0), 1.0)
    if len(counts) and counts.max() >= 3 and p_fraud >= 0.5:
        top = int(np.argmax(counts))
        out.append({"code": "shared_device",
                    "text": f"shares device {ev.device_id[top]} with "
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
    from encoders.features import FeatureMismatchError
    from serving.pipeline import load_context
    from training.inputs import graph_data
    from training.online import take_snapshot

    trained_on = str(artifact.config.get("text_model") or "")
    if trained_on and trained_on.endswith("-int8") != settings.encode_int8:
        # before the export: with the other encoder every review would be encoded again
        # (~20 min at 100k users on two cores) only for check_features to refuse it
        raise FeatureMismatchError(
            f"artifact {artifact.version} was trained on review embeddings from {trained_on}; "
            f"set RISKGRAPH_ENCODE_INT8={str(not settings.encode_int8).lower()} as at training"
        )
    with open_store(settings, start=False) as full:
        ctx = load_context(full, settings, Console(quiet=True))
    artifact.check_features(ctx.features)
    x = artifact.normaliser.transform(ctx.features)
    y = ctx.graph.labels["fraud"].to_numpy(np.float64)
    labeled = np.flatnonzero(~np.isnan(y))
    shown = labeled if artifact.config["train"].get("label_trick") else labeled[:0]
    data = graph_data(ctx.graph, x, y, shown)
    return take_snapshot(artifact, ctx.graph, ctx.features, data), list(ctx.graph.feature_keys)
