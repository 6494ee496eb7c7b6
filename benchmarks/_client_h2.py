"""The load generator's HTTP/2 client: many streams over one cleartext connection (h2c with
prior knowledge), as a browser page following several runs over one connection does.

The ``h2`` state machine does the framing; an asyncio protocol feeds it. Each stream's body goes
through its own :class:`~._wire.SseReader`, and every frame of one read gets the time the read
returned (``recv_wall``), as in :mod:`._client`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events

from ._wire import SseReader

__all__ = ["H2Stream", "H2StreamConnection", "open_h2"]

H2FrameHandler = Callable[["H2Stream", bytes, bytes, bool], None]


class H2Stream:
    """One request on the connection. ``finished`` resolves when it ends, is reset, or the
    connection goes."""

    def __init__(self, conn: H2StreamConnection, stream_id: int, on_frame: H2FrameHandler) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.status: int | None = None
        self.error: str | None = None
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sse = SseReader(lambda event, data, comment: on_frame(self, event, data, comment))

    @property
    def recv_wall(self) -> float:
        return self.conn.recv_wall

    def _finish(self, error: str | None) -> None:
        if not self.finished.done():
            self.error = error
            self.finished.set_result(None)


class H2StreamConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.streams: dict[int, H2Stream] = {}
        self.recv_wall = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.h2.initiate_connection()
        # A large connection window: the measurement must never wait on flow control.
        self.h2.increment_flow_control_window(2**30)
        self._flush()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def open(self, host: str, path: str, body: bytes, on_frame: H2FrameHandler) -> H2Stream:
        stream_id = self.h2.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":path", path),
            (":scheme", "http"),
            (":authority", host),
            ("accept", "text/event-stream"),
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
        ]
        self.h2.send_headers(stream_id, headers)
        self.h2.send_data(stream_id, body, end_stream=True)
        stream = H2Stream(self, stream_id, on_frame)
        self.streams[stream_id] = stream
        self._flush()
        return stream

    def data_received(self, data: bytes) -> None:
        self.recv_wall = time.time()
        try:
            events = self.h2.receive_data(data)
        except Exception as exc:  # a protocol error ends every stream, not the whole run
            self._fail_all(f"{type(exc).__name__}: {exc}")
            return
        for event in events:
            stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
            if stream is None:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                for name, value in event.headers:
                    if name == b":status":
                        stream.status = int(value)
            elif isinstance(event, h2.events.DataReceived):
                stream._sse.feed(event.data)
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                stream._finish(None)
            elif isinstance(event, h2.events.StreamReset):
                stream._finish(f"stream reset ({event.error_code!r})")
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(f"connection lost: {exc or 'closed'}")

    def _fail_all(self, error: str) -> None:
        for stream in self.streams.values():
            stream._finish(error)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


async def open_h2(host: str, port: int) -> H2StreamConnection:
    loop = asyncio.get_running_loop()
    _transport, conn = await loop.create_connection(H2StreamConnection, host, port)
    return conn
