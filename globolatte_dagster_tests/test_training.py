"""Where the tournament trains: in the run's process, or as `training.job` in a subprocess through Pipes.

The subprocess path runs for real (`dg.PipesSubprocessClient`, the job's own interpreter and imports). With
the same seed and data it must give the model the in-process path gives: the same answers to every
request, the same metrics and the same asset page.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from globolatte_dagster import settings
from globolatte_dagster.lib.recommend import data as D
from globolatte_dagster.lib.recommend.training import TrainParams
from globolatte_dagster.resources import environment_definitions
from globolatte_dagster.resources.model_training import (
    InProcessModelTraining,
    SubprocessModelTraining,
)
from globolatte_dagster.resources.training_azureml import AzureMLModelTraining
from globolatte_dagster.resources.warehouse import DuckDBWarehouse
from globolatte_dagster.training.folder import TrainingRequest, read_outputs, write_inputs
from globolatte_dagster_tests.training_fixtures import (
    REGION,
    RUN_SPECIFIC,
    build_case,
    model_and_page,
    step_failure,
    train_model,
)


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict:
    return build_case(tmp_path_factory.mktemp("training"))


def test_subprocess_training_gives_the_in_process_model_answers_metrics_and_asset_page(case):
    scratch = case["root"] / "scratch"
    result = train_model(case, SubprocessModelTraining(scratch_dir=str(scratch)))
    assert result.success
    ours, ours_meta = model_and_page(result)
    theirs, theirs_meta = model_and_page(case["inprocess"])

    # Where it ran is said on the page; the job's own figures came back through Pipes.
    assert (ours_meta["training"], theirs_meta["training"]) == ("subprocess", "inprocess")
    assert ours_meta["training_process_s"]["train"] > 0 and ours_meta["training_peak_rss_mb"] > 0
    assert not list(scratch.iterdir())  # the training folder is gone after a success

    # Same page: every figure, table, plot and reason, apart from wall-clock times.
    assert {k: v for k, v in ours_meta.items() if k not in RUN_SPECIFIC} == {
        k: v for k, v in theirs_meta.items() if k not in RUN_SPECIFIC and k in ours_meta
    }
    assert set(theirs_meta) - RUN_SPECIFIC <= set(ours_meta)
    assert "| list | candidate |" in ours_meta["tournament"] and "data:image/png" in ours_meta["plot"]

    # Same metrics (apart from the fit times) and the same answers to every request.
    timing_free = lambda m: {k: v for k, v in m.items() if k != "fit_seconds"}  # noqa: E731
    assert timing_free(ours.metrics) == timing_free(theirs.metrics)
    day = ours.as_of + timedelta(days=1)
    pd.testing.assert_frame_equal(ours.lists(day), theirs.lists(day))
    requests = [
        {"region": REGION, "customer_id": str(c), "date": (day + timedelta(days=d)).isoformat(), "k": 5}
        | ({"temp_max_c": 31.5} if d else {"exclude_purchased": True})
        for c in ours.customers[:60]
        for d in (0, 3)
    ] + [{"region": REGION, "customer_id": "NEVER-SEEN", "date": day.isoformat()}]
    assert ours.recommend(requests) == theirs.recommend(requests)


def test_data_that_cannot_train_fails_the_step_with_the_jobs_own_message(case):
    scratch = case["root"] / "scratch-bad"
    result = train_model(
        case,
        SubprocessModelTraining(scratch_dir=str(scratch)),
        {"force_candidate": "atlantis"},
        raise_on_error=False,
    )
    assert not result.success
    message = step_failure(result).user_failure_data.description
    # the job's ValueError, reported through Pipes, named with its region; no model was written
    assert message.startswith(f"{REGION}: cannot force 'atlantis' for the top list"), message
    assert not list(scratch.iterdir())


def test_a_job_that_crashes_fails_the_step_and_keeps_its_folder_to_rerun(case, tmp_path):
    # An interpreter without the project: the job cannot even import (a broken training environment).
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 'training environment broken' >&2\nexit 3\n")
    python.chmod(0o755)
    scratch = case["root"] / "scratch-crash"
    result = train_model(
        case,
        SubprocessModelTraining(scratch_dir=str(scratch), python=str(python)),
        raise_on_error=False,
    )
    assert not result.success
    assert "External execution process failed with code 3" in step_failure(result).error.to_string()
    kept = list(scratch.iterdir())
    assert len(kept) == 1 and (kept[0] / "inputs" / "request.json").exists()


def test_the_job_runs_by_hand_without_dagster_and_imports_no_dagster(case, tmp_path):
    wh = DuckDBWarehouse(database=case["db"])
    params = TrainParams(max_iter=40, n_boot=200)
    segmenter = case["inprocess"].output_for_node("customer_segments", "segment_model")
    inputs = write_inputs(
        tmp_path / "in",
        TrainingRequest(D.load_frames(wh.query, REGION, params.lookback_days), params, segmenter),
    )
    probe = (
        "import runpy, sys; sys.argv = ['job', '--inputs', sys.argv[1], '--outputs', sys.argv[2]];\n"
        "try:\n    runpy.run_module('globolatte_dagster.training.job', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "loaded = sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.'))\n"
        "print('DAGSTER_MODULES', loaded)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(inputs), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DAGSTER_MODULES []" in proc.stdout
    result = read_outputs(tmp_path / "out")
    theirs = case["inprocess"].output_for_node("ml__preference_model")
    assert (result.model.champion, result.model.discover_champion) == (
        theirs.champion,
        theirs.discover_champion,
    )
    assert {"tournament", "per_day"} <= set(result.tables)

    # A folder that is not a training folder is refused with its reason, nothing written.
    bad = subprocess.run(
        [sys.executable, "-m", "globolatte_dagster.training.job", "--inputs", str(tmp_path / "none"),
         "--outputs", str(tmp_path / "out2")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert bad.returncode != 0 and "no request.json" in bad.stderr
    assert not (tmp_path / "out2").exists()


def test_globolatte_training_picks_where_the_model_trains(monkeypatch, tmp_path):
    monkeypatch.setenv("GLOBOLATTE_HOME", str(tmp_path))
    monkeypatch.delenv("GLOBOLATTE_TRAINING", raising=False)
    assert settings.training("local") == "subprocess" and settings.training("azure") == "azureml"
    training = environment_definitions("local").resources["training"]
    assert isinstance(training, SubprocessModelTraining)
    assert Path(training.scratch_dir) == tmp_path / "training"
    monkeypatch.setenv("GLOBOLATTE_TRAINING", "inprocess")
    assert isinstance(environment_definitions("local").resources["training"], InProcessModelTraining)
    # in azure: an Azure ML command job on the cluster the settings name, the workspace's identity as EnvVars
    monkeypatch.delenv("GLOBOLATTE_TRAINING")
    monkeypatch.setenv("AZUREML_TRAINING_COMPUTE", "cpu-cluster-large")
    azure = environment_definitions("azure").resources["training"]
    assert isinstance(azure, AzureMLModelTraining)
    assert (azure.compute, azure.datastore) == ("cpu-cluster-large", "globolatte_training")
    assert azure.identity_client_id == dg.EnvVar("AZUREML_TRAINING_IDENTITY_CLIENT_ID")
    monkeypatch.setenv("GLOBOLATTE_TRAINING", "subprocess")  # or train in the run pod
    assert isinstance(environment_definitions("azure").resources["training"], SubprocessModelTraining)
    monkeypatch.setenv("GLOBOLATTE_TRAINING", "kubernetes")
    with pytest.raises(ValueError, match="GLOBOLATTE_TRAINING must be one of inprocess, subprocess, azureml"):
        environment_definitions("local")
