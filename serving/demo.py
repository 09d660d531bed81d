"""The end-to-end demo: generate → import → train → score → rings, with a summary per stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, LiteralString

from rich.console import Console
from rich.table import Table

from graph.neo4j.reader import export_graph
from graph.synth.marketplace import GeneratorConfig, generate_marketplace
from serving.connect import open_store
from serving.pipeline import (
    load_context,
    run_backtest,
    run_import,
    run_rings,
    run_score,
    run_train,
    timed,
)
from serving.report import metrics_table, print_guard
from serving.settings import Settings


@dataclass
class DemoSummary:
    counts: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    rings: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    scored: int = 0
    export: str = ""
    version: str = ""
    split: str = ""
    backtest: dict[str, Any] = field(default_factory=dict)
    backtest_note: str = ""


class DatabaseNotEmptyError(PermissionError):
    """The demo would overwrite a database that holds something; the message says how to allow it."""


NODE_COUNT: LiteralString = "MATCH (n) RETURN count(n) AS n"


def run_demo(
    settings: Settings, users: int, seed: int, workdir: Path, console: Console, reset: bool = False
) -> DemoSummary:
    """Run the main job on a generated marketplace and return what it measured.

    Refuses (``DatabaseNotEmptyError``, before anything is generated or written) a database
    that holds any node, riskgraph's or not, unless ``reset`` deletes them first: with
    ``RISKGRAPH_NEO4J_URI`` set, the database may be a shared server's.
    """
    summary = DemoSummary()
    t = summary.timings
    bundle = workdir / f"marketplace-{users}-{seed}"
    with open_store(settings) as store:
        held = int(store.read(NODE_COUNT)[0]["n"])
        if held and not reset:
            raise DatabaseNotEmptyError(
                f"the database {store.database!r} at {store.uri} is not empty ({held:,} nodes) "
                "and the demo would mix its graph into them: rerun with `riskgraph demo "
                "--reset` to delete everything in it first, or point RISKGRAPH_NEO4J_URI / "
                "RISKGRAPH_STATE_DIR at an empty one"
            )
        if reset:
            store.delete_all()
        with timed(t, "generate"):
            generate_marketplace(GeneratorConfig(n_users=users, seed=seed), bundle)
        with timed(t, "import"):
            report = run_import(store, settings, bundle, None, console)
        summary.rejected = report.total_rejected
        with timed(t, "export"):
            graph = export_graph(store)
        with timed(t, "features (BERT + behaviour)"):
            ctx = load_context(store, settings, console, graph)
        with timed(t, "train"):
            result, _ = run_train(store, settings, console, ctx, truth_path=bundle / "truth.csv")
        summary.metrics = result.metrics
        summary.split = result.metrics.get("evaluation") or result.config.split
        with timed(t, "backtest"):
            bt = run_backtest(store, settings, console, None, bundle / "truth.csv", ctx)
        at = datetime.fromtimestamp(bt.cutoff_ms / 1000, UTC).date().isoformat()
        summary.backtest = {"cutoff": at, **bt.metrics}
        if bt.labels_dated < bt.labels_total:
            summary.backtest_note = (
                f"{bt.labels_total - bt.labels_dated:,} of {bt.labels_total:,} labels have no "
                "observed_at and count as known from account creation (optimistic)"
            )
        with timed(t, "score"):
            scores, path, version = run_score(store, settings, console, ctx)
        summary.scored, summary.export, summary.version = len(scores.frame), str(path), version
        with timed(t, "rings"):
            _, _, summary.rings = run_rings(store, settings, console, ctx)
        summary.counts = store.counts()
    return summary


def print_summary(summary: DemoSummary, console: Console) -> None:
    counts = Table(title="graph in Neo4j")
    counts.add_column("label / type")
    counts.add_column("count", justify="right")
    for key, n in summary.counts.items():
        counts.add_row(key, f"{n:,}")
    console.print(counts)
    console.print(f"rejected rows: {summary.rejected}")
    console.print(
        metrics_table(
            summary.metrics,
            f"{summary.split}: every labelled user, scored by the fold model that never saw "
            "its label; against the observed labels and against the generator's ground truth "
            "(never used for fitting)",
        )
    )
    print_guard(summary.metrics, console)
    b = summary.backtest
    if b:
        line = f"backtest (fitted at {b['cutoff']}, {b['n_new_accounts']:,} newer accounts):"
        for name, part in (("labels", b), ("truth", b.get("truth") or {})):
            if "fraud" in part:
                m = part["fraud"]
                line += f" fraud vs {name} AUROC {m['auroc']:.3f} AUPRC {m['auprc']:.3f};"
        console.print(line.rstrip(";"))
        if summary.backtest_note:
            console.print(f"  note: {summary.backtest_note}")
    r = summary.rings
    if r:
        console.print(
            f"rings: detected {r['detected']:.0f}, planted {r['planted']:.0f}, "
            f"found {r['found']:.0f} (Jaccard >= 0.5) -> precision {r['precision']:.2f}, "
            f"recall {r['recall']:.2f}, F1 {r['f1']:.2f}; members: precision "
            f"{r['member_precision']:.2f}, recall {r['member_recall']:.2f}"
        )
    console.print(f"scored {summary.scored:,} users with model {summary.version}; "
                  f"export: {summary.export}")  # fmt: skip
    timing = Table(title="time per stage")
    timing.add_column("stage")
    timing.add_column("seconds", justify="right")
    for stage, s in summary.timings.items():
        timing.add_row(stage, f"{s:.1f}")
    timing.add_row("total", f"{sum(summary.timings.values()):.1f}")
    console.print(timing)
