"""A real `dagster dev` (webserver + daemon) on a free port, and a small GraphQL client for it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = "__repository__"
MODULE = "globolatte_dagster.definitions"
LOCATION = "globolatte_dagster"  # workspace.yaml's location_name, the project's code_location_name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DagsterServer:
    def __init__(self, home: Path, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT) -> None:
        self.home = home
        self.cwd = cwd  # the benchmarks run a snapshot of the package from its own folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dagster_home = home / "dagster_home"
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / "deploy" / "local" / "dagster.yaml", self.dagster_home / "dagster.yaml")
        self.env = {
            **os.environ,
            "GLOBOLATTE_HOME": str(home),
            "GLOBOLATTE_ENV": "local",
            "DAGSTER_HOME": str(self.dagster_home),
            **(env or {}),
        }
        self.log = open(home / "dagster-dev.log", "wb")  # noqa: SIM115
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 240) -> DagsterServer:
        dagster = Path(sys.executable).parent / "dagster"
        # the repository's workspace.yaml, with this checkout's folder: the same location name as `make dev`
        workspace = self.home / "workspace.yaml"
        workspace.write_text(
            "load_from:\n  - python_module:\n"
            f"      module_name: {MODULE}\n      working_directory: {self.cwd}\n"
            f"      location_name: {LOCATION}\n"
        )
        self.proc = subprocess.Popen(
            [str(dagster), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=self.cwd,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited ({self.proc.returncode}); see {self.log.name}")
            try:
                status = self.location_status()
                if status == "LOADED":
                    return self
                if status == "ERROR":
                    raise RuntimeError(f"code location failed to load: {self.location_error()}")
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(f"dagster dev did not load the code location in {timeout}s; see {self.log.name}")

    def stop(self) -> None:
        """Ctrl-C, as in a terminal; SIGKILL for what is left after a 10 s grace.

        A test's server holds nothing that must outlive it (its home is a temporary folder), and waiting
        30 s for the webserver to let go of its connections cost every UI test module half a minute.
        """
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.log.close()

    def gql(self, query: str, variables: dict | None = None) -> dict:
        response = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]

    def location_status(self) -> str | None:
        data = self.gql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
            "locationOrLoadError { __typename } } } } }"
        )
        for entry in data["workspaceOrError"]["locationEntries"]:
            if entry["name"] == LOCATION:
                if (
                    entry["locationOrLoadError"]
                    and entry["locationOrLoadError"]["__typename"] == "PythonError"
                ):
                    return "ERROR"
                return entry["loadStatus"]
        return None

    def location_error(self) -> str:
        data = self.gql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name "
            "locationOrLoadError { ... on PythonError { message } } } } } }"
        )
        return str(data)

    def launch_partition_run(self, job: str, partition: str, dimensions: dict[str, str]) -> str:
        tags = [{"key": "dagster/partition", "value": partition}] + [
            {"key": f"dagster/partition/{k}", "value": v} for k, v in dimensions.items()
        ]
        data = self.gql(
            """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
                 __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
                 ... on InvalidSubsetError { message } ... on RunConfigValidationInvalid { errors { message } } } }""",
            {
                "p": {
                    "selector": {
                        "repositoryLocationName": LOCATION,
                        "repositoryName": REPOSITORY,
                        "jobName": job,
                    },
                    "executionMetadata": {"tags": tags},
                }
            },
        )["launchRun"]
        if data["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launchRun failed: {data}")
        return data["run"]["runId"]

    def run_status(self, run_id: str) -> str:
        data = self.gql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id}
        )
        return data["runOrError"]["status"]

    def wait_for_run(self, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.run_status(run_id)
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(1)
        raise TimeoutError(f"run {run_id} still {status} after {timeout}s")

    def launch_backfill(self, partition_names: list[str], asset_keys: list[list[str]]) -> str:
        data = self.gql(
            """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
                 __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
            {"p": {"partitionNames": partition_names, "assetSelection": [{"path": k} for k in asset_keys]}},
        )["launchPartitionBackfill"]
        if data["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"launchPartitionBackfill failed: {data}")
        return data["backfillId"]

    def backfill_status(self, backfill_id: str) -> str:
        data = self.gql(
            "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }",
            {"id": backfill_id},
        )
        return data["partitionBackfillOrError"]["status"]

    def runs_with_tag(self, key: str, value: str) -> list[dict]:
        data = self.gql(
            """query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results { runId status tags { key value } } } } }""",
            {"f": {"tags": [{"key": key, "value": value}]}},
        )
        return data["runsOrError"]["results"]

    def cancel_backfill(self, backfill_id: str) -> None:
        self.gql(
            "mutation($id: String!) { cancelPartitionBackfill(backfillId: $id) { __typename } }",
            {"id": backfill_id},
        )
