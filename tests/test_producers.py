"""The built-in producers, run by the engine in-process."""

from __future__ import annotations

import gc
import json
import time

import pytest
import trio
import trio.testing
from pydantic import ValidationError

from app.producers import SyntheticInput, echo, synthetic
from engine import Completed, EngineConfig, ErrorCode, EventType, Failed, RunStatus, open_engine

from ._engine_helpers import wait_for


async def run_synthetic(config: EngineConfig | None = None, **params: object):  # type: ignore[no-untyped-def]
    async with open_engine(config) as engine:
        run = engine.start_run(synthetic.producer, input=SyntheticInput(**params).model_dump())  # type: ignore[arg-type]
        await run.wait_done()
    return run


def texts(run) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.data["text"] for e in run.log.all() if e.type is EventType.TEXT_DELTA]


async def test_synthetic_events_sizes_and_finish_reason() -> None:
    run = await run_synthetic(events=5, event_bytes=7, finish_reason="content_filter")
    assert texts(run) == ["x" * 7] * 5
    assert run.outcome is not None and run.outcome.finish_reason == "content_filter"  # type: ignore[union-attr]


async def test_synthetic_reasoning_and_tool_calls_come_before_the_text() -> None:
    run = await run_synthetic(events=2, event_bytes=3, reasoning_events=2, tool_calls=1)
    kinds = [e.type for e in run.log.all()][1:-2]  # between run.started and usage, terminal
    assert kinds == [
        EventType.REASONING_DELTA,
        EventType.REASONING_DELTA,
        EventType.TOOL_CALL_STARTED,
        EventType.TOOL_CALL_DELTA,
        EventType.TOOL_CALL_DELTA,
        EventType.TOOL_CALL_READY,
        EventType.TOOL_RESULT,
        EventType.TEXT_DELTA,
        EventType.TEXT_DELTA,
    ]
    events = run.log.all()
    deltas = "".join(e.data["delta"] for e in events if e.type is EventType.TOOL_CALL_DELTA)
    ready = next(e for e in events if e.type is EventType.TOOL_CALL_READY)
    assert json.loads(deltas) == ready.data["arguments"] == {"query": "item 1"}
    result = next(e for e in events if e.type is EventType.TOOL_RESULT)
    assert result.data["tool_call_id"] == ready.data["tool_call_id"]
    assert result.data["output"] == {"item": 1, "found": True}


async def test_synthetic_interval(autojump_clock: trio.testing.MockClock) -> None:
    run = await run_synthetic(events=4, interval_ms=250)
    assert run.terminal_at == pytest.approx(0.75, abs=0.001)


async def test_a_waiting_synthetic_run_keeps_no_validated_model(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An idle stream's producer waits between events for as long as the stream lasts: what
    it holds meanwhile is what every idle stream costs, and the model is not needed."""
    async with open_engine() as engine:
        run = engine.start_run(
            synthetic.producer, input={"events": 3, "interval_ms": 3_600_000, "stamp": True}
        )
        await wait_for(lambda: len(texts(run)) == 1)
        gc.collect()
        assert not [o for o in gc.get_objects() if isinstance(o, SyntheticInput)]
        await wait_for(lambda: len(texts(run)) == 2, limit=4000)  # it goes on with what it kept
        engine.cancel(run.id)


async def test_synthetic_fail_at_with_code() -> None:
    run = await run_synthetic(events=5, fail_at=3, fail_code="rate_limit_exceeded")
    assert len(texts(run)) == 2
    assert isinstance(run.outcome, Failed)
    assert run.outcome.error.code is ErrorCode.RATE_LIMIT_EXCEEDED


async def test_synthetic_stall_at(autojump_clock: trio.testing.MockClock) -> None:
    run = await run_synthetic(EngineConfig(stall_timeout=5), events=5, interval_ms=100, stall_at=3)
    assert len(texts(run)) == 2
    assert isinstance(run.outcome, Failed) and run.outcome.error.code is ErrorCode.STALLED


async def test_synthetic_ask_at(autojump_clock: trio.testing.MockClock) -> None:
    async with open_engine() as engine:
        run = engine.start_run(synthetic.producer, input={"events": 3, "ask_at": 2})
        await wait_for(lambda: run.status is RunStatus.AWAITING_INPUT)
        assert len(texts(run)) == 1
        assert run.pending_interaction is not None
        run.answer(run.pending_interaction.id, "sure")
        await run.wait_done()
    assert len(texts(run)) == 3 and run.outcome == Completed("stop", run.outcome.usage)  # type: ignore[union-attr]


async def test_synthetic_stamp_is_the_emit_time() -> None:
    before = time.time()
    run = await run_synthetic(events=3, event_bytes=40, stamp=True)
    for text in texts(run):
        stamp, _, pad = text.partition("|")
        assert before <= float(stamp) <= time.time()
        assert len(text) == 40 and set(pad) == {"x"}


def test_synthetic_rejects_bad_parameters() -> None:
    for bad in (
        {"events": -1},
        {"fail_code": "nope"},
        {"finish_reason": "done"},
        {"event_bytes": 0},
    ):
        with pytest.raises(ValidationError):
            SyntheticInput(**bad)  # type: ignore[arg-type]


async def test_echo_streams_the_last_user_message_word_by_word() -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ignored"},
        {"role": "user", "content": "the last  message"},
    ]
    async with open_engine() as engine:
        run = engine.start_run(echo.producer, input={"messages": messages})
        await run.wait_done()
    assert texts(run) == ["the ", "last  ", "message"]
