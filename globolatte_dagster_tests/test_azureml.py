"""The Azure ML registry and endpoint: the SDK's real entities, a recorded MLClient at the operations boundary.

Nothing here talks to a live workspace. What is asserted is what the code asks of azure-ai-ml: the exact
sequence of operations (happy path and every rollback), and the entities it builds.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from azure.ai.ml import load_online_deployment, load_online_endpoint
from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, Model
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobServiceClient

from globolatte_dagster.defs.ml.registered_model import registered_model
from globolatte_dagster.defs.serving.assets import scoring_endpoint
from globolatte_dagster.lib.contract import REGION_KEYS
from globolatte_dagster.lib.model_store import ALIASES
from globolatte_dagster.resources import endpoint as E
from globolatte_dagster.resources.alias_lock import BlobLeaseLock
from globolatte_dagster.resources.azure import azure_registry_resources
from globolatte_dagster.resources.model_registry import AzureMLModelRegistry, AzureMLRegistryOps
from globolatte_dagster.resources.warehouse import DuckDBWarehouse
from globolatte_dagster_tests.recorded_mlclient import RecordedMLClient
from globolatte_dagster_tests.serving_fixtures import trained_models

pytestmark = pytest.mark.azure

ROOT = Path(__file__).resolve().parents[1]
NAME = "globolatte-scoring"


@pytest.fixture(scope="module")
def case():
    return trained_models()


@pytest.fixture
def client(tmp_path: Path) -> RecordedMLClient:
    return RecordedMLClient(tmp_path / "workspace")


def champions(client: RecordedMLClient, case, tmp_path: Path, scratch: str = "scratch"):
    """Register every region's model and make it champion; return the registered bundle."""
    ops = AzureMLRegistryOps(client, tmp_path / scratch)
    for region, model in case.fresh().items():
        version = ops.register(region, model, model.metrics, {"dagster": {"run_id": "run-1"}}).version
        ops.set_alias(region, "champion", version)
    return ops.champion_bundle(tmp_path / f"{scratch}-bundle")


# --------------------------------------------------------------------------------------------- registry
def test_register_creates_a_model_with_metrics_and_lineage_and_moves_the_challenger_tag(
    client, case, tmp_path
):
    ops = AzureMLRegistryOps(client, tmp_path)
    model = case.fresh()["canada"]
    first = ops.register(
        "canada", model, model.metrics, {"dagster": {"run_id": "r1"}, "code": {"git_sha": "abc"}}
    )
    assert (first.version, first.model_version, first.uri) == (
        "1",
        "globolatte-canada:1",
        "azureml:globolatte-canada:1",
    )
    assert client.calls == [
        ("models.list", "globolatte-canada"),
        ("models.create_or_update", "globolatte-canada", "1"),
        ("models.get", "globolatte-canada", "1"),
        ("models.create_or_update", "globolatte-canada", "1"),
        ("models.list", "globolatte-canada"),
    ]
    entity = client.models.store[("globolatte-canada", "1")]
    assert isinstance(entity, Model) and entity.type == "custom_model"
    assert entity.tags["challenger"] == "true" and entity.tags["region"] == "canada"
    assert float(entity.tags["metric.hit_rate_at_3"]) == pytest.approx(model.metrics["hit_rate_at_3"])
    assert entity.tags["metric.champion"] == model.champion  # which candidate the version serves
    assert json.loads(entity.properties["lineage"])["dagster"]["run_id"] == "r1"
    assert ops.metrics("canada", "1")["holdout_days"] == model.metrics["holdout_days"]

    ops.register("canada", case.fresh()["canada"], model.metrics, {})
    assert ops.get_alias("canada", "challenger") == "2"
    assert "challenger" not in client.models.store[("globolatte-canada", "1")].tags  # the alias moved
    ops.set_alias("canada", "champion", "1")
    assert ops.get_alias("canada", "champion") == "1"
    loaded = ops.load("canada", "2")
    assert loaded.model_version == "globolatte-canada:2" and loaded.region == "canada"


def test_champion_bundle_is_registered_as_one_model_of_every_regions_champion(client, case, tmp_path):
    bundle = champions(client, case, tmp_path)
    assert bundle.model_ref == "azureml:globolatte-champions:1"
    assert bundle.versions == {r: f"globolatte-{r}:1" for r in REGION_KEYS}
    entity = client.models.store[("globolatte-champions", "1")]
    assert entity.tags == bundle.versions
    assert sorted(p.name for p in bundle.path.iterdir()) == ["america", "canada", "champions.json", "mexico"]


def _lease_lock(azurite, container: str) -> BlobLeaseLock:
    """A lock in Azurite, each caller with its own client (as separate processes would be)."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    return BlobLeaseLock(service.get_container_client(container), lease_seconds=15, poll_seconds=0.05)


def test_concurrent_alias_moves_under_the_lease_lose_no_tag(
    client, case, tmp_path, azurite, azurite_container
):
    """Two runs move two aliases onto one version at once; each reads the version's tags, then writes them.
    Under the lease both tags survive (without it, the second write drops the first tag)."""
    plain = AzureMLRegistryOps(client, tmp_path)
    for _ in range(3):
        plain.register("canada", case.fresh()["canada"], case.models["canada"].metrics, {})
    client.delays["models.get"] = 0.3
    runs = [AzureMLRegistryOps(client, tmp_path, _lease_lock(azurite, azurite_container)) for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def move(ops, alias):
        barrier.wait()
        try:
            ops.set_alias("canada", alias, "2")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(ops, a)) for ops, a in zip(runs, ALIASES, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    tags = client.models.store[("globolatte-canada", "2")].tags
    assert tags.get("champion") == "true" and tags.get("challenger") == "true"
    assert plain.get_alias("canada", "challenger") == "2" and plain.get_alias("canada", "champion") == "2"


def test_a_writer_waits_for_a_lease_held_elsewhere(client, case, tmp_path, azurite, azurite_container):
    ops = AzureMLRegistryOps(client, tmp_path, _lease_lock(azurite, azurite_container))
    ops.register("mexico", case.fresh()["mexico"], case.models["mexico"].metrics, {})
    order: list[str] = []
    held, writer_started = threading.Event(), threading.Event()

    def other_run():
        with _lease_lock(azurite, azurite_container).hold("globolatte-mexico"):
            held.set()
            writer_started.wait(10)
            time.sleep(0.5)
            order.append("other run released the lock")

    holder = threading.Thread(target=other_run)
    holder.start()
    held.wait(10)
    writer_started.set()
    ops.set_alias("mexico", "champion", "1")
    order.append("alias moved")
    holder.join()
    assert order == ["other run released the lock", "alias moved"]
    assert ops.get_alias("mexico", "champion") == "1"


def test_the_registry_resource_locks_in_the_workspace_default_datastore(client, tmp_path, monkeypatch):
    monkeypatch.setattr(AzureMLModelRegistry, "ml_client", lambda self: client)
    registry = AzureMLModelRegistry(
        subscription_id="s", resource_group="g", workspace_name="w", scratch_dir=str(tmp_path)
    )
    lock = registry.ops.lock
    assert isinstance(lock, BlobLeaseLock)
    assert lock.container.url == (
        "https://stglobolatteml.blob.core.windows.net/azureml-blobstore-00000000-0000-0000-0000-000000000000"
    )
    assert client.calls[-1] == ("datastores.get_default", "workspaceblobstore")


def test_one_mlclient_per_resource_instance(client, tmp_path, monkeypatch):
    built = []

    def factory(self):
        built.append(self)
        return client

    monkeypatch.setattr(AzureMLModelRegistry, "ml_client", factory)
    monkeypatch.setattr(E.AzureMLScoringEndpoint, "ml_client", factory)
    registry = AzureMLModelRegistry(
        subscription_id="s", resource_group="g", workspace_name="w", scratch_dir=str(tmp_path)
    )
    for region in REGION_KEYS:
        assert registry.get_alias(region, "champion") is None
    assert registry.ops is registry.ops
    endpoint = E.AzureMLScoringEndpoint(subscription_id="s", resource_group="g", workspace_name="w")
    assert endpoint.current_versions() is None and endpoint.current_versions() is None
    assert built == [registry, endpoint]  # one client each, not one per call
    assert [c[0] for c in client.calls].count("datastores.get_default") == 1  # one lock, built once


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w"
            "/models/globolatte-champions/versions/7",
            ("globolatte-champions", "7"),
        ),
        ("azureml:globolatte-champions:7", ("globolatte-champions", "7")),
        ("globolatte-champions:7", ("globolatte-champions", "7")),
        ("azureml:globolatte-champions@latest", None),
        (None, None),
    ],
)
def test_the_live_deployment_model_reference_is_read_in_every_form_the_service_gives(model, expected):
    assert E.model_name_version(model) == expected


def test_current_versions_come_from_the_live_colour_bundle(client, case, tmp_path):
    bundle = champions(client, case, tmp_path)
    deployer = E.AzureMLDeployer(client, NAME, log=lambda _m: None)
    assert deployer.live_versions() is None  # no endpoint yet
    deployer.deploy(bundle)
    assert deployer.live_versions() == bundle.versions
    newer = champions(client, case, tmp_path, "two")
    assert newer.model_ref != bundle.model_ref
    deployer.deploy(newer)
    assert deployer.live_versions() == newer.versions


def test_record_decision_tags_the_version(client, case, tmp_path):
    ops = AzureMLRegistryOps(client, tmp_path)
    model = case.fresh()["mexico"]
    ops.register("mexico", model, model.metrics, {})
    ops.record_decision("mexico", "1", {"promote": True, "forced": True, "reasons": ["a", "b"]})
    tags = client.models.store[("globolatte-mexico", "1")].tags
    assert tags["gate"] == "forced" and tags["gate_reasons"] == "a; b"


# --------------------------------------------------------------------------------------------- endpoint
@pytest.mark.parametrize("auth_mode", ["key", "aad_token"])
def test_the_endpoint_is_created_with_the_chosen_auth_mode(client, case, tmp_path, auth_mode):
    bundle = champions(client, case, tmp_path)
    result = E.AzureMLDeployer(client, NAME, log=lambda _m: None, auth_mode=auth_mode).deploy(bundle)
    endpoint = client.online_endpoints.store[NAME]
    assert isinstance(endpoint, ManagedOnlineEndpoint) and endpoint.auth_mode == auth_mode
    assert result["auth_mode"] == auth_mode and result["colour"] == "blue"
    assert client.ops("online_endpoints.invoke") == [("online_endpoints.invoke", "blue")]


def test_an_existing_key_endpoint_is_switched_to_entra_tokens_before_the_new_colour(client, case, tmp_path):
    E.AzureMLDeployer(client, NAME, log=lambda _m: None).deploy(champions(client, case, tmp_path, "one"))
    assert client.online_endpoints.store[NAME].auth_mode == "key"
    bundle = champions(client, case, tmp_path, "two")
    client.calls.clear()
    E.AzureMLDeployer(client, NAME, log=lambda _m: None, auth_mode="aad_token").deploy(bundle)
    assert client.ops()[:3] == [
        ("online_endpoints.get", NAME),
        ("online_endpoints.begin_create_or_update", NAME, {"blue": 100}),  # the auth mode, traffic unchanged
        ("online_deployments.begin_create_or_update", "green"),
    ]
    assert client.online_endpoints.store[NAME].auth_mode == "aad_token"
    assert client.online_endpoints.store[NAME].traffic == {"blue": 0, "green": 100}


def test_an_unknown_auth_mode_is_refused():
    with pytest.raises(ValueError, match="key, aad_token"):
        E.AzureMLDeployer(RecordedMLClient(), NAME, auth_mode="aml_token")
    with pytest.raises(ValueError, match="key, aad_token"):
        E.endpoint_entity(NAME, "none")


def test_the_auth_mode_setting_reaches_the_endpoint_resource(monkeypatch, tmp_path):
    monkeypatch.setenv("GLOBOLATTE_HOME", str(tmp_path))
    monkeypatch.setenv("AZUREML_ENDPOINT_AUTH_MODE", "aad_token")
    assert azure_registry_resources()["endpoint"].auth_mode == "aad_token"
    monkeypatch.delenv("AZUREML_ENDPOINT_AUTH_MODE")
    assert azure_registry_resources()["endpoint"].auth_mode == "key"


def test_first_deployment_creates_the_endpoint_then_blue_takes_all_traffic(client, case, tmp_path):
    bundle = champions(client, case, tmp_path)
    client.calls.clear()
    result = E.AzureMLDeployer(client, NAME, log=lambda _m: None).deploy(bundle)
    assert client.ops() == [
        ("online_endpoints.get", NAME),
        ("online_endpoints.begin_create_or_update", NAME, {}),
        ("online_deployments.begin_create_or_update", "blue"),
        ("online_endpoints.invoke", "blue"),
        ("online_endpoints.begin_create_or_update", NAME, {"blue": 100}),
    ]
    assert result["colour"] == "blue" and result["previous"] is None and result["endpoint_created"]
    endpoint = client.online_endpoints.store[NAME]
    assert isinstance(endpoint, ManagedOnlineEndpoint) and endpoint.auth_mode == "key"
    deployment = client.online_deployments.created[0]
    assert isinstance(deployment, ManagedOnlineDeployment)
    assert deployment.model == bundle.model_ref
    assert deployment.code_configuration.scoring_script == "serving/score.py"
    assert Path(deployment.code_configuration.code) == ROOT / "globolatte_dagster"
    assert deployment.environment.image == E.INFERENCE_IMAGE and "inference" in E.INFERENCE_IMAGE
    assert deployment.environment.conda_file == E.SERVING_CONDA


def test_next_deployment_goes_green_canary_then_all_then_deletes_blue(client, case, tmp_path):
    deployer = E.AzureMLDeployer(client, NAME, canary_percent=10, log=lambda _m: None)
    deployer.deploy(champions(client, case, tmp_path, "one"))
    client.calls.clear()
    result = deployer.deploy(champions(client, case, tmp_path, "two"))
    assert client.ops() == [
        ("online_endpoints.get", NAME),
        ("online_deployments.begin_create_or_update", "green"),
        ("online_endpoints.invoke", "green"),
        ("online_endpoints.begin_create_or_update", NAME, {"blue": 90, "green": 10}),
        ("online_deployments.get", "green"),
        ("online_endpoints.begin_create_or_update", NAME, {"blue": 0, "green": 100}),
        ("online_deployments.begin_delete", "blue"),
    ]
    assert result["colour"] == "green" and result["previous"] == "blue"
    assert result["model_versions"] == {r: f"globolatte-{r}:2" for r in REGION_KEYS}
    assert set(client.online_deployments.store) == {(NAME, "green")}


def _second_deploy_failing(client, case, tmp_path, fail_key: str, exc: Exception | None = None, answer=None):
    deployer = E.AzureMLDeployer(client, NAME, log=lambda _m: None)
    deployer.deploy(champions(client, case, tmp_path, "one"))
    bundle = champions(client, case, tmp_path, "two")
    client.calls.clear()
    if answer is not None:
        client.answers["green"] = answer
    else:
        client.fail[fail_key] = exc
    with pytest.raises(RuntimeError, match="rolled back") as failure:
        deployer.deploy(bundle)
    return str(failure.value)


def test_a_wrong_smoke_answer_rolls_back_before_any_traffic_moves(client, case, tmp_path):
    wrong = json.dumps({"responses": []})
    message = _second_deploy_failing(client, case, tmp_path, "", answer=wrong)
    assert client.ops() == [
        ("online_endpoints.get", NAME),
        ("online_deployments.begin_create_or_update", "green"),
        ("online_endpoints.invoke", "green"),
        ("online_deployments.begin_delete", "green"),
    ]
    assert "smoke test" in message and "traffic stays on blue" in message
    assert client.online_endpoints.store[NAME].traffic == {"blue": 100}
    assert set(client.online_deployments.store) == {(NAME, "blue")}


def test_a_failing_invoke_rolls_back(client, case, tmp_path):
    _second_deploy_failing(
        client, case, tmp_path, "online_endpoints.invoke:green", HttpResponseError("(500) boom")
    )
    assert client.ops()[-1] == ("online_deployments.begin_delete", "green")
    assert client.online_endpoints.store[NAME].traffic == {"blue": 100}


def test_a_failed_deployment_create_is_cleaned_up(client, case, tmp_path):
    message = _second_deploy_failing(
        client, case, tmp_path, "online_deployments.begin_create_or_update:green", HttpResponseError("quota")
    )
    assert client.ops() == [
        ("online_endpoints.get", NAME),
        ("online_deployments.begin_create_or_update", "green"),
        ("online_deployments.begin_delete", "green"),
    ]
    assert "create deployment" in message


def test_a_failure_while_shifting_traffic_sends_it_back_to_blue(client, case, tmp_path):
    deployer = E.AzureMLDeployer(client, NAME, log=lambda _m: None)
    deployer.deploy(champions(client, case, tmp_path, "one"))
    bundle = champions(client, case, tmp_path, "two")
    client.calls.clear()
    client.deployment_state = "Failed"  # green degrades once it takes the canary share
    with pytest.raises(RuntimeError, match="shift traffic"):
        deployer.deploy(bundle)
    assert client.ops() == [
        ("online_endpoints.get", NAME),
        ("online_deployments.begin_create_or_update", "green"),
        ("online_endpoints.invoke", "green"),
        ("online_endpoints.begin_create_or_update", NAME, {"blue": 90, "green": 10}),
        ("online_deployments.get", "green"),
        ("online_endpoints.begin_create_or_update", NAME, {"blue": 100, "green": 0}),
        ("online_deployments.begin_delete", "green"),
    ]
    assert client.online_endpoints.store[NAME].traffic == {"blue": 100, "green": 0}


def test_a_failure_of_the_last_traffic_step_also_rolls_back(client, case, tmp_path):
    deployer = E.AzureMLDeployer(client, NAME, log=lambda _m: None)
    deployer.deploy(champions(client, case, tmp_path, "one"))
    bundle = champions(client, case, tmp_path, "two")
    client.calls.clear()
    original = client.online_endpoints.begin_create_or_update

    def flaky(endpoint, **kw):
        if endpoint.traffic == {"blue": 0, "green": 100}:
            client.calls.append(("online_endpoints.begin_create_or_update", NAME, dict(endpoint.traffic)))
            raise HttpResponseError("conflict")
        return original(endpoint, **kw)

    client.online_endpoints.begin_create_or_update = flaky
    with pytest.raises(RuntimeError, match="rolled back"):
        deployer.deploy(bundle)
    assert [c[2] for c in client.ops("online_endpoints.begin_create_or_update")] == [
        {"blue": 90, "green": 10},
        {"blue": 0, "green": 100},
        {"blue": 100, "green": 0},
    ]
    assert client.ops()[-1] == ("online_deployments.begin_delete", "green")


# ------------------------------------------------------------------------ the assets with Azure resources
def test_the_same_assets_register_and_deploy_through_azure_resources(
    client, case, tmp_path, monkeypatch, azurite, azurite_container
):
    """GLOBOLATTE_ENV=azure swaps only the resources: the gate and the deployment go through azure-ai-ml."""
    monkeypatch.setattr(AzureMLModelRegistry, "ml_client", lambda self: client)
    monkeypatch.setattr(
        AzureMLModelRegistry, "alias_lock", lambda self, ml: _lease_lock(azurite, azurite_container)
    )
    monkeypatch.setattr(E.AzureMLScoringEndpoint, "ml_client", lambda self: client)
    monkeypatch.setenv("GLOBOLATTE_HOME", str(tmp_path / "home"))
    for name in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME"):
        monkeypatch.setenv(name, f"test-{name.lower()}")
    models = case.fresh()

    @dg.asset(key=["ml", "preference_model"], partitions_def=registered_model.partitions_def)
    def preference_model(context):
        """Stand-in upstream: the already trained small model of the partition."""
        return models[context.partition_key]

    resources = {
        **azure_registry_resources(),
        "warehouse": DuckDBWarehouse(database=case.database),
        "model_io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "artifacts")),
        "io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "artifacts")),
    }
    forced = {"ops": {"ml__registered_model": {"config": {"force_promotion": True}}}}  # tiny models: force
    for region in REGION_KEYS:
        result = dg.materialize(
            [preference_model, registered_model], partition_key=region, resources=resources, run_config=forced
        )
        assert result.success
    deployed = dg.materialize(
        [preference_model, registered_model, scoring_endpoint],
        selection=[scoring_endpoint],
        resources=resources,
    )
    meta = deployed.get_asset_materialization_events()[0].materialization.metadata
    assert meta["colour"].value == "blue" and meta["model"].value == "azureml:globolatte-champions:1"
    assert [c[0] for c in client.ops()] == [
        "online_endpoints.get",  # current_versions: no endpoint yet, so the versions are unknown
        "online_endpoints.get",
        "online_endpoints.begin_create_or_update",
        "online_deployments.begin_create_or_update",
        "online_endpoints.invoke",
        "online_endpoints.begin_create_or_update",
    ]
    # The champions did not change: the live colour's bundle is read back and nothing is redeployed.
    client.calls.clear()
    again = dg.materialize(
        [preference_model, registered_model, scoring_endpoint],
        selection=[scoring_endpoint],
        resources=resources,
    )
    meta = again.get_asset_materialization_events()[0].materialization.metadata
    assert meta["status"].value == "unchanged"
    assert meta["model_versions"].value == {r: f"globolatte-{r}:1" for r in REGION_KEYS}
    deploying = {"online_deployments.begin_create_or_update", "online_endpoints.begin_create_or_update"}
    assert not deploying & {c[0] for c in client.ops()}
    assert ("online_deployments.get", "blue") in client.ops()
    for region in REGION_KEYS:
        tags = client.models.store[(f"globolatte-{region}", "1")].tags
        assert tags["champion"] == "true" and tags["gate"] == "forced" and tags["challenger"] == "true"
        assert (
            json.loads(client.models.store[(f"globolatte-{region}", "1")].properties["lineage"])["region"]
            == region
        )


# ------------------------------------------------------------------------------------------------- YAML
def test_the_azureml_yaml_loads_with_the_sdk_and_matches_what_the_asset_builds():
    endpoint = load_online_endpoint(ROOT / "deploy" / "azureml" / "endpoint.yml")
    deployment = load_online_deployment(ROOT / "deploy" / "azureml" / "deployment.yml")
    assert isinstance(endpoint, ManagedOnlineEndpoint) and endpoint.name == NAME
    assert endpoint.auth_mode == "aad_token"  # Microsoft Entra tokens in production (deploy/README.md)
    assert isinstance(deployment, ManagedOnlineDeployment)
    assert deployment.name in ("blue", "green") and deployment.endpoint_name == NAME
    assert deployment.model == "globolatte-champions:1"  # the loader drops the azureml: prefix
    built = E.deployment_entity("blue", NAME, "azureml:globolatte-champions:1", "Standard_DS3_v2", 2)
    assert deployment.code_configuration.scoring_script == built.code_configuration.scoring_script
    yml_dir = ROOT / "deploy" / "azureml"
    assert (yml_dir / deployment.code_configuration.code).resolve() == Path(
        built.code_configuration.code
    ).resolve()
    assert deployment.environment.image == built.environment.image
    assert (deployment.instance_type, deployment.instance_count) == (
        built.instance_type,
        built.instance_count,
    )
    conda = yaml.safe_load((ROOT / "deploy" / "azureml" / "conda.yml").read_text())
    assert conda == E.SERVING_CONDA
    built_endpoint = E.endpoint_entity(NAME, endpoint.auth_mode)
    assert (built_endpoint.auth_mode, built_endpoint.public_network_access) == (
        endpoint.auth_mode,
        endpoint.public_network_access,
    )
