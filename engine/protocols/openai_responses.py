"""The OpenAI Responses API projection: typed, numbered events over SSE.

Theory of operation
-------------------
Every frame is ``event: <type>`` plus ``data: {"type": <type>, ..., "sequence_number": n}``
(OpenAI sends both lines). ``sequence_number`` counts wire events from 0, and it is a pure
function of the run's log: the same log always yields the same events with the same
numbers and the same item ids. That is what makes ``starting_after`` work without storing
wire events anywhere: a resuming client gets a *new* projection with ``starting_after=N``
that is fed the log again from seq 1; it replays the state machine silently and writes only
the events numbered above N. (Checking that N is not past the stream's end needs no replay:
:func:`responses_event_count` derives the count from the run's output.) So the resumed stream is byte for byte the suffix of the
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
(:func:`response_object`, built from the run's accumulated output, not its log) for the
snapshot. (The SDK's ``responses.stream(response_id=...,
starting_after=N)`` helper instead asks for the whole stream and filters on its side, which
this projection also serves, since without ``starting_after`` it writes everything.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from .._errors import http_status_for
from .._events import Completed, ErrorCode, Event, EventType, Failed, Usage, outcome_from_event
from .._output import ItemKind, OutputItem, RunOutput
from ._base import DispatchingProjection, interaction_comment
from ._sse import SSE_HEADERS, dumps, sse_frame
from .openai_chat import openai_error

__all__ = [
    "RESPONSES_ERROR_CODES",
    "ResponsesProjection",
    "response_error_code",
    "response_object",
    "responses_event_count",
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

#: Engine code -> spec code. Only a rate limit and a prompt too long for the model have spec
#: counterparts; everything else is a server-side failure as far as the Responses API can
#: say. The engine's own code and message reach the user through ``message`` and the native
#: API.
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
    ErrorCode.EVENT_TOO_LARGE: "server_error",
    ErrorCode.OUTPUT_TOO_LARGE: "server_error",
    ErrorCode.WORKER_LOST: "server_error",
    # The prompt does not fit the model: the spec's nearest code, a client-side one.
    ErrorCode.CONTEXT_LENGTH_EXCEEDED: "invalid_prompt",
    ErrorCode.MODEL_NOT_FOUND: "server_error",
    ErrorCode.STORE_UNAVAILABLE: "server_error",
}

_INCOMPLETE_REASONS: Mapping[str, str] = {
    "length": "max_output_tokens",
    "content_filter": "content_filter",
}

_DELTA_TYPES: Mapping[ItemKind, str] = {
    "message": "response.output_text.delta",
    "reasoning": "response.reasoning_text.delta",
    "function_call": "response.function_call_arguments.delta",
}
_ID_PREFIX: Mapping[ItemKind, str] = {"message": "msg", "reasoning": "rs", "function_call": "fc"}


def response_error_code(code: ErrorCode | str) -> str:
    """The Responses API ``error.code`` for an engine error code (``server_error`` for any
    code the table does not know)."""
    try:
        return _ERROR_CODE_TABLE.get(ErrorCode(code), "server_error")
    except ValueError:
        return "server_error"


def _item_id(suffix: str, item: OutputItem) -> str:
    return f"{_ID_PREFIX[item.kind]}_{suffix}_{item.index}"


def _part(item: OutputItem) -> dict[str, Any]:
    if item.kind == "message":
        return {"type": "output_text", "text": item.text(), "annotations": [], "logprobs": []}
    return {"type": "reasoning_text", "text": item.text()}


def _item_dict(suffix: str, item: OutputItem, *, added: bool = False) -> dict[str, Any]:
    """The item as the Response object lists it; ``added`` gives the empty shape sent in
    ``output_item.added`` (clients append the content part themselves)."""
    item_id = _item_id(suffix, item)
    if item.kind == "function_call":
        return {
            "id": item_id,
            "type": "function_call",
            "status": item.status,
            "call_id": item.call_id,
            "name": item.name,
            "arguments": "" if added else item.text(),
        }
    content = [] if added else [_part(item)]
    if item.kind == "message":
        return {
            "id": item_id,
            "type": "message",
            "status": item.status,
            "role": "assistant",
            "content": content,
        }
    return {
        "id": item_id,
        "type": "reasoning",
        "status": item.status,
        "summary": [],
        "content": content,
    }


def _response_dict(
    output: RunOutput,
    *,
    status: str,
    response_id: str,
    model: str,
    created_at: int,
    background: bool,
    items: bool = True,
) -> dict[str, Any]:
    """The Response object for ``output`` in ``status`` (one builder for the stream's
    Response objects and for the stored one, so they cannot disagree)."""
    usage = output.usage if status not in ("queued", "in_progress") else None
    outcome = output.outcome
    error = None
    if isinstance(outcome, Failed):
        error = {
            "code": response_error_code(outcome.error.code),
            "message": outcome.error.message,
        }
    incomplete = None
    if status == "incomplete" and isinstance(outcome, Completed):
        incomplete = {"reason": _INCOMPLETE_REASONS[outcome.finish_reason]}
    suffix = response_id.removeprefix("resp_")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": background,
        "error": error,
        "incomplete_details": incomplete,
        "model": model,
        "output": [_item_dict(suffix, item) for item in output.items] if items else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _usage_dict(usage) if usage is not None else None,
    }


def _status_of(output: RunOutput) -> str:
    """The Response ``status`` of an output: queued, in_progress (also while awaiting
    input), completed, incomplete, failed or cancelled."""
    outcome = output.outcome
    if outcome is None:
        return "in_progress" if output.started else "queued"
    if isinstance(outcome, Completed):
        return "incomplete" if outcome.finish_reason in _INCOMPLETE_REASONS else "completed"
    return "failed" if isinstance(outcome, Failed) else "cancelled"


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
        # The item state machine is the run's own (one set of rules for the stream and the
        # stored answer); this projection listens to it and writes the frames.
        self._output = RunOutput(self)
        self._out: list[bytes] = []  # where the listener writes, during events()
        self._where: list[str] = []  # per item: the JSON members locating its deltas
        self._status = "queued"
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
        """The Response object as of the events seen so far."""
        return self._response(self._status)

    def _response(self, status: str, *, items: bool = True) -> dict[str, Any]:
        return _response_dict(
            self._output,
            status=status,
            response_id=self.response_id,
            model=self.model,
            created_at=self.created_at,
            background=self.background,
            items=items,
        )

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

    def _emit_delta(self, out: list[bytes], type: str, item: OutputItem, delta: str) -> None:
        # The hot path: one frame per token, built from a fixed prefix.
        n = self._number()
        if n is None:
            return
        tail = ',"logprobs":[]' if item.kind == "message" else ""
        where = self._where[item.index]
        data = f'{{"type":"{type}",{where},"delta":{dumps(delta)}{tail},"sequence_number":{n}}}'
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

    # -- items (OutputListener: the run output's state machine calls these) -------------

    def item_opened(self, item: OutputItem) -> None:
        out = self._out
        item_id = _item_id(self._suffix, item)
        where = f'"item_id":{dumps(item_id)},"output_index":{item.index}'
        if item.kind != "function_call":
            where += ',"content_index":0'
        self._where.append(where)
        self._emit(
            out,
            "response.output_item.added",
            {"output_index": item.index, "item": _item_dict(self._suffix, item, added=True)},
        )
        if item.kind != "function_call":
            self._emit(
                out,
                "response.content_part.added",
                {
                    "item_id": item_id,
                    "output_index": item.index,
                    "content_index": 0,
                    "part": _part(item),
                },
            )

    def item_delta(self, item: OutputItem, delta: str) -> None:
        self._emit_delta(self._out, _DELTA_TYPES[item.kind], item, delta)

    def item_closed(self, item: OutputItem) -> None:
        out = self._out
        where = {"item_id": _item_id(self._suffix, item), "output_index": item.index}
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
                {**where, "content_index": 0, "part": _part(item)},
            )
        self._emit(
            out,
            "response.output_item.done",
            {"output_index": item.index, "item": _item_dict(self._suffix, item)},
        )

    # -- handlers --------------------------------------------------------------------

    def _ensure_started(self, out: list[bytes]) -> None:
        if self._status == "queued":
            self._status = "in_progress"
            self._output.started = True
            response = self._response("in_progress", items=False)
            self._emit(out, "response.created", {"response": response})
            self._emit(out, "response.in_progress", {"response": response})

    def _fold(self, event: Event, out: list[bytes]) -> None:
        """Content events: the output's state machine decides, the listener writes."""
        self._ensure_started(out)
        self._out = out
        self._output.add(event.type, event.data, 0)

    def _usage_event(self, event: Event, out: list[bytes]) -> None:
        self._output.add(event.type, event.data, 0)

    def _interaction_required(self, event: Event, out: list[bytes]) -> None:
        # Not numbered: it sits between event _seq-1 and _seq, so it belongs to a resumed
        # stream exactly when the next numbered event does.
        if self._seq > self._after:
            out.append(interaction_comment(event.data))

    def _terminal(self, event: Event, out: list[bytes]) -> None:
        # A completion closes the open items (…done events); a failure or cancel writes no
        # item events: its Response lists what was produced, unfinished items incomplete.
        self._ensure_started(out)
        self._done = True
        self._out = out
        self._output.finish(outcome_from_event(event))
        self._status = status = _status_of(self._output)
        kind = {"completed": "response.completed", "incomplete": "response.incomplete"}
        self._emit(out, kind.get(status, "response.failed"), {"response": self.snapshot()})

    # One table per class (not per connection): dispatch is one dict lookup per event.
    _HANDLERS: ClassVar[
        Mapping[EventType, Callable[[ResponsesProjection, Event, list[bytes]], None]]
    ] = {
        EventType.RUN_STARTED: _fold,
        EventType.TEXT_DELTA: _fold,
        EventType.REASONING_DELTA: _fold,
        EventType.TOOL_CALL_STARTED: _fold,
        EventType.TOOL_CALL_DELTA: _fold,
        EventType.TOOL_CALL_READY: _fold,
        EventType.STEP_STARTED: _fold,
        EventType.STEP_FINISHED: _fold,
        EventType.USAGE: _usage_event,
        EventType.INTERACTION_REQUIRED: _interaction_required,
        EventType.COMPLETED: _terminal,
        EventType.FAILED: _terminal,
        EventType.CANCELLED: _terminal,
    }


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
    output: RunOutput,
    *,
    response_id: str,
    model: str,
    created_at: int,
    background: bool = False,
) -> dict[str, Any]:
    """The full Response object for a run's output in any state: ``queued`` (no event yet),
    ``in_progress`` (also while awaiting input), ``completed``, ``incomplete``, ``failed``
    or ``cancelled``. Built from the run's :class:`~engine._output.RunOutput`, never from its
    (possibly trimmed) log, in O(size of the answer). For a finished run it equals the
    ``response`` of the stream's terminal event: both come from the same item state
    machine and the same builder."""
    return _response_dict(
        output,
        status=_status_of(output),
        response_id=response_id,
        model=model,
        created_at=created_at,
        background=background,
    )


def responses_event_count(output: RunOutput) -> int:
    """How many events a full Responses stream of this output has numbered so far, without
    replaying anything: created and in_progress, per message or reasoning item its two
    opening and three closing events, per function call one and two, one per delta, and the
    terminal. Agrees with :attr:`ResponsesProjection.numbered` fed the same events."""
    if not output.started:
        return 0
    parts = len(output.items) - output.calls
    count = 2 + 2 * parts + output.calls + output.deltas
    count += 3 * output.closed_parts + 2 * output.closed_calls
    return count + (1 if output.outcome is not None else 0)
