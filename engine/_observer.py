"""Observability hooks: the engine reports, the embedder (or the app's metrics) listens.

The engine itself has no metrics library and no global counters; an :class:`EngineObserver`
belongs to the engine it was given to. Every method is synchronous and must not block: it
runs on the hot path of the task that caused it. An exception from a hook is logged and
dropped (see :func:`guarded`): a broken metrics exporter must not end runs or the engine.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ._handle import RunHandle
    from ._runs import Run

__all__ = ["CloseReason", "EngineObserver", "guarded"]

logger = logging.getLogger("scopestream.engine")

CloseReason = Literal["finished", "disconnected", "slow_consumer", "cancelled"]


class EngineObserver:
    """No-op base; override what you need."""

    def run_started(self, run: Run) -> None:
        """The run's producer is about to start."""

    def run_finished(self, run: Run) -> None:
        """The terminal event was written. ``run.cancel_requested_at`` and ``run.terminal_at``
        (both ``trio.current_time()``) give the cancel-to-terminal latency of cancelled runs."""

    def connection_opened(self, run: RunHandle) -> None:
        pass

    def connection_closed(self, run: RunHandle, reason: CloseReason) -> None:
        pass

    def keepalive_sent(self, run: RunHandle) -> None:
        pass


class _Guarded(EngineObserver):
    __slots__ = ("_inner",)

    def __init__(self, inner: EngineObserver) -> None:
        self._inner = inner


def _guard(name: str) -> Any:
    def hook(self: _Guarded, *args: Any) -> None:
        try:
            getattr(self._inner, name)(*args)
        except Exception:
            logger.exception("observer hook %s raised", name, extra={"event": "observer.error"})

    hook.__name__ = name
    return hook


for _name, _value in vars(EngineObserver).items():
    if callable(_value) and not _name.startswith("_"):
        setattr(_Guarded, _name, _guard(_name))


def guarded(observer: EngineObserver) -> EngineObserver:
    """``observer`` with every hook's exceptions logged instead of raised."""
    return observer if isinstance(observer, _Guarded) else _Guarded(observer)
