"""The monitors' checks and asset-page metadata, and the check that every unit keeps uploading.

The checks of the monitor assets are partitioned by region: each verdict belongs to one region, so the
retrain-on-alert automation retrains exactly the region that alerted. Each judges the latest monitored day:
- `realised_hit_rate`: the 7-day rolling rule (lib/monitor/performance.py): error below popularity, warning
  below repeat or below the champion's hold-out figure by more than the margin;
- `feature_drift` (warning): a customer-behaviour feature drifted beyond its threshold;
- `prediction_drift` (warning): the served top lists drifted from those of the champion's hold-out days;
- `data_quality`: a metric above its threshold (warning), rejected rows above `error_reject_share` (error).

`units_on_time` (on raw/sales) names every business unit whose newest landed day lags the newest day that any
unit landed by more than `MAX_DAYS_BEHIND`: a unit that stopped uploading while the others go on.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from globolatte_dagster import keys as asset_keys
from globolatte_dagster.defs.automation import check_on_new_sales
from globolatte_dagster.defs.partitions import region_partitions
from globolatte_dagster.lib import plots
from globolatte_dagster.lib.monitor import performance as P
from globolatte_dagster.lib.monitor.compute import MetricsOf
from globolatte_dagster.lib.schema import SALES, Table
from globolatte_dagster.resources.warehouse import Warehouse

PERFORMANCE_CHECK = dg.AssetCheckSpec(
    "realised_hit_rate",
    asset=asset_keys.RECOMMENDATION_PERFORMANCE,
    partitions_def=region_partitions,
    description="The served lists' 7-day realised hit rate: error below popularity, warning below repeat or "
    "below the champion's hold-out figure by more than the margin",
)
FEATURE_DRIFT_CHECK = dg.AssetCheckSpec(
    "feature_drift",
    asset=asset_keys.DRIFT,
    partitions_def=region_partitions,
    description="No customer-behaviour feature of the latest day drifted from the champion's training window",
)
PREDICTION_DRIFT_CHECK = dg.AssetCheckSpec(
    "prediction_drift",
    asset=asset_keys.DRIFT,
    partitions_def=region_partitions,
    description="The latest day's top lists recommend what the lists of the champion's hold-out days did",
)
QUALITY_CHECK = dg.AssetCheckSpec(
    "data_quality",
    asset=asset_keys.DATA_QUALITY,
    partitions_def=region_partitions,
    description="The latest landed day's rejected, unknown-product, null, out-of-range and guest shares are "
    "within their thresholds and its weather landed",
)
# The checks whose failure retrains the region's model (retrain-on-alert).
RETRAIN_CHECKS: tuple[dg.AssetCheckKey, ...] = (PERFORMANCE_CHECK.key, FEATURE_DRIFT_CHECK.key)
MAX_DAYS_BEHIND = 1


def stored(warehouse: Warehouse, table: Table, region: str) -> pd.DataFrame:
    """A monitor table's rows of one region, by day."""
    sql = f"SELECT {', '.join(table.column_names)} FROM {table.schema}.{table.name} WHERE region = ? ORDER BY day"
    out = warehouse.query(sql, [region])
    out.columns = [str(c).lower() for c in out.columns]
    out["day"] = pd.to_datetime(out["day"]).dt.date
    return out


def _latest(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["day"] == table["day"].max()] if len(table) else table


def _md(frame: pd.DataFrame) -> dg.MetadataValue:
    return dg.MetadataValue.md(plots.markdown_table(frame) if len(frame) else "nothing monitored yet")


# --------------------------------------------------------------------------------------------- performance
def performance_metadata(table: pd.DataFrame, metrics_of: MetricsOf) -> dict:
    """The latest day, realised vs hold-out figures per champion version, and the plot."""
    if table.empty:
        return {"latest_day": "none: no served list has been scored yet"}
    by_version = []
    for (version, lst), part in table[table["customers"] > 0].groupby(["champion_version", "list"]):
        metrics = metrics_of(version) or {}
        n = float(part["customers"].sum())
        by_version.append(
            {
                "champion_version": version,
                "list": lst,
                "days": part["day"].nunique(),
                "customer_days": int(n),
                "realised": float((part[P.CHAMPION] * part["customers"]).sum() / n),
                "repeat_same_days": float((part[P.REPEAT].fillna(0) * part["customers"]).sum() / n)
                if part[P.REPEAT].notna().any()
                else "-",
                "popularity_same_days": float((part[P.POPULARITY] * part["customers"]).sum() / n),
                "holdout": P.holdout_figure(metrics, lst) if metrics else "-",
            }
        )
    return {
        "latest_day": str(table["day"].max()),
        "latest": _md(_latest(table).drop(columns=["region"])),
        "by_champion_version": _md(pd.DataFrame(by_version)),
        "plot": dg.MetadataValue.md(plots.markdown_image(plots.performance_plot(table), "realised hit rate")),
    }


def performance_check(table: pd.DataFrame, rolling_days: int) -> dg.AssetCheckResult:
    latest = _latest(table)
    alerts = [f"{r.list}: {r.alert}" for r in latest.itertuples() if isinstance(r.alert, str) and r.alert]
    error = any(": error" in a for a in alerts)
    return dg.AssetCheckResult(
        check_name=PERFORMANCE_CHECK.name,
        passed=not alerts,
        severity=dg.AssetCheckSeverity.ERROR if error else dg.AssetCheckSeverity.WARN,
        description="; ".join(alerts) or f"within the rules over the last {rolling_days} days",
        metadata={"day": str(latest["day"].max()) if len(latest) else "none", "alerts": len(alerts)},
    )


# --------------------------------------------------------------------------------------------------- drift
def drift_metadata(table: pd.DataFrame) -> dict:
    if table.empty:
        return {"latest_day": "none: no day served by a registered champion yet"}
    return {
        "latest_day": str(table["day"].max()),
        "latest": _md(_latest(table).drop(columns=["region", "day"])),
        "alerts_by_feature": dg.MetadataValue.json(
            table[table["alert"].astype(bool)].groupby("feature").size().astype(int).to_dict()
        ),
        "plot": dg.MetadataValue.md(plots.markdown_image(plots.drift_plot(table), "drift")),
    }


def drift_checks(table: pd.DataFrame):
    latest = _latest(table)
    for spec, signal in ((FEATURE_DRIFT_CHECK, "feature"), (PREDICTION_DRIFT_CHECK, "prediction")):
        part = latest[(latest["signal"] == signal) & latest["alert"].astype(bool)]
        found = [f"{r.feature} {r.metric} {r.value:.3f} > {r.threshold:.3f}" for r in part.itertuples()]
        yield dg.AssetCheckResult(
            check_name=spec.name,
            passed=not found,
            severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(found) or "no drift beyond the thresholds",
            metadata={"day": str(latest["day"].max()) if len(latest) else "none", "alerts": len(found)},
        )


# ---------------------------------------------------------------------------------------------- quality
def quality_metadata(table: pd.DataFrame) -> dict:
    if table.empty:
        return {"latest_day": "none"}
    wide = table.pivot_table(index="day", columns="metric", values="value").reset_index()
    return {
        "latest_day": str(table["day"].max()),
        "latest": _md(_latest(table).drop(columns=["region", "day"])),
        "last_days": _md(wide.tail(14)),
    }


def quality_check(table: pd.DataFrame, error_reject_share: float) -> dg.AssetCheckResult:
    latest = _latest(table)
    part = latest[latest["alert"].astype(bool)]
    found = [f"{r.metric} {r.value:.3f} > {r.threshold:.3f}" for r in part.itertuples()]
    rejects = latest.loc[latest["metric"] == "reject_share", "value"]
    error = bool(len(rejects) and float(rejects.iloc[0]) > error_reject_share)
    return dg.AssetCheckResult(
        check_name=QUALITY_CHECK.name,
        passed=not found,
        severity=dg.AssetCheckSeverity.ERROR if error else dg.AssetCheckSeverity.WARN,
        description="; ".join(found) or "every metric within its threshold",
        metadata={"day": str(latest["day"].max()) if len(latest) else "none", "alerts": len(found)},
    )


# ----------------------------------------------------------------------------------------- units on time
def latest_landed(query) -> dict[str, str]:
    """The newest landed sales day of each unit with sales."""
    frame = query(f"SELECT region, MAX(day) AS last_day FROM {SALES.schema}.{SALES.name} GROUP BY region", [])
    frame.columns = [str(c).lower() for c in frame.columns]
    return {str(r): str(d)[:10] for r, d in zip(frame["region"], frame["last_day"], strict=True)}


def units_behind(latest_by_region: dict[str, str], max_days_behind: int = MAX_DAYS_BEHIND) -> dict[str, int]:
    """Days each unit lags the newest landed day of any unit, for units beyond `max_days_behind`."""
    if not latest_by_region:
        return {}
    days = {r: pd.Timestamp(d) for r, d in latest_by_region.items()}
    newest = max(days.values())
    lag = {r: (newest - d).days for r, d in days.items()}
    return {r: n for r, n in sorted(lag.items()) if n > max_days_behind}


@dg.asset_check(
    asset=asset_keys.SALES,
    name="units_on_time",
    description=f"Every unit with sales has landed its days up to {MAX_DAYS_BEHIND} day behind the newest unit",
    automation_condition=check_on_new_sales(),
)
def units_on_time(warehouse: Warehouse) -> dg.AssetCheckResult:
    latest = latest_landed(warehouse.query)
    behind = units_behind(latest)
    return dg.AssetCheckResult(
        passed=not behind,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(f"{r}: last landed {latest[r]}, {n} days behind" for r, n in behind.items())
        or "every unit is up to date",
        metadata={
            "last_landed_day": dg.MetadataValue.json(latest),
            "units_behind": dg.MetadataValue.json(behind),
        },
    )
