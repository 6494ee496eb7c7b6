"""Engine settings: plain values with a lifetime no longer than the engine's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["MIN_CONNECTION_BUFFER", "YIELD_EVERY", "DisconnectPolicy", "EngineConfig"]

#: A producer's emits yield to the scheduler every this many events (see ``_context``).
YIELD_EVERY = 32
#: Between two reads of a connection whose write costs one scheduling round, a producer
#: can run up to three such bursts (Trio runs ready tasks in either order): a smaller
#: buffer would drop readers that keep up.
MIN_CONNECTION_BUFFER = 4 * YIELD_EVERY


@dataclass(frozen=True, slots=True)
class DisconnectPolicy:
    """What a run does when a client connection to it goes away.

    ``cancel``: cancel the run (``client_disconnected``) once no connection is left.
    ``continue``: keep running; a client can resume from its cursor.
    ``grace``: keep running for ``grace`` seconds, so that a resume can arrive; if none does,
    cancel as ``client_disconnected``.
    """

    action: Literal["cancel", "continue", "grace"] = "cancel"
    grace: float = 0.0

    def __post_init__(self) -> None:
        if self.action not in ("cancel", "continue", "grace"):
            raise ValueError(f"unknown disconnect action {self.action!r}")
        if self.grace < 0:
            raise ValueError("grace must be >= 0")


CANCEL = DisconnectPolicy("cancel")
CONTINUE = DisconnectPolicy("continue")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """All durations are in seconds; ``None`` switches a limit off."""

    keepalive_interval: float = 15.0
    run_timeout: float | None = None
    stall_timeout: float | None = None
    interactive: bool = True
    interaction_timeout: float = 600.0
    retention: float = 600.0  # how long a finished run stays readable
    max_log_events: int = 100_000  # per run; the oldest events go first
    connection_buffer: int = 4096  # how far a connection may lag before it is dropped
    terminal_delivery_timeout: float = 5.0  # shielded write of a terminal frame
    shutdown_grace: float = 5.0
    pending_cancel_ttl: float = 60.0  # a cancel for a client_run_id not created yet
    max_pending_cancels: int = 10_000  # beyond this, the oldest remembered cancel is dropped
    # Byte budgets (estimated sizes, see ``engine/_output.py``), so that memory is bounded by
    # bytes and not only by counts:
    max_event_bytes: int = 1_048_576  # one event; a larger emit fails the run
    max_log_bytes: int = 33_554_432  # the retained log of one run; the oldest events go first
    max_output_bytes: int = 16_777_216  # one run's whole answer; beyond it the run fails
    max_chunk_bytes: int = 1_048_576  # one write to a connection (at least one event)
    # Write HTTP/1.1 body chunks straight to the connection's socket where that is safe
    # (see ``engine.asgi``); off, every write goes through the ASGI server.
    direct_writes: bool = True

    def __post_init__(self) -> None:
        if self.keepalive_interval <= 0:
            raise ValueError("keepalive_interval must be > 0")
        if self.connection_buffer < MIN_CONNECTION_BUFFER:
            raise ValueError(f"connection_buffer must be >= {MIN_CONNECTION_BUFFER}")
        if self.connection_buffer >= self.max_log_events:
            raise ValueError("connection_buffer must be smaller than max_log_events")
        for name in ("max_event_bytes", "max_log_bytes", "max_output_bytes", "max_chunk_bytes"):
            if getattr(self, name) < 1024:
                raise ValueError(f"{name} must be >= 1024")
        if self.max_event_bytes > self.max_log_bytes:
            # The log always keeps its newest event, so one event must fit in it.
            raise ValueError("max_event_bytes must not exceed max_log_bytes")
        for name in ("run_timeout", "stall_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 or None")
