"""The customer-feature SQL, written once for DuckDB and Snowflake (see lib/features.py, which runs it).

Bound `?` parameters only; identifiers, temperature bands and the wet-day threshold are code constants.
"""

from __future__ import annotations

from globolatte_dagster.lib.schema import FAVOURITES, TIME_OF_DAY
from globolatte_dagster.lib.weather_bands import N_TEMP_BANDS, TEMP_EDGES

WET_MM = 1.0  # a day with at least this much rain is wet


def _band_expr(col: str) -> str:
    parts = " ".join(f"WHEN {col} < {edge} THEN {j}" for j, edge in enumerate(TEMP_EDGES))
    return f"CASE WHEN {col} IS NULL THEN NULL {parts} ELSE {len(TEMP_EDGES)} END"


def _band_counts(band_col: str, prefix: str, value: str = "1") -> str:
    return ",\n    ".join(
        f"SUM(CASE WHEN {band_col} = {j} THEN {value} ELSE 0 END) AS {prefix}{j}" for j in range(N_TEMP_BANDS)
    )


# Parameters: region, first_cutoff, last_cutoff, lookback_days, recent_days, half_life_days, usd_per_unit.
# Sales are first reduced to one row per (customer, day) or (customer, day, product), then joined to the
# cutoffs: the point-in-time join works on daily aggregates, not on sales lines.
_COMMON = f"""
WITH params AS (
  SELECT CAST(? AS VARCHAR) AS region, CAST(? AS DATE) AS first_cutoff, CAST(? AS DATE) AS last_cutoff,
         CAST(? AS INTEGER) AS lookback_days, CAST(? AS INTEGER) AS recent_days,
         CAST(? AS DOUBLE) AS half_life_days, CAST(? AS DOUBLE) AS usd_per_unit
),
cutoffs AS (
  SELECT cal.day AS cutoff
  FROM core.calendar cal JOIN params p ON cal.region = p.region
  WHERE cal.day BETWEEN p.first_cutoff AND p.last_cutoff
),
first_sale AS (
  SELECT MIN(s.day) AS first_day FROM raw.sales s JOIN params p ON s.region = p.region
),
days AS (
  SELECT cal.day,
         CASE WHEN cal.is_weekend THEN 1 ELSE 0 END AS weekend01,
         CASE WHEN cal.is_holiday THEN 1 ELSE 0 END AS holiday01,
         CASE WHEN w.precip_mm >= {WET_MM} THEN 1 ELSE 0 END AS wet01,
         w.temp_max_c, {_band_expr("w.temp_max_c")} AS temp_band
  FROM core.calendar cal
  JOIN params p ON cal.region = p.region
  CROSS JOIN first_sale f
  LEFT JOIN raw.weather w ON w.region = cal.region AND w.day = cal.day
  WHERE cal.day >= f.first_day AND cal.day <= p.last_cutoff
),
window_days AS (
  SELECT c.cutoff, d.*
  FROM cutoffs c CROSS JOIN params p JOIN days d ON d.day <= c.cutoff
  WHERE DATEDIFF('day', d.day, c.cutoff) < p.lookback_days
),
region_ctx AS (
  SELECT cutoff, COUNT(*) AS n_days, SUM(weekend01) AS n_weekend_days, SUM(holiday01) AS n_holidays,
         SUM(wet01) AS n_wet_days, MEDIAN(temp_max_c) AS median_temp
  FROM window_days GROUP BY cutoff
),
base AS (
  SELECT s.customer_id, s.day, s.transaction_id, s.product_id, s.quantity,
         s.total_price * p.usd_per_unit AS usd,
         EXTRACT(HOUR FROM s.transaction_date) AS hour,
         COALESCE(pr.serving, 'none') AS serving,
         COALESCE(pr.category, 'unknown') AS category
  FROM raw.sales s
  JOIN params p ON s.region = p.region
  LEFT JOIN core.products pr ON pr.product_id = s.product_id
  WHERE s.customer_id IS NOT NULL AND s.day <= p.last_cutoff
)"""

_TOD_DAILY = ",\n    ".join(
    f"SUM(CASE WHEN hour >= {lo} AND hour < {hi} THEN 1 ELSE 0 END) AS n_{name}"
    for name, lo, hi in TIME_OF_DAY
)
_TOD_SUM = ",\n    ".join(f"SUM(n_{name}) AS n_{name}" for name, _, _ in TIME_OF_DAY)
_TOD_SHARE = ",\n  ".join(
    f"CAST(a.n_{name} AS DOUBLE) / a.n_transactions AS {name}_share" for name, _, _ in TIME_OF_DAY
)
_FAVS = ",\n    ".join(
    f"MAX(CASE WHEN rn = {i} THEN product_id END) AS fav_{i}_product,\n"
    f"    MAX(CASE WHEN rn = {i} THEN rw END) AS fav_{i}_weight"
    for i in range(1, FAVOURITES + 1)
)
_FAV_COLS = ", ".join(f"fv.fav_{i}_product, fv.fav_{i}_weight" for i in range(1, FAVOURITES + 1))

CUSTOMER_FEATURES_SQL = (
    _COMMON
    + f""",
tx AS (
  SELECT customer_id, day, transaction_id, MIN(hour) AS hour, SUM(usd) AS usd, SUM(quantity) AS items
  FROM base GROUP BY customer_id, day, transaction_id
),
daily_tx AS (
  SELECT customer_id, day, COUNT(*) AS n_tx, SUM(items) AS items, SUM(usd) AS usd, SUM(hour) AS hour_sum,
    {_TOD_DAILY}
  FROM tx GROUP BY customer_id, day
),
daily_sv AS (
  SELECT customer_id, day,
    SUM(CASE WHEN serving = 'hot' THEN quantity ELSE 0 END) AS q_hot,
    SUM(CASE WHEN serving = 'iced' THEN quantity ELSE 0 END) AS q_iced,
    SUM(quantity) AS q_all
  FROM base GROUP BY customer_id, day
),
cd AS (
  SELECT c.cutoff, t.*, sv.q_hot, sv.q_iced, sv.q_all,
         d.weekend01, d.holiday01, d.wet01, d.temp_band,
         CASE WHEN d.temp_max_c IS NULL OR rc.median_temp IS NULL THEN NULL
              WHEN d.temp_max_c > rc.median_temp THEN 1 ELSE 0 END AS warm01,
         DATEDIFF('day', t.day, c.cutoff) AS age, p.recent_days
  FROM daily_tx t
  JOIN daily_sv sv ON sv.customer_id = t.customer_id AND sv.day = t.day
  JOIN days d ON d.day = t.day
  CROSS JOIN params p
  JOIN cutoffs c ON t.day <= c.cutoff
  JOIN region_ctx rc ON rc.cutoff = c.cutoff
  WHERE DATEDIFF('day', t.day, c.cutoff) < p.lookback_days
),
agg AS (
  SELECT cutoff, customer_id,
    SUM(n_tx) AS n_transactions, COUNT(*) AS n_visit_days, SUM(items) AS n_items,
    MIN(age) AS recency_days, MAX(age) AS tenure_days, SUM(usd) AS monetary_usd, SUM(hour_sum) AS hour_sum,
    {_TOD_SUM},
    SUM(weekend01 * n_tx) AS n_tx_weekend, SUM(holiday01 * n_tx) AS n_tx_holiday,
    SUM(CASE WHEN age < recent_days THEN n_tx ELSE 0 END) AS n_tx_recent,
    SUM(weekend01) AS n_weekend_visit_days, SUM(holiday01) AS n_holiday_visit_days,
    SUM(wet01) AS n_wet_visit_days,
    SUM(q_hot) AS q_hot, SUM(q_iced) AS q_iced, SUM(q_all) AS q_all,
    SUM(CASE WHEN warm01 = 1 THEN q_iced ELSE 0 END) AS q_iced_warm,
    SUM(CASE WHEN warm01 = 1 THEN q_hot + q_iced ELSE 0 END) AS q_drink_warm,
    SUM(CASE WHEN warm01 = 0 THEN q_iced ELSE 0 END) AS q_iced_cold,
    SUM(CASE WHEN warm01 = 0 THEN q_hot + q_iced ELSE 0 END) AS q_drink_cold,
    {_band_counts("temp_band", "n_tx_t", "n_tx")}
  FROM cd GROUP BY cutoff, customer_id
),
daily_cp AS (
  SELECT customer_id, day, product_id, COUNT(*) AS n FROM base GROUP BY customer_id, day, product_id
),
cp AS (
  SELECT c.cutoff, x.customer_id, x.product_id,
         SUM(x.n * POWER(0.5, DATEDIFF('day', x.day, c.cutoff) / p.half_life_days)) AS rw
  FROM daily_cp x CROSS JOIN params p JOIN cutoffs c ON x.day <= c.cutoff
  WHERE DATEDIFF('day', x.day, c.cutoff) < p.lookback_days
  GROUP BY c.cutoff, x.customer_id, x.product_id
),
ranked AS (
  SELECT cutoff, customer_id, product_id, rw,
         ROW_NUMBER() OVER (PARTITION BY cutoff, customer_id ORDER BY rw DESC, product_id) AS rn
  FROM cp
),
fv AS (
  SELECT cutoff, customer_id,
    {_FAVS}
  FROM ranked WHERE rn <= {FAVOURITES} GROUP BY cutoff, customer_id
)
SELECT a.cutoff AS as_of, a.customer_id,
  a.n_transactions, a.n_visit_days, a.n_items, a.recency_days, a.tenure_days,
  7.0 * a.n_visit_days / rc.n_days AS visits_per_week,
  a.monetary_usd, a.monetary_usd / a.n_transactions AS spend_per_visit_usd,
  CAST(a.n_items AS DOUBLE) / a.n_transactions AS items_per_visit,
  CAST(a.q_hot AS DOUBLE) / a.q_all AS hot_share,
  CAST(a.q_iced AS DOUBLE) / a.q_all AS iced_share,
  CAST(a.q_all - a.q_hot - a.q_iced AS DOUBLE) / a.q_all AS none_share,
  {_TOD_SHARE},
  CAST(a.hour_sum AS DOUBLE) / a.n_transactions AS mean_hour,
  CAST(a.n_tx_weekend AS DOUBLE) / a.n_transactions AS weekend_share,
  CAST(a.n_tx_holiday AS DOUBLE) / a.n_transactions AS holiday_share,
  CASE WHEN rc.n_weekend_days > 0 AND rc.n_weekend_days < rc.n_days
       THEN (CAST(a.n_weekend_visit_days AS DOUBLE) / rc.n_weekend_days)
            / (CAST(a.n_visit_days AS DOUBLE) / rc.n_days) END AS weekend_lift,
  CASE WHEN rc.n_holidays > 0
       THEN (CAST(a.n_holiday_visit_days AS DOUBLE) / rc.n_holidays)
            / (CAST(a.n_visit_days AS DOUBLE) / rc.n_days) END AS holiday_lift,
  CASE WHEN rc.n_wet_days > 0
       THEN (CAST(a.n_wet_visit_days AS DOUBLE) / rc.n_wet_days)
            / (CAST(a.n_visit_days AS DOUBLE) / rc.n_days) END AS wet_lift,
  CASE WHEN a.q_drink_warm > 0 THEN CAST(a.q_iced_warm AS DOUBLE) / a.q_drink_warm END AS iced_share_warm,
  CASE WHEN a.q_drink_cold > 0 THEN CAST(a.q_iced_cold AS DOUBLE) / a.q_drink_cold END AS iced_share_cold,
  CASE WHEN a.q_drink_warm > 0 AND a.q_drink_cold > 0
       THEN CAST(a.q_iced_warm AS DOUBLE) / a.q_drink_warm - CAST(a.q_iced_cold AS DOUBLE) / a.q_drink_cold
       END AS weather_sensitivity,
  rc.median_temp AS region_median_temp,
  a.n_tx_weekend, a.n_tx_holiday, a.n_tx_recent,
  {", ".join(f"a.n_tx_t{j}" for j in range(N_TEMP_BANDS))},
  {_FAV_COLS}
FROM agg a
JOIN region_ctx rc ON rc.cutoff = a.cutoff
LEFT JOIN fv ON fv.cutoff = a.cutoff AND fv.customer_id = a.customer_id
ORDER BY a.cutoff, a.customer_id
"""
)

# Category shares per customer (one row per customer and category): catalogues differ between business
# units, so categories are data, not columns. Folded into one JSON column per customer in Python.
CUSTOMER_CATEGORY_SQL = (
    _COMMON
    + """,
daily_cat AS (
  SELECT customer_id, day, category, SUM(quantity) AS quantity FROM base GROUP BY customer_id, day, category
)
SELECT c.cutoff AS as_of, dc.customer_id, dc.category, SUM(dc.quantity) AS quantity
FROM daily_cat dc CROSS JOIN params p JOIN cutoffs c ON dc.day <= c.cutoff
WHERE DATEDIFF('day', dc.day, c.cutoff) < p.lookback_days
GROUP BY c.cutoff, dc.customer_id, dc.category
ORDER BY c.cutoff, dc.customer_id, dc.category
"""
)

SALES_DAYS_SQL = "SELECT DISTINCT s.day FROM raw.sales s WHERE s.region = ? ORDER BY s.day"
