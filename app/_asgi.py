"""The ASGI entry point, ``app:serve``, around the Quart app.

It does two things Quart cannot:

* refuse to start on anything but Trio (``hypercorn -k asyncio`` cannot run a Trio app),
  with a message naming the right command, instead of answering 500s (see
  :func:`refuse_to_start`);
* record, per request, whether the client disconnected. quart-trio's message reader
  cancels the request when ``http.disconnect`` arrives; the stream needs to know that this
  cancellation was the client leaving (cancel or keep the run, by its policy) and not the
  server shutting down (deliver the terminal, then close).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import trio

from engine.protocols.native import error_body

__all__ = ["TRIO_ONLY", "ScopestreamASGI", "on_trio", "refuse_to_start", "request_extension"]

logger = logging.getLogger("scopestream.app")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

TRIO_ONLY = (
    "scopestream runs on Trio only; start it with the Trio worker: hypercorn -k trio app:serve"
)
_KEY = "scopestream"


class RequestExtension:
    """Per-request transport facts shared with the response body."""

    __slots__ = ("disconnected", "on_exit", "send")

    def __init__(self, send: Send) -> None:
        self.disconnected = trio.Event()
        self.send = send
        #: Called when the request ends, however it ends (the streaming body registers its
        #: cleanup here, for a request cancelled before Quart entered the body).
        self.on_exit: Callable[[], None] | None = None


def request_extension(scope: Mapping[str, Any]) -> RequestExtension | None:
    ext = (scope.get("extensions") or {}).get(_KEY)
    return ext if isinstance(ext, RequestExtension) else None


class ScopestreamASGI:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not on_trio():
            await refuse_to_start(scope, receive, send, TRIO_ONLY)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ext = RequestExtension(send)

        async def watched_receive() -> MutableMapping[str, Any]:
            message = await receive()
            if message["type"] == "http.disconnect":
                ext.disconnected.set()
            return message

        scope = {**scope, "extensions": {**(scope.get("extensions") or {}), _KEY: ext}}
        try:
            await self.app(scope, watched_receive, send)
        finally:
            if ext.on_exit is not None:
                ext.on_exit()


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
