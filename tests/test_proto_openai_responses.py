"""The Responses API projection: numbering, resume, lifecycle grammar, terminals, codes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import CancelReason, ErrorCode, Event, EventType, RunOutput
from engine.protocols import (
    RESPONSES_ERROR_CODES,
    ResponsesProjection,
    response_error_code,
    response_object,
)

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

# The 20 codes, as the specification (and /work/shared/protocols.md) lists them.
SPEC_CODES = {
    "server_error",
    "rate_limit_exceeded",
    "invalid_prompt",
    "data_residency_mismatch",
    "bio_policy",
    "vector_store_timeout",
    "invalid_image",
    "invalid_image_format",
    "invalid_base64_image",
    "invalid_image_url",
    "image_too_large",
    "image_too_small",
    "image_parse_error",
    "image_content_policy_violation",
    "invalid_image_mode",
    "image_file_too_large",
    "unsupported_image_media_type",
    "empty_image_file",
    "failed_to_download_image",
    "image_file_not_found",
}
TERMINAL_WIRE = {"response.completed", "response.incomplete", "response.failed"}


def projection(starting_after: int | None = None) -> ResponsesProjection:
    return ResponsesProjection(
        response_id="resp_r1", model="echo", created_at=1700000000, starting_after=starting_after
    )


def project(log: Sequence[Event], starting_after: int | None = None) -> bytes:
    p = projection(starting_after)
    return b"".join(p.events([event]) for event in log)


def wire(raw: bytes) -> list[dict[str, Any]]:
    """The numbered events, checking that ``event:`` always repeats the data's type."""
    out = []
    for frame in parse_sse(raw):
        if frame.comment:
            continue
        payload = frame.json()
        assert frame.event == payload["type"]
        out.append(payload)
    return out


def raw_frames(raw: bytes) -> list[bytes]:
    # JSON text never holds a raw newline, so every frame ends at the first blank line.
    return [part + b"\n\n" for part in raw.split(b"\n\n")[:-1]]


def expected_suffix(full: bytes, n: int) -> bytes:
    """Everything the full stream sent after the frame numbered ``n``. A comment belongs
    before the next numbered frame (a trailing one before the number that comes next)."""
    frames = raw_frames(full)
    numbers: list[int | None] = [
        None if f.startswith(b":") else json.loads(f.split(b"data: ", 1)[1])["sequence_number"]
        for f in frames
    ]
    position = 1 + max((x for x in numbers if x is not None), default=-1)
    keep = []
    for frame, number in reversed(list(zip(frames, numbers, strict=True))):
        position = number if number is not None else position
        if position > n:
            keep.append(frame)
    return b"".join(reversed(keep))


def check_grammar(events: list[dict[str, Any]], terminal: bool) -> None:
    """The stream is one an SDK can assemble: lifecycle first, each item's events in order
    with deltas adding up to the done text, at most one terminal and it is last."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    terminals = [e for e in events if e["type"] in TERMINAL_WIRE]
    assert len(terminals) == (1 if terminal else 0)
    if terminal:
        assert events[-1] is terminals[0]
    items: dict[int, dict[str, Any]] = {}
    for e in events[2:]:
        kind = e["type"]
        if kind == "response.output_item.added":
            assert e["output_index"] not in items
            assert e["output_index"] == len(items)
            items[e["output_index"]] = {"item": e["item"], "text": "", "stage": "added"}
            continue
        if kind in TERMINAL_WIRE:
            continue
        state = items[e["output_index"]]
        item = state["item"]
        if "item_id" in e:
            assert e["item_id"] == item["id"]
        if kind == "response.content_part.added":
            assert item["type"] in ("message", "reasoning") and state["stage"] == "added"
            state["stage"] = "part"
        elif kind in ("response.output_text.delta", "response.reasoning_text.delta"):
            assert state["stage"] == "part"
            assert item["type"] == ("message" if "output_text" in kind else "reasoning")
            state["text"] += e["delta"]
        elif kind in ("response.output_text.done", "response.reasoning_text.done"):
            assert state["stage"] == "part" and e["text"] == state["text"]
            state["stage"] = "text_done"
        elif kind == "response.content_part.done":
            assert state["stage"] == "text_done" and e["part"]["text"] == state["text"]
            state["stage"] = "part_done"
        elif kind == "response.function_call_arguments.delta":
            assert item["type"] == "function_call" and state["stage"] == "added"
            state["text"] += e["delta"]
        elif kind == "response.function_call_arguments.done":
            assert state["stage"] == "added" and e["arguments"] == state["text"]
            state["stage"] = "args_done"
        elif kind == "response.output_item.done":
            assert state["stage"] == (
                "args_done" if item["type"] == "function_call" else "part_done"
            )
            assert e["item"]["id"] == item["id"]
            state["stage"] = "done"
        else:
            raise AssertionError(f"unexpected event {kind}")
    if terminal and events[-1]["type"] != "response.failed":
        assert all(state["stage"] == "done" for state in items.values())


@settings(max_examples=150, deadline=None)
@given(logs())
def test_stream_is_well_formed_and_numbered_from_zero(log: list[Event]) -> None:
    check_grammar(wire(project(log)), terminal=log[-1].terminal)


@settings(max_examples=100, deadline=None)
@given(logs())
def test_resume_from_every_n_is_exactly_the_suffix(log: list[Event]) -> None:
    full = project(log)
    last = len(wire(full)) - 1
    for n in range(-1, last + 2):
        assert project(log, starting_after=n) == expected_suffix(full, n), n
    assert project(log, starting_after=None) == full


@settings(max_examples=100, deadline=None)
@given(logs(), st.lists(st.integers(1, 20), max_size=5))
def test_batching_does_not_change_the_bytes(log: list[Event], cuts: list[int]) -> None:
    p = projection()
    out, i = [], 0
    for size in [*cuts, len(log)]:
        out.append(p.events(log[i : i + size]))
        i += size
    assert b"".join(out) == project(log)


@settings(max_examples=100, deadline=None)
@given(logs())
def test_response_object_matches_the_streams_terminal(log: list[Event]) -> None:
    snapshot = response_object(
        RunOutput.from_events(log), response_id="resp_r1", model="echo", created_at=1700000000
    )
    events = wire(project(log))
    if log[-1].terminal:
        assert snapshot == events[-1]["response"]
    else:
        assert snapshot["status"] == "in_progress"
        assert snapshot["usage"] is None


# -- terminals --------------------------------------------------------------------------


def terminal_of(log: list[Event]) -> dict[str, Any]:
    events = wire(project(log))
    assert sum(e["type"] in TERMINAL_WIRE for e in events) == 1
    return events[-1]


def test_completed() -> None:
    event = terminal_of(make_log("run_1", text("Hi"), completed(usage=(2, 3))))
    assert event["type"] == "response.completed"
    response = event["response"]
    assert (response["status"], response["error"], response["incomplete_details"]) == (
        "completed",
        None,
        None,
    )
    assert response["output"][0]["content"][0]["text"] == "Hi"
    assert response["usage"]["input_tokens"] == 2
    assert response["usage"]["output_tokens"] == 3
    assert response["usage"]["total_tokens"] == 5


@pytest.mark.parametrize(
    ("finish_reason", "reason"),
    [("length", "max_output_tokens"), ("content_filter", "content_filter")],
)
def test_incomplete_mapping(finish_reason: str, reason: str) -> None:
    event = terminal_of(make_log("run_1", text("Hi"), completed(finish_reason)))
    assert event["type"] == "response.incomplete"
    assert event["response"]["status"] == "incomplete"
    assert event["response"]["incomplete_details"] == {"reason": reason}
    assert event["response"]["output"][0]["status"] == "incomplete"


@pytest.mark.parametrize("code", list(ErrorCode))
def test_failed_codes_are_always_spec_codes(code: ErrorCode) -> None:
    event = terminal_of(make_log("run_1", text("Hi"), failed(code, "Safe.")))
    assert event["type"] == "response.failed"
    error = event["response"]["error"]
    assert error["code"] in SPEC_CODES
    assert error == {"code": response_error_code(code), "message": "Safe."}
    assert event["response"]["status"] == "failed"
    assert event["response"]["output"][0]["status"] == "incomplete"


def test_error_code_table() -> None:
    assert RESPONSES_ERROR_CODES == SPEC_CODES and len(SPEC_CODES) == 20
    assert response_error_code(ErrorCode.RATE_LIMIT_EXCEEDED) == "rate_limit_exceeded"
    assert {response_error_code(c) for c in ErrorCode} <= SPEC_CODES
    assert response_error_code("not-an-engine-code") == "server_error"


@pytest.mark.parametrize("reason", list(CancelReason))
def test_cancelled_is_failed_with_status_cancelled(reason: CancelReason) -> None:
    log = make_log("run_1", [*text("Hi"), *tool_call("c", "f", ["{"])[:-1]], cancelled(reason))
    event = terminal_of(log)
    assert event["type"] == "response.failed"
    response = event["response"]
    assert (response["status"], response["error"]) == ("cancelled", None)
    # the text was closed when the tool call began; the call never became ready
    assert [item["status"] for item in response["output"]] == ["completed", "incomplete"]
    snapshot = response_object(
        RunOutput.from_events(log), response_id="resp_r1", model="echo", created_at=1700000000
    )
    assert snapshot["status"] == "cancelled"


# -- items and announcements ------------------------------------------------------------


def test_steps_split_messages_and_tool_calls_close_text() -> None:
    log = make_log(
        "run_1",
        [
            *text("a"),
            (EventType.STEP_FINISHED, {}),
            (EventType.STEP_STARTED, {}),
            *text("b"),
            *tool_call("c", "f", (), {"k": 1}),
            *text("c"),
        ],
        completed(),
    )
    output = terminal_of(log)["response"]["output"]
    assert [(item["type"], item["id"]) for item in output] == [
        ("message", "msg_r1_0"),
        ("message", "msg_r1_1"),
        ("function_call", "fc_r1_2"),
        ("message", "msg_r1_3"),
    ]
    assert output[2]["arguments"] == '{"k":1}' and output[2]["call_id"] == "c"


def test_ready_without_deltas_streams_one_delta() -> None:
    events = wire(project(make_log("run_1", tool_call("c", "f", (), {"k": 1}), completed())))
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert [d["delta"] for d in deltas] == ['{"k":1}']


def test_interaction_is_an_unnumbered_comment() -> None:
    raw = project(make_log("run_1", [*text("a"), *interaction("int_7")], None))
    comments = [f for f in parse_sse(raw) if f.comment]
    assert len(comments) == 1
    assert b': interaction_required {"interaction_id":"int_7"' in raw
    assert [e["sequence_number"] for e in wire(raw)] == list(range(len(wire(raw))))


def test_reasoning_item_events() -> None:
    events = wire(project(make_log("run_1", reasoning("x", "y"), completed())))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[3]["part"] == {"type": "reasoning_text", "text": ""}
    assert events[-1]["response"]["output"][0]["content"] == [
        {"type": "reasoning_text", "text": "xy"}
    ]


# -- transport frames -------------------------------------------------------------------


def test_slow_consumer_error_points_at_the_last_delivered_number() -> None:
    log = make_log("run_1", text("a", "b", "c"), completed())
    p = projection()
    delivered = wire(p.events(log[:3]))
    error = wire(p.slow_consumer(3))[0]
    assert error["type"] == "error" and error["code"] == "slow_consumer"
    assert error["sequence_number"] == delivered[-1]["sequence_number"]
    assert p.done and p.events(log[3:]) == b""
    # a resume from that number gets everything that was not delivered
    assert project(log, starting_after=error["sequence_number"]) == expected_suffix(
        project(log), error["sequence_number"]
    )


def test_slow_consumer_before_anything_new_keeps_the_clients_cursor() -> None:
    p = projection(starting_after=40)
    p.events(make_log("run_1", text("a"), None))
    assert wire(p.slow_consumer(2))[0]["sequence_number"] == 40


def test_gap_and_a_log_not_starting_at_one_are_unrecoverable() -> None:
    log = make_log("run_1", text("a", "b"), completed())
    p = projection()
    error = wire(p.gap(1, 2))[0]
    assert (error["type"], error["code"]) == ("error", "gap")
    assert p.events(log[2:]) == b""

    q = projection()
    events = wire(q.events(log[2:]))
    assert [(e["type"], e["code"]) for e in events] == [("error", "gap")]
    assert q.done


def test_early_failure() -> None:
    status, body = projection().early_failure(failed(ErrorCode.TIMEOUT, "Too slow."))
    assert status == 504
    assert json.loads(body)["error"]["code"] == "timeout"
    assert json.loads(body)["error"]["message"] == "Too slow."


def test_response_object_states() -> None:
    def obj(log: list[Event], background: bool = False) -> dict[str, Any]:
        return response_object(
            RunOutput.from_events(log),
            response_id="resp_r1",
            model="echo",
            created_at=5,
            background=background,
        )

    queued = obj([], background=True)
    assert (queued["status"], queued["background"], queued["output"]) == ("queued", True, [])
    running = obj(make_log("run_1", text("par", "tial"), None))
    assert running["status"] == "in_progress"
    assert running["output"][0]["status"] == "in_progress"
    assert running["output"][0]["content"][0]["text"] == "partial"
    waiting = obj(make_log("run_1", [*text("q"), *interaction()], None))
    assert waiting["status"] == "in_progress"
    # a trimmed log is still summarised (no sequence numbers needed for a snapshot)
    trimmed = obj(make_log("run_1", text("a", "b"), completed())[2:])
    assert trimmed["status"] == "completed"
    assert trimmed["output"][0]["content"][0]["text"] == "b"
