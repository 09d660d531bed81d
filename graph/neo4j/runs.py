"""Scoring runs on the graph: ``(:ScoreRun {run_id, version, at, status, metrics, counts})``.

A run is ``started`` before its first user is written and ``complete`` only once every user
carries its ``score_run`` id, so a run killed half-way stays visible as incomplete and readers
can refuse to mix two model versions silently. The bookkeeping is three small functions keyed
by the model version, so any writer (the single-process ``riskgraph score``, or shards that
each write a slice of the users) can share one run:

* :func:`start_run`: the open run of this model version, or a new one (a rerun resumes it);
* :func:`mark_complete`: flips the run to ``complete`` when no user is left off it (each shard
  may call it; only the last one's call succeeds) and records metrics and counts;
* :func:`run_status`: the latest run, the latest complete one and how many users are on each.

``metrics`` and ``counts`` are stored as JSON strings (Neo4j properties cannot hold maps).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, LiteralString, cast

from graph import schema
from graph.neo4j.store import GraphStore

_RUN = schema.SCORE_RUN
_USER = schema.USER

OPEN_RUN = cast(
    LiteralString,
    f"MATCH (r:{_RUN} {{version: $version, status: $started}}) "
    "RETURN r.run_id AS run_id, r.at AS at ORDER BY r.at DESC LIMIT 1",
)
CREATE_RUN = cast(
    LiteralString,
    f"CREATE (r:{_RUN} {{run_id: $run_id, version: $version, at: datetime($at), "
    "status: $started, counts: $counts, metrics: $metrics})",
)
USERS_OFF_RUN = cast(
    LiteralString,
    f"MATCH (u:{_USER}) WHERE u.score_run IS NULL OR u.score_run <> $run_id RETURN count(u) AS n",
)
COMPLETE_RUN = cast(
    LiteralString,
    f"MATCH (r:{_RUN} {{run_id: $run_id}}) SET r.status = $complete, "
    "r.completed_at = datetime($at), r.metrics = $metrics, r.counts = $counts",
)
RUNS = cast(
    LiteralString,
    f"MATCH (r:{_RUN}) RETURN r.run_id AS run_id, r.version AS version, "
    "toString(r.at) AS at, r.status AS status, r.metrics AS metrics, r.counts AS counts "
    "ORDER BY r.at DESC, r.run_id DESC",
)
USERS_PER_RUN = cast(
    LiteralString,
    f"MATCH (u:{_USER}) RETURN u.score_run AS run_id, u.score_version AS version, count(*) AS n",
)
INCOMPLETE_RUNS = cast(
    LiteralString,
    f"MATCH (r:{_RUN}) WHERE r.status <> $complete RETURN collect(r.run_id) AS ids",
)


class IncompleteRunError(ValueError):
    """The graph's scores come from a run that did not finish, or from several versions."""


@dataclass(frozen=True)
class ScoreRun:
    """One scoring run as stored on its node."""

    run_id: str
    version: str
    at: str
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.status == schema.RUN_COMPLETE


@dataclass(frozen=True)
class RunStatus:
    """Where the graph's scores stand: every run (newest first) and users per run."""

    runs: list[ScoreRun]
    users_per_run: dict[str | None, int]  # run id (None: never scored) -> users on it
    versions: dict[str | None, int]  # score_version -> users on it

    @property
    def latest(self) -> ScoreRun | None:
        return self.runs[0] if self.runs else None

    @property
    def latest_complete(self) -> ScoreRun | None:
        return next((r for r in self.runs if r.complete), None)

    @property
    def previous_complete(self) -> ScoreRun | None:
        done = [r for r in self.runs if r.complete]
        return done[1] if len(done) > 1 else None

    @property
    def users(self) -> int:
        return sum(self.users_per_run.values())

    def problem(self) -> str | None:
        """Why the stored scores cannot be read as one run (None when they can)."""
        latest = self.latest
        if latest is not None and not latest.complete:
            on = self.users_per_run.get(latest.run_id, 0)
            return (
                f"score run {latest.run_id} (model {latest.version}) did not finish: "
                f"{on:,} of {self.users:,} users carry its scores, the rest an older run's; "
                "rerun `riskgraph score` to complete it"
            )
        scored = {v: n for v, n in self.versions.items() if v is not None}
        if len(scored) > 1:
            parts = ", ".join(f"{n:,} on {v}" for v, n in sorted(scored.items(), key=str))
            return f"users carry scores of {len(scored)} model versions ({parts})"
        if latest is not None and self.users_per_run.get(None, 0):
            return f"{self.users_per_run[None]:,} users have no score (imported after the run?)"
        return None

    def require_consistent(self) -> ScoreRun:
        """The run every user's score comes from; raises :class:`IncompleteRunError` if none."""
        problem = self.problem()
        if problem is not None:
            raise IncompleteRunError(problem)
        if self.latest is None:
            raise IncompleteRunError("no scoring run on the graph: run `riskgraph score` first")
        return self.latest


def new_run_id(at: datetime) -> str:
    """Sortable and unique: the start instant, then random hex."""
    return f"run-{at.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:6]}"


def start_run(
    store: GraphStore, version: str, counts: dict[str, Any] | None = None
) -> tuple[str, bool]:
    """The open run of model ``version`` (resumed: ``True``) or a new started one (``False``).

    A rerun after a crash resumes the crashed run, so users it already wrote are not shifted
    into ``previous_*`` twice. Concurrent shards should call this once in a coordinator (or
    one after another): two simultaneous first calls could each create a run.
    """
    rows = store.read(OPEN_RUN, version=version, started=schema.RUN_STARTED)
    if rows:
        return str(rows[0]["run_id"]), True
    at = datetime.now(UTC)
    run_id = new_run_id(at)
    store.write_batches(
        CREATE_RUN, [{}], 1, run_id=run_id, version=version,
        at=at.isoformat(timespec="microseconds"), started=schema.RUN_STARTED,
        counts=json.dumps(counts or {}), metrics=json.dumps({}),
    )  # fmt: skip
    return run_id, False


LATEST_RUN_OF_VERSION = cast(
    LiteralString,
    f"MATCH (r:{_RUN} {{version: $version}}) "
    "RETURN r.run_id AS run_id ORDER BY r.at DESC, r.run_id DESC LIMIT 1",
)


def join_run(store: GraphStore, version: str, wait_s: float = 300.0) -> str:
    """The run a shard other than 0 writes into: the latest run of model ``version``.

    Shard 0 opens the run (:func:`start_run`); the other shards, started at the same time by
    torchrun, wait for it instead of racing it, so every shard of one scoring writes one run.
    A shard rerun alone after a crash finds the run at once (open, or complete when its users
    were cleared since) and completes it again.
    """
    deadline = time.monotonic() + wait_s
    while True:
        rows = store.read(LATEST_RUN_OF_VERSION, version=version)
        if rows:
            return str(rows[0]["run_id"])
        if time.monotonic() > deadline:
            raise IncompleteRunError(
                f"no scoring run of model {version} to join: start shard 0 first"
            )
        time.sleep(0.5)


def mark_complete(
    store: GraphStore,
    run_id: str,
    metrics: dict[str, Any] | None = None,
    counts: dict[str, Any] | None = None,
) -> int:
    """Mark ``run_id`` complete if every user carries it; return the users still off it.

    Nothing is marked while any user is missing (a shard still writing, or a crash), so the
    last writer to finish is the one that completes the run.
    """
    missing = int(store.read(USERS_OFF_RUN, run_id=run_id)[0]["n"])
    if missing:
        return missing
    store.write_batches(
        COMPLETE_RUN, [{}], 1, run_id=run_id, complete=schema.RUN_COMPLETE,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        metrics=json.dumps(metrics or {}, default=str), counts=json.dumps(counts or {}),
    )  # fmt: skip
    return 0


def incomplete_run_ids(store: GraphStore) -> list[str]:
    """Ids of every run not (yet) complete: their users' ``previous_*`` must not shift again."""
    return [str(i) for i in store.read(INCOMPLETE_RUNS, complete=schema.RUN_COMPLETE)[0]["ids"]]


def run_status(store: GraphStore) -> RunStatus:
    """Every run (newest first) and how many users carry each run's and version's scores."""
    runs = [
        ScoreRun(
            run_id=str(r["run_id"]),
            version=str(r["version"]),
            at=str(r["at"]),
            status=str(r["status"]),
            metrics=json.loads(r["metrics"] or "{}"),
            counts=json.loads(r["counts"] or "{}"),
        )
        for r in store.read(RUNS)
    ]
    per_run: dict[str | None, int] = {}
    versions: dict[str | None, int] = {}
    for row in store.read(USERS_PER_RUN):
        per_run[row["run_id"]] = per_run.get(row["run_id"], 0) + int(row["n"])
        versions[row["version"]] = versions.get(row["version"], 0) + int(row["n"])
    return RunStatus(runs, per_run, versions)


# The newest run, only when it is not complete; then how many users carry it and how many an
# older run. When the newest run is complete the WHERE leaves no row and no user is read, so
# the check costs a look at the few ScoreRun nodes.
UNFINISHED_RUN = cast(
    LiteralString,
    f"""
MATCH (r:{_RUN}) WITH r ORDER BY r.at DESC, r.run_id DESC LIMIT 1
WITH r WHERE r.status <> $complete
MATCH (u:{_USER})
RETURN r.run_id AS run_id, r.version AS version, r.status AS status,
       count(CASE WHEN u.score_run = r.run_id THEN 1 END) AS on_run,
       count(CASE WHEN u.score_run <> r.run_id THEN 1 END) AS on_older,
       count(u) - count(u.score_run) AS unscored,
       collect(DISTINCT CASE WHEN u.score_run <> r.run_id THEN u.score_version END) AS older
""",
)


@dataclass(frozen=True)
class UnfinishedRun:
    """The newest scoring run did not (yet) finish: the graph's scores mix two runs."""

    run_id: str
    version: str
    status: str
    on_run: int  # users carrying this run's scores
    on_older: int  # users still carrying an older run's
    unscored: int  # users with no score at all
    older_versions: tuple[str, ...]

    def message(self) -> str:
        """One line for a person: which run, and how many users are on each side."""
        older = f" (model {', '.join(self.older_versions)})" if self.older_versions else ""
        unscored = f", {self.unscored:,} none" if self.unscored else ""
        if self.on_run == 0:  # started (or shards starting): nothing mixed yet, still not done
            return (
                f"score run {self.run_id} (model {self.version}) did not finish: no user "
                f"carries its scores yet, {self.on_older:,} an older run's{older}{unscored}; "
                "rerun `riskgraph score` to complete it"
            )
        return (
            f"score run {self.run_id} (model {self.version}) did not finish: {self.on_run:,} "
            f"users carry its scores, {self.on_older:,} an older run's{older}{unscored}; scores "
            "read now mix the two (rerun `riskgraph score` to complete it)"
        )

    def as_json(self) -> dict[str, Any]:
        """The same facts for machines (the ``--json`` outputs' ``_unfinished_run`` field)."""
        return {
            "run_id": self.run_id, "version": self.version, "status": self.status,
            "users_on_run": self.on_run, "users_on_older_runs": self.on_older,
            "users_unscored": self.unscored, "older_versions": list(self.older_versions),
            "message": self.message(),
        }  # fmt: skip


def unfinished_run(store: GraphStore) -> UnfinishedRun | None:
    """The newest run if it is not complete (with users per side), else ``None``.

    One parameterised read; cheap when the newest run is complete, one pass over the users
    otherwise. Commands that print scores (``cypher``, ``query``, ``ring``, ``report``) call
    it so an interrupted run is never read silently.
    """
    rows = store.read(UNFINISHED_RUN, complete=schema.RUN_COMPLETE)
    if not rows:
        return None
    r = rows[0]
    return UnfinishedRun(
        run_id=str(r["run_id"]), version=str(r["version"]), status=str(r["status"]),
        on_run=int(r["on_run"]), on_older=int(r["on_older"]), unscored=int(r["unscored"]),
        older_versions=tuple(sorted(str(v) for v in r["older"] if v is not None)),
    )  # fmt: skip
