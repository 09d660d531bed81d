"""One readable line for every way a command can fail, decided in one place.

The CLI's command group catches whatever a command raises and prints ``describe``'s line:
which server, what went wrong, what to do. ``--debug`` (or ``RISKGRAPH_DEBUG=1``) shows the
traceback instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from graph.neo4j.server import Neo4jProvisionError

if TYPE_CHECKING:  # the driver (and the pandas it pulls in) loads only with a command using it
    from neo4j.exceptions import ClientError

# Exit codes: 1 the server or the run failed, 2 the input was refused.
FAILED, REFUSED = 1, 2


@dataclass(frozen=True)
class Server:
    """The server a command talks to, for naming it and its fix in a message."""

    uri: str
    user: str
    local: bool
    password_file: str = ""

    @property
    def start_fix(self) -> str:
        if self.local:
            return "start it with `riskgraph neo4j start`"
        return (
            "check that it runs and that RISKGRAPH_NEO4J_URI is right, or unset "
            "RISKGRAPH_NEO4J_URI and run `riskgraph neo4j start` for the local server"
        )


def describe(exc: BaseException, server: Server | None) -> tuple[str, int]:
    """The one-line message and exit code for ``exc``."""
    where = f"Neo4j at {server.uri}" if server else "Neo4j"
    if type(exc).__module__.split(".")[0] == "neo4j":
        return _driver_error(exc, where, server)
    if isinstance(exc, Neo4jProvisionError):  # its first line names the server and the fix
        return _first_line(str(exc)), FAILED
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"RISKGRAPH_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        return f"invalid setting: {problems}", REFUSED
    if isinstance(exc, PermissionError | ValueError | FileNotFoundError | LookupError):
        return _first_line(str(exc)) or type(exc).__name__, REFUSED
    message = _first_line(str(exc))
    kind = type(exc).__name__
    return f"{kind}: {message} (rerun with --debug for the traceback)", FAILED


def _driver_error(exc: BaseException, where: str, server: Server | None) -> tuple[str, int]:
    """An error the neo4j driver raised (imported here: only a command that used the driver
    can raise one)."""
    from neo4j.exceptions import (
        AuthError,
        ClientError,
        CypherSyntaxError,
        Neo4jError,
        ServiceUnavailable,
        SessionExpired,
    )

    if isinstance(exc, AuthError):
        fix = (
            f"the password in {server.password_file} does not match this server's store"
            if server and server.local
            else "set RISKGRAPH_NEO4J_USER and RISKGRAPH_NEO4J_PASSWORD"
        )
        user = f" for user {server.user!r}" if server else ""
        return f"{where} rejected the credentials{user}: {fix}", FAILED
    if isinstance(exc, ServiceUnavailable | SessionExpired):
        return _unreachable(exc, where, server), FAILED
    if isinstance(exc, CypherSyntaxError):
        return f"Cypher syntax error: {_first_line(exc.message or str(exc))}", REFUSED
    if isinstance(exc, ClientError):
        return _client_error(exc), REFUSED
    if isinstance(exc, Neo4jError):
        return f"{where} failed the request ({exc.code}): {_first_line(exc.message)}", FAILED
    message = _first_line(str(exc))
    return f"{type(exc).__name__}: {message} (rerun with --debug for the traceback)", FAILED


def _unreachable(exc: BaseException, where: str, server: Server | None) -> str:
    text = str(exc)
    if "handshake" in text or "timed out" in text.lower():
        fix = (
            "restart it with `riskgraph neo4j stop` then `riskgraph neo4j start`"
            if server is None or server.local
            else "check the server"
        )
        return (
            f"{where} accepted the connection but did not answer in time (frozen or "
            f"overloaded): {fix}"
        )
    cause = "connection refused" if "refused" in text.lower() else _first_line(text)
    fix = server.start_fix if server else "start it with `riskgraph neo4j start`"
    return f"cannot reach {where}: {cause}; {fix}"


def _client_error(exc: ClientError) -> str:
    code = exc.code or ""
    message = _first_line(exc.message or str(exc))
    if code.endswith("ParameterMissing"):
        return (
            f"missing query parameter ({message}): pass it with --param NAME=VALUE "
            "(see `riskgraph cypher --help`)"
        )
    if "TransactionTimedOut" in code:
        return (
            "the query ran past its time limit and the server stopped it: narrow it, or give "
            "more time with --timeout SECONDS (default RISKGRAPH_QUERY_TIMEOUT_S, 60 s)"
        )
    return f"Neo4j refused the query ({code}): {message}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else ""
