"""Sensors on the landing zone: new or changed files start the loads they feed."""

import json
from datetime import date, timedelta

import dagster as dg

from globolatte_dagster.defs.partitions import (
    FIRST_DAY,
    RANGE_END_TAG,  # noqa: F401 (re-exported for tests reading request tags)
    RANGE_START_TAG,  # noqa: F401
    region_day_key,
    region_days_tags,
)
from globolatte_dagster.lib import contract
from globolatte_dagster.lib.scan import PartitionChange, scan_sales
from globolatte_dagster.lib.schema import CUSTOMERS, PRODUCTS, SALES, SALES_REJECTS, WEATHER
from globolatte_dagster.resources.landing import LandingZone
from globolatte_dagster.settings import default_sensor_status

# Queued runs start by priority: the catalogue first (sales are validated against it), then sales, then weather.
ingest_sales_job = dg.define_asset_job(
    "ingest_sales",
    selection=dg.AssetSelection.assets(SALES.key, SALES_REJECTS.key),
    tags={"globolatte/warehouse": "write", "dagster/priority": "5"},
)
ingest_weather_job = dg.define_asset_job(
    "ingest_weather", selection=dg.AssetSelection.assets(WEATHER.key), tags={"globolatte/warehouse": "write"}
)
refresh_reference_job = dg.define_asset_job(
    "refresh_reference",
    selection=dg.AssetSelection.assets(PRODUCTS.key, CUSTOMERS.key),
    tags={"globolatte/warehouse": "write", "dagster/priority": "10"},
)


def partition_run_requests(changes: list[PartitionChange], prefix: str) -> list[dg.RunRequest]:
    """Runs for the changed partitions: each changed partition once, nothing else.

    Consecutive changed days of one region share one ranged run. Regions are never merged into one run:
    Dagster's database IO managers take a run's partitions as one key range, and a range over two regions
    of the region x day partitions is several ranges (the DbIOManager refuses it).
    """
    by_region: dict[str, list[PartitionChange]] = {}
    for change in sorted(changes, key=lambda c: (c.region, c.day)):
        by_region.setdefault(change.region, []).append(change)
    return [
        _request(region, group, prefix)
        for region in contract.REGION_KEYS
        for group in _consecutive(by_region.get(region, []))
    ]


def _consecutive(items: list[PartitionChange]) -> list[list[PartitionChange]]:
    groups: list[list[PartitionChange]] = []
    for change in items:
        if groups and date.fromisoformat(change.day) - date.fromisoformat(groups[-1][-1].day) == timedelta(
            days=1
        ):
            groups[-1].append(change)
        else:
            groups.append([change])
    return groups


def _request(region: str, group: list[PartitionChange], prefix: str) -> dg.RunRequest:
    run_key = f"{prefix}:" + ",".join(c.run_key for c in group)
    if len(group) == 1:
        return dg.RunRequest(run_key=run_key, partition_key=region_day_key(region, group[0].day))
    return dg.RunRequest(run_key=run_key, tags=region_days_tags(region, group[0].day, group[-1].day))


# An ordinary tick lists only recent months; a full pass over every day folder (which finds a late day in an
# older month) runs on the first tick and then at most this often.
SALES_FULL_PASS_SECONDS = 3600


def _last_partition_day() -> date:
    return date.today() + timedelta(days=7)


@dg.sensor(
    job=ingest_sales_job,
    minimum_interval_seconds=30,
    default_status=default_sensor_status(),
    description="Finds new and changed sales files and loads each affected region-day partition once per change.",
)
def sales_landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    if context.instance.get_latest_materialization_event(dg.AssetKey(PRODUCTS.key)) is None:
        # Rows are validated against the catalogue: wait for reference_landing_sensor's first load.
        return dg.SkipReason("waiting for core/products: reference/products.csv has not been loaded yet")
    cursor = json.loads(context.cursor) if context.cursor else None
    scan = scan_sales(
        landing.list,
        landing.list_dirs,
        cursor,
        first_day=date.fromisoformat(FIRST_DAY),
        last_day=_last_partition_day(),
        full_pass_seconds=SALES_FULL_PASS_SECONDS,
    )
    for line in scan.skipped:
        context.log.warning(f"skipped: {line}")
    requests = partition_run_requests(scan.changes, "sales")
    context.log.info(
        f"{len(scan.changes)} changed partition(s) -> {len(requests)} run(s); "
        f"listed {scan.listed_objects} object(s) in {scan.listing_calls} call(s)"
        + (" (full pass over every day folder)" if scan.full_pass else " (recent months)")
    )
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(scan.cursor, separators=(",", ":")))


@dg.sensor(
    job=ingest_weather_job,
    # forecasts are rewritten with every landed day: a slower tick batches them into fewer ranged runs
    minimum_interval_seconds=120,
    default_status=default_sensor_status(),
    description="Loads new or revised weather files (observations and forecasts) per region and day.",
)
def weather_landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    changes: list[PartitionChange] = []
    for region in contract.REGION_KEYS:
        for obj in landing.list(contract.weather_prefix(region)):
            if seen.get(obj.path) == obj.fingerprint:
                continue
            try:
                parsed = contract.parse_landing_path(obj.path)
            except contract.ContractError as exc:
                context.log.warning(f"skipped: {exc}")
                seen[obj.path] = obj.fingerprint
                continue
            seen[obj.path] = obj.fingerprint
            changes.append(PartitionChange(region, parsed.day.isoformat(), [(obj.path, obj.fingerprint)]))
    first, last = date.fromisoformat(FIRST_DAY), _last_partition_day()
    changes = [c for c in changes if first <= date.fromisoformat(c.day) <= last]
    return dg.SensorResult(run_requests=partition_run_requests(changes, "weather"), cursor=json.dumps(seen))


@dg.sensor(
    job=refresh_reference_job,
    minimum_interval_seconds=30,
    default_status=default_sensor_status(),
    description="Reloads products and customers when a new reference snapshot lands.",
)
def reference_landing_sensor(
    context: dg.SensorEvaluationContext, landing: LandingZone
) -> dg.SensorResult | None:
    objects = [
        o
        for o in landing.list("reference/")
        if o.path in ("reference/products.csv", "reference/customers.csv")
    ]
    if not objects:
        return None
    key = ",".join(f"{o.path}={o.fingerprint}" for o in objects)
    if key == context.cursor:
        return None
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=key)], cursor=key)
