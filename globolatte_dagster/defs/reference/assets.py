"""Reference data: the product catalogue, customers without personal data, and the calendar."""

from datetime import date, timedelta

import dagster as dg
import pandas as pd

from globolatte_dagster.defs.partitions import FIRST_DAY
from globolatte_dagster.lib.ingest import FileRejected
from globolatte_dagster.lib.reference import build_calendar, parse_customers, parse_products
from globolatte_dagster.lib.schema import CALENDAR, CUSTOMERS, PRODUCTS
from globolatte_dagster.resources.landing import LandingZone
from globolatte_dagster.resources.secrets import HashKey

KINDS = {"pandas", "duckdb", "snowflake"}
CALENDAR_HORIZON_DAYS = 400


def _read_reference(landing: LandingZone, name: str) -> tuple[str, bytes]:
    path = f"reference/{name}"
    if not landing.exists(path):
        raise dg.Failure(description=f"{path} has not landed in the landing zone ({landing.description})")
    return path, landing.read_bytes(path)


@dg.asset(
    key=PRODUCTS.key, io_manager_key="warehouse_io_manager", kinds=KINDS, group_name="core", pool="warehouse"
)
def products(context: dg.AssetExecutionContext, landing: LandingZone) -> pd.DataFrame:
    """The product catalogue from reference/products.csv."""
    path, data = _read_reference(landing, "products.csv")
    try:
        df = parse_products(path, data)
    except FileRejected as exc:
        raise dg.Failure(description=str(exc)) from exc
    context.add_output_metadata(
        {"products": len(df), "by_category": dg.MetadataValue.json(df["category"].value_counts().to_dict())}
    )
    return df


@dg.asset(
    key=CUSTOMERS.key, io_manager_key="warehouse_io_manager", kinds=KINDS, group_name="core", pool="warehouse"
)
def customers(context: dg.AssetExecutionContext, landing: LandingZone, hash_key: HashKey) -> pd.DataFrame:
    """Customers from reference/customers.csv with name and email removed (keyed email hash kept)."""
    path, data = _read_reference(landing, "customers.csv")
    try:
        df = parse_customers(path, data, hash_key.get())
    except FileRejected as exc:
        raise dg.Failure(description=str(exc)) from exc
    context.add_output_metadata(
        {"customers": len(df), "with_email_hash": int(df["email_hash"].notna().sum())}
    )
    return df


@dg.asset(
    key=CALENDAR.key, io_manager_key="warehouse_io_manager", kinds=KINDS, group_name="core", pool="warehouse"
)
def calendar(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """Days per region with weekdays, seasons and national holidays (US, CA, MX) from `holidays`."""
    df = build_calendar(date.fromisoformat(FIRST_DAY), date.today() + timedelta(days=CALENDAR_HORIZON_DAYS))
    context.add_output_metadata(
        {
            "days": int(df["day"].nunique()),
            "holidays": dg.MetadataValue.json(df.groupby("region")["is_holiday"].sum().to_dict()),
        }
    )
    return df
