"""Chat Completions stream chunks → engine events. Pure: no I/O, no clock.

A :class:`ChunkReader` is fed the stream's chunks (decoded JSON) one at a time and calls
the run's context for each piece of news:

==================================  ================================================
chunk                               event
==================================  ================================================
``delta.content``, ``delta.refusal``  text delta
``delta.reasoning_content``         reasoning delta (vLLM, DeepSeek); else
``delta.reasoning``                 (Ollama, newer vLLM: the same text under another name)
``delta.tool_calls[i]``             tool call started once its name is known (with the
                                    upstream's id, or a new one), then every argument
                                    fragment as a delta, verbatim
``usage``                           usage (``stream_options.include_usage``)
``finish_reason``                   remembered; :meth:`ChunkReader.finish` maps it
==================================  ================================================

Tool calls are declared ready only at the end of the stream, in index order: some servers
interleave the fragments of parallel calls, so a call is complete only when the stream is.
A stream that ends without a finish reason, a chunk of the wrong shape, or a tool call
that never got a name is an :class:`~engine.EngineError` ``upstream_error``: a stream that
stopped mid-way must never look like an answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine import EngineError, ErrorCode, FinishReason

__all__ = ["ChunkReader", "EventSink", "malformed"]

#: Finish reasons some servers send, in the vocabulary of the engine.
_FINISH: Mapping[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "tool_calls",  # OpenAI's deprecated name
    "eos": "stop",  # llama.cpp's older servers
    "eos_token": "stop",  # TGI
    "stop_sequence": "stop",
    "max_tokens": "length",
}


class EventSink(Protocol):
    """The part of :class:`engine.RunContext` the reader uses."""

    async def text(self, delta: str) -> None: ...
    async def reasoning(self, delta: str) -> None: ...
    async def tool_call(self, name: str, *, tool_call_id: str | None = None) -> str: ...
    async def tool_call_delta(self, tool_call_id: str, delta: str) -> None: ...
    async def tool_call_ready(self, tool_call_id: str, name: str, arguments: Any) -> None: ...
    async def usage(self, input_tokens: int, output_tokens: int) -> None: ...


def malformed(what: str) -> EngineError:
    return EngineError(
        ErrorCode.UPSTREAM_ERROR, f"The model provider sent a malformed stream ({what})."
    )


@dataclass(slots=True)
class _Call:
    upstream_id: str | None = None
    name: str = ""
    id: str | None = None  # the engine's id, once started
    arguments: list[str] = field(default_factory=list)
    unsent: list[str] = field(default_factory=list)  # fragments that came before the name


def _str(value: Any, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise malformed(what)


class ChunkReader:
    """One upstream stream's chunks → one run's events (see the module's table). Feed it
    every chunk, then call :meth:`finish` once the stream has ended."""

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink
        self._calls: dict[int, _Call] = {}
        self._ids: set[str] = set()
        self.finish_reason: str | None = None

    async def feed(self, chunk: Any) -> None:
        """Take one chunk. Raises :class:`EngineError` for one of the wrong shape."""
        if not isinstance(chunk, dict):
            raise malformed("a chunk is not an object")
        usage = chunk.get("usage")
        if usage is not None:
            await self._usage(usage)
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise malformed("choices is not a list")
        for choice in choices:
            if not isinstance(choice, dict):
                raise malformed("a choice is not an object")
            if choice.get("index", 0) != 0:
                continue  # one choice was asked for
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise malformed("delta is not an object")
            await self._delta(delta)
            reason = _str(choice.get("finish_reason"), "finish_reason")
            if reason:
                self.finish_reason = reason

    async def _usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            raise malformed("usage is not an object")
        prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        if not isinstance(prompt, int) or not isinstance(completion, int):
            raise malformed("usage counts are not integers")
        await self._sink.usage(prompt, completion)

    async def _delta(self, delta: dict[str, Any]) -> None:
        # Servers that send both names send the same text twice: take one.
        reasoning = _str(delta.get("reasoning_content"), "reasoning_content") or _str(
            delta.get("reasoning"), "reasoning"
        )
        if reasoning:
            await self._sink.reasoning(reasoning)
        for key in ("content", "refusal"):
            text = _str(delta.get(key), key)
            if text:
                await self._sink.text(text)
        calls = delta.get("tool_calls") or []
        if not isinstance(calls, list):
            raise malformed("tool_calls is not a list")
        for fragment in calls:
            await self._tool_fragment(fragment)

    async def _tool_fragment(self, fragment: Any) -> None:
        if not isinstance(fragment, dict):
            raise malformed("a tool call is not an object")
        index = fragment.get("index", len(self._calls))
        if not isinstance(index, int):
            raise malformed("a tool call's index is not an integer")
        function = fragment.get("function") or {}
        if not isinstance(function, dict):
            raise malformed("a tool call's function is not an object")
        call = self._calls.setdefault(index, _Call())
        call.upstream_id = call.upstream_id or _str(fragment.get("id"), "tool call id")
        name = _str(function.get("name"), "tool call name")
        if name and call.id is None:
            # Some servers repeat the name in every fragment: it is whole when first sent.
            call.name = name
        arguments = _str(function.get("arguments"), "tool call arguments")
        if call.id is None and call.name:
            await self._start(call)
        if arguments:
            call.arguments.append(arguments)
            if call.id is None:
                call.unsent.append(arguments)
            else:
                await self._sink.tool_call_delta(call.id, arguments)

    async def _start(self, call: _Call) -> None:
        wanted = call.upstream_id if call.upstream_id not in self._ids else None
        call.id = await self._sink.tool_call(call.name, tool_call_id=wanted)
        self._ids.add(call.id)
        for fragment in call.unsent:
            await self._sink.tool_call_delta(call.id, fragment)
        call.unsent.clear()

    async def finish(self) -> FinishReason:
        """The stream ended: declare the tool calls ready and return the finish reason.
        Raises :class:`EngineError` if the stream did not say it had finished."""
        if self.finish_reason is None:
            raise EngineError(
                ErrorCode.UPSTREAM_ERROR,
                "The model provider's stream ended before the answer was complete.",
            )
        reason = _FINISH.get(self.finish_reason)
        if reason is None:
            raise EngineError(
                ErrorCode.UPSTREAM_ERROR,
                "The model provider ended the answer abnormally "
                f"(finish reason {self.finish_reason[:40]!r}).",
            )
        for index in sorted(self._calls):
            call = self._calls[index]
            if call.id is None:
                raise malformed("a tool call has no name")
            text = "".join(call.arguments)
            await self._sink.tool_call_ready(call.id, call.name, _parsed(text))
        if self._calls and reason == "stop":
            reason = "tool_calls"  # servers that say "stop" after calling tools
        return reason


def _parsed(text: str) -> Any:
    """The arguments as a value when they are JSON (what the AI SDK's ``input`` wants);
    else the text as it came, for the client to judge."""
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text
