"""The front's limits, probed on raw sockets as a new user (or an attacker) would.

A front with 1-second header and body timeouts serves a real deployment. A second listener stands for
another service on the machine: no request target may reach it through the front.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading

import pytest

from globolatte_dagster.serving.bounds import MAX_BODY_BYTES
from globolatte_dagster.serving.deployer import LocalDeployer
from globolatte_dagster.serving.front import Front, Limits
from globolatte_dagster.serving.model_server import free_port
from globolatte_dagster_tests.endpoint_fixtures import (
    FIELDS,
    GOOD,
    for_date,
    message,
    raw_http,
    read_response,
    wait_until_no_servers,
)
from globolatte_dagster_tests.serving_fixtures import champions_bundle, trained_models


class _Listener(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def other_service():
    """A listener on another port that records whatever reaches it."""
    hits: list[bytes] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            hits.append(self.request.recv(65536))
            self.request.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nSECRET")

    server = _Listener(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], hits
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    case = trained_models()
    root = tmp_path_factory.mktemp("front-limits")
    bundle, versions, _ = champions_bundle(case, root)
    deployer = LocalDeployer(root / "endpoint", drain_seconds=0.2)
    deployer.deploy(bundle, versions, log=lambda _m: None)
    limits = Limits(header_timeout=1.0, body_timeout=1.0)
    f = Front(free_port(), deployer.record_path, limits=limits, log=lambda _m: None)
    f.start()
    f.supervisor.wait_ready(90)
    f.case = case
    yield f
    f.stop()
    assert wait_until_no_servers(root) == []


def good_body(front) -> bytes:
    return json.dumps({**GOOD, "date": for_date(front.case)}).encode()


def post(body: bytes, extra: str = "") -> bytes:
    return (
        f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def test_a_well_formed_request_on_a_raw_socket_is_answered(front):
    status, headers, body = raw_http(front.port, post(good_body(front)))
    assert status == 200 and set(json.loads(body)) == FIELDS
    assert headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/x",  # absolute-form
        "@127.0.0.1:{port}/x",  # userinfo trick against a naive base-URL + target join
        "127.0.0.1:{port}",  # authority-form
        "//127.0.0.1:{port}/x",  # network-path reference
    ],
)
def test_request_targets_that_are_not_origin_form_get_400_and_are_never_forwarded(
    front, other_service, target
):
    port, hits = other_service
    before = len(hits)
    request = f"GET {target.format(port=port)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0ken\r\n\r\n"
    status, _, body = raw_http(front.port, request.encode())
    assert status == 400 and "origin-form" in message(body)
    assert b"SECRET" not in body
    assert len(hits) == before  # nothing reached the other service


def test_a_body_over_the_limit_gets_413_before_it_is_read(front):
    body = b'{"requests": [' + b" " * (3 * 1024 * 1024) + b"]}"
    head_and_start = post(body)[: -len(body) + 65536]  # the answer comes from the Content-Length
    status, headers, answer = raw_http(front.port, head_and_start)
    assert status == 413 and "1,000 requests" in message(answer)
    assert headers.get("connection") == "close"


def test_a_chunked_body_over_the_limit_gets_413(front):
    chunk = b" " * 65536
    with socket.create_connection(("127.0.0.1", front.port), timeout=15) as sock:
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = 0
        try:
            while sent <= MAX_BODY_BYTES + len(chunk):
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except OSError:
            pass  # the front answered and closed while the client was still sending
        status, _, answer = read_response(sock)
    assert status == 413 and "bytes" in message(answer)


def test_the_largest_valid_batch_fits_the_body_limit(front):
    reqs = [{**GOOD, "customer_id": "C" * 64, "date": for_date(front.case), "k": 20} for _ in range(1000)]
    body = json.dumps({"requests": reqs}, indent=2).encode()
    assert len(body) < MAX_BODY_BYTES
    status, _, answer = raw_http(front.port, post(body), timeout=60)
    assert status == 200 and len(json.loads(answer)["responses"]) == 1000


def test_a_chunked_body_is_read_and_answered(front):
    body = good_body(front)
    parts = [body[:10], body[10:]]
    chunked = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
    head = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, _, answer = raw_http(front.port, head + chunked)
    assert status == 200 and json.loads(answer)["customer_id"] == GOOD["customer_id"]


@pytest.mark.parametrize("length", ["abc", "-1", "1.5", "1, 2"])
def test_an_invalid_or_negative_content_length_gets_400(front, length):
    request = f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}".encode()
    status, headers, body = raw_http(front.port, request)
    assert status == 400 and "malformed HTTP request" in message(body)
    assert headers["content-type"] == "application/json"


def test_headers_that_never_finish_get_408(front):
    with socket.create_connection(("127.0.0.1", front.port), timeout=15) as sock:
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\n")  # ... and nothing more
        status, _, body = read_response(sock)
    assert status == 408 and "headers" in message(body)


def test_a_body_that_never_finishes_gets_408(front):
    with socket.create_connection(("127.0.0.1", front.port), timeout=15) as sock:
        sock.sendall(post(b'{"region": "amer')[:-3])  # announces 16 bytes, sends 13
        status, _, body = read_response(sock)
    assert status == 408 and "body" in message(body)


def test_many_stalled_uploads_do_not_block_a_normal_request(front):
    stalled = [socket.create_connection(("127.0.0.1", front.port), timeout=15) for _ in range(100)]
    try:
        for sock in stalled:
            sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        status, _, _ = raw_http(front.port, post(good_body(front)))
        assert status == 200
        answers = [read_response(sock)[0] for sock in stalled]
    finally:
        for sock in stalled:
            sock.close()
    assert answers == [408] * 100


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"])
def test_other_methods_get_a_json_405(front, method):
    request = f"{method} /score HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    status, headers, body = raw_http(front.port, request, body=method != "HEAD")
    assert status == 405 and headers["allow"] == "GET, POST"
    if method != "HEAD":
        assert "not allowed" in message(body)


def test_an_unknown_path_gets_a_json_404(front):
    status, _, body = raw_http(front.port, b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 404 and "/score" in message(body)


def test_get_score_names_the_served_models(front):
    status, _, body = raw_http(front.port, b"GET /score HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and set(json.loads(body)["model_versions"]) == {"america", "canada", "mexico"}


def test_deeply_nested_json_gets_400_not_500(front):
    body = b'{"requests": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    status, _, answer = raw_http(front.port, post(body))
    assert status == 400 and "nested" in message(answer)
