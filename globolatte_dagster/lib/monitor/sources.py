"""What the monitors read from the warehouse: landed days, the sales history, served lists, feature counts.

Everything is read from the raw layer and the mart, never from a table that the ML chain refreshes later
(`core.purchase_history`): a day is monitored from what landed, whether or not the models have caught up.
SQL identifiers come from code constants; regions and days are bound as parameters; the same text runs on
DuckDB and Snowflake.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd

from globolatte_dagster.lib.recommend import data as D
from globolatte_dagster.lib.recommend.data import History, Query
from globolatte_dagster.lib.schema import SALES, SALES_REJECTS, WEATHER, Table

_S = f"{SALES.schema}.{SALES.name}"
_R = f"{SALES_REJECTS.schema}.{SALES_REJECTS.name}"
_W = f"{WEATHER.schema}.{WEATHER.name}"
_M = "mart.recommendations"
_BETWEEN = "day >= CAST(? AS DATE) AND day <= CAST(? AS DATE)"

LANDED_DAYS_SQL = (
    f"SELECT DISTINCT day FROM {_S} WHERE region = ? UNION SELECT DISTINCT day FROM {_R} WHERE region = ?"
)
# The same aggregation as core.purchase_history (lib.recommend.data.PURCHASE_HISTORY_SQL), as a query.
HISTORY_SQL = f"""
SELECT s.day, s.customer_id, s.product_id, SUM(s.quantity) AS quantity,
       COUNT(DISTINCT s.transaction_id) AS transactions, MIN(EXTRACT(HOUR FROM s.transaction_date)) AS first_hour
FROM {_S} s WHERE s.region = ? AND s.{_BETWEEN}
GROUP BY s.day, s.customer_id, s.product_id
"""
CUSTOMERS_SQL = (
    f"SELECT DISTINCT customer_id FROM {_S} WHERE region = ? AND customer_id IS NOT NULL "
    "AND day <= CAST(? AS DATE)"
)
SERVED_SQL = (
    f"SELECT customer_id, list, rank, product_id, model_version FROM {_M} "
    "WHERE region = ? AND for_date = CAST(? AS DATE)"
)
SERVED_COUNTS_SQL = (
    f"SELECT for_date AS day, product_id AS value, COUNT(*) AS n FROM {_M} "
    "WHERE region = ? AND list = 'top' AND for_date >= CAST(? AS DATE) AND for_date <= CAST(? AS DATE) "
    "GROUP BY for_date, product_id"
)
FIRST_SERVED_SQL = f"SELECT MIN(for_date) AS first_day FROM {_M} WHERE region = ? AND model_version = ?"
# One row per (feature, day, value): counts of sales lines (product, payment, hour, product and price paid per item) and of transactions
# (basket size in items, spend rounded to 0.1 of the local currency).
FEATURE_COUNTS_SQL = f"""
SELECT 'product_id' AS feature, day, product_id AS value, COUNT(*) AS n
FROM {_S} WHERE region = ? AND {_BETWEEN} GROUP BY day, product_id
UNION ALL
SELECT 'payment_method', day, payment_method, COUNT(*)
FROM {_S} WHERE region = ? AND {_BETWEEN} GROUP BY day, payment_method
UNION ALL
SELECT 'hour_of_day', day, CAST(EXTRACT(HOUR FROM transaction_date) AS VARCHAR), COUNT(*)
FROM {_S} WHERE region = ? AND {_BETWEEN} GROUP BY day, EXTRACT(HOUR FROM transaction_date)
UNION ALL
SELECT 'product_price', day, product_id || '|' || CAST(ROUND(total_price / quantity, 2) AS VARCHAR), COUNT(*)
FROM {_S} WHERE region = ? AND {_BETWEEN} GROUP BY day, product_id, ROUND(total_price / quantity, 2)
UNION ALL
SELECT 'basket_items', day, CAST(items AS VARCHAR), COUNT(*)
FROM (SELECT day, transaction_id, SUM(quantity) AS items FROM {_S} WHERE region = ? AND {_BETWEEN}
      GROUP BY day, transaction_id) t GROUP BY day, items
UNION ALL
SELECT 'spend', day, CAST(spend AS VARCHAR), COUNT(*)
FROM (SELECT day, transaction_id, ROUND(SUM(total_price), 1) AS spend FROM {_S}
      WHERE region = ? AND {_BETWEEN} GROUP BY day, transaction_id) t GROUP BY day, spend
"""
TEMPERATURE_SQL = (
    f"SELECT day, temp_max_c FROM {_W} WHERE region = ? AND {_BETWEEN} AND temp_max_c IS NOT NULL"
)
# Per day: valid rows and guests; rejected rows by the kind of rule they broke; weather present.
QUALITY_SALES_SQL = (
    f"SELECT day, COUNT(*) AS rows_loaded, SUM(CASE WHEN customer_id IS NULL THEN 1 ELSE 0 END) AS guests "
    f"FROM {_S} WHERE region = ? AND {_BETWEEN} GROUP BY day"
)
QUALITY_REJECTS_SQL = f"""
SELECT day, COUNT(*) AS rejected,
  SUM(CASE WHEN reason LIKE 'unknown product%' THEN 1 ELSE 0 END) AS unknown_product,
  SUM(CASE WHEN reason LIKE 'missing value%' THEN 1 ELSE 0 END) AS missing_value,
  SUM(CASE WHEN reason LIKE 'bad %' OR reason LIKE 'timestamp off%' THEN 1 ELSE 0 END) AS out_of_range
FROM {_R} WHERE region = ? AND {_BETWEEN} GROUP BY day
"""
QUALITY_WEATHER_SQL = (
    f"SELECT day, COUNT(*) AS weather_rows FROM {_W} WHERE region = ? AND {_BETWEEN} "
    "AND temp_max_c IS NOT NULL GROUP BY day"
)


def _lower(df: pd.DataFrame) -> pd.DataFrame:
    df.columns = [str(c).lower() for c in df.columns]
    return df


def _days(series: pd.Series) -> list[date]:
    return sorted({pd.Timestamp(d).date() for d in series.dropna()})


def landed_days(query: Query, region: str) -> list[date]:
    """Days with loaded or rejected sales rows in the region."""
    return _days(_lower(query(LANDED_DAYS_SQL, [region, region]))["day"])


def table_days(query: Query, table: Table, region: str) -> list[date]:
    """Days that a monitor table already holds for the region."""
    sql = f"SELECT DISTINCT day FROM {table.schema}.{table.name} WHERE region = ?"
    return _days(_lower(query(sql, [region]))["day"])


def load_history(query: Query, region: str, first: date, last: date) -> History:
    """The region's purchase history over first..last from raw.sales (the customer index: everyone until `last`)."""
    lines = _lower(query(HISTORY_SQL, [region, first.isoformat(), last.isoformat()]))
    products = _lower(query(D.PRODUCTS_SQL, []))
    weather = _lower(query(D.WEATHER_SQL, [region]))
    for col in ("temp_max_c", "precip_mm"):
        weather[col] = pd.to_numeric(weather[col], errors="coerce").astype("float64")
    everyone = _lower(query(CUSTOMERS_SQL, [region, last.isoformat()]))["customer_id"].astype(str)
    return D.history_from_frames(region, lines, products, weather, everyone.tolist())


def served_lists(query: Query, region: str, day: date) -> pd.DataFrame:
    """The lists served for `day` (mart rows kept by for_date)."""
    return _lower(query(SERVED_SQL, [region, day.isoformat()]))


def served_counts(query: Query, region: str, first: date, last: date) -> pd.DataFrame:
    """(day, value=product_id, n) of the top lists served for first..last."""
    return _counts(_lower(query(SERVED_COUNTS_SQL, [region, first.isoformat(), last.isoformat()])))


def _counts(out: pd.DataFrame) -> pd.DataFrame:
    out["day"] = [pd.Timestamp(d).date() for d in out["day"]]
    out["value"] = out["value"].astype(str)
    out["n"] = pd.to_numeric(out["n"]).astype(float)
    return out


def first_served(query: Query, region: str, model_version: str) -> date | None:
    row = _lower(query(FIRST_SERVED_SQL, [region, model_version])).iloc[0]
    return (
        None
        if row["first_day"] is None or pd.isna(row["first_day"])
        else pd.Timestamp(row["first_day"]).date()
    )


def feature_counts(query: Query, region: str, first: date, last: date) -> pd.DataFrame:
    """(feature, day, value, n) of the sales features over first..last (see FEATURE_COUNTS_SQL)."""
    params: list = []
    for _ in range(6):
        params += [region, first.isoformat(), last.isoformat()]
    return _counts(_lower(query(FEATURE_COUNTS_SQL, params)))


def temperatures(query: Query, region: str, first: date, last: date) -> pd.Series:
    """Daily maximum temperature by day (days with a weather row)."""
    df = _lower(query(TEMPERATURE_SQL, [region, first.isoformat(), last.isoformat()]))
    return pd.Series(
        pd.to_numeric(df["temp_max_c"]).to_numpy(float), index=[pd.Timestamp(d).date() for d in df["day"]]
    )


def quality_counts(query: Query, region: str, days: Sequence[date]) -> pd.DataFrame:
    """One row of counts per wanted day: rows_loaded, guests, rejected (by kind) and weather_rows."""
    cols = [
        "rows_loaded",
        "guests",
        "rejected",
        "unknown_product",
        "missing_value",
        "out_of_range",
        "weather_rows",
    ]
    if not days:
        return pd.DataFrame(columns=["day", *cols])
    params = [region, min(days).isoformat(), max(days).isoformat()]
    out = pd.DataFrame({"day": sorted(set(days))}).set_index("day")
    for sql in (QUALITY_SALES_SQL, QUALITY_REJECTS_SQL, QUALITY_WEATHER_SQL):
        part = _lower(query(sql, params))
        part.index = [pd.Timestamp(d).date() for d in part.pop("day")]
        out = out.join(part.apply(pd.to_numeric), how="left")
    return out[cols].fillna(0.0).astype(float).rename_axis("day").reset_index()
