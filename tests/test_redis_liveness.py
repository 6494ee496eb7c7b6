"""Control signals, heartbeats and the sweeper against a real redis-server: a cancel or an
answer on one worker reaches the owner at once and is still seen if the message is
missed; a worker whose heartbeat expired has its runs ended with one worker_lost."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from engine import Completed, ErrorCode, EventType, Failed, RunStatus
from engine.backends._redis_liveness import (
    ControlSignal,
    beat_once,
    control_loop,
    heartbeat_loop,
    sweep,
    sweeper_loop,
)
from engine.backends._redis_store import RedisStoreConfig, open_redis_store
from engine.backends._redis_tailer import open_tailer
from tests._redis import clean_url, module_server, wait_until

pytestmark = pytest.mark.redis
redis_server = pytest.fixture(scope="module")(module_server)
redis_url = pytest.fixture(clean_url)

CONFIG = RedisStoreConfig(
    retention=30, max_log_events=1000, live_ttl=60, heartbeat_interval=0.1, heartbeat_ttl=0.4
)
TEXT = [(EventType.TEXT_DELTA, {"text": "x"})]


async def test_cancel_reaches_the_owner_at_once_and_stays_recorded(redis_url: str) -> None:
    with trio.fail_after(10):
        async with (
            open_redis_store(redis_url, CONFIG, worker_id="w_a") as a,
            open_redis_store(redis_url, CONFIG, worker_id="w_b") as b,
            trio.open_nursery() as nursery,
        ):
            await a.create_run("run_1", producer="p")
            signals: list[ControlSignal] = []
            await nursery.start(control_loop, a, signals.append)
            assert await b.cancel("run_1") == "requested"
            with trio.fail_after(2):
                await wait_until(lambda: bool(signals))
            assert signals == [ControlSignal("cancel", "run_1", "requested")]
            # The durable record: the owner's next heartbeat sees the same cancel.
            beats: list[ControlSignal] = []
            await beat_once(a, beats.append)
            assert beats == [ControlSignal("cancel", "run_1", "requested")]
            nursery.cancel_scope.cancel()


async def test_a_missed_message_is_seen_on_the_next_heartbeat(redis_url: str) -> None:
    with trio.fail_after(10):
        async with (
            open_redis_store(redis_url, CONFIG, worker_id="w_a") as a,
            open_redis_store(redis_url, CONFIG, worker_id="w_b") as b,
        ):
            await a.create_run("run_1", producer="p")
            await a.create_run("run_2", producer="p")
            interaction = {"interaction_id": "int_1", "prompt": "?"}
            await a.append(
                "run_2", 1, TEXT, status=RunStatus.AWAITING_INPUT, interaction=interaction
            )
            # Nobody listens on w_a's channel: both messages are lost.
            await b.cancel("run_1")
            await b.answer("run_2", "int_1", "yes")
            signals: list[ControlSignal] = []
            await beat_once(a, signals.append)
            assert sorted(signals, key=lambda s: s.run_id) == [
                ControlSignal("cancel", "run_1", "requested"),
                ControlSignal("answer", "run_2", "int_1"),
            ]
            assert await a.interaction_state("run_2", "int_1") == ("answered", "yes")


async def test_an_answer_reaches_the_owner_at_once(redis_url: str) -> None:
    with trio.fail_after(10):
        async with (
            open_redis_store(redis_url, CONFIG, worker_id="w_a") as a,
            open_redis_store(redis_url, CONFIG, worker_id="w_b") as b,
            trio.open_nursery() as nursery,
        ):
            await a.create_run("run_1", producer="p")
            interaction = {"interaction_id": "int_1", "prompt": "?"}
            await a.append(
                "run_1", 1, TEXT, status=RunStatus.AWAITING_INPUT, interaction=interaction
            )
            signals: list[ControlSignal] = []
            await nursery.start(control_loop, a, signals.append)
            await b.answer("run_1", "int_1", {"go": True})
            with trio.fail_after(2):
                await wait_until(lambda: bool(signals))
            assert signals == [ControlSignal("answer", "run_1", "int_1")]
            assert await a.interaction_state("run_1", "int_1") == ("answered", {"go": True})
            nursery.cancel_scope.cancel()


async def test_a_beating_worker_is_not_swept(redis_url: str) -> None:
    with trio.fail_after(10):
        async with (
            open_redis_store(redis_url, CONFIG, worker_id="w_a") as a,
            open_redis_store(redis_url, CONFIG, worker_id="w_s") as s,
            trio.open_nursery() as nursery,
        ):
            await a.create_run("run_1", producer="p")
            signals: list[ControlSignal] = []
            await nursery.start(heartbeat_loop, a, signals.append)
            # Several heartbeat TTLs: the loop keeps renewing the key.
            for _ in range(10):
                assert await sweep(s) == []
                await trio.sleep(0.1)
            record = await s.get_record("run_1")
            assert record is not None and record.status is RunStatus.QUEUED
            assert signals == []
            nursery.cancel_scope.cancel()


async def test_a_slow_pass_over_many_runs_does_not_let_the_heartbeat_lapse(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy worker owning many runs: touching them all takes longer than the heartbeat
    TTL. The worker's own key must still be renewed on time, or the sweepers would end the
    runs of a live worker."""
    with trio.fail_after(15):
        async with (
            open_redis_store(redis_url, CONFIG, worker_id="w_a") as a,
            open_redis_store(redis_url, CONFIG, worker_id="w_s") as s,
            trio.open_nursery() as nursery,
        ):
            for i in range(20):
                await a.create_run(f"run_{i}", producer="p")
            touch = a.touch

            async def slow_touch(run_id: str) -> list[str]:
                await trio.sleep(0.05)  # 20 runs: a 1 s pass, against a 0.4 s TTL
                return await touch(run_id)

            monkeypatch.setattr(a, "touch", slow_touch)
            await nursery.start(heartbeat_loop, a, lambda signal: None)
            for _ in range(30):  # 1.5 s: more than one whole slow pass
                assert await s.worker_alive("w_a")
                assert await sweep(s) == []
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()


async def test_a_lost_worker_runs_end_once_with_worker_lost(redis_url: str) -> None:
    with trio.fail_after(15):
        async with (
            open_redis_store(redis_url, CONFIG, worker_id="w_a") as a,
            open_redis_store(redis_url, CONFIG, worker_id="w_s") as s,
            open_tailer(s) as tailer,
        ):
            for run_id in ("run_1", "run_2", "run_3"):
                await a.create_run(run_id, producer="p")
            await a.append("run_1", 1, TEXT, status=RunStatus.RUNNING)  # streaming
            await a.append(  # paused for input
                "run_2",
                1,
                TEXT,
                status=RunStatus.AWAITING_INPUT,
                interaction={"interaction_id": "int_1", "prompt": "?"},
            )
            # run_3 never started.
            await beat_once(a, lambda signal: None)
            assert await sweep(s) == []

            received: dict[str, list[Any]] = {}

            async def follow(run_id: str) -> None:
                async with tailer.follow(run_id) as follower:
                    received[run_id] = [e async for batch in follower for e in batch.events]

            async with trio.open_nursery() as nursery:
                for run_id in ("run_1", "run_2", "run_3"):
                    nursery.start_soon(follow, run_id)

                # w_a stops beating (as if killed): its key expires after the TTL.
                async def expired() -> bool:
                    return not await s.worker_alive("w_a")

                await wait_until(expired)
                swept = await sweep(s)
                assert sorted(swept) == ["run_1", "run_2", "run_3"]
                assert await sweep(s) == []  # a second sweep finds nothing to do

            for run_id, events in received.items():
                assert events[-1].type is EventType.FAILED
                assert events[-1].data["error"]["code"] == "worker_lost"
                assert sum(1 for e in events if e.terminal) == 1
                record = await s.get_record(run_id)
                assert record is not None and record.status is RunStatus.FAILED
                assert isinstance(record.outcome, Failed)
                assert record.outcome.error.code is ErrorCode.WORKER_LOST
                assert record.interaction is None
            assert await s.live_runs() == {}
            # The late owner is fenced out of every run, and learns it.
            assert (await a.append("run_1", 2, TEXT)).verdict == "finished"
            assert (await a.finish("run_3", Completed())).verdict == "already_finished"
            signals: list[ControlSignal] = []
            await beat_once(a, signals.append)
            assert {(sig.kind, sig.run_id) for sig in signals} == {
                ("lost", "run_1"),
                ("lost", "run_2"),
            }
            assert a.owned == []


async def test_the_sweeper_loop_ends_an_orphaned_run(redis_url: str) -> None:
    with trio.fail_after(10):
        async with (
            open_redis_store(redis_url, CONFIG, worker_id="w_a") as a,
            open_redis_store(redis_url, CONFIG, worker_id="w_s") as s,
            trio.open_nursery() as nursery,
        ):
            # w_a beat once when it opened the store, and never again.
            await a.create_run("run_1", producer="p")
            await nursery.start(sweeper_loop, s, 0.05)

            async def ended() -> bool:
                record = await s.get_record("run_1")
                return record is not None and record.status is RunStatus.FAILED

            await wait_until(ended)
            assert not await s.worker_alive("w_a")
            events = (await s.read("run_1", 0)).events
            assert [e.type for e in events] == [EventType.FAILED]
            nursery.cancel_scope.cancel()
