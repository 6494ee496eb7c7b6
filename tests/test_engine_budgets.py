"""Bytes, not only counts: whole answers survive a trimmed log, and every byte budget (per
event, per retained log, per answer, per connection chunk) holds."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given, settings

from app.producers.synthetic import run_synthetic
from engine import (
    Connection,
    EngineConfig,
    ErrorCode,
    Event,
    EventType,
    Failed,
    RunContext,
    RunOutput,
    RunStatus,
    open_engine,
)
from engine.protocols import (
    NativeProjection,
    ResponsesProjection,
    chat_completion_object,
    response_object,
    responses_event_count,
)

from ._engine_helpers import assert_one_terminal, read_all
from ._eventlog import logs

KIB = 1024


async def test_whole_answers_come_from_the_output_not_the_trimmed_log() -> None:
    # The reproduction: 200 one-character deltas, a log that keeps 129 events.
    async def producer(ctx: RunContext) -> None:
        await ctx.reasoning("hmm")
        for i in range(200):
            await ctx.text(str(i % 10))
        call = await ctx.tool_call("lookup")
        await ctx.tool_call_delta(call, '{"q":')
        await ctx.tool_call_delta(call, "1}")
        await ctx.tool_call_ready(call, "lookup", {"ignored": True})
        await ctx.usage(7, 200)

    config = EngineConfig(max_log_events=129, connection_buffer=128)
    async with open_engine(config) as engine:
        run = engine.start_run(producer)
        await run.wait_done()
    assert run.log.first_seq > 1  # the head is gone from the log
    expected = "".join(str(i % 10) for i in range(200))
    chat = chat_completion_object(run.output, completion_id="c", model="m", created=1)
    message = chat["choices"][0]["message"]
    assert message["content"] == expected
    assert message["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"q":1}'}
    assert chat["usage"]["completion_tokens"] == 200
    response = response_object(run.output, response_id="resp_1", model="m", created_at=1)
    assert response["status"] == "completed"
    assert [item["type"] for item in response["output"]] == [
        "reasoning",
        "message",
        "function_call",
    ]
    assert response["output"][1]["content"][0]["text"] == expected


@settings(max_examples=200, deadline=None)
@given(logs())
def test_the_responses_event_count_needs_no_replay(log: list[Event]) -> None:
    projection = ResponsesProjection(response_id="resp_1", model="m", created_at=1)
    projection.events(log)
    assert responses_event_count(RunOutput.from_events(log)) == projection.numbered


async def test_an_event_over_the_limit_fails_the_run_and_is_not_logged() -> None:
    cleaned_up = []

    async def producer(ctx: RunContext) -> None:
        await ctx.text("small")
        try:
            await ctx.text("x" * (4 * KIB + 1))
        finally:
            cleaned_up.append(True)
        await ctx.text("never")

    async with open_engine(EngineConfig(max_event_bytes=4 * KIB)) as engine:
        run = engine.start_run(producer)
        await run.wait_done()
    terminal = assert_one_terminal(run)
    assert isinstance(run.outcome, Failed)
    assert run.outcome.error.code is ErrorCode.EVENT_TOO_LARGE
    assert cleaned_up == [True]  # the producer saw Cancelled and unwound
    assert [e.type for e in run.log.all()] == [
        EventType.RUN_STARTED,
        EventType.TEXT_DELTA,
        terminal.type,
    ]


async def test_non_ascii_text_is_counted_at_four_bytes_a_character() -> None:
    async def producer(ctx: RunContext) -> None:
        await ctx.text("é" * (KIB + 1))  # 1025 characters, up to 4100 bytes in UTF-8

    async with open_engine(EngineConfig(max_event_bytes=4 * KIB)) as engine:
        run = engine.start_run(producer)
        await run.wait_done()
    assert isinstance(run.outcome, Failed)
    assert run.outcome.error.code is ErrorCode.EVENT_TOO_LARGE


async def test_output_over_the_budget_fails_the_run_so_a_completed_answer_is_whole() -> None:
    async def producer(ctx: RunContext) -> None:
        for _ in range(100):
            await ctx.text("y" * KIB)

    config = EngineConfig(max_output_bytes=10 * KIB)
    async with open_engine(config) as engine:
        run = engine.start_run(producer)
        await run.wait_done()
    assert isinstance(run.outcome, Failed)
    assert run.outcome.error.code is ErrorCode.OUTPUT_TOO_LARGE
    assert run.output.bytes <= config.max_output_bytes
    assert len(run.output.text()) == 10 * KIB  # what fitted, and not one delta more
    with pytest.raises(ValueError, match="completed run"):
        chat_completion_object(run.output, completion_id="c", model="m", created=1)
    response = response_object(run.output, response_id="resp_1", model="m", created_at=1)
    assert response["status"] == "failed"
    assert response["error"]["code"] == "server_error"


async def test_the_log_is_trimmed_by_bytes_and_a_late_reader_gets_a_gap() -> None:
    config = EngineConfig(
        max_event_bytes=16 * KIB, max_log_bytes=64 * KIB, max_output_bytes=4096 * KIB
    )
    seen: list[tuple[int, int]] = []

    async def producer(ctx: RunContext) -> None:
        for i in range(200):
            await ctx.text(str(i % 10) * (10 * KIB))
            # The bound must hold after every append, not only at the end.
            seen.append((run.log.retained_bytes, run.log.held_bytes))

    async with open_engine(config) as engine:
        run = engine.start_run(producer)
        await run.wait_done()
    assert max(retained for retained, _ in seen) <= config.max_log_bytes
    assert max(held for _, held in seen) <= config.max_log_bytes * 5 // 4 + 10 * KIB
    assert run.status is RunStatus.COMPLETED
    assert run.log.retained() <= 7  # six 10 KiB deltas and the terminal
    assert run.output.bytes == 200 * 10 * KIB  # the answer is whole all the same
    raw = b""
    with trio.fail_after(5), Connection(run, NativeProjection()) as connection:
        while (chunk := await connection.next_chunk()) is not None:
            raw += chunk
    assert raw.startswith(f'event: gap\ndata: {{"from":1,"to":{run.log.first_seq - 1}}}'.encode())
    assert b"event: run.completed" in raw


async def test_a_connection_chunk_holds_at_most_one_chunk_budget() -> None:
    config = EngineConfig(max_chunk_bytes=256 * KIB, max_log_bytes=64 * 1024 * KIB)

    async def producer(ctx: RunContext) -> None:
        for _ in range(100):
            await ctx.text("z" * (100 * KIB))

    async with open_engine(config) as engine:
        run = engine.start_run(producer)
        await run.wait_done()
        sizes = []
        with trio.fail_after(5), Connection(run, NativeProjection()) as connection:
            while (chunk := await connection.next_chunk()) is not None:
                sizes.append(len(chunk))
    # Two 100 KiB events fit in 256 KiB, a third does not; the framing of a chunk (ids,
    # types, JSON, and run.started with the first) adds well under 1 KiB.
    assert len(sizes) >= 50
    assert max(sizes) <= 2 * 100 * KIB + KIB


async def test_a_stamped_synthetic_run_retains_no_more_than_a_plain_one() -> None:
    # Stamped deltas are distinct strings (plain ones share one), so counting events alone
    # let a stamped run hold far more memory; the byte budget counts both alike.
    config = EngineConfig(
        max_event_bytes=64 * KIB, max_log_bytes=1024 * KIB, max_output_bytes=8 * 1024 * KIB
    )
    retained = []
    async with open_engine(config) as engine:
        for stamp in (False, True):
            params = {"events": 100, "event_bytes": 64 * KIB, "stamp": stamp}
            run = engine.start_run(run_synthetic, input=params)
            await run.wait_done()
            assert run.status is RunStatus.COMPLETED
            assert run.log.retained_bytes <= config.max_log_bytes
            retained.append((run.log.retained(), run.log.retained_bytes))
            assert await read_all(run, cursor=run.log.first_seq - 1)
    assert retained[0] == retained[1]


def test_budgets_are_validated() -> None:
    with pytest.raises(ValueError, match="max_event_bytes must not exceed max_log_bytes"):
        EngineConfig(max_event_bytes=2 * KIB, max_log_bytes=KIB)
    with pytest.raises(ValueError, match="max_chunk_bytes must be >= 1024"):
        EngineConfig(max_chunk_bytes=10)


async def test_a_lagging_connection_drains_one_chunk_then_a_gap_and_the_terminal() -> None:
    config = EngineConfig(max_chunk_bytes=256 * KIB, max_log_bytes=64 * 1024 * KIB)

    async def producer(ctx: RunContext) -> None:
        for _ in range(100):
            await ctx.text("z" * (100 * KIB))

    async with open_engine(config) as engine:
        run = engine.start_run(producer)
        with Connection(run, NativeProjection()) as connection:
            with trio.fail_after(5):
                raw = await connection.drain()
    assert len(raw) <= 3 * 100 * KIB  # one chunk's worth, not the 10 MB backlog
    frames = raw.split(b"\n\n")
    assert b"event: gap" in raw
    assert frames[-2].startswith(b"id: 102\nevent: run.completed")
    assert connection.finished
