"""The HTML page: one self-contained file (inline CSS and SVG, no script, no network).

Each section has a fixed ``id`` (``SECTIONS``) and each figure an ``id`` starting ``fig-``,
so tests (and links) can find them.
"""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np
import pandas as pd

from serving.report import figures
from serving.report.data import ReportData
from serving.report.stats import (
    DEFAULT_CUTOFF,
    PSI_MAJOR,
    PSI_MODERATE,
    bad_outcome,
    band_table,
    calibration_bins,
    drift_table,
    group_table,
    psi,
    psi_categorical,
    psi_flag,
)

SECTIONS = ("model-card", "performance", "calibration", "distribution", "bands", "reasons",
            "rings", "merchants", "drift", "fairness")  # fmt: skip
STYLE = """
body{font:13px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:22px} h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ddd;padding:2px 7px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start} .warn{background:#fde2e1;border:1px solid #c33;padding:8px}
.flag-major{background:#f8c7c4} .flag-moderate{background:#fbe7b5} .note{color:#666}
.ring-card{border:1px solid #ddd;padding:6px;width:270px} .ring-card p{margin:2px 0;font-size:11px}
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return "–"
        number = float(value)
        return f"{number:.3f}" if abs(number) < 10 else f"{number:,.0f}"
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    return escape(str(value))


def table(frame: pd.DataFrame, index: bool = True, table_id: str = "") -> str:
    """A plain HTML table; rows whose ``flag`` says shift are highlighted."""
    head = ([frame.index.name or ""] if index else []) + [str(c) for c in frame.columns]
    rows = []
    for idx, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        flag = str(getattr(row, "flag", ""))
        cls = ""
        if "major" in flag or "below" in flag:
            cls = ' class="flag-major"'
        elif "moderate" in flag:
            cls = ' class="flag-moderate"'
        cells = ([f"<td>{_fmt(idx)}</td>"] if index else []) + [f"<td>{_fmt(v)}</td>" for v in row]
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return (f"<table{ident}><tr>{''.join(f'<th>{escape(h)}</th>' for h in head)}</tr>"
            f"{''.join(rows)}</table>")  # fmt: skip


def section(ident: str, title: str, body: str) -> str:
    return f'<section id="{ident}"><h2>{escape(title)}</h2>{body}</section>'


def model_card(d: ReportData) -> str:
    m, run, users = d.model, d.current.run, d.current.users
    train = m.get("train", {})
    counts = pd.DataFrame({"count": pd.Series(d.graph_counts)})
    counts.index.name = "label / relation"
    labels = pd.DataFrame({
        head: {"positive": int((users[head] == 1).sum()), "negative": int((users[head] == 0).sum()),
               "unlabelled": int(users[head].isna().sum())} for head in ("fraud", "default")
    })  # fmt: skip
    labels.index.name = "label"
    evaluation = m.get("metrics", {}).get("evaluation") or train.get("split", "?")
    facts = pd.DataFrame({"value": {
        "run": run.run_id, "run at": run.at, "model version": run.version,
        "model created": m.get("created_at", "?"), "evaluation": evaluation,
        "split / folds": f"{train.get('split', '?')} / {train.get('folds', '?')}",
        "members": m.get("members", 1), "hidden, layers": f"{train.get('hidden')}, {train.get('layers')}",
        "epochs, lr": f"{train.get('epochs')}, {train.get('lr')}",
        "review encoder": m.get("text_model") or "none", "seed": train.get("seed", "?"),
        "users scored": f"{len(users):,}",
    }})  # fmt: skip
    facts.index.name = "model"
    return table(facts) + '<div class="figs">' + table(counts) + table(labels) + "</div>"


def performance(d: ReportData) -> tuple[str, str]:
    if d.evaluation is None:
        missing = ('<p class="note">no evaluation data beside the model (trained before the '
                   "report existed): retrain with <code>riskgraph train --compare</code></p>")  # fmt: skip
        return missing, missing
    perf, calib = [], []
    for head in ("fraud", "default"):
        if f"{head}:hetero GNN" not in d.evaluation or d.evaluation[head].nunique() < 2:
            continue
        roc, pr = figures.roc_pr(d.evaluation, head)
        perf += [roc, pr]
        y = d.evaluation[head].to_numpy(np.float64)
        bins, ece = calibration_bins(y, d.evaluation[f"{head}:hetero GNN"].to_numpy(np.float64))
        calib.append(figures.calibration(bins, ece, head))
    n = len(d.evaluation)
    note = (f'<p class="note">{n:,} evaluated users (out-of-fold or held out); baselines shown '
            "when trained with <code>--compare</code></p>")  # fmt: skip
    return (note + f'<div class="figs">{"".join(perf)}</div>',
            f'<div class="figs">{"".join(calib)}</div>')  # fmt: skip


def distribution(users: pd.DataFrame) -> str:
    bad = bad_outcome(users)
    score = users["credit_score"].to_numpy(np.float64)
    groups = {"bad": score[bad == 1], "good": score[bad == 0], "unlabelled": score[np.isnan(bad)]}
    return figures.histograms(groups, "fig-score-by-outcome", "credit score by outcome",
                              "credit score")  # fmt: skip


def reasons(users: pd.DataFrame, cutoff: float) -> str:
    declined = users[users["credit_score"] < cutoff]
    counts = declined["top_reason"].replace("", np.nan).dropna().value_counts().head(12)
    if counts.empty:
        return '<p class="note">no declined user has a reason</p>'
    return figures.bars(counts, "fig-reasons", f"first reason of users below {cutoff:.0f}",
                        "users")  # fmt: skip


def ring_gallery(d: ReportData) -> str:
    if d.rings.empty:
        return '<p class="note">no open rings (run <code>riskgraph rings</code>)</p>'
    info = d.rings.set_index("ring_id")
    cards = []
    for drawing in d.gallery:
        r = info.loc[drawing.ring_id]
        evidence = ", ".join(f"{k[9:]} {int(v)}" for k, v in r.items()
                             if str(k).startswith("evidence_") and pd.notna(v) and v)  # fmt: skip
        cards.append(
            f'<div class="ring-card">{figures.ring_svg(drawing)}<p><b>{escape(drawing.ring_id)}'
            f"</b> ({escape(str(r['status']))}), {int(r['size'])} members, mean risk "
            f"{float(r['risk_mean']):.2f}</p><p>exposure {float(r['exposure_amount'] or 0):,.2f}, "
            f"chargebacks {float(r['chargeback_amount'] or 0):,.2f}</p>"
            f"<p>evidence links: {escape(evidence) or 'none'}</p></div>"
        )
    legend = ('<p class="note">circles: members (green low risk, red high); squares: devices; '
              "diamonds: merchants at the ring's centre</p>")  # fmt: skip
    shown = ["ring_id", "status", "size", "risk_mean", "exposure_amount", "chargeback_amount"]
    top = d.rings[shown].head(20).set_index("ring_id")
    return legend + f'<div class="figs">{"".join(cards)}</div>' + table(top, table_id="ring-table")


def drift(d: ReportData) -> str:
    if d.previous is None:
        return '<p class="note">first complete run with saved data: nothing to compare yet</p>'
    cur, prev = d.current, d.previous
    feats = [c for c in cur.users.columns if c.startswith("f_")]
    features = drift_table(cur.users, prev.users, feats).head(10)
    rows = [
        ("credit score", psi(prev.users["credit_score"].to_numpy(), cur.users["credit_score"].to_numpy())),
        ("fraud probability", psi(prev.users["risk_score"].to_numpy(), cur.users["risk_score"].to_numpy())),
        ("risk band", psi_categorical(prev.users["risk_band"], cur.users["risk_band"])),
        ("user degree: devices", psi(prev.users["deg_devices"].to_numpy(), cur.users["deg_devices"].to_numpy())),
        ("user degree: merchants", psi(prev.users["deg_merchants"].to_numpy(), cur.users["deg_merchants"].to_numpy())),
        ("device degree: users", psi(prev.devices["users"].to_numpy(), cur.devices["users"].to_numpy())),
        ("merchant degree: orders", psi(prev.merchants["orders"].to_numpy(), cur.merchants["orders"].to_numpy())),
    ]  # fmt: skip
    if cur.rings is not None and prev.rings is not None:
        rows.append(("ring sizes", psi_categorical(prev.rings["size"].astype(str),
                                                   cur.rings["size"].astype(str))))  # fmt: skip
    shape = pd.DataFrame([{"what": w, "psi": v, "flag": psi_flag(v)} for w, v in rows])
    score_fig = figures.histograms(
        {f"previous ({prev.run.run_id})": prev.users["credit_score"].to_numpy(np.float64),
         f"this run ({cur.run.run_id})": cur.users["credit_score"].to_numpy(np.float64)},
        "fig-drift-score", "credit score, this run vs previous", "credit score",
    )  # fmt: skip
    return (f'<p class="note">population stability index against run {escape(prev.run.run_id)} '
            f"(model {escape(prev.run.version)}); flagged at {PSI_MODERATE} (moderate) and "
            f"{PSI_MAJOR} (major)</p>" + table(shape.set_index("what"), table_id="drift-shape")
            + f"<h3>top features by PSI</h3>{table(features.set_index('what'), table_id='drift-features')}"
            + score_fig)  # fmt: skip


def fairness(users: pd.DataFrame, cutoff: float) -> str:
    parts = [f'<p class="note">approval: credit score ≥ {cutoff:.0f}; disparate impact: a '
             "group's approval rate over the best-approved group's (flagged below 0.8); bad "
             "rate among labelled users</p>"]  # fmt: skip
    for col, title in (("country", "by country"), ("age_group", "by account age"),
                       ("neighbour_group", "by the country most of a user's device and "
                        "merchant neighbours come from (mixed: no 60% majority)")):  # fmt: skip
        parts.append(f"<h3>{escape(title)}</h3>" + table(group_table(users, col, cutoff),
                                                          table_id=f"fairness-{col}"))  # fmt: skip
    score = users["credit_score"].to_numpy(np.float64)
    figs = []
    for col in ("country", "age_group"):
        top = users[col].value_counts().head(6).index
        groups = {str(g): score[(users[col] == g).to_numpy()] for g in top}
        figs.append(figures.histograms(groups, f"fig-fairness-{col}",
                                       f"credit score by {col.replace('_', ' ')}", "credit score"))  # fmt: skip
    return "".join(parts) + f'<div class="figs">{"".join(figs)}</div>'


def render(d: ReportData, cutoff: float = DEFAULT_CUTOFF) -> str:
    """The whole page."""
    users = d.current.users
    perf, calib = performance(d)
    bands = band_table(users, cutoff)
    merchants = d.current.merchants.sort_values("risk_score", ascending=False).head(15)
    merchant_table = table(merchants.set_index("merchant_id"), table_id="merchant-table")
    body = [
        section("model-card", "Model card", model_card(d)),
        section("performance", "ROC and precision-recall, with baselines", perf),
        section("calibration", "Calibration", calib),
        section("distribution", "Score distribution by outcome", distribution(users)),
        section("bands", "Risk bands", table(bands, table_id="band-table")),
        section("reasons", "Most frequent reasons", reasons(users, cutoff)),
        section("rings", "Ring gallery", ring_gallery(d)),
        section("merchants", "Riskiest merchants", merchant_table),
        section("drift", "Drift against the previous run", drift(d)),
        section("fairness", "Fairness", fairness(users, cutoff)),
    ]
    warn = f'<p class="warn" id="run-warning">{escape(d.warning)}</p>' if d.warning else ""
    title = f"riskgraph run {d.current.run.run_id}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
            f"</title><style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{warn}"
            f"{''.join(body)}</body></html>")  # fmt: skip
