"""Connections: resume from any cursor, keepalive, gaps, slow consumers, disconnect policies,
shutdown delivery."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from engine import (
    MIN_CONNECTION_BUFFER,
    Cancelled,
    CancelReason,
    CloseReason,
    Completed,
    Connection,
    DisconnectPolicy,
    EngineConfig,
    EngineObserver,
    Run,
    RunContext,
    RunStatus,
    open_engine,
)
from engine.protocols.native import NativeProjection

from ._engine_helpers import assert_one_terminal, read_all, ticker, wait_for
from ._sse import native_events, parse_sse


async def test_resume_from_every_cursor_of_a_finished_run() -> None:
    async with open_engine() as engine:
        run = engine.start_run(ticker(8, 0))
        await run.wait_done()
        full = [e.as_dict() for e in run.log.all()]
        for cursor in range(len(full) + 1):
            assert await read_all(run, cursor) == full[cursor:]


async def test_resume_from_every_cursor_of_a_live_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_engine() as engine:
        run = engine.start_run(ticker(8))
        await wait_for(lambda: run.log.last_seq >= 4)
        results: dict[int, list[dict[str, object]]] = {}

        async def follow(cursor: int) -> None:
            results[cursor] = await read_all(run, cursor)

        async with trio.open_nursery() as nursery:
            for cursor in range(run.log.last_seq + 1):
                nursery.start_soon(follow, cursor)
        full = [e.as_dict() for e in run.log.all()]
        for cursor, events in results.items():
            assert events == full[cursor:], cursor


async def test_keepalive_after_an_interval_without_frames(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_engine(EngineConfig(keepalive_interval=5)) as engine:
        run = engine.start_run(ticker(2, 12))
        times: list[tuple[float, bytes]] = []
        with Connection(run, NativeProjection()) as conn:
            while (chunk := await conn.next_chunk()) is not None:
                times.append((trio.current_time(), chunk))
    keepalives = [t for t, chunk in times if chunk == b": keepalive\n\n"]
    # t0 at 0; keepalives at 5 and 10; t1 at 12; keepalives at 17 and 22; done at 24.
    assert keepalives == pytest.approx([5, 10, 17, 22], abs=0.01)


async def test_a_cursor_older_than_the_log_gets_an_explicit_gap() -> None:
    config = EngineConfig(max_log_events=150, connection_buffer=128)
    async with open_engine(config) as engine:
        run = engine.start_run(ticker(200, 0))
        await run.wait_done()
        chunks = []
        with Connection(run, NativeProjection(), cursor=0) as conn:
            while (chunk := await conn.next_chunk()) is not None:
                chunks.append(chunk)
    frames = parse_sse(b"".join(chunks))
    assert frames[0].event == "gap"
    assert frames[0].json() == {"from": 1, "to": run.log.first_seq - 1}
    assert [int(f.id) for f in frames[1:] if f.id] == list(range(run.log.first_seq, 203))


async def test_a_slow_consumer_never_delays_the_producer_or_other_connections(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = EngineConfig(connection_buffer=128, keepalive_interval=1000)
    async with open_engine(config) as engine:
        run = engine.start_run(ticker(300, 1))
        slow_frames: list[bytes] = []

        async def slow_reader() -> None:
            with Connection(run, NativeProjection()) as conn:
                while (chunk := await conn.next_chunk()) is not None:
                    slow_frames.append(chunk)
                    await trio.sleep(150)  # a write that takes 150 s: the socket is stuck

        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow_reader)
            fast = await read_all(run)
        # The producer emitted 300 events a second apart, as if nobody were slow.
        assert run.terminal_at == pytest.approx(300, abs=0.01)
        assert fast == [e.as_dict() for e in run.log.all()]
    last = parse_sse(slow_frames[-1])[-1]
    assert last.event == "slow_consumer"
    resume_after = last.json()["resume_after"]
    # Resuming from the cursor it was given loses nothing.
    resumed = await read_all(run, resume_after)
    assert resumed[0]["seq"] == resume_after + 1
    assert resumed[-1]["type"] == "run.completed"


async def test_a_reader_that_keeps_up_is_never_a_slow_consumer() -> None:
    """With the smallest buffer allowed, a reader whose every write costs a scheduling round,
    following a producer that emits in a tight loop, receives everything."""

    async def tight(ctx: RunContext) -> None:
        for i in range(2000):
            await ctx.text(str(i))

    async with open_engine(EngineConfig(connection_buffer=MIN_CONNECTION_BUFFER)) as engine:
        run = engine.start_run(tight)
        chunks = []
        with Connection(run, NativeProjection()) as conn:
            while (chunk := await conn.next_chunk()) is not None:
                chunks.append(chunk)
                await trio.lowlevel.checkpoint()  # the write
        events = native_events(b"".join(chunks))
    assert events == [e.as_dict() for e in run.log.all()]
    assert events[-1]["type"] == "run.completed"


async def test_disconnect_with_cancel_policy_cancels_once_the_last_client_leaves() -> None:
    async with open_engine() as engine:
        run = engine.start_run(ticker(100), on_disconnect=DisconnectPolicy("cancel"))
        first = Connection(run, NativeProjection())
        second = Connection(run, NativeProjection())
        with first:
            with second:
                second.disconnected()
            assert run.cancel_requested_at is None  # one client is still there
            assert not run.status.terminal
            first.disconnected()
        await run.wait_done()
    assert run.outcome == Cancelled(CancelReason.CLIENT_DISCONNECTED)


async def test_disconnect_with_continue_policy_keeps_the_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_engine() as engine:
        run = engine.start_run(ticker(5), on_disconnect=DisconnectPolicy("continue"))
        with Connection(run, NativeProjection()) as conn:
            await conn.next_chunk()
            conn.disconnected()
        await run.wait_done()
    assert run.outcome == Completed()


async def test_grace_policy_waits_for_a_resume(autojump_clock: trio.testing.MockClock) -> None:
    policy = DisconnectPolicy("grace", grace=30)
    async with open_engine() as engine:
        # Resumed within the grace period: the run goes on.
        kept = engine.start_run(ticker(100), on_disconnect=policy)
        with Connection(kept, NativeProjection()) as conn:
            await conn.next_chunk()
            conn.disconnected()
        await trio.sleep(29)
        with Connection(kept, NativeProjection()) as again:
            await again.next_chunk()
            assert not kept.status.terminal  # the resume came in time
            again.disconnected()
        await trio.sleep(100)
        # ... no resume: cancelled 30 s after the disconnect.
        assert kept.status is RunStatus.CANCELLED
        assert kept.terminal_at == pytest.approx(29 + 30, abs=0.01)
        assert kept.outcome == Cancelled(CancelReason.CLIENT_DISCONNECTED)


async def test_shutdown_delivers_the_terminal_to_every_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    received: dict[int, list[dict[str, object]]] = {}
    async with open_engine(EngineConfig(shutdown_grace=5)) as engine:
        runs = [engine.start_run(ticker(1000)) for _ in range(3)]

        async def follow(i: int) -> None:
            received[i] = await read_all(runs[i % 3])

        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(follow, i)
            await trio.sleep(3)
            await engine.aclose()
            assert trio.current_time() < 3 + 5
    for run in runs:
        assert_one_terminal(run)
        assert run.outcome == Cancelled(CancelReason.SHUTDOWN)
    for events in received.values():
        assert events[-1]["type"] == "run.cancelled"
        assert events[-1]["data"] == {"reason": "shutdown"}


async def test_shutdown_grace_bounds_a_producer_that_will_not_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def stubborn(ctx: RunContext) -> None:
        with trio.CancelScope(shield=True):
            await trio.sleep(1000)

    async with open_engine(EngineConfig(shutdown_grace=5)) as engine:
        engine.start_run(stubborn)
        await trio.sleep(1)
        await engine.aclose()
        assert trio.current_time() == pytest.approx(6, abs=0.01)


async def test_a_projection_that_cannot_go_on_ends_the_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The Responses projection cannot number events across a gap: it says so and is done,
    and the connection ends instead of idling on keepalives until the run ends."""
    from engine.protocols import ResponsesProjection

    config = EngineConfig(max_log_events=150, connection_buffer=128, keepalive_interval=1)
    async with open_engine(config) as engine:
        run = engine.start_run(ticker(1000, 0.01))
        await wait_for(lambda: run.log.last_seq > 160)
        projection = ResponsesProjection(response_id="resp_x", model="m", created_at=0)
        chunks = []
        with Connection(run, projection, cursor=0) as conn:
            while (chunk := await conn.next_chunk()) is not None:
                chunks.append(chunk)
        assert not run.status.terminal  # ended long before the run
        assert projection.done
        assert b"error" in b"".join(chunks)
        run.cancel()


async def test_the_observer_hears_every_step(autojump_clock: trio.testing.MockClock) -> None:
    heard: list[tuple[str, object]] = []

    class Recorder(EngineObserver):
        def run_started(self, run: Run) -> None:
            heard.append(("run_started", run.status))

        def connection_opened(self, run: Run) -> None:
            heard.append(("connection_opened", run.connections))

        def keepalive_sent(self, run: Run) -> None:
            heard.append(("keepalive_sent", trio.current_time()))

        def connection_closed(self, run: Run, reason: CloseReason) -> None:
            heard.append(("connection_closed", reason))

        def run_finished(self, run: Run) -> None:
            assert run.cancel_requested_at is not None and run.terminal_at is not None
            heard.append(("run_finished", run.terminal_at - run.cancel_requested_at))

    async with open_engine(EngineConfig(keepalive_interval=5), observer=Recorder()) as engine:
        run = engine.start_run(ticker(100, 100))
        await wait_for(lambda: run.status is RunStatus.RUNNING)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all, run)
            await trio.sleep(12)
            run.cancel()
    assert heard == [
        ("run_started", RunStatus.RUNNING),
        ("connection_opened", 1),
        ("keepalive_sent", pytest.approx(5, abs=0.01)),
        ("keepalive_sent", pytest.approx(10, abs=0.01)),
        ("run_finished", 0.0),
        ("connection_closed", "finished"),
    ]
