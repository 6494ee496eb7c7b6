"""Resetting the TCP connection under an ASGI request, for a write that cannot complete.

ASGI gives an application no handle on its socket, and hypercorn's Trio worker shields
every socket write from cancellation: a client that stops reading holds the task that
writes to it for as long as TCP keeps the connection up (hours: a zero window is probed,
not timed out). Nothing the application cancels can end that write; only the socket
failing can. So, to abandon such a write, :func:`reset_connection` finds the request's
socket and resets it: ``SO_LINGER`` zero (the eventual close sends RST and drops what is
queued, instead of probing the window forever) and ``shutdown(SHUT_RDWR)``, which wakes
the blocked write with an error. The server then sees a broken connection and cleans up
as for any client that vanished; it still owns and closes the descriptor.

Finding the socket: Trio's ``serve_listeners`` runs each accepted connection in a task whose
coroutine holds the connection's stream, and the server runs each request in a task
below it (hypercorn: ``_run_handler(stream, handler)`` → ``TCPServer`` → the request's
task group). The nearest ancestor task holding a ``trio.SocketStream`` (or a
``trio.SSLStream`` over one) is the request's connection. Under a server built
differently nothing is found, and the caller is told so.
"""

from __future__ import annotations

import logging
import socket
import struct

import trio

__all__ = ["reset_connection"]

logger = logging.getLogger("scopestream.engine")

_LINGER_RESET = struct.pack("ii", 1, 0)


def reset_connection(task: trio.lowlevel.Task) -> bool:
    """Reset the TCP connection that ``task`` (a request's task, or a task below it) is
    serving. Returns False when no connection is found: the write cannot be abandoned."""
    stream = _connection_stream(task)
    if stream is None:
        logger.warning(
            "a write that cannot complete was not abandoned: no socket found for the request",
            extra={"event": "transport.no_socket"},
        )
        return False
    sock = stream.socket
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already gone: nothing is left to abandon
    return True


def _connection_stream(task: trio.lowlevel.Task | None) -> trio.SocketStream | None:
    while task is not None:
        frame = getattr(task.coro, "cr_frame", None)
        if frame is not None:
            for value in frame.f_locals.values():
                if isinstance(value, trio.SSLStream):
                    value = value.transport_stream
                if isinstance(value, trio.SocketStream):
                    return value
        nursery = task.parent_nursery
        task = nursery.parent_task if nursery is not None else None
    return None
