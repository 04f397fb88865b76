"""Reference snapshots (products, customers) and the calendar, as pure functions."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date

import holidays
import pandas as pd

from globolatte_dagster.lib.contract import CUSTOMER_COLUMNS, PRODUCT_COLUMNS, REGIONS, SERVINGS
from globolatte_dagster.lib.ingest import FileRejected, decode_csv
from globolatte_dagster.lib.schema import CALENDAR, CUSTOMERS, PRODUCTS


def parse_products(path: str, data: bytes) -> pd.DataFrame:
    header, rows, lines = decode_csv(path, data, PRODUCT_COLUMNS)
    df = pd.DataFrame([(r + [""] * len(header))[: len(header)] for r in rows], columns=header, dtype=object)
    df = df.apply(lambda s: s.str.strip()) if len(df) else df
    if "serving" not in df.columns:
        df["serving"] = "none"
    df["serving"] = df["serving"].replace("", "none").str.lower()
    bad_serving = ~df["serving"].isin(SERVINGS)
    if bad_serving.any():
        line = lines[int(bad_serving.to_numpy().nonzero()[0][0])]
        raise FileRejected(path, f"line {line}: serving must be one of {', '.join(SERVINGS)}")
    price = pd.to_numeric(df["price"], errors="coerce")
    if (df["product_id"] == "").any() or df["product_id"].duplicated().any():
        raise FileRejected(path, "product_id must be present and unique")
    df["price"] = price
    return df[PRODUCTS.column_names].reset_index(drop=True)


def email_hash(emails: pd.Series, key: str) -> pd.Series:
    """Keyed hash (HMAC-SHA256) of the normalised email; empty emails stay empty."""
    secret = key.encode()

    def one(e: object) -> str | None:
        if not isinstance(e, str) or not e.strip():
            return None
        return hmac.new(secret, e.strip().lower().encode(), hashlib.sha256).hexdigest()

    return emails.map(one)


def parse_customers(path: str, data: bytes, key: str) -> pd.DataFrame:
    """Customers without personal data: name and email are dropped, a keyed email hash is kept."""
    header, rows, _ = decode_csv(path, data, ("customer_id",))
    df = pd.DataFrame([(r + [""] * len(header))[: len(header)] for r in rows], columns=header, dtype=object)
    for col in (*CUSTOMER_COLUMNS, "signup_date"):
        if col not in df.columns:
            df[col] = ""
    if (df["customer_id"].str.strip() == "").any() or df["customer_id"].duplicated().any():
        raise FileRejected(path, "customer_id must be present and unique")
    out = pd.DataFrame(
        {
            "customer_id": df["customer_id"].str.strip(),
            "email_hash": email_hash(df["email"], key),
            "location": df["location"].str.strip().replace("", None),
            "signup_date": pd.to_datetime(df["signup_date"].str.strip(), errors="coerce", format="%Y-%m-%d"),
        }
    )
    return out[CUSTOMERS.column_names]


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
