"""The service over real sockets: hypercorn -k trio app:serve on a loopback port."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ._http import RawStream, is_terminal
from ._server import Server, run_server
from ._sse import parse_sse

pytestmark = pytest.mark.e2e

OPERATOR_PRODUCERS = {
    "SCOPESTREAM_PRODUCERS": "ticker=tests.fixtures.producers:ticker",
    "SCOPESTREAM_MAX_BODY_BYTES": "65536",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("server"), OPERATOR_PRODUCERS) as server:
        yield server


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    return tmp_path


def wait_status(client: httpx.Client, run_id: str, *, terminal: bool = True) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        view = client.get(f"/v1/runs/{run_id}").json()
        if not terminal or view["status"] in ("completed", "failed", "cancelled"):
            return view  # type: ignore[no-any-return]
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} did not finish")


def ticker(markers: Path, **extra: Any) -> dict[str, Any]:
    return {"producer": "ticker", "input": {"marker_dir": str(markers), **extra}, "stream": True}


def test_client_drops_mid_stream(server: Server, markers: Path) -> None:
    stream = RawStream(server.port, "POST", "/v1/runs", ticker(markers))
    assert stream.status == 200
    frames = stream.read_until(lambda f: f.event == "text.delta" and "tick 2" in f.data)
    run_id = frames[0].json()["run_id"]
    stream.abort()
    with server.client() as client:
        view = wait_status(client, run_id)
    assert view["status"] == "cancelled"
    assert view["outcome"] == {
        "status": "cancelled",
        "reason": "client_disconnected",
        "finish_reason": None,
        "usage": None,
        "error": None,
    }
    assert (markers / run_id).read_text() == "cancelled"  # the producer's cleanup ran


def test_cancel_from_a_second_connection_is_the_streams_terminal(
    server: Server, markers: Path
) -> None:
    stream = RawStream(server.port, "POST", "/v1/runs", ticker(markers))
    run_id = stream.headers["x-run-id"]
    stream.read_until(lambda f: f.event == "text.delta")
    with server.client() as client:
        answer = client.post(f"/v1/runs/{run_id}/cancel").json()
        assert answer["result"] == "cancelled"
        again = client.post(f"/v1/runs/{run_id}/cancel?wait=true").json()
        assert again["result"] == "already_decided" and again["status"] == "cancelled"
    stream.read_to_end()
    frames = [f for f in parse_sse(stream.raw) if f.id]
    terminals = [f for f in frames if is_terminal(f)]
    assert len(terminals) == 1 and frames[-1] is terminals[0]
    assert terminals[0].json()["data"] == {"reason": "requested"}
    assert (markers / run_id).read_text() == "cancelled"


def test_failure_mid_stream_leaks_nothing(server: Server) -> None:
    body = {"producer": "synthetic", "input": {"events": 5, "fail_at": 3}, "stream": True}
    stream = RawStream(server.port, "POST", "/v1/runs", body)
    assert stream.status == 200
    stream.read_to_end()
    events = [f.json() for f in parse_sse(stream.raw) if f.id]
    assert [e["type"] for e in events] == [
        "run.started",
        "text.delta",
        "text.delta",
        "run.failed",
    ]
    error = events[-1]["data"]["error"]
    assert error["code"] == "server_error"
    assert error["message"] == "Synthetic failure at event 3."
    assert "Traceback" not in stream.raw.decode()
    # The correlation id the client saw finds the failure in the server's log.
    assert error["correlation_id"] in server.log()


def test_unexpected_exception_message_is_generic(server: Server, markers: Path) -> None:
    # An input the operator producer cannot handle makes it raise a ValueError.
    body = ticker(markers, interval_ms="not a number")
    stream = RawStream(server.port, "POST", "/v1/runs", body)
    error = stream.body_json()["error"]
    assert stream.status == 500
    assert error["code"] == "server_error"
    assert "not a number" not in json.dumps(error)
    assert error["correlation_id"] in server.log()


def test_failure_before_any_event_is_an_http_error(server: Server) -> None:
    body = {
        "producer": "synthetic",
        "input": {"fail_at": 1, "fail_code": "rate_limit_exceeded"},
        "stream": True,
    }
    with server.client() as client:
        response = client.post("/v1/runs", json=body)
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_resume_with_last_event_id_from_several_cursors(server: Server) -> None:
    with server.client() as client:
        created = client.post(
            "/v1/runs",
            json={"producer": "synthetic", "input": {"events": 12}, "background": True},
        )
        assert created.status_code == 202
        run_id = created.json()["id"]
        assert created.headers["location"] == f"/v1/runs/{run_id}"
        wait_status(client, run_id)
        full = client.get(f"/v1/runs/{run_id}/events").text
        full_events = [f.json() for f in parse_sse(full.encode()) if f.id]
        assert len(full_events) == 15  # started, 12 texts, usage, completed
        for cursor in (0, 1, 5, 13, 14, 15):
            by_header = client.get(
                f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(cursor)}
            ).text
            by_query = client.get(f"/v1/runs/{run_id}/events?after={cursor}").text
            assert by_header == by_query
            events = [f.json() for f in parse_sse(by_header.encode()) if f.id]
            assert events == full_events[cursor:]


def test_background_run_followed_by_two_clients(server: Server) -> None:
    body = {
        "producer": "synthetic",
        "input": {"events": 20, "interval_ms": 20},
        "background": True,
    }
    with server.client() as client:
        run_id = client.post("/v1/runs", json=body).json()["id"]
    first = RawStream(server.port, "GET", f"/v1/runs/{run_id}/events")
    first.read_until(lambda f: f.id == "4")
    second = RawStream(server.port, "GET", f"/v1/runs/{run_id}/events?after=2")
    first.read_to_end()
    second.read_to_end()
    a = [f.json() for f in parse_sse(first.raw) if f.id]
    b = [f.json() for f in parse_sse(second.raw) if f.id]
    assert [e["seq"] for e in a] == list(range(1, 24))
    assert b == a[2:]


def test_human_in_the_loop_non_streaming(server: Server) -> None:
    body = {"producer": "synthetic", "input": {"events": 3, "ask_at": 2}}
    with server.client() as client:
        paused = client.post("/v1/runs", json=body)
        assert paused.status_code == 202
        accepted = paused.json()
        assert accepted["status"] == "awaiting_input"
        assert paused.headers["location"] == accepted["status_url"]
        assert accepted["interaction"]["prompt"].startswith("Synthetic question")
        status = client.get(accepted["status_url"]).json()
        assert status["status"] == "awaiting_input"
        assert status["pending_interaction"]["id"] == accepted["interaction"]["id"]
        answered = client.post(accepted["response_url"], json={"response": "yes"})
        assert answered.status_code == 200
        again = client.post(accepted["response_url"], json={"response": "twice"})
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "interaction_not_pending"
        final = wait_status(client, accepted["execution_id"])
        assert final["status"] == "completed"
        unknown = client.post(
            f"{accepted['status_url']}/interactions/int_nope", json={"response": 1}
        )
        assert unknown.status_code == 404


def test_human_in_the_loop_streaming(server: Server) -> None:
    body = {"producer": "synthetic", "input": {"events": 3, "ask_at": 2}, "stream": True}
    stream = RawStream(server.port, "POST", "/v1/runs", body)
    frames = stream.read_until(lambda f: f.event == "interaction.required")
    required = frames[-1].json()["data"]
    with server.client() as client:
        assert client.post(required["response_url"], json={"response": "go"}).status_code == 200
    stream.read_to_end()
    types = [f.event for f in parse_sse(stream.raw) if f.id]
    assert types == [
        "run.started",
        "text.delta",
        "interaction.required",
        "interaction.resolved",
        "data",
        "text.delta",
        "text.delta",
        "usage",
        "run.completed",
    ]


def test_cancel_while_paused(server: Server) -> None:
    body = {"producer": "synthetic", "input": {"events": 3, "ask_at": 1}, "background": True}
    with server.client() as client:
        run_id = client.post("/v1/runs", json=body).json()["id"]
        deadline = time.monotonic() + 10
        view = client.get(f"/v1/runs/{run_id}").json()
        while view["pending_interaction"] is None and time.monotonic() < deadline:
            time.sleep(0.02)
            view = client.get(f"/v1/runs/{run_id}").json()
        url = view["pending_interaction"]["response_url"]
        cancelled = client.post(f"/v1/runs/{run_id}/cancel?wait=true").json()
        assert cancelled["status"] == "cancelled"
        assert cancelled["run"]["pending_interaction"] is None
        late = client.post(url, json={"response": "too late"})
        assert late.status_code == 409


def test_cancel_before_the_run_exists(server: Server) -> None:
    with server.client() as client:
        remembered = client.post("/v1/runs/my-client-id-1/cancel")
        assert remembered.status_code == 202
        assert remembered.json()["result"] == "remembered"
        body = {"producer": "synthetic", "input": {"events": 3}, "client_run_id": "my-client-id-1"}
        view = client.post("/v1/runs", json=body).json()
        assert view["status"] == "cancelled"
        assert view["outcome"]["reason"] == "requested"
        assert client.get("/v1/runs/my-client-id-1").json()["id"] == view["id"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "field"),
    [
        ("POST", "/v1/runs", {"producer": "nope"}, 400, "unknown_producer", "producer"),
        ("POST", "/v1/runs", {"input": {}}, 400, "invalid_request", "producer"),
        (
            "POST",
            "/v1/runs",
            {"producer": "synthetic", "input": {"events": -1}},
            400,
            "invalid_request",
            "input.events",
        ),
        (
            "POST",
            "/v1/runs",
            {"producer": "echo", "stream": True, "background": True},
            400,
            "invalid_request",
            "background",
        ),
        (
            "POST",
            "/v1/runs",
            {"producer": "echo", "on_disconnect": "explode"},
            400,
            "invalid_request",
            "on_disconnect",
        ),
        (
            "POST",
            "/v1/runs",
            {"producer": "echo", "surprise": 1},
            400,
            "invalid_request",
            "surprise",
        ),
        ("GET", "/v1/runs/run_nope", None, 404, "not_found", None),
        (
            "POST",
            "/v1/runs/run_0123456789abcdef0123456789abcdef/cancel",
            None,
            404,
            "not_found",
            None,
        ),
        (
            "POST",
            "/v1/runs",
            {"producer": "echo", "client_run_id": "run_0123456789abcdef0123456789abcdef"},
            400,
            "invalid_request",
            "client_run_id",
        ),
        ("GET", "/v1/runs/run_nope/events", None, 404, "not_found", None),
        ("POST", "/v1/runs/run_nope/interactions/int_x", {"response": 1}, 404, "not_found", None),
        ("GET", "/no/such/route", None, 404, "not_found", None),
        ("DELETE", "/v1/runs", None, 405, "method_not_allowed", None),
    ],
)
def test_bad_input_is_a_json_error_naming_the_field(
    server: Server,
    method: str,
    path: str,
    body: Any,
    status: int,
    code: str,
    field: str | None,
) -> None:
    with server.client() as client:
        response = client.request(method, path, json=body)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert field in [f["field"] for f in error["fields"]]


def test_malformed_json_and_oversized_bodies(server: Server) -> None:
    with server.client() as client:
        bad = client.post(
            "/v1/runs", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
        big = client.post(
            "/v1/runs",
            content=b'{"producer":"echo","input":{"text":"' + b"x" * 200_000 + b'"}}',
            headers={"content-type": "application/json"},
        )
        assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"


def test_bad_cursor_names_the_parameter(server: Server) -> None:
    with server.client() as client:
        run_id = client.post(
            "/v1/runs", json={"producer": "synthetic", "input": {"events": 1}}
        ).json()["id"]
        response = client.get(f"/v1/runs/{run_id}/events?after=soon")
        assert response.status_code == 400
        assert response.json()["error"]["fields"][0]["field"] == "after"
        response = client.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": "x"})
        assert response.status_code == 400


def test_operator_producer_by_import_path_and_models(server: Server, markers: Path) -> None:
    body = {
        "producer": "ticker",
        "input": {"marker_dir": str(markers), "ticks": 3, "interval_ms": 1},
    }
    with server.client() as client:
        view = client.post("/v1/runs", json=body).json()
    assert view["status"] == "completed" and view["producer"] == "ticker"
    assert (markers / view["id"]).read_text() == "completed"


def metric(text: str, name: str) -> float:
    """A sample's value in Prometheus text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + " ") or (
            line.startswith(name + "{") and line.split(" ")[0] == name
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_health_metrics_and_docs(server: Server, markers: Path) -> None:
    failed = 'scopestream_runs_total{code="upstream_error",outcome="failed"}'
    cancelled = 'scopestream_runs_total{code="requested",outcome="cancelled"}'
    with server.client() as client:
        assert client.get("/healthz").json()["status"] == "ok"
        before = client.get("/metrics").text
        client.post(
            "/v1/runs",
            json={"producer": "synthetic", "input": {"fail_at": 1, "fail_code": "upstream_error"}},
        )
        run_id = client.post(
            "/v1/runs",
            json={"producer": "ticker", "input": {"marker_dir": str(markers)}, "background": True},
        ).json()["id"]
        client.post(f"/v1/runs/{run_id}/cancel?wait=true")
        stream = RawStream(server.port, "POST", "/v1/runs", ticker(markers))
        stream.read_until(lambda f: f.event == "text.delta")
        stream.abort()
        wait_status(client, stream.headers["x-run-id"])
        after = client.get("/metrics").text
        assert metric(after, failed) == metric(before, failed) + 1
        assert metric(after, cancelled) == metric(before, cancelled) + 1
        count = "scopestream_cancel_to_terminal_seconds_count"
        assert metric(after, count) >= metric(before, count) + 2
        disconnects = "scopestream_disconnects_total"
        assert metric(after, disconnects) == metric(before, disconnects) + 1
        for name in (
            "scopestream_live_runs",
            "scopestream_connections",
            "scopestream_slow_consumers_total",
            "scopestream_keepalives_total",
        ):
            assert name in after
        assert client.get("/docs").status_code == 200


def test_api_keys_scope_runs_to_their_owner(tmp_path: Path) -> None:
    env = {"SCOPESTREAM_API_KEYS": "key-alice,key-bob"}
    with run_server(tmp_path, env) as server:
        alice = {"Authorization": "Bearer key-alice"}
        bob = {"Authorization": "Bearer key-bob"}
        with server.client() as client:
            assert client.post("/v1/runs", json={"producer": "echo"}).status_code == 401
            assert (
                client.post(
                    "/v1/runs", json={"producer": "echo"}, headers={"Authorization": "Bearer x"}
                ).status_code
                == 401
            )
            body = {
                "producer": "synthetic",
                "input": {"events": 2, "ask_at": 1},
                "background": True,
            }
            run = client.post("/v1/runs", json=body, headers=alice).json()
            run_id = run["id"]
            assert len(run_id) == len("run_") + 32
            assert client.get(f"/v1/runs/{run_id}", headers=alice).status_code == 200
            for method, path, payload in (
                ("GET", f"/v1/runs/{run_id}", None),
                ("GET", f"/v1/runs/{run_id}/events", None),
                ("POST", f"/v1/runs/{run_id}/interactions/int_x", {"response": 1}),
            ):
                response = client.request(method, path, json=payload, headers=bob)
                assert response.status_code == 404, path
            assert client.post(f"/v1/runs/{run_id}/cancel", headers=bob).status_code == 404
            assert client.get(f"/v1/runs/{run_id}", headers=alice).json()["status"] != "cancelled"
            assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("target", ["process group", "hypercorn parent only"])
def test_sigterm_delivers_the_shutdown_terminal(tmp_path: Path, markers: Path, target: str) -> None:
    with run_server(tmp_path, OPERATOR_PRODUCERS, graceful_timeout=1) as server:
        streams = [RawStream(server.port, "POST", "/v1/runs", ticker(markers)) for _ in range(3)]
        for stream in streams:
            stream.read_until(lambda f: f.event == "text.delta")
        if target == "process group":
            os.killpg(server.process.pid, signal.SIGTERM)
        else:
            server.process.send_signal(signal.SIGTERM)
        for stream in streams:
            stream.read_to_end(timeout=20)
            frames = [f for f in parse_sse(stream.raw) if f.id]
            assert frames[-1].event == "run.cancelled"
            assert frames[-1].json()["data"] == {"reason": "shutdown"}
            assert sum(is_terminal(f) for f in frames) == 1
            assert (markers / stream.headers["x-run-id"]).read_text() == "cancelled"
        assert server.process.wait(timeout=20) == 0


def test_interactive_off_fails_and_openapi_has_no_202(tmp_path: Path) -> None:
    with run_server(tmp_path, {"SCOPESTREAM_INTERACTIVE": "false"}) as server:
        with server.client() as client:
            response = client.post(
                "/v1/runs", json={"producer": "synthetic", "input": {"events": 3, "ask_at": 2}}
            )
            assert response.status_code == 501
            assert response.json()["error"]["code"] == "interaction_not_supported"
            spec = client.get("/openapi.json").json()
    post_runs = spec["paths"]["/v1/runs"]["post"]["responses"]
    # 202 stays for background runs, but it can no longer be an ExecutionAccepted.
    assert "ExecutionAccepted" not in json.dumps(post_runs["202"])


def test_openapi_documents_execution_accepted_when_interactive(server: Server) -> None:
    with server.client() as client:
        spec = client.get("/openapi.json").json()
    post_runs = spec["paths"]["/v1/runs"]["post"]["responses"]
    assert "ExecutionAccepted" in json.dumps(post_runs["202"]) or "ExecutionAccepted" in json.dumps(
        spec.get("components", {})
    )
    assert "CreateRun" in json.dumps(spec)
