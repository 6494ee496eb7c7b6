"""Engine: the owner of runs, their nursery and their registry, for one lifetime.

There is no module-level state: a run can be found by id only through the engine that
owns it, and everything the engine holds is released when ``open_engine`` exits.
"""

from __future__ import annotations

import contextvars
import heapq
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import trio

from ._config import CANCEL, CONTINUE, DisconnectPolicy, EngineConfig
from ._errors import EngineClosed, RunConflict, RunNotFound
from ._events import CancelReason
from ._handle import RunHandle
from ._observer import EngineObserver, guarded
from ._runs import Producer, Run

__all__ = ["CancelResult", "Engine", "open_engine"]


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What a cancel request did.

    ``cancelled``: this request decided the run's outcome. ``already_decided``: the run had
    already ended (or was ending for another cause) and stays as it is. ``remembered``: no
    such run yet; if a run with this ``client_run_id`` is created soon, it starts cancelled.
    """

    result: Literal["cancelled", "already_decided", "remembered"]
    run: RunHandle | None


class Engine:
    """Create with :func:`open_engine`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        config: EngineConfig,
        observer: EngineObserver,
        interaction_url: Callable[[str, str], str] | None,
        run_context: contextvars.Context | None = None,
    ) -> None:
        self.config = config
        self.observer = observer
        self._nursery = nursery
        self._run_context = run_context
        self._interaction_url = interaction_url
        self._runs: dict[str, Run] = {}
        self._aliases: dict[tuple[str | None, str], str] = {}
        # Remembered cancels -> expiry, in expiry order; and a heap of (expires_at, run_id)
        # for finished runs. Both are purged lazily on use, so retention needs no background
        # task and works with any clock.
        self._pending_cancels: dict[tuple[str | None, str], float] = {}
        self._expiry: list[tuple[float, str]] = []
        self._live = 0
        self._idle = trio.lowlevel.ParkingLot()
        self._closing = False
        #: Set by a backend with a shared store: decides an interaction's timeout against
        #: an answer taken on another worker (see ``Run._referee_timeout``).
        self._interaction_referee: Callable[[str, str], Awaitable[tuple[str, Any]]] | None = None

    # -- creating runs ------------------------------------------------------------------

    def start_run(
        self,
        producer: Producer,
        *,
        input: Mapping[str, Any] | None = None,
        producer_name: str | None = None,
        owner: str | None = None,
        client_run_id: str | None = None,
        on_disconnect: DisconnectPolicy = CONTINUE,
        metadata: Mapping[str, Any] | None = None,
    ) -> Run:
        """Start a detached run in the engine's nursery and return it (status ``queued``
        until its task starts). Raises :class:`EngineClosed` while shutting down and
        :class:`RunConflict` if a live run already uses ``client_run_id``. ``metadata`` is
        the caller's, kept on ``run.metadata`` (the service records the protocol there)."""
        run = self._new_run(producer, input, producer_name, owner, client_run_id, on_disconnect)
        run.metadata = dict(metadata or {})
        self._launch(run)
        return run

    def _launch(self, run: Run) -> None:
        """Start a run made by :meth:`_new_run` (a backend may record it in its store in
        between, before any of its events exist)."""
        spawn = partial(self._nursery.start_soon, run._main, name=f"run {run.id}")
        if self._run_context is None:
            spawn()
        else:
            # Trio gives a new task a copy of the *current* context: spawn from inside the
            # engine's, so the run's task holds none of the starter's context variables.
            self._run_context.run(spawn)

    def _discard(self, run: Run) -> None:
        """Forget a run made by :meth:`_new_run` that will never be launched."""
        if self._runs.pop(run.id, None) is not None:
            self._live -= 1
            if run.client_run_id is not None:
                alias = (run.owner, run.client_run_id)
                if self._aliases.get(alias) == run.id:
                    del self._aliases[alias]
            self._idle.unpark_all()

    def _local(self, run_id: str) -> Run | None:
        """The run with this server id, if this engine has it (for a backend's signals)."""
        self._purge()
        return self._runs.get(run_id)

    @asynccontextmanager
    async def open_run(
        self,
        producer: Producer,
        *,
        input: Mapping[str, Any] | None = None,
        producer_name: str | None = None,
        owner: str | None = None,
        client_run_id: str | None = None,
        on_disconnect: DisconnectPolicy = CANCEL,
    ) -> AsyncIterator[Run]:
        """Run attached to the caller: the run's scope lives in the calling task.

        Leaving the block waits for the run to end. If the calling task is cancelled, the
        run is cancelled with it (reason ``shutdown`` unless another cause came first) and
        its terminal event is still written.
        """
        run = self._new_run(producer, input, producer_name, owner, client_run_id, on_disconnect)
        body_error: BaseException | None = None
        async with trio.open_nursery() as nursery:
            await nursery.start(run._main)
            try:
                yield run
            except BaseException as exc:
                # The block's own error ends the run (a shutdown) and then propagates as it
                # is, not wrapped in an ExceptionGroup by this nursery.
                body_error = exc
                nursery.cancel_scope.cancel(reason="the block holding the run raised")
        if body_error is not None:
            raise body_error

    def _new_run(
        self,
        producer: Producer,
        input: Mapping[str, Any] | None,
        producer_name: str | None,
        owner: str | None,
        client_run_id: str | None,
        on_disconnect: DisconnectPolicy,
    ) -> Run:
        if self._closing:
            raise EngineClosed("the engine is shutting down")
        self._purge()
        alias = (owner, client_run_id) if client_run_id is not None else None
        if alias is not None and alias in self._aliases:
            existing = self._runs.get(self._aliases[alias])
            if existing is not None and not existing.status.terminal:
                raise RunConflict(f"a live run already uses client_run_id {client_run_id!r}")
        run = Run(
            engine=self,
            producer=producer,
            producer_name=producer_name or str(getattr(producer, "__name__", "producer")),
            input=input or {},
            owner=owner,
            client_run_id=client_run_id,
            on_disconnect=on_disconnect,
            config=self.config,
            observer=self.observer,
            interaction_url=self._interaction_url,
        )
        self._runs[run.id] = run
        self._live += 1
        if alias is not None:
            self._aliases[alias] = run.id
            if self._pending_cancels.pop(alias, -math.inf) > trio.current_time():
                run.cancel(CancelReason.REQUESTED)
        return run

    # -- finding and controlling runs ---------------------------------------------------

    def get(self, run_id: str, *, owner: str | None = None) -> Run:
        """The run with this id (or this owner's ``client_run_id``).

        Raises :class:`RunNotFound` when there is none, when its retention ran out, or when
        it belongs to another owner (indistinguishable on purpose).
        """
        self._purge()
        run = self._runs.get(run_id)
        if run is None:
            alias_target = self._aliases.get((owner, run_id))
            run = self._runs.get(alias_target) if alias_target else None
        if run is None or run.owner != owner:
            raise RunNotFound(run_id)
        return run

    def cancel(
        self,
        run_id: str,
        *,
        owner: str | None = None,
        reason: CancelReason = CancelReason.REQUESTED,
    ) -> CancelResult:
        """Cancel a run by id or ``client_run_id``; idempotent (see :class:`CancelResult`)."""
        try:
            run = self.get(run_id, owner=owner)
        except RunNotFound:
            # Kept in expiry order (the TTL is constant) and bounded: cancels for ids that
            # nobody creates cannot grow without limit.
            self._pending_cancels.pop((owner, run_id), None)
            if len(self._pending_cancels) >= self.config.max_pending_cancels:
                del self._pending_cancels[next(iter(self._pending_cancels))]
            expires = trio.current_time() + self.config.pending_cancel_ttl
            self._pending_cancels[(owner, run_id)] = expires
            return CancelResult("remembered", None)
        return CancelResult("cancelled" if run.cancel(reason) else "already_decided", run)

    def runs(self) -> list[Run]:
        self._purge()
        return list(self._runs.values())

    def statistics(self) -> dict[str, int]:
        return {"runs": len(self._runs), "live_runs": self._live}

    # -- lifetime -----------------------------------------------------------------------

    def _run_finished(self, run: Run) -> None:
        self._live -= 1
        heapq.heappush(self._expiry, (trio.current_time() + self.config.retention, run.id))
        self._idle.unpark_all()

    def _purge(self) -> None:
        now = trio.current_time()
        while self._expiry and self._expiry[0][0] <= now:
            run = self._runs.pop(heapq.heappop(self._expiry)[1], None)
            if run is not None and run.client_run_id is not None:
                alias = (run.owner, run.client_run_id)
                if self._aliases.get(alias) == run.id:
                    del self._aliases[alias]
        cancels = self._pending_cancels
        while cancels and cancels[oldest := next(iter(cancels))] <= now:
            del cancels[oldest]

    async def aclose(self, grace: float | None = None) -> None:
        """Shut down: no new runs; every live run is cancelled with reason ``shutdown``;
        wait up to ``grace`` seconds (default: the configured grace) for their terminals to
        be written and delivered to their connections; then cancel whatever is left.

        Runs shielded from outside cancellation for at most the grace period, so that the
        terminals are written even when the caller is itself being cancelled.
        """
        if self._closing:
            return
        self._closing = True
        for run in list(self._runs.values()):
            run.cancel(CancelReason.SHUTDOWN)
        grace = self.config.shutdown_grace if grace is None else grace
        with trio.move_on_after(grace, shield=True):
            while self._live or any(run.connections for run in self._runs.values()):
                await self._idle.park()
        self._nursery.cancel_scope.cancel(reason="engine closed")

    def _connection_closed(self) -> None:
        if self._closing:
            self._idle.unpark_all()


@asynccontextmanager
async def open_engine(
    config: EngineConfig | None = None,
    *,
    observer: EngineObserver | None = None,
    interaction_url: Callable[[str, str], str] | None = None,
    run_context: contextvars.Context | None = None,
) -> AsyncIterator[Engine]:
    """Open an engine for the duration of the block; leaving it shuts the engine down
    (see :meth:`Engine.aclose`). ``interaction_url(run_id, interaction_id)`` gives the URL
    announced in ``interaction.required`` events, if the embedder serves one.

    ``run_context``: the context variables detached runs start with (each run's task gets
    a copy of it). By default a detached run, like any Trio task, starts with a copy of
    the context of whoever started it. A server whose requests start runs that outlive
    them passes a context taken outside any request (``contextvars.copy_context()``), so
    that no request-scoped context variable (a web framework's request object, with its
    headers and body) stays alive as long as the run."""
    async with trio.open_nursery() as outer:
        # The runs get a nursery of their own, held by a task: shutting the engine down
        # cancels that nursery, not the block that the caller is running in.
        runs_nursery: trio.Nursery = await outer.start(_hold_nursery)
        engine = Engine(
            runs_nursery,
            config or EngineConfig(),
            guarded(observer or EngineObserver()),
            interaction_url,
            run_context,
        )
        body_error: BaseException | None = None
        try:
            yield engine
        except BaseException as exc:
            body_error = exc  # re-raised as it is below, not wrapped in an ExceptionGroup
        finally:
            await engine.aclose()
    if body_error is not None:
        raise body_error


async def _hold_nursery(*, task_status: trio.TaskStatus[trio.Nursery]) -> None:
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()
