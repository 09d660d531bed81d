"""The ``riskgraph export`` command (registered in ``serving/cli.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
# Spelled here too so that `riskgraph --help` imports neither pandas nor the driver; a test
# checks them against serving.export.tables.TABLES and serving.export.write.FORMATS.
TABLES = ("users", "rings", "members", "merchants")
FORMATS = ("parquet", "csv")


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def export_command(
    out: Annotated[Path, typer.Option("--out", help="new (or empty) folder for the files")],
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
    tables: Annotated[
        str, typer.Option(help=f"comma-separated tables: {', '.join(TABLES)}")
    ] = "users,rings,members",
    band: Annotated[
        list[str] | None, typer.Option("--band", help="only users in this band (repeatable)")
    ] = None,
    ring: Annotated[str | None, typer.Option(help="only this ring's users, ring, members")] = None,
    min_score: Annotated[int | None, typer.Option(help="least credit score (inclusive)")] = None,
    max_score: Annotated[int | None, typer.Option(help="greatest credit score (inclusive)")] = None,
    changed_by: Annotated[
        int | None,
        typer.Option(
            help="only users whose credit score moved by at least this since the "
            "previous run (users without a previous score are left out)"
        ),
    ] = None,
    columns: Annotated[
        str | None, typer.Option(help="comma-separated columns of the users table, in order")
    ] = None,
    pseudonymise: Annotated[
        bool,
        typer.Option(
            "--pseudonymise",
            help="user, device and merchant ids as keyed HMACs "
            "(key: RISKGRAPH_PSEUDONYM_KEY; refused when unset)",
        ),
    ] = False,
    allow_incomplete: Annotated[
        bool,
        typer.Option(
            "--allow-incomplete",
            help="export even when the scores come from an "
            "unfinished run or mixed model versions (the manifest says so)",
        ),
    ] = False,
) -> None:
    """Export scores (and rings, ring members, merchants) with manifest.json: row counts,
    sha256 of every part, column schema, model and run version, filters."""
    from serving.connect import open_store
    from serving.export.command import run_export
    from serving.export.tables import ExportFilters
    from serving.settings import Settings

    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r}: use {' or '.join(FORMATS)}", param_hint="--format")
    chosen = tuple(_split(tables))
    unknown = [t for t in chosen if t not in TABLES]
    if unknown or not chosen:
        raise typer.BadParameter(f"{unknown}: use {', '.join(TABLES)}", param_hint="--tables")
    filters = ExportFilters(tuple(band or ()), ring, min_score, max_score, changed_by)
    settings = Settings()
    with open_store(settings) as store:
        manifest = run_export(store, settings, out, fmt, filters, chosen, _split(columns) or None,
                              pseudonymise, allow_incomplete)  # fmt: skip
    if manifest.get("warning"):
        console.print(f"[bold red]warning:[/] {manifest['warning']}")
    rows = ", ".join(f"{k} {v['rows']:,}" for k, v in manifest["tables"].items())
    console.print(f"exported run {manifest['run_id']} (model {manifest['model_version']}) to "
                  f"{out}: {rows}; manifest {out / 'manifest.json'}")  # fmt: skip
