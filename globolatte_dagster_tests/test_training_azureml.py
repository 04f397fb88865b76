"""Training on Azure ML: the command job, its environment and the compute as SDK entities; the asset
through `PipesAzureMLClient` against the recorded `MLClient`, whose emulated compute runs the job's own
command (code snapshot, datastore mounts and Pipes over Azurite blobs) on this machine.

Nothing here reaches Azure: what is asserted is what the code asks of azure-ai-ml and what comes back
through Pipes when the job succeeds, fails in Azure ML, reports bad data, or is cancelled with the run.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import uuid
from datetime import timedelta
from pathlib import Path

import hcl2
import pytest
import yaml
from azure.ai.ml import load_job
from azure.ai.ml.entities import AzureBlobDatastore, ManagedIdentityConfiguration
from dagster._core.errors import DagsterExecutionInterruptedError

from globolatte_dagster.resources import endpoint as E
from globolatte_dagster.resources import training_azureml as T
from globolatte_dagster.resources.training_azureml import AzureMLModelTraining
from globolatte_dagster_tests.recorded_mlclient import LocalJobRunner, RecordedMLClient
from globolatte_dagster_tests.training_fixtures import (
    REGION,
    RUN_SPECIFIC,
    build_case,
    model_and_page,
    step_failure,
    train_model,
)

pytestmark = pytest.mark.azure

ROOT = Path(__file__).resolve().parents[1]
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
IDENTITY_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-globolatte-prod/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/id-globolatte-prod-training"
)


def _pip(conda: dict) -> list[str]:
    return next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))


def _name(requirement: str) -> str:
    return requirement.split("=")[0].split(">")[0].split("<")[0]


# ------------------------------------------------------------------------------------------- entities
def test_the_command_job_is_built_field_by_field(tmp_path):
    job = T.training_command(
        job_name="globolatte-mexico-abcd1234-000001",
        region="mexico",
        code=tmp_path,
        datastore="globolatte_training",
        prefix="runs/globolatte-mexico-abcd1234-000001",
        compute="cpu-cluster",
        identity_client_id=CLIENT_ID,
        pipes_blob_url="https://stglobolatteml.blob.core.windows.net",
        tags={"dagster_run_id": "abcd1234"},
    )
    assert job.command == (
        "python -m globolatte_dagster.training.job --inputs ${{inputs.training_data}} "
        "--outputs ${{outputs.result}} --pipes-blob-url https://stglobolatteml.blob.core.windows.net"
    )
    data, result = job.inputs["training_data"], job.outputs["result"]
    base = "azureml://datastores/globolatte_training/paths/runs/globolatte-mexico-abcd1234-000001"
    assert (data.type, data.mode, data.path) == ("uri_folder", "ro_mount", f"{base}/inputs/")
    assert (result.type, result.mode, result.path) == ("uri_folder", "rw_mount", f"{base}/outputs/")
    assert (job.name, job.compute, job.experiment_name) == (
        "globolatte-mexico-abcd1234-000001",
        "cpu-cluster",
        "globolatte-training",
    )
    assert job.tags == {"project": "globolatte", "region": "mexico", "dagster_run_id": "abcd1234"}
    assert isinstance(job.identity, ManagedIdentityConfiguration) and job.identity.client_id == CLIENT_ID
    assert job.environment_variables == {"AZURE_CLIENT_ID": CLIENT_ID}  # no secret travels with the job
    assert job.resources.instance_count == 1 and job.limits.timeout == 6 * 3600
    assert Path(job.code) == tmp_path


def test_the_environment_pins_the_serving_libraries_and_adds_only_what_the_job_needs():
    env = T.training_environment()
    assert env.image == T.TRAINING_IMAGE and not env.image.endswith(":latest")
    assert env.conda_file == T.training_conda()
    serving, training = E.SERVING_CONDA, env.conda_file
    # the same Python and the same libraries, at the same versions, as the serving environment
    assert [d for d in training["dependencies"] if isinstance(d, str)] == [
        d for d in serving["dependencies"] if isinstance(d, str)
    ]
    assert _pip(training) == [p for p in _pip(serving) if _name(p) != "azureml-inference-server-http"] + list(
        T.JOB_LIBRARIES
    )
    names = {_name(p) for p in _pip(training)}
    assert "dagster" not in names and "azureml-inference-server-http" not in names
    # the job's own libraries are exactly the orchestrator's: the Pipes protocol must match
    for requirement in T.JOB_LIBRARIES:
        name, version = requirement.split("==")
        assert importlib.metadata.version(name) == version, name
    assert importlib.metadata.version("dagster-pipes") == importlib.metadata.version("dagster")


def test_the_code_snapshot_holds_what_the_job_imports_and_no_dagster_code(tmp_path):
    code = T.stage_code(tmp_path / "code") / "globolatte_dagster"
    assert (code / "__init__.py").exists() and (code / "training" / "job.py").exists()
    assert (code / "lib" / "recommend" / "tournament.py").exists()
    assert not (code / "defs").exists() and not (code / "resources").exists()
    assert not list(code.rglob("__pycache__"))


def _training_checks():
    spec = importlib.util.spec_from_file_location(
        "globolatte_training_checks_t", ROOT / "deploy" / "tools" / "training_checks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_compute_cluster_entity_is_what_terraform_declares():
    tc = _training_checks()
    resources = tc._resources(ROOT / "deploy")
    with (ROOT / "deploy" / "terraform" / "azure" / "variables.tf").open() as f:
        defaults = {
            tc.unquote(name): tc.unquote(body).get("default")
            for block in hcl2.load(f)["variable"]
            for name, body in block.items()
        }
    (tf,) = tc._of_type(resources, "azurerm_machine_learning_compute_cluster").values()
    scale = tf["scale_settings"][0]
    built = T.training_compute(
        T.DEFAULT_COMPUTE, defaults["ml_cluster_vm_size"], defaults["ml_cluster_max_nodes"], IDENTITY_ID
    )
    assert tf["name"] == built.name == "cpu-cluster"
    assert tf["vm_size"] == "${var.ml_cluster_vm_size}" and built.size == defaults["ml_cluster_vm_size"]
    assert scale["min_node_count"] == built.min_instances == 0
    assert scale["max_node_count"] == "${var.ml_cluster_max_nodes}"
    assert built.max_instances == defaults["ml_cluster_max_nodes"]
    assert scale["scale_down_nodes_after_idle_duration"] == "PT15M"
    assert built.idle_time_before_scale_down == 15 * 60
    assert tf["node_public_ip_enabled"] is False and built.enable_node_public_ip is False
    assert tf["vm_priority"] == built.tier == "Dedicated"
    identity = tf["identity"][0]
    assert identity["type"] == built.identity.type == "UserAssigned"
    assert identity["identity_ids"] == ["${azurerm_user_assigned_identity.training.id}"]
    assert built.identity.user_assigned_identities[0].resource_id == IDENTITY_ID
    (store,) = tc._of_type(resources, "azurerm_machine_learning_datastore_blobstorage").values()
    assert store["name"] == T.DEFAULT_DATASTORE  # the datastore the jobs mount


def test_the_job_yaml_loads_with_the_sdk_and_matches_what_the_asset_submits(tmp_path):
    spec = load_job(ROOT / "deploy" / "azureml" / "training-job.yml")
    built = T.training_command(
        job_name="x",
        region=REGION,
        code=tmp_path,
        datastore=T.DEFAULT_DATASTORE,
        prefix="runs/example",
        compute=T.DEFAULT_COMPUTE,
        identity_client_id=CLIENT_ID,
        pipes_blob_url="https://example",
    )
    assert built.command.startswith(spec.command + " --pipes-blob-url ")
    for name in ("training_data",):
        assert (spec.inputs[name].type, spec.inputs[name].mode, spec.inputs[name].path) == (
            built.inputs[name].type,
            built.inputs[name].mode,
            built.inputs[name].path,
        )
    assert (spec.outputs["result"].type, spec.outputs["result"].mode, spec.outputs["result"].path) == (
        built.outputs["result"].type,
        built.outputs["result"].mode,
        built.outputs["result"].path,
    )
    assert spec.compute == built.compute and spec.experiment_name == built.experiment_name
    assert spec.environment.image == built.environment.image
    assert spec.environment.conda_file == built.environment.conda_file == T.training_conda()
    assert (
        yaml.safe_load((ROOT / "deploy" / "azureml" / "training-conda.yml").read_text()) == T.training_conda()
    )
    assert spec.identity.type == built.identity.type == "managed_identity"
    assert spec.limits.timeout == built.limits.timeout
    code = (ROOT / "deploy" / "azureml" / spec.code).resolve()
    assert (code / "globolatte_dagster" / "training" / "job.py").exists()


# ---------------------------------------------------------------------- the asset, through the double
@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict:
    return build_case(tmp_path_factory.mktemp("training-azureml"))


@pytest.fixture
def workspace(tmp_path, azurite, monkeypatch):
    """A recorded workspace whose training datastore is an Azurite container and whose compute is local."""
    from azure.storage.blob import BlobServiceClient

    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = f"training-{uuid.uuid4().hex[:12]}"
    blobs.create_container(container)
    client = RecordedMLClient(tmp_path / "workspace")
    client.datastores.store[T.DEFAULT_DATASTORE] = AzureBlobDatastore(
        name=T.DEFAULT_DATASTORE, account_name="stglobolatteml", container_name=container
    )
    # The emulated compute reaches the datastore as the cluster's identity would: here, Azurite's key.
    client.job_runner = LocalJobRunner(blobs, {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string})
    monkeypatch.setattr(AzureMLModelTraining, "ml_client", lambda self: client)
    try:
        yield client, blobs.get_container_client(container)
    finally:
        blobs.delete_container(container)
        blobs.close()


def azureml(tmp_path: Path, azurite) -> AzureMLModelTraining:
    return AzureMLModelTraining(
        subscription_id="00000000-0000-0000-0000-000000000000",
        resource_group="rg-globolatte-test",
        workspace_name="mlw-globolatte-test",
        identity_client_id=CLIENT_ID,
        poll_interval_s=0.05,
        message_interval_s=0.1,
        scratch_dir=str(tmp_path / "scratch"),
        storage_connection_string=azurite.connection_string,
    )


def _job_name(client: RecordedMLClient) -> str:
    (name,) = client.jobs.submitted
    return name


def test_the_asset_trains_on_azure_ml_and_gets_the_in_process_model(case, workspace, azurite, tmp_path):
    client, container = workspace
    result = train_model(case, azureml(tmp_path, azurite))
    assert result.success, client.job_runner.last and client.job_runner.last.stderr[-3000:]
    name = _job_name(client)
    ops = [c[0] for c in client.calls]
    assert ops[:2] == ["datastores.get", "jobs.create_or_update"]
    assert set(ops[2:]) == {"jobs.get"} and client.jobs.store[name].status == "Completed"

    # What was submitted: the cluster, its identity, the mounts of this job's folder, Pipes' variables.
    submitted = client.jobs.submitted[name]
    assert submitted.compute == "cpu-cluster" and submitted.identity.client_id == CLIENT_ID
    assert submitted.inputs["training_data"].path.endswith(f"/paths/runs/{name}/inputs/")
    assert {"DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES", "AZURE_CLIENT_ID"} <= set(
        submitted.environment_variables
    )
    assert "--pipes-blob-url https://stglobolatteml.blob.core.windows.net" in submitted.command
    snapshot = client.root / "jobs" / name / "code" / "globolatte_dagster"
    assert (snapshot / "training" / "job.py").exists() and not (snapshot / "defs").exists()
    blobs = sorted(b.name for b in container.list_blobs())
    assert f"runs/{name}/inputs/request.json" in blobs and f"runs/{name}/outputs/model.joblib" in blobs
    assert all(b.startswith("runs/") or "/" in b for b in blobs)  # Pipes messages under random prefixes

    # The asset page: where it ran, the job's own report through Pipes, the same tournament.
    ours, page = model_and_page(result)
    theirs, their_page = model_and_page(case["inprocess"])
    assert (page["training"], page["azureml_job"], page["compute"]) == ("azureml", name, "cpu-cluster")
    assert (
        page["artefact"] == f"azureml://datastores/globolatte_training/paths/runs/{name}/outputs/model.joblib"
    )
    assert page["training_process_s"]["train"] > 0
    same = {k: v for k, v in page.items() if k not in RUN_SPECIFIC}
    assert same == {k: v for k, v in their_page.items() if k in same}
    day = ours.as_of + timedelta(days=1)
    requests = [{"region": REGION, "customer_id": str(c), "date": day.isoformat()} for c in ours.customers]
    assert ours.recommend(requests) == theirs.recommend(requests)


def test_a_job_that_fails_in_azure_ml_fails_the_step_with_its_message(case, workspace, azurite, tmp_path):
    client, _ = workspace
    broken = tmp_path / "python"  # an environment built without dagster-pipes
    broken.write_text(
        "#!/bin/sh\necho 'Traceback (most recent call last):' >&2\n"
        "echo \"ModuleNotFoundError: No module named 'dagster_pipes'\" >&2\nexit 1\n"
    )
    broken.chmod(0o755)
    client.job_runner.python = str(broken)
    result = train_model(case, azureml(tmp_path, azurite), raise_on_error=False)
    assert not result.success
    name = _job_name(client)
    error = step_failure(result).error.to_string()
    assert f"Azure ML job {name} Failed: Execution failed. User process" in error, error
    assert "No module named 'dagster_pipes'" in error
    assert ("jobs.stream", name) in client.calls and client.jobs.store[name].status == "Failed"


def test_data_that_cannot_train_fails_the_step_with_the_message_the_job_reported(
    case, workspace, azurite, tmp_path
):
    client, container = workspace
    result = train_model(
        case, azureml(tmp_path, azurite), {"force_candidate": "atlantis"}, raise_on_error=False
    )
    assert not result.success
    message = step_failure(result).user_failure_data.description
    assert message.startswith(f"{REGION}: cannot force 'atlantis' for the top list"), message
    name = _job_name(client)
    assert client.jobs.store[name].status == "Completed"  # the job did its job: it reported the reason
    assert not [b for b in container.list_blobs(name_starts_with=f"runs/{name}/outputs/")]


def test_a_cancelled_run_cancels_the_azure_ml_job(case, workspace, azurite, tmp_path):
    client, _ = workspace
    client.fail["jobs.get"] = DagsterExecutionInterruptedError()  # the run is terminated while polling
    result = train_model(case, azureml(tmp_path, azurite), raise_on_error=False)
    assert not result.success
    name = _job_name(client)
    assert ("jobs.begin_cancel", name) in client.calls
    assert client.jobs.store[name].status == "Canceled"
    assert not result.asset_materializations_for_node("ml__preference_model")
