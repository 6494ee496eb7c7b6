"""The native projection: each event as one SSE frame, ``id:`` = ``seq``, ``event:`` = type."""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import http_status_for
from .._events import Event, Failed
from ._sse import SSE_HEADERS, dumps, sse_comment, sse_frame

__all__ = ["NativeProjection", "error_body", "native_frame"]


def native_frame(event: Event) -> bytes:
    return f"id: {event.seq}\nevent: {event.type}\ndata: {dumps(event.as_dict())}\n\n".encode()


def error_body(code: str, message: str, **extra: object) -> bytes:
    """The JSON body of every 4xx/5xx answer: ``{"error": {"code", "message", ...}}``."""
    return dumps({"error": {"code": code, "message": message, **extra}}).encode()


class NativeProjection:
    headers = SSE_HEADERS
    #: A native stream never ends on its own: gaps are explicit frames, and the connection
    #: ends it after the terminal event.
    done = False

    def events(self, batch: Sequence[Event]) -> bytes:
        if len(batch) == 1:
            return native_frame(batch[0])
        return b"".join([native_frame(event) for event in batch])

    def keepalive(self) -> bytes:
        return sse_comment("keepalive")

    def gap(self, first: int, last: int) -> bytes:
        return sse_frame(dumps({"from": first, "to": last}), event="gap")

    def slow_consumer(self, resume_after: int) -> bytes:
        return sse_frame(dumps({"resume_after": resume_after}), event="slow_consumer")

    def early_failure(self, failed: Failed) -> tuple[int, bytes] | None:
        err = failed.error
        return http_status_for(err.code), error_body(
            str(err.code), err.message, correlation_id=err.correlation_id
        )
