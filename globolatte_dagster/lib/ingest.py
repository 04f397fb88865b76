"""Validation of landed sales and weather files against the landing contract (DESIGN.md).

A row that breaks a rule goes to the rejects with file, line, column and reason. A file that cannot be
parsed at all raises `FileRejected` naming the file, so that nothing of its partition is loaded.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from globolatte_dagster.lib.contract import BUSINESS_UNITS, PAYMENT_METHODS, REGIONS, SALES_COLUMNS
from globolatte_dagster.lib.csv_files import FileRejected, LandedFile, check_text, decode_csv
from globolatte_dagster.lib.schema import SALES, SALES_REJECTS
from globolatte_dagster.lib.weather_file import parse_weather

_TS_FORMAT = "%Y-%m-%d %H:%M:%S"
_TS_PATTERN = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"
__all__ = [
    "FileRejected",
    "LandedFile",
    "SalesBatch",
    "decode_csv",
    "parse_sales_file",
    "parse_weather",
    "validate_sales",
]


@dataclass
class SalesBatch:
    """Valid rows (the `raw.sales` columns) and rejects (the `raw.sales_rejects` columns) as Arrow tables.

    They stay in Arrow from the validation query to the warehouse write: a pandas frame of a region-year
    costs more time and memory than the validation itself. `valid` and `rejects` convert on demand.
    """

    valid_table: pa.Table
    rejects_table: pa.Table
    files: list[dict] = field(default_factory=list)

    @cached_property
    def valid(self) -> pd.DataFrame:
        return self.valid_table.to_pandas()

    @cached_property
    def rejects(self) -> pd.DataFrame:
        return self.rejects_table.to_pandas()

    def rejected_by_reason(self) -> dict[str, int]:
        if self.rejects_table.num_rows == 0:
            return {}
        kinds = self.rejects["reason"].str.split(":").str[0]
        return {str(k): int(v) for k, v in kinds.value_counts().sort_index().items()}

    def stats(self, known_products: Iterable[str]) -> dict:
        """What the raw-layer checks look at, computed over the valid rows (not trusting the rules)."""
        products = pa.table({"product_id": sorted({str(p) for p in known_products})})
        with duckdb.connect() as conn:
            conn.register(
                "valid_rows",
                self.valid_table.select(
                    ["region", "day", "transaction_id", "product_id", "transaction_date"]
                ),
            )
            conn.register("products", products)
            per_partition = {
                (r, d): int(n)
                for r, d, n in conn.execute(
                    "SELECT region, strftime(day, '%Y-%m-%d'), count(*) FROM valid_rows GROUP BY ALL"
                ).fetchall()
            }
            duplicates, off_day, unknown = conn.execute(
                """SELECT
                     (SELECT count(*) - count(DISTINCT (region, day, transaction_id, product_id)) FROM valid_rows),
                     (SELECT count(*) FROM valid_rows
                      WHERE CAST(transaction_date AS DATE) <> CAST(day AS DATE)),
                     (SELECT count(*) FROM valid_rows ANTI JOIN products USING (product_id))"""
            ).fetchone()
        return {
            "per_partition": per_partition,
            "duplicates": int(duplicates),
            "off_day": int(off_day),
            "unknown_products": int(unknown),
            "rows_valid": self.valid_table.num_rows,
            "rows_rejected": self.rejects_table.num_rows,
        }


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
_VALIDATE_SQL = r"""
WITH checked AS (
  SELECT b.*, u.unit_region, r.region_unit,
    TRY_CAST(total_price AS DOUBLE) AS _price,
    CASE WHEN length(transaction_date) = 19 THEN TRY_STRPTIME(transaction_date, '%Y-%m-%d %H:%M:%S') END AS _ts,
    TRY_CAST(quantity AS BIGINT) AS _qty,
    p.product_id IS NOT NULL AS _known_product,
    m.payment_method IS NOT NULL AS _known_payment
  FROM batch b
  LEFT JOIN units u USING (business_unit)
  LEFT JOIN region_units r USING (region)
  LEFT JOIN known_products p USING (product_id)
  LEFT JOIN payments m USING (payment_method)
), reasoned AS (  -- narrow: referenced three times, so DuckDB materialises it
  SELECT source_file, source_line, region, day, transaction_id, product_id,
    CASE
      WHEN _fields <> _width THEN ['', 'wrong field count: expected ' || _width || ' fields, found ' || _fields]
      WHEN transaction_id = '' THEN ['transaction_id', 'missing value: transaction_id is empty']
      WHEN business_unit = '' THEN ['business_unit', 'missing value: business_unit is empty']
      WHEN product_id = '' THEN ['product_id', 'missing value: product_id is empty']
      WHEN quantity = '' THEN ['quantity', 'missing value: quantity is empty']
      WHEN total_price = '' THEN ['total_price', 'missing value: total_price is empty']
      WHEN transaction_date = '' THEN ['transaction_date', 'missing value: transaction_date is empty']
      WHEN payment_method = '' THEN ['payment_method', 'missing value: payment_method is empty']
      WHEN unit_region IS NULL THEN ['business_unit',
        'unknown business unit: ''' || business_unit || ''' is not one of ' || $unit_list]
      WHEN unit_region <> region THEN ['business_unit',
        'wrong business unit: ''' || business_unit || ''' belongs to ' || unit_region
        || ', the folder is ' || region || ' (' || region_unit || ')']
      WHEN NOT _known_product THEN ['product_id',
        'unknown product: ''' || product_id || ''' is not in reference/products.csv']
      -- a whole number: the cast must not have rounded (1.5) nor read a float spelling (1e3)
      WHEN _qty IS NULL OR _qty < 1 OR CAST(_qty AS VARCHAR) <> ltrim(ltrim(quantity, '+'), '0') THEN ['quantity',
        'bad quantity: ''' || quantity || ''' is not a whole number >= 1']
      WHEN _price IS NULL OR NOT isfinite(_price) THEN ['total_price',
        'bad total_price: ''' || total_price || ''' is not a decimal']
      WHEN _price < 0 THEN ['total_price', 'bad total_price: ''' || total_price || ''' is negative']
      WHEN _ts IS NULL THEN ['transaction_date',
        'bad timestamp: ''' || transaction_date || ''' is not YYYY-MM-DD HH:MM:SS']
      WHEN CAST(_ts AS DATE) <> day THEN ['transaction_date',
        'timestamp off the partition day: ''' || transaction_date || ''' is not on ' || CAST(day AS VARCHAR)]
      WHEN NOT _known_payment THEN ['payment_method',
        'bad payment_method: ''' || payment_method || ''' is not one of ' || $payment_list]
    END AS _why
  FROM checked
), repeated AS (  -- keys seen more than once among valid rows: only these need ranking
  SELECT region, day, transaction_id, product_id FROM reasoned WHERE _why IS NULL
  GROUP BY ALL HAVING count(*) > 1
), ranked AS (
  SELECT r.source_file, r.source_line,
    row_number() OVER w AS _nth, first_value(r.source_file || ':' || r.source_line) OVER w AS _first
  FROM reasoned r SEMI JOIN repeated USING (region, day, transaction_id, product_id)
  WHERE r._why IS NULL
  WINDOW w AS (PARTITION BY r.region, r.day, r.transaction_id, r.product_id ORDER BY r.source_file, r.source_line)
), bad AS (
  SELECT r.source_file, r.source_line,
    COALESCE(r._why, CASE WHEN k._nth > 1 THEN ['transaction_id',
      'duplicate row: (transaction_id, product_id) already loaded from ' || k._first] END) AS _reason
  FROM reasoned r LEFT JOIN ranked k USING (source_file, source_line)
  WHERE r._why IS NOT NULL OR k._nth > 1
)
SELECT b.*, bad._reason FROM batch b JOIN bad USING (source_file, source_line)
"""


def validate_sales(files: Iterable[LandedFile], known_products: Iterable[str]) -> SalesBatch:
    """Validate every file of one or more (region, day) partitions, in bulk.

    Raises FileRejected for a file that cannot be parsed at all; otherwise splits rows into valid rows
    (the `raw.sales` columns) and rejects (the `raw.sales_rejects` columns).
    """
    tables: list[pa.Table] = []
    file_info: list[dict] = []
    for lf in sorted(files, key=lambda f: f.path):
        table = parse_sales_file(lf)
        tables.append(table)
        file_info.append(
            {"path": lf.path, "bytes": len(lf.data), "rows": table.num_rows, "fingerprint": lf.fingerprint}
        )
    if not tables:  # nothing landed: typed empty tables from the same query
        tables.append(
            _with_context(
                LandedFile("", "", date(1970, 1, 1), b""),
                pa.table({c: pa.array([], pa.string()) for c in SALES_COLUMNS}),
                list(SALES_COLUMNS),
                np.zeros(0, dtype=np.int64),
                np.zeros(0, dtype=np.int64),
            )
        )
    params = {"unit_list": ", ".join(BUSINESS_UNITS), "payment_list": ", ".join(PAYMENT_METHODS)}
    lookups = {
        "units": pa.table(
            {"business_unit": list(BUSINESS_UNITS), "unit_region": list(BUSINESS_UNITS.values())}
        ),
        "region_units": pa.table(
            {"region": list(REGIONS), "region_unit": [r.business_unit for r in REGIONS.values()]}
        ),
        "known_products": pa.table({"product_id": sorted({str(p) for p in known_products})}),
        "payments": pa.table({"payment_method": list(PAYMENT_METHODS)}),
    }
    with duckdb.connect() as conn:
        conn.register("batch", pa.concat_tables(tables))
        del tables
        for name, table in lookups.items():
            conn.register(name, table)
        # Only the rejected rows are materialised (few); the valid rows stream from the Arrow batch once more
        # (not copying the whole batch into a DuckDB table halves the time of a region-year).
        conn.execute(f"CREATE TEMP TABLE rejected AS {_VALIDATE_SQL}", params)
        valid = conn.sql(
            f"""SELECT region, CAST(day AS TIMESTAMP) AS day, transaction_id, business_unit, product_id,
                      NULLIF(customer_id, '') AS customer_id, CAST(quantity AS BIGINT) AS quantity,
                      CAST(total_price AS DOUBLE) AS total_price,
                      STRPTIME(transaction_date, '{_TS_FORMAT}') AS transaction_date,
                      payment_method, extra, source_file, source_line
               FROM batch ANTI JOIN rejected USING (source_file, source_line)"""
        ).to_arrow_table()
        rejects = conn.sql(
            """SELECT region, CAST(day AS TIMESTAMP) AS day, source_file, source_line,
                      NULLIF(_reason[1], '') AS column_name, _reason[2] AS reason,
                      transaction_id, business_unit, product_id, customer_id, quantity, total_price,
                      transaction_date, payment_method, extra
               FROM rejected ORDER BY source_file, source_line"""
        ).to_arrow_table()
    raw = [_raw_record(r) for r in rejects.select([*SALES_COLUMNS, "extra"]).to_pylist()]
    rejects = rejects.append_column("raw_record", pa.array(raw, pa.string()))
    return SalesBatch(valid.select(SALES.column_names), rejects.select(SALES_REJECTS.column_names), file_info)


def _raw_record(row: dict) -> str:
    record = {c: row[c] for c in SALES_COLUMNS}
    if isinstance(row.get("extra"), str):
        record.update(json.loads(row["extra"]))
    return json.dumps(record)
