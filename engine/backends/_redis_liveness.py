"""Heartbeats, the sweeper and control signals: how the owner of a run hears other
workers, and how a run whose owner died still ends.

Theory of operation
-------------------
*Control.* A cancel or an answer on any worker runs a script that first records it durably
(the run's cancel key, the interaction's state) and then publishes ``cancel <run> <reason>``
or ``answer <run> <interaction>`` on the owning worker's channel. The owner's
:func:`control_loop` turns each message into a :class:`ControlSignal` at once. A pub/sub
message is lost when nobody listens at that moment (a reconnect), so the owner's
:func:`heartbeat_loop` also reads every owned run's durable record on each beat and delivers
the same signals again: a handler must be idempotent (cancelling twice, or hearing of an
answer already taken, changes nothing).

*Heartbeat.* Each beat renews the worker's heartbeat key (TTL ``heartbeat_ttl``) and, per
owned run, the run's keys' live expiry. A run that turns out to be no longer this worker's
(finished by a sweeper, or gone) is reported as a ``lost`` signal so the owner stops it.

*Sweeper.* Any worker's :func:`sweep` reads the live index, and for every run whose
worker's heartbeat key has expired calls the same ``finish`` script as an owner would,
with ``failed`` / ``worker_lost`` and the dead worker as the expected worker: if the owner
was only slow and finishes first, the sweeper loses and changes nothing; if the sweeper
wins, the late owner's appends and finish are refused.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import trio

from .._events import ErrorCode, ErrorInfo, Failed
from ._errors import StoreUnavailable
from ._redis_store import RedisStore

__all__ = [
    "WORKER_LOST_MESSAGE",
    "ControlSignal",
    "beat_once",
    "control_loop",
    "heartbeat_loop",
    "parse_control_message",
    "sweep",
    "sweeper_loop",
    "touch_owned",
]

logger = logging.getLogger("scopestream.redis")

WORKER_LOST_MESSAGE = "The server running this run stopped; the run could not finish."


@dataclass(frozen=True, slots=True)
class ControlSignal:
    """Something the owner of ``run_id`` must act on.

    ``cancel``: ``detail`` is the reason. ``answer``: ``detail`` is the interaction id (read
    the response with :meth:`RedisStore.interaction_state`). ``lost``: the run is no
    longer this worker's (ended elsewhere or expired); ``detail`` is the touch verdict.
    ``attach`` / ``detach``: a follower on another worker came or went (``detail``:
    ``gone`` when its client left, ``done`` otherwise), for the disconnect policy; these
    are pub/sub only, with no durable record.
    """

    kind: Literal["cancel", "answer", "lost", "attach", "detach"]
    run_id: str
    detail: str


def parse_control_message(data: str) -> ControlSignal | None:
    kind, _, rest = data.partition(" ")
    run_id, _, detail = rest.partition(" ")
    if kind not in ("cancel", "answer", "attach", "detach") or not run_id or not detail:
        return None
    return ControlSignal(kind, run_id, detail)  # type: ignore[arg-type]


async def control_loop(
    store: RedisStore,
    on_signal: Callable[[ControlSignal], None],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Subscribe to this worker's control channel and hand each signal to ``on_signal``
    (a synchronous, idempotent handler). Reports started once subscribed. Runs until
    cancelled; coredis resubscribes by itself after a lost connection."""
    channel = store.control_channel(store.worker_id)
    with store.guard():
        async with store.client.pubsub(
            channels=[channel], ignore_subscribe_messages=True
        ) as pubsub:
            task_status.started()
            async for message in pubsub:
                signal = parse_control_message(str(message["data"]))
                if signal is not None:
                    on_signal(signal)


async def beat_once(store: RedisStore, on_signal: Callable[[ControlSignal], None]) -> None:
    """One heartbeat: renew the worker's key, then every owned run's keys, delivering the
    durable signals found (see the module's docstring)."""
    await store.beat()
    await touch_owned(store, on_signal)


async def touch_owned(store: RedisStore, on_signal: Callable[[ControlSignal], None]) -> None:
    """Renew every owned run's keys (one script call each) and deliver the durable signals
    found in their records."""
    for run_id in list(store.owned):
        result = await store.touch(run_id)
        if result[0] != "live":
            on_signal(ControlSignal("lost", run_id, result[0]))
            continue
        if result[1]:
            on_signal(ControlSignal("cancel", run_id, result[1]))
        for interaction_id in result[2:]:
            on_signal(ControlSignal("answer", run_id, interaction_id))


async def heartbeat_loop(
    store: RedisStore,
    on_signal: Callable[[ControlSignal], None],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Beat every ``heartbeat_interval`` until cancelled; reports started after the first
    beat. A beat that cannot reach Redis is logged and retried on the next interval: the
    heartbeat key may expire meanwhile, and then the sweepers end this worker's runs.

    The worker's own key is renewed by a task of its own, on a fixed cadence: touching the
    owned runs takes one round trip each, and on a busy worker with hundreds of runs that
    pass can outlast the heartbeat TTL. Renewed after it, the key expired, and the sweepers
    ended the runs of a worker that was alive and serving them."""
    interval = store.config.heartbeat_interval
    await store.beat()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_renew_loop, store, interval)
        await touch_owned(store, on_signal)
        task_status.started()
        while True:
            await trio.sleep(interval)
            try:
                await touch_owned(store, on_signal)
            except StoreUnavailable:
                logger.warning("touching the runs of %s failed: Redis unreachable", store.worker_id)


async def _renew_loop(store: RedisStore, interval: float) -> None:
    due = trio.current_time()
    while True:
        due += interval
        await trio.sleep_until(due)
        try:
            await store.beat()
        except StoreUnavailable:
            logger.warning("heartbeat of %s failed: Redis unreachable", store.worker_id)
        due = max(due, trio.current_time())  # after a stall, beat on, do not catch up


async def sweep(store: RedisStore) -> list[str]:
    """One sweep: end every live run whose worker's heartbeat expired with ``failed`` /
    ``worker_lost``. Returns the ids of the runs this call ended."""
    ended: list[str] = []
    live = await store.live_runs()
    alive: dict[str, bool] = {}
    for run_id, worker in live.items():
        if worker not in alive:
            alive[worker] = await store.worker_alive(worker)
        if alive[worker]:
            continue
        # A correlation id so the sweep can be found in the logs; no traceback exists.
        correlation_id = "sweep_" + secrets.token_hex(8)
        outcome = Failed(ErrorInfo(ErrorCode.WORKER_LOST, WORKER_LOST_MESSAGE, correlation_id))
        result = await store.finish(run_id, outcome, expected_worker=worker)
        if result.verdict == "won":
            logger.warning("run %s failed: worker %s lost [%s]", run_id, worker, correlation_id)
            ended.append(run_id)
    return ended


async def sweeper_loop(
    store: RedisStore,
    interval: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Sweep every ``interval`` seconds until cancelled. Every worker may run one: the
    ``finish`` script makes concurrent sweeps safe."""
    task_status.started()
    while True:
        try:
            await sweep(store)
        except StoreUnavailable:
            logger.warning("sweep by %s failed: Redis unreachable", store.worker_id)
        await trio.sleep(interval)
