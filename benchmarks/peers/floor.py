"""The floor: a bare Trio TCP server writing pre-formatted SSE bytes straight to the socket.

No framework, no ASGI, no h11: a request head is split by hand, each event is formatted into
one HTTP/1.1 chunk and written with one ``send_all``. It is what a Trio stream costs when
nothing stands between the producer and the socket, so every other server's figures are read
against it.

It still keeps the run semantics the benchmarks measure, in the plainest Trio shape:

- the producer runs inside a cancel scope; ``POST /v1/runs/{id}/cancel`` cancels that scope and
  the stream writes a ``run.cancelled`` frame, then closes;
- a reader task waits for EOF on the socket and cancels the whole stream when the client goes
  away; the producer's ``finally`` stamps ``ended_at``, reported by ``GET /v1/runs/{id}``;
- with ``--keepalive`` below an hour, a ticker writes ``: keepalive`` comments, and a lock keeps
  its writes and the producer's from interleaving. Without it there is no ticker and no lock.

Every response closes its connection (``connection: close``), like the load generator asks.

Run: ``python -m benchmarks.peers.floor --port 8002 [--keepalive 1]``.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from ._synthetic import SyntheticInput, delta_text, frame

__all__ = ["main", "serve"]

_RETAINED_RUNS = 100_000
_KEEPALIVE_OFF = 3600.0
_MAX_HEAD = 65536
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\n"
    b"x-accel-buffering: no\r\n"
    b"transfer-encoding: chunked\r\n"
    b"connection: close\r\n"
    b"x-run-id: %s\r\n\r\n"
)
_LAST_CHUNK = b"0\r\n\r\n"
_KEEPALIVE_CHUNK = b"d\r\n: keepalive\n\n\r\n"


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


@dataclass(slots=True)
class _Run:
    run_id: str
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    status: str = "running"
    outcome: dict[str, Any] | None = None
    ended_at: float | None = None


@dataclass(slots=True)
class _Server:
    keepalive: float
    runs: OrderedDict[str, _Run] = field(default_factory=OrderedDict)

    def open_run(self) -> _Run:
        run = _Run(secrets.token_hex(16))
        self.runs[run.run_id] = run
        while len(self.runs) > _RETAINED_RUNS:
            self.runs.popitem(last=False)
        return run


async def _read_request(stream: trio.SocketStream) -> tuple[bytes, bytes, bytes] | None:
    """(method, path, body) of one request, or None if the client left or sent nonsense."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > _MAX_HEAD:
            return None
        data = await stream.receive_some(65536)
        if not data:
            return None
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, path, _version = lines[0].split(b" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        data = await stream.receive_some(65536)
        if not data:
            return None
        body += data
    return method, path.split(b"?", 1)[0], body


async def _send_json(stream: trio.SocketStream, status: int, value: Any) -> None:
    body = json.dumps(value).encode()
    reason = b"OK" if status == 200 else b"Not Found"
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
        status,
        reason,
        len(body),
    )
    await stream.send_all(head + b"connection: close\r\n\r\n" + body)


async def _wait_for_eof(stream: trio.SocketStream, scope: trio.CancelScope) -> None:
    # The client sends nothing after its request, so any read that returns is the end.
    try:
        while await stream.receive_some(65536):
            pass
    except trio.BrokenResourceError:
        pass
    scope.cancel(reason="client disconnected")


def _writer(stream: trio.SocketStream, *, locked: bool) -> Callable[[bytes], Awaitable[None]]:
    """``send_all`` itself, or behind a lock when a keepalive ticker writes too (Trio raises
    ``BusyResourceError`` on two concurrent ``send_all`` calls)."""
    if not locked:
        return stream.send_all
    lock = trio.StrictFIFOLock()

    async def send(data: bytes) -> None:
        async with lock:
            await stream.send_all(data)

    return send


async def _keepalive(send: Callable[[bytes], Awaitable[None]], interval: float) -> None:
    while True:
        await trio.sleep(interval)
        await send(_KEEPALIVE_CHUNK)


async def _produce(
    run: _Run, params: SyntheticInput, send: Callable[[bytes], Awaitable[None]]
) -> int:
    """Write the producer's events; return the last seq written. Cancelled by ``run.scope``."""
    seq = 1
    rid = run.run_id
    for i in range(params.events):
        seq += 1
        await send(_chunk(frame(seq, "text.delta", rid, {"text": delta_text(params)})))
        if i < params.events - 1 and params.interval_ms > 0:
            await trio.sleep(params.interval_s)
    return seq


async def _stream_run(server: _Server, stream: trio.SocketStream, body: bytes) -> None:
    params = SyntheticInput.from_request(json.loads(body or b"{}"))
    run = server.open_run()
    rid = run.run_id
    send = _writer(stream, locked=server.keepalive < _KEEPALIVE_OFF)
    started = frame(1, "run.started", rid, {})
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_wait_for_eof, stream, nursery.cancel_scope)
            if server.keepalive < _KEEPALIVE_OFF:
                nursery.start_soon(_keepalive, send, server.keepalive)
            await send(_SSE_HEAD % rid.encode() + _chunk(started))
            seq = 1
            with run.scope:
                seq = await _produce(run, params, send)
            if run.scope.cancelled_caught:
                run.status, run.outcome = "cancelled", {"reason": "requested"}
                terminal = frame(seq + 1, "run.cancelled", rid, run.outcome)
            else:
                run.status, run.outcome = "completed", {"finish_reason": "stop"}
                terminal = frame(seq + 1, "run.completed", rid, run.outcome)
            await send(_chunk(terminal) + _LAST_CHUNK)
            nursery.cancel_scope.cancel()
    except* trio.BrokenResourceError:
        pass  # the client went away mid-write: the reader cancels the rest
    finally:
        # The producer's cleanup, on every path (completed, cancelled, client gone).
        if run.status == "running":
            run.status, run.outcome = "cancelled", {"reason": "client_disconnected"}
        run.ended_at = time.time()


async def _handle(server: _Server, stream: trio.SocketStream) -> None:
    try:
        request = await _read_request(stream)
        if request is None:
            return
        method, path, body = request
        parts = path.decode().strip("/").split("/")
        if method == b"POST" and parts == ["v1", "runs"]:
            await _stream_run(server, stream, body)
        elif method == b"GET" and parts == ["healthz"]:
            await _send_json(stream, 200, {"status": "ok"})
        elif len(parts) >= 3 and parts[:2] == ["v1", "runs"] and parts[2] in server.runs:
            run = server.runs[parts[2]]
            if method == b"POST" and parts[3:] == ["cancel"]:
                run.scope.cancel(reason="cancel requested")
            await _send_json(
                stream,
                200,
                {
                    "id": run.run_id,
                    "status": run.status,
                    "outcome": run.outcome,
                    "ended_at": run.ended_at,
                },
            )
        else:
            await _send_json(stream, 404, {"error": {"code": "not_found", "message": "?"}})
    except (trio.BrokenResourceError, ValueError):
        pass  # serve_tcp closes the stream when the handler returns


async def serve(host: str, port: int, keepalive: float) -> None:
    """Serve until cancelled."""
    server = _Server(keepalive=keepalive if keepalive > 0 else math.inf)
    await trio.serve_tcp(partial(_handle, server), port, host=host, backlog=4096)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keepalive", type=float, default=_KEEPALIVE_OFF, help="seconds")
    args = parser.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    trio.run(serve, args.host, args.port, args.keepalive)


if __name__ == "__main__":
    main()
