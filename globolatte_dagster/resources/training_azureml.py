"""Training on Azure ML: the tournament as a command job on the workspace's cluster, through Dagster Pipes.

`AzureMLModelTraining.train` (GLOBOLATTE_TRAINING=azureml, the default in `azure`):

1. writes the asset's training folder (`training/folder.py`) and uploads it to the training datastore's
   container under `runs/<job name>/inputs/`, one folder per job;
2. submits `training_command(...)`: `python -m globolatte_dagster.training.job` on the compute cluster
   (AZUREML_TRAINING_COMPUTE), with that path as a read-only mounted `uri_folder` input and
   `runs/<job name>/outputs/` as its read-write mounted output, the cluster's user-assigned managed
   identity (AZUREML_TRAINING_IDENTITY_CLIENT_ID) for data access, and `training_environment()`: the
   serving pins (`endpoint.SERVING_CONDA`, from deploy/constraints.txt) plus the job's own libraries;
3. talks Pipes through blobs of the same container (`PipesAzureBlobStorageContextInjector` and
   `...MessageReader`): the job's log lines, its materialisation metadata and its error reach the step;
4. polls with `PipesAzureMLClient`: a job that fails in Azure ML fails the step with the job's own error
   message; a Dagster run cancelled while the job runs cancels the job (and the step stops);
5. downloads `runs/<job name>/outputs/` and returns the same `TrainingResult` as the other paths; the model
   then goes through `ml/registered_model` (the gate, the lineage) as every other model does.

Why a datastore path and not Snowflake from the job: the job trains on exactly the rows the asset read
(the frames are what `data.load_frames` returned), kept per job for replay and audit; the compute needs no
Snowflake user, key or network route (Snowflake takes no Azure managed identity without an External
OAuth integration), and the same folder format runs the subprocess path locally.
Why the outputs folder and not the registry from the job: registration belongs to `ml/registered_model`,
behind the champion/challenger gate with Dagster's lineage (run id, partitions); a job that registered
models would bypass both, and its identity would need write access to the workspace.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.errors import DagsterExecutionInterruptedError, DagsterPipesExecutionError
from dagster_azure.pipes import (
    PipesAzureBlobStorageContextInjector,
    PipesAzureBlobStorageMessageReader,
    PipesAzureMLClient,
)
from pydantic import PrivateAttr

from globolatte_dagster.resources.azureml_client import workspace_ml_client
from globolatte_dagster.resources.model_training import JOB_MODULE, ModelTraining, TrainingRun, reported_run
from globolatte_dagster.training.folder import TrainingRequest, read_outputs, write_inputs

DEFAULT_COMPUTE = "cpu-cluster"
DEFAULT_DATASTORE = "globolatte_training"
EXPERIMENT = "globolatte-training"
INPUT_NAME, OUTPUT_NAME = "training_data", "result"
# Azure ML's CPU training base image (Ubuntu 22.04, OpenMPI), pinned by date tag like the serving image:
# `latest` would change under a retrain. The conda environment on top holds the pinned Python libraries.
TRAINING_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20250601.v1"
# What the job needs beyond the serving libraries: the Pipes side (the same release as the Dagster that
# submits the job, so the protocol matches) and the Blob client it reports through. A test keeps these
# equal to the orchestrator's installed versions.
JOB_LIBRARIES: tuple[str, ...] = (
    "dagster-pipes==1.13.27",
    "azure-storage-blob==12.31.1",
    "azure-identity==1.27.0",
)
SERVING_ONLY = ("azureml-inference-server-http",)
PACKAGE_DIR = Path(__file__).resolve().parents[1]
CODE_PARTS = ("__init__.py", "lib", "training")  # what the job imports: no Dagster code is uploaded


# ------------------------------------------------------------------------------------------ entities
def training_conda(serving: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job's conda spec: the serving spec's Python and pins (minus the inference server) + JOB_LIBRARIES."""
    if serving is None:
        from globolatte_dagster.resources.endpoint import SERVING_CONDA as serving
    deps = serving["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    kept = [p for p in pip if re.split(r"[=<>!~ ]", p, maxsplit=1)[0] not in SERVING_ONLY]
    return {
        "name": "globolatte-training",
        "channels": list(serving["channels"]),
        "dependencies": [*[d for d in deps if not isinstance(d, dict)], {"pip": [*kept, *JOB_LIBRARIES]}],
    }


def training_environment() -> Any:
    from azure.ai.ml.entities import Environment

    return Environment(
        name="globolatte-training",
        description="GloboLatte tournament training: the serving pins plus dagster-pipes (no Dagster)",
        image=TRAINING_IMAGE,
        conda_file=training_conda(),
    )


def datastore_uri(datastore: str, path: str) -> str:
    return f"azureml://datastores/{datastore}/paths/{path.strip('/')}/"


def training_command(
    *,
    job_name: str,
    region: str,
    code: str | Path,
    datastore: str,
    prefix: str,
    compute: str,
    identity_client_id: str,
    pipes_blob_url: str,
    tags: dict[str, str] | None = None,
    timeout_s: int = 6 * 3600,
) -> Any:
    """The command job of one region's training (what `PipesAzureMLClient` submits)."""
    from azure.ai.ml import Input, Output, command
    from azure.ai.ml.constants import AssetTypes, InputOutputModes
    from azure.ai.ml.entities import ManagedIdentityConfiguration

    return command(
        name=job_name,
        display_name=f"globolatte training {region}",
        description="The recommender tournament of one region (ml/preference_model through Dagster Pipes)",
        experiment_name=EXPERIMENT,
        tags={"project": "globolatte", "region": region, **(tags or {})},
        code=str(code),
        command=(
            f"python -m {JOB_MODULE} --inputs ${{{{inputs.{INPUT_NAME}}}}} "
            f"--outputs ${{{{outputs.{OUTPUT_NAME}}}}} --pipes-blob-url {pipes_blob_url}"
        ),
        inputs={
            INPUT_NAME: Input(
                type=AssetTypes.URI_FOLDER,
                path=datastore_uri(datastore, f"{prefix}/inputs"),
                mode=InputOutputModes.RO_MOUNT,
            )
        },
        outputs={
            OUTPUT_NAME: Output(
                type=AssetTypes.URI_FOLDER,
                path=datastore_uri(datastore, f"{prefix}/outputs"),
                mode=InputOutputModes.RW_MOUNT,
            )
        },
        environment=training_environment(),
        # DefaultAzureCredential in the job picks the cluster's user-assigned identity by this client id.
        environment_variables={"AZURE_CLIENT_ID": identity_client_id},
        compute=compute,
        identity=ManagedIdentityConfiguration(client_id=identity_client_id),
        instance_count=1,
        timeout=timeout_s,
    )


def training_compute(name: str, size: str, max_instances: int, identity_resource_id: str) -> Any:
    """The compute cluster as an SDK entity: what deploy/terraform/azure/ml.tf declares (a test compares)."""
    from azure.ai.ml.constants import ManagedServiceIdentityType
    from azure.ai.ml.entities import AmlCompute, IdentityConfiguration, ManagedIdentityConfiguration

    return AmlCompute(
        name=name,
        size=size,
        min_instances=0,  # scales to zero between trainings
        max_instances=max_instances,
        idle_time_before_scale_down=900,
        enable_node_public_ip=False,  # nodes only in the workspace's managed network
        tier="Dedicated",
        identity=IdentityConfiguration(
            type=ManagedServiceIdentityType.USER_ASSIGNED,
            user_assigned_identities=[ManagedIdentityConfiguration(resource_id=identity_resource_id)],
        ),
        tags={"project": "globolatte"},
    )


def stage_code(dest: Path) -> Path:
    """A code folder holding only what the job imports (`globolatte_dagster/{__init__.py,lib,training}`)."""
    package = dest / "globolatte_dagster"
    package.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in CODE_PARTS:
        source = PACKAGE_DIR / part
        if source.is_dir():
            shutil.copytree(source, package / part, ignore=ignore)
        else:
            shutil.copy2(source, package / part)
    return dest


# ---------------------------------------------------------------------------------------------- Pipes
def job_error(ml_client: Any, job_name: str) -> str:
    """The error Azure ML recorded for a failed job (`jobs.stream` raises it as a JobException)."""
    from azure.ai.ml.exceptions import JobException

    try:
        ml_client.jobs.stream(job_name)
    except JobException as exc:
        text = str(getattr(exc, "message", exc))
        found = re.search(r"\{.*\}", text, re.DOTALL)
        try:
            error = json.loads(found.group(0)) if found else {}
        except ValueError:
            error = {}
        detail = error.get("error", error) if isinstance(error, dict) else {}
        return str(detail.get("message") or text.strip())
    except Exception as exc:  # the message is a courtesy: never hide the failure behind it
        return f"(its error could not be read: {type(exc).__name__}: {exc})"
    return "(no error recorded)"


class PipesAzureMLJobClient(PipesAzureMLClient):
    """`PipesAzureMLClient` that fails with the job's own error and stops the step after a cancellation.

    The stock client raises "Error running Azure ML job: Failed" without the reason, and after
    forwarding a cancellation it returns as if the job had finished.
    """

    def _poll_til_success(self, context: Any, job_name: str) -> None:
        try:
            super()._poll_til_success(context, job_name)
        except DagsterPipesExecutionError as exc:
            status = self.client.jobs.get(job_name).status
            reason = job_error(self.client, job_name) if status == "Failed" else "canceled in Azure ML"
            raise DagsterPipesExecutionError(f"Azure ML job {job_name} {status}: {reason}") from exc

    def _poll_til_terminating(self, job_name: str) -> None:
        super()._poll_til_terminating(job_name)
        raise DagsterExecutionInterruptedError(f"Azure ML job {job_name} canceled with the Dagster run")


# ------------------------------------------------------------------------------------------- resource
def _upload(container: Any, folder: Path, prefix: str) -> int:
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with path.open("rb") as data:
            container.upload_blob(f"{prefix}/{path.relative_to(folder).as_posix()}", data, overwrite=True)
        count += 1
    return count


def _download(container: Any, prefix: str, folder: Path) -> int:
    count = 0
    for blob in container.list_blobs(name_starts_with=f"{prefix}/"):
        target = folder / blob.name[len(prefix) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(container.download_blob(blob.name).readall())
        count += 1
    return count


class AzureMLModelTraining(ModelTraining):
    """The tournament as an Azure ML command job (see the module docstring)."""

    subscription_id: str
    resource_group: str
    workspace_name: str
    identity_client_id: str
    compute: str = DEFAULT_COMPUTE
    datastore: str = DEFAULT_DATASTORE
    poll_interval_s: float = 15.0
    message_interval_s: float = 10.0
    timeout_s: int = 6 * 3600
    scratch_dir: str = tempfile.gettempdir()
    # Azurite only (the tests): a connection string. Otherwise DefaultAzureCredential (workload identity).
    storage_connection_string: str | None = None

    _ml: Any = PrivateAttr(default=None)
    _ml_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def ml_client(self) -> Any:
        """A new `MLClient` for the workspace; `client()` builds one per resource instance and keeps it."""
        return workspace_ml_client(self.subscription_id, self.resource_group, self.workspace_name)

    def client(self) -> Any:
        with self._ml_lock:
            if self._ml is None:
                self._ml = self.ml_client()
            return self._ml

    def blob_service(self, account_url: str) -> Any:
        from azure.storage.blob import BlobServiceClient

        if self.storage_connection_string:
            return BlobServiceClient.from_connection_string(self.storage_connection_string)
        from azure.identity import DefaultAzureCredential

        return BlobServiceClient(account_url, credential=DefaultAzureCredential())

    def train(self, context: dg.AssetExecutionContext, request: TrainingRequest) -> TrainingRun:
        ml = self.client()
        store = ml.datastores.get(self.datastore)
        account_url = f"{store.protocol}://{store.account_name}.blob.{store.endpoint}"
        blobs = self.blob_service(account_url)
        container = blobs.get_container_client(store.container_name)
        run_id = context.run.run_id
        job_name = f"globolatte-{request.region}-{run_id[:8]}-{uuid.uuid4().hex[:6]}"
        prefix = f"runs/{job_name}"
        Path(self.scratch_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.scratch_dir, prefix="azureml-training-") as tmp:
            work = Path(tmp)
            files = _upload(container, write_inputs(work / "inputs", request), f"{prefix}/inputs")
            context.log.info(f"uploaded {files} input files to {datastore_uri(self.datastore, prefix)}")
            job = training_command(
                job_name=job_name,
                region=request.region,
                code=stage_code(work / "code"),
                datastore=self.datastore,
                prefix=prefix,
                compute=self.compute,
                identity_client_id=self.identity_client_id,
                pipes_blob_url=account_url,
                tags={"dagster_run_id": run_id},
                timeout_s=self.timeout_s,
            )
            pipes = PipesAzureMLJobClient(
                client=ml,
                context_injector=PipesAzureBlobStorageContextInjector(
                    container=store.container_name, client=blobs
                ),
                message_reader=PipesAzureBlobStorageMessageReader(
                    container=store.container_name, client=blobs, interval=self.message_interval_s
                ),
                poll_interval_seconds=self.poll_interval_s,
            )
            invocation = pipes.run(context=context, command=job)
            metadata = reported_run(invocation)  # raises ValueError on the job's data error
            metadata.pop("AzureML Job Name", None)  # the client's own key; `azureml_job` below
            _download(container, f"{prefix}/outputs", work / "outputs")
            result = read_outputs(work / "outputs")
        return TrainingRun(
            result,
            {
                "training": "azureml",
                **metadata,
                "azureml_job": job_name,
                "artefact": datastore_uri(self.datastore, f"{prefix}/outputs") + "model.joblib",
                "compute": self.compute,
            },
        )


def azureml_training() -> AzureMLModelTraining:
    """`training` for GLOBOLATTE_TRAINING=azureml: the workspace and the cluster named by the settings."""
    from globolatte_dagster import settings

    compute, datastore = settings.azureml_training_target()
    return AzureMLModelTraining(
        subscription_id=dg.EnvVar("AZURE_SUBSCRIPTION_ID"),
        resource_group=dg.EnvVar("AZURE_RESOURCE_GROUP"),
        workspace_name=dg.EnvVar("AZUREML_WORKSPACE_NAME"),
        identity_client_id=dg.EnvVar("AZUREML_TRAINING_IDENTITY_CLIENT_ID"),
        compute=compute or DEFAULT_COMPUTE,
        datastore=datastore or DEFAULT_DATASTORE,
        scratch_dir=str(settings.home() / "scratch"),
    )
