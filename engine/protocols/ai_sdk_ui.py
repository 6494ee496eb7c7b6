"""The Vercel AI SDK projection: the UI message stream protocol, v1.

Theory of operation
-------------------
Each chunk is ``data: {json}`` and a blank line; the stream ends with ``data: [DONE]``
after every outcome (it is framing, not a success signal). The client assembles one
assistant message from the chunks, so the projection keeps the sequence *valid*, not just
each chunk:

- a text or reasoning part is opened (``text-start``/``reasoning-start``) before its first
  delta and closed (``*-end``) before any other part begins, at a step boundary, and before
  the stream ends: clients look deltas up by the part's id, and an unknown id throws;
- steps are balanced: ``run.started`` opens one (``start`` then ``start-step``), a
  ``step.started`` in an empty step is absorbed, content after ``step.finished`` opens the
  next, and every ending closes the open step with ``finish-step``;
- a tool's output is sent only for a tool call the client has seen (a
  ``tool-output-available`` for an unknown call throws in the client).

Mapping::

    run.started            start {messageId}, start-step
    text.delta             [text-start {id}] text-delta {id, delta}
    reasoning.delta        [reasoning-start {id}] reasoning-delta {id, delta}
    tool_call.started      tool-input-start {toolCallId, toolName}
    tool_call.delta        tool-input-delta {toolCallId, inputTextDelta}
    tool_call.ready        tool-input-available {toolCallId, toolName, input}
    tool.result            tool-output-available {toolCallId, output}
    step.started|finished  start-step | finish-step
    data                   data-<name> {data}
    interaction.required   data-interaction {id, data: {interaction_id, prompt, response_url}}
    interaction.resolved   the same part again (same id, so the client replaces it), with
                           "resolved": true added to its data
    usage                  nothing (``finish.messageMetadata`` could carry it, but only as
                           an opt-in: the default is the version-safe subset)
    run.completed          finish-step, finish, [DONE]
    run.failed             finish-step, error {errorText}, [DONE]
    run.cancelled          finish-step, abort, [DONE]

Version-safe subset: ``ai`` 5.0.0-5.0.216, 6.0.0-6.0.230 and 7.0.0-7.0.31 validate every
chunk against a *strict* schema, so any key a release does not know makes the client
throw. This projection only sends keys that every 5.x, 6.x and 7.x release accepts:
``finish`` and ``abort`` carry no fields (``finish.finishReason`` appeared in 5.0.92 and
``abort.reason`` is rejected by all of 5.x), ``error`` carries ``errorText`` only, and no
``providerMetadata``, ``dynamic`` or ``transient`` keys are ever sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from .._events import Event, EventType, Failed
from ._base import DispatchingProjection
from ._sse import SSE_HEADERS, dumps, sse_data

__all__ = ["UI_MESSAGE_STREAM_HEADERS", "UIMessageStreamProjection"]

UI_MESSAGE_STREAM_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    *SSE_HEADERS,
    # Required by the AI SDK's default chat transport for a custom back end.
    (b"x-vercel-ai-ui-message-stream", b"v1"),
)

_DONE = b"data: [DONE]\n\n"
_START_STEP = b'data: {"type":"start-step"}\n\n'
_FINISH_STEP = b'data: {"type":"finish-step"}\n\n'


def _tool_input(arguments: Any) -> Any:
    """``tool-input-available.input`` is the parsed value; producers may hand over JSON
    text (what they streamed) or a value. Text that is not JSON is passed as it is."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


class UIMessageStreamProjection(DispatchingProjection):
    """Native events → AI SDK UI message stream chunks, for one assistant message."""

    headers = UI_MESSAGE_STREAM_HEADERS

    def __init__(self, *, message_id: str) -> None:
        self.message_id = message_id
        self._started = False
        self._step_open = False
        self._step_empty = False  # the open step has no part yet
        self._steps = 0  # steps opened so far
        self._text: str | None = None  # id of the open text part
        self._reasoning: str | None = None  # id of the open reasoning part
        self._parts = 0  # counter for text/reasoning part ids, unique within the message
        self._text_delta_head = b""
        self._reasoning_delta_head = b""
        self._tools: dict[str, str] = {}  # tool_call_id -> tool name, as the client knows it
        self._interactions: dict[str, dict[str, Any]] = {}
        self._done = False

    # -- Projection ------------------------------------------------------------------

    def gap(self, first: int, last: int) -> bytes:
        # The message goes on (the client assembles whatever follows: parts whose start was
        # lost are reopened, results of unseen tool calls dropped), but not silently.
        out: list[bytes] = []
        self._ensure_started(out)
        out.append(
            sse_data(
                {
                    "type": "error",
                    "errorText": f"Part of this message (events {first}..{last}) is no "
                    "longer available.",
                }
            )
        )
        return b"".join(out)

    def slow_consumer(self, resume_after: int) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        self._end(
            out,
            sse_data(
                {
                    "type": "error",
                    "errorText": "The connection fell too far behind and was closed; "
                    "reconnect to resume the message.",
                }
            ),
        )
        return b"".join(out)

    def early_failure(self, failed: Failed) -> tuple[int, bytes] | None:
        # The chat transport turns a non-2xx answer into an Error whose message is the raw
        # body, so a JSON body would surface as JSON text. Streaming the failure instead
        # gives onError the safe message itself (and the stream still ends with [DONE]).
        return None

    # -- structure -------------------------------------------------------------------

    def _ensure_started(self, out: list[bytes]) -> None:
        """Open the message (also when a connection starts mid-log, after run.started)."""
        if not self._started:
            self._started = True
            out.append(sse_data({"type": "start", "messageId": self.message_id}))

    def _ensure_step(self, out: list[bytes]) -> None:
        self._ensure_started(out)
        if not self._step_open:
            self._step_open = True
            self._step_empty = True
            self._steps += 1
            out.append(_START_STEP)

    def _close_parts(self, out: list[bytes]) -> None:
        if self._text is not None:
            out.append(sse_data({"type": "text-end", "id": self._text}))
            self._text = None
        if self._reasoning is not None:
            out.append(sse_data({"type": "reasoning-end", "id": self._reasoning}))
            self._reasoning = None

    def _part(self, out: list[bytes]) -> None:
        """About to send a part other than an open text/reasoning one."""
        self._ensure_step(out)
        self._close_parts(out)
        self._step_empty = False

    def _close_step(self, out: list[bytes]) -> None:
        self._close_parts(out)
        if self._step_open:
            self._step_open = False
            out.append(_FINISH_STEP)

    def _end(self, out: list[bytes], final: bytes) -> None:
        if self._steps == 0:
            self._ensure_step(out)  # even an empty run is a message with one step
        self._ensure_started(out)
        self._close_step(out)
        out.append(final)
        out.append(_DONE)
        self._done = True

    def _new_part_id(self, kind: str) -> str:
        self._parts += 1
        return f"{kind}-{self._parts}"

    # -- handlers --------------------------------------------------------------------

    def _run_started(self, event: Event, out: list[bytes]) -> None:
        self._ensure_step(out)

    def _text_delta(self, event: Event, out: list[bytes]) -> None:
        if self._text is None:
            self._part(out)
            part_id = self._text = self._new_part_id("text")
            out.append(sse_data({"type": "text-start", "id": part_id}))
            self._text_delta_head = (
                f'data: {{"type":"text-delta","id":"{part_id}","delta":'.encode()
            )
        out.append(self._text_delta_head + dumps(event.data["text"]).encode() + b"}\n\n")

    def _reasoning_delta(self, event: Event, out: list[bytes]) -> None:
        if self._reasoning is None:
            self._part(out)
            part_id = self._reasoning = self._new_part_id("reasoning")
            out.append(sse_data({"type": "reasoning-start", "id": part_id}))
            self._reasoning_delta_head = (
                f'data: {{"type":"reasoning-delta","id":"{part_id}","delta":'.encode()
            )
        out.append(self._reasoning_delta_head + dumps(event.data["text"]).encode() + b"}\n\n")

    def _tool_call_started(self, event: Event, out: list[bytes]) -> None:
        call_id = event.data["tool_call_id"]
        if call_id in self._tools:
            return
        name = event.data["name"]
        self._part(out)
        self._tools[call_id] = name
        out.append(sse_data({"type": "tool-input-start", "toolCallId": call_id, "toolName": name}))

    def _tool_call_delta(self, event: Event, out: list[bytes]) -> None:
        call_id = event.data["tool_call_id"]
        if call_id not in self._tools:
            return  # its start came before this connection: the ready event will carry it
        self._part(out)
        out.append(
            sse_data(
                {
                    "type": "tool-input-delta",
                    "toolCallId": call_id,
                    "inputTextDelta": event.data["delta"],
                }
            )
        )

    def _tool_call_ready(self, event: Event, out: list[bytes]) -> None:
        data = event.data
        call_id = data["tool_call_id"]
        name = data.get("name") or self._tools.get(call_id, "")
        self._part(out)
        self._tools[call_id] = name
        out.append(
            sse_data(
                {
                    "type": "tool-input-available",
                    "toolCallId": call_id,
                    "toolName": name,
                    "input": _tool_input(data.get("arguments", {})),
                }
            )
        )

    def _tool_result(self, event: Event, out: list[bytes]) -> None:
        call_id = event.data["tool_call_id"]
        if call_id not in self._tools:
            return  # the client never saw this call; its output would make it throw
        self._part(out)
        out.append(
            sse_data(
                {
                    "type": "tool-output-available",
                    "toolCallId": call_id,
                    "output": event.data["output"],
                }
            )
        )

    def _step_started(self, event: Event, out: list[bytes]) -> None:
        if self._step_open and self._step_empty:
            return  # run.started already opened this step
        self._close_step(out)
        self._ensure_step(out)

    def _step_finished(self, event: Event, out: list[bytes]) -> None:
        if self._steps == 0:
            self._ensure_step(out)  # a message starting mid-log: keep the pair balanced
        self._close_step(out)

    def _data(self, event: Event, out: list[bytes]) -> None:
        self._part(out)
        out.append(sse_data({"type": f"data-{event.data['name']}", "data": event.data["data"]}))

    def _interaction_required(self, event: Event, out: list[bytes]) -> None:
        data = event.data
        interaction_id = data["interaction_id"]
        info = {
            "interaction_id": interaction_id,
            "prompt": data.get("prompt"),
            "response_url": data.get("response_url"),
        }
        self._interactions[interaction_id] = info
        self._part(out)
        out.append(sse_data({"type": "data-interaction", "id": interaction_id, "data": info}))

    def _interaction_resolved(self, event: Event, out: list[bytes]) -> None:
        interaction_id = event.data["interaction_id"]
        info = self._interactions.pop(interaction_id, {"interaction_id": interaction_id})
        self._part(out)
        out.append(
            sse_data(
                {
                    "type": "data-interaction",
                    "id": interaction_id,
                    "data": {**info, "resolved": True},
                }
            )
        )

    def _completed(self, event: Event, out: list[bytes]) -> None:
        self._end(out, b'data: {"type":"finish"}\n\n')

    def _failed(self, event: Event, out: list[bytes]) -> None:
        message = event.data["error"]["message"]
        self._end(out, sse_data({"type": "error", "errorText": message}))

    def _cancelled(self, event: Event, out: list[bytes]) -> None:
        self._end(out, b'data: {"type":"abort"}\n\n')

    # One table per class (not per connection): dispatch is one dict lookup per event.
    _HANDLERS: ClassVar[
        Mapping[EventType, Callable[[UIMessageStreamProjection, Event, list[bytes]], None]]
    ] = {
        EventType.RUN_STARTED: _run_started,
        EventType.TEXT_DELTA: _text_delta,
        EventType.REASONING_DELTA: _reasoning_delta,
        EventType.TOOL_CALL_STARTED: _tool_call_started,
        EventType.TOOL_CALL_DELTA: _tool_call_delta,
        EventType.TOOL_CALL_READY: _tool_call_ready,
        EventType.TOOL_RESULT: _tool_result,
        EventType.STEP_STARTED: _step_started,
        EventType.STEP_FINISHED: _step_finished,
        EventType.DATA: _data,
        EventType.INTERACTION_REQUIRED: _interaction_required,
        EventType.INTERACTION_RESOLVED: _interaction_resolved,
        EventType.COMPLETED: _completed,
        EventType.FAILED: _failed,
        EventType.CANCELLED: _cancelled,
    }
