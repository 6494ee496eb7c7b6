"""The AI SDK UI message stream projection: chunk shapes, a valid sequence, the version-safe
subset. The real client libraries read the same output in test_proto_ai_sdk_node."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import CancelReason, ErrorCode, Event, EventType
from engine.protocols import UIMessageStreamProjection

from ._eventlog import (
    cancelled,
    completed,
    failed,
    interaction,
    logs,
    make_log,
    reasoning,
    text,
    tool_call,
)
from ._sse import parse_sse

# Keys every strict release (5.0.0 … 5.0.216, 6.0.0 … 6.0.230, 7.0.0 … 7.0.31) accepts, for
# the chunk types this projection sends. Anything else could make a strict client throw.
SAFE_KEYS: dict[str, set[str]] = {
    "start": {"type", "messageId"},
    "start-step": {"type"},
    "finish-step": {"type"},
    "text-start": {"type", "id"},
    "text-delta": {"type", "id", "delta"},
    "text-end": {"type", "id"},
    "reasoning-start": {"type", "id"},
    "reasoning-delta": {"type", "id", "delta"},
    "reasoning-end": {"type", "id"},
    "tool-input-start": {"type", "toolCallId", "toolName"},
    "tool-input-delta": {"type", "toolCallId", "inputTextDelta"},
    "tool-input-available": {"type", "toolCallId", "toolName", "input"},
    "tool-output-available": {"type", "toolCallId", "output"},
    "finish": {"type"},
    "abort": {"type"},
    "error": {"type", "errorText"},
}
ENDINGS = {"finish", "error", "abort"}


def project(log: Sequence[Event], *, one_by_one: bool = True) -> bytes:
    projection = UIMessageStreamProjection(message_id="msg_1")
    if one_by_one:
        return b"".join(projection.events([event]) for event in log)
    return projection.events(log)


def chunks(raw: bytes) -> list[Any]:
    out: list[Any] = []
    for frame in parse_sse(raw):
        if frame.comment:
            continue
        assert frame.event is None and frame.id is None  # data lines only
        out.append(frame.data if frame.data == "[DONE]" else frame.json())
    return out


def types(raw: bytes) -> list[str]:
    return [c if isinstance(c, str) else c["type"] for c in chunks(raw)]


def check_valid(stream: list[Any], *, terminal: bool) -> None:
    """A model of what the client requires (processUIMessageStream), plus our own rules:
    one text/reasoning part open at a time, steps balanced, one ending, [DONE] last."""
    assert stream[0] == {"type": "start", "messageId": "msg_1"}
    open_part: tuple[str, str] | None = None
    step_open = False
    tools: set[str] = set()
    seen_ids: set[str] = set()
    for chunk in stream:
        if isinstance(chunk, dict):
            kind = chunk["type"]
            allowed = {"type", "id", "data"} if kind.startswith("data-") else SAFE_KEYS[kind]
            assert set(chunk) <= allowed, chunk
    body = stream[:-2] if terminal else stream
    for chunk in body[1:]:
        assert isinstance(chunk, dict), chunk
        kind = chunk["type"]
        if kind == "start-step":
            assert not step_open
            step_open = True
            continue
        if kind == "finish-step":
            assert step_open and open_part is None
            step_open = False
            continue
        if kind == "error":
            assert open_part is None
            continue  # not a part: may come between steps (a gap, a slow consumer)
        assert step_open, chunk  # every part lies inside a step
        if kind in ("text-start", "reasoning-start"):
            assert open_part is None and chunk["id"] not in seen_ids
            open_part = (kind.split("-")[0], chunk["id"])
            seen_ids.add(chunk["id"])
        elif kind in ("text-delta", "reasoning-delta"):
            assert open_part == (kind.split("-")[0], chunk["id"])
        elif kind in ("text-end", "reasoning-end"):
            assert open_part == (kind.split("-")[0], chunk["id"])
            open_part = None
        else:
            assert open_part is None, f"{kind} while {open_part} is open"
            if kind in ("tool-input-start", "tool-input-available"):
                tools.add(chunk["toolCallId"])
            elif kind in ("tool-input-delta", "tool-output-available"):
                assert chunk["toolCallId"] in tools
            else:
                assert kind.startswith("data-"), chunk
    if terminal:
        assert stream[-1] == "[DONE]" and stream.count("[DONE]") == 1
        assert stream[-2]["type"] in ENDINGS
        assert sum(isinstance(c, dict) and c["type"] in ENDINGS for c in stream) == 1
        assert not step_open and open_part is None
    else:
        assert "[DONE]" not in stream


@settings(max_examples=300, deadline=None)
@given(logs())
def test_every_log_gives_a_valid_version_safe_sequence(log: list[Event]) -> None:
    check_valid(chunks(project(log)), terminal=log[-1].terminal)


@settings(max_examples=100, deadline=None)
@given(logs(), st.lists(st.integers(1, 20), max_size=5))
def test_batching_does_not_change_the_bytes(log: list[Event], cuts: list[int]) -> None:
    projection = UIMessageStreamProjection(message_id="msg_1")
    out, i = [], 0
    for size in [*cuts, len(log)]:
        out.append(projection.events(log[i : i + size]))
        i += size
    assert b"".join(out) == project(log)


def test_headers() -> None:
    headers = dict(UIMessageStreamProjection(message_id="m").headers)
    assert headers[b"x-vercel-ai-ui-message-stream"] == b"v1"
    assert headers[b"content-type"].startswith(b"text/event-stream")
    assert headers[b"cache-control"] == b"no-cache"


def test_completed_text() -> None:
    assert chunks(project(make_log("run_1", text("Hel", "lo"), completed()))) == [
        {"type": "start", "messageId": "msg_1"},
        {"type": "start-step"},
        {"type": "text-start", "id": "text-1"},
        {"type": "text-delta", "id": "text-1", "delta": "Hel"},
        {"type": "text-delta", "id": "text-1", "delta": "lo"},
        {"type": "text-end", "id": "text-1"},
        {"type": "finish-step"},
        {"type": "finish"},
        "[DONE]",
    ]


@pytest.mark.parametrize("code", list(ErrorCode))
def test_failed_is_error_with_safe_text_then_done(code: ErrorCode) -> None:
    stream = chunks(project(make_log("run_1", text("x"), failed(code, "It broke, sorry."))))
    assert stream[-3:] == [
        {"type": "finish-step"},
        {"type": "error", "errorText": "It broke, sorry."},
        "[DONE]",
    ]
    assert "corr-123" not in json.dumps(stream)
    assert all(c == "[DONE]" or c["type"] != "finish" for c in stream)


@pytest.mark.parametrize("reason", list(CancelReason))
def test_cancelled_is_abort_without_fields_then_done(reason: CancelReason) -> None:
    stream = chunks(project(make_log("run_1", reasoning("hm"), cancelled(reason))))
    assert stream[-5:] == [
        {"type": "reasoning-delta", "id": "reasoning-1", "delta": "hm"},
        {"type": "reasoning-end", "id": "reasoning-1"},
        {"type": "finish-step"},
        {"type": "abort"},
        "[DONE]",
    ]


def test_terminal_right_after_start_is_still_a_whole_message() -> None:
    assert types(project(make_log("run_1", [], completed()))) == [
        "start",
        "start-step",
        "finish-step",
        "finish",
        "[DONE]",
    ]


def test_tool_call_and_result() -> None:
    log = make_log(
        "run_1",
        [
            *text("Checking"),
            *tool_call("c1", "weather", ['{"city":', '"Paris"}']),
            (EventType.TOOL_RESULT, {"tool_call_id": "c1", "output": {"temp": 21}}),
            (EventType.TOOL_RESULT, {"tool_call_id": "nope", "output": 1}),
        ],
        completed("tool_calls"),
    )
    stream = chunks(project(log))
    assert stream[4:10] == [
        {"type": "text-end", "id": "text-1"},
        {"type": "tool-input-start", "toolCallId": "c1", "toolName": "weather"},
        {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '{"city":'},
        {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '"Paris"}'},
        {
            "type": "tool-input-available",
            "toolCallId": "c1",
            "toolName": "weather",
            "input": {"city": "Paris"},
        },
        {"type": "tool-output-available", "toolCallId": "c1", "output": {"temp": 21}},
    ]
    assert stream[10] == {"type": "finish-step"}  # the unknown call's result was dropped


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [({"a": 1}, {"a": 1}), ('{"a": 1}', {"a": 1}), ("not json", "not json"), ([1], [1])],
)
def test_tool_input_is_the_parsed_value(arguments: Any, expected: Any) -> None:
    stream = chunks(project(make_log("run_1", tool_call("c", "f", (), arguments), None)))
    available = [c for c in stream if c["type"] == "tool-input-available"]
    assert available[0]["input"] == expected


def test_steps_are_balanced_and_an_empty_first_step_is_reused() -> None:
    log = make_log(
        "run_1",
        [
            (EventType.STEP_STARTED, {}),
            *text("a"),
            (EventType.STEP_FINISHED, {}),
            (EventType.STEP_STARTED, {}),
            *text("b"),
            (EventType.STEP_FINISHED, {}),
            *text("c"),  # content after a finished step opens the next one
        ],
        completed(),
    )
    assert [t for t in types(project(log)) if "step" in t] == [
        "start-step",
        "finish-step",
        "start-step",
        "finish-step",
        "start-step",
        "finish-step",
    ]


def test_data_and_interaction_parts() -> None:
    log = make_log(
        "run_1",
        [
            (EventType.DATA, {"name": "weather", "data": {"t": 1}}),
            *interaction("int_1", "Proceed?"),
            (EventType.INTERACTION_RESOLVED, {"interaction_id": "int_1"}),
        ],
        None,
    )
    stream = chunks(project(log))
    info = {
        "interaction_id": "int_1",
        "prompt": "Proceed?",
        "response_url": "/v1/runs/run_1/interactions/int_1",
    }
    assert stream[2:] == [
        {"type": "data-weather", "data": {"t": 1}},
        {"type": "data-interaction", "id": "int_1", "data": info},
        {"type": "data-interaction", "id": "int_1", "data": {**info, "resolved": True}},
    ]


def test_usage_sends_nothing() -> None:
    usage = (EventType.USAGE, {"input_tokens": 1, "output_tokens": 2})
    assert project(make_log("r", [*text("a"), usage], completed())) == project(
        make_log("r", text("a"), completed())
    )


def test_transport_frames() -> None:
    projection = UIMessageStreamProjection(message_id="msg_1")
    assert parse_sse(projection.keepalive())[0].comment
    # a gap before anything: the message still starts properly, says so, and goes on
    log = make_log("run_1", text("a", "b"), completed())
    raw = projection.gap(1, 2) + projection.events(log[2:])
    stream = chunks(raw)
    assert stream[:2] == [
        {"type": "start", "messageId": "msg_1"},
        {
            "type": "error",
            "errorText": "Part of this message (events 1..2) is no longer available.",
        },
    ]
    assert [c["type"] for c in stream[2:-1]] == [
        "start-step",
        "text-start",
        "text-delta",
        "text-end",
        "finish-step",
        "finish",
    ]

    slow = UIMessageStreamProjection(message_id="msg_1")
    raw = slow.events(log[:2]) + slow.slow_consumer(2)
    assert types(raw)[-4:] == ["text-end", "finish-step", "error", "[DONE]"]
    assert slow.done and slow.events(log[2:]) == b"" and slow.slow_consumer(3) == b""


def test_early_failure_is_streamed() -> None:
    assert UIMessageStreamProjection(message_id="m").early_failure(failed()) is None


def test_check_valid_catches_an_unbalanced_stream() -> None:
    # The checker above must be able to fail: a delta for a part that is not open.
    bad = [
        {"type": "start", "messageId": "msg_1"},
        {"type": "start-step"},
        {"type": "text-delta", "id": "t", "delta": "x"},
    ]
    with pytest.raises(AssertionError):
        check_valid(bad, terminal=False)
    extra_key = [
        {"type": "start", "messageId": "msg_1"},
        {"type": "start-step"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop"},
        "[DONE]",
    ]
    with pytest.raises(AssertionError):
        check_valid(extra_key, terminal=True)
