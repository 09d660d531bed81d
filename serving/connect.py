"""Wire settings to the graph layer: which Neo4j to talk to, and the local server when it is ours."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from graph.files import private_dir
from graph.neo4j.server import LocalNeo4j, LocalNeo4jConfig
from serving.settings import Settings

if TYPE_CHECKING:  # the driver and pandas load only with a command that opens the store
    from graph.neo4j.store import GraphStore


@dataclass(frozen=True)
class Connection:
    uri: str
    user: str
    password: str
    database: str
    local: bool


def private_state(settings: Settings) -> Path:
    """The state folder, created (or tightened) to mode 0700: it holds the password, the store
    files, artifacts and caches, which are this user's only."""
    return private_dir(settings.state_dir.expanduser())


def local_server(settings: Settings) -> LocalNeo4j:
    """The project's own server, configured from settings (nothing is started here)."""
    private_state(settings)
    return LocalNeo4j(
        LocalNeo4jConfig(
            home=settings.neo4j_home,
            port=settings.neo4j_port,
            version=settings.neo4j_version,
            heap=settings.neo4j_heap,
            pagecache=settings.neo4j_pagecache,
            gds_version=settings.neo4j_gds_version or None,
        )
    )


def connection(settings: Settings) -> Connection:
    """An existing server when ``RISKGRAPH_NEO4J_URI`` is set, else the local one."""
    if settings.neo4j_uri:
        if settings.neo4j_password is None:
            raise ValueError("RISKGRAPH_NEO4J_URI is set but RISKGRAPH_NEO4J_PASSWORD is not")
        return Connection(
            settings.neo4j_uri,
            settings.neo4j_user,
            settings.neo4j_password.get_secret_value(),
            settings.neo4j_database,
            local=False,
        )
    server = local_server(settings)
    return Connection(server.uri, "neo4j", server.password(), settings.neo4j_database, local=True)


def open_store(settings: Settings, *, start: bool = True) -> GraphStore:
    """Open the configured store, starting the local server first if it is ours and down."""
    conn = connection(settings)
    if conn.local and start:
        local_server(settings).start()
    from graph.neo4j.store import GraphStore

    return GraphStore(
        conn.uri,
        conn.user,
        conn.password,
        conn.database,
        connect_timeout_s=settings.neo4j_connect_timeout_s,
    )
