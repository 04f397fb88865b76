"""The landing contract of DESIGN.md: regions, business units, file paths and sales columns.

Everything that names a region, a business unit, a column or a landing path comes from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Region:
    key: str
    business_unit: str
    country: str  # ISO code for the `holidays` package
    currency: str
    timezone: str
    city: str
    usd_per_unit: float  # fixed planning rate into the common currency (USD)


REGIONS: dict[str, Region] = {
    "america": Region("america", "BU_US", "US", "USD", "America/New_York", "New York", 1.0),
    "canada": Region("canada", "BU_CA", "CA", "CAD", "America/Toronto", "Toronto", 0.73),
    "mexico": Region("mexico", "BU_MX", "MX", "MXN", "America/Mexico_City", "Mexico City", 0.055),
}
REGION_KEYS: tuple[str, ...] = tuple(REGIONS)
BUSINESS_UNITS: dict[str, str] = {r.business_unit: r.key for r in REGIONS.values()}

PAYMENT_METHODS: tuple[str, ...] = ("credit_card", "debit_card", "cash", "mobile")
SERVINGS: tuple[str, ...] = ("hot", "iced", "none")

# Sales CSV columns, in the order of GloboLatte's sample export.
SALES_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "business_unit",
    "product_id",
    "customer_id",
    "quantity",
    "total_price",
    "transaction_date",
    "payment_method",
)
WEATHER_COLUMNS: tuple[str, ...] = ("date", "temp_max_c", "temp_min_c", "precip_mm")
PRODUCT_COLUMNS: tuple[str, ...] = ("product_id", "product_name", "category", "price")
CUSTOMER_COLUMNS: tuple[str, ...] = ("customer_id", "customer_name", "email", "location")

SALES_PREFIX = "sales"
WEATHER_PREFIX = "weather"
REFERENCE_PREFIX = "reference"
REFERENCE_FILES: tuple[str, ...] = ("products.csv", "customers.csv", "business_units.csv")

_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class LandingPath:
    """A landing path that fits the contract."""

    kind: str  # "sales" | "weather" | "reference"
    region: str | None
    day: date | None
    name: str

    @property
    def partition(self) -> tuple[str, str] | None:
        if self.region is None or self.day is None:
            return None
        return self.region, self.day.isoformat()


class ContractError(ValueError):
    """A path or file that does not fit the landing contract."""


def parse_day(text: str) -> date:
    if not _DAY_RE.match(text):
        raise ContractError(f"'{text}' is not a YYYY-MM-DD day")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ContractError(f"'{text}' is not a calendar day: {exc}") from exc


def parse_landing_path(path: str) -> LandingPath:
    """Classify a landing path (relative to the landing root, with `/` separators) or raise ContractError."""
    parts = path.strip("/").split("/")
    if parts[0] == SALES_PREFIX:
        if len(parts) != 4:
            raise ContractError(f"{path}: expected sales/<region>/<YYYY-MM-DD>/<name>.csv")
        _, region, day, name = parts
        _check_region(path, region)
        if not name.lower().endswith(".csv") or name.startswith("."):
            raise ContractError(f"{path}: not a .csv file")
        return LandingPath("sales", region, _day(path, day), name)
    if parts[0] == WEATHER_PREFIX:
        if len(parts) != 3 or not parts[2].endswith(".csv"):
            raise ContractError(f"{path}: expected weather/<region>/<YYYY-MM-DD>.csv")
        _, region, name = parts
        _check_region(path, region)
        return LandingPath("weather", region, _day(path, name[: -len(".csv")]), name)
    if parts[0] == REFERENCE_PREFIX:
        if len(parts) != 2 or parts[1] not in REFERENCE_FILES:
            raise ContractError(f"{path}: expected reference/<{'|'.join(REFERENCE_FILES)}>")
        return LandingPath("reference", None, None, parts[1])
    raise ContractError(f"{path}: not under sales/, weather/ or reference/")


def _check_region(path: str, region: str) -> None:
    if region not in REGIONS:
        raise ContractError(f"{path}: unknown region '{region}' (known: {', '.join(REGION_KEYS)})")


def _day(path: str, text: str) -> date:
    try:
        return parse_day(text)
    except ContractError as exc:
        raise ContractError(f"{path}: {exc}") from exc


def sales_prefix(region: str, day: str | None = None) -> str:
    return f"{SALES_PREFIX}/{region}/" + (f"{day}/" if day else "")


def weather_prefix(region: str, day: str | None = None) -> str:
    return f"{WEATHER_PREFIX}/{region}/" + (f"{day}.csv" if day else "")


def weather_path(region: str, day: str) -> str:
    return f"{WEATHER_PREFIX}/{region}/{day}.csv"
