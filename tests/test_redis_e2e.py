"""Two ``hypercorn -k trio`` processes sharing one real redis-server: any worker serves,
follows, cancels, resumes and answers any run, and a dead owner's runs still end.

Short heartbeats (0.2 s, TTL 1 s) keep the worker-loss tests quick. Every wait is bounded
(socket timeouts, deadlines in the helpers)."""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import trio

from engine.backends._redis_model import RedisStoreConfig
from engine.backends._redis_store import open_redis_store

from ._http import RawStream
from ._redis import RedisServer, module_server, run_redis
from ._server import Server, free_port, run_server, start_expecting_exit
from ._sse import native_events, parse_sse

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

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
        "SCOPESTREAM_API_KEYS": f"{ALICE},{BOB}",
    }


ALICE, BOB = "key-alice", "key-bob"
AUTH = {"Authorization": f"Bearer {ALICE}"}


def client(server: Server, key: str = ALICE) -> httpx.Client:
    return server.client(headers={"Authorization": f"Bearer {key}"})


def open_stream(server: Server, method: str, path: str, body: Any = None) -> RawStream:
    return RawStream(server.port, method, path, body, headers=AUTH)


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
    with client(server) as http:
        while True:
            view: dict[str, Any] = http.get(f"/v1/runs/{run_id}").json()
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
    on_a = open_stream(a, "POST", "/v1/runs", {**ticker_body(tmp_path), "stream": True})
    run_id = on_a.headers["x-run-id"]
    on_a.read_until(lambda f: f.event == "text.delta")
    on_b = open_stream(b, "GET", f"/v1/runs/{run_id}/events")
    on_b.read_until(lambda f: f.event == "text.delta")
    with client(b) as http:
        answer = http.post(f"/v1/runs/{run_id}/cancel?wait=true")
    assert answer.status_code == 200
    assert answer.json()["status"] == "cancelled"
    assert answer.json()["run"]["ended_at"] is not None  # the run as recorded at its end
    on_a.read_to_end()
    on_b.read_to_end()
    for follower in (on_a, on_b):
        ends = terminals(follower.raw)
        assert [e["type"] for e in ends] == ["run.cancelled"]
        assert ends[0]["data"]["reason"] == "requested"
    # Both saw one log: B's events are A's from B's first seq on.
    a_events, b_events = native_events(on_a.raw), native_events(on_b.raw)
    assert b_events == a_events[a_events.index(b_events[0]) :]
    assert (tmp_path / run_id).read_text() == "cancelled"  # A's producer cleanup ran
    view = wait_view(b, run_id)
    assert view["status"] == "cancelled" and view["last_seq"] == a_events[-1]["seq"]
    # Another key's run does not exist, on either worker.
    for server in workers:
        with client(server, BOB) as http:
            assert http.get(f"/v1/runs/{run_id}").status_code == 404
            assert http.post(f"/v1/runs/{run_id}/cancel").status_code == 404
            assert http.get(f"/v1/runs/{run_id}/events").status_code == 404


def test_either_worker_lists_the_runs_of_both(workers: tuple[Server, Server]) -> None:
    a, b = workers
    body = {"producer": "synthetic", "input": {"events": 2}, "background": True}
    created: list[str] = []
    for server in (a, b, a, b):  # alternate, so the newest-first order spans both workers
        with client(server) as http:
            created.append(http.post("/v1/runs", json=body).json()["id"])
    with client(b, BOB) as http:
        bobs = http.post("/v1/runs", json=body).json()["id"]
    for server in (a, b):
        with client(server) as http:
            listed = [
                run["id"] for run in http.get("/v1/runs", params={"limit": 100}).json()["data"]
            ]
        mine = [run_id for run_id in listed if run_id in created]
        assert mine == created[::-1]  # every one, newest first, from whichever worker
        assert bobs not in listed  # another key's run is never listed
        with client(server) as http:
            newest = http.get("/v1/runs", params={"limit": 2}).json()["data"]
        assert [run["id"] for run in newest] == created[::-1][:2]


def test_answer_on_b_and_409_from_both(workers: tuple[Server, Server]) -> None:
    a, b = workers
    body = {"producer": "synthetic", "input": {"events": 3, "ask_at": 1}, "background": True}
    with client(a) as http:
        run_id = http.post("/v1/runs", json=body).json()["id"]
    view = wait_view(b, run_id, lambda v: v["pending_interaction"] is not None)
    assert view["status"] == "awaiting_input"
    url = view["pending_interaction"]["response_url"]
    with client(b) as http:
        answered = http.post(url, json={"response": "yes"})
        assert answered.status_code == 200, answered.text
        again = http.post(url, json={"response": "twice"})
        assert again.status_code == 409
    with client(a) as http:
        assert http.post(url, json={"response": "thrice"}).status_code == 409
    final = wait_view(b, run_id)
    assert final["status"] == "completed"
    with client(b) as http:
        events = native_events(http.get(f"/v1/runs/{run_id}/events").content)
    resolved = [e for e in events if e["type"] == "interaction.resolved"]
    assert len(resolved) == 1


def test_resume_from_every_cursor_on_b(workers: tuple[Server, Server]) -> None:
    a, b = workers
    body = {"producer": "synthetic", "input": {"events": 12, "interval_ms": 5}, "background": True}
    with client(a) as http:
        run_id = http.post("/v1/runs", json=body).json()["id"]
        full_a = native_events(http.get(f"/v1/runs/{run_id}/events").content)
    with client(b) as http:
        full_b = native_events(http.get(f"/v1/runs/{run_id}/events").content)
        assert full_b == full_a
        assert [e["seq"] for e in full_b] == list(range(1, len(full_b) + 1))
        for cursor in range(len(full_b) + 1):
            raw = http.get(f"/v1/runs/{run_id}/events?after={cursor}").content
            assert native_events(raw) == full_b[cursor:], cursor
        view = http.get(f"/v1/runs/{run_id}").json()
    assert view["status"] == "completed" == full_b[-1]["type"].removeprefix("run.")
    assert view["last_seq"] == full_b[-1]["seq"]
    assert view["output"]["text"] == "".join(
        e["data"]["text"] for e in full_b if e["type"] == "text.delta"
    )


def test_cancel_before_create_on_b_then_create_on_a(workers: tuple[Server, Server]) -> None:
    a, b = workers
    client_run_id = f"chat-{free_port()}-{time.monotonic_ns()}"
    with client(b) as http:
        remembered = http.post(f"/v1/runs/{client_run_id}/cancel")
    assert remembered.status_code == 202
    assert remembered.json()["result"] == "remembered"
    body = {"producer": "synthetic", "input": {"events": 3}, "client_run_id": client_run_id}
    with client(a) as http:
        view = http.post("/v1/runs", json=body).json()
    assert view["status"] == "cancelled"
    assert view["outcome"]["reason"] == "requested"
    with client(b) as http:
        assert http.get(f"/v1/runs/{client_run_id}").json()["id"] == view["id"]


def test_responses_resume_on_the_other_worker(workers: tuple[Server, Server]) -> None:
    a, b = workers
    on_a = openai.OpenAI(base_url=a.url + "/v1", api_key=ALICE, max_retries=0)
    on_b = openai.OpenAI(base_url=b.url + "/v1", api_key=ALICE, max_retries=0)
    created = on_a.responses.create(
        model="synthetic", input="x", background=True, metadata={"events": "8"}
    )
    full = list(on_b.responses.retrieve(created.id, stream=True))
    numbers = [event.sequence_number for event in full]
    assert numbers == list(range(len(numbers)))
    assert full[-1].type == "response.completed"
    assert [e.model_dump() for e in full] == [
        e.model_dump() for e in on_a.responses.retrieve(created.id, stream=True)
    ]
    for cursor in (0, 3, len(full) // 2, len(full) - 2, len(full) - 1):
        resumed = list(on_b.responses.retrieve(created.id, stream=True, starting_after=cursor))
        assert [e.model_dump() for e in resumed] == [e.model_dump() for e in full[cursor + 1 :]]
    assert on_b.responses.retrieve(created.id).status == "completed"
    # Cancelling on B a response running on A answers with the cancelled response.
    live = on_a.responses.create(
        model="synthetic",
        input="x",
        background=True,
        metadata={"events": "1000", "interval_ms": "20"},
    )
    run_id = "run_" + live.id.removeprefix("resp_")
    wait_view(b, run_id, lambda v: v["last_seq"] >= 3)
    cancelled = on_b.responses.cancel(live.id)
    assert cancelled.status == "cancelled"
    assert cancelled.output_text.startswith("x")
    bob = openai.OpenAI(base_url=b.url + "/v1", api_key=BOB, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        bob.responses.retrieve(created.id)


def test_ai_sdk_resume_on_the_other_worker(workers: tuple[Server, Server]) -> None:
    a, b = workers
    chat_id = f"chat-{time.monotonic_ns()}"
    body = {
        "id": chat_id,
        "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
        "producer": "synthetic",
        "metadata": {"events": 30, "event_bytes": 1, "interval_ms": 20},
    }
    original = open_stream(a, "POST", "/api/chat", body)
    original.read_until(lambda frame: "text-delta" in frame.data)
    with client(b) as http:
        resumed = http.get(f"/api/chat/{chat_id}/stream")
    assert resumed.status_code == 200
    assert resumed.headers["x-vercel-ai-ui-message-stream"] == "v1"
    original.read_to_end()
    data = [f.data for f in parse_sse(resumed.content) if not f.comment]
    assert data == [f.data for f in parse_sse(original.raw) if not f.comment]
    assert data[-1] == "[DONE]"
    with client(b) as http:
        assert http.get(f"/api/chat/{chat_id}/stream").status_code == 204


def test_kill_9_of_the_owner_ends_its_runs_with_worker_lost(
    workers: tuple[Server, Server],
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:
    _, b = workers
    with run_server(tmp_path_factory.mktemp("doomed"), redis_env(redis_server.url)) as doomed:
        with client(doomed) as http:
            streaming = http.post(
                "/v1/runs", json={**ticker_body(tmp_path), "background": True}
            ).json()["id"]
            paused = http.post(
                "/v1/runs",
                json={
                    "producer": "synthetic",
                    "input": {"events": 2, "ask_at": 1},
                    "background": True,
                },
            ).json()["id"]
        wait_view(b, paused, lambda v: v["status"] == "awaiting_input")
        # A run the doomed worker recorded but had not started yet (as if it died between
        # recording and launching it): written with the doomed worker's id.
        queued = trio.run(record_queued_run, redis_server.url, streaming)
        assert wait_view(b, queued, lambda v: True)["status"] == "queued"
        followers = {}
        for run_id in (streaming, paused, queued):
            followers[run_id] = open_stream(b, "GET", f"/v1/runs/{run_id}/events")
        followers[streaming].read_until(lambda f: f.event == "text.delta")
        followers[paused].read_until(lambda f: f.event == "interaction.required")
        os.killpg(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait()
        killed_at = time.monotonic()
        for run_id, follower in followers.items():
            follower.read_to_end(timeout=10)
            ends = terminals(follower.raw)
            assert [e["type"] for e in ends] == ["run.failed"], run_id
            assert ends[0]["data"]["error"]["code"] == "worker_lost"
            view = wait_view(b, run_id)
            assert view["status"] == "failed"
            assert view["outcome"]["error"]["code"] == "worker_lost"
        # Heartbeat TTL 1 s, sweeps every 0.2 s: well within a few seconds.
        assert time.monotonic() - killed_at < 8
        with client(b) as http:
            view = http.get(f"/v1/runs/{paused}").json()
            assert view["pending_interaction"] is None
            interaction = native_events(followers[paused].raw)[-2]["data"]["interaction_id"]
            late = http.post(f"/v1/runs/{paused}/interactions/{interaction}", json={"response": 1})
            assert late.status_code == 409


def test_sigterm_of_the_owner_ends_its_runs_with_shutdown_for_followers_elsewhere(
    workers: tuple[Server, Server],
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:
    _, b = workers
    env = redis_env(redis_server.url)
    with run_server(tmp_path_factory.mktemp("stopping"), env, graceful_timeout=1) as stopping:
        with client(stopping) as http:
            run_id = http.post(
                "/v1/runs", json={**ticker_body(tmp_path), "background": True}
            ).json()["id"]
        follower = open_stream(b, "GET", f"/v1/runs/{run_id}/events")
        follower.read_until(lambda f: f.event == "text.delta")
        os.killpg(stopping.process.pid, signal.SIGTERM)
        follower.read_to_end(timeout=15)
    ends = terminals(follower.raw)
    assert [e["type"] for e in ends] == ["run.cancelled"]
    assert ends[0]["data"]["reason"] == "shutdown"
    assert (tmp_path / run_id).read_text() == "cancelled"
    assert wait_view(b, run_id)["status"] == "cancelled"


async def record_queued_run(url: str, sibling: str) -> str:
    """Record a queued run for the worker that owns ``sibling``, with its owner key."""
    config = RedisStoreConfig(heartbeat_interval=0.2, heartbeat_ttl=1.0)
    with trio.fail_after(10):
        async with open_redis_store(url, config) as probe:
            record = await probe.get_record(sibling)
            assert record is not None
        async with open_redis_store(url, config, worker_id=record.worker) as store:
            run_id = "run_" + secrets.token_hex(16)
            await store.create_run(run_id, producer="synthetic", owner=record.owner)
            return run_id


def test_redis_down_at_startup_stops_the_server() -> None:
    closed = f"redis://127.0.0.1:{free_port()}"
    result = start_expecting_exit({**redis_env(closed)})
    assert result.returncode != 0
    assert "SCOPESTREAM_REDIS_URL" in result.stdout
    bad = start_expecting_exit({**redis_env("http://nowhere")})
    assert bad.returncode != 0
    assert "SCOPESTREAM_REDIS_URL" in bad.stdout


def test_redis_lost_mid_run_and_back(tmp_path: Path) -> None:
    port = free_port()
    with run_redis(tmp_path / "redis", port) as redis:
        with run_server(tmp_path, redis_env(redis.url)) as worker:
            live = open_stream(
                worker, "POST", "/v1/runs", {**ticker_body(tmp_path), "stream": True}
            )
            run_id = live.headers["x-run-id"]
            live.read_until(lambda f: f.event == "text.delta")
            redis.stop()
            # The run fails with a clear code once the store stayed unreachable (1 s here),
            # and its follower on this worker gets that one terminal.
            live.read_to_end(timeout=15)
            ends = terminals(live.raw)
            assert [e["type"] for e in ends] == ["run.failed"]
            assert ends[0]["data"]["error"]["code"] == "store_unavailable"
            assert "Traceback" not in live.raw.decode()
            assert (tmp_path / run_id).read_text() == "cancelled"  # its cleanup ran
            with client(worker) as http:
                # The worker keeps answering: new runs get a 503 that says to retry.
                refused = http.post("/v1/runs", json={"producer": "synthetic", "input": {}})
                assert refused.status_code == 503
                assert refused.headers["retry-after"]
                assert refused.json()["error"]["code"] == "store_unavailable"
                assert "Traceback" not in refused.text
                assert http.get("/healthz").status_code == 200
            with run_redis(tmp_path / "redis", port):
                deadline = time.monotonic() + 15
                with client(worker) as http:
                    while True:
                        again = http.post(
                            "/v1/runs", json={"producer": "synthetic", "input": {"events": 2}}
                        )
                        if again.status_code == 200:
                            break
                        assert again.status_code == 503
                        assert time.monotonic() < deadline, "the worker did not recover"
                        time.sleep(0.1)
                    assert again.json()["status"] == "completed"
