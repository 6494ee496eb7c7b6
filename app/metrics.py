"""Prometheus metrics, fed by the engine's observer hooks.

The registry belongs to the app instance (not prometheus-client's global one), so two apps
in one process — tests do that — never share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from engine import Cancelled, CloseReason, EngineObserver, Failed, Run, RunHandle

__all__ = ["Metrics"]


class Metrics(EngineObserver):
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter("scopestream_runs", "Runs by outcome.", ["outcome", "code"], registry=r)
        self.live_runs = Gauge("scopestream_live_runs", "Runs without a terminal yet.", registry=r)
        self.connections = Gauge("scopestream_connections", "Open client connections.", registry=r)
        self.cancel_latency = Histogram(
            "scopestream_cancel_to_terminal_seconds",
            "From a cancel deciding a run's outcome to its terminal event being written.",
            buckets=(0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
            registry=r,
        )
        self.disconnects = Counter("scopestream_disconnects", "Clients that went away.", registry=r)
        self.slow_consumers = Counter(
            "scopestream_slow_consumers", "Connections closed for falling behind.", registry=r
        )
        self.keepalives = Counter("scopestream_keepalives", "Keepalive frames sent.", registry=r)

    def run_started(self, run: Run) -> None:
        self.live_runs.inc()

    def run_finished(self, run: Run) -> None:
        self.live_runs.dec()
        outcome = run.outcome
        code = ""
        if isinstance(outcome, Failed):
            code = outcome.error.code.value
        elif isinstance(outcome, Cancelled):
            code = outcome.reason.value
            if run.cancel_requested_at is not None and run.terminal_at is not None:
                self.cancel_latency.observe(run.terminal_at - run.cancel_requested_at)
        self.runs.labels(run.status.value, code).inc()

    def connection_opened(self, run: RunHandle) -> None:
        self.connections.inc()

    def connection_closed(self, run: RunHandle, reason: CloseReason) -> None:
        self.connections.dec()
        if reason == "disconnected":
            self.disconnects.inc()
        elif reason == "slow_consumer":
            self.slow_consumers.inc()

    def keepalive_sent(self, run: RunHandle) -> None:
        self.keepalives.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
