"""The ASGI entry point, ``app:serve``, around the Quart app.

It does two things Quart cannot:

* refuse to start on anything but Trio (``hypercorn -k asyncio`` cannot run a Trio app),
  with a message naming the right command, instead of answering 500s;
* record, per request, whether the client disconnected. quart-trio's message reader
  cancels the request when ``http.disconnect`` arrives; the stream needs to know that this
  cancellation was the client leaving (cancel or keep the run, by its policy) and not the
  server shutting down (deliver the terminal, then close).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import trio

from engine.protocols.native import error_body

__all__ = ["TRIO_ONLY", "ScopestreamASGI", "request_extension"]

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
        if not _on_trio():
            await _refuse(scope, receive, send)
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


def _on_trio() -> bool:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.failed", "message": TRIO_ONLY})
    elif scope["type"] == "http":
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        body = error_body("server_error", TRIO_ONLY)
        await send({"type": "http.response.body", "body": body})
