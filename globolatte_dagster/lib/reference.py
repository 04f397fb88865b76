"""Reference snapshots (products, customers) and the calendar, as pure functions.

A row whose fields do not fit the header is rejected with file, line and reason, never padded or cut to
fit: an unquoted comma in a customer's name would otherwise shift the e-mail address into `location`.
Customer rows are also rejected when a kept column looks like an e-mail address or a field holds what
another column should (a shifted row that happens to have the header's field count). Reasons never quote
customer values: they are personal data.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import date

import holidays
import pandas as pd

from globolatte_dagster.lib.contract import CUSTOMER_COLUMNS, PRODUCT_COLUMNS, REGIONS, SERVINGS
from globolatte_dagster.lib.ingest import FileRejected, decode_csv
from globolatte_dagster.lib.schema import CALENDAR, CUSTOMERS, PRODUCTS

_EMAIL_LIKE = re.compile(r"\S@\S")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class RowReject:
    file: str
    line: int
    reason: str


@dataclass
class ReferenceLoad:
    """The valid rows of a reference snapshot and the rows rejected with their reasons."""

    frame: pd.DataFrame
    rejects: list[RowReject] = field(default_factory=list)
    rows_read: int = 0

    def rejected_by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rejects:
            kind = r.reason.split(":")[0]
            out[kind] = out.get(kind, 0) + 1
        return dict(sorted(out.items()))


def _rows(path: str, data: bytes, required) -> tuple[list[str], list[tuple[int, list[str]]], list[RowReject]]:
    """Rows whose field count equals the header's, stripped; the others as rejects."""
    header, rows, lines = decode_csv(path, data, required)
    width = len(header)
    good: list[tuple[int, list[str]]] = []
    rejects: list[RowReject] = []
    for row, line in zip(rows, lines, strict=True):
        if len(row) != width:
            reason = f"wrong field count: expected {width} fields, found {len(row)}"
            if any("\n" in v or "\r" in v for v in row):
                reason += " (a quote opened here is not closed: the field runs over several lines)"
            elif len(row) > width:
                reason += " (an unquoted comma inside a value?)"
            rejects.append(RowReject(path, line, reason))
            continue
        if not any(v.strip() for v in row):
            continue  # a line of empty fields (",,,,") is blank
        good.append((line, [v.strip() for v in row]))
    return header, good, rejects


def _unique(path: str, column: str, records: list[tuple[int, dict]], rejects: list[RowReject]):
    """Drop rows with an empty or repeated key; the first occurrence wins."""
    first: dict[str, int] = {}
    kept = []
    for line, rec in records:
        key = rec[column]
        if key == "":
            rejects.append(RowReject(path, line, f"missing value: {column} is empty"))
        elif key in first:
            rejects.append(RowReject(path, line, f"duplicate {column}: already at line {first[key]}"))
        else:
            first[key] = line
            kept.append((line, rec))
    return kept


def _no_rows_left(path: str, load_rejects: list[RowReject], n: int) -> None:
    if n and len(load_rejects) >= n:
        first = load_rejects[0]
        raise FileRejected(
            path, f"every one of its {n} rows was rejected (line {first.line}: {first.reason})"
        )


def read_products(path: str, data: bytes) -> ReferenceLoad:
    """The product catalogue; rows that break a rule are rejected with line and reason."""
    header, rows, rejects = _rows(path, data, PRODUCT_COLUMNS)
    records = [(line, dict(zip(header, row, strict=True))) for line, row in rows]
    kept = []
    for line, rec in _unique(path, "product_id", records, rejects):
        serving = (rec.get("serving") or "none").lower()
        if serving not in SERVINGS:
            rejects.append(
                RowReject(path, line, f"bad serving: '{rec['serving']}' is not one of {', '.join(SERVINGS)}")
            )
            continue
        price = pd.to_numeric(rec["price"], errors="coerce") if rec["price"] else None
        if rec["price"] and (pd.isna(price) or price < 0 or price == float("inf")):
            rejects.append(RowReject(path, line, f"bad price: '{rec['price']}' is not a decimal >= 0"))
            continue
        kept.append({**rec, "serving": serving, "price": None if price is None else float(price)})
    _no_rows_left(path, rejects, len(rows) + _shape(rejects))
    df = pd.DataFrame(kept, columns=[*PRODUCTS.column_names]) if kept else _empty(PRODUCTS)
    df["price"] = pd.to_numeric(df["price"]).astype("float64")
    rejects.sort(key=lambda r: r.line)
    return ReferenceLoad(
        df[PRODUCTS.column_names].reset_index(drop=True), rejects, len(rows) + _shape(rejects)
    )


def parse_products(path: str, data: bytes) -> pd.DataFrame:
    return read_products(path, data).frame


def email_hash(emails: pd.Series, key: str) -> pd.Series:
    """Keyed hash (HMAC-SHA256) of the normalised email; empty emails stay empty."""
    secret = key.encode()

    def one(e: object) -> str | None:
        if not isinstance(e, str) or not e.strip():
            return None
        return hmac.new(secret, e.strip().lower().encode(), hashlib.sha256).hexdigest()

    return emails.map(one)


_KEPT_CUSTOMER_COLUMNS = ("customer_id", "location", "signup_date")


def _customer_problem(rec: dict) -> str | None:
    """Why a customer row with the right field count is still wrong (values are not quoted)."""
    for col in _KEPT_CUSTOMER_COLUMNS:
        if _EMAIL_LIKE.search(rec.get(col, "")):
            return (
                f"e-mail address in {col}: the row's fields are shifted (an unquoted comma in a name?) "
                "or the column holds personal data"
            )
    email = rec.get("email", "")
    if email and "@" not in email:
        return "bad email: the value is not an address (the row's fields are probably shifted)"
    signup = rec.get("signup_date", "")
    if signup:
        try:
            if not _DAY.match(signup):
                raise ValueError
            date.fromisoformat(signup)
        except ValueError:
            return "bad signup_date: not a YYYY-MM-DD day (the row's fields are probably shifted)"
    return None


def read_customers(path: str, data: bytes, key: str) -> ReferenceLoad:
    """Customers without personal data: name and email are dropped, a keyed email hash is kept."""
    header, rows, rejects = _rows(path, data, ("customer_id",))
    records = [(line, dict(zip(header, row, strict=True))) for line, row in rows]
    kept = []
    for line, rec in _unique(path, "customer_id", records, rejects):
        problem = _customer_problem(rec)
        if problem:
            rejects.append(RowReject(path, line, problem))
        else:
            kept.append(rec)
    _no_rows_left(path, rejects, len(rows) + _shape(rejects))
    df = (
        pd.DataFrame(kept, columns=header, dtype=object)
        if kept
        else pd.DataFrame(columns=header, dtype=object)
    )
    for col in (*CUSTOMER_COLUMNS, "signup_date"):
        if col not in df.columns:
            df[col] = ""
    out = pd.DataFrame(
        {
            "customer_id": df["customer_id"].astype(object),
            "email_hash": email_hash(df["email"], key),
            "location": df["location"].replace("", None),
            "signup_date": pd.to_datetime(df["signup_date"], errors="coerce", format="%Y-%m-%d"),
        }
    )
    rejects.sort(key=lambda r: r.line)
    return ReferenceLoad(
        out[CUSTOMERS.column_names].reset_index(drop=True), rejects, len(rows) + _shape(rejects)
    )


def parse_customers(path: str, data: bytes, key: str) -> pd.DataFrame:
    """Customers without personal data (see `read_customers`)."""
    return read_customers(path, data, key).frame


def _shape(rejects: list[RowReject]) -> int:
    """Rows rejected for their field count (not among the parsed rows)."""
    return sum(1 for r in rejects if r.reason.startswith("wrong field count"))


def _empty(table) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in table.column_names})


_SEASONS = {
    12: "winter",
    1: "winter",
    2: "winter",
    3: "spring",
    4: "spring",
    5: "spring",
    6: "summer",
    7: "summer",
    8: "summer",
    9: "autumn",
    10: "autumn",
    11: "autumn",
}


def season(day: date) -> str:
    return _SEASONS[day.month]


def build_calendar(start: date, end: date) -> pd.DataFrame:
    """One row per region and day, with national holidays from the `holidays` package."""
    days = pd.date_range(start, end, freq="D")
    years = sorted({d.year for d in days})
    frames = []
    for region in REGIONS.values():
        book = holidays.country_holidays(region.country, years=years)
        names = [book.get(d.date()) for d in days]
        frames.append(
            pd.DataFrame(
                {
                    "region": region.key,
                    "day": days,
                    "country": region.country,
                    "weekday": days.weekday.astype("int64"),
                    "is_weekend": days.weekday >= 5,
                    "is_holiday": [n is not None for n in names],
                    "holiday_name": names,
                    "season": [_SEASONS[m] for m in days.month],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[CALENDAR.column_names]
