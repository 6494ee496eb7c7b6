"""The load generator's HTTP client: asyncio protocols over raw non-blocking sockets.

asyncio's protocol interface calls ``buffer_updated`` straight from the selector loop, with no
task switch per read, which keeps the client's cost per read to a ``recv_into`` and the
:mod:`._wire` parsers. Every request opens its own connection (with ``connection: close``), closed by this client as
soon as the response is complete, so a measurement never waits behind another on the same
socket.

Timestamps: ``recv_wall`` (``time.time()``, comparable across processes on this machine) and
``recv_perf`` (``time.perf_counter()``, for intervals inside this process) are taken once per
read, before its bytes are parsed, so every frame in one read gets the time the read returned.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable

from ._wire import BodyCounter, Buffer, ResponseReader, SseReader, build_request

__all__ = ["Exchange", "StreamClient", "open_exchange", "open_stream", "request"]

FrameHandler = Callable[["StreamClient", bytes, bytes, bool], None]
_LINGER_RST = struct.pack("ii", 1, 0)
_BULK_READ = 256 * 1024
_LIGHT_READ = 16 * 1024


def _reset(transport: asyncio.Transport) -> None:
    if transport.is_closing():
        return
    try:
        transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST
        )
    except OSError:
        pass
    transport.abort()


class StreamClient(asyncio.BufferedProtocol):
    """One streaming request. ``finished`` resolves when the body ends or the connection does.

    With ``on_frame`` every frame is parsed and handed to it; without, the body is only
    counted in place (``counter``), which is what throughput runs use. Reads go straight into
    the client's own buffer (``recv_into``), so a read allocates nothing.
    """

    def __init__(
        self, request: bytes, on_frame: FrameHandler | None, *, count_frames: bool = False
    ) -> None:
        self.request = request
        self.on_frame = on_frame
        self.transport: asyncio.Transport | None = None
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.counter = BodyCounter(frames=count_frames)
        self._sse = SseReader(self._dispatch) if on_frame is not None else None
        self.reader = ResponseReader(self._on_body)
        # Counting streams move bulk data; parsing ones are many and light (idle streams).
        self._buf = bytearray(_BULK_READ if on_frame is None else _LIGHT_READ)
        self._view = memoryview(self._buf)
        self._kept = 0  # unparsed bytes from the last read, moved to the buffer's front
        self.recv_wall = 0.0
        self.recv_perf = 0.0
        self.t_sent = 0.0
        self.t_first_body = 0.0
        self.t_end = 0.0
        self.error: str | None = None

    # asyncio.BufferedProtocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.t_sent = time.perf_counter()
        transport.write(self.request)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view[self._kept :]

    def buffer_updated(self, nbytes: int) -> None:
        self.recv_wall = time.time()
        self.recv_perf = time.perf_counter()
        end = self._kept + nbytes
        try:
            used = self.reader.parse(self._buf, end)
        except Exception as exc:  # a parse error ends this stream, not the whole run
            self._finish(f"{type(exc).__name__}: {exc}")
            return
        self._kept = end - used
        if self._kept:
            if self._kept > len(self._buf) // 2:
                self._finish("response head or chunk line too large")
                return
            self._buf[: self._kept] = self._buf[used:end]
        if self.reader.complete:
            self._finish(None)

    def eof_received(self) -> bool | None:
        self.reader.feed_eof()
        self._finish(None if self.reader.complete else "connection closed mid-response")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.recv_perf = time.perf_counter()
            self._finish(None if self.reader.complete else f"connection lost: {exc or 'closed'}")

    # parsing -------------------------------------------------------------------------------
    def _on_body(self, buf: Buffer, start: int, stop: int) -> None:
        if not self.t_first_body:
            self.t_first_body = self.recv_perf
        self.counter.feed_range(buf, start, stop)
        if self._sse is not None:
            self._sse.feed_range(buf, start, stop)

    def _dispatch(self, event: bytes, data: bytes, comment: bool) -> None:
        assert self.on_frame is not None
        self.on_frame(self, event, data, comment)

    def _finish(self, error: str | None) -> None:
        if self.finished.done():
            return
        self.t_end = self.recv_perf
        self.error = error
        self.finished.set_result(None)
        if self.transport is not None:
            # Close as soon as the body is complete: quart-trio (under hypercorn) keeps the
            # connection open after its response, even with ``connection: close``, until the
            # client closes it. TIME_WAIT sockets this leaves here are reused on loopback
            # (net.ipv4.tcp_tw_reuse).
            self.transport.close()

    # control -------------------------------------------------------------------------------
    @property
    def status(self) -> int | None:
        return self.reader.status

    @property
    def run_id(self) -> str | None:
        value = self.reader.headers.get(b"x-run-id")
        return value.decode() if value else None

    def disconnect(self, *, reset: bool = False) -> None:
        """Close the socket now: a FIN (or, with ``reset``, an RST that leaves no TIME_WAIT)."""
        if self.transport is None or self.transport.is_closing():
            return
        if reset:
            _reset(self.transport)
        else:
            try:
                self.transport.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.transport.abort()
        if not self.finished.done():
            self.t_end = time.perf_counter()
            self.error = None
            self.finished.set_result(None)


async def open_stream(
    host: str,
    port: int,
    request: bytes,
    on_frame: FrameHandler | None = None,
    *,
    count_frames: bool = False,
) -> StreamClient:
    """Connect and send ``request``; the response is read in the background."""
    loop = asyncio.get_running_loop()
    _transport, client = await loop.create_connection(
        lambda: StreamClient(request, on_frame, count_frames=count_frames), host, port
    )
    return client


class Exchange(asyncio.Protocol):
    """A connection opened ahead of time, to send one request at a chosen moment."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.body = bytearray()
        self.reader = ResponseReader(lambda buf, start, stop: self.body.extend(buf[start:stop]))
        self.response: asyncio.Future[tuple[int, bytes]] = (
            asyncio.get_running_loop().create_future()
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        if self.reader.complete:
            self._done()

    def eof_received(self) -> bool | None:
        self.reader.feed_eof()
        self._done()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._done()

    def _done(self) -> None:
        if self.response.done():
            return
        if self.reader.status is None:
            self.response.set_exception(ConnectionError("no response"))
        else:
            self.response.set_result((self.reader.status, bytes(self.body)))
        if self.transport is not None:
            self.transport.close()


async def open_exchange(host: str, port: int) -> Exchange:
    loop = asyncio.get_running_loop()
    _transport, exchange = await loop.create_connection(Exchange, host, port)
    return exchange


async def request(
    host: str, port: int, method: str, path: str, body: bytes = b""
) -> tuple[int, bytes]:
    """One plain request on a fresh connection: (status, body)."""
    exchange = await open_exchange(host, port)
    exchange.send(build_request(method, host, port, path, body))
    return await exchange.response
