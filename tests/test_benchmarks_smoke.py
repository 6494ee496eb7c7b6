"""The benchmark suite: its wire parsers (pure, fast) and one end-to-end smoke run.

The smoke run checks that every figure was produced for every server (keys present, numbers
finite), never how large a figure is: speed is measured by ``benchmarks/``, not asserted.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks._capacity import holds, search
from benchmarks._plan import FIGURES, SCALES
from benchmarks._wire import BodyCounter, ResponseReader, SseReader, extract_stamp

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
