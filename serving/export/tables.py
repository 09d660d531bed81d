"""What an export holds, read from Neo4j: the users' scores, rings, ring members, merchants.

Filters travel as query parameters (a band list, a ring id, a credit-score range, a least
change since the previous run); labels and relationship types come from ``graph.schema``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import LiteralString, cast

import pandas as pd

from graph import schema
from graph.neo4j.store import GraphStore

_U, _R, _M, _MEMBER = schema.USER, schema.RING, schema.MERCHANT, schema.MEMBER_OF

# The users table's columns, in the order of the list each user is returned as.
USER_COLUMNS = ("user_id", "credit_score", "risk_band", "risk_score", "default_probability",
                "reasons", "previous_score", "previous_band", "score_change", "score_version",
                "score_run", "scored_at", "ring_ids")  # fmt: skip
USER_FILTER = f"""
u.score_run IS NOT NULL
  AND (size($bands) = 0 OR u.risk_band IN $bands)
  AND ($lo IS NULL OR u.credit_score >= $lo) AND ($hi IS NULL OR u.credit_score <= $hi)
  AND ($change IS NULL OR abs(u.credit_score - u.previous_score) >= $change)
  AND ($ring IS NULL OR EXISTS {{ MATCH (u)-[:{_MEMBER}]->(:{_R} {{ring_id: $ring}}) }})
"""
# One page of users in user_id order (the uniqueness constraint's index serves the order and
# the ``> $after`` seek), packed as one list per user: the driver then decodes one record
# per page instead of one per user (about 1.5x faster at 100k users), and the server never
# holds more than a page.
USERS_PAGE = cast(
    LiteralString,
    f"""
MATCH (u:{_U}) WHERE u.user_id > $after AND {USER_FILTER}
WITH u ORDER BY u.user_id LIMIT $page
RETURN collect([u.user_id, u.credit_score, u.risk_band, u.risk_score, u.default_probability,
                u.reasons, u.previous_score, u.previous_band, u.credit_score - u.previous_score,
                u.score_version, u.score_run, toString(u.scored_at),
                COLLECT {{ MATCH (u)-[:{_MEMBER}]->(r:{_R}) RETURN r.ring_id }}]) AS rows
""",
)
USER_PAGE_ROWS = 100_000
RINGS = cast(
    LiteralString,
    f"""
MATCH (r:{_R}) WHERE $ring IS NULL OR r.ring_id = $ring
RETURN r.ring_id AS ring_id, r.status AS status, r.size AS size, r.risk_mean AS risk_mean,
       r.risk_max AS risk_max, r.density AS density, r.exposure_amount AS exposure_amount,
       r.chargeback_amount AS chargeback_amount, toString(r.first_seen) AS first_seen,
       toString(r.last_seen) AS last_seen
ORDER BY ring_id
""",
)
MEMBERS = cast(
    LiteralString,
    f"""
MATCH (u:{_U})-[:{_MEMBER}]->(r:{_R}) WHERE $ring IS NULL OR r.ring_id = $ring
RETURN r.ring_id AS ring_id, u.user_id AS user_id, u.risk_score AS risk_score,
       u.credit_score AS credit_score, u.risk_band AS risk_band
ORDER BY ring_id, user_id
""",
)
MERCHANTS = cast(
    LiteralString,
    f"""
MATCH (m:{_M}) WHERE m.risk_score IS NOT NULL
RETURN m.merchant_id AS merchant_id, m.risk_score AS risk_score,
       m.score_version AS score_version
ORDER BY risk_score DESC
""",
)
TABLES: dict[str, LiteralString] = {
    "users": USERS_PAGE,
    "rings": RINGS,
    "members": MEMBERS,
    "merchants": MERCHANTS,
}
# Column dtypes, so an empty table has the same schema as a full one.
DTYPES: dict[str, str] = {
    "credit_score": "Int64", "previous_score": "Int64", "score_change": "Int64",
    "size": "Int64", "risk_score": "float64", "default_probability": "float64",
    "risk_mean": "float64", "risk_max": "float64", "density": "float64",
    "exposure_amount": "float64", "chargeback_amount": "float64",
}  # fmt: skip


@dataclass(frozen=True)
class ExportFilters:
    """Which users (and rings) an export holds; every field optional."""

    bands: tuple[str, ...] = ()
    ring_id: str | None = None
    min_score: int | None = None  # credit score, inclusive
    max_score: int | None = None
    min_change: int | None = None  # |credit score - previous run's| at least this

    def params(self) -> dict[str, object]:
        return {"bands": list(self.bands), "ring": self.ring_id, "lo": self.min_score,
                "hi": self.max_score, "change": self.min_change}  # fmt: skip


def read_table(store: GraphStore, name: str, filters: ExportFilters) -> pd.DataFrame:
    """One export table as a frame with stable dtypes."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}: use {', '.join(TABLES)}")
    params = filters.params()
    if name == "users":
        frame = pd.DataFrame(read_users(store, params), columns=list(USER_COLUMNS))
    else:
        frame = pd.DataFrame(store.read_columns(TABLES[name], **params))
    for col, dtype in DTYPES.items():
        if col in frame.columns:
            frame[col] = frame[col].astype(dtype)
    return frame


def read_users(
    store: GraphStore, params: dict[str, object], page: int = USER_PAGE_ROWS
) -> list[list[object]]:
    """Every matching user as a list of ``USER_COLUMNS`` values, page by page."""
    rows: list[list[object]] = []
    after = ""
    while True:
        got = store.read_packed(USERS_PAGE, after=after, page=page, **params)["rows"]
        rows.extend(got)
        if len(got) < page:
            return rows
        after = str(got[-1][0])


def select_columns(frame: pd.DataFrame, columns: list[str] | None, table: str) -> pd.DataFrame:
    """Only ``columns`` (in that order); names the unknown ones and the choices."""
    if not columns:
        return frame
    unknown = [c for c in columns if c not in frame.columns]
    if unknown:
        raise ValueError(
            f"--columns: {', '.join(unknown)} not in the {table} table "
            f"(columns: {', '.join(frame.columns)})"
        )
    return frame[columns]
