"""Sensors on the landing zone: new or changed files start the loads they feed."""

import json
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from globolatte_dagster import keys as asset_keys
from globolatte_dagster import settings
from globolatte_dagster.defs.partitions import (
    END_OFFSET_DAYS,
    RANGE_END_TAG,  # noqa: F401 (re-exported for tests reading request tags)
    RANGE_START_TAG,  # noqa: F401
    region_day_key,
    region_day_partitions,
    region_days_tags,
)
from globolatte_dagster.lib import contract
from globolatte_dagster.lib import scan as scan_lib
from globolatte_dagster.lib.scan import (
    FAILED,
    IN_PROGRESS,
    LOADED,
    MISSING,
    PartitionChange,
    RetryPolicy,
    ScanResult,
    StatusFn,
    parse_cursor,
    scan_sales,
)
from globolatte_dagster.lib.scan_weather import scan_weather
from globolatte_dagster.resources.landing import LandingZone

# Queued runs start by priority: the catalogue first (sales are validated against it), then sales, then weather.
ingest_sales_job = dg.define_asset_job(
    "ingest_sales",
    selection=dg.AssetSelection.assets(asset_keys.SALES, asset_keys.SALES_REJECTS),
    tags={"globolatte/warehouse": "write", "dagster/priority": "5"},
)
ingest_weather_job = dg.define_asset_job(
    "ingest_weather",
    selection=dg.AssetSelection.assets(asset_keys.WEATHER),
    tags={"globolatte/warehouse": "write"},
)
# The calendar comes with the reference data: nothing else materialises it, and features need it.
refresh_reference_job = dg.define_asset_job(
    "refresh_reference",
    selection=dg.AssetSelection.assets(asset_keys.PRODUCTS, asset_keys.CUSTOMERS, asset_keys.CALENDAR),
    tags={"globolatte/warehouse": "write", "dagster/priority": "10"},
)


def partition_run_requests(
    changes: list[PartitionChange], prefix: str, bridge_days: int = 1
) -> list[dg.RunRequest]:
    """Runs for the changed partitions: each changed partition once, nothing else.

    Consecutive changed days of one region share one ranged run, except a day whose retried range failed
    again: it runs alone, so that one bad file does not hold back its neighbours. Regions are never merged
    into one run: Dagster's database IO managers take a run's partitions as one key range, and a range over
    two regions of the region x day partitions is several ranges (the DbIOManager refuses it).
    """
    by_region: dict[str, list[PartitionChange]] = {}
    for change in sorted(changes, key=lambda c: (c.region, c.day)):
        by_region.setdefault(change.region, []).append(change)
    return [
        _request(region, group, prefix)
        for region in contract.REGION_KEYS
        for group in _consecutive(by_region.get(region, []), bridge_days)
    ]


def _consecutive(items: list[PartitionChange], bridge_days: int = 1) -> list[list[PartitionChange]]:
    """Runs of days at most `bridge_days` apart (1: consecutive days only)."""
    groups: list[list[PartitionChange]] = []
    for change in items:
        previous = groups[-1][-1] if groups else None
        if (
            previous is not None
            and not (change.alone or previous.alone)
            and date.fromisoformat(change.day) - date.fromisoformat(previous.day)
            <= timedelta(days=bridge_days)
        ):
            groups[-1].append(change)
        else:
            groups.append([change])
    return groups


def _request(region: str, group: list[PartitionChange], prefix: str) -> dg.RunRequest:
    run_key = f"{prefix}:" + ",".join(c.run_key for c in group)
    tags = {REASON_TAG: ",".join(sorted({c.reason for c in group}))}
    if len(group) == 1:
        return dg.RunRequest(run_key=run_key, partition_key=region_day_key(region, group[0].day), tags=tags)
    return dg.RunRequest(
        run_key=run_key, tags={**tags, **region_days_tags(region, group[0].day, group[-1].day)}
    )


REASON_TAG = "globolatte/reason"  # new, changed or retry: why the sensor asked for the run
# A local file modified less than this long ago waits for the next listing, which must see it unchanged.
QUIET_SECONDS = 10.0
RETRY = RetryPolicy()
WEATHER_BRIDGE_DAYS = 4
_STATUS = {
    dg.AssetPartitionStatus.MATERIALIZED: LOADED,
    dg.AssetPartitionStatus.FAILED: FAILED,
    dg.AssetPartitionStatus.IN_PROGRESS: IN_PROGRESS,
}


def _now() -> datetime:
    return datetime.now(UTC)


def _first_partition_day() -> date:
    return date.fromisoformat(settings.first_day())


def _last_partition_day() -> date:
    return date.today() + timedelta(days=END_OFFSET_DAYS)


def partition_status(instance: dg.DagsterInstance, key: dg.AssetKey | list[str]) -> StatusFn:
    """Dagster's own status of region x day partitions of an asset (materialized, failed, in progress)."""
    partitions_def = region_day_partitions()
    asset_key = dg.AssetKey.from_coercible(key)

    def status(region: str, days: list[str]) -> dict[str, str]:
        keys = [str(region_day_key(region, d)) for d in days]
        found = instance.get_status_by_partition(asset_key, keys, partitions_def) or {}
        return {d: _STATUS.get(found.get(k), MISSING) for d, k in zip(days, keys, strict=True)}

    return status


def _log_scan(context: dg.SensorEvaluationContext, scan: ScanResult, requests: list[dg.RunRequest]) -> None:
    for line in scan.skipped:
        context.log.warning(f"skipped: {line}")
    for line in scan.errors:
        context.log.warning(f"not listed this tick: {line}")
    for line in scan.notes[:20]:
        context.log.info(line)
    reasons: dict[str, int] = {}
    for change in scan.changes:
        reasons[change.reason] = reasons.get(change.reason, 0) + 1
    context.log.info(
        f"{len(scan.changes)} partition(s) to load {reasons or ''} -> {len(requests)} run(s); "
        f"listed {scan.listed_objects} object(s) in {scan.listing_calls} call(s)"
        + (" (full pass)" if scan.full_pass else " (recent months)")
        + (f"; no sales yet: {', '.join(scan.idle_regions)}" if scan.idle_regions else "")
    )


def _cursor(context: dg.SensorEvaluationContext) -> dict:
    cursor, warning = parse_cursor(context.cursor)
    if warning:
        context.log.warning(warning)
    return cursor


def _sales_tick(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult | dg.SkipReason:
    if context.instance.get_latest_materialization_event(asset_keys.PRODUCTS) is None:
        # Rows are validated against the catalogue: wait for reference_landing_sensor's first load.
        return dg.SkipReason(
            f"waiting for {asset_keys.PRODUCTS.to_user_string()}: reference/products.csv has not been loaded yet"
        )
    scan = scan_sales(
        landing.list,
        landing.list_dirs,
        _cursor(context),
        first_day=_first_partition_day(),
        last_day=_last_partition_day(),
        now=_now(),
        full_pass_seconds=scan_lib.FULL_PASS_SECONDS,  # read per tick
        status=partition_status(context.instance, asset_keys.SALES),
        quiet_seconds=QUIET_SECONDS,
        retry=RETRY,
    )
    requests = partition_run_requests(scan.changes, "sales")
    _log_scan(context, scan, requests)
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(scan.cursor, separators=(",", ":")))


def _weather_tick(
    context: dg.SensorEvaluationContext, landing: LandingZone
) -> dg.SensorResult | dg.SkipReason:
    if context.instance.get_latest_materialization_event(asset_keys.PRODUCTS) is None:
        # On a first start the reference data go first: weather runs would hold the run slots and the pool.
        return dg.SkipReason(
            f"waiting for the reference data ({asset_keys.PRODUCTS.to_user_string()}) to load first"
        )
    scan = scan_weather(
        landing.list,
        _cursor(context),
        first_day=_first_partition_day(),
        last_day=_last_partition_day(),
        now=_now(),
        status=partition_status(context.instance, asset_keys.WEATHER),
        quiet_seconds=QUIET_SECONDS,
        retry=RETRY,
    )
    # A missing weather day inside a range is loaded as "no weather" (the asset says so): a run per region
    # rather than one per stretch of files, since the feed has gaps (a run costs a code load).
    requests = partition_run_requests(scan.changes, "weather", bridge_days=WEATHER_BRIDGE_DAYS)
    _log_scan(context, scan, requests)
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(scan.cursor, separators=(",", ":")))


def _reference_tick(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult | None:
    try:
        objects = [
            o
            for o in landing.list("reference/")
            if o.path in ("reference/products.csv", "reference/customers.csv")
        ]
    except Exception as exc:  # an unreadable folder is reported, the next tick tries again
        return dg.SkipReason(f"reference/ could not be listed: {type(exc).__name__}: {exc}")
    if not objects:
        return None
    key = ",".join(f"{o.path}={o.fingerprint}" for o in objects)
    if key == context.cursor:
        return None
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=key)], cursor=key)


def landing_sensors(
    status: dg.DefaultSensorStatus,
) -> tuple[dg.SensorDefinition, dg.SensorDefinition, dg.SensorDefinition]:
    """The sales, weather and reference landing sensors, starting with `status` in a fresh instance."""
    sales = dg.sensor(
        name="sales_landing_sensor",
        job=ingest_sales_job,
        minimum_interval_seconds=30,
        default_status=status,
        description="Loads new and changed sales files per region and day, and retries days that are not loaded.",
    )(_sales_tick)
    weather = dg.sensor(
        name="weather_landing_sensor",
        job=ingest_weather_job,
        # forecasts are rewritten with every landed day: a slower tick batches them into fewer ranged runs
        minimum_interval_seconds=120,
        default_status=status,
        description="Loads new or revised weather files (observations and forecasts) per region and day.",
    )(_weather_tick)
    reference = dg.sensor(
        name="reference_landing_sensor",
        job=refresh_reference_job,
        minimum_interval_seconds=30,
        default_status=status,
        description="Reloads products, customers and the calendar when a new reference snapshot lands.",
    )(_reference_tick)
    return sales, weather, reference


@dg.definitions
def landing() -> dg.Definitions:
    """The ingestion jobs and the landing sensors, on unless GLOBOLATTE_AUTOMATION=off (read as the definitions
    load, never at import)."""
    return dg.Definitions(
        jobs=[ingest_sales_job, ingest_weather_job, refresh_reference_job],
        sensors=landing_sensors(settings.default_sensor_status()),
    )


# The same sensors for tests and scripts, which evaluate them directly (the code location uses `landing`).
sales_landing_sensor, weather_landing_sensor, reference_landing_sensor = landing_sensors(
    dg.DefaultSensorStatus.RUNNING
)
