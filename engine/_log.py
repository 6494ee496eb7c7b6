"""A run's event log: append-only, bounded, readable from any cursor, waitable.

Appending never blocks and never awaits: the producer and the terminal decision never
wait on readers. Readers (connections) keep their own cursor and park on the log's
:class:`trio.lowlevel.ParkingLot` until something past their cursor exists; one
``unpark_all`` per append wakes every follower without any per-follower allocation.

Retention is bounded by ``max_events`` and by ``max_bytes`` (the events' estimated sizes,
see ``engine/_output.py``): the oldest events are dropped first, and the newest event is
always kept. A reader whose cursor points before the first retained event gets told so
(see :meth:`EventLog.read`), never a silent skip.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from typing import Any

import trio

from ._events import Event, EventType

__all__ = ["EventLog"]

# Module-level names for the per-event tests: on Python 3.11 an attribute lookup on an enum
# class (``EventType.FAILED``) costs about as much as the rest of an append.
_COMPLETED, _FAILED, _CANCELLED = EventType.COMPLETED, EventType.FAILED, EventType.CANCELLED


class EventLog:
    __slots__ = (
        "_base",
        "_ends",
        "_events",
        "_first_seq",
        "_head",
        "_lot",
        "_max_bytes",
        "_max_events",
        "closed",
        "run_id",
    )

    def __init__(self, run_id: str, max_events: int, max_bytes: int | None = None) -> None:
        if max_events < 2:
            raise ValueError("max_events must be at least 2")
        self.run_id = run_id
        self._max_events = max_events
        self._max_bytes = max_bytes
        # A list plus a moving head: slicing from a cursor is O(lag), trimming moves the head
        # and the dropped prefix is deleted in one go once it is large (amortised O(1) per
        # append, and never more than a quarter of the byte budget held past the budget).
        self._events: list[Event] = []
        # _ends[i]: the estimated bytes of every event up to and including _events[i], since
        # the run began. Retained bytes and byte-bounded reads are then one subtraction and
        # one bisection, with no per-event loop.
        # An array of machine integers: no int object kept per event.
        self._ends = array("q")
        self._base = 0  # bytes of every event before _events[0]
        self._head = 0  # index of the first retained event in _events
        self._first_seq = 1  # seq of self._events[0]
        self._lot = trio.lowlevel.ParkingLot()
        self.closed = False  # the terminal event has been appended

    @property
    def last_seq(self) -> int:
        return self._first_seq + len(self._events) - 1

    @property
    def first_seq(self) -> int:
        """The oldest retained seq (``last_seq + 1`` when the log is empty)."""
        return self._first_seq + self._head

    @property
    def retained_bytes(self) -> int:
        """The estimated bytes of the retained events (at most ``max_bytes``)."""
        if not self._events:
            return 0
        return self._ends[-1] - self._bytes_before(self._head)

    @property
    def held_bytes(self) -> int:
        """The estimated bytes of every event still referenced, dropped ones not yet deleted
        included (at most ``max_bytes`` plus a quarter of it, plus one event)."""
        return self._ends[-1] - self._base if self._events else 0

    def append(self, type: EventType, data: Mapping[str, Any], size: int = 0) -> Event:
        """Append an event whose estimated size is ``size``; trims the oldest events."""
        if self.closed:
            raise RuntimeError("the run's log is closed: its terminal event was written")
        events, ends = self._events, self._ends
        n = len(events)
        event = Event(self._first_seq + n, type, self.run_id, data)
        events.append(event)
        total = (ends[-1] if n else self._base) + size
        ends.append(total)
        n += 1
        # Identity tests, not ``event.terminal``: hashing an enum member for a set lookup
        # is a Python-level call, and this runs for every event.
        if type is _COMPLETED or type is _FAILED or type is _CANCELLED:
            self.closed = True
        head = self._head
        if n - head > self._max_events:
            head = n - self._max_events
        max_bytes = self._max_bytes
        if max_bytes is not None and total - (ends[head - 1] if head else self._base) > max_bytes:
            # The first index whose preceding bytes leave at most max_bytes; the newest
            # event always stays.
            head = min(bisect_left(ends, total - max_bytes, lo=head) + 1, n - 1)
        if head != self._head:
            self._head = head
            dropped = self._bytes_before(head) - self._base
            if head * 2 >= n or self.closed or (max_bytes is not None and dropped * 4 >= max_bytes):
                self._compact()
        self._lot.unpark_all()
        return event

    def _bytes_before(self, index: int) -> int:
        return self._ends[index - 1] if index else self._base

    def _compact(self) -> None:
        head = self._head
        self._base = self._ends[head - 1]
        del self._events[:head]
        del self._ends[:head]
        self._first_seq += head
        self._head = 0

    def retained(self) -> int:
        return len(self._events) - self._head

    def read(
        self, cursor: int, limit: int | None = None, max_bytes: int | None = None
    ) -> tuple[int, list[Event]]:
        """Events after ``cursor`` (at most ``limit`` of them, and no more than ``max_bytes``
        of estimated size, but at least one), and the first missing seq.

        Returns ``(missing_from, events)``: if events ``cursor+1 .. first-1`` are no longer
        retained, ``missing_from`` is ``cursor + 1`` and ``events`` starts at the first
        retained one; otherwise ``missing_from`` is 0.
        """
        start = self._first_seq + self._head
        missing_from = cursor + 1 if cursor + 1 < start else 0
        index = max(cursor + 1, start) - self._first_seq
        stop = len(self._events) if limit is None else min(len(self._events), index + limit)
        if max_bytes is not None and index < stop:
            budget = self._bytes_before(index) + max_bytes
            stop = max(index + 1, bisect_right(self._ends, budget, lo=index, hi=stop))
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
