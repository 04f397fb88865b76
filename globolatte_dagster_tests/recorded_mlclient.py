"""A recorded `MLClient` double: the operations boundary of azure-ai-ml, in memory.

It takes and returns the SDK's real entity classes (`Model`, `ManagedOnlineEndpoint`,
`ManagedOnlineDeployment`), records every operation in `calls` as `(operation, name, detail)`, and raises
the SDK's own `ResourceNotFoundError` / `HttpResponseError` where the service would. `invoke` answers with
the real scoring script: `score.Scorer` over the model bundle the deployment names. Failures are injected
with `fail["<operation>:<name>"] = exception` (or `fail["<operation>"]`); `delays["models.get"] = s`
makes a read take `s` seconds (to widen read-modify-write races); `datastores.get_default()` names the
workspace's default blob datastore, as the service does.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError


class Poller:
    def __init__(self, value: Any) -> None:
        self._value = value

    def result(self, timeout: float | None = None) -> Any:
        return self._value

    def done(self) -> bool:
        return True


class _Ops:
    def __init__(self, client: RecordedMLClient, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def _record(self, op: str, name: str, detail: Any = None) -> None:
        key = f"{self.prefix}.{op}"
        self.client.calls.append((key, name, detail) if detail is not None else (key, name))
        for k in (f"{key}:{name}", key):
            if k in self.client.fail:
                raise self.client.fail.pop(k)


class _Models(_Ops):
    def __init__(self, client: RecordedMLClient) -> None:
        super().__init__(client, "models")
        self.store: dict[tuple[str, str], Any] = {}
        self.files: dict[tuple[str, str], Path] = {}

    def create_or_update(self, model: Any) -> Any:
        name, version = model.name, str(model.version)
        self._record("create_or_update", name, version)
        key = (name, version)
        path = str(model.path or "")
        if key not in self.files:  # a new version: "upload" the local folder
            if not Path(path).exists():
                raise HttpResponseError(f"model {name}:{version} has no local path to upload: {path}")
            target = self.client.root / "models" / name / version / Path(path).name
            shutil.copytree(path, target)
            self.files[key] = target
        stored = copy.deepcopy(model)
        stored.path = f"azureml://models/{name}/versions/{version}"
        self.store[key] = stored
        return copy.deepcopy(stored)

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Any:
        self._record("get", name, str(version))
        if (name, str(version)) not in self.store:
            raise ResourceNotFoundError(f"model {name}:{version} not found")
        found = copy.deepcopy(self.store[(name, str(version))])
        time.sleep(self.client.delays.get("models.get", 0.0))
        return found

    def list(self, name: str | None = None, **_: Any) -> list[Any]:
        self._record("list", str(name))
        return [copy.deepcopy(m) for (n, _v), m in self.store.items() if n == name]

    def download(self, name: str, version: str, download_path: str = ".") -> None:
        self._record("download", name, str(version))
        source = self.files.get((name, str(version)))
        if source is None:
            raise ResourceNotFoundError(f"model {name}:{version} not found")
        shutil.copytree(source, Path(download_path) / name / source.name)


class _Endpoints(_Ops):
    def __init__(self, client: RecordedMLClient) -> None:
        super().__init__(client, "online_endpoints")
        self.store: dict[str, Any] = {}

    def get(self, name: str, **_: Any) -> Any:
        self._record("get", name)
        if name not in self.store:
            raise ResourceNotFoundError(f"endpoint {name} not found")
        return copy.deepcopy(self.store[name])

    def begin_create_or_update(self, endpoint: Any, **_: Any) -> Poller:
        traffic = dict(endpoint.traffic or {})
        self._record("begin_create_or_update", endpoint.name, traffic)
        for colour in traffic:
            if traffic[colour] and (endpoint.name, colour) not in self.client.online_deployments.store:
                raise HttpResponseError(f"traffic names deployment {colour}, which does not exist")
        stored = copy.deepcopy(endpoint)
        stored._scoring_uri = (
            f"https://{endpoint.name}.eastus2.inference.ml.azure.com/score"  # set by the service
        )
        self.store[endpoint.name] = stored
        return Poller(copy.deepcopy(stored))

    def invoke(
        self,
        endpoint_name: str,
        *,
        request_file: str | None = None,
        deployment_name: str | None = None,
        **_: Any,
    ) -> str:
        self._record("invoke", str(deployment_name))
        deployment = self.client.online_deployments.store.get((endpoint_name, deployment_name))
        if deployment is None:
            raise ResourceNotFoundError(f"deployment {deployment_name} not found")
        if deployment_name in self.client.answers:
            return self.client.answers[deployment_name]
        from globolatte_dagster.serving.score import Scorer

        _, name, version = str(deployment.model).split(":")
        folder = self.client.models.files[(name, version)]
        status, payload = Scorer.from_dir(folder).handle("POST", Path(str(request_file)).read_bytes())
        if status != 200:
            raise HttpResponseError(f"({status}) {payload}")
        return json.dumps(payload)


class _Deployments(_Ops):
    def __init__(self, client: RecordedMLClient) -> None:
        super().__init__(client, "online_deployments")
        self.store: dict[tuple[str, str], Any] = {}
        self.created: list[Any] = []

    def begin_create_or_update(self, deployment: Any, **_: Any) -> Poller:
        self._record("begin_create_or_update", deployment.name)
        stored = copy.deepcopy(deployment)
        stored._provisioning_state = self.client.deployment_state  # set by the service
        self.store[(deployment.endpoint_name, deployment.name)] = stored
        self.created.append(deployment)
        return Poller(copy.deepcopy(stored))

    def get(self, name: str, endpoint_name: str, **_: Any) -> Any:
        self._record("get", name)
        if (endpoint_name, name) not in self.store:
            raise ResourceNotFoundError(f"deployment {name} not found")
        return copy.deepcopy(self.store[(endpoint_name, name)])

    def begin_delete(self, name: str, endpoint_name: str, **_: Any) -> Poller:
        self._record("begin_delete", name)
        if (endpoint_name, name) not in self.store:
            raise ResourceNotFoundError(f"deployment {name} not found")
        traffic = (
            (self.client.online_endpoints.store.get(endpoint_name).traffic or {})
            if endpoint_name in self.client.online_endpoints.store
            else {}
        )
        if traffic.get(name):
            raise HttpResponseError(f"cannot delete {name}: it takes {traffic[name]}% of the traffic")
        del self.store[(endpoint_name, name)]
        return Poller(None)

    def list(self, endpoint_name: str, **_: Any) -> list[Any]:
        self._record("list", endpoint_name)
        return [copy.deepcopy(d) for (e, _n), d in self.store.items() if e == endpoint_name]


class _Datastores(_Ops):
    def __init__(self, client: RecordedMLClient) -> None:
        super().__init__(client, "datastores")

    def get_default(self, **_: Any) -> Any:
        from azure.ai.ml.entities import AzureBlobDatastore

        self._record("get_default", "workspaceblobstore")
        return AzureBlobDatastore(
            name="workspaceblobstore",
            account_name="stglobolatteml",
            container_name="azureml-blobstore-00000000-0000-0000-0000-000000000000",
        )


class RecordedMLClient:
    """Stands in for `azure.ai.ml.MLClient` in the tests (see the module docstring)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="recorded-mlclient-"))
        self.calls: list[tuple] = []
        self.delays: dict[str, float] = {}
        self.fail: dict[str, Exception] = {}
        self.answers: dict[str, str] = {}  # deployment name -> raw invoke answer (to simulate a wrong one)
        self.deployment_state = "Succeeded"
        self.models = _Models(self)
        self.online_endpoints = _Endpoints(self)
        self.online_deployments = _Deployments(self)
        self.datastores = _Datastores(self)

    def ops(self, prefix: str = "online_") -> list[tuple]:
        """The recorded calls whose operation starts with `prefix`."""
        return [c for c in self.calls if c[0].startswith(prefix)]
