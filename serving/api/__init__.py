"""The web service (`riskgraph serve`): FastAPI app factory, routes, security, metrics.

``create_app`` lives in ``serving.api.app``; it is not imported here, so registering the
``serve`` command does not load FastAPI, pandas or the driver for every other command.
"""
