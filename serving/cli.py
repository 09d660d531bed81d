"""The ``riskgraph`` command line.

Settings come from ``RISKGRAPH_*`` environment variables (see ``serving/settings.py``); options
given here override them for one run. Heavy libraries (torch, transformers) are imported by the
commands that need them, never here. Every failure prints one line (``serving/errors.py``);
``--debug`` or ``RISKGRAPH_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer._click.core import Context as ClickContext  # typer >= 0.29 vendors its click
from typer.core import TyperGroup

from graph import schema
from graph.files import PRIVATE_UMASK
from serving.errors import Server, describe
from serving.settings import Settings, with_overrides


class _OneLineErrors(TyperGroup):
    """The command group: whatever a command raises becomes one readable line and an exit code.

    Catching here, around every command, is what makes the guarantee hold for commands added
    later; ``--debug`` lets the exception through with its traceback.
    """

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # usage errors, exits: typer's
            raise
        except KeyboardInterrupt:
            err.print("[bold red]error:[/] interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:
            if ctx.params.get("debug"):  # --debug, or RISKGRAPH_DEBUG through the option's envvar
                raise
            message, code = describe(exc, _server())
            err.print(f"[bold red]error:[/] {escape(message)}")
            raise typer.Exit(code) from None


app = typer.Typer(
    cls=_OneLineErrors,
    help="riskgraph: GNN credit scores and fraud rings over a Neo4j marketplace graph.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
neo4j_app = typer.Typer(help="Run the project's own local Neo4j server.", no_args_is_help=True)
app.add_typer(neo4j_app, name="neo4j")
console = Console()
err = Console(stderr=True, soft_wrap=True)


@app.callback()
def _setup(
    ctx: typer.Context,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="RISKGRAPH_DEBUG",
            help="show the full traceback of a failure instead of one line",
        ),
    ] = False,
) -> None:
    """Private files, quiet libraries; no heavy import here (`--help` stays instant)."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # Everything a command writes (state, artifacts, caches, score exports, reports) is
    # readable by this user only.
    old_umask = os.umask(PRIVATE_UMASK)
    ctx.call_on_close(lambda: os.umask(old_umask))
    if not debug:  # the driver's retry notices would break the one-line promise
        logging.getLogger("neo4j").setLevel(logging.CRITICAL)


def _server() -> Server | None:
    """The server the settings point at, for error messages (None if the settings are bad)."""
    try:
        s = Settings()
    except Exception:
        return None
    if s.neo4j_uri:
        return Server(s.neo4j_uri, s.neo4j_user, local=False)
    home = s.neo4j_home.expanduser()
    return Server(f"bolt://127.0.0.1:{s.neo4j_port}", "neo4j", True, str(home / "password"))


def _settings() -> Settings:
    return Settings()


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


# -- neo4j -------------------------------------------------------------------------------
@neo4j_app.command("start")
def neo4j_start() -> None:
    """Start the local Neo4j (fetched from Maven Central on first use); waits until Bolt answers."""
    from serving.connect import local_server

    settings = _settings()
    if settings.neo4j_uri:
        console.print(f"RISKGRAPH_NEO4J_URI is set: using {settings.neo4j_uri}, nothing started")
        return
    with console.status("starting Neo4j (first start downloads it with Maven)…"):
        status = local_server(settings).start()
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
    realistic: Annotated[
        bool,
        typer.Option(
            "--realistic",
            help="recent fraud (0.7), labels 30 days late, coordinated and fragmented rings "
            "(0.02 of users each); the flags below override single values",
        ),
    ] = False,
    fraud_recency: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="share of fraud-opened accounts created in the last quarter"
        ),
    ] = None,
    label_maturity_days: Annotated[
        float | None,
        typer.Option(min=0.0, help="days before an outcome is known; later labels not exported"),
    ] = None,
    coordinated_rings: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="share of users in coordinated rings (own devices, in sync)"
        ),
    ] = None,
    fragmented_rings: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="share of users in fragmented rings (devices shared in cells)"
        ),
    ] = None,
    camouflage: Annotated[
        float | None,
        typer.Option(min=0.0, max=0.99, help="share of fraud accounts' orders that are ordinary"),
    ] = None,
) -> None:
    """Generate a synthetic marketplace bundle with planted fraud rings."""
    from dataclasses import replace

    from graph.synth.marketplace import GeneratorConfig, generate_marketplace

    base = GeneratorConfig.realistic(users, seed) if realistic else GeneratorConfig(users, seed)

    def pick(given: float | None, preset: float | None) -> float | None:
        return preset if given is None else given

    try:
        config = replace(
            base,
            fraud_recency=pick(fraud_recency, base.fraud_recency),
            label_maturity_days=pick(label_maturity_days, base.label_maturity_days),
            coordinated_ring_share=pick(coordinated_rings, base.coordinated_ring_share) or 0.0,
            fragmented_ring_share=pick(fragmented_rings, base.fragmented_ring_share) or 0.0,
            camouflage_share=pick(camouflage, base.camouflage_share),
        )
        with console.status(f"generating {users:,} users…"):
            summary = generate_marketplace(config, out)
    except ValueError as exc:
        _fail(f"generate: {exc}")
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
    from graph.bundle import BundleError
    from graph.neo4j.bulk import BulkImportError
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
        typer.Option("--compare", help="also fit LR and gradient-boosting baselines, same folds"),
    ] = False,
    split: Annotated[
        str | None,
        typer.Option(
            help="crossfit (default setting: every label teaches the production model, "
            "out-of-fold metrics), or an evaluation split: time or stratified"
        ),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="ground truth (user_id,fraud,default; a generated bundle's truth.csv) to also "
            "report metrics against; never used for fitting",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    nproc: Annotated[
        int, typer.Option(help="data-parallel ranks (torchrun): DDP, each on its share of seeds")
    ] = 1,
) -> None:
    """Train the heterogeneous GNN on the observed labels; print AUROC/AUPRC.

    By default the production scorer is cross-fitted: RISKGRAPH_FOLDS grouped folds (users
    tied by a non-public device stay in one fold), one model per fold that never sees its
    fold's labels, out-of-fold metrics with 95% bootstrap intervals and Platt calibration on
    the out-of-fold logits; the scorer is the mean of the fold models. With --compare,
    logistic regression and gradient boosting are fitted on the same folds.
    """
    settings = _settings()
    if split is not None:  # checked before the heavy imports below: a bad option fails at once
        try:
            settings = with_overrides(settings, split=split)
        except ValueError as exc:
            _fail(str(exc), code=2)
    from serving.connect import open_store
    from serving.pipeline import run_train
    from serving.report import metrics_table, print_guard

    if nproc > 1:  # hand this command line to torchrun; the ranks come back here
        from serving.launch import launch_ranks

        return launch_ranks(nproc)
    with open_store(settings) as store:  # a server that is down fails here, before torch loads
        from training import distributed
        from training.fit import pick_device

        distributed.init_from_env(pick_device(settings.device))
        out = console if distributed.is_main() else Console(quiet=True)
        try:
            result, folder = run_train(
                store, settings, out, compare_baselines=compare, truth_path=truth
            )
        finally:
            distributed.shutdown()
    if not distributed.is_main():
        return None
    m = result.metrics
    what = m.get("evaluation") or f"held-out test users, {settings.split} split"
    if result.comparison is not None:
        table = Table(title=f"{what}: the GNN against the baselines")
        for col in result.comparison.columns:
            table.add_column(col, justify="left" if col in ("labels", "head", "model") else "right")
        for row in result.comparison.itertuples(index=False):
            table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
        console.print(table)
    console.print(metrics_table(m, what))
    print_guard(m, console)
    console.print(f"{m['epochs_run']} epochs, {m['train_seconds_per_epoch']:.1f} s per training "
                  f"epoch on {m['device']}")  # fmt: skip
    console.print(f"artifact: {folder}")


@app.command()
def backtest(
    cutoff: Annotated[
        str | None,
        typer.Option(
            help="ISO date or instant (UTC when no offset); default: the 80th percentile of "
            "account creation among labelled users"
        ),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="ground truth (user_id,fraud,default) to also score against; never fitted on",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Would it have caught what came next? Cross-fit on the graph and the labels as they were
    at the cutoff, then score the accounts created after it against their labels.

    Saves no artifact and writes nothing to the graph.
    """
    from datetime import UTC, datetime

    from serving.connect import open_store
    from serving.pipeline import run_backtest
    from serving.report import metrics_table, print_guard

    when = None
    if cutoff is not None:
        try:
            when = datetime.fromisoformat(cutoff)
        except ValueError:
            _fail(f"--cutoff {cutoff!r} is not an ISO 8601 date or instant", code=2)
        assert when is not None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    settings = _settings()
    with open_store(settings) as store:
        try:
            result = run_backtest(store, settings, console, when, truth)
        except ValueError as exc:
            _fail(str(exc), code=2)
    at = datetime.fromtimestamp(result.cutoff_ms / 1000, UTC).isoformat(timespec="seconds")
    if result.labels_dated < result.labels_total:
        console.print(
            f"[bold yellow]note:[/] {result.labels_total - result.labels_dated:,} of "
            f"{result.labels_total:,} labels have no observed_at, so they count as known from "
            "their account's creation; real outcomes arrive later, so this backtest is "
            "optimistic (give labels an observed_at column, see bundle-format.md)"
        )
    console.print(metrics_table(result.metrics, f"backtest: model fitted at {at}, scored on "
                                f"{result.metrics['n_new_accounts']:,} accounts created after"))  # fmt: skip
    print_guard(result.metrics, console)


@app.command()
def score(
    shard: Annotated[
        str | None,
        typer.Option(help="I/N: score only shard I (0-based) of N, a contiguous user-id range"),
    ] = None,
    nproc: Annotated[int, typer.Option(help="run N shards as torchrun ranks")] = 1,
) -> None:
    """Score every user; write scores onto the User nodes and a Parquet export."""
    from serving.connect import open_store
    from serving.launch import launch_ranks, parse_shard
    from serving.pipeline import run_score

    if nproc > 1:  # each rank scores shard RANK/WORLD_SIZE
        return launch_ranks(nproc)
    part = parse_shard(shard)
    settings = _settings()
    with open_store(settings) as store:  # no artifact, or features that do not match it: one line
        scores, path, version = run_score(store, settings, console, shard=part)
    console.print(f"scored {len(scores.frame):,} users with model {version}; export {path}")


@app.command()
def rings(
    truth: Annotated[
        Path | None,
        typer.Option(
            help="planted rings (ring_id,user_id[,typology]; a generated bundle's rings.csv, "
            "typologies then from truth.csv beside it) to score the rings against",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Detect fraud rings from the current scores; replace the previous run's rings atomically.

    Rings that persist keep their id and first_seen (Jaccard >= 0.5); vanished ones are closed.
    """
    from serving.connect import open_store
    from serving.pipeline import run_rings

    settings = _settings()
    try:
        with open_store(settings) as store:
            found, written, quality = run_rings(store, settings, console, truth_path=truth)
    except ValueError as exc:
        _fail(str(exc), code=2)
    statuses = written["status"].value_counts().to_dict() if len(written) else {}
    console.print(f"{len(written)} rings written ({', '.join(f'{v} {k}' for k, v in statuses.items())}), "
                  f"{len(found.links):,} evidence links")  # fmt: skip
    if quality:
        console.print(
            f"vs planted: ring precision {quality['precision']:.3f} recall "
            f"{quality['recall']:.3f} F1 {quality['f1']:.3f}; members precision "
            f"{quality['member_precision']:.3f} recall {quality['member_recall']:.3f}"
        )
        for key in sorted(k for k in quality if k.startswith("recall_")):
            kind = key[len("recall_") :]
            console.print(f"  {kind}: ring recall {quality[key]:.3f} "
                          f"({quality[f'planted_{kind}']:.0f} planted)")  # fmt: skip


@app.command()
def ring(
    ring_id: Annotated[str, typer.Argument(help="a ring id, e.g. ring-1a2b3c4d5e6f")],
    as_json: Annotated[
        bool, typer.Option("--json", help="print the view as one JSON object")
    ] = False,
) -> None:
    """Investigate one ring: members, shared devices and merchants, daily activity, evidence."""
    from serving.connect import open_store
    from serving.queries import json_line
    from serving.ring_view import print_ring, ring_report
    from serving.run_flag import flagged, unfinished_run, warn

    with open_store(_settings()) as store:
        report = ring_report(store, ring_id)
        flag = unfinished_run(store) if report is not None else None
    if report is None:
        _fail(
            f"no ring {ring_id!r} (list them: riskgraph cypher 'MATCH (r:{schema.RING}) RETURN r.ring_id')"
        )
        return
    warn(flag, err)  # members' scores of a half-finished run say so
    if as_json:
        typer.echo(json_line(flagged(report, flag)))
        return
    print_ring(report, console)


@app.command()
def cypher(
    query: Annotated[str, typer.Argument(help="Cypher text; use $name for values")],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="a value for $name: name=value is the string value; name:TYPE=value with "
            "TYPE int, float, bool or json (lists, maps, null) types it, e.g. -p id=7 (the "
            "string '7'), -p n:int=7, -p ids:json='[\"U1\",\"U2\"]'",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="print rows as JSON lines (NaN and Infinity print as null)"),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(help="seconds before the server stops the query (default: setting)"),
    ] = None,
) -> None:
    """Run a query that only reads the graph, and print the rows.

    Refused before it runs, from the server's plan of it: writes, LOAD CSV, administration
    commands (SHOW USERS, SHOW SETTINGS, SHOW TRANSACTIONS, …) and any procedure outside
    db.labels, db.relationshipTypes, db.propertyKeys, db.schema.* and GDS's stream, stats and
    estimate modes. The refusal names what it refused.
    """
    from serving.connect import open_store
    from serving.queries import json_line, parse_params, run_read_query
    from serving.run_flag import flagged, unfinished_run, warn

    settings = _settings()
    params = parse_params(param or [])
    with open_store(settings) as store:
        rows = run_read_query(store, query, params, timeout or settings.query_timeout_s)
        flag = unfinished_run(store)  # rows of a half-finished run say so
    warn(flag, err)
    if as_json:
        for row in rows:
            typer.echo(json_line(flagged(row, flag)))
        return
    table = Table()
    for key in rows[0].keys() if rows else []:
        table.add_column(escape(key))
    for row in rows:
        table.add_row(*(escape(str(v)) for v in row.values()))
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
    reset: Annotated[
        bool,
        typer.Option(
            "--reset",
            help="delete everything in the configured database first; without it the demo "
            "refuses a database that is not empty",
        ),
    ] = False,
) -> None:
    """generate → import → train → score → rings on a fresh marketplace, then a summary.

    The demo needs an empty database: it refuses one that holds anything (riskgraph's or
    not) unless --reset is given, which deletes every node and relationship in it first.
    """
    from serving.demo import print_summary, run_demo

    settings = _settings()
    summary = run_demo(settings, users, seed, workdir, console, reset=reset)
    print_summary(summary, console)


# -- issue 15: exports and the HTML report (bodies in serving/export, serving/report) ------
from serving.export.cli import export_command  # noqa: E402  (light: typer and rich only)

app.command("export")(export_command)
from serving.report.command import report_command  # noqa: E402

app.command("report")(report_command)
from serving.api.command import serve_command  # noqa: E402 - issue 14: the web service
from serving.catalogue_command import query_command  # noqa: E402 - issue 14: the catalogue

app.command("serve")(serve_command)
app.command("query")(query_command)


if __name__ == "__main__":
    app()
