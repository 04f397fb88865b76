"""Process control of one model server: `score.py` under Azure ML's inference server (`azmlinfsrv`).

A `ModelServer` is started from a deployment folder (`code/`, `model/`, `server.log`) on a free
127.0.0.1 port, in its own process group, and stopped with its whole group. Whoever starts one owns it
and stops it (README, "Who starts and stops each server"): the deployer its smoke-test server, a front
(`globolatte serve`) the servers it answers from.

The child asks the kernel to send it SIGTERM when the thread that started it ends
(`PR_SET_PDEATHSIG`), so a killed owner leaves no server behind either. No Dagster here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from globolatte_dagster import settings

HOST = "127.0.0.1"
SERVER_MARK = "azureml_inference_server_http.amlserver"

# Runs azmlinfsrv exactly as its console script does, bound to 127.0.0.1 instead of 0.0.0.0 (the server
# has no host option). First, on Linux, the child asks for SIGTERM when its starter goes away, and exits
# if the starter is already gone (argv: host, starter pid). It does not import globolatte_dagster, so
# score.py imports the deployment's copy.
_LAUNCHER = (
    "import os, signal, sys\n"
    "try:\n"
    "    import ctypes; ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG\n"
    "except Exception:\n"
    "    pass\n"
    "host, starter = sys.argv.pop(1), int(sys.argv.pop(1))\n"
    "if os.getppid() != starter:\n"
    "    sys.exit(0)\n"
    "import azureml_inference_server_http.constants as c; c.DEFAULT_HOST = host\n"
    "from azureml_inference_server_http.amlserver import run; sys.argv[0] = 'azmlinfsrv'; run()\n"
)


class ServerFailed(RuntimeError):
    """A model server did not start or did not become ready."""


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


def server_processes(under: str | Path | None = None) -> list[dict[str, Any]]:
    """Running inference servers (every process of each server's group), optionally only those serving a
    deployment under the folder `under`: `[{"pid", "pgid", "ppid", "cmdline"}]`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if SERVER_MARK not in cmdline or stat[0] in ("Z", "X"):
            continue
        if under is not None and str(Path(under).resolve()) not in cmdline:
            continue
        found.append({"pid": int(entry.name), "ppid": int(stat[1]), "pgid": int(stat[2]), "cmdline": cmdline})
    return found


def log_tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no server log)"
    keep = [t for t in text if "ERROR" in t or "Error" in t or "Traceback" in t] or text
    return " | ".join(keep[-lines:])


@dataclass
class ModelServer:
    """One `azmlinfsrv` process group serving a deployment folder on 127.0.0.1:`port`."""

    deployment: Path
    port: int
    proc: subprocess.Popen
    started: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log(self) -> Path:
        return self.deployment / "server.log"

    @classmethod
    def start(cls, deployment: str | Path, port: int | None = None, workers: int = 1) -> ModelServer:
        """Start azmlinfsrv for `deployment` (code/, model/) in its own process group; not yet ready."""
        deployment = Path(deployment).resolve()
        code = deployment / "code"
        entry = code / "globolatte_dagster" / "serving" / "score.py"
        port = port or free_port()
        env = settings.child_environment(drop=("AZUREML_MODEL_DIR", "AZUREML_ENTRY_SCRIPT", "PYTHONPATH"))
        env.update({"AML_APP_ROOT": str(code), "WORKER_TIMEOUT": "60", "PYTHONUNBUFFERED": "1"})
        args = [
            sys.executable,
            "-c",
            _LAUNCHER,
            HOST,
            str(os.getpid()),
            "--entry_script",
            str(entry),
            "--model_dir",
            str(deployment / "model"),
            "--port",
            str(port),
            "--worker_count",
            str(workers),
        ]
        with (deployment / "server.log").open("ab") as log:
            proc = subprocess.Popen(
                args, cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return cls(deployment, port, proc)

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """Poll GET /score until it answers 200 (the served model versions); fail if the server exits."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.exited():
                    raise ServerFailed(
                        f"the inference server exited with {self.proc.returncode}: {log_tail(self.log)}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    r = client.get(f"{self.url}/score")
                    if r.status_code == 200:
                        return r.json()
                time.sleep(0.1)
        raise ServerFailed(f"the inference server was not ready after {timeout:.0f}s: {log_tail(self.log)}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the process group (gunicorn finishes in-flight requests), SIGKILL after `timeout`."""
        stop_group(self.proc.pid, timeout, self.proc)


def stop_group(pid: int | None, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM the process group led by `pid`, SIGKILL it after `timeout`; reap `proc` if given."""
    if not pid:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None and not _group_alive(pid):
                return
            if proc is None and not _group_alive(pid):
                return
            time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process of group `pgid` is left (the gunicorn worker outlives its master)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return any(p["pgid"] == pgid for p in server_processes())
