"""Raw layer: sales and weather per region and day, from the landing zone into the warehouse.

The assets are built when the definitions load, on the region × day partitions that start at
GLOBOLATTE_FIRST_DAY (`raw_layer` below); `sales` and `weather` here use the default first day, for tests.
"""

from datetime import date

import dagster as dg
import pandas as pd

from globolatte_dagster import keys as asset_keys
from globolatte_dagster.defs.ingestion.checks import (
    SALES_CHECKS,
    WEATHER_CHECKS,
    sales_check_results,
    weather_check_result,
)
from globolatte_dagster.defs.monitor.freshness import with_upload_freshness
from globolatte_dagster.defs.partitions import region_day, region_day_key, region_day_partitions
from globolatte_dagster.lib import contract
from globolatte_dagster.lib.ingest import FileRejected, LandedFile, parse_weather, validate_sales
from globolatte_dagster.lib.schema import REGION_DAY, WEATHER
from globolatte_dagster.resources.landing import LandingZone

WAREHOUSE_KINDS = {"pandas", "duckdb", "snowflake"}


def run_partitions(context: dg.AssetExecutionContext) -> list[tuple[str, str]]:
    """The (region, day) pairs of this run: one partition, or every partition of a backfill range."""
    keys = context.partition_keys
    return sorted((k.keys_by_dimension["region"], k.keys_by_dimension["day"]) for k in map(_multi, keys))


def _multi(key: str | dg.MultiPartitionKey) -> dg.MultiPartitionKey:
    if isinstance(key, dg.MultiPartitionKey):
        return key
    return region_day.get_partition_key_from_str(key)


# Above this many days of one region in a run, one listing of the region beats a listing per day.
_PER_DAY_LISTING_MAX = 31


def landed_objects(landing: LandingZone, kind: str, partitions: list[tuple[str, str]]):
    """(landing object, parsed path) of every contract file of `kind` in the given partitions."""
    prefix_of = contract.sales_prefix if kind == "sales" else contract.weather_prefix
    for region in sorted({r for r, _ in partitions}):
        wanted = sorted({d for r, d in partitions if r == region})
        if len(wanted) > _PER_DAY_LISTING_MAX or kind != "sales":
            listings = [landing.list(prefix_of(region))]
        else:
            listings = [landing.list(prefix_of(region, d)) for d in wanted]
        wanted_set = set(wanted)
        for listing in listings:
            for obj in listing:
                try:
                    path = contract.parse_landing_path(obj.path)
                except contract.ContractError:
                    continue  # stray file: the sensor logs it
                if path.kind == kind and path.day is not None and path.day.isoformat() in wanted_set:
                    yield obj, path


def landed_sales(landing: LandingZone, partitions: list[tuple[str, str]]) -> list[LandedFile]:
    return [
        LandedFile(obj.path, path.region, path.day, landing.read_bytes(obj.path), obj.fingerprint)
        for obj, path in landed_objects(landing, "sales", partitions)
    ]


def _load_sales(context: dg.AssetExecutionContext, landing: LandingZone, products: pd.DataFrame):
    """Load and validate the landed sales files of every partition in the run, in bulk."""
    partitions = run_partitions(context)
    files = landed_sales(landing, partitions)
    try:
        batch = validate_sales(files, products["product_id"])
    except FileRejected as exc:
        raise dg.Failure(
            description=f"Partition not loaded: {exc}",
            metadata={"file": exc.path, "problem": exc.problem},
        ) from exc
    valid, rejects = batch.valid_table, batch.rejects_table
    with_files = {(f.region, f.day.isoformat()) for f in files}
    no_files = [f"{r}|{d}" for r, d in partitions if (r, d) not in with_files]
    context.log.info(
        f"{len(partitions)} partition(s), {len(files)} file(s): {valid.num_rows} rows, "
        f"{rejects.num_rows} rejected" + (f"; no file landed for {len(no_files)} day(s)" if no_files else "")
    )
    revenue = {
        row["region"]: round(row["total_price_sum"], 2)
        for row in valid.group_by("region").aggregate([("total_price", "sum")]).to_pylist()
    }
    yield dg.Output(
        valid,
        output_name="sales",
        metadata={
            "rows_loaded": valid.num_rows,
            "rows_rejected": rejects.num_rows,
            "rejected_by_reason": dg.MetadataValue.json(batch.rejected_by_reason()),
            "revenue_local_currency": dg.MetadataValue.json(revenue),
            "files": dg.MetadataValue.md(_files_table(batch.files)),
            "partitions": len(partitions),
            "days_without_files": dg.MetadataValue.text(", ".join(no_files[:100]) or "none"),
        },
    )
    yield dg.Output(rejects, output_name="sales_rejects", metadata={"rows_rejected": rejects.num_rows})
    yield from sales_check_results(batch, partitions, products["product_id"], with_files)


def _files_table(files: list[dict], limit: int = 200) -> str:
    lines = ["| file | bytes | rows | fingerprint |", "|---|---:|---:|---|"]
    lines += [f"| {f['path']} | {f['bytes']} | {f['rows']} | `{f['fingerprint']}` |" for f in files[:limit]]
    if len(files) > limit:
        lines.append(f"| … and {len(files) - limit} more | | | |")
    return "\n".join(lines) if files else "no file landed for these partitions"


def _load_weather(context: dg.AssetExecutionContext, landing: LandingZone):
    """Observed or forecast weather per region and day; a missing or unusable day is reported, not fatal."""
    partitions = run_partitions(context)
    found = {path.partition: obj for obj, path in landed_objects(landing, "weather", partitions)}
    frames, missing, unusable = [], [], []
    for region, day in partitions:
        obj = found.get((region, day))
        if obj is None:
            missing.append(str(region_day_key(region, day)))
            continue
        try:
            lf = LandedFile(
                obj.path, region, date.fromisoformat(day), landing.read_bytes(obj.path), obj.fingerprint
            )
            frames.append(parse_weather(lf))
        except FileRejected as exc:
            unusable.append(str(exc))
    if missing or unusable:
        context.log.warning(f"weather missing for {len(missing)} day(s), unusable for {len(unusable)}")
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=WEATHER.column_names)
    yield dg.Output(
        out,
        metadata={
            "days_loaded": len(out),
            "weather": "loaded" if len(out) else "no weather: no usable file for these days",
            "days_missing": dg.MetadataValue.text(", ".join(missing[:100]) or "none"),
            "files_unusable": dg.MetadataValue.text("\n".join(unusable[:50]) or "none"),
        },
    )
    yield weather_check_result(unusable)


def raw_assets(partitions_def: dg.MultiPartitionsDefinition) -> tuple[dg.AssetsDefinition, ...]:
    """raw/sales (+ raw/sales_rejects and the checks) and raw/weather on the given region × day partitions."""
    sales = dg.multi_asset(
        name="sales",
        outs={
            "sales": dg.AssetOut(
                key=asset_keys.SALES,
                description="Valid sales rows per region and day, loaded from sales/<region>/<day>/*.csv.",
                metadata={"partition_expr": REGION_DAY},
                io_manager_key="warehouse_io_manager",
                kinds=WAREHOUSE_KINDS,
            ),
            "sales_rejects": dg.AssetOut(
                key=asset_keys.SALES_REJECTS,
                description="Sales rows that broke the landing contract, with file, line, column and reason.",
                metadata={"partition_expr": REGION_DAY},
                io_manager_key="warehouse_io_manager",
                kinds=WAREHOUSE_KINDS,
            ),
        },
        ins={"products": dg.AssetIn(key=asset_keys.PRODUCTS)},
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=SALES_CHECKS,
        group_name="raw",
        pool="warehouse",
    )(_load_sales)
    weather = dg.asset(
        key=asset_keys.WEATHER,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        metadata={"partition_expr": REGION_DAY},
        io_manager_key="warehouse_io_manager",
        kinds=WAREHOUSE_KINDS,
        group_name="raw",
        pool="warehouse",
        check_specs=WEATHER_CHECKS,
    )(_load_weather)
    return sales, weather


@dg.definitions
def raw_layer() -> dg.Definitions:
    """The raw assets on region × day partitions from GLOBOLATTE_FIRST_DAY, read as the definitions load."""
    return dg.Definitions(assets=with_upload_freshness(raw_assets(region_day_partitions())))


# With the default first day, for tests and scripts (the code location uses `raw_layer`).
sales, weather = raw_assets(region_day)
