"""One blocking reader per worker: the tailer, and the followers it fans events out to.

Theory of operation
-------------------
Every ``XADD`` wakes every client blocked on that stream, so a blocked connection per
follower would cost a thousand connections (and a thousand wakeups per event) for a
thousand followers. Instead one task per worker, the :class:`Tailer`, reads all followed
runs' streams in one ``XREAD BLOCK`` and fans the events out in process.

Per followed run the tailer keeps a :class:`_Tail`: the highest seq it has read, a bounded
mirror of the latest events, and a :class:`trio.lowlevel.ParkingLot` that it unparks when
new events arrive. A :class:`Follower` never receives pushed events: it keeps its own
cursor and, whenever the tail is ahead of it, takes the events after its cursor from the
mirror, or from the store (``XRANGE``) if the mirror no longer holds them. Because every
read starts at the follower's own cursor, there can be no duplicate and no silent gap (a
trimmed cursor comes back as ``missing_from``), and a slow follower only costs a range
read, never memory in the tailer.

Joining: a follower first reads what is already stored after its cursor (replay). Only
when it has caught up does it attach to the tail, which reads with an explicit id
``<cursor>-0``: anything appended after the replay is returned by the next ``XREAD``.
A new stream must join a ``XREAD`` that is already blocked: the tailer also reads a small
wake stream of its own, and attaching writes one entry to it, so the reader returns at
once (within one round trip) and reissues the read with the new stream. Detaching needs
no wake: the next read leaves the stream out, and events for it meanwhile are dropped.

The terminal event is the last entry of a run's stream: once the tailer has read it, it
stops reading that stream; followers end after delivering it.

A multi-stream ``XREAD`` must stay within one slot on Redis Cluster, so this reader is for
a single Redis (or one reader per shard, grouped by slot: not built).
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from .._events import Event
from ._errors import StoreUnavailable
from ._redis_model import ReadResult, event_from_entry
from ._redis_scripts import WAKE
from ._redis_store import RedisStore

__all__ = ["Follower", "Tailer", "open_tailer"]

logger = logging.getLogger("scopestream.redis")


class _Tail:
    __slots__ = ("followers", "last_seq", "lot", "mirror", "run_id", "terminal_seq")

    def __init__(self, run_id: str, last_seq: int, mirror_size: int) -> None:
        self.run_id = run_id
        self.last_seq = last_seq  # everything up to here exists in the stream
        self.mirror: deque[Event] = deque(maxlen=mirror_size)  # contiguous seqs
        self.lot = trio.lowlevel.ParkingLot()
        self.followers = 0
        self.terminal_seq = 0  # 0 until the terminal event was read

    def add(self, events: list[Event]) -> None:
        # XREAD from ``<last_seq>-0`` returns only later entries, in order.
        for event in events:
            if self.mirror and event.seq != self.mirror[-1].seq + 1:
                self.mirror.clear()  # trimmed past the tail: the mirror stays contiguous
            self.mirror.append(event)
            self.last_seq = event.seq
            if event.terminal:
                self.terminal_seq = event.seq
        self.lot.unpark_all()

    def slice(self, cursor: int, count: int) -> list[Event] | None:
        """Events after ``cursor`` from the mirror, or None if it does not hold them."""
        if not self.mirror or not self.mirror[0].seq <= cursor + 1 <= self.mirror[-1].seq:
            return None
        start = cursor + 1 - self.mirror[0].seq
        return list(itertools.islice(self.mirror, start, start + count))


class Tailer:
    """Create with :func:`open_tailer`; follow a run with :meth:`follow`."""

    def __init__(
        self,
        store: RedisStore,
        *,
        count: int = 512,
        mirror_size: int = 1024,
        block: float = 5.0,
    ) -> None:
        self.store = store
        self._count = count
        self._mirror_size = mirror_size
        self._block_ms = max(1, round(block * 1000))
        self._tails: dict[str, _Tail] = {}
        self._wake_key = f"{store.config.prefix}:tailer:{{{store.worker_id}}}:wake"
        self._wake_id = "0-0"
        self._blocked = False  # an XREAD is out, with the streams it was sent with
        self._wake_needed = trio.Event()
        self._wake_script = store.client.register_script(WAKE)
        self.reads = 0  # XREAD calls made (statistics)

    def statistics(self) -> dict[str, int]:
        return {"streams": len(self._tails), "reads": self.reads}

    @asynccontextmanager
    async def follow(self, run_id: str, after: int = 0) -> AsyncIterator[Follower]:
        """Follow ``run_id`` from the cursor ``after``: iterate the follower for batches
        of events (``ReadResult``) until the one holding the terminal event."""
        follower = Follower(self, run_id, after)
        try:
            yield follower
        finally:
            follower._detach()

    # -- used by followers --------------------------------------------------------------

    def _attach(self, run_id: str, cursor: int) -> _Tail:
        tail = self._tails.get(run_id)
        if tail is None:
            tail = self._tails[run_id] = _Tail(run_id, cursor, self._mirror_size)
            if self._blocked:
                self._wake_needed.set()
        tail.followers += 1
        return tail

    def _detach(self, tail: _Tail) -> None:
        tail.followers -= 1
        if tail.followers == 0 and self._tails.get(tail.run_id) is tail:
            del self._tails[tail.run_id]

    # -- the tasks ----------------------------------------------------------------------

    async def _read_loop(self) -> None:
        backoff = 0.05
        while True:
            streams = {self._wake_key: self._wake_id}
            for run_id, tail in self._tails.items():
                if not tail.terminal_seq:
                    streams[self.store.log_key(run_id)] = f"{tail.last_seq}-0"
            # Built and flagged without a checkpoint in between: a follower attaching from
            # here on is either in this read or wakes it.
            self._blocked = True
            try:
                with self.store.guard():
                    result = await self.store.client.xread(
                        streams, count=self._count, block=self._block_ms
                    )
            except StoreUnavailable:
                logger.warning("tailer of %s: Redis unreachable", self.store.worker_id)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            finally:
                self._blocked = False
            backoff = 0.05
            self.reads += 1
            self._deliver(result or {})

    def _deliver(self, result: dict[str, Any]) -> None:
        for key, entries in result.items():
            if key == self._wake_key:
                self._wake_id = str(entries[-1].identifier)
                continue
            run_id = key.split("{", 1)[1].rsplit("}", 1)[0]
            tail = self._tails.get(run_id)
            if tail is not None:
                tail.add([event_from_entry(run_id, entry) for entry in entries])

    async def _wake_loop(self) -> None:
        while True:
            await self._wake_needed.wait()
            self._wake_needed = trio.Event()
            try:
                with self.store.guard():
                    await self._wake_script([self._wake_key], ["60000"])
            except StoreUnavailable:
                pass  # the read loop is failing too, and rebuilds its read when it retries


class Follower:
    """A cursor on one run, fed by the tailer. Iterate it (``async for batch in ...``)
    for :class:`ReadResult` batches: events after the cursor, in order, each once, with
    ``missing_from`` set when events were trimmed away; the iteration ends after the
    batch holding the terminal event. Cancelling a wait leaves the follower usable."""

    def __init__(self, tailer: Tailer, run_id: str, after: int) -> None:
        self._tailer = tailer
        self.run_id = run_id
        self.cursor = after
        self._tail: _Tail | None = None
        self._done = False

    def __aiter__(self) -> Follower:
        return self

    async def __anext__(self) -> ReadResult:
        if self._done:
            raise StopAsyncIteration
        store = self._tailer.store
        count = self._tailer._count
        while self._tail is None:
            # Replay what is stored; attach only once caught up.
            result = await store.read(self.run_id, self.cursor, count)
            if result.events:
                return self._take(result)
            record = await store.get_record(self.run_id)
            if record is not None and record.status.terminal and record.last_seq <= self.cursor:
                self._done = True  # the cursor is at (or past) the terminal: nothing to add
                raise StopAsyncIteration
            self._tail = self._tailer._attach(self.run_id, self.cursor)
        tail = self._tail
        while tail.last_seq <= self.cursor:
            await tail.lot.park()
        events = tail.slice(self.cursor, count)
        if events is not None:
            return self._take(ReadResult(0, events))
        return self._take(await store.read(self.run_id, self.cursor, count))

    def _take(self, result: ReadResult) -> ReadResult:
        if result.events:
            self.cursor = result.events[-1].seq
            self._done = result.events[-1].terminal
        return result

    def _detach(self) -> None:
        if self._tail is not None:
            self._tailer._detach(self._tail)
            self._tail = None


@asynccontextmanager
async def open_tailer(store: RedisStore, **options: Any) -> AsyncIterator[Tailer]:
    """Run a worker's tailer for the duration of the block (options: see
    :class:`Tailer`). Its tasks are cancelled when the block exits."""
    tailer = Tailer(store, **options)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tailer._read_loop)
        nursery.start_soon(tailer._wake_loop)
        try:
            yield tailer
        finally:
            nursery.cancel_scope.cancel(reason="tailer closed")
