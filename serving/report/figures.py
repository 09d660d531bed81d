"""The report's figures as inline SVG strings (matplotlib's SVG backend; rings drawn by hand).

Inline SVG keeps the page one self-contained file that opens without a network; text stays
text (``svg.fonttype: none``) so the page stays small. Matplotlib is imported on first use.
"""

from __future__ import annotations

import base64
import io
import math
import re
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SIZE = (4.6, 3.4)
INLINE_FORMAT = "svg"  # or "png": raster figures, the bench's baseline
_METADATA = re.compile(r"<metadata>.*?</metadata>", re.S)
GNN = "hetero GNN"


def _figure(size: tuple[float, float] = SIZE) -> tuple[Figure, Axes]:
    import matplotlib

    matplotlib.use("svg", force=True)
    matplotlib.rcParams.update({"svg.fonttype": "none", "font.size": 8, "axes.titlesize": 9})
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.add_subplot()


def to_svg(fig: Figure, figure_id: str) -> str:
    """The figure as an ``<svg>`` element with ``id=figure_id`` (no XML prologue).

    With ``INLINE_FORMAT = "png"`` (``bench/report_bench.py``'s baseline) it is a base64
    ``<img>`` instead.
    """
    fig.tight_layout()
    if INLINE_FORMAT == "png":
        raw = io.BytesIO()
        fig.savefig(raw, format="png", dpi=110)
        data = base64.b64encode(raw.getvalue()).decode()
        return f'<img id="{figure_id}" class="figure" src="data:image/png;base64,{data}">'
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = _METADATA.sub("", buf.getvalue())  # dates and licence links: size, no content
    start = text.index("<svg")
    return f'<svg id="{figure_id}" class="figure"' + text[start + 4 :]


def roc_pr(evaluation: pd.DataFrame, head: str) -> tuple[str, str]:
    """ROC and precision-recall curves of every model of ``head`` (the GNN in bold)."""
    y = evaluation[head].to_numpy(np.float64)
    known = ~np.isnan(y)
    models = [c.split(":", 1)[1] for c in evaluation.columns if c.startswith(f"{head}:")]
    roc_fig, roc = _figure()
    pr_fig, pr = _figure()
    for name in sorted(models, key=lambda m: m != GNN):
        score = evaluation[f"{head}:{name}"].to_numpy(np.float64)[known]
        width = 2.2 if name == GNN else 1.0
        fpr, tpr, precision, recall = curves(y[known], score)
        roc.plot(*_thin(fpr, tpr), lw=width, label=name)
        pr.plot(*_thin(recall, precision), lw=width, label=name)
    roc.plot([0, 1], [0, 1], ls=":", c="grey", lw=0.8, label="chance")
    pr.axhline(float(np.mean(y[known])) if known.any() else 0, ls=":", c="grey", lw=0.8,
               label="base rate")  # fmt: skip
    roc.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"ROC, {head}")
    pr.set(xlabel="recall", ylabel="precision", title=f"precision-recall, {head}")
    for ax in (roc, pr):
        ax.legend(fontsize=7, loc="lower right" if ax is roc else "lower left")  # PR: empty corner
    return to_svg(roc_fig, f"fig-roc-{head}"), to_svg(pr_fig, f"fig-pr-{head}")


def curves(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, ...]:
    """ROC (fpr, tpr) and precision-recall (precision, recall) points, one per distinct score.

    The same points as scikit-learn's ``roc_curve(drop_intermediate=False)`` and
    ``precision_recall_curve``, from one sort in numpy: importing scikit-learn for them cost
    the report command about 3 s of its 15 (measured on a 100k-user run, loaded machine).
    """
    order = np.argsort(-score, kind="mergesort")
    ranked, truth = score[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # last of each score
    tps = np.cumsum(truth)[last]
    fps = (last + 1) - tps
    fpr = np.r_[0.0, fps] / (fps[-1] if fps[-1] else 1.0)
    tpr = np.r_[0.0, tps] / (tps[-1] if tps[-1] else 1.0)
    flagged = tps + fps
    precision = np.divide(tps, flagged, out=np.zeros(len(tps)), where=flagged != 0)
    recall = tps / tps[-1] if tps[-1] else np.ones(len(tps))
    return fpr, tpr, np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]


def _thin(x: np.ndarray, y: np.ndarray, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` points of a curve (a million-user curve would make a huge SVG)."""
    if len(x) <= points:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, points).astype(int))
    return x[keep], y[keep]


def calibration(table: pd.DataFrame, ece: float, head: str) -> str:
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=0.8, label="perfect")
    ax.plot(table["predicted"], table["observed"], marker="o", label=f"GNN (ECE {ece:.3f})")
    ax.set(xlabel="predicted probability", ylabel="observed rate",
           title=f"calibration, {head} (out-of-fold)")  # fmt: skip
    ax.legend(fontsize=7)
    return to_svg(fig, f"fig-calibration-{head}")


def histograms(
    groups: dict[str, np.ndarray], figure_id: str, title: str, xlabel: str, bins: int = 40
) -> str:
    """Overlaid density histograms (one per group), shared bins."""
    fig, ax = _figure()
    values = [v[~np.isnan(v)] for v in groups.values()]
    allv = np.concatenate(values) if values else np.zeros(0)
    edges = [float(e) for e in (np.histogram_bin_edges(allv, bins=bins) if len(allv)
                                else np.linspace(0, 1, bins))]  # fmt: skip
    for (name, _), v in zip(groups.items(), values, strict=True):
        if len(v):
            ax.hist(
                v, bins=edges, density=True, histtype="step", lw=1.4, label=f"{name} ({len(v):,})"
            )
    ax.set(xlabel=xlabel, ylabel="density", title=title)
    ax.legend(fontsize=7)
    return to_svg(fig, figure_id)


def bars(values: pd.Series, figure_id: str, title: str, xlabel: str) -> str:
    """Horizontal bars, largest on top."""
    fig, ax = _figure((4.6, max(1.6, 0.22 * len(values) + 0.8)))
    ax.barh(range(len(values)), values.to_numpy()[::-1], color="#4878a8")
    ax.set_yticks(range(len(values)), [str(i) for i in values.index[::-1]], fontsize=7)
    ax.set(xlabel=xlabel, title=title)
    return to_svg(fig, figure_id)


@dataclass
class RingDrawing:
    """One ring for the gallery: members with risk, the devices and merchants at its centre,
    and which member touches which centre."""

    ring_id: str
    members: pd.DataFrame  # user_id, risk
    centres: pd.DataFrame  # kind ("Device"/"Merchant"), id
    edges: pd.DataFrame  # user_id, id (a centre)


def _risk_colour(risk: float) -> str:
    """Green (0) through amber to red (1)."""
    r = min(max(risk, 0.0), 1.0)
    red, green = int(60 + 195 * r), int(170 - 120 * r)
    return f"#{red:02x}{green:02x}40"


def ring_svg(ring: RingDrawing, width: int = 260, max_members: int = 40) -> str:
    """Members on an outer circle (coloured by risk), centres inside (squares: devices,
    diamonds: merchants), a line for each member–centre tie. Hand-written SVG: a few KB."""
    members = ring.members.sort_values("risk", ascending=False).head(max_members)
    centres = ring.centres.head(12)
    cx = cy = width / 2
    pos: dict[str, tuple[float, float]] = {}
    for i, uid in enumerate(members["user_id"]):
        a = 2 * math.pi * i / max(len(members), 1)
        pos[f"u:{uid}"] = (cx + 0.42 * width * math.cos(a), cy + 0.42 * width * math.sin(a))
    for i, cid in enumerate(centres["id"]):
        a = 2 * math.pi * i / max(len(centres), 1) + 0.3
        rad = 0.16 * width if len(centres) > 1 else 0.0
        pos[f"c:{cid}"] = (cx + rad * math.cos(a), cy + rad * math.sin(a))
    parts = [f'<svg class="ring" data-ring="{escape(ring.ring_id)}" width="{width}" '
             f'height="{width}" viewBox="0 0 {width} {width}" xmlns="http://www.w3.org/2000/svg">']  # fmt: skip
    for uid, cid in ring.edges[["user_id", "id"]].itertuples(index=False):
        p, q = pos.get(f"u:{uid}"), pos.get(f"c:{cid}")
        if p and q:
            parts.append(f'<line x1="{p[0]:.1f}" y1="{p[1]:.1f}" x2="{q[0]:.1f}" '
                         f'y2="{q[1]:.1f}" stroke="#999" stroke-width="0.7"/>')  # fmt: skip
    for kind, cid in centres[["kind", "id"]].itertuples(index=False):
        x, y = pos[f"c:{cid}"]
        title = f"<title>{escape(str(kind))} {escape(str(cid))}</title>"
        if kind == "Device":
            parts.append(f'<rect x="{x - 6:.1f}" y="{y - 6:.1f}" width="12" height="12" '
                         f'fill="#555">{title}</rect>')  # fmt: skip
        else:
            parts.append(f'<polygon points="{x:.1f},{y - 8:.1f} {x + 8:.1f},{y:.1f} '
                         f'{x:.1f},{y + 8:.1f} {x - 8:.1f},{y:.1f}" fill="#7a4fa0">{title}</polygon>')  # fmt: skip
    for uid, risk in members[["user_id", "risk"]].itertuples(index=False):
        x, y = pos[f"u:{uid}"]
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{_risk_colour(float(risk))}" '
                     f'stroke="#333" stroke-width="0.5"><title>{escape(str(uid))} '
                     f"risk {float(risk):.2f}</title></circle>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)
