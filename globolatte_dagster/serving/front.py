"""The local front, `globolatte serve`: an ASGI app on uvicorn that forwards POST/GET /score.

The front is the only listener a user talks to (127.0.0.1:PORT). It forwards exactly two routes to the
model server its `Supervisor` runs, at a URL built from a fixed host and port, never from the request:

- `POST /score`, `GET /score` -> the model server's `/score` (the scoring contract of DESIGN.md);
- `GET /` -> the front's own status (200 when a model server is ready, else 503).

Limits, each answered with a JSON `{"message": ...}` like the scoring contract's errors:

| what | answer |
|---|---|
| a request target that is not origin-form (`http://host/x`, `@host/x`, `host:port`, `*`) | 400, never forwarded |
| a malformed request line or header, an invalid or negative Content-Length | 400 (431 for headers over 16 KiB) |
| headers not complete within `header_timeout`, a body not complete within `body_timeout` | 408 |
| a body over `max_body_bytes` (announced by Content-Length, or counted while a chunked body streams) | 413 |
| any other method on `/score`, any method but GET on `/` | 405 with `Allow` |
| any other path | 404 |
| no model server ready (starting, restarting after a crash) | 503 with `Retry-After` |
| more than `max_in_flight` requests at once | 503 with `Retry-After` |
| the model server does not answer within `backend_timeout` | 504 |

Chunked request bodies are read (h11 decodes them) and forwarded with a Content-Length.

The HTTP protocol (header timeout, JSON 400s) is `http_protocol.FrontProtocol`; the hop to the model
server is `backend_client.exchange`. No Dagster here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from globolatte_dagster.serving.backend_client import BackendUnreachable, exchange
from globolatte_dagster.serving.bounds import MAX_BODY_BYTES
from globolatte_dagster.serving.http_protocol import protocol_class
from globolatte_dagster.serving.model_server import HOST
from globolatte_dagster.serving.supervisor import Supervisor

SCORE_METHODS = ("GET", "POST")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = MAX_BODY_BYTES  # the largest valid batch (1,000 requests) fits with room
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    backend_timeout: float = 30.0
    keep_alive: float = 5.0
    max_in_flight: int = 64
    max_header_bytes: int = 16 * 1024


class Problem(Exception):
    """An HTTP error answered as JSON."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def json_bytes(payload: Any) -> bytes:
    return json.dumps(payload).encode()


# ------------------------------------------------------------------------------------------ ASGI app
class FrontApp:
    """The ASGI application (see the module docstring)."""

    def __init__(self, supervisor: Supervisor, limits: Limits = Limits()) -> None:
        self.supervisor = supervisor
        self.limits = limits
        self.in_flight = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, body, headers = await self._handle(scope, receive)
        except Problem as p:
            status, body, headers = p.status, json_bytes({"message": str(p)}), p.headers
        except Exception as exc:  # never uvicorn's text/plain 500
            status, body, headers = 500, json_bytes({"message": f"front error: {type(exc).__name__}"}), {}
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", headers.pop("content-type", "application/json").encode("latin-1")),
                    (b"content-length", str(len(body)).encode()),
                    *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(self, scope: dict, receive: Any) -> tuple[int, bytes, dict[str, str]]:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        method = scope["method"]
        if not raw_path.startswith(b"/") or raw_path.startswith(b"//"):
            raise Problem(
                400,
                "only origin-form request targets are accepted (e.g. POST /score); absolute-form, "
                "authority-form and '@host' targets are refused and never forwarded",
                {"connection": "close"},
            )
        path = scope["path"]
        if path == "/":
            if method != "GET":
                raise Problem(405, f"method {method} not allowed on /: GET it", {"allow": "GET"})
            ready = self.supervisor.current is not None
            headers = {} if ready else {"retry-after": str(self.supervisor.retry_after())}
            return (200 if ready else 503), json_bytes(self.supervisor.describe()), headers
        if path != "/score":
            raise Problem(404, "not found: the endpoint is POST /score (GET /score names the models)")
        if method not in SCORE_METHODS:
            raise Problem(
                405, f"method {method} not allowed: POST a scoring request to /score", {"allow": "GET, POST"}
            )
        body = await self._read_body(scope, receive) if method == "POST" else b""
        if self.in_flight >= self.limits.max_in_flight:  # waiting on the model server, not on clients
            raise Problem(503, "too many requests in flight: retry shortly", {"retry-after": "1"})
        self.in_flight += 1
        try:
            return await self._forward(method, body)
        finally:
            self.in_flight -= 1

    async def _read_body(self, scope: dict, receive: Any) -> bytes:
        limit = self.limits.max_body_bytes
        too_large = f"request body over {limit:,} bytes: a batch holds at most 1,000 requests"
        for name, value in scope["headers"]:
            if name == b"content-length" and int(value) > limit:  # h11 has checked it is a number
                raise Problem(413, too_large, {"connection": "close"})
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise Problem(400, "the client closed the connection before the body was sent")
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise Problem(413, too_large, {"connection": "close"})
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise Problem(
                408,
                f"request body not received within {self.limits.body_timeout:g}s",
                {"connection": "close"},
            ) from None

    async def _forward(self, method: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        tried = None
        for _attempt in range(2):  # once more only if the live server changed meanwhile (a switch)
            backend = self.supervisor.current
            if backend is None or backend is tried:
                break
            tried = backend
            try:
                status, payload, content_type = await exchange(
                    HOST, backend.server.port, method, body, self.limits.backend_timeout
                )
            except TimeoutError:
                raise Problem(
                    504, f"the model server did not answer within {self.limits.backend_timeout:g}s"
                ) from None
            except BackendUnreachable:
                self.supervisor.nudge()
                continue
            self.supervisor.mark_alive()
            if status >= 400 and not content_type.startswith("application/json"):
                text = payload[:500].decode("utf-8", errors="replace")
                payload, content_type = json_bytes({"message": text or f"HTTP {status}"}), "application/json"
            return status, payload, {"content-type": content_type, "x-globolatte-colour": backend.colour}
        self.supervisor.nudge()
        raise Problem(
            503,
            f"no model server is ready ({self.supervisor.status}): retry shortly",
            {"retry-after": str(self.supervisor.retry_after())},
        )


# ------------------------------------------------------------------------------------------ server
class Front:
    """The front on 127.0.0.1:`port` with its supervisor (one per `globolatte serve`)."""

    def __init__(
        self,
        port: int,
        record_path: str | Path,
        *,
        limits: Limits = Limits(),
        verbose: bool = False,
        supervisor: Supervisor | None = None,
        log: Any = print,
    ) -> None:
        self.port = port
        self.limits = limits
        self.supervisor = supervisor or Supervisor(record_path, log=log)
        self.app = FrontApp(self.supervisor, limits)
        config = uvicorn.Config(
            self.app,
            host=HOST,
            port=port,
            http=protocol_class(limits.header_timeout, limits.max_header_bytes),
            lifespan="on",
            log_level="info" if verbose else "warning",
            access_log=verbose,
            timeout_keep_alive=int(limits.keep_alive),
            server_header=False,
            backlog=256,
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, ready_timeout: float = 90.0) -> Front:
        """Start the supervisor (and its first model server) and the HTTP listener in background threads."""
        self.supervisor.start()
        self._thread = threading.Thread(target=self.server.run, name="front", daemon=True)
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                self.supervisor.close()
                raise OSError(f"the front could not listen on {HOST}:{self.port}")
            self._thread.join(0.02)
        return self

    def stop(self) -> None:
        """Stop listening (in-flight requests finish), then stop this front's model servers."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.supervisor.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[Front]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
