"""What a whole answer needs, folded in as a run's events are emitted, and what events cost.

Theory of operation
-------------------
A run's log is bounded (by events and by bytes), so its head may be trimmed while the run
goes on. A non-streaming answer or a snapshot built by replaying the log would then be
silently short. So the run keeps, beside its log, a :class:`RunOutput`: the answer's
output items (assistant messages, reasoning, function calls with name and arguments), the
last usage report and the outcome, accumulated event by event. Every whole-answer view
(Chat ``chat.completion``, the Responses ``Response`` object, the native run's ``output``)
is built from it in O(size of the answer), never from the log. Its size is bounded by the
run's output budget: a run whose output would exceed it fails (``output_too_large``), so a
completed answer is always whole.

The same fold is the item state machine of the Responses projection (which gives it a
listener, to write frames as items open, grow and close), so the streamed answer and the
stored one follow one set of rules. Item rules: text and reasoning each go into an open
item of their kind, opened on the first delta; a message and a reasoning item are never
open at once (opening one closes the other); a step boundary and a function call close
the open message or reasoning item; a function call is one item per ``tool_call_id``,
closed by ``tool_call.ready`` (arguments after that are ignored: they are final).

Sizes are *estimates*, cheap enough for every emit: a string costs its length when it is
ASCII (an O(1) check in CPython) and four bytes per character otherwise (the most a code
point takes in UTF-8, or in CPython's own storage); numbers, booleans and null cost 8.
No JSON is encoded to measure anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol

from ._events import (
    Cancelled,
    Completed,
    Event,
    EventType,
    Failed,
    Outcome,
    Usage,
    outcome_from_event,
)

__all__ = [
    "OUTPUT_TYPES",
    "ItemKind",
    "OutputItem",
    "OutputListener",
    "RunOutput",
    "arguments_json",
    "data_bytes",
    "text_bytes",
]

ItemKind = Literal["message", "reasoning", "function_call"]

#: The events that add to a whole answer (and so count against the output budget).
OUTPUT_TYPES: frozenset[EventType] = frozenset(
    {
        EventType.TEXT_DELTA,
        EventType.REASONING_DELTA,
        EventType.TOOL_CALL_STARTED,
        EventType.TOOL_CALL_DELTA,
        EventType.TOOL_CALL_READY,
    }
)

#: A finish reason that means the answer was cut short: its open items end "incomplete".
_CUT_SHORT = frozenset({"length", "content_filter"})

_SCALAR_BYTES = 8

# Module-level names for the per-event dispatch: on Python 3.11 an attribute lookup on an
# enum class costs more than the rest of folding a text delta in.
_TEXT = EventType.TEXT_DELTA
_REASONING = EventType.REASONING_DELTA
_CALL_STARTED = EventType.TOOL_CALL_STARTED
_CALL_DELTA = EventType.TOOL_CALL_DELTA
_CALL_READY = EventType.TOOL_CALL_READY
_STEPS = (EventType.STEP_STARTED, EventType.STEP_FINISHED)
_USAGE = EventType.USAGE
_RUN_STARTED = EventType.RUN_STARTED


def text_bytes(text: str) -> int:
    """The estimated size of a string: its length if ASCII, else four bytes a character."""
    return len(text) if text.isascii() else 4 * len(text)


def data_bytes(data: Mapping[str, Any]) -> int:
    """The estimated size of an event's data: its strings, keys, numbers, nested values.
    A text delta (one string member) costs one dict step, one ``isascii`` and one ``len``."""
    size = 0
    for value in data.values():
        if value.__class__ is str:
            size += len(value) if value.isascii() else 4 * len(value)
        elif value is None or value.__class__ in (int, float, bool):
            size += _SCALAR_BYTES
        else:
            size += _value_bytes(value)
    return size


def _value_bytes(value: Any) -> int:
    """The estimated size of any value, walked iteratively (a deep value cannot exhaust the
    stack). Objects that are not JSON-like cost the length of their ``repr``, bounded."""
    size = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            size += text_bytes(item)
        elif isinstance(item, Mapping):
            for key, child in item.items():
                size += text_bytes(key) if isinstance(key, str) else _SCALAR_BYTES
                stack.append(child)
        elif isinstance(item, list | tuple):
            size += len(item)  # separators
            stack.extend(item)
        elif item is None or isinstance(item, int | float):
            size += _SCALAR_BYTES
        else:
            size += min(len(repr(item)), 1024)
    return size


def arguments_json(arguments: Any) -> str:
    """A tool call's arguments as the JSON text OpenAI clients expect: a string is taken as
    already-encoded JSON (producers that stream arguments produce text), anything else is
    encoded."""
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"), default=str)


class OutputItem:
    """One output item: an assistant message, a reasoning item or a function call."""

    __slots__ = ("call_id", "chunks", "index", "kind", "name", "status", "streamed")

    def __init__(self, kind: ItemKind, index: int, call_id: str = "", name: str = "") -> None:
        self.kind: ItemKind = kind
        self.index = index
        self.call_id = call_id
        self.name = name
        self.chunks: list[str] = []  # text, reasoning text or argument text
        self.status = "in_progress"
        self.streamed = False  # a function call's arguments arrived as deltas

    def text(self) -> str:
        if len(self.chunks) > 1:
            self.chunks[:] = ["".join(self.chunks)]  # keep repeated reads linear
        return self.chunks[0] if self.chunks else ""


class OutputListener(Protocol):
    """Told of each change to the items (the Responses projection writes frames here)."""

    def item_opened(self, item: OutputItem) -> None: ...

    def item_delta(self, item: OutputItem, delta: str) -> None: ...

    def item_closed(self, item: OutputItem) -> None: ...


class RunOutput:
    """A run's whole answer so far (see the module docstring). Not thread-safe; no I/O.

    ``bytes`` is the estimated size of everything folded in from :data:`OUTPUT_TYPES`;
    ``closed_parts``/``closed_calls`` count message-or-reasoning items and function-call
    items closed so far, and ``deltas`` every piece of text added to an item: with
    ``items`` they let a protocol count its frames without replaying anything.
    """

    __slots__ = (
        "_calls",
        "_listener",
        "_reasoning",
        "_text",
        "bytes",
        "closed_calls",
        "closed_parts",
        "deltas",
        "items",
        "outcome",
        "started",
        "usage",
    )

    def __init__(self, listener: OutputListener | None = None) -> None:
        self._listener = listener
        self.items: list[OutputItem] = []
        self._text: OutputItem | None = None  # the open message
        self._reasoning: OutputItem | None = None  # the open reasoning item
        self._calls: dict[str, OutputItem] = {}  # function calls by tool_call_id
        self.usage: Usage | None = None
        self.outcome: Outcome | None = None
        self.started = False
        self.bytes = 0
        self.deltas = 0
        self.closed_parts = 0
        self.closed_calls = 0

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> RunOutput:
        """Fold a sequence of events (a whole log, in tests and tools)."""
        output = cls()
        for event in events:
            if event.terminal:
                output.finish(outcome_from_event(event))
            else:
                output.add(event.type, event.data, data_bytes(event.data))
        return output

    # -- reading ------------------------------------------------------------------------

    @property
    def calls(self) -> int:
        """How many function-call items there are."""
        return len(self._calls)

    def text(self) -> str:
        """Every message's text, in order (what a Chat completion's ``content`` is)."""
        return "".join(item.text() for item in self.items if item.kind == "message")

    def has_text(self) -> bool:
        return any(item.kind == "message" for item in self.items)

    def reasoning(self) -> str:
        return "".join(item.text() for item in self.items if item.kind == "reasoning")

    def function_calls(self) -> list[OutputItem]:
        return [item for item in self.items if item.kind == "function_call"]

    # -- folding ------------------------------------------------------------------------

    def add(self, type: EventType, data: Mapping[str, Any], size: int) -> None:
        """Fold one non-terminal event in; ``size`` is its estimated size (counted if it is
        one of :data:`OUTPUT_TYPES`)."""
        if type is _TEXT:
            # The hot path, inlined: most events of most runs are text deltas.
            self.bytes += size
            item = self._text or self._open_part("message")
            item.chunks.append(data["text"])
            self.deltas += 1
            if self._listener is not None:
                self._listener.item_delta(item, data["text"])
        elif type is _REASONING:
            self.bytes += size
            self._delta(self._open_part("reasoning"), data["text"])
        elif type is _CALL_STARTED:
            self.bytes += size
            self._call(data)
        elif type is _CALL_DELTA:
            self.bytes += size
            item = self._call(data)
            if item.status == "in_progress":
                item.streamed = True
                self._delta(item, data["delta"])
        elif type is _CALL_READY:
            self.bytes += size
            item = self._call(data)
            if item.status == "in_progress":
                item.name = data.get("name") or item.name
                if not item.streamed:
                    # Clients that assemble arguments from deltas must see them too.
                    self._delta(item, arguments_json(data.get("arguments", {})))
                self._close(item, "completed")
        elif type is _STEPS[0] or type is _STEPS[1]:
            self._close_parts("completed")
        elif type is _USAGE:
            self.usage = Usage(int(data.get("input_tokens", 0)), int(data.get("output_tokens", 0)))
        elif type is _RUN_STARTED:
            self.started = True

    def finish(self, outcome: Outcome) -> None:
        """The run ended: a completion closes the open items (``incomplete`` when cut short
        by length or a content filter); a failure or cancel marks them incomplete."""
        self.started = True
        self.outcome = outcome
        if isinstance(outcome, Completed):
            if outcome.usage is not None:
                self.usage = outcome.usage
            status = "incomplete" if outcome.finish_reason in _CUT_SHORT else "completed"
            self._close_parts(status)
            for item in self._calls.values():
                if item.status == "in_progress":
                    self._close(item, status)
        else:
            assert isinstance(outcome, Failed | Cancelled)
            # No closing frames after a failure: the items just stop where they are.
            for item in self.items:
                if item.status == "in_progress":
                    item.status = "incomplete"
            self._text = self._reasoning = None

    # -- items --------------------------------------------------------------------------

    def _open(self, kind: ItemKind, call_id: str = "", name: str = "") -> OutputItem:
        item = OutputItem(kind, len(self.items), call_id, name)
        self.items.append(item)
        if self._listener is not None:
            self._listener.item_opened(item)
        return item

    def _open_part(self, kind: Literal["message", "reasoning"]) -> OutputItem:
        item = self._text if kind == "message" else self._reasoning
        if item is not None:
            return item
        self._close_parts("completed")  # a message and a reasoning item never overlap
        item = self._open(kind)
        if kind == "message":
            self._text = item
        else:
            self._reasoning = item
        return item

    def _delta(self, item: OutputItem, delta: str) -> None:
        item.chunks.append(delta)
        self.deltas += 1
        if self._listener is not None:
            self._listener.item_delta(item, delta)

    def _close(self, item: OutputItem, status: str) -> None:
        item.status = status
        if item.kind == "function_call":
            self.closed_calls += 1
        else:
            self.closed_parts += 1
        if self._listener is not None:
            self._listener.item_closed(item)

    def _close_parts(self, status: str) -> None:
        if self._text is not None:
            item, self._text = self._text, None
            self._close(item, status)
        if self._reasoning is not None:
            item, self._reasoning = self._reasoning, None
            self._close(item, status)

    def _call(self, data: Mapping[str, Any]) -> OutputItem:
        call_id = data["tool_call_id"]
        item = self._calls.get(call_id)
        if item is None:
            self._close_parts("completed")
            item = self._open("function_call", call_id, data.get("name") or "")
            self._calls[call_id] = item
        return item
