"""The front's hop to its model server: one HTTP/1.1 exchange, h11 over asyncio streams.

The inference server's gunicorn sync worker closes every connection, so each request opens a fresh one.
httpx's async client took 7-20 ms per new connection here, this about 1 ms (B4, method notes). No Dagster.
"""

from __future__ import annotations

import asyncio

import h11


class BackendUnreachable(Exception):
    """The model server refused the connection or closed it before a whole response."""


async def exchange(host: str, port: int, method: str, body: bytes, timeout: float) -> tuple[int, bytes, str]:
    """(status, body, content type) of one `method /score` to the model server, h11 over asyncio streams.
    Raises BackendUnreachable, or TimeoutError after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            raise BackendUnreachable(f"{type(exc).__name__}: {exc}") from exc
        try:
            conn = h11.Connection(h11.CLIENT)
            headers = [
                ("host", f"{host}:{port}"),
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
                ("connection", "close"),
            ]
            out = conn.send(h11.Request(method=method, target="/score", headers=headers))
            out += conn.send(h11.Data(data=body)) if body else b""
            writer.write(out + conn.send(h11.EndOfMessage()))
            status, content_type, chunks = 502, "application/json", []
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    for name, value in event.headers:
                        if name == b"content-type":
                            content_type = value.decode("latin-1")
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    return status, b"".join(chunks), content_type
                else:  # the connection closed before the end of the response
                    raise BackendUnreachable("the model server closed the connection mid-response")
        except (OSError, h11.ProtocolError) as exc:
            raise BackendUnreachable(f"{type(exc).__name__}: {exc}") from exc
        finally:
            writer.close()
