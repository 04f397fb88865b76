"""A recorded `MLClient` double: the operations boundary of azure-ai-ml, in memory.

It takes and returns the SDK's real entity classes (`Model`, `ManagedOnlineEndpoint`,
`ManagedOnlineDeployment`), records every operation in `calls` as `(operation, name, detail)`, and raises
the SDK's own `ResourceNotFoundError` / `HttpResponseError` where the service would. `invoke` answers with
the real scoring script: `score.Scorer` over the model bundle the deployment names. Failures are injected
with `fail["<operation>:<name>"] = exception` (or `fail["<operation>"]`); `delays["models.get"] = s`
makes a read take `s` seconds (to widen read-modify-write races); `datastores.get_default()` names the
workspace's default blob datastore, as the service does.

Jobs (`create_or_update(command)`, `jobs.get`, `jobs.begin_cancel`, `jobs.stream`) take the SDK's
`Command` and answer `CommandJob`s whose status moves NotStarted -> Running -> Completed | Failed |
Canceled. The compute is emulated by `job_runner` (see `LocalJobRunner`): on the first poll it runs the
job's command on this machine, with the code snapshot, the datastore inputs and outputs of Azurite, and
marks the job Failed, with Azure ML's kind of error message, when the process fails. `job_failure` makes
the next job fail in the service instead (an error dict, as run history records it).
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
        self.store: dict[str, Any] = {}

    def get_default(self, **_: Any) -> Any:
        from azure.ai.ml.entities import AzureBlobDatastore

        self._record("get_default", "workspaceblobstore")
        return AzureBlobDatastore(
            name="workspaceblobstore",
            account_name="stglobolatteml",
            container_name="azureml-blobstore-00000000-0000-0000-0000-000000000000",
        )

    def get(self, name: str, **_: Any) -> Any:
        self._record("get", name)
        if name not in self.store:
            raise ResourceNotFoundError(f"datastore {name} not found")
        return copy.deepcopy(self.store[name])


TERMINAL = ("Completed", "Failed", "Canceled")


class _Jobs(_Ops):
    def __init__(self, client: RecordedMLClient) -> None:
        super().__init__(client, "jobs")
        self.submitted: dict[str, Any] = {}  # name -> the Command as submitted
        self.store: dict[str, Any] = {}  # name -> CommandJob (what get answers)
        self.errors: dict[str, dict] = {}
        self.polls: dict[str, int] = {}

    def create(self, command: Any) -> Any:
        self._record("create_or_update", command.name, command.compute)
        if command.compute is None or not command.code or not Path(str(command.code)).is_dir():
            raise HttpResponseError(f"job {command.name}: a compute and a local code folder are required")
        snapshot = self.client.root / "jobs" / command.name / "code"
        shutil.copytree(str(command.code), snapshot)  # the SDK uploads the code folder at submission
        job = command._to_job()
        job._status = "NotStarted"
        self.submitted[command.name] = command
        self.store[command.name] = job
        return copy.deepcopy(job)

    def get(self, name: str, **_: Any) -> Any:
        self._record("get", name)
        if name not in self.store:
            raise ResourceNotFoundError(f"job {name} not found")
        job = self.store[name]
        self.polls[name] = self.polls.get(name, 0) + 1
        if job.status == "NotStarted":
            job._status = "Running"
        elif job.status == "Running":
            if self.client.job_failure is not None:
                self.errors[name], self.client.job_failure = self.client.job_failure, None
                job._status = "Failed"
            else:
                status, error = self.client.job_runner(self.client, self.submitted[name])
                job._status = status
                if error:
                    self.errors[name] = error
        elif job.status == "CancelRequested":
            job._status = "Canceled"
        return copy.deepcopy(job)

    def begin_cancel(self, name: str, **_: Any) -> Poller:
        self._record("begin_cancel", name)
        if name not in self.store:
            raise ResourceNotFoundError(f"job {name} not found")
        if self.store[name].status not in TERMINAL:
            self.store[name]._status = "CancelRequested"
        return Poller(None)

    def stream(self, name: str) -> None:
        """As the SDK's: follows the job to its end and raises JobException when it failed."""
        from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, JobException

        self._record("stream", name)
        if self.store[name].status == "Failed":
            error = self.errors.get(name) or "Detailed error not set on the Run."
            raise JobException(
                message=f"Exception : \n {json.dumps(error, indent=4)} ",
                target=ErrorTarget.JOB,
                no_personal_data_message="Exception raised on failed job.",
                error_category=ErrorCategory.SYSTEM_ERROR,
            )


def _datastore_path(uri: str) -> tuple[str, str]:
    """(datastore, path) of `azureml://datastores/<name>/paths/<path>`."""
    rest = str(uri).split("azureml://datastores/", 1)[1]
    name, _, path = rest.partition("/paths/")
    return name, path.strip("/")


class LocalJobRunner:
    """The compute of the recorded workspace: runs a command job's process on this machine.

    Inputs are downloaded from the datastore's container (as `ro_mount` would show them), the outputs
    folder is uploaded back to its datastore path afterwards (as `rw_mount` leaves it), `python` is this
    interpreter (or `python`), and the process gets the job's environment variables plus
    `compute_env` (the compute's credentials: Azurite's connection string in the tests).
    """

    def __init__(self, blob_service: Any, compute_env: dict[str, str], python: str = sys.executable) -> None:
        self.blobs = blob_service
        self.compute_env = compute_env
        self.python = python
        self.last: subprocess.CompletedProcess | None = None

    def _container(self, client: RecordedMLClient, datastore: str) -> Any:
        return self.blobs.get_container_client(client.datastores.store[datastore].container_name)

    def __call__(self, client: RecordedMLClient, command: Any) -> tuple[str, dict | None]:
        work = client.root / "jobs" / command.name
        text = str(command.command)
        for kind, items in (("inputs", command.inputs), ("outputs", command.outputs)):
            for key, item in (items or {}).items():
                local = work / kind / key
                local.mkdir(parents=True, exist_ok=True)
                if kind == "inputs":
                    datastore, path = _datastore_path(item.path)
                    container = self._container(client, datastore)
                    for blob in container.list_blobs(name_starts_with=f"{path}/"):
                        target = local / blob.name[len(path) + 1 :]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(container.download_blob(blob.name).readall())
                text = text.replace(f"${{{{{kind}.{key}}}}}", str(local))
        argv = shlex.split(text)
        if argv and argv[0] == "python":
            argv[0] = self.python
        env = {**os.environ, **(command.environment_variables or {}), **self.compute_env}
        self.last = subprocess.run(
            argv, cwd=work / "code", env=env, capture_output=True, text=True, timeout=900, check=False
        )
        for key, item in (command.outputs or {}).items():
            datastore, path = _datastore_path(item.path)
            container = self._container(client, datastore)
            for file in sorted(p for p in (work / "outputs" / key).rglob("*") if p.is_file()):
                rel = file.relative_to(work / "outputs" / key).as_posix()
                with file.open("rb") as data:
                    container.upload_blob(f"{path}/{rel}", data, overwrite=True)
        if self.last.returncode == 0:
            return "Completed", None
        tail = (self.last.stderr.strip().splitlines() or ["(no output)"])[-1]
        return "Failed", {
            "code": "UserError",
            "message": f"Execution failed. User process '{argv[0]}' exited with status code "
            f"{self.last.returncode}. Please check log file 'user_logs/std_log.txt' for error details. "
            f"Error: {tail}",
        }


def no_compute(client: RecordedMLClient, command: Any) -> tuple[str, dict | None]:
    return "Failed", {"code": "ServiceError", "message": "no compute is emulated in this test"}


class RecordedMLClient:
    """Stands in for `azure.ai.ml.MLClient` in the tests (see the module docstring)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="recorded-mlclient-"))
        self.calls: list[tuple] = []
        self.delays: dict[str, float] = {}
        self.fail: dict[str, Exception] = {}
        self.answers: dict[str, str] = {}  # deployment name -> raw invoke answer (to simulate a wrong one)
        self.deployment_state = "Succeeded"
        self.job_runner: Callable[[RecordedMLClient, Any], tuple[str, dict | None]] = no_compute
        self.job_failure: dict | None = None
        self.models = _Models(self)
        self.online_endpoints = _Endpoints(self)
        self.online_deployments = _Deployments(self)
        self.datastores = _Datastores(self)
        self.jobs = _Jobs(self)

    def create_or_update(self, entity: Any, **_: Any) -> Any:
        """`MLClient.create_or_update`: jobs only here (the SDK dispatches on the entity's type)."""
        from azure.ai.ml.entities import Command, Job

        if isinstance(entity, Command | Job):
            return self.jobs.create(entity)
        raise TypeError(f"the recorded MLClient creates jobs only, not {type(entity).__name__}")

    def ops(self, prefix: str = "online_") -> list[tuple]:
        """The recorded calls whose operation starts with `prefix`."""
        return [c for c in self.calls if c[0].startswith(prefix)]
