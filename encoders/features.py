"""Assemble node feature matrices and the normaliser that travels with the model.

Scalar features go through a signed ``log1p`` (counts and amounts are heavy-tailed) and then a
standardisation whose statistics are fitted on the training users only (other node types carry
no labels, so all their rows are used). The fitted :class:`Normaliser` is saved inside the model
artifact, so training, batch scoring and online scoring transform features identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from encoders.behaviour import device_features, merchant_features, product_features, user_features
from encoders.text.features import TextEncoder, TextFeatures, text_features
from graph.export import GraphExport

NODE_TYPES = ("user", "merchant", "product", "device")


@dataclass
class NodeFeatures:
    """Named scalar columns and text embeddings per node type (rows aligned with node ids)."""

    scalars: dict[str, pd.DataFrame]
    embeddings: dict[str, np.ndarray]
    text: TextFeatures | None = None
    text_model: str | None = None
    """The review encoder's ``model_id`` (checkpoint, settings, int8 scheme), or ``None``
    without text: a model must score with the embeddings it was trained on."""

    def feature_names(self) -> dict[str, list[str]]:
        return {nt: list(frame.columns) for nt, frame in self.scalars.items()}


def build_features(
    g: GraphExport, encoder: TextEncoder | None, *, show_progress: bool = False
) -> NodeFeatures:
    """Behaviour features for every node type, plus review-text features when an encoder is given."""
    scalars = {
        "user": user_features(g),
        "merchant": merchant_features(g),
        "product": product_features(g),
        "device": device_features(g),
    }
    embeddings: dict[str, np.ndarray] = {}
    text = None
    if encoder is not None:
        text = text_features(g, encoder, show_progress=show_progress)
        for nt, frame in text.scalars.items():
            scalars[nt] = pd.concat([scalars[nt], frame.add_prefix("text_")], axis=1)
        embeddings = text.embeddings
    text_model = encoder.model_id if encoder is not None else None
    return NodeFeatures(scalars, embeddings, text, text_model)


@dataclass
class ColumnScaler:
    """Signed log1p then (x - mean) / std, with NaN → 0 (the mean) after scaling."""

    columns: list[str]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, frame: pd.DataFrame, rows: np.ndarray | None = None) -> ColumnScaler:
        values = _signed_log(frame.to_numpy(np.float64))
        if rows is not None:
            values = values[rows]
        mean = (
            np.nan_to_num(np.nanmean(values, axis=0)) if len(values) else np.zeros(values.shape[1])
        )
        std = np.nan_to_num(np.nanstd(values, axis=0)) if len(values) else np.ones(values.shape[1])
        return cls(list(frame.columns), mean, np.where(std > 1e-9, std, 1.0))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise FeatureMismatchError(f"features missing from the graph: {', '.join(missing)}")
        values = _signed_log(frame[self.columns].to_numpy(np.float64))
        scaled = (values - self.mean) / self.std
        return np.nan_to_num(scaled, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnScaler:
        return cls(list(d["columns"]), np.asarray(d["mean"]), np.asarray(d["std"]))


class FeatureMismatchError(ValueError):
    """The graph's features do not match what the model was trained on."""


@dataclass
class Normaliser:
    """One :class:`ColumnScaler` per node type."""

    scalers: dict[str, ColumnScaler]

    @classmethod
    def fit(cls, features: NodeFeatures, train_users: np.ndarray) -> Normaliser:
        scalers = {
            nt: ColumnScaler.fit(frame, train_users if nt == "user" else None)
            for nt, frame in features.scalars.items()
        }
        return cls(scalers)

    def transform(self, features: NodeFeatures) -> dict[str, np.ndarray]:
        """Node type → (num_nodes, n_scalars + embedding_dim) float32 matrix."""
        out: dict[str, np.ndarray] = {}
        for nt, scaler in self.scalers.items():
            if nt not in features.scalars:
                raise FeatureMismatchError(f"node type {nt!r} has no features in the graph")
            parts = [scaler.transform(features.scalars[nt])]
            if nt in features.embeddings:
                parts.append(features.embeddings[nt].astype(np.float32))
            out[nt] = np.concatenate(parts, axis=1)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {nt: s.to_dict() for nt, s in self.scalers.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normaliser:
        return cls({nt: ColumnScaler.from_dict(v) for nt, v in d.items()})


def _signed_log(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))
