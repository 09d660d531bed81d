"""Baselines fitted on the same split as the GNN, so ``train --compare`` is an honest table.

* logistic regression on each user's own features (behaviour + mean review embedding);
* gradient boosting on each user's own behaviour features;
* gradient boosting on neighbour-aggregated features: the user's own plus the mean features of
  its devices, of the other users on those devices, of the products it bought and of their
  merchants. GADBench found this tree-on-graph baseline beats most fraud GNNs.

Aggregation is a handful of sparse matrix products (scipy), linear in the number of edges.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from encoders.features import NodeFeatures, Normaliser
from graph import schema
from graph.export import GraphExport
from training.metrics import binary_metrics
from training.split import UserSplit

METRICS = ("auroc", "auprc", "recall_at_1pct_fpr", "ks")


def _adjacency(frame: pd.DataFrame, n_rows: int, n_cols: int) -> sp.csr_matrix:
    a = sp.coo_matrix(
        (np.ones(len(frame)), (frame["src"].to_numpy(np.int64), frame["dst"].to_numpy(np.int64))),
        shape=(n_rows, n_cols),
    ).tocsr()
    a.data[:] = 1.0  # repeated orders of one product count once
    return a


def _row_mean(a: sp.csr_matrix) -> sp.csr_matrix:
    deg = np.asarray(a.sum(axis=1)).ravel()
    return sp.diags(np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)) @ a


def neighbour_features(g: GraphExport, x: dict[str, np.ndarray]) -> np.ndarray:
    """Own user features followed by means over devices, co-device users, products, merchants.

    Shapes:
        x[nt]: (num_nodes[nt], d_nt) normalised scalar features → (num_users, sum of widths).
    """
    n = {nt: len(g.ids[nt]) for nt in g.ids}
    uses = _adjacency(g.edges[schema.USES_EDGE], n["user"], n["device"])
    bought = _adjacency(g.edges[schema.ORDERED_EDGE], n["user"], n["product"])
    sold_by = _adjacency(g.edges[schema.SOLD_BY_EDGE], n["product"], n["merchant"])
    co_device = (uses @ uses.T).tocsr()
    co_device.setdiag(0)
    co_device.eliminate_zeros()
    co_device.data[:] = 1.0
    merchants = (bought @ sold_by).tocsr()
    merchants.data[:] = 1.0
    parts = [
        x["user"],
        _row_mean(uses) @ x["device"],
        _row_mean(co_device) @ x["user"],
        _row_mean(bought) @ x["product"],
        _row_mean(merchants) @ x["merchant"],
    ]
    return np.hstack([np.asarray(p, dtype=np.float32) for p in parts])


def _scalars(features: NodeFeatures, normaliser: Normaliser) -> dict[str, np.ndarray]:
    return {nt: s.transform(features.scalars[nt]) for nt, s in normaliser.scalers.items()}


Factory = Callable[[], Any]


def _baselines(
    g: GraphExport, features: NodeFeatures, normaliser: Normaliser, seed: int
) -> dict[str, tuple[Factory, np.ndarray]]:
    """Baseline name -> (a fresh unfitted model, its feature matrix over every user)."""
    x = _scalars(features, normaliser)
    own = x["user"]
    own_text = (
        np.hstack([own, features.embeddings["user"]]) if "user" in features.embeddings else own
    )
    graph_x = neighbour_features(g, x)
    return {
        "logistic regression (own + text)": (
            lambda: LogisticRegression(max_iter=2000, class_weight="balanced"), own_text),
        "gradient boosting (own)": (
            lambda: HistGradientBoostingClassifier(random_state=seed), own),
        "gradient boosting (neighbour-aggregated)": (
            lambda: HistGradientBoostingClassifier(random_state=seed), graph_x),
    }  # fmt: skip


def model_scores(
    g: GraphExport,
    features: NodeFeatures,
    normaliser: Normaliser,
    split: UserSplit,
    gnn_scores: dict[str, np.ndarray],
    seed: int = 0,
) -> dict[tuple[str, str], np.ndarray]:
    """(head, model) -> score of every user: the GNN's and each baseline's, every baseline
    fitted on the observed training labels of ``split``.

    Args:
        gnn_scores: head -> the GNN's score for every user (any monotone transform works).
    """
    models = _baselines(g, features, normaliser, seed)
    scores: dict[tuple[str, str], np.ndarray] = {}
    for head in ("fraud", "default"):
        y = g.labels[head].to_numpy(np.float64)
        train = split.train[~np.isnan(y[split.train])]
        scores[(head, "hetero GNN")] = gnn_scores[head]
        for name, (make, matrix) in models.items():
            model = make().fit(matrix[train], y[train].astype(int))
            scores[(head, name)] = model.predict_proba(matrix)[:, 1]
    return scores


def oof_model_scores(
    g: GraphExport,
    features: NodeFeatures,
    normaliser: Normaliser,
    folds: np.ndarray,
    gnn_scores: dict[str, np.ndarray],
    seed: int = 0,
) -> dict[tuple[str, str], np.ndarray]:
    """Like :func:`model_scores`, cross-fitted on the GNN's folds: a labelled user's baseline
    score comes from the fold model that did not see its label (out-of-fold), every other
    user's is the mean of the fold models' (as the GNN's production ensemble).

    Args:
        folds: fold per user, -1 where not labelled (``TrainResult.folds``).
        gnn_scores: head -> the GNN's score for every user: out-of-fold where labelled.
    """
    models = _baselines(g, features, normaliser, seed)
    k = int(folds.max()) + 1
    scores: dict[tuple[str, str], np.ndarray] = {}
    for head in ("fraud", "default"):
        y = g.labels[head].to_numpy(np.float64)
        scores[(head, "hetero GNN")] = gnn_scores[head]
        for name, (make, matrix) in models.items():
            out = np.zeros(len(y))
            for fold in range(k):
                train = np.flatnonzero((folds >= 0) & (folds != fold) & ~np.isnan(y))
                p = make().fit(matrix[train], y[train].astype(int)).predict_proba(matrix)[:, 1]
                held_out = folds == fold
                out[held_out] = p[held_out]
                out[folds < 0] += p[folds < 0] / k
            scores[(head, name)] = out
    return scores


def compare(
    g: GraphExport,
    features: NodeFeatures,
    normaliser: Normaliser,
    split: UserSplit,
    gnn_scores: dict[str, np.ndarray],
    seed: int = 0,
    truth: dict[str, np.ndarray] | None = None,
    scores: dict[tuple[str, str], np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per (labels, head, model): AUROC, AUPRC, recall at 1% FPR and KS on test users.

    Every model is fitted on the observed training labels; the test users are scored against
    the observed labels and, when ``truth`` is given, also against the ground truth.

    Args:
        gnn_scores: head -> the GNN's score for every user (any monotone transform works).
        truth: head -> true label of every user (a generated marketplace's ``truth.csv``).
        scores: every model's scores from :func:`model_scores`, when the caller already has
            them (the baselines are then not fitted again).
    """
    if scores is None:
        scores = model_scores(g, features, normaliser, split, gnn_scores, seed)
    observed = {head: g.labels[head].to_numpy(np.float64) for head in ("fraud", "default")}
    label_sets = {"observed": observed, **({"truth": truth} if truth is not None else {})}
    rows = []
    for against, labels in label_sets.items():
        for (head, name), score in scores.items():
            y = np.asarray(labels[head], dtype=np.float64)
            test = split.test[~np.isnan(y[split.test])]
            m = binary_metrics(y[test], score[test])
            rows.append({"labels": against, "head": head, "model": name,
                         **{k: m[k] for k in METRICS}})  # fmt: skip
    return pd.DataFrame(rows)
