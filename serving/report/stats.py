"""The report's numbers, kept apart from drawing so they can be tested on planted data.

Population stability index (PSI) for drift, the band and fairness tables, calibration bins.
Everything is vectorised over users (pandas group-bys, numpy histograms).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
PSI_FLOOR = 1e-4  # share given to an empty bin, so a bin seen on one side only stays finite
DEFAULT_CUTOFF = 580  # approve at credit score >= this: the "medium" band and better
FOUR_FIFTHS = 0.8  # disparate-impact ratio below this is flagged (the four-fifths rule)


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """PSI of ``actual`` against ``expected``: sum over bins of (a - e) * ln(a / e).

    Bins are ``expected``'s deciles (fewer when values repeat), open at both ends, so a shift
    beyond the old range lands in the outer bins. NaNs are dropped.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    e, a = e[~np.isnan(e)], a[~np.isnan(a)]
    if len(e) == 0 or len(a) == 0:
        return float("nan")
    edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1)[1:-1]))
    e_share = np.bincount(np.searchsorted(edges, e, side="right"), minlength=len(edges) + 1)
    a_share = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1)
    return _psi_shares(e_share / len(e), a_share / len(a))


def psi_categorical(expected: pd.Series, actual: pd.Series) -> float:
    """PSI over the categories of either side (ring sizes, bands)."""
    e = expected.value_counts(normalize=True)
    a = actual.value_counts(normalize=True)
    cats = e.index.union(a.index)
    if len(cats) == 0:
        return float("nan")
    return _psi_shares(e.reindex(cats, fill_value=0).to_numpy(),
                       a.reindex(cats, fill_value=0).to_numpy())  # fmt: skip


def _psi_shares(e: np.ndarray, a: np.ndarray) -> float:
    e = np.maximum(e, PSI_FLOOR)
    a = np.maximum(a, PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_flag(value: float) -> str:
    if np.isnan(value):
        return "n/a"
    if value >= PSI_MAJOR:
        return "major shift"
    return "moderate shift" if value >= PSI_MODERATE else "stable"


def bad_outcome(users: pd.DataFrame) -> np.ndarray:
    """1 where a user is known fraud or in default, 0 where known good, NaN where unlabelled."""
    labels = users[["fraud", "default"]].to_numpy(np.float64)
    known = ~np.isnan(labels).all(axis=1)
    out = np.full(len(users), np.nan)
    out[known] = np.nanmax(labels[known], axis=1)
    return out


def group_table(
    users: pd.DataFrame, group: str, cutoff: float = DEFAULT_CUTOFF, min_n: int = 30
) -> pd.DataFrame:
    """Per group: users, labelled, bad rate, approval rate at ``cutoff``, score quartiles and
    the disparate-impact ratio (approval rate over the best-approved group's, among groups of
    at least ``min_n`` users; smaller groups are listed but not compared)."""
    frame = pd.DataFrame({
        "group": users[group].astype(str).to_numpy(),
        "bad": bad_outcome(users),
        "approved": (users["credit_score"].to_numpy(np.float64) >= cutoff).astype(float),
        "score": users["credit_score"].to_numpy(np.float64),
    })  # fmt: skip
    g = frame.groupby("group", sort=True)
    table = pd.DataFrame({
        "users": g.size(),
        "labelled": g["bad"].count(),
        "bad_rate": g["bad"].mean(),
        "approval_rate": g["approved"].mean(),
        "score_p25": g["score"].quantile(0.25),
        "score_median": g["score"].median(),
        "score_p75": g["score"].quantile(0.75),
    })  # fmt: skip
    big = table["users"] >= min_n
    reference = table.loc[big, "approval_rate"].max() if big.any() else np.nan
    ratio = table["approval_rate"] / reference if reference and reference > 0 else np.nan
    table["disparate_impact"] = np.where(big, ratio, np.nan)
    table["flag"] = np.where(
        ~big, "few users", np.where(table["disparate_impact"] < FOUR_FIFTHS, "below 4/5", "")
    )
    return table.sort_values("users", ascending=False)


def band_table(users: pd.DataFrame, cutoff: float = DEFAULT_CUTOFF) -> pd.DataFrame:
    """Per risk band (best first): users, share, labelled, bad rate, approval rate."""
    table = group_table(users, "risk_band", cutoff, min_n=0)
    table = table.sort_values("score_median", ascending=False)
    table["share"] = table["users"] / table["users"].sum()
    return table[["users", "share", "labelled", "bad_rate", "approval_rate", "score_median"]]


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Equal-width bins of predicted probability: mean prediction, observed rate, users; and
    the expected calibration error (users-weighted mean gap)."""
    known = ~np.isnan(y)
    y, p = y[known], np.clip(p[known], 0.0, 1.0)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": idx, "y": y, "p": p}).groupby("bin")
    table = pd.DataFrame({"predicted": frame["p"].mean(), "observed": frame["y"].mean(),
                          "users": frame.size()})  # fmt: skip
    ece = float((table["users"] * (table["predicted"] - table["observed"]).abs()).sum()
                / max(len(y), 1))  # fmt: skip
    return table, ece


def drift_table(current: pd.DataFrame, previous: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """PSI of each column (numbers binned, strings by category), sorted by PSI, flagged."""
    rows = []
    for col in columns:
        if col not in current.columns or col not in previous.columns:
            continue
        cur, prev = current[col], previous[col]
        if pd.api.types.is_numeric_dtype(cur) and pd.api.types.is_numeric_dtype(prev):
            value = psi(prev.to_numpy(np.float64), cur.to_numpy(np.float64))
        else:
            value = psi_categorical(prev.astype(str), cur.astype(str))
        rows.append({"what": col, "psi": value, "flag": psi_flag(value)})
    table = pd.DataFrame(rows, columns=["what", "psi", "flag"])
    return table.sort_values("psi", ascending=False, na_position="last")
