"""Connection: one client reading one run's log from a cursor.

A connection holds no copy of the events: it holds a cursor into the run's log and turns
what lies past it into frames through a projection. So a connection costs a few hundred
bytes, and any number of them follow one run without the producer ever waiting on them.

Transport drivers (``engine.asgi``, or the app's response body) call :meth:`next_chunk`
in their single writer task. That one call also does the keepalive ticking: it waits for
the next event *with a deadline* of "keepalive interval after the last frame", so the
writer is the only task that produces frames and there is no channel between a ticker and
a writer (see ``docs/architecture.md``, "why the ticker lives in the writer").

Bounded buffer: a connection may fall at most ``buffer`` events behind while one write is in
flight (events that arrive while it is idle do not count). When a write returns and more than
that arrived meanwhile, the connection ends with a slow-consumer frame carrying its cursor;
the client can resume from there. Replaying a long log is not lagging: a replay is read in
chunks no larger than the buffer.

Bounded chunks: one chunk holds at most 512 events and at most ``max_chunk_bytes`` of them
(estimated, at least one event), so a connection never holds more than about one chunk of
frames, however large the run's events: followers do not multiply a run's memory.
"""

from __future__ import annotations

import trio

from ._events import EventType, Failed, outcome_from_event
from ._handle import RunHandle
from ._observer import CloseReason
from .protocols._base import Projection

__all__ = ["Connection"]

_MAX_CHUNK_EVENTS = 512


class Connection:
    __slots__ = (
        "_buffer",
        "_chunk_bytes",
        "_cursor",
        "_finished",
        "_keepalive",
        "_last_frame_at",
        "_open",
        "_seen_last_seq",
        "client_gone",
        "close_reason",
        "projection",
        "run",
    )

    def __init__(self, run: RunHandle, projection: Projection, *, cursor: int = 0) -> None:
        config = run._config
        self.run = run
        self.projection = projection
        self._cursor = max(0, cursor)
        self._buffer = config.connection_buffer
        self._chunk_bytes = config.max_chunk_bytes
        self._keepalive = config.keepalive_interval
        self._last_frame_at = trio.current_time()
        self._seen_last_seq = max(self._cursor, run.log.last_seq)
        self._finished = False
        self._open = False
        self.client_gone = False
        self.close_reason: CloseReason = "cancelled"

    @property
    def cursor(self) -> int:
        return self._cursor

    @property
    def finished(self) -> bool:
        """True once the last frame (terminal or slow-consumer) was handed out."""
        return self._finished

    def __enter__(self) -> Connection:
        self._open = True
        self.run._attach()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._open:
            return
        self._open = False
        if self.client_gone:
            self.close_reason = "disconnected"
        self.run._detach(client_gone=self.client_gone and not self._finished)
        self.run._observer.connection_closed(self.run, self.close_reason)

    def disconnected(self) -> None:
        """The client went away (called by the transport's disconnect watcher)."""
        self.client_gone = True

    async def wait_first(self) -> Failed | None:
        """Wait for the run's first producer event, its terminal or one keepalive interval,
        whichever comes first; then return the failure if the run failed before producing
        anything (so the transport can answer with an HTTP error instead of a stream)."""
        log = self.run.log
        with trio.move_on_after(self._keepalive):
            while log.last_seq < 2 and not log.closed:
                await log.wait_beyond(log.last_seq)
        terminal = log.terminal
        if terminal is not None and terminal.type is EventType.FAILED and terminal.seq == 2:
            failed = outcome_from_event(terminal)
            assert isinstance(failed, Failed)
            return failed
        return None

    async def next_chunk(self) -> bytes | None:
        """The next bytes to write, or None when the stream is over.

        Waits for events past the cursor; if none arrive within the keepalive interval since
        the last frame, returns a keepalive frame. Coalesces every event that is ready into
        one chunk. Cancellable: nothing is consumed if cancelled while waiting.
        """
        if self._finished:
            return None
        log = self.run.log
        if log.closed and self._cursor >= log.last_seq:
            self._finished = True  # the client already has the terminal
            self.close_reason = "finished"
            return None
        if log.last_seq <= self._cursor:
            with trio.move_on_at(self._last_frame_at + self._keepalive):
                await log.wait_beyond(self._cursor)
            if log.last_seq <= self._cursor:
                self._last_frame_at = trio.current_time()
                self.run._observer.keepalive_sent(self.run)
                return self.projection.keepalive()
            # What arrived while this connection was idle is not lag, however large the
            # producer's burst was.
            self._seen_last_seq = log.last_seq
        else:
            await trio.lowlevel.checkpoint()
        if log.last_seq - self._seen_last_seq > self._buffer:
            self._finished = True
            self.close_reason = "slow_consumer"
            return self.projection.slow_consumer(self._cursor)
        self._seen_last_seq = log.last_seq
        missing_from, events = log.read(
            self._cursor, min(self._buffer, _MAX_CHUNK_EVENTS), self._chunk_bytes
        )
        chunk = self.projection.gap(missing_from, events[0].seq - 1) if missing_from else b""
        self._cursor = events[-1].seq
        chunk += self.projection.events(events)
        if events[-1].terminal or self.projection.done:
            self._finished = True
            self.close_reason = "finished"
        self._last_frame_at = trio.current_time()
        return chunk

    async def drain(self) -> bytes:
        """Wait for the run's terminal and return the frames still owed, ending with it.

        Used when the writer is being cancelled but still owes the client its terminal:
        call it under ``trio.move_on_after(..., shield=True)``. At most one chunk of
        events comes before the terminal: if the connection is further behind than that,
        the rest is skipped with the protocol's explicit ``gap`` frame, so a lagging
        connection cannot make one write of its whole backlog.
        """
        await self.run.wait_done()
        log = self.run.log
        parts = []
        while (chunk := await self.next_chunk()) is not None:
            parts.append(chunk)
            terminal = log.terminal
            assert terminal is not None
            if self._cursor < terminal.seq - 1:
                parts.append(self.projection.gap(self._cursor + 1, terminal.seq - 1))
                self._cursor = self._seen_last_seq = terminal.seq - 1
                if self.projection.done:  # a protocol that cannot go on after a gap
                    self._finished = True
                    self.close_reason = "finished"
        return b"".join(parts)
