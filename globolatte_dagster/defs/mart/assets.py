"""Daily recommendations per region for marketing: the `top` and `discover` lists per customer for the next day.

Served lists are kept by `for_date`: each materialisation replaces only the rows of its region and
`for_date` (one transaction), so monitoring can score a day's lists once that day's sales land, also after
the next day's lists were written.
"""

from datetime import date, timedelta

import dagster as dg
import pandas as pd

from globolatte_dagster import keys as asset_keys
from globolatte_dagster.defs.automation import daily_refresh
from globolatte_dagster.defs.partitions import region_partitions
from globolatte_dagster.lib.plots import markdown_table
from globolatte_dagster.lib.recommend.metrics import HIT_RATE, K
from globolatte_dagster.lib.recommend.scoring import RegionRecommender
from globolatte_dagster.lib.schema import RECOMMENDATIONS, SALES
from globolatte_dagster.resources.warehouse import Warehouse


class RecommendationsConfig(dg.Config):
    """How many products per customer and list."""

    k: int = K


def _list_figures(model: RegionRecommender) -> dict:
    """The hold-out figures of both lists and their baselines, as the asset page shows them."""
    m = model.metrics
    rows = []
    for lst, champion, baseline in (
        ("top", m.get("champion"), m.get("best_baseline")),
        ("discover", m.get("discover_champion"), "popularity"),
    ):
        prefix = "" if lst == "top" else "discover_"
        rows.append(
            {
                "list": lst,
                "candidate": champion,
                HIT_RATE: m.get(f"{prefix}{HIT_RATE}_{champion}"),
                "baseline": baseline,
                f"baseline_{HIT_RATE}": m.get(f"{prefix}{HIT_RATE}_{baseline}"),
            }
        )
    return {"holdout_figures": dg.MetadataValue.md(markdown_table(pd.DataFrame(rows).fillna("-"), "{:.4f}"))}


def last_sales_day(warehouse: Warehouse, region: str) -> date | None:
    """The region's last landed sales day in the warehouse, or None."""
    frame = warehouse.query(
        f"SELECT MAX(day) AS last_day FROM {SALES.schema}.{SALES.name} WHERE region = ?", [region]
    )
    value = frame.iloc[0, 0] if len(frame) else None
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date()


@dg.asset(
    key=asset_keys.RECOMMENDATIONS,
    partitions_def=region_partitions,
    # the champion after the gate, never a rejected challenger
    ins={"model": dg.AssetIn(key=asset_keys.REGISTERED_MODEL)},
    kinds={"scikitlearn", "pandas", "duckdb", "snowflake"},
    group_name="mart",
    pool="warehouse",
    automation_condition=daily_refresh(),
)
def recommendations(
    context: dg.AssetExecutionContext,
    config: RecommendationsConfig,
    warehouse: Warehouse,
    model: RegionRecommender,
) -> dg.MaterializeResult:
    """Top and discover lists per customer for the day after the last landed sales day, in that day's weather."""
    region = context.partition_key
    if model is None:
        raise dg.Failure(description=f"{region}: no champion model to recommend with")
    # The day after the region's last landed sales day, also when the gate kept an older champion (its
    # snapshot then serves a few days ahead, as the endpoint does): else that day would get no lists.
    for_date = max(model.as_of, last_sales_day(warehouse, region) or model.as_of) + timedelta(days=1)
    ctx = model.context(for_date, None)
    lists = model.lists(for_date, config.k)
    out = lists.assign(region=region, for_date=pd.Timestamp(for_date), model_version=model.model_version)
    out = out[RECOMMENDATIONS.column_names].reset_index(drop=True)
    warehouse.replace_rows(RECOMMENDATIONS, out, {"region": region, "for_date": for_date.isoformat()})
    top = out[(out["list"] == "top") & (out["rank"] == 1)]["product_id"].value_counts().head(10)
    top = top.rename_axis("product_id").reset_index()
    top["product_name"] = top["product_id"].map(model.product_names)
    return dg.MaterializeResult(
        metadata={
            "for_date": for_date.isoformat(),
            "customers": int(out["customer_id"].nunique()),
            "rows": dg.MetadataValue.json(out["list"].value_counts().to_dict()),
            "dagster/row_count": len(out),
            "candidates": dg.MetadataValue.json(
                out.drop_duplicates("list").set_index("list")["candidate"].to_dict()
            ),
            "weather_source": ctx.weather_source,
            "temp_max_c": "unknown" if ctx.temp_max_c != ctx.temp_max_c else round(ctx.temp_max_c, 1),
            "model_version": model.model_version,
            "top_first_picks": dg.MetadataValue.md(markdown_table(top)),
            **_list_figures(model),
        }
    )
