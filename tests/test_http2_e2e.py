"""Streams over HTTP/2, on a real ``hypercorn -k trio`` process: TLS with ALPN ``h2``, and
cleartext with prior knowledge (h2c). A browser allows six HTTP/1.1 connections per origin;
over HTTP/2 a page's streams share one connection, so each must behave exactly as on HTTP/1.1:
its own terminal, cancel, disconnect (``RST_STREAM``) and resume."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from app._asgi import DISCARD_BYTES, DISCARD_SECONDS

from ._h2 import H2Client, H2Response
from ._server import Server, run_server
from ._sse import Frame

pytestmark = pytest.mark.e2e

TERMINALS = {"run.completed", "run.failed", "run.cancelled"}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    folder = tmp_path_factory.mktemp("tls")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return certfile, keyfile, context


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tls: tuple[Path, Path, ssl.SSLContext]
) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("server"), tls=tls) as server:
        yield server


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # One port speaks TLS or cleartext, so h2c (prior knowledge) gets a server of its own.
    with run_server(tmp_path_factory.mktemp("plain")) as server:
        yield server


@pytest.fixture(params=["tls", "h2c"])
def h2(
    request: pytest.FixtureRequest,
    server: Server,
    plain_server: Server,
    tls: tuple[Path, Path, ssl.SSLContext],
) -> Iterator[H2Client]:
    if request.param == "tls":
        client = H2Client(server.port, tls=tls[2])
    else:
        client = H2Client(plain_server.port)
    try:
        yield client
    finally:
        client.close()


def slow(events: int = 1000, **extra: Any) -> dict[str, Any]:
    return {
        "producer": "synthetic",
        "input": {"events": events, "event_bytes": 4, "interval_ms": 20},
        "stream": True,
        **extra,
    }


def terminal_of(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.event in TERMINALS]


def wait_status(h2: H2Client, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        view: dict[str, Any] = h2.fetch("GET", f"/v1/runs/{run_id}").json()
        if view["status"] in ("completed", "failed", "cancelled"):
            return view
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} did not end")


def test_a_stream_ends_as_a_complete_message_with_one_terminal(h2: H2Client) -> None:
    body = {"producer": "echo", "input": {"text": "one two three"}, "stream": True}
    response = h2.fetch("POST", "/v1/runs", body)
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "connection" not in response.headers  # a connection-specific header is an h2 error
    frames = response.frames()
    text = "".join(f.json()["data"]["text"] for f in frames if f.event == "text.delta")
    assert text == "one two three"
    assert [f.event for f in terminal_of(frames)] == ["run.completed"]
    assert response.ended and not response.reset


def test_ten_streams_share_one_connection(h2: H2Client) -> None:
    streams = [
        h2.request(
            "POST", "/v1/runs", {"producer": "echo", "input": {"text": f"s{i} a b"}, "stream": True}
        )
        for i in range(10)
    ]
    responses = [h2.responses[s] for s in streams]
    h2.wait(lambda: all(r.ended for r in responses))
    for i, response in enumerate(responses):
        frames = response.frames()
        text = "".join(f.json()["data"]["text"] for f in frames if f.event == "text.delta")
        assert text == f"s{i} a b"
        assert [f.event for f in terminal_of(frames)] == ["run.completed"]


def test_cancel_on_another_stream_ends_the_stream_with_cancelled(h2: H2Client) -> None:
    stream = h2.request("POST", "/v1/runs", slow())
    response = h2.responses[stream]
    h2.wait(lambda: sum(f.event == "text.delta" for f in response.frames()) >= 2)
    run_id = response.headers["x-run-id"]
    cancel = h2.fetch("POST", f"/v1/runs/{run_id}/cancel?wait=true")
    assert cancel.status == 200
    h2.wait(lambda: response.ended)
    ends = terminal_of(response.frames())
    assert [(f.event, f.json()["data"]["reason"]) for f in ends] == [("run.cancelled", "requested")]
    assert wait_status(h2, run_id)["outcome"]["reason"] == "requested"


def test_rst_stream_is_a_client_disconnect(h2: H2Client) -> None:
    stream = h2.request("POST", "/v1/runs", slow())
    response = h2.responses[stream]
    h2.wait(lambda: sum(f.event == "text.delta" for f in response.frames()) >= 2)
    run_id = response.headers["x-run-id"]
    h2.reset(stream)
    view = wait_status(h2, run_id)
    assert view["status"] == "cancelled"
    assert view["outcome"]["reason"] == "client_disconnected"
    # The connection is still good for other streams.
    assert h2.fetch("GET", "/healthz").status == 200


def test_resume_from_every_cursor_over_one_connection(h2: H2Client) -> None:
    body = {"producer": "synthetic", "input": {"events": 6, "event_bytes": 3}}
    created = h2.fetch("POST", "/v1/runs", {**body, "background": True})
    run_id = created.json()["id"]
    wait_status(h2, run_id)
    full = h2.fetch("GET", f"/v1/runs/{run_id}/events").frames()
    seqs = [int(f.id) for f in full if f.id is not None]
    assert seqs == list(range(1, len(seqs) + 1))
    for cursor in range(len(seqs)):
        stream = h2.request("GET", f"/v1/runs/{run_id}/events",
                            headers={"last-event-id": str(cursor)})  # fmt: skip
        response = h2.responses[stream]
        h2.wait(lambda response=response: response.ended)  # type: ignore[misc]
        resumed = [int(f.id) for f in response.frames() if f.id is not None]
        assert resumed == seqs[cursor:]


def test_httpx_streams_over_http2(server: Server, tls: tuple[Path, Path, ssl.SSLContext]) -> None:
    """A real HTTP/2 client library, through TLS and ALPN."""
    with httpx.Client(base_url=server.url, http2=True, verify=tls[2], timeout=20) as client:
        body = {"producer": "echo", "input": {"text": "over h2"}, "stream": True}
        with client.stream("POST", "/v1/runs", json=body) as response:
            assert response.http_version == "HTTP/2"
            raw = b"".join(response.iter_bytes())
    assert b"event: run.completed" in raw
    assert raw.count(b"event: run.") == 2  # run.started and the one terminal


def test_an_answer_before_the_body_arrived_ends_only_its_stream(h2: H2Client) -> None:
    """HTTP/2 needs no draining and forbids ``Connection``: a 413 given before the body
    arrived ends its own stream, and the connection serves the next one."""
    stream_id = h2.conn.get_next_available_stream_id()
    head = [
        (":method", "POST"),
        (":path", "/v1/runs"),
        (":scheme", "https" if isinstance(h2.sock, ssl.SSLSocket) else "http"),
        (":authority", "localhost"),
        ("content-type", "application/json"),
        ("content-length", str(100 * DISCARD_BYTES)),
    ]
    h2.conn.send_headers(stream_id, head)
    h2.conn.send_data(stream_id, b" " * 1000)
    response = h2.responses[stream_id] = H2Response()
    h2._flush()
    h2.wait(lambda: response.ended or response.reset)
    assert response.status == 413
    assert "connection" not in response.headers
    assert h2.fetch("GET", "/healthz").status == 200


def test_an_answer_does_not_wait_for_the_rest_of_the_body(h2: H2Client) -> None:
    """Over HTTP/1.1 an early answer waits (bounded) for the rest of the body so the
    connection can be reused; an HTTP/2 stream has no connection to save, so it answers at
    once, while the client still owes most of its body."""
    stream_id = h2.conn.get_next_available_stream_id()
    head = [
        (":method", "POST"),
        (":path", "/no/such/route"),
        (":scheme", "https" if isinstance(h2.sock, ssl.SSLSocket) else "http"),
        (":authority", "localhost"),
        ("content-type", "application/json"),
        ("content-length", "2000"),
    ]
    h2.conn.send_headers(stream_id, head)
    h2.conn.send_data(stream_id, b" " * 10)
    response = h2.responses[stream_id] = H2Response()
    h2._flush()
    h2.wait(lambda: response.ended or response.reset, timeout=DISCARD_SECONDS / 2)
    assert response.status == 404
