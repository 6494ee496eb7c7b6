"""What a wire projection is: a sans-IO object turning native events into bytes.

One projection object serves one connection (it may keep per-stream state, such as the
OpenAI chunk id or the Responses API ``sequence_number``). It never does I/O and never
awaits: the connection calls it with batches of events and writes what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

from .._events import Event, EventType, Failed
from ._sse import dumps, sse_comment

__all__ = ["DispatchingProjection", "Projection", "interaction_comment"]


class Projection(Protocol):
    #: Response headers for this protocol (content type included), lower-case names.
    headers: tuple[tuple[bytes, bytes], ...]

    @property
    def done(self) -> bool:
        """True once the projection wrote its last frame (a terminal, or an error after
        which the protocol cannot go on, such as a gap it cannot number across): the
        connection then ends."""
        ...

    def events(self, batch: Sequence[Event]) -> bytes:
        """Frames for consecutive events of one run, in order; the terminal may be last."""
        ...

    def keepalive(self) -> bytes:
        """A frame that keeps the connection open and that the protocol's clients ignore."""
        ...

    def gap(self, first: int, last: int) -> bytes:
        """Events ``first..last`` are no longer retained: say so explicitly."""
        ...

    def slow_consumer(self, resume_after: int) -> bytes:
        """This connection fell too far behind and ends now; it may resume after the cursor."""
        ...

    def early_failure(self, failed: Failed) -> tuple[int, bytes] | None:
        """The run failed before any producer event: the HTTP status and JSON body to answer
        with instead of a stream, or None to stream the failure like any other terminal."""
        ...


class DispatchingProjection:
    """What the stateful projections share: one handler table per class (dispatch is one
    dict lookup per event), nothing written once ``done``, keepalive as an SSE comment
    (dropped by every SSE client)."""

    _HANDLERS: ClassVar[Mapping[EventType, Callable[[Any, Event, list[bytes]], None]]] = {}
    _done: bool = False

    @property
    def done(self) -> bool:
        return self._done

    def events(self, batch: Sequence[Event]) -> bytes:
        out: list[bytes] = []
        handlers = self._HANDLERS
        for event in batch:
            if self._done or not self._admit(event, out):
                break
            handler = handlers.get(event.type)
            if handler is not None:
                handler(self, event, out)
        return b"".join(out)

    def _admit(self, event: Event, out: list[bytes]) -> bool:
        """A hook before each event: False stops the batch (after writing to ``out``)."""
        return True

    def keepalive(self) -> bytes:
        return sse_comment("keepalive")


def interaction_comment(data: Mapping[str, Any]) -> bytes:
    """``: interaction_required {json}``: how protocols without an event for "waiting for a
    human" announce one. Every SSE client drops comments; a person reading the raw stream
    sees it, and the stream stays visibly alive."""
    info = {key: data.get(key) for key in ("interaction_id", "prompt", "response_url")}
    return sse_comment("interaction_required " + dumps(info))
