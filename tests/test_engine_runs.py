"""Runs: producers, errors, cancellation, interactions, deadlines, registry."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator

import pytest
import trio
import trio.lowlevel
import trio.testing

from engine import (
    MIN_CONNECTION_BUFFER,
    Cancelled,
    CancelReason,
    Completed,
    EngineConfig,
    EngineError,
    EngineObserver,
    ErrorCode,
    EventType,
    Failed,
    InteractionNotFound,
    InteractionNotPending,
    RunConflict,
    RunContext,
    RunNotFound,
    RunStatus,
    Usage,
    open_engine,
)

from ._engine_helpers import assert_one_terminal, forever, instant, read_all, wait_for


async def test_events_get_contiguous_seq_and_completed_carries_usage() -> None:
    async def producer(ctx: RunContext) -> str:
        await ctx.step_started()
        await ctx.reasoning("thinking")
        await ctx.text("Hello")
        call = await ctx.tool_call("lookup")
        await ctx.tool_call_delta(call, '{"q":')
        await ctx.tool_call_ready(call, "lookup", {"q": 1})
        await ctx.tool_result(call, {"answer": 42})
        await ctx.data("progress", {"pct": 100})
        await ctx.usage(3, 5)
        await ctx.step_finished()
        return "length"

    async with open_engine() as engine:
        run = engine.start_run(producer, input={"x": 1})
        assert run.status is RunStatus.QUEUED
        await run.wait_done()
    terminal = assert_one_terminal(run)
    assert [e.type for e in run.log.all()] == [
        EventType.RUN_STARTED,
        EventType.STEP_STARTED,
        EventType.REASONING_DELTA,
        EventType.TEXT_DELTA,
        EventType.TOOL_CALL_STARTED,
        EventType.TOOL_CALL_DELTA,
        EventType.TOOL_CALL_READY,
        EventType.TOOL_RESULT,
        EventType.DATA,
        EventType.USAGE,
        EventType.STEP_FINISHED,
        EventType.COMPLETED,
    ]
    assert run.outcome == Completed("length", Usage(3, 5))
    assert terminal.data["usage"] == {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8}
    assert run.ended_at is not None and run.started_at is not None


async def test_async_generator_producer_runs_through_a_safe_channel() -> None:
    cleaned = trio.Event()

    async def words(ctx: RunContext) -> AsyncIterator[str]:
        try:
            for word in ("a ", "b ", "c"):
                yield word
        finally:
            cleaned.set()

    async with open_engine() as engine:
        run = engine.start_run(words)
        await run.wait_done()
    assert [e.data["text"] for e in run.log.all() if e.type is EventType.TEXT_DELTA] == [
        "a ",
        "b ",
        "c",
    ]
    assert run.outcome == Completed()
    assert cleaned.is_set()


async def test_cancelling_an_async_generator_producer_runs_its_cleanup(
    autojump_clock: trio.testing.MockClock,
) -> None:
    saw_cancel: list[bool] = []

    async def forever(ctx: RunContext) -> AsyncIterator[str]:
        try:
            while True:
                yield "x"
                await trio.sleep(1)
        except BaseException as exc:
            saw_cancel.append(isinstance(exc, (trio.Cancelled, GeneratorExit)))
            raise

    async with open_engine() as engine:
        run = engine.start_run(forever)
        await trio.sleep(3.5)
        assert run.cancel()
        await run.wait_done()
    assert run.outcome == Cancelled(CancelReason.REQUESTED)
    assert saw_cancel == [True]


async def test_a_detached_run_starts_with_the_engines_run_context() -> None:
    """By default a run sees its starter's context variables, as any Trio task does; with
    ``run_context`` it sees that context's instead, and nothing of the starter's."""
    request: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")
    service: contextvars.ContextVar[str] = contextvars.ContextVar("service", default="none")

    async def producer(ctx: RunContext) -> None:
        await ctx.text(f"{request.get()} {service.get()}")

    async def started_in_a_request(run_context: contextvars.Context | None) -> str:
        async with open_engine(run_context=run_context) as engine:
            token = request.set("request")
            run = engine.start_run(producer)
            request.reset(token)
            await run.wait_done()
            return run.output.text()

    service.set("service")
    assert await started_in_a_request(None) == "request service"
    engine_context = contextvars.copy_context()
    service.set("changed later")
    assert await started_in_a_request(engine_context) == "none service"


async def test_engine_error_keeps_code_and_safe_message() -> None:
    async def producer(ctx: RunContext) -> None:
        await ctx.text("partial")
        raise EngineError(ErrorCode.RATE_LIMIT_EXCEEDED, "Too many requests, try later.")

    async with open_engine() as engine:
        run = engine.start_run(producer)
        await run.wait_done()
    assert_one_terminal(run)
    assert isinstance(run.outcome, Failed)
    assert run.outcome.error.code is ErrorCode.RATE_LIMIT_EXCEEDED
    assert run.outcome.error.message == "Too many requests, try later."


async def test_unexpected_exception_never_reaches_the_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def producer(ctx: RunContext) -> None:
        raise KeyError("db password=hunter2")

    async with open_engine() as engine:
        run = engine.start_run(producer)
        await run.wait_done()
    assert isinstance(run.outcome, Failed)
    error = run.outcome.error
    assert error.code is ErrorCode.SERVER_ERROR
    assert "hunter2" not in repr(run.log.all())
    # ... but the traceback is in the log, under the correlation id the client sees.
    records = [
        r for r in caplog.records if getattr(r, "correlation_id", None) == error.correlation_id
    ]
    assert records and records[0].exc_info is not None
    assert "hunter2" in str(records[0].exc_info[1])


async def test_engine_error_inside_a_producers_nursery_keeps_its_code() -> None:
    async def failing() -> None:
        raise EngineError(ErrorCode.UPSTREAM_ERROR, "The model provider failed.")

    async def producer(ctx: RunContext) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(failing)
            await trio.sleep_forever()

    async with open_engine() as engine:
        run = engine.start_run(producer)
        await run.wait_done()
    assert isinstance(run.outcome, Failed)
    assert run.outcome.error.code is ErrorCode.UPSTREAM_ERROR


async def test_unknown_finish_reason_is_a_server_error() -> None:
    async def producer(ctx: RunContext) -> str:
        return "banana"

    async with open_engine() as engine:
        run = engine.start_run(producer)
        await run.wait_done()
    assert isinstance(run.outcome, Failed) and run.outcome.error.code is ErrorCode.SERVER_ERROR


@pytest.mark.parametrize("k", range(14))
async def test_cancel_swept_across_every_checkpoint(k: int) -> None:
    """Cancel after the producer's k-th checkpoint, for every k: one terminal each time,
    and the producer's cleanup always runs."""
    cleanup: list[str] = []
    started: list[bool] = []
    checkpoints = 10

    async def producer(ctx: RunContext) -> None:
        started.append(True)
        try:
            for i in range(checkpoints):
                await ctx.text(str(i))
                await trio.lowlevel.checkpoint()  # a producer awaiting I/O between events
        finally:
            cleanup.append("ran")

    async with open_engine() as engine:
        run = engine.start_run(producer)
        # Cancel once the log holds k events (run.started, then one per producer step).
        while run.log.last_seq < k and not run.log.closed:
            await trio.lowlevel.checkpoint()
        seen = run.log.last_seq
        decided = run.cancel()
        await run.wait_done()
    assert_one_terminal(run)
    # Cancelled while still queued, the producer never starts; otherwise its cleanup ran.
    assert cleanup == (["ran"] if started else [])
    assert started or k == 0
    texts = [e for e in run.log.all() if e.type is EventType.TEXT_DELTA]
    if decided:
        assert run.outcome == Cancelled(CancelReason.REQUESTED)
        # Nothing the producer emitted after the cancel reached the log: the terminal
        # follows exactly the events that were there when the cancel was made (a run
        # cancelled while queued still logs its run.started).
        assert run.log.last_seq == max(seen, 1) + 1
        assert len(texts) == max(seen - 1, 0)
    else:
        assert run.outcome == Completed()
        assert len(texts) == checkpoints


@pytest.mark.parametrize("k", [2, 10, 33, 64, 100])
async def test_a_tight_loop_producer_stops_within_one_yield_of_a_cancel(k: int) -> None:
    """A producer that never awaits anything but emits: every emit is a cancellation point,
    and emits yield to the scheduler often enough for the cancel to be delivered."""

    async def tight(ctx: RunContext) -> None:
        for i in range(1000):
            await ctx.text(str(i))

    async with open_engine() as engine:
        run = engine.start_run(tight)
        while run.log.last_seq < k:
            await trio.lowlevel.checkpoint()
        seen = run.log.last_seq
        assert run.cancel()
        await run.wait_done()
    assert_one_terminal(run)
    assert run.outcome == Cancelled(CancelReason.REQUESTED)
    # The producer stopped at its next emit: nothing after the cancel reached the log.
    assert run.log.last_seq == seen + 1


async def test_cancel_is_idempotent_and_a_finished_run_stays_as_it_is() -> None:
    async def producer(ctx: RunContext) -> None:
        await ctx.text("done")

    async with open_engine() as engine:
        run = engine.start_run(producer)
        await run.wait_done()
        assert engine.cancel(run.id).result == "already_decided"
        assert not run.cancel()
        assert run.outcome == Completed()
        assert len(run.log.all()) == 3

        slow = engine.start_run(forever)
        assert engine.cancel(slow.id).result == "cancelled"
        assert engine.cancel(slow.id).result == "already_decided"
        await slow.wait_done()
        assert_one_terminal(slow)
        assert slow.cancel_requested_at is not None and slow.terminal_at is not None
        assert slow.terminal_at >= slow.cancel_requested_at


async def test_a_cancel_before_the_run_exists_is_remembered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    started: list[bool] = []

    async def producer(ctx: RunContext) -> None:
        started.append(True)

    config = EngineConfig(pending_cancel_ttl=10)
    async with open_engine(config) as engine:
        assert engine.cancel("my-run-1", owner="alice").result == "remembered"
        run = engine.start_run(producer, client_run_id="my-run-1", owner="alice")
        await run.wait_done()
        assert run.outcome == Cancelled(CancelReason.REQUESTED)
        assert started == []
        # Found by its client id, but only by its owner.
        assert engine.get("my-run-1", owner="alice") is run
        with pytest.raises(RunNotFound):
            engine.get("my-run-1", owner="mallory")
        with pytest.raises(RunNotFound):
            engine.get(run.id, owner="mallory")

        # Another owner's remembered cancel does not touch alice's next run; and an old
        # remembered cancel expires.
        engine.cancel("my-run-2", owner="mallory")
        engine.cancel("my-run-3", owner="alice")
        await trio.sleep(11)
        for client_id in ("my-run-2", "my-run-3"):
            other = engine.start_run(producer, client_run_id=client_id, owner="alice")
            await other.wait_done()
            assert other.outcome == Completed()


async def test_remembered_cancels_are_bounded_oldest_first() -> None:
    async with open_engine(EngineConfig(max_pending_cancels=3)) as engine:
        for i in range(5):
            assert engine.cancel(f"c{i}").result == "remembered"
        outcomes = {}
        for i in range(5):
            run = engine.start_run(instant, client_run_id=f"c{i}")
            await run.wait_done()
            outcomes[i] = run.outcome
    # The two oldest were dropped to make room: those runs start normally.
    assert [outcomes[i] == Completed() for i in range(5)] == [True, True, False, False, False]
    assert all(outcomes[i] == Cancelled(CancelReason.REQUESTED) for i in (2, 3, 4))


async def test_client_run_id_conflicts_only_while_live() -> None:
    async with open_engine() as engine:
        run = engine.start_run(forever, client_run_id="c1")
        with pytest.raises(RunConflict):
            engine.start_run(forever, client_run_id="c1")
        run.cancel()
        await run.wait_done()
        again = engine.start_run(instant, client_run_id="c1")
        await again.wait_done()
        assert engine.get("c1") is again


async def test_finished_runs_are_retained_then_forgotten(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_engine(EngineConfig(retention=60)) as engine:
        run = engine.start_run(lambda ctx: ctx.text("x"))
        await run.wait_done()
        await trio.sleep(59)
        assert engine.get(run.id) is run
        assert [e["type"] for e in await read_all(run)][-1] == "run.completed"
        await trio.sleep(2)
        with pytest.raises(RunNotFound):
            engine.get(run.id)


async def test_run_ids_are_unguessable() -> None:
    async with open_engine() as engine:
        ids = {engine.start_run(instant).id for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == len("run_") + 32 for i in ids)  # 128 random bits, hex


async def test_interaction_answer_resumes_the_producer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def producer(ctx: RunContext) -> None:
        answer = await ctx.ask("Proceed?")
        await ctx.text(f"you said {answer}")

    urls = lambda run_id, ia_id: f"/v1/runs/{run_id}/interactions/{ia_id}"  # noqa: E731
    async with open_engine(interaction_url=urls) as engine:
        run = engine.start_run(producer)
        await wait_for(lambda: run.status is RunStatus.AWAITING_INPUT)
        pending = run.pending_interaction
        assert pending is not None and pending.prompt == "Proceed?"
        required = run.log.all()[-1]
        assert required.type is EventType.INTERACTION_REQUIRED
        assert required.data["response_url"] == f"/v1/runs/{run.id}/interactions/{pending.id}"
        with pytest.raises(InteractionNotFound):
            run.answer("int_nope", "yes")
        run.answer(pending.id, "yes")
        assert run.status is RunStatus.RUNNING
        with pytest.raises(InteractionNotPending):
            run.answer(pending.id, "again")
        await run.wait_done()
    assert run.outcome == Completed()
    types = [e.type for e in run.log.all()]
    assert EventType.INTERACTION_RESOLVED in types
    assert run.log.all()[-2].data == {"text": "you said yes"}


async def test_cancel_while_paused_clears_the_interaction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cleanup = []

    async def producer(ctx: RunContext) -> None:
        try:
            await ctx.ask("Proceed?")
        except trio.Cancelled:
            cleanup.append("cancelled")
            raise

    async with open_engine() as engine:
        run = engine.start_run(producer)
        await wait_for(lambda: run.pending_interaction is not None)
        interaction = run.pending_interaction
        assert interaction is not None
        run.cancel()
        assert run.pending_interaction is None
        await run.wait_done()
        with pytest.raises(InteractionNotPending):
            run.answer(interaction.id, "too late")
    assert cleanup == ["cancelled"]
    assert run.outcome == Cancelled(CancelReason.REQUESTED)
    assert interaction.state == "cleared"


async def test_interaction_timeout_fails_the_run(autojump_clock: trio.testing.MockClock) -> None:
    async with open_engine(EngineConfig(interaction_timeout=30)) as engine:
        run = engine.start_run(lambda ctx: ctx.ask("?"))
        await trio.sleep(29)
        assert run.status is RunStatus.AWAITING_INPUT
        await run.wait_done()
        assert trio.current_time() == pytest.approx(30, abs=0.01)
    assert isinstance(run.outcome, Failed)
    assert run.outcome.error.code is ErrorCode.INTERACTION_TIMEOUT


async def test_an_answer_in_the_tick_of_the_interaction_deadline_agrees_with_the_outcome(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The deadline fires and an answer arrives in the same tick. Trio runs the two tasks
    in either order; whichever it is, the answer's fate and the run's outcome agree: an
    accepted answer (interaction.resolved is logged) is used, and a refused one means the
    run failed as interaction_timeout."""
    accepted_runs = 0
    for _ in range(30):
        got: list[str] = []
        asked_at: list[float] = []

        async def producer(
            ctx: RunContext, got: list[str] = got, at: list[float] = asked_at
        ) -> None:
            at.append(trio.current_time())
            got.append(await ctx.ask("?", answer_within=10))

        async with open_engine() as engine:
            run = engine.start_run(producer)
            await wait_for(lambda run=run: run.pending_interaction is not None)
            pending = run.pending_interaction
            assert pending is not None
            await trio.sleep_until(asked_at[0] + 10)  # the very instant of the deadline
            try:
                run.answer(pending.id, "yes")
                accepted = True
            except InteractionNotPending:
                accepted = False
            await run.wait_done()
        assert_one_terminal(run)
        if accepted:
            accepted_runs += 1
            assert got == ["yes"]
            assert run.outcome == Completed()
        else:
            assert isinstance(run.outcome, Failed)
            assert run.outcome.error.code is ErrorCode.INTERACTION_TIMEOUT
    assert accepted_runs > 0  # the racy order happened (each try is a coin flip)


async def test_interactive_mode_off_fails_with_interaction_not_supported() -> None:
    async with open_engine(EngineConfig(interactive=False)) as engine:
        run = engine.start_run(lambda ctx: ctx.ask("?"))
        await run.wait_done()
    assert isinstance(run.outcome, Failed)
    assert run.outcome.error.code is ErrorCode.INTERACTION_NOT_SUPPORTED
    assert EventType.INTERACTION_REQUIRED not in [e.type for e in run.log.all()]


async def test_waiting_for_a_human_is_not_a_stall(autojump_clock: trio.testing.MockClock) -> None:
    async def producer(ctx: RunContext) -> None:
        await ctx.ask("?")
        await trio.sleep(4)  # less than the stall timeout after the answer
        await ctx.text("ok")
        await trio.sleep_forever()

    config = EngineConfig(stall_timeout=5, interaction_timeout=1000)
    async with open_engine(config) as engine:
        run = engine.start_run(producer)
        await wait_for(lambda: run.pending_interaction is not None)
        await trio.sleep(100)  # 20 stall periods waiting for a human
        assert run.status is RunStatus.AWAITING_INPUT
        pending = run.pending_interaction
        assert pending is not None
        run.answer(pending.id, "go")
        answered_at = trio.current_time()
        await run.wait_done()
    assert isinstance(run.outcome, Failed) and run.outcome.error.code is ErrorCode.STALLED
    # Stalled 5 s after the last text event, which came 4 s after the answer.
    assert run.terminal_at == pytest.approx(answered_at + 9, abs=0.01)


async def test_keepalive_is_not_progress(autojump_clock: trio.testing.MockClock) -> None:
    config = EngineConfig(stall_timeout=10, keepalive_interval=1)
    async with open_engine(config) as engine:
        run = engine.start_run(forever)
        events = await read_all(run)
    assert events[-1]["data"]["error"]["code"] == "stalled"
    assert run.terminal_at == pytest.approx(10, abs=0.01)


async def test_run_deadline(autojump_clock: trio.testing.MockClock) -> None:
    async def chatty(ctx: RunContext) -> None:
        while True:
            await ctx.text(".")
            await trio.sleep(1)

    async with open_engine(EngineConfig(run_timeout=7.5, stall_timeout=3)) as engine:
        run = engine.start_run(chatty)
        await run.wait_done()
    assert isinstance(run.outcome, Failed) and run.outcome.error.code is ErrorCode.TIMEOUT
    assert run.terminal_at == pytest.approx(7.5, abs=0.01)


async def test_attached_run_cancelled_from_outside_ends_as_shutdown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_engine() as engine:
        with trio.CancelScope() as scope:
            async with engine.open_run(forever) as run:
                await wait_for(lambda: run.status is RunStatus.RUNNING)
                scope.cancel()
                await trio.sleep_forever()
        assert_one_terminal(run)
        assert run.outcome == Cancelled(CancelReason.SHUTDOWN)


async def test_attached_run_whose_cleanup_raises_after_an_outside_cancel_is_a_shutdown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancelled from outside, the producer's cleanup raises (or swallows the Cancelled and
    returns): the outside cancel came first, so the outcome is cancelled/shutdown."""
    for ending in ("raise", "swallow"):

        async def producer(ctx: RunContext, ending: str = ending) -> None:
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                if ending == "raise":
                    raise ValueError("cleanup broke") from None
                return

        async with open_engine() as engine:
            with trio.CancelScope() as scope:
                async with engine.open_run(producer) as run:
                    await wait_for(lambda: run.status is RunStatus.RUNNING)
                    scope.cancel()
                    await trio.sleep_forever()
            assert_one_terminal(run)
            assert run.outcome == Cancelled(CancelReason.SHUTDOWN), ending


async def test_a_broken_observer_hook_is_logged_and_ends_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(EngineObserver):
        def run_started(self, run: object) -> None:
            raise RuntimeError("exporter down")

        def run_finished(self, run: object) -> None:
            raise RuntimeError("exporter down")

        def connection_closed(self, run: object, reason: object) -> None:
            raise RuntimeError("exporter down")

    async def producer(ctx: RunContext) -> None:
        await ctx.text("hi")

    async with open_engine(observer=Broken()) as engine:
        run = engine.start_run(producer)
        events = await read_all(run)
        second = engine.start_run(producer)
        await second.wait_done()
    assert [e["type"] for e in events] == ["run.started", "text.delta", "run.completed"]
    assert run.outcome == Completed() and second.outcome == Completed()
    hooks = [r.args for r in caplog.records if r.getMessage().startswith("observer hook")]
    assert ("run_started",) in hooks and ("run_finished",) in hooks
    assert ("connection_closed",) in hooks


@pytest.mark.parametrize("buffer", [1, MIN_CONNECTION_BUFFER - 1])
def test_a_connection_buffer_smaller_than_one_producer_burst_is_refused(buffer: int) -> None:
    with pytest.raises(ValueError, match="connection_buffer"):
        EngineConfig(connection_buffer=buffer)


async def test_an_error_in_the_engine_block_propagates_unwrapped() -> None:
    with pytest.raises(KeyError):
        async with open_engine() as engine:
            run = engine.start_run(forever)
            raise KeyError("mine")
    assert run.outcome == Cancelled(CancelReason.SHUTDOWN)


async def test_an_error_in_the_attached_run_block_ends_the_run_and_propagates_unwrapped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_engine() as engine:
        with pytest.raises(KeyError):
            async with engine.open_run(forever) as run:
                await wait_for(lambda: run.status is RunStatus.RUNNING)
                raise KeyError("mine")
        assert_one_terminal(run)
        assert run.outcome == Cancelled(CancelReason.SHUTDOWN)


async def test_wait_for_runs_only_on_the_virtual_clock() -> None:
    # Polling on the real clock is what made tests depend on the machine's load.
    with pytest.raises(RuntimeError, match="autojump_clock"):
        await wait_for(lambda: True)
