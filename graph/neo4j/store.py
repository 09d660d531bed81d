"""Neo4j access: one driver, managed transactions, batched ``UNWIND`` writes.

Every query is a constant string built from ``graph.schema`` names; values travel as parameters.
Reads run through ``execute_read`` (the server refuses writes in them), writes through
``execute_write`` so the driver retries transient failures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, LiteralString, cast

import numpy as np
import pandas as pd
from neo4j import Driver, GraphDatabase, ManagedTransaction

from graph import schema
from graph.limits import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_SIZE

Row = dict[str, Any]
# Column-wise rows: parameter name -> one value per row, all lists of the same length.
Columns = dict[str, list[Any]]
ProgressFn = Callable[[int], None]

# Parameter bytes per write or delete transaction (see ``Settings.write_batch_bytes``): rows of
# normal size hit the row limit long before this; rows carrying megabytes of text do not, and a
# transaction's server memory grows with its bytes, not its rows.
# Bytes counted for a value that is not a string (numbers, datetimes, booleans).
_SCALAR_BYTES = 8


def _payload(var: str) -> str:
    """Cypher for an entity's approximate property payload: characters of its strings (and
    string lists), 8 per other value. ``var`` is a variable name of this module, not input."""
    return (
        f"reduce(b = 0, k IN keys({var}) | b + CASE "
        f"WHEN {var}[k] IS :: STRING THEN size({var}[k]) "
        f"WHEN {var}[k] IS :: LIST<ANY> THEN reduce(c = 0, e IN {var}[k] | "
        "c + CASE WHEN e IS :: STRING THEN size(e) ELSE 8 END) "
        "ELSE 8 END)"
    )


class GraphStore:
    """A thin, typed wrapper over the neo4j driver for one database."""

    def __init__(
        self,
        uri: str,
        user: str,
        password: str,
        database: str = "neo4j",
        connect_timeout_s: float = 5.0,
        retry_s: float = 5.0,
        verify: bool = True,
        **driver_options: Any,
    ) -> None:
        """Open the driver and check the server answers, so a dead one fails here, in seconds.

        ``connect_timeout_s`` bounds the TCP connect and the Bolt handshake (a frozen server
        accepts connections and never answers); ``retry_s`` bounds the driver's retries of a
        transient failure (the default 30 s turned a refused connection into a long wait).
        ``verify=False`` skips the check (a service that starts while Neo4j is down);
        ``driver_options`` go to the driver as they are (e.g. pool size).
        """
        self.uri = uri
        self.database = database
        self.driver: Driver = GraphDatabase.driver(
            uri,
            auth=(user, password),
            notifications_min_severity="OFF",
            connection_timeout=connect_timeout_s,
            connection_acquisition_timeout=connect_timeout_s,
            max_transaction_retry_time=retry_s,
            **driver_options,
        )
        if not verify:
            return
        try:
            self.driver.verify_connectivity()
        except BaseException:
            self.driver.close()
            raise

    def close(self) -> None:
        self.driver.close()

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Create the uniqueness constraints and indexes (idempotent)."""
        with self.driver.session(database=self.database) as session:
            for stmt in schema.constraint_statements():
                session.run(cast(LiteralString, stmt)).consume()
            session.run("CALL db.awaitIndexes(300)").consume()

    # -- reads -------------------------------------------------------------------------
    def read(self, query: LiteralString, **params: Any) -> list[dict[str, Any]]:
        """Run a read-only query in a managed read transaction and return its rows as dicts."""

        def work(tx: ManagedTransaction) -> list[dict[str, Any]]:
            return [r.data() for r in tx.run(query, params)]

        with self.driver.session(database=self.database) as session:
            return session.execute_read(work)

    def read_columns(self, query: LiteralString, **params: Any) -> dict[str, list[Any]]:
        """Run a read query and return its result column-wise (one list per key).

        Avoids building a dict per record: values are appended straight into per-column lists.
        """

        def work(tx: ManagedTransaction) -> dict[str, list[Any]]:
            result = tx.run(query, params)
            keys = result.keys()
            cols: list[list[Any]] = [[] for _ in keys]
            for record in result:
                for col, value in zip(cols, record.values(), strict=True):
                    col.append(value)
            return dict(zip(keys, cols, strict=True))

        with self.driver.session(database=self.database) as session:
            return session.execute_read(work)

    def read_packed(self, query: LiteralString, **params: Any) -> dict[str, list[Any]]:
        """Run a read query that returns exactly one record of list-valued columns."""

        def work(tx: ManagedTransaction) -> dict[str, list[Any]]:
            record = tx.run(query, params).single(strict=True)
            return {key: list(value) for key, value in record.items()}

        with self.driver.session(database=self.database) as session:
            return session.execute_read(work)

    # -- writes ------------------------------------------------------------------------
    def write_batches(
        self,
        query: LiteralString,
        rows: Sequence[Row],
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: ProgressFn | None = None,
        **params: Any,
    ) -> int:
        """Write ``rows`` with ``UNWIND $rows`` in transactions of ``batch_size`` rows.

        Each batch commits on its own, and every query is an idempotent MERGE/SET, so a load
        killed half-way can simply be rerun.
        """
        written = 0
        with self.driver.session(database=self.database) as session:
            for chunk in _chunks(rows, batch_size):

                def work(tx: ManagedTransaction, chunk: Sequence[Row] = chunk) -> None:
                    tx.run(query, {**params, "rows": list(chunk)}).consume()

                session.execute_write(work)
                written += len(chunk)
                if progress is not None:
                    progress(len(chunk))
        return written

    def write_columns(
        self,
        query: LiteralString,
        columns: Columns,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: ProgressFn | None = None,
        update: LiteralString | None = None,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        **params: Any,
    ) -> int:
        """Write column-wise rows in transactions of at most ``batch_size`` rows and about
        ``batch_bytes`` bytes of values (:func:`batch_bounds`; a row bigger than that goes alone).

        Each batch's parameters are the slices of every column (``$name`` is a list), which
        Bolt packs far more cheaply than one map per row; the query rebuilds its rows (see
        ``graph.neo4j.load._unwind``). With ``update``, that query runs first in the same
        transaction: it updates the rows it finds in place and returns their positions in the
        batch as ``found``; ``query`` then runs on the other rows only, if any.

        Each batch commits on its own and the queries are idempotent upserts, so a load killed
        half-way can simply be rerun.
        """
        lengths = {len(values) for values in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns differ in length: {sorted(lengths)}")
        sizes = row_bytes(columns)
        written = 0
        with self.driver.session(database=self.database) as session:
            for start, end in batch_bounds(sizes, batch_size, batch_bytes):
                chunk = {k: v[start:end] for k, v in columns.items()}
                size = end - start

                def work(tx: ManagedTransaction, chunk: Columns = chunk, size: int = size) -> None:
                    run_columns(tx, query, chunk, size, update, params)

                session.execute_write(work)
                written += size
                if progress is not None:
                    progress(size)
        return written

    def delete_all(
        self,
        label: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> int:
        """Delete every node (or every node of one schema label) in bounded transactions.

        Relationships go first, then nodes. A deleting transaction's server memory grows with
        what it deletes, properties included (300 reviews of 1 MB in one transaction ran a 1 GB
        heap out of memory), so no transaction deletes more than ``batch_size`` entities or
        about ``batch_bytes`` of property values:

        * the common case, in one query per round: up to ``batch_size`` entities whose payload
          is at most ``batch_bytes / batch_size`` each;
        * once such a round comes back short (only bigger entities, if any, are left): their
          element ids and payloads are read, and they are deleted by element id in
          transactions grouped by :func:`batch_bounds`.
        """
        if label is not None and label not in schema.ID_KEY and label != schema.TRUTH_RING:
            raise ValueError(f"unknown label {label!r}")
        match = f"MATCH (n:{label})" if label else "MATCH (n)"
        small = max(1, batch_bytes // batch_size)
        total = 0
        for var, pattern, seek in (
            ("r", f"{match}-[r]-() WITH DISTINCT r", "MATCH ()-[r]->() WHERE elementId(r) = id"),
            ("n", f"{match} WITH n", "MATCH (n) WHERE elementId(n) = id"),
        ):
            payload = _payload(var)
            bulk = cast(
                LiteralString,
                f"{pattern} WHERE {payload} <= $small WITH {var} LIMIT $limit "
                f"DELETE {var} RETURN count(*) AS deleted",
            )
            scan = cast(
                LiteralString,
                f"{pattern} WHERE {payload} > $small WITH {var} LIMIT $limit "
                f"RETURN elementId({var}) AS id, {payload} AS bytes",
            )
            by_id = cast(
                LiteralString,
                f"UNWIND $ids AS id {seek} DELETE {var} RETURN count(*) AS deleted",
            )
            while True:
                deleted = self._write_returning(bulk, small=small, limit=batch_size)
                total += deleted if var == "n" else 0
                if deleted == batch_size:
                    continue
                found = self.read_columns(scan, small=small, limit=batch_size)
                if not found["id"]:
                    if deleted == 0:
                        break
                    continue
                sizes = np.asarray(found["bytes"], dtype=np.int64) + _SCALAR_BYTES
                for start, end in batch_bounds(sizes, batch_size, batch_bytes):
                    n = self._write_returning(by_id, ids=found["id"][start:end])
                    total += n if var == "n" else 0
        return total

    def _write_returning(self, query: LiteralString, **params: Any) -> int:
        def work(tx: ManagedTransaction) -> int:
            record = tx.run(query, params).single()
            return int(record[0]) if record else 0

        with self.driver.session(database=self.database) as session:
            return session.execute_write(work)

    # -- inspection --------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Node counts per label and relationship counts per type (from the count store)."""
        out: dict[str, int] = {}
        for label in (*schema.ID_KEY, schema.TRUTH_RING):
            q = cast(LiteralString, f"MATCH (n:{label}) RETURN count(n) AS n")
            out[label] = int(self.read(q)[0]["n"])
        for rel in (schema.ORDERED, schema.REVIEWED, schema.SOLD_BY, schema.USES, schema.MEMBER_OF):
            q = cast(LiteralString, f"MATCH ()-[r:{rel}]->() RETURN count(r) AS n")
            out[rel] = int(self.read(q)[0]["n"])
        return out


def row_bytes(columns: Columns) -> np.ndarray:
    """Approximate bytes of each row's values: characters of strings, 8 per other value, 24
    per entry of a map (the users' feature maps). Characters, like Cypher's ``size()`` that
    :meth:`GraphStore.delete_all` uses, so both sides measure alike."""
    n = len(next(iter(columns.values()), []))
    total = np.zeros(n, dtype=np.int64)
    for values in columns.values():
        if values:
            total += _column_bytes(values)
    return total


def _column_bytes(values: list[Any]) -> np.ndarray:
    n = len(values)
    first = values[0]
    if isinstance(first, int | float):  # numbers (and None among them): a column has one type
        return np.full(n, _SCALAR_BYTES, dtype=np.int64)
    try:  # strings (or maps), no None: len() in C
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
        return lengths * 24 if isinstance(first, dict) else lengths
    except TypeError:  # mixed with None or other scalars
        return np.fromiter(
            (len(v) if isinstance(v, str) else _SCALAR_BYTES for v in values), np.int64, count=n
        )


def batch_bounds(sizes: np.ndarray, max_rows: int, max_bytes: int) -> list[tuple[int, int]]:
    """Consecutive ``(start, end)`` slices of at most ``max_rows`` rows and ``max_bytes`` bytes.

    A single row above ``max_bytes`` gets a slice of its own: it must still be written (the
    bundle's field limits keep such rows bounded), and it never drags neighbours along.
    """
    n = len(sizes)
    cum = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < n:
        by_bytes = int(np.searchsorted(cum, cum[start] + max_bytes, side="right")) - 1
        end = max(start + 1, min(start + max_rows, by_bytes, n))
        bounds.append((start, end))
        start = end
    return bounds


def records(frame: pd.DataFrame) -> list[Row]:
    """DataFrame → parameter rows: plain-python dicts with NaN turned into None (Neo4j has no NaN)."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _chunks(rows: Sequence[Row], size: int) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def run_columns(
    tx: ManagedTransaction, query: LiteralString, chunk: Columns, size: int,
    update: LiteralString | None = None, params: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """One batch of :meth:`GraphStore.write_columns` inside the caller's transaction (the
    service writes events and reads the rescored users' neighbourhoods in one)."""
    params = params or {}
    rest = chunk
    if update is not None:
        record = tx.run(update, {**params, **chunk}).single()
        found = set(record["found"]) if record else set()
        if len(found) == size:
            return
        keep = [i for i in range(size) if i not in found]
        rest = {k: [v[i] for i in keep] for k, v in chunk.items()}
    tx.run(query, {**params, **rest}).consume()
