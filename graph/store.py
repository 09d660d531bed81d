"""Neo4j access: one driver, managed transactions, batched ``UNWIND`` writes.

Every query is a constant string built from ``graph.schema`` names; values travel as parameters.
Reads run through ``execute_read`` (the server refuses writes in them), writes through
``execute_write`` so the driver retries transient failures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, LiteralString, cast

import pandas as pd
from neo4j import Driver, GraphDatabase, ManagedTransaction

from graph import schema

Row = dict[str, Any]
# Column-wise rows: parameter name -> one value per row, all lists of the same length.
Columns = dict[str, list[Any]]
ProgressFn = Callable[[int], None]


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
    ) -> None:
        """Open the driver and check the server answers, so a dead one fails here, in seconds.

        ``connect_timeout_s`` bounds the TCP connect and the Bolt handshake (a frozen server
        accepts connections and never answers); ``retry_s`` bounds the driver's retries of a
        transient failure (the default 30 s turned a refused connection into a long wait).
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
        )
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
        batch_size: int = 10_000,
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
        batch_size: int = 10_000,
        progress: ProgressFn | None = None,
        update: LiteralString | None = None,
        **params: Any,
    ) -> int:
        """Write column-wise rows in transactions of ``batch_size`` rows.

        Each batch's parameters are the slices of every column (``$name`` is a list), which
        Bolt packs far more cheaply than one map per row; the query rebuilds its rows (see
        ``graph.load._unwind``). With ``update``, that query runs first in the same
        transaction: it updates the rows it finds in place and returns their positions in the
        batch as ``found``; ``query`` then runs on the other rows only, if any.

        Each batch commits on its own and the queries are idempotent upserts, so a load killed
        half-way can simply be rerun.
        """
        lengths = {len(values) for values in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns differ in length: {sorted(lengths)}")
        total = lengths.pop() if lengths else 0
        written = 0
        with self.driver.session(database=self.database) as session:
            for start in range(0, total, batch_size):
                chunk = {k: v[start : start + batch_size] for k, v in columns.items()}
                size = min(batch_size, total - start)

                def work(tx: ManagedTransaction, chunk: Columns = chunk, size: int = size) -> None:
                    rest = chunk
                    if update is not None:
                        record = tx.run(update, {**params, **chunk}).single()
                        found = set(record["found"]) if record else set()
                        if len(found) == size:
                            return
                        keep = [i for i in range(size) if i not in found]
                        rest = {k: [v[i] for i in keep] for k, v in chunk.items()}
                    tx.run(query, {**params, **rest}).consume()

                session.execute_write(work)
                written += size
                if progress is not None:
                    progress(size)
        return written

    def delete_all(self, label: str | None = None, batch_size: int = 10_000) -> int:
        """Delete every node (or every node of one schema label) in bounded transactions.

        Relationships go first, ``batch_size`` at a time, so a transaction's memory does not
        grow with node degree (a 10k-node DETACH DELETE of hubs can hold millions of edges).
        """
        if label is not None and label not in schema.ID_KEY and label != schema.TRUTH_RING:
            raise ValueError(f"unknown label {label!r}")
        match = f"MATCH (n:{label})" if label else "MATCH (n)"
        rels = cast(
            LiteralString,
            f"{match}-[r]-() WITH DISTINCT r LIMIT $limit DELETE r RETURN count(*) AS deleted",
        )
        nodes = cast(
            LiteralString, f"{match} WITH n LIMIT $limit DELETE n RETURN count(*) AS deleted"
        )
        while self._write_returning(rels, limit=batch_size):
            pass
        total = 0
        while deleted := self._write_returning(nodes, limit=batch_size):
            total += deleted
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


def records(frame: pd.DataFrame) -> list[Row]:
    """DataFrame → parameter rows: plain-python dicts with NaN turned into None (Neo4j has no NaN)."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _chunks(rows: Sequence[Row], size: int) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
