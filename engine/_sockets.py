"""The TCP connection under an ASGI request: reset it, or write a response body to it.

ASGI gives an application no handle on its socket, and hypercorn's Trio worker shields
every socket write from cancellation: a client that stops reading holds the task that
writes to it for as long as TCP keeps the connection up (hours: a zero window is probed,
not timed out). Nothing the application cancels can end that write; only the socket
failing can. So, to abandon such a write, :func:`reset_connection` finds the request's
socket and resets it: ``SO_LINGER`` zero (the eventual close sends RST and drops what is
queued, instead of probing the window forever) and ``shutdown(SHUT_RDWR)``, which wakes
the blocked write with an error. The server then sees a broken connection and cleans up
as for any client that vanished; it still owns and closes the descriptor.

Writing to it (:func:`direct_stream`): hypercorn's send path for one HTTP/1.1 body chunk
runs h11, takes a ``trio.Lock`` and enters a shielded cancel scope before the socket write;
at hundreds of streams that costs more than everything else a stream does. Once the
response head has gone out through the server (so its HTTP state knows a chunked body has
begun), the transport core writes the body's chunks to the connection's stream itself,
framed exactly as h11 frames them, and ends the body through the server again, which writes
the last chunk and does its connection bookkeeping. This is safe only where the server
writes nothing to the connection between the head and the end of the body on its own, which
holds for HTTP/1.1 under hypercorn's Trio worker (h11 answers nothing while a response is in
progress); and only for a cleartext ``trio.SocketStream`` (a TLS stream's record layer is
the server's). The writes go to the stream's socket (:func:`write_all`): the stream's own
``send_all`` adds a generator context manager, a conflict check and a trip through the
scheduler per call, a fifth of a stream's CPU at hundreds of streams.

Finding the socket: Trio's ``serve_listeners`` runs each accepted connection in a task whose
coroutine holds the connection's stream, and the server runs each request in a task
below it (hypercorn: ``_run_handler(stream, handler)`` → ``TCPServer`` → the request's
task group). The nearest ancestor task holding a ``trio.SocketStream`` (or a
``trio.SSLStream`` over one) is the request's connection. Under a server built
differently nothing is found, and the caller is told so.
"""

from __future__ import annotations

import logging
import os
import socket
import struct

import trio

__all__ = ["direct_stream", "reset_connection", "write_all"]

logger = logging.getLogger("scopestream.engine")

_LINGER_RESET = struct.pack("ii", 1, 0)


def reset_connection(task: trio.lowlevel.Task) -> bool:
    """Reset the TCP connection that ``task`` (a request's task, or a task below it) is
    serving. Returns False when no connection is found: the write cannot be abandoned."""
    stream = _connection_stream(task)
    if isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if not isinstance(stream, trio.SocketStream):
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


def direct_stream(task: trio.lowlevel.Task) -> trio.SocketStream | None:
    """The cleartext stream of the connection ``task`` serves, for writing a response body
    to it directly (see the module docstring); None under TLS or another server."""
    stream = _connection_stream(task)
    return stream if isinstance(stream, trio.SocketStream) else None


async def write_all(sock: trio.socket.SocketType, data: bytes) -> bool:
    """Write all of ``data`` to ``sock``; False if the connection is broken or closed (the
    client is gone, or the server closed it).

    The common case is one ``write(2)`` and no trip through the scheduler (Trio's socket
    ``send`` always yields once more after it has written): the writer's next wait for
    events is its checkpoint. Only a full socket buffer waits, for the socket to be
    writable. The descriptor is read from the socket right before each write, with no
    ``await`` in between, so it is never one the server has closed meanwhile (and possibly
    reused for another connection). Cancelled while waiting, part of ``data`` may be sent.
    """
    view = memoryview(data)
    while True:
        fd = sock.fileno()
        if fd < 0:
            return False
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            pass
        except OSError:
            return False
        if not view:
            return True
        try:
            await trio.lowlevel.wait_writable(sock)
        except (OSError, trio.ClosedResourceError):
            return False


def _connection_stream(task: trio.lowlevel.Task | None) -> trio.abc.Stream | None:
    while task is not None:
        frame = getattr(task.coro, "cr_frame", None)
        if frame is not None:
            for value in frame.f_locals.values():
                if isinstance(value, (trio.SSLStream, trio.SocketStream)):
                    return value
        nursery = task.parent_nursery
        task = nursery.parent_task if nursery is not None else None
    return None
