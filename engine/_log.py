"""A run's event log: append-only, bounded, readable from any cursor, waitable.

Appending never blocks and never awaits: the producer and the terminal decision never
wait on readers. Readers (connections) keep their own cursor and park on the log's
:class:`trio.lowlevel.ParkingLot` until something past their cursor exists; one
``unpark_all`` per append wakes every follower without any per-follower allocation.

The retained events hold no object the garbage collector tracks: each is a one-byte type
code and its data mapping (a mapping of strings and numbers is untracked by CPython), and
:class:`~engine._events.Event` objects are made when read. Finished runs stay readable for
their retention, and a log of slotted objects made every full collection walk every event
of every retained run: with hundreds of thousands retained, a full collection stopped
every stream for tens of milliseconds every few seconds (with the default ten-minute
retention, far longer).

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
#: Event types by their one-byte code in the log, and codes by the member's identity
#: (hashing an enum member is a Python-level call).
_TYPES: tuple[EventType, ...] = tuple(EventType)
_CODES: dict[int, int] = {id(t): code for code, t in enumerate(_TYPES)}


class EventLog:
    __slots__ = (
        "_base",
        "_codes",
        "_data",
        "_ends",
        "_first_seq",
        "_head",
        "_lot",
        "_max_bytes",
        "_max_events",
        "_terminal",
        "closed",
        "run_id",
    )

    def __init__(self, run_id: str, max_events: int, max_bytes: int | None = None) -> None:
        if max_events < 2:
            raise ValueError("max_events must be at least 2")
        self.run_id = run_id
        self._max_events = max_events
        self._max_bytes = max_bytes
        # Lists plus a moving head: slicing from a cursor is O(lag), trimming moves the head
        # and the dropped prefix is deleted in one go once it is large (amortised O(1) per
        # append, and never more than a quarter of the byte budget held past the budget).
        # An event is its type's code in _codes and its data in _data, at the same index.
        self._codes = bytearray()
        self._data: list[Mapping[str, Any]] = []
        # _ends[i]: the estimated bytes of every event up to and including event i, since
        # the run began. Retained bytes and byte-bounded reads are then one subtraction and
        # one bisection, with no per-event loop.
        # An array of machine integers: no int object kept per event.
        self._ends = array("q")
        self._base = 0  # bytes of every event before index 0
        self._head = 0  # index of the first retained event
        self._first_seq = 1  # seq of the event at index 0
        self._lot = trio.lowlevel.ParkingLot()
        self.closed = False  # the terminal event has been appended
        self._terminal: Event | None = None

    @property
    def last_seq(self) -> int:
        return self._first_seq + len(self._data) - 1

    @property
    def first_seq(self) -> int:
        """The oldest retained seq (``last_seq + 1`` when the log is empty)."""
        return self._first_seq + self._head

    @property
    def retained_bytes(self) -> int:
        """The estimated bytes of the retained events (at most ``max_bytes``)."""
        if not self._data:
            return 0
        return self._ends[-1] - self._bytes_before(self._head)

    @property
    def held_bytes(self) -> int:
        """The estimated bytes of every event still referenced, dropped ones not yet deleted
        included (at most ``max_bytes`` plus a quarter of it, plus one event)."""
        return self._ends[-1] - self._base if self._data else 0

    def append(self, type: EventType, data: Mapping[str, Any], size: int = 0) -> None:
        """Append an event whose estimated size is ``size``; trims the oldest events."""
        if self.closed:
            raise RuntimeError("the run's log is closed: its terminal event was written")
        ends, kept = self._ends, self._data
        n = len(kept)
        code = _CODES.get(id(type))
        if code is None:  # a type given by its value
            type = EventType(type)
            code = _CODES[id(type)]
        self._codes.append(code)
        kept.append(data)
        total = (ends[-1] if n else self._base) + size
        ends.append(total)
        n += 1
        # Identity tests, not ``event.terminal``: hashing an enum member for a set lookup
        # is a Python-level call, and this runs for every event.
        if type is _COMPLETED or type is _FAILED or type is _CANCELLED:
            self.closed = True
            self._terminal = Event(self._first_seq + n - 1, type, self.run_id, data)
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

    def _bytes_before(self, index: int) -> int:
        return self._ends[index - 1] if index else self._base

    def _compact(self) -> None:
        head = self._head
        self._base = self._ends[head - 1]
        del self._codes[:head]
        del self._data[:head]
        del self._ends[:head]
        self._first_seq += head
        self._head = 0

    def retained(self) -> int:
        return len(self._data) - self._head

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
        n = len(self._data)
        stop = n if limit is None else min(n, index + limit)
        if max_bytes is not None and index < stop:
            budget = self._bytes_before(index) + max_bytes
            stop = max(index + 1, bisect_right(self._ends, budget, lo=index, hi=stop))
        seq, run_id = self._first_seq + index, self.run_id
        return missing_from, [
            Event(seq + i, _TYPES[code], run_id, data)
            for i, (code, data) in enumerate(
                zip(self._codes[index:stop], self._data[index:stop], strict=True)
            )
        ]

    def all(self) -> list[Event]:
        return self.read(0)[1]

    @property
    def terminal(self) -> Event | None:
        return self._terminal

    async def wait_beyond(self, cursor: int) -> None:
        """Return once an event after ``cursor`` exists. Cancellable; no side effects."""
        if self.last_seq > cursor:
            await trio.lowlevel.checkpoint()
            return
        await self._lot.park()
