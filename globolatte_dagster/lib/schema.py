"""Warehouse tables: one definition, rendered as DuckDB or Snowflake DDL.

An asset key is `[schema, table]` and names the same table in DuckDB and Snowflake. Identifiers come only
from these constants; column order here is the order the IO managers insert in.
"""

from __future__ import annotations

from dataclasses import dataclass

from globolatte_dagster.lib.recommend.metrics import K
from globolatte_dagster.lib.weather_bands import N_TEMP_BANDS

# logical type -> (duckdb, snowflake)
_TYPES: dict[str, tuple[str, str]] = {
    "text": ("VARCHAR", "VARCHAR"),
    "int": ("BIGINT", "NUMBER(38,0)"),
    "float": ("DOUBLE", "FLOAT"),
    "date": ("DATE", "DATE"),
    "timestamp": ("TIMESTAMP", "TIMESTAMP_NTZ"),
    "bool": ("BOOLEAN", "BOOLEAN"),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...]
    partition_expr: dict[str, str] | str | None = None

    @property
    def key(self) -> list[str]:
        return [self.schema, self.name]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def ddl(self, dialect: str = "duckdb") -> str:
        idx = 0 if dialect == "duckdb" else 1
        cols = ",\n  ".join(
            f"{c.name} {_TYPES[c.type][idx]}{'' if c.nullable else ' NOT NULL'}" for c in self.columns
        )
        return f"CREATE TABLE IF NOT EXISTS {self.schema}.{self.name} (\n  {cols}\n)"


def _c(name: str, type_: str, nullable: bool = True) -> Column:
    return Column(name, type_, nullable)


REGION_DAY = {"region": "region", "day": "day"}

SALES = Table(
    "raw",
    "sales",
    (
        _c("region", "text", False),
        _c("day", "date", False),
        _c("transaction_id", "text", False),
        _c("business_unit", "text", False),
        _c("product_id", "text", False),
        _c("customer_id", "text"),  # NULL for a guest sale
        _c("quantity", "int", False),
        _c("total_price", "float", False),
        _c("transaction_date", "timestamp", False),
        _c("payment_method", "text", False),
        _c("extra", "text"),  # JSON object of columns beyond the contract, or NULL
        _c("source_file", "text", False),
        _c("source_line", "int", False),
    ),
    REGION_DAY,
)
SALES_REJECTS = Table(
    "raw",
    "sales_rejects",
    (
        _c("region", "text", False),
        _c("day", "date", False),
        _c("source_file", "text", False),
        _c("source_line", "int", False),
        _c("column_name", "text"),
        _c("reason", "text", False),
        _c("raw_record", "text"),  # JSON object of the row as it was in the file
    ),
    REGION_DAY,
)
WEATHER = Table(
    "raw",
    "weather",
    (
        _c("region", "text", False),
        _c("day", "date", False),
        _c("temp_max_c", "float"),
        _c("temp_min_c", "float"),
        _c("precip_mm", "float"),
        _c("source_file", "text"),
    ),
    REGION_DAY,
)
PRODUCTS = Table(
    "core",
    "products",
    (
        _c("product_id", "text", False),
        _c("product_name", "text"),
        _c("category", "text"),
        _c("price", "float"),
        _c("serving", "text"),
    ),
)
CUSTOMERS = Table(
    "core",
    "customers",
    (
        _c("customer_id", "text", False),
        _c("email_hash", "text"),
        _c("location", "text"),
        _c("signup_date", "date"),
    ),
)
CALENDAR = Table(
    "core",
    "calendar",
    (
        _c("region", "text", False),
        _c("day", "date", False),
        _c("country", "text", False),
        _c("weekday", "int", False),  # 0 = Monday
        _c("is_weekend", "bool", False),
        _c("is_holiday", "bool", False),
        _c("holiday_name", "text"),
        _c("season", "text", False),
    ),
)

# Sales reduced in the warehouse to one row per (day, loyalty customer, product), plus one row per (day,
# product) for guests (customer_id NULL): the purchase history the recommenders learn from.
PURCHASE_HISTORY = Table(
    "core",
    "purchase_history",
    (
        _c("region", "text", False),
        _c("day", "date", False),
        _c("customer_id", "text"),  # NULL: every guest sale of the product that day
        _c("product_id", "text", False),
        _c("quantity", "int", False),
        _c("transactions", "int", False),
        _c("first_hour", "int"),
    ),
    "region",
)

# Customer features as of a cutoff (lib/features.py computes them as SQL in the warehouse).
FAVOURITES = 3  # fav_<i>_product / fav_<i>_weight columns
TIME_OF_DAY = (("morning", 0, 11), ("midday", 11, 14), ("afternoon", 14, 17), ("evening", 17, 24))
FEATURE_COLUMNS: tuple[Column, ...] = (
    Column("region", "text", False),
    Column("as_of", "date", False),
    Column("customer_id", "text", False),
    Column("n_transactions", "int"),
    Column("n_visit_days", "int"),
    Column("n_items", "int"),
    Column("recency_days", "int"),
    Column("tenure_days", "int"),
    Column("visits_per_week", "float"),
    Column("monetary_usd", "float"),
    Column("spend_per_visit_usd", "float"),
    Column("items_per_visit", "float"),
    Column("hot_share", "float"),
    Column("iced_share", "float"),
    Column("none_share", "float"),
    *(Column(f"{name}_share", "float") for name, _, _ in TIME_OF_DAY),
    Column("mean_hour", "float"),
    Column("weekend_share", "float"),
    Column("holiday_share", "float"),
    Column("weekend_lift", "float"),
    Column("holiday_lift", "float"),
    Column("wet_lift", "float"),
    Column("iced_share_warm", "float"),
    Column("iced_share_cold", "float"),
    Column("weather_sensitivity", "float"),
    Column("region_median_temp", "float"),
    Column("n_tx_weekend", "int"),
    Column("n_tx_holiday", "int"),
    Column("n_tx_recent", "int"),
    *(Column(f"n_tx_t{j}", "int") for j in range(N_TEMP_BANDS)),
    *(
        c
        for i in range(1, FAVOURITES + 1)
        for c in (Column(f"fav_{i}_product", "text"), Column(f"fav_{i}_weight", "float"))
    ),
    Column("category_shares", "text"),  # JSON object category -> share of items
    Column("low_history", "bool", False),
)
CUSTOMER_FEATURES = Table("core", "customer_features", FEATURE_COLUMNS, "region")

# Customer segments (lib/segments.py) and the daily lists for marketing (defs/mart).
SEGMENTS = Table(
    "ml",
    "customer_segments",
    (
        Column("region", "text", False),
        Column("customer_id", "text", False),
        Column("segment", "int", False),
        Column("as_of", "date", False),
        Column("low_history", "bool", False),
        Column("distance", "float"),  # distance to the segment's centre in the clustering space
    ),
    "region",
)
RECOMMENDATIONS = Table(
    "mart",
    "recommendations",
    (
        Column("region", "text", False),
        Column("customer_id", "text", False),
        Column("for_date", "date", False),
        Column("list", "text", False),  # top | discover (products the customer has never bought)
        Column("rank", "int", False),
        Column("product_id", "text", False),
        Column("score", "float", False),
        Column("model_version", "text", False),
        Column("candidate", "text", False),  # the candidate recommender that made the list
    ),
    "region",
)

# Monitoring, one row per region and day (and list, signal or metric): what each landed day showed. Written
# by the monitor assets, which replace a (region, day)'s rows in one transaction.
_HR = f"hit_rate_at_{K}"
RECOMMENDATION_PERFORMANCE = Table(
    "monitor",
    "recommendation_performance",
    (
        _c("region", "text", False),
        _c("day", "date", False),
        _c("list", "text", False),  # top | discover
        _c("customers", "int", False),  # customer-days scored: bought that day and had a served list
        _c(_HR, "float"),  # the served lists (the champion's)
        _c(f"repeat_{_HR}", "float"),  # repeat fitted on the history before the day (NULL for discover)
        _c(f"popularity_{_HR}", "float"),  # popularity fitted on the history before the day
        _c("champion_version", "text"),  # the model version that served the lists
        _c("alert", "text"),  # NULL, or 'warn: ...' / 'error: ...' from the 7-day rolling rule
    ),
    "region",
)
DRIFT = Table(
    "monitor",
    "drift",
    (
        _c("region", "text", False),
        _c("day", "date", False),
        _c("signal", "text", False),  # feature | context | prediction
        _c("feature", "text", False),
        _c("metric", "text", False),  # jensen_shannon | wasserstein_normed | unseen_share
        _c("value", "float"),
        _c("threshold", "float"),  # the effective threshold (configured, or the reference's own spread)
        _c("alert", "bool", False),
    ),
    "region",
)
DATA_QUALITY = Table(
    "monitor",
    "data_quality",
    (
        _c("region", "text", False),
        _c("day", "date", False),
        _c("metric", "text", False),
        _c("value", "float"),
        _c("threshold", "float"),
        _c("alert", "bool", False),
    ),
    "region",
)

RAW_TABLES: tuple[Table, ...] = (SALES, SALES_REJECTS, WEATHER)
CORE_TABLES: tuple[Table, ...] = (PRODUCTS, CUSTOMERS, CALENDAR, PURCHASE_HISTORY, CUSTOMER_FEATURES)
ML_TABLES: tuple[Table, ...] = (SEGMENTS,)
MART_TABLES: tuple[Table, ...] = (RECOMMENDATIONS,)
MONITOR_TABLES: tuple[Table, ...] = (RECOMMENDATION_PERFORMANCE, DRIFT, DATA_QUALITY)
# Every warehouse table, declared above: nothing is added by importing another module.
TABLES: dict[tuple[str, str], Table] = {
    (t.schema, t.name): t for t in (*RAW_TABLES, *CORE_TABLES, *ML_TABLES, *MART_TABLES, *MONITOR_TABLES)
}
SCHEMAS: tuple[str, ...] = ("raw", "core", "ml", "mart", "monitor")
