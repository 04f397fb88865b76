"""B1 Ingestion: a year of simulated sales backfilled through a real `dagster dev`, as a UI user launches it.

Scenarios, all against the same landing folder and in the same run:
- floor: one DuckDB statement, `read_csv` with the contract's explicit column types (no sniffing) and
  `store_rejects`, inserting into a table of a fresh database file;
- one region, and all three regions, as one `launchPartitionBackfill` each (assets raw/sales +
  raw/sales_rejects, partition names `<day>|<region>`); the daemon launches the run(s);
- naive: one run per partition (`launchRun` of `ingest_sales` per partition), on a sample of days,
  with the instance's own queue limits; its throughput is extrapolated to the year.

A profile child (`python -m benchmarks.b1_ingestion --profile LANDING REGION DAYS`) times the phases of the
load path in one process (read, parse, validate, frame, write) and keeps cProfile's top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

from benchmarks.common import (
    BENCH,
    REPO,
    WORK,
    TreeSampler,
    child_env,
    code_snapshot,
    log,
    machine,
    machine_line,
    md_table,
    self_peak_rss_mb,
    simulated,
    snapshot_env,
    timed,
    write_result,
)
from globolatte_dagster.lib.contract import REGION_KEYS
from globolatte_dagster_tests.dagster_server import LOCATION, REPOSITORY, DagsterServer

NAME = "b1_ingestion"
START = date(2025, 1, 1)
# The simulator makes ~1,800 transactions per region-day per 5,000 customers: 13,900 gives ~5,000.
CUSTOMERS = 13_900
SIZES = {
    "full": {"days": 365, "naive_partitions": 12},
    # quick: the three-region backfill only (the one-region one adds ~75 s of mostly run overhead), no
    # profile child, the floor measured once, and the backfill timed until its runs have finished
    "quick": {
        "days": 14,
        "naive_partitions": 2,
        "one_region": False,
        "profile": False,
        "floor_again": False,
        "await_completion": False,
    },
}
ALONE = "america"
SALES_KEYS = [["raw", "sales"], ["raw", "sales_rejects"]]
GOAL_FLOOR_RATIO = 3.0
GOAL_RUNS = 5  # "a handful"

# The contract's column types (DESIGN.md), for the floor's read_csv without sniffing.
FLOOR_TYPES = {
    "transaction_id": "VARCHAR",
    "business_unit": "VARCHAR",
    "product_id": "VARCHAR",
    "customer_id": "VARCHAR",
    "quantity": "BIGINT",
    "total_price": "DOUBLE",
    "transaction_date": "TIMESTAMP",
    "payment_method": "VARCHAR",
}

ACTIVE = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]
DONE_BACKFILL = ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED")


# ---- baseline 1: the floor -----------------------------------------------------------------------------
def floor_sql(files: list[Path], rejects: bool) -> str:
    """One statement: per distinct header (column order is free in the contract), a typed read_csv.

    Only each file's first line is read in Python, to know its column order; DuckDB sniffs nothing. The
    branches select the contract columns in one order and are combined with a positional UNION ALL
    (UNION ALL BY NAME over ~200 branches was 4x slower).
    """
    groups: dict[str, list[str]] = {}
    for f in files:
        with f.open("rb") as fh:
            groups.setdefault(fh.readline().decode().strip(), []).append(str(f))
    errors = "store_rejects = true" if rejects else "ignore_errors = true"
    select = ", ".join([*FLOOR_TYPES, "filename"])
    parts = []
    for header, paths in groups.items():
        cols = ", ".join(f"'{c}': '{FLOOR_TYPES.get(c, 'VARCHAR')}'" for c in header.split(","))
        parts.append(
            f"SELECT {select} FROM read_csv({paths!r}, header = true, auto_detect = false, delim = ',', "
            f"quote = '\"', columns = {{{cols}}}, timestampformat = '%Y-%m-%d %H:%M:%S', "
            f"filename = true, {errors})"
        )
    return "CREATE TABLE sales AS " + " UNION ALL ".join(parts)


def floor(files: list[Path], workdir: Path, repeats: int = 3) -> dict:
    """Typed read_csv of every file into a table of a fresh database file; median of `repeats`."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "floor.duckdb"
    out: dict = {"files": len(files)}
    for rejects in (False, True):
        times, rows, rejected = [], 0, None
        for _ in range(repeats):
            db.unlink(missing_ok=True)
            conn = duckdb.connect(str(db))
            with timed() as t:
                sql = floor_sql(files, rejects)  # reading the headers is part of the floor
                conn.execute(sql)
                conn.execute("CHECKPOINT")
            times.append(t["s"])
            rows = conn.execute("SELECT count(*) FROM sales").fetchone()[0]
            if rejects:
                rejected = conn.execute(
                    "SELECT count(DISTINCT (file_id, line)) FROM reject_errors"
                ).fetchone()[0]
            conn.close()
        key = "with_store_rejects" if rejects else "ignore_errors"
        out[key] = {
            "rows_loaded": rows,
            "rows_rejected": rejected,
            "seconds_all": [round(x, 3) for x in times],
            "seconds": round(statistics.median(times), 3),
            "distinct_headers": sql.count("read_csv("),
        }
    db.unlink(missing_ok=True)
    out["seconds"] = out["ignore_errors"]["seconds"]
    out["statement_example"] = sql[:600] + " ..."
    return out


# ---- setup: reference data ----------------------------------------------------------------------------
def reference_home(landing: Path, workdir: Path, code: Path) -> Path:
    """A GLOBOLATTE_HOME whose warehouse and Dagster instance hold core/products and core/customers.

    Sales are validated against the catalogue, so the reference must be loaded before a backfill; it is
    setup, not what B1 measures. It is loaded once, in process (`refresh_reference`), and each scenario
    starts from a copy. Reused while the landing zone's reference files do not change.
    """
    template = workdir / "reference-home"
    marker = template / "reference.json"
    files = sorted((landing / "reference").glob("*.csv"))
    params = {"landing": str(landing), "files": {f.name: f.stat().st_size for f in files}}
    if marker.exists() and json.loads(marker.read_text()) == params:
        return template
    if template.exists():
        shutil.rmtree(template)
    (template / "dagster_home").mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "local" / "dagster.yaml", template / "dagster_home" / "dagster.yaml")
    env = child_env(code, template, landing)
    cmd = [sys.executable, "-m", "benchmarks.b1_ingestion", "--load-reference"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=code, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"loading the reference data failed:\n{proc.stderr[-3000:]}")
    marker.write_text(json.dumps(params))
    return template


def load_reference_child() -> None:
    import dagster as dg

    from globolatte_dagster.definitions import defs

    job = defs().get_job_def("refresh_reference")
    result = job.execute_in_process(instance=dg.DagsterInstance.get(), raise_on_error=True)
    print(json.dumps({"success": result.success}))


# ---- Dagster --------------------------------------------------------------------------------------------
class BenchServer(DagsterServer):
    """The test suite's `dagster dev` + GraphQL client, plus the queries a benchmark needs.

    It runs a snapshot of the project package (`code`), so that concurrent edits do not break runs.
    """

    def __init__(self, home: Path, code: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(home, {**(env or {}), "PYTHONPATH": str(code)}, cwd=code)
        self.code = code

    def stop_all_sensors(self) -> list[str]:
        """Stop every sensor (the landing sensors and the automation sensor): only we launch runs."""
        data = self.gql(
            """query($s: RepositorySelector!) { sensorsOrError(repositorySelector: $s) {
                 ... on Sensors { results { id name sensorState { status } } } } }""",
            {"s": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}},
        )
        stopped = []
        for sensor in data["sensorsOrError"]["results"]:
            if sensor["sensorState"]["status"] != "RUNNING":
                continue
            out = self.gql(
                "mutation($id: String!) { stopSensor(id: $id) { __typename ... on PythonError { message } } }",
                {"id": sensor["id"]},
            )["stopSensor"]
            if out["__typename"] != "StopSensorMutationResult":
                raise RuntimeError(f"could not stop sensor {sensor['name']}: {out}")
            stopped.append(sensor["name"])
        return stopped

    def runs(self, statuses: list[str] | None = None) -> list[dict]:
        data = self.gql(
            """query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs {
                 results { runId status jobName startTime endTime tags { key value } } } } }""",
            {"f": {"statuses": statuses} if statuses else {}},
        )
        return data["runsOrError"]["results"]

    def cancel_queued(self) -> int:
        """Terminate runs still queued (those the sensors launched before they were stopped)."""
        queued = self.runs(["QUEUED", "NOT_STARTED"])
        for run in queued:
            self.gql(
                "mutation($id: String!) { terminateRun(runId: $id) { __typename } }", {"id": run["runId"]}
            )
        return len(queued)

    def wait_idle(self, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while self.runs(ACTIVE):
            if time.monotonic() > deadline:
                raise TimeoutError("runs still active")
            time.sleep(1)

    def run_detail(self, run_id: str) -> dict:
        return self.gql(
            """query($id: ID!) { runOrError(runId: $id) { ... on Run {
                 runId status creationTime startTime endTime
                 stepStats { stepKey status startTime endTime } } } }""",
            {"id": run_id},
        )["runOrError"]

    def wait_backfill(self, backfill_id: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        status = self.backfill_status(backfill_id)
        while status not in DONE_BACKFILL and time.monotonic() < deadline:
            time.sleep(0.5)
            status = self.backfill_status(backfill_id)
        if status not in DONE_BACKFILL:
            log(f"backfill {backfill_id} still {status} after {timeout:.0f}s: cancelling it")
            self.cancel_backfill(backfill_id)
        return status


def run_worker(cmdline: str) -> str | None:
    """TreeSampler label: the processes that execute runs.

    The default run launcher asks the code server, which starts each run in a `multiprocessing` spawn
    child (`spawn_main`); `dagster api execute_run` is the other form.
    """
    return "run_worker" if "spawn_main" in cmdline or "execute_run" in cmdline else None


def warehouse_counts(home: Path) -> dict:
    conn = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        out = {}
        for table in ("sales", "sales_rejects"):
            try:
                out[table] = conn.execute(f"SELECT count(*) FROM raw.{table}").fetchone()[0]
            except duckdb.CatalogException:
                out[table] = 0
        return out
    finally:
        conn.close()


def drop_raw_tables(home: Path) -> None:
    """Empty the raw tables between scenarios, so each one loads into empty tables."""
    conn = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        conn.execute("DROP TABLE IF EXISTS raw.sales")
        conn.execute("DROP TABLE IF EXISTS raw.sales_rejects")
        conn.execute("CHECKPOINT")
    finally:
        conn.close()


def _run_times(server: BenchServer, run_ids: list[str], t0: float, t_done: float) -> dict:
    """Where the wall time goes: until the first run exists, queued, running, after the last run."""
    details = [server.run_detail(r) for r in run_ids]
    created = [d["creationTime"] for d in details if d.get("creationTime")]
    started = [d["startTime"] for d in details if d.get("startTime")]
    ended = [d["endTime"] for d in details if d.get("endTime")]
    timeline = {}
    if created and started and ended:
        timeline = {
            "launch_to_first_run_created_s": round(min(created) - t0, 1),
            "first_run_created_to_first_start_s": round(min(started) - min(created), 1),
            "first_start_to_last_end_s": round(max(ended) - min(started), 1),
            "last_end_to_done_seen_s": round(t_done - max(ended), 1),
        }
    runs_s = [d["endTime"] - d["startTime"] for d in details if d.get("startTime") and d.get("endTime")]
    steps = [
        s["endTime"] - s["startTime"]
        for d in details
        for s in d.get("stepStats") or []
        if s["stepKey"] == "sales" and s.get("startTime") and s.get("endTime")
    ]
    return {
        "timeline": timeline,
        "run_statuses": sorted({d["status"] for d in details}),
        "run_seconds_sum": round(sum(runs_s), 2),
        "run_seconds_max": round(max(runs_s), 2) if runs_s else None,
        "sales_step_seconds_sum": round(sum(steps), 2),
    }


def backfill(
    server: BenchServer, partitions: list[str], timeout: float, await_completion: bool = True
) -> dict:
    """Launch one partition backfill exactly as the UI does and wait for it; time, runs, memory, rows.

    Full mode waits until the daemon marks the backfill complete (its loop runs every 30 s, so this adds
    0-30 s after the last run). Quick mode stops when the backfill's runs (one per region) have finished:
    the data are loaded then.
    """
    regions = {p.split("|")[1] for p in partitions}
    t0 = time.time()
    with TreeSampler(server.proc.pid, label=run_worker) as sampler, timed() as t:
        backfill_id = server.launch_backfill(partitions, SALES_KEYS)
        if await_completion:
            status = server.wait_backfill(backfill_id, timeout)
        else:
            status = wait_backfill_runs(server, backfill_id, len(regions), timeout)
    t_done = time.time()
    run_ids = [r["runId"] for r in server.runs_with_tag("dagster/backfill", backfill_id)]
    counts = warehouse_counts(server.home)
    return {
        "partitions": len(partitions),
        "backfill_status": status,
        "wall_seconds": round(t["s"], 2),
        "wall_until": "backfill marked complete" if await_completion else "its runs finished",
        "dagster_runs": len(run_ids),
        **_run_times(server, run_ids, t0, t_done),
        "rows_loaded": counts["sales"],
        "rows_rejected": counts["sales_rejects"],
        "peak_run_worker_rss_mb": round(sampler.peak_by_label_mb.get("run_worker", 0.0)),
        "peak_dagster_tree_rss_mb": round(sampler.peak_total_mb),
    }


def wait_backfill_runs(server: BenchServer, backfill_id: str, expected_runs: int, timeout: float) -> str:
    """Until the backfill is complete, or its expected runs exist and have all finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = server.backfill_status(backfill_id)
        if status in DONE_BACKFILL:
            return status
        runs = server.runs_with_tag("dagster/backfill", backfill_id)
        finished = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
        if len(runs) >= expected_runs and len(finished) == len(runs):
            return "RUNS_SUCCEEDED" if all(r["status"] == "SUCCESS" for r in runs) else "RUNS_FAILED"
        time.sleep(0.5)
    log(f"backfill {backfill_id} not done after {timeout:.0f}s: cancelling it")
    server.cancel_backfill(backfill_id)
    return "TIMEOUT"


def naive(server: BenchServer, partitions: list[tuple[str, str]], timeout: float) -> dict:
    """One run per partition, all launched at once; the instance's queue decides how many run together."""
    t0 = time.time()
    with TreeSampler(server.proc.pid, label=run_worker) as sampler, timed() as t:
        run_ids = [
            server.launch_partition_run("ingest_sales", f"{d}|{r}", {"day": d, "region": r})
            for r, d in partitions
        ]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = [server.run_status(r) for r in run_ids]
            if all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses):
                break
            time.sleep(0.5)
    counts = warehouse_counts(server.home)
    return {
        "partitions": len(partitions),
        "wall_seconds": round(t["s"], 2),
        "dagster_runs": len(run_ids),
        **_run_times(server, run_ids, t0, time.time()),
        "rows_loaded": counts["sales"],
        "rows_rejected": counts["sales_rejects"],
        "peak_run_worker_rss_mb": round(sampler.peak_by_label_mb.get("run_worker", 0.0)),
        "peak_dagster_tree_rss_mb": round(sampler.peak_total_mb),
    }


def dagster_scenarios(
    landing: Path,
    days: list[str],
    naive_n: int,
    workdir: Path,
    code: Path,
    one_region: bool = True,
    await_completion: bool = True,
) -> dict:
    home = workdir / "home"
    if home.exists():
        shutil.rmtree(home)
    shutil.copytree(reference_home(landing, workdir, code), home)
    # GLOBOLATTE_AUTOMATION=off: the sensors start stopped, so only the benchmark launches runs (a running
    # sensor would launch weather and reference runs on its first tick, before it could be stopped).
    server = BenchServer(home, code, env={"GLOBOLATTE_LANDING": str(landing), "GLOBOLATTE_AUTOMATION": "off"})
    out: dict = {}
    timeout = 3600.0
    try:
        with timed() as t:
            server.start(timeout=300)
        out["dagster_dev_start_seconds"] = round(t["s"], 1)
        out["sensors_stopped"] = server.stop_all_sensors()
        out["sensor_runs_cancelled"] = server.cancel_queued()
        server.wait_idle()  # runs a sensor launched before it was stopped (none: automation is off)
        drop_raw_tables(home)

        # The naive runs first: they are launched directly (no backfill daemon). `dagster dev` is ready
        # when its daemon has just run its first loop, so a backfill launched right then waited the whole
        # 30 s loop (27-29 s in each quick run so far); after the naive runs the launch falls at another phase.
        log(f"B1: naive baseline, one run per partition, {naive_n} partitions of {ALONE}")
        out["naive"] = naive(server, [(ALONE, d) for d in days[:naive_n]], timeout)
        log(f"B1: naive: {out['naive']}")
        server.wait_idle()
        drop_raw_tables(home)

        if one_region:
            log(f"B1: one region ({ALONE}) x {len(days)} days as one backfill")
            out["one_region"] = backfill(server, [f"{d}|{ALONE}" for d in days], timeout, await_completion)
            log(f"B1: one region: {out['one_region']}")
            server.wait_idle()
            drop_raw_tables(home)

        log(f"B1: {len(REGION_KEYS)} regions x {len(days)} days as one backfill")
        out["three_regions"] = backfill(
            server, [f"{d}|{r}" for r in REGION_KEYS for d in days], timeout, await_completion
        )
        log(f"B1: three regions: {out['three_regions']}")
        server.wait_idle()
        drop_raw_tables(home)

        out["other_runs"] = [
            r["jobName"]
            for r in server.runs()
            if not any(tag["key"] == "dagster/backfill" for tag in r["tags"])
            and r["jobName"] != "ingest_sales"
        ]
    finally:
        server.stop()
    return out


# ---- profile of the load path, in a child process ----------------------------------------------------
def profile_child(landing: Path, region: str, days: list[str]) -> dict:
    """Phases of what the sales asset does for one region, in one process, plus cProfile's top functions."""
    import pandas as pd

    from globolatte_dagster.defs.ingestion.assets import landed_sales
    from globolatte_dagster.lib.ingest import parse_sales_file, validate_sales
    from globolatte_dagster.lib.schema import SALES, SALES_REJECTS
    from globolatte_dagster.resources.landing import LocalLandingZone

    zone = LocalLandingZone(root=str(landing))
    products = pd.read_csv(landing / "reference" / "products.csv", dtype=str)["product_id"]
    partitions = [(region, d) for d in days]
    phases = {}
    with timed() as t:
        files = landed_sales(zone, partitions)
    phases["list_and_read"] = t["s"]
    with timed() as t:
        for f in files:
            parse_sales_file(f)
    phases["parse_files_arrow"] = t["s"]
    prof = cProfile.Profile()
    with timed() as t:
        prof.enable()
        batch = validate_sales(files, products)
        prof.disable()
    phases["validate_sales_total"] = t["s"]
    phases["validate_sql_to_arrow"] = t["s"] - phases["parse_files_arrow"]
    with timed() as t:
        batch.stats(products)
    phases["check_stats"] = t["s"]
    db = WORK / "b1" / "profile.duckdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)
    conn = duckdb.connect(str(db))
    with timed() as t:  # what the warehouse IO manager does with the Arrow tables: one INSERT each
        conn.execute("CREATE SCHEMA raw")
        for table, arrow in ((SALES, batch.valid_table), (SALES_REJECTS, batch.rejects_table)):
            conn.execute(table.ddl("duckdb"))
            conn.register("obj", arrow)
            conn.execute(f"INSERT INTO {table.schema}.{table.name} SELECT * FROM obj")
            conn.unregister("obj")
        conn.execute("CHECKPOINT")
    phases["write_arrow_to_duckdb"] = t["s"]
    conn.close()
    db.unlink(missing_ok=True)
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(18)
    tottime = io.StringIO()
    pstats.Stats(prof, stream=tottime).sort_stats("tottime").print_stats(12)
    return {
        "region": region,
        "days": len(days),
        "files": len(files),
        "rows": batch.valid_table.num_rows + batch.rejects_table.num_rows,
        "phases_seconds": {k: round(v, 2) for k, v in phases.items()},
        "peak_rss_mb": round(self_peak_rss_mb()),
        "valid_arrow_mb": round(batch.valid_table.nbytes / 1024**2),
        "cprofile_validate_sales_cumulative": text.getvalue()[-6000:],
        "cprofile_validate_sales_tottime": tottime.getvalue()[-4000:],
    }


def profile(landing: Path, region: str, days: list[str], code: Path) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.b1_ingestion", "--profile", str(landing), region, *days]
    env = {**snapshot_env(code), "PYTHONPATH": f"{code}:{BENCH.parent}"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=code, env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr[-3000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare(quick: bool = False) -> None:
    """The simulated landing zone and the reference-data home (cached under benchmarks/.work; untimed)."""
    mode = "quick" if quick else "full"
    landing, _ = simulated(f"b1_{mode}", CUSTOMERS, SIZES[mode]["days"], REGION_KEYS, START)
    workdir = WORK / "b1" / mode
    reference_home(landing, workdir, code_snapshot())


# ---- the benchmark -------------------------------------------------------------------------------------
def run(quick: bool = False) -> dict:
    size = SIZES["quick" if quick else "full"]
    m = machine()
    name = "b1_quick" if quick else "b1_full"
    landing, sim = simulated(name, CUSTOMERS, size["days"], REGION_KEYS, START)
    days = [(START + timedelta(days=i)).isoformat() for i in range(size["days"])]
    workdir = WORK / "b1" / ("quick" if quick else "full")

    log("B1: floor (DuckDB read_csv, explicit types)")
    floors = {
        "three_regions": floor(sorted(landing.glob("sales/*/*/*.csv")), workdir),
        "one_region": floor(sorted(landing.glob(f"sales/{ALONE}/*/*.csv")), workdir),
    }
    log(
        f"B1: floor {floors['three_regions']['seconds']} s (3 regions), {floors['one_region']['seconds']} s (1)"
    )
    code = code_snapshot()
    prof: dict = {}
    if size.get("profile", True):
        log("B1: profile of the load path for one region")
        prof = profile(landing, ALONE, days, code)
    dag = dagster_scenarios(
        landing,
        days,
        size["naive_partitions"],
        workdir,
        code,
        size.get("one_region", True),
        size.get("await_completion", True),
    )
    again_files = (("three_regions", "sales/*/*/*.csv"), ("one_region", f"sales/{ALONE}/*/*.csv"))
    if size.get("floor_again", True):
        log("B1: floor again, after the Dagster scenarios (the machine is shared: load drifts)")
    else:
        again_files = ()
    for key, files in again_files:
        again = floor(sorted(landing.glob(files)), workdir)
        floors[key]["after"] = again
        both = floors[key]["ignore_errors"]["seconds_all"] + again["ignore_errors"]["seconds_all"]
        floors[key]["seconds"] = round(statistics.median(both), 3)

    rows = {}
    naive = dag["naive"]
    naive_rows = naive["rows_loaded"] + naive["rows_rejected"]
    naive_rps = naive_rows / naive["wall_seconds"] if naive["wall_seconds"] else None
    naive_per_partition_s = naive["wall_seconds"] / naive["partitions"]
    scenarios = [k for k in ("three_regions", "one_region") if k in dag]
    for key in scenarios:
        r, f = dag[key], floors[key]
        handled = r["rows_loaded"] + r["rows_rejected"]
        rps = handled / r["wall_seconds"]
        r["rows_handled"] = handled
        r["rows_per_second"] = round(rps)
        r["floor_seconds"] = f["seconds"]
        r["ratio_to_floor"] = round(r["wall_seconds"] / f["seconds"], 1)
        r["step_ratio_to_floor"] = round(r["sales_step_seconds_sum"] / f["seconds"], 1)
        runs_s = (r.get("timeline") or {}).get("first_start_to_last_end_s")
        r["runs_ratio_to_floor"] = round(runs_s / f["seconds"], 1) if runs_s else None
        r["naive_extrapolated_seconds"] = round(naive_per_partition_s * r["partitions"])
        r["speedup_vs_naive"] = round(rps / naive_rps, 1) if naive_rps else None
        fr = f["with_store_rejects"]
        r["rows_match_floor"] = handled == fr["rows_loaded"] + fr["rows_rejected"]
        rows[key] = r
    three = rows["three_regions"]
    goals = {
        "three_regions_within_3x_floor": three["ratio_to_floor"] <= GOAL_FLOOR_RATIO,
        "three_regions_in_a_handful_of_runs": 1 <= three["dagster_runs"] <= GOAL_RUNS,
        "backfills_succeeded": all(
            rows[k]["backfill_status"] in ("COMPLETED_SUCCESS", "RUNS_SUCCEEDED") for k in scenarios
        ),
    }
    payload = {
        "benchmark": NAME,
        "mode": "quick" if quick else "full",
        "machine": m,
        "data": {"customers_per_region": CUSTOMERS, "days": size["days"], "start": START.isoformat(), **sim},
        "floor": floors,
        "dagster": dag,
        "profile_one_region": prof,
        "goals": goals,
    }
    write_result(NAME, quick, payload, markdown(payload))
    return payload


def markdown(p: dict) -> str:
    d, dag, fl = p["data"], p["dagster"], p["floor"]
    naive = dag["naive"]
    nrows = naive["rows_loaded"] + naive["rows_rejected"]
    table = []
    for key, label in (("three_regions", "3 regions"), ("one_region", f"1 region ({ALONE})")):
        if key not in dag:
            continue
        r = dag[key]
        table.append(
            [
                f"{label} x {d['days']} days, one backfill",
                r["rows_handled"],
                r["dagster_runs"],
                r["wall_seconds"],
                r["rows_per_second"],
                fl[key]["seconds"],
                f"{r['ratio_to_floor']}x",
                f"{r['runs_ratio_to_floor']}x",
                f"{r['step_ratio_to_floor']}x",
                f"{r['speedup_vs_naive']}x faster",
                r["peak_run_worker_rss_mb"],
            ]
        )
    table.append(
        [
            f"naive: one run per partition ({naive['partitions']} partitions of {ALONE})",
            nrows,
            naive["dagster_runs"],
            naive["wall_seconds"],
            round(nrows / naive["wall_seconds"]),
            "",
            "",
            "",
            "",
            "1x",
            naive["peak_run_worker_rss_mb"],
        ]
    )
    head = [
        "scenario",
        "rows (valid + rejected)",
        "Dagster runs",
        "wall s",
        "rows/s",
        "floor s",
        "wall / floor",
        "runs (first start to last end) / floor",
        "sales step / floor",
        "vs naive (rows/s)",
        "peak run RSS MB",
    ]
    prof = p["profile_one_region"]
    phases = ", ".join(f"{k} {v} s" for k, v in prof.get("phases_seconds", {}).items())
    goals = "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in p["goals"].items())
    three = dag["three_regions"]
    return "\n".join(
        [
            f"### B1 Ingestion ({p['mode']})",
            "",
            f"Machine: {machine_line(p['machine'])}.",
            "",
            f"Data: simulator, {d['customers_per_region']:,} customers per region, {d['days']} days from "
            f"{d['start']}, 3 regions: {d['sales_rows']:,} rows ({d['transactions']:,} transactions, "
            f"about {d['transactions'] // (3 * d['days']):,} per region-day) in {d['sales_files']:,} files.",
            "",
            md_table(head, table),
            "",
            f"Floor (baseline 1): one DuckDB statement inserting into a table of a fresh file: a typed "
            f"`read_csv` per distinct header (column order is free in the contract; "
            f"{fl['three_regions']['ignore_errors']['distinct_headers']} headers, each file's first line read "
            f"in Python), contract types, no sniffing, `ignore_errors`. Median of 3 runs "
            f"{'before and 3 after the Dagster scenarios' if 'after' in fl['three_regions'] else 'before the Dagster scenarios'}: {fl['three_regions']['seconds']} s for 3 regions, "
            f"{fl['one_region']['seconds']} s for one region. With `store_rejects` instead: "
            f"{fl['three_regions']['with_store_rejects']['seconds']} s and "
            f"{fl['one_region']['with_store_rejects']['seconds']} s "
            f"({fl['three_regions']['with_store_rejects']['rows_rejected']:,} type errors rejected; the "
            f"floor checks types only, not products, units, days or duplicates).",
            "",
            f"Wall time runs from `launchPartitionBackfill` until {three.get('wall_until', 'backfill marked complete')}: "
            f"3 regions: {_timeline(three)}. The sales step alone took {three['sales_step_seconds_sum']} s "
            f"({three['step_ratio_to_floor']}x the floor). Naive for the 3-region year, extrapolated: "
            f"{three['naive_extrapolated_seconds']:,} s in {three['partitions']:,} runs. "
            f"Peak RSS of the whole dagster dev tree: {three['peak_dagster_tree_rss_mb']:,} MB.",
            "",
            (
                f"Profile of the load path in one process ({prof.get('region')} x {prof.get('days')} days, "
                f"{prof.get('rows', 0):,} rows): {phases}; peak RSS {prof.get('peak_rss_mb')} MB."
                if prof
                else "No profile child in quick mode."
            ),
            "",
            f"Goals: {goals}.",
        ]
    )


def _timeline(r: dict) -> str:
    t = r.get("timeline") or {}
    names = {
        "launch_to_first_run_created_s": "backfill daemon until the first run exists",
        "first_run_created_to_first_start_s": "queue and run-worker start",
        "first_start_to_last_end_s": "runs (sequential: the warehouse pool has one slot)",
        "last_end_to_done_seen_s": "until the backfill is marked complete",
    }
    return ", ".join(f"{names[k]} {v} s" for k, v in t.items() if k in names) or "no timeline"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", nargs="+", metavar="ARG", help="LANDING REGION DAY... (child mode)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--load-reference", action="store_true", help="(child mode)")
    args = parser.parse_args()
    if args.load_reference:
        load_reference_child()
        return
    if args.profile:
        landing, region, *days = args.profile
        print(json.dumps(profile_child(Path(landing), region, days)))
        return
    run(quick=args.quick)


if __name__ == "__main__":
    main()
