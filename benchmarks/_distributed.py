"""Distributed runs: what the Redis backend costs, and how the service scales with workers.

``python -m benchmarks --distributed`` runs this part alone. It is scopestream against itself
(the peers have no distributed mode), in three configurations that share one load generator:

- ``memory-1w``: one worker on the in-memory backend (the suite's standard server);
- ``redis-1w``: one worker on the Redis backend;
- ``redis-2w``: two workers on the Redis backend, two ``hypercorn -k trio`` processes on two
  ports sharing one Redis (what ``hypercorn -w 2`` behind a balancer amounts to, but with each
  worker addressable: a cross-worker cancel must reach the worker that does not serve the
  stream, and only two ports make that controllable).

Phases:

1. *streams* (one Redis, ``redis-server`` started here): single-stream throughput and added
   latency, memory vs Redis (the cost of the store); aggregate throughput at many streams on
   one and two workers (the scaling); cancel -> terminal on each configuration, the
   ``redis-2w`` one sent to the other worker; and ``PING`` round trips to that Redis, to set
   beside the cross-worker cancel (which needs at least one).
2. *memory* (a fresh Redis and worker, retention 10 minutes so nothing expires while it is
   read): N finished runs of a given size, then ``used_memory`` growth / N and ``MEMORY
   USAGE`` of each run's keys; then live idle streams, ``used_memory`` growth / streams.

No CPU pinning here: two workers need both of this machine's cores, and the load generator
and Redis share them too. That caps what two workers can show on a two-core machine; the
report says so beside the figures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._plan import Figure, Step
from ._procs import tree_cpu_seconds
from ._redis import (
    RedisProcess,
    ping_rtts,
    run_key_bytes,
    running_redis,
    store_ping_rtts,
    used_memory,
    wait_no_live_runs,
)
from ._run import Raw, _LoadGenerator, _Progress, _run_job, _store
from ._servers import KEEPALIVE_OFF, Server, ServerSpec, local_specs, running

__all__ = [
    "CONFIGS",
    "DISTRIBUTED_FIGURES",
    "DISTRIBUTED_SCALES",
    "DistributedScale",
    "finished_runs_facts",
    "redis_spec",
    "run_distributed",
    "server_warnings",
]

# Configuration name -> how the report describes it.
CONFIGS: dict[str, str] = {
    "memory-1w": "memory backend, 1 worker",
    "redis-1w": "Redis backend, 1 worker",
    "redis-2w": "Redis backend, 2 workers",
    "redis": "the Redis server itself",
}
_MEMORY_RETENTION_S = 600  # the default retention: finished runs are measured as they are kept


@dataclass(frozen=True, slots=True)
class DistributedScale:
    name: str
    repeats: int
    single_events: int  # single-stream throughput, 100 B events
    latency_streams: int
    latency_interval_ms: float
    latency_window_s: float
    aggregate_streams: int  # aggregate throughput: streams, no interval...
    aggregate_events: int  # ...and a fixed total, split over them
    cancel_count: int  # cancels per job, one stream at a time
    ping_count: int
    finished_runs: int  # memory: runs of ``run_events`` 100 B events, left at retention
    run_events: int
    live_streams: tuple[int, ...]  # memory: idle live streams held open, level by level


DISTRIBUTED_SCALES: dict[str, DistributedScale] = {
    "smoke": DistributedScale(
        name="smoke", repeats=1, single_events=2000,
        latency_streams=10, latency_interval_ms=50, latency_window_s=0.6,
        aggregate_streams=10, aggregate_events=2000, cancel_count=8, ping_count=200,
        finished_runs=20, run_events=100, live_streams=(20,),
    ),
    "quick": DistributedScale(
        name="quick", repeats=2, single_events=20_000,
        latency_streams=100, latency_interval_ms=100, latency_window_s=2.0,
        aggregate_streams=100, aggregate_events=40_000, cancel_count=40, ping_count=2000,
        finished_runs=200, run_events=100, live_streams=(100, 500),
    ),
    "full": DistributedScale(
        name="full", repeats=5, single_events=100_000,
        latency_streams=100, latency_interval_ms=100, latency_window_s=3.0,
        aggregate_streams=200, aggregate_events=200_000, cancel_count=100, ping_count=10_000,
        finished_runs=1000, run_events=100, live_streams=(1000, 2000),
    ),
}  # fmt: skip

DISTRIBUTED_FIGURES: tuple[Figure, ...] = (
    Figure("throughput_100B", "Single-stream throughput, 100-byte events", "events/s",
           "higher", "throughput", "events_per_s"),
    Figure("throughput_100B_stored", "Single-stream throughput, counted until Redis has "
           "stored every run", "events/s", "higher", "throughput", "stored_events_per_s"),
    Figure("latency", "Added latency, producer emit → client receive", "ms", "lower",
           "latency", "latency_s", 1e3),
    Figure("aggregate", "Aggregate throughput over many streams, 100-byte events",
           "events/s", "higher", "aggregate", "events_per_s"),
    Figure("aggregate_stored", "Aggregate throughput, counted until Redis has stored every "
           "run", "events/s", "higher", "aggregate", "stored_events_per_s"),
    Figure("cancel", "Cancel request → terminal frame (redis-2w: sent to the other worker)",
           "ms", "lower", "cancel", "cancel_s", 1e3),
    Figure("redis_ping", "Redis PING round trip (raw socket)", "ms", "lower", "ping", "rtt_s",
           1e3),
    Figure("redis_ping_store", "Redis PING round trip through the workers' client (coredis "
           "under Trio)", "ms", "lower", "ping", "store_rtt_s", 1e3),
    Figure("finished_run_memory", "Redis memory per finished run at retention "
           "(MEMORY USAGE of its keys)", "KiB", "lower", "finished_runs", "run_bytes", 1 / 1024),
    Figure("finished_run_used_memory", "Redis memory per finished run at retention "
           "(used_memory growth / runs)", "KiB", "lower", "finished_runs", "per_run_bytes",
           1 / 1024),
    Figure("live_stream_memory", "Redis memory per live idle stream (used_memory growth / "
           "streams)", "KiB", "lower", "live", "redis_per_stream_bytes", 1 / 1024),
    Figure("live_stream_rss", "Worker RSS per live idle stream (RSS growth / streams)", "KiB",
           "lower", "live", "per_stream_bytes", 1 / 1024),
)  # fmt: skip


def redis_spec(url: str, *, retention_s: float | None = None) -> ServerSpec:
    """The suite's scopestream server, on the Redis backend at ``url``."""
    base = local_specs()["scopestream"]
    env = {**base.env, "SCOPESTREAM_BACKEND": "redis", "SCOPESTREAM_REDIS_URL": url}
    if retention_s is not None:
        env["SCOPESTREAM_LOG_RETENTION"] = str(retention_s)
    return dataclasses.replace(base, name="scopestream-redis", env=env)


def _steps(scale: DistributedScale) -> dict[str, Step]:
    latency = {
        "streams": scale.latency_streams,
        "interval_ms": scale.latency_interval_ms,
        "window_s": scale.latency_window_s,
        "event_bytes": 100,
    }
    aggregate = {
        "streams": scale.aggregate_streams,
        "events": max(1, scale.aggregate_events // scale.aggregate_streams),
        "event_bytes": 100,
    }
    cancel = {"concurrency": 1, "count": scale.cancel_count, "interval_ms": 10, "after_events": 3}
    single = {"streams": 1, "events": scale.single_events, "event_bytes": 100}
    return {
        "throughput": Step("throughput", 1, "throughput", single),
        "latency": Step("latency", scale.latency_streams, "latency", latency),
        "aggregate": Step("aggregate", scale.aggregate_streams, "throughput", aggregate),
        "cancel": Step("cancel", 1, "cancel", cancel),
    }


class _Jobs:
    """Runs one job as one configuration, filing its result and its record."""

    def __init__(self, loadgen: _LoadGenerator, total: int) -> None:
        self.loadgen = loadgen
        self.redis_pid: int | None = None  # the Redis of the phase, for its CPU share
        self.raw: Raw = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
        self.records: list[dict[str, Any]] = []
        self.progress = _Progress(total)

    def do(self, config: str, server: Server, step: Step, repeat: int, **extra: Any) -> None:
        as_config = dataclasses.replace(server, name=config)
        redis = [self.redis_pid] if self.redis_pid else []
        redis0 = tree_cpu_seconds(redis)
        result, record = _run_job(self.loadgen, as_config, step, extra)
        if redis and record["wall_s"]:
            # Over the job as the orchestrator saw it (a little longer than the load
            # generator's own interval): where the third party's CPU went.
            record["redis_cpu_share"] = (tree_cpu_seconds(redis) - redis0) / record["wall_s"]
        record["repeat"] = repeat
        self.records.append(record)
        if result is not None:
            _store(self.raw, step, config, result)
        note = record.get("error") or "; ".join(record.get("errors", [])) or "ok"
        self.progress.say(f"{step.name} r{repeat} {config}: {record['wall_s']:.1f}s {note}")

    def stored(self, group: str, level: int, config: str, port: int) -> None:
        """After a throughput job on the Redis backend: wait until every run is finished in
        Redis and add the rate counted to that moment (``stored_events_per_s``) to the job's
        result. The owner sends to its clients before its batched writes reach Redis, so under
        load the rate its clients see can run ahead of what the store has taken."""
        results = self.raw[group][level][config]
        stored_at = wait_no_live_runs(port)
        if not results or stored_at is None:
            return
        result = results[-1]
        lag = max(0.0, stored_at - result["last_wall"])
        result["store_lag_s"] = lag
        result["stored_events_per_s"] = result["events"] / (result["window_s"] + lag)

    def note(self, group: str, level: int, config: str, result: dict[str, Any]) -> None:
        self.raw[group][level][config].append(result)
        self.progress.say(f"{group}@{level} {config}: ok")


def _stream_phase(scale: DistributedScale, jobs: _Jobs, logs: Path) -> None:
    steps = _steps(scale)
    with contextlib.ExitStack() as stack:
        redis: RedisProcess = stack.enter_context(running_redis(logs))
        jobs.redis_pid = redis.process.pid
        start = {"keepalive": KEEPALIVE_OFF, "cpu": None, "log_dir": logs}
        memory = stack.enter_context(running(local_specs()["scopestream"], **start))
        a = stack.enter_context(running(redis_spec(redis.url), **start))
        b = stack.enter_context(running(redis_spec(redis.url), **start))
        # Both workers' processes count as "the server" in the CPU figures of a 2-worker job.
        both = dataclasses.replace(a, pids=[*a.pids, *b.pids])
        for repeat in range(scale.repeats):
            # Alternate which backend goes first, so neither always meets a fresher machine.
            pair = [("memory-1w", memory), ("redis-1w", a)][:: 1 if repeat % 2 == 0 else -1]
            for name in ("throughput", "latency"):
                for config, server in pair:
                    jobs.do(config, server, steps[name], repeat)
                    if name == "throughput" and config != "memory-1w":
                        jobs.stored("throughput", 1, config, redis.port)
            level = scale.aggregate_streams
            jobs.do("redis-1w", a, steps["aggregate"], repeat)
            jobs.stored("aggregate", level, "redis-1w", redis.port)
            jobs.do("redis-2w", both, steps["aggregate"], repeat, spread=[b.target.as_dict()])
            jobs.stored("aggregate", level, "redis-2w", redis.port)
            for config, server in pair:
                jobs.do(config, server, steps["cancel"], repeat)
            jobs.do("redis-2w", both, steps["cancel"], repeat, cancel_via=b.target.as_dict())
        pings = {
            "rtt_s": ping_rtts(redis.port, scale.ping_count),
            "store_rtt_s": store_ping_rtts(redis.url, scale.ping_count),
        }
        jobs.note("ping", 1, "redis", pings)


def _settled_runs(port: int, runs: int, limit_s: float = 30.0) -> tuple[dict[str, Any], float]:
    """Every run's keys once all ``runs`` are finished in Redis, and how long after the last
    client had its terminal frame that took.

    The owning worker hands events to its own clients before its batched writes reach Redis,
    so a client can hold ``run.completed`` while the store still has the run live (its keys at
    the live TTL, the log not all written): measuring then would weigh a run that is not yet
    as it will be kept. Finished means every key carries the retention expiry.
    """
    t0 = time.monotonic()
    limit_ms = _MEMORY_RETENTION_S * 1000
    while True:
        per_run = run_key_bytes(port)
        done = len(per_run) >= runs and all(r["ttl_ms"] <= limit_ms for r in per_run.values())
        if done or time.monotonic() - t0 > limit_s:
            return per_run, time.monotonic() - t0
        time.sleep(0.05)


def _memory_phase(scale: DistributedScale, jobs: _Jobs, logs: Path) -> None:
    runs = Step(
        "finished_runs",
        scale.finished_runs,
        "throughput",
        {"streams": scale.finished_runs, "events": scale.run_events, "event_bytes": 100},
    )
    live = Step(
        "live",
        0,
        "idle",
        {
            "levels": list(scale.live_streams),
            "hold_s": 0.5,
            "keepalive_s": KEEPALIVE_OFF,
            "ramp_limit_s": 60,
        },
        phase="idle",
        timeout_s=300.0,
    )
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(running_redis(logs))
        jobs.redis_pid = redis.process.pid
        spec = redis_spec(redis.url, retention_s=_MEMORY_RETENTION_S)
        server = stack.enter_context(running(spec, keepalive=KEEPALIVE_OFF, cpu=None, log_dir=logs))
        time.sleep(0.5)  # the worker's heartbeat and index keys are written: not the runs' cost
        before = used_memory(redis.port)
        jobs.do("redis-1w", server, runs, 0)
        per_run, settle_s = _settled_runs(redis.port, scale.finished_runs)
        after = used_memory(redis.port)
        sizes = [run["bytes"] for run in per_run.values()]
        ttls = [run["ttl_ms"] for run in per_run.values()]
        jobs.note(
            "finished_runs",
            scale.finished_runs,
            "redis-1w",
            {
                "runs": len(per_run),
                "run_bytes": sizes,
                "per_run_bytes": (after - before) / max(1, len(per_run)),
                "keys_per_run": statistics.median(r["keys"] for r in per_run.values())
                if per_run
                else 0,
                # Every key of a finished run carries the retention expiry: the run is
                # measured as it will be kept, and it will go.
                "ttl_s_min": min(ttls) / 1000 if ttls else None,
                "ttl_s_max": max(ttls) / 1000 if ttls else None,
                "settle_s": settle_s,
            },
        )
        jobs.do("redis-1w", server, live, 0, server_pids=server.pids, redis_port=redis.port)


def finished_runs_facts(raw: Raw, scale: DistributedScale) -> dict[str, Any]:
    """What the finished-runs figure was taken over, for the report's footnote (empty if the
    memory phase produced nothing)."""
    for result in raw.get("finished_runs", {}).get(scale.finished_runs, {}).get("redis-1w", []):
        if "run_bytes" in result:
            return {
                "runs": result["runs"],
                "events": scale.run_events,
                "keys_per_run": result["keys_per_run"],
                "ttl_s_min": result["ttl_s_min"],
                "ttl_s_max": result["ttl_s_max"],
                "settle_s": result["settle_s"],
                "retention_s": _MEMORY_RETENTION_S,
            }
    return {}


def server_warnings(log_dir: Path, limit: int = 20) -> dict[str, Any]:
    """The warnings and errors the workers logged (their structured JSON lines): a worker
    declared lost while it was only busy, say, is a finding the figures alone would hide."""
    lines: list[str] = []
    for path in sorted(log_dir.glob("scopestream*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if '"level": "warning"' in line or '"level": "error"' in line:
                lines.append(f"{path.stem}: {line}")
    return {"count": len(lines), "first": lines[:limit]}


def run_distributed(scale: DistributedScale, out_dir: Path) -> tuple[Raw, list[dict[str, Any]]]:
    """Run both phases; return the raw results and one record per job (errors included)."""
    total = scale.repeats * 9 + 4  # 9 jobs a repeat; ping, and the memory phase's three
    loadgen = _LoadGenerator(None)
    jobs = _Jobs(loadgen, total)
    logs = out_dir / "server-logs"
    try:
        _stream_phase(scale, jobs, logs)
        _memory_phase(scale, jobs, logs)
    finally:
        loadgen.close()
    return jobs.raw, jobs.records
