"""Any text a producer emits is framed by every projection as valid UTF-8 whose JSON parses.

A Python ``str`` can hold lone surrogates, which no UTF-8 encoder takes; they are replaced
by U+FFFD where JSON is written (``engine.protocols._sse.dumps``), the one place text
leaving the engine is made safe.
"""

from __future__ import annotations

import json
from typing import Any

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Event, RunContext, RunOutput, open_engine
from engine.protocols import (
    ChatCompletionsProjection,
    NativeProjection,
    Projection,
    ResponsesProjection,
    UIMessageStreamProjection,
    chat_completion_object,
    response_object,
)
from engine.protocols._sse import dumps

from ._engine_helpers import read_all
from ._eventlog import logs

#: Any code point, lone surrogates included (hypothesis leaves them out by default).
ANY_TEXT = st.text(
    st.one_of(st.characters(codec=None, exclude_categories=()), st.characters(categories=["Cs"])),
    max_size=6,
)


def projections() -> list[Projection]:
    return [
        NativeProjection(),
        ChatCompletionsProjection(
            completion_id="chatcmpl-1", model="m", created=1, include_usage=True
        ),
        ResponsesProjection(response_id="resp_1", model="m", created_at=1),
        UIMessageStreamProjection(message_id="msg_1"),
    ]


def check_frames(raw: bytes) -> None:
    """Valid UTF-8; every data line (and every comment carrying JSON) parses as JSON."""
    text = raw.decode("utf-8")  # strict: raises on anything that is not UTF-8
    for line in text.split("\n"):
        if line.startswith("data: ") and line != "data: [DONE]":
            json.loads(line[len("data: ") :])
        elif line.startswith(": interaction_required "):
            json.loads(line[len(": interaction_required ") :])


@settings(max_examples=300, deadline=None)
@given(logs(strings=ANY_TEXT))
def test_every_projection_frames_any_text(log: list[Event]) -> None:
    for projection in projections():
        check_frames(projection.events(log))
        check_frames(projection.gap(2, 3) + projection.slow_consumer(1) + projection.keepalive())
    output = RunOutput.from_events(log)
    snapshot = dumps(response_object(output, response_id="resp_1", model="m", created_at=1))
    json.loads(snapshot.encode("utf-8"))
    if log[-1].type.value == "run.completed":
        body = chat_completion_object(output, completion_id="c", model="m", created=1)
        json.loads(dumps(body).encode("utf-8"))


def test_a_lone_surrogate_becomes_the_replacement_character() -> None:
    assert dumps({"t": "a\ud800b\udfff"}).encode() == '{"t":"a\ufffdb\ufffd"}'.encode()
    assert dumps({"t": "plain é 😀"}) == '{"t":"plain é 😀"}'


async def test_a_run_whose_producer_emits_a_lone_surrogate_streams_to_its_terminal() -> None:
    async def producer(ctx: RunContext) -> None:
        await ctx.text("before ")
        await ctx.text("\ud800 x")
        await ctx.data("echo", {"answer": "\udc00"})
        await ctx.text(" after")

    async with open_engine() as engine:
        run = engine.start_run(producer)
        await run.wait_done()
        with trio.fail_after(5):
            events: list[dict[str, Any]] = await read_all(run)
    assert [e["type"] for e in events][-1] == "run.completed"
    texts = [e["data"]["text"] for e in events if e["type"] == "text.delta"]
    assert texts == ["before ", "\ufffd x", " after"]
    for projection in projections():
        check_frames(projection.events(run.log.all()))
