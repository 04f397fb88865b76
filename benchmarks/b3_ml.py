"""B3 ML: features -> segments -> preference model -> recommendations, 3 regions x 365 days of sales.

Per size (customers per region), in child processes that run a snapshot of the project package:
1. setup (not timed): the reference data through Dagster, in process; then the simulator's sales and
   weather with the ingestion assets' own functions, straight into the warehouse (see `child_setup`);
2. chain (timed): one in-process Dagster run per region materialising `core/customer_features`,
   `ml/customer_segments`, `ml/preference_model` and `mart/recommendations`. The child reports the wall time
   of the three runs, each step's time from the event log, and its own peak RSS (`ru_maxrss`).
The scaling exponent b of time ~ customers^b is computed between consecutive sizes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from benchmarks.common import (
    WORK,
    TreeSampler,
    child_env,
    code_snapshot,
    exponent,
    log,
    machine,
    machine_line,
    md_table,
    simulated,
    write_result,
)

NAME = "b3_ml"
START = date(2025, 1, 1)
DAYS = 365
SIZES = {"full": [1_000, 5_000, 20_000], "quick": [1_000]}
# The chain is every asset between these two, read from the asset graph (the ML code is still changing:
# recommendations now read the registered champion, so ml/registered_model is part of it).
CHAIN_FROM = ["core", "customer_features"]
CHAIN_TO = ["mart", "recommendations"]
STEP_COLUMNS = (
    "customer_features",
    "customer_segments",
    "preference_model",
    "registered_model",
    "recommendations",
)
GOAL_SECONDS = 600
GOAL_RSS_MB = 4096
# The chain runs alone on the machine, so the booster may use every usable core (the model is the same for
# any thread count; the asset's default of 1 suits several runs at once).
BOOSTER_THREADS = len(os.sched_getaffinity(0))
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
ROWS_PER_RUN = 1_000_000  # sales rows per setup run (the ingestion run holds a run's rows in memory)


# ---- child process ---------------------------------------------------------------------------------------
def _defs():
    import dagster as dg

    from globolatte_dagster.definitions import defs

    d = defs()
    return dg, d, d.resolve_implicit_global_asset_job_def()


def child_setup() -> dict:
    """Reference data through Dagster, then a year of raw sales and weather with the ingestion assets' own
    functions, straight into the warehouse.

    The chain reads the warehouse tables, not the event log, so the setup skips Dagster's per-partition
    bookkeeping (one materialisation per day and asset: most of a setup run's time). The rows are the
    same ones a backfill loads: the same listing, parsing and validation functions, the same tables
    (`lib.schema` DDL), the same column order. A run holds at most ROWS_PER_RUN sales rows
    (`B3_DAYS_PER_RUN`), as a backfill run would.
    """
    import pandas as pd

    from globolatte_dagster import settings
    from globolatte_dagster.defs.ingestion.assets import landed_objects, landed_sales
    from globolatte_dagster.lib.contract import REGION_KEYS
    from globolatte_dagster.lib.ingest import FileRejected, LandedFile, parse_weather, validate_sales
    from globolatte_dagster.lib.schema import SALES, SALES_REJECTS, WEATHER
    from globolatte_dagster.resources.landing import LocalLandingZone
    from globolatte_dagster.resources.warehouse import DuckDBWarehouse, connect_duckdb

    dg, _d, job = _defs()
    t0 = time.perf_counter()
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[
            dg.AssetKey(k) for k in (["core", "products"], ["core", "customers"], ["core", "calendar"])
        ],
        raise_on_error=True,
    )
    assert result.success
    landing = LocalLandingZone(root=str(settings.landing_dir()))
    days = [(START + timedelta(days=i)).isoformat() for i in range(DAYS)]
    per_run = max(1, int(os.environ.get("B3_DAYS_PER_RUN", "31")))
    counts = {"sales": 0, "sales_rejects": 0, "weather": 0, "weather_unusable": 0}
    database = str(settings.home() / "warehouse.duckdb")
    DuckDBWarehouse(database=database).ensure_tables([SALES, SALES_REJECTS, WEATHER])
    conn = connect_duckdb(database)
    try:
        products = conn.sql("SELECT product_id FROM core.products").df()["product_id"]

        def insert(table, rows) -> int:
            columns = ", ".join(f'"{c}"' for c in table.column_names)
            conn.register("_rows", rows)
            try:
                conn.execute(
                    f"INSERT INTO {table.schema}.{table.name} ({columns}) SELECT {columns} FROM _rows"
                )
            finally:
                conn.unregister("_rows")
            return len(rows)

        for region in REGION_KEYS:
            for i in range(0, len(days), per_run):
                batch = validate_sales(
                    landed_sales(landing, [(region, d) for d in days[i : i + per_run]]), products
                )
                counts["sales"] += insert(SALES, batch.valid_table)
                counts["sales_rejects"] += insert(SALES_REJECTS, batch.rejects_table)
            frames = []
            for obj, path in landed_objects(landing, "weather", [(region, d) for d in days]):
                try:
                    lf = LandedFile(obj.path, region, path.day, landing.read_bytes(obj.path), obj.fingerprint)
                    frames.append(parse_weather(lf))
                except FileRejected:
                    counts["weather_unusable"] += 1  # as the asset does: reported, not loaded
            if frames:
                counts["weather"] += insert(WEATHER, pd.concat(frames, ignore_index=True))
    finally:
        conn.close()
    return {"setup_seconds": round(time.perf_counter() - t0, 1), "rows": counts}


def child_chain() -> dict:
    """The four ML assets per region, one in-process run each; step times from the event log."""
    import resource

    from globolatte_dagster.lib.contract import REGION_KEYS

    dg, d, job = _defs()
    instance = dg.DagsterInstance.ephemeral()
    selection = (
        dg.AssetSelection.assets(CHAIN_TO).upstream() & dg.AssetSelection.assets(CHAIN_FROM).downstream()
    )
    chain = sorted(selection.resolve(d.resolve_asset_graph()))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steps: dict[str, float] = {}
    per_region: dict[str, float] = {}
    model_timings: dict[str, dict] = {}
    feature_sql: dict[str, float] = {}
    t0 = time.perf_counter()
    for region in REGION_KEYS:
        tr = time.perf_counter()
        result = job.execute_in_process(
            instance=instance,
            asset_selection=chain,
            partition_key=region,
            run_config={"ops": {"ml__preference_model": {"config": {"threads": BOOSTER_THREADS}}}},
            raise_on_error=False,
        )
        if not result.success:
            failures = [
                str(e.step_failure_data.error.message if e.step_failure_data.error else e)[-1500:]
                for e in result.all_events
                if e.event_type_value == "STEP_FAILURE"
            ]
            raise RuntimeError(f"{region}: the chain failed: {failures}")
        per_region[region] = round(time.perf_counter() - tr, 1)
        for mat in result.asset_materializations_for_node("ml__preference_model"):
            value = mat.metadata.get("timings_s")
            if value is not None:
                model_timings[region] = getattr(value, "value", value)
        for mat in result.asset_materializations_for_node("core__customer_features"):
            value = mat.metadata.get("sql_seconds")
            if value is not None:
                feature_sql[region] = getattr(value, "value", value)
        starts: dict[str, float] = {}
        for entry in instance.all_logs(result.run_id):
            ev = entry.dagster_event
            if ev is None or not entry.step_key:
                continue
            if ev.event_type_value == "STEP_START":
                starts[entry.step_key] = entry.timestamp
            elif ev.event_type_value == "STEP_SUCCESS" and entry.step_key in starts:
                name = entry.step_key.split("__")[-1]
                steps[name] = steps.get(name, 0.0) + entry.timestamp - starts[entry.step_key]
    chain_s = time.perf_counter() - t0
    return {
        "chain_seconds": round(chain_s, 1),
        "chain_assets": ["/".join(k.path) for k in chain],
        "per_region_seconds": per_region,
        "step_seconds": {k: round(v, 1) for k, v in steps.items()},
        "preference_model_timings_s": model_timings,
        "feature_sql_seconds": feature_sql,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_after_imports_mb": round(rss_before),
        "rows": _counts(),
    }


def _counts() -> dict:
    import duckdb

    from globolatte_dagster import settings

    conn = duckdb.connect(str(settings.home() / "warehouse.duckdb"), read_only=True)
    try:
        out = {}
        for table in ("raw.sales", "core.customer_features", "ml.customer_segments", "mart.recommendations"):
            out[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return out
    finally:
        conn.close()


def _child(
    step: str, home: Path, landing: Path, code: Path, timeout: float, extra_env: dict | None = None
) -> dict:
    env = {**(extra_env or {}), **child_env(code, home, landing)}
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.b3_ml", "--child", step]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=code, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeSampler(proc.pid, interval=0.25) as sampler:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return {"error": f"{step} timed out after {timeout:.0f}s", "stderr": err[-3000:]}
    wall = time.perf_counter() - t0
    (home / f"{step}.stderr.log").write_text(err)
    if proc.returncode != 0:
        return {"error": f"{step} exited {proc.returncode}", "stderr": err[-3000:]}
    result = json.loads(out.strip().splitlines()[-1])
    result["process_wall_seconds"] = round(wall, 1)
    result["sampled_peak_rss_mb"] = round(sampler.peak_total_mb)
    return result


# ---- the benchmark -------------------------------------------------------------------------------------
def prepare_size(n: int, workdir: Path, code: Path) -> tuple[Path, dict, Path, dict]:
    """Simulated data and a loaded warehouse for `n` customers per region (reused while unchanged)."""
    from globolatte_dagster.lib.contract import REGION_KEYS

    landing, sim = simulated(f"b3_{n}", n, DAYS, REGION_KEYS, START)
    home = workdir / f"home-{n}"
    marker = home / "setup.json"
    params = {"sim": sim["params"], "setup": "reference through Dagster, sales and weather direct"}
    if marker.exists() and json.loads(marker.read_text()).get("params") == params:
        return landing, sim, home, json.loads(marker.read_text())
    if home.exists():
        import shutil

        shutil.rmtree(home)
    home.mkdir(parents=True)
    log(f"B3: loading {sim['sales_rows']:,} sales rows for {n:,} customers per region (not timed)")
    rows_per_day = max(sim["rows_per_region"].values()) / DAYS
    days_per_run = max(1, min(DAYS, int(ROWS_PER_RUN // max(rows_per_day, 1))))
    setup = _child(
        "setup", home, landing, code, timeout=3600, extra_env={"B3_DAYS_PER_RUN": str(days_per_run)}
    )
    if "error" in setup:
        log(f"B3: setup failed: {setup['error']}\n{setup['stderr'][-1500:]}")
        return landing, sim, home, setup
    setup["days_per_run"] = days_per_run
    marker.write_text(json.dumps({"params": params, **setup}))
    return landing, sim, home, setup


def _merged(results: list[dict], quick: bool) -> list[dict]:
    """Keep the earlier result file's sizes that did not run now (each row says when it was measured)."""
    from benchmarks.common import RESULTS, result_name

    path = RESULTS / f"{result_name(NAME, quick)}.json"
    if not path.exists():
        return results
    ran = {r["customers_per_region"] for r in results}
    earlier = [
        r
        for r in json.loads(path.read_text()).get("results", [])
        if r["customers_per_region"] not in ran and "error" not in r
    ]
    return sorted([*earlier, *results], key=lambda r: r["customers_per_region"])


def prepare(quick: bool = False) -> None:
    """Simulate and load the warehouse of each size (cached under benchmarks/.work; the setup is not timed)."""
    code = code_snapshot()
    for n in SIZES["quick" if quick else "full"]:
        prepare_size(n, WORK / "b3", code)


def run(quick: bool = False, sizes: list[int] | None = None, merge: bool = False) -> dict:
    """`sizes` overrides the mode's sizes (a partial full run; the result records which sizes ran);
    `merge` keeps the other sizes of the previous result file."""
    from globolatte_dagster.lib.contract import REGION_KEYS

    planned = SIZES["quick" if quick else "full"]
    sizes = sizes or planned
    m = machine()
    workdir = WORK / "b3"
    code = code_snapshot()
    results = []
    for n in sizes:
        landing, sim, home, setup = prepare_size(n, workdir, code)
        if "error" in setup:
            results.append({"customers_per_region": n, **setup})
            continue
        _reset_chain_tables(home)
        log(f"B3: chain for {n:,} customers per region")
        when = {
            "measured_at_utc": machine()["when_utc"],
            "load_average_at_start": round(os.getloadavg()[0], 2),
        }
        chain = _child("chain", home, landing, code, timeout=3600)
        row = {
            "customers_per_region": n,
            "sales_rows": sim["sales_rows"],
            "booster_threads": BOOSTER_THREADS,
            **when,
            **chain,
        }
        results.append(row)
        if "error" in chain:
            log(f"B3: chain failed: {chain['error']}\n{chain['stderr'][-1500:]}")
        else:
            log(f"B3: {n:,} customers: {chain['chain_seconds']} s, peak RSS {chain['peak_rss_mb']} MB")
    if merge:
        results = _merged(results, quick)
    ok = [r for r in results if "error" not in r]
    for a, b in itertools.pairwise(ok):
        b["exponent_vs_previous"] = exponent(
            a["customers_per_region"], a["chain_seconds"], b["customers_per_region"], b["chain_seconds"]
        )
        b["rss_exponent_vs_previous"] = exponent(
            a["customers_per_region"], a["peak_rss_mb"], b["customers_per_region"], b["peak_rss_mb"]
        )
    largest = ok[-1] if ok else None
    goals = {}
    if largest and largest["customers_per_region"] == 20_000:
        goals["under_10_minutes_at_20k"] = largest["chain_seconds"] < GOAL_SECONDS
        goals["under_4_GB_at_20k"] = largest["peak_rss_mb"] < GOAL_RSS_MB
    if len(ok) >= 2:
        worst = max(r["exponent_vs_previous"] for r in ok[1:])
        goals["near_linear_scaling (exponent <= 1.2)"] = worst <= 1.2
    goals["all_sizes_ran"] = len(ok) == len(planned)
    payload = {
        "benchmark": NAME,
        "mode": "quick" if quick else "full",
        "machine": m,
        "days": DAYS,
        "regions": list(REGION_KEYS),
        "planned_sizes": planned,
        "sizes_run": sorted({r["customers_per_region"] for r in results if "error" not in r}),
        "results": results,
        "goals": goals,
    }
    write_result(NAME, quick, payload, markdown(payload))
    return payload


def _reset_chain_tables(home: Path) -> None:
    """Each chain starts from the same state: no earlier segments (their ids would be aligned to them)."""
    import duckdb

    conn = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        for table in ("core.customer_features", "ml.customer_segments", "mart.recommendations"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute("CHECKPOINT")
    finally:
        conn.close()


def markdown(p: dict) -> str:
    rows, failures = [], []
    for r in p["results"]:
        if "error" in r:
            failures.append(f"- {r['customers_per_region']:,} customers per region: {r['error']}")
            continue
        steps = r.get("step_seconds", {})
        rows.append(
            [
                r["customers_per_region"],
                r["sales_rows"],
                r["chain_seconds"],
                *(steps.get(k) for k in STEP_COLUMNS),
                r["peak_rss_mb"],
                r.get("booster_threads", 1),
                None if r.get("exponent_vs_previous") is None else round(r["exponent_vs_previous"], 2),
                f"{r.get('measured_at_utc', '')[:16]} (load {r.get('load_average_at_start', '?')})",
            ]
        )
    head = [
        "customers per region",
        "sales rows",
        "chain wall s",
        *(f"{k} s" for k in STEP_COLUMNS),
        "peak RSS MB",
        "booster threads",
        "time exponent vs previous size",
        "measured (UTC, load average)",
    ]
    goals = "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in p["goals"].items())
    return "\n".join(
        [
            f"### B3 ML chain ({p['mode']})",
            "",
            f"Machine: {machine_line(p['machine'])}.",
            "",
            f"3 regions x {p['days']} days of simulated sales; one in-process Dagster run per region "
            "materialising features, segments, preference model and recommendations (step times summed over "
            "the regions). Peak RSS is the chain process's `ru_maxrss`. The chain runs alone, so the booster "
            "fits with one OpenMP thread per usable core (`PreferenceModelConfig.threads`; the same model for "
            "any count).",
            "",
            md_table(head, rows) if rows else "No size ran to the end.",
            *(
                ["", f"Not run this time: {', '.join(f'{n:,}' for n in skipped)} customers per region."]
                if (skipped := [n for n in p.get("planned_sizes", []) if n not in p.get("sizes_run", [])])
                else []
            ),
            *(["", "Failures:", *failures] if failures else []),
            "",
            f"Goals: {goals}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["setup", "chain"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default="", help="customers per region, e.g. 1000,5000")
    parser.add_argument("--merge", action="store_true", help="keep the other sizes of the last result")
    args = parser.parse_args()
    if args.child == "setup":
        print(json.dumps(child_setup()))
    elif args.child == "chain":
        print(json.dumps(child_chain()))
    else:
        run(quick=args.quick, sizes=[int(x) for x in args.sizes.split(",") if x] or None, merge=args.merge)


if __name__ == "__main__":
    os.environ.setdefault("GLOBOLATTE_ENV", "local")
    main()
