"""B3 ML: the whole ML chain of a region (purchase history and features to recommendations), 3 regions x 365 days.

Per size (customers per region), in child processes that run a snapshot of the project package:
1. setup (not timed): the reference data through Dagster, in process; then the simulator's sales and
   weather with the ingestion assets' own functions, straight into the warehouse (see `child_setup`);
2. chain (timed): one in-process Dagster run per region materialising every asset between
   `core/purchase_history` + `core/customer_features` and `mart/recommendations`, read from the asset graph
   (with the multi-asset `ml/customer_segments` + `ml/segment_model`): the purchase-history SQL, the
   features, segments, the recommender tournament (`ml/preference_model`: every candidate on the full
   history), the registry gate and the recommendations. The child reports the wall time of the three runs,
   each step's time from the event log, the tournament's own `timings_s` and per-candidate fit seconds, the
   context model's training rows, every candidate's hold-out hit rate, and its own peak RSS (`ru_maxrss`).
At the largest size the chain runs twice: with the default `max_train_rows` (the booster learns from a
seeded row sample) and with `max_train_rows=0` (every row), stopped after EVERY_ROW_TIMEOUT_S.
The scaling exponent b of time ~ customers^b is computed between consecutive sizes (default settings).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
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
# The chain is every asset between these, read from the asset graph (with the multi-asset's siblings:
# ml/customer_segments is not upstream of the recommendations, ml/segment_model is).
CHAIN_FROM = [["core", "purchase_history"], ["core", "customer_features"]]
CHAIN_TO = ["mart", "recommendations"]
STEP_COLUMNS = (
    "purchase_history",
    "customer_features",
    "customer_segments",
    "preference_model",
    "registered_model",
    "recommendations",
)
GOAL_SECONDS = 600
GOAL_RSS_MB = 4096
CHAIN_TIMEOUT_S = 3600
# The run with every training row (max_train_rows=0) at the largest size is stopped after this long.
EVERY_ROW_TIMEOUT_S = 1800
# The booster's OpenMP threads: the asset's default, 1 (`B3_THREADS` overrides it; the model is the same
# for any count). Not one per core: on this shared 2-core machine, with other processes on the cores,
# libgomp's spinning threads made a 2-thread fit up to 14x slower than a 1-thread one (see the README).
BOOSTER_THREADS = int(os.environ.get("B3_THREADS", "1"))
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
ROWS_PER_RUN = 1_000_000  # sales rows per setup run (the ingestion run holds a run's rows in memory)
MODEL_STEP = "ml__preference_model"


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


def _chain_selection(d):
    import dagster as dg

    return (
        dg.AssetSelection.assets(CHAIN_TO).upstream() & dg.AssetSelection.assets(*CHAIN_FROM).downstream()
    ).required_multi_asset_neighbors()


def _meta(value):
    return getattr(value, "value", value)


def child_chain() -> dict:
    """The chain per region, one in-process run each; step times from the event log, the tournament's figures.

    `B3_MAX_TRAIN_ROWS` (environment) overrides the preference model's `max_train_rows` (unset: its default).
    """
    import resource

    from globolatte_dagster.lib.contract import REGION_KEYS

    dg, d, job = _defs()
    instance = dg.DagsterInstance.ephemeral()
    chain = sorted(_chain_selection(d).resolve(d.resolve_asset_graph()))
    model_config: dict = {"threads": BOOSTER_THREADS}
    if os.environ.get("B3_MAX_TRAIN_ROWS", "") != "":
        model_config["max_train_rows"] = int(os.environ["B3_MAX_TRAIN_ROWS"])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steps: dict[str, float] = {}
    per_region: dict[str, float] = {}
    per_region_steps: dict[str, dict[str, float]] = {}
    model_meta: dict[str, dict] = {}
    results = {}
    t0 = time.perf_counter()
    for region in REGION_KEYS:
        tr = time.perf_counter()
        result = job.execute_in_process(
            instance=instance,
            asset_selection=chain,
            partition_key=region,
            run_config={"ops": {MODEL_STEP: {"config": model_config}}},
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
        results[region] = result
        for mat in result.asset_materializations_for_node(MODEL_STEP):
            meta = mat.metadata
            context_model = (_meta(meta.get("candidates")) or {}).get("context_model", {})
            model_meta[region] = {
                "timings_s": _meta(meta.get("timings_s")),
                "context_model_training": context_model.get("training", {}),
                "skipped": _meta(meta.get("skipped")),
            }
        starts: dict[str, float] = {}
        per_region_steps[region] = {}
        for entry in instance.all_logs(result.run_id):
            ev = entry.dagster_event
            if ev is None or not entry.step_key:
                continue
            if ev.event_type_value == "STEP_START":
                starts[entry.step_key] = entry.timestamp
            elif ev.event_type_value == "STEP_SUCCESS" and entry.step_key in starts:
                name = entry.step_key.split("__")[-1]
                seconds = entry.timestamp - starts[entry.step_key]
                steps[name] = steps.get(name, 0.0) + seconds
                per_region_steps[region][name] = round(seconds, 1)
    chain_s = time.perf_counter() - t0
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # After the timed part (and the peak RSS): the fitted models, for the per-candidate fit seconds and the
    # tournament's figures (the same object the registry and the endpoint get).
    tournament: dict[str, dict] = {}
    fit_seconds: dict[str, dict] = {}
    for region, result in results.items():
        metrics = result.output_for_node(MODEL_STEP).metrics
        fit_seconds[region] = metrics.get("fit_seconds", {})
        tournament[region] = {
            "champion": metrics.get("champion"),
            "discover_champion": metrics.get("discover_champion"),
            "holdout_customer_days": metrics.get("holdout_customer_days"),
            "discover_customer_days": metrics.get("discover_customer_days"),
            "top": metrics["tournament"]["top"]["candidates"],
            "discover": metrics["tournament"]["discover"]["candidates"],
            "best_baseline": metrics.get("best_baseline"),
        }
    return {
        "chain_seconds": round(chain_s, 1),
        "chain_assets": ["/".join(k.path) for k in chain],
        "preference_model_config": model_config,
        "per_region_seconds": per_region,
        "step_seconds": {k: round(v, 1) for k, v in steps.items()},
        "per_region_step_seconds": per_region_steps,
        "preference_model": model_meta,
        "candidate_fit_seconds": fit_seconds,
        "tournament": tournament,
        "peak_rss_mb": round(peak_rss),
        "rss_after_imports_mb": round(rss_before),
        "rows": _counts(),
    }


def _counts() -> dict:
    import duckdb

    from globolatte_dagster import settings

    conn = duckdb.connect(str(settings.home() / "warehouse.duckdb"), read_only=True)
    try:
        out = {}
        for table in (
            "raw.sales",
            "core.purchase_history",
            "core.customer_features",
            "ml.customer_segments",
            "mart.recommendations",
        ):
            out[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return out
    finally:
        conn.close()


def _child(
    step: str,
    home: Path,
    landing: Path,
    code: Path,
    timeout: float,
    extra_env: dict | None = None,
    label: str = "",
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
            (home / f"{label or step}.stderr.log").write_text(err)
            return {
                "error": f"{step} did not finish within {timeout / 60:.0f} minutes (stopped)",
                "timed_out": True,
                "timeout_seconds": timeout,
                "sampled_peak_rss_mb": round(sampler.peak_total_mb),
                "stderr": err[-3000:],
            }
    wall = time.perf_counter() - t0
    (home / f"{label or step}.stderr.log").write_text(err)
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


DEFAULT, EVERY_ROW = "default", "every_row"


def _default_max_train_rows() -> int:
    from globolatte_dagster.lib.recommend.training import TrainParams

    return TrainParams().max_train_rows


def _key(r: dict) -> tuple[int, str]:
    return r["customers_per_region"], r.get("variant", DEFAULT)


def _merged(results: list[dict], quick: bool) -> list[dict]:
    """Keep the earlier result file's rows that did not run now (each row says when it was measured)."""
    from benchmarks.common import RESULTS, result_name

    path = RESULTS / f"{result_name(NAME, quick)}.json"
    if not path.exists():
        return results
    ran = {_key(r) for r in results}
    earlier = [
        r
        for r in json.loads(path.read_text()).get("results", [])
        if _key(r) not in ran and ("error" not in r or r.get("timed_out"))
    ]
    return sorted(
        [*earlier, *results], key=lambda r: (r["customers_per_region"], r.get("variant") != DEFAULT)
    )


def prepare(quick: bool = False) -> None:
    """Simulate and load the warehouse of each size (cached under benchmarks/.work; the setup is not timed)."""
    code = code_snapshot()
    for n in SIZES["quick" if quick else "full"]:
        prepare_size(n, WORK / "b3", code)


def _chain_row(n: int, variant: str, landing: Path, sim: dict, home: Path, code: Path) -> dict:
    every_row = variant == EVERY_ROW
    _reset_chain(home)
    log(f"B3: chain for {n:,} customers per region ({'every training row' if every_row else 'defaults'})")
    when = {
        "measured_at_utc": machine()["when_utc"],
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }
    chain = _child(
        "chain",
        home,
        landing,
        code,
        timeout=EVERY_ROW_TIMEOUT_S if every_row else CHAIN_TIMEOUT_S,
        extra_env={"B3_MAX_TRAIN_ROWS": "0"} if every_row else None,
        label=f"chain-{variant}",
    )
    row = {
        "customers_per_region": n,
        "variant": variant,
        "max_train_rows": 0 if every_row else _default_max_train_rows(),
        "sales_rows": sim["sales_rows"],
        "booster_threads": BOOSTER_THREADS,
        **when,
        "load_average_at_end": round(os.getloadavg()[0], 2),
        **chain,
    }
    if "error" in chain:
        log(f"B3: chain: {chain['error']}\n{chain['stderr'][-1500:]}")
    else:
        log(
            f"B3: {n:,} customers ({variant}): {chain['chain_seconds']} s, peak RSS {chain['peak_rss_mb']} MB"
        )
    return row


def run(
    quick: bool = False, sizes: list[int] | None = None, merge: bool = False, every_row: bool | None = None
) -> dict:
    """`sizes` overrides the mode's sizes (a partial full run; the result records which sizes ran);
    `merge` keeps the other rows of the previous result file; `every_row` (default: in full mode) also runs
    the largest size with `max_train_rows=0`."""
    from globolatte_dagster.lib.contract import REGION_KEYS

    planned = SIZES["quick" if quick else "full"]
    sizes = sizes or planned
    every_row = (not quick) if every_row is None else every_row
    m = machine()
    workdir = WORK / "b3"
    code = code_snapshot()
    results = []
    for n in sizes:
        landing, sim, home, setup = prepare_size(n, workdir, code)
        if "error" in setup:
            results.append({"customers_per_region": n, "variant": DEFAULT, **setup})
            continue
        results.append(_chain_row(n, DEFAULT, landing, sim, home, code))
        if every_row and n == max(planned):
            results.append(_chain_row(n, EVERY_ROW, landing, sim, home, code))
    if merge:
        results = _merged(results, quick)
    ok = [r for r in results if "error" not in r and r.get("variant", DEFAULT) == DEFAULT]
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
    goals["all_sizes_ran"] = {r["customers_per_region"] for r in ok} >= set(planned)
    payload = {
        "benchmark": NAME,
        "mode": "quick" if quick else "full",
        "machine": m,
        "days": DAYS,
        "regions": list(REGION_KEYS),
        "planned_sizes": planned,
        "sizes_run": sorted({r["customers_per_region"] for r in ok}),
        "results": results,
        "goals": goals,
    }
    write_result(NAME, quick, payload, markdown(payload))
    return payload


def _reset_chain(home: Path) -> None:
    """Each chain starts from the same state: no earlier features, segments (their ids would be aligned to
    them), recommendations or registered versions (the gate would compare with them)."""
    import duckdb

    conn = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        for table in (
            "core.purchase_history",
            "core.customer_features",
            "ml.customer_segments",
            "mart.recommendations",
        ):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute("CHECKPOINT")
    finally:
        conn.close()
    for folder in ("registry", "artifacts"):
        shutil.rmtree(home / folder, ignore_errors=True)


# ---- tables -------------------------------------------------------------------------------------------
CANDIDATE_ORDER = ("popularity", "repeat", "recency_repeat", "tifu_knn", "context_model")


def _regions_sum(per_region: dict, *path: str) -> float | None:
    total, seen = 0.0, False
    for value in per_region.values():
        for k in path:
            value = (value or {}).get(k) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            total, seen = total + value, True
    return round(total, 1) if seen else None


def _label(r: dict) -> str:
    if r.get("variant", DEFAULT) == EVERY_ROW:
        return "every row (max_train_rows=0)"
    return f"sample of {r.get('max_train_rows', 0):,} (default)" if r.get("max_train_rows") else "default"


def _rows_k(x: float | None) -> str:
    return "" if x is None else f"{x / 1000:,.0f}k"


def _used_share(pm: dict) -> str:
    """Customer-days whose rows the context model learned from, of those in its training windows."""
    used = _regions_sum(pm, "context_model_training", "customer_days_used")
    total = _regions_sum(pm, "context_model_training", "customer_days")
    if not used or not total:
        return ""
    return f"{used / 1000:,.0f}k of {total / 1000:,.0f}k ({100 * used / total:.0f}%)"


def chain_table(results: list[dict]) -> list[list]:
    rows = []
    for r in results:
        if "error" in r:
            continue
        steps = r.get("step_seconds", {})
        pm = r.get("preference_model", {})
        rows.append(
            [
                r["customers_per_region"],
                r["sales_rows"],
                _label(r),
                r["chain_seconds"],
                *(steps.get(k) for k in STEP_COLUMNS),
                r["peak_rss_mb"],
                _rows_k(_regions_sum(pm, "context_model_training", "train_rows")),
                _rows_k(_regions_sum(pm, "context_model_training", "rows_before_sampling")),
                _used_share(pm),
                None if r.get("exponent_vs_previous") is None else round(r["exponent_vs_previous"], 2),
                f"{r.get('measured_at_utc', '')[:16]} (load {r.get('load_average_at_start', '?')})",
            ]
        )
    return rows


CHAIN_HEAD = [
    "customers per region",
    "sales rows",
    "booster training rows",
    "chain wall s",
    *(f"{k} s" for k in STEP_COLUMNS),
    "peak RSS MB",
    "context model train rows (3 regions)",
    "rows before sampling (estimated when customer-days are sampled)",
    "customer-days the context model learned from (3 regions)",
    "time exponent vs previous size",
    "measured (UTC, load average)",
]


def tournament_time_table(results: list[dict]) -> list[list]:
    """Where the preference model's time goes (summed over the regions)."""
    rows = []
    for r in results:
        if "error" in r:
            continue
        pm, fits = r.get("preference_model", {}), r.get("candidate_fit_seconds", {})
        step = r.get("step_seconds", {}).get("preference_model")
        total = _regions_sum(pm, "timings_s", "total_s")
        per_candidate = [
            round(
                sum(
                    (f.get("holdout", {}).get(c) or 0) + (f.get("serving", {}).get(c) or 0)
                    for f in fits.values()
                ),
                1,
            )
            for c in CANDIDATE_ORDER
        ]
        rows.append(
            [
                r["customers_per_region"],
                _label(r),
                step,
                _regions_sum(pm, "timings_s", "fit_for_holdout_s"),
                _regions_sum(pm, "timings_s", "holdout_scoring_s"),
                _regions_sum(pm, "timings_s", "refit_s"),
                *per_candidate,
                None if step is None or total is None else round(step - total, 1),
            ]
        )
    return rows


TOURNAMENT_TIME_HEAD = [
    "customers per region",
    "booster training rows",
    "preference_model step s",
    "fit for the hold-out s",
    "hold-out scoring s",
    "refit for serving s",
    *(f"{c} fits s" for c in CANDIDATE_ORDER),
    "rest of the step s (history load, metadata and plots, saving the model)",
]


def _fmt_ci(
    s: dict, key: str = "hit_rate", low: str = "ci_low", high: str = "ci_high", sign: str = ""
) -> str:
    return f"{s[key]:{sign}.4f} ({s[low]:{sign}.3f} .. {s[high]:{sign}.3f})"


def quality_table(results: list[dict]) -> list[list]:
    """The context model against the best baseline per region (what sampling the booster's rows costs)."""
    rows = []
    for r in results:
        if "error" in r:
            continue
        pm = r.get("preference_model", {})
        for region, t in r.get("tournament", {}).items():
            best = t.get("best_baseline")
            cm = t["top"].get("context_model")
            training = pm.get(region, {}).get("context_model_training", {})
            rows.append(
                [
                    r["customers_per_region"],
                    _label(r),
                    region,
                    t.get("holdout_customer_days"),
                    f"{best} {t['top'][best]['hit_rate']:.4f}" if best in t["top"] else "",
                    _fmt_ci(cm) if cm else "not fitted",
                    _fmt_ci(cm, "diff", "diff_ci_low", "diff_ci_high", "+") if cm else "",
                    training.get("train_rows"),
                    t.get("champion"),
                    t.get("discover_champion"),
                ]
            )
    return rows


QUALITY_HEAD = [
    "customers per region",
    "booster training rows",
    "region",
    "hold-out customer-days",
    "best baseline hit rate@3",
    "context_model hit rate@3 (95% CI)",
    "context_model minus best baseline (95% CI)",
    "context model train rows",
    "top champion",
    "discover champion",
]


def _every_row_note(results: list[dict]) -> list[str]:
    """Sampled vs every row at the largest size: what sampling costs or saves."""
    by_variant = {r.get("variant", DEFAULT): r for r in results if r["customers_per_region"] == 20_000}
    sampled, full = by_variant.get(DEFAULT), by_variant.get(EVERY_ROW)
    if not sampled or not full or "error" in sampled:
        return []
    if full.get("timed_out"):
        return [
            "",
            f"Every training row (max_train_rows=0) at 20,000 customers per region: did not finish within "
            f"{full['timeout_seconds'] / 60:.0f} minutes and was stopped (peak RSS of the process tree "
            f"{full.get('sampled_peak_rss_mb', '?'):,} MB); the sampled run took {sampled['chain_seconds']:.0f} s.",
        ]
    if "error" in full:
        return ["", f"Every training row at 20,000 customers per region failed: {full['error']}."]
    parts = []
    for region, t in sampled.get("tournament", {}).items():
        a = t["top"].get("context_model", {}).get("hit_rate")
        b = full.get("tournament", {}).get(region, {}).get("top", {}).get("context_model", {}).get("hit_rate")
        if a is not None and b is not None:
            parts.append(f"{region} {a:.4f} sampled vs {b:.4f} every row ({b - a:+.4f})")
    return [
        "",
        f"Sampling at 20,000 customers per region: chain {sampled['chain_seconds']:.0f} s sampled vs "
        f"{full['chain_seconds']:.0f} s with every row ({full['chain_seconds'] / sampled['chain_seconds']:.2f}x), "
        f"peak RSS {sampled['peak_rss_mb']:,} vs {full['peak_rss_mb']:,} MB; the context model's hold-out hit "
        f"rate@3: {'; '.join(parts)}.",
    ]


def markdown(p: dict) -> str:
    failures = [
        f"- {r['customers_per_region']:,} customers per region, {_label(r)}: {r['error']}"
        for r in p["results"]
        if "error" in r
    ]
    goals = "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in p["goals"].items())
    rows = chain_table(p["results"])
    skipped = [n for n in p.get("planned_sizes", []) if n not in p.get("sizes_run", [])]
    return "\n".join(
        [
            f"### B3 ML chain ({p['mode']})",
            "",
            f"Machine: {machine_line(p['machine'])}.",
            "",
            f"3 regions x {p['days']} days of simulated sales (friendly profile), full history (the "
            "tournament's 365-day look-back) and every candidate (popularity, repeat, recency_repeat, "
            "tifu_knn, context_model); one in-process Dagster run per region materialising every asset from "
            "`core/purchase_history` and `core/customer_features` to `mart/recommendations` (step times "
            "summed over the regions). Peak RSS is the chain process's `ru_maxrss`. The booster fits with "
            f"{p['results'][0].get('booster_threads', 1) if p['results'] else 1} OpenMP thread(s) (`threads`, the "
            "asset's default is 1; the same model for any count). Booster training rows: `max_train_rows`, the named option for scale (0: every row): "
            "above it, each training window contributes a seeded random sample of its customer-days (all rows of each) "
            "up to its share of the rows, so the design is built only for the rows the booster learns from; the windows "
            "that the hold-out fit and the refit for serving share are built once.",
            "",
            md_table(CHAIN_HEAD, rows) if rows else "No size ran to the end.",
            "",
            "Where the preference model's time goes (the tournament's own `timings_s` and per-candidate fit "
            "seconds, summed over the regions; each candidate is fitted twice, as of the hold-out's cutoff "
            "and on the whole history for serving; with `overlap` the hold-out is scored in a second thread "
            "during the refit, so those two overlap and the columns add up to more than the step):",
            "",
            md_table(TOURNAMENT_TIME_HEAD, tournament_time_table(p["results"])) if rows else "",
            "",
            "The context model on the hold-out (last 14 sales days), per region:",
            "",
            md_table(QUALITY_HEAD, quality_table(p["results"])) if rows else "",
            *_every_row_note(p["results"]),
            *(
                ["", f"Not run this time: {', '.join(f'{n:,}' for n in skipped)} customers per region."]
                if skipped
                else []
            ),
            *(["", "Failures:", *failures] if failures else []),
            "",
            f"Goals (default settings): {goals}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["setup", "chain"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default="", help="customers per region, e.g. 1000,5000")
    parser.add_argument("--merge", action="store_true", help="keep the other rows of the last result")
    parser.add_argument(
        "--every-row",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run the largest size with max_train_rows=0 (default: in full mode)",
    )
    args = parser.parse_args()
    if args.child == "setup":
        print(json.dumps(child_setup()))
    elif args.child == "chain":
        print(json.dumps(child_chain()))
    else:
        run(
            quick=args.quick,
            sizes=[int(x) for x in args.sizes.split(",") if x] or None,
            merge=args.merge,
            every_row=args.every_row,
        )


if __name__ == "__main__":
    os.environ.setdefault("GLOBOLATTE_ENV", "local")
    main()
