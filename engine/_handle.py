"""The read side of a run, whatever executes it: the seam routes and connections use.

Theory of operation
-------------------
A run is *executed* by exactly one worker (its :class:`~engine.Run`: the producer's scope
tree and its local :class:`~engine._log.EventLog`). Everything else about it (routes,
connections, projections) only *reads* it: its record (status, outcome, pending
interaction, timestamps, output) and its log. :class:`RunHandle` is that reading interface.
With the memory backend the handle is the local ``Run`` itself; with the Redis backend a
run owned by another worker is read through a remote handle whose log is fed by the
worker's one tailer (``engine.backends._redis_handle``). Controlling a run (cancel,
answer) goes through a :class:`~engine.Backend`, because it may cross processes.

Two members are the connection's side of the handle: ``_attach``/``_detach`` count
followers for the disconnect policy, and ``_config``/``_observer`` are the engine's own.
``cancel`` is the local, synchronous cancel that a transport uses when its own worker
shuts down: on a handle to another worker's run it changes nothing, since a worker
shutting down must not end runs it does not own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ._config import EngineConfig
from ._events import CancelReason, Event, Outcome, RunStatus

if TYPE_CHECKING:
    from ._observer import EngineObserver
    from ._output import RunOutput

__all__ = ["InteractionView", "RunHandle", "RunLog"]


class RunLog(Protocol):
    """A run's event log as a reader sees it (see ``EventLog`` for the semantics)."""

    @property
    def last_seq(self) -> int: ...

    @property
    def first_seq(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    @property
    def terminal(self) -> Event | None: ...

    def read(
        self, cursor: int, limit: int | None = None, max_bytes: int | None = None
    ) -> tuple[int, list[Event]]: ...

    async def wait_beyond(self, cursor: int) -> None: ...


class InteractionView(Protocol):
    """A pending question, as announced in ``interaction.required``."""

    @property
    def id(self) -> str: ...

    @property
    def prompt(self) -> str: ...


class RunHandle(Protocol):
    """One run, read: the record, its output so far, and its log."""

    @property
    def id(self) -> str: ...

    @property
    def owner(self) -> str | None: ...

    @property
    def producer_name(self) -> str: ...

    @property
    def client_run_id(self) -> str | None: ...

    @property
    def status(self) -> RunStatus: ...

    @property
    def outcome(self) -> Outcome | None: ...

    @property
    def pending_interaction(self) -> InteractionView | None: ...

    @property
    def created_at(self) -> float: ...

    @property
    def started_at(self) -> float | None: ...

    @property
    def ended_at(self) -> float | None: ...

    @property
    def last_seq(self) -> int:
        """The newest seq the run has (its log may hold fewer events in memory)."""
        ...

    @property
    def output(self) -> RunOutput: ...

    @property
    def metadata(self) -> Mapping[str, Any]: ...

    @property
    def log(self) -> RunLog: ...

    async def wait_done(self) -> None: ...

    def cancel(self, reason: CancelReason = CancelReason.REQUESTED) -> bool: ...

    # -- the connection's side -----------------------------------------------------------

    @property
    def _config(self) -> EngineConfig: ...

    @property
    def _observer(self) -> EngineObserver: ...

    def _attach(self) -> None: ...

    def _detach(self, *, client_gone: bool) -> None: ...
