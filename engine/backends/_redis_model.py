"""What the Redis store reads and writes, as plain values: its settings, the typed views
of a run's record and log, the verdicts of its scripts, and the encodings between them.

Pure: no I/O, no Redis client (see ``_redis_store`` for the theory of operation).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from .._events import CancelReason, Event, EventType, Outcome, RunStatus, outcome_from_event

__all__ = [
    "AppendResult",
    "CreatedRun",
    "FinishResult",
    "ReadResult",
    "RedisStoreConfig",
    "RunRecord",
    "dumps",
    "event_from_entry",
    "owner_value",
    "record_from_hash",
    "safe_url",
    "valid_id",
]


@dataclass(frozen=True, slots=True)
class RedisStoreConfig:
    """Durations in seconds.

    ``live_ttl`` bounds how long a live run's keys survive without a write or heartbeat
    from its owner; it must be well above ``heartbeat_ttl`` so that only the sweeper, never
    an expiry, ends a run whose owner died.
    """

    prefix: str = "ss"
    retention: float = 600.0
    max_log_events: int = 100_000
    live_ttl: float = 3600.0
    heartbeat_interval: float = 1.0
    heartbeat_ttl: float = 5.0
    pending_cancel_ttl: float = 60.0

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in "{}"):
            raise ValueError("prefix must be non-empty and contain no braces")
        if self.max_log_events < 2:
            raise ValueError("max_log_events must be at least 2")
        if self.heartbeat_interval <= 0 or self.heartbeat_ttl <= self.heartbeat_interval:
            raise ValueError("heartbeat_ttl must be greater than heartbeat_interval > 0")
        if self.live_ttl < 3 * self.heartbeat_ttl:
            raise ValueError("live_ttl must be at least 3 * heartbeat_ttl")
        for name in ("retention", "pending_cancel_ttl"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as any worker reads it from the store."""

    id: str
    owner: str | None
    producer: str
    status: RunStatus
    worker: str
    client_run_id: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    last_seq: int
    outcome: Outcome | None
    interaction: Mapping[str, Any] | None  # the pending one, as announced
    metadata: Mapping[str, Any] = field(default_factory=dict)
    answer: Mapping[str, Any] | None = None  # the final answer view, once finished


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Events after a cursor. ``missing_from`` is ``cursor + 1`` when events from there up
    to the first one returned were trimmed away (0 when nothing is missing)."""

    missing_from: int
    events: list[Event]


@dataclass(frozen=True, slots=True)
class CreatedRun:
    run_id: str
    #: A cancel requested before the run existed (by ``client_run_id``): start cancelled.
    cancel_reason: CancelReason | None


@dataclass(frozen=True, slots=True)
class AppendResult:
    """``ok``: written up to ``last_seq``. ``fenced``: another worker owns the run.
    ``finished``: the run already ended (a sweeper or a cancel decided). ``out_of_order``:
    ``first_seq`` was not ``last_seq + 1``. ``not_found``: no such run (expired)."""

    verdict: Literal["ok", "fenced", "finished", "out_of_order", "not_found"]
    last_seq: int


@dataclass(frozen=True, slots=True)
class FinishResult:
    """``won``: this call wrote the terminal, at ``seq``. Otherwise nothing changed:
    ``already_finished`` (``status`` says how it ended), ``fenced`` (the run's worker is not
    the expected one), ``not_found``."""

    verdict: Literal["won", "already_finished", "fenced", "not_found"]
    seq: int = 0
    status: RunStatus | None = None


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def valid_id(value: str) -> bool:
    # Braces would move the key out of its hash tag; such an id was never issued.
    return bool(value) and "{" not in value and "}" not in value


def owner_value(owner: str | None) -> str:
    if owner == "":
        raise ValueError("owner must be None or a non-empty string")
    return owner or ""


def event_from_entry(run_id: str, entry: Any) -> Event:
    seq = int(str(entry.identifier).partition("-")[0])
    fields = entry.field_values
    return Event(seq, EventType(fields["t"]), run_id, json.loads(fields["d"]))


def safe_url(url: str) -> str:
    """The URL without credentials, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or parts.path or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def record_from_hash(run_id: str, raw: Mapping[str, str]) -> RunRecord:
    """The typed view of a run's record hash."""
    status = RunStatus(raw["status"])
    outcome = None
    if status.terminal and raw.get("outcome"):
        type = {
            RunStatus.COMPLETED: EventType.COMPLETED,
            RunStatus.FAILED: EventType.FAILED,
            RunStatus.CANCELLED: EventType.CANCELLED,
        }[status]
        outcome = outcome_from_event(Event(0, type, run_id, json.loads(raw["outcome"])))
    return RunRecord(
        id=raw["id"],
        owner=raw["owner"] or None,
        producer=raw["producer"],
        status=status,
        worker=raw["worker"],
        client_run_id=raw["client_run_id"] or None,
        created_at=float(raw["created_at"]),
        started_at=float(raw["started_at"]) if raw.get("started_at") else None,
        ended_at=float(raw["ended_at"]) if raw.get("ended_at") else None,
        last_seq=int(raw["last_seq"]),
        outcome=outcome,
        interaction=json.loads(raw["interaction"]) if raw.get("interaction") else None,
        metadata=json.loads(raw.get("metadata") or "{}"),
        answer=json.loads(raw["answer"]) if raw.get("answer") else None,
    )
