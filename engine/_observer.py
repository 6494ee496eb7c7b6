"""Observability hooks: the engine reports, the embedder (or the app's metrics) listens.

The engine itself has no metrics library and no global counters; an :class:`EngineObserver`
belongs to the engine it was given to. Every method is synchronous and must not block: it
runs on the hot path of the task that caused it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ._runs import Run

__all__ = ["CloseReason", "EngineObserver"]

CloseReason = Literal["finished", "disconnected", "slow_consumer", "cancelled"]


class EngineObserver:
    """No-op base; override what you need."""

    def run_started(self, run: Run) -> None:
        """The run's producer is about to start."""

    def run_finished(self, run: Run) -> None:
        """The terminal event was written. ``run.cancel_requested_at`` and ``run.terminal_at``
        (both ``trio.current_time()``) give the cancel-to-terminal latency of cancelled runs."""

    def connection_opened(self, run: Run) -> None:
        pass

    def connection_closed(self, run: Run, reason: CloseReason) -> None:
        pass

    def keepalive_sent(self, run: Run) -> None:
        pass
