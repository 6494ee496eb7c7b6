"""A streamed run's start and a cancel are served by the entry point without Quart
(``app._hot``): every answer is the one Quart's route gives, byte for byte.

Quart still serves the same routes when a request carries a query string (which neither
route reads), so each request is sent both ways on one keep-alive socket and the two
answers compared: status, headers (but the date) and body. Reading both answers from one
socket also shows each answer ended its exchange properly.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from ._http import RawConnection, http_request
from ._server import Server, run_server

pytestmark = pytest.mark.e2e

KEY, OTHER_KEY = "key-hot-1", "key-hot-2"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"SCOPESTREAM_API_KEYS": f"{KEY},{OTHER_KEY}", "SCOPESTREAM_MAX_BODY_BYTES": "65536"}
    with run_server(tmp_path_factory.mktemp("server"), env) as server:
        yield server


@pytest.fixture
def conn(server: Server) -> Iterator[RawConnection]:
    connection = RawConnection(server.port)
    yield connection
    connection.close()


def exchange(
    conn: RawConnection, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    conn.send(http_request("POST", path, body=body, headers=headers))
    status, head, answer = conn.response()
    head.pop("date", None)
    return status, head, answer


def both_ways(
    conn: RawConnection, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """The answer to ``POST path`` from the direct route, checked equal to Quart's."""
    headers = {**AUTH, **(headers or {})}
    direct = exchange(conn, path, body, headers)
    through_quart = exchange(conn, path + "?via=quart", body, headers)
    assert direct == through_quart
    return direct


JSON = {"Content-Type": "application/json"}
BAD_RUN_BODIES = {
    "not JSON": (b'{"producer": ', JSON, "body"),
    "not UTF-8": (b'{"producer": "\xff"}', JSON, "body"),
    "a lone surrogate": (
        b'{"producer": "echo", "input": {"text": "\\ud800"}, "stream": true}',
        JSON,
        "input.text",
    ),
    "too deep": (b'{"input": ' + b"[" * 200 + b"]" * 200 + b"}", JSON, "body"),
    "not an object": (b"[1]", JSON, "body"),
    "a string for a boolean (strict)": (
        b'{"producer": "echo", "stream": "true"}',
        JSON,
        "stream",
    ),
    "an unknown field": (b'{"producer": "echo", "stream": true, "x": 1}', JSON, "x"),
    "streamed and background": (
        b'{"producer": "echo", "stream": true, "background": true}',
        JSON,
        "background",
    ),
    "an unknown producer": (b'{"producer": "nope", "stream": true}', JSON, "producer"),
    "a server run id as client_run_id": (
        b'{"producer": "echo", "stream": true, '
        b'"client_run_id": "run_0123456789abcdef0123456789abcdef"}',
        JSON,
        "client_run_id",
    ),
    "a bad producer input": (
        b'{"producer": "synthetic", "input": {"events": -1}, "stream": true}',
        JSON,
        "input.events",
    ),
    "another media type": (b'{"producer": "echo"}', {"Content-Type": "text/plain"}, None),
    "no media type": (b'{"producer": "echo"}', {}, None),
    "another charset": (
        b'{"producer": "echo"}',
        {"Content-Type": "application/json; charset=latin-1"},
        "Content-Type",
    ),
}


@pytest.mark.parametrize("case", list(BAD_RUN_BODIES))
def test_a_bad_run_request_gets_quarts_answer(conn: RawConnection, case: str) -> None:
    body, headers, field = BAD_RUN_BODIES[case]
    status, head, answer = both_ways(conn, "/v1/runs", body, headers)
    assert status in (400, 415)
    assert head["content-type"] == "application/json"
    error = json.loads(answer)["error"]
    if field is not None:
        assert field in [f["field"] for f in error["fields"]]
    assert "Traceback" not in error["message"]


def test_without_a_valid_key_quart_answers_401_first(conn: RawConnection) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        conn.send(http_request("POST", "/v1/runs", body=b"{", headers={**JSON, **headers}))
        status, _, answer = conn.response()
        assert (status, json.loads(answer)["error"]["code"]) == (401, "unauthorized")
        conn.send(http_request("POST", "/v1/runs/run_x/cancel", headers=headers))
        status, _, _ = conn.response()
        assert status == 401


def test_a_run_that_is_not_streamed_is_answered_with_its_whole_body(conn: RawConnection) -> None:
    body = json.dumps({"producer": "echo", "input": {"text": "a b c"}}).encode()
    status, _, answer = exchange(conn, "/v1/runs", body, {**AUTH, **JSON})
    assert status == 200
    assert json.loads(answer)["output"]["text"] == "a b c"
    body = json.dumps({"producer": "echo", "input": {"text": "d"}, "background": True}).encode()
    status, head, answer = exchange(conn, "/v1/runs", body, {**AUTH, **JSON})
    assert status == 202
    assert head["location"] == f"/v1/runs/{json.loads(answer)['id']}"


def test_cancel_answers_are_quarts(server: Server, conn: RawConnection) -> None:
    unknown = "/v1/runs/run_0123456789abcdef0123456789abcdef/cancel"
    status, _, answer = both_ways(conn, unknown)
    assert status == 404
    status, _, answer = both_ways(conn, "/v1/runs/my-own-id/cancel")
    assert (status, json.loads(answer)["result"]) == (202, "remembered")
    status, _, answer = both_ways(conn, "/v1/runs/an%20id%2Fwith%2Fslashes/cancel")
    assert status == 404  # a slash, even encoded, is no part of a run id
    status, _, answer = both_ways(conn, "/v1/runs/%C3%A9t%C3%A9/cancel")
    assert (status, json.loads(answer)["id"]) == (202, "\u00e9t\u00e9")

    # A live run of this key: cancelled directly, the stream ends cancelled (requested);
    # cancelling it again answers the same both ways, and another key never finds it.
    body = {"producer": "synthetic", "input": {"events": 100000, "interval_ms": 20}}
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as stream:
        stream.sendall(
            http_request(
                "POST",
                "/v1/runs",
                body=json.dumps({**body, "stream": True}).encode(),
                headers={**AUTH, **JSON, "Connection": "close"},
            )
        )
        received = b""
        while b"x-run-id: " not in received:
            received += stream.recv(65536)
        run_id = received.split(b"x-run-id: ")[1].split(b"\r\n")[0].decode()
        path = f"/v1/runs/{run_id}/cancel"
        status, _, answer = exchange(conn, path, b"", {"Authorization": f"Bearer {OTHER_KEY}"})
        assert status == 404
        status, _, answer = exchange(conn, path, b"", AUTH)
        assert status == 200
        assert json.loads(answer)["result"] == "cancelled"
        deadline = time.monotonic() + 10
        while b"event: run.cancelled" not in received and time.monotonic() < deadline:
            received += stream.recv(65536)
        assert b'"reason":"requested"' in received.split(b"event: run.cancelled")[1]
    status, _, answer = both_ways(conn, path)
    assert status == 200
    assert json.loads(answer)["status"] == "cancelled"


def test_a_cancel_with_a_body_is_answered_and_the_connection_reused(conn: RawConnection) -> None:
    path = "/v1/runs/my-own-id-2/cancel"
    status, _, _ = exchange(conn, path, b'{"x": 1}', {**AUTH, **JSON})
    assert status == 202
    status, _, _ = exchange(conn, path, b"", AUTH)
    assert status == 202


def test_a_client_leaving_mid_body_costs_nothing(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head = http_request("POST", "/v1/runs", headers={**AUTH, **JSON, "Content-Length": "100"})
        sock.sendall(head + b'{"producer": ')
    with server.client(headers=AUTH) as client:
        answer = client.post("/v1/runs", json={"producer": "echo", "input": {"text": "a"}})
        assert answer.status_code == 200
    assert "Traceback" not in server.log()
