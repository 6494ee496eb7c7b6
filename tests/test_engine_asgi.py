"""The ASGI transport, driven over memory channels: the second of three disconnect levels
(engine, ASGI, real server)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import trio
import trio.testing

from engine import (
    Cancelled,
    CancelReason,
    CloseReason,
    Completed,
    Connection,
    Engine,
    EngineConfig,
    EngineError,
    EngineObserver,
    ErrorCode,
    Run,
    RunContext,
    open_engine,
)
from engine.asgi import serve_connection, stream_run
from engine.protocols.native import NativeProjection

from ._engine_helpers import assert_one_terminal, forever, ticker
from ._sse import native_events


class FakeASGI:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.disconnect = trio.Event()

    async def send(self, message: Any) -> None:
        self.sent.append(dict(message))
        await trio.lowlevel.checkpoint()

    async def receive(self) -> dict[str, Any]:
        await self.disconnect.wait()
        return {"type": "http.disconnect"}

    @property
    def start(self) -> dict[str, Any]:
        assert self.sent[0]["type"] == "http.response.start"
        return self.sent[0]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


async def test_attached_stream_completes(autojump_clock: trio.testing.MockClock) -> None:
    asgi = FakeASGI()
    async with open_engine() as engine:
        await stream_run(engine, ticker(3), asgi.send, asgi.receive, NativeProjection())
    assert asgi.start["status"] == 200
    headers = dict(asgi.start["headers"])
    assert headers[b"content-type"].startswith(b"text/event-stream")
    assert headers[b"x-run-id"].startswith(b"run_")
    events = native_events(asgi.body)
    assert [e["type"] for e in events] == ["run.started"] + ["text.delta"] * 3 + ["run.completed"]
    # The terminal frame ends the response: one body message, the last.
    assert asgi.sent[-1]["more_body"] is False
    assert native_events(asgi.sent[-1]["body"])[-1]["type"] == "run.completed"
    assert all(m["more_body"] for m in asgi.sent[1:-1])


async def test_disconnect_cancels_an_attached_run_and_its_producer_cleans_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    asgi = FakeASGI()
    cleanup: list[str] = []

    async def producer(ctx: RunContext) -> None:
        try:
            await ticker(100)(ctx)
        finally:
            cleanup.append("ran")

    async with open_engine() as engine:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                stream_run, engine, producer, asgi.send, asgi.receive, NativeProjection()
            )
            await trio.sleep(5.5)
            asgi.disconnect.set()
        (run,) = engine.runs()
    assert cleanup == ["ran"]
    assert_one_terminal(run)
    assert run.outcome == Cancelled(CancelReason.CLIENT_DISCONNECTED)
    # Nothing was written after the client left.
    assert [e["type"] for e in native_events(asgi.body)][-1] == "text.delta"


async def test_cancel_reaches_the_stream_as_its_terminal_frame(
    autojump_clock: trio.testing.MockClock,
) -> None:
    asgi = FakeASGI()
    async with open_engine() as engine:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                stream_run, engine, ticker(100), asgi.send, asgi.receive, NativeProjection()
            )
            await trio.sleep(3.5)
            (run,) = engine.runs()
            engine.cancel(run.id)
    events = native_events(asgi.body)
    assert events[-1] == {
        "seq": run.log.last_seq,
        "type": "run.cancelled",
        "run_id": run.id,
        "data": {"reason": "requested"},
    }
    assert sum(e["type"].startswith("run.c") for e in events) == 1


async def test_failure_before_any_event_is_an_http_error() -> None:
    async def producer(ctx: RunContext) -> None:
        raise EngineError(ErrorCode.RATE_LIMIT_EXCEEDED, "Slow down.")

    asgi = FakeASGI()
    async with open_engine() as engine:
        await stream_run(engine, producer, asgi.send, asgi.receive, NativeProjection())
    assert asgi.start["status"] == 429
    body = __import__("json").loads(asgi.body)
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert body["error"]["message"] == "Slow down."
    assert body["error"]["correlation_id"].startswith("err_")


async def test_failure_after_an_event_streams_a_failed_frame() -> None:
    async def producer(ctx: RunContext) -> None:
        await ctx.text("partial")
        raise RuntimeError("disk quota on /srv/secret")

    asgi = FakeASGI()
    async with open_engine() as engine:
        await stream_run(engine, producer, asgi.send, asgi.receive, NativeProjection())
    assert asgi.start["status"] == 200
    events = native_events(asgi.body)
    assert events[-1]["type"] == "run.failed"
    assert events[-1]["data"]["error"]["code"] == "server_error"
    assert "secret" not in asgi.body.decode()


async def test_response_starts_at_the_first_keepalive_when_the_run_is_quiet(
    autojump_clock: trio.testing.MockClock,
) -> None:
    asgi = FakeASGI()

    async def quiet(ctx: RunContext) -> None:
        await trio.sleep(100)
        await ctx.text("late")

    async with open_engine(EngineConfig(keepalive_interval=5)) as engine:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                stream_run, engine, quiet, asgi.send, asgi.receive, NativeProjection()
            )
            await trio.sleep(4.9)
            assert asgi.sent == []
            await trio.sleep(0.2)
            assert asgi.start["status"] == 200
            # What the run has so far (its run.started event) goes out with the headers.
            assert native_events(asgi.sent[1]["body"])[0]["type"] == "run.started"
            await trio.sleep(5)
            assert asgi.sent[2]["body"] == b": keepalive\n\n"


async def test_server_cancelling_the_request_still_delivers_the_shutdown_terminal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    asgi = FakeASGI()
    async with open_engine() as engine:
        with trio.CancelScope() as request_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    stream_run, engine, ticker(100), asgi.send, asgi.receive, NativeProjection()
                )
                await trio.sleep(2.5)
                request_scope.cancel(reason="server shutting down")
    events = native_events(asgi.body)
    assert events[-1]["type"] == "run.cancelled"
    assert events[-1]["data"] == {"reason": "shutdown"}


async def test_events_the_writer_was_woken_with_are_sent_when_the_request_is_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The writer has been woken with events but has not run yet when the request is
    cancelled from outside, and the watcher releases it first: the events in hand are still
    sent whole, in order, and the stream still ends with the shutdown terminal. (Trio runs a
    batch's tasks in a random order, so each round gives either order; twenty rounds.) The
    send checkpoints before its bytes count as written, as hypercorn's does (it takes its
    send lock first)."""

    async def send_after_a_checkpoint(message: Any) -> None:
        await trio.lowlevel.checkpoint()
        asgi.sent.append(dict(message))

    for _ in range(20):
        asgi = FakeASGI()
        async with open_engine() as engine:
            with trio.CancelScope() as request_scope:

                async def producer(ctx: RunContext) -> None:
                    await ctx.text("a")
                    await trio.sleep(1)
                    await ctx.text("b")  # wakes the writer, which runs in the next batch
                    request_scope.cancel(reason="server shutting down")  # and the watcher
                    await trio.sleep_forever()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(
                        stream_run,
                        engine,
                        producer,
                        send_after_a_checkpoint,
                        asgi.receive,
                        NativeProjection(),
                    )
        events = native_events(asgi.body)
        assert [e["type"] for e in events] == [
            "run.started",
            "text.delta",
            "text.delta",
            "run.cancelled",
        ]
        assert [e["seq"] for e in events] == [1, 2, 3, 4]
        assert events[-1]["data"] == {"reason": "shutdown"}


async def test_shutdown_before_the_first_frame_still_answers_with_the_terminal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The request is cancelled while the response has not started (a quiet producer, no
    keepalive due yet): the client still gets a 200 stream ending in the shutdown terminal."""
    asgi = FakeASGI()
    async with open_engine(EngineConfig(keepalive_interval=60)) as engine:
        with trio.CancelScope() as request_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    stream_run, engine, forever, asgi.send, asgi.receive, NativeProjection()
                )
                await trio.sleep(2.5)
                assert asgi.sent == []
                request_scope.cancel(reason="server shutting down")
    assert asgi.start["status"] == 200
    events = native_events(asgi.body)
    assert [e["type"] for e in events] == ["run.started", "run.cancelled"]
    assert events[-1]["data"] == {"reason": "shutdown"}
    assert asgi.sent[-1]["more_body"] is False


async def test_a_stuck_socket_does_not_stall_the_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """hypercorn's socket writes are shielded: a client that stops reading blocks its
    writer, and nothing else."""
    stuck = trio.Event()

    async def stuck_send(message: Any) -> None:
        if message["type"] == "http.response.body":
            with trio.CancelScope(shield=True):
                await stuck.wait()

    never = FakeASGI()
    async with open_engine(EngineConfig(connection_buffer=128)) as engine:
        run = engine.start_run(ticker(20))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                serve_connection, Connection(run, NativeProjection()), stuck_send, never.receive
            )
            await run.wait_done()
            assert run.terminal_at == pytest.approx(20, abs=0.01)
            stuck.set()


async def test_terminal_delivery_gives_up_after_its_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A client that stops reading while the server shuts down holds the request for at most
    ``terminal_delivery_timeout`` seconds, not forever."""
    stalled = trio.Event()

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            stalled.set()
            await trio.sleep_forever()  # the final write never completes

    never = FakeASGI()
    config = EngineConfig(terminal_delivery_timeout=3, keepalive_interval=1000)
    async with open_engine(config) as engine:
        run = engine.start_run(ticker(100))
        with trio.CancelScope() as request_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    serve_connection, Connection(run, NativeProjection()), send, never.receive
                )
                await trio.sleep(2.5)
                request_scope.cancel(reason="server shutting down")
                run.cancel(CancelReason.SHUTDOWN)
        assert stalled.is_set()
        assert trio.current_time() == pytest.approx(2.5 + 3, abs=0.01)


class HypercornLikeASGI:
    """A server that, like hypercorn, takes a message (advancing its HTTP state) before it
    writes it, and reports ``http.disconnect`` from inside the final send, where it also does
    its connection bookkeeping (close or get ready for the next request)."""

    def __init__(self) -> None:
        self.taken: list[dict[str, Any]] = []
        self.written: list[dict[str, Any]] = []
        self.gate: trio.Event | None = None  # set: body writes wait for it (cancellable)
        self.waiting = trio.Event()
        self.bookkeeping_done = False
        self._to_app, self._from_server = trio.open_memory_channel[dict[str, Any]](10)

    async def send(self, message: Any) -> None:
        self.taken.append(dict(message))
        if self.gate is not None and message["type"] == "http.response.body":
            self.waiting.set()
            await self.gate.wait()  # like hypercorn's send lock: a cancellable wait
        await trio.lowlevel.checkpoint()
        self.written.append(dict(message))
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            await self._to_app.send({"type": "http.disconnect"})
            await trio.lowlevel.checkpoint()  # the app's reader runs here
            self.bookkeeping_done = True

    async def receive(self) -> dict[str, Any]:
        return await self._from_server.receive()

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.written[1:])


async def test_a_send_in_flight_when_the_request_is_cancelled_is_finished(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A server that already took a chunk must get to write it: the client sees every
    event up to the shutdown terminal, with no gap."""
    asgi = HypercornLikeASGI()

    async def request(engine: Engine, *, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            await stream_run(engine, ticker(100), asgi.send, asgi.receive, NativeProjection())

    async with open_engine() as engine:
        async with trio.open_nursery() as nursery:
            request_scope = await nursery.start(request, engine)
            await trio.sleep(3.5)
            asgi.gate = trio.Event()
            await asgi.waiting.wait()
            request_scope.cancel(reason="server shutting down")
            await trio.sleep(0.5)
            asgi.gate.set()
    events = native_events(asgi.body)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "run.cancelled"
    assert events[-1]["data"] == {"reason": "shutdown"}
    assert asgi.taken == asgi.written


async def test_the_final_send_is_not_cut_short_by_the_disconnect_it_causes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The ``http.disconnect`` that the server reports from inside the final send is the end
    of the response: the send (and the server's bookkeeping in it) runs to its end, and the
    connection closes as finished, not as a client that left."""
    closes: list[str] = []

    class Closes(EngineObserver):
        def connection_closed(self, run: Run, reason: CloseReason) -> None:
            closes.append(reason)

    asgi = HypercornLikeASGI()
    async with open_engine(observer=Closes()) as engine:
        await stream_run(engine, ticker(3), asgi.send, asgi.receive, NativeProjection())
    assert asgi.bookkeeping_done
    assert closes == ["finished"]
    assert native_events(asgi.body)[-1]["type"] == "run.completed"


async def test_a_write_stuck_at_shutdown_is_aborted_at_the_delivery_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A client that stopped reading holds a write that ignores cancellation (hypercorn
    shields its socket writes). When the request is cancelled, the run is cancelled at once
    (it stops producing), and at the delivery deadline the transport is aborted, which
    fails the write and ends the request."""
    aborted_at: list[float] = []
    broken = trio.Event()

    async def stuck_send(message: Any) -> None:
        if message["type"] == "http.response.body":
            with trio.CancelScope(shield=True):
                with trio.move_on_after(1000):  # a test's bound; TCP's is far longer
                    await broken.wait()

    def abort() -> None:
        aborted_at.append(trio.current_time())
        broken.set()

    never = FakeASGI()
    config = EngineConfig(terminal_delivery_timeout=3)
    async with open_engine(config) as engine:
        with trio.CancelScope() as request_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    functools.partial(
                        stream_run,
                        engine,
                        ticker(10_000),
                        stuck_send,
                        never.receive,
                        NativeProjection(),
                        abort=abort,
                    )
                )
                await trio.sleep(5)
                (run,) = engine.runs()
                request_scope.cancel(reason="server shutting down")
        assert trio.current_time() == pytest.approx(5 + 3, abs=0.01)
    assert aborted_at == [pytest.approx(5 + 3, abs=0.01)]
    assert run.outcome == Cancelled(CancelReason.SHUTDOWN)
    assert run.terminal_at == pytest.approx(5, abs=0.01)


async def test_a_failing_receive_ends_the_stream_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The writer is shielded between sends; a watcher whose ``receive`` raises still lets
    the error end the connection then, not when the run ends."""

    async def broken_receive() -> dict[str, Any]:
        await trio.sleep(2)
        raise RuntimeError("the transport broke")

    asgi = FakeASGI()
    raised_at = None
    async with open_engine() as engine:
        run = engine.start_run(ticker(100))
        try:
            await serve_connection(Connection(run, NativeProjection()), asgi.send, broken_receive)
        except* RuntimeError:
            raised_at = trio.current_time()
        engine.cancel(run.id)
    assert raised_at == pytest.approx(2, abs=0.01)


# -- body chunks written straight to the connection's socket ----------------------------------

_HTTP11 = {"type": "http", "http_version": "1.1", "method": "POST"}


def _dechunk(raw: bytes) -> list[bytes]:
    """HTTP/1.1 chunked framing, strictly: the chunks, without a terminating empty chunk."""
    chunks = []
    while raw:
        size_line, sep, rest = raw.partition(b"\r\n")
        assert sep, raw
        size = int(size_line, 16)
        assert size > 0, "an empty chunk would end the body"
        assert rest[size : size + 2] == b"\r\n", raw
        chunks.append(rest[:size])
        raw = rest[size + 2 :]
    return chunks


async def _serve_on_socket(
    scope: dict[str, Any] | None,
    producer: Any,
    config: EngineConfig | None = None,
    *,
    observer: EngineObserver | None = None,
    peer_closes_after: int | None = None,
) -> tuple[FakeASGI, bytes, Run]:
    """``stream_run`` in a task that holds a connected ``trio.SocketStream`` as a Trio socket
    server's connection task does; returns what went through ASGI and what the peer read."""
    ours, theirs = trio.socket.socketpair()
    connection_stream = trio.SocketStream(ours)
    peer = trio.SocketStream(theirs)
    asgi = FakeASGI()
    received = bytearray()

    async def connection_task(stream: trio.SocketStream) -> None:
        # The connection's stream among the task's locals, as in trio.serve_listeners.
        try:
            await stream_run(
                engine, producer, asgi.send, asgi.receive, NativeProjection(), scope=scope
            )
        finally:
            await stream.aclose()

    async def read_peer() -> None:
        while data := await peer.receive_some():
            received.extend(data)
            if peer_closes_after is not None and len(received) >= peer_closes_after:
                await peer.aclose()
                return

    async with open_engine(config or EngineConfig(), observer=observer) as engine:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_peer)
            nursery.start_soon(connection_task, connection_stream)
        (run,) = engine.runs()
    return asgi, bytes(received), run


async def test_http11_body_chunks_go_straight_to_the_socket(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Over HTTP/1.1 only the head and the end of the body go through ASGI (the server keeps
    its HTTP state); every chunk between is written to the connection in chunked framing."""
    asgi, raw, run = await _serve_on_socket(_HTTP11, ticker(3))
    assert [m["type"] for m in asgi.sent] == ["http.response.start", "http.response.body"]
    assert asgi.sent[1] == {"type": "http.response.body", "body": b"", "more_body": False}
    chunks = _dechunk(raw)
    assert len(chunks) == 4  # run.started with t0, then t1, t2 and the terminal
    events = native_events(b"".join(chunks))
    assert [e["type"] for e in events] == ["run.started"] + ["text.delta"] * 3 + ["run.completed"]
    assert run.outcome == Completed()


@pytest.mark.parametrize(
    "scope",
    [
        None,
        {"type": "http", "http_version": "2", "method": "POST"},
        {"type": "http", "http_version": "1.0", "method": "POST"},
        {"type": "http", "http_version": "1.1", "method": "HEAD"},
    ],
    ids=["no scope", "HTTP/2", "HTTP/1.0", "HEAD"],
)
async def test_other_responses_go_through_asgi_only(
    autojump_clock: trio.testing.MockClock, scope: dict[str, Any] | None
) -> None:
    asgi, raw, _run = await _serve_on_socket(scope, ticker(3))
    assert raw == b""
    events = native_events(asgi.body)
    assert [e["type"] for e in events] == ["run.started"] + ["text.delta"] * 3 + ["run.completed"]


async def test_direct_writes_can_be_switched_off(autojump_clock: trio.testing.MockClock) -> None:
    asgi, raw, _run = await _serve_on_socket(_HTTP11, ticker(3), EngineConfig(direct_writes=False))
    assert raw == b""
    assert native_events(asgi.body)[-1]["type"] == "run.completed"


async def test_a_failed_direct_write_is_the_client_leaving(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The peer closes after the first chunk: the next write fails, and that is a client
    disconnect (the attached run is cancelled with ``client_disconnected``), not an error."""
    closes: list[str] = []

    class Closes(EngineObserver):
        def connection_closed(self, run: Run, reason: CloseReason) -> None:
            closes.append(reason)

    asgi, raw, run = await _serve_on_socket(
        _HTTP11, ticker(100), observer=Closes(), peer_closes_after=1
    )
    assert run.outcome == Cancelled(CancelReason.CLIENT_DISCONNECTED)
    assert closes == ["disconnected"]
    assert [m["type"] for m in asgi.sent] == ["http.response.start"]
    assert [e["type"] for e in native_events(b"".join(_dechunk(raw)))] == [
        "run.started",
        "text.delta",
    ]
