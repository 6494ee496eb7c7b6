"""The Chat Completions projection, frame by frame (no SDK here: see test_proto_openai_sdk)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine import CancelReason, ErrorCode, Event, EventType, RunOutput, http_status_for
from engine.protocols import ChatCompletionsProjection, chat_completion_object

from ._eventlog import (
    cancelled,
    completed,
    failed,
    interaction,
    make_log,
    reasoning,
    text,
    tool_call,
)
from ._sse import parse_sse


def project(log: list[Event], *, include_usage: bool = False, one_by_one: bool = True) -> bytes:
    projection = ChatCompletionsProjection(
        completion_id="chatcmpl-xyz", model="echo", created=1700000000, include_usage=include_usage
    )
    if one_by_one:
        return b"".join(projection.events([event]) for event in log)
    return projection.events(log)


def payloads(raw: bytes) -> list[Any]:
    """Data frames, JSON-decoded ("[DONE]" stays a string); comments dropped."""
    out: list[Any] = []
    for frame in parse_sse(raw):
        if frame.comment:
            continue
        assert frame.event is None and frame.id is None  # OpenAI sends data lines only
        out.append(frame.data if frame.data == "[DONE]" else frame.json())
    return out


def deltas(frames: list[Any]) -> list[dict[str, Any]]:
    return [f["choices"][0]["delta"] for f in frames if isinstance(f, dict) and f.get("choices")]


def test_completed_stream_shape() -> None:
    frames = payloads(project(make_log("run_1", text("Hel", "lo"), completed())))
    assert frames[-1] == "[DONE]"
    chunks = frames[:-1]
    assert {c["id"] for c in chunks} == {"chatcmpl-xyz"}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {(c["created"], c["model"]) for c in chunks} == {(1700000000, "echo")}
    assert all("usage" not in c for c in chunks)
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "stop"]


@pytest.mark.parametrize("reason", ["stop", "length", "content_filter", "tool_calls"])
def test_finish_reasons_map_one_to_one(reason: str) -> None:
    frames = payloads(project(make_log("run_1", text("x"), completed(reason))))
    assert frames[-2]["choices"][0]["finish_reason"] == reason
    assert frames.count("[DONE]") == 1 and frames[-1] == "[DONE]"


def test_include_usage_adds_one_usage_chunk_and_nulls_elsewhere() -> None:
    log = make_log(
        "run_1",
        [*text("a"), (EventType.USAGE, {"input_tokens": 1, "output_tokens": 1})],
        completed(usage=(10, 5)),
    )
    frames = payloads(project(log, include_usage=True))
    assert frames[-1] == "[DONE]"
    usage_chunk = frames[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert usage_chunk["id"] == "chatcmpl-xyz"
    assert all(f["usage"] is None for f in frames[:-2])
    assert frames[-3]["choices"][0]["finish_reason"] == "stop"


def test_usage_without_terminal_usage_is_the_last_report() -> None:
    log = make_log(
        "run_1",
        [
            (EventType.USAGE, {"input_tokens": 1, "output_tokens": 1}),
            (EventType.USAGE, {"input_tokens": 7, "output_tokens": 3}),
        ],
        completed(),
    )
    usage = payloads(project(log, include_usage=True))[-2]["usage"]
    assert usage == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


@pytest.mark.parametrize("code", list(ErrorCode))
def test_failed_is_one_error_frame_without_done(code: ErrorCode) -> None:
    frames = payloads(project(make_log("run_1", text("partial"), failed(code, "Safe text."))))
    assert "[DONE]" not in frames
    assert all(c["choices"][0]["finish_reason"] is None for c in frames[:-1])
    assert frames[-1] == {
        "error": {
            "message": "Safe text.",
            "type": "rate_limit_error"
            if code is ErrorCode.RATE_LIMIT_EXCEEDED
            else ("invalid_request_error" if http_status_for(code) < 500 else "server_error"),
            "code": str(code),
            "param": None,
            "correlation_id": "corr-123",
        }
    }


@pytest.mark.parametrize("reason", list(CancelReason))
def test_cancelled_is_one_error_frame_with_cancellation_code(reason: CancelReason) -> None:
    frames = payloads(project(make_log("run_1", text("partial"), cancelled(reason))))
    assert "[DONE]" not in frames
    error = frames[-1]["error"]
    assert (error["code"], error["type"], error["param"]) == ("cancelled", "cancelled", None)
    assert "cancelled" in error["message"]
    assert all(c["choices"][0]["finish_reason"] is None for c in frames[:-1])


def test_tool_calls_have_stable_indices_and_first_chunk_identity() -> None:
    log = make_log(
        "run_1",
        [
            (EventType.TOOL_CALL_STARTED, {"tool_call_id": "a", "name": "f"}),
            (EventType.TOOL_CALL_STARTED, {"tool_call_id": "b", "name": "g"}),
            (EventType.TOOL_CALL_DELTA, {"tool_call_id": "a", "delta": '{"x":'}),
            (EventType.TOOL_CALL_DELTA, {"tool_call_id": "b", "delta": "{}"}),
            (EventType.TOOL_CALL_DELTA, {"tool_call_id": "a", "delta": "1}"}),
            (EventType.TOOL_CALL_READY, {"tool_call_id": "a", "name": "f", "arguments": {"x": 1}}),
            (EventType.TOOL_CALL_READY, {"tool_call_id": "b", "name": "g", "arguments": {}}),
        ],
        completed("tool_calls"),
    )
    calls = [d["tool_calls"][0] for d in deltas(payloads(project(log))) if "tool_calls" in d]
    assert calls == [
        {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": ""}},
        {"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": ""}},
        {"index": 0, "function": {"arguments": '{"x":'}},
        {"index": 1, "function": {"arguments": "{}"}},
        {"index": 0, "function": {"arguments": "1}"}},
    ]  # the ready events add nothing: the deltas already carried the arguments


def test_ready_without_deltas_sends_the_full_arguments_string() -> None:
    log = make_log(
        "run_1",
        [
            *tool_call("a", "f", (), {"city": "Paris"}),
            *tool_call("b", "g", (), '{"raw": true}'),
            (EventType.TOOL_CALL_READY, {"tool_call_id": "c", "name": "h", "arguments": [1]}),
        ],
        completed("tool_calls"),
    )
    calls = [d["tool_calls"][0] for d in deltas(payloads(project(log))) if "tool_calls" in d]
    assert calls[1] == {"index": 0, "function": {"arguments": '{"city":"Paris"}'}}
    assert calls[3] == {"index": 1, "function": {"arguments": '{"raw": true}'}}
    # ready with no start: opened and filled in one chunk
    assert calls[4] == {
        "index": 2,
        "id": "c",
        "type": "function",
        "function": {"name": "h", "arguments": "[1]"},
    }


def test_events_without_a_chat_slot_emit_nothing() -> None:
    noise = [
        *reasoning("hmm"),
        (EventType.TOOL_RESULT, {"tool_call_id": "a", "output": 1}),
        (EventType.STEP_STARTED, {}),
        (EventType.STEP_FINISHED, {}),
        (EventType.DATA, {"name": "x", "data": 1}),
        (EventType.INTERACTION_RESOLVED, {"interaction_id": "i"}),
        (EventType.USAGE, {"input_tokens": 1, "output_tokens": 2}),
    ]
    with_noise = make_log("run_1", [*text("a"), *noise, *text("b")], completed())
    without = make_log("run_1", text("a", "b"), completed())
    assert project(with_noise) == project(without)


def test_interaction_is_announced_as_a_comment() -> None:
    raw = project(make_log("run_1", interaction("int_9", "Go on?\nReally?"), None))
    frames = parse_sse(raw)
    comments = [f for f in frames if f.comment]
    assert len(comments) == 1
    line = raw.decode().split("\n")
    announced = [ln for ln in line if ln.startswith(": interaction_required ")]
    info = json.loads(announced[0].removeprefix(": interaction_required "))
    assert info == {
        "interaction_id": "int_9",
        "prompt": "Go on?\nReally?",
        "response_url": "/v1/runs/run_1/interactions/int_9",
    }


def test_batching_does_not_change_the_bytes() -> None:
    log = make_log(
        "run_1", [*text("a"), *tool_call("c", "f", ["{}"]), *text("b")], completed(usage=(1, 2))
    )
    assert project(log, include_usage=True) == project(log, include_usage=True, one_by_one=False)


def test_nothing_after_the_terminal_and_mid_log_start_opens_with_role() -> None:
    projection = ChatCompletionsProjection(completion_id="chatcmpl-1", model="m", created=1)
    log = make_log("run_1", text("a", "b"), completed())
    first = payloads(projection.events(log[2:]))  # a connection that starts at seq 3
    assert deltas(first)[:2] == [{"role": "assistant", "content": ""}, {"content": "b"}]
    assert projection.done
    assert projection.events(log) == b""
    assert projection.slow_consumer(3) == b""


def test_transport_frames() -> None:
    projection = ChatCompletionsProjection(completion_id="chatcmpl-1", model="m", created=1)
    assert parse_sse(projection.keepalive())[0].comment
    gap = payloads(projection.gap(2, 9))
    assert gap[0]["error"]["code"] == "gap" and "2..9" in gap[0]["error"]["message"]
    assert projection.done
    assert projection.events(make_log("run_1", text("late"), completed())) == b""

    slow = ChatCompletionsProjection(completion_id="chatcmpl-1", model="m", created=1)
    frames = payloads(slow.slow_consumer(4))
    assert frames[0]["error"]["code"] == "slow_consumer"
    assert "[DONE]" not in frames


def test_early_failure_is_http_status_and_openai_error_body() -> None:
    projection = ChatCompletionsProjection(completion_id="chatcmpl-1", model="m", created=1)
    status, body = projection.early_failure(failed(ErrorCode.INVALID_REQUEST, "Bad input."))
    assert status == 400
    assert json.loads(body) == {
        "error": {
            "message": "Bad input.",
            "type": "invalid_request_error",
            "code": "invalid_request",
            "param": None,
            "correlation_id": "corr-123",
        }
    }


# -- non-streaming ------------------------------------------------------------------------


def test_chat_completion_object_assembles_message() -> None:
    log = make_log(
        "run_1",
        [
            *text("Hi ", "there"),
            # streamed text and ready's value differ in spacing: the streamed text wins,
            # as in the stream, so both answers agree
            *tool_call("a", "f", ['{"x": ', "1}"], {"x": 1}),
            *tool_call("b", "g", (), {"y": 2}),
            (EventType.USAGE, {"input_tokens": 3, "output_tokens": 4}),
        ],
        completed("tool_calls"),
    )
    obj = chat_completion_object(
        RunOutput.from_events(log), completion_id="chatcmpl-1", model="m", created=5
    )
    assert obj["id"] == "chatcmpl-1" and obj["object"] == "chat.completion"
    choice = obj["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Hi there"
    assert choice["message"]["tool_calls"] == [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"y":2}'}},
    ]
    assert obj["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_chat_completion_object_tool_only_has_null_content() -> None:
    log = make_log("run_1", tool_call("a", "f", (), {}), completed("tool_calls"))
    obj = chat_completion_object(
        RunOutput.from_events(log), completion_id="c", model="m", created=1
    )
    assert obj["choices"][0]["message"]["content"] is None
    empty = chat_completion_object(
        RunOutput.from_events(make_log("r", [], completed())),
        completion_id="c",
        model="m",
        created=1,
    )
    assert empty["choices"][0]["message"] == {"role": "assistant", "content": "", "refusal": None}


@pytest.mark.parametrize("terminal", [failed(), cancelled(), None])
def test_chat_completion_object_refuses_runs_that_did_not_complete(terminal: Any) -> None:
    with pytest.raises(ValueError, match="completed run"):
        chat_completion_object(
            RunOutput.from_events(make_log("run_1", text("x"), terminal)),
            completion_id="c",
            model="m",
            created=1,
        )
