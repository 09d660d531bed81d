"""The data a run leaves for the report, in files beside the model and under the state folder.

* ``<artifact>/evaluation.parquet`` (written by ``train``): the evaluated users (out-of-fold,
  or the held-out test part), their observed labels, the GNN's calibrated probabilities and
  each baseline's score (``<head>:<model>``).
* ``<state>/runs/<run_id>/users.parquet`` (``score``): per user the score, band, first reason
  code, labels, country, account-age group, neighbourhood group, degrees and the behaviour
  features (for drift); ``merchants.parquet``, ``devices.parquet`` (degrees, risk) and
  ``run.json``; ``rings.parquet`` once ``rings`` ran on that run's scores.

No bundle id is written into a file name, only into the Parquet files (private, like the
rest of the state folder).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    from graph.export import GraphExport
    from serving.pipeline import GraphContext
    from training.artifact import ModelArtifact
    from training.fit import TrainResult
    from training.predict import Scores

EVALUATION = "evaluation.parquet"
AGE_EDGES = (30.0, 90.0, 365.0)
AGE_GROUPS = ("<30 days", "30-90 days", "90-365 days", ">1 year")
# A user's neighbourhood is "mostly" one country when this share of its device and merchant
# neighbours' customers come from it.
NEIGHBOUR_MAJORITY = 0.6


def age_group(days: np.ndarray) -> np.ndarray:
    """Account-age group names (``AGE_GROUPS``) for ages in days."""
    return np.asarray(AGE_GROUPS, dtype=object)[np.searchsorted(AGE_EDGES, days, side="right")]


def _incidence(src: np.ndarray, dst: np.ndarray, n_src: int, n_dst: int) -> sp.csr_matrix:
    a = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n_src, n_dst))
    a.data[:] = 1.0  # a user ordering twice from one merchant counts once
    return a


def _row_normalise(a: sp.csr_matrix) -> sp.csr_matrix:
    s = np.asarray(a.sum(axis=1)).ravel()
    return sp.diags(np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)) @ a


def neighbour_group(
    users_devices: sp.csr_matrix, users_merchants: sp.csr_matrix, group: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per user: the group most of its neighbours belong to, and that group's share.

    A user's neighbours are the other customers of its devices and merchants; each device and
    merchant contributes its customers' group shares. Users whose majority share is below
    ``NEIGHBOUR_MAJORITY`` (or who have no neighbours) get ``"mixed"``.
    """
    codes, names = pd.factorize(pd.Series(group).fillna("unknown"))
    onehot = sp.csr_matrix(
        (np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), len(names))
    )
    share = sp.csr_matrix((len(codes), len(names)))
    for a in (users_devices, users_merchants):
        composition = _row_normalise((a.T @ onehot).tocsr())  # entity -> its users' groups
        share = share + _row_normalise(a) @ composition
    share = _row_normalise(share.tocsr()).toarray()
    top = share.argmax(axis=1)
    top_share = share[np.arange(len(top)), top] if len(top) else np.zeros(0)
    out = np.asarray(names, dtype=object)[top] if len(names) else np.zeros(0, dtype=object)
    out = np.where(top_share >= NEIGHBOUR_MAJORITY, out, "mixed")
    return out, top_share


def user_table(ctx: GraphContext, scores: Scores) -> pd.DataFrame:
    """The per-user frame of a run (see the module docstring)."""
    g = ctx.graph
    n_users = len(g.ids["user"])
    uses = g.edges[("user", "uses", "device")]
    ud = _incidence(uses["src"].to_numpy(np.int64), uses["dst"].to_numpy(np.int64),
                    n_users, len(g.ids["device"]))  # fmt: skip
    orders = g.edges[("user", "ordered", "product")]
    merchant = g.merchant_of_product()[orders["dst"].to_numpy(np.int64)]
    ok = merchant >= 0
    um = _incidence(orders["src"].to_numpy(np.int64)[ok], merchant[ok], n_users,
                    len(g.ids["merchant"]))  # fmt: skip
    country = g.nodes["user"]["country"].fillna("unknown").to_numpy(object)
    scalars = ctx.features.scalars["user"]
    age = scalars["account_age_days"].to_numpy(np.float64) if "account_age_days" in scalars \
        else np.full(n_users, np.nan)  # fmt: skip
    neigh, neigh_share = neighbour_group(ud, um, country)
    frame = scores.frame
    codes = frame["reason_codes"].map(lambda c: c[0] if len(c) else "")
    table = pd.DataFrame(
        {
            "user_id": frame["user_id"].to_numpy(object),
            "risk_score": frame["risk_score"].to_numpy(np.float64),
            "bad_probability": frame["bad_probability"].to_numpy(np.float64),
            "credit_score": frame["credit_score"].to_numpy(np.float64),
            "risk_band": frame["risk_band"].to_numpy(object),
            "top_reason": codes.to_numpy(object),
            "fraud": g.labels["fraud"].to_numpy(np.float64),
            "default": g.labels["default"].to_numpy(np.float64),
            "country": country,
            "age_group": age_group(np.nan_to_num(age, nan=0.0)),
            "neighbour_group": neigh,
            "neighbour_share": neigh_share,
            "deg_devices": np.asarray(ud.sum(axis=1)).ravel(),
            "deg_merchants": np.asarray(um.sum(axis=1)).ravel(),
        }
    )
    feats = scalars.astype(np.float32).add_prefix("f_").reset_index(drop=True)
    return pd.concat([table, feats], axis=1)


def save_run_snapshot(
    folder: Path, run_id: str, artifact: ModelArtifact, ctx: GraphContext, scores: Scores
) -> Path:
    """Write a run's report data (idempotent: a resumed run overwrites its own files)."""
    folder.mkdir(parents=True, exist_ok=True)
    users = user_table(ctx, scores)
    users.to_parquet(folder / "users.parquet", index=False)
    g = ctx.graph
    uses = g.edges[("user", "uses", "device")]
    pd.DataFrame(
        {"device_id": g.ids["device"],
         "users": np.bincount(uses["dst"].to_numpy(np.int64), minlength=len(g.ids["device"]))}
    ).to_parquet(folder / "devices.parquet", index=False)  # fmt: skip
    orders = g.edges[("user", "ordered", "product")]
    m = g.merchant_of_product()[orders["dst"].to_numpy(np.int64)]
    pd.DataFrame(
        {"merchant_id": g.ids["merchant"], "risk_score": scores.merchant_risk,
         "orders": np.bincount(m[m >= 0], minlength=len(g.ids["merchant"]))}
    ).to_parquet(folder / "merchants.parquet", index=False)  # fmt: skip
    meta = {"run_id": run_id, "version": artifact.version, "artifact": str(artifact.path)}
    (folder / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def save_rings(folder: Path, rings: pd.DataFrame) -> None:
    """The ring table written by ``rings`` for this run (sizes and risk, for drift)."""
    if folder.exists():
        keep = [
            c
            for c in ("ring_id", "size", "risk_mean", "exposure_amount", "status")
            if c in rings.columns
        ]
        rings[keep].to_parquet(folder / "rings.parquet", index=False)


def evaluation_frame(
    result: TrainResult, g: GraphExport, baselines: dict[tuple[str, str], np.ndarray] | None
) -> pd.DataFrame:
    """The evaluated users' labels, GNN probabilities and baseline scores (see module doc)."""
    logits = result.oof_logits if result.oof_logits else result.logits
    test = np.asarray(result.split.test, dtype=np.int64)
    frame: dict[str, Any] = {"user_id": np.asarray(g.ids["user"], dtype=object)[test]}
    for head in ("fraud", "default"):
        frame[head] = g.labels[head].to_numpy(np.float64)[test]
        if head not in logits:
            continue
        frame[f"{head}:hetero GNN"] = result.calibrators[head](np.asarray(logits[head])[test])
        for (h, name), score in (baselines or {}).items():
            if h == head and name != "hetero GNN":
                frame[f"{head}:{name}"] = np.asarray(score, dtype=np.float64)[test]
    return pd.DataFrame(frame)


def save_evaluation(folder: Path, frame: pd.DataFrame) -> None:
    """``evaluation.parquet`` beside the artifact."""
    frame.to_parquet(folder / EVALUATION, index=False)
