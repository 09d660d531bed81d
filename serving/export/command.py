"""``riskgraph export``: refuse mixed scores, read the tables, pseudonymise, write atomically."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from graph.neo4j.runs import IncompleteRunError, run_status
from graph.neo4j.store import GraphStore
from serving.export.pseudonym import ID_KINDS, check_key, key_id, pseudonymise_frame
from serving.export.tables import ExportFilters, read_table, select_columns
from serving.export.write import write_export
from serving.settings import Settings

DEFAULT_TABLES = ("users", "rings", "members")


def run_export(
    store: GraphStore,
    settings: Settings,
    out: Path,
    fmt: str = "parquet",
    filters: ExportFilters | None = None,
    tables: tuple[str, ...] = DEFAULT_TABLES,
    columns: list[str] | None = None,
    pseudonymise: bool = False,
    allow_incomplete: bool = False,
) -> dict[str, Any]:
    """Export the latest run's scores (and rings) into ``out``; returns the manifest.

    Refused while the stored scores come from an unfinished run or several model versions,
    unless ``allow_incomplete``: then the manifest says so in ``warning``.
    """
    filters = filters or ExportFilters()
    key = None
    if pseudonymise:  # checked first: nothing is read without a usable key
        secret = settings.pseudonym_key
        key = check_key(secret.get_secret_value() if secret else None)
    status = run_status(store)
    problem = status.problem()
    if status.latest is None:
        raise IncompleteRunError("no scoring run on the graph: run `riskgraph score` first")
    if problem and not allow_incomplete:
        raise IncompleteRunError(f"export refused: {problem} (or pass --allow-incomplete)")
    run = status.latest
    frames = {name: read_table(store, name, filters) for name in tables}
    if "users" in frames:
        frames["users"] = select_columns(frames["users"], columns, "users")
    if key is not None:
        frames = {name: pseudonymise_frame(key, frame) for name, frame in frames.items()}
    meta: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_version": run.version,
        "run_id": run.run_id,
        "run_at": run.at,
        "run_status": run.status,
        "filters": asdict(filters),
        "columns_selected": columns,
        "pseudonymised": key is not None,
        "pseudonymised_columns": sorted(ID_KINDS) if key is not None else [],
        "pseudonym_key_id": key_id(key) if key is not None else None,
        "warning": problem,
    }
    return write_export(out, frames, fmt, settings.export_part_rows, meta)
