"""What a run measures, at which scale: the steps, the figures they feed, and three sizes.

A *step* is one scenario at one level (a number of streams); the orchestrator runs it once per
repeat on every server. A *figure* is one number the report shows, taken from the results of
the steps of one *group* (a figure's samples at a level are the samples of every repeat).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["FIGURES", "SCALES", "Figure", "Scale", "Step", "steps"]

Phase = Literal["stream", "idle"]


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    title: str
    unit: str
    better: Literal["lower", "higher"]
    group: str
    field: str  # the loadgen result field holding the samples
    scale: float = 1.0  # from the loadgen's unit (seconds, bytes) to ``unit``
    absolute: bool = False  # report |x| (keepalive jitter is a signed deviation)


FIGURES: tuple[Figure, ...] = (
    Figure("throughput_100B", "Throughput, 100-byte events", "events/s", "higher",
           "throughput_100B", "events_per_s"),
    Figure("throughput_100B_mb", "Throughput, 100-byte events", "MB/s", "higher",
           "throughput_100B", "mb_per_s"),
    Figure("throughput_4KiB", "Throughput, 4 KiB events", "events/s", "higher",
           "throughput_4KiB", "events_per_s"),
    Figure("throughput_4KiB_mb", "Throughput, 4 KiB events", "MB/s", "higher",
           "throughput_4KiB", "mb_per_s"),
    Figure("first_event", "Time to first event", "ms", "lower", "first_event", "ttfe_s", 1e3),
    Figure("latency", "Added latency, producer emit → client receive", "ms", "lower",
           "latency", "latency_s", 1e3),
    Figure("latency_h2", "Added latency over HTTP/2, 10 streams per connection", "ms", "lower",
           "latency_h2", "latency_s", 1e3),
    Figure("cancel", "Cancel request → terminal frame", "ms", "lower", "cancel", "cancel_s", 1e3),
    Figure("disconnect", "Client close → producer cleanup done", "ms", "lower",
           "disconnect", "disconnect_s", 1e3),
    Figure("capacity", "Capacity: most streams at 20 events/s with p99 added latency < 50 ms",
           "streams", "higher", "capacity", "max_streams"),
    Figure("idle_memory", "Memory per idle keepalive stream (RSS growth / streams)", "KiB",
           "lower", "idle", "per_stream_bytes", 1 / 1024),
    Figure("keepalive_jitter", "Keepalive jitter, |gap - interval|", "ms", "lower", "idle",
           "jitter_s", 1e3, absolute=True),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Step:
    group: str
    level: int
    scenario: str
    params: dict[str, Any]
    phase: Phase = "stream"
    timeout_s: float = 120.0
    http2: bool = False  # only for the servers that speak HTTP/2

    @property
    def name(self) -> str:
        return f"{self.group}@{self.level}"


@dataclass(frozen=True, slots=True)
class Scale:
    name: str
    repeats: int
    throughput_events: dict[int, int]  # event bytes -> events per job (split over streams)
    throughput_streams: tuple[int, ...]
    first_event_count: int
    first_event_levels: tuple[int, ...]
    latency_levels: tuple[int, ...]
    latency_interval_ms: float
    latency_window_s: float
    control_levels: tuple[int, ...]  # cancel and disconnect
    control_count: int
    control_interval_ms: float
    idle_levels: tuple[int, ...]
    idle_hold_s: float
    idle_keepalive_s: float
    idle_repeats: int  # each repeat starts every server afresh, so they cost the most
    idle_ramp_limit_s: float  # per level: a saturated server may never open them all
    # The capacity search: probe levels from ``start`` doubling up to ``limit``, then bisect
    # between the last level that held and the first that did not, ``refine`` times.
    capacity_start: int
    capacity_limit: int
    capacity_refine: int
    capacity_window_s: float
    extra: dict[str, Any] = field(default_factory=dict)


SCALES: dict[str, Scale] = {
    # The test suite's: every figure, tiny numbers, well under a minute.
    "smoke": Scale(
        name="smoke", repeats=1,
        throughput_events={100: 2000, 4096: 500}, throughput_streams=(1, 4),
        first_event_count=20, first_event_levels=(1, 4),
        latency_levels=(1, 10), latency_interval_ms=50, latency_window_s=0.6,
        control_levels=(1, 4), control_count=8, control_interval_ms=10,
        idle_levels=(20, 50), idle_hold_s=1.1, idle_keepalive_s=0.5, idle_repeats=1,
        idle_ramp_limit_s=10,
        capacity_start=5, capacity_limit=20, capacity_refine=0, capacity_window_s=0.5,
    ),
    # make bench-quick: the shape of the full run at a fraction of its size, in ~40 s.
    "quick": Scale(
        name="quick", repeats=1,
        throughput_events={100: 10000, 4096: 5000}, throughput_streams=(1, 10),
        first_event_count=100, first_event_levels=(1, 10),
        latency_levels=(1, 100), latency_interval_ms=50, latency_window_s=0.4,
        control_levels=(1, 10), control_count=15, control_interval_ms=10,
        idle_levels=(100, 500), idle_hold_s=1.1, idle_keepalive_s=0.5, idle_repeats=1,
        idle_ramp_limit_s=15,
        capacity_start=100, capacity_limit=1600, capacity_refine=1, capacity_window_s=1.0,
    ),
    "full": Scale(
        name="full", repeats=5,
        throughput_events={100: 100_000, 4096: 40_000}, throughput_streams=(1, 10, 100),
        first_event_count=300, first_event_levels=(1, 10, 100),
        latency_levels=(1, 100, 1000), latency_interval_ms=100, latency_window_s=3.0,
        control_levels=(1, 10, 100), control_count=100, control_interval_ms=10,
        # A 5 s keepalive: 10,000 streams then tick 2,000 writes/s, which every server here
        # sustains (at 1 s, scopestream saturates near 4,000 and never opens them all).
        idle_levels=(1000, 5000, 10000), idle_hold_s=10.5, idle_keepalive_s=5.0, idle_repeats=2,
        idle_ramp_limit_s=60,
        capacity_start=100, capacity_limit=6400, capacity_refine=3, capacity_window_s=3.0,
    ),
}  # fmt: skip


def _throughput(scale: Scale) -> list[Step]:
    out: list[Step] = []
    for size, label in ((100, "100B"), (4096, "4KiB")):
        total = scale.throughput_events[size]
        for n in scale.throughput_streams:
            params = {"streams": n, "events": max(1, total // n), "event_bytes": size}
            out.append(Step(f"throughput_{label}", n, "throughput", params))
    return out


def steps(scale: Scale, *, generic: bool = False) -> list[Step]:
    """The steps of a run, in order. A generic SSE target gets only the ones that need no
    control over its producer (time to first event, throughput)."""
    out: list[Step] = []
    for n in scale.first_event_levels:
        params: dict[str, Any] = {
            "concurrency": n,
            "count": scale.first_event_count,
            "event_bytes": 100,
        }
        out.append(Step("first_event", n, "first_event", params))
    if generic:
        return out + _throughput(scale)
    params: dict[str, Any]
    for n in scale.latency_levels:
        params = {
            "streams": n,
            "interval_ms": scale.latency_interval_ms,
            "window_s": scale.latency_window_s,
            "event_bytes": 100,
        }
        out.append(Step("latency", n, "latency", params))
        h2 = {**params, "per_connection": 10}  # as a page following 10 runs on one connection
        out.append(Step("latency_h2", n, "latency_h2", h2, http2=True))
    for group in ("cancel", "disconnect"):
        for n in scale.control_levels:
            params = {
                "concurrency": n,
                "count": max(scale.control_count, n),
                "interval_ms": scale.control_interval_ms,
                "after_events": 3,
            }
            out.append(Step(group, n, group, params))
    # Throughput last: its long runs leave the most behind in the server's memory.
    out += _throughput(scale)
    idle = {
        "levels": list(scale.idle_levels),
        "hold_s": scale.idle_hold_s,
        "keepalive_s": scale.idle_keepalive_s,
        "ramp_limit_s": scale.idle_ramp_limit_s,
    }
    out.append(Step("idle", 0, "idle", idle, phase="idle", timeout_s=600.0))
    return out
