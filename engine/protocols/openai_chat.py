"""The OpenAI Chat Completions projection: ``chat.completion.chunk`` frames over SSE.

Theory of operation
-------------------
One :class:`ChatCompletionsProjection` serves one HTTP response. Every chunk shares the
response's ``completion_id``; each native event becomes at most one frame::

    run.started            {"delta": {"role": "assistant", "content": ""}}
    text.delta             {"delta": {"content": ...}}
    tool_call.started      {"delta": {"tool_calls": [{index, id, type, function: {name}}]}}
    tool_call.delta        {"delta": {"tool_calls": [{index, function: {arguments}}]}}
    tool_call.ready        nothing if deltas were sent, else the full arguments as one delta
    usage                  nothing: remembered, the last report wins (as in the engine)
    interaction.required   an SSE comment ``: interaction_required {json}``
    reasoning.delta, tool.result, step.*, data, interaction.resolved
                           nothing: Chat Completions has no slot for them, and an unknown
                           delta key is exactly what strict clients choke on
    run.completed          finish_reason chunk, [usage chunk], ``data: [DONE]``
    run.failed             ``data: {"error": {...}}`` with the engine's code, no [DONE]
    run.cancelled          ``data: {"error": {... "code": "cancelled"}}``, no [DONE]

Why failures are error frames and never ``finish_reason: "stop"`` plus ``[DONE]``: the
official SDKs treat a clean ``[DONE]`` as success, and raise ``APIError`` on a payload with
a top-level ``error`` key. A stream that failed must never read as one that finished.

After the terminal (or after a slow-consumer or gap error frame) the projection is
:attr:`~ChatCompletionsProjection.done` and emits nothing more, so a stream can never carry
two endings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from .._errors import http_status_for
from .._events import (
    Cancelled,
    CancelReason,
    Completed,
    ErrorCode,
    Event,
    EventType,
    Failed,
    Usage,
    outcome_from_event,
)
from .._output import RunOutput, arguments_json
from ._base import DispatchingProjection, interaction_comment
from ._sse import SSE_HEADERS, dumps, sse_data

__all__ = [
    "ChatCompletionsProjection",
    "arguments_json",
    "chat_completion_object",
    "openai_error",
]

_DONE = b"data: [DONE]\n\n"

#: Why a run was cancelled, in words a user can read (the error frame's ``message``).
_CANCEL_MESSAGES: Mapping[CancelReason, str] = {
    CancelReason.REQUESTED: "The run was cancelled by request.",
    CancelReason.CLIENT_DISCONNECTED: "The run was cancelled because its client disconnected.",
    CancelReason.SHUTDOWN: "The run was cancelled because the server is shutting down.",
}


def _error_type(code: ErrorCode) -> str:
    """OpenAI's coarse error ``type`` for an engine code, derived from its HTTP status so
    the two can never disagree. Clients key on ``code``; ``type`` is informational."""
    status = http_status_for(code)
    if status == 429:
        return "rate_limit_error"
    if status < 500:
        return "invalid_request_error"
    return "server_error"


def openai_error(outcome: Failed | Cancelled) -> dict[str, Any]:
    """The OpenAI error payload ``{"error": {message, type, code, param}}`` for a failed or
    cancelled run: the body of the Chat error frame and of the OpenAI routes' HTTP errors.

    A failure carries the engine's own code, its user-safe message and the correlation id
    that finds the traceback in the server log; a cancellation carries code and type
    ``cancelled`` and a message saying why.
    """
    if isinstance(outcome, Failed):
        err = outcome.error
        return {
            "error": {
                "message": err.message,
                "type": _error_type(err.code),
                "code": str(err.code),
                "param": None,
                "correlation_id": err.correlation_id,
            }
        }
    return {
        "error": {
            "message": _CANCEL_MESSAGES[outcome.reason],
            "type": "cancelled",
            "code": "cancelled",
            "param": None,
        }
    }


def _usage_dict(usage: Usage | None) -> dict[str, int]:
    # Zeros when the producer never reported usage: the client asked for a usage chunk and
    # OpenAI's schema makes all three counts required integers.
    usage = usage or Usage()
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def _usage_from(data: Mapping[str, Any]) -> Usage:
    return Usage(int(data.get("input_tokens", 0)), int(data.get("output_tokens", 0)))


class ChatCompletionsProjection(DispatchingProjection):
    """Native events → OpenAI ``chat.completion.chunk`` SSE frames, for one response.

    ``include_usage`` mirrors the request's ``stream_options.include_usage``: every chunk
    then carries ``"usage": null`` and one extra chunk with ``choices: []`` and the usage
    goes just before ``[DONE]``.
    """

    headers = SSE_HEADERS

    def __init__(
        self, *, completion_id: str, model: str, created: int, include_usage: bool = False
    ) -> None:
        self.completion_id = completion_id
        self.model = model
        self.created = created
        self.include_usage = include_usage
        base = (
            f'data: {{"id":{dumps(completion_id)},"object":"chat.completion.chunk",'
            f'"created":{created},"model":{dumps(model)},'
        ).encode()
        # Every chunk is head + delta JSON + tail: the hot path (a text delta) costs one
        # dumps() of the text and two concatenations.
        usage_null = b'"usage":null,' if include_usage else b""
        self._head = base + usage_null + b'"choices":[{"index":0,"delta":'
        self._tail = b',"logprobs":null,"finish_reason":null}]}\n\n'
        self._usage_head = base + b'"choices":[],"usage":'
        self._started = False
        self._done = False
        self._usage: Usage | None = None
        #: tool_call_id -> index, in order of first appearance (OpenAI's ``index``).
        self._tool_index: dict[str, int] = {}
        #: tool calls for which argument text has been sent.
        self._tool_args_sent: set[str] = set()

    # -- Projection ------------------------------------------------------------------

    def gap(self, first: int, last: int) -> bytes:
        # Chat Completions cannot resume, so content the client never got makes the answer
        # wrong, not late: end it with an error rather than skip silently.
        return self._final_error(
            "server_error",
            "gap",
            f"Events {first}..{last} of this run are no longer retained; "
            "the completion is incomplete.",
        )

    def slow_consumer(self, resume_after: int) -> bytes:
        return self._final_error(
            "server_error",
            "slow_consumer",
            "The client fell too far behind the run and the stream was closed.",
        )

    def early_failure(self, failed: Failed) -> tuple[int, bytes]:
        return http_status_for(failed.error.code), dumps(openai_error(failed)).encode()

    # -- frames ----------------------------------------------------------------------

    def _chunk(self, delta: str) -> bytes:
        return self._head + delta.encode() + self._tail

    def _final_error(self, type: str, code: str, message: str) -> bytes:
        if self._done:
            return b""
        self._done = True
        return sse_data({"error": {"message": message, "type": type, "code": code, "param": None}})

    def _ensure_started(self, out: list[bytes]) -> None:
        # A connection that starts mid-log still opens with the role chunk, which some
        # clients use to create the assistant message.
        if not self._started:
            self._started = True
            out.append(self._chunk('{"role":"assistant","content":""}'))

    def _index_for(self, tool_call_id: str) -> int | None:
        """The tool call's index, or None the first time it is seen (and then assigned)."""
        index = self._tool_index.get(tool_call_id)
        if index is None:
            self._tool_index[tool_call_id] = len(self._tool_index)
        return index

    def _tool_open_chunk(self, tool_call_id: str, name: str, arguments: str) -> bytes:
        call = {
            "index": self._tool_index[tool_call_id],
            "id": tool_call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        return self._chunk(dumps({"tool_calls": [call]}))

    def _tool_args_chunk(self, index: int, arguments: str) -> bytes:
        return self._chunk(
            f'{{"tool_calls":[{{"index":{index},"function":{{"arguments":{dumps(arguments)}}}}}]}}'
        )

    # -- handlers --------------------------------------------------------------------

    def _run_started(self, event: Event, out: list[bytes]) -> None:
        self._ensure_started(out)

    def _text_delta(self, event: Event, out: list[bytes]) -> None:
        self._ensure_started(out)
        out.append(self._chunk('{"content":' + dumps(event.data["text"]) + "}"))

    def _tool_call_started(self, event: Event, out: list[bytes]) -> None:
        self._ensure_started(out)
        call_id = event.data["tool_call_id"]
        if self._index_for(call_id) is None:
            out.append(self._tool_open_chunk(call_id, event.data["name"], ""))

    def _tool_call_delta(self, event: Event, out: list[bytes]) -> None:
        self._ensure_started(out)
        call_id = event.data["tool_call_id"]
        delta = event.data["delta"]
        self._tool_args_sent.add(call_id)
        index = self._index_for(call_id)
        if index is None:
            # Its start was before this connection's first event: open it here. The name
            # is unknown; an empty one is better than dropping the arguments.
            out.append(self._tool_open_chunk(call_id, "", delta))
        else:
            out.append(self._tool_args_chunk(index, delta))

    def _tool_call_ready(self, event: Event, out: list[bytes]) -> None:
        self._ensure_started(out)
        call_id = event.data["tool_call_id"]
        if call_id in self._tool_args_sent:
            return  # the deltas already carried the arguments
        self._tool_args_sent.add(call_id)
        arguments = arguments_json(event.data.get("arguments", {}))
        index = self._index_for(call_id)
        if index is None:
            out.append(self._tool_open_chunk(call_id, event.data.get("name", ""), arguments))
        else:
            out.append(self._tool_args_chunk(index, arguments))

    def _usage_event(self, event: Event, out: list[bytes]) -> None:
        self._usage = _usage_from(event.data)

    def _interaction_required(self, event: Event, out: list[bytes]) -> None:
        # Chat Completions has no event for "waiting for a human". A comment keeps the
        # stream open and visible to anyone reading raw SSE, and every client ignores it.
        out.append(interaction_comment(event.data))

    def _completed(self, event: Event, out: list[bytes]) -> None:
        self._ensure_started(out)
        self._done = True
        data = event.data
        reason = data.get("finish_reason") or "stop"
        out.append(
            self._head
            + b"{}"
            + b',"logprobs":null,"finish_reason":'
            + dumps(reason).encode()
            + b"}]}\n\n"
        )
        if self.include_usage:
            usage = _usage_from(data["usage"]) if data.get("usage") else self._usage
            out.append(self._usage_head + dumps(_usage_dict(usage)).encode() + b"}\n\n")
        out.append(_DONE)

    def _ended_badly(self, event: Event, out: list[bytes]) -> None:
        outcome = outcome_from_event(event)
        assert isinstance(outcome, Failed | Cancelled)
        self._done = True
        out.append(sse_data(openai_error(outcome)))

    # One table per class (not per connection): dispatch is one dict lookup per event.
    _HANDLERS: ClassVar[
        Mapping[EventType, Callable[[ChatCompletionsProjection, Event, list[bytes]], None]]
    ] = {
        EventType.RUN_STARTED: _run_started,
        EventType.TEXT_DELTA: _text_delta,
        EventType.TOOL_CALL_STARTED: _tool_call_started,
        EventType.TOOL_CALL_DELTA: _tool_call_delta,
        EventType.TOOL_CALL_READY: _tool_call_ready,
        EventType.USAGE: _usage_event,
        EventType.INTERACTION_REQUIRED: _interaction_required,
        EventType.COMPLETED: _completed,
        EventType.FAILED: _ended_badly,
        EventType.CANCELLED: _ended_badly,
    }


def chat_completion_object(
    output: RunOutput, *, completion_id: str, model: str, created: int
) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` object for a completed run's output.

    Built from the run's :class:`~engine._output.RunOutput` (never from its log, whose head
    may be trimmed), in O(size of the answer). Content is the concatenated text (``None``
    when the answer is only tool calls, as OpenAI does); tool calls are listed in order of
    first appearance, their arguments being the streamed deltas when there were any, else
    ``tool_call.ready``'s (the same rule as the stream, so both answers agree); usage is
    the run's.

    Raises :class:`ValueError` for a run that did not complete: a ``chat.completion`` has no
    way to say "failed" or "cancelled", and dressing such a run up as one is precisely the
    failure-looks-like-success bug. Answer those with :func:`openai_error` instead.
    """
    outcome = output.outcome
    if not isinstance(outcome, Completed):
        state = "did not finish" if outcome is None else outcome.status.value
        raise ValueError(f"a chat.completion needs a completed run; this one {state}")
    tool_calls = [
        {
            "id": item.call_id,
            "type": "function",
            "function": {"name": item.name, "arguments": item.text()},
        }
        for item in output.function_calls()
    ]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": output.text() if output.has_text() or not tool_calls else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": outcome.finish_reason or "stop",
            }
        ],
        "usage": _usage_dict(output.usage),
    }
