"""The service's Neo4j connection: short timeouts everywhere, so an outage answers 503 in < 1 s.

A CLI command may wait seconds for a slow server; a request may not. The driver is created
once in the app's lifespan without checking connectivity (the service starts, and reports
itself not ready, while Neo4j is down), every connect, pool wait and transaction has the
request budget as its limit, and the driver does not retry: the next request simply tries
again, which is how the service recovers by itself when Neo4j returns.
"""

from __future__ import annotations

from typing import Any, LiteralString

from neo4j import ManagedTransaction, unit_of_work

from graph.neo4j.store import GraphStore


class ServiceStore(GraphStore):
    """A :class:`GraphStore` whose reads carry a server-side time limit and whose driver
    gives up in ``timeout_s`` (TCP connect, handshake, pool acquisition, retries)."""

    def __init__(self, uri: str, user: str, password: str, database: str, timeout_s: float) -> None:
        super().__init__(
            uri, user, password, database, connect_timeout_s=timeout_s, retry_s=0.0,
            verify=False, max_connection_pool_size=64, liveness_check_timeout=30.0,
        )  # fmt: skip
        self.timeout_s = timeout_s

    def read(self, query: LiteralString, **params: Any) -> list[dict[str, Any]]:
        @unit_of_work(timeout=self.timeout_s)
        def work(tx: ManagedTransaction) -> list[dict[str, Any]]:
            return [r.data() for r in tx.run(query, params)]

        with self.driver.session(database=self.database) as session:
            return session.execute_read(work)

    def read_all(self, query: LiteralString, **params: Any) -> list[dict[str, Any]]:
        """A large read off the request path (the score cache's load): no request time limit,
        the server's own transaction limit applies."""
        return super().read(query, **params)

    def ping(self) -> bool:
        """Whether the server answers now (for /readyz)."""
        try:
            self.read("RETURN 1 AS ok")
        except Exception:
            return False
        return True
