"""Validation of landed sales and weather files against the landing contract (DESIGN.md).

A row that breaks a rule goes to the rejects with file, line, column and reason. A file that cannot be
parsed at all raises `FileRejected` naming the file, so that nothing of its partition is loaded.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from globolatte_dagster.lib.contract import BUSINESS_UNITS, PAYMENT_METHODS, REGIONS, SALES_COLUMNS
from globolatte_dagster.lib.schema import SALES, SALES_REJECTS, WEATHER

_TS_FORMAT = "%Y-%m-%d %H:%M:%S"
_TS_PATTERN = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"


class FileRejected(ValueError):
    """A landed file that cannot be parsed at all."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class LandedFile:
    path: str  # landing path, e.g. sales/america/2024-09-22/sample.csv
    region: str
    day: date
    data: bytes
    fingerprint: str = ""


@dataclass
class SalesBatch:
    valid: pd.DataFrame
    rejects: pd.DataFrame
    files: list[dict] = field(default_factory=list)

    def rejected_by_reason(self) -> dict[str, int]:
        if self.rejects.empty:
            return {}
        kinds = self.rejects["reason"].str.split(":").str[0]
        return {str(k): int(v) for k, v in kinds.value_counts().sort_index().items()}


def decode_csv(path: str, data: bytes, required: Sequence[str]) -> tuple[list[str], list[list[str]], list[int]]:
    """Parse a UTF-8 CSV with a header. Returns header, rows and each row's 1-based line number."""
    if not data.strip():
        raise FileRejected(path, "the file is empty")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise FileRejected(path, "UTF-16 text, not UTF-8 as the contract requires")
    if b"\x00" in data:
        raise FileRejected(path, "binary content (NUL bytes), not a UTF-8 CSV")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected(path, f"not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=",", quotechar='"', strict=False)
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error) as exc:
        raise FileRejected(path, f"no readable header line ({exc})") from exc
    missing = [c for c in required if c not in header]
    if missing:
        hint = ""
        if len(header) == 1 and any(d in header[0] for d in (";", "\t", "|")):
            hint = " (the header is one field: wrong delimiter? the contract is comma separated)"
        raise FileRejected(path, f"missing required columns {', '.join(missing)}{hint}")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise FileRejected(path, f"duplicate column names {', '.join(dupes)}")
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise FileRejected(path, f"CSV syntax error near line {reader.line_num}: {exc}") from exc
    return header, rows, lines


def _frame(lf: LandedFile, header: list[str], rows: list[list[str]], lines: list[int]) -> pd.DataFrame:
    width = len(header)
    counts = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    padded = [r if len(r) == width else (r + [""] * width)[:width] for r in rows]
    df = pd.DataFrame(padded, columns=header, dtype=object) if rows else pd.DataFrame(columns=header)
    df = df.apply(lambda s: s.str.strip()) if rows else df
    extra_cols = [c for c in header if c not in SALES_COLUMNS]
    if extra_cols and rows:
        df["extra"] = [json.dumps(dict(zip(extra_cols, vals, strict=True))) for vals in df[extra_cols].itertuples(index=False, name=None)]
    else:
        df["extra"] = None
    df["_fields"] = counts
    df["_width"] = width
    df["source_file"] = lf.path
    df["source_line"] = np.asarray(lines, dtype=np.int64)
    df["region"] = lf.region
    df["day"] = lf.day
    return df


def validate_sales(files: Iterable[LandedFile], known_products: Iterable[str]) -> SalesBatch:
    """Validate every file of one or more (region, day) partitions.

    Raises FileRejected for a file that cannot be parsed at all; otherwise splits rows into valid rows
    (the `raw.sales` columns) and rejects (the `raw.sales_rejects` columns).
    """
    frames: list[pd.DataFrame] = []
    file_info: list[dict] = []
    for lf in sorted(files, key=lambda f: f.path):
        header, rows, lines = decode_csv(lf.path, lf.data, SALES_COLUMNS)
        frames.append(_frame(lf, header, rows, lines))
        file_info.append({"path": lf.path, "bytes": len(lf.data), "rows": len(rows), "fingerprint": lf.fingerprint})
    if not frames:
        return SalesBatch(_empty(SALES.column_names), _empty(SALES_REJECTS.column_names), file_info)
    raw = pd.concat(frames, ignore_index=True)
    raw_records = raw.drop(columns=["extra", "_fields", "_width", "region", "day", "source_file", "source_line"])
    reason, column = _sales_reasons(raw, set(known_products))
    bad = reason.notna()
    rejects = pd.DataFrame(
        {
            "region": raw["region"],
            "day": pd.to_datetime(raw["day"]),
            "source_file": raw["source_file"],
            "source_line": raw["source_line"],
            "column_name": column,
            "reason": reason,
        }
    )[bad]
    rejects["raw_record"] = [
        json.dumps({k: v for k, v in rec.items() if isinstance(v, str)}) for rec in raw_records[bad].to_dict("records")
    ]
    ok = raw[~bad]
    valid = pd.DataFrame(
        {
            "region": ok["region"],
            "day": pd.to_datetime(ok["day"]),
            "transaction_id": ok["transaction_id"],
            "business_unit": ok["business_unit"],
            "product_id": ok["product_id"],
            "customer_id": ok["customer_id"].where(ok["customer_id"] != "", None),
            "quantity": pd.to_numeric(ok["quantity"]).astype("int64"),
            "total_price": pd.to_numeric(ok["total_price"]).astype("float64"),
            "transaction_date": pd.to_datetime(ok["transaction_date"], format=_TS_FORMAT),
            "payment_method": ok["payment_method"],
            "extra": ok["extra"],
            "source_file": ok["source_file"],
            "source_line": ok["source_line"].astype("int64"),
        }
    )
    return SalesBatch(valid.reset_index(drop=True), rejects[SALES_REJECTS.column_names].reset_index(drop=True), file_info)


def _sales_reasons(raw: pd.DataFrame, products: set[str]) -> tuple[pd.Series, pd.Series]:
    """The first rule each row breaks (reason, column), or NaN for a valid row."""
    n = len(raw)
    reason = pd.Series([None] * n, index=raw.index, dtype=object)
    column = pd.Series([None] * n, index=raw.index, dtype=object)

    def flag(mask: pd.Series, col: str | None, text: pd.Series | str) -> None:
        todo = mask & reason.isna()
        if not todo.any():
            return
        reason[todo] = text[todo] if isinstance(text, pd.Series) else text
        column[todo] = col

    fields = raw["_fields"]
    flag(fields != raw["_width"], None, "wrong field count: expected " + raw["_width"].astype(str) + " fields, found " + fields.astype(str))
    for col in ("transaction_id", "business_unit", "product_id", "quantity", "total_price", "transaction_date", "payment_method"):
        flag(raw[col] == "", col, f"missing value: {col} is empty")

    bu = raw["business_unit"]
    unit_region = bu.map(BUSINESS_UNITS)
    flag(unit_region.isna(), "business_unit", "unknown business unit: '" + bu + "' is not one of " + ", ".join(BUSINESS_UNITS))
    expected = raw["region"].map({k: r.business_unit for k, r in REGIONS.items()})
    flag(
        unit_region.notna() & (unit_region != raw["region"]),
        "business_unit",
        "wrong business unit: '" + bu + "' belongs to " + unit_region.fillna("") + ", the folder is " + raw["region"] + " (" + expected + ")",
    )
    flag(~raw["product_id"].isin(products), "product_id", "unknown product: '" + raw["product_id"] + "' is not in reference/products.csv")

    qty = raw["quantity"]
    qty_ok = qty.str.fullmatch(r"\+?\d+") & (pd.to_numeric(qty, errors="coerce") >= 1)
    flag(~qty_ok.fillna(False).astype(bool), "quantity", "bad quantity: '" + qty + "' is not a whole number >= 1")
    price = pd.to_numeric(raw["total_price"], errors="coerce")
    flag(price.isna() | ~np.isfinite(price.fillna(0)), "total_price", "bad total_price: '" + raw["total_price"] + "' is not a decimal")
    flag(price < 0, "total_price", "bad total_price: '" + raw["total_price"] + "' is negative")

    ts_text = raw["transaction_date"]
    ts = pd.to_datetime(ts_text.where(ts_text.str.fullmatch(_TS_PATTERN).fillna(False).astype(bool)), format=_TS_FORMAT, errors="coerce")
    flag(ts.isna(), "transaction_date", "bad timestamp: '" + ts_text + "' is not YYYY-MM-DD HH:MM:SS")
    on_day = ts.dt.normalize() == pd.to_datetime(raw["day"])
    flag(ts.notna() & ~on_day, "transaction_date", "timestamp off the partition day: '" + ts_text + "' is not on " + raw["day"].astype(str))
    flag(~raw["payment_method"].isin(PAYMENT_METHODS), "payment_method", "bad payment_method: '" + raw["payment_method"] + "' is not one of " + ", ".join(PAYMENT_METHODS))

    # (transaction_id, product_id) is unique within region and day: the first valid row wins.
    ok = reason.isna()
    keys = raw.loc[ok, ["region", "day", "transaction_id", "product_id"]]
    dup = keys.duplicated(keep="first")
    if dup.any():
        first = raw.loc[keys[~dup].index].set_index(["region", "day", "transaction_id", "product_id"])
        dup_idx = keys[dup].index
        where = [
            f"{first.loc[tuple(k), 'source_file']}:{first.loc[tuple(k), 'source_line']}"
            for k in keys.loc[dup_idx].itertuples(index=False, name=None)
        ]
        reason[dup_idx] = [f"duplicate row: (transaction_id, product_id) already loaded from {w}" for w in where]
        column[dup_idx] = "transaction_id"
    return reason, column


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


WEATHER_REQUIRED = ("date", "temp_max_c", "temp_min_c", "precip_mm")


def parse_weather(lf: LandedFile) -> pd.DataFrame:
    """One region-day of weather. Raises FileRejected when the file is unusable."""
    header, rows, _ = decode_csv(lf.path, lf.data, WEATHER_REQUIRED)
    if not rows:
        raise FileRejected(lf.path, "no weather row")
    rec = dict(zip(header, rows[0], strict=False))
    if rec.get("date", "").strip() != lf.day.isoformat():
        raise FileRejected(lf.path, f"date '{rec.get('date')}' does not match the file name day {lf.day}")
    values = {}
    for col in ("temp_max_c", "temp_min_c", "precip_mm"):
        try:
            values[col] = float(rec[col]) if rec[col].strip() != "" else None
        except ValueError as exc:
            raise FileRejected(lf.path, f"{col} '{rec[col]}' is not a number") from exc
    return pd.DataFrame(
        [{"region": lf.region, "day": pd.Timestamp(lf.day), **values, "source_file": lf.path}], columns=WEATHER.column_names
    )
