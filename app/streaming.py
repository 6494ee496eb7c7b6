"""Streaming a run: a route hands its connection to the engine's transport core.

Quart routes, authenticates and validates the request and the route starts the run; the
stream itself is served by :func:`engine.asgi.serve_connection` on the raw ASGI
``send``/``receive`` once Quart is done with the request (see ``app._asgi``). So the
service and embedders share one writer and one disconnect watcher: the response starts
with the run's first event, terminal or keepalive tick; a run that fails before producing
anything is a real HTTP error; a disconnect applies the run's policy; a server shutdown
cancels the run with ``shutdown`` and still delivers its terminal, bounded by the
terminal delivery timeout.
"""

from __future__ import annotations

from collections.abc import Iterable

from quart import Response, request

from engine import Connection

from ._asgi import request_extension

__all__ = ["stream_response"]


def stream_response(
    connection: Connection,
    *,
    headers: Iterable[tuple[str, str]] = (),
    early_failure: bool = True,
) -> Response:
    """Answer the current request with ``connection`` as a stream.

    With ``early_failure``, a run that fails before its first event answers with the
    failure's HTTP status and a JSON error instead of a 200 stream. The response returned
    here is a placeholder that is never sent.
    """
    ext = request_extension(request.scope)
    if ext is None:
        raise RuntimeError("streams are served only through the app's ASGI entry point")
    ext.hand_off(connection, headers, early_failure=early_failure)
    return Response(b"", status=200)
