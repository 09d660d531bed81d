"""Fraud rings as graph analytics: evidence linkage, communities, dense blocks, stable ids.

Takes a risk array (any model's) and optional per-review near-duplicate counts; imports nothing
from ``encoders`` or ``training``. The names below load on first use, so that the settings can
read ``graph.rings.config.RingConfig``'s defaults without importing pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graph.rings.config import EVIDENCE_KINDS, RingConfig
    from graph.rings.detect import Rings, detect_rings
    from graph.rings.evaluate import match_planted, ring_typologies
    from graph.rings.linkage import Links, build_links

_HOME = {
    "EVIDENCE_KINDS": "config", "RingConfig": "config", "Rings": "detect",
    "detect_rings": "detect", "match_planted": "evaluate", "ring_typologies": "evaluate",
    "Links": "linkage", "build_links": "linkage",
}  # fmt: skip
__all__ = [
    "EVIDENCE_KINDS", "Links", "RingConfig", "Rings", "build_links", "detect_rings",
    "match_planted", "ring_typologies",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'graph.rings' has no attribute {name!r}")
    return getattr(importlib.import_module(f"graph.rings.{_HOME[name]}"), name)
