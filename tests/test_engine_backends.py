"""The engine's promises through the backend seam, on both backends.

Each test gets an *owner* backend (where runs are created and executed) and a *reader*
backend (where they are found, followed, cancelled and answered). With the memory backend
both are the same one; with the Redis backend they are two workers (two engines, two worker
ids) sharing one real redis-server, so the reader reads every run remotely. Real clock,
every wait under ``trio.fail_after`` (the Redis backend talks to a socket: see
``docs/architecture.md`` on autojump and Redis); the memory backend's timing-sensitive tests
stay on autojump in the other engine test files.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio

from engine import (
    Backend,
    Cancelled,
    CancelReason,
    Connection,
    DisconnectPolicy,
    EngineConfig,
    ErrorCode,
    InteractionNotFound,
    InteractionNotPending,
    MemoryBackend,
    Run,
    RunConflict,
    RunContext,
    RunHandle,
    RunNotFound,
    RunStatus,
    open_engine,
)
from engine._config import CANCEL, CONTINUE
from engine.backends._redis_backend import open_redis_backend
from engine.backends._redis_model import RedisStoreConfig
from engine.protocols.native import NativeProjection

from ._engine_helpers import read_all
from ._redis import clean_url, module_server, wait_until
from ._sse import native_events

pytestmark = pytest.mark.redis

redis_server = pytest.fixture(scope="module")(module_server)
redis_url = pytest.fixture(clean_url)

CONFIG = EngineConfig(keepalive_interval=0.2, shutdown_grace=2.0, max_chunk_bytes=4096)
STORE = RedisStoreConfig(heartbeat_interval=0.2, heartbeat_ttl=1.0)
LIMIT = 15  # seconds: every test's bound


@asynccontextmanager
async def redis_worker(url: str) -> AsyncIterator[Backend]:
    async with open_engine(CONFIG) as engine:
        async with open_redis_backend(engine, url, STORE, unreachable_after=2.0) as backend:
            try:
                yield backend
            finally:
                await engine.aclose()


@pytest.fixture(params=["memory", "redis"])
async def backends(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Any]:
    """``(owner, reader)``."""
    async with AsyncExitStack() as stack:
        if request.param == "memory":
            engine = await stack.enter_async_context(open_engine(CONFIG))
            backend = MemoryBackend(engine)
            yield backend, backend
        else:
            owner = await stack.enter_async_context(redis_worker(redis_url))
            reader = await stack.enter_async_context(redis_worker(redis_url))
            yield owner, reader


async def start(backend: Backend, producer: Any, **kw: Any) -> RunHandle:
    kw.setdefault("on_disconnect", CONTINUE)
    kw.setdefault("owner", None)
    kw.setdefault("client_run_id", None)
    kw.setdefault("input", {})
    return await backend.start(
        producer,
        producer_name=getattr(producer, "__name__", "p"),
        **kw,
    )


async def settled(backend: Backend, run_id: str, owner: str | None = None) -> RunHandle:
    """The run as ``backend`` reads it once its terminal is there."""
    handle = await backend.find(run_id, owner=owner)
    await handle.wait_done()
    return await backend.find(run_id, owner=owner)


async def until_status(backend: Backend, run_id: str, status: RunStatus) -> RunHandle:
    while True:
        handle = await backend.find(run_id, owner=None)
        if handle.status is status:
            return handle
        await trio.sleep(0.01)


def ticks(n: int, interval: float = 0.0, seen: list[str] | None = None) -> Any:
    async def ticker(ctx: RunContext) -> None:
        try:
            for i in range(n):
                await ctx.text(f"t{i}")
                await trio.sleep(interval)
        except trio.Cancelled:
            if seen is not None:
                seen.append("cancelled")
            raise

    return ticker


def assert_contiguous_with_one_terminal(events: list[dict[str, Any]]) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    ends = [e for e in events if e["type"] in ("run.completed", "run.failed", "run.cancelled")]
    assert ends == [events[-1]]


async def test_completed_run_reads_the_same_everywhere(backends: Any) -> None:
    owner, reader = backends
    with trio.fail_after(LIMIT):
        run = await start(owner, ticks(5))
        handle = await settled(reader, run.id)
        assert handle.status is RunStatus.COMPLETED
        events = await read_all(handle)
        assert_contiguous_with_one_terminal(events)
        assert [e["data"]["text"] for e in events if e["type"] == "text.delta"] == [
            f"t{i}" for i in range(5)
        ]
        assert handle.last_seq == events[-1]["seq"]
        assert handle.output.text() == "t0t1t2t3t4"


async def test_cancel_from_the_reader_reaches_the_producer(backends: Any) -> None:
    owner, reader = backends
    seen: list[str] = []
    with trio.fail_after(LIMIT):
        run = await start(owner, ticks(10_000, 0.01, seen))
        await until_status(reader, run.id, RunStatus.RUNNING)
        result = await reader.cancel(run.id, owner=None)
        assert result.result == "cancelled"
        handle = await settled(reader, run.id)
        assert handle.status is RunStatus.CANCELLED
        events = await read_all(handle)
        assert_contiguous_with_one_terminal(events)
        assert events[-1]["data"]["reason"] == "requested"
        await run.wait_done()
        assert seen == ["cancelled"]  # the producer's cleanup ran, knowing it was cancelled
        again = await reader.cancel(run.id, owner=None)
        assert again.result == "already_decided"


async def test_a_failing_producer_fails_with_a_generic_message(backends: Any) -> None:
    owner, reader = backends

    async def broken(ctx: RunContext) -> None:
        await ctx.text("x")
        raise RuntimeError("secret detail")

    with trio.fail_after(LIMIT):
        run = await start(owner, broken)
        handle = await settled(reader, run.id)
        assert handle.status is RunStatus.FAILED
        events = await read_all(handle)
        assert_contiguous_with_one_terminal(events)
        error = events[-1]["data"]["error"]
        assert error["code"] == ErrorCode.SERVER_ERROR
        assert "secret" not in str(events)


async def test_resume_from_every_cursor_of_a_finished_run(backends: Any) -> None:
    owner, reader = backends
    with trio.fail_after(LIMIT):
        run = await start(owner, ticks(8))
        handle = await settled(reader, run.id)
        full = await read_all(handle)
        for cursor in range(len(full) + 1):
            again = await reader.find(run.id, owner=None)
            assert await read_all(again, cursor) == full[cursor:], cursor


async def test_followers_of_a_live_run_from_several_cursors(backends: Any) -> None:
    owner, reader = backends
    with trio.fail_after(LIMIT):
        run = await start(owner, ticks(30, 0.01))
        await until_status(reader, run.id, RunStatus.RUNNING)
        results: dict[int, list[dict[str, Any]]] = {}

        async def follow(cursor: int) -> None:
            results[cursor] = await read_all(await reader.find(run.id, owner=None), cursor)

        async with trio.open_nursery() as nursery:
            for cursor in (0, 1, 3):
                nursery.start_soon(follow, cursor)
        full = results[0]
        assert_contiguous_with_one_terminal(full)
        for cursor, events in results.items():
            assert events == full[cursor:]


async def test_a_stalled_reader_never_delays_the_producer(backends: Any) -> None:
    owner, reader = backends
    with trio.fail_after(LIMIT):
        run = await start(owner, ticks(2000))
        handle = await reader.find(run.id, owner=None)
        with Connection(handle, NativeProjection()) as stalled:
            # The reader reads nothing while the producer emits all of its events.
            await run.wait_done()
            assert run.status is RunStatus.COMPLETED
            first = await stalled.next_chunk()
            assert first is not None


async def test_a_chunk_stays_within_the_byte_budget_on_every_worker(backends: Any) -> None:
    owner, reader = backends

    async def large(ctx: RunContext) -> None:
        for i in range(40):
            await ctx.text(str(i % 10) * 1000)

    with trio.fail_after(LIMIT):
        run = await start(owner, large)
        handle = await settled(reader, run.id)
        chunks = []
        with Connection(handle, NativeProjection()) as connection:
            while (chunk := await connection.next_chunk()) is not None:
                chunks.append(native_events(chunk))
        texts = [[e for e in events if e["type"] == "text.delta"] for events in chunks]
        assert sum(len(t) for t in texts) == 40
        assert max(len(t) for t in texts) <= 4  # 4096 bytes at 1000 a text


async def test_human_in_the_loop_answered_from_the_reader(backends: Any) -> None:
    owner, reader = backends

    async def asks(ctx: RunContext) -> None:
        answer = await ctx.ask("Proceed?")
        await ctx.text(f"answer={answer}")

    with trio.fail_after(LIMIT):
        run = await start(owner, asks)
        paused = await until_status(reader, run.id, RunStatus.AWAITING_INPUT)
        pending = paused.pending_interaction
        assert pending is not None and pending.prompt == "Proceed?"
        with pytest.raises(InteractionNotFound):
            await reader.answer(run.id, "int_nope", 1, owner=None)
        await reader.answer(run.id, pending.id, "yes", owner=None)
        with pytest.raises(InteractionNotPending):
            await reader.answer(run.id, pending.id, "twice", owner=None)
        with pytest.raises(InteractionNotPending):
            await owner.answer(run.id, pending.id, "thrice", owner=None)
        handle = await settled(reader, run.id)
        assert handle.status is RunStatus.COMPLETED
        assert handle.output.text() == "answer=yes"
        types = [e["type"] for e in await read_all(handle)]
        assert types.count("interaction.resolved") == 1


async def test_an_answer_taken_elsewhere_wins_over_a_timeout_on_the_owner(
    backends: Any,
) -> None:
    owner, reader = backends
    if hasattr(owner, "_fetch_answer"):
        # The answer's signal to the owner is held back, as if still on its way when the
        # owner's timeout fires: only the store knows the answer was taken.
        async def held_back(run: Any, interaction_id: str) -> None:
            pass

        owner._fetch_answer = held_back

    async def asks(ctx: RunContext) -> None:
        answer = await ctx.ask("Proceed?", answer_within=2)
        await ctx.text(f"answer={answer}")

    with trio.fail_after(LIMIT):
        run = await start(owner, asks)
        paused = await until_status(reader, run.id, RunStatus.AWAITING_INPUT)
        assert paused.pending_interaction is not None
        await reader.answer(run.id, paused.pending_interaction.id, "yes", owner=None)
        handle = await settled(reader, run.id)
        assert handle.status is RunStatus.COMPLETED  # the client was told yes
        assert handle.output.text() == "answer=yes"


async def test_cancel_while_paused_makes_a_late_answer_not_pending(backends: Any) -> None:
    owner, reader = backends

    async def asks(ctx: RunContext) -> None:
        await ctx.ask("Proceed?")

    with trio.fail_after(LIMIT):
        run = await start(owner, asks)
        paused = await until_status(reader, run.id, RunStatus.AWAITING_INPUT)
        assert paused.pending_interaction is not None
        interaction_id = paused.pending_interaction.id
        await reader.cancel(run.id, owner=None)
        handle = await settled(reader, run.id)
        assert handle.status is RunStatus.CANCELLED
        assert handle.pending_interaction is None
        with pytest.raises(InteractionNotPending):
            await reader.answer(run.id, interaction_id, "late", owner=None)


async def test_cancel_before_create_by_client_run_id(backends: Any) -> None:
    owner, reader = backends
    with trio.fail_after(LIMIT):
        remembered = await reader.cancel("chat-1", owner="alice")
        assert remembered.result == "remembered" and remembered.run is None
        run = await start(owner, ticks(3), owner="alice", client_run_id="chat-1")
        handle = await settled(reader, "chat-1", owner="alice")
        assert handle.id == run.id
        assert handle.status is RunStatus.CANCELLED


async def test_client_run_id_conflicts_while_live_on_any_worker(backends: Any) -> None:
    owner, reader = backends
    with trio.fail_after(LIMIT):
        run = await start(owner, ticks(10_000, 0.01), owner="alice", client_run_id="chat-2")
        with pytest.raises(RunConflict):
            await start(reader, ticks(1), owner="alice", client_run_id="chat-2")
        await reader.cancel(run.id, owner="alice")
        await settled(reader, run.id, owner="alice")
        # Once it ended, the id may be used again, on any worker.
        second = await start(reader, ticks(1), owner="alice", client_run_id="chat-2")
        assert (await settled(owner, "chat-2", owner="alice")).id == second.id


async def test_another_owner_finds_nothing(backends: Any) -> None:
    owner, reader = backends
    with trio.fail_after(LIMIT):
        run = await start(owner, ticks(1), owner="alice")
        await settled(reader, run.id, owner="alice")
        for backend in (owner, reader):
            for other in ("bob", None):
                with pytest.raises(RunNotFound):
                    await backend.find(run.id, owner=other)
            with pytest.raises(RunNotFound):
                await backend.answer(run.id, "int_x", 1, owner="bob")


async def test_shutdown_of_the_owner_is_every_reader_s_terminal(backends: Any) -> None:
    owner, reader = backends
    seen: list[str] = []
    with trio.fail_after(LIMIT):
        run = await start(owner, ticks(10_000, 0.01, seen))
        handle = await until_status(reader, run.id, RunStatus.RUNNING)
        async with trio.open_nursery() as nursery:
            results: list[list[dict[str, Any]]] = []

            async def follow() -> None:
                results.append(await read_all(handle))

            nursery.start_soon(follow)
            await trio.sleep(0.05)
            await owner.engine.aclose()
        events = results[0]
        assert_contiguous_with_one_terminal(events)
        assert events[-1]["type"] == "run.cancelled"
        assert events[-1]["data"]["reason"] == "shutdown"
        assert seen == ["cancelled"]


def known_followers(run: RunHandle) -> int:
    """How many followers the owner's run counts, here and on other workers."""
    assert isinstance(run, Run)
    return run.connections + run._remote_connections


async def test_the_disconnect_policy_counts_followers_on_every_worker(backends: Any) -> None:
    owner, reader = backends
    with trio.fail_after(LIMIT):
        run = await start(owner, ticks(10_000, 0.01), on_disconnect=CANCEL)
        with Connection(run, NativeProjection()) as here:
            await here.next_chunk()
            with Connection(await reader.find(run.id, owner=None), NativeProjection()) as there:
                await there.next_chunk()
                await wait_until(lambda: known_followers(run) == 2)
                here.disconnected()
                here.__exit__(None, None, None)
                # The client here left, but one still follows elsewhere: the run goes on.
                assert run.status is RunStatus.RUNNING and known_followers(run) == 1
                there.disconnected()
        await run.wait_done()
        assert run.outcome == Cancelled(CancelReason.CLIENT_DISCONNECTED)


async def test_a_follower_on_any_worker_ends_the_grace_period(backends: Any) -> None:
    owner, reader = backends
    with trio.fail_after(LIMIT):
        run = await start(owner, ticks(10_000, 0.01), on_disconnect=DisconnectPolicy("grace", 60))
        assert isinstance(run, Run)
        with Connection(run, NativeProjection()) as here:
            await here.next_chunk()
            here.disconnected()
        assert run._grace_scope is not None  # the grace period runs
        with Connection(await reader.find(run.id, owner=None), NativeProjection()) as there:
            await there.next_chunk()
            await wait_until(lambda: run._grace_scope is None)  # a client came back
            there.disconnected()
        await wait_until(lambda: run._grace_scope is not None)  # and left again
        await reader.cancel(run.id, owner=None)
        await run.wait_done()


@pytest.mark.parametrize("seed", range(8))
async def test_racing_causes_end_in_one_terminal_everyone_agrees_on(
    backends: Any, seed: int
) -> None:
    """Completion, a cancel from the reader, a cancel on the owner and a failure race at
    random moments: one terminal, the same for the owner and for the reader."""
    owner, reader = backends
    rng = random.Random(seed)
    steps = rng.randint(0, 6)
    fail_at = rng.choice([None, rng.randint(0, 6)])

    async def racer(ctx: RunContext) -> None:
        for i in range(steps):
            if i == fail_at:
                raise RuntimeError("boom")
            await ctx.text(f"s{i}")
            await trio.sleep(rng.uniform(0, 0.005))

    with trio.fail_after(LIMIT):
        run = await start(owner, racer)
        async with trio.open_nursery() as nursery:

            async def cancel_later(backend: Backend, delay: float) -> None:
                await trio.sleep(delay)
                await backend.cancel(run.id, owner=None)

            nursery.start_soon(cancel_later, reader, rng.uniform(0, 0.02))
            nursery.start_soon(cancel_later, owner, rng.uniform(0, 0.02))
        await run.wait_done()
        here = await read_all(run)
        there = await read_all(await settled(reader, run.id))
        assert_contiguous_with_one_terminal(here)
        assert there == here
        assert (await reader.find(run.id, owner=None)).outcome == run.outcome
