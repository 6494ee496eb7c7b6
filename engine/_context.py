"""The producer's side of a run: a small API to emit events and ask a human.

Producers never format wire bytes and never see the log, the connections or HTTP. Every
emit is a cancellation point: a cancelled run raises :class:`trio.Cancelled` in the producer
at its next emit, so a producer that emits in a loop needs no checkpoints of its own. An
emit also yields to the scheduler, but only every :data:`YIELD_EVERY` events: a producer
emitting in a tight loop then hands its connections dozens of events per wakeup, which
they write as one chunk, instead of paying a socket write per event.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from ._config import YIELD_EVERY
from ._events import EventType

if TYPE_CHECKING:
    from ._runs import Run

__all__ = ["YIELD_EVERY", "RunContext"]


class RunContext:
    __slots__ = ("_run", "_unyielded", "input")

    def __init__(self, run: Run, input: Mapping[str, Any]) -> None:
        self._run = run
        self._unyielded = 0
        #: The run's input, as given to :meth:`Engine.start_run`.
        self.input = input

    @property
    def run_id(self) -> str:
        return self._run.id

    async def emit(self, type: EventType, data: Mapping[str, Any]) -> None:
        """Append one event to the run's log. A cancellation point, checked before the
        append: once a run is cancelled, no event of its producer reaches the log. Yields to
        the scheduler every :data:`YIELD_EVERY` events.

        An event larger than the engine's ``max_event_bytes``, or one that would take the
        run's answer past ``max_output_bytes``, is not appended: the run fails
        (``event_too_large``, ``output_too_large``) and this raises :class:`trio.Cancelled`."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if not self._run._emit(type, data):
            # Over a byte budget: the run failed and cancelled this producer's scope.
            await trio.lowlevel.checkpoint_if_cancelled()
        self._unyielded += 1
        if self._unyielded >= YIELD_EVERY:
            self._unyielded = 0
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def text(self, delta: str) -> None:
        await self.emit(EventType.TEXT_DELTA, {"text": delta})

    async def reasoning(self, delta: str) -> None:
        await self.emit(EventType.REASONING_DELTA, {"text": delta})

    async def tool_call(self, name: str, *, tool_call_id: str | None = None) -> str:
        """Announce a tool call; returns its id for the delta/ready/result calls."""
        call_id = tool_call_id or "call_" + secrets.token_hex(12)
        await self.emit(EventType.TOOL_CALL_STARTED, {"tool_call_id": call_id, "name": name})
        return call_id

    async def tool_call_delta(self, tool_call_id: str, delta: str) -> None:
        await self.emit(EventType.TOOL_CALL_DELTA, {"tool_call_id": tool_call_id, "delta": delta})

    async def tool_call_ready(self, tool_call_id: str, name: str, arguments: Any) -> None:
        await self.emit(
            EventType.TOOL_CALL_READY,
            {"tool_call_id": tool_call_id, "name": name, "arguments": arguments},
        )

    async def tool_result(self, tool_call_id: str, output: Any) -> None:
        await self.emit(EventType.TOOL_RESULT, {"tool_call_id": tool_call_id, "output": output})

    async def step_started(self) -> None:
        await self.emit(EventType.STEP_STARTED, {})

    async def step_finished(self) -> None:
        await self.emit(EventType.STEP_FINISHED, {})

    async def usage(self, input_tokens: int, output_tokens: int) -> None:
        """Report token usage; the last report is the run's usage."""
        await self.emit(
            EventType.USAGE, {"input_tokens": input_tokens, "output_tokens": output_tokens}
        )

    async def data(self, name: str, value: Any) -> None:
        """Custom data (an AI SDK ``data-<name>`` part; dropped by protocols without one)."""
        await self.emit(EventType.DATA, {"name": name, "data": value})

    async def ask(self, prompt: str, *, answer_within: float | None = None) -> Any:
        """Ask a human and wait for the answer; returns the answer.

        The run becomes ``awaiting_input`` and an ``interaction.required`` event is emitted.
        The producer stays parked here, inside its scope, until the answer arrives. If no
        answer comes within ``answer_within`` seconds (default: the engine's interaction
        timeout) the run fails with ``interaction_timeout``; with interactive mode off the
        run fails with ``interaction_not_supported``. Either way, and when the run is
        cancelled while waiting, this raises :class:`trio.Cancelled`: unwind and clean up.
        """
        return await self._run._ask(prompt, answer_within)
