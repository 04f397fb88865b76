"""Validation of landed sales files against the landing contract (DESIGN.md), and the checks' figures.

A row that breaks a rule goes to the rejects with file, line, column and reason. A file that cannot be
parsed at all raises `FileRejected` naming the file, so that nothing of its partition is loaded. Parsing
a file is `lib/sales_csv.py`'s job, a weather file `lib/weather_file.py`'s; both are re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import duckdb
import pandas as pd
import pyarrow as pa

from globolatte_dagster.lib.contract import BUSINESS_UNITS, PAYMENT_METHODS, REGIONS, SALES_COLUMNS
from globolatte_dagster.lib.csv_files import FileRejected, LandedFile, decode_csv
from globolatte_dagster.lib.sales_csv import empty_parsed_table, parse_sales_file
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
        tables.append(empty_parsed_table())
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
