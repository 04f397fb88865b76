"""Helpers of the endpoint tests: a deployed champions bundle, raw HTTP on a socket, server listings."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from globolatte_dagster.lib.contract import REGION_KEYS
from globolatte_dagster.lib.model_store import LocalRegistryStore
from globolatte_dagster.serving.model_server import server_processes

FIELDS = {"region", "customer_id", "recommendations", "segment", "model_version", "candidate", "cold_start"}
GOOD = {"region": "america", "customer_id": "C1", "date": "2025-02-01"}


def for_date(case) -> str:
    return (case.case.last_day + timedelta(days=1)).isoformat()


def mixed_requests(case, n: int) -> list[dict]:
    out = []
    for i in range(n):
        region = REGION_KEYS[i % 3]
        ids = [str(c) for c in case.models[region].customers]
        cid = ids[i % len(ids)] if i % 10 else f"NEW-{i}"
        req = {"region": region, "customer_id": cid, "date": for_date(case), "k": 1 + i % 5}
        if i % 4 == 0:
            req["temp_max_c"] = float(5 + i % 30)
        out.append(req)
    return out


def servers_under(root: Path) -> list[int]:
    """Inference servers serving a deployment under `root`, by process group (= the server's first pid)."""
    return sorted({p["pgid"] for p in server_processes(root)})


def wait_until_no_servers(root: Path, timeout: float = 30.0) -> list[int]:
    """The servers left under `root` once `timeout` has passed (a stopped group takes a moment to exit)."""
    deadline = time.monotonic() + timeout
    while servers_under(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    return servers_under(root)


def seed_home(home: Path, store: LocalRegistryStore) -> None:
    """Copy every region's champion of `store` into `home/registry`, as `globolatte serve` reads it."""
    target = LocalRegistryStore(home / "registry")
    for region in REGION_KEYS:
        model = store.load(region, store.get_alias(region, "champion"))
        target.set_alias(region, "champion", target.register(region, model, model.metrics, {}).version)


def start_serve(home: Path, port: int) -> subprocess.Popen:
    code = "from globolatte_dagster.serving.cli import serve; serve()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "--port", str(port)],
        env={**os.environ, "GLOBOLATTE_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_serving(proc: subprocess.Popen, port: int, timeout: float = 120.0) -> dict[str, Any]:
    """The front's status (`GET /`) once it answers 200; fails with the command's output otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
            if r.status_code == 200:
                return r.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    out = proc.stdout.read() if proc.poll() is not None and proc.stdout else ""
    raise AssertionError(f"globolatte serve did not come up on {port}: {out}")


# ------------------------------------------------------------------------------------------ raw HTTP
def raw_http(
    port: int, data: bytes, timeout: float = 15.0, body: bool = True
) -> tuple[int, dict[str, str], bytes]:
    """Send `data` as is on a fresh connection; (status, headers, body) of the first response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock, body)


def read_response(sock: socket.socket, body_expected: bool = True) -> tuple[int, dict[str, str], bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response head: {buf[:200]!r}")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0")) if body_expected else 0
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:length]


def message(body: bytes) -> str:
    """The JSON error's message (the test fails if the body is not such JSON)."""
    payload = json.loads(body)
    assert isinstance(payload, dict) and isinstance(payload.get("message"), str), payload
    return payload["message"]
