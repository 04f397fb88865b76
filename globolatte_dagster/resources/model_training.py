"""Where the tournament trains: `ModelTraining`, in the run's process, in a subprocess, or on Azure ML.

`GLOBOLATTE_TRAINING` picks the implementation in `resources/__init__.py` (default `subprocess` locally,
`azureml` in `azure`). Every implementation takes the same `TrainingRequest` (the warehouse rows the asset
read, the segmenter, the parameters) and gives back the same `TrainingResult`, so `ml/preference_model`
shows the same metadata whichever ran; what differs is where `training.folder.train` runs:

- `InProcessModelTraining`: in the run's process (for debugging, and B6's baseline);
- `SubprocessModelTraining`: `python -m globolatte_dagster.training.job` through `dg.PipesSubprocessClient`,
  over a training folder under `scratch_dir` (removed after a success, kept after a failure);
- `AzureMLModelTraining` (`resources/training_azureml.py`): the same entry point as an Azure ML command
  job through `PipesAzureMLClient`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from globolatte_dagster.lib.model_store import ARTEFACT
from globolatte_dagster.lib.recommend.tournament import TrainingResult
from globolatte_dagster.training.folder import TrainingRequest, read_outputs, train, write_inputs
from globolatte_dagster.training.job import ERROR_KEY

JOB_MODULE = "globolatte_dagster.training.job"


@dataclass
class TrainingRun:
    """A finished training: the result, and what the path adds to the asset page (where it ran, ...)."""

    result: TrainingResult
    metadata: dict[str, Any] = field(default_factory=dict)


class ModelTraining(dg.ConfigurableResource):
    """Abstract: run one region's tournament somewhere and return its result."""

    def train(self, context: dg.AssetExecutionContext, request: TrainingRequest) -> TrainingRun:
        """Train `request`; raise ValueError (with the reason) when the data cannot train a model."""
        raise NotImplementedError


class InProcessModelTraining(ModelTraining):
    """`tournament.train_region` in the run's own process."""

    def train(self, context: dg.AssetExecutionContext, request: TrainingRequest) -> TrainingRun:
        return TrainingRun(train(request, log=context.log.info), {"training": "inprocess"})


def reported_run(invocation: Any) -> dict[str, Any]:
    """The metadata a Pipes invocation of `training.job` reported with its model.

    A job that reported an error (data that cannot train a model) raises ValueError with its message;
    one that reported nothing fails the step.
    """
    for message in invocation.get_custom_messages():
        if isinstance(message, dict) and ERROR_KEY in message:
            raise ValueError(str(message[ERROR_KEY]))
    reported = [r for r in invocation.get_results(implicit_materializations=False) if r.metadata]
    if not reported:
        raise dg.Failure(description="the training job finished without reporting a model")
    return dict(reported[-1].metadata)


class SubprocessModelTraining(ModelTraining):
    """`python -m globolatte_dagster.training.job` in a subprocess of the run, through Dagster Pipes."""

    scratch_dir: str = ""  # where training folders are written (default: the system's temporary folder)
    python: str = ""  # interpreter of the subprocess (default: the run's own)

    def train(self, context: dg.AssetExecutionContext, request: TrainingRequest) -> TrainingRun:
        root = Path(self.scratch_dir) if self.scratch_dir else None
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"train-{request.region}-", dir=root))
        inputs, outputs = work / "inputs", work / "outputs"
        command = [self.python or sys.executable, "-m", JOB_MODULE]
        command += ["--inputs", str(inputs), "--outputs", str(outputs)]
        try:
            write_inputs(inputs, request)
            invocation = dg.PipesSubprocessClient().run(context=context, command=command)
            metadata = reported_run(invocation)
            # the artefact path the job reported (its folder holds the tables and result.json too)
            artefact = Path(str(getattr(metadata.pop("artefact", None), "value", outputs / ARTEFACT)))
            run = TrainingRun(read_outputs(artefact.parent), metadata)
        except ValueError:
            shutil.rmtree(work, ignore_errors=True)  # the data's fault: nothing to debug here
            raise
        except BaseException:
            context.log.error(f"training failed; its folder is kept for debugging: {work}")
            context.log.error(f"to rerun it by hand: {' '.join(command)}")
            raise
        shutil.rmtree(work, ignore_errors=True)  # the model goes on through the asset's IO manager
        run.metadata = {"training": "subprocess", **run.metadata}
        return run


def training_resource(choice: str) -> ModelTraining:
    """The `training` resource for a GLOBOLATTE_TRAINING value (`settings.training()`)."""
    from globolatte_dagster import settings

    if choice == "inprocess":
        return InProcessModelTraining()
    if choice == "subprocess":
        return SubprocessModelTraining(scratch_dir=str(settings.home() / "training"))
    if choice == "azureml":
        from globolatte_dagster.resources.training_azureml import azureml_training

        return azureml_training()
    raise ValueError(
        f"GLOBOLATTE_TRAINING must be one of {', '.join(settings.TRAINING_PATHS)}, not '{choice}'"
    )
