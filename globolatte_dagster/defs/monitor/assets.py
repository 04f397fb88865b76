"""Monitoring per region: realised hit rate of the served lists, drift and data quality of every landed day.

The assets are partitioned by region, like the models they watch. A run monitors the region's landed days
that are not in its table yet, the last `recent_days` landed days (late corrections) and any day asked for
in the config; each day's rows are replaced in one transaction (`Warehouse.replace_rows`), so a re-run
replaces and never duplicates. Each asset's checks are partitioned by region too (one verdict per region,
so one region's alert never hides or raises another's), and the performance and feature-drift checks
trigger the region's retraining (`defs/automation.py`).
"""

from datetime import date

import dagster as dg
import pandas as pd
from pydantic import Field

from globolatte_dagster import keys as asset_keys
from globolatte_dagster.defs.automation import monitor_refresh
from globolatte_dagster.defs.monitor import checks as K
from globolatte_dagster.defs.partitions import region_of_region_day, region_partitions
from globolatte_dagster.lib.monitor import compute as C
from globolatte_dagster.lib.monitor import drift as Dr
from globolatte_dagster.lib.monitor import performance as P
from globolatte_dagster.lib.monitor import quality as Q
from globolatte_dagster.lib.monitor import sources as S
from globolatte_dagster.lib.schema import (
    DATA_QUALITY,
    DRIFT,
    RECOMMENDATION_PERFORMANCE,
    Table,
)
from globolatte_dagster.resources.model_registry import ModelRegistry
from globolatte_dagster.resources.warehouse import Warehouse

KINDS = {"python", "pandas", "duckdb", "snowflake"}


class MonitorConfig(dg.Config):
    """Which days to monitor besides the new ones."""

    days: list[str] = Field(default_factory=list)  # YYYY-MM-DD: monitor these landed days again
    recent_days: int = 3  # the last this many landed days are monitored again (late corrections)


class PerformanceConfig(MonitorConfig):
    """The rolling rule of the realised-hit-rate check (see lib/monitor/performance.py)."""

    rolling_days: int = 7
    margin: float = 0.05
    z: float = 1.96
    min_customers: int = 30
    popularity_days: int = 28
    lookback_days: int = 365

    def params(self) -> P.PerformanceParams:
        return P.PerformanceParams(
            self.popularity_days,
            self.lookback_days,
            self.rolling_days,
            self.margin,
            self.z,
            self.min_customers,
        )


class DriftConfig(MonitorConfig):
    """Thresholds (Azure ML's default 0.1) and windows of the drift signals (see lib/monitor/drift.py)."""

    threshold: float = 0.1
    window_days: int = 3
    spread_quantile: float = 1.0
    noise_quantile: float = 0.99
    min_rows: int = 20
    reference_max_days: int = 365
    sustained_days: int = 2

    def params(self) -> Dr.DriftParams:
        return Dr.DriftParams(
            self.threshold,
            self.window_days,
            self.spread_quantile,
            self.noise_quantile,
            self.min_rows,
            self.reference_max_days,
            self.sustained_days,
        )


class QualityConfig(MonitorConfig):
    """Thresholds of the data-quality metrics (shares of the day's rows as they arrived)."""

    reject_share: float = 0.01
    unknown_product_share: float = 0.0
    null_share: float = 0.01
    out_of_range_share: float = 0.01
    guest_share: float = 0.5
    weather_missing: float = 0.0
    error_reject_share: float = 0.10  # the check errors above this (as the ingestion check does)

    def thresholds(self) -> Q.QualityThresholds:
        return Q.QualityThresholds(**{k: getattr(self, k) for k in Q.QualityThresholds.__dataclass_fields__})


def _days(config: MonitorConfig, warehouse: Warehouse, table: Table, region: str) -> list[date]:
    warehouse.ensure_tables([table])
    landed = S.landed_days(warehouse.query, region)
    if not landed:
        raise dg.Failure(description=f"no sales have landed for region '{region}': nothing to monitor")
    requested = [date.fromisoformat(d) for d in config.days]
    unknown = sorted(set(requested) - set(landed))
    if unknown:
        raise dg.Failure(
            description=f"{region}: no sales landed on {', '.join(d.isoformat() for d in unknown)}: nothing to monitor"
        )
    return C.days_to_monitor(
        landed, S.table_days(warehouse.query, table, region), config.recent_days, requested
    )


def _write(warehouse: Warehouse, table: Table, region: str, result: C.Result) -> int:
    """The region's rows with the monitored days' rows replaced, written in one transaction."""
    if not result.rows:
        return 0
    kept = K.stored(warehouse, table, region)
    kept = kept[~kept["day"].isin(set(result.rows))]
    new = result.frame(table.column_names)
    frame = pd.concat([f for f in (kept, new) if len(f)], ignore_index=True)
    frame["day"] = pd.to_datetime(frame["day"])
    warehouse.replace_rows(table, frame[table.column_names], {"region": region})
    return len(new)


def metrics_of(registry: ModelRegistry, region: str) -> C.MetricsOf:
    """Registry metrics by served model version (`globolatte-<region>:<n>`), cached; None if unknown."""
    cache: dict[str, dict | None] = {}

    def lookup(model_version: str) -> dict | None:
        if model_version not in cache:
            try:
                cache[model_version] = registry.metrics(region, model_version.rsplit(":", 1)[-1])
            except Exception:  # a version the registry no longer has (deleted, another workspace)
                cache[model_version] = None
        return cache[model_version]

    return lookup


def _run_meta(days: list[date], result: C.Result, rows: int) -> dict:
    return {
        "days_monitored": len(result.rows),
        "days": dg.MetadataValue.text(", ".join(d.isoformat() for d in sorted(result.rows)) or "none"),
        "days_skipped": dg.MetadataValue.json(
            {d.isoformat(): why for d, why in sorted(result.skipped.items())}
        ),
        "rows_written": rows,
        "days_considered": len(days),
    }


@dg.asset(
    key=asset_keys.RECOMMENDATION_PERFORMANCE,
    partitions_def=region_partitions,
    deps=[
        dg.AssetDep(asset_keys.SALES, partition_mapping=region_of_region_day),
        dg.AssetDep(asset_keys.RECOMMENDATIONS),
        dg.AssetDep(asset_keys.REGISTERED_MODEL),
        dg.AssetDep(asset_keys.PRODUCTS),
    ],
    check_specs=[K.PERFORMANCE_CHECK],
    kinds=KINDS,
    group_name="monitor",
    pool="warehouse",
    automation_condition=monitor_refresh(),
)
def recommendation_performance(
    context: dg.AssetExecutionContext,
    config: PerformanceConfig,
    warehouse: Warehouse,
    registry: ModelRegistry,
):
    """Realised hit rate@3 of each landed day's served lists, with popularity and repeat on the same customers."""
    region = context.partition_key
    days = _days(config, warehouse, RECOMMENDATION_PERFORMANCE, region)
    lookup = metrics_of(registry, region)
    result = C.performance(warehouse.query, region, days, lookup, config.params())
    rows = _write(warehouse, RECOMMENDATION_PERFORMANCE, region, result)
    table = K.stored(warehouse, RECOMMENDATION_PERFORMANCE, region)
    yield dg.MaterializeResult(
        metadata={**_run_meta(days, result, rows), **K.performance_metadata(table, lookup)}
    )
    yield K.performance_check(table, config.rolling_days)


@dg.asset(
    key=asset_keys.DRIFT,
    partitions_def=region_partitions,
    deps=[
        dg.AssetDep(asset_keys.SALES, partition_mapping=region_of_region_day),
        dg.AssetDep(asset_keys.WEATHER, partition_mapping=region_of_region_day),
        dg.AssetDep(asset_keys.RECOMMENDATIONS),
        dg.AssetDep(asset_keys.REGISTERED_MODEL),
    ],
    check_specs=[K.FEATURE_DRIFT_CHECK, K.PREDICTION_DRIFT_CHECK],
    kinds=KINDS,
    group_name="monitor",
    pool="warehouse",
    automation_condition=monitor_refresh(),
)
def drift(
    context: dg.AssetExecutionContext, config: DriftConfig, warehouse: Warehouse, registry: ModelRegistry
):
    """Feature, weather and prediction drift of each landed day against the serving champion's reference."""
    region = context.partition_key
    days = _days(config, warehouse, DRIFT, region)
    result = C.drift(warehouse.query, region, days, metrics_of(registry, region), config.params())
    rows = _write(warehouse, DRIFT, region, result)
    table = K.stored(warehouse, DRIFT, region)
    yield dg.MaterializeResult(metadata={**_run_meta(days, result, rows), **K.drift_metadata(table)})
    yield from K.drift_checks(table)


@dg.asset(
    key=asset_keys.DATA_QUALITY,
    partitions_def=region_partitions,
    deps=[
        dg.AssetDep(asset_keys.SALES, partition_mapping=region_of_region_day),
        dg.AssetDep(asset_keys.SALES_REJECTS, partition_mapping=region_of_region_day),
        dg.AssetDep(asset_keys.WEATHER, partition_mapping=region_of_region_day),
    ],
    check_specs=[K.QUALITY_CHECK],
    kinds=KINDS,
    group_name="monitor",
    pool="warehouse",
    automation_condition=monitor_refresh(),
)
def data_quality(context: dg.AssetExecutionContext, config: QualityConfig, warehouse: Warehouse):
    """Rejected, unknown-product, null and out-of-range shares, guests and weather of each landed day."""
    region = context.partition_key
    days = _days(config, warehouse, DATA_QUALITY, region)
    result = C.quality(warehouse.query, region, days, config.thresholds())
    rows = _write(warehouse, DATA_QUALITY, region, result)
    table = K.stored(warehouse, DATA_QUALITY, region)
    yield dg.MaterializeResult(metadata={**_run_meta(days, result, rows), **K.quality_metadata(table)})
    yield K.quality_check(table, config.error_reject_share)
