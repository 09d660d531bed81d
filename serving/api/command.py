"""`riskgraph serve`: run the service on uvicorn (127.0.0.1 by default)."""

from __future__ import annotations

from typing import Annotated

import typer

from serving.settings import Settings


def serve_command(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
) -> None:
    """Serve scores, events and rings over HTTP (OpenAPI at /docs); needs RISKGRAPH_API_KEYS."""
    import logging

    import uvicorn

    from serving.api.app import create_app

    app = create_app(Settings())  # refuses to build without an API key
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # access_log off: request paths carry user ids; the app logs route templates instead
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info")
