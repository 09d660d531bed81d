"""The ``riskgraph`` command line.

Settings come from ``RISKGRAPH_*`` environment variables (see ``serving/settings.py``); options
given here override them for one run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from serving.settings import Settings

app = typer.Typer(
    help="riskgraph: GNN credit scores and fraud rings over a Neo4j marketplace graph.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
neo4j_app = typer.Typer(help="Run the project's own local Neo4j server.", no_args_is_help=True)
app.add_typer(neo4j_app, name="neo4j")
console = Console()
err = Console(stderr=True, soft_wrap=True)


@app.callback()
def _quiet_libraries() -> None:
    """Keep library chatter (deprecation notices, weight-loading bars) out of command output."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _settings() -> Settings:
    return Settings()


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


# -- neo4j -------------------------------------------------------------------------------
@neo4j_app.command("start")
def neo4j_start() -> None:
    """Start the local Neo4j (fetched from Maven Central on first use); waits until Bolt answers."""
    from graph.neo4j_local import Neo4jProvisionError
    from serving.connect import local_server

    settings = _settings()
    if settings.neo4j_uri:
        console.print(f"RISKGRAPH_NEO4J_URI is set: using {settings.neo4j_uri}, nothing started")
        return
    try:
        with console.status("starting Neo4j (first start downloads it with Maven)…"):
            status = local_server(settings).start()
    except Neo4jProvisionError as exc:
        _fail(str(exc))
    console.print(
        f"Neo4j {status.version} running on {status.uri} (pid {status.pid}, home {status.home})"
    )


@neo4j_app.command("stop")
def neo4j_stop() -> None:
    """Stop the local Neo4j cleanly."""
    from serving.connect import local_server

    stopped = local_server(_settings()).stop()
    console.print("Neo4j stopped" if stopped else "Neo4j was not running")


@neo4j_app.command("status")
def neo4j_status() -> None:
    """Say whether the local Neo4j runs, and where."""
    from serving.connect import local_server

    settings = _settings()
    if settings.neo4j_uri:
        console.print(f"using external server {settings.neo4j_uri} (RISKGRAPH_NEO4J_URI)")
        return
    s = local_server(settings).status()
    state = "running" if s.running else "stopped"
    console.print(f"Neo4j {s.version}: {state} on {s.uri} (pid {s.pid}, home {s.home})")
    if not s.running:
        raise typer.Exit(3)


@neo4j_app.command("env")
def neo4j_env() -> None:
    """Print RISKGRAPH_NEO4J_URI/USER/PASSWORD lines for other tools (eval "$(riskgraph neo4j env)")."""
    from serving.connect import connection

    conn = connection(_settings())
    typer.echo(f"RISKGRAPH_NEO4J_URI={conn.uri}")
    typer.echo(f"RISKGRAPH_NEO4J_USER={conn.user}")
    typer.echo(f"RISKGRAPH_NEO4J_PASSWORD={conn.password}")


# -- data --------------------------------------------------------------------------------
@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="folder to write the bundle into")],
    users: Annotated[int, typer.Option("--users", min=10, help="number of users")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="random seed (same seed, same files)")] = 0,
) -> None:
    """Generate a synthetic marketplace bundle with planted fraud rings."""
    from graph.generator import GeneratorConfig, generate_marketplace

    with console.status(f"generating {users:,} users…"):
        summary = generate_marketplace(GeneratorConfig(n_users=users, seed=seed), out)
    console.print(f"wrote {out}: " + ", ".join(f"{k} {v:,}" for k, v in summary.counts.items()))


@app.command("import")
def import_(
    bundle: Annotated[Path, typer.Argument(help="bundle folder (see bundle-format.md)")],
    report_dir: Annotated[
        Path | None,
        typer.Option(help="where report.json and rejects.csv go; default BUNDLE/_import"),
    ] = None,
    bulk: Annotated[
        bool,
        typer.Option(
            "--bulk",
            help="first load into an EMPTY local database with neo4j-admin's offline importer "
            "(stops the server while it runs); pays off from ~50k users",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="with --bulk: replace a database that is not empty")
    ] = False,
) -> None:
    """Validate a bundle and upsert it into Neo4j; bad rows go to rejects.csv with their rule."""
    from graph.bulk import BulkImportError
    from graph.bundle import BundleError
    from serving.connect import open_store
    from serving.pipeline import run_bulk_import, run_import

    settings = _settings()
    try:
        if bulk:
            with console.status("bulk import (server stopped meanwhile)…"):
                report, _ = run_bulk_import(settings, bundle, report_dir, force)
        else:
            with open_store(settings) as store:
                report = run_import(store, settings, bundle, report_dir, console)
    except BundleError as exc:
        _fail(f"nothing imported: {exc}", code=2)
    except BulkImportError as exc:
        _fail(str(exc), code=2)
    table = Table(title=f"import of {bundle}")
    for col in ("table", "read", "loaded", "rejected"):
        table.add_column(col, justify="right" if col != "table" else "left")
    for name, n in report.read.items():
        rejected = sum(report.rejected.get(name, {}).values())
        table.add_row(name, f"{n:,}", f"{report.loaded.get(name, 0):,}", f"{rejected:,}")
    console.print(table)
    console.print(f"report and rejects: {report.report_dir}")


@app.command()
def train(
    compare: Annotated[
        bool,
        typer.Option("--compare", help="also fit LR and gradient-boosting baselines, same split"),
    ] = False,
    split: Annotated[
        str | None, typer.Option(help="held-out split: time or stratified (default: setting)")
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="ground truth (user_id,fraud,default; a generated bundle's truth.csv) to also "
            "report held-out metrics against; never used for fitting",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Train the heterogeneous GNN on the observed labels; print held-out AUROC/AUPRC.

    Fits on mini-batches sampled from the graph, early-stops on validation AUPRC, calibrates
    on the validation users and saves a versioned artifact. With --compare, logistic
    regression and gradient boosting (own and neighbour-aggregated features) are fitted on
    the same split and printed side by side.
    """
    from serving.connect import open_store
    from serving.pipeline import run_train

    settings = _settings()
    if split is not None:
        settings = settings.model_copy(update={"split": split})
    with open_store(settings) as store:
        result, folder = run_train(
            store, settings, console, compare_baselines=compare, truth_path=truth
        )
    if result.comparison is not None:
        table = Table(title=f"held-out test users, {settings.split} split")
        for col in result.comparison.columns:
            table.add_column(col, justify="left" if col in ("labels", "head", "model") else "right")
        for row in result.comparison.itertuples(index=False):
            table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
        console.print(table)
    sets = {"observed labels": result.metrics, "ground truth": result.metrics.get("truth") or {}}
    for against, metrics in sets.items():
        for head in ("fraud", "default") if metrics else ():
            m = metrics[head]
            console.print(f"{head} vs {against}: held-out AUROC {m['auroc']:.3f}  "
                          f"AUPRC {m['auprc']:.3f}  ECE {m['ece']:.3f}  (n={m['n']:.0f})")  # fmt: skip
    console.print(f"{result.metrics['train_seconds_per_epoch']:.1f} s per training epoch on "
                  f"{result.metrics['device']}")  # fmt: skip
    console.print(f"artifact: {folder}")


@app.command()
def score() -> None:
    """Score every user; write scores onto the User nodes and a Parquet export."""
    from encoders.features import FeatureMismatchError
    from serving.connect import open_store
    from serving.pipeline import run_score

    settings = _settings()
    try:
        with open_store(settings) as store:
            scores, path, version = run_score(store, settings, console)
    except (FeatureMismatchError, FileNotFoundError) as exc:
        _fail(str(exc))
    console.print(f"scored {len(scores.frame):,} users with model {version}; export {path}")


@app.command()
def rings() -> None:
    """Detect fraud rings from the current scores and replace the previous run's rings."""
    from serving.connect import open_store
    from serving.pipeline import run_rings

    settings = _settings()
    with open_store(settings) as store:
        found, quality = run_rings(store, settings, console)
    console.print(f"{len(found.rings)} rings written")
    if quality:
        console.print(
            f"vs planted: precision {quality['precision']:.2f} recall {quality['recall']:.2f}"
        )


@app.command()
def cypher(
    query: Annotated[str, typer.Argument(help="Cypher text; use $name for values")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print rows as JSON lines")] = False,
) -> None:
    """Run a read-only Cypher query (writes are refused) and print the rows."""
    from serving.connect import open_store
    from serving.queries import WriteRefusedError, parse_params, run_read_query

    try:
        params = parse_params(param or [])
        with open_store(_settings()) as store:
            rows = run_read_query(store, query, params)
    except (WriteRefusedError, ValueError) as exc:
        _fail(str(exc), code=2)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, default=str))
        return
    table = Table()
    for key in rows[0].keys() if rows else []:
        table.add_column(key)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


@app.command()
def reset(
    yes: Annotated[bool, typer.Option("--yes", help="really delete everything")] = False,
) -> None:
    """Empty the configured database (refuses without --yes)."""
    from serving.connect import open_store

    if not yes:
        _fail("reset deletes every node and relationship; rerun with --yes", code=2)
    settings = _settings()
    with open_store(settings) as store:
        deleted = store.delete_all(
            batch_size=settings.write_batch_size, batch_bytes=settings.write_batch_bytes
        )
    console.print(f"deleted {deleted:,} nodes")


@app.command()
def demo(
    users: Annotated[int, typer.Option(help="users in the generated marketplace")] = 10_000,
    seed: Annotated[int, typer.Option(help="generator and training seed")] = 0,
    workdir: Annotated[Path, typer.Option(help="where the bundle is written")] = Path("out"),
) -> None:
    """generate → import → train → score → rings on a fresh marketplace, then a summary."""
    from serving.demo import print_summary, run_demo

    settings = _settings()
    summary = run_demo(settings, users, seed, workdir, console)
    print_summary(summary, console)


if __name__ == "__main__":
    app()
