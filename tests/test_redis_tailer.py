"""The per-worker tailer against a real redis-server: one blocked XREAD for many
followers of many runs, joins from any cursor with no gap and no duplicate, and a new
stream joining a read that is already blocked."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from engine import Completed, Event, EventType, RunStatus
from engine.backends import StoreUnavailable
from engine.backends._redis_store import RedisStore, RedisStoreConfig, open_redis_store
from engine.backends._redis_tailer import Tailer, open_tailer
from tests._redis import clean_url, module_server, run_redis, wait_until

pytestmark = pytest.mark.redis
redis_server = pytest.fixture(scope="module")(module_server)
redis_url = pytest.fixture(clean_url)

CONFIG = RedisStoreConfig(retention=30, max_log_events=10_000, live_ttl=600)


@asynccontextmanager
async def worker(
    url: str, worker_id: str, config: RedisStoreConfig = CONFIG, **options: Any
) -> AsyncIterator[tuple[RedisStore, Tailer]]:
    async with (
        open_redis_store(url, config, worker_id=worker_id) as store,
        open_tailer(store, **options) as tailer,
    ):
        yield store, tailer


async def produce(store: RedisStore, run_id: str, n: int, batch: int = 7) -> None:
    """Append ``n`` text events in batches, then finish."""
    seq = 1
    while seq <= n:
        size = min(batch, n - seq + 1)
        events = [(EventType.TEXT_DELTA, {"text": str(s)}) for s in range(seq, seq + size)]
        result = await store.append(run_id, seq, events, status=RunStatus.RUNNING)
        assert result.verdict == "ok", result
        seq += size
        await trio.lowlevel.checkpoint()
    assert (await store.finish(run_id, Completed())).verdict == "won"


async def collect(tailer: Tailer, run_id: str, after: int, out: list[Event]) -> None:
    async with tailer.follow(run_id, after) as follower:
        async for batch in follower:
            assert batch.missing_from == 0
            out.extend(batch.events)


def check_exact(events: list[Event], after: int, last: int) -> None:
    """Every seq from after+1 to last exactly once, in order, ending with the terminal."""
    assert [e.seq for e in events] == list(range(after + 1, last + 1))
    assert events[-1].terminal and not any(e.terminal for e in events[:-1])


async def blocked_clients(store: RedisStore, expected: int | None = None) -> Any:
    """How many clients Redis lists as blocked (flag ``b``); with ``expected``, whether
    that many are."""
    clients = await store.client.client_list()
    count = sum(1 for client in clients if "b" in str(client["flags"]))
    return count if expected is None else count == expected


async def test_many_followers_of_many_runs_share_one_blocked_read(redis_url: str) -> None:
    runs, followers_per_run, n = 20, 10, 60
    with trio.fail_after(25):
        async with (
            open_redis_store(redis_url, CONFIG, worker_id="w_a") as owner,
            worker(redis_url, "w_b") as (_, tailer),
        ):
            run_ids = [f"run_{i}" for i in range(runs)]
            for run_id in run_ids:
                await owner.create_run(run_id, producer="p")
            received: dict[tuple[str, int], list[Event]] = {}
            samples: list[int] = []
            async with trio.open_nursery() as followers:
                for run_id in run_ids:
                    for k in range(followers_per_run):
                        out = received[(run_id, k)] = []
                        followers.start_soon(collect, tailer, run_id, 0, out)
                # Every follower attached, and one client blocked in Redis: the tailer.
                await wait_until(lambda: len(tailer._tails) == runs)
                await wait_until(lambda: blocked_clients(owner, 1))
                async with trio.open_nursery() as producers:
                    for run_id in run_ids:
                        producers.start_soon(produce, owner, run_id, n)

                    async def sample() -> None:
                        while True:
                            samples.append(await blocked_clients(owner))
                            await trio.sleep(0.005)

                    producers.start_soon(sample)
                    await wait_until(
                        lambda: all(tail.terminal_seq for tail in tailer._tails.values())
                    )
                    producers.cancel_scope.cancel()
            for events in received.values():
                check_exact(events, 0, n + 1)
            # Never more than one blocked connection for 200 followers (it was seen blocked
            # above; while events flow it is often busy reading, so a sample may show none).
            assert samples and max(samples) <= 1, samples
            assert tailer.statistics()["streams"] == 0  # every follower left


async def test_joins_from_any_cursor_while_events_are_appended(redis_url: str) -> None:
    rng = random.Random(12)
    n = 400
    with trio.fail_after(25):
        # A small mirror, so followers that join far behind take the XRANGE path.
        async with worker(redis_url, "w_a", mirror_size=16, count=32) as (store, tailer):
            await store.create_run("run_1", producer="p")
            results: list[tuple[int, list[Event]]] = []

            async def join_later() -> None:
                await trio.sleep(rng.random() * 0.3)
                top = (await store.get_record("run_1")).last_seq  # type: ignore[union-attr]
                after = rng.randint(0, top)
                out: list[Event] = []
                results.append((after, out))
                await collect(tailer, "run_1", after, out)

            async def slow_producer() -> None:
                seq = 1
                while seq <= n:
                    size = rng.randint(1, 9)
                    size = min(size, n - seq + 1)
                    events = [(EventType.TEXT_DELTA, {"i": s}) for s in range(seq, seq + size)]
                    assert (await store.append("run_1", seq, events)).verdict == "ok"
                    seq += size
                    await trio.sleep(rng.random() * 0.003)
                await store.finish("run_1", Completed())

            async with trio.open_nursery() as nursery:
                for _ in range(40):
                    nursery.start_soon(join_later)
                nursery.start_soon(slow_producer)
            assert len(results) == 40
            for after, events in results:
                check_exact(events, after, n + 1)
                assert [e.data["i"] for e in events[:-1]] == list(range(after + 1, n + 1))


async def test_a_new_stream_joins_a_blocked_read_at_once(redis_url: str) -> None:
    # The read blocks for up to 60 s: only the wake can bring the new stream in quickly.
    with trio.fail_after(20):
        async with worker(redis_url, "w_a", block=60) as (store, tailer):
            for run_id in ("run_a", "run_b"):
                await store.create_run(run_id, producer="p")
            async with tailer.follow("run_a") as first:
                wait_a = trio.CancelScope()

                async def hold() -> None:
                    with wait_a:
                        await first.__anext__()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(hold)
                    await wait_until(lambda: tailer._blocked and "run_a" in tailer._tails)
                    reads = tailer.reads
                    with trio.fail_after(2):
                        async with tailer.follow("run_b") as second:
                            got: list[Event] = []

                            async def take() -> None:
                                got.extend((await second.__anext__()).events)

                            nursery.start_soon(take)
                            # Attached (after a replay that found nothing), then appended.
                            await wait_until(lambda: "run_b" in tailer._tails)
                            await store.append("run_b", 1, [(EventType.TEXT_DELTA, {})])
                            await wait_until(lambda: bool(got))
                    assert [e.seq for e in got] == [1]
                    assert tailer.reads > reads
                    wait_a.cancel()


async def test_a_trimmed_cursor_is_reported_to_the_follower(redis_url: str) -> None:
    config = RedisStoreConfig(retention=30, max_log_events=5, live_ttl=600)
    with trio.fail_after(10):
        async with worker(redis_url, "w_a", config) as (store, tailer):
            await store.create_run("run_1", producer="p")
            await produce(store, "run_1", 12)
            async with tailer.follow("run_1", 2) as follower:
                batches = [batch async for batch in follower]
            assert batches[0].missing_from == 3
            assert [e.seq for b in batches for e in b.events] == [9, 10, 11, 12, 13]


async def test_following_a_finished_run_ends(redis_url: str) -> None:
    with trio.fail_after(10):
        async with worker(redis_url, "w_a") as (store, tailer):
            await store.create_run("run_1", producer="p")
            await produce(store, "run_1", 3)
            out: list[Event] = []
            await collect(tailer, "run_1", 1, out)
            check_exact(out, 1, 4)
            async with tailer.follow("run_1", 4) as at_the_end:
                assert [batch async for batch in at_the_end] == []
            assert tailer.statistics()["streams"] == 0


async def test_the_tailer_recovers_when_redis_comes_back(tmp_path: Path) -> None:
    with trio.fail_after(20):
        with run_redis(tmp_path / "first") as server:
            port = server.port
            async with worker(server.url, "w_a", block=0.2) as (store, tailer):
                await store.create_run("run_1", producer="p")
                got: list[Event] = []
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(collect, tailer, "run_1", 0, got)
                    await wait_until(lambda: "run_1" in tailer._tails)
                    server.stop()
                    with pytest.raises(StoreUnavailable):
                        await store.append("run_1", 1, [(EventType.TEXT_DELTA, {})])
                    reads = tailer.reads
                    # Redis returns on the same address, empty (no persistence): the owner
                    # writes the run again and the waiting follower gets it all.
                    with run_redis(tmp_path / "second", port=port):
                        await store.create_run("run_1", producer="p")
                        await produce(store, "run_1", 3)
                        await wait_until(lambda: bool(got) and got[-1].terminal)
                    assert tailer.reads > reads
                check_exact(got, 0, 4)
