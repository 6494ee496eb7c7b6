"""The ASGI entry point, ``app:serve``, around the Quart app.

It does what Quart cannot:

* refuse to start on anything but Trio (``hypercorn -k asyncio`` cannot run a Trio app),
  with a message naming the right command, instead of answering 500s (see
  :func:`refuse_to_start`);
* serve streams with the engine's transport core. A streaming route hands its
  ``Connection`` over (:meth:`RequestExtension.hand_off`) and returns; once Quart is done
  with the request, :func:`engine.asgi.serve_connection` streams it on the raw ASGI
  ``send``/``receive`` — the same writer and disconnect watcher that embedders use, and no
  Quart response loop or quart-trio tasks for the life of the stream;
* serve two requests without Quart at all: a streamed run's start and a cancel
  (:mod:`app._hot`, given as ``direct``), with the routes' own code; whatever they leave
  goes to Quart as before (a body they read is handed on, :meth:`RequestExtension.replay`);
* record, per request, whether the client disconnected. quart-trio's message reader
  cancels the request when ``http.disconnect`` arrives; a non-streaming wait needs to know
  that this cancellation was the client leaving (the run's policy applies) and not the
  server shutting down;
* let every answer end the HTTP exchange properly. hypercorn closes the socket (after
  ``Connection: close`` or HTTP/1.0) or gets ready for the next request *inside* the
  response's final ``send``, and reports ``http.disconnect`` from within it; quart-trio's
  reader would cancel that very send, leaving the client waiting for EOF or for its next
  answer. So that disconnect is held back from Quart. And over HTTP/1 an answer given
  before the request body has arrived (404, 405, 413, 415, a cancel with a body) first
  waits, bounded, for the rest of the body, so the connection can take the next request;
  past the bound it answers with ``Connection: close`` instead.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import trio

from engine import Connection
from engine.asgi import serve_connection
from engine.protocols.native import error_body

__all__ = [
    "DISCARD_BYTES",
    "DISCARD_SECONDS",
    "TRIO_ONLY",
    "DirectRoutes",
    "RequestExtension",
    "ScopestreamASGI",
    "StreamHandoff",
    "on_trio",
    "refuse_to_start",
    "request_extension",
]

logger = logging.getLogger("scopestream.app")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

TRIO_ONLY = (
    "scopestream runs on Trio only; start it with the Trio worker: hypercorn -k trio app:serve"
)
#: An answer given before the request body arrived waits for at most this many more body
#: bytes, for at most this long, and then closes the connection instead of reusing it.
DISCARD_BYTES = 4 * 1024 * 1024
DISCARD_SECONDS = 5.0
_KEY = "scopestream"
_DISCONNECT: MutableMapping[str, Any] = {"type": "http.disconnect"}


@dataclass(frozen=True, slots=True)
class StreamHandoff:
    """A stream for the transport core to serve once Quart is done with the request."""

    connection: Connection
    headers: tuple[tuple[bytes, bytes], ...]
    early_failure: bool


class RequestExtension:
    """Per-request transport state, shared by the entry point, the routes and the service."""

    __slots__ = (
        "_body_complete",
        "_body_expected",
        "_body_limit",
        "_body_received",
        "_body_settled",
        "_ending",
        "_http1",
        "_receive",
        "_replay",
        "_scope",
        "_send",
        "disconnected",
        "handoff",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self.disconnected = trio.Event()
        self.handoff: StreamHandoff | None = None
        self._ending = False  # the answer's final send has begun
        # Only an HTTP/1 connection carries the next request after this one's body; an
        # HTTP/2 stream ends by itself (and ``Connection`` is not an HTTP/2 header).
        self._http1 = scope.get("http_version", "1.1") in ("1.0", "1.1")
        self._body_expected = _content_length(scope)
        self._body_received = 0
        self._body_complete = False
        self._body_limit: int | None = None  # set while an early answer waits for the body
        self._body_settled = trio.Event()
        self._replay: MutableMapping[str, Any] | None = None

    @property
    def http1(self) -> bool:
        return self._http1

    def hand_off(
        self,
        connection: Connection,
        headers: Iterable[tuple[str, str]] = (),
        *,
        early_failure: bool = True,
    ) -> None:
        """Have ``connection`` streamed by the transport core as this request's answer; what
        the route returns is then not sent."""
        raw = tuple(
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
        )
        self.handoff = StreamHandoff(connection, raw, early_failure)

    # -- what Quart sees --------------------------------------------------------------

    async def quart_receive(self) -> MutableMapping[str, Any]:
        if self._replay is not None:
            message, self._replay = self._replay, None
            return message
        message = await self._receive()
        kind = message["type"]
        if kind == "http.request":
            self._body_received += len(message.get("body", b""))
            if not message.get("more_body", False):
                self._body_complete = True
                self._body_settled.set()
            elif self._body_limit is not None and self._body_received > self._body_limit:
                self._body_settled.set()
        elif kind == "http.disconnect":
            if self._ending:
                # hypercorn ends the exchange inside the final send (see the module
                # docstring): Quart must not hear of it, or it cancels that send. Quart
                # cancels this reader itself once the send has returned.
                await trio.sleep_forever()
            self.disconnected.set()
        return message

    async def quart_send(self, message: MutableMapping[str, Any]) -> None:
        if self.handoff is not None:
            return  # the transport core answers, once Quart is done
        kind = message["type"]
        if kind == "http.response.start" and self._http1:
            if not await self._wait_for_body():
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
        elif kind == "http.response.body" and not message.get("more_body", False):
            self._ending = True
        await self._send(message)

    async def _wait_for_body(self) -> bool:
        """Before an answer: True once the whole request body has arrived (the connection
        can take the next request), False if it did not within the discard bounds."""
        if self._body_complete:
            return True
        expected = self._body_expected
        if expected is not None and expected - self._body_received > DISCARD_BYTES:
            return False
        self._body_limit = self._body_received + DISCARD_BYTES
        with trio.move_on_after(DISCARD_SECONDS):
            await self._body_settled.wait()
        return self._body_complete

    # -- what the entry point's direct routes see -------------------------------------

    async def read_body(self) -> bytes | None:
        """The whole request body, or None if the client left first. The body is counted as
        Quart's would be (an answer then needs no wait for it)."""
        chunks: list[bytes] = []
        while True:
            message = await self.quart_receive()
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    def replay(self, body: bytes) -> None:
        """Hand a body read by :meth:`read_body` on to Quart: its first receive gets it."""
        self._replay = {"type": "http.request", "body": body, "more_body": False}

    async def send_json(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        """A whole JSON answer, with the headers Quart would send it with."""
        raw = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *(
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in headers.items()
            ),
        ]
        await self.quart_send({"type": "http.response.start", "status": status, "headers": raw})
        await self.quart_send({"type": "http.response.body", "body": body})

    # -- what the transport core sees -------------------------------------------------

    async def core_receive(self) -> MutableMapping[str, Any]:
        if self.disconnected.is_set():
            return _DISCONNECT  # Quart's reader heard it first
        return await self._receive()

    async def serve_handoff(self) -> None:
        handoff = self.handoff
        assert handoff is not None
        await serve_connection(
            handoff.connection,
            self._send,
            self.core_receive,
            extra_headers=handoff.headers,
            early_failure=handoff.early_failure,
            scope=self._scope,
        )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def request_extension(scope: Mapping[str, Any]) -> RequestExtension | None:
    ext = (scope.get("extensions") or {}).get(_KEY)
    return ext if isinstance(ext, RequestExtension) else None


#: Routes the entry point serves itself (``app._hot``): True when it answered the request,
#: False to leave it to Quart.
DirectRoutes = Callable[[Scope, RequestExtension], Awaitable[bool]]


class ScopestreamASGI:
    def __init__(self, app: Any, direct: DirectRoutes | None = None) -> None:
        self.app = app
        self.direct = direct

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not on_trio():
            await refuse_to_start(scope, receive, send, TRIO_ONLY)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ext = RequestExtension(scope, receive, send)
        if self.direct is not None and await self.direct(scope, ext):
            if ext.handoff is not None:  # served here, not in the route: see ``finally``
                await ext.serve_handoff()
            return
        extensions = {**(scope.get("extensions") or {}), _KEY: ext}
        try:
            # Quart's copy of the scope is not kept in this frame, which lives on while a
            # stream is served below (a route's frame does not: its locals, the request's
            # body among them, would last as long as the stream).
            await self.app({**scope, "extensions": extensions}, ext.quart_receive, ext.quart_send)
        finally:
            if ext.handoff is not None:
                # Served even when this request is being cancelled: the core then delivers
                # the run's shutdown terminal (bounded) before the cancellation goes on.
                await ext.serve_handoff()


def on_trio() -> bool:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


async def refuse_to_start(scope: Scope, receive: Receive, send: Send, reason: str) -> None:
    """Answer every ASGI call of an app that cannot run.

    Lifespan: ``lifespan.startup.failed`` with ``reason``, so the server logs it and stops.
    HTTP (a server without lifespan support): a JSON 500 that says so.
    """
    if scope["type"] == "lifespan":
        message = await receive()
        if message["type"] == "lifespan.startup":
            logger.critical(reason, extra={"event": "service.startup_failed"})
            _fail_hypercorn_parent()
            await send({"type": "lifespan.startup.failed", "message": reason})
    elif scope["type"] == "http":
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": error_body("server_error", reason)})


def _fail_hypercorn_parent() -> None:
    """Make hypercorn's parent process exit non-zero when this worker cannot start.

    hypercorn (0.18 and earlier) runs the app in worker processes (``-w 1``, the default)
    and loses a failed worker's exit status: its parent exits 0, so a supervisor would take
    a refusal to start for a clean stop (upstream pgjones/hypercorn#269). A failed startup
    therefore also ends the parent, with SIGUSR1, which hypercorn leaves at its default
    action: termination, a non-zero status. Only done in a worker hypercorn spawned; with
    ``-w 0`` the worker is the main process and exits non-zero by itself.
    """
    parent = multiprocessing.parent_process()
    hypercorn_worker = any(
        name in sys.modules for name in ("hypercorn.trio.run", "hypercorn.asyncio.run")
    )
    if parent is None or parent.pid is None or not hypercorn_worker:
        return
    if os.getppid() != parent.pid:
        return  # the parent is gone already
    os.kill(parent.pid, signal.SIGUSR1)
