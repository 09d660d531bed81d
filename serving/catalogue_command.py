"""`riskgraph query NAME [--param k=v …] [--json|--csv]` and `riskgraph query --list`."""

from __future__ import annotations

import csv
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from serving.settings import Settings


def _cell(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False) if isinstance(value, list | dict) else (
        "" if value is None else str(value))  # fmt: skip


def query_command(
    name: Annotated[str | None, typer.Argument(help="a catalogue query (see --list)")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="NAME=VALUE, typed as the query declares"),
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="describe the catalogue")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="rows as JSON lines")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="rows as CSV")] = False,
) -> None:
    """Run a named, parameterised, read-only query from the analysts' catalogue."""
    from serving.catalogue import QUERIES, CatalogueError, run_named

    console = Console()
    if list_ or name is None:
        table = Table("query", "parameters", "what it answers")
        for q in QUERIES:
            params = ", ".join(
                f"{n}:{p.kind}" + ("" if p.default is None else f"={p.default}")
                for n, p in q.params.items()
            )
            table.add_row(q.name, params, q.description + (" [GDS]" if q.gds_projection else ""))
        console.print(table)
        return
    if as_json and as_csv:
        raise CatalogueError("choose one of --json and --csv")
    from serving.connect import open_store
    from serving.queries import json_line
    from serving.run_flag import flagged, unfinished_run, warn

    settings = Settings()
    with open_store(settings) as store:
        rows = run_named(store, name, param or [], settings.query_timeout_s)
        flag = unfinished_run(store)  # rows of a half-finished run say so
    warn(flag)
    if as_json:
        for row in rows:
            typer.echo(json_line(flagged(row, flag)))
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        if rows:
            writer.writerow(rows[0].keys())
        writer.writerows([_cell(v) for v in row.values()] for row in rows)
    else:
        table = Table(*(escape(k) for k in (rows[0].keys() if rows else [])))
        for row in rows:
            table.add_row(*(escape(_cell(v)) for v in row.values()))
        console.print(table if rows else "no rows")
