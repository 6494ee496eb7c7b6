"""The ASGI transport: serve one connection to a run over ASGI ``send``/``receive``.

This is the only engine module that speaks a network protocol, and it needs no web
framework: an embedder can serve runs with hypercorn and a ten-line ASGI app (see
``docs/embedding.md``).

The connection scope::

    connection scope (a nursery in the request task)
    ├── writer              the only task that calls ``send``; also ticks keepalives
    └── disconnect watcher  the only task that calls ``receive``

The writer ends the scope after the terminal frame; the watcher ends it when the client
disconnects (and the run's disconnect policy decides what happens to the run).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import trio

from ._connections import Connection
from ._engine import Engine
from ._runs import Producer
from .protocols._base import Projection

__all__ = ["ASGIReceive", "ASGISend", "serve_connection", "stream_run"]

ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]


async def serve_connection(
    connection: Connection,
    send: ASGISend,
    receive: ASGIReceive,
    *,
    extra_headers: Iterable[tuple[bytes, bytes]] = (),
    early_failure: bool = True,
) -> None:
    """Stream ``connection`` as one HTTP response; return when it is over.

    The response starts with the run's first producer event, its terminal or the first
    keepalive tick, whichever comes first. With ``early_failure``, a run that failed
    before producing anything is answered with an HTTP error status and a JSON body.

    If the calling task is cancelled (server shutdown), the terminal frame is still
    delivered, shielded for at most ``terminal_delivery_timeout`` seconds, before
    :class:`trio.Cancelled` propagates; if the response had not started, it starts then.
    """
    headers = [*connection.projection.headers, *extra_headers]
    with connection:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_disconnect, connection, receive, nursery.cancel_scope)
            await _write(connection, send, headers, early_failure)
            nursery.cancel_scope.cancel(reason="response complete")


async def _write(
    connection: Connection,
    send: ASGISend,
    headers: list[tuple[bytes, bytes]],
    early_failure: bool,
) -> None:
    started: bool | None = False  # None: answered with an HTTP error instead of a stream
    try:
        if early_failure:
            failed = await connection.wait_first()
            answer = connection.projection.early_failure(failed) if failed else None
            if answer is not None:
                connection.close_reason = "finished"
                started = None  # this response is the JSON error, whatever happens next
                status, body = answer
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
        chunk = await connection.next_chunk()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        started = True
        while chunk is not None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            chunk = await connection.next_chunk()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except trio.Cancelled:
        # Cancelled (the server is shutting down) before or while streaming: the client is
        # still owed the run's terminal, even if the response has not started yet.
        if started is not None and not connection.client_gone and not connection.finished:
            timeout = connection.run._config.terminal_delivery_timeout
            with trio.move_on_after(timeout, shield=True):
                rest = await connection.drain()
                if not started:
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": rest, "more_body": False})
        raise


async def _watch_disconnect(
    connection: Connection, receive: ASGIReceive, scope: trio.CancelScope
) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            connection.disconnected()
            scope.cancel(reason="client disconnected")
            return


async def stream_run(
    engine: Engine,
    producer: Producer,
    send: ASGISend,
    receive: ASGIReceive,
    projection: Projection,
    **run_options: Any,
) -> None:
    """Run ``producer`` attached to this request and stream it: the run's scope lives in the
    request task, and a client disconnect cancels the run (``client_disconnected``)."""
    async with engine.open_run(producer, **run_options) as run:
        await serve_connection(
            Connection(run, projection),
            send,
            receive,
            extra_headers=[(b"x-run-id", run.id.encode())],
        )
