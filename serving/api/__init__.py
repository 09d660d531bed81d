"""The web service (`riskgraph serve`): FastAPI app factory, routes, security, metrics."""

from serving.api.app import create_app

__all__ = ["create_app"]
