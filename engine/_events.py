"""The native event vocabulary, the run's states and its three terminal outcomes.

Everything here is immutable (frozen, slotted dataclasses) and pure: no I/O, no Trio.

An :class:`Event` is what a run's log stores and what every wire protocol is projected
from. Events carry ``seq`` (1, 2, 3, ... per run, no gaps). Transport-only frames
(:class:`Keepalive`, :class:`Gap`, :class:`SlowConsumer`) carry no ``seq`` and are never
stored: they exist only on one connection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, TypeAlias

__all__ = [
    "TERMINAL_TYPES",
    "CancelReason",
    "Cancelled",
    "Completed",
    "ErrorCode",
    "ErrorInfo",
    "Event",
    "EventType",
    "Failed",
    "FinishReason",
    "Gap",
    "Keepalive",
    "Outcome",
    "RunStatus",
    "SlowConsumer",
    "Usage",
    "outcome_from_event",
]


class EventType(StrEnum):
    RUN_STARTED = "run.started"
    TEXT_DELTA = "text.delta"  # {text}
    REASONING_DELTA = "reasoning.delta"  # {text}
    TOOL_CALL_STARTED = "tool_call.started"  # {tool_call_id, name}
    TOOL_CALL_DELTA = "tool_call.delta"  # {tool_call_id, delta}
    TOOL_CALL_READY = "tool_call.ready"  # {tool_call_id, name, arguments}
    TOOL_RESULT = "tool.result"  # {tool_call_id, output}
    STEP_STARTED = "step.started"  # {}
    STEP_FINISHED = "step.finished"  # {}
    USAGE = "usage"  # {input_tokens, output_tokens}
    INTERACTION_REQUIRED = "interaction.required"  # {interaction_id, prompt, response_url}
    INTERACTION_RESOLVED = "interaction.resolved"  # {interaction_id}
    DATA = "data"  # {name, data}
    # The three terminals: exactly one ends every run's log.
    COMPLETED = "run.completed"  # {finish_reason, usage}
    FAILED = "run.failed"  # {error: {code, message, correlation_id}}
    CANCELLED = "run.cancelled"  # {reason}


TERMINAL_TYPES = frozenset({EventType.COMPLETED, EventType.FAILED, EventType.CANCELLED})


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_INPUT = "awaiting_input"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class ErrorCode(StrEnum):
    """The engine's own stable error codes. Wire projections map them onto each protocol."""

    SERVER_ERROR = "server_error"
    UPSTREAM_ERROR = "upstream_error"
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    INVALID_REQUEST = "invalid_request"
    TIMEOUT = "timeout"
    STALLED = "stalled"
    INTERACTION_TIMEOUT = "interaction_timeout"
    INTERACTION_NOT_SUPPORTED = "interaction_not_supported"
    CONTENT_FILTER = "content_filter"
    #: One event was larger than the engine's per-event limit (``max_event_bytes``).
    EVENT_TOO_LARGE = "event_too_large"
    #: The run's answer grew past its output budget (``max_output_bytes``).
    OUTPUT_TOO_LARGE = "output_too_large"
    #: The worker running the run stopped answering (its heartbeat expired).
    WORKER_LOST = "worker_lost"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    MODEL_NOT_FOUND = "model_not_found"
    #: The shared run store (Redis) stayed unreachable past the configured time.
    STORE_UNAVAILABLE = "store_unavailable"


class CancelReason(StrEnum):
    REQUESTED = "requested"
    CLIENT_DISCONNECTED = "client_disconnected"
    SHUTDOWN = "shutdown"


FinishReason: TypeAlias = Literal["stop", "length", "content_filter", "tool_calls"]
FINISH_REASONS: frozenset[str] = frozenset({"stop", "length", "content_filter", "tool_calls"})


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    type: EventType
    run_id: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_TYPES

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": str(self.type), "run_id": self.run_id, "data": self.data}


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    code: ErrorCode
    message: str  # safe to show a user: never str() of an unexpected exception
    correlation_id: str  # finds the full traceback in the server log
    #: Seconds the client should wait before retrying (an upstream's ``Retry-After``).
    retry_after: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": str(self.code),
            "message": self.message,
            "correlation_id": self.correlation_id,
        }
        if self.retry_after is not None:  # only when known: most failures have none
            out["retry_after"] = self.retry_after
        return out

    @property
    def retry_after_header(self) -> str | None:
        """``retry_after`` as an HTTP ``Retry-After`` value: whole seconds, rounded up."""
        return None if self.retry_after is None else str(math.ceil(self.retry_after))


@dataclass(frozen=True, slots=True)
class Completed:
    finish_reason: FinishReason = "stop"
    usage: Usage | None = None
    status = RunStatus.COMPLETED
    event_type = EventType.COMPLETED

    def as_dict(self) -> dict[str, Any]:
        return {
            "finish_reason": self.finish_reason,
            "usage": self.usage.as_dict() if self.usage else None,
        }


@dataclass(frozen=True, slots=True)
class Failed:
    error: ErrorInfo
    status = RunStatus.FAILED
    event_type = EventType.FAILED

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.error.as_dict()}


@dataclass(frozen=True, slots=True)
class Cancelled:
    reason: CancelReason
    status = RunStatus.CANCELLED
    event_type = EventType.CANCELLED

    def as_dict(self) -> dict[str, Any]:
        return {"reason": str(self.reason)}


Outcome: TypeAlias = Completed | Failed | Cancelled


def outcome_from_event(event: Event) -> Outcome:
    """Rebuild the outcome a terminal event was written from (used by projections)."""
    data = event.data
    if event.type is EventType.COMPLETED:
        usage = data.get("usage")
        return Completed(
            finish_reason=data.get("finish_reason", "stop"),
            usage=Usage(usage["input_tokens"], usage["output_tokens"]) if usage else None,
        )
    if event.type is EventType.FAILED:
        err = data["error"]
        return Failed(
            ErrorInfo(
                ErrorCode(err["code"]),
                err["message"],
                err["correlation_id"],
                err.get("retry_after"),
            )
        )
    if event.type is EventType.CANCELLED:
        return Cancelled(CancelReason(data["reason"]))
    raise ValueError(f"{event.type} is not a terminal event")


@dataclass(frozen=True, slots=True)
class Keepalive:
    """Sent after N seconds without any frame on a connection. Proves the socket, not progress."""


@dataclass(frozen=True, slots=True)
class Gap:
    """The connection's cursor is older than the retained log: events first..last are gone."""

    first: int
    last: int


@dataclass(frozen=True, slots=True)
class SlowConsumer:
    """The connection fell too far behind and is being closed; resume after ``resume_after``."""

    resume_after: int
