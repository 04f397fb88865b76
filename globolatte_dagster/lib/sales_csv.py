"""Sales CSV files parsed into Arrow, one row per line with its file, line and field count.

A fast path reads well-formed files with pyarrow's CSV reader and keeps malformed lines (wrong field
counts) for the rejects; files it cannot read exactly (blank lines, quoting it would bend) go through the
standard library's csv module. Either way the result has the same columns, for `lib/ingest.validate_sales`.
"""

from __future__ import annotations

import csv
import io
import threading
from datetime import date

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from globolatte_dagster.lib.contract import SALES_COLUMNS
from globolatte_dagster.lib.csv_files import FileRejected, LandedFile, check_text, decode_csv


def _line_layout(data: bytes, start: int) -> tuple[np.ndarray, np.ndarray]:
    """Line numbers and field counts of the non-blank lines after the header (a file without quotes)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    ends = np.append(newlines, len(buf))
    starts = np.concatenate(([0], newlines + 1))
    keep = starts < len(buf)  # no phantom line after a final newline
    starts, ends = starts[keep], ends[keep]
    # a trailing carriage return belongs to the line ending
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
    lengths = ends - starts - has_cr
    commas = np.concatenate(([0], np.cumsum(buf == 44)))
    fields = commas[ends] - commas[starts] + 1
    line_no = np.arange(1, len(starts) + 1)
    body = (line_no > start) & (lengths > 0)
    return line_no[body], fields[body]


def _parse_fast(lf: LandedFile, header: list[str]) -> pa.Table | None:
    """Parse a quote-free file with Arrow; None when the fast path does not apply."""
    if b'"' in lf.data:
        return None
    width = len(header)
    bad: list[tuple[int, int]] = []  # (row number among non-blank lines, field count)

    def keep_bad(row) -> str:
        if row.number is None:
            raise ValueError("row numbers need the single-threaded parser")
        bad.append((row.number, row.actual_columns))
        return "skip"

    table = pacsv.read_csv(
        io.BytesIO(lf.data),
        read_options=pacsv.ReadOptions(column_names=header, skip_rows=1, use_threads=False),
        parse_options=pacsv.ParseOptions(delimiter=",", invalid_row_handler=keep_bad),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False
        ),
    )
    n_good = table.num_rows
    if _has_blank_line(lf.data):
        # Arrow numbers non-blank lines only: take the line numbers from the byte layout instead
        lines, fields = _line_layout(lf.data, 1)
        good = fields == width
        if n_good != int(good.sum()) or len(bad) != int((~good).sum()):
            return None  # the layout and the parser disagree: take the exact path
        good_lines, bad_lines, bad_fields = lines[good], lines[~good], fields[~good]
    else:
        bad_lines = np.array([b[0] for b in bad], dtype=np.int64)
        bad_fields = np.array([b[1] for b in bad], dtype=np.int64)
        good_lines = np.arange(2, n_good + len(bad) + 2, dtype=np.int64)
        if len(bad):
            good_lines = good_lines[~np.isin(good_lines, bad_lines)]
        if len(good_lines) != n_good:
            return None
    table = pa.table({c: pc.utf8_trim_whitespace(table[c]) for c in header})
    lines, counts = good_lines, np.full(n_good, width, dtype=np.int64)
    if len(bad_lines):
        blanks = pa.table({c: pa.array([""] * len(bad_lines), pa.string()) for c in header})
        table = pa.concat_tables([table, blanks])
        lines = np.concatenate((good_lines, bad_lines))
        counts = np.concatenate((counts, bad_fields))
    return _with_context(lf, table, header, lines, counts)


def _has_blank_line(data: bytes) -> bool:
    return b"\n\n" in data or b"\n\r\n" in data or data.startswith((b"\n", b"\r\n"))


def _parse_exact(lf: LandedFile) -> pa.Table:
    header, rows, lines = decode_csv(lf.path, lf.data, SALES_COLUMNS)
    width = len(header)
    padded = [[v.strip() for v in (r + [""] * width)[:width]] for r in rows]
    table = pa.table({c: pa.array([r[i] for r in padded], pa.string()) for i, c in enumerate(header)})
    counts = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    return _with_context(lf, table, header, np.asarray(lines, dtype=np.int64), counts)


def _with_context(
    lf: LandedFile, table: pa.Table, header: list[str], lines: np.ndarray, counts: np.ndarray
) -> pa.Table:
    n = table.num_rows
    extra_cols = [c for c in header if c not in SALES_COLUMNS]
    extra = _extra_json(table, extra_cols) if extra_cols and n else pa.nulls(n, pa.string())
    cols = {c: table[c] for c in SALES_COLUMNS}
    cols.update(
        extra=extra,
        _fields=pa.array(counts, pa.int64()),
        _width=pa.array(np.full(n, len(header), dtype=np.int64)),
        source_file=_constant(lf.path, n),
        source_line=pa.array(lines, pa.int64()),
        region=_constant(lf.region, n),
        day=pa.array(np.full(n, np.datetime64(lf.day, "D")), pa.date32()),
    )
    return pa.table(cols)


def _constant(value: str, n: int) -> pa.DictionaryArray:
    """A column holding one string n times, stored once (a dictionary with one entry)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value]))


_SCRATCH = threading.local()


def _scratch_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection per thread, for small per-file queries (a connect costs ~50 ms)."""
    if getattr(_SCRATCH, "conn", None) is None:
        _SCRATCH.conn = duckdb.connect()
    return _SCRATCH.conn


def _extra_json(table: pa.Table, columns: list[str]) -> pa.Array:
    """The columns beyond the contract as one JSON object per row, e.g. {"till":"7"}."""
    fields = ", ".join(
        "'{}': {}".format(c.replace("'", "''"), '"{}"'.format(c.replace('"', '""'))) for c in columns
    )
    conn = _scratch_connection()
    conn.register("extra_columns", table.select(columns))
    try:
        out = conn.sql(f"SELECT to_json({{{fields}}})::VARCHAR FROM extra_columns").to_arrow_table()
    finally:
        conn.unregister("extra_columns")
    return out.column(0).combine_chunks()


def parse_sales_file(lf: LandedFile) -> pa.Table:
    """One landed sales file as strings plus its context (file, line, field count, region, day).

    Raises FileRejected naming the file for anything that cannot be parsed, whatever the parser says.
    """
    try:
        header_text = check_text(lf.path, lf.data)
        _check_line_length(lf.path, lf.data)
        header = [h.strip() for h in next(csv.reader([header_text]))]
        if any(c not in header for c in SALES_COLUMNS) or len(set(header)) != len(header):
            return _parse_exact(lf)  # raises FileRejected with the exact problem
        return _parse_fast(lf, header) or _parse_exact(lf)
    except FileRejected:
        raise
    except Exception as exc:
        raise FileRejected(lf.path, f"could not be parsed ({type(exc).__name__}: {exc})") from exc


# A sales row is a few hundred bytes; a far longer line is a broken file (or not a sales export at all).
MAX_LINE_BYTES = 65_536


def _check_line_length(path: str, data: bytes) -> None:
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.concatenate(([-1], np.flatnonzero(buf == 10), [len(buf)]))
    lengths = np.diff(ends) - 1
    longest = int(lengths.argmax()) if len(lengths) else 0
    if len(lengths) and lengths[longest] > MAX_LINE_BYTES:
        raise FileRejected(
            path,
            f"line {longest + 1} is {int(lengths[longest]):,} bytes long (a sales row is at most "
            f"{MAX_LINE_BYTES:,}): a broken line ending or not a sales export",
        )


# The rejected rows with the first rule each breaks, as _reason = [column, reason]. Known values are bound
# as parameters.


def empty_parsed_table() -> pa.Table:
    """A parsed table with no row (what validation runs on when nothing landed)."""
    return _with_context(
        LandedFile("", "", date(1970, 1, 1), b""),
        pa.table({c: pa.array([], pa.string()) for c in SALES_COLUMNS}),
        list(SALES_COLUMNS),
        np.zeros(0, dtype=np.int64),
        np.zeros(0, dtype=np.int64),
    )
