"""CSV text for the generator's tables, built with numpy digit arithmetic and arrow kernels.

At a million users the bundle has tens of millions of fields; formatting them one Python
object at a time (``pandas.to_csv``'s float format, ``numpy.datetime_as_string``) dominated the
run. Here ids and timestamps are fixed-width digit matrices viewed as arrow strings, rows are
joined by arrow's element-wise join, and the output is written in chunks so memory stays flat.
The text is what ``DataFrame.to_csv(index=False, lineterminator="\\n", float_format="%.2f")``
writes: a header row, RFC 4180 quoting only where a field holds a comma, quote or line break,
empty fields for missing values, floats with two decimals.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

DAY = 86_400
CHUNK_ROWS = 1_000_000
Column: TypeAlias = np.ndarray | pd.Series | pa.Array


def _s(text: str) -> pa.Scalar:
    """A large_string scalar: arrow's join kernels want every argument of one string type."""
    return pa.scalar(text, pa.large_string())


def _fixed_width(matrix: np.ndarray) -> pa.Array:
    """Rows of a (n, width) uint8 matrix of ASCII codes as an arrow string array, no copy."""
    n, width = matrix.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    data = np.ascontiguousarray(matrix)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _digits(out: np.ndarray, values: np.ndarray, first: int, width: int) -> None:
    """Write ``values`` zero-padded into columns ``first``..``first + width`` of ``out``."""
    for k in range(width):
        out[:, first + k] = (values // 10 ** (width - 1 - k)) % 10 + 48


def ids(prefix: str, index: np.ndarray, width: int) -> pa.Array:
    """Zero-padded ids such as U000001 for 0-based ``index``; all widen if one needs more digits."""
    number = np.asarray(index, dtype=np.int64) + 1
    width = max(width, len(str(int(number.max()))) if len(number) else width)
    out = np.empty((len(number), len(prefix) + width), dtype=np.uint8)
    out[:, : len(prefix)] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    _digits(out, number, len(prefix), width)
    return _fixed_width(out)


def iso(seconds: np.ndarray) -> pa.Array:
    """Seconds since epoch (years 0-9999) to ISO 8601 UTC strings with a `Z` suffix."""
    seconds = np.asarray(seconds, dtype=np.int64)
    if len(seconds) and (seconds.min() < -62_167_219_200 or seconds.max() > 253_402_300_799):
        raise ValueError("timestamp outside years 0-9999 (an unset time?)")
    days, second_of_day = np.divmod(seconds, DAY)
    # Civil date from days since 1970-01-01 (H. Hinnant's days_from_civil, inverted).
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    out = np.empty((len(seconds), 20), dtype=np.uint8)
    out[:] = np.frombuffer(b"0000-00-00T00:00:00Z", dtype=np.uint8)
    for first, width, values in (
        (0, 4, year),
        (5, 2, month),
        (8, 2, day),
        (11, 2, second_of_day // 3600),
        (14, 2, second_of_day // 60 % 60),
        (17, 2, second_of_day % 60),
    ):
        _digits(out, values, first, width)
    return _fixed_width(out)


def _two_decimals(values: np.ndarray) -> pa.Array:
    """Floats as "%.2f" would write them; NaN becomes a null (an empty field)."""
    missing = np.isnan(values)
    cents = np.rint(np.abs(np.where(missing, 0.0, values)) * 100).astype(np.int64)
    whole = pc.cast(pa.array(cents // 100), pa.large_string())
    frac = np.empty((len(cents), 2), dtype=np.uint8)
    _digits(frac, cents % 100, 0, 2)
    sign = pa.array(np.where(np.signbit(values) & ~missing, "-", ""), pa.large_string())
    text = pc.binary_join_element_wise(sign, whole, _s("."), _s(""))
    text = pc.binary_join_element_wise(text, _fixed_width(frac), _s(""))
    return pc.if_else(pa.array(missing), pa.scalar(None, pa.large_string()), text)


def _text(values: Column) -> pa.Array:
    """One column as arrow strings, nulls included; numbers formatted, strings quoted."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        series = values if isinstance(values, pd.Series) else pd.Series(values)
        if pd.api.types.is_float_dtype(series.dtype):
            return _two_decimals(series.to_numpy(dtype=np.float64, na_value=np.nan))
        values = pa.array(series, from_pandas=True)
    if pa.types.is_boolean(values.type):
        values = pc.cast(values, pa.int8())
    text = pc.cast(values, pa.large_string())
    if pa.types.is_integer(values.type):
        return text
    needs_quotes = pc.match_substring_regex(text, r'[",\n\r]')
    if pc.any(needs_quotes).as_py():
        escaped = pc.replace_substring(text, '"', '""')
        quoted = pc.binary_join_element_wise(_s('"'), escaped, _s('"'), _s(""))
        text = pc.if_else(needs_quotes, quoted, text)
    return text


def _rows(column: Column, first: int, last: int) -> Column:
    return column.iloc[first:last] if isinstance(column, pd.Series) else column[first:last]


def _quote_header(name: str) -> str:
    return f'"{name.replace(chr(34), chr(34) * 2)}"' if any(c in name for c in ',"\n\r') else name


def write_csv(path: Path, columns: Mapping[str, Column], chunk_rows: int = CHUNK_ROWS) -> int:
    """Write equal-length columns as one CSV file; returns the number of data rows."""
    names = list(columns)
    n_rows = len(next(iter(columns.values()))) if names else 0
    with path.open("wb") as out:
        out.write((",".join(_quote_header(name) for name in names) + "\n").encode("utf-8"))
        for first in range(0, n_rows, chunk_rows):
            last = min(first + chunk_rows, n_rows)
            fields = [pc.fill_null(_text(_rows(c, first, last)), _s("")) for c in columns.values()]
            rows = pc.binary_join_element_wise(*fields, _s(","))
            lines = pc.binary_join_element_wise(rows, _s(""), _s("\n"))
            offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
            start = int(offsets[lines.offset])
            stop = int(offsets[lines.offset + len(lines)])
            out.write(memoryview(lines.buffers()[2])[start:stop])
    return n_rows
