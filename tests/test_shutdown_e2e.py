"""Shutdown of a real hypercorn -k trio server, with real clients: curl, the ``openai``
package, and a raw socket that stops reading.

Every stream ends as a complete HTTP message (the chunked body's last chunk after the
terminal frame), whichever process got the signal; and a client that stopped reading
cannot hold the server up: its run is cancelled, its stuck write abandoned at the delivery
deadline, and the server exits within a bound the settings give.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from ._http import RawStream, is_terminal
from ._server import Server, run_server
from ._sse import parse_sse

pytestmark = pytest.mark.e2e

GRACEFUL_TIMEOUT = 1  # hypercorn's --graceful-timeout
DELIVERY_TIMEOUT = 1.0
SHUTDOWN_GRACE = 2.0
ENV = {
    "SCOPESTREAM_PRODUCERS": "ticker=tests.fixtures.producers:ticker",
    "SCOPESTREAM_TERMINAL_DELIVERY_TIMEOUT": str(DELIVERY_TIMEOUT),
    "SCOPESTREAM_SHUTDOWN_GRACE": str(SHUTDOWN_GRACE),
    # The stuck client's run produces tens of MiB before and during the shutdown.
    "SCOPESTREAM_MAX_OUTPUT_BYTES": str(256 * 1024 * 1024),
}
# Every stage of a shutdown (a worker that got the signal by itself waits out the grace
# twice), plus room for a busy machine. Without the abort, a parent-only SIGTERM does not
# end the server at all while the client holds its socket.
EXIT_BOUND = GRACEFUL_TIMEOUT + DELIVERY_TIMEOUT + 2 * SHUTDOWN_GRACE + 1 + 10


def ticker(markers: Path, **extra: Any) -> dict[str, Any]:
    return {"producer": "ticker", "input": {"marker_dir": str(markers), **extra}, "stream": True}


def signal_server(server: Server, target: str) -> None:
    if target == "process group":
        os.killpg(server.process.pid, signal.SIGTERM)
    elif target == "worker only":
        os.kill(worker_pid(server), signal.SIGTERM)
    else:
        server.process.send_signal(signal.SIGTERM)


def worker_pid(server: Server) -> int:
    """hypercorn's worker process (the parent's child that runs the app)."""
    parent = server.process.pid
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
            return int(child)
    raise AssertionError("no hypercorn worker found")


class NonReadingClient:
    """Starts a stream with a tiny receive buffer, reads its head, then never reads again."""

    def __init__(self, port: int, body: dict[str, Any]) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(20)
        self.sock.connect(("127.0.0.1", port))
        payload = json.dumps(body).encode()
        head = (
            "POST /v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + payload)
        received = b""
        while b"\r\n\r\n" not in received:
            received += self.sock.recv(4096)
        headers = received.split(b"\r\n\r\n")[0].decode().lower()
        self.run_id = headers.split("x-run-id:")[1].split()[0]


@pytest.mark.parametrize("target", ["hypercorn parent only", "worker only", "process group"])
def test_a_client_that_stopped_reading_does_not_hold_up_shutdown(
    tmp_path: Path, target: str
) -> None:
    markers = tmp_path
    with run_server(tmp_path, ENV, graceful_timeout=GRACEFUL_TIMEOUT) as server:
        streams = [RawStream(server.port, "POST", "/v1/runs", ticker(markers)) for _ in range(10)]
        for stream in streams:
            stream.read_until(lambda f: f.event == "text.delta")
        stuck = NonReadingClient(server.port, ticker(markers, pad=65536, interval_ms=10))
        # 200 ticks of 64 KiB (12.5 MiB) are far more than the socket buffers hold (a few
        # MiB): the server's write to this client is stuck, and the run goes on producing.
        with server.client() as client:
            deadline = time.monotonic() + 60
            while client.get(f"/v1/runs/{stuck.run_id}").json()["last_seq"] < 200:
                assert time.monotonic() < deadline, "the stuck client's run did not progress"
                time.sleep(0.05)
        signal_server(server, target)
        for stream in streams:
            stream.read_to_end(timeout=20)
            assert stream.complete
            frames = [f for f in parse_sse(stream.raw) if f.id]
            assert frames[-1].event == "run.cancelled"
            assert frames[-1].json()["data"] == {"reason": "shutdown"}
        status = server.process.wait(timeout=EXIT_BOUND)
        if target != "worker only":  # a worker that ends by its signal: hypercorn says 0 too
            assert status == 0
        # The stuck client's run was cancelled: its producer saw it and stopped.
        assert (markers / stuck.run_id).read_text() == "cancelled"
        stuck.sock.close()


@pytest.fixture
def server(tmp_path: Path) -> Any:
    with run_server(tmp_path, ENV, graceful_timeout=GRACEFUL_TIMEOUT) as server:
        yield server


def test_curl_sees_a_complete_stream_after_a_parent_only_sigterm(
    server: Server, tmp_path: Path
) -> None:
    curl = subprocess.Popen(
        [
            "curl",
            "--silent",
            "--show-error",
            "--no-buffer",
            "--max-time",
            "60",
            "--header",
            "Content-Type: application/json",
            "--data",
            json.dumps(ticker(tmp_path)),
            server.url + "/v1/runs",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert curl.stdout is not None
    seen = b""
    while b"text.delta" not in seen:  # the stream is live
        line = curl.stdout.readline()
        assert line, curl.stderr.read() if curl.stderr else b""
        seen += line
    server.process.send_signal(signal.SIGTERM)
    out, err = curl.communicate(timeout=30)
    assert curl.returncode == 0, err
    frames = [f for f in parse_sse(seen + out) if f.id]
    assert frames[-1].event == "run.cancelled"
    assert sum(is_terminal(f) for f in frames) == 1
    assert server.process.wait(timeout=EXIT_BOUND) == 0


def test_openai_sdk_sees_the_terminal_after_a_parent_only_sigterm(server: Server) -> None:
    started = threading.Event()
    events: list[Any] = []
    errors: list[BaseException] = []

    def consume() -> None:
        with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as sdk:
            try:
                stream = sdk.responses.create(
                    model="synthetic",
                    input="hi",
                    stream=True,
                    metadata={"events": "100000", "interval_ms": "20"},
                )
                for event in stream:
                    events.append(event)
                    if event.type == "response.output_text.delta":
                        started.set()
            except BaseException as exc:
                errors.append(exc)
            finally:
                started.set()

    thread = threading.Thread(target=consume)
    thread.start()
    assert started.wait(30)
    server.process.send_signal(signal.SIGTERM)
    thread.join(30)
    assert not thread.is_alive()
    assert errors == []
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "cancelled"
    assert server.process.wait(timeout=EXIT_BOUND) == 0
