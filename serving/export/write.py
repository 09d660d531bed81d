"""Write export tables as parts plus ``manifest.json``, so that no partial export looks done.

Everything is written into a hidden staging folder beside ``out`` (``.<name>.partial-<id>``)
and the folder is renamed to ``out`` only after the last part and the manifest are on disk.
A crash leaves the staging folder (no manifest, a name that says partial), never an ``out``
that looks complete; ``out`` must not exist yet (or be empty), so an old export is never
mixed with a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = ("parquet", "csv")
MANIFEST = "manifest.json"


class ExportTargetError(ValueError):
    """The output folder is unusable (holds files already, or is a file)."""


@dataclass
class Part:
    file: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class TableManifest:
    rows: int
    columns: list[dict[str, str]]
    parts: list[Part] = field(default_factory=list)


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """List cells (reasons) become one ``; ``-joined string: CSV has no lists."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object and out[col].map(lambda v: isinstance(v, list)).any():
            out[col] = out[col].map(lambda v: "; ".join(map(str, v)) if isinstance(v, list) else v)
    return out


def _write_part(frame: pd.DataFrame, path: Path, fmt: str, schema: pa.Schema | None) -> None:
    if fmt == "parquet":
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        pq.write_table(table, path, compression="zstd")
    else:
        _csv_ready(frame).to_csv(path, index=False)


def _columns(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def write_table(
    folder: Path, name: str, frame: pd.DataFrame, fmt: str, part_rows: int
) -> TableManifest:
    """``frame`` as ``<name>-00000.<fmt>``, … of at most ``part_rows`` rows each."""
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    manifest = TableManifest(rows=len(frame), columns=_columns(schema))
    starts = range(0, max(len(frame), 1), part_rows)  # an empty table still gets one part
    for i, start in enumerate(starts):
        path = folder / f"{name}-{i:05d}.{fmt}"
        part = frame.iloc[start : start + part_rows]
        _write_part(part, path, fmt, schema)
        manifest.parts.append(Part(path.name, len(part), path.stat().st_size, sha256_of(path)))
    return manifest


def _staging(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportTargetError(
            f"{out} exists and is not an empty folder; export into a new folder (an export "
            "is never merged with an older one)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    return stage


def write_export(
    out: Path, tables: dict[str, pd.DataFrame], fmt: str, part_rows: int, meta: dict[str, Any]
) -> dict[str, Any]:
    """Write every table and the manifest, then move the finished folder to ``out``."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    stage = _staging(out)
    try:
        written = {name: write_table(stage, name, frame, fmt, part_rows)
                   for name, frame in tables.items()}  # fmt: skip
        manifest = {**meta, "format": fmt, "tables": {k: asdict(v) for k, v in written.items()}}
        tmp = stage / f"{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        os.replace(tmp, stage / MANIFEST)
        if out.exists():
            out.rmdir()  # checked empty above
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return manifest


def verify_export(out: Path) -> list[str]:
    """Problems of a written export (empty when every part matches the manifest)."""
    manifest = json.loads((out / MANIFEST).read_text())
    problems = []
    for name, table in manifest["tables"].items():
        rows = 0
        for part in table["parts"]:
            path = out / part["file"]
            if not path.exists():
                problems.append(f"{name}: {part['file']} missing")
            elif sha256_of(path) != part["sha256"]:
                problems.append(f"{name}: {part['file']} checksum differs")
            rows += part["rows"]
        if rows != table["rows"]:
            problems.append(f"{name}: parts hold {rows} rows, manifest says {table['rows']}")
    return problems
