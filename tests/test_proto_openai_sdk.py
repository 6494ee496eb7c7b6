"""The OpenAI projections read by the official ``openai`` Python SDK, with no server.

The SDK's own HTTP client gets a mock transport that answers with the projection's bytes,
so what is tested is exactly the SDK's SSE decoding, error detection, typed parsing (with
``_strict_response_validation``: every event must validate against the SDK's models) and
stream helpers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import openai._base_client as _sdk_base
import pytest
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
)

from engine import CancelReason, ErrorCode, Event, EventType, RunOutput
from engine.protocols import (
    RESPONSES_ERROR_CODES,
    ChatCompletionsProjection,
    ResponsesProjection,
    chat_completion_object,
    response_object,
)

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

# openai 1.x/2.x speak httpx; 3.x ships its own fork, httpx2. Use whichever the SDK uses.
http: Any = getattr(_sdk_base, "httpx2", None) or getattr(_sdk_base, "httpx")  # noqa: B009

Handler = Callable[[Any], Any]


def client(handler: Handler, *, strict: bool = True) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="test",
        base_url="http://scopestream.test/v1",
        http_client=http.Client(transport=http.MockTransport(handler)),
        max_retries=0,
        _strict_response_validation=strict,
    )


def sse(body: bytes) -> Handler:
    def handler(request: Any) -> Any:
        return http.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return handler


def chat_bytes(log: list[Event], *, include_usage: bool = False) -> bytes:
    projection = ChatCompletionsProjection(
        completion_id="chatcmpl-abc", model="echo", created=1700000000, include_usage=include_usage
    )
    # One event per call, as a live connection would deliver them, with keepalives between.
    return b"".join(projection.events([e]) + projection.keepalive() for e in log)


def responses_bytes(log: list[Event], starting_after: int | None = None) -> bytes:
    projection = ResponsesProjection(
        response_id="resp_abc", model="echo", created_at=1700000000, starting_after=starting_after
    )
    return b"".join(projection.events([e]) + projection.keepalive() for e in log)


MESSAGES: Any = [{"role": "user", "content": "hi"}]
TEXT_LOG = make_log("run_1", [*text("Hello", ", ", "world")], completed())
TOOL_LOG = make_log(
    "run_1",
    [
        *text("Let me check."),
        *tool_call("call_1", "get_weather", ['{"city":', '"Paris"}']),
        *tool_call("call_2", "get_time", (), {"tz": "CET"}),
    ],
    completed("tool_calls", usage=(12, 7)),
)


# -- Chat Completions -------------------------------------------------------------------


def test_chat_sdk_assembles_text_and_finish_reason() -> None:
    chunks = list(
        client(sse(chat_bytes(TEXT_LOG))).chat.completions.create(
            model="echo", messages=MESSAGES, stream=True
        )
    )
    assert {chunk.id for chunk in chunks} == {"chatcmpl-abc"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello, world"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"


def test_chat_sdk_stream_helper_assembles_tool_calls_and_usage() -> None:
    body = chat_bytes(TOOL_LOG, include_usage=True)
    with client(sse(body)).chat.completions.stream(
        model="echo", messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("call_1", "get_weather", {"city": "Paris"}),
        ("call_2", "get_time", {"tz": "CET"}),
    ]
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (12, 7)


@pytest.mark.parametrize(
    ("outcome", "code", "message"),
    [
        (failed(ErrorCode.UPSTREAM_ERROR, "The model provider failed."), "upstream_error", None),
        (failed(ErrorCode.RATE_LIMIT_EXCEEDED, "Slow down."), "rate_limit_exceeded", None),
        (cancelled(CancelReason.REQUESTED), "cancelled", "cancelled by request"),
        (cancelled(CancelReason.SHUTDOWN), "cancelled", "shutting down"),
    ],
)
def test_chat_sdk_raises_api_error_for_failed_and_cancelled(
    outcome: Any, code: str, message: str | None
) -> None:
    log = make_log("run_1", text("partial "), outcome)
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client(sse(chat_bytes(log))).chat.completions.create(
            model="echo", messages=MESSAGES, stream=True
        ):
            seen.extend(c.delta.content or "" for c in chunk.choices)
            assert all(c.finish_reason is None for c in chunk.choices)
    assert "".join(seen) == "partial "
    assert info.value.body["code"] == code  # type: ignore[index]
    expected = outcome.error.message if message is None else message
    assert expected in info.value.message


def test_chat_sdk_surfaces_slow_consumer_as_api_error() -> None:
    projection = ChatCompletionsProjection(completion_id="chatcmpl-abc", model="echo", created=1)
    body = projection.events(TEXT_LOG[:2]) + projection.slow_consumer(2)
    with pytest.raises(openai.APIError, match="fell too far behind"):
        list(
            client(sse(body)).chat.completions.create(model="echo", messages=MESSAGES, stream=True)
        )


def test_chat_sdk_ignores_interaction_comment() -> None:
    log = make_log("run_1", [*interaction(), *text("ok")], completed())
    chunks = list(
        client(sse(chat_bytes(log))).chat.completions.create(
            model="echo", messages=MESSAGES, stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "ok"


def test_chat_sdk_reads_non_streaming_object() -> None:
    body = chat_completion_object(
        RunOutput.from_events(TOOL_LOG), completion_id="chatcmpl-abc", model="echo", created=1
    )

    def handler(request: Any) -> Any:
        return http.Response(200, json=body)

    result = client(handler).chat.completions.create(model="echo", messages=MESSAGES)
    assert result.choices[0].message.content == "Let me check."
    assert result.choices[0].finish_reason == "tool_calls"
    assert [c.id for c in result.choices[0].message.tool_calls or []] == ["call_1", "call_2"]
    assert result.usage is not None and result.usage.total_tokens == 19


def test_chat_sdk_gets_http_error_for_early_failure() -> None:
    outcome = failed(ErrorCode.RATE_LIMIT_EXCEEDED, "Slow down.")
    status, body = ChatCompletionsProjection(
        completion_id="chatcmpl-abc", model="echo", created=1
    ).early_failure(outcome)

    def handler(request: Any) -> Any:
        return http.Response(status, content=body, headers={"content-type": "application/json"})

    with pytest.raises(openai.RateLimitError) as info:
        client(handler).chat.completions.create(model="echo", messages=MESSAGES, stream=True)
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.message.endswith("Slow down.")


# -- Responses --------------------------------------------------------------------------

RESPONSES_LOG = make_log(
    "run_1",
    [
        *reasoning("Think", "ing"),
        *text("Hello", " there"),
        *tool_call("call_1", "lookup", ['{"q":', '"x"}']),
        *interaction(),
        *text("Done."),
    ],
    completed(usage=(4, 9)),
)


def stream_events(body: bytes, **kwargs: Any) -> list[Any]:
    return list(client(sse(body)).responses.create(model="echo", input="hi", stream=True, **kwargs))


def test_responses_sdk_typed_events_end_in_completed() -> None:
    events = stream_events(responses_bytes(RESPONSES_LOG))
    assert isinstance(events[0], ResponseCreatedEvent)
    assert isinstance(events[-1], ResponseCompletedEvent)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.status == "completed"
    assert final.output_text == "Hello thereDone."
    assert final.usage is not None and final.usage.total_tokens == 13
    assert [item.type for item in final.output] == [
        "reasoning",
        "message",
        "function_call",
        "message",
    ]


def test_responses_sdk_stream_helper_assembles_final_response() -> None:
    with client(sse(responses_bytes(RESPONSES_LOG))).responses.stream(
        model="echo", input="hi"
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "Hello thereDone."
    assert final.output_text == "Hello thereDone."
    call = final.output[2]
    assert call.type == "function_call"
    assert (call.call_id, call.name, json.loads(call.arguments)) == ("call_1", "lookup", {"q": "x"})


@pytest.mark.parametrize(
    ("finish_reason", "reason"),
    [("length", "max_output_tokens"), ("content_filter", "content_filter")],
)
def test_responses_sdk_incomplete(finish_reason: str, reason: str) -> None:
    log = make_log("run_1", text("trunc"), completed(finish_reason))
    events = stream_events(responses_bytes(log))
    assert isinstance(events[-1], ResponseIncompleteEvent)
    assert events[-1].response.status == "incomplete"
    assert events[-1].response.incomplete_details is not None
    assert events[-1].response.incomplete_details.reason == reason


@pytest.mark.parametrize("code", list(ErrorCode))
def test_responses_sdk_failed_is_typed_and_never_success(code: ErrorCode) -> None:
    log = make_log("run_1", text("part"), failed(code, "Safe message."))
    events = stream_events(responses_bytes(log))
    terminal = events[-1]
    assert isinstance(terminal, ResponseFailedEvent)
    assert terminal.response.status == "failed"
    assert terminal.response.error is not None
    assert terminal.response.error.code in RESPONSES_ERROR_CODES
    assert terminal.response.error.message == "Safe message."
    with client(sse(responses_bytes(log))).responses.stream(model="echo", input="hi") as stream:
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()


def test_responses_sdk_cancelled_is_failed_with_status_cancelled() -> None:
    log = make_log("run_1", text("part"), cancelled(CancelReason.REQUESTED))
    events = stream_events(responses_bytes(log))
    terminal = events[-1]
    assert isinstance(terminal, ResponseFailedEvent)
    assert terminal.response.status == "cancelled"
    assert terminal.response.error is None
    assert terminal.response.output[0].status == "incomplete"  # type: ignore[union-attr]
    with client(sse(responses_bytes(log))).responses.stream(model="echo", input="hi") as stream:
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()


def test_responses_sdk_resume_with_starting_after_on_raw_stream() -> None:
    full = stream_events(responses_bytes(RESPONSES_LOG))
    for n in (0, 5, len(full) // 2, len(full) - 2):

        def handler(request: Any, n: int = n) -> Any:
            assert request.url.params["starting_after"] == str(n)
            assert request.url.params["stream"] == "true"
            body = responses_bytes(RESPONSES_LOG, starting_after=n)
            return http.Response(200, headers={"content-type": "text/event-stream"}, content=body)

        resumed = list(
            client(handler).responses.retrieve("resp_abc", stream=True, starting_after=n)
        )
        assert [e.sequence_number for e in resumed] == list(range(n + 1, len(full)))
        assert [e.to_dict() for e in resumed] == [e.to_dict() for e in full[n + 1 :]]


def test_responses_sdk_stream_helper_resume_filters_a_full_stream() -> None:
    # The helper asks for the whole stream (no starting_after on the wire) and drops events
    # <= N itself; an unfiltered GET serves exactly that.
    def handler(request: Any) -> Any:
        assert "starting_after" not in request.url.params
        return sse(responses_bytes(RESPONSES_LOG))(request)

    with client(handler).responses.stream(response_id="resp_abc", starting_after=6) as stream:
        numbers = [e.sequence_number for e in stream]
        final = stream.get_final_response()
    assert numbers[0] == 7
    assert final.output_text == "Hello thereDone."


def test_responses_sdk_slow_consumer_error_event_carries_resume_cursor() -> None:
    projection = ResponsesProjection(response_id="resp_abc", model="echo", created_at=1)
    body = projection.events(RESPONSES_LOG[:4]) + projection.slow_consumer(4)
    events = stream_events(body)
    error = events[-1]
    assert isinstance(error, ResponseErrorEvent)
    assert error.code == "slow_consumer"
    assert error.sequence_number == events[-2].sequence_number
    assert f"starting_after={error.sequence_number}" in error.message


@pytest.mark.parametrize(
    ("log", "status"),
    [
        ([], "queued"),
        (RESPONSES_LOG[:7], "in_progress"),
        (make_log("run_1", interaction(), None), "in_progress"),
        (RESPONSES_LOG, "completed"),
        (make_log("run_1", text("x"), completed("length")), "incomplete"),
        (make_log("run_1", text("x"), failed()), "failed"),
        (make_log("run_1", text("x"), cancelled()), "cancelled"),
    ],
)
def test_responses_sdk_retrieve_parses_response_object(log: list[Event], status: str) -> None:
    body = response_object(
        RunOutput.from_events(log), response_id="resp_abc", model="echo", created_at=1700000000
    )

    def handler(request: Any) -> Any:
        return http.Response(200, json=body)

    response = client(handler).responses.retrieve("resp_abc")
    assert response.status == status
    assert response.id == "resp_abc"


def test_event_type_has_no_unmapped_terminal() -> None:
    # Guard for the tests above: they cover every terminal the engine can write.
    assert {EventType.COMPLETED, EventType.FAILED, EventType.CANCELLED} == {
        e.type
        for e in (TEXT_LOG[-1], make_log("r", [], failed())[-1], make_log("r", [], cancelled())[-1])
    }
