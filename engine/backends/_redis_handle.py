"""A run owned by another worker, read through the store: the remote :class:`RunHandle`.

Theory of operation
-------------------
A :class:`RemoteRun` is made per request by the Redis backend's ``find``: a snapshot of the
run's record, its output so far (rebuilt from the stored log by the same fold the owner
uses, ``RunOutput.from_events``), and a :class:`RemoteLog`. The log holds no history: it
is pulled by its one reader (the request's connection). The first ``wait_beyond(cursor)``
makes a tailer :class:`~engine.backends._redis_tailer.Follower` at that cursor; each later
wait takes the follower's next batch and drops what the reader has already passed. So a
remote follower costs one batch of events, never the run's log, and there is no
background task per follower: the worker's one tailer does the reading from Redis.

The handle's status follows the events it reads (``run.started``, the interaction events,
the terminal), so a connection and ``wait_done`` see the same terminal the store holds.
While the store is unreachable a wait keeps waiting (the connection sends keepalives) and
tries again; the owner decides what happens to the run meanwhile.

Only the owner executes a run: :meth:`RemoteRun.cancel` (the transport's shutdown cancel)
changes nothing. A connection's attach and detach are signalled to the owner (``notify``),
whose run counts them for its disconnect policy; the first wait of the log waits for the
attach to be sent, so a follower that has read anything is known to the owner's channel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from .._config import EngineConfig
from .._events import CancelReason, Event, EventType, Outcome, RunStatus, outcome_from_event
from .._observer import EngineObserver
from .._output import RunOutput, data_bytes
from ._errors import StoreUnavailable
from ._redis_model import RunRecord
from ._redis_tailer import Follower, Tailer

__all__ = ["PendingInteraction", "RemoteLog", "RemoteRun"]

#: How long a follower waits before asking an unreachable store again.
_RETRY_AFTER = 0.2


@dataclass(frozen=True, slots=True)
class PendingInteraction:
    id: str
    prompt: str


def pending_from(interaction: Mapping[str, Any] | None) -> PendingInteraction | None:
    if not interaction:
        return None
    return PendingInteraction(str(interaction["interaction_id"]), str(interaction["prompt"]))


class RemoteLog:
    """The run's log as one reader pulls it from the tailer (see the module docstring)."""

    __slots__ = ("_base", "_events", "_follower", "_run", "closed")

    def __init__(self, run: RemoteRun) -> None:
        self._run = run
        self._events: list[Event] = []
        self._base = 0  # the seq the reader has passed when nothing is buffered
        self._follower: Follower | None = None
        self.closed = False

    @property
    def last_seq(self) -> int:
        return self._events[-1].seq if self._events else self._base

    @property
    def first_seq(self) -> int:
        return self._events[0].seq if self._events else self._base + 1

    @property
    def terminal(self) -> Event | None:
        return self._events[-1] if self.closed and self._events else None

    def read(
        self, cursor: int, limit: int | None = None, max_bytes: int | None = None
    ) -> tuple[int, list[Event]]:
        events = [event for event in self._events if event.seq > cursor]
        if limit is not None:
            events = events[:limit]
        if max_bytes is not None:
            # As the local log does: within the budget, but at least one event.
            total = 0
            for index, event in enumerate(events):
                total += data_bytes(event.data)
                if total > max_bytes and index:
                    events = events[:index]
                    break
        missing_from = cursor + 1 if events and events[0].seq > cursor + 1 else 0
        return missing_from, events

    async def wait_beyond(self, cursor: int) -> None:
        if self.last_seq > cursor:
            await trio.lowlevel.checkpoint()
            return
        if self.closed:
            await trio.sleep_forever()  # a closed log never grows, as for a local log
        if self._follower is None:
            if self._run._attach_sent is not None:
                await self._run._attach_sent.wait()
            self._follower = Follower(self._run._tailer, self._run.id, cursor)
            self._base = cursor
        while True:
            try:
                batch = await self._follower.__anext__()
            except StopAsyncIteration:
                # The reader's cursor is at the stored terminal already: nothing to add.
                self.closed = True
                self._base = max(self._base, cursor)
                return
            except StoreUnavailable:
                await trio.sleep(_RETRY_AFTER)
                continue
            break
        # What the reader has passed is dropped: a remote follower holds one batch.
        self._events = [event for event in self._events if event.seq > cursor]
        self._base = max(self._base, cursor)
        self._events.extend(batch.events)
        self._run._observe(batch.events)
        if batch.events and batch.events[-1].terminal:
            self.closed = True

    def close(self) -> None:
        if self._follower is not None:
            self._follower._detach()


class RemoteRun:
    """Another worker's run, read through the store (create with the backend's ``find``)."""

    def __init__(
        self,
        record: RunRecord,
        output: RunOutput,
        *,
        tailer: Tailer,
        config: EngineConfig,
        observer: EngineObserver,
        notify: Callable[[RemoteRun, str, str, trio.Event | None], None],
    ) -> None:
        self.id = record.id
        self.owner = record.owner
        self.producer_name = record.producer
        self.client_run_id = record.client_run_id
        self.created_at = record.created_at
        self.started_at = record.started_at
        self.ended_at = record.ended_at
        self.metadata: Mapping[str, Any] = record.metadata
        self.output = output
        self.worker = record.worker
        self._status = record.status
        self._outcome = record.outcome
        self._pending = pending_from(record.interaction)
        self._last_seq = record.last_seq
        self._tailer = tailer
        self._config = config
        self._observer = observer
        self._notify = notify
        self._attach_sent: trio.Event | None = None  # set once a connection attached
        self.log = RemoteLog(self)

    @property
    def status(self) -> RunStatus:
        return self._status

    @property
    def outcome(self) -> Outcome | None:
        return self._outcome

    @property
    def pending_interaction(self) -> PendingInteraction | None:
        return self._pending

    @property
    def last_seq(self) -> int:
        return max(self._last_seq, self.log.last_seq)

    def _observe(self, events: list[Event]) -> None:
        """Move the snapshot along with the events read."""
        for event in events:
            self._last_seq = max(self._last_seq, event.seq)
            if event.type is EventType.RUN_STARTED or event.type is EventType.INTERACTION_RESOLVED:
                self._status, self._pending = RunStatus.RUNNING, None
            elif event.type is EventType.INTERACTION_REQUIRED:
                self._status = RunStatus.AWAITING_INPUT
                self._pending = PendingInteraction(
                    str(event.data["interaction_id"]), str(event.data["prompt"])
                )
            elif event.terminal:
                outcome = outcome_from_event(event)
                self._status, self._outcome, self._pending = outcome.status, outcome, None

    async def wait_done(self) -> None:
        """Return once the run's terminal is in the store (read through the tailer)."""
        if self._status.terminal:
            await trio.lowlevel.checkpoint()
            return
        follower = Follower(self._tailer, self.id, self._last_seq)
        try:
            while not self._status.terminal:
                try:
                    batch = await follower.__anext__()
                except StopAsyncIteration:
                    return
                except StoreUnavailable:
                    await trio.sleep(_RETRY_AFTER)
                    continue
                self._observe(batch.events)
        finally:
            follower._detach()

    def cancel(self, reason: CancelReason = CancelReason.REQUESTED) -> bool:
        """Nothing: only the owner cancels, and a cancel request goes through the backend."""
        return False

    def _attach(self) -> None:
        self._observer.connection_opened(self)
        self._attach_sent = trio.Event()
        self._notify(self, "attach", "1", self._attach_sent)

    def _detach(self, *, client_gone: bool) -> None:
        self.log.close()
        self._notify(self, "detach", "gone" if client_gone else "done", None)
