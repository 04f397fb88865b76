"""B2 Sensor: tick time and listed objects of `sales_landing_sensor` as the landing zone's history grows.

The landing zone holds about 1k, 10k and 100k small sales files: 3 regions, 35 store files per region-day,
and as many days back from yesterday as that takes. The folder is written directly (not the simulator)
and the Azurite container is filled with the blob SDK from a thread pool.

The sensor decides on Dagster's partition status (a requested day closes only once it is loaded), so the
benchmark plays the runs: after every tick, each partition it requested is reported materialized in the
ephemeral instance, as a successful run would (not timed). Per size and backend:
- cold tick (empty cursor: a full pass that requests every day), then the first tick after those loads
  (it closes the loaded days: every day folder is listed once more);
- three rounds that each land one new file per region on a new day (3 new files). A local file written
  less than `QUIET_SECONDS` ago waits for the next listing, which must see it unchanged: on the local
  folder the first tick after the landing defers the 3 files and the next one requests them (both timed);
  Azurite's listing has no modification time, so its first tick requests them. The tick is the real
  sensor evaluated with `dg.build_sensor_context` and the previous cursor; the listed-object and
  listing-call counts come from `lib.scan.scan_sales` with the sensor's own arguments on the same cursor;
- baseline: `landing.list("sales/")` and a comparison of every fingerprint with the previous listing.
The median over the rounds is reported, then the hourly full pass is timed once on the last cursor.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from benchmarks.common import (
    WORK,
    Azurite,
    exponent,
    log,
    machine,
    machine_line,
    md_table,
    timed,
    write_result,
)
from globolatte_dagster import settings
from globolatte_dagster.defs.ingestion import sensors
from globolatte_dagster.defs.ingestion.sensors import sales_landing_sensor
from globolatte_dagster.defs.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    region_day_key,
    region_day_partitions,
)
from globolatte_dagster.lib import scan as scan_lib
from globolatte_dagster.lib.contract import REGION_KEYS, REGIONS, sales_prefix
from globolatte_dagster.lib.scan import parse_cursor, scan_sales
from globolatte_dagster.lib.schema import SALES
from globolatte_dagster.resources.landing import LandingZone, LocalLandingZone

NAME = "b2_sensor"
FILES_PER_DAY = 35  # store files per region and day
SIZES = {"full": [1_000, 10_000, 100_000], "quick": [1_000]}
# Azurite stops at 10k. Filling a 100k container works (200-300 uploads/s: 398 and 493 s on 2026-11-26),
# but the measurement that followed failed: after ~5 minutes of the cold tick's listings, one request
# exceeded the 60 s read timeout (an earlier attempt: no answer to a listing within 90 s). Likely cause,
# not proven: the emulator's blob GC, which runs every 10 minutes (`DEFAULT_GC_INTERVAL_MS`, not
# configurable) and whose first run fell due 16 s after the upload ended. Measured by hand on a fresh
# emulator at 99,960 blobs: one region's day folders 1.46 s, one day's 35 files 0.07 s.
AZURITE_SIZES = {"full": [1_000, 10_000], "quick": [1_000]}
ROUNDS = 3
GOAL_TICK_S = 2.0
HEADER = "transaction_id,business_unit,product_id,customer_id,quantity,total_price,transaction_date,payment_method\n"


def layout(n_files: int, end: date) -> list[str]:
    """Paths of about n_files sales files, FILES_PER_DAY per region-day, on days up to `end`."""
    days = max(1, round(n_files / (len(REGION_KEYS) * FILES_PER_DAY)))
    out = []
    for i in range(days):
        day = (end - timedelta(days=days - 1 - i)).isoformat()
        for region in REGION_KEYS:
            out += [f"{sales_prefix(region, day)}store-{s:03d}.csv" for s in range(FILES_PER_DAY)]
    return out


def content(path: str) -> bytes:
    _, region, day, name = path.split("/")
    unit = REGIONS[region].business_unit
    return (HEADER + f"{name[:-4]}-1,{unit},P001,C001,1,3.50,{day} 08:00:00,cash\n").encode()


def local_zone(n_files: int, end: date) -> tuple[LocalLandingZone, int]:
    root = WORK / "b2" / f"local-{n_files}"
    marker = root / ".done.json"
    paths = layout(n_files, end)
    if marker.exists() and json.loads(marker.read_text()) == {"files": len(paths), "end": end.isoformat()}:
        return LocalLandingZone(root=str(root)), len(paths)
    if root.exists():
        shutil.rmtree(root)
    with timed() as t:
        for path in paths:
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content(path))
    log(f"B2: wrote {len(paths):,} files to {root} in {t['s']:.1f} s")
    marker.write_text(json.dumps({"files": len(paths), "end": end.isoformat()}))
    return LocalLandingZone(root=str(root)), len(paths)


def azurite_zone(azurite: Azurite, n_files: int, end: date) -> tuple[LandingZone, int, float]:
    from globolatte_dagster.resources.blob_landing import BlobLandingZone

    zone = BlobLandingZone(container=f"landing-{n_files}", connection_string=azurite.connection_string)
    zone.create_container()
    paths = layout(n_files, end)
    container = zone._container()
    with timed() as t, ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda p: container.upload_blob(p, content(p), overwrite=True), paths))
    log(f"B2: uploaded {len(paths):,} blobs to Azurite in {t['s']:.1f} s")
    return zone, len(paths), t["s"]


def _instance() -> dg.DagsterInstance:
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=["core", "products"]))
    return instance


def _requested_partitions(request: dg.RunRequest) -> list[str]:
    """The region x day partition keys of a run request (one partition, or a ranged run of one region)."""
    if request.partition_key:
        return [str(request.partition_key)]
    partitions = region_day_partitions()
    start, end = (
        partitions.get_partition_key_from_str(request.tags[t]) for t in (RANGE_START_TAG, RANGE_END_TAG)
    )
    region = start.keys_by_dimension["region"]
    first = date.fromisoformat(start.keys_by_dimension["day"])
    last = date.fromisoformat(end.keys_by_dimension["day"])
    days = (last - first).days + 1
    return [str(region_day_key(region, (first + timedelta(days=i)).isoformat())) for i in range(days)]


def _runs_succeed(instance: dg.DagsterInstance, requests: list[dg.RunRequest]) -> int:
    """What the requested runs would leave behind: a materialisation of raw/sales per partition (not timed)."""
    n = 0
    for request in requests:
        for key in _requested_partitions(request):
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=SALES.key, partition=key))
            n += 1
    return n


class Clock:
    """The sensor's clock (`sensors._now`), advanced by the sensor's minimum interval before every tick.

    The measured ticks run back to back, but the daemon ticks every `minimum_interval_seconds`: with the
    real clock, files written a moment before would still look just written two ticks later.
    """

    def __init__(self) -> None:
        self.now = datetime.now(UTC)
        self.step = timedelta(seconds=sales_landing_sensor.minimum_interval_seconds or 30)
        self._saved = sensors._now

    def __enter__(self) -> Clock:
        sensors._now = lambda: self.now
        return self

    def __exit__(self, *exc) -> None:
        sensors._now = self._saved

    def tick(self) -> None:
        self.now += self.step


def _sensor_tick(zone: LandingZone, instance: dg.DagsterInstance, cursor: str | None) -> tuple[float, dict]:
    ctx = dg.build_sensor_context(cursor=cursor, resources={"landing": zone}, instance=instance)
    with timed() as t:
        result = sales_landing_sensor(ctx)
    if not isinstance(result, dg.SensorResult):
        raise RuntimeError(f"the sensor did not tick: {result}")
    requests = list(result.run_requests or [])
    loaded = _runs_succeed(instance, requests)
    return t["s"], {"cursor": result.cursor, "run_requests": len(requests), "partitions_requested": loaded}


def _scan_counts(zone: LandingZone, instance: dg.DagsterInstance, cursor: str | None, last_day: date) -> dict:
    """`scan_sales` with the sensor's own arguments on the same cursor (no side effects): what a tick lists."""
    with timed() as t:
        scan = scan_sales(
            zone.list,
            zone.list_dirs,
            parse_cursor(cursor)[0],
            first_day=date.fromisoformat(settings.first_day()),
            last_day=last_day,
            now=sensors._now(),
            full_pass_seconds=scan_lib.FULL_PASS_SECONDS,
            status=sensors.partition_status(instance, SALES.key),
            quiet_seconds=sensors.QUIET_SECONDS,
            retry=sensors.RETRY,
        )
    return {
        "scan_seconds": t["s"],
        "listed_objects": scan.listed_objects,
        "listing_calls": scan.listing_calls,
        "changed_partitions": len(scan.changes),
        "full_pass": scan.full_pass,
        "deferred_files": len(scan.cursor.get("pending", {})),
    }


def _tick(
    zone: LandingZone, instance: dg.DagsterInstance, cursor: str | None, last_day: date, clock: Clock
) -> tuple[float, dict]:
    clock.tick()
    counts = _scan_counts(zone, instance, cursor, last_day)  # same input cursor as the tick below
    seconds, tick = _sensor_tick(zone, instance, cursor)
    return seconds, {**counts, **tick, "tick_seconds": seconds}


def _full_listing(zone: LandingZone, previous: dict[str, str]) -> tuple[float, dict[str, str], int]:
    with timed() as t:
        listing = {o.path: o.fingerprint for o in zone.list("sales/")}
        changed = [p for p, f in listing.items() if previous.get(p) != f]
    return t["s"], listing, len(changed)


def measure(zone: LandingZone, end: date, n_files: int) -> dict:
    """Cold tick, the tick that closes the loaded days, then ROUNDS rounds of 3 new files: tick vs full listing."""
    instance = _instance()
    try:
        with Clock() as clock:
            return _measure(zone, end, n_files, instance, clock)
    finally:
        # closed here, in its own thread: left to the garbage collector, the ephemeral instance's SQLite
        # connections were closed from the upload threads, which SQLite refuses (noise in the log)
        instance.dispose()


def _measure(zone: LandingZone, end: date, n_files: int, instance: dg.DagsterInstance, clock: Clock) -> dict:
    last_day = date.today() + timedelta(days=7)  # the sensor's own partition window
    cold_s, first = _tick(zone, instance, None, last_day, clock)
    settle_s, settle = _tick(zone, instance, first["cursor"], last_day, clock)
    cursor = settle["cursor"]
    _, previous, _ = _full_listing(zone, {})
    rounds = []
    for k in range(1, ROUNDS + 1):
        day = (end + timedelta(days=k)).isoformat()
        for region in REGION_KEYS:
            path = f"{sales_prefix(region, day)}store-000.csv"
            zone.write_bytes(path, content(path))
            if isinstance(zone, LocalLandingZone):  # landed 5 s before the next tick (by the sensor's clock)
                landed = (clock.now + clock.step).timestamp() - 5
                os.utime(Path(zone.root) / path, (landed, landed))
        _, tick = _tick(zone, instance, cursor, last_day, clock)
        cursor = tick["cursor"]
        deferral = None
        if tick["run_requests"] == 0 and tick["deferred_files"]:  # just written: the next tick takes them
            deferral = tick
            _, tick = _tick(zone, instance, cursor, last_day, clock)
            cursor = tick["cursor"]
        base_s, previous, base_changed = _full_listing(zone, previous)
        rounds.append(
            {
                **{k: v for k, v in tick.items() if k != "cursor"},
                "deferred_first": deferral["deferred_files"] if deferral else 0,
                "deferral_tick_seconds": deferral["tick_seconds"] if deferral else None,
                "baseline_seconds": base_s,
                "baseline_listed_objects": len(previous),
                "baseline_changed_files": base_changed,
            }
        )
    med = {
        k: statistics.median(r[k] for r in rounds)
        for k in rounds[0]
        if all(isinstance(r[k], int | float) and not isinstance(r[k], bool) for r in rounds)
    }
    # the hourly full pass (every day folder of every region), forced on the last cursor
    interval = scan_lib.FULL_PASS_SECONDS
    scan_lib.FULL_PASS_SECONDS = 0
    try:
        full_s, full = _tick(zone, instance, cursor, last_day, clock)
    finally:
        scan_lib.FULL_PASS_SECONDS = interval
    # where a tick's time goes: one region's day folders (all of them, or one month) and one day's files
    calls = {"list_dirs_region_s": [], "list_dirs_month_s": [], "list_files_day_s": []}
    for region in REGION_KEYS:
        with timed() as t:
            dirs = zone.list_dirs(sales_prefix(region))
        calls["list_dirs_region_s"].append(t["s"])
        with timed() as t:
            zone.list_dirs(f"{sales_prefix(region)}{end.strftime('%Y-%m')}")
        calls["list_dirs_month_s"].append(t["s"])
        with timed() as t:
            zone.list(dirs[-1])
        calls["list_files_day_s"].append(t["s"])
    return {
        "files": n_files,
        "cold_tick_seconds": round(cold_s, 3),
        "cold_tick_partitions_requested": first["partitions_requested"],
        "cold_tick_run_requests": first["run_requests"],
        "settle_tick_seconds": round(settle_s, 3),
        "settle_tick_listed_objects": settle["listed_objects"],
        "tick_seconds": round(med["tick_seconds"], 4),
        "scan_seconds": round(med["scan_seconds"], 4),
        "listed_objects": int(med["listed_objects"]),
        "listing_calls": int(med["listing_calls"]),
        "ordinary_ticks": not any(r["full_pass"] for r in rounds),
        "deferred_first": int(med["deferred_first"]),
        "deferral_tick_seconds": (
            round(statistics.median(r["deferral_tick_seconds"] for r in rounds), 4)
            if all(r["deferral_tick_seconds"] is not None for r in rounds)
            else None
        ),
        "full_pass_tick_seconds": round(full_s, 4),
        "full_pass_listed_objects": full["listed_objects"],
        "full_pass_run_requests": full["run_requests"],
        "changed_partitions": int(med["changed_partitions"]),
        "run_requests": int(med["run_requests"]),
        "baseline_seconds": round(med["baseline_seconds"], 4),
        "baseline_listed_objects": int(med["baseline_listed_objects"]),
        "baseline_changed_files": int(med["baseline_changed_files"]),
        "speedup_vs_baseline": round(med["baseline_seconds"] / med["tick_seconds"], 1),
        "full_pass_speedup_vs_baseline": round(med["baseline_seconds"] / full_s, 1),
        "seconds_per_listing_call": round(med["scan_seconds"] / med["listing_calls"], 4),
        "call_breakdown_median_s": {k: round(statistics.median(v), 4) for k, v in calls.items()},
        "rounds": rounds,
    }


def prepare(quick: bool = False) -> None:
    """Write the local landing folders (cached under benchmarks/.work; Azurite is filled by each run)."""
    end = date.today() - timedelta(days=1)
    for n in SIZES["quick" if quick else "full"]:
        local_zone(n, end)


def run(quick: bool = False) -> dict:
    sizes = SIZES["quick" if quick else "full"]
    m = machine()
    end = date.today() - timedelta(days=1)
    results: dict[str, list[dict]] = {"local": [], "azurite": []}
    for n in sizes:
        zone, files = local_zone(n, end)
        log(f"B2: local folder, {files:,} files")
        r = measure(zone, end, files)
        results["local"].append(r)
        log(f"B2: local {files:,}: tick {r['tick_seconds']} s, baseline {r['baseline_seconds']} s")
        for k in range(1, ROUNDS + 1):  # remove the new days: the folder is reused by the next run
            for region in REGION_KEYS:
                shutil.rmtree(Path(zone.root) / sales_prefix(region, (end + timedelta(days=k)).isoformat()))
    with Azurite(WORK / "b2" / "azurite", memory_limit_mb=4096) as azurite:
        for n in AZURITE_SIZES["quick" if quick else "full"]:
            zone, files, upload_s = azurite_zone(azurite, n, end)
            log(f"B2: Azurite, {files:,} blobs")
            r = measure(zone, end, files)
            r["upload_seconds"] = round(upload_s, 1)
            results["azurite"].append(r)
            log(f"B2: Azurite {files:,}: tick {r['tick_seconds']} s, baseline {r['baseline_seconds']} s")
            zone._container().delete_container()
            zone.close()
    summary = scaling(results)
    largest = {backend: rows[-1] for backend, rows in results.items()}
    goals = {
        f"{backend}_tick_under_{GOAL_TICK_S:g}s_at_{r['files']:,}_files": r["tick_seconds"] < GOAL_TICK_S
        for backend, r in largest.items()
    }
    for backend, s in summary.items():
        # "flat": at most 2x from the smallest to the largest size (100x more files)
        goals[f"{backend}_tick_flat_in_history"] = s["tick_growth_smallest_to_largest"] <= 2.0
    goals["measured_ticks_were_ordinary_ticks"] = all(
        r["ordinary_ticks"] for rows in results.values() for r in rows
    )
    goals["every_tick_found_the_3_new_files"] = all(
        r["changed_partitions"] == 3 and r["baseline_changed_files"] == 3
        for rows in results.values()
        for r in rows
    )
    payload = {
        "benchmark": NAME,
        "mode": "quick" if quick else "full",
        "machine": m,
        "files_per_region_day": FILES_PER_DAY,
        "results": results,
        "scaling": summary,
        "goals": goals,
    }
    write_result(NAME, quick, payload, markdown(payload))
    return payload


def scaling(results: dict[str, list[dict]]) -> dict:
    """Growth from the smallest to the largest size: the tick, the full listing, and the backend's own cost
    per listing call (what a tick is made of: the same number of calls at every size)."""
    summary = {}
    for backend, rows in results.items():
        if len(rows) >= 2:
            a, b = rows[0], rows[-1]
            summary[backend] = {
                "tick_exponent": exponent(a["files"], a["tick_seconds"], b["files"], b["tick_seconds"]),
                "baseline_exponent": exponent(
                    a["files"], a["baseline_seconds"], b["files"], b["baseline_seconds"]
                ),
                "tick_growth_smallest_to_largest": round(b["tick_seconds"] / a["tick_seconds"], 2),
                "listing_calls": [a["listing_calls"], b["listing_calls"]],
                "listed_objects": [a["listed_objects"], b["listed_objects"]],
                "seconds_per_listing_call_growth": round(
                    b["seconds_per_listing_call"] / a["seconds_per_listing_call"], 2
                ),
                "one_day_listing_growth": round(
                    b["call_breakdown_median_s"]["list_files_day_s"]
                    / max(a["call_breakdown_median_s"]["list_files_day_s"], 1e-4),
                    2,
                ),
            }
    return summary


def markdown(p: dict) -> str:
    rows = []
    for backend, label in (("local", "local folder"), ("azurite", "Azurite")):
        for r in p["results"][backend]:
            rows.append(
                [
                    label,
                    r["files"],
                    r["cold_tick_seconds"],
                    r.get("settle_tick_seconds"),
                    r["tick_seconds"],
                    f"{r.get('deferred_first', 0)} ({r['deferral_tick_seconds']} s)"
                    if r.get("deferral_tick_seconds") is not None
                    else r.get("deferred_first", 0),
                    r["listed_objects"],
                    r["listing_calls"],
                    r["run_requests"],
                    r["baseline_seconds"],
                    r["baseline_listed_objects"],
                    f"{r['speedup_vs_baseline']}x",
                    r.get("full_pass_tick_seconds", ""),
                    r.get("full_pass_listed_objects", ""),
                    r["call_breakdown_median_s"].get("list_dirs_month_s", ""),
                    r["call_breakdown_median_s"]["list_dirs_region_s"],
                    r["call_breakdown_median_s"]["list_files_day_s"],
                ]
            )
    head = [
        "landing zone",
        "files",
        "cold tick s",
        "first tick after the loads s",
        "tick s (3 new files)",
        "files deferred by the tick before (its s)",
        "listed objects",
        "listing calls",
        "run requests",
        "baseline: full listing s",
        "full listing objects",
        "tick vs full listing",
        "hourly full pass s",
        "full pass listed objects",
        "one region-month's day folders s",
        "all of one region's day folders s",
        "one day's files s",
    ]
    scaling = "; ".join(
        f"{b}: tick x{s['tick_growth_smallest_to_largest']} from smallest to largest "
        f"(exponent {s['tick_exponent']:.2f}; full listing exponent {s['baseline_exponent']:.2f})"
        + (
            f", with {s['listing_calls'][0]} → {s['listing_calls'][1]} listing calls and "
            f"{s['listed_objects'][0]:,} → {s['listed_objects'][1]:,} listed objects, while the backend's "
            f"time per listing call grew x{s['seconds_per_listing_call_growth']} (the same 35-file day "
            f"listing: x{s['one_day_listing_growth']})"
            if "listing_calls" in s
            else ""
        )
        for b, s in p["scaling"].items()
    )
    goals = "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in p["goals"].items())
    return "\n".join(
        [
            f"### B2 Sensor ({p['mode']})",
            "",
            f"Machine: {machine_line(p['machine'])}.",
            "",
            f"{p['files_per_region_day']} store files per region-day, 3 regions, history back from yesterday; "
            f"each measured tick requests 3 new files (one new day per region). Median of {ROUNDS} rounds. "
            "The tick is `sales_landing_sensor` evaluated with the previous cursor (an ordinary tick: day "
            "folders listed under recent month prefixes) on an ephemeral instance where every requested "
            "partition is then reported loaded (the runs are played, not timed: the sensor decides on "
            "partition status); the baseline lists `sales/` in full and compares fingerprints. On the local "
            "folder the tick right after the landing defers the 3 just-written files (modified less than "
            f"{sensors.QUIET_SECONDS:g} s ago) and the next tick requests them; Azurite lists no modification "
            "time, so its first tick requests them. The cold tick (empty cursor) is a full pass that requests "
            "every day; the first tick after those loads closes them (it lists every open day once more). The "
            "hourly full pass (every file of every region, to find late days and changed files) is timed once "
            "per size on the last cursor.",
            "",
            md_table(head, rows),
            "",
            f"Scaling: {scaling or 'one size only'}.",
            "",
            f"Goals: {goals}.",
        ]
    )


if __name__ == "__main__":
    run(quick=False)
