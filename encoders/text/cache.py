"""On-disk embedding cache for :mod:`encoders.text.encoder`.

Review texts are re-encoded on every feature build (nightly graph refreshes, training
runs, back-fills), yet almost all of them were already seen. Transformer inference is the
expensive step, so vectors are kept on disk keyed by ``(model_id, sha256(text))``.

Layout: ``<cache_dir>/<model_id>/chunk-*.npz``. Each ``put`` writes one new chunk file
holding ``keys`` (hex sha256, ``<U64``) and ``vectors`` (``float32``, ``(k, dim)``). A chunk is
written to a temporary name and then ``os.replace``-d into place, so a reader never sees a
half-written chunk and a crash loses at most the chunk being written. Chunks are never
modified after they appear, which is what makes the cache safe to share between processes
run one after another (and tolerable for concurrent ones: the worst case is a cache miss
and a duplicate key, both harmless because equal keys hold equal vectors).
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["EmbeddingCache", "text_key"]

_CHUNK_GLOB = "chunk-*.npz"
_KEY_DTYPE = "<U64"


def text_key(text: str) -> str:
    """Return the cache key of ``text``.

    A digest rather than the text itself keeps keys fixed-size and keeps review text (which
    may contain personal data) out of the cache files.

    Args:
        text: The exact string passed to the encoder.

    Returns:
        The hex sha256 of the UTF-8 bytes of ``text``.
    """
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def _safe_dirname(model_id: str) -> str:
    """Map a model id to a single, portable directory name (no separators, no ``..``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_id).strip(".")
    return name or "model"


class EmbeddingCache:
    """Append-only store of L2-normalised embeddings for one model.

    The in-memory index is refreshed from disk on every lookup (only chunk files not yet seen
    are read), so an instance also picks up chunks written by other processes meanwhile.

    Attributes:
        directory: Folder holding this model's chunk files.
        dim: Embedding width; chunks of another width are ignored with a warning.
    """

    def __init__(
        self, cache_dir: Path | str, model_id: str, dim: int, *, compact_above: int = 64
    ) -> None:
        """Open (and create if needed) the cache folder of ``model_id``.

        Args:
            cache_dir: Root cache folder shared by all models.
            model_id: Stable id of the model and of every setting that changes its vectors.
            dim: Embedding width expected in every chunk.
            compact_above: Merge all chunks into one when more than this many exist at open
                time, so that many small incremental runs do not leave thousands of files.
        """
        self.directory = Path(cache_dir) / _safe_dirname(model_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.dim = int(dim)
        self._index: dict[str, tuple[int, int]] = {}
        self._blocks: list[np.ndarray] = []
        self._seen_files: set[str] = set()
        self._refresh()
        if len(self._seen_files) > compact_above:
            self.compact()

    def __len__(self) -> int:
        """Number of distinct keys currently known."""
        return len(self._index)

    def _refresh(self) -> None:
        """Load chunk files that appeared since the last refresh."""
        for path in sorted(self.directory.glob(_CHUNK_GLOB)):
            if path.name in self._seen_files:
                continue
            self._seen_files.add(path.name)
            try:
                with np.load(path, allow_pickle=False) as data:
                    keys = data["keys"]
                    vectors = np.asarray(data["vectors"], dtype=np.float32)
            except FileNotFoundError:
                continue  # removed by a concurrent compaction; its rows live in the merged chunk
            except Exception as exc:  # corrupt file: a cache must never break encoding
                warnings.warn(
                    f"ignoring unreadable embedding cache chunk {path}: {exc}",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            if vectors.ndim != 2 or vectors.shape[1] != self.dim or len(keys) != len(vectors):
                warnings.warn(
                    f"ignoring embedding cache chunk {path}: shape {vectors.shape} for "
                    f"{len(keys)} keys does not match dim={self.dim}",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            block = len(self._blocks)
            self._blocks.append(vectors)
            for row, key in enumerate(keys.tolist()):
                self._index[key] = (block, row)

    def get_many(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Look up many keys at once.

        Args:
            keys: Cache keys from :func:`text_key`.

        Returns:
            ``(found, vectors)``: a boolean mask over ``keys`` and a ``(found.sum(), dim)``
            float32 matrix with the cached vectors of the found keys, in ``keys`` order.
        """
        self._refresh()
        found = np.zeros(len(keys), dtype=bool)
        rows: list[np.ndarray] = []
        for i, key in enumerate(keys):
            loc = self._index.get(key)
            if loc is not None:
                found[i] = True
                rows.append(self._blocks[loc[0]][loc[1]])
        if not rows:
            return found, np.zeros((0, self.dim), dtype=np.float32)
        return found, np.stack(rows).astype(np.float32, copy=False)

    def put_many(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Persist new vectors as one chunk file and add them to the in-memory index.

        Args:
            keys: Cache keys, one per row of ``vectors``.
            vectors: ``(len(keys), dim)`` embeddings.

        Raises:
            ValueError: If the shapes do not match.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(keys), self.dim):
            raise ValueError(
                f"expected vectors of shape ({len(keys)}, {self.dim}), got {vectors.shape}"
            )
        if len(keys) == 0:
            return
        name = self._write_chunk(np.asarray(keys, dtype=_KEY_DTYPE), vectors)
        self._seen_files.add(name)
        block = len(self._blocks)
        self._blocks.append(vectors)
        for row, key in enumerate(keys):
            self._index[key] = (block, row)

    def compact(self) -> None:
        """Merge every chunk into one file.

        The merged chunk is written (atomically) before the old ones are deleted, so a
        concurrent reader finds each vector in at least one file at any time, or misses it
        and simply recomputes it.
        """
        self._refresh()
        old = sorted(self._seen_files)
        if len(old) <= 1:
            return
        keys = list(self._index)
        vectors = (
            np.stack([self._blocks[b][r] for b, r in self._index.values()])
            if keys
            else np.zeros((0, self.dim), dtype=np.float32)
        )
        name = self._write_chunk(np.asarray(keys, dtype=_KEY_DTYPE), vectors)
        for old_name in old:
            (self.directory / old_name).unlink(missing_ok=True)
        self._blocks = [vectors]
        self._index = {key: (0, row) for row, key in enumerate(keys)}
        self._seen_files = {name}

    def _write_chunk(self, keys: np.ndarray, vectors: np.ndarray) -> str:
        """Write one chunk atomically and return its file name."""
        name = f"chunk-{os.getpid()}-{uuid.uuid4().hex}.npz"
        tmp = self.directory / f".tmp-{name}"
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=keys, vectors=vectors)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.directory / name)
        finally:
            tmp.unlink(missing_ok=True)
        return name
