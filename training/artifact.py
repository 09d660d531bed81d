"""The versioned model artifact: weights (safetensors) and everything needed to score identically.

Layout of ``<artifact_dir>/<version>/``: ``model.safetensors`` and ``config.json`` (architecture,
feature names, normaliser statistics, calibrators, score scaling, metrics, seed). ``version`` is
a hash of both, and ``<artifact_dir>/LATEST`` names the newest one.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from encoders.features import FeatureMismatchError, NodeFeatures, Normaliser
from training.fit import TrainResult
from training.inputs import LABEL_INPUTS
from training.model import HeteroRiskGNN, RiskEnsemble, RiskModel, numeric_shapes
from training.scorecard import PlattCalibrator, ScoreScale


@dataclass
class ModelArtifact:
    """A trained model ready to score."""

    version: str
    model: RiskModel
    normaliser: Normaliser
    calibrators: dict[str, PlattCalibrator]
    scale: ScoreScale
    feature_names: dict[str, list[str]]
    config: dict[str, Any]
    metrics: dict[str, Any]
    path: Path

    def check_features(self, features: NodeFeatures) -> None:
        """Refuse a graph that lacks a feature the model was trained on.

        Columns the graph has beyond those are ignored (every consumer selects the artifact's
        own columns by name): a bundle with a new ``feat_*`` column, or a riskgraph release
        that computes a new behaviour feature, keeps scoring with the deployed model until
        the next ``riskgraph train`` picks them up."""
        got = features.feature_names()
        for nt, names in self.feature_names.items():
            have = set(got.get(nt) or [])
            missing = [name for name in names if name not in have]
            if missing:
                raise FeatureMismatchError(
                    f"artifact {self.version} was trained on {nt} features the graph lacks: "
                    f"{', '.join(missing)}; retrain with `riskgraph train`"
                )
        trained_on = self.config.get("text_model")
        if trained_on is not None and features.text_model != trained_on:
            raise FeatureMismatchError(
                f"artifact {self.version} was trained on review embeddings from {trained_on}, "
                f"the graph's come from {features.text_model or 'no review encoder'}; set "
                "RISKGRAPH_REVIEW_MODEL / RISKGRAPH_ENCODE_INT8 as they were at training, or "
                "retrain with `riskgraph train`"
            )
        for nt, emb in features.embeddings.items():
            label_inputs = len(LABEL_INPUTS) if nt == "user" else 0
            want = self.config["in_dims"][nt] - len(self.feature_names[nt]) - label_inputs
            if emb.shape[1] != want:
                raise FeatureMismatchError(
                    f"{nt} text embeddings have width {emb.shape[1]}, the artifact expects {want} "
                    "(a different review model?)"
                )


def save_artifact(
    result: TrainResult, scale: ScoreScale, artifact_dir: Path, extra: dict[str, Any]
) -> Path:
    """Write the artifact and point ``LATEST`` at it; return its folder."""
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    config = {
        "in_dims": result.in_dims,
        "edge_types": [list(et) for et in result.edge_types],
        "edge_dims": [[*et, d] for et, d in result.edge_dims.items()],
        "train": asdict(result.config),
        # 1: a single model; more: a RiskEnsemble (seed members or cross-fitted fold models)
        "numeric": numeric_shapes(result.model),
        "members": len(result.model.members) if isinstance(result.model, RiskEnsemble) else 1,
        "feature_names": result.feature_names,
        "text_model": result.text_model,
        "normaliser": result.normaliser.to_dict(),
        "calibrators": {k: asdict(v) for k, v in result.calibrators.items()},
        "scale": scale.to_dict(),
        "metrics": result.metrics,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for key in sorted(state):
        digest.update(state[key].numpy().tobytes())
    version = digest.hexdigest()[:12]
    config["version"] = version
    folder = artifact_dir / version
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
    (artifact_dir / "LATEST").write_text(version + "\n")
    return folder


def load_artifact(artifact_dir: Path, version: str | None = None) -> ModelArtifact:
    """Load ``version`` (default: LATEST) from ``artifact_dir``."""
    if version is None:
        latest = artifact_dir / "LATEST"
        if not latest.exists():
            raise FileNotFoundError(f"no trained model in {artifact_dir}; run `riskgraph train`")
        version = latest.read_text().strip()
    folder = artifact_dir / version
    config = json.loads((folder / "config.json").read_text())
    train = config["train"]
    members = [
        HeteroRiskGNN(
            {k: int(v) for k, v in config["in_dims"].items()},
            [(str(s), str(r), str(d)) for s, r, d in config["edge_types"]],
            {(str(s), str(r), str(d)): int(w) for s, r, d, w in config.get("edge_dims", [])},
            hidden=train["hidden"],
            layers=train["layers"],
            dropout=train["dropout"],
            numeric_edges={
                nt: torch.zeros(columns, bins + 1)
                for nt, (columns, bins) in config.get("numeric", {}).items()
            },
        )
        for _ in range(int(config.get("members", train.get("ensemble", 1))))
    ]
    model: RiskModel = members[0] if len(members) == 1 else RiskEnsemble(members)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    model.eval()
    return ModelArtifact(
        version=version,
        model=model,
        normaliser=Normaliser.from_dict(config["normaliser"]),
        calibrators={k: PlattCalibrator(**v) for k, v in config["calibrators"].items()},
        scale=ScoreScale(**config["scale"]),
        feature_names=config["feature_names"],
        config=config,
        metrics=config["metrics"],
        path=folder,
    )
