"""``riskgraph report``: the latest complete run as one self-contained HTML page."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from graph.neo4j.store import GraphStore

console = Console()


def build_report(
    store: GraphStore, state_dir: Path, out: Path, cutoff: float
) -> tuple[Path, float, str | None]:
    """Gather, render and write (to a temporary name, then renamed); returns the path, the
    seconds taken and the page's run warning (None when the graph is one complete run)."""
    from serving.report.data import load_report_data
    from serving.report.page import render

    started = time.perf_counter()
    data = load_report_data(store, state_dir)
    html = render(data, cutoff)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    return out, time.perf_counter() - started, data.warning


def report_command(
    out: Annotated[Path, typer.Option("--out", help="the HTML file to write")] = Path(
        "report.html"
    ),
    cutoff: Annotated[
        int, typer.Option(help="approve at credit score >= this (band table, fairness)")
    ] = 580,
) -> None:
    """Write the run report: model card, ROC/PR with baselines, calibration, bands, reasons,
    ring gallery, riskiest merchants, drift against the previous run, fairness."""
    from serving.connect import open_store
    from serving.settings import Settings

    settings = Settings()
    with open_store(settings) as store:
        path, seconds, warning = build_report(store, settings.state_dir, out, cutoff)
    size = path.stat().st_size
    if warning:  # on the page's banner, and here for whoever ran the command
        Console(stderr=True, soft_wrap=True).print(f"[bold yellow]warning:[/] {escape(warning)}")
    console.print(f"report {path} ({size / 1e6:.2f} MB) in {seconds:.1f} s")
