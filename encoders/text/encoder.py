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
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from encoders.text.cache import EmbeddingCache, text_key
from encoders.text.int8 import (
    CALIBRATION_TEXTS,
    INT8_SCHEME,
    Int8Bert,
    bert_like,
    full_range_int8,
)
from encoders.text.model_path import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MODEL,
    TOKENIZER_FILES,
    WEIGHT_GLOBS,
    ModelNotFoundError,
    pooling_mode,
    read_json,
    resolve_model_path,
)

if TYPE_CHECKING:
    import torch

__all__ = [
    "CPU_MAX_BATCH_TOKENS",
    "DEFAULT_MODEL",
    "ModelNotFoundError",
    "ReviewEncoder",
    "resolve_model_path",
]

_MAX_LENGTH_CAP = 512
_CHUNK_TEXTS = 4096  # texts tokenised, length-sorted and cached together
CPU_MAX_BATCH_TOKENS = 1536
"""Default cap on padded tokens per forward pass on the CPU (see ``ReviewEncoder``).

Past it, the FFN's ``[tokens, 4 x hidden]`` activations (9 MB at 1,536 tokens for MiniLM)
fall out of cache and every pass over them slows down. On 2 Zen 4 cores, 64 texts of 64
tokens ran at 122/s in batches of 32 against 106/s in one batch of 64 (fp32), and at
253/s against 219/s with int8, while short reviews (~22 tokens, so 64 fit) were unchanged."""


class ReviewEncoder:
    """Encode review texts into L2-normalised sentence embeddings.

    Matches ``SentenceTransformer(path).encode(texts, normalize_embeddings=True)`` (cosine
    >= 0.999) while adding: token-length-sorted batching, in-call deduplication, an optional
    on-disk cache and optional int8 dynamic quantisation for CPU serving.

    Attributes:
        path: Checkpoint folder.
        device: Torch device string used for inference, chosen once at construction.
        batch_size: Most texts per forward pass.
        max_batch_tokens: Most padded tokens per forward pass (``None``: no cap); long texts
            then go in smaller batches.
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
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_tokens: int | Literal["auto"] | None = "auto",
        max_length: int | None = None,
        quantize_int8: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        """Load tokenizer and model from a local folder (never from a hub).

        Args:
            model: Folder path or installed package name; see :func:`resolve_model_path`.
            device: Torch device; ``None`` picks ``cuda`` when available, else ``cpu``.
            batch_size: Most texts per forward pass.
            max_batch_tokens: Most padded tokens per forward pass; a batch of long texts
                holds fewer than ``batch_size``. ``"auto"`` is :data:`CPU_MAX_BATCH_TOKENS`
                on the CPU and no cap on a GPU (which wants the largest batches).
            max_length: Token truncation length. ``None`` uses ``max_seq_length`` from
                ``sentence_bert_config.json`` (what sentence-transformers does), else the
                tokenizer's ``model_max_length`` capped at 512.
            quantize_int8: Run the transformer's projections as dynamic int8 (CPU only;
                ~2.8x sentence-transformers at cosine >= 0.99 to fp32 for BERT-layout
                checkpoints); see :meth:`_quantize` for the scheme and its trade-offs.
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
        if isinstance(max_batch_tokens, int) and max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
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
        if max_batch_tokens == "auto":
            on_cpu = self._torch_device.type == "cpu"
            max_batch_tokens = CPU_MAX_BATCH_TOKENS if on_cpu else None
        self.max_batch_tokens: int | None = max_batch_tokens
        self.quantized = bool(quantize_int8)
        self.last_encoded_count = 0

        st_config = read_json(self.path / "sentence_bert_config.json")
        self._lowercase = bool(st_config.get("do_lower_case", False))
        self._pooling = pooling_mode(self.path)

        self._tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        hf_model = AutoModel.from_pretrained(
            str(self.path), local_files_only=True, dtype=torch.float32
        )
        hf_model.eval()
        self._max_positions = int(getattr(hf_model.config, "max_position_embeddings", 0) or 0)
        self.max_length = self._pick_max_length(max_length, st_config)
        self._dim = int(hf_model.config.hidden_size)
        self._input_names = [
            name
            for name in self._tokenizer.model_input_names
            if name in ("input_ids", "attention_mask", "token_type_ids")
        ]
        self._int8_scheme = ""  # set by _quantize; part of model_id
        self._model: Any = (
            self._quantize(hf_model) if self.quantized else hf_model.to(self._torch_device)
        )
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
        weight_files = sorted({p for pattern in WEIGHT_GLOBS for p in self.path.glob(pattern)})
        tok_files = [self.path / f for f in TOKENIZER_FILES if (self.path / f).is_file()]
        for fpath in [*weight_files, *tok_files]:
            digest.update(f"{fpath.name}:{fpath.stat().st_size}\0".encode())
        digest.update(
            f"len={self.max_length};pool={self._pooling};lower={self._lowercase}".encode()
        )
        if self._int8_scheme:  # the fp32 id is unchanged; an int8 scheme gets its own
            digest.update(f";int8={self._int8_scheme}".encode())
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

    def _quantize(self, model: Any) -> Any:
        """Return an int8 version of ``model`` for the CPU (``quantize_int8=True``).

        For BERT-layout checkpoints (all-MiniLM-L6-v2 included; see :func:`bert_like`) every
        projection of every layer runs on fbgemm's dynamic int8 kernel, in an inference-only
        forward built from the checkpoint's weights (:class:`Int8Bert`). Other layouts fall
        back to ``quantize_dynamic`` on the attention ``nn.Linear`` layers only (~1.3x).

        The textbook ``quantize_dynamic(model, {nn.Linear})`` loses too much here: one 7-bit
        scale per activation tensor, while a few values dwarf the rest: the [CLS] token's
        channel of ~25-30 entering the FFN up-projection (median channel max ~1.7), one of
        ~15-25 entering the down-projection (GELU output) in layers 0-3, and padded rows.
        Mean/min cosine to fp32 on 4,636 generated reviews, adding one step at a time:

        * every projection int8, 7-bit per-tensor activations: 0.973 / 0.886;
        * 8-bit activations (AVX-512 VNNI, see :func:`full_range_int8`): 0.992 / 0.968;
        * SmoothQuant, alpha 0.75, on query/key/value and the FFN up-projection (see
          :class:`_Int8Linear`; alpha 0.5 was 0.001 lower, 0.9 no better): 0.995 / 0.980;
        * the 4 hottest FFN channels' down-projection in float (:class:`Int8BertLayer`;
          SmoothQuant there instead was worse: one inflated weight column coarsens every
          row's weight scale): 0.998 / 0.992;
        * padded rows zeroed after each LayerNorm, exact for real rows (:class:`Int8Bert`):
          0.999 / 0.996. Without VNNI (7 bits) the same scheme gives 0.997 / 0.989.

        Per-token activation scales (``torch._int_mm``) for query/key/value and the FFN
        up-projection gained ~0.0005 on the minimum but cost ~15% of the speed, and leaving
        the up-projection's one outlier input channel in float gained ~0.001 for ~7%.

        The activation statistics come from the fp32 model on :data:`CALIBRATION_TEXTS`, a
        fixed built-in set, not from the caller's texts: the int8 model, and so every vector,
        is then the same whatever was encoded first and in whatever order; the outliers are
        properties of the checkpoint ([CLS] and a few channels) that a few dozen texts pin.
        Vectors still depend slightly on which texts share a batch (per-tensor ranges).

        Speed: ~2.8-3.0x ``SentenceTransformer.encode`` on 2 Zen 4 cores (README, "Review
        encoder"). ``quantize_per_channel`` and ``quantize_dynamic`` are deprecated in torch
        in favour of torchao, but still work and need no extra dependency; their warnings
        are silenced.
        """
        import torch

        model = model.to("cpu")
        if bert_like(model):
            stats = self._calibrate(model)
            full_range = full_range_int8()
            self._int8_scheme = INT8_SCHEME + ("" if full_range else "-7bit")
            with warnings.catch_warnings():  # quantize_per_channel's deprecation notice
                warnings.simplefilter("ignore", UserWarning)
                return Int8Bert(model, stats, full_range)

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
        self._int8_scheme = "dynamic-attention"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            return quantize_dynamic(model, targets, dtype=torch.qint8)

    def _calibrate(self, model: Any) -> list[dict[str, torch.Tensor]]:
        """Per-layer, per-channel ``max|x|`` over real tokens at each projection's input.

        Keys: ``qkv`` (query/key/value input), ``ffn_in`` and ``ffn_out`` (FFN up- and
        down-projection inputs), from the fp32 model on :data:`CALIBRATION_TEXTS`.
        """
        import torch

        batch = self._tokenize(list(CALIBRATION_TEXTS), padding=True, return_tensors="pt")
        inputs = {name: batch[name] for name in self._input_names if name in batch}
        real = batch["attention_mask"].bool()
        stats: list[dict[str, torch.Tensor]] = [{} for _ in model.encoder.layer]

        def record(layer: int, key: str) -> Any:
            def hook(_module: Any, args: tuple[torch.Tensor, ...]) -> None:
                stats[layer][key] = args[0][real].abs().amax(dim=0).float()

            return hook

        handles = []
        for i, layer in enumerate(model.encoder.layer):
            for key, module in (
                ("qkv", layer.attention.self.query),
                ("ffn_in", layer.intermediate.dense),
                ("ffn_out", layer.output.dense),
            ):
                handles.append(module.register_forward_pre_hook(record(i, key)))
        try:
            with torch.inference_mode():
                model(**inputs)
        finally:
            for handle in handles:
                handle.remove()
        return stats

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

    def _tokenize(self, texts: list[str], **kwargs: Any) -> Any:
        """The tokenizer's output for ``texts``, lowercased first where the checkpoint's
        sentence-transformers config says so, truncated at :attr:`max_length`."""
        prepared = [t.lower() for t in texts] if self._lowercase else texts
        return self._tokenizer(prepared, truncation=True, max_length=self.max_length, **kwargs)

    def _encode_uncached(self, texts: list[str], advance: Any) -> np.ndarray:
        """Run ``texts`` through the model, batched by descending token length."""
        import torch

        encoded = self._tokenize(texts, padding=False)
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
            for batch_idx in self._batches(order, lengths):
                batch = self._pad(columns, batch_idx, int(lengths[batch_idx[0]]))
                hidden = self._model(**batch).last_hidden_state.float()
                pooled = self._pool(hidden, batch["attention_mask"])
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[batch_idx] = pooled.cpu().numpy()
                advance(len(batch_idx))
        return out

    def _batches(self, order: np.ndarray, lengths: np.ndarray) -> Iterator[np.ndarray]:
        """Cut length-sorted (longest first) ``order`` into batches of at most
        ``batch_size`` texts and ``max_batch_tokens`` padded tokens (never below one text)."""
        start = 0
        while start < len(order):
            rows = self.batch_size
            if self.max_batch_tokens is not None:  # the first text is the batch's longest
                rows = min(rows, max(1, self.max_batch_tokens // int(lengths[order[start]])))
            yield order[start : start + rows]
            start += rows

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
