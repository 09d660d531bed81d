"""Batch and field size limits of the import and write paths, in a module that imports nothing
so that ``serving.settings`` can take them as its defaults without loading pandas or the
driver."""

from __future__ import annotations

from typing import Final

DEFAULT_BATCH_SIZE: Final = 10_000  # rows per UNWIND write transaction
# Approximate bytes per write or delete transaction: rows with long texts go in smaller
# transactions so the server's heap is never exhausted.
DEFAULT_BATCH_BYTES: Final = 16 << 20
DEFAULT_MAX_FIELD_BYTES: Final = 1 << 20  # largest free-text value an import accepts
