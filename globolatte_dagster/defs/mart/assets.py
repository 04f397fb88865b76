"""Daily recommendations per region for marketing: the top-k products per customer for the next day."""

from datetime import timedelta

import dagster as dg
import pandas as pd

from globolatte_dagster.defs.automation import daily_refresh
from globolatte_dagster.defs.partitions import region_partitions
from globolatte_dagster.lib import model as Mo
from globolatte_dagster.lib.plots import markdown_table
from globolatte_dagster.lib.schema import Column, Table, register

RECOMMENDATIONS = register(
    Table(
        "mart",
        "recommendations",
        (
            Column("region", "text", False),
            Column("customer_id", "text", False),
            Column("for_date", "date", False),
            Column("rank", "int", False),
            Column("product_id", "text", False),
            Column("score", "float", False),
            Column("model_version", "text", False),
            Column("basis", "text", False),  # model | segment (low history) | popularity (no segment)
        ),
        "region",
    )
)


class RecommendationsConfig(dg.Config):
    """How many products per customer."""

    k: int = 3


@dg.asset(
    key=RECOMMENDATIONS.key,
    partitions_def=region_partitions,
    # the champion after the gate, never a rejected challenger
    ins={"model": dg.AssetIn(key=["ml", "registered_model"])},
    metadata={"partition_expr": "region"},
    io_manager_key="warehouse_io_manager",
    kinds={"scikitlearn", "pandas", "duckdb", "snowflake"},
    group_name="mart",
    pool="warehouse",
    automation_condition=daily_refresh(),
)
def recommendations(
    context: dg.AssetExecutionContext, config: RecommendationsConfig, model: Mo.PreferenceModel
) -> pd.DataFrame:
    """Top-k products per customer for the day after the last landed sales day, in that day's weather."""
    region = context.partition_key
    for_date = model.as_of + timedelta(days=1)
    ctx = model.context(for_date, None)
    requests = [
        {"region": region, "customer_id": str(c), "date": for_date.isoformat(), "k": config.k}
        for c in model.snapshot.customer_ids
    ]
    try:
        scored = model.score(requests)
    except Mo.BadRequest as exc:
        raise dg.Failure(description=f"{region}: {exc}") from exc
    out = scored.assign(region=region, for_date=pd.Timestamp(for_date), model_version=model.model_version)
    out = out[RECOMMENDATIONS.column_names].reset_index(drop=True)
    names = model.product_names
    top = out[out["rank"] == 1]["product_id"].value_counts().head(10).rename_axis("product_id").reset_index()
    top["product_name"] = top["product_id"].map(names)
    context.add_output_metadata(
        {
            "for_date": for_date.isoformat(),
            "customers": int(out["customer_id"].nunique()),
            "rows": len(out),
            "weather_source": ctx.weather_source,
            "temp_max_c": "unknown" if ctx.temp_max_c != ctx.temp_max_c else round(ctx.temp_max_c, 1),
            "basis": dg.MetadataValue.json(
                out.drop_duplicates("customer_id")["basis"].value_counts().to_dict()
            ),
            "model_version": model.model_version,
            "top_first_picks": dg.MetadataValue.md(markdown_table(top)),
        }
    )
    return out
