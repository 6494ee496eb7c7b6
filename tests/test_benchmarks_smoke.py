"""The benchmark suite: its wire parsers (pure, fast) and end-to-end smoke runs.

The smoke runs (the standard suite, and its distributed part on the Redis backend) check that
every figure was produced for every server (keys present, numbers finite), never how large a
figure is: speed is measured by ``benchmarks/``, not asserted.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks._capacity import holds, search
from benchmarks._distributed import DISTRIBUTED_SCALES
from benchmarks._plan import FIGURES, SCALES
from benchmarks._redis import (
    RedisConnection,
    ping_rtts,
    run_key_bytes,
    running_redis,
    store_ping_rtts,
    used_memory,
)
from benchmarks._wire import BodyCounter, ResponseReader, SseReader, extract_stamp
from benchmarks.report import compare_distributed

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ["scopestream", "sse-starlette", "floor"]

_FRAMES = (
    b"id: 1\nevent: run.started\ndata: {}\n\n",
    b": keepalive\n\n",
    b'id: 2\nevent: text.delta\ndata: {"text":"1795311538.113929|xx"}\n\n',
    b"id: 3\nevent: run.completed\ndata: {}\n\n",
)


def _chunked_response() -> bytes:
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-run-id: r1\r\n\r\n"
    body = b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in _FRAMES)
    return head + body + b"0\r\n\r\n"


def _parse_in_pieces(wire: bytes, size: int) -> tuple[ResponseReader, list[tuple[bytes, bool]]]:
    frames: list[tuple[bytes, bool]] = []
    sse = SseReader(lambda event, data, comment: frames.append((event, comment)))
    reader = ResponseReader(sse.feed_range)
    for i in range(0, len(wire), size):
        reader.feed(wire[i : i + size])
    return reader, frames


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_response_and_sse_parsing_survive_any_split(size: int) -> None:
    reader, frames = _parse_in_pieces(_chunked_response(), size)
    assert reader.complete
    assert reader.status == 200
    assert reader.headers[b"x-run-id"] == b"r1"
    assert frames == [
        (b"run.started", False),
        (b"message", True),
        (b"text.delta", False),
        (b"run.completed", False),
    ]


def test_crlf_event_streams_are_normalised() -> None:
    frames: list[bytes] = []
    sse = SseReader(lambda event, data, comment: frames.append(data))
    wire = b"data: a\r\n\r\ndata: b\r\n\r\n"
    for i in range(len(wire)):
        sse.feed(wire[i : i + 1])
    assert frames == [b"a", b"b"]


@pytest.mark.parametrize("crlf", [False, True])
def test_counter_counts_frames_across_pieces_and_keeps_the_tail(crlf: bool) -> None:
    counter = BodyCounter(frames=True, tail=16)
    body = b"".join(_FRAMES)
    if crlf:
        body = body.replace(b"\n", b"\r\n")
    for i in range(0, len(body), 5):
        counter.feed_range(body, i, min(i + 5, len(body)))
    assert counter.frames == len(_FRAMES)
    assert counter.bytes == len(body)
    assert counter.tail == body[-16:]


def test_stamp_extraction() -> None:
    assert extract_stamp(b'{"text":"1795311538.113929|xxxx"}') == pytest.approx(1795311538.113929)
    assert extract_stamp(b'{"text":"xxxx"}') is None


def _probe_result(p99_ms: float, **overrides: object) -> dict[str, object]:
    result: dict[str, object] = {
        "latency_s": [p99_ms / 1e3] * 100,
        "samples_total": 100,
        "expected_samples": 100,
        "streams_lost": 0,
        "errors": [],
    }
    return {**result, **overrides}


def test_a_level_holds_only_with_every_stream_on_time() -> None:
    assert holds(_probe_result(10))[0]
    assert not holds(_probe_result(60))[0]
    assert not holds(_probe_result(10, streams_lost=1))[0]
    assert not holds(_probe_result(10, errors=["HTTP 503"]))[0]
    assert not holds(_probe_result(10, samples_total=80))[0]  # events went missing
    assert not holds(_probe_result(10, latency_s=[]))[0]  # nothing measured is not a pass
    assert not holds(None)[0]


@pytest.mark.parametrize("capacity", [0, 50, 100, 150, 399, 1000, 5000])
def test_capacity_search_finds_the_largest_level_that_holds(capacity: int) -> None:
    def probe(level: int) -> dict[str, object]:
        return _probe_result(10 if level <= capacity else 80)

    found, tried = search(probe, start=100, limit=1600, refine=8)
    if capacity >= 1600:
        assert found == 1600  # held at the limit: reported as the limit
    else:
        assert found <= capacity  # never more than what held
        assert capacity - found <= max(1, found // 20) + 1  # and within 5% of it
    assert all(ok == (level <= capacity) for level, ok, _ in tried)


@pytest.mark.e2e
def test_smoke_run_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out / "results.json").read_text())
    assert list(results["servers"]) == SERVERS

    scale = SCALES["smoke"]
    expected_levels = {
        "throughput_100B": scale.throughput_streams,
        "throughput_4KiB": scale.throughput_streams,
        "first_event": scale.first_event_levels,
        "latency": scale.latency_levels,
        "latency_h2": scale.latency_levels,
        "cancel": scale.control_levels,
        "disconnect": scale.control_levels,
        "idle": scale.idle_levels,
        "capacity": (0,),  # one figure: the level the search found
    }
    missing = []
    for fig in FIGURES:
        levels = results["figures"][fig.key]["levels"]
        assert sorted(int(level) for level in levels) == sorted(expected_levels[fig.group])
        for level, row in levels.items():
            for server in ["scopestream"] if fig.group == "latency_h2" else SERVERS:
                stats = row[server]
                if not (stats["n"] > 0 and all(math.isfinite(stats[k]) for k in ("median", "p99"))):
                    missing.append(f"{fig.key}@{level} {server}: {stats}")
    assert not missing, "\n".join(missing)

    for verdict in results["targets"]:
        assert set(verdict) == {"target", "measured", "met", "detail"}
        assert verdict["met"] is not None, verdict
    for job in results["jobs"]:
        assert "loadgen_cpu_share" in job and "server_cpu_share" in job, job
    assert (out / "report.md").read_text().startswith("# scopestream benchmarks")
    assert len(list(out.glob("*.png"))) >= 7


def _figs(**medians: dict[str, float]) -> dict[str, object]:
    """Figures as ``benchmarks._run.figures`` shapes them: one level, median = p99."""
    return {
        key: {"levels": {"1": {c: {"n": 1, "median": v, "p99": v} for c, v in row.items()}}}
        for key, row in medians.items()
    }


def test_distributed_comparisons_judge_the_cross_worker_cancel_and_the_scaling() -> None:
    figs = _figs(
        throughput_100B={"memory-1w": 100.0, "redis-1w": 50.0},
        latency={"memory-1w": 1.0, "redis-1w": 3.0},
        aggregate={"redis-1w": 100.0, "redis-2w": 190.0},
        cancel={"redis-1w": 2.0, "redis-2w": 2.05},
        redis_ping_store={"redis": 0.1},
    )
    comparisons = compare_distributed(figs)

    def verdict(prefix: str) -> dict[str, object]:
        return next(c for c in comparisons if c["comparison"].startswith(prefix))

    seen = verdict("single-stream throughput (as clients")
    assert seen["met"] is None  # a cost: reported, not judged
    assert "0.50x" in seen["measured"]
    assert verdict("single-stream throughput (stored")["measured"] == "n/a"  # not measured
    assert verdict("aggregate throughput (as clients")["met"] is True  # 1.9x
    assert verdict("aggregate throughput (stored")["met"] is None  # not measured: no pass
    cancel = [c for c in comparisons if c["comparison"].startswith("cancel")]
    assert [c["met"] for c in cancel] == [True, True]  # 2.05 <= 2 + 0.1

    slow = _figs(aggregate={"redis-1w": 100.0, "redis-2w": 120.0},
                 cancel={"redis-1w": 2.0, "redis-2w": 2.5}, redis_ping_store={"redis": 0.1})  # fmt: skip
    judged = compare_distributed(slow)
    assert next(c for c in judged if c["comparison"].startswith("aggregate"))["met"] is False
    assert [c["met"] for c in judged if c["comparison"].startswith("cancel")] == [False, False]
    # A figure that was not measured is never a pass.
    assert all(c["met"] is None and c["measured"] == "n/a" for c in compare_distributed({}))


@pytest.mark.redis
def test_run_key_bytes_groups_a_runs_keys_and_skips_aliases(tmp_path: Path) -> None:
    with running_redis(tmp_path) as redis, RedisConnection(redis.port) as conn:
        conn.call("HSET", "ss:{run_a}:rec", "status", "completed")
        conn.call("XADD", "ss:{run_a}:log", "1-0", "e", "x" * 500)
        conn.call("PEXPIRE", "ss:{run_a}:rec", 600_000)
        conn.call("HSET", "ss:{run_b}:rec", "status", "running")
        conn.call("SET", "ss:{alias:abc}:id", "run_a")
        conn.call("SET", "ss:worker:{w1}:hb", "1")
        runs = run_key_bytes(redis.port)
        assert set(runs) == {"run_a", "run_b"}
        assert runs["run_a"]["keys"] == 2 and runs["run_b"]["keys"] == 1
        assert runs["run_a"]["bytes"] > 500  # the log entry's payload is counted
        assert runs["run_a"]["ttl_ms"] == -1  # the smallest: the log has no expiry
        ttl = conn.call("PTTL", "ss:{run_a}:rec")
        assert isinstance(ttl, int) and 0 < ttl <= 600_000
        assert used_memory(redis.port) > 0
        assert len(ping_rtts(redis.port, 3)) == 3
        assert len(store_ping_rtts(redis.url, 3)) == 3
    assert redis.process.poll() is not None  # stopped on the way out


@pytest.mark.e2e
@pytest.mark.redis
def test_distributed_smoke_run_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--distributed", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["part"] == "distributed"
    assert not [job for job in results["jobs"] if "error" in job or job.get("errors")]

    expected = {
        "throughput_100B": {"memory-1w", "redis-1w"},
        "throughput_100B_stored": {"redis-1w"},
        "latency": {"memory-1w", "redis-1w"},
        "aggregate": {"redis-1w", "redis-2w"},
        "aggregate_stored": {"redis-1w", "redis-2w"},
        "cancel": {"memory-1w", "redis-1w", "redis-2w"},
        "redis_ping": {"redis"},
        "redis_ping_store": {"redis"},
        "finished_run_memory": {"redis-1w"},
        "finished_run_used_memory": {"redis-1w"},
        "live_stream_memory": {"redis-1w"},
        "live_stream_rss": {"redis-1w"},
    }
    assert set(results["figures"]) == set(expected)
    missing = []
    for key, configs in expected.items():
        levels = results["figures"][key]["levels"]
        assert levels, key
        for level, row in levels.items():
            measured = {c for c, stats in row.items() if stats["n"] > 0}
            if measured != configs:
                missing.append(f"{key}@{level}: measured {sorted(measured)}")
            for config in configs:
                stats = row[config]
                if not all(math.isfinite(stats[k]) for k in ("median", "p99", "p1")):
                    missing.append(f"{key}@{level} {config}: {stats}")
    assert not missing, "\n".join(missing)
    assert all(c["measured"] != "n/a" for c in results["comparisons"]), results["comparisons"]
    # The finished runs were weighed as they are kept: every key at the retention expiry.
    runs = results["finished_runs"]
    assert runs["runs"] == DISTRIBUTED_SCALES["smoke"].finished_runs
    assert 0 < runs["ttl_s_min"] <= runs["ttl_s_max"] <= runs["retention_s"]
    report = (out / "report.md").read_text()
    assert report.startswith("# scopestream distributed benchmarks")
    assert "No job failed" in report or "## Problems seen" in report
    assert "| cancel → terminal p50" in report
