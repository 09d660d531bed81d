"""Fraud rings as graph analytics: evidence linkage, communities, dense blocks, stable ids.

Takes a risk array (any model's) and optional per-review near-duplicate counts; imports nothing
from ``encoders`` or ``training``.
"""

from graph.rings.config import EVIDENCE_KINDS, RingConfig
from graph.rings.detect import Rings, detect_rings
from graph.rings.evaluate import match_planted, ring_typologies
from graph.rings.linkage import Links, build_links

__all__ = [
    "EVIDENCE_KINDS", "Links", "RingConfig", "Rings", "build_links", "detect_rings",
    "match_planted", "ring_typologies",
]  # fmt: skip
