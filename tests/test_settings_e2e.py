"""Settings through the real service: a bad one stops hypercorn at startup, and the limits
an operator sets (deadline, stall, retention, keepalive, connection buffer) take effect."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ._http import RawStream
from ._server import Server, run_server, start_expecting_exit
from ._sse import parse_sse

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SCOPESTREAM_PRODUCERS": "x=nope.mod:f"}, "SCOPESTREAM_PRODUCERS"),
        ({"SCOPESTREAM_PRODUCERS": "no-equals-sign"}, "SCOPESTREAM_PRODUCERS"),
        ({"SCOPESTREAM_KEEPALIVE_INTERVAL": "abc"}, "SCOPESTREAM_KEEPALIVE_INTERVAL"),
        ({"SCOPESTREAM_RUN_TIMEOUT": "-1"}, "SCOPESTREAM_RUN_TIMEOUT"),
        ({"SCOPESTREAM_CONNECTION_BUFFER": "16"}, "SCOPESTREAM_CONNECTION_BUFFER"),
    ],
)
def test_a_bad_setting_stops_the_server_at_startup(env: dict[str, str], named: str) -> None:
    result = start_expecting_exit(env)
    assert result.returncode != 0, result.stdout
    assert named in result.stdout


def test_the_asyncio_worker_is_refused_at_startup() -> None:
    result = start_expecting_exit(worker="asyncio")
    assert result.returncode != 0, result.stdout
    assert "hypercorn -k trio app:serve" in result.stdout


def test_a_bad_setting_under_the_asyncio_worker_names_the_worker() -> None:
    # The worker is the first thing wrong: the message says how to start the service.
    result = start_expecting_exit({"SCOPESTREAM_KEEPALIVE_INTERVAL": "abc"}, worker="asyncio")
    assert result.returncode != 0, result.stdout
    assert "hypercorn -k trio app:serve" in result.stdout


LIMITS = {
    "SCOPESTREAM_RUN_TIMEOUT": "1",
    "SCOPESTREAM_STALL_TIMEOUT": "0.3",
    "SCOPESTREAM_LOG_RETENTION": "0.5",
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("limits"), LIMITS) as server:
        yield server


def test_run_deadline_fails_the_run_with_timeout(limited: Server) -> None:
    # Progress every 50 ms, so only the deadline can end it.
    body = {"producer": "synthetic", "input": {"events": 1000, "interval_ms": 50}}
    with limited.client() as client:
        response = client.post("/v1/runs", json=body)
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["code"] == "timeout"
    assert error["run"]["status"] == "failed"
    assert error["run"]["outcome"]["error"]["code"] == "timeout"
    assert 5 < error["run"]["last_seq"] < 100  # it made progress until the deadline


def test_stall_timeout_fails_a_silent_run_with_stalled(limited: Server) -> None:
    body = {"producer": "synthetic", "input": {"events": 5, "stall_at": 3}, "stream": True}
    stream = RawStream(limited.port, "POST", "/v1/runs", body)
    assert stream.status == 200
    stream.read_to_end()
    events = [f.json() for f in parse_sse(stream.raw) if f.id]
    assert [e["type"] for e in events] == ["run.started", "text.delta", "text.delta", "run.failed"]
    assert events[-1]["data"]["error"]["code"] == "stalled"


def test_retention_forgets_finished_runs(limited: Server) -> None:
    with limited.client() as client:
        view = client.post("/v1/runs", json={"producer": "synthetic", "input": {"events": 1}})
        run_id = view.json()["id"]
        assert view.json()["status"] == "completed"
        deadline = time.monotonic() + 10
        status = client.get(f"/v1/runs/{run_id}").status_code
        while status == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            status = client.get(f"/v1/runs/{run_id}").status_code
        assert status == 404


METERED = {
    "SCOPESTREAM_KEEPALIVE_INTERVAL": "0.05",
    "SCOPESTREAM_CONNECTION_BUFFER": "128",
    # Room for the slow-consumer run below (40 MB, more than the default budgets).
    "SCOPESTREAM_MAX_OUTPUT_BYTES": "67108864",
    "SCOPESTREAM_MAX_LOG_BYTES": "67108864",
}


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("metered"), METERED) as server:
        yield server


def metric(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}")


def wait_metric(client: httpx.Client, name: str, expected: float) -> None:
    deadline = time.monotonic() + 10
    while (value := metric(client, name)) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert value == expected, (name, value, expected)


def paused_run(client: httpx.Client) -> dict[str, Any]:
    """A background run waiting for an answer: live, and silent until answered."""
    body = {"producer": "synthetic", "input": {"events": 2, "ask_at": 1}, "background": True}
    run = client.post("/v1/runs", json=body).json()
    assert run["status"] in ("queued", "running", "awaiting_input")
    return run  # type: ignore[no-any-return]


def test_live_runs_and_connections_gauges(metered: Server) -> None:
    with metered.client() as client:
        live = metric(client, "scopestream_live_runs")
        connections = metric(client, "scopestream_connections")
        run_id = paused_run(client)["id"]
        wait_metric(client, "scopestream_live_runs", live + 1)
        stream = RawStream(metered.port, "GET", f"/v1/runs/{run_id}/events")
        stream.read_until(lambda f: f.event == "interaction.required")
        wait_metric(client, "scopestream_connections", connections + 1)
        stream.close()
        wait_metric(client, "scopestream_connections", connections)
        client.post(f"/v1/runs/{run_id}/cancel?wait=true")
        wait_metric(client, "scopestream_live_runs", live)


def test_keepalives_are_counted(metered: Server) -> None:
    with metered.client() as client:
        before = metric(client, "scopestream_keepalives_total")
        run_id = paused_run(client)["id"]
        stream = RawStream(metered.port, "GET", f"/v1/runs/{run_id}/events")
        frames = stream.read_until(lambda f: f.comment and f.event is None and not f.id)
        assert frames and frames[-1].comment
        stream.close()
        assert metric(client, "scopestream_keepalives_total") >= before + 1
        client.post(f"/v1/runs/{run_id}/cancel?wait=true")


def test_a_reader_that_falls_behind_is_a_slow_consumer(metered: Server) -> None:
    with metered.client() as client:
        before = metric(client, "scopestream_slow_consumers_total")
        # 40 MB as fast as the producer can go, to a client that reads nothing until the
        # run is over: far more than the socket buffers hold, so a write is in flight while
        # the log runs more than the buffer (128 events) ahead.
        body = {"producer": "synthetic", "input": {"events": 40_000, "event_bytes": 1024}}
        created = client.post("/v1/runs", json={**body, "background": True}).json()
        stream = RawStream(metered.port, "GET", f"/v1/runs/{created['id']}/events")
        deadline = time.monotonic() + 30
        while client.get(f"/v1/runs/{created['id']}").json()["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stream.read_to_end(timeout=60)
        frames = parse_sse(stream.raw)
        assert frames[-1].event == "slow_consumer"
        assert sum(1 for f in frames if f.event == "text.delta") < 40_000
        wait_metric(client, "scopestream_slow_consumers_total", before + 1)
