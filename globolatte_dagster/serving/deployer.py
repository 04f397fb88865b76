"""Blue/green deployments of the local endpoint: prepare a colour, smoke-test it, switch the record.

Layout under the endpoint root (`GLOBOLATTE_HOME/endpoint`):

    endpoint.json                 the record: live colour, its deployment folder, model versions
    history.jsonl                 one line per deployment attempt (switched or failed, with the reason)
    deploy.lock                   one deployment at a time
    deployments/<colour>-<stamp>/ code/ (a copy of the package, like Azure ML's code upload),
                                  model/ (the champions bundle), server.log

`LocalDeployer.deploy` copies the code and the bundle into a new folder, starts a model server on it
(`model_server.ModelServer`), smoke-tests it with real requests (answers must equal the champions' own
answers), stops it, and only then switches the record (written to a temporary file and renamed). A failed
smoke test leaves the record, and so the colour every front serves, untouched.

The deployer owns only its smoke-test server, for the length of `deploy`: a deployment leaves no process
running. The fronts (`globolatte serve`, `serving.front`) follow the record and run their own servers
from the recorded folder. No Dagster here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from globolatte_dagster.lib.json_io import read_json, write_json_atomic
from globolatte_dagster.serving.model_server import ModelServer, ServerFailed
from globolatte_dagster.serving.smoke import (
    BAD_REQUEST,
    SmokeTestFailed,
    check_answers,
    expected_answers,
    load_bundle,
    smoke_requests,
)

COLOURS = ("blue", "green")
RECORD = "endpoint.json"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


class DeploymentFailed(RuntimeError):
    """A new colour did not start or failed its smoke test; the recorded deployment keeps serving."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def smoke_test(url: str, models: dict[str, Any], versions: dict[str, str]) -> dict[str, Any]:
    """Real requests against a new colour: a batch, a single request, a bad request, then liveness."""
    requests = smoke_requests(models)
    t0 = time.perf_counter()
    with httpx.Client(timeout=30.0) as client:
        r = client.post(f"{url}/score", json={"requests": requests})
        if r.status_code != 200:
            raise SmokeTestFailed(f"batch of {len(requests)} answered {r.status_code}: {r.text[:300]}")
        expected = expected_answers(models, requests)
        check_answers(requests, r.json(), versions, expected)
        single = client.post(f"{url}/score", json=requests[0])
        if single.status_code != 200 or single.json() != expected[0]:
            raise SmokeTestFailed(f"single request answered {single.status_code}: {single.text[:300]}")
        bad = client.post(f"{url}/score", json=BAD_REQUEST)
        if bad.status_code != 400 or "message" not in bad.json():
            raise SmokeTestFailed(f"an unknown region answered {bad.status_code}, not 400: {bad.text[:300]}")
        alive = client.get(f"{url}/score")
        if alive.status_code != 200 or alive.json().get("model_versions") != versions:
            raise SmokeTestFailed(
                f"after a bad request the server answered {alive.status_code}: {alive.text[:300]}"
            )
    return {"requests": len(requests) + 3, "seconds": round(time.perf_counter() - t0, 3)}


class LocalDeployer:
    """Blue/green deployments of a champions bundle under `root` (see the module docstring)."""

    def __init__(
        self,
        root: str | Path,
        ready_timeout: float = 90.0,
        drain_seconds: float = 1.0,
        workers: int = 1,
        keep: int = 4,
    ) -> None:
        self.root = Path(root)
        self.ready_timeout = ready_timeout
        self.drain_seconds = drain_seconds  # how long a front keeps the old colour after a switch
        self.workers = workers
        self.keep = keep

    @property
    def record_path(self) -> Path:
        return self.root / RECORD

    def record(self) -> dict[str, Any] | None:
        return read_json(self.record_path) if self.record_path.exists() else None

    def live_record(self) -> dict[str, Any] | None:
        """The record if its deployment folder is still there (a front can serve it), else None."""
        rec = self.record()
        folder = Path(str((rec or {}).get("deployment_dir") or ""))
        return rec if rec and (folder / "model").is_dir() and (folder / "code").is_dir() else None

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "deploy.lock").open("w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _history(self, entry: dict[str, Any]) -> None:
        with (self.root / "history.jsonl").open("a") as f:
            f.write(json.dumps(entry) + "\n")

    def deploy(
        self, bundle: str | Path, versions: dict[str, str], log: Callable[[str], None] = print
    ) -> dict[str, Any]:
        """Prepare `bundle` as the idle colour, smoke-test it on its own server, then switch the record."""
        with self._lock():
            old = self.live_record()
            colour = "green" if old and old.get("colour") == "blue" else "blue"
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            deployment = (self.root / "deployments" / f"{colour}-{stamp}").resolve()
            shutil.copytree(
                PACKAGE_DIR,
                deployment / "code" / PACKAGE_DIR.name,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
            shutil.copytree(bundle, deployment / "model")
            log(f"smoke-testing {versions} as {colour} ({deployment.name})")
            t0 = time.perf_counter()
            server = ModelServer.start(deployment, workers=self.workers)
            try:
                server.wait_ready(self.ready_timeout)
                startup = time.perf_counter() - t0
                smoke = smoke_test(server.url, load_bundle(deployment / "model"), versions)
            except (ServerFailed, SmokeTestFailed, httpx.HTTPError, ValueError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                self._history(
                    {
                        "at": now(),
                        "colour": colour,
                        "status": "failed",
                        "reason": reason,
                        "model_versions": versions,
                        "kept": old and old.get("colour"),
                    }
                )
                raise DeploymentFailed(
                    f"{colour} failed its checks and was stopped; "
                    f"{'the ' + old['colour'] + ' deployment keeps serving' if old else 'nothing was serving'}: {reason}"
                ) from exc
            finally:
                server.stop()  # the deployer's server lives only for the smoke test
            record = {
                "colour": colour,
                "deployment_dir": str(deployment),
                "model_versions": versions,
                "deployed_at": now(),
                "drain_seconds": self.drain_seconds,
                "workers": self.workers,
                "previous": {k: old.get(k) for k in ("colour", "deployment_dir", "model_versions")}
                if old
                else None,
            }
            write_json_atomic(self.record_path, record)  # the switch: every front follows this file
            log(f"switched the endpoint to {colour}; `globolatte serve` fronts follow it")
            self._history(
                {
                    "at": now(),
                    "colour": colour,
                    "status": "switched",
                    "deployment_dir": str(deployment),
                    "model_versions": versions,
                    "previous": old and old.get("colour"),
                }
            )
            self._prune(keep={deployment, Path(str((old or {}).get("deployment_dir") or ""))})
            return {**record, "startup_seconds": round(startup, 3), "smoke": smoke}

    def stop(self) -> dict[str, Any] | None:
        """Nothing to stop: a deployment leaves no server running (kept for callers of the old API)."""
        return self.record()

    def _prune(self, keep: set[Path]) -> None:
        folder = self.root / "deployments"
        old = sorted(
            (p for p in folder.iterdir() if p.is_dir() and p.resolve() not in keep),
            key=lambda p: p.stat().st_mtime,
        )
        for path in old[: max(len(old) - (self.keep - 2), 0)]:
            shutil.rmtree(path, ignore_errors=True)
