"""HTTP/1.1 exchanges end as HTTP says, on a real hypercorn -k trio over raw sockets.

An answer to ``Connection: close`` or to HTTP/1.0 is followed by the server closing the
socket (RFC 9112 §9.6). An answer given before the request body arrived leaves the
connection able to take the next request (the rest of the body is read and dropped) or,
past the discard bound, says ``Connection: close`` and closes: never a client waiting for
an answer that does not come.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from app._asgi import DISCARD_BYTES

from ._http import RawConnection, http_request
from ._server import Server, run_server

pytestmark = pytest.mark.e2e

MAX_BODY = 65536
TWO_MB = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"SCOPESTREAM_MAX_BODY_BYTES": str(MAX_BODY)}
    with run_server(tmp_path_factory.mktemp("server"), env) as server:
        yield server


@pytest.fixture
def conn(server: Server) -> Iterator[RawConnection]:
    connection = RawConnection(server.port)
    yield connection
    connection.close()


def json_body(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes."""
    head, tail = b'{"pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


CLOSING_REQUESTS = {
    "Connection: close": http_request("GET", "/healthz", headers={"Connection": "close"}),
    "HTTP/1.0": http_request("GET", "/healthz", version="1.0"),
    "an error answer": http_request(
        "GET", "/v1/runs/run_0123456789abcdef0123456789abcdef", headers={"Connection": "close"}
    ),
    "a stream": http_request(
        "POST",
        "/v1/runs",
        body=json.dumps({"producer": "echo", "input": {"text": "a b"}, "stream": True}).encode(),
        headers={"Connection": "close", "Content-Type": "application/json"},
    ),
}


@pytest.mark.parametrize("request_bytes", CLOSING_REQUESTS.values(), ids=CLOSING_REQUESTS.keys())
def test_the_server_closes_after_answering_a_closing_request(
    conn: RawConnection, request_bytes: bytes
) -> None:
    conn.send(request_bytes)
    status, _, body = conn.response()
    assert status in (200, 404), body
    assert conn.closed_by_server(timeout=5)


EARLY_ANSWERS = {
    "413 too large": ("POST", "/v1/runs", {"Content-Type": "application/json"}, 413),
    "404 no route": ("POST", "/no/such/route", {"Content-Type": "application/json"}, 404),
    "405 wrong method": ("POST", "/healthz", {"Content-Type": "application/json"}, 405),
    "415 not json": ("POST", "/v1/runs", {"Content-Type": "text/plain"}, 415),
    "202 cancel with a body": ("POST", "/v1/runs/my-chat/cancel", {}, 202),
}


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"), EARLY_ANSWERS.values(), ids=EARLY_ANSWERS.keys()
)
def test_an_answer_before_the_body_arrived_leaves_the_connection_usable(
    conn: RawConnection, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    """2 MB is far more than the server reads before it answers (and, for most of these,
    more than it accepts): the answer comes first, then the same socket answers again."""
    conn.send(http_request(method, path, body=json_body(TWO_MB), headers=headers))
    answer, answer_headers, body = conn.response()
    assert answer == status, body
    assert "connection" not in answer_headers
    if answer >= 400:
        assert json.loads(body)["error"]["code"]
    conn.send(http_request("GET", "/healthz"))
    assert conn.response()[0] == 200


def test_a_body_too_large_to_wait_for_is_answered_with_connection_close(
    conn: RawConnection,
) -> None:
    declared = 100 * DISCARD_BYTES
    headers = {"Content-Type": "application/json", "Content-Length": str(declared)}
    conn.send(http_request("POST", "/v1/runs", body=json_body(MAX_BODY), headers=headers))
    status, answer_headers, body = conn.response()
    assert status == 413
    assert json.loads(body)["error"]["code"]
    assert answer_headers["connection"] == "close"
    assert conn.closed_by_server(timeout=5)


def test_httpx_client_is_answered_after_a_413(server: Server) -> None:
    with server.client() as client:
        refused = client.post(
            "/v1/runs", content=json_body(TWO_MB), headers={"Content-Type": "application/json"}
        )
        assert refused.status_code == 413
        assert refused.json()["error"]["code"]
        assert client.get("/healthz").status_code == 200


STREAMS = {
    "one chunk": {"producer": "echo", "input": {"text": "a b"}, "stream": True},
    "many chunks": {
        "producer": "synthetic",
        "input": {"events": 20, "interval_ms": 2},
        "stream": True,
    },
}


@pytest.fixture(scope="module")
def server_without_direct_writes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"SCOPESTREAM_DIRECT_WRITES": "false"}
    with run_server(tmp_path_factory.mktemp("server"), env) as server:
        yield server


@pytest.mark.parametrize("direct_writes", [True, False], ids=["direct writes", "through ASGI"])
@pytest.mark.parametrize("stream", STREAMS.values(), ids=STREAMS.keys())
def test_keep_alive_requests_after_a_stream_are_answered(
    request: pytest.FixtureRequest, direct_writes: bool, stream: dict[str, object]
) -> None:
    """A stream's final send recycles the connection: the next request on it is answered.
    Its body is strict chunked framing whether its chunks were written to the socket
    directly or through the server."""
    fixture = "server" if direct_writes else "server_without_direct_writes"
    server: Server = request.getfixturevalue(fixture)
    conn = RawConnection(server.port)
    try:
        body = json.dumps(stream).encode()
        headers = {"Content-Type": "application/json"}
        for _ in range(3):
            conn.send(http_request("POST", "/v1/runs", body=body, headers=headers))
            status, response_headers, events = conn.response()
            assert status == 200
            assert response_headers["transfer-encoding"] == "chunked"
            assert events.count(b"event: run.completed") == 1
            assert events.endswith(b"\n\n")
        conn.send(http_request("GET", "/healthz"))
        assert conn.response()[0] == 200
    finally:
        conn.close()
