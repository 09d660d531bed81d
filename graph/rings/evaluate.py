"""Rings against planted truth: ring-level precision/recall/F1, member level, per typology.

A planted ring counts as found when some detected ring has Jaccard >= ``min_jaccard`` with it;
a detected ring counts as correct when it has Jaccard >= ``min_jaccard`` with a planted one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _sets(frame: pd.DataFrame) -> dict[str, set[str]]:
    return {str(k): set(map(str, v)) for k, v in frame.groupby("ring_id")["user_id"]}


def _best_jaccard(pool_from: dict[str, set[str]], pool_to: dict[str, set[str]]) -> dict[str, float]:
    """For each set in ``pool_from``, its best Jaccard with a set of ``pool_to`` (via shared users)."""
    owner: dict[str, list[str]] = {}
    for key, users in pool_to.items():
        for u in users:
            owner.setdefault(u, []).append(key)
    out: dict[str, float] = {}
    for key, users in pool_from.items():
        candidates = {k for u in users for k in owner.get(u, [])}
        out[key] = max(
            (len(users & pool_to[c]) / len(users | pool_to[c]) for c in candidates), default=0.0
        )
    return out


def match_planted(
    detected: pd.DataFrame,
    planted: pd.DataFrame,
    typology: pd.Series | None = None,
    min_jaccard: float = 0.5,
) -> dict[str, float]:
    """Ring and member precision/recall, and ring recall per typology.

    Args:
        detected / planted: frames with ``ring_id`` and ``user_id`` (one row per membership).
        typology: optional planted ``ring_id`` -> typology name; adds ``recall_<typology>``.
    """
    det, truth = _sets(detected), _sets(planted)
    found = _best_jaccard(truth, det)
    correct = _best_jaccard(det, truth)
    n_found = sum(v >= min_jaccard for v in found.values())
    n_correct = sum(v >= min_jaccard for v in correct.values())
    recall = n_found / len(truth) if truth else float("nan")
    precision = n_correct / len(det) if det else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    det_users = set().union(*det.values()) if det else set()
    true_users = set().union(*truth.values()) if truth else set()
    out = {
        "planted": float(len(truth)), "detected": float(len(det)), "found": float(n_found),
        "recall": recall, "precision": precision, "f1": f1,
        "member_precision": len(det_users & true_users) / len(det_users) if det_users else np.nan,
        "member_recall": len(det_users & true_users) / len(true_users) if true_users else np.nan,
    }  # fmt: skip
    if typology is not None:
        kinds = typology.reindex(list(truth)).fillna("unknown")
        for kind, ids in kinds.groupby(kinds).groups.items():
            hits = [found[str(i)] >= min_jaccard for i in ids]
            out[f"recall_{kind}"] = float(np.mean(hits))
            out[f"planted_{kind}"] = float(len(hits))
    return out


def ring_typologies(planted: pd.DataFrame, truth: pd.DataFrame) -> pd.Series:
    """Each planted ring's typology: the most common ``typology`` of its members in ``truth``."""
    merged = planted.merge(truth[["user_id", "typology"]], on="user_id", how="left")
    return merged.groupby("ring_id")["typology"].agg(
        lambda s: s.mode().iloc[0] if s.notna().any() else "unknown"
    )
