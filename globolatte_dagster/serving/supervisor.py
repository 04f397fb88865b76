"""The model servers of one front: started from the recorded deployment, probed, restarted, switched.

A `Supervisor` belongs to one front (`globolatte serve`) and owns the model servers it starts: nobody
else stops them, and the front stops them when it exits. Its thread

- follows the endpoint record (`endpoint.json`, written by `deployer.LocalDeployer`): when the recorded
  deployment changes it starts a server on the new folder, waits until it is ready, switches to it, lets
  the old one drain (`drain_seconds` of the record), then stops it;
- checks every `probe_interval` seconds that the live server's process is alive, and every
  `http_probe_every` checks that it answers: a request the front got an answer to since the last check
  counts (`mark_alive`), else `GET /` must answer within `probe_timeout`. A dead server, or one that
  failed `failures_to_restart` such checks in a row (hung), gets restarted from the recorded deployment
  folder. Meanwhile `current` is None and the front answers 503 with Retry-After. (The server has one
  sync worker: under load a probe waits behind the queued requests, so answers to requests count as
  life, and a slow probe alone never restarts a busy server.)

A request that cannot reach the server calls `nudge()`, so the next probe runs at once. No Dagster here.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from globolatte_dagster.lib.json_io import read_json
from globolatte_dagster.serving.model_server import ModelServer, ServerFailed


class RecordWatcher:
    """The endpoint record, re-read only when the file changes (a switch renames a new file into place)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._record: dict[str, Any] | None = None

    def current(self) -> dict[str, Any] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._record = None, None
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            # keep the previous record until the new one reads cleanly
            with contextlib.suppress(OSError, ValueError):
                self._record, self._stamp = read_json(self.path), stamp
        return self._record


@dataclass(frozen=True)
class Backend:
    """A ready model server and the deployment it serves."""

    server: ModelServer
    colour: str
    deployment_dir: str
    model_versions: dict[str, str]
    ready_at: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int:
        return self.server.pid


@dataclass
class Events:
    """What happened to the front's servers (shown by the front's `GET /` and the benchmarks)."""

    restarts: int = 0
    switches: int = 0
    last_down_at: float | None = None
    last_recovery_seconds: float | None = None
    last_error: str | None = None


class Supervisor:
    """Starts, probes, restarts and switches the model servers of one front (see the module docstring)."""

    def __init__(
        self,
        record_path: str | Path,
        *,
        probe_interval: float = 1.0,
        probe_timeout: float = 5.0,
        http_probe_every: int = 5,
        failures_to_restart: int = 3,
        ready_timeout: float = 90.0,
        log: Callable[[str], None] = print,
    ) -> None:
        self.watcher = RecordWatcher(Path(record_path))
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.http_probe_every = http_probe_every
        self._ticks = 0
        self.failures_to_restart = failures_to_restart
        self.ready_timeout = ready_timeout
        self.log = log
        self.current: Backend | None = None
        self.status = "starting"
        self.events = Events()
        self._failures = 0
        self._nudged = False
        self._alive_at = 0.0  # the last answer the front got from the live server (time.monotonic)
        self._startup_seconds = 3.0
        self._starting_since: float | None = None
        self._retired: list[tuple[Backend, float]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = httpx.Client(timeout=probe_timeout)

    # ---------------------------------------------------------------------------------------- control
    def start(self) -> Supervisor:
        self._thread = threading.Thread(target=self._loop, name="model-server-supervisor", daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, timeout: float) -> Backend:
        """Block until a server is ready (used by `globolatte serve` before it reports the URL)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.current is not None:
                return self.current
            if self._thread is not None and not self._thread.is_alive():
                break
            time.sleep(0.05)
        raise ServerFailed(f"no model server became ready: {self.status} {self.events.last_error or ''}")

    def mark_alive(self) -> None:
        """The front got an answer from the live server: it is not hung."""
        self._alive_at = time.monotonic()

    def nudge(self) -> None:
        """A request could not reach the server: probe now rather than at the next interval."""
        self._nudged = True
        self._wake.set()

    def retry_after(self) -> int:
        """Seconds a client should wait before retrying while no server is ready: what is left of a
        start-up as long as the last one (at least 1)."""
        elapsed = time.monotonic() - self._starting_since if self._starting_since else 0.0
        return max(1, round(self._startup_seconds - elapsed))

    def close(self) -> None:
        """Stop the thread, then every server this supervisor started."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ready_timeout + 10)
        backends = [b for b, _ in self._retired]
        if self.current is not None:
            backends.append(self.current)
        self.current = None
        for backend in backends:
            backend.server.stop(timeout=10)
        self._retired.clear()
        self._client.close()
        self.status = "stopped"

    # ------------------------------------------------------------------------------------------- loop
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as exc:  # keep supervising whatever went wrong in one tick
                self.events.last_error = f"{type(exc).__name__}: {exc}"
                self.log(f"supervisor: {self.events.last_error}")
            self._nudged = False
            self._wake.wait(self.probe_interval)
            self._wake.clear()

    def _tick(self) -> None:
        self._stop_drained()
        record = self.watcher.current()
        if record is None or not record.get("deployment_dir"):
            if self.current is None:
                self.status = "no deployment"
            return
        current = self.current
        if current is None or current.deployment_dir != record["deployment_dir"]:
            self._switch(record)
        elif current.server.exited():
            self._restart(record, current)
        else:
            self._ticks += 1
            if self._ticks % self.http_probe_every and not self._failures and not self._nudged:
                return
            checked_at = time.monotonic()
            if (
                self._alive_at >= checked_at - self.probe_interval * self.http_probe_every
                or self._probe(current)
                or self._alive_at >= checked_at
            ):
                self._failures = 0
            else:
                self._failures += 1
                if self._failures >= self.failures_to_restart:
                    self._restart(record, current)

    def _probe(self, backend: Backend) -> bool:
        try:
            return self._client.get(f"{backend.url}/").status_code == 200
        except httpx.HTTPError:
            return False

    def _start(self, record: dict[str, Any]) -> Backend:
        t0 = self._starting_since = time.monotonic()
        server = ModelServer.start(record["deployment_dir"], workers=int(record.get("workers") or 1))
        try:
            served = server.wait_ready(self.ready_timeout)
        except BaseException:
            server.stop(timeout=5)
            raise
        finally:
            self._starting_since = None
        self._startup_seconds = time.monotonic() - t0
        return Backend(
            server, str(record.get("colour")), record["deployment_dir"], served.get("model_versions") or {}
        )

    def _switch(self, record: dict[str, Any]) -> None:
        """Start the recorded deployment, then retire the server it replaces (after its drain)."""
        old = self.current
        if old is None:
            self.status = "starting"
        try:
            new = self._start(record)
        except (ServerFailed, OSError) as exc:
            self.events.last_error = f"{record.get('colour')} did not start: {exc}"
            self.log(self.events.last_error)
            self._stop.wait(min(10.0, 2 * self.probe_interval))  # do not hammer a broken deployment
            return
        self.current, self.status, self._failures = new, "ready", 0
        if old is not None:
            self.events.switches += 1
            drain = float(record.get("drain_seconds") or 1.0)
            self._retired.append((old, time.monotonic() + drain))
        self.log(f"serving {new.colour} {new.model_versions} (model server pid {new.pid})")

    def _restart(self, record: dict[str, Any], dead: Backend) -> None:
        """The live server died or stopped answering: answer 503 until a new one is ready."""
        down_at = time.monotonic()
        self.current, self.status = None, "restarting"
        self.events.last_down_at = down_at
        reason = f"exited with {dead.server.proc.returncode}" if dead.server.exited() else "stopped answering"
        self.log(f"model server pid {dead.pid} {reason}: restarting it from {record['deployment_dir']}")
        dead.server.stop(timeout=2)
        while not self._stop.is_set():
            try:
                new = self._start(record)
                break
            except (ServerFailed, OSError) as exc:
                self.events.last_error = f"restart failed: {exc}"
                self.log(self.events.last_error)
                self._stop.wait(min(10.0, 2 * self.probe_interval))
                record = self.watcher.current() or record
        else:
            return
        self.current, self.status, self._failures = new, "ready", 0
        self.events.restarts += 1
        self.events.last_recovery_seconds = round(time.monotonic() - down_at, 3)
        self.log(f"model server back after {self.events.last_recovery_seconds}s (pid {new.pid})")

    def _stop_drained(self) -> None:
        now = time.monotonic()
        for backend, until in list(self._retired):
            if now >= until:
                backend.server.stop()
                self._retired.remove((backend, until))

    def describe(self) -> dict[str, Any]:
        """The front's view of its model server, for `GET /`."""
        current = self.current
        return {
            "status": self.status,
            "colour": current.colour if current else None,
            "model_versions": current.model_versions if current else None,
            "model_server_pid": current.pid if current else None,
            "model_server_url": current.url if current else None,
            "restarts": self.events.restarts,
            "switches": self.events.switches,
            "last_recovery_seconds": self.events.last_recovery_seconds,
        }
