"""Keyed pseudonyms for ids that leave the risk team: HMAC-SHA256 under a secret key.

The same id and key always give the same pseudonym (files can be joined to each other and,
by whoever holds the key, back to the original ids by recomputing it); without the key the
pseudonym cannot be inverted or even recomputed from a guessed id, unlike a plain hash of a
guessable id. The id's kind is part of the message (``user:U1``, ``device:U1``), so equal
strings of two kinds do not link.
"""

from __future__ import annotations

import hmac

import numpy as np
import pandas as pd

MIN_KEY_BYTES = 16
DIGEST_HEX = 32  # 128 bits: collisions among 10^9 ids have probability ~1e-21
# Which id columns of an export hold which kind of id.
ID_KINDS: dict[str, str] = {"user_id": "user", "device_id": "device", "merchant_id": "merchant"}


class PseudonymKeyError(ValueError):
    """No usable key: pseudonymised exports are refused rather than written in the clear."""


def check_key(key: str | None) -> bytes:
    """The key as bytes; refuses a missing or short key (the message never shows the key)."""
    if not key:
        raise PseudonymKeyError(
            "--pseudonymise needs a key: set RISKGRAPH_PSEUDONYM_KEY (at least "
            f"{MIN_KEY_BYTES} bytes, e.g. `openssl rand -hex 32`), kept apart from the files"
        )
    raw = key.encode()
    if len(raw) < MIN_KEY_BYTES:
        raise PseudonymKeyError(
            f"RISKGRAPH_PSEUDONYM_KEY is {len(raw)} bytes; use at least {MIN_KEY_BYTES}"
        )
    return raw


def pseudonym(key: bytes, kind: str, value: str) -> str:
    """One id's pseudonym (hex)."""
    return hmac.digest(key, f"{kind}:{value}".encode(), "sha256").hex()[:DIGEST_HEX]


def pseudonymise_column(key: bytes, kind: str, values: pd.Series) -> pd.Series:
    """Every value's pseudonym; each distinct id is hashed once, missing values stay missing."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.asarray([pseudonym(key, kind, str(v)) for v in uniques], dtype=object)
    out = np.full(len(values), None, dtype=object)
    out[codes >= 0] = mapped[codes[codes >= 0]]
    return pd.Series(out, index=values.index, name=values.name)


def key_id(key: bytes) -> str:
    """A short fingerprint naming which key was used (HMAC of a constant; reveals nothing)."""
    return hmac.digest(key, b"riskgraph pseudonym key id", "sha256").hex()[:12]


def pseudonymise_frame(key: bytes, frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose id columns (``ID_KINDS``) hold pseudonyms."""
    out = frame.copy()
    for column, kind in ID_KINDS.items():
        if column in out.columns:
            out[column] = pseudonymise_column(key, kind, out[column])
    return out
