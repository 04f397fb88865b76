"""The monitors' automation sensor: it evaluates their conditions and the units-on-time check."""

import dagster as dg

from globolatte_dagster.defs.monitor.checks import units_on_time
from globolatte_dagster.lib.schema import MONITOR_TABLES
from globolatte_dagster.settings import default_sensor_status

monitor_automation_sensor = dg.AutomationConditionSensorDefinition(
    "monitor_automation_sensor",
    target=dg.AssetSelection.assets(*(t.key for t in MONITOR_TABLES))
    | dg.AssetSelection.checks(units_on_time),
    default_status=default_sensor_status(),
    minimum_interval_seconds=30,
    description="Monitors each region's landed days (performance, drift, data quality) and checks that every "
    "unit keeps uploading.",
)
