"""The backend seam: how the service creates, finds and controls runs.

A :class:`Backend` decides where a run is *stored* (its record and log) and how it is
*signalled* (cancel, answer); the run is always *executed* by the local engine's
:class:`~engine.Run`, on the worker that created it. Controlling calls are async because
with a shared store they may cross processes. :class:`MemoryBackend` is the embedded
default: one process, the engine's registry, the local ``Run`` as the handle. The Redis
backend lives in ``engine.backends`` (optional extra ``scopestream[redis]``).

Embedders that need no seam keep using the engine's synchronous API (``Engine.start_run``,
``Engine.get``, ``Run.cancel``, ``Run.answer``): the memory backend is a thin layer on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ._config import DisconnectPolicy
from ._engine import CancelResult, Engine
from ._events import CancelReason
from ._handle import RunHandle
from ._runs import Producer

__all__ = ["Backend", "MemoryBackend"]


class Backend(Protocol):
    """What the service needs from where runs live. Every method may raise
    :class:`~engine.backends.StoreUnavailable` when the store cannot be reached."""

    engine: Engine

    async def start(
        self,
        producer: Producer,
        *,
        input: Mapping[str, Any],
        producer_name: str,
        owner: str | None,
        client_run_id: str | None,
        on_disconnect: DisconnectPolicy,
        metadata: Mapping[str, Any] | None = None,
    ) -> RunHandle:
        """Start a detached run owned by this worker. Raises ``RunConflict`` and
        ``EngineClosed`` as :meth:`Engine.start_run` does."""
        ...

    async def find(self, run_id: str, *, owner: str | None) -> RunHandle:
        """The run with this id (or this owner's ``client_run_id``); ``RunNotFound``
        otherwise, also for another owner's run."""
        ...

    async def cancel(
        self, run_id: str, *, owner: str | None, reason: CancelReason = CancelReason.REQUESTED
    ) -> CancelResult:
        """Cancel by id or ``client_run_id``; an unknown ``client_run_id`` is remembered."""
        ...

    async def answer(
        self, run_id: str, interaction_id: str, response: Any, *, owner: str | None
    ) -> RunHandle:
        """Answer a pending interaction; ``RunNotFound``, ``InteractionNotFound``,
        ``InteractionNotPending`` (answered, expired, cleared) otherwise."""
        ...

    async def recent_runs(self, owner: str | None, limit: int) -> list[RunHandle]:
        """This owner's ``limit`` most recently created runs, newest first, for a list:
        a handle's ``output`` may be left empty (a list never shows it)."""
        ...

    def statistics(self) -> dict[str, int]: ...


class MemoryBackend:
    """Runs stored in this process's engine: the embedded default."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def start(
        self,
        producer: Producer,
        *,
        input: Mapping[str, Any],
        producer_name: str,
        owner: str | None,
        client_run_id: str | None,
        on_disconnect: DisconnectPolicy,
        metadata: Mapping[str, Any] | None = None,
    ) -> RunHandle:
        return self.engine.start_run(
            producer,
            input=input,
            producer_name=producer_name,
            owner=owner,
            client_run_id=client_run_id,
            on_disconnect=on_disconnect,
            metadata=metadata,
        )

    async def find(self, run_id: str, *, owner: str | None) -> RunHandle:
        return self.engine.get(run_id, owner=owner)

    async def cancel(
        self, run_id: str, *, owner: str | None, reason: CancelReason = CancelReason.REQUESTED
    ) -> CancelResult:
        return self.engine.cancel(run_id, owner=owner, reason=reason)

    async def answer(
        self, run_id: str, interaction_id: str, response: Any, *, owner: str | None
    ) -> RunHandle:
        run = self.engine.get(run_id, owner=owner)
        run.answer(interaction_id, response)
        return run

    async def recent_runs(self, owner: str | None, limit: int) -> list[RunHandle]:
        return recent_local_runs(self.engine, owner, limit)

    def statistics(self) -> dict[str, int]:
        return self.engine.statistics()


def recent_local_runs(engine: Engine, owner: str | None, limit: int) -> list[RunHandle]:
    """This engine's runs of ``owner``, newest first."""
    mine: list[RunHandle] = [run for run in engine.runs() if run.owner == owner]
    mine.sort(key=lambda run: run.created_at, reverse=True)
    return mine[:limit]
