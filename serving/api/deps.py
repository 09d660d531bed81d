"""Typed dependencies: the API-key check and the app's scorer (made once, in the lifespan)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from serving.api.scoring import Scorer
from serving.api.security import KeyRing

_header = APIKeyHeader(name="X-API-Key", auto_error=False)


async def require_key(request: Request, key: Annotated[str | None, Depends(_header)]) -> None:
    """401 without a key, 403 with an unknown or revoked one (async: no thread hop for a
    constant-time comparison)."""
    keys: KeyRing = request.app.state.keys
    status = keys.check(key)
    if status == 401:
        raise HTTPException(401, "missing API key: send it in the X-API-Key header")
    if status == 403:
        raise HTTPException(403, "API key refused (unknown or revoked)")


async def get_scorer(request: Request) -> Scorer:
    scorer: Scorer = request.app.state.scorer
    return scorer


ScorerDep = Annotated[Scorer, Depends(get_scorer)]
