"""The scoring endpoint resource: `ScoringEndpoint`, with a local and an Azure ML implementation.

Both deploy a champions bundle (`ChampionBundle`, from the registry) blue/green and smoke-test the new
colour with real requests before it takes any traffic.

- `LocalScoringEndpoint`: `score.py` under `azmlinfsrv` on 127.0.0.1 (`serving.deployer`): each
  deployment is smoke-tested on a server of its own, which is then stopped; the endpoint record under
  `GLOBOLATTE_HOME/endpoint` is what every `globolatte serve` front follows with its own model server.
- `AzureMLScoringEndpoint`: a `ManagedOnlineEndpoint` (key or Microsoft Entra token auth,
  AZUREML_ENDPOINT_AUTH_MODE) and one `ManagedOnlineDeployment` per colour, with
  `CodeConfiguration(score.py)` and an `Environment` from the pinned serving requirements on a pinned
  Azure ML inference image. Sequence (`AzureMLDeployer.deploy`): get or create the endpoint, create
  the idle colour, invoke it directly, shift traffic (canary %, then 100 %), delete the old colour;
  any failure before the old colour is deleted rolls back (traffic to the old colour, new one deleted).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from globolatte_dagster.lib.contract import REGION_KEYS
from globolatte_dagster.lib.model_store import ChampionBundle
from globolatte_dagster.resources.azureml_client import workspace_ml_client
from globolatte_dagster.serving.smoke import (
    SmokeTestFailed,
    check_answers,
    expected_answers,
    load_bundle,
    smoke_requests,
)

DEFAULT_ENDPOINT_NAME = "globolatte-scoring"
COLOURS = ("blue", "green")
PACKAGE_DIR = Path(__file__).resolve().parents[1]
SCORING_SCRIPT = "serving/score.py"  # relative to the uploaded package folder
# An Azure ML curated inference image with Python 3.11, as the training environment, pinned by version
# (`latest` would change under a deployed model; Azure ML supports tags up to six months older than
# `latest`, so bump this with the pins). Source: Azure/azureml-assets,
# assets/inference/environments/minimal-py311-inference.
INFERENCE_IMAGE = "mcr.microsoft.com/azureml/curated/minimal-py311-inference:59"
# The serving requirements: what score.py and globolatte_dagster.lib need (no Dagster), pinned to the
# training environment's versions. deploy/constraints.txt is the source (deploy/tools/pins.py writes it and
# deploy/azureml/conda.yml); the tests keep this dict equal to conda.yml and the pins to the constraints.
SERVING_CONDA: dict[str, Any] = {
    "name": "globolatte-serving",
    "channels": ["conda-forge"],
    "dependencies": [
        "python=3.11",
        "pip",
        {
            "pip": [
                "scikit-learn==1.9.1",
                "numpy==2.4.6",
                "scipy==1.17.1",
                "pandas==2.3.3",
                "joblib==1.6.0",
                "threadpoolctl==3.8.0",
                "holidays==0.109",
                "pyarrow==26.0.1",
                "azureml-inference-server-http==1.5.1",
            ]
        },
    ],
}
# How clients authenticate to the managed online endpoint (AZUREML_ENDPOINT_AUTH_MODE): `key` (static
# keys, `az ml online-endpoint get-credentials`) or `aad_token` (a Microsoft Entra token for
# https://ml.azure.com; the caller's identity needs the `score/action` permission on the endpoint).
AUTH_MODES = ("key", "aad_token")


class ScoringEndpoint(dg.ConfigurableResource):
    """Abstract scoring endpoint: deploy every region's champion blue/green."""

    def deploy(self, bundle: ChampionBundle, log: Callable[[str], None] = print) -> dict[str, Any]:
        """Deploy `bundle` to the idle colour, smoke-test it, switch to it; raise (old colour kept) on failure."""
        raise NotImplementedError

    def current_versions(self) -> dict[str, str] | None:
        """The model versions the live deployment serves, if known (None: unknown, deploy anyway)."""
        return None


class LocalScoringEndpoint(ScoringEndpoint):
    """`score.py` under Azure ML's inference server on 127.0.0.1, blue/green (serving.deployer)."""

    root: str
    public_port: int = 8765
    ready_timeout_s: float = 90.0
    drain_s: float = 1.0

    def deployer(self) -> Any:
        from globolatte_dagster.serving.deployer import LocalDeployer

        return LocalDeployer(self.root, ready_timeout=self.ready_timeout_s, drain_seconds=self.drain_s)

    def deploy(self, bundle: ChampionBundle, log: Callable[[str], None] = print) -> dict[str, Any]:
        result = self.deployer().deploy(bundle.path, bundle.versions, log=log)
        return {**result, "public_url": f"http://127.0.0.1:{self.public_port}/score (globolatte serve)"}

    def current_versions(self) -> dict[str, str] | None:
        live = self.deployer().live_record()
        return live.get("model_versions") if live else None


# --------------------------------------------------------------------------------------------- Azure ML
def check_auth_mode(auth_mode: str) -> str:
    if auth_mode not in AUTH_MODES:
        raise ValueError(f"endpoint auth mode must be one of {', '.join(AUTH_MODES)}, not {auth_mode!r}")
    return auth_mode


def endpoint_entity(name: str, auth_mode: str = "key") -> Any:
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    return ManagedOnlineEndpoint(
        name=name,
        auth_mode=check_auth_mode(auth_mode),
        public_network_access="disabled",
        description="GloboLatte recommendations (POST /score, see DESIGN.md 'Scoring contract')",
        tags={"project": "globolatte"},
    )


def deployment_entity(
    colour: str, endpoint_name: str, model_ref: str, instance_type: str, instance_count: int
) -> Any:
    from azure.ai.ml.entities import (
        CodeConfiguration,
        Environment,
        ManagedOnlineDeployment,
        OnlineRequestSettings,
        ProbeSettings,
    )

    return ManagedOnlineDeployment(
        name=colour,
        endpoint_name=endpoint_name,
        model=model_ref,
        code_configuration=CodeConfiguration(code=str(PACKAGE_DIR), scoring_script=SCORING_SCRIPT),
        environment=Environment(name="globolatte-serving", image=INFERENCE_IMAGE, conda_file=SERVING_CONDA),
        instance_type=instance_type,
        instance_count=instance_count,
        app_insights_enabled=True,
        request_settings=OnlineRequestSettings(
            request_timeout_ms=10000, max_concurrent_requests_per_instance=4, max_queue_wait_ms=1000
        ),
        liveness_probe=ProbeSettings(initial_delay=30, period=10, timeout=5, failure_threshold=3),
        readiness_probe=ProbeSettings(initial_delay=10, period=10, timeout=5, failure_threshold=3),
        tags={"project": "globolatte", "colour": colour},
    )


def model_name_version(model: Any) -> tuple[str, str] | None:
    """(name, version) of a deployment's model: an entity, `azureml:<name>:<version>`, `<name>:<version>`,
    or the ARM id `.../models/<name>/versions/<version>` the service answers with."""
    if model is None:
        return None
    if not isinstance(model, str):
        name, version = getattr(model, "name", None), getattr(model, "version", None)
        return (str(name), str(version)) if name and version else None
    parts = model.strip("/").split("/")
    if len(parts) >= 4 and parts[-4] == "models" and parts[-2] == "versions":
        return parts[-3], parts[-1]
    ref = model.removeprefix("azureml:")
    name, sep, version = ref.rpartition(":")
    return (name, version) if sep and name and version and "/" not in ref else None


class AzureMLDeployer:
    """Blue/green on a managed online endpoint, over an `MLClient` (real, or the tests' recorded double)."""

    def __init__(
        self,
        ml_client: Any,
        endpoint_name: str = DEFAULT_ENDPOINT_NAME,
        instance_type: str = "Standard_DS3_v2",
        instance_count: int = 2,
        canary_percent: int = 10,
        log: Callable[[str], None] = print,
        auth_mode: str = "key",
    ) -> None:
        if not 0 < canary_percent < 100:
            raise ValueError(f"canary_percent must be between 1 and 99, not {canary_percent}")
        self.auth_mode = check_auth_mode(auth_mode)
        self.ml = ml_client
        self.name = endpoint_name
        self.instance_type = instance_type
        self.instance_count = instance_count
        self.canary = canary_percent
        self.log = log

    def _endpoint(self) -> tuple[Any, bool]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            endpoint = self.ml.online_endpoints.get(name=self.name)
        except ResourceNotFoundError:
            self.log(f"creating endpoint {self.name} ({self.auth_mode} auth)")
            entity = endpoint_entity(self.name, self.auth_mode)
            return self.ml.online_endpoints.begin_create_or_update(entity).result(), True
        if str(endpoint.auth_mode).lower() != self.auth_mode:
            self.log(f"switching endpoint {self.name} from {endpoint.auth_mode} to {self.auth_mode} auth")
            endpoint.auth_mode = self.auth_mode
            endpoint = self.ml.online_endpoints.begin_create_or_update(endpoint).result()
        return endpoint, False

    def _set_traffic(self, endpoint: Any, traffic: dict[str, int]) -> Any:
        endpoint.traffic = dict(traffic)
        self.log(f"traffic {traffic}")
        return self.ml.online_endpoints.begin_create_or_update(endpoint).result()

    def _delete(self, colour: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self.ml.online_deployments.begin_delete(name=colour, endpoint_name=self.name).result()

    def smoke(self, colour: str, bundle: ChampionBundle) -> int:
        """Invoke the new colour directly with real requests; raise SmokeTestFailed on a wrong answer."""
        models = load_bundle(bundle.path)
        requests = smoke_requests(models)
        expected = expected_answers(models, requests)
        with tempfile.TemporaryDirectory() as tmp:
            request_file = Path(tmp) / "smoke.json"
            request_file.write_text(json.dumps({"requests": requests}))
            raw = self.ml.online_endpoints.invoke(
                endpoint_name=self.name, deployment_name=colour, request_file=str(request_file)
            )
        try:
            payload = json.loads(raw) if isinstance(raw, str | bytes) else raw
        except ValueError as exc:
            raise SmokeTestFailed(f"{colour} answered something that is not JSON: {str(raw)[:200]}") from exc
        check_answers(requests, payload, bundle.versions, expected)
        return len(requests)

    def live_versions(self) -> dict[str, str] | None:
        """{region: model_version} of the champions bundle the colour with the traffic serves; None if unknown.

        Read from the workspace: the endpoint's traffic names the live colour, its deployment names the
        bundle model, and the bundle model's tags are the versions it holds (`champion_bundle` sets them).
        """
        from azure.core.exceptions import ResourceNotFoundError

        try:
            endpoint = self.ml.online_endpoints.get(name=self.name)
            traffic = {k: int(v) for k, v in (endpoint.traffic or {}).items() if int(v) > 0}
            if not traffic:
                return None
            live = max(traffic, key=traffic.get)
            deployment = self.ml.online_deployments.get(name=live, endpoint_name=self.name)
            ref = model_name_version(deployment.model)
            if ref is None:
                return None
            model = self.ml.models.get(name=ref[0], version=ref[1])
        except ResourceNotFoundError:
            return None
        versions = {str(k): str(v) for k, v in (model.tags or {}).items() if k in REGION_KEYS}
        return versions or None

    def deploy(self, bundle: ChampionBundle) -> dict[str, Any]:
        if not bundle.model_ref:
            raise ValueError(
                "the champions bundle is not registered in Azure ML (no model_ref): nothing to deploy"
            )
        endpoint, created = self._endpoint()
        traffic = {k: int(v) for k, v in (endpoint.traffic or {}).items() if int(v) > 0}
        live = max(traffic, key=traffic.get) if traffic else None
        colour = "green" if live == "blue" else "blue"
        self.log(f"deploying {bundle.model_ref} as {colour} (live: {live or 'none'})")
        stage = "create deployment"
        try:
            self.ml.online_deployments.begin_create_or_update(
                deployment_entity(
                    colour, self.name, bundle.model_ref, self.instance_type, self.instance_count
                )
            ).result()
            stage = "smoke test"
            smoke_requests_sent = self.smoke(colour, bundle)
            stage = "shift traffic"
            if live:
                endpoint = self._set_traffic(endpoint, {live: 100 - self.canary, colour: self.canary})
                state = self.ml.online_deployments.get(
                    name=colour, endpoint_name=self.name
                ).provisioning_state
                if str(state).lower() != "succeeded":
                    raise RuntimeError(f"{colour} is {state} after taking {self.canary}% of the traffic")
                endpoint = self._set_traffic(endpoint, {live: 0, colour: 100})
            else:
                endpoint = self._set_traffic(endpoint, {colour: 100})
        except Exception as exc:
            self.log(f"{stage} failed, rolling back: {exc}")
            if live and stage == "shift traffic":
                self._set_traffic(endpoint, {live: 100, colour: 0})
            self._delete(colour)
            raise RuntimeError(
                f"Azure ML deployment of {colour} failed at '{stage}' and was rolled back "
                f"({'traffic stays on ' + live if live else 'no deployment serves'}): {exc}"
            ) from exc
        warning = None
        if live:
            try:
                self._delete(live)
            except Exception as exc:  # the new colour serves everything; the old one is only idle
                warning = f"could not delete the old colour {live}: {exc}"
                self.log(warning)
        return {
            "endpoint": self.name,
            "endpoint_created": created,
            "colour": colour,
            "previous": live,
            "model": bundle.model_ref,
            "model_versions": bundle.versions,
            "smoke_requests": smoke_requests_sent,
            "scoring_uri": getattr(endpoint, "scoring_uri", None),
            "auth_mode": self.auth_mode,
            "warning": warning,
        }


class AzureMLScoringEndpoint(ScoringEndpoint):
    """Azure ML managed online endpoint, blue/green (AzureMLDeployer)."""

    subscription_id: str
    resource_group: str
    workspace_name: str
    endpoint_name: str = DEFAULT_ENDPOINT_NAME
    instance_type: str = "Standard_DS3_v2"
    instance_count: int = 2
    canary_percent: int = 10
    auth_mode: str = "key"  # AZUREML_ENDPOINT_AUTH_MODE: `key` or `aad_token` (Microsoft Entra)

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

    def deployer(self, log: Callable[[str], None] = print) -> AzureMLDeployer:
        return AzureMLDeployer(
            self.client(),
            self.endpoint_name,
            self.instance_type,
            self.instance_count,
            self.canary_percent,
            log,
            self.auth_mode,
        )

    def deploy(self, bundle: ChampionBundle, log: Callable[[str], None] = print) -> dict[str, Any]:
        return self.deployer(log).deploy(bundle)

    def current_versions(self) -> dict[str, str] | None:
        """The versions of the bundle the live colour serves, read from the workspace (None: unknown)."""
        return self.deployer(lambda _m: None).live_versions()
