"""The metrics table that ``train``, ``backtest`` and the demo print, and the split guard's lines."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

LABEL_SETS = (
    ("observed labels", None),
    ("ground truth", "truth"),
    ("truth, users without a label (production scores)", "unlabeled_truth"),
)


def _ci(m: dict[str, Any], key: str) -> str:
    ci = m.get(f"{key}_ci")
    value = f"{m.get(key, float('nan')):.3f}"
    return f"{value} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else value


def metrics_table(metrics: dict[str, Any], title: str) -> Table:
    """One row per (labels, head): AUROC and AUPRC with their 95% bootstrap interval when
    there is one, recall at 1% FPR, KS, ECE, users and positives."""
    table = Table(title=title)
    for col in ("labels", "head", "AUROC [95% CI]", "AUPRC [95% CI]", "recall@1%FPR", "KS",
                "ECE", "n", "positives"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("labels", "head") else "right")
    for name, key in LABEL_SETS:
        part = metrics if key is None else metrics.get(key) or {}
        for head in ("fraud", "default"):
            m = part.get(head)
            if not m:
                continue
            table.add_row(
                name, head, _ci(m, "auroc"), _ci(m, "auprc"),
                f"{m.get('recall_at_1pct_fpr', float('nan')):.3f}",
                f"{m.get('ks', float('nan')):.3f}", f"{m.get('ece', float('nan')):.3f}",
                f"{m.get('n', 0):.0f}", f"{m.get('positives', 0):.0f}",
            )  # fmt: skip
    return table


def print_guard(metrics: dict[str, Any], console: Console) -> None:
    """The split guard's warnings, if any (also recorded in the artifact's metrics)."""
    for line in metrics.get("split_guard") or []:
        console.print(f"[bold yellow]split guard:[/] {line}")
