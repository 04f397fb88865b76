"""The HTTP/1.1 protocol of the front: uvicorn's h11 protocol with a header timeout and JSON errors.

uvicorn answers a malformed request with a plain-text 400 and has no limit on how long a client may take
to send its request head. `FrontProtocol` answers both with JSON (`{"message": ...}`): 400 (431 for a
head over `max_header_bytes`, 501 for an unknown transfer coding) with h11's own reason, and 408 when the
head is not complete within `header_timeout` (also between requests on a kept-alive connection, once
the next head has started). No Dagster here.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def raw_response(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 error response that closes the connection (used outside a request cycle)."""
    body = json.dumps({"message": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


# ------------------------------------------------------------------------------------- HTTP protocol
class _Connection(h11.Connection):
    """h11's connection, remembering why a request was malformed (for the JSON 400)."""

    last_error: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.last_error = exc
            raise


class FrontProtocol(H11Protocol):
    """uvicorn's h11 protocol with a header-read timeout and JSON answers to malformed requests."""

    header_timeout: float = 10.0
    max_header_bytes: int = 16 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _Connection(h11.SERVER, self.max_header_bytes)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            self._cancel_header_timer()
        elif self.conn.their_state is h11.IDLE:  # (part of) the next request's head is still to come
            self._arm_header_timer()
        else:
            self._cancel_header_timer()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is on its way (pipelining); the keep-alive timer takes over after it
        self.transport.write(
            raw_response(
                408, "Request Timeout", f"request headers not received within {self.header_timeout:g}s"
            )
        )
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        error = self.conn.last_error
        status = error.error_status_hint if error is not None else 400
        detail = str(error) if error is not None and str(error) else msg
        reason = {431: "Request Header Fields Too Large", 501: "Not Implemented"}.get(status, "Bad Request")
        self._cancel_header_timer()
        self.transport.write(raw_response(status, reason, f"malformed HTTP request: {detail}"))
        self.transport.close()


def protocol_class(header_timeout: float, max_header_bytes: int) -> type[FrontProtocol]:
    return type(
        "ConfiguredFrontProtocol",
        (FrontProtocol,),
        {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes},
    )
