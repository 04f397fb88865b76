"""B6 training path: the tournament in the run's process vs `training.job` in a subprocess through Pipes.

`python -m benchmarks.b6_training_path [--quick] [--repeats N]` (not part of `make bench` yet: B3 is being
rewritten on another branch; this file stands alone and writes `results/b6_training_path[_quick].*`).

Per size (customers in one region, 365 days of simulated sales, seed 11):
1. setup (not timed): the simulator's landing zone (cached under benchmarks/.work/data), parsed with the
   ingestion lib and loaded into a DuckDB warehouse (`globolatte_dagster_tests.ml_data`), then one
   in-process Dagster run of purchase history, features, segments and the model (a warm-up);
2. timed: `ml/preference_model` alone, materialised `repeats` times per path, alternating in-process
   (`InProcessModelTraining`, the baseline) and subprocess (`SubprocessModelTraining`: write the training
   folder, start `python -m globolatte_dagster.training.job` through `dg.PipesSubprocessClient`, read the
   model back). Per run: the step's wall time from the event log, the tournament's own time
   (`timings_s.total_s`, inside `train_region`) and, for the subprocess, the job's breakdown (read
   inputs, train, write outputs, process total, peak RSS) reported through Pipes.
The overhead is step(subprocess) - step(in-process), the medians of the same run; the ratio is theirs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import date

from benchmarks.common import (
    RESULTS,
    WORK,
    log,
    machine,
    machine_line,
    md_table,
    result_name,
    simulated,
    write_result,
)

NAME = "b6_training_path"
REGION = "america"
START = date(2025, 1, 1)
DAYS = 365
SIZES = {"full": [1_000, 5_000], "quick": [1_000]}


def _step_seconds(instance, run_id: str, step: str = "ml__preference_model") -> float:
    """STEP_START to STEP_SUCCESS of `step`, from the instance's event log."""
    start = end = None
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or entry.step_key != step:
            continue
        if event.event_type_value == "STEP_START":
            start = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS":
            end = entry.timestamp
    if start is None or end is None:
        raise RuntimeError(f"{step}: no start/success in the run's events")
    return end - start


def _prepare(customers: int) -> dict:
    from globolatte_dagster_tests.ml_data import landed_frames, load_duckdb

    landing, summary = simulated(f"b6-{customers}", customers, DAYS, [REGION], START)
    root = WORK / "b6" / f"c{customers}"
    db = root / "wh.duckdb"
    marker = root / "loaded.txt"
    if not marker.exists() or marker.read_text() != str(summary.get("sales_rows")):
        root.mkdir(parents=True, exist_ok=True)
        db.unlink(missing_ok=True)
        log(f"loading {customers} customers into {db}")
        load_duckdb(str(db), landed_frames(landing))
        marker.write_text(str(summary.get("sales_rows")))
    return {"root": root, "db": str(db), "summary": summary}


def _resources(case: dict, training) -> dict:
    import dagster as dg

    from globolatte_dagster.resources.io_managers import WarehouseDuckDBIOManager
    from globolatte_dagster.resources.warehouse import DuckDBWarehouse

    return {
        "warehouse": DuckDBWarehouse(database=case["db"]),
        "warehouse_io_manager": WarehouseDuckDBIOManager(database=case["db"]),
        "model_io_manager": dg.FilesystemIOManager(base_dir=str(case["root"] / "artifacts")),
        "training": training,
    }


def run_size(customers: int, repeats: int) -> dict:
    import dagster as dg

    from globolatte_dagster.defs.features.assets import customer_features, purchase_history
    from globolatte_dagster.defs.ml.assets import customer_segments, preference_model
    from globolatte_dagster.resources.model_training import InProcessModelTraining, SubprocessModelTraining

    case = _prepare(customers)
    chain = [purchase_history, customer_features, customer_segments, preference_model]
    t0 = time.perf_counter()
    warm = dg.materialize(chain, partition_key=REGION, resources=_resources(case, InProcessModelTraining()))
    assert warm.success
    log(f"{customers}: upstream and warm-up model in {time.perf_counter() - t0:.0f} s")
    paths = {
        "inprocess": InProcessModelTraining(),
        "subprocess": SubprocessModelTraining(scratch_dir=str(case["root"] / "scratch")),
    }
    runs: dict[str, list[dict]] = {name: [] for name in paths}
    instance = dg.DagsterInstance.ephemeral()
    for i in range(repeats):
        for name, training in paths.items():
            result = dg.materialize(
                chain,
                selection=[preference_model],
                partition_key=REGION,
                resources=_resources(case, training),
                instance=instance,
            )
            assert result.success
            meta = {
                k: v.value
                for k, v in result.asset_materializations_for_node("ml__preference_model")[0].metadata.items()
            }
            run = {
                "step_s": round(_step_seconds(instance, result.run_id), 2),
                "train_region_s": meta["timings_s"]["total_s"],
                "champion": meta["champion"],
            }
            if name == "subprocess":
                run["job_s"] = meta["training_process_s"]
                run["job_peak_rss_mb"] = meta["training_peak_rss_mb"]
            runs[name].append(run)
            log(
                f"{customers} #{i + 1} {name}: step {run['step_s']} s, train_region {run['train_region_s']} s"
            )
    return summarise(
        {"customers": customers, "days": DAYS, "sales_rows": case["summary"].get("sales_rows"), "runs": runs}
    )


def summarise(size: dict) -> dict:
    """Medians per path; the overhead two ways: whole steps, and the step minus the tournament itself.

    The tournament's own time (`train_region`) varies widely between identical runs on a shared machine,
    so the robust figure is what each path spends *outside* it: loading the rows and drawing the
    page in both, plus (subprocess) the folder, the interpreter, the imports and reading the model back.
    """
    runs = size["runs"]
    med = {
        name: {
            "step_s": statistics.median(r["step_s"] for r in rs),
            "train_region_s": statistics.median(r["train_region_s"] for r in rs),
            "outside_train_region_s": statistics.median(r["step_s"] - r["train_region_s"] for r in rs),
        }
        for name, rs in runs.items()
    }
    sub = runs["subprocess"]
    return {
        **size,
        "median": med,
        "job_median_s": {key: statistics.median(r["job_s"][key] for r in sub) for key in sub[0]["job_s"]},
        "job_peak_rss_mb": statistics.median(r["job_peak_rss_mb"] for r in sub),
        "overhead_s": round(med["subprocess"]["step_s"] - med["inprocess"]["step_s"], 2),
        "ratio": round(med["subprocess"]["step_s"] / med["inprocess"]["step_s"], 3),
        "pipes_overhead_s": round(
            med["subprocess"]["outside_train_region_s"] - med["inprocess"]["outside_train_region_s"], 2
        ),
        "same_champion": len({r["champion"] for rs in runs.values() for r in rs}) == 1,
    }


def render(results: list[dict], repeats: int, m: dict) -> str:
    rows = [
        [
            f"{r['customers']:,}",
            r["median"]["inprocess"]["step_s"],
            r["median"]["subprocess"]["step_s"],
            r["overhead_s"],
            f"{r['ratio']:.2f}×",
            r["median"]["inprocess"]["outside_train_region_s"],
            r["median"]["subprocess"]["outside_train_region_s"],
            r["pipes_overhead_s"],
            r["median"]["inprocess"]["train_region_s"],
            r["job_median_s"]["train"],
            r["job_median_s"]["imports"],
            r["job_median_s"]["read_inputs"],
            r["job_median_s"]["write_outputs"],
            r["job_peak_rss_mb"],
        ]
        for r in results
    ]
    table = md_table(
        [
            "customers (1 region, 365 days)",
            "in-process step s",
            "subprocess step s",
            "step overhead s",
            "step ratio",
            "in-process: outside train_region s",
            "subprocess: outside train_region s",
            "Pipes subprocess overhead s",
            "train_region s (in-process)",
            "train_region s (job)",
            "job: imports s",
            "job: read inputs s",
            "job: write outputs s",
            "job peak RSS MB",
        ],
        rows,
    )
    return (
        "## B6 Training path: in the run's process vs training.job in a subprocess through Pipes\n\n"
        f"{table}\n\n"
        f"Medians of {repeats} alternating runs per path. Step = `ml/preference_model`'s STEP_START to "
        "STEP_SUCCESS. train_region (the tournament itself) varies widely between identical runs on this "
        "shared machine (at 5,000 customers 122-272 s in one run, other helpers' tests running), so the Pipes overhead is also given as the difference of the time each path spends "
        "outside train_region (in both: reading the rows, drawing the page; in the subprocess also: writing "
        "the training folder, starting Python, importing pandas, pyarrow and scikit-learn, reading the folder, "
        "writing and reading back the model). Same champion on every run: "
        + ("yes" if all(r["same_champion"] for r in results) else "NO")
        + ". Machine: "
        + machine_line(m)
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--render", action="store_true", help="rebuild the table from the saved JSON")
    args = parser.parse_args(argv)
    m = machine()
    log(machine_line(m))
    sizes = SIZES["quick" if args.quick else "full"]
    if args.render:  # recompute the summary and the table from a saved run
        saved = json.loads((RESULTS / f"{result_name(NAME, args.quick)}.json").read_text())
        m, args.repeats = saved["machine"], saved["repeats"]
        results = [summarise(size) for size in saved["sizes"]]
    else:
        results = [run_size(c, args.repeats) for c in sizes]
    markdown = render(results, args.repeats, m)
    write_result(NAME, args.quick, {"machine": m, "repeats": args.repeats, "sizes": results}, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
