"""The ASGI transport: serve one connection to a run over ASGI ``send``/``receive``.

This is the only engine module that speaks a network protocol, and it needs no web
framework. It is the one transport core: embedders serve runs with it on hypercorn and a
ten-line ASGI app (see ``docs/embedding.md``), and the HTTP service hands every stream to
it once Quart has routed, authenticated and validated the request.

Theory of operation
-------------------

The connection scope::

    connection scope (a nursery in the request task)
    ├── writer              the only task that calls ``send``; also ticks keepalives
    └── disconnect watcher  the only task that calls ``receive``; also guards stuck writes

* The response head waits for the run's first producer event, its terminal or the first
  keepalive tick (so a run that fails before producing anything can be a real HTTP
  error), and goes out in the same shielded step as the first chunk.
* **A send, once begun, is finished.** hypercorn advances its HTTP state before it
  writes, so a send cancelled half-way would drop its bytes from the middle of the stream;
  and it does its connection bookkeeping inside the final send (close the socket after
  ``Connection: close`` or HTTP/1.0, or get ready for the next request), so cancelling
  that one leaves a client waiting forever for EOF or for its next answer. So the writer
  runs shielded, and cancellation reaches it only between sends: whoever would cancel it
  (the watcher, on a disconnect or on the request being cancelled) *releases* it, which
  drops the shield at once if the writer is waiting for events, or right after the send
  in flight. A writer already woken with events when it is released (it has consumed them
  and has not yet seen the cancellation) still sends them whole: every send raises the
  shield again. One shield per stream, nothing per event. The final send also makes
  hypercorn report ``http.disconnect``: that is the end of the response, not the client
  leaving, and the watcher treats it so.
* **Body chunks go straight to the socket where that is safe.** An HTTP/1.1 response over
  a cleartext connection of a Trio socket server has its head and its end sent through
  the server, and the chunks in between written by the writer to the connection's stream,
  in h11's chunked framing (see :mod:`engine._sockets`): one socket write per chunk,
  without the server's per-send HTTP state machine, lock and shielded scope, which at
  hundreds of streams cost more than the rest of a stream. A failed direct write is the
  client gone. ``EngineConfig.direct_writes`` switches it off; anything else (HTTP/2, TLS,
  HTTP/1.0, HEAD, another server) is always sent through ASGI.
* **A send that cannot finish is abandoned.** hypercorn shields its socket writes too, so a
  client that stops reading holds a send however it is cancelled. Once the connection is
  being shut down (the request task is cancelled from outside), the watcher gives the
  writer until the delivery deadline (``terminal_delivery_timeout`` later); a send still
  in flight then has its transport aborted (the socket is reset, see
  :mod:`engine._sockets`), which fails the write and lets the writer return.

Termination paths:

=====================================  ================================================
the writer hands out the terminal      it goes out as the last body message; the
(or a slow-consumer frame)             writer cancels the scope; the watcher ends
the client disconnects                 the watcher marks the connection gone and
                                       cancels the scope; the run's disconnect policy
                                       decides what happens to the run
the request is cancelled from outside  the run is cancelled with ``shutdown``; the
(server shutdown)                      writer drains up to the terminal and sends it as
                                       the end of the response (a head first if none
                                       went out), shielded until the delivery deadline;
                                       at that deadline a send still in flight has its
                                       transport aborted
=====================================  ================================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

import trio

from ._connections import Connection
from ._engine import Engine
from ._events import CancelReason
from ._runs import Producer
from ._sockets import direct_stream, reset_connection, write_all
from .protocols._base import Projection

__all__ = ["ASGIReceive", "ASGISend", "Abort", "serve_connection", "stream_run"]

ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
#: Abandons a write that cannot complete by breaking the request's transport (see the
#: module docstring). The default resets the request's socket under Trio socket servers
#: such as hypercorn's Trio worker.
Abort = Callable[[], None]

_JSON = (b"content-type", b"application/json")


async def serve_connection(
    connection: Connection,
    send: ASGISend,
    receive: ASGIReceive,
    *,
    extra_headers: Iterable[tuple[bytes, bytes]] = (),
    early_failure: bool = True,
    abort: Abort | None = None,
    scope: Mapping[str, Any] | None = None,
) -> None:
    """Stream ``connection`` as one HTTP response; return when it is over.

    ``scope`` is the request's ASGI scope: with it, an HTTP/1.1 response's body chunks are
    written straight to a cleartext socket where that is safe (see the module docstring).

    The response starts with the run's first producer event, its terminal or the first
    keepalive tick, whichever comes first. With ``early_failure``, a run that failed
    before producing anything is answered with an HTTP error status and a JSON body.

    If the calling task is cancelled (server shutdown), the run is cancelled with reason
    ``shutdown`` and its terminal frame is still delivered, for at most
    ``terminal_delivery_timeout`` seconds, before :class:`trio.Cancelled` propagates; if
    the response had not started, it starts then. A write still stuck at that deadline is
    abandoned with ``abort`` (default: reset the request's socket). A terminal that does not
    exist by then (another worker's run goes on) is not made up: the response is left
    unfinished, an interrupted stream for the client to resume.
    """
    exchange = _Exchange(connection, send, receive, extra_headers, abort, scope)
    with connection:
        async with trio.open_nursery() as nursery:
            exchange.scope = nursery.cancel_scope
            nursery.start_soon(exchange.watch)
            try:
                await exchange.write(early_failure)
            finally:
                exchange.writer_done.set()
            nursery.cancel_scope.cancel(reason="response complete")


class _Exchange:
    """One response: the writer's and the watcher's shared state."""

    __slots__ = (
        "_abort",
        "_deadline",
        "_direct",
        "_headers",
        "_receive",
        "_released",
        "_send",
        "_sending",
        "_shield",
        "_started",
        "_task",
        "connection",
        "ending",
        "scope",
        "writer_done",
    )

    def __init__(
        self,
        connection: Connection,
        send: ASGISend,
        receive: ASGIReceive,
        extra_headers: Iterable[tuple[bytes, bytes]],
        abort: Abort | None,
        scope: Mapping[str, Any] | None,
    ) -> None:
        self.connection = connection
        self._send = send
        self._receive = receive
        self._headers = [*connection.projection.headers, *extra_headers]
        self._abort = abort
        self._task = trio.lowlevel.current_task()
        stream = (
            direct_stream(self._task)
            if _chunked_http1(scope, self._headers) and connection.run._config.direct_writes
            else None
        )
        self._direct = stream.socket if stream is not None else None
        self.scope = trio.CancelScope()  # the connection scope, set by serve_connection
        self._shield = trio.CancelScope(shield=True)  # the writer's; see _release
        self._released = False
        self._sending = False
        self._started = False
        self._deadline: float | None = None  # set once the request is being shut down
        #: The final send has begun: from now on an ``http.disconnect`` is the server ending
        #: the exchange, and there is nothing left to deliver.
        self.ending = False
        self.writer_done = trio.Event()

    # -- the writer ---------------------------------------------------------------------

    async def write(self, early_failure: bool) -> None:
        connection = self.connection
        with self._shield:
            try:
                if early_failure:
                    failed = await connection.wait_first()
                    answer = connection.projection.early_failure(failed) if failed else None
                    if failed is not None and answer is not None:
                        connection.close_reason = "finished"
                        status, body = answer
                        headers = [_JSON, (b"content-length", str(len(body)).encode())]
                        if (retry_after := failed.error.retry_after_header) is not None:
                            headers.append((b"retry-after", retry_after.encode()))
                        await self._finish(_start(status, headers), _body(body, False))
                        return
                chunk = await connection.next_chunk()
                self._started = True  # the head goes out with the first chunk, whatever comes
                head = _start(200, self._headers)
                if chunk is None or connection.finished:
                    await self._end(chunk or b"", head)
                    return
                await self._send_chunk(chunk, head)
                while (chunk := await connection.next_chunk()) is not None:
                    if connection.finished:  # the terminal (or slow-consumer) frame: the end
                        await self._end(chunk)
                        return
                    await self._send_chunk(chunk)
                await self._end(b"")
            except trio.Cancelled:
                if not self.ending and not connection.client_gone:
                    await self._deliver_the_terminal()
                raise

    async def _deliver_the_terminal(self) -> None:
        """Cancelled from outside before the end: the client is still owed the run's
        terminal, even if the response has not started yet."""
        deadline = self._shutting_down()
        with trio.move_on_at(deadline, shield=True):
            rest = await self.connection.drain()
            head = None if self._started else _start(200, self._headers)
            self._started = True
            await self._end(rest, head)

    async def _send_chunk(self, chunk: bytes, head: MutableMapping[str, Any] | None = None) -> None:
        """One body chunk, more to come (after the response head, if given)."""
        if self._direct is None:
            await self._send_all(*_with_head(head, _body(chunk, True)))
            return
        if head is not None:
            await self._send_all(head)
        await self._write_direct(chunk)

    async def _end(self, chunk: bytes, head: MutableMapping[str, Any] | None = None) -> None:
        """The last body chunk and the end of the response (after its head, if given). The
        end always goes through the server: it does its connection bookkeeping there."""
        if self._direct is not None and chunk:
            await self._send_chunk(chunk, head)
            head, chunk = None, b""
        await self._finish(*_with_head(head, _body(chunk, False)))

    async def _finish(self, *messages: MutableMapping[str, Any]) -> None:
        self.ending = True
        await self._send_all(*messages)

    async def _write_direct(self, chunk: bytes) -> None:
        assert self._direct is not None
        if not chunk:
            return  # an empty chunk would be the end of the body
        self._begin_send()
        try:
            written = await write_all(self._direct, b"%x\r\n%b\r\n" % (len(chunk), chunk))
        finally:
            self._end_send()
        if not written:
            self._client_left("the direct write failed")

    async def _send_all(self, *messages: MutableMapping[str, Any]) -> None:
        self._begin_send()
        try:
            for message in messages:
                await self._send(message)
        finally:
            self._end_send()

    def _begin_send(self) -> None:
        """A send, once begun, is finished: shielded even when the writer was released while
        it was being woken with what it now sends (it returned from its wait before it could
        see the cancellation, and the events it holds are consumed)."""
        self._sending = True
        self._shield.shield = True

    def _end_send(self) -> None:
        self._sending = False
        if self._released:
            self._shield.shield = False  # a cancellation waited for this send to finish

    def _release(self) -> None:
        """Let cancellation reach the writer: now if it is waiting for events, after its
        send otherwise (see the module docstring)."""
        self._released = True
        if not self._sending:
            self._shield.shield = False

    # -- the disconnect watcher ---------------------------------------------------------

    async def watch(self) -> None:
        try:
            while (await self._receive())["type"] != "http.disconnect":
                pass  # request body bytes: a stream has no use for them
        except trio.Cancelled:
            if not self.writer_done.is_set() and not self.connection.client_gone:
                self._release()
                await self._guard()
            raise
        except BaseException:
            self._release()  # receive failed: the nursery cancels the writer, let it see that
            raise
        if self.ending:
            return  # the server ending the exchange inside the final send
        self._client_left("client disconnected")

    def _client_left(self, reason: str) -> None:
        """The client is gone: the run's disconnect policy applies, the exchange ends."""
        self.connection.disconnected()
        self._release()
        self.scope.cancel(reason=reason)

    async def _guard(self) -> None:
        """The request is cancelled from outside while the writer is still at work: give it
        until the delivery deadline, then abort a send that is still stuck."""
        deadline = self._shutting_down()
        with trio.move_on_at(deadline, shield=True):
            await self.writer_done.wait()
        if self._sending:
            if self._abort is not None:
                self._abort()
            else:
                reset_connection(self._task)

    def _shutting_down(self) -> float:
        """The delivery deadline, fixed the first time either task sees the request being
        cancelled; the run is cancelled then, so that it stops producing and its terminal
        exists to be delivered."""
        if self._deadline is None:
            config = self.connection.run._config
            self._deadline = trio.current_time() + config.terminal_delivery_timeout
            if not self.connection.finished:
                self.connection.run.cancel(CancelReason.SHUTDOWN)
        return self._deadline


def _chunked_http1(scope: Mapping[str, Any] | None, headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether this response's body goes out in HTTP/1.1 chunked framing: an HTTP/1.1
    request that is not HEAD, answered without a length of its own."""
    if scope is None or scope.get("type") != "http" or scope.get("http_version") != "1.1":
        return False
    if scope.get("method") == "HEAD":
        return False
    return not any(name in (b"content-length", b"transfer-encoding") for name, _ in headers)


def _with_head(
    head: MutableMapping[str, Any] | None, body: MutableMapping[str, Any]
) -> tuple[MutableMapping[str, Any], ...]:
    return (body,) if head is None else (head, body)


def _start(status: int, headers: list[tuple[bytes, bytes]]) -> MutableMapping[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": headers}


def _body(body: bytes, more_body: bool) -> MutableMapping[str, Any]:
    return {"type": "http.response.body", "body": body, "more_body": more_body}


async def stream_run(
    engine: Engine,
    producer: Producer,
    send: ASGISend,
    receive: ASGIReceive,
    projection: Projection,
    *,
    abort: Abort | None = None,
    scope: Mapping[str, Any] | None = None,
    **run_options: Any,
) -> None:
    """Run ``producer`` attached to this request and stream it: the run's scope lives in the
    request task, and a client disconnect cancels the run (``client_disconnected``). Pass the
    request's ``scope`` to let body chunks go straight to the socket (see the module
    docstring)."""
    async with engine.open_run(producer, **run_options) as run:
        await serve_connection(
            Connection(run, projection),
            send,
            receive,
            extra_headers=[(b"x-run-id", run.id.encode())],
            abort=abort,
            scope=scope,
        )
