"""The Redis backend: runs that any worker can find, follow, cancel and answer.

Theory of operation (see also ``_redis_store``, ``_redis_tailer``, ``_redis_liveness``)
--------------------------------------------------------------------------------------
*Executed* on one worker only: :meth:`RedisBackend.start` makes the run in the local engine,
records it in the store (``create``; a cancel remembered for its ``client_run_id`` comes back
and the run starts cancelled), and only then launches its scope tree, exactly as the memory
backend does. The local :class:`~engine.Run` decides its outcome (first cause wins) and
writes its terminal to its local log, as always.

*Stored* by one forwarder task per run on the owner: it follows the local log and appends
each batch of ready events to the store (one ``append`` script per batch, moving the status
along: ``run.started`` -> running, ``interaction.required`` -> awaiting_input with the
interaction, ``interaction.resolved`` -> running), then writes the terminal with the
``finish`` script, which sets the status in the same step. The producer never waits on
Redis: it appends to its local log, and the forwarder catches up.

*Signalled* through the store: a cancel or an answer on any worker runs the store's script
(durable, then published to the owner's channel); the owner's control loop and heartbeat
hand the signal to :meth:`RedisBackend._on_signal`, which cancels or answers the local run.
An answer on the owning worker also goes through the store first (so "not pending" is one
answer everywhere), once the forwarder has written the question there.

*Read* by handles: a run this worker owns is read as the local ``Run`` (its followers here
read the local log); any other run as a :class:`~engine.backends._redis_handle.RemoteRun`
fed by the worker's one tailer.

*Trouble.* If the store stays unreachable for ``unreachable_after`` seconds while a run
has events to forward, the owner fails the run with ``store_unavailable``; its forwarder
keeps trying, so the terminal reaches the store when Redis returns. New runs meanwhile get
:class:`StoreUnavailable` (503). A worker that dies stops beating; a sweeper on a surviving
worker ends its runs with ``failed``/``worker_lost``, and the tailer brings that terminal to
every follower.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

from .._config import DisconnectPolicy
from .._engine import CancelResult, Engine
from .._errors import InteractionError, RunNotFound
from .._events import CancelReason, ErrorCode, Event, EventType, RunStatus, outcome_from_event
from .._handle import RunHandle
from .._output import RunOutput
from .._runs import Producer, Run
from ._errors import StoreUnavailable
from ._redis_handle import RemoteRun
from ._redis_liveness import (
    WORKER_LOST_MESSAGE,
    ControlSignal,
    control_loop,
    heartbeat_loop,
    sweeper_loop,
)
from ._redis_model import RedisStoreConfig, RunRecord
from ._redis_store import RedisStore, open_redis_store
from ._redis_tailer import Tailer, open_tailer

__all__ = ["STORE_UNAVAILABLE_MESSAGE", "RedisBackend", "open_redis_backend"]

logger = logging.getLogger("scopestream.redis")

STORE_UNAVAILABLE_MESSAGE = "The run store became unreachable; the run could not go on."
_BATCH = 512
_READ_COUNT = 1000
_MAX_NOTICES = 10_000


class _Forwarding:
    """How far the forwarder of one run has written it to the store."""

    __slots__ = ("lot", "synced")

    def __init__(self) -> None:
        self.synced = 0
        self.lot = trio.lowlevel.ParkingLot()


class RedisBackend:
    """Create with :func:`open_redis_backend`."""

    def __init__(
        self,
        engine: Engine,
        store: RedisStore,
        tailer: Tailer,
        nursery: trio.Nursery,
        unreachable_after: float,
    ) -> None:
        self.engine = engine
        self.store = store
        self.tailer = tailer
        self._nursery = nursery
        self._unreachable_after = unreachable_after
        self._forwarding: dict[str, _Forwarding] = {}
        self._idle = trio.lowlevel.ParkingLot()
        # Followers on other workers of the runs this worker owns (from attach/detach).
        self._remote_followers: dict[str, int] = {}
        # Outgoing attach/detach signals, sent in order by one task; bounded: when Redis
        # is away and it fills, a signal is dropped (the disconnect policy is best effort
        # across workers, the run still ends by its other causes).
        self._notices, self._notices_out = trio.open_memory_channel[
            tuple[str, str, trio.Event | None]
        ](_MAX_NOTICES)

    # -- creating -----------------------------------------------------------------------

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
        engine = self.engine
        run = engine._new_run(producer, input, producer_name, owner, client_run_id, on_disconnect)
        run.metadata = dict(metadata or {})
        try:
            created = await self.store.create_run(
                run.id,
                producer=run.producer_name,
                owner=owner,
                client_run_id=client_run_id,
                metadata=run.metadata,
            )
        except BaseException:
            engine._discard(run)
            raise
        if created.cancel_reason is not None:
            run.cancel(created.cancel_reason)
        forwarding = self._forwarding[run.id] = _Forwarding()
        engine._launch(run)
        self._nursery.start_soon(self._forward, run, forwarding, name=f"forward {run.id}")
        return run

    # -- finding ------------------------------------------------------------------------

    def _owned(self, run_id: str, owner: str | None) -> Run | None:
        """This worker's run with this server id. Never by ``client_run_id``: the store's
        alias is the one that counts (the id may name a newer run on another worker)."""
        run = self.engine._local(run_id)
        return run if run is not None and run.owner == owner else None

    async def find(self, run_id: str, *, owner: str | None) -> RunHandle:
        local = self._owned(run_id, owner)
        if local is not None:
            return local
        record = await self.store.get_record(run_id)
        if record is None or record.owner != owner:
            # Not a server id of this owner: perhaps this owner's client_run_id.
            target = await self.store.lookup(run_id, owner=owner)
            record = await self.store.get_record(target) if target else None
            if record is not None:
                local = self._owned(record.id, owner)
                if local is not None:
                    return local
        if record is None or record.owner != owner:
            raise RunNotFound(run_id)
        return self._remote(record, await self._output(record.id))

    def _remote(self, record: RunRecord, output: RunOutput) -> RemoteRun:
        return RemoteRun(
            record,
            output,
            tailer=self.tailer,
            config=self.engine.config,
            observer=self.engine.observer,
            notify=self._notify,
        )

    async def _output(self, run_id: str) -> RunOutput:
        """The run's answer so far, folded from its stored log (as the owner folds it)."""
        events: list[Event] = []
        cursor = 0
        while True:
            result = await self.store.read(run_id, cursor, _READ_COUNT)
            if not result.events:
                return RunOutput.from_events(events)
            events += result.events
            cursor = result.events[-1].seq

    async def recent_runs(self, owner: str | None, limit: int) -> list[RunHandle]:
        """The owner's newest runs, whichever worker created them, from the store's
        per-owner index. A list shows no output, so another worker's run is read from its
        record alone (not folded from its log, as :meth:`find` does): its handle's
        ``output`` is empty. Runs whose keys expired are skipped."""
        runs: list[RunHandle] = []
        # Twice the limit: some of the newest may have expired (or been refused) since.
        for run_id in await self.store.recent_run_ids(owner, 2 * limit):
            local = self._owned(run_id, owner)
            if local is not None:
                runs.append(local)
            else:
                record = await self.store.get_record(run_id)
                if record is None or record.owner != owner:
                    continue
                runs.append(self._remote(record, RunOutput()))
            if len(runs) == limit:
                break
        return runs

    def statistics(self) -> dict[str, int]:
        return {**self.engine.statistics(), **self.tailer.statistics()}

    # -- signalling ---------------------------------------------------------------------

    async def cancel(
        self, run_id: str, *, owner: str | None, reason: CancelReason = CancelReason.REQUESTED
    ) -> CancelResult:
        local = self._owned(run_id, owner)
        if local is not None:
            return CancelResult("cancelled" if local.cancel(reason) else "already_decided", local)
        verdict = await self.store.cancel(run_id, reason, owner=owner)
        target = run_id
        if verdict == "not_found":
            # Perhaps a client_run_id: its run, or remembered for whoever creates it.
            alias_verdict, alias_target = await self.store.cancel_client_run_id(
                run_id, reason, owner=owner
            )
            if alias_verdict == "remembered" or alias_target is None:
                return CancelResult("remembered", None)
            verdict, target = alias_verdict, alias_target
        handle = await self.find(target, owner=owner)
        return CancelResult("cancelled" if verdict == "requested" else "already_decided", handle)

    async def answer(
        self, run_id: str, interaction_id: str, response: Any, *, owner: str | None
    ) -> RunHandle:
        handle = await self.find(run_id, owner=owner)
        if isinstance(handle, Run):
            await self._synced(handle)
        await self.store.answer(handle.id, interaction_id, response, owner=owner)
        if isinstance(handle, Run):
            # The answer is taken here at once; the signal that follows finds it taken.
            self._answer_locally(handle, interaction_id, response)
            return handle
        return await self.find(handle.id, owner=owner)

    async def _synced(self, run: Run) -> None:
        """Wait (briefly) until this worker's run is in the store as far as its log is
        here: a question must be stored before the store can take its answer."""
        forwarding = self._forwarding.get(run.id)
        target = run.log.last_seq
        with trio.move_on_after(self._unreachable_after):
            while forwarding is not None and forwarding.synced < target:
                await forwarding.lot.park()

    def _answer_locally(self, run: Run, interaction_id: str, response: Any) -> None:
        try:
            run.answer(interaction_id, response)
        except InteractionError:
            pass  # answered already (signals are delivered more than once), or cleared

    def _notify(self, run: RemoteRun, kind: str, detail: str, sent: trio.Event | None) -> None:
        """Queue an attach/detach for ``run``'s owner (see ``_redis_handle``)."""
        channel = self.store.control_channel(run.worker)
        try:
            self._notices.send_nowait((channel, f"{kind} {run.id} {detail}", sent))
        except trio.WouldBlock:
            logger.warning("follower signal for run %s dropped", run.id)
            if sent is not None:
                sent.set()

    async def _send_notices(self) -> None:
        async for channel, message, sent in self._notices_out:
            try:
                with self.store.guard():
                    await self.store.client.publish(channel, message)
            except StoreUnavailable:
                logger.warning("follower signal not sent: Redis unreachable")
            if sent is not None:
                sent.set()

    def _on_signal(self, signal: ControlSignal) -> None:
        """A control signal for a run this worker owns (idempotent: see ``_redis_liveness``)."""
        run = self.engine._local(signal.run_id)
        if run is None or run.status.terminal:
            return
        if signal.kind == "cancel":
            try:
                reason = CancelReason(signal.detail)
            except ValueError:
                reason = CancelReason.REQUESTED
            run.cancel(reason)
        elif signal.kind == "attach":
            self._remote_followers[run.id] = self._remote_followers.get(run.id, 0) + 1
            run._attach(remote=True)
        elif signal.kind == "detach":
            # Never below zero: an attach lost on the way must not make a detach count twice.
            if self._remote_followers.get(run.id, 0) > 0:
                self._remote_followers[run.id] -= 1
                run._detach(client_gone=signal.detail == "gone", remote=True)
        elif signal.kind == "answer":
            interaction = run._interactions.get(signal.detail)
            if interaction is not None and interaction.state == "pending":
                self._nursery.start_soon(self._fetch_answer, run, signal.detail)
        else:
            # The store says the run is no longer this worker's (a sweeper ended it).
            run._fail(ErrorCode.WORKER_LOST, WORKER_LOST_MESSAGE)

    async def _referee(self, run_id: str, interaction_id: str) -> tuple[str, Any]:
        """The owner's interaction timeout, decided in the store against an answer taken
        elsewhere: ``("answered", response)`` if the answer won. Bounded, and "expired"
        when the store cannot say: the question's own timeout has already passed."""
        with trio.move_on_after(self._unreachable_after):
            try:
                return await self.store.expire_interaction(run_id, interaction_id)
            except StoreUnavailable:
                pass
        return "expired", None

    async def _fetch_answer(self, run: Run, interaction_id: str) -> None:
        try:
            state, response = await self.store.interaction_state(run.id, interaction_id)
        except StoreUnavailable:
            return  # the next heartbeat delivers the answer again
        if state == "answered":
            self._answer_locally(run, interaction_id, response)

    async def _control(self) -> None:
        while True:
            try:
                await control_loop(self.store, self._on_signal)
            except StoreUnavailable:
                logger.warning("control channel of %s lost; resubscribing", self.store.worker_id)
                await trio.sleep(self.store.config.heartbeat_interval)

    # -- forwarding (the owner) ---------------------------------------------------------

    async def _forward(self, run: Run, forwarding: _Forwarding) -> None:
        """Write the run's local log to the store, batch by batch, ending with its
        terminal through ``finish``."""
        log = run.log
        cursor = 0
        unreachable_since: float | None = None
        backoff = 0.05
        try:
            while True:
                await log.wait_beyond(cursor)
                # Events trimmed here before they were stored (the store was down that
                # long) are skipped: the store refuses the rest as out of order, and only
                # the terminal, written by finish at its own next seq, still goes in.
                _, events = log.read(cursor, _BATCH)
                try:
                    done = await self._write(run, events)
                except StoreUnavailable:
                    now = trio.current_time()
                    unreachable_since = unreachable_since or now
                    if now - unreachable_since >= self._unreachable_after:
                        run._fail(ErrorCode.STORE_UNAVAILABLE, STORE_UNAVAILABLE_MESSAGE)
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, 1.0)
                    continue
                unreachable_since, backoff = None, 0.05
                cursor = events[-1].seq
                forwarding.synced = cursor
                forwarding.lot.unpark_all()
                if done:
                    return
        finally:
            del self._forwarding[run.id]
            self._remote_followers.pop(run.id, None)
            forwarding.lot.unpark_all()
            self._idle.unpark_all()

    async def _write(self, run: Run, events: list[Event]) -> bool:
        """Store ``events`` (the terminal, if among them, last). True once the run's end
        is settled in the store (written here, or decided there before)."""
        body = [event for event in events if not event.terminal]
        if body:
            status, interaction = _status_after(body)
            result = await self.store.append(
                run.id,
                body[0].seq,
                [(event.type, event.data) for event in body],
                status=status,
                interaction=interaction,
            )
            if result.verdict == "out_of_order":
                # An earlier try was written but its reply was lost (the store is ahead),
                # or events were trimmed here unstored (behind): the body cannot go in.
                pass
            elif result.verdict != "ok":
                # Ended in the store (a sweeper, or gone): this worker no longer runs it.
                logger.warning("run %s: store refused events (%s)", run.id, result.verdict)
                run._fail(ErrorCode.WORKER_LOST, WORKER_LOST_MESSAGE)
                return True
        if events[-1].terminal:
            await self.store.finish(run.id, outcome_from_event(events[-1]))
            return True
        return False

    async def _drain(self, grace: float) -> None:
        """Wait up to ``grace`` for every forwarder to store its run's terminal."""
        with trio.move_on_after(grace, shield=True):
            while self._forwarding:
                await self._idle.park()


def _status_after(
    events: list[Event],
) -> tuple[RunStatus | None, Mapping[str, Any] | None]:
    """The status these events leave the run in (None: unchanged), with the pending
    interaction when that is ``awaiting_input``."""
    status: RunStatus | None = None
    interaction: Mapping[str, Any] | None = None
    for event in events:
        if event.type is EventType.RUN_STARTED or event.type is EventType.INTERACTION_RESOLVED:
            status, interaction = RunStatus.RUNNING, None
        elif event.type is EventType.INTERACTION_REQUIRED:
            status, interaction = RunStatus.AWAITING_INPUT, event.data
    return status, interaction


@asynccontextmanager
async def open_redis_backend(
    engine: Engine,
    url: str,
    config: RedisStoreConfig | None = None,
    *,
    unreachable_after: float = 10.0,
    drain_grace: float = 5.0,
) -> AsyncIterator[RedisBackend]:
    """The Redis backend over ``engine`` for the duration of the block: the store, the
    tailer, the heartbeat, the control subscription and the sweeper. Raises
    :class:`StoreUnavailable` naming ``SCOPESTREAM_REDIS_URL`` if Redis does not answer.

    Leave the block after the engine's runs have ended (``engine.aclose()``): it waits up to
    ``drain_grace`` for their terminals to be stored."""
    config = config or RedisStoreConfig()
    async with open_redis_store(url, config) as store, open_tailer(store) as tailer:
        async with trio.open_nursery() as nursery:
            backend = RedisBackend(engine, store, tailer, nursery, unreachable_after)
            engine._interaction_referee = backend._referee
            await nursery.start(heartbeat_loop, store, backend._on_signal)
            nursery.start_soon(backend._control)
            nursery.start_soon(backend._send_notices)
            nursery.start_soon(sweeper_loop, store, config.heartbeat_interval)
            try:
                yield backend
            finally:
                await backend._drain(drain_grace)
                engine._interaction_referee = None
                nursery.cancel_scope.cancel(reason="redis backend closed")
