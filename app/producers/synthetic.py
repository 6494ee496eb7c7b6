"""``synthetic``: a configurable producer for tests, demos and benchmarks.

It emits ``events`` text deltas of ``event_bytes`` characters each, sleeping
``interval_ms`` between two of them (none after the last). Counting events from 1, it
fails at ``fail_at`` with ``fail_code``, asks a human at ``ask_at`` (before emitting that
event), and stops making progress at ``stall_at``. With ``stamp``, each text begins with
the wall-clock emit time (``time.time()``, 6 decimals) and ``|``, so a client in another
process can measure delivery latency.

Its whole output, ``events`` x ``event_bytes``, may not exceed the service's output budget
(``SCOPESTREAM_MAX_OUTPUT_BYTES``): asking for more is a 400 naming ``events``, rather than a
run that fails with ``output_too_large`` once it gets there.

Before its text, it can think aloud (``reasoning_events`` reasoning deltas) and call a tool
``tool_calls`` times (arguments streamed in two deltas, then a result), so a client can show
every kind of part a real agent sends.
"""

from __future__ import annotations

import time
from typing import Annotated

import trio
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationInfo, field_validator

from engine import EngineError, ErrorCode, FinishReason, RunContext

from ._registry import ProducerSpec

__all__ = ["SyntheticInput", "synthetic"]


class SyntheticInput(BaseModel):
    # A misspelt parameter is a 400, not ignored; a number sent as a string or a boolean
    # is a 400, not converted (strict).
    model_config = ConfigDict(extra="forbid", strict=True)

    # event_bytes first: the check on events reads it.
    event_bytes: int = Field(16, ge=1, le=1_048_576)
    events: int = Field(10, ge=0, le=10_000_000)
    interval_ms: float = Field(0.0, ge=0, le=3_600_000)
    fail_at: int | None = Field(None, ge=1)
    # Not strict: strict would take only an ErrorCode object, never its JSON string.
    fail_code: Annotated[ErrorCode, Strict(False)] = ErrorCode.SERVER_ERROR
    ask_at: int | None = Field(None, ge=1)
    finish_reason: FinishReason = "stop"
    stall_at: int | None = Field(None, ge=1)
    stamp: bool = False
    reasoning_events: int = Field(0, ge=0, le=1_000)
    tool_calls: int = Field(0, ge=0, le=100)

    @field_validator("events")
    @classmethod
    def _within_output_budget(cls, events: int, info: ValidationInfo) -> int:
        budget = (info.context or {}).get("max_output_bytes")
        event_bytes = info.data.get("event_bytes")
        if budget is not None and event_bytes is not None and events * event_bytes > budget:
            raise ValueError(
                f"events x event_bytes = {events * event_bytes} exceeds the output budget "
                f"of {budget} bytes (at most {budget // event_bytes} events of this size)"
            )
        return events


async def run_synthetic(ctx: RunContext) -> FinishReason:
    p = SyntheticInput.model_validate(ctx.input)
    for i in range(1, p.reasoning_events + 1):
        await ctx.reasoning(f"Thinking, step {i}. ")
    for i in range(1, p.tool_calls + 1):
        call_id = await ctx.tool_call("lookup")
        await ctx.tool_call_delta(call_id, '{"query": ')
        await ctx.tool_call_delta(call_id, f'"item {i}"}}')
        await ctx.tool_call_ready(call_id, "lookup", {"query": f"item {i}"})
        await ctx.tool_result(call_id, {"item": i, "found": True})
    # The text loop may wait for hours (an idle benchmark stream spends its whole life in
    # this frame): it keeps the few values it reads, not the validated model (~1 KiB).
    events, event_bytes, interval = p.events, p.event_bytes, p.interval_ms / 1000
    fail_at, fail_code, ask_at, stall_at, stamp = (
        p.fail_at,
        p.fail_code,
        p.ask_at,
        p.stall_at,
        p.stamp,
    )
    finish_reason = p.finish_reason
    del p
    filler = "x" * event_bytes
    for i in range(1, events + 1):
        if i > 1 and interval:
            await trio.sleep(interval)
        if i == fail_at:
            raise EngineError(fail_code, f"Synthetic failure at event {i}.")
        if i == stall_at:
            await trio.sleep_forever()
        if i == ask_at:
            answer = await ctx.ask(f"Synthetic question at event {i}: continue?")
            await ctx.data("answer", {"response": answer})
        if stamp:
            head = f"{time.time():.6f}|"
            await ctx.text(head + filler[len(head) :])
        else:
            await ctx.text(filler)
    await ctx.usage(events, events * event_bytes)
    return finish_reason


synthetic = ProducerSpec(
    "synthetic", run_synthetic, SyntheticInput, "Configurable events, failures, questions, stalls."
)
