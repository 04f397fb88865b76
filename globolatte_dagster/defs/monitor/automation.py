"""Automation of the monitors, and the retraining they trigger.

- `monitor_refresh`: a region's monitors run when a day of its sales lands (raw/sales updated), once their
  upstream has data and nothing upstream is still running; the served lists and models they read being
  upstream, they wait for the day's ML refresh rather than race it.
- `retrain_on_alert`: the region's ml/preference_model is requested after a monitor run whose realised
  hit-rate or feature-drift check failed (the region's partitioned check), even when the daily refresh has
  already run that day; what follows it (the registered model behind its gate) comes along by its own
  automation.
"""

from __future__ import annotations

import dagster as dg

from globolatte_dagster.defs.monitor.checks import RETRAIN_CHECKS
from globolatte_dagster.lib.schema import SALES, WEATHER

AC = dg.AutomationCondition


def monitor_refresh() -> dg.AutomationCondition:
    """Run when a day's sales land, once upstream has data (weather may be missing) and is not running."""
    new_day = (
        AC.any_deps_updated()
        .allow(dg.AssetSelection.assets(SALES.key))
        .since_last_handled()
        .with_label("a day's sales landed")
    )
    upstream = (
        AC.all_deps_match(~AC.missing() | AC.will_be_requested())
        .ignore(dg.AssetSelection.assets(WEATHER.key))
        .with_label("upstream has data")
    )
    return (
        new_day
        & upstream
        & ~AC.any_deps_in_progress().with_label("upstream still running")
        & ~AC.in_progress().with_label("monitor running")
    ).with_label("monitor each landed day")


def retrain_on_alert() -> dg.AutomationCondition:
    """True for a region from a monitor run whose retraining check failed until the model is requested."""
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
