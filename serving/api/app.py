"""The FastAPI app factory: lifespan (driver and model made once), errors, limits, metrics.

Every error is a JSON ``{"error": {"status", "message"}}`` without a stack trace; nothing
about a request's user ids or keys reaches the log (the access log is off; the service logs
the route template, the status and the time).
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from neo4j.exceptions import ClientError, DriverError, Neo4jError, ServiceUnavailable
from starlette.exceptions import HTTPException

from serving.api.cache import ScoreCache, Watcher
from serving.api.metrics import Metrics
from serving.api.scoring import NotReadyError, Scorer
from serving.api.security import KeyRing
from serving.api.store import ServiceStore
from serving.connect import connection
from serving.settings import Settings

log = logging.getLogger("riskgraph.api")
WORKER_THREADS = 64  # sync routes run in threads; each waits mostly on Neo4j
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "message": message}}


class BodyTooLarge(Exception):
    """The streamed body passed the limit."""


class Limits:
    """ASGI middleware: 413 for a body over the limit (declared length or streamed bytes),
    and per-route request counts, latency and errors for /metrics."""

    def __init__(self, app: ASGIApp, limit: int, metrics: Metrics) -> None:
        self.app, self.limit, self.metrics = app, limit, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        received, over = 0, False

        async def sending(message: Message) -> None:
            if over:  # the app turned the aborted read into its own error: answer 413 instead
                if message["type"] == "http.response.start" and not status["sent"]:
                    await _send_json(
                        sending_raw, 413, f"request body larger than {self.limit} bytes"
                    )
                return
            await sending_raw(message)

        async def sending_raw(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
            await send(message)

        async def receiving() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    over = True
                    raise BodyTooLarge
            return message

        try:
            declared = dict(scope.get("headers") or []).get(b"content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
                raise BodyTooLarge
            await self.app(scope, receiving, sending)
        except BodyTooLarge:
            if not status["sent"]:
                await _send_json(sending_raw, 413, f"request body larger than {self.limit} bytes")
        except Exception as exc:
            log.error("internal error (%s)", type(exc).__name__)
            if not status["sent"]:
                await _send_json(sending_raw, 500, "internal error")
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope.get("method", "")
            code = int(status["code"])
            self.metrics.requests.labels(route, method, str(code)).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - started)
            if code >= 400:
                self.metrics.errors.labels(route, str(code)).inc()
            log.info("%s %s %d %.1fms", method, route, code, (time.perf_counter() - started) * 1e3)


async def _send_json(send: Send, status: int, message: str) -> None:
    body = json.dumps(error_body(status, message)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def _load_artifact(settings: Settings) -> Any:
    from training.artifact import load_artifact

    try:
        return load_artifact(settings.artifacts)
    except FileNotFoundError:
        log.warning("no trained model in the artifact folder: online scoring is off")
        return None


def create_app(settings: Settings, *, snapshot_at_start: bool = True) -> FastAPI:
    """The service. Refuses (``ApiKeyError``) to be built without an API key."""
    keys = KeyRing.from_settings(settings.api_keys, settings.api_revoked_keys)
    metrics = Metrics.create()
    conn = connection(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread
        import torch

        torch.set_num_threads(1)  # many small requests at once: one thread each is fastest
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        store = ServiceStore(conn.uri, conn.user, conn.password, conn.database,
                             settings.api_neo4j_timeout_s)  # fmt: skip
        cache = ScoreCache(store, settings.api_cache_refresh_s, settings.api_cache)
        scorer = Scorer(settings, store, _load_artifact(settings), cache)
        metrics.model.labels(scorer.version).set(1)
        watcher = Watcher(cache, scorer.refresh_snapshot, settings.api_snapshot_refresh_s)
        watcher.tick()  # the run, the rings and every stored score, before the first request
        watcher.start()  # looks on while the snapshot is taken (seconds)
        if snapshot_at_start and scorer.artifact is not None:
            try:
                scorer.ensure_snapshot()
            except Exception as exc:
                log.warning("scoring snapshot not taken at start (%s); retried on demand",
                            type(exc).__name__)  # fmt: skip
        app.state.scorer = scorer
        gc.collect()
        gc.freeze()  # the model, snapshot and cache are long-lived: keep them out of GC passes
        try:
            yield
        finally:
            watcher.stop()
            store.close()

    app = FastAPI(title="riskgraph", version="1", lifespan=lifespan)
    app.state.settings, app.state.keys, app.state.metrics = settings, keys, metrics
    app.state.server_uri = conn.uri
    _install_errors(app, conn.uri)
    app.add_middleware(Limits, limit=settings.api_max_body_bytes, metrics=metrics)
    from serving.api.events import router as events_router
    from serving.api.routes import router

    app.include_router(router)
    app.include_router(events_router)
    return app


def _install_errors(app: FastAPI, uri: str) -> None:
    def answer(status: int, message: str) -> JSONResponse:
        return JSONResponse(error_body(status, message), status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return answer(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()[:10]
        )  # input values are not echoed: they may hold personal data
        return answer(422, f"malformed request: {problems}")

    @app.exception_handler(NotReadyError)
    async def not_ready(_: Request, exc: NotReadyError) -> JSONResponse:
        return answer(503, str(exc))

    @app.exception_handler(Neo4jError)
    async def neo4j_error(_: Request, exc: Neo4jError) -> JSONResponse:
        if isinstance(exc, ClientError) and "TransactionTimedOut" not in (exc.code or ""):
            log.error("Neo4j refused a query (%s)", exc.code)
            return answer(500, "internal error")
        return answer(503, f"Neo4j at {uri} is unavailable; retry shortly")

    @app.exception_handler(DriverError)
    async def driver_error(_: Request, exc: DriverError) -> JSONResponse:
        kind = "unreachable" if isinstance(exc, ServiceUnavailable) else "unavailable"
        return answer(503, f"Neo4j at {uri} is {kind}; retry shortly")
