"""Read one bundle table file (CSV or Parquet) into a frame of strings, or refuse the file.

Everything here is a whole-file problem: it raises :class:`BundleError` before anything is
written, naming the file, the line where there is one, and the problem
(``../shared/bundle-format.md``). Row rules live in :mod:`graph.bundle`.

Both formats end up as the same thing, every value a string and a missing value ``""``, so one
set of row rules serves both. Parquet values are turned into the text a CSV export would hold,
without the detours that change them: an integer id stays ``7`` (never ``7.0``), a float
``inf`` stays ``inf`` (so it is a bad number, not a huge one), a timestamp becomes ISO 8601.
"""

from __future__ import annotations

import codecs
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SUFFIXES = (".csv", ".parquet")
_CHUNK = 1 << 20


class BundleError(ValueError):
    """A bundle file cannot be read at all; nothing has been written."""


def find_table(directory: Path, table: str) -> Path | None:
    """The file holding ``table`` (``NAME.csv`` or ``NAME.parquet``), or None.

    Both present is refused: which one is meant cannot be guessed, and reading either would
    silently ignore the other.
    """
    found = [directory / f"{table}{s}" for s in SUFFIXES if (directory / f"{table}{s}").exists()]
    if len(found) > 1:
        raise BundleError(
            f"{found[0]} and {found[1]}: table '{table}' is given both as CSV and as Parquet; "
            "keep one of them"
        )
    return found[0] if found else None


def read_table(path: Path) -> pd.DataFrame:
    """The table in ``path`` as strings (missing values ``""``), column names stripped.

    Raises:
        BundleError: unreadable file, not UTF-8 (with line and byte offset), empty file,
            a row with more fields than the header, or a column name that appears twice.
    """
    try:
        frame = _read_parquet(path) if path.suffix == ".parquet" else _read_csv(path)
    except BundleError:
        raise
    except UnicodeDecodeError as exc:
        raise BundleError(f"{path}: not UTF-8: {_utf8_error(path, exc)}") from exc
    except pd.errors.EmptyDataError as exc:
        raise BundleError(f"{path}: empty file, a header row is required") from exc
    except (pd.errors.ParserError, pa.ArrowException, OSError, ValueError) as exc:
        raise BundleError(f"{path}: cannot be read: {str(exc).strip()}") from exc
    return frame


def _check_names(path: Path, names: list[str]) -> list[str]:
    """Stripped column names; a name given twice stops the import (which one is meant?).

    Empty names (a trailing comma on every line) are unnamed extra columns, ignored like any
    column outside the contract.
    """
    stripped = [str(n).strip() for n in names]
    twice = sorted(name for name, n in Counter(stripped).items() if n > 1 and name)
    if twice:
        raise BundleError(
            f"{path}: column name(s) {', '.join(repr(t) for t in twice)} appear more than once "
            "in the header; each column must be named once"
        )
    return stripped


def _read_csv(path: Path) -> pd.DataFrame:
    """CSV with the header read as a plain row, so pandas cannot rename a repeated column
    (``amount.1``) or turn a surplus field into an index: both become errors instead."""
    frame = pd.read_csv(
        path,
        header=None,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        encoding="utf-8",
        index_col=False,
    )
    names = _check_names(path, frame.iloc[0].tolist())
    frame = frame.iloc[1:].reset_index(drop=True)
    frame.columns = names
    return frame.fillna("")


def _utf8_error(path: Path, exc: UnicodeDecodeError) -> str:
    """Where the first invalid byte is: line (1-based, the header is line 1) and byte offset.

    The parser's own offset is relative to one of its read buffers, so the file is scanned
    again here (only on this error path), in chunks, carrying a multi-byte sequence cut at a
    chunk's end over to the next chunk.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with path.open("rb") as fh:
        while True:
            block = fh.read(_CHUNK)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as err:
                # err.start indexes the decoder's pending bytes + this block.
                pending = len(err.object) - len(block)
                at = err.start - pending
                line += block.count(b"\n", 0, max(at, 0))
                bad = err.object[err.start : err.start + 1].hex()
                return f"{err.reason} (byte 0x{bad}) at line {line}, byte offset {offset + at}"
            if not block:
                break
            line += block.count(b"\n")
            offset += len(block)
    return f"{exc.reason}"


def _read_parquet(path: Path) -> pd.DataFrame:
    names = _check_names(path, pq.read_schema(path).names)
    table = pq.read_table(path)
    columns = {name: _as_strings(path, name, table.column(i)) for i, name in enumerate(names)}
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows), dtype=object)


def _as_strings(path: Path, name: str, column: pa.ChunkedArray) -> np.ndarray:
    """One Parquet column as the strings a CSV export would hold (null → ``""``)."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_floating(kind):
        return _float_texts(column)
    if pa.types.is_timestamp(kind):
        # A zoned timestamp in UTC with ``Z``; a naive one as it is (UTC by the contract).
        stamps = column.to_pandas()
        if kind.tz is not None:
            stamps = stamps.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        else:
            stamps = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
        return stamps.astype(object).where(stamps.notna(), "").to_numpy(dtype=object)
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        out = []
        for row, value in enumerate(column.to_pylist(), start=1):
            try:
                out.append("" if value is None else value.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise BundleError(
                    f"{path}: column '{name}', row {row}: not UTF-8 ({exc.reason} at byte "
                    f"{exc.start} of the value)"
                ) from exc
        return np.array(out, dtype=object)
    if pa.types.is_nested(kind):
        raise BundleError(f"{path}: column '{name}' has type {kind}; expected plain values")
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        column = pc.cast(column, pa.string())  # integers, booleans, decimals, dates
    return np.array(pc.fill_null(column, "").to_pylist(), dtype=object)


def _float_texts(column: pa.ChunkedArray) -> np.ndarray:
    """Floats as text: integral values without ``.0`` (a float-typed id ``7.0`` is ``7``),
    non-finite ones as ``inf``/``nan`` so that the number rules reject them, null as ``""``."""
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    null = column.is_null().to_numpy(zero_copy_only=False)
    out = values.astype(str).astype(object)  # shortest round-trip repr: 0.1, 1e+20, inf, nan
    integral = np.isfinite(values) & (np.abs(values) < 2**53)
    integral[integral] = values[integral] == np.floor(values[integral])
    out[integral] = values[integral].astype(np.int64).astype(str)
    out[null] = ""
    return out
