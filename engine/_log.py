"""A run's event log: append-only, bounded, readable from any cursor, waitable.

Appending never blocks and never awaits: the producer and the terminal decision never
wait on readers. Readers (connections) keep their own cursor and park on the log's
:class:`trio.lowlevel.ParkingLot` until something past their cursor exists; one
``unpark_all`` per append wakes every follower without any per-follower allocation.

Retention is bounded by ``max_events``: the oldest events are dropped first. A reader whose
cursor points before the first retained event gets told so (see :meth:`EventLog.read`),
never a silent skip.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio

from ._events import Event, EventType

__all__ = ["EventLog"]


class EventLog:
    __slots__ = ("_events", "_first_seq", "_lot", "_max_events", "closed", "run_id")

    def __init__(self, run_id: str, max_events: int) -> None:
        if max_events < 2:
            raise ValueError("max_events must be at least 2")
        self.run_id = run_id
        self._max_events = max_events
        # A list plus a moving start: slicing from a cursor is O(lag), and dropping the
        # oldest half at once keeps trimming amortised O(1) per append.
        self._events: list[Event] = []
        self._first_seq = 1  # seq of self._events[0]
        self._lot = trio.lowlevel.ParkingLot()
        self.closed = False  # the terminal event has been appended

    @property
    def last_seq(self) -> int:
        return self._first_seq + len(self._events) - 1

    @property
    def first_seq(self) -> int:
        """The oldest retained seq (``last_seq + 1`` when the log is empty)."""
        return self._first_seq

    def append(self, type: EventType, data: Mapping[str, Any]) -> Event:
        if self.closed:
            raise RuntimeError("the run's log is closed: its terminal event was written")
        event = Event(self.last_seq + 1, type, self.run_id, data)
        self._events.append(event)
        if event.terminal:
            self.closed = True
        if len(self._events) > self._max_events:
            drop = len(self._events) - self._max_events
            if drop * 2 >= self._max_events or self.closed:
                del self._events[:drop]
                self._first_seq += drop
        self._lot.unpark_all()
        return event

    def retained(self) -> int:
        return min(len(self._events), self._max_events)

    def read(self, cursor: int, limit: int | None = None) -> tuple[int, list[Event]]:
        """Events after ``cursor`` (at most ``limit``), and the first missing seq.

        Returns ``(missing_from, events)``: if events ``cursor+1 .. first-1`` are no longer
        retained, ``missing_from`` is ``cursor + 1`` and ``events`` starts at the first
        retained one; otherwise ``missing_from`` is 0.
        """
        start = self._first_seq + max(0, len(self._events) - self._max_events)
        missing_from = cursor + 1 if cursor + 1 < start else 0
        index = max(cursor + 1, start) - self._first_seq
        stop = None if limit is None else index + limit
        return missing_from, self._events[index:stop]

    def all(self) -> list[Event]:
        return self.read(0)[1]

    @property
    def terminal(self) -> Event | None:
        return self._events[-1] if self.closed else None

    async def wait_beyond(self, cursor: int) -> None:
        """Return once an event after ``cursor`` exists. Cancellable; no side effects."""
        if self.last_seq > cursor:
            await trio.lowlevel.checkpoint()
            return
        await self._lot.park()
