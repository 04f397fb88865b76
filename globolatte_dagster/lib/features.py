"""Customer features as SQL run in the warehouse, point in time as of one or many cutoff days.

Every query takes a cutoff range `[first_cutoff, last_cutoff]` (the cutoff days come from
`core.calendar`) and returns one row per (cutoff, customer), (cutoff, customer, product) or
(cutoff, product). A cutoff includes its own day and nothing after it: a row as of cutoff `c` is built
only from sales and weather with `day <= c`. Training rows for a label day `d` use the cutoff `d - 1`.

The SQL is written once for DuckDB and Snowflake: bound `?` parameters only, the calendar for weekdays
and holidays, and portable functions (EXTRACT(HOUR FROM ...), DATEDIFF('day', a, b), CASE, MEDIAN).
Identifiers and the temperature bands are code constants. The SQL text is in `lib/feature_sql.py`; this
module runs it and shapes what comes back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from globolatte_dagster.lib.contract import REGIONS
from globolatte_dagster.lib.feature_sql import (
    CUSTOMER_CATEGORY_SQL,
    CUSTOMER_FEATURES_SQL,
    SALES_DAYS_SQL,
)
from globolatte_dagster.lib.schema import CUSTOMER_FEATURES, FEATURE_COLUMNS

Query = Callable[[str, Sequence[Any]], pd.DataFrame]


@dataclass(frozen=True)
class FeatureParams:
    """Windows of the feature SQL (days) and the low-history threshold."""

    lookback_days: int = 180  # history a feature row looks at
    recent_days: int = 28  # "recent": popularity and segment shares
    half_life_days: float = 14.0  # recency weighting of favourite counts
    min_visit_days: int = 3  # fewer distinct visit days than this: flagged low_history

    def __post_init__(self) -> None:
        if (
            self.lookback_days < 1
            or self.recent_days < 1
            or self.half_life_days <= 0
            or self.min_visit_days < 1
        ):
            raise ValueError(f"invalid feature parameters {self}")


INT_COLUMNS = [c.name for c in FEATURE_COLUMNS if c.type == "int"]
FLOAT_COLUMNS = [c.name for c in FEATURE_COLUMNS if c.type == "float"]


def _params(region: str, first: date, last: date, p: FeatureParams) -> list[Any]:
    if region not in REGIONS:
        raise ValueError(f"unknown region '{region}'")
    if first > last:
        raise ValueError(f"first cutoff {first} is after last cutoff {last}")
    return [
        region,
        first.isoformat(),
        last.isoformat(),
        p.lookback_days,
        p.recent_days,
        float(p.half_life_days),
        REGIONS[region].usd_per_unit,
    ]


def run_query(query: Query, sql: str, params: Sequence[Any]) -> pd.DataFrame:
    """Run SQL and normalise the frame: lower-case column names (Snowflake answers in upper case)."""
    df = query(sql, params)
    df.columns = [str(c).lower() for c in df.columns]
    for col in ("as_of", "day"):
        if col in df.columns:
            df[col] = pd.to_datetime(df[col]).dt.date
    return df


def customer_features(
    query: Query,
    region: str,
    first_cutoff: date,
    last_cutoff: date | None = None,
    params: FeatureParams | None = None,
) -> pd.DataFrame:
    """One row per (as_of, customer) for every cutoff day in the range; guests are excluded.

    Customers with fewer than `min_visit_days` visit days are kept and flagged `low_history`.
    """
    p = params or FeatureParams()
    args = _params(region, first_cutoff, last_cutoff or first_cutoff, p)
    df = run_query(query, CUSTOMER_FEATURES_SQL, args)
    cats = run_query(query, CUSTOMER_CATEGORY_SQL, args)
    df["category_shares"] = _category_json(cats, df)
    df["region"] = region
    df["low_history"] = df["n_visit_days"].astype("int64") < p.min_visit_days
    for col in INT_COLUMNS:
        df[col] = pd.to_numeric(df[col]).astype("int64")
    for col in FLOAT_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    df["as_of"] = pd.to_datetime(df["as_of"])
    return df[CUSTOMER_FEATURES.column_names].reset_index(drop=True)


def _category_json(cats: pd.DataFrame, df: pd.DataFrame) -> list[str]:
    if cats.empty:
        return ["{}"] * len(df)
    cats = cats.copy()
    cats["quantity"] = pd.to_numeric(cats["quantity"]).astype(float)
    cats["share"] = cats["quantity"] / cats.groupby(["as_of", "customer_id"])["quantity"].transform("sum")
    by_key: dict[tuple, dict[str, float]] = {}
    for as_of, cid, cat, share in cats[["as_of", "customer_id", "category", "share"]].itertuples(index=False):
        by_key.setdefault((as_of, cid), {})[str(cat)] = round(float(share), 6)
    return [
        json.dumps(by_key.get((a, c), {}), sort_keys=True)
        for a, c in zip(df["as_of"], df["customer_id"], strict=True)
    ]


def category_shares(features: pd.DataFrame) -> pd.DataFrame:
    """The JSON category shares as one column per category (`cat_<name>`), zero where absent."""
    rows = [json.loads(s) if isinstance(s, str) and s else {} for s in features["category_shares"]]
    names = sorted(set().union(*rows)) if rows else []
    values = np.array([[r.get(c, 0.0) for c in names] for r in rows], dtype=float).reshape(
        len(rows), len(names)
    )
    return pd.DataFrame(values, index=features.index, columns=[f"cat_{c}" for c in names])


def sales_days(query: Query, region: str) -> list[date]:
    return list(run_query(query, SALES_DAYS_SQL, [region])["day"])
