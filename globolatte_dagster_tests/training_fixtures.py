"""A small simulated region with its segments and an in-process model, to train again on other paths."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from globolatte_dagster.defs.features.assets import customer_features, purchase_history
from globolatte_dagster.defs.ml.assets import customer_segments, preference_model
from globolatte_dagster.resources.io_managers import WarehouseDuckDBIOManager
from globolatte_dagster.resources.model_training import InProcessModelTraining
from globolatte_dagster.resources.warehouse import DuckDBWarehouse
from globolatte_dagster_tests.ml_data import landed_frames, load_duckdb, simulate_case

REGION = "mexico"
CHAIN = [purchase_history, customer_features, customer_segments, preference_model]
MODEL = {"max_iter": 40, "n_boot": 200}
# Differ by construction between two trainings of the same data: wall-clock figures and where it ran.
RUN_SPECIFIC = {
    "timings_s",
    "training_process_s",
    "training_peak_rss_mb",
    "training_host",
    "training",
    "path",
    "azureml_job",
    "artefact",
    "compute",
}


def resources(case: dict, training) -> dict:
    db = case["db"]
    return {
        "warehouse": DuckDBWarehouse(database=db),
        "warehouse_io_manager": WarehouseDuckDBIOManager(database=db),
        "model_io_manager": dg.FilesystemIOManager(base_dir=str(case["root"] / "artifacts")),
        "training": training,
    }


def train_model(case: dict, training, model_config: dict | None = None, raise_on_error: bool = True):
    """Materialise ml/preference_model alone (the segments come from the case's first run)."""
    return dg.materialize(
        CHAIN,
        selection=[preference_model],
        partition_key=REGION,
        resources=resources(case, training),
        run_config=dg.RunConfig(ops={"ml__preference_model": {"config": {**MODEL, **(model_config or {})}}}),
        raise_on_error=raise_on_error,
    )


def build_case(root: Path) -> dict:
    """36 days x 150 customers of one region, loaded into DuckDB, and the chain run once in process."""
    sim = simulate_case(root, days=36, customers=150, regions=(REGION,))
    db = str(root / "wh.duckdb")
    load_duckdb(db, landed_frames(sim.landing))
    case = {"root": root, "db": db}
    result = dg.materialize(
        CHAIN,
        partition_key=REGION,
        resources=resources(case, InProcessModelTraining()),
        run_config=dg.RunConfig(
            ops={
                "customer_segments": {"config": {"k_max": 6, "n_init": 2}},
                "ml__preference_model": {"config": MODEL},
            }
        ),
    )
    assert result.success
    case["inprocess"] = result
    return case


def model_and_page(result: dg.ExecuteInProcessResult):
    """The trained model and its asset page's metadata (plain values)."""
    meta = result.asset_materializations_for_node("ml__preference_model")[0].metadata
    return result.output_for_node("ml__preference_model"), {k: v.value for k, v in meta.items()}


def step_failure(result: dg.ExecuteInProcessResult):
    return next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data
