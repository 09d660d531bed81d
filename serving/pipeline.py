"""The stages of the main job, wired from settings: import, train, score, rings.

Each stage reads what it needs from Neo4j and writes its output back, so stages can run as
separate commands; ``GraphContext`` lets one process (the demo) export and encode only once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, LiteralString

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from graph import schema
from graph.bundle import read_bundle
from graph.export import GraphExport, as_of, user_labels
from graph.files import private_umask
from graph.neo4j.bulk import BulkImportError, BulkReport, bulk_import
from graph.neo4j.load import ImportReport, import_bundle
from graph.neo4j.reader import existing_ids, export_graph
from graph.neo4j.runs import (
    IncompleteRunError,
    incomplete_run_ids,
    join_run,
    mark_complete,
    run_status,
    start_run,
)
from graph.neo4j.store import GraphStore
from graph.neo4j.writeback import write_merchant_scores, write_user_scores
from graph.rings import RingConfig, Rings, detect_rings, match_planted, ring_typologies
from graph.rings.store import replace_links, write_rings
from serving.connect import local_server, private_state
from serving.report.snapshot import evaluation_frame, save_evaluation, save_rings
from serving.settings import Settings
from training.config import TrainConfig  # a plain dataclass: no torch import

# torch, transformers and the model code load in the stages that use them, so that `import`,
# `cypher`, `reset` and `neo4j …` start in a second (STYLE: no work at import time).
if TYPE_CHECKING:
    from encoders.features import NodeFeatures
    from encoders.text.encoder import ReviewEncoder
    from training.artifact import ModelArtifact
    from training.backtest import Backtest
    from training.fit import EpochCallback, TrainConfig, TrainResult
    from training.predict import Scores


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    )  # fmt: skip


class EmptyGraphError(ValueError):
    """The database holds nothing to train on or score; the message says what to run first."""


@dataclass
class GraphContext:
    """The exported graph and its node features, computed once per process."""

    graph: GraphExport
    features: NodeFeatures


def load_context(
    store: GraphStore, settings: Settings, console: Console, graph: GraphExport | None = None
) -> GraphContext:
    """Export the graph (unless given) and compute every node's features."""
    from encoders.features import build_features

    _quiet_transformers()
    graph = graph or export_graph(store)
    if len(graph.ids["user"]) == 0:
        raise EmptyGraphError(
            f"the database {store.database!r} at {store.uri} holds no users: import a bundle "
            "first (`riskgraph import BUNDLE`, or `riskgraph demo`)"
        )
    private_state(settings)
    with private_umask():  # the embedding cache is written for this user only
        features = build_features(
            graph, review_encoder(settings), show_progress=console.is_terminal
        )
    return GraphContext(graph, features)


def review_encoder(settings: Settings) -> ReviewEncoder:
    """The review encoder the settings ask for (its embedding cache shared by every caller)."""
    from encoders.text.encoder import ReviewEncoder

    return ReviewEncoder(
        settings.review_model,
        batch_size=settings.encode_batch_size,
        cache_dir=settings.embedding_cache_dir,
        device="cpu" if settings.encode_int8 else settings.device,
        quantize_int8=settings.encode_int8,
    )


def _quiet_transformers() -> None:
    """Keep weight-loading bars and notices out of command output (imports transformers)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def default_report_dir(bundle_dir: Path) -> Path:
    """Reports go beside the bundle (``<bundle>/_import/``) unless a folder is given."""
    return bundle_dir / "_import"


def run_import(
    store: GraphStore,
    settings: Settings,
    bundle_dir: Path,
    report_dir: Path | None,
    console: Console,
) -> ImportReport:
    """Validate the whole bundle first (nothing written on an unreadable file), then upsert."""
    bundle = read_bundle(
        bundle_dir, existing_ids=existing_ids(store), max_field_bytes=settings.max_field_bytes
    )
    with progress_bar(console) as bar:

        def make_tick(table: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(f"import {table}", total=total)
            return lambda n: bar.advance(task, n)

        report = import_bundle(
            store, bundle, settings.write_batch_size, make_tick, settings.write_batch_bytes
        )
    report.write(report_dir or default_report_dir(bundle_dir), bundle.rejects)
    return report


def run_bulk_import(
    settings: Settings, bundle_dir: Path, report_dir: Path | None, force: bool = False
) -> tuple[ImportReport, BulkReport]:
    """First load into an empty local database with ``neo4j-admin database import full``.

    Runs the same validation as the transactional path and writes the same report and rejects.
    """
    if settings.neo4j_uri:
        raise BulkImportError(
            "--bulk needs the project's own local Neo4j (the offline importer writes its store "
            "files); RISKGRAPH_NEO4J_URI points at another server: use the transactional import"
        )
    bundle = read_bundle(bundle_dir, max_field_bytes=settings.max_field_bytes)
    server = local_server(settings)
    work_dir = private_state(settings) / "bulk-import"
    started = time.perf_counter()
    with private_umask():  # the staged CSV files hold the whole bundle
        bulk = bulk_import(server, bundle, work_dir, force=force)
    report = ImportReport.of(
        bundle,
        loaded={t: len(f) for t, f in bundle.tables.items()},
        seconds={"bulk": round(time.perf_counter() - started, 3), **bulk.seconds},
    )
    report.write(report_dir or default_report_dir(bundle_dir), bundle.rejects)
    return report, bulk


def train_config(settings: Settings) -> TrainConfig:
    """The training hyper-parameters the settings ask for."""
    return TrainConfig(
        hidden=settings.hidden_dim, epochs=settings.epochs, patience=settings.patience,
        lr=settings.learning_rate, seed=settings.seed, device=settings.device,
        split=settings.split, batch_size=settings.batch_size, fanouts=tuple(settings.fanouts),
        label_trick=settings.label_trick, ensemble=settings.ensemble, folds=settings.folds,
        public_device_users=settings.public_device_users, numeric_bins=settings.numeric_bins,
    )  # fmt: skip


def _epoch_progress(bar: Progress, models: int, epochs: int, what: str) -> EpochCallback:
    task = bar.add_task("train", total=epochs * models)

    def on_epoch(_: int, row: dict[str, float]) -> None:
        member = int(row["member"])
        bar.update(task, completed=member * epochs + int(row["epoch"]),
                   description=f"train {what} {member + 1}/{models} "
                               f"loss {row['loss']:.3f} val AUPRC {row['val_auprc']:.3f}")  # fmt: skip

    return on_epoch


def run_train(
    store: GraphStore,
    settings: Settings,
    console: Console,
    ctx: GraphContext | None = None,
    compare_baselines: bool = False,
    truth_path: Path | None = None,
) -> tuple[TrainResult, Path]:
    """Fit the production GNN and measure it; with ``compare_baselines`` also fit the
    baselines on the same folds (or split).

    With ``settings.split == "crossfit"`` (the default) the scorer is cross-fitted on every
    labelled user and the metrics are out-of-fold; with ``time``/``stratified`` it is fitted
    on the training part of one held-out split (an evaluation option).

    ``truth_path``: a ground-truth table (``user_id``, ``fraud``, ``default``; the generator's
    ``truth.csv``) to report metrics against the truth too; never used for fitting.
    """
    from training.artifact import save_artifact
    from training.baselines import compare, model_scores, oof_model_scores
    from training.fit import fit
    from training.scorecard import ScoreScale

    ctx = ctx or load_context(store, settings, console)
    config = train_config(settings)
    truth = read_truth(truth_path, ctx.graph) if truth_path else None
    crossfitted = config.split == "crossfit"
    models, what = (config.folds, "fold model") if crossfitted else (config.ensemble, "model")
    with progress_bar(console) as bar:
        on_epoch = _epoch_progress(bar, models, config.epochs, what)
        result = fit(ctx.graph, ctx.features, config, on_epoch, truth)
    baselines = None
    if compare_baselines and result.folds is not None and result.oof_logits is not None:
        baselines = oof_model_scores(ctx.graph, ctx.features, result.normaliser, result.folds,
                                     result.oof_logits, settings.seed)  # fmt: skip
        result.comparison = compare(ctx.graph, ctx.features, result.normaliser, result.split,
                                    result.oof_logits, settings.seed, truth, baselines)  # fmt: skip
    elif compare_baselines:
        baselines = model_scores(ctx.graph, ctx.features, result.normaliser, result.split,
                                 result.logits, settings.seed)  # fmt: skip
        result.comparison = compare(
            ctx.graph, ctx.features, result.normaliser, result.split, result.logits,
            settings.seed, truth, baselines,
        )  # fmt: skip
    from training.distributed import is_main

    if not is_main():  # a torchrun rank other than 0: rank 0 saves the (identical) model
        return result, settings.artifacts
    scale = ScoreScale(settings.base_score, settings.base_odds, settings.pdo)
    with private_umask():  # artifacts: this user only
        folder = save_artifact(
            result, scale, settings.artifacts, {"review_model": settings.review_model}
        )
        save_evaluation(folder, evaluation_frame(result, ctx.graph, baselines))
    return result, folder


def run_backtest(
    store: GraphStore,
    settings: Settings,
    console: Console,
    cutoff: datetime | None = None,
    truth_path: Path | None = None,
    ctx: GraphContext | None = None,
) -> Backtest:
    """Cross-fit on the graph and labels as they were at ``cutoff`` (default: the 80th
    percentile of labelled accounts' creation) and score the accounts created after it."""
    from encoders.features import build_features
    from training.backtest import backtest, default_cutoff

    ctx = ctx or load_context(store, settings, console)
    cutoff_ms = int(cutoff.timestamp() * 1000) if cutoff else default_cutoff(ctx.graph)
    past = as_of(ctx.graph, cutoff_ms)
    past_features = build_features(past, review_encoder(settings), show_progress=False)
    config = train_config(settings)
    truth = read_truth(truth_path, ctx.graph) if truth_path else None
    with progress_bar(console) as bar:
        on_epoch = _epoch_progress(bar, config.folds, config.epochs, "fold model at the cutoff")
        return backtest(past, past_features, ctx.graph, ctx.features, config, truth, on_epoch)


def read_truth(path: Path, graph: GraphExport) -> dict[str, np.ndarray]:
    """Ground-truth ``fraud``/``default`` per user of ``graph`` (NaN where the table has none)."""
    frame = pd.read_csv(path, dtype={"user_id": str})
    missing = {"user_id", "fraud", "default"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: truth table lacks columns {sorted(missing)}")
    truth = user_labels(pd.Index(graph.ids["user"]), frame.rename(columns={"user_id": "id"}))
    return {head: truth[head].to_numpy(np.float64) for head in ("fraud", "default")}


def run_score(
    store: GraphStore,
    settings: Settings,
    console: Console,
    ctx: GraphContext | None = None,
    artifact: ModelArtifact | None = None,
    shard: tuple[int, int] | None = None,
) -> tuple[Scores, Path, str]:
    """Score every user as one scoring run; write the scores onto the graph and to Parquet.

    The run is a ``ScoreRun`` node, ``started`` before the first write and ``complete`` after
    the last; a rerun after a crash resumes the open run of the same model (users it already
    wrote keep their ``previous_*``). The run's data for the report is saved under
    ``state_dir/runs/<run_id>/``.

    ``shard=(i, n)``: only shard i (0-based) of n, a contiguous range of user ids; it writes
    its own batches and its own Parquet part, and shard 0 also writes the merchants' scores.
    Shard 0 opens the run and the others join it; the shard that writes the last users
    completes it.
    """
    from serving.report.snapshot import save_run_snapshot
    from training.artifact import load_artifact
    from training.predict import score_users, shard_rows

    ctx = ctx or load_context(store, settings, console)
    artifact = artifact or load_artifact(settings.artifacts)
    rows = shard_rows(ctx.graph.ids["user"], *shard) if shard else None
    scores = score_users(ctx.graph, ctx.features, artifact, settings.device, rows)
    counts = {"users": len(ctx.graph.ids["user"]), "merchants": len(ctx.graph.ids["merchant"]),
              "bands": scores.frame["risk_band"].value_counts().to_dict()}  # fmt: skip
    if shard is None or shard[0] == 0:
        run_id, resumed = start_run(store, artifact.version, counts)
    else:
        run_id, resumed = join_run(store, artifact.version), False
    if resumed:
        console.print(f"[bold yellow]resuming[/] score run {run_id}, which did not finish")
    scored_at = datetime.now(UTC).isoformat(timespec="seconds")
    with progress_bar(console) as bar:
        task = bar.add_task("write scores", total=len(scores.frame))
        write_user_scores(
            store, scores.frame, artifact.version, scored_at, run_id, incomplete_run_ids(store),
            settings.write_batch_size, lambda n: bar.advance(task, n),
        )  # fmt: skip
    merchants = pd.DataFrame({"merchant_id": ctx.graph.ids["merchant"],
                              "risk_score": scores.merchant_risk})  # fmt: skip
    if shard is None or shard[0] == 0:  # merchants: computed from every user, written once
        write_merchant_scores(
            store, merchants, artifact.version, scored_at, settings.write_batch_size
        )
    part = f".part-{shard[0]:05d}-of-{shard[1]:05d}" if shard else ""
    path = settings.export_dir / f"scores-{artifact.version}{part}.parquet"
    export = scores.frame.assign(score_version=artifact.version, scored_at=scored_at,
                                 score_run=run_id)  # fmt: skip
    with private_umask():  # scores are personal data: the export is for this user only
        settings.export_dir.mkdir(parents=True, exist_ok=True)
        export.to_parquet(path, index=False)
        if shard is None:  # the report's data needs every user's score
            save_run_snapshot(settings.state_dir / "runs" / run_id, run_id, artifact, ctx, scores)
    missing = mark_complete(store, run_id, run_metrics(artifact.metrics), counts)
    if missing and shard is not None:
        console.print(f"shard {shard[0]}/{shard[1]} written; run {run_id} completes when the "
                      f"other shards have written their {missing:,} users")  # fmt: skip
    elif missing:
        raise IncompleteRunError(
            f"score run {run_id}: {missing:,} users on the graph carry no score of this run "
            "(imported while it ran?); rerun `riskgraph score` to complete it"
        )
    return scores, path, artifact.version


def run_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline figures a ScoreRun node keeps (AUROC, AUPRC, ECE per head; the rest stays
    in the artifact)."""
    return {
        head: {k: metrics[head][k] for k in ("auroc", "auprc", "ece", "n") if k in metrics[head]}
        for head in ("fraud", "default")
        if isinstance(metrics.get(head), dict)
    }


PLANTED: LiteralString = (
    f"MATCH (t:{schema.TRUTH_RING}) RETURN t.ring_id AS ring_id, t.user_id AS user_id"
)
RISK: LiteralString = (
    f"MATCH (u:{schema.USER}) RETURN u.user_id AS id, coalesce(u.risk_score, 0.0) AS risk"
)


def ring_config(settings: Settings) -> RingConfig:
    """The ring settings by name: ``RISKGRAPH_RING_<FIELD>`` sets ``RingConfig.<field>``
    (``ring_evidence`` sets ``kinds``; the run's ``seed`` seeds Leiden)."""
    values: dict[str, Any] = {"kinds": tuple(settings.ring_evidence), "seed": settings.seed}
    for f in dataclasses.fields(RingConfig):
        name = f.name if f.name.startswith("ring_") else f"ring_{f.name}"
        if name in Settings.model_fields:
            values[f.name] = getattr(settings, name)
    return RingConfig(**values)


def read_planted(path: Path) -> tuple[pd.DataFrame, pd.Series | None]:
    """Planted rings (``ring_id``, ``user_id``) and each ring's typology when known.

    The typology comes from a ``typology`` column of the file itself, else from a generated
    bundle's ``truth.csv`` beside it (the members' most common typology).
    """
    frame = pd.read_csv(path, dtype=str)
    missing = {"ring_id", "user_id"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: ring truth lacks columns {sorted(missing)}")
    if "typology" in frame.columns:
        return frame, frame.groupby("ring_id")["typology"].first()
    beside = path.parent / "truth.csv"
    if beside.exists():
        truth = pd.read_csv(beside, dtype=str)
        if {"user_id", "typology"} <= set(truth.columns):
            return frame, ring_typologies(frame, truth)
    return frame, None


def rings_from_store(
    store: GraphStore, settings: Settings, graph: GraphExport, copy_groups: np.ndarray | None
) -> tuple[Rings, pd.DataFrame]:
    """Rings from the risk scores stored on the users; links and rings written back.

    Refused while the stored scores come from an unfinished run or mixed model versions
    (rings would mix two models' risks); the written ring table is kept with the run's data.
    """
    status = run_status(store)
    if status.latest is not None:
        status.require_consistent()
    risk_cols = store.read_columns(RISK)
    risk = np.zeros(len(graph.ids["user"]))
    pos = graph.index_of("user", np.asarray(risk_cols.get("id", []), dtype=object))
    risk[pos[pos >= 0]] = np.asarray(risk_cols.get("risk", []), dtype=np.float64)[pos >= 0]
    rings = detect_rings(graph, risk, copy_groups, ring_config(settings))
    replace_links(store, rings, graph.ids["user"], settings.write_batch_size)
    written = write_rings(store, rings)
    if status.latest is not None:
        save_rings(settings.state_dir / "runs" / status.latest.run_id, written)
    return rings, written


def run_rings(
    store: GraphStore, settings: Settings, console: Console, ctx: GraphContext | None = None,
    truth_path: Path | None = None,
) -> tuple[Rings, pd.DataFrame, dict[str, float]]:  # fmt: skip
    """Detect rings from the stored risk scores; write links and rings (rings atomically).

    Returns the rings, the written ring table (with stable ids and status) and, when planted
    truth is known (``truth_path`` or the graph's TruthRingMember nodes), the match figures.
    """
    ctx = ctx or load_context(store, settings, console)
    copies = ctx.features.text.review_copy_groups if ctx.features.text else None
    rings, written = rings_from_store(store, settings, ctx.graph, copies)
    if truth_path is not None:
        planted, typology = read_planted(truth_path)
    else:
        planted, typology = pd.DataFrame(store.read_columns(PLANTED)), None
    members = rings.members.assign(ring_id=rings.members["group"].astype(str))
    quality = match_planted(members, planted, typology) if len(planted) else {}
    return rings, written, quality


@contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = time.perf_counter() - started
