"""Customer features per region, computed as SQL in the warehouse as of the last landed sales day."""

import time
from datetime import date

import dagster as dg
import pandas as pd

from globolatte_dagster import keys as asset_keys
from globolatte_dagster.defs.automation import daily_refresh
from globolatte_dagster.defs.partitions import region_of_region_day, region_partitions
from globolatte_dagster.lib import features as F
from globolatte_dagster.lib.plots import markdown_table
from globolatte_dagster.lib.recommend import data as D
from globolatte_dagster.lib.schema import PURCHASE_HISTORY
from globolatte_dagster.resources.warehouse import Warehouse

KINDS = {"sql", "pandas", "duckdb", "snowflake"}


class FeaturesConfig(dg.Config):
    """Windows of the feature SQL. `cutoff` (YYYY-MM-DD) defaults to the region's last landed sales day."""

    cutoff: str = ""
    lookback_days: int = 180
    recent_days: int = 28
    half_life_days: float = 14.0
    min_visit_days: int = 3

    def params(self) -> F.FeatureParams:
        return F.FeatureParams(self.lookback_days, self.recent_days, self.half_life_days, self.min_visit_days)


@dg.asset(
    key=asset_keys.CUSTOMER_FEATURES,
    partitions_def=region_partitions,
    deps=[
        dg.AssetDep(asset_keys.SALES, partition_mapping=region_of_region_day),
        dg.AssetDep(asset_keys.WEATHER, partition_mapping=region_of_region_day),
        dg.AssetDep(asset_keys.PRODUCTS),
        dg.AssetDep(asset_keys.CALENDAR),
    ],
    metadata={"partition_expr": "region"},
    io_manager_key="warehouse_io_manager",
    kinds=KINDS,
    group_name="features",
    pool="warehouse",
    automation_condition=daily_refresh(),
)
def customer_features(
    context: dg.AssetExecutionContext, config: FeaturesConfig, warehouse: Warehouse
) -> pd.DataFrame:
    """One row per loyalty customer: RFM, shares, time of day, holidays, weather behaviour, favourites."""
    region = context.partition_key
    days = F.sales_days(warehouse.query, region)
    if not days:
        raise dg.Failure(
            description=f"no sales have landed for region '{region}': nothing to compute features from"
        )
    cutoff = date.fromisoformat(config.cutoff) if config.cutoff else days[-1]
    t0 = time.perf_counter()
    df = F.customer_features(warehouse.query, region, cutoff, params=config.params())
    seconds = time.perf_counter() - t0
    if df.empty:
        raise dg.Failure(description=f"{region}: no loyalty customer bought on or before {cutoff}")
    preview = df[
        [
            "customer_id",
            "n_visit_days",
            "recency_days",
            "monetary_usd",
            "iced_share",
            "weather_sensitivity",
            "fav_1_product",
        ]
    ]
    context.add_output_metadata(
        {
            "as_of": cutoff.isoformat(),
            "customers": len(df),
            "low_history_customers": int(df["low_history"].sum()),
            "no_weather_features": bool(df["weather_sensitivity"].isna().all()),
            "dialect": warehouse.dialect,
            "sql_seconds": round(seconds, 2),
            "preview": dg.MetadataValue.md(markdown_table(preview.head(10))),
        }
    )
    return df


@dg.asset(
    key=asset_keys.PURCHASE_HISTORY,
    partitions_def=region_partitions,
    deps=[dg.AssetDep(asset_keys.SALES, partition_mapping=region_of_region_day)],
    kinds={"sql", "duckdb", "snowflake"},
    group_name="features",
    pool="warehouse",
    automation_condition=daily_refresh(),
)
def purchase_history(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Sales reduced in the warehouse to one row per day, loyalty customer and product (guests per product)."""
    region = context.partition_key
    t0 = time.perf_counter()
    warehouse.ensure_tables([PURCHASE_HISTORY])
    warehouse.transaction([(D.PURCHASE_HISTORY_DELETE_SQL, [region]), (D.PURCHASE_HISTORY_SQL, [region])])
    sql = (
        f"SELECT COUNT(*) AS n, COUNT(DISTINCT customer_id) AS customers, COUNT(DISTINCT day) AS days, "
        f"MIN(day) AS first_day, MAX(day) AS last_day FROM {PURCHASE_HISTORY.schema}.{PURCHASE_HISTORY.name} "
        "WHERE region = ?"
    )
    row = warehouse.query(sql, [region]).iloc[0]
    row.index = [str(c).lower() for c in row.index]
    if int(row["n"]) == 0:
        raise dg.Failure(description=f"no sales have landed for region '{region}': no purchase history")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": int(row["n"]),
            "customers": int(row["customers"]),
            "days": int(row["days"]),
            "first_day": str(row["first_day"])[:10],
            "last_day": str(row["last_day"])[:10],
            "dialect": warehouse.dialect,
            "sql_seconds": round(time.perf_counter() - t0, 2),
        }
    )
