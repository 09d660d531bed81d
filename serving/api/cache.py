"""Stored scores in the service's memory, kept consistent with the graph by a watcher thread.

A stored-score read used to cost one Bolt round trip per request; on two shared cores the
round trips, not the lookup, set the latency at 10 concurrent clients. So the service loads
every user's stored score once (one batched read in the lifespan) and answers stored reads
from memory. It stays consistent because:

* the service's own writes (``POST /v1/events`` rescoring a user) update it in place;
* a watcher (:class:`Watcher`, a daemon thread) reads every ``RISKGRAPH_API_CACHE_REFRESH_S``
  seconds, in one small parameterised read, the latest ``ScoreRun`` (id and status), the ring
  memberships (a few rows per ring member) and the users rescored online since its last look
  (by another worker or another service process). A new or newly completed run makes it
  reload every score, off the request path, and swap the table in one assignment;
* while the latest run is incomplete (a batch ``riskgraph score`` still writing, or one that
  died half-way) the cache steps aside and reads go to Neo4j, answered with
  ``run_complete: false`` and the run's id, so a mix of two runs is never served silently;
* the cache answers only while the watcher's last successful look is younger than
  ``2 × refresh + the request time limit``: when Neo4j goes away, stored reads turn into
  503s within that bound, like every other route, instead of serving an unbounded past.

So a score written by another process is served at most ``refresh`` seconds (plus one
reload) late; the service's own writes are served at once.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString, cast

from graph import schema
from serving.api.store import ServiceStore

log = logging.getLogger("riskgraph.api")

ONLINE_RUN = "online"  # the score_run of a score written by the service, not by a batch run
_FIELDS = """u.user_id AS user_id, u.risk_score AS fraud, u.default_probability AS default,
       u.credit_score AS credit, u.risk_band AS band, coalesce(u.reasons, []) AS reasons,
       coalesce(u.reason_codes, []) AS codes, u.score_version AS version,
       toString(u.scored_at) AS as_of, u.score_run AS score_run"""
ALL_SCORES = cast(LiteralString, f"MATCH (u:{schema.USER}) RETURN {_FIELDS}")
ONLINE_SINCE = cast(
    LiteralString,
    f"MATCH (u:{schema.USER}) WHERE u.score_run = $online AND u.scored_at >= datetime($since) "
    f"RETURN {_FIELDS}",
)
WATCH = cast(
    LiteralString,
    f"""
OPTIONAL MATCH (r:{schema.SCORE_RUN})
WITH r ORDER BY r.at DESC, r.run_id DESC LIMIT 1
RETURN r.run_id AS run_id, r.status AS status,
       COLLECT {{ MATCH (u:{schema.USER})-[:{schema.MEMBER_OF}]->(g:{schema.RING})
                  RETURN [u.user_id, g.ring_id] }} AS members
""",
)
WRITE_MARGIN_S = 5  # online writes are looked for from this long before the last look


@dataclass(frozen=True)
class RunMark:
    """The latest ScoreRun as the watcher last saw it (``run_id`` None: no run yet)."""

    run_id: str | None
    status: str | None

    @property
    def complete(self) -> bool:
        return self.run_id is None or self.status == schema.RUN_COMPLETE

    def fields(self) -> dict[str, Any]:
        """What every score answer carries about the run."""
        return {"run_id": self.run_id, "run_complete": self.complete}


UNKNOWN_RUN: dict[str, Any] = {"run_id": None, "run_complete": None}


class ScoreCache:
    """Every user's stored score row (``scoring.STORED``'s shape) and ring memberships."""

    def __init__(self, store: ServiceStore, refresh_s: float, enabled: bool = True) -> None:
        self.store, self.refresh_s, self.enabled = store, refresh_s, enabled
        self.run: RunMark | None = None
        self._scores: dict[str, dict[str, Any]] = {}
        self._rings: dict[str, list[str]] = {}
        self._loaded_run: RunMark | None = None
        self._confirmed = 0.0  # monotonic time of the last successful look
        self._since: datetime | None = None  # wall clock of the last look (online writes)
        self._puts: dict[str, dict[str, Any]] | None = None  # own writes during a reload
        self._lock = threading.Lock()

    # -- requests ------------------------------------------------------------------------
    def usable(self) -> bool:
        """Whether stored reads may be answered from memory now (see the module docstring)."""
        if not self.enabled or self._loaded_run is None or self.run is None:
            return False
        if not self.run.complete or self._loaded_run != self.run:
            return False
        bound = 2 * self.refresh_s + self.store.timeout_s
        return time.monotonic() - self._confirmed <= bound

    def get(self, user_id: str) -> dict[str, Any] | None:
        """The stored row of ``user_id`` with its rings, or None (not cached: ask Neo4j)."""
        if not self.usable():
            return None
        row = self._scores.get(user_id)
        if row is None:
            return None
        return {**row, "rings": self._rings.get(user_id, [])}

    def put(self, row: dict[str, Any]) -> None:
        """The service's own write of one user's score (``STORED`` shape, without rings)."""
        with self._lock:
            self._scores[row["user_id"]] = row
            if self._puts is not None:
                self._puts[row["user_id"]] = row

    def rings_of(self, user_id: str) -> list[str] | None:
        return self._rings.get(user_id) if self.usable() else None

    @property
    def size(self) -> int:
        return len(self._scores)

    # -- the watcher ---------------------------------------------------------------------
    def look(self) -> bool:
        """One look at the graph; reload the scores if the latest run moved. Returns whether
        the latest run changed since the previous look."""
        started = datetime.now(UTC)
        row = self.store.read(WATCH)[0]
        run = RunMark(row["run_id"], row["status"])
        rings: dict[str, list[str]] = {}
        for user_id, ring_id in row["members"]:
            rings.setdefault(user_id, []).append(ring_id)
        for ids in rings.values():
            ids.sort()
        changed = run != self.run
        self.run, self._rings = run, rings
        if self.enabled and run.complete and (changed or self._loaded_run != run):
            self._reload(run)
        elif self.enabled and self._since is not None and self._loaded_run == run:
            since = (self._since - timedelta(seconds=WRITE_MARGIN_S)).isoformat()
            for r in self.store.read(ONLINE_SINCE, online=ONLINE_RUN, since=since):
                with self._lock:
                    self._scores[r["user_id"]] = r
        self._since, self._confirmed = started, time.monotonic()
        return changed

    def _reload(self, run: RunMark) -> None:
        """Every stored score, read in one query and swapped in with one assignment; the
        service's own writes made meanwhile are kept."""
        with self._lock:
            self._puts = {}
        try:
            fresh = {r["user_id"]: r for r in self.store.read_all(ALL_SCORES)}
        finally:
            with self._lock:
                puts, self._puts = self._puts or {}, None
        with self._lock:
            fresh.update(puts)
            self._scores = fresh
            self._loaded_run = run
        gc.freeze()  # long-lived rows: out of the collector's full passes (pauses)
        log.info("score cache loaded: %d users, run %s", len(fresh), run.run_id)


class Watcher:
    """A daemon thread calling ``cache.look`` every ``refresh_s``, and ``on_change`` (e.g. a
    snapshot rebuild) after the latest run changed, or every ``snapshot_every_s`` seconds.

    ``on_change`` runs in a thread of its own, so the looks (and the cache's confirmation)
    go on during a rebuild that takes longer than the cache's bound; requests for a rebuild
    made meanwhile collapse into one more after it."""

    def __init__(
        self, cache: ScoreCache, on_change: Callable[[RunMark, bool], object],
        snapshot_every_s: float = 0.0,
    ) -> None:  # fmt: skip
        self.cache, self.on_change, self.snapshot_every_s = cache, on_change, snapshot_every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="score-watcher", daemon=True)
        self._last_rebuild = time.monotonic()
        self._lock = threading.Lock()
        self._pending: tuple[RunMark, bool] | None = None
        self._rebuilder: threading.Thread | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def tick(self) -> None:
        """One look (and a rebuild requested, if due); errors are logged, the next tick
        tries again."""
        try:
            changed = self.cache.look()
        except Exception as exc:  # Neo4j away: the cache ages out by itself (usable())
            log.warning("score watcher: look failed (%s)", type(exc).__name__)
            return
        run = self.cache.run
        due = self.snapshot_every_s > 0 and (
            time.monotonic() - self._last_rebuild >= self.snapshot_every_s
        )
        if run is not None and run.complete and (changed or due):
            self._last_rebuild = time.monotonic()
            self._request(run, due)

    def _request(self, run: RunMark, due: bool) -> None:
        with self._lock:
            self._pending = (run, due)
            if self._rebuilder is None:
                self._rebuilder = threading.Thread(
                    target=self._rebuild, name="snapshot-rebuild", daemon=True
                )
                self._rebuilder.start()

    def _rebuild(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                job, self._pending = self._pending, None
                if job is None:
                    self._rebuilder = None
                    return
            try:
                self.on_change(*job)
            except Exception as exc:
                log.warning("score watcher: snapshot rebuild failed (%s)", type(exc).__name__)
        with self._lock:
            self._rebuilder = None

    def _loop(self) -> None:
        while not self._stop.wait(self.cache.refresh_s):
            self.tick()
