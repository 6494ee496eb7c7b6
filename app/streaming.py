"""Streaming a run through Quart: a response body that drives an engine ``Connection``.

Quart's response loop is the writer here (the only caller of ASGI ``send``) and
quart-trio's message reader is the disconnect watcher (the only caller of ``receive``);
this body is the glue:

* ``__anext__`` asks the connection for its next chunk: coalesced events, or a keepalive
  when the interval passed without a frame;
* a disconnect (recorded by ``app._asgi``) cancels the request; on the way out the
  connection learns that the client left, and the run's disconnect policy decides;
* any other cancellation is the server shutting down: the run is cancelled with reason
  ``shutdown`` and its terminal frame is still written to the client, shielded, for at
  most the terminal delivery timeout.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType

import trio
from quart import Response, request
from quart.wrappers.response import ResponseBody

from engine import CancelReason, Connection

from ._asgi import RequestExtension, request_extension
from .errors import failure_headers

__all__ = ["ConnectionBody", "stream_response"]


class ConnectionBody(ResponseBody):
    def __init__(self, connection: Connection, ext: RequestExtension | None) -> None:
        self._connection = connection
        self._ext = ext
        if ext is not None:
            ext.on_exit = self.close

    async def __aenter__(self) -> ConnectionBody:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Detach from the run (idempotent). A request that ends before the stream did —
        including one cancelled before Quart even entered this body — is a client that
        left, unless the stream was delivered to its end."""
        connection = self._connection
        if self._ext is not None and (self._ext.disconnected.is_set() or not connection.finished):
            connection.disconnected()
        connection.__exit__(None, None, None)

    def __aiter__(self) -> ConnectionBody:
        return self

    async def __anext__(self) -> bytes:
        connection = self._connection
        try:
            chunk = await connection.next_chunk()
        except trio.Cancelled:
            if self._ext is not None and not self._ext.disconnected.is_set():
                await self._deliver_shutdown_terminal()
            raise
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def _deliver_shutdown_terminal(self) -> None:
        connection, ext = self._connection, self._ext
        assert ext is not None
        if connection.finished:
            return
        connection.run.cancel(CancelReason.SHUTDOWN)
        with trio.move_on_after(connection.run._config.terminal_delivery_timeout, shield=True):
            rest = await connection.drain()
            await ext.send({"type": "http.response.body", "body": rest, "more_body": True})


async def stream_response(
    connection: Connection,
    *,
    headers: Iterable[tuple[str, str]] = (),
    early_failure: bool = True,
) -> Response:
    """Open ``connection`` and answer with it as a streaming response.

    Waits for the run's first event, terminal or keepalive tick first, so that a run that
    failed before producing anything answers with an HTTP error instead of a 200 stream.
    """
    ext = request_extension(request.scope)
    connection.__enter__()
    try:
        failed = await connection.wait_first() if early_failure else None
    except BaseException:
        if ext is not None and ext.disconnected.is_set():
            connection.disconnected()
        connection.__exit__(None, None, None)
        raise
    answer = connection.projection.early_failure(failed) if failed else None
    if answer is not None:
        connection.close_reason = "finished"
        connection.__exit__(None, None, None)
        status, body = answer
        return Response(
            body, status=status, content_type="application/json", headers=failure_headers(failed)
        )
    response = Response(ConnectionBody(connection, ext), status=200)
    for raw_name, raw_value in connection.projection.headers:
        response.headers[raw_name.decode()] = raw_value.decode()
    for name, value in headers:
        response.headers[name] = value
    response.timeout = None  # a stream ends with its run, not with Quart's response timeout
    return response
