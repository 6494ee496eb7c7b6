"""Two ``hypercorn -k trio`` processes sharing one real redis-server: any worker serves,
follows, cancels, resumes and answers any run, and a dead owner's runs still end.

Short heartbeats (0.2 s, TTL 1 s) keep the worker-loss tests quick. Every wait is bounded
(socket timeouts, deadlines in the helpers)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._http import RawStream
from ._redis import RedisServer, module_server
from ._server import Server, free_port, run_server
from ._sse import native_events

pytestmark = pytest.mark.e2e

redis_server = pytest.fixture(scope="module")(module_server)

TERMINALS = ("run.completed", "run.failed", "run.cancelled")


def redis_env(url: str) -> dict[str, str]:
    return {
        "SCOPESTREAM_BACKEND": "redis",
        "SCOPESTREAM_REDIS_URL": url,
        "SCOPESTREAM_HEARTBEAT_INTERVAL": "0.2",
        "SCOPESTREAM_HEARTBEAT_TTL": "1",
        "SCOPESTREAM_STORE_UNAVAILABLE_TIMEOUT": "1",
        "SCOPESTREAM_PRODUCERS": "ticker=tests.fixtures.producers:ticker",
        "SCOPESTREAM_KEEPALIVE_INTERVAL": "0.5",
    }


@pytest.fixture(scope="module")
def workers(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[tuple[Server, Server]]:
    env = redis_env(redis_server.url)
    with run_server(tmp_path_factory.mktemp("a"), env) as a:
        with run_server(tmp_path_factory.mktemp("b"), env) as b:
            yield a, b


def wait_view(
    server: Server, run_id: str, until: Any = lambda view: view["status"] in TERMINALS_STATUS
) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    with server.client() as client:
        while True:
            view: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
            if until(view):
                return view
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} never reached the state: {view}")
            time.sleep(0.02)


TERMINALS_STATUS = ("completed", "failed", "cancelled")


def ticker_body(markers: Path, **extra: Any) -> dict[str, Any]:
    return {"producer": "ticker", "input": {"marker_dir": str(markers), **extra}}


def terminals(raw: bytes) -> list[dict[str, Any]]:
    return [event for event in native_events(raw) if event["type"] in TERMINALS]


def test_create_on_a_follow_and_cancel_on_b(workers: tuple[Server, Server], tmp_path: Path) -> None:
    a, b = workers
    on_a = RawStream(a.port, "POST", "/v1/runs", {**ticker_body(tmp_path), "stream": True})
    run_id = on_a.headers["x-run-id"]
    on_a.read_until(lambda f: f.event == "text.delta")
    on_b = RawStream(b.port, "GET", f"/v1/runs/{run_id}/events")
    on_b.read_until(lambda f: f.event == "text.delta")
    with b.client() as client:
        answer = client.post(f"/v1/runs/{run_id}/cancel?wait=true")
    assert answer.status_code == 200
    assert answer.json()["status"] == "cancelled"
    on_a.read_to_end()
    on_b.read_to_end()
    for stream in (on_a, on_b):
        ends = terminals(stream.raw)
        assert [e["type"] for e in ends] == ["run.cancelled"]
        assert ends[0]["data"]["reason"] == "requested"
    # Both saw one log: B's events are A's from B's first seq on.
    a_events, b_events = native_events(on_a.raw), native_events(on_b.raw)
    assert b_events == a_events[a_events.index(b_events[0]) :]
    assert (tmp_path / run_id).read_text() == "cancelled"  # A's producer cleanup ran
    view = wait_view(b, run_id)
    assert view["status"] == "cancelled" and view["last_seq"] == a_events[-1]["seq"]


def test_answer_on_b_and_409_from_both(workers: tuple[Server, Server]) -> None:
    a, b = workers
    body = {"producer": "synthetic", "input": {"events": 3, "ask_at": 1}, "background": True}
    with a.client() as client:
        run_id = client.post("/v1/runs", json=body).json()["id"]
    view = wait_view(b, run_id, lambda v: v["pending_interaction"] is not None)
    assert view["status"] == "awaiting_input"
    url = view["pending_interaction"]["response_url"]
    with b.client() as client:
        answered = client.post(url, json={"response": "yes"})
        assert answered.status_code == 200, answered.text
        again = client.post(url, json={"response": "twice"})
        assert again.status_code == 409
    with a.client() as client:
        assert client.post(url, json={"response": "thrice"}).status_code == 409
    final = wait_view(b, run_id)
    assert final["status"] == "completed"
    with b.client() as client:
        events = native_events(client.get(f"/v1/runs/{run_id}/events").content)
    resolved = [e for e in events if e["type"] == "interaction.resolved"]
    assert len(resolved) == 1


def test_resume_from_every_cursor_on_b(workers: tuple[Server, Server]) -> None:
    a, b = workers
    body = {"producer": "synthetic", "input": {"events": 12, "interval_ms": 5}, "background": True}
    with a.client() as client:
        run_id = client.post("/v1/runs", json=body).json()["id"]
        full_a = native_events(client.get(f"/v1/runs/{run_id}/events").content)
    with b.client() as client:
        full_b = native_events(client.get(f"/v1/runs/{run_id}/events").content)
        assert full_b == full_a
        assert [e["seq"] for e in full_b] == list(range(1, len(full_b) + 1))
        for cursor in range(len(full_b) + 1):
            raw = client.get(f"/v1/runs/{run_id}/events?after={cursor}").content
            assert native_events(raw) == full_b[cursor:], cursor
        view = client.get(f"/v1/runs/{run_id}").json()
    assert view["status"] == "completed" == full_b[-1]["type"].removeprefix("run.")
    assert view["last_seq"] == full_b[-1]["seq"]
    assert view["output"]["text"] == "".join(
        e["data"]["text"] for e in full_b if e["type"] == "text.delta"
    )


def test_cancel_before_create_on_b_then_create_on_a(workers: tuple[Server, Server]) -> None:
    a, b = workers
    client_run_id = f"chat-{free_port()}-{time.monotonic_ns()}"
    with b.client() as client:
        remembered = client.post(f"/v1/runs/{client_run_id}/cancel")
    assert remembered.status_code == 202
    assert remembered.json()["result"] == "remembered"
    body = {"producer": "synthetic", "input": {"events": 3}, "client_run_id": client_run_id}
    with a.client() as client:
        view = client.post("/v1/runs", json=body).json()
    assert view["status"] == "cancelled"
    assert view["outcome"]["reason"] == "requested"
    with b.client() as client:
        assert client.get(f"/v1/runs/{client_run_id}").json()["id"] == view["id"]
