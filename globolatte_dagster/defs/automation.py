"""Declarative automation of the assets below the raw layer, in one place: the conditions and the one sensor.

`daily_refresh` refreshes a region once its upstream has data and is not being loaded, at most once per
region per day after a success, and again after a failure (at most every `RETRY_CRON` tick).
`deploy_on_new_champion` deploys when any region's registered model changed. `monitor_refresh` runs a
region's monitors when a day of its sales lands; `retrain_on_alert` retrains the region's model after a
monitor run whose realised hit-rate or feature-drift check failed. `register_new_model` gates each new
model as it lands and `check_on_new_sales` evaluates a raw/sales check when days land. One sensor evaluates every asset's (and
check's) condition, so a region's whole chain (features to recommendations) can be requested in one run.
"""

import dagster as dg

from globolatte_dagster import keys as asset_keys
from globolatte_dagster import settings

REFRESH_CRON = "0 0 * * *"  # a region refreshes at most once between two ticks of this (UTC)
RETRY_CRON = "*/10 * * * *"  # a failed refresh is requested again at most once between two ticks of this

AC = dg.AutomationCondition


def upstream_ready() -> dg.AutomationCondition:
    """Every dependency has data, or will be requested on this tick.

    A region × day dependency (raw/sales) counts as having data when at least one day of the region is
    loaded: the days without sales are never materialised, so `~any_deps_missing()` would never hold for
    it. raw/weather may be missing altogether: a missing weather feed never blocks sales or models.
    """
    return (
        AC.all_deps_match(~AC.missing() | AC.will_be_requested())
        .ignore(dg.AssetSelection.assets(asset_keys.WEATHER))
        .with_label("upstream has data")
    )


def daily_refresh(cron: str = REFRESH_CRON, retry_cron: str = RETRY_CRON) -> dg.AutomationCondition:
    """Refresh a region when its inputs have new data (or it never ran), at most once per region per day
    after a success; retry a failed refresh on the next `retry_cron` tick.

    A request that failed does not count as "refreshed today". Each part carries a label, so the asset's
    automation page says which one holds a refresh back.
    """
    new_data = AC.any_deps_updated().since_last_handled().with_label("new upstream data")
    never_ran = (AC.missing() & ~AC.execution_failed()).with_label("never materialised")
    retry = (AC.execution_failed() & ~AC.newly_requested().since(AC.cron_tick_passed(retry_cron))).with_label(
        "last run failed: retry"
    )
    refreshed_today = (
        AC.newly_updated().since(AC.cron_tick_passed(cron)).with_label("already refreshed today")
    )
    return (
        (new_data | never_ran | retry)
        & ~refreshed_today
        & upstream_ready()
        & ~AC.any_deps_in_progress().with_label("upstream still running")
        & ~AC.in_progress().with_label("refresh running")
    ).with_label("daily refresh on new sales")


def deploy_on_new_champion() -> dg.AutomationCondition:
    """Deploy when any region's registered model changed and none is being registered.

    Unlike `eager()`, it does not wait for every region: a region with no sales yet has no registered model
    and must not keep the others' champions off the endpoint.
    """
    return (
        AC.any_deps_updated().since_last_handled().with_label("a region's registered model changed")
        & ~AC.any_deps_in_progress().with_label("a region is being registered")
        & ~AC.in_progress().with_label("deployment running")
    ).with_label("deploy new champions")


def monitor_refresh() -> dg.AutomationCondition:
    """A region's monitors run when a day of its sales lands (raw/sales updated), once upstream has data and
    nothing upstream is still running: the served lists and models they read are upstream, so they wait for
    the day's ML refresh instead of racing it. A refresh of the models alone does not run them again.
    """
    new_day = (
        AC.any_deps_updated()
        .allow(dg.AssetSelection.assets(asset_keys.SALES))
        .since_last_handled()
        .with_label("a day's sales landed")
    )
    return (
        new_day
        & upstream_ready()
        & ~AC.any_deps_in_progress().with_label("upstream still running")
        & ~AC.in_progress().with_label("monitor running")
    ).with_label("monitor each landed day")


def retrain_on_alert() -> dg.AutomationCondition:
    """Retrain a region after a monitor run whose realised hit-rate or feature-drift check failed.

    The checks are partitioned by region, so only the region that alerted retrains; it retrains once per
    failing monitor run (also when the daily refresh already ran that day), and what follows it (the
    registered model behind its gate) comes along by its own automation.
    """
    # imported here: the monitor checks take their own condition (`check_on_new_sales`) from this module
    from globolatte_dagster.defs.monitor.checks import RETRAIN_CHECKS

    failed = [
        AC.asset_matches(
            check.asset_key,
            AC.newly_updated()
            & AC.any_checks_match(AC.check_failed()).allow(dg.AssetSelection.checks(check)),
        ).with_label(f"{check.name} failed")
        for check in RETRAIN_CHECKS
    ]
    alert = (failed[0] | failed[1]).since(AC.newly_requested()).with_label("a monitor check failed")
    return (
        alert
        & ~AC.any_deps_in_progress().with_label("upstream still running")
        & ~AC.in_progress().with_label("retrain running")
    ).with_label("retrain on alert")


def register_new_model() -> dg.AutomationCondition:
    """Register (and gate) a region's new preference model as soon as it is materialised: Dagster's eager."""
    return AC.eager()


def check_on_new_sales() -> dg.AutomationCondition:
    """Evaluate a check of raw/sales once new days landed, unless it is running already."""
    return AC.any_deps_updated().since_last_handled() & ~AC.in_progress()


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """The one automation sensor, on unless GLOBOLATTE_AUTOMATION=off (read when the definitions load)."""
    return dg.AutomationConditionSensorDefinition(
        "automation_sensor",
        target=dg.AssetSelection.all(),
        default_status=settings.default_sensor_status(),
        minimum_interval_seconds=30,
        description="Evaluates every asset's automation condition: the daily refresh of features, segments, "
        "the tournament, the gate and the recommendations once new sales land, the deployment of new "
        "champions, the monitors of each landed day and the retraining on their alerts.",
    )


@dg.definitions
def automation() -> dg.Definitions:
    return dg.Definitions(sensors=[automation_sensor()])
