"""The local scoring endpoint: `score.py` under Azure ML's inference server, deployed blue/green.

Layout under the endpoint root (`GLOBOLATTE_HOME/endpoint`):

    endpoint.json                 the endpoint record: live colour, URL, port, pid, model versions
    history.jsonl                 one line per deployment attempt (switched or failed, with the reason)
    deploy.lock                   one deployment at a time
    deployments/<colour>-<stamp>/ code/ (a copy of the package, like Azure ML's code upload),
                                  model/ (the champions bundle), server.log

A deployment starts `azmlinfsrv` for the new colour on a free 127.0.0.1 port, waits until it is ready,
smoke-tests it with real requests (answers must equal the champions' own answers), then switches the
record (written to a temporary file and renamed) and stops the old colour after a short drain. A failed
smoke test stops the new server and leaves the record, and the old colour, untouched.

`ScoringProxy` is the stable front (`globolatte serve --port 8765`): it forwards every request to the
colour the record names, re-reading the record when the file changes. Scoring has no side effects, so a
request whose connection fails while colours switch is retried against the current record: a switch
loses no request.

No Dagster here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from globolatte_dagster.lib.registry import read_json, write_json_atomic
from globolatte_dagster.serving.smoke import (
    BAD_REQUEST,
    SmokeTestFailed,
    check_answers,
    expected_answers,
    load_bundle,
    smoke_requests,
)

HOST = "127.0.0.1"
COLOURS = ("blue", "green")
RECORD = "endpoint.json"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
SERVER_MARK = "azureml_inference_server_http.amlserver"

# Runs azmlinfsrv exactly as its console script does, bound to 127.0.0.1 instead of 0.0.0.0 (the server
# has no host option). It does not import globolatte_dagster, so score.py imports the deployment's copy.
_LAUNCHER = (
    "import sys; import azureml_inference_server_http.constants as c; c.DEFAULT_HOST = sys.argv.pop(1); "
    "from azureml_inference_server_http.amlserver import run; sys.argv[0] = 'azmlinfsrv'; run()"
)


class DeploymentFailed(RuntimeError):
    """A new colour did not start or failed its smoke test; the old deployment keeps serving."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int | None) -> bool:
    """True if `pid` is one of our inference servers and has not exited (zombies count as exited)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return SERVER_MARK in cmdline and state not in ("Z", "X")


def stop_server(pid: int | None, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM the server's process group (gunicorn finishes in-flight requests), SIGKILL after `timeout`."""
    if not pid_alive(pid):
        if proc is not None:
            proc.poll()
        return
    assert pid is not None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return
            if not pid_alive(pid):
                return
            time.sleep(0.05)


def start_server(deployment: Path, port: int, workers: int = 1) -> subprocess.Popen:
    """Start azmlinfsrv for `deployment` (code/, model/) on 127.0.0.1:`port`, in its own process group."""
    code = deployment / "code"
    entry = code / "globolatte_dagster" / "serving" / "score.py"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AZUREML_MODEL_DIR", "AZUREML_ENTRY_SCRIPT", "PYTHONPATH")
    }
    env.update({"AML_APP_ROOT": str(code), "WORKER_TIMEOUT": "60", "PYTHONUNBUFFERED": "1"})
    args = [
        sys.executable,
        "-c",
        _LAUNCHER,
        HOST,
        "--entry_script",
        str(entry),
        "--model_dir",
        str(deployment / "model"),
        "--port",
        str(port),
        "--worker_count",
        str(workers),
    ]
    log = (deployment / "server.log").open("ab")
    try:
        return subprocess.Popen(
            args, cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        log.close()


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> dict[str, Any]:
    """Poll GET /score until it answers 200 (the served model versions); fail if the server exits."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DeploymentFailed(f"the inference server exited with {proc.returncode}: {log_tail(log)}")
            with contextlib.suppress(httpx.TransportError):
                r = client.get(f"{url}/score")
                if r.status_code == 200:
                    return r.json()
            time.sleep(0.1)
    raise DeploymentFailed(f"the inference server was not ready after {timeout:.0f}s: {log_tail(log)}")


def log_tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no server log)"
    keep = [t for t in text if "ERROR" in t or "Error" in t or "Traceback" in t] or text
    return " | ".join(keep[-lines:])


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
        self.drain_seconds = drain_seconds
        self.workers = workers
        self.keep = keep
        self._procs: dict[int, subprocess.Popen] = {}

    @property
    def record_path(self) -> Path:
        return self.root / RECORD

    def record(self) -> dict[str, Any] | None:
        return read_json(self.record_path) if self.record_path.exists() else None

    def live_record(self) -> dict[str, Any] | None:
        """The record if its server is still running, else None."""
        rec = self.record()
        return rec if rec and pid_alive(rec.get("pid")) else None

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
        """Deploy `bundle` to the idle colour, smoke-test it, switch the record, stop the old colour."""
        with self._lock():
            old = self.live_record()
            colour = "green" if old and old.get("colour") == "blue" else "blue"
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            deployment = self.root / "deployments" / f"{colour}-{stamp}"
            shutil.copytree(
                PACKAGE_DIR,
                deployment / "code" / PACKAGE_DIR.name,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
            shutil.copytree(bundle, deployment / "model")
            port = free_port()
            url = f"http://{HOST}:{port}"
            log(f"deploying {versions} as {colour} on {url}")
            t0 = time.perf_counter()
            proc = start_server(deployment, port, self.workers)
            try:
                wait_ready(url, proc, deployment / "server.log", self.ready_timeout)
                startup = time.perf_counter() - t0
                smoke = smoke_test(url, load_bundle(deployment / "model"), versions)
            except (DeploymentFailed, SmokeTestFailed, httpx.HTTPError, ValueError) as exc:
                stop_server(proc.pid, proc=proc)
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
            self._procs[proc.pid] = proc
            record = {
                "colour": colour,
                "url": url,
                "port": port,
                "pid": proc.pid,
                "model_versions": versions,
                "deployment_dir": str(deployment),
                "deployed_at": now(),
                "previous": {k: old.get(k) for k in ("colour", "url", "pid", "model_versions")}
                if old
                else None,
            }
            write_json_atomic(self.record_path, record)  # the switch: the proxy follows this file
            log(f"switched the endpoint to {colour} ({url})")
            if old:
                time.sleep(
                    self.drain_seconds
                )  # requests routed just before the switch finish on the old colour
                stop_server(old.get("pid"), proc=self._procs.pop(old.get("pid"), None))
                log(f"stopped {old['colour']} (pid {old.get('pid')})")
            self._history(
                {
                    "at": now(),
                    "colour": colour,
                    "status": "switched",
                    "url": url,
                    "model_versions": versions,
                    "previous": old and old.get("colour"),
                }
            )
            self._prune(keep={deployment})
            return {**record, "startup_seconds": round(startup, 3), "smoke": smoke}

    def reap(self) -> None:
        """Collect the exit status of servers this process started and another process stopped."""
        for pid, proc in list(self._procs.items()):
            if proc.poll() is not None:
                self._procs.pop(pid, None)

    def stop(self) -> dict[str, Any] | None:
        """Stop the live colour and remove the record."""
        with self._lock():
            rec = self.record()
            if rec:
                stop_server(rec.get("pid"), proc=self._procs.pop(rec.get("pid"), None))
                self.record_path.unlink(missing_ok=True)
                self._history({"at": now(), "colour": rec.get("colour"), "status": "stopped"})
            return rec

    def _prune(self, keep: set[Path]) -> None:
        folder = self.root / "deployments"
        old = sorted(
            (p for p in folder.iterdir() if p.is_dir() and p not in keep), key=lambda p: p.stat().st_mtime
        )
        for path in old[: max(len(old) - (self.keep - 1), 0)]:
            shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------------------- proxy
class RecordWatcher:
    """The endpoint record, re-read only when the file changes (a switch renames a new file into place)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._record: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def current(self) -> dict[str, Any] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                # keep the previous record until the new one reads cleanly
                with contextlib.suppress(OSError, ValueError):
                    self._record, self._stamp = read_json(self.path), stamp
            return self._record


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ScoringProxy

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
        error = "no deployment"
        for attempt in range(self.server.retries):
            record = self.server.watcher.current()
            if record is None:
                self._send(
                    503, json.dumps({"message": "no deployment is serving: run `globolatte serve`"}).encode()
                )
                return
            try:
                r = self.server.client.request(
                    self.command, record["url"] + self.path, content=body, headers=headers
                )
            except (
                httpx.TransportError
            ) as exc:  # the colour went away between reading the record and the call
                error = f"{type(exc).__name__}: {exc}"
                time.sleep(min(0.05 * (attempt + 1), 0.5))
                continue
            self._send(
                r.status_code,
                r.content,
                r.headers.get("content-type", "application/json"),
                {"x-globolatte-colour": str(record.get("colour"))},
            )
            return
        self._send(502, json.dumps({"message": f"the deployment did not answer: {error}"}).encode())


class ScoringProxy(ThreadingHTTPServer):
    """The stable local front on 127.0.0.1:`port`, forwarding to the colour named by the record."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, port: int, record_path: str | Path, retries: int = 20, verbose: bool = False) -> None:
        self.watcher = RecordWatcher(Path(record_path))
        self.client = httpx.Client(
            timeout=60.0, limits=httpx.Limits(max_connections=64, max_keepalive_connections=0)
        )
        self.retries = retries
        self.verbose = verbose
        super().__init__((HOST, port), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def server_close(self) -> None:
        super().server_close()
        self.client.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[ScoringProxy]:
        """Serve in a background thread for the duration of the block."""
        thread = threading.Thread(target=self.serve_forever, name="scoring-proxy", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.shutdown()
            self.server_close()
            thread.join(timeout=5)
