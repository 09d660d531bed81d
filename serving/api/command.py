"""`riskgraph serve`: run the service on uvicorn (127.0.0.1 by default)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from serving.settings import Settings

if TYPE_CHECKING:  # the CLI's --help does not import the web stack
    from fastapi import FastAPI


def app_from_env() -> FastAPI:
    """The app from the environment's settings: what each uvicorn worker process builds."""
    from serving.api.app import create_app

    return create_app(Settings())


def serve_command(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="server processes (each loads the model, snapshot, cache)")
    ] = 1,
) -> None:
    """Serve scores, events and rings over HTTP (OpenAPI at /docs); needs RISKGRAPH_API_KEYS."""
    import logging

    import uvicorn

    from serving.api.security import KeyRing

    settings = Settings()
    KeyRing.from_settings(settings.api_keys, settings.api_revoked_keys)  # refuses without a key
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # access_log off: request paths carry user ids; the app logs route templates instead
    if workers == 1:
        uvicorn.run(app_from_env(), host=host, port=port, access_log=False, log_level="info")
    else:  # worker processes import the app by name and build it themselves
        uvicorn.run("serving.api.command:app_from_env", factory=True, workers=workers,
                    host=host, port=port, access_log=False, log_level="info")  # fmt: skip
