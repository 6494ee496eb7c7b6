"""The service over real sockets: hypercorn -k trio app:serve on a loopback port."""

from __future__ import annotations

import json
import os
import re
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
    "SCOPESTREAM_PRODUCERS": (
        "ticker=tests.fixtures.producers:ticker,"
        "request_context=tests.fixtures.producers:request_context"
    ),
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


@pytest.mark.parametrize("mode", ["stream", "wait", "background"])
def test_a_run_does_not_hold_the_request_that_started_it(server: Server, mode: str) -> None:
    body: dict[str, Any] = {"producer": "request_context"}
    if mode != "wait":
        body[mode] = True
    if mode == "stream":
        stream = RawStream(server.port, "POST", "/v1/runs", body)
        stream.read_to_end()
        texts = [f.json()["data"]["text"] for f in parse_sse(stream.raw) if f.event == "text.delta"]
        assert texts == ["request context: no"]
        return
    with server.client() as client:
        answer = client.post("/v1/runs", json=body).json()
        view = wait_status(client, answer["id"])
    assert view["status"] == "completed"
    assert view["output"]["text"] == "request context: no"


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


def test_the_docs_page_loads_nothing_from_elsewhere(server: Server) -> None:
    with server.client() as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        html = page.text
        # No absolute or protocol-relative URL anywhere in the page: it renders offline.
        assert re.search(r"(?i)(https?:)?//[a-z0-9]", html) is None, html
        referenced = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sorted(referenced) == [
            "/docs/assets/swagger-ui-bundle.js",
            "/docs/assets/swagger-ui.css",
        ]
        assert 'url: "/openapi.json"' in html
        kinds = {".css": "text/css", ".js": "text/javascript"}
        for path in referenced:
            asset = client.get(path)
            assert asset.status_code == 200, path
            media = asset.headers["content-type"].split(";")[0]
            assert media == kinds[path[path.rindex(".") :]], path
        bundle = client.get("/docs/assets/swagger-ui-bundle.js").text
        assert "SwaggerUIBundle" in bundle
        assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
        missing = client.get("/docs/assets/../../app/settings.py")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/json"


def test_api_keys_scope_runs_to_their_owner(tmp_path: Path) -> None:
    env = {"SCOPESTREAM_API_KEYS": "key-alice,key-bob"}
    with run_server(tmp_path, env) as server:
        alice = {"Authorization": "Bearer key-alice"}
        bob = {"Authorization": "Bearer key-bob"}
        # A 401 is answered before the body is read: each on its own connection, so this
        # test does not depend on how the transport recycles such a connection.
        for headers in ({}, {"Authorization": "Bearer x"}):
            with server.client() as client:
                response = client.post("/v1/runs", json={"producer": "echo"}, headers=headers)
                assert response.status_code == 401
        with server.client() as client:
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
            assert stream.complete  # the last chunk, not just the socket closing
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
    post_runs = spec["paths"]["/v1/runs"]["post"]
    # 202 is a background run's RunView or a paused run's ExecutionAccepted, nothing else.
    accepted = post_runs["responses"]["202"]["content"]["application/json"]["schema"]
    assert accepted["anyOf"] == [
        {"$ref": "#/components/schemas/RunView"},
        {"$ref": "#/components/schemas/ExecutionAccepted"},
    ]
    execution = spec["components"]["schemas"]["ExecutionAccepted"]
    assert set(execution["required"]) == {
        "execution_id",
        "interaction",
        "status_url",
        "response_url",
    }
    assert execution["properties"]["status"]["const"] == "awaiting_input"
    assert post_runs["requestBody"]["content"]["application/json"]["schema"]["title"] == "CreateRun"


# -- request bodies -------------------------------------------------------------------------

JSON_ROUTES = ["/v1/runs", "/v1/chat/completions", "/v1/responses", "/api/chat"]


@pytest.mark.parametrize("path", JSON_ROUTES)
@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"producer":"echo","model":"echo","id":"c","input":"\xff"}', "UTF-8"),
        # Under the module server's body limit (64 KiB), far over the recursion limit.
        (b"[" * 60_000, "nested"),
        (b'{"a":' * 12_000, "nested"),
        # Parses, but deeper than any request needs (and than pydantic serializes).
        (
            b'{"producer":"synthetic","model":"synthetic","id":"c","input":{"messages":'
            + b"[" * 300
            + b"]" * 300
            + b"}}",
            "nested",
        ),
        (b"{not json", "not valid JSON"),
    ],
    ids=["not-utf8", "deep-arrays", "deep-objects", "deep-but-complete", "not-json"],
)
def test_undecodable_body_is_a_400_naming_the_body(
    server: Server, path: str, content: bytes, says: str
) -> None:
    with server.client() as client:
        response = client.post(path, content=content, headers={"content-type": "application/json"})
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert says in error["message"]
        assert [f["field"] for f in error["fields"]] == ["body"]
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("path", [*JSON_ROUTES, "/v1/runs/run_nope/interactions/int_x"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_typed_is_a_415(
    server: Server, path: str, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    with server.client() as client:
        response = client.post(path, content=b'{"producer": "echo"}', headers=headers)
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "application/json" in error["message"]


def test_json_with_a_charset_or_a_suffix_type_is_accepted(server: Server) -> None:
    body = json.dumps({"producer": "echo", "input": {"text": "héllo wörld"}}).encode()
    with server.client() as client:
        for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
            response = client.post("/v1/runs", content=body, headers={"content-type": content_type})
            assert response.status_code == 200, content_type
            assert response.json()["status"] == "completed"


# -- validation errors name the real field --------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        (
            "/v1/chat/completions",
            {"model": "echo", "messages": [{"role": "user", "content": 5}]},
            ["messages.0.content"],
        ),
        ("/v1/responses", {"model": "echo", "input": 5}, ["input"]),
        ("/v1/runs", {"producer": "echo", "on_disconnect": 5}, ["on_disconnect"]),
        ("/v1/runs", {"producer": "synthetic", "input": {"evnets": 3}}, ["input.evnets"]),
        ("/v1/runs", {"producer": "echo", "input": {"txet": "hi"}}, ["input.txet"]),
        (
            "/v1/runs",
            {"producer": "synthetic", "input": {"events": "many", "Evnets": 1}},
            ["input.events", "input.Evnets"],
        ),
        (
            "/v1/chat/completions",
            {"model": "synthetic", "messages": [{"role": "user"}], "metadata": {"evnets": "3"}},
            ["metadata.evnets"],
        ),
    ],
)
def test_validation_errors_name_the_real_field(
    server: Server, path: str, body: Any, fields: list[str]
) -> None:
    with server.client() as client:
        response = client.post(path, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert sorted(f["field"] for f in error["fields"]) == sorted(fields)


# -- /api/chat request shape ----------------------------------------------------------------


def ui_text(text: str, *, role: str = "user", id: str = "m1") -> dict[str, Any]:
    return {"id": id, "role": role, "parts": [{"type": "text", "text": text}]}


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([5], "messages.0"),
        ([{"role": "user", "parts": [{"type": "text", "text": "x"}]}], "messages.0.id"),
        ([{**ui_text("x"), "role": "robot"}], "messages.0.role"),
        ([{"id": "m1", "role": "user"}], "messages.0.parts"),
        ([{**ui_text("x"), "parts": "hello"}], "messages.0.parts"),
        ([{**ui_text("x"), "parts": ["hello"]}], "messages.0.parts.0"),
        ([{**ui_text("x"), "parts": [{"text": "x"}]}], "messages.0.parts.0.type"),
        ([{**ui_text("x"), "parts": [{"type": 3}]}], "messages.0.parts.0.type"),
        ([{**ui_text("x"), "parts": [{"type": "text", "text": 3}]}], "messages.0.parts.0.text"),
        ([{**ui_text("x"), "parts": [{"type": "text"}]}], "messages.0.parts.0.text"),
        ([ui_text("a"), {**ui_text("b"), "id": 7}], "messages.1.id"),
    ],
)
def test_chat_messages_are_validated(server: Server, messages: Any, field: str) -> None:
    with server.client() as client:
        response = client.post("/api/chat", json={"id": "chat-bad", "messages": messages})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [f["field"] for f in error["fields"]] == [field]


def test_chat_accepts_what_the_ai_sdk_sends(server: Server) -> None:
    # A conversation as useChat posts it on the second turn: the assistant's earlier
    # message carries every kind of part the UI message stream produces.
    history = [
        {"id": "sys", "role": "system", "parts": [{"type": "text", "text": "be brief"}]},
        {**ui_text("first question"), "metadata": {"sent_at": 1}},
        {
            "id": "msg_1",
            "role": "assistant",
            "metadata": None,
            "parts": [
                {"type": "step-start"},
                {"type": "reasoning", "text": "thinking", "state": "done"},
                {"type": "text", "text": "an answer", "state": "done"},
                {
                    "type": "tool-lookup",
                    "toolCallId": "call_1",
                    "state": "output-available",
                    "input": {"q": "x"},
                    "output": {"hits": [1, 2]},
                },
                {"type": "data-interaction", "id": "int_1", "data": {"prompt": "ok?"}},
                {"type": "source-url", "sourceId": "s1", "url": "https://example.com/"},
                {"type": "file", "mediaType": "text/plain", "url": "data:,hi"},
            ],
        },
        ui_text("the second question", id="m2"),
    ]
    body = {
        "id": "chat-sdk-shape",
        "messages": history,
        "trigger": "submit-message",
        "messageId": None,
    }
    with server.client() as client:
        response = client.post("/api/chat", json=body)
    assert response.status_code == 200
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    deltas = [f.json()["delta"] for f in parse_sse(response.content) if '"text-delta"' in f.data]
    assert "".join(deltas) == "the second question"


def test_chat_id_shaped_like_a_run_id_is_refused(server: Server) -> None:
    with server.client() as client:
        other = client.post(
            "/v1/runs",
            json={"producer": "synthetic", "input": {"events": 2, "ask_at": 1}, "background": True},
        ).json()
        response = client.post(
            "/api/chat", json={"id": other["id"], "messages": [ui_text("take it over")]}
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert [f["field"] for f in error["fields"]] == ["id"]
        # The run it named was left alone.
        assert client.get(f"/v1/runs/{other['id']}").json()["status"] != "cancelled"
        assert client.get(f"/api/chat/{other['id']}/stream").status_code == 204
        client.post(f"/v1/runs/{other['id']}/cancel")


# -- resume cursors -------------------------------------------------------------------------


def test_a_cursor_past_the_end_of_a_finished_run_is_a_400(server: Server) -> None:
    with server.client() as client:
        run = client.post("/v1/runs", json={"producer": "synthetic", "input": {"events": 2}})
        run_id, last = run.json()["id"], run.json()["last_seq"]
        assert last == 5
        for cursor, by_header in ((100, False), (last + 1, False), (100, True)):
            if by_header:
                response = client.get(
                    f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(cursor)}
                )
            else:
                response = client.get(f"/v1/runs/{run_id}/events?after={cursor}")
            assert response.status_code == 400
            error = response.json()["error"]
            assert error["code"] == "invalid_request"
            name = "Last-Event-ID" if by_header else "after"
            assert [f["field"] for f in error["fields"]] == [name]
            assert error["last_seq"] == last
            assert f"{last}" in error["message"]
        # At the end exactly: nothing more to send, and that is not an error.
        response = client.get(f"/v1/runs/{run_id}/events?after={last}")
        assert response.status_code == 200 and response.text == ""


def test_a_cursor_past_the_end_of_a_live_run_is_a_400(server: Server) -> None:
    with server.client() as client:
        body = {"producer": "synthetic", "input": {"events": 2, "ask_at": 1}, "background": True}
        run_id = client.post("/v1/runs", json=body).json()["id"]
        deadline = time.monotonic() + 10
        view = client.get(f"/v1/runs/{run_id}").json()
        while view["status"] != "awaiting_input" and time.monotonic() < deadline:
            time.sleep(0.02)
            view = client.get(f"/v1/runs/{run_id}").json()
        last = view["last_seq"]
        beyond = client.get(f"/v1/runs/{run_id}/events?after={last + 1}")
        assert beyond.status_code == 400
        assert beyond.json()["error"]["fields"][0]["field"] == "after"
        assert beyond.json()["error"]["last_seq"] == last
    # At the live end: the stream waits there for what comes next.
    stream = RawStream(server.port, "GET", f"/v1/runs/{run_id}/events?after={last}")
    assert stream.status == 200
    with server.client() as client:
        pending = client.get(f"/v1/runs/{run_id}").json()["pending_interaction"]
        client.post(pending["response_url"], json={"response": "go"})
    stream.read_to_end()
    events = [f.json() for f in parse_sse(stream.raw) if f.id]
    assert events[0]["seq"] == last + 1 and events[-1]["type"] == "run.completed"


# -- bodiless answers -----------------------------------------------------------------------


def test_no_content_answers_carry_no_body_and_no_html(server: Server) -> None:
    with server.client() as client:
        idle = client.get("/api/chat/chat-never-started/stream")
        assert idle.status_code == 204
        assert idle.content == b""
        assert "content-type" not in idle.headers
        assert "content-length" not in idle.headers
        for path, allowed in (("/v1/runs", {"POST"}), ("/v1/runs/run_x", {"GET"})):
            options = client.options(path)
            assert options.status_code == 204
            assert options.content == b""
            assert "content-type" not in options.headers
            assert set(options.headers["allow"].replace(" ", "").split(",")) >= {
                "OPTIONS",
                *allowed,
            }


# -- logs -----------------------------------------------------------------------------------


def test_a_run_waiting_for_input_is_logged(server: Server) -> None:
    body = {"producer": "synthetic", "input": {"events": 2, "ask_at": 1}}
    with server.client() as client:
        paused = client.post("/v1/runs", json=body)
        assert paused.status_code == 202
        accepted = paused.json()
        client.post(accepted["response_url"], json={"response": "ok"})
        wait_status(client, accepted["execution_id"])
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    waiting = [
        line
        for line in lines
        if line.get("event") == "run.awaiting_input"
        and line.get("run_id") == accepted["execution_id"]
    ]
    assert len(waiting) == 1
    assert waiting[0]["interaction_id"] == accepted["interaction"]["id"]
    assert waiting[0]["level"] == "info"
