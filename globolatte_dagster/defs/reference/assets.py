"""Reference data: the product catalogue, customers without personal data, and the calendar."""

from datetime import date, timedelta

import dagster as dg
import pandas as pd

from globolatte_dagster import keys as asset_keys
from globolatte_dagster import settings
from globolatte_dagster.defs.reference.checks import (
    CUSTOMERS_CHECKS,
    PRODUCTS_CHECKS,
    rows_well_formed,
)
from globolatte_dagster.lib.ingest import FileRejected
from globolatte_dagster.lib.reference import build_calendar, read_customers, read_products
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
    key=asset_keys.PRODUCTS,
    io_manager_key="warehouse_io_manager",
    kinds=KINDS,
    group_name="core",
    pool="warehouse",
    check_specs=PRODUCTS_CHECKS,
)
def products(landing: LandingZone):
    """The product catalogue from reference/products.csv."""
    path, data = _read_reference(landing, "products.csv")
    try:
        load = read_products(path, data)
    except FileRejected as exc:
        raise dg.Failure(description=str(exc), metadata={"file": exc.path, "problem": exc.problem}) from exc
    df = load.frame
    yield dg.Output(
        df,
        metadata={
            "products": len(df),
            "rows_rejected": len(load.rejects),
            "by_category": dg.MetadataValue.json(df["category"].value_counts().to_dict()),
        },
    )
    yield rows_well_formed(asset_keys.PRODUCTS, load)


@dg.asset(
    key=asset_keys.CUSTOMERS,
    io_manager_key="warehouse_io_manager",
    kinds=KINDS,
    group_name="core",
    pool="warehouse",
    check_specs=CUSTOMERS_CHECKS,
)
def customers(landing: LandingZone, hash_key: HashKey):
    """Customers from reference/customers.csv with name and email removed (keyed email hash kept)."""
    path, data = _read_reference(landing, "customers.csv")
    try:
        load = read_customers(path, data, hash_key.get())
    except FileRejected as exc:
        raise dg.Failure(description=str(exc), metadata={"file": exc.path, "problem": exc.problem}) from exc
    df = load.frame
    yield dg.Output(
        df,
        metadata={
            "customers": len(df),
            "with_email_hash": int(df["email_hash"].notna().sum()),
            "rows_rejected": len(load.rejects),
        },
    )
    yield rows_well_formed(asset_keys.CUSTOMERS, load)


@dg.asset(
    key=asset_keys.CALENDAR,
    io_manager_key="warehouse_io_manager",
    kinds=KINDS,
    group_name="core",
    pool="warehouse",
)
def calendar(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """Days per region with weekdays, seasons and national holidays (US, CA, MX) from `holidays`."""
    first = date.fromisoformat(settings.first_day())
    df = build_calendar(first, date.today() + timedelta(days=CALENDAR_HORIZON_DAYS))
    context.add_output_metadata(
        {
            "first_day": first.isoformat(),
            "days": int(df["day"].nunique()),
            "holidays": dg.MetadataValue.json(df.groupby("region")["is_holiday"].sum().to_dict()),
        }
    )
    return df
