"""The OpenAI Responses API projection: typed, numbered events over SSE.

Theory of operation
-------------------
Every frame is ``event: <type>`` plus ``data: {"type": <type>, ..., "sequence_number": n}``
(OpenAI sends both lines). ``sequence_number`` counts wire events from 0, and it is a pure
function of the run's log: the same log always yields the same events with the same
numbers and the same item ids. That is what makes ``starting_after`` work without storing
wire events anywhere: a resuming client gets a *new* projection with ``starting_after=N``
that is fed the log again from seq 1; it replays the state machine silently and writes only
the events numbered above N. So the resumed stream is byte for byte the suffix of the
original one. A projection must therefore see the log from its first event: one whose first
event is not ``run.started`` (a trimmed log, a ``gap``) cannot know the numbers, so it says
so with an ``error`` event and writes nothing more.

Mapping (each output item's events are contiguous, items are closed before the next opens)::

    run.started        response.created, response.in_progress
    text.delta         [output_item.added (message), content_part.added (output_text)]
                       response.output_text.delta
    reasoning.delta    [output_item.added (reasoning), content_part.added (reasoning_text)]
                       response.reasoning_text.delta
    tool_call.started  output_item.added (function_call)
    tool_call.delta    response.function_call_arguments.delta
    tool_call.ready    [one delta with all arguments, if none streamed]
                       function_call_arguments.done, output_item.done
    step.started|finished   closes the open message/reasoning item (a step is one model
                       call; its text is one message)
    usage              remembered (the last report wins, as in the engine)
    interaction.required    an SSE comment ``: interaction_required {json}`` (see below)
    tool.result, data, interaction.resolved    nothing (no slot in the Responses stream)
    run.completed      closes open items (…text.done, content_part.done, output_item.done),
                       then response.completed, or response.incomplete with
                       incomplete_details.reason max_output_tokens (finish_reason length)
                       or content_filter
    run.failed         response.failed, response.error.code from the spec's enum
    run.cancelled      response.failed whose response.status is "cancelled", error null

Why these choices (verified against the official ``openai`` Python SDK):

- *Cancelled* is ``response.failed`` with status ``cancelled``: the SDK has no event type for
  a cancellation, and an unknown type is a validation error with strict validation on and a
  mis-typed object (the union's first member) without it. ``response.failed`` is typed, its
  ``Response.status`` admits ``"cancelled"``, and ``ResponseStream.get_final_response()``
  raises because no ``response.completed`` came: never read as success. ``error`` stays
  null because the spec's 20 codes have none for a cancellation, and calling a user's cancel
  ``server_error`` would count it as an outage.
- *Interactions* are an SSE comment for the same reason: comments are dropped by the SDK's
  SSE decoder, so no client can choke on them, and the stream stays visibly alive.
  Non-streaming calls answer 202 (the app's job). The comment is not numbered; a resumed
  stream carries it only if it lies after event N.
- *Transport errors* (slow consumer, gap) are ``error`` events with a free-form ``code``
  (the spec allows any string there). Their ``sequence_number`` is that of the last event
  the client could have received, so a client resuming from "the last number I saw" loses
  nothing.

What a resumed stream (``starting_after=N``) begins with: exactly the event numbered
``N + 1``, whatever it is, often a delta in the middle of an item. Nothing is repeated and
``response.created`` is not re-sent. A client resuming with the raw stream already holds
events 0..N; one that does not can fetch ``GET /v1/responses/{id}``
(:func:`response_object`) for the snapshot. (The SDK's ``responses.stream(response_id=...,
starting_after=N)`` helper instead asks for the whole stream and filters on its side, which
this projection also serves, since without ``starting_after`` it writes everything.)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Literal

from .._errors import http_status_for
from .._events import ErrorCode, Event, EventType, Failed, Usage
from ._base import DispatchingProjection, interaction_comment
from ._sse import SSE_HEADERS, dumps, sse_frame
from .openai_chat import arguments_json, openai_error

__all__ = [
    "RESPONSES_ERROR_CODES",
    "ResponsesProjection",
    "response_error_code",
    "response_object",
]

#: Every value ``response.error.code`` may take, per the Responses API specification.
RESPONSES_ERROR_CODES: frozenset[str] = frozenset(
    {
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
)

#: Engine code -> spec code. Only a rate limit has a spec counterpart; everything else is a
#: server-side failure as far as the Responses API can say. The engine's own code and
#: message reach the user through ``message`` and the native API.
_ERROR_CODE_TABLE: Mapping[ErrorCode, str] = {
    ErrorCode.SERVER_ERROR: "server_error",
    ErrorCode.UPSTREAM_ERROR: "server_error",
    ErrorCode.RATE_LIMIT_EXCEEDED: "rate_limit_exceeded",
    ErrorCode.INVALID_REQUEST: "server_error",
    ErrorCode.TIMEOUT: "server_error",
    ErrorCode.STALLED: "server_error",
    ErrorCode.INTERACTION_TIMEOUT: "server_error",
    ErrorCode.INTERACTION_NOT_SUPPORTED: "server_error",
    ErrorCode.CONTENT_FILTER: "server_error",
}

_INCOMPLETE_REASONS: Mapping[str, str] = {
    "length": "max_output_tokens",
    "content_filter": "content_filter",
}

_NEVER = sys.maxsize  # a starting_after that suppresses every event: snapshot-only use

ItemKind = Literal["message", "reasoning", "function_call"]
_ID_PREFIX: Mapping[ItemKind, str] = {"message": "msg", "reasoning": "rs", "function_call": "fc"}


def response_error_code(code: ErrorCode | str) -> str:
    """The Responses API ``error.code`` for an engine error code (``server_error`` for any
    code the table does not know)."""
    try:
        return _ERROR_CODE_TABLE.get(ErrorCode(code), "server_error")
    except ValueError:
        return "server_error"


class _Item:
    """One output item being assembled: a message, a reasoning item or a function call."""

    __slots__ = ("call_id", "chunks", "id", "index", "kind", "name", "status", "streamed", "where")

    def __init__(
        self, kind: ItemKind, index: int, id: str, call_id: str = "", name: str = ""
    ) -> None:
        self.kind: ItemKind = kind
        self.index = index
        self.id = id
        # The JSON members locating a delta, built once per item for the hot path.
        self.where = f'"item_id":{dumps(id)},"output_index":{index}'
        if kind != "function_call":
            self.where += ',"content_index":0'
        self.call_id = call_id
        self.name = name
        self.chunks: list[str] = []  # text, reasoning text or argument text
        self.status = "in_progress"
        self.streamed = False  # a function call's arguments arrived as deltas

    def text(self) -> str:
        if len(self.chunks) > 1:
            self.chunks[:] = ["".join(self.chunks)]  # keep repeated snapshots linear
        return self.chunks[0] if self.chunks else ""

    def part(self) -> dict[str, Any]:
        if self.kind == "message":
            return {"type": "output_text", "text": self.text(), "annotations": [], "logprobs": []}
        return {"type": "reasoning_text", "text": self.text()}

    def as_dict(self, *, added: bool = False) -> dict[str, Any]:
        """The item as the Response object lists it; ``added`` gives the empty shape sent in
        ``output_item.added`` (clients append the content part themselves)."""
        if self.kind == "function_call":
            return {
                "id": self.id,
                "type": "function_call",
                "status": self.status,
                "call_id": self.call_id,
                "name": self.name,
                "arguments": "" if added else self.text(),
            }
        content = [] if added else [self.part()]
        if self.kind == "message":
            return {
                "id": self.id,
                "type": "message",
                "status": self.status,
                "role": "assistant",
                "content": content,
            }
        return {
            "id": self.id,
            "type": "reasoning",
            "status": self.status,
            "summary": [],
            "content": content,
        }


class ResponsesProjection(DispatchingProjection):
    """Native events → Responses API stream events, numbered from 0, for one connection.

    Feed it the run's log from seq 1. With ``starting_after=N`` it writes only the events
    numbered above N (see the module docstring for what such a stream begins with).
    ``background`` is echoed in every Response object, so stream and ``GET`` agree.
    """

    headers = SSE_HEADERS

    def __init__(
        self,
        *,
        response_id: str,
        model: str,
        created_at: int,
        starting_after: int | None = None,
        background: bool = False,
    ) -> None:
        self.response_id = response_id
        self.model = model
        self.created_at = created_at
        self.background = background
        self._after = -1 if starting_after is None else starting_after
        self._seq = 0  # the next sequence_number
        self._suffix = response_id.removeprefix("resp_")
        self._items: list[_Item] = []
        self._text: _Item | None = None  # the open message item
        self._reasoning: _Item | None = None  # the open reasoning item
        self._calls: dict[str, _Item] = {}  # function calls by tool_call_id
        self._usage: Usage | None = None
        self._status = "queued"
        self._error: dict[str, Any] | None = None
        self._incomplete: dict[str, Any] | None = None
        self._seen_any = False
        self._done = False

    @property
    def last_sequence_number(self) -> int:
        """The number a client that received everything so far resumes after (-1: none)."""
        return max(self._seq - 1, self._after)

    @property
    def numbered(self) -> int:
        """How many events of the whole stream were numbered so far, written or not."""
        return self._seq

    # -- Projection ------------------------------------------------------------------

    def _admit(self, event: Event, out: list[bytes]) -> bool:
        # Numbers are a function of the whole log: a log that does not start at seq 1
        # cannot be numbered, so say so once and stop.
        if not self._seen_any:
            self._seen_any = True
            if event.seq != 1:
                out.append(self._unrecoverable(1, event.seq - 1))
                return False
        return True

    def gap(self, first: int, last: int) -> bytes:
        self._seen_any = True
        return self._unrecoverable(first, last)

    def slow_consumer(self, resume_after: int) -> bytes:
        if self._done:
            return b""
        self._done = True
        cursor = self.last_sequence_number
        return self._error_event(
            "slow_consumer",
            "The client fell too far behind the run and the stream was closed; "
            f"resume with starting_after={cursor}.",
            cursor,
        )

    def early_failure(self, failed: Failed) -> tuple[int, bytes]:
        return http_status_for(failed.error.code), dumps(openai_error(failed)).encode()

    # -- the Response object -----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The Response object as of the events seen so far (what ``GET`` returns)."""
        return self._response(self._status, [item.as_dict() for item in self._items])

    def _response(self, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        usage = self._usage if status not in ("queued", "in_progress") else None
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": self.background,
            "error": self._error,
            "incomplete_details": self._incomplete,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": _usage_dict(usage) if usage is not None else None,
        }

    # -- frames ----------------------------------------------------------------------

    def _number(self) -> int | None:
        """Take the next sequence_number; None if this event is at or before the cursor
        (then nothing is built at all: replaying a long log for a resume stays cheap)."""
        n = self._seq
        self._seq = n + 1
        return n if n > self._after else None

    def _emit(self, out: list[bytes], type: str, fields: dict[str, Any]) -> None:
        n = self._number()
        if n is not None:
            out.append(sse_frame(dumps({"type": type, **fields, "sequence_number": n}), event=type))

    def _emit_delta(self, out: list[bytes], type: str, item: _Item, delta: str) -> None:
        # The hot path: one frame per token, built from a fixed prefix.
        n = self._number()
        if n is None:
            return
        tail = ',"logprobs":[]' if item.kind == "message" else ""
        data = (
            f'{{"type":"{type}",{item.where},"delta":{dumps(delta)}{tail},"sequence_number":{n}}}'
        )
        out.append(sse_frame(data, event=type))

    def _error_event(self, code: str, message: str, sequence_number: int) -> bytes:
        payload = {
            "type": "error",
            "code": code,
            "message": message,
            "param": None,
            "sequence_number": sequence_number,
        }
        return sse_frame(dumps(payload), event="error")

    def _unrecoverable(self, first: int, last: int) -> bytes:
        self._done = True
        return self._error_event(
            "gap",
            f"Events {first}..{last} of this run are no longer retained, so this stream "
            "cannot continue with consistent sequence numbers; fetch the response instead.",
            self.last_sequence_number,
        )

    # -- items -----------------------------------------------------------------------

    def _open(self, out: list[bytes], kind: ItemKind, call_id: str = "", name: str = "") -> _Item:
        index = len(self._items)
        item = _Item(kind, index, f"{_ID_PREFIX[kind]}_{self._suffix}_{index}", call_id, name)
        self._items.append(item)
        self._emit(
            out,
            "response.output_item.added",
            {"output_index": index, "item": item.as_dict(added=True)},
        )
        if kind != "function_call":
            part = item.part()
            self._emit(
                out,
                "response.content_part.added",
                {"item_id": item.id, "output_index": index, "content_index": 0, "part": part},
            )
        return item

    def _close(self, out: list[bytes], item: _Item, status: str) -> None:
        item.status = status
        where = {"item_id": item.id, "output_index": item.index}
        if item.kind == "function_call":
            self._emit(
                out, "response.function_call_arguments.done", {**where, "arguments": item.text()}
            )
        else:
            text_done: dict[str, Any] = {**where, "content_index": 0, "text": item.text()}
            if item.kind == "message":
                text_done["logprobs"] = []
                self._emit(out, "response.output_text.done", text_done)
            else:
                self._emit(out, "response.reasoning_text.done", text_done)
            self._emit(
                out,
                "response.content_part.done",
                {**where, "content_index": 0, "part": item.part()},
            )
        self._emit(
            out, "response.output_item.done", {"output_index": item.index, "item": item.as_dict()}
        )

    def _close_text(self, out: list[bytes], status: str = "completed") -> None:
        if self._text is not None:
            item, self._text = self._text, None
            self._close(out, item, status)
        if self._reasoning is not None:
            item, self._reasoning = self._reasoning, None
            self._close(out, item, status)

    def _close_all(self, out: list[bytes], status: str) -> None:
        self._close_text(out, status)
        for item in self._calls.values():
            if item.status == "in_progress":
                self._close(out, item, status)

    def _call(self, out: list[bytes], data: Mapping[str, Any]) -> _Item:
        call_id = data["tool_call_id"]
        item = self._calls.get(call_id)
        if item is None:
            self._close_text(out)
            item = self._open(out, "function_call", call_id, data.get("name") or "")
            self._calls[call_id] = item
        return item

    # -- handlers --------------------------------------------------------------------

    def _ensure_started(self, out: list[bytes]) -> None:
        if self._status == "queued":
            self._status = "in_progress"
            response = self._response("in_progress", [])
            self._emit(out, "response.created", {"response": response})
            self._emit(out, "response.in_progress", {"response": response})

    def _run_started(self, event: Event, out: list[bytes]) -> None:
        self._ensure_started(out)

    def _text_delta(self, event: Event, out: list[bytes]) -> None:
        self._ensure_started(out)
        item = self._text
        if item is None:
            if self._reasoning is not None:
                self._close_text(out)
            item = self._text = self._open(out, "message")
        delta = event.data["text"]
        item.chunks.append(delta)
        self._emit_delta(out, "response.output_text.delta", item, delta)

    def _reasoning_delta(self, event: Event, out: list[bytes]) -> None:
        self._ensure_started(out)
        item = self._reasoning
        if item is None:
            if self._text is not None:
                self._close_text(out)
            item = self._reasoning = self._open(out, "reasoning")
        delta = event.data["text"]
        item.chunks.append(delta)
        self._emit_delta(out, "response.reasoning_text.delta", item, delta)

    def _tool_call_started(self, event: Event, out: list[bytes]) -> None:
        self._ensure_started(out)
        self._call(out, event.data)

    def _tool_call_delta(self, event: Event, out: list[bytes]) -> None:
        self._ensure_started(out)
        item = self._call(out, event.data)
        if item.status != "in_progress":
            return  # arguments after the call was declared ready: ignore, it is final
        delta = event.data["delta"]
        item.streamed = True
        item.chunks.append(delta)
        self._emit_delta(out, "response.function_call_arguments.delta", item, delta)

    def _tool_call_ready(self, event: Event, out: list[bytes]) -> None:
        self._ensure_started(out)
        item = self._call(out, event.data)
        if item.status != "in_progress":
            return
        item.name = event.data.get("name") or item.name
        if not item.streamed:
            # Clients that assemble arguments from deltas must see them too.
            arguments = arguments_json(event.data.get("arguments", {}))
            item.chunks.append(arguments)
            self._emit_delta(out, "response.function_call_arguments.delta", item, arguments)
        self._close(out, item, "completed")

    def _step_boundary(self, event: Event, out: list[bytes]) -> None:
        self._close_text(out)

    def _usage_event(self, event: Event, out: list[bytes]) -> None:
        self._usage = _usage_from(event.data)

    def _interaction_required(self, event: Event, out: list[bytes]) -> None:
        # Not numbered: it sits between event _seq-1 and _seq, so it belongs to a resumed
        # stream exactly when the next numbered event does.
        if self._seq > self._after:
            out.append(interaction_comment(event.data))

    def _completed(self, event: Event, out: list[bytes]) -> None:
        self._ensure_started(out)
        self._done = True
        data = event.data
        if data.get("usage"):
            self._usage = _usage_from(data["usage"])
        reason = _INCOMPLETE_REASONS.get(data.get("finish_reason") or "stop")
        if reason is None:
            self._close_all(out, "completed")
            self._status = "completed"
            self._emit(out, "response.completed", {"response": self.snapshot()})
        else:
            self._close_all(out, "incomplete")
            self._status = "incomplete"
            self._incomplete = {"reason": reason}
            self._emit(out, "response.incomplete", {"response": self.snapshot()})

    def _ended_badly(self, out: list[bytes], status: str) -> None:
        # No item events after a failure: the terminal's Response lists what was produced,
        # with unfinished items marked incomplete.
        self._ensure_started(out)
        self._done = True
        for item in self._items:
            if item.status == "in_progress":
                item.status = "incomplete"
        self._text = self._reasoning = None
        self._status = status
        self._emit(out, "response.failed", {"response": self.snapshot()})

    def _failed(self, event: Event, out: list[bytes]) -> None:
        err = event.data["error"]
        self._error = {"code": response_error_code(err["code"]), "message": err["message"]}
        self._ended_badly(out, "failed")

    def _cancelled(self, event: Event, out: list[bytes]) -> None:
        self._ended_badly(out, "cancelled")

    # One table per class (not per connection): dispatch is one dict lookup per event.
    _HANDLERS: ClassVar[
        Mapping[EventType, Callable[[ResponsesProjection, Event, list[bytes]], None]]
    ] = {
        EventType.RUN_STARTED: _run_started,
        EventType.TEXT_DELTA: _text_delta,
        EventType.REASONING_DELTA: _reasoning_delta,
        EventType.TOOL_CALL_STARTED: _tool_call_started,
        EventType.TOOL_CALL_DELTA: _tool_call_delta,
        EventType.TOOL_CALL_READY: _tool_call_ready,
        EventType.STEP_STARTED: _step_boundary,
        EventType.STEP_FINISHED: _step_boundary,
        EventType.USAGE: _usage_event,
        EventType.INTERACTION_REQUIRED: _interaction_required,
        EventType.COMPLETED: _completed,
        EventType.FAILED: _failed,
        EventType.CANCELLED: _cancelled,
    }


def _usage_from(data: Mapping[str, Any]) -> Usage:
    return Usage(int(data.get("input_tokens", 0)), int(data.get("output_tokens", 0)))


def _usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        # cache_write_tokens: required by openai-python 3.x's schema; older ones ignore it.
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def response_object(
    events: Iterable[Event],
    *,
    response_id: str,
    model: str,
    created_at: int,
    background: bool = False,
) -> dict[str, Any]:
    """The full Response object for any state of a run's log: ``queued`` (no event yet),
    ``in_progress`` (also while awaiting input), ``completed``, ``incomplete``, ``failed``
    or ``cancelled``. For a finished run it equals the ``response`` of the stream's terminal
    event: both come from the same state machine, run silently here."""
    projection = ResponsesProjection(
        response_id=response_id,
        model=model,
        created_at=created_at,
        starting_after=_NEVER,
        background=background,
    )
    # A snapshot needs no sequence numbers, so a log that no longer starts at seq 1 is
    # still summarised rather than refused.
    projection._seen_any = True
    projection.events(list(events))
    return projection.snapshot()
