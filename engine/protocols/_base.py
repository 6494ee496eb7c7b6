"""What a wire projection is: a sans-IO object turning native events into bytes.

One projection object serves one connection (it may keep per-stream state, such as the
OpenAI chunk id or the Responses API ``sequence_number``). It never does I/O and never
awaits: the connection calls it with batches of events and writes what it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .._events import Event, Failed

__all__ = ["Projection"]


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
