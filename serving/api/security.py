"""API keys: ``X-API-Key`` checked in constant time against ``RISKGRAPH_API_KEYS``.

"Revoked" means listed in ``RISKGRAPH_API_REVOKED_KEYS``: such a key is refused with 403 even
while it is still in ``RISKGRAPH_API_KEYS`` (rotate by adding the new key, revoking the old,
then removing it from both at the next deploy). A missing key is 401; an unknown or revoked
one is 403. Keys are never logged.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from pydantic import SecretStr

MIN_KEY_LENGTH = 16


class ApiKeyError(ValueError):
    """The service was configured without a usable key; it refuses to start."""


def _split(value: SecretStr) -> tuple[bytes, ...]:
    keys = (k.strip() for k in value.get_secret_value().split(","))
    return tuple(k.encode() for k in keys if k)


@dataclass(frozen=True)
class KeyRing:
    """The accepted and revoked keys (bytes, compared with ``hmac.compare_digest``)."""

    accepted: tuple[bytes, ...]
    revoked: tuple[bytes, ...]

    @classmethod
    def from_settings(cls, keys: SecretStr, revoked: SecretStr) -> KeyRing:
        ring = cls(_split(keys), _split(revoked))
        usable = [k for k in ring.accepted if not ring._matches(k, ring.revoked)]
        if not usable:
            raise ApiKeyError(
                "no API key: set RISKGRAPH_API_KEYS to one or more comma-separated keys "
                "(e.g. `export RISKGRAPH_API_KEYS=$(python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')`); the service does not run open"
            )
        short = [k for k in usable if len(k) < MIN_KEY_LENGTH]
        if short:
            raise ApiKeyError(
                f"RISKGRAPH_API_KEYS holds {len(short)} key(s) shorter than {MIN_KEY_LENGTH} "
                "characters: use long random keys"
            )
        return ring

    @staticmethod
    def _matches(key: bytes, pool: tuple[bytes, ...]) -> bool:
        found = False
        for candidate in pool:  # no early exit: time does not depend on which key matched
            found |= hmac.compare_digest(key, candidate)
        return found

    def check(self, presented: str | None) -> int:
        """200 when accepted, 401 when missing, 403 when unknown or revoked."""
        if not presented:
            return 401
        key = presented.encode("utf-8", "surrogatepass")
        if self._matches(key, self.revoked) or not self._matches(key, self.accepted):
            return 403
        return 200
